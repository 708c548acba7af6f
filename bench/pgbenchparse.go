package main

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// pgbenchSummary is what pgbench prints at the end of a run.
type pgbenchSummary struct {
	TPS       float64 // "tps = N (without initial connection time)"
	Processed int     // "number of transactions actually processed: N"
	Failed    int     // "number of failed transactions: N (...)"
	LatencyMs float64 // "latency average = N ms"
}

// parsePgbenchSummary reads pgbench's standard output.
func parsePgbenchSummary(r io.Reader) (pgbenchSummary, error) {
	var s pgbenchSummary
	var haveTPS bool
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "tps = "):
			f := strings.Fields(strings.TrimPrefix(line, "tps = "))
			if len(f) == 0 {
				continue
			}
			v, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				return s, fmt.Errorf("pgbench output: bad tps line %q", line)
			}
			// PostgreSQL 13 and older print two tps lines (including and
			// excluding connection time); keep the one without it.
			if !haveTPS || strings.Contains(line, "without initial connection") || strings.Contains(line, "excluding") {
				s.TPS = v
				haveTPS = true
			}
		case strings.HasPrefix(line, "number of transactions actually processed:"):
			f := strings.Fields(strings.TrimPrefix(line, "number of transactions actually processed:"))
			if len(f) > 0 {
				// "N/M" when -t was given.
				n, err := strconv.Atoi(strings.SplitN(f[0], "/", 2)[0])
				if err != nil {
					return s, fmt.Errorf("pgbench output: bad processed line %q", line)
				}
				s.Processed = n
			}
		case strings.HasPrefix(line, "number of failed transactions:"):
			f := strings.Fields(strings.TrimPrefix(line, "number of failed transactions:"))
			if len(f) > 0 {
				n, err := strconv.Atoi(f[0])
				if err != nil {
					return s, fmt.Errorf("pgbench output: bad failed line %q", line)
				}
				s.Failed = n
			}
		case strings.HasPrefix(line, "latency average = "):
			f := strings.Fields(strings.TrimPrefix(line, "latency average = "))
			if len(f) >= 2 && f[1] == "ms" {
				v, err := strconv.ParseFloat(f[0], 64)
				if err != nil {
					return s, fmt.Errorf("pgbench output: bad latency line %q", line)
				}
				s.LatencyMs = v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return s, err
	}
	if !haveTPS {
		return s, fmt.Errorf("pgbench output has no tps line")
	}
	return s, nil
}

// parsePgbenchLog appends the latencies (milliseconds) of the successful
// transactions in a pgbench per-transaction log (--log) to dst. Each line is
// "client_id transaction_no time script_no time_epoch time_us [schedule_lag]"
// with time in microseconds, or "failed"/"skipped" in place of time.
func parsePgbenchLog(r io.Reader, dst []float64) ([]float64, int, error) {
	failed := 0
	sc := bufio.NewScanner(r)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) < 6 {
			return dst, failed, fmt.Errorf("pgbench log line %d: %d fields, want at least 6", lineNo, len(f))
		}
		if f[2] == "failed" || f[2] == "skipped" {
			failed++
			continue
		}
		us, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil || us < 0 {
			return dst, failed, fmt.Errorf("pgbench log line %d: bad latency %q", lineNo, f[2])
		}
		dst = append(dst, float64(us)/1000)
	}
	return dst, failed, sc.Err()
}

// latencyStats summarizes per-transaction latencies in milliseconds.
type latencyStats struct {
	N      int
	MeanMs float64
	P50Ms  float64
	P99Ms  float64
}

func summarizeLatencies(ms []float64) latencyStats {
	if len(ms) == 0 {
		return latencyStats{} // zeros, not NaN: the raw results are JSON
	}
	s := append([]float64(nil), ms...)
	sort.Float64s(s)
	return latencyStats{N: len(s), MeanMs: mean(s), P50Ms: percentileSorted(s, 50), P99Ms: percentileSorted(s, 99)}
}
