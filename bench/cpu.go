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
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return total
	}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readProcStat(p); ok && st.PPID == pid {
			total += st.CPU
		}
	}
	return total
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
}

func perTx(d time.Duration, tx int) float64 {
	if tx <= 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(tx)
}
