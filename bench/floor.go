package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/pgwarden/pgwarden/internal/pgcluster"
)

// floorRelay is bench/floorrelay running in front of the cluster: the CPU a
// Go proxy pays per transaction before it does any work of its own.
type floorRelay struct {
	Port   int
	Mode   string // goroutine, epoll or coro
	cmd    *exec.Cmd
	exited chan struct{}
}

// buildFloorRelay builds bench/floorrelay into work once.
func buildFloorRelay(ctx context.Context, work string) (string, error) {
	bin := filepath.Join(work, "floorrelay")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./bench/floorrelay").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./bench/floorrelay: %w: %s", err, tail(string(out), 1000))
	}
	return bin, nil
}

func startFloorRelay(ctx context.Context, bin, mode string, pg *pgcluster.Cluster) (*floorRelay, error) {
	port, err := pgcluster.FreePort()
	if err != nil {
		return nil, err
	}
	args := []string{"-mode", mode, "-listen", strconv.Itoa(port), "-backend", strconv.Itoa(pg.Port)}
	if mode == "coro" {
		// Wait as pgwarden's loop waits: it runs other goroutines beside
		// its connections, so its loop gives its processor back.
		args = append(args, "-block", "runtime")
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start floorrelay: %w", err)
	}
	r := &floorRelay{Port: port, Mode: mode, cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(r.exited) }()
	if err := waitTCPWhile(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 15*time.Second, r.exited); err != nil {
		r.stop()
		return nil, fmt.Errorf("floorrelay -mode %s did not start: %w", mode, err)
	}
	return r, nil
}

func (r *floorRelay) pid() int { return r.cmd.Process.Pid }

func (r *floorRelay) stop() {
	if r == nil || r.cmd.Process == nil {
		return
	}
	stopChild(r.cmd.Process, r.exited, syscall.SIGTERM, 5*time.Second)
}

// stopChild signals a child the bench started and kills it if it has not
// exited (closed exited) within grace.
func stopChild(p *os.Process, exited <-chan struct{}, sig os.Signal, grace time.Duration) {
	p.Signal(sig)
	select {
	case <-exited:
	case <-time.After(grace):
		p.Kill()
		<-exited
	}
}
