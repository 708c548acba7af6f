package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The fairness part is issue #15's proof that one tenant cannot starve the
// others: over a transaction pool of 20 warehouse connections, a heavy
// tenant runs 40 clients of 2-second statements while nine light tenants run
// 5 ms statements; it reports the light tenants' p99 latency alone
// (unloaded) and beside the heavy tenant (loaded), for each pool scheduling
// in the same run. The statements sleep instead of burning CPU (the machine
// has two cores): bench_wait wraps pg_sleep, which no policy may allow, in a
// function of the bench's own that the fairness policy allows.

const (
	fairnessHeavyClients   = 40
	fairnessHeavySeconds   = 2.0
	fairnessLightTenants   = 9
	fairnessLightClients   = 2 // per light tenant
	fairnessLightSeconds   = 0.005
	fairnessTargetRatio    = 3.0
	fairnessFunctionSQL    = `CREATE OR REPLACE FUNCTION public.bench_wait(s float8) RETURNS int LANGUAGE sql AS $$ SELECT 1 FROM (SELECT pg_sleep(s)) w $$`
	fairnessPolicyAddendum = "functions:\n  allow: [bench_wait]\n"
)

// fairnessVariant is one pool configuration under test.
type fairnessVariant struct {
	Name string
	What string
	Pool string // YAML of the bench warehouse's pool
}

// fairnessVariants: the FIFO queue, fair scheduling alone, and fair
// scheduling with a share of the pool per tenant (the heavy tenant then
// holds at most half of it, whatever it queues).
func fairnessVariants(size int) []fairnessVariant {
	share := size / 2
	return []fairnessVariant{
		{"fifo", "FIFO queue, no tenant limits (the behaviour before fair pooling)",
			fmt.Sprintf("{mode: transaction, size: %d, acquire_timeout: 120s, scheduling: fifo}", size)},
		{"fair", "fair scheduling (weight 1 each), no share",
			fmt.Sprintf("{mode: transaction, size: %d, acquire_timeout: 120s, scheduling: fair}", size)},
		{"fair+share", fmt.Sprintf("fair scheduling and tenant_defaults.max_connections: %d (half the pool)", share),
			fmt.Sprintf("{mode: transaction, size: %d, acquire_timeout: 120s, scheduling: fair, tenant_defaults: {max_connections: %d}}", size, share)},
	}
}

// fairnessResult is what the fairness part measured.
type fairnessResult struct {
	PoolSize     int
	Duration     time.Duration
	HeavyClients int
	LightTenants int
	LightClients int
	Variants     []fairnessRun
	Err          string
}

type fairnessRun struct {
	Name, What   string
	Unloaded     latencyStats // light tenants alone
	Loaded       latencyStats // light tenants beside the heavy one
	LoadedErrors int
	HeavyDone    int // heavy statements completed in the loaded phase
	HeavyErrors  int
	FirstErr     string
	Ratio        float64 // loaded p99 / unloaded p99
	Err          string
}

func runFairness(ctx context.Context, o *options, rep *report, c *cluster, work, wardenBin string, keys *wardenKeys, log io.Writer) {
	res := &fairnessResult{PoolSize: o.PoolSize, Duration: o.FairnessDuration, HeavyClients: fairnessHeavyClients,
		LightTenants: fairnessLightTenants, LightClients: fairnessLightClients}
	rep.Fairness = res
	db, err := pgx.Connect(ctx, c.pg.DSN(dbBench))
	if err != nil {
		res.Err = err.Error()
		return
	}
	_, err = db.Exec(ctx, fairnessFunctionSQL)
	db.Close(context.Background())
	if err != nil {
		res.Err = "creating bench_wait: " + err.Error()
		return
	}
	for _, v := range fairnessVariants(o.PoolSize) {
		if ctx.Err() != nil {
			return
		}
		fmt.Fprintf(log, "fairness: %s …\n", v.Name)
		run := measureFairness(ctx, o, v, c, work, wardenBin, keys)
		if run.Err != "" {
			fmt.Fprintf(log, "fairness: %s: %s\n", v.Name, run.Err)
		} else {
			fmt.Fprintf(log, "fairness: %s: light p99 %.1f ms unloaded, %.1f ms loaded (%.1f×); heavy statements %d\n",
				v.Name, run.Unloaded.P99Ms, run.Loaded.P99Ms, run.Ratio, run.HeavyDone)
		}
		res.Variants = append(res.Variants, run)
	}
}

