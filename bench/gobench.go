package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"
)

// goBenchOptions configure the Go microbenchmark run.
type goBenchOptions struct {
	Root      string // module root
	Count     int
	Benchtime string
	Packages  []string
	RawOut    string // where to keep go test's output ("" for nowhere)
	Log       io.Writer
}

// runGoBench runs `go test -run '^$' -bench . -benchmem` over the rewriter's
// and the bench's own packages and parses the result.
func runGoBench(ctx context.Context, o goBenchOptions) ([]goBench, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	args := append([]string{"test", "-run", "^$", "-bench", ".", "-benchmem",
		"-count", strconv.Itoa(o.Count), "-benchtime", o.Benchtime, "-timeout", "30m"}, o.Packages...)
	fmt.Fprintf(o.Log, "go %s\n", join(args))
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = o.Root
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	runErr := cmd.Run()
	if o.RawOut != "" {
		os.WriteFile(o.RawOut, out.Bytes(), 0o644)
	}
	bs, err := parseGoBench(bytes.NewReader(out.Bytes()))
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "go test -bench: %d benchmarks in %s\n", len(bs), time.Since(start).Round(time.Second))
	if runErr != nil {
		return bs, fmt.Errorf("go test -bench: %w: %s", runErr, tail(out.String(), 1500))
	}
	return bs, nil
}

func join(args []string) string {
	var b bytes.Buffer
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a == "^$" {
			a = "'^$'"
		}
		b.WriteString(a)
	}
	return b.String()
}
