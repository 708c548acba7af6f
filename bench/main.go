// Command bench measures pgwarden on one machine, side by side with the
// alternatives, and writes bench/RESULTS.md and bench/throughput.png:
//
//   - end to end with pgbench against PostgreSQL directly, PgBouncer (Debian's
//     package, installed with apt-get when missing and root), PostgreSQL's
//     row-level security and pgwarden (bin/pgwarden), interleaved round by
//     round: a tenant-keyed pgbench -S, a shared-table lookup (the proxy path
//     alone) and a dashboard of aggregates over the demo schema;
//   - the ticket service's mint + exchange rate over HTTP;
//   - proxy memory per idle client connection (pgwarden and PgBouncer);
//   - transaction pooling: 2,000 clients, each its own session minted
//     through the ticket service, over a pool of 20 warehouse connections,
//     every client checking that it sees only its own tenant's rows;
//   - proxy peak memory for 1, 4 and 16 statements of the maximum size at
//     once (bigstmt);
//   - the rewriter's Go microbenchmarks (go test -bench over ./rewrite/ and
//     ./bench/..., including bench/rewritebench).
//
// Run it from the module root with `make bench` (about 15 minutes on two
// cores), or `make bench-quick` (`go run ./bench -quick`) for a smoke run of
// about two minutes whose report goes to bench/out/quick/ instead.
// -duration, -rounds, -clients, -protocols, -targets and -parts narrow a run;
// -render FILE redraws the report from an earlier run's bench/out/results.json.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	Quick           bool
	Duration        time.Duration
	Rounds          int
	Out             string
	Clients         []int
	Protocols       []string
	DashProtocols   []string
	SharedProtocols []string
	Targets         []string
	Parts           map[string]bool
	Scale           int
	Pgwarden        string
	MaxConnections  int
	Conns           []int
	BenchCount      int
	Benchtime       string
	TicketWorkers   int
	PoolClients     int
	PoolSize        int
	// FairnessDuration is each phase of the fairness part.
	FairnessDuration time.Duration
	Keep             bool
	NoWarmup         bool
	Render           string
	Hold             bool
	// BigStmtBytes is the bigstmt part's statement size (0: the largest a
	// client may send); BigStmtConcurrency its levels.
	BigStmtBytes       int
	BigStmtConcurrency []int
	BigStmtKinds       []string
	// BigStmtRewriteTimeout is the proxy's rewrite_timeout in the bigstmt
	// part: long enough that the largest IN list's rewrite completes on a
	// busy machine, so that its peak includes every phase.
	BigStmtRewriteTimeout time.Duration
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// quickOut is where -quick writes its report unless -out says otherwise:
// under bench/out/, which git ignores.
const quickOut = "bench/out/quick"

