package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sync"
	"time"
)

// target is one way of reaching the data: directly, through PgBouncer, with
// row-level security in the database, or through pgwarden.
type target struct {
	Name string
	// Filters reports whether the target adds the tenant filter itself; the
	// others are the unfiltered baselines.
	Filters bool
	// Endpoint returns how to reach the target for a workload, protocol and
	// tenant, and a short description of its pooling mode for the table.
	Endpoint func(w *workload, protocol, tenant string) (endpoint, string) `json:"-"`
}

// workload is a pgbench script run against every target.
type workload struct {
	Name string
	// Tenants get one concurrent pgbench process each (a pgwarden session
	// token names one tenant, so a process cannot mix them).
	Tenants []string
	// Clients per run; for several tenants, the clients of each process.
	Clients   []int
	Protocols []string
	// Script returns the script for a tenant on a target.
	Script func(t *target, tenant string) (string, error) `json:"-"`
	// DB is the database for direct connections, Warehouse its pgwarden name.
	DB, Warehouse string
	// QueriesPerTx is the number of statements one transaction runs.
	QueriesPerTx int
}

type caseKey struct {
	Workload string
	Protocol string
	Clients  int // total over all tenant processes
	Target   string
}

// sample is one measurement of a case in one round.
type sample struct {
	Round int
	TPS   float64
	Lat   latencyStats
	Mode  string
	Err   string
	// CPU per transaction of the proxy, PostgreSQL (all its processes) and
	// pgbench over the whole run.
	CPU cpuUse
}

// e2eResults holds every sample of the end-to-end runs.
type e2eResults struct {
	Workloads []*workload
	Targets   []string
	Samples   map[caseKey][]sample
}

// e2eJSON is e2eResults with its map flattened, for results.json.
type e2eJSON struct {
	Workloads []*workload
	Targets   []string
	Cases     []e2eCase
}

type e2eCase struct {
	Key     caseKey
	Samples []sample
}

func (r *e2eResults) MarshalJSON() ([]byte, error) {
	j := e2eJSON{Workloads: r.Workloads, Targets: r.Targets}
	for _, w := range r.Workloads {
		for _, proto := range w.Protocols {
			for _, c := range w.Clients {
				for _, t := range r.Targets {
					k := caseKey{w.Name, proto, c * len(w.Tenants), t}
					if ss, ok := r.Samples[k]; ok {
						j.Cases = append(j.Cases, e2eCase{k, ss})
					}
				}
			}
		}
	}
	return json.Marshal(j)
}

func (r *e2eResults) UnmarshalJSON(b []byte) error {
	var j e2eJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	r.Workloads, r.Targets, r.Samples = j.Workloads, j.Targets, map[caseKey][]sample{}
	for _, c := range j.Cases {
		r.Samples[c.Key] = c.Samples
	}
	return nil
}

type e2eOptions struct {
	Pgbench  string
	Duration time.Duration
	Rounds   int
	Work     string
	Log      io.Writer
	NoWarmup bool
	// Postmaster is PostgreSQL's postmaster process (0: PostgreSQL's CPU is
	// not measured).
	Postmaster int
	// PgbenchCPUs is where pgbench runs (nil: wherever the kernel puts
	// it; runPinned sets it); Label names such a pass in the log.
	PgbenchCPUs *cpuSet
	Label       string
}

