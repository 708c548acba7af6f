package main

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// CPU time per process, from /proc: on a machine shared with other work the
// CPU a process spends per transaction survives the noise that throughput
// does not, and when the proxy, the warehouse and the clients share cores it
// is what bounds throughput.

// clockTick is the unit of /proc/PID/stat's time fields (USER_HZ, 100 on
// every Linux architecture Go supports).
const clockTick = 10 * time.Millisecond

// procStat holds the fields of /proc/PID/stat that the bench reads.
type procStat struct {
	PPID int
	// CPU is utime + stime: this process, all of its threads.
	CPU time.Duration
	// Sys is stime alone, the part spent in the kernel on the process's
	// behalf: for a proxy, mostly its socket reads, writes and polls.
	Sys time.Duration
	// ChildCPU is cutime + cstime: its children that exited and were
	// waited for.
	ChildCPU time.Duration
}

// readProcStat parses /proc/PID/stat; ok is false when the process is gone.
func readProcStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	return parseProcStat(string(b))
}

// parseProcStat parses one /proc/PID/stat line: "pid (comm) state ppid …",
// where comm may hold spaces and parentheses, so fields are counted from the
// last ')'. utime, stime, cutime and cstime are fields 14–17.
func parseProcStat(s string) (procStat, bool) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 15 {
		return procStat{}, false
	}
	n := func(field int) int64 {
		v, _ := strconv.ParseInt(f[field-3], 10, 64)
		return v
	}
	return procStat{
		PPID:     int(n(4)),
		CPU:      time.Duration(n(14)+n(15)) * clockTick,
		Sys:      time.Duration(n(15)) * clockTick,
		ChildCPU: time.Duration(n(16)+n(17)) * clockTick,
	}, true
}

// processCPU is the CPU time process pid has used so far, all of it and the
// kernel's part (0 when pid is 0 or gone).
func processCPU(pid int) (cpu, sys time.Duration) {
	if pid <= 0 {
		return 0, 0
	}
	st, _ := readProcStat(pid)
	return st.CPU, st.Sys
}

// treeCPU is the CPU time of process pid and its children: its own, what its
// exited children used (PostgreSQL's postmaster waits for every backend) and
// what its live children used so far. Sampled before and after a run, the
// difference is the run's CPU over all of PostgreSQL's processes, backends
// that came and went included.
func treeCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	root, ok := readProcStat(pid)
	if !ok {
		return 0
	}
	total := root.CPU + root.ChildCPU
	for _, p := range children(pid) {
		if st, ok := readProcStat(p); ok {
			total += st.CPU
		}
	}
	return total
}

// children lists the live processes whose parent is pid.
func children(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readProcStat(p); ok && st.PPID == pid {
			out = append(out, p)
		}
	}
	return out
}

// cpuUse is the CPU per transaction of each process of one run, in
// microseconds (NaN when not measured).
type cpuUse struct {
	ProxyUs float64 `json:",omitempty"`
	// ProxySysUs is the kernel's part of ProxyUs: what the proxy's system
	// calls cost, which no user-space work can lower.
	ProxySysUs float64 `json:",omitempty"`
	PgUs       float64 `json:",omitempty"`
	PgbenchUs  float64 `json:",omitempty"`
	// IPIsPerTx is the machine's cross-CPU wake-ups per transaction over
	// the run (wakeIPIs), every process's: 0 when not measured.
	IPIsPerTx float64 `json:",omitempty"`
}

func perTx(d time.Duration, tx int) float64 {
	if tx <= 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(tx)
}

// Cross-CPU wake-ups, from /proc/interrupts: on a machine with few cores the
// kernel's placement of the proxy, the warehouse and the clients decides how
// many of a transaction's wake-ups (client → proxy → PostgreSQL → proxy →
// client) cross to another CPU, each an inter-processor interrupt whose cost
// lands in the system time of the process that wakes. Two per transaction
// is one process alone on a CPU and the other two sharing; four is the
// proxy alone. Which layout the kernel keeps follows the processes' loads
// (it balances them), not anything the proxy asks, so the count explains a
// proxy's system time where its system calls are the same.

// wakeIPIs is the sum over CPUs of the function-call (CAL) and rescheduling
// (RES) interrupts, the two that a remote wake-up sends; ok is false where
// /proc/interrupts has neither (not Linux, or an architecture without
// them).
func wakeIPIs() (n int64, ok bool) {
	b, err := os.ReadFile("/proc/interrupts")
	if err != nil {
		return 0, false
	}
	return parseWakeIPIs(string(b))
}

// parseWakeIPIs sums the CAL and RES rows of a /proc/interrupts text: a
// row is its name and colon, a count per CPU, then a description.
func parseWakeIPIs(s string) (n int64, ok bool) {
	for line := range strings.Lines(s) {
		f := strings.Fields(line)
		if len(f) == 0 || (f[0] != "CAL:" && f[0] != "RES:") {
			continue
		}
		ok = true
		for _, v := range f[1:] {
			c, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				break // the description
			}
			n += c
		}
	}
	return n, ok
}