func parseFlags(args []string, stderr io.Writer) (*options, string, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	fs.BoolVar(&o.Quick, "quick", false, "smoke run: 1s per pgbench run, one round, no warm-up, simple and prepared only, scale 1, 100 idle connections, 200 pool clients, one short go test -bench pass")
	fs.DurationVar(&o.Duration, "duration", 3*time.Second, "length of each pgbench run (whole seconds) and ticket round")
	fs.IntVar(&o.Rounds, "rounds", 3, "interleaved rounds (each runs every case on every target)")
	fs.StringVar(&o.Out, "out", "bench", "directory for RESULTS.md and throughput.png (raw data goes to OUT/out/)")
	clients := fs.String("clients", "1,8,64", "pgbench client counts for the select workload")
	protocols := fs.String("protocols", "simple,extended,prepared", "pgbench -M protocols for the select workload")
	dash := fs.String("dashboard-protocols", "simple,prepared", "pgbench -M protocols for the dashboard workload")
	targets := fs.String("targets", "direct,pgbouncer,rls,relay-coro,pgwarden", "targets, in the order each round runs them; relay-go, relay-epoll, relay-coro and relay-uring are bench/floorrelay, a byte relay doing nothing else: the floor of a Go proxy's CPU in each I/O model (relay-coro, pgwarden's, by default; the others on request)")
	parts := fs.String("parts", "select,pinned,shared,dashboard,tickets,scale,pool,fairness,bigstmt,gobench", "which benchmarks to run (pinned: the select workload on the proxies with pgbench and the proxy on one CPU, PostgreSQL on another)")
	shared := fs.String("shared-protocols", "simple,prepared", "pgbench -M protocols for the shared-table workload (8 clients)")
	fs.IntVar(&o.Scale, "scale", 5, "pgbench -i scale factor (100,000 accounts each)")
	fs.StringVar(&o.Pgwarden, "pgwarden", "bin/pgwarden", "pgwarden binary (relative to the module root)")
	fs.IntVar(&o.MaxConnections, "max-connections", 1200, "PostgreSQL max_connections of the bench cluster")
	conns := fs.String("conns", "100,1000,10000", "idle connection counts for the memory test (the open-file limit is raised to its hard limit; each count needs about as many descriptors in the bench and in the proxy)")
	fs.IntVar(&o.BigStmtBytes, "bigstmt-bytes", 0, "statement size of the bigstmt part (0: proxy.max_message_bytes, 16 MiB)")
	bigConc := fs.String("bigstmt-concurrency", "1,4,16", "statements sent at once in the bigstmt part")
	fs.DurationVar(&o.BigStmtRewriteTimeout, "bigstmt-rewrite-timeout", time.Minute, "proxy.rewrite_timeout in the bigstmt part (0: pgwarden's default, 10s)")
	bigKinds := fs.String("bigstmt-kinds", "in,string", "statements of the bigstmt part: in (an IN list of integers), string (one literal)")
	fs.IntVar(&o.BenchCount, "bench-count", 5, "go test -count for the microbenchmarks")
	fs.StringVar(&o.Benchtime, "benchtime", "100ms", "go test -benchtime for the microbenchmarks")
	fs.IntVar(&o.TicketWorkers, "ticket-workers", 4, "concurrent workers for the ticket service")
	fs.IntVar(&o.PoolClients, "pool-clients", 2000, "client connections of the pool part, each its own session")
	fs.IntVar(&o.PoolSize, "pool-size", 20, "warehouse connections of the pool and fairness parts' transaction pool")
	fs.DurationVar(&o.FairnessDuration, "fairness-duration", 20*time.Second, "each phase (unloaded, loaded) of each pool scheduling in the fairness part")
	fs.BoolVar(&o.Keep, "keep", false, "keep the scratch directory (configs, logs)")
	fs.BoolVar(&o.NoWarmup, "no-warmup", false, "skip the warm-up pass before the first round")
	fs.BoolVar(&o.Hold, "hold", false, "measure nothing: start the targets, print a pgbench command for each, and keep them running until interrupted (for profiling)")
	fs.StringVar(&o.Render, "render", "", "measure nothing: redraw RESULTS.md and the chart from a results.json of an earlier run")
	if err := fs.Parse(args); err != nil {
		return nil, "", err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.Quick {
		quick := map[string]func(){
			"duration":          func() { o.Duration = time.Second },
			"rounds":            func() { o.Rounds = 1 },
			"scale":             func() { o.Scale = 1 },
			"conns":             func() { *conns = "100" },
			"pool-clients":      func() { o.PoolClients = 200 },
			"fairness-duration": func() { o.FairnessDuration = 6 * time.Second },
			"bigstmt-bytes":     func() { o.BigStmtBytes = 1 << 20 },
			"no-warmup":         func() { o.NoWarmup = true },
			"bench-count":       func() { o.BenchCount = 1 },
			"benchtime":         func() { o.Benchtime = "20ms" },
			"protocols":         func() { *protocols = "simple,prepared" },
			// A smoke run never overwrites the tracked bench/RESULTS.md and chart.
			"out": func() { o.Out = quickOut },
		}
		for name, f := range quick {
			if !set[name] {
				f()
			}
		}
	}
	var err error
	if o.Clients, err = intList(*clients); err != nil {
		return nil, "", fmt.Errorf("-clients: %w", err)
	}
	if o.Conns, err = intList(*conns); err != nil {
		return nil, "", fmt.Errorf("-conns: %w", err)
	}
	if o.BigStmtConcurrency, err = intList(*bigConc); err != nil {
		return nil, "", fmt.Errorf("-bigstmt-concurrency: %w", err)
	}
	o.BigStmtKinds = strList(*bigKinds)
	for _, k := range o.BigStmtKinds {
		if k != "in" && k != "string" {
			return nil, "", fmt.Errorf("-bigstmt-kinds: unknown kind %q", k)
		}
	}
	o.Protocols = strList(*protocols)
	o.DashProtocols = strList(*dash)
	o.SharedProtocols = strList(*shared)
	o.Targets = strList(*targets)
	o.Parts = map[string]bool{}
	for _, p := range strList(*parts) {
		o.Parts[p] = true
	}
	for _, p := range append(append(append([]string{}, o.Protocols...), o.DashProtocols...), o.SharedProtocols...) {
		switch p {
		case "simple", "extended", "prepared":
		default:
			return nil, "", fmt.Errorf("unknown protocol %q (want simple, extended or prepared)", p)
		}
	}
	for _, t := range o.Targets {
		switch t {
		case "direct", "pgbouncer", "rls", "pgwarden", "relay-go", "relay-epoll", "relay-coro", "relay-uring":
		default:
			return nil, "", fmt.Errorf("unknown target %q (want direct, pgbouncer, rls, pgwarden, relay-go, relay-epoll, relay-coro or relay-uring)", t)
		}
	}
	if o.PoolClients < 2 || o.PoolSize < 1 {
		return nil, "", errors.New("-pool-clients must be at least 2 and -pool-size at least 1")
	}
	if o.Rounds < 1 || o.Duration < time.Second || o.Scale < 1 {
		return nil, "", errors.New("-rounds and -scale must be at least 1 and -duration at least 1s")
	}
	cmd := "go run ./bench"
	if len(args) > 0 {
		cmd += " " + strings.Join(args, " ")
	} else {
		cmd = "make bench"
	}
	return o, cmd, nil
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func strList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// moduleRoot walks up from the working directory to the directory with go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found: run the bench from inside the pgwarden module")
		}
		dir = parent
	}
}

