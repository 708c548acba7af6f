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

// floorTargets are the bench's floorrelay targets: each one's -mode and
// what the report says of it.
var floorTargets = map[string]struct{ mode, what string }{
	"relay-go":    {"goroutine", "bench/floorrelay -mode goroutine: copies bytes between each client and its own PostgreSQL connection with two goroutines, as pgwarden's netpoller model, and does nothing else; the floor of a Go proxy's CPU per transaction"},
	"relay-epoll": {"epoll", "bench/floorrelay -mode epoll: the same copy on one locked thread with a level-triggered epoll loop and raw system calls, as PgBouncer's; the floor of an event-loop Go proxy"},
	"relay-coro":  {"coro", "bench/floorrelay -mode coro -block runtime: pgwarden's event loop with nothing on it, each client's relay written as blocking code in a coroutine (iter.Pull) that the loop resumes when a socket is readable; the loop waits as pgwarden's does (an ordinary blocking system call that gives the processor back, a pass through the scheduler every 5 ms, no locked thread); the floor of pgwarden's I/O model"},
	"relay-uring": {"uring", "bench/floorrelay -mode uring: the same copy over io_uring, a receive always armed on each socket (into a buffer it takes from a shared group when data arrives, so that an idle socket holds none) and each send linked to the next receive, so that relaying one message is one io_uring_enter (which submits the send and receive and waits for the next completion) where an epoll loop makes a wait, a read and a write; one loop goroutine, not locked to a thread (pgwarden's coroutines could not run on a locked one), waiting as pgwarden's loop does; the floor of pgwarden's I/O model were it on io_uring"},
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
