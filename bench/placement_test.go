//go:build linux

package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// allowedCPUs is process pid's Cpus_allowed_list from /proc.
func allowedCPUs(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no Cpus_allowed_list for %d", pid)
	return ""
}

// The pinned part's moves, on real processes: a command started on one
// CPU, a process tree moved to another (the child too), and back.
func TestPlacement(t *testing.T) {
	pl, err := newPlacement()
	if err != nil {
		t.Skip(err)
	}
	front, back := strconv.Itoa(pl.front.cpus()[0]), strconv.Itoa(pl.back.cpus()[0])
	was := allowedCPUs(t, os.Getpid())

	// A shell with a child of its own, started on the front CPU.
	cmd := exec.Command("sh", "-c", "sleep 30 & wait")
	if err := startOn(cmd, &pl.front); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if got := allowedCPUs(t, os.Getpid()); got != was {
		t.Errorf("the bench itself left on CPUs %s, was %s", got, was)
	}
	var kids []int
	for deadline := time.Now().Add(5 * time.Second); len(kids) == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		kids = children(cmd.Process.Pid)
	}
	if len(kids) != 1 {
		t.Fatalf("children of the shell: %v", kids)
	}
	for _, pid := range []int{cmd.Process.Pid, kids[0]} {
		if got := allowedCPUs(t, pid); got != front {
			t.Errorf("process %d started on CPUs %s, want %s", pid, got, front)
		}
	}

	if err := setTreeAffinity(cmd.Process.Pid, &pl.back); err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{cmd.Process.Pid, kids[0]} {
		if got := allowedCPUs(t, pid); got != back {
			t.Errorf("process %d moved to CPUs %s, want %s", pid, got, back)
		}
	}
	if err := setProcessAffinity(kids[0], &pl.all); err != nil {
		t.Fatal(err)
	}
	if got := allowedCPUs(t, kids[0]); got != was {
		t.Errorf("process %d back on CPUs %s, want %s", kids[0], got, was)
	}
}
