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
	Root   string // module root
	Runs   []goBenchRun
	RawOut string // where to keep go test's output ("" for nowhere)
	Log    io.Writer
}

// goBenchRun is one go test invocation of the microbenchmark run.
type goBenchRun struct {
	Pattern   string // -bench
	Count     int
	Benchtime string
	// Short passes -short: BenchmarkConstants then stops at 10^4
	// constants, whose larger sizes (up to 25 s an op) get a run of
	// their own with a -count of 1 (see goBenchRuns).
	Short    bool
	Packages []string
}

// largeConstants selects BenchmarkConstants' sizes that -short leaves out.
const largeConstants = "^BenchmarkConstants$/^(in|or)$/^(first|template|uncached)$/^(100000|1000000)$"

// goBenchRuns is the microbenchmark run of make bench: every benchmark of
// the rewriter's and the bench's own packages count times, except the
// large sizes of BenchmarkConstants, once each (none in a quick run): at
// -count 5 they alone took about ten minutes.
func goBenchRuns(count int, benchtime string, quick bool) []goBenchRun {
	runs := []goBenchRun{{Pattern: ".", Count: count, Benchtime: benchtime, Short: true,
		Packages: []string{"./rewrite/", "./bench/..."}}}
	if !quick {
		runs = append(runs, goBenchRun{Pattern: largeConstants, Count: 1, Benchtime: benchtime, Packages: []string{"./rewrite/"}})
	}
	return runs
}

// runGoBench runs `go test -run '^$' -bench PATTERN -benchmem` for each of
// o.Runs in turn and parses their output together.
func runGoBench(ctx context.Context, o goBenchOptions) ([]goBench, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	var out bytes.Buffer
	start := time.Now()
	var runErr error
	for _, r := range o.Runs {
		args := []string{"test", "-run", "^$", "-bench", r.Pattern, "-benchmem",
			"-count", strconv.Itoa(r.Count), "-benchtime", r.Benchtime, "-timeout", "30m"}
		if r.Short {
			args = append(args, "-short")
		}
		args = append(args, r.Packages...)
		fmt.Fprintf(o.Log, "go %s\n", join(args))
		cmd := exec.CommandContext(ctx, goBin, args...)
		cmd.Dir = o.Root
		var one bytes.Buffer
		cmd.Stdout = &one
		cmd.Stderr = &one
		err := cmd.Run()
		out.Write(one.Bytes())
		if err != nil {
			runErr = fmt.Errorf("%w: %s", err, tail(one.String(), 1500))
			break
		}
	}
	if o.RawOut != "" {
		os.WriteFile(o.RawOut, out.Bytes(), 0o644)
	}
	bs, err := parseGoBench(bytes.NewReader(out.Bytes()))
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "go test -bench: %d benchmarks in %s\n", len(bs), time.Since(start).Round(time.Second))
	if runErr != nil {
		return bs, fmt.Errorf("go test -bench: %w", runErr)
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