func run(args []string, stdout, log io.Writer) error {
	o, command, err := parseFlags(args, log)
	if err != nil {
		return err
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(root, p)
	}
	outDir := abs(o.Out)
	if err := os.MkdirAll(filepath.Join(outDir, "out"), 0o755); err != nil {
		return err
	}
	if o.Render != "" {
		return render(abs(o.Render), outDir, stdout, log)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	rep := &report{Command: command, Started: time.Now()}
	rep.Settings = []string{
		fmt.Sprintf("duration %s per run", o.Duration), fmt.Sprintf("%d rounds", o.Rounds),
		fmt.Sprintf("pgbench scale %d (%d accounts)", o.Scale, 100000*o.Scale),
		fmt.Sprintf("max_connections %d", o.MaxConnections),
		fmt.Sprintf("go test -count %d -benchtime %s", o.BenchCount, o.Benchtime),
	}
	if !o.Quick {
		rep.Settings = append(rep.Settings, "BenchmarkConstants' sizes of 10^5 and 10^6 constants: -count 1")
	}
	if o.Quick {
		rep.Settings = append([]string{"**-quick (smoke run: few samples, not for quoting)**"}, rep.Settings...)
	}
	if lim, err := raiseNoFile(); err != nil {
		rep.Notes = append(rep.Notes, "could not raise RLIMIT_NOFILE: "+err.Error())
	} else {
		if len(o.Conns) > 0 && uint64(o.Conns[len(o.Conns)-1])+100 > lim {
			rep.Notes = append(rep.Notes, fmt.Sprintf("RLIMIT_NOFILE hard limit is %d, which caps the idle-connection test", lim))
		}
		if o.Parts["pool"] && uint64(o.PoolClients)+100 > lim {
			rep.Notes = append(rep.Notes, fmt.Sprintf("RLIMIT_NOFILE hard limit is %d, which caps the pool part's clients", lim))
		}
	}

	work, err := os.MkdirTemp("", "pgwarden-bench-")
	if err != nil {
		return err
	}
	os.Chmod(work, 0o755)
	if o.Keep {
		fmt.Fprintf(log, "scratch directory: %s\n", work)
	} else {
		defer os.RemoveAll(work)
	}

	e2e := o.Parts["select"] || o.Parts["pinned"] || o.Parts["shared"] || o.Parts["dashboard"]
	needCluster := e2e || o.Parts["tickets"] || o.Parts["scale"] || o.Parts["pool"] || o.Parts["fairness"] || o.Parts["bigstmt"]
	var (
		c          *cluster
		bouncerBin string
		bouncerVer string
	)
	if needCluster {
		fmt.Fprintf(log, "starting PostgreSQL (max_connections %d) and loading pgbench scale %d and the demo schema …\n", o.MaxConnections, o.Scale)
		c, err = startCluster(ctx, work, o.MaxConnections, o.Scale)
		if err != nil {
			return err
		}
		defer c.stop()
		if wants(o.Targets, "pgbouncer") || o.Parts["scale"] {
			if bouncerBin, err = findPgbouncer(ctx, log); err != nil {
				rep.Notes = append(rep.Notes, "PgBouncer: "+err.Error())
			} else {
				bouncerVer = pgbouncerVersion(bouncerBin)
			}
		}
	}
	pgBinDir, pgbenchBin := "", ""
	if c != nil {
		pgBinDir, pgbenchBin = c.binDir, c.pgbench
	}
	rep.Machine = describeMachine(pgBinDir, pgbenchBin, bouncerVer)

	// pgwarden: the binary `make build` produced.
	var keys *wardenKeys
	wardenBin := abs(o.Pgwarden)
	wardenOK := false
	if needCluster && (wants(o.Targets, "pgwarden") || o.Parts["tickets"] || o.Parts["scale"] || o.Parts["pool"] || o.Parts["fairness"] || o.Parts["bigstmt"]) {
		if _, err := os.Stat(wardenBin); err != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("pgwarden: %s not found (run `make build` first); pgwarden target, ticket service and its memory test skipped", o.Pgwarden))
		} else if keys, err = makeWardenKeys(ctx, wardenBin, work); err != nil {
			rep.Notes = append(rep.Notes, "pgwarden: "+err.Error())
		} else {
			wardenOK = true
		}
	}

	if e2e {
		if err := runEndToEnd(ctx, o, rep, c, work, bouncerBin, bouncerVer, wardenOK, wardenBin, keys, log); err != nil {
			return err
		}
	}
	if o.Parts["tickets"] && wardenOK && ctx.Err() == nil {
		runTickets(ctx, o, rep, c, work, wardenBin, keys, log)
	}
	if o.Parts["scale"] && ctx.Err() == nil {
		runScale(ctx, o, rep, c, work, bouncerBin, bouncerVer, wardenOK, wardenBin, keys, log)
	}
	if o.Parts["pool"] && wardenOK && ctx.Err() == nil {
		runPool(ctx, o, rep, c, work, wardenBin, keys, log)
	}
	if o.Parts["fairness"] && wardenOK && ctx.Err() == nil {
		runFairness(ctx, o, rep, c, work, wardenBin, keys, log)
	}
	if o.Parts["bigstmt"] && wardenOK && ctx.Err() == nil {
		runBigStmt(ctx, o, rep, c, work, wardenBin, keys, log)
	}
	if c != nil {
		c.stop() // quiet the machine for the microbenchmarks
	}
	if o.Parts["gobench"] && ctx.Err() == nil {
		fmt.Fprintln(log, "running the Go microbenchmarks …")
		bs, err := runGoBench(ctx, goBenchOptions{Root: root, Runs: goBenchRuns(o.BenchCount, o.Benchtime, o.Quick),
			RawOut: filepath.Join(outDir, "out", "gobench.txt"), Log: log})
		if err != nil {
			rep.Notes = append(rep.Notes, "go test -bench: "+oneLine(err.Error(), 300))
		}
		rep.GoBench = bs
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	rep.Elapsed = time.Since(rep.Started)
	if err := writeOutputs(rep, outDir, stdout, log); err != nil {
		return err
	}
	// A pool part that saw a row of another tenant, an error or too many
	// warehouse connections fails the run, after the report is written.
	return poolFailure(rep.Pool)
}