// runE2E runs every workload × protocol × clients case against every target,
// interleaved: within a round each case runs on all targets back to back, so
// that a noisy neighbour on the machine hits every target alike.
func runE2E(ctx context.Context, o e2eOptions, targets []*target, workloads []*workload) *e2eResults {
	res := &e2eResults{Workloads: workloads, Samples: map[caseKey][]sample{}}
	for _, t := range targets {
		res.Targets = append(res.Targets, t.Name)
	}
	// Warm caches and connection paths once per target and workload, at the
	// largest client count (PgBouncer's pools are filled when it starts).
	for _, w := range workloads {
		if o.NoWarmup {
			break
		}
		for _, t := range targets {
			s := runCase(ctx, o, t, w, w.Protocols[0], w.Clients[len(w.Clients)-1], time.Second)
			if s.Err != "" {
				fmt.Fprintf(o.Log, "warm-up %s %s: %s\n", w.Name, t.Name, s.Err)
			}
		}
	}
	for round := 1; round <= o.Rounds; round++ {
		for _, w := range workloads {
			for _, proto := range w.Protocols {
				for _, clients := range w.Clients {
					for _, t := range targets {
						if ctx.Err() != nil {
							return res
						}
						s := runCase(ctx, o, t, w, proto, clients, o.Duration)
						s.Round = round
						k := caseKey{w.Name, proto, clients * len(w.Tenants), t.Name}
						res.Samples[k] = append(res.Samples[k], s)
						if s.Err != "" {
							fmt.Fprintf(o.Log, "%sround %d %-9s %-8s c=%-3d %-9s error: %s\n", o.Label, round, w.Name, proto, k.Clients, t.Name, s.Err)
						} else {
							fmt.Fprintf(o.Log, "%sround %d %-9s %-8s c=%-3d %-9s %9.0f tps  mean %6.2f ms  p99 %7.2f ms  CPU/tx µs: proxy %5.1f (kernel %5.1f) pg %5.1f pgbench %5.1f  IPIs/tx %4.2f\n",
								o.Label, round, w.Name, proto, k.Clients, t.Name, s.TPS, s.Lat.MeanMs, s.Lat.P99Ms, s.CPU.ProxyUs, s.CPU.ProxySysUs, s.CPU.PgUs, s.CPU.PgbenchUs, s.CPU.IPIsPerTx)
						}
					}
				}
			}
		}
	}
	return res
}

// runCase runs one pgbench process per tenant of w concurrently and combines
// them: throughput adds up, latencies are pooled.
func runCase(ctx context.Context, o e2eOptions, t *target, w *workload, proto string, clients int, d time.Duration) sample {
	type out struct {
		res pgbenchResult
		err error
	}
	outs := make([]out, len(w.Tenants))
	var mode string
	var wg sync.WaitGroup
	eps := make([]endpoint, len(w.Tenants))
	scripts := make([]string, len(w.Tenants))
	for i, tenant := range w.Tenants {
		ep, m := t.Endpoint(w, proto, tenant)
		mode = m
		script, err := w.Script(t, tenant)
		if err != nil {
			return sample{Mode: mode, Err: err.Error()}
		}
		eps[i], scripts[i] = ep, script
	}
	// Every tenant's process of one case goes through the same proxy.
	proxy := eps[0].Pid
	proxy0, proxySys0 := processCPU(proxy)
	pg0 := treeCPU(o.Postmaster)
	ipi0, ipiOK := wakeIPIs()
	for i := range w.Tenants {
		ep, script := eps[i], scripts[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := runPgbench(ctx, pgbenchRun{Bin: o.Pgbench, Endpoint: ep, Script: script, Protocol: proto,
				Clients: clients, Duration: d, LogDir: o.Work, CPUs: o.PgbenchCPUs})
			outs[i] = out{r, err}
		}()
	}
	wg.Wait()
	proxyCPU, proxySys := processCPU(proxy)
	proxyCPU, proxySys = proxyCPU-proxy0, proxySys-proxySys0
	pgCPU := treeCPU(o.Postmaster) - pg0
	ipi1, ipiOK1 := wakeIPIs()
	s := sample{Mode: mode}
	var lat []float64
	var tx int
	var pgbenchCPU time.Duration
	for _, o := range outs {
		if o.err != nil {
			s.Err = o.err.Error()
			return s
		}
		s.TPS += o.res.TPS
		tx += o.res.Processed
		pgbenchCPU += o.res.CPU
		lat = append(lat, o.res.Latencies...)
	}
	s.Lat = summarizeLatencies(lat)
	if proxy > 0 {
		s.CPU.ProxyUs, s.CPU.ProxySysUs = perTx(proxyCPU, tx), perTx(proxySys, tx)
	}
	if o.Postmaster > 0 {
		s.CPU.PgUs = perTx(pgCPU, tx)
	}
	s.CPU.PgbenchUs = perTx(pgbenchCPU, tx)
	if ipiOK && ipiOK1 && tx > 0 {
		s.CPU.IPIsPerTx = float64(ipi1-ipi0) / float64(tx)
	}
	return s
}

// caseSummary is a case's medians over rounds.
type caseSummary struct {
	Key       caseKey
	Mode      string
	Rounds    int // successful rounds
	TPS       float64
	MeanMs    float64
	P99Ms     float64
	VsDirect  float64 // median over rounds of TPS / direct's TPS in the same round
	VsBouncer float64 // likewise against PgBouncer
	Err       string  // the last error, when no round succeeded
	// CPU per transaction, µs, medians over rounds (NaN: not measured).
	ProxyUs, PgUs, PgbenchUs float64
	// ProxySysUs is the kernel's part of ProxyUs (median over rounds).
	ProxySysUs float64
	// IPIsPerTx is the machine's cross-CPU wake-ups per transaction
	// (median over rounds; NaN: not measured).
	IPIsPerTx float64
	// ProxyCPUVsBouncer is the median over rounds of the proxy's CPU per
	// transaction divided by PgBouncer's in the same round.
	ProxyCPUVsBouncer float64
}