func measureFairness(ctx context.Context, o *options, v fairnessVariant, c *cluster, work, wardenBin string, keys *wardenKeys) fairnessRun {
	run := fairnessRun{Name: v.Name, What: v.What}
	wd, err := startWardenWith(ctx, wardenBin, work, keys, c, "fairness-"+v.Name,
		wardenOptions{PoolYAML: v.Pool, BenchPolicy: benchPolicy + fairnessPolicyAddendum})
	if err != nil {
		run.Err = oneLine(err.Error(), 400)
		return run
	}
	defer wd.stop()
	tc := newTicketClient(wd.HTTPPort, wd.APIKey, 8)
	cfg, err := pgconn.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d user=bench dbname=%s sslmode=disable connect_timeout=60", wd.ProxyPort, whBench))
	if err != nil {
		run.Err = err.Error()
		return run
	}
	connect := func(tenant string, id int) (*pgconn.PgConn, error) {
		ticket, err := tc.mint(ctx, ticketRequest{Tenant: tenant, ExternalID: fmt.Sprintf("fair-%s-%d", tenant, id),
			ConnectionRoles: map[string]string{whBench: "querier"}})
		if err != nil {
			return nil, err
		}
		tok, _, err := tc.exchange(ctx, ticket)
		if err != nil {
			return nil, err
		}
		cc := cfg.Copy()
		cc.Password = tok
		return pgconn.ConnectConfig(ctx, cc)
	}
	var conns []*pgconn.PgConn
	defer func() {
		for _, cn := range conns {
			cctx, cancel := context.WithTimeout(context.Background(), time.Second)
			cn.Close(cctx)
			cancel()
		}
	}()
	var light, heavy []*pgconn.PgConn
	for i := range fairnessLightTenants * fairnessLightClients {
		cn, err := connect(fmt.Sprintf("light%d", i%fairnessLightTenants+1), i)
		if err != nil {
			run.Err = "light client: " + oneLine(serverError(err.Error()), 300)
			return run
		}
		conns = append(conns, cn)
		light = append(light, cn)
	}
	for i := range fairnessHeavyClients {
		cn, err := connect("heavy", i)
		if err != nil {
			run.Err = "heavy client: " + oneLine(serverError(err.Error()), 300)
			return run
		}
		conns = append(conns, cn)
		heavy = append(heavy, cn)
	}
	lightSQL := fmt.Sprintf("SELECT bench_wait(%g)", fairnessLightSeconds)
	heavySQL := fmt.Sprintf("SELECT bench_wait(%g)", fairnessHeavySeconds)
	// Warm up: every light client once (caches, prepared shapes).
	for _, cn := range light {
		if _, err := cn.Exec(ctx, lightSQL).ReadAll(); err != nil {
			run.Err = "warm-up: " + oneLine(serverError(err.Error()), 300)
			return run
		}
	}
	unloaded, _, errs, first := loop(ctx, light, lightSQL, o.FairnessDuration)
	run.Unloaded = summarizeLatencies(unloaded)
	if errs > 0 {
		run.Err = fmt.Sprintf("unloaded phase: %d errors: %s", errs, first)
		return run
	}
	// The heavy tenant starts and fills the pool before the light tenants
	// are measured beside it.
	hctx, hstop := context.WithCancel(ctx)
	var hwg sync.WaitGroup
	var hmu sync.Mutex
	hwg.Add(1)
	go func() {
		defer hwg.Done()
		_, n, e, f := loop(hctx, heavy, heavySQL, 0)
		hmu.Lock()
		run.HeavyDone, run.HeavyErrors = n, e
		if run.FirstErr == "" {
			run.FirstErr = f
		}
		hmu.Unlock()
	}()
	select {
	case <-time.After(time.Duration(fairnessHeavySeconds * float64(time.Second))):
	case <-ctx.Done():
	}
	loaded, _, lerrs, lfirst := loop(ctx, light, lightSQL, o.FairnessDuration)
	hstop()
	// Cancel what the heavy clients still run (their connections close
	// when the part ends anyway).
	hwg.Wait()
	run.Loaded = summarizeLatencies(loaded)
	run.LoadedErrors = lerrs
	if lfirst != "" {
		run.FirstErr = lfirst
	}
	if run.Unloaded.P99Ms > 0 {
		run.Ratio = run.Loaded.P99Ms / run.Unloaded.P99Ms
	}
	return run
}

