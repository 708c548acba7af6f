package cstack

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestThreadsGetSize(t *testing.T) {
	if !supported {
		t.Skip("thread stack sizes are set on Linux with cgo only")
	}
	if n, ok := Default(); !ok || n < Size {
		t.Fatalf("default thread stack %d (ok %v), want at least %d", n, ok, Size)
	}
	// Goroutine threads are created by the runtime's cgo thread start.
	if n, ok := Current(); !ok || n < Size {
		t.Fatalf("goroutine thread stack %d (ok %v), want at least %d", n, ok, Size)
	}
}

// With RLIMIT_STACK unlimited glibc's default is 2 MiB; the constructor
// still raises it before the runtime starts threads.
func TestThreadsGetSizeUnlimited(t *testing.T) {
	if !supported {
		t.Skip("thread stack sizes are set on Linux with cgo only")
	}
	if os.Getenv("PGWARDEN_CSTACK_CHILD") == "1" {
		TestThreadsGetSize(t)
		return
	}
	cmd := exec.Command("/bin/sh", "-c", `ulimit -s unlimited && exec "$0" "$@"`, os.Args[0], "-test.run=^TestThreadsGetSizeUnlimited$", "-test.v")
	cmd.Env = append(os.Environ(), "PGWARDEN_CSTACK_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