// holdCommand prints a pgbench command line for workload w on target t.
func holdCommand(log io.Writer, c *cluster, t *target, label string, w *workload, tenant, script string) {
	ep, _ := t.Endpoint(w, "simple", tenant)
	env := append([]string{"PGPASSWORD=" + ep.Password, "PGSSLMODE=disable"}, ep.Env...)
	for i, e := range env {
		name, val, _ := strings.Cut(e, "=")
		env[i] = name + "='" + val + "'"
	}
	fmt.Fprintf(log, "%s:\n  %s %s -n -h 127.0.0.1 -p %d -U %s -M simple -c 1 -T 10 -f %s %s\n",
		label, strings.Join(env, " "), c.pgbench, ep.Port, ep.User, script, ep.DB)
}

// hold prints how to run the select workload (and the dashboard's, for its
// first tenant) against each target by hand and waits for an interrupt; the
// targets stay up meanwhile.
func hold(ctx context.Context, c *cluster, targets []*target, path string, workloads []*workload, wd *warden, log io.Writer) error {
	sel := &workload{Name: "select", DB: dbBench, Warehouse: whBench}
	for _, t := range targets {
		holdCommand(log, c, t, t.Name, sel, benchTenant, path)
	}
	for _, w := range workloads {
		if w.Name != "dashboard" {
			continue
		}
		for _, t := range targets {
			if script, err := w.Script(t, w.Tenants[0]); err == nil {
				holdCommand(log, c, t, t.Name+" dashboard", w, w.Tenants[0], script)
			}
		}
	}
	if wd != nil {
		fmt.Fprintf(log, "pgwarden profiles: go tool pprof http://127.0.0.1:%d/debug/pprof/profile?seconds=10\n", wd.MetricsPort)
	}
	fmt.Fprintln(log, "holding; interrupt to stop")
	<-ctx.Done()
	return nil
}

