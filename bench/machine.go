package main

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// machine describes where the numbers were measured.
type machine struct {
	CPU       string
	Cores     int
	MemoryGiB float64
	Kernel    string
	Postgres  string
	Pgbench   string
	Pgbouncer string
	Go        string
	// SyscallNs is the round trip of a system call that does nothing
	// (getppid), the median of five timings of 100,000. Under some
	// hypervisors it is ten times what it is on bare metal; it then
	// weighs on every proxy's CPU per transaction by the calls it makes.
	SyscallNs float64
	Date      time.Time
}

func describeMachine(pgBinDir, pgbench, pgbouncerVer string) machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version(), Date: time.Now().UTC(), Pgbouncer: pgbouncerVer}
	m.CPU = cpuModel("/proc/cpuinfo")
	m.MemoryGiB = memTotalGiB("/proc/meminfo")
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.SyscallNs = nullSyscallNs()
	m.Postgres = commandVersion(pgBinDir+"/postgres", "--version")
	m.Pgbench = commandVersion(pgbench, "--version")
	return m
}

func nullSyscallNs() float64 {
	const n = 100_000
	var runs []float64
	for range 5 {
		start := time.Now()
		for range n {
			syscall.RawSyscall(syscall.SYS_GETPPID, 0, 0, 0)
		}
		runs = append(runs, float64(time.Since(start).Nanoseconds())/n)
	}
	slices.Sort(runs)
	return runs[len(runs)/2]
}

func cpuModel(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func memTotalGiB(path string) float64 {
	kb := procStatusKB(path, "MemTotal")
	return float64(kb) / (1 << 20)
}

// procStatusKB reads a "Name:   N kB" line from a /proc file such as
// /proc/PID/status (VmRSS) or /proc/meminfo (MemTotal); -1 when absent.
func procStatusKB(path, name string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != name {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			return -1
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return -1
		}
		return n
	}
	return -1
}

func commandVersion(bin string, args ...string) string {
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
