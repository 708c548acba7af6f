package main

import (
	"encoding/json"
	"math"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{5, 5, 1, 9, 7}, 5},
	} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median(nil) = %v, want NaN", got)
	}
	in := []float64{3, 1, 2}
	median(in)
	if !cmp.Equal(in, []float64{3, 1, 2}) {
		t.Errorf("median reordered its input: %v", in)
	}
}

func TestPercentile(t *testing.T) {
	var xs []float64
	for i := 100; i >= 1; i-- {
		xs = append(xs, float64(i))
	}
	for _, tc := range []struct {
		p, want float64
	}{{99, 99}, {50, 50}, {100, 100}, {1, 1}, {0.5, 1}, {99.5, 100}} {
		if got := percentile(xs, tc.p); got != tc.want {
			t.Errorf("percentile(1..100, %v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	// Nearest rank of a small sample is the largest value for p99.
	if got := percentile([]float64{1, 2, 3, 50}, 99); got != 50 {
		t.Errorf("p99 of 4 values = %v, want 50", got)
	}
	for _, p := range []float64{0, -1, 101} {
		if got := percentile(xs, p); !math.IsNaN(got) {
			t.Errorf("percentile(%v) = %v, want NaN", p, got)
		}
	}
}

func TestParsePgbenchSummary(t *testing.T) {
	f, err := os.Open("testdata/pgbench_stdout.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := parsePgbenchSummary(f)
	if err != nil {
		t.Fatal(err)
	}
	want := pgbenchSummary{TPS: 6777.284118, Processed: 10777, Failed: 0, LatencyMs: 9.443}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
	// A run whose clients were still connecting when -T ran out prints no tps.
	_, err = parsePgbenchSummary(strings.NewReader("pgbench (15.18)\nnumber of transactions actually processed: 0\n"))
	if err == nil || !strings.Contains(err.Error(), "no tps line") {
		t.Errorf("no tps line: err = %v", err)
	}
	// PostgreSQL 13 prints both tps lines; the one without connections wins.
	got, err = parsePgbenchSummary(strings.NewReader("tps = 90.5 (including connections establishing)\ntps = 100.25 (excluding connections establishing)\n"))
	if err != nil || got.TPS != 100.25 {
		t.Errorf("two tps lines: got %v, %v; want 100.25", got.TPS, err)
	}
}

func TestParsePgbenchLog(t *testing.T) {
	f, err := os.Open("testdata/pgbench_log.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, failed, err := parsePgbenchLog(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]float64{0.123, 0.077, 1, 0.25}, got); diff != "" {
		t.Errorf("latencies (-want +got):\n%s", diff)
	}
	if failed != 1 {
		t.Errorf("failed = %d, want 1", failed)
	}
	st := summarizeLatencies(got)
	if st.N != 4 || st.P99Ms != 1 || st.P50Ms != 0.123 || math.Abs(st.MeanMs-0.3625) > 1e-12 {
		t.Errorf("summary = %+v", st)
	}
	if _, _, err := parsePgbenchLog(strings.NewReader("0 0 12\n"), nil); err == nil {
		t.Error("short line: want an error")
	}
	if _, _, err := parsePgbenchLog(strings.NewReader("0 0 x 0 1 2\n"), nil); err == nil {
		t.Error("bad latency: want an error")
	}
}

func TestParseGoBench(t *testing.T) {
	f, err := os.Open("testdata/gobench.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := parseGoBench(f)
	if err != nil {
		t.Fatal(err)
	}
	const rw, rb = "github.com/pgwarden/pgwarden/rewrite", "github.com/pgwarden/pgwarden/bench/rewritebench"
	want := []goBench{
		{Pkg: rw, Name: "RewriteTPCH/q01", Runs: 3, NsPerOp: 110000, BytesPerOp: 20000, AllocsPerOp: 300},
		{Pkg: rw, Name: "ParseDeparseTPCH/q01", Runs: 3, NsPerOp: 55000, BytesPerOp: 10000, AllocsPerOp: 100},
		{Pkg: rw, Name: "RewritePgbenchSelect", Runs: 1, NsPerOp: 12000, BytesPerOp: 2000, AllocsPerOp: 30},
		{Pkg: rb, Name: "Rewrite/bi/revenue", Runs: 1, NsPerOp: 300000, BytesPerOp: 90000, AllocsPerOp: 1200},
		{Pkg: rb, Name: "ParseDeparse/bi/revenue", Runs: 1, NsPerOp: 100000, BytesPerOp: 30000, AllocsPerOp: 400},
		{Pkg: rw, Name: "Rewrite/tpch/parse", Runs: 1, NsPerOp: 1e6, BytesPerOp: 50000, AllocsPerOp: 900},
		{Pkg: rw, Name: "Rewrite/tpch/parse_deparse", Runs: 1, NsPerOp: 2e6, BytesPerOp: 90000, AllocsPerOp: 1800},
		{Pkg: rw, Name: "Rewrite/tpch/rewrite_uncached", Runs: 1, NsPerOp: 5e6, BytesPerOp: 190000, AllocsPerOp: 4000},
		{Pkg: rw, Name: "Rewrite/tpch/rewrite_cached", Runs: 1, NsPerOp: 10000, BytesPerOp: 1000, AllocsPerOp: 22},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("benchmarks (-want +got):\n%s", diff)
	}
	ratios := pairRewriteBaseline(got)
	wantR := []rewriteRatio{
		{Query: "RewriteTPCH/q01", RewriteNs: 110000, RewriteAllocs: 300, BaselineNs: 55000, BaselineAllocs: 100, Ratio: 2},
		{Query: "Rewrite/bi/revenue", RewriteNs: 300000, RewriteAllocs: 1200, BaselineNs: 100000, BaselineAllocs: 400, Ratio: 3},
		{Query: "rewrite: Rewrite/tpch (one op = the whole corpus)", RewriteNs: 5e6, RewriteAllocs: 4000, BaselineNs: 2e6, BaselineAllocs: 1800, Ratio: 2.5},
	}
	if diff := cmp.Diff(wantR, ratios); diff != "" {
		t.Errorf("ratios (-want +got):\n%s", diff)
	}
}

func TestMdTable(t *testing.T) {
	var b strings.Builder
	mdTable(&b, []string{"name", ">tps"}, [][]string{{"direct", "12345"}, {"pgwarden", "9"}})
	want := "| name     |   tps |\n" +
		"| -------- | ----: |\n" +
		"| direct   | 12345 |\n" +
		"| pgwarden |     9 |\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}

func TestPairedRatio(t *testing.T) {
	res := &e2eResults{Targets: []string{"direct", "pgbouncer", "pgwarden"}, Samples: map[caseKey][]sample{
		{"select", "simple", 8, "direct"}:    {{Round: 1, TPS: 1000}, {Round: 2, TPS: 2000}, {Round: 3, TPS: 1000}},
		{"select", "simple", 8, "pgbouncer"}: {{Round: 1, TPS: 500}, {Round: 2, Err: "boom"}, {Round: 3, TPS: 1000}},
		{"select", "simple", 8, "pgwarden"}:  {{Round: 1, TPS: 800}, {Round: 2, TPS: 1000}, {Round: 3, TPS: 700}},
	}}
	s := res.summarize(caseKey{"select", "simple", 8, "pgwarden"})
	// Per round: 0.8, 0.5, 0.7 against direct; 1.6 and 0.7 against PgBouncer (round 2 failed).
	if s.VsDirect != 0.7 || math.Abs(s.VsBouncer-1.15) > 1e-12 || s.TPS != 800 || s.Rounds != 3 {
		t.Errorf("summary = %+v", s)
	}
	b := res.summarize(caseKey{"select", "simple", 8, "pgbouncer"})
	if b.Rounds != 2 || b.TPS != 750 || b.Err != "" {
		t.Errorf("pgbouncer summary = %+v", b)
	}
}

func TestRenderDashboard(t *testing.T) {
	hand, err := renderDashboard("acme", true)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := renderDashboard("acme", false)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(hand, ";\n"); n != dashboardQueries {
		t.Errorf("%d statements, want %d", n, dashboardQueries)
	}
	if strings.Contains(plain, "tenant_id = '") || strings.Contains(plain, "{{") {
		t.Errorf("unfiltered dashboard has a tenant filter or template residue:\n%s", plain)
	}
	if got := strings.Count(hand, "tenant_id = 'acme'"); got != dashboardQueries {
		t.Errorf("hand-filtered dashboard has %d filters, want %d:\n%s", got, dashboardQueries, hand)
	}
	if !strings.Contains(plain, "FROM orders o GROUP BY region") {
		t.Errorf("unexpected spacing:\n%s", plain)
	}
}

func TestHumanize(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 7.26: "7.3", 950: "950", 1234: "1.2k", 1000: "1k", 23456: "23k", 1.5e6: "1.5M"} {
		if got := humanize(v); got != want {
			t.Errorf("humanize(%v) = %q, want %q", v, got, want)
		}
	}
	for x, want := range map[float64]float64{0.7: 1, 3: 5, 12: 20, 4500: 5000, 0: 1} {
		if got := niceStep(x); got != want {
			t.Errorf("niceStep(%v) = %v, want %v", x, got, want)
		}
	}
}

func TestParseFlagsQuick(t *testing.T) {
	o, _, err := parseFlags([]string{"-quick", "-rounds", "2"}, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if o.Rounds != 2 || o.Duration.Seconds() != 1 || o.Scale != 1 || !cmp.Equal(o.Conns, []int{100}) || o.PoolClients != 200 || !o.Parts["pool"] ||
		!o.Parts["fairness"] || o.FairnessDuration != 6*time.Second {
		t.Errorf("quick with -rounds 2: %+v", o)
	}
	if o.Out != quickOut {
		t.Errorf("quick writes to %q, want %q (the tracked bench/RESULTS.md is for full runs)", o.Out, quickOut)
	}
	if full, _, err := parseFlags(nil, &strings.Builder{}); err != nil || full.Out != "bench" {
		t.Errorf("full run writes to %q (err %v), want bench", full.Out, err)
	}
	if o, _, err := parseFlags([]string{"-quick", "-out", "elsewhere"}, &strings.Builder{}); err != nil || o.Out != "elsewhere" {
		t.Errorf("quick with -out elsewhere writes to %q (err %v)", o.Out, err)
	}
	if _, _, err := parseFlags([]string{"-protocols", "simple,bogus"}, &strings.Builder{}); err == nil {
		t.Error("unknown protocol: want an error")
	}
}

func TestVersionAtLeast(t *testing.T) {
	for v, want := range map[string]bool{"1.18.0": false, "1.21.0": true, "1.22": true, "2.0.1": true, "": false, "x.y": false} {
		if got := versionAtLeast(v, 1, 21); got != want {
			t.Errorf("versionAtLeast(%q, 1.21) = %v", v, got)
		}
	}
}

func TestPivotRows(t *testing.T) {
	w := &workload{Name: "select", Tenants: []string{"t1"}, Clients: []int{8}, Protocols: []string{"simple"}}
	res := &e2eResults{Workloads: []*workload{w}, Targets: []string{"direct", "rls", "pgwarden"}, Samples: map[caseKey][]sample{
		{"select", "simple", 8, "direct"}:   {{Round: 1, TPS: 1000}, {Round: 2, TPS: 2000}},
		{"select", "simple", 8, "rls"}:      {{Round: 1, TPS: 900}, {Round: 2, TPS: 1800}},
		{"select", "simple", 8, "pgwarden"}: {{Round: 1, TPS: 100}, {Round: 2, Err: "boom"}},
	}}
	wantH := []string{"workload", "protocol", ">clients", ">direct", ">rls", ">pgwarden", ">pgwarden ÷ direct", ">pgwarden ÷ rls", ">rls ÷ direct"}
	wantR := [][]string{{"select", "simple", "8", "1500", "1350", "100", "0.10×", "0.11×", "0.90×"}}
	checkPivot(t, res, wantH, wantR)
}

// TestPivotRowsCPU checks the CPU columns: each same-round ratio of the
// proxy's CPU, and of the proxy's and PostgreSQL's together, with a round
// that misses either left out.
func TestPivotRowsCPU(t *testing.T) {
	w := &workload{Name: "select", Tenants: []string{"t1"}, Clients: []int{1}, Protocols: []string{"simple"}}
	res := &e2eResults{Workloads: []*workload{w}, Targets: []string{"pgbouncer", "pgwarden"}, Samples: map[caseKey][]sample{
		{"select", "simple", 1, "pgbouncer"}: {
			{Round: 1, TPS: 100, CPU: cpuUse{ProxyUs: 30, PgUs: 70}},
			{Round: 2, TPS: 100, CPU: cpuUse{ProxyUs: 40, PgUs: 60}},
			{Round: 3, TPS: 100, CPU: cpuUse{ProxyUs: 40}},
		},
		{"select", "simple", 1, "pgwarden"}: {
			{Round: 1, TPS: 100, CPU: cpuUse{ProxyUs: 45, PgUs: 45}},
			{Round: 2, TPS: 100, CPU: cpuUse{ProxyUs: 60, PgUs: 50}},
			{Round: 3, TPS: 100, CPU: cpuUse{ProxyUs: 40, PgUs: 10}},
		},
	}}
	wantH := []string{"workload", "protocol", ">clients", ">pgbouncer", ">pgwarden", ">pgwarden ÷ pgbouncer",
		">proxy CPU/tx pgwarden ÷ pgbouncer", ">proxy + PostgreSQL CPU/tx pgwarden ÷ pgbouncer"}
	// proxy: 1.5, 1.5, 1.0 → 1.5; proxy + PostgreSQL: 0.9, 1.1 (round 3 has no PostgreSQL figure) → 1.0.
	wantR := [][]string{{"select", "simple", "1", "100", "100", "1.00×", "1.50×", "1.00×"}}
	checkPivot(t, res, wantH, wantR)
}

// TestPivotRowsFixedPlacement checks the last column: pgwarden's proxy
// CPU against PgBouncer's in the same round of the pinned runs, beside
// the unpinned ratio.
func TestPivotRowsFixedPlacement(t *testing.T) {
	w := &workload{Name: "select", Tenants: []string{"t1"}, Clients: []int{1}, Protocols: []string{"extended"}}
	k := func(target string) caseKey { return caseKey{"select", "extended", 1, target} }
	res := &e2eResults{Workloads: []*workload{w}, Targets: []string{"pgbouncer", "pgwarden"}, Samples: map[caseKey][]sample{
		k("pgbouncer"): {{Round: 1, TPS: 100, CPU: cpuUse{ProxyUs: 30}}},
		k("pgwarden"):  {{Round: 1, TPS: 100, CPU: cpuUse{ProxyUs: 39}}},
	}}
	pinned := &e2eResults{Workloads: []*workload{w}, Targets: []string{"pgbouncer", "pgwarden"}, Samples: map[caseKey][]sample{
		k("pgbouncer"): {{Round: 1, TPS: 100, CPU: cpuUse{ProxyUs: 30}}, {Round: 2, TPS: 100, CPU: cpuUse{ProxyUs: 40}}},
		k("pgwarden"):  {{Round: 1, TPS: 100, CPU: cpuUse{ProxyUs: 33}}, {Round: 2, TPS: 100, CPU: cpuUse{ProxyUs: 40}}},
	}}
	header, rows := pivotRows(res, pinned)
	wantH := []string{"workload", "protocol", ">clients", ">pgbouncer", ">pgwarden", ">pgwarden ÷ pgbouncer",
		">proxy CPU/tx pgwarden ÷ pgbouncer", ">proxy + PostgreSQL CPU/tx pgwarden ÷ pgbouncer",
		">proxy CPU/tx pgwarden ÷ pgbouncer, fixed placement"}
	// pinned: 1.1, 1.0 → 1.05.
	wantR := [][]string{{"select", "extended", "1", "100", "100", "1.00×", "1.30×", "–", "1.05×"}}
	if diff := cmp.Diff(wantH, header); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantR, rows); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

func TestFmtRatio(t *testing.T) {
	for v, want := range map[float64]string{1.234: "1.23×", 0.1: "0.10×", 0.0034: "0.0034×", 0.042: "0.042×", math.NaN(): "–"} {
		if got := fmtRatio(v); got != want {
			t.Errorf("fmtRatio(%v) = %q, want %q", v, got, want)
		}
	}
}

// TestReportJSONRoundTrip checks that -render redraws exactly what the run
// wrote: the report survives results.json.
func TestReportJSONRoundTrip(t *testing.T) {
	w := &workload{Name: "select", Tenants: []string{"t1"}, Clients: []int{8}, Protocols: []string{"simple"}, QueriesPerTx: 1}
	rep := &report{Command: "make bench", Settings: []string{"duration 3s per run"}, Notes: []string{"a note"},
		Targets: []targetInfo{{"direct", "PostgreSQL itself"}},
		E2E: &e2eResults{Workloads: []*workload{w}, Targets: []string{"direct", "pgwarden"}, Samples: map[caseKey][]sample{
			{"select", "simple", 8, "direct"}:   {{Round: 1, TPS: 1000, Lat: latencyStats{N: 3000, MeanMs: 1, P50Ms: 0.9, P99Ms: 4}, Mode: "none"}},
			{"select", "simple", 8, "pgwarden"}: {{Round: 1, Err: "boom", Mode: "1 upstream per client"}},
		}},
		Pinned: &e2eResults{Workloads: []*workload{w}, Targets: []string{"pgwarden"}, Samples: map[caseKey][]sample{
			{"select", "simple", 8, "pgwarden"}: {{Round: 1, TPS: 777, CPU: cpuUse{ProxyUs: 31.5, IPIsPerTx: 2}, Mode: "transaction, pool 16"}},
		}},
		Tickets: []ticketRound{{Pairs: 10, PairsPerS: 5}}, TicketW: 4,
		Scale:   []scalePoint{{Target: "pgwarden", Conns: 100, Opened: 100, PerConnKB: 55}},
		GoBench: []goBench{{Pkg: "p", Name: "RewriteX/q", Runs: 1, NsPerOp: 2}, {Pkg: "p", Name: "ParseDeparseX/q", Runs: 1, NsPerOp: 1}},
		Plans:   []targetPlan{{Target: "direct", SQL: "SELECT 1", Plan: "Result"}},
		Pool: &poolResult{Clients: 2000, Connected: 2000, Sessions: 2000, Tenants: 4, PoolSize: 20, BaseKB: 1000, IdleKB: 2000, PerIdleKB: 61.5,
			Phases: []poolPhase{{Name: "check", Queries: 2000, PeakPG: 20}, {Name: "round 1", Queries: 9000, QPS: 2900, Lat: latencyStats{P50Ms: 650, P99Ms: 900}, PeakPG: 19}}},
		Fairness: &fairnessResult{PoolSize: 20, Duration: 20 * time.Second, HeavyClients: 40, LightTenants: 9, LightClients: 2, Variants: []fairnessRun{
			{Name: "fifo", What: "FIFO queue", Unloaded: latencyStats{P99Ms: 10}, Loaded: latencyStats{P50Ms: 2000, P99Ms: 4000}, Ratio: 400, HeavyDone: 111},
			{Name: "fair", What: "fair scheduling", Unloaded: latencyStats{P99Ms: 10}, Loaded: latencyStats{P50Ms: 11, P99Ms: 17}, Ratio: 1.7, HeavyDone: 57},
		}},
	}
	var before strings.Builder
	rep.writeMarkdown(&before)
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	var after strings.Builder
	back.writeMarkdown(&after)
	if diff := cmp.Diff(before.String(), after.String()); diff != "" {
		t.Errorf("markdown after a JSON round trip (-want +got):\n%s", diff)
	}
	for _, want := range []string{"| select   | simple   |", "error: boom", "2.00×", "55.0", "## Transaction pooling: 2000 clients over a pool of 20", "61.5 |", "2900 |",
		"## Tenant fairness (issue #15)", "400.00× |", "1.70× |", "above target", "within target",
		"### select with a fixed placement", "777 |", "31.5 |"} {
		if !strings.Contains(after.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

func TestServerError(t *testing.T) {
	in := "after 1191 connections: failed to connect to `user=bench database=bench`: 127.0.0.1:40743 (127.0.0.1): server error: FATAL: warehouse bench is unreachable (SQLSTATE 53300)"
	want := "after 1191 connections: FATAL: warehouse bench is unreachable (SQLSTATE 53300)"
	if got := serverError(in); got != want {
		t.Errorf("serverError = %q, want %q", got, want)
	}
	if got := serverError("plain"); got != "plain" {
		t.Errorf("serverError(plain) = %q", got)
	}
}

func TestParseMetrics(t *testing.T) {
	const text = `# HELP pgwarden_proxy_pool_connections Transaction-pool warehouse connections.
# TYPE pgwarden_proxy_pool_connections gauge
pgwarden_proxy_pool_connections{state="idle",warehouse="bench"} 3
pgwarden_proxy_pool_connections{state="in_use",warehouse="bench"} 17
pgwarden_proxy_pool_connections{state="in_use",warehouse="demo"} 1
pgwarden_proxy_pool_acquire_seconds_bucket{warehouse="bench",le="0.0001"} 10
pgwarden_proxy_pool_acquire_seconds_bucket{warehouse="bench",le="0.0004"} 95
pgwarden_proxy_pool_acquire_seconds_bucket{warehouse="bench",le="+Inf"} 100
pgwarden_proxy_pool_acquire_seconds_sum{warehouse="bench"} 0.02
pgwarden_proxy_pool_acquire_seconds_count{warehouse="bench"} 100
pgwarden_proxy_connections 2000
`
	ss, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"pgwarden_proxy_pool_connections", []string{"warehouse", "bench", "state", "in_use"}, 17},
		{"pgwarden_proxy_pool_connections", []string{"warehouse", "bench", "state", "idle"}, 3},
		{"pgwarden_proxy_pool_connections", []string{"warehouse", "demo", "state", "in_use"}, 1},
		{"pgwarden_proxy_pool_waiting_clients", []string{"warehouse", "bench"}, 0},
		{"pgwarden_proxy_connections", nil, 2000},
	} {
		if got := ss.value(c.name, c.labels...); got != c.want {
			t.Errorf("%s %v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	var p poolPhase
	p.addAcquire(nil, nil)
	if p.AcquireN != 0 {
		t.Errorf("acquire without scrapes: %+v", p)
	}
	p.addAcquire(promSamples{}, ss)
	if p.AcquireN != 100 || math.Abs(p.AcquireMs-0.2) > 1e-9 || math.Abs(p.AcquireP99-0.4) > 1e-9 || !p.AcquireP99Above {
		t.Errorf("acquire = %d, mean %v ms, p99 %v ms (above: %v); want 100, 0.2, above 0.4", p.AcquireN, p.AcquireMs, p.AcquireP99, p.AcquireP99Above)
	}
	// 95 of 100 within 0.4 ms: the p95 bucket, not the p99 one.
	ss[4].Value = 99
	p = poolPhase{}
	p.addAcquire(promSamples{}, ss)
	if math.Abs(p.AcquireP99-0.4) > 1e-9 || p.AcquireP99Above {
		t.Errorf("p99 = %v ms (above: %v), want ≤ 0.4", p.AcquireP99, p.AcquireP99Above)
	}
	if _, err := parseMetrics(strings.NewReader("x{a=\"b\"} notanumber\n")); err == nil {
		t.Error("a bad value: want an error")
	}
}

func TestPoolVerdict(t *testing.T) {
	ok := poolResult{Clients: 10, Connected: 10, Sessions: 10, PoolSize: 2, IdleWarehouse: 2,
		Phases: []poolPhase{{Name: "check", PeakPG: 2}, {Name: "round 1", PeakPG: 1}}}
	if v := ok.verdict(); v != "" {
		t.Errorf("verdict of a clean run = %q", v)
	}
	bad := ok
	bad.Sessions = 9
	bad.Phases = []poolPhase{{Name: "check", PeakPG: 3, WrongRows: 4}, {Name: "round 1", Errors: 2, FirstErr: "boom"}}
	v := bad.verdict()
	for _, want := range []string{"9 distinct sessions for 10 clients", "4 rows of another tenant", "2 errors (first: boom)", "saw 3 service-role connections, more than the pool's 2"} {
		if !strings.Contains(v, want) {
			t.Errorf("verdict %q lacks %q", v, want)
		}
	}
}

// The content A/B: paired sub-benchmarks and the interleaved run's own
// metrics reach the report.
func TestContentABReport(t *testing.T) {
	out := `pkg: github.com/pgwarden/pgwarden/bench/rewritebench
BenchmarkContentCached/viewer/q1-2         	    2000	      1800 ns/op	    1184 B/op	       2 allocs/op
BenchmarkContentCached/restricted_querier/q1-2         	    2000	      1500 ns/op	    1184 B/op	       2 allocs/op
BenchmarkContentInterleaved-2   	  100000	     1700 ns/op	     1600 rq-ns/op	     1800 viewer-ns/op	         1.125 viewer/rq	    2293 B/op	      20 allocs/op
`
	bs, err := parseGoBench(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if got := bs[2].Metrics; got["viewer/rq"] != 1.125 || got["rq-ns/op"] != 1600 || bs[2].NsPerOp != 1700 {
		t.Fatalf("interleaved = %+v", bs[2])
	}
	var b strings.Builder
	writeContentAB(&b, bs)
	for _, want := range []string{"| q1 ", "1.20×", "viewer 1800 ns, restricted_querier 1600 ns per statement, ratio 1.12×"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

func TestParseProcStat(t *testing.T) {
	// comm holds a space and a parenthesis; fields 14-17 are 7, 3, 200, 50 ticks.
	line := "4242 (post gres) x) S 17 4242 4242 0 -1 4194560 900 0 0 0 7 3 200 50 20 0 1 0 100 2000 30 18446744073709551615"
	st, ok := parseProcStat(line)
	if !ok {
		t.Fatal("parseProcStat: not ok")
	}
	want := procStat{PPID: 17, CPU: 10 * clockTick, Sys: 3 * clockTick, ChildCPU: 250 * clockTick}
	if st != want {
		t.Errorf("parseProcStat = %+v, want %+v", st, want)
	}
	if _, ok := parseProcStat("4242 (short) S 1 2"); ok {
		t.Error("parseProcStat accepted a truncated line")
	}
	if cpu, sys := processCPU(os.Getpid()); cpu < 0 || sys < 0 || sys > cpu {
		t.Errorf("processCPU(self) = %v, %v", cpu, sys)
	}
}

// The cold rewrite's interleaved metrics reach a per-query table with the
// median and maximum ratio and the queries above the target.
func TestColdRewriteReport(t *testing.T) {
	out := `pkg: github.com/pgwarden/pgwarden/bench/rewritebench
BenchmarkColdRewrite/tpch/q01-2   	 1000	 700000 ns/op	 100000 deparse-ns/op	 300000 parse+deparse-ns/op	 200000 parse-ns/op	 390000 rewrite-ns/op	 1.300 x-parse+deparse
BenchmarkColdRewrite/tpch/q01-2   	 1000	 700000 ns/op	 100000 deparse-ns/op	 300000 parse+deparse-ns/op	 200000 parse-ns/op	 390000 rewrite-ns/op	 1.100 x-parse+deparse
BenchmarkColdRewrite/tpch/q01-2   	 1000	 700000 ns/op	 100000 deparse-ns/op	 300000 parse+deparse-ns/op	 200000 parse-ns/op	 390000 rewrite-ns/op	 1.200 x-parse+deparse
BenchmarkColdRewrite/pgbench/select-2   	 1000	 90000 ns/op	 10000 deparse-ns/op	 30000 parse+deparse-ns/op	 20000 parse-ns/op	 60000 rewrite-ns/op	 2.000 x-parse+deparse
BenchmarkColdRewrite/bi/x-2   	 1000	 90000 ns/op	 10000 deparse-ns/op	 30000 parse+deparse-ns/op	 20000 parse-ns/op	 42000 rewrite-ns/op	 1.400 x-parse+deparse
BenchmarkRewriteCached/bi/x-2   	 1000	 900 ns/op
`
	bs, err := parseGoBench(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	rows := coldRows(bs)
	want := []coldRow{
		{Query: "tpch/q01", Parse: 200000, Deparse: 100000, ParseDeparse: 300000, Rewrite: 390000, Ratio: 1.2},
		{Query: "pgbench/select", Parse: 20000, Deparse: 10000, ParseDeparse: 30000, Rewrite: 60000, Ratio: 2},
		{Query: "bi/x", Parse: 20000, Deparse: 10000, ParseDeparse: 30000, Rewrite: 42000, Ratio: 1.4},
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Fatalf("rows (-want +got):\n%s", diff)
	}
	var b strings.Builder
	writeColdRewrite(&b, rows)
	for _, want := range []string{"| tpch/q01 ", "|    200.0 |      100.0 |            300.0 |           390.0 | 1.20× |",
		"Ratio over 3 queries: median 1.40×, max 2.00× (pgbench/select). Above 1.30×: pgbench/select 2.00×, bi/x 1.40×."} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	writeColdRewrite(&b, rows[:1])
	if !strings.Contains(b.String(), "Every query is within 1.30×.") {
		t.Errorf("report:\n%s", b.String())
	}
}

// The second run of goBenchRuns selects, level by level as go test matches
// a -bench pattern, exactly BenchmarkConstants' sizes that -short leaves
// out (rewrite/scale_bench_test.go: n > 10000); a quick run has none.
func TestGoBenchRuns(t *testing.T) {
	runs := goBenchRuns(5, "100ms", false)
	if len(runs) != 2 || !runs[0].Short || runs[0].Count != 5 || runs[1].Short || runs[1].Count != 1 {
		t.Fatalf("runs: %+v", runs)
	}
	if q := goBenchRuns(1, "20ms", true); len(q) != 1 || !q[0].Short {
		t.Fatalf("quick runs: %+v", q)
	}
	levels := strings.Split(runs[1].Pattern, "/")
	matches := func(name string) bool {
		parts := strings.Split(name, "/")
		if len(parts) != len(levels) {
			return false
		}
		for i, p := range parts {
			if !regexp.MustCompile(levels[i]).MatchString(p) {
				return false
			}
		}
		return true
	}
	for _, shape := range []string{"in", "or"} {
		for _, kind := range []string{"first", "template", "uncached"} {
			for _, n := range []string{"100", "1000", "10000", "100000", "1000000"} {
				name := "BenchmarkConstants/" + shape + "/" + kind + "/" + n
				if want := len(n) > len("10000"); matches(name) != want {
					t.Errorf("%s: matched %v, want %v", name, !want, want)
				}
			}
		}
	}
	if matches("BenchmarkConstantsX/in/first/100000") {
		t.Error("another benchmark matched")
	}
}

func TestParseWakeIPIs(t *testing.T) {
	b, err := os.ReadFile("testdata/interrupts_2cpu.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   string
		n    int64
		ok   bool
	}{
		// A 2-vCPU guest's: RES 9306031 + 9515009, CAL 81092898 + 80639741.
		{"two CPUs", string(b), 9306031 + 9515009 + 81092898 + 80639741, true},
		{"one CPU", "           CPU0\nRES:         12   Rescheduling interrupts\nCAL:          5   Function call interrupts\nLOC:       1000   Local timer interrupts\n", 17, true},
		// A row with no counts adds nothing.
		{"description only", "RES: Rescheduling interrupts\n", 0, true},
		{"neither row", "           CPU0\n  0:         44   IO-APIC   2-edge      timer\nLOC:       1000   Local timer interrupts\n", 0, false},
		{"empty", "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, ok := parseWakeIPIs(tc.in)
			if n != tc.n || ok != tc.ok {
				t.Errorf("parseWakeIPIs = %d, %v; want %d, %v", n, ok, tc.n, tc.ok)
			}
		})
	}
}

// The io_uring floor gets its CPU column beside the other floors', after
// them, when PgBouncer ran in the same run.
func TestPivotRowsFloorColumns(t *testing.T) {
	w := &workload{Name: "select", Tenants: []string{"t1"}, Clients: []int{1}, Protocols: []string{"simple"}}
	res := &e2eResults{Workloads: []*workload{w}, Targets: []string{"pgbouncer", "relay-uring", "relay-coro"}, Samples: map[caseKey][]sample{
		{"select", "simple", 1, "pgbouncer"}:   {{Round: 1, TPS: 100, CPU: cpuUse{ProxyUs: 30}}},
		{"select", "simple", 1, "relay-uring"}: {{Round: 1, TPS: 100, CPU: cpuUse{ProxyUs: 24}}},
		{"select", "simple", 1, "relay-coro"}:  {{Round: 1, TPS: 100, CPU: cpuUse{ProxyUs: 33}}},
	}}
	wantH := []string{"workload", "protocol", ">clients", ">pgbouncer", ">relay-uring", ">relay-coro",
		">proxy CPU/tx relay-coro ÷ pgbouncer", ">proxy CPU/tx relay-uring ÷ pgbouncer"}
	wantR := [][]string{{"select", "simple", "1", "100", "100", "100", "1.10×", "0.80×"}}
	checkPivot(t, res, wantH, wantR)
}

func TestNullSyscallNs(t *testing.T) {
	if ns := nullSyscallNs(); ns <= 0 || ns > 1e6 {
		t.Errorf("nullSyscallNs = %v, want a positive figure under 1 ms", ns)
	}
}

// checkPivot compares pivotRows' header and rows with the wanted ones.
func checkPivot(t *testing.T, res *e2eResults, wantH []string, wantR [][]string) {
	t.Helper()
	header, rows := pivotRows(res, nil)
	if diff := cmp.Diff(wantH, header); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantR, rows); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}