func wants(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func runEndToEnd(ctx context.Context, o *options, rep *report, c *cluster, work, bouncerBin, bouncerVer string,
	wardenOK bool, wardenBin string, keys *wardenKeys, log io.Writer) error {
	var targets []*target
	var wardenE2E *warden
	var floorBin string
	var err error
	dbFor := func(w *workload) string { return w.DB }
	for _, name := range o.Targets {
		switch name {
		case "direct":
			targets = append(targets, &target{Name: "direct", Endpoint: func(w *workload, _, _ string) (endpoint, string) {
				return endpoint{Port: c.pg.Port, User: roleApp, Password: c.passwords[roleApp], DB: dbFor(w)}, "none"
			}})
			rep.Targets = append(rep.Targets, targetInfo{"direct", fmt.Sprintf("PostgreSQL itself, as role %s (unfiltered baseline)", roleApp)})
		case "pgbouncer":
			if bouncerBin == "" {
				continue
			}
			users := map[string]string{roleApp: c.passwords[roleApp]}
			dbs := []string{dbBench, dbDemo}
			tx, err := startBouncer(ctx, c.pg, work, bouncerOptions{Bin: bouncerBin, Mode: "transaction", PoolSize: 16, Version: bouncerVer, Databases: dbs, Users: users})
			if err != nil {
				rep.Notes = append(rep.Notes, "PgBouncer: "+err.Error())
				continue
			}
			defer tx.stop()
			// Before 1.21 PgBouncer cannot keep protocol-level prepared statements
			// across transactions, so -M prepared needs session pooling.
			var sess *bouncer
			if !versionAtLeast(bouncerVer, 1, 21) && (wants(o.Protocols, "prepared") || wants(o.DashProtocols, "prepared")) {
				if sess, err = startBouncer(ctx, c.pg, work, bouncerOptions{Bin: bouncerBin, Mode: "session", PoolSize: 100, Version: bouncerVer, Databases: dbs, Users: users}); err != nil {
					rep.Notes = append(rep.Notes, "PgBouncer (session mode): "+err.Error())
				} else {
					defer sess.stop()
				}
			}
			maxClients := 0
			for _, n := range o.Clients {
				maxClients = max(maxClients, n)
			}
			for _, b := range []*bouncer{tx, sess} {
				if b == nil {
					continue
				}
				for _, db := range dbs {
					if err := prewarm(ctx, endpoint{Port: b.Port, User: roleApp, Password: c.passwords[roleApp], DB: db}, min(maxClients, b.PoolSize)); err != nil {
						fmt.Fprintf(log, "pgbouncer (%s) warm-up: %v\n", b.Mode, err)
					}
				}
			}
			targets = append(targets, &target{Name: "pgbouncer", Endpoint: func(w *workload, proto, _ string) (endpoint, string) {
				b := tx
				if proto == "prepared" && sess != nil {
					b = sess
				}
				return endpoint{Port: b.Port, User: roleApp, Password: c.passwords[roleApp], DB: dbFor(w), Pid: b.pid()}, fmt.Sprintf("%s, pool %d", b.Mode, b.PoolSize)
			}})
			what := fmt.Sprintf("PgBouncer %s in transaction pooling mode (default_pool_size 16) in front of PostgreSQL, as role %s (unfiltered baseline)", bouncerVer, roleApp)
			if sess != nil {
				what += fmt.Sprintf("; for -M prepared a second instance in session mode (pool 100), because PgBouncer %s predates prepared-statement support in transaction mode (1.21)", bouncerVer)
			}
			rep.Targets = append(rep.Targets, targetInfo{"pgbouncer", what})
		case "relay-go", "relay-epoll", "relay-coro", "relay-uring":
			if floorBin == "" {
				if floorBin, err = buildFloorRelay(ctx, work); err != nil {
					rep.Notes = append(rep.Notes, oneLine(err.Error(), 400))
					continue
				}
			}
			ft := floorTargets[name]
			fr, err := startFloorRelay(ctx, floorBin, ft.mode, c.pg)
			if err != nil {
				rep.Notes = append(rep.Notes, oneLine(err.Error(), 400))
				continue
			}
			defer fr.stop()
			targets = append(targets, &target{Name: name, Endpoint: func(w *workload, _, _ string) (endpoint, string) {
				return endpoint{Port: fr.Port, User: roleApp, Password: c.passwords[roleApp], DB: dbFor(w), Pid: fr.pid()}, "none (one connection per client)"
			}})
			rep.Targets = append(rep.Targets, targetInfo{name, ft.what})
		case "rls":
			targets = append(targets, &target{Name: "rls", Filters: true, Endpoint: func(w *workload, _, tenant string) (endpoint, string) {
				return endpoint{Port: c.pg.Port, User: roleRLS, Password: c.passwords[roleRLS], DB: dbFor(w),
					Env: []string{"PGOPTIONS=-c app.tenant=" + tenant}}, "none"
			}})
			rep.Targets = append(rep.Targets, targetInfo{"rls", fmt.Sprintf("PostgreSQL row-level security: role %s, `ENABLE ROW LEVEL SECURITY` + `CREATE POLICY … USING (tenant_id = current_setting('app.tenant'))`, connecting with PGOPTIONS='-c app.tenant=…'", roleRLS)})
		case "pgwarden":
			if !wardenOK {
				continue
			}
			// The same pool size as PgBouncer's: both multiplex the clients
			// over 16 warehouse connections.
			wd, err := startWardenWith(ctx, wardenBin, work, keys, c, "e2e", wardenOptions{PoolSize: 16})
			if err != nil {
				rep.Notes = append(rep.Notes, "pgwarden: "+oneLine(err.Error(), 400))
				continue
			}
			defer wd.stop()
			tokens := map[string]string{}
			var tokErr error
			for _, tenant := range append([]string{benchTenant}, demoTenants()...) {
				if tokens[tenant], tokErr = wd.sessionToken(ctx, tenant); tokErr != nil {
					break
				}
			}
			if tokErr != nil {
				rep.Notes = append(rep.Notes, "pgwarden: "+oneLine(tokErr.Error(), 400))
				continue
			}
			wardenE2E = wd
			targets = append(targets, &target{Name: "pgwarden", Filters: true, Endpoint: func(w *workload, _, tenant string) (endpoint, string) {
				return endpoint{Port: wd.ProxyPort, User: "bench", Password: tokens[tenant], DB: w.Warehouse, Pid: wd.pid()}, "transaction, pool 16"
			}})
			rep.Targets = append(rep.Targets, targetInfo{"pgwarden", "`pgwarden serve` (this commit's bin/pgwarden) in transaction pooling mode (pool 16, as PgBouncer's) for every protocol, -M prepared included: session token as password, every statement parsed (or its shape found in the rewrite cache), rewritten with the tenant filter and forwarded over the service account"})
		}
	}
	if len(targets) == 0 {
		return errors.New("no target could be started")
	}
	selectScript, err := c.selectScript()
	if err != nil {
		return err
	}
	var workloads []*workload
	sel := &workload{Name: "select", Tenants: []string{benchTenant}, Clients: o.Clients, Protocols: o.Protocols,
		DB: dbBench, Warehouse: whBench, QueriesPerTx: 1,
		Script: func(*target, string) (string, error) { return selectScript, nil }}
	if o.Parts["select"] {
		workloads = append(workloads, sel)
	}
	if o.Parts["shared"] && len(o.SharedProtocols) > 0 {
		sharedScript, err := c.sharedScript()
		if err != nil {
			return err
		}
		workloads = append(workloads, &workload{Name: "shared", Tenants: []string{benchTenant}, Clients: []int{8}, Protocols: o.SharedProtocols,
			DB: dbBench, Warehouse: whBench, QueriesPerTx: 1,
			Script: func(*target, string) (string, error) { return sharedScript, nil }})
	}
	if o.Parts["dashboard"] && len(o.DashProtocols) > 0 {
		// Write every script before any run: the tenant processes of one case
		// start concurrently and must never see a file being rewritten.
		unfiltered, err := c.dashboardScript("", false)
		if err != nil {
			return err
		}
		handFiltered := map[string]string{}
		for _, tenant := range demoTenants() {
			if handFiltered[tenant], err = c.dashboardScript(tenant, true); err != nil {
				return err
			}
		}
		workloads = append(workloads, &workload{Name: "dashboard", Tenants: demoTenants(), Clients: []int{2}, Protocols: o.DashProtocols,
			DB: dbDemo, Warehouse: whDemo, QueriesPerTx: dashboardQueries,
			Script: func(t *target, tenant string) (string, error) {
				if t.Filters {
					return unfiltered, nil
				}
				return handFiltered[tenant], nil
			}})
	}
	if o.Hold {
		return hold(ctx, c, targets, selectScript, workloads, wardenE2E, log)
	}
	if o.Parts["select"] {
		rep.Plans = explainPlans(ctx, c, wardenE2E)
	}
	fmt.Fprintf(log, "end to end: %d targets, %d rounds of %s runs …\n", len(targets), o.Rounds, o.Duration)
	postmaster, err := c.postmasterPID()
	if err != nil {
		rep.Notes = append(rep.Notes, "PostgreSQL's CPU per transaction not measured: "+err.Error())
	}
	eo := e2eOptions{Pgbench: c.pgbench, Duration: o.Duration, Rounds: o.Rounds, Work: work, Log: log,
		NoWarmup: o.NoWarmup, Postmaster: postmaster}
	if len(workloads) > 0 {
		rep.E2E = runE2E(ctx, eo, targets, workloads)
	}
	if o.Parts["pinned"] && ctx.Err() == nil {
		if rep.Pinned, err = runPinned(ctx, eo, targets, sel); err != nil {
			rep.Notes = append(rep.Notes, "pinned: "+oneLine(err.Error(), 300))
		}
	}
	return nil
}

func demoTenants() []string { return []string{"acme", "globex", "initech"} }

func runTickets(ctx context.Context, o *options, rep *report, c *cluster, work, wardenBin string, keys *wardenKeys, log io.Writer) {
	wd, err := startWarden(ctx, wardenBin, work, keys, c, "tickets")
	if err != nil {
		rep.Notes = append(rep.Notes, "ticket service: "+oneLine(err.Error(), 400))
		return
	}
	defer wd.stop()
	tc := newTicketClient(wd.HTTPPort, wd.APIKey, o.TicketWorkers)
	// One short pass to open connections and warm the store's statements.
	if r := runTicketRound(ctx, tc, o.TicketWorkers, time.Second); r.Pairs == 0 {
		rep.Notes = append(rep.Notes, "ticket service: no ticket could be minted and exchanged: "+oneLine(r.FirstErr, 300))
		return
	}
	rep.TicketW = o.TicketWorkers
	for round := 1; round <= o.Rounds && ctx.Err() == nil; round++ {
		r := runTicketRound(ctx, tc, o.TicketWorkers, o.Duration)
		fmt.Fprintf(log, "tickets round %d: %.0f mint+exchange/s (mint p99 %.2f ms, exchange p99 %.2f ms, %d errors)\n",
			round, r.PairsPerS, r.MintMs.P99Ms, r.ExchangeMs.P99Ms, r.Errors)
		rep.Tickets = append(rep.Tickets, r)
	}
}

func runScale(ctx context.Context, o *options, rep *report, c *cluster, work, bouncerBin, bouncerVer string,
	wardenOK bool, wardenBin string, keys *wardenKeys, log io.Writer) {
	counts := o.Conns
	rep.ScaleNote = fmt.Sprintf("pgwarden runs in transaction pooling mode (its default) with a pool of %d warehouse connections, "+
		"and PgBouncer in transaction mode with a pool of 16: neither needs a warehouse connection for an idle client, so "+
		"the count is bounded by the proxy's own client cap (pgwarden's proxy.max_client_conns is %d here) and the "+
		"open-file limit, not by the bench cluster's max_connections (%d). All clients share one session of tenant %s; "+
		"the pool part gives each client its own session.", poolScaleSize, scaleMaxClients(counts), o.MaxConnections, benchTenant)
	if wardenOK {
		wd, err := startWardenWith(ctx, wardenBin, work, keys, c, "scale",
			wardenOptions{PoolSize: poolScaleSize, MaxClientConns: scaleMaxClients(counts)})
		if err != nil {
			rep.Notes = append(rep.Notes, "memory test (pgwarden): "+oneLine(err.Error(), 400))
		} else {
			tok, err := wd.sessionToken(ctx, benchTenant)
			if err != nil {
				rep.Notes = append(rep.Notes, "memory test (pgwarden): "+oneLine(err.Error(), 400))
			} else {
				rep.Scale = append(rep.Scale, measureScale(ctx, log, "pgwarden", wd.pid(),
					endpoint{Port: wd.ProxyPort, User: "bench", Password: tok, DB: whBench}, counts)...)
			}
			wd.stop()
		}
	}
	if bouncerBin != "" {
		b, err := startBouncer(ctx, c.pg, work, bouncerOptions{Bin: bouncerBin, Mode: "transaction", PoolSize: 16, Version: bouncerVer,
			Databases: []string{dbBench}, Users: map[string]string{roleApp: c.passwords[roleApp]}})
		if err != nil {
			rep.Notes = append(rep.Notes, "memory test (PgBouncer): "+oneLine(err.Error(), 400))
		} else {
			rep.Scale = append(rep.Scale, measureScale(ctx, log, "pgbouncer", b.pid(),
				endpoint{Port: b.Port, User: roleApp, Password: c.passwords[roleApp], DB: dbBench}, counts)...)
			b.stop()
		}
	}
}

// poolScaleSize is the pgwarden pool of the memory test: the default size,
// spelled out so that the report says what ran.
const poolScaleSize = 20

// scaleMaxClients is pgwarden's client cap for the memory test: room for the
// largest count.
func scaleMaxClients(counts []int) int {
	n := 10000
	for _, c := range counts {
		n = max(n, c+100)
	}
	return n
}

func writeOutputs(rep *report, outDir string, stdout, log io.Writer) error {
	if rep.E2E != nil {
		img := drawBarChart("pgwarden bench: throughput per target and protocol (higher is better; medians over rounds)",
			rep.E2E.Targets, chartPanels(rep.E2E))
		f, err := os.Create(filepath.Join(outDir, "throughput.png"))
		if err != nil {
			return err
		}
		if err := writePNG(f, img); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		rep.ChartFile = "throughput.png"
	}
	var md strings.Builder
	rep.writeMarkdown(&md)
	if err := os.WriteFile(filepath.Join(outDir, "RESULTS.md"), []byte(md.String()), 0o644); err != nil {
		return err
	}
	// Everything measured, so that -render can redraw the report without
	// measuring again.
	raw, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("results.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(outDir, "out", "results.json"), raw, 0o644); err != nil {
		return err
	}
	fmt.Fprint(stdout, md.String())
	fmt.Fprintf(log, "wrote %s and %s\n", filepath.Join(outDir, "RESULTS.md"), filepath.Join(outDir, "throughput.png"))
	return nil
}

// render redraws the report of an earlier run from its results.json.
func render(path, outDir string, stdout, log io.Writer) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return writeOutputs(&rep, outDir, stdout, log)
}