// loop runs sql on every connection over and over for d (until ctx ends
// when d is 0) and returns the latencies in ms of the statements that
// completed, how many did, the errors and the first error.
func loop(ctx context.Context, conns []*pgconn.PgConn, sql string, d time.Duration) (ms []float64, n, errs int, first string) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var end time.Time
	if d > 0 {
		end = time.Now().Add(d)
	}
	for _, cn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && (end.IsZero() || time.Now().Before(end)) {
				t0 := time.Now()
				_, err := cn.Exec(ctx, sql).ReadAll()
				el := time.Since(t0)
				mu.Lock()
				switch {
				case err == nil:
					ms = append(ms, float64(el.Microseconds())/1000)
					n++
				case ctx.Err() == nil:
					errs++
					if first == "" {
						first = oneLine(serverError(err.Error()), 300)
					}
				}
				mu.Unlock()
				if err != nil && ctx.Err() != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return ms, n, errs, first
}

func writeFairness(w io.Writer, r *fairnessResult) {
	fmt.Fprintf(w, "## Tenant fairness (issue #15)\n\n")
	fmt.Fprintf(w, "A heavy tenant runs %d clients of %.0f-second statements while %d light tenants (%d clients each) run %.0f ms\n",
		r.HeavyClients, fairnessHeavySeconds, r.LightTenants, r.LightClients, fairnessLightSeconds*1000)
	fmt.Fprintf(w, "statements, over a transaction pool of %d warehouse connections; each phase lasts %s. The statements sleep\n", r.PoolSize, r.Duration)
	fmt.Fprintf(w, "(`bench_wait`, pg_sleep in a function of the bench's own) rather than burn CPU. Latency is the client's:\n")
	fmt.Fprintf(w, "the wait for a pooled connection included. Target: the light tenants' loaded p99 within %.0f× their\n", fairnessTargetRatio)
	fmt.Fprintf(w, "unloaded p99.\n\n")
	if r.Err != "" {
		fmt.Fprintf(w, "Not measured: %s\n\n", r.Err)
		return
	}
	var rows [][]string
	for _, v := range r.Variants {
		if v.Err != "" {
			rows = append(rows, []string{v.Name, v.What, "–", "–", "–", "–", "–", v.Err})
			continue
		}
		verdict := "within target"
		if v.Ratio > fairnessTargetRatio {
			verdict = "above target"
		}
		note := verdict
		if v.LoadedErrors > 0 || v.HeavyErrors > 0 {
			note += fmt.Sprintf("; errors: %d light, %d heavy (%s)", v.LoadedErrors, v.HeavyErrors, v.FirstErr)
		}
		rows = append(rows, []string{v.Name, v.What, fmtF(v.Unloaded.P99Ms, 1), fmtF(v.Loaded.P50Ms, 1), fmtF(v.Loaded.P99Ms, 1),
			fmtRatio(v.Ratio), fmt.Sprint(v.HeavyDone), note})
	}
	mdTable(w, []string{"scheduling", "pool", ">light p99 unloaded ms", ">light p50 loaded ms", ">light p99 loaded ms", ">p99 ratio", ">heavy statements", "note"}, rows)
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Under fair scheduling a connection that comes back goes to the waiting tenant holding the fewest\n")
	fmt.Fprintf(w, "connections for its weight (round robin among ties), so the light tenants' short statements get it before\n")
	fmt.Fprintf(w, "the heavy tenant's next 2-second one; a share (max_connections) also keeps part of the pool out of the heavy\n")
	fmt.Fprintf(w, "tenant's reach whatever it queues, at the cost of its throughput (heavy statements completed).\n\n")
}