func (r *e2eResults) summarize(k caseKey) caseSummary {
	ss := r.Samples[k]
	cs := caseSummary{Key: k, TPS: math.NaN(), MeanMs: math.NaN(), P99Ms: math.NaN(), VsDirect: math.NaN(), VsBouncer: math.NaN()}
	var tps, means, p99s, proxyUs, proxySysUs, pgUs, pgbenchUs, ipis []float64
	for _, s := range ss {
		cs.Mode = s.Mode
		if s.Err != "" {
			cs.Err = s.Err
			continue
		}
		tps = append(tps, s.TPS)
		means = append(means, s.Lat.MeanMs)
		p99s = append(p99s, s.Lat.P99Ms)
		if s.CPU.ProxyUs > 0 {
			proxyUs = append(proxyUs, s.CPU.ProxyUs)
			proxySysUs = append(proxySysUs, s.CPU.ProxySysUs)
		}
		if s.CPU.PgUs > 0 {
			pgUs = append(pgUs, s.CPU.PgUs)
		}
		if s.CPU.PgbenchUs > 0 {
			pgbenchUs = append(pgbenchUs, s.CPU.PgbenchUs)
		}
		if s.CPU.IPIsPerTx > 0 {
			ipis = append(ipis, s.CPU.IPIsPerTx)
		}
	}
	cs.ProxyUs, cs.ProxySysUs, cs.PgUs, cs.PgbenchUs = median(proxyUs), median(proxySysUs), median(pgUs), median(pgbenchUs)
	cs.IPIsPerTx = median(ipis)
	cs.ProxyCPUVsBouncer = r.pairedCPURatio(k, "pgbouncer", proxyCPU)
	cs.Rounds = len(tps)
	if cs.Rounds > 0 {
		cs.Err = ""
		cs.TPS, cs.MeanMs, cs.P99Ms = median(tps), median(means), median(p99s)
	}
	cs.VsDirect = r.pairedRatio(k, "direct")
	cs.VsBouncer = r.pairedRatio(k, "pgbouncer")
	return cs
}

// pairedRatio is the median over rounds of k's TPS divided by base's TPS in the
// same round; rounds where either failed are left out.
func (r *e2eResults) pairedRatio(k caseKey, base string) float64 {
	bk := k
	bk.Target = base
	byRound := map[int]float64{}
	for _, s := range r.Samples[bk] {
		if s.Err == "" && s.TPS > 0 {
			byRound[s.Round] = s.TPS
		}
	}
	var ratios []float64
	for _, s := range r.Samples[k] {
		if b, ok := byRound[s.Round]; ok && s.Err == "" {
			ratios = append(ratios, s.TPS/b)
		}
	}
	return median(ratios)
}

// pairedCPURatio is the median over rounds of k's CPU per transaction, as
// of reads it from a run (proxyCPU or stackCPU), divided by base's in the
// same round.
func (r *e2eResults) pairedCPURatio(k caseKey, base string, of func(cpuUse) float64) float64 {
	bk := k
	bk.Target = base
	byRound := map[int]float64{}
	for _, s := range r.Samples[bk] {
		if v := of(s.CPU); s.Err == "" && v > 0 {
			byRound[s.Round] = v
		}
	}
	var ratios []float64
	for _, s := range r.Samples[k] {
		v := of(s.CPU)
		if b, ok := byRound[s.Round]; ok && s.Err == "" && v > 0 {
			ratios = append(ratios, v/b)
		}
	}
	return median(ratios)
}

// proxyCPU is the proxy's CPU per transaction.
func proxyCPU(c cpuUse) float64 { return c.ProxyUs }

// stackCPU is the proxy's and PostgreSQL's CPU per transaction together, 0
// when either is missing: what a transaction through the proxy costs the
// machine that runs both, which is the comparison that counts work the
// proxy moves off the warehouse (pgwarden runs a simple query as a
// statement prepared once per pooled connection; PgBouncer forwards it).
func stackCPU(c cpuUse) float64 {
	if c.ProxyUs <= 0 || c.PgUs <= 0 {
		return 0
	}
	return c.ProxyUs + c.PgUs
}
