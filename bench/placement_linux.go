package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"
)

// cpuSet is a sched_setaffinity(2) mask: bit i is CPU i.
type cpuSet [16]uint64

func (s *cpuSet) add(cpu int) { s[cpu/64] |= 1 << (cpu % 64) }

// cpus lists the CPUs in s, lowest first.
func (s *cpuSet) cpus() []int {
	var out []int
	for i := range len(s) * 64 {
		if s[i/64]&(1<<(i%64)) != 0 {
			out = append(out, i)
		}
	}
	return out
}

// threadAffinity is the CPU set of thread tid (0: the calling thread).
func threadAffinity(tid int) (cpuSet, error) {
	var s cpuSet
	if _, _, e := syscall.RawSyscall(syscall.SYS_SCHED_GETAFFINITY, uintptr(tid), unsafe.Sizeof(s), uintptr(unsafe.Pointer(&s))); e != 0 {
		return s, os.NewSyscallError("sched_getaffinity", e)
	}
	return s, nil
}

func setThreadAffinity(tid int, s *cpuSet) error {
	if _, _, e := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, uintptr(tid), unsafe.Sizeof(*s), uintptr(unsafe.Pointer(s))); e != 0 {
		return os.NewSyscallError("sched_setaffinity", e)
	}
	return nil
}

// setProcessAffinity moves every thread of process pid to s; the threads it
// starts later inherit it from theirs.
func setProcessAffinity(pid int, s *cpuSet) error {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return err
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := setThreadAffinity(tid, s); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("thread %d of %d: %w", tid, pid, err)
		}
	}
	return nil
}

// setTreeAffinity moves process pid and its children to s: PostgreSQL's
// postmaster and its backends, and the backends it forks later.
func setTreeAffinity(pid int, s *cpuSet) error {
	if err := setProcessAffinity(pid, s); err != nil {
		return err
	}
	for _, child := range children(pid) {
		if err := setProcessAffinity(child, s); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// startOn starts cmd on the CPUs of s: the child inherits the affinity of
// the thread that forks it, which is this goroutine's, locked and moved to
// s for the start and moved back after.
func startOn(cmd *exec.Cmd, s *cpuSet) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	was, err := threadAffinity(0)
	if err != nil {
		return err
	}
	if err := setThreadAffinity(0, s); err != nil {
		return err
	}
	startErr := cmd.Start()
	if err := setThreadAffinity(0, &was); err != nil {
		// The thread stays locked to this goroutine and dies with it when
		// it cannot be moved back (LockOSThread without Unlock).
		runtime.LockOSThread()
		return errors.Join(startErr, err)
	}
	return startErr
}
