package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The pool part is issue #5's proof: N client connections, each a distinct
// session minted through the ticket service, spread over the four tenants of
// pgbench_accounts, served over a transaction pool of a few warehouse
// connections, with every client checking that it sees only its own tenant.

// poolCheckSQL reads poolRange consecutive accounts from the first %d. Any
// poolRange consecutive aids hold exactly poolRange/4 accounts of each tenant
// (tenant_id is 't' || aid % 4 + 1), so a client expects exactly that many
// rows, all of its own tenant; $1 is the client's tenant, so the second column
// counts the rows of any other tenant that reached it. The range is literal:
// pgwarden copies `column op constant` into its tenant subquery, where the
// (tenant_id, aid) index serves it, but not a parameter range, which would
// scan the tenant's every account.
const (
	poolCheckSQL = "SELECT count(*), count(*) FILTER (WHERE tenant_id <> $1), min(tenant_id), max(tenant_id) " +
		"FROM pgbench_accounts WHERE aid >= %d AND aid < %d"
	poolRange   = 100
	poolTenants = 4
)

// poolResult is everything the pool part measured.
type poolResult struct {
	Clients   int // wanted
	Connected int
	Sessions  int // distinct session ids the ticket service returned
	Tenants   int
	PoolSize  int
	MintS     float64 // minting and exchanging every session, seconds
	ConnectS  float64 // opening every connection at once, seconds

	BaseKB         int64 // proxy RSS with one client connected (and its check run)
	ConnectedKB    int64 // with all clients connected, before their first query
	IdleKB         int64 // with all clients idle after their check
	PerConnectedKB float64
	PerIdleKB      float64
	BaseLiveKB     int64 // live heap and goroutine stacks after a forced GC (liveKB), one client
	IdleLiveKB     int64 // the same with all clients idle after their check
	PerIdleLiveKB  float64
	IdleWarehouse  int // service-role backends in pg_stat_activity with all clients idle

	Phases []poolPhase // the isolation check, then the rounds
	Failed string      // why the part failed; "" when it passed
	Err    string      // a setup error that stopped the part
}

// poolPhase is one pass of all clients querying concurrently.
type poolPhase struct {
	Name        string
	Queries     int
	Errors      int
	WrongRows   int64 // rows of another tenant seen by a client
	FirstErr    string
	Elapsed     time.Duration
	QPS         float64
	Lat         latencyStats
	PeakPG      int // service-role backends in pg_stat_activity, max over samples
	PeakInUse   int // pgwarden_proxy_pool_connections{state="in_use"}, max over samples
	PeakOpen    int // in_use + idle, max over samples
	PeakWaiting int // pgwarden_proxy_pool_waiting_clients, max over samples
	Samples     int
	AcquireN    int     // pool acquisitions in the phase (/metrics histogram)
	AcquireMs   float64 // their mean wait
	AcquireP99  float64 // upper bound of the histogram bucket holding the 99th percentile, ms
	// AcquireP99Above: the 99th percentile lies above AcquireP99, the
	// largest finite bucket bound.
	AcquireP99Above bool
}

// poolClient is one client connection with its own session.
type poolClient struct {
	id        int
	tenant    string
	token     string
	sessionID string
	conn      *pgconn.PgConn
}

func runPool(ctx context.Context, o *options, rep *report, c *cluster, work, wardenBin string, keys *wardenKeys, log io.Writer) {
	res := &poolResult{Clients: o.PoolClients, Tenants: poolTenants, PoolSize: o.PoolSize}
	rep.Pool = res
	if err := measurePool(ctx, o, res, c, work, wardenBin, keys, log); err != nil {
		res.Err = oneLine(err.Error(), 400)
		res.Failed = res.Err
	}
	if res.Failed == "" {
		res.Failed = res.verdict()
	}
	if res.Failed != "" {
		fmt.Fprintf(log, "pool: FAILED: %s\n", res.Failed)
	}
}

func measurePool(ctx context.Context, o *options, res *poolResult, c *cluster, work, wardenBin string, keys *wardenKeys, log io.Writer) error {
	n := o.PoolClients
	wd, err := startWardenWith(ctx, wardenBin, work, keys, c, "pool",
		wardenOptions{PoolSize: o.PoolSize, MaxClientConns: max(10000, n+100)})
	if err != nil {
		return err
	}
	defer wd.stop()

	// Sessions, minted and exchanged over HTTP as a host application would.
	fmt.Fprintf(log, "pool: minting %d sessions over %d tenants …\n", n, poolTenants)
	t0 := time.Now()
	clients, err := mintPoolSessions(ctx, newTicketClient(wd.HTTPPort, wd.APIKey, 8), n, 8)
	if err != nil {
		return err
	}
	res.MintS = time.Since(t0).Seconds()
	ids := map[string]bool{}
	for _, cl := range clients {
		ids[cl.sessionID] = true
	}
	res.Sessions = len(ids)

	db, err := pgx.Connect(ctx, c.pg.DSN("postgres"))
	if err != nil {
		return err
	}
	defer db.Close(context.Background())
	cfg, err := pgconn.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d user=bench dbname=%s sslmode=disable connect_timeout=60", wd.ProxyPort, whBench))
	if err != nil {
		return err
	}
	defer func() {
		for _, cl := range clients {
			if cl.conn != nil {
				cctx, cancel := context.WithTimeout(context.Background(), time.Second)
				cl.conn.Close(cctx)
				cancel()
			}
		}
	}()
	accounts := 100000 * c.scale

	// Baseline: one client connected, its first statement run (caches warm).
	if err := clients[0].connect(ctx, cfg); err != nil {
		return fmt.Errorf("first client: %w", err)
	}
	if _, err := clients[0].check(ctx, 1); err != nil {
		return fmt.Errorf("first client's check: %w", err)
	}
	settle()
	pid := wd.pid()
	res.BaseKB = rssKB(pid)
	res.BaseLiveKB, _ = liveKB(ctx, wd.MetricsPort)

	// Everyone else connects at once.
	fmt.Fprintf(log, "pool: opening %d connections at once …\n", n-1)
	sampler := startPoolSampler(ctx, db, wd.MetricsPort)
	t0 = time.Now()
	connErrs, firstConnErr := forAll(clients[1:], func(cl *poolClient) error { return cl.connect(ctx, cfg) })
	res.ConnectS = time.Since(t0).Seconds()
	res.Connected = n - connErrs
	if connErrs > 0 {
		sampler.stop()
		return fmt.Errorf("%d of %d connections failed: %s", connErrs, n, serverError(firstConnErr))
	}
	settle()
	res.ConnectedKB = rssKB(pid)

	// Each client proves isolation once, all at the same time.
	before, _ := scrapeMetrics(ctx, wd.MetricsPort)
	check := runPoolPhase(ctx, "check", clients, accounts, 0)
	settle()
	check.addSampler(sampler.stop())
	after, _ := scrapeMetrics(ctx, wd.MetricsPort)
	check.addAcquire(before, after)
	res.Phases = append(res.Phases, check)
	res.IdleKB = rssKB(pid)
	res.IdleLiveKB, _ = liveKB(ctx, wd.MetricsPort)
	if n > 1 {
		res.PerConnectedKB = float64(res.ConnectedKB-res.BaseKB) / float64(n-1)
		res.PerIdleKB = float64(res.IdleKB-res.BaseKB) / float64(n-1)
		if res.BaseLiveKB > 0 && res.IdleLiveKB > 0 {
			res.PerIdleLiveKB = float64(res.IdleLiveKB-res.BaseLiveKB) / float64(n-1)
		}
	}
	if res.IdleWarehouse, err = serviceBackends(ctx, db); err != nil {
		return err
	}
	fmt.Fprintf(log, "pool: %d clients connected in %.1fs; RSS %d kB (base %d kB): %.1f kB per idle client (live heap and stacks %.1f kB); %d warehouse connections; check: %d wrong-tenant rows, %d errors %s\n",
		n, res.ConnectS, res.IdleKB, res.BaseKB, res.PerIdleKB, res.PerIdleLiveKB, res.IdleWarehouse, check.WrongRows, check.Errors, check.FirstErr)

	// Rounds of every client querying as fast as it can.
	for round := 1; round <= o.Rounds && ctx.Err() == nil; round++ {
		before, _ := scrapeMetrics(ctx, wd.MetricsPort)
		sampler := startPoolSampler(ctx, db, wd.MetricsPort)
		p := runPoolPhase(ctx, fmt.Sprintf("round %d", round), clients, accounts, o.Duration)
		p.addSampler(sampler.stop())
		after, _ := scrapeMetrics(ctx, wd.MetricsPort)
		p.addAcquire(before, after)
		fmt.Fprintf(log, "pool round %d: %.0f queries/s, p50 %.1f ms, p99 %.1f ms, peak %d warehouse connections, peak %d waiting, %d wrong-tenant rows, %d errors %s\n",
			round, p.QPS, p.Lat.P50Ms, p.Lat.P99Ms, p.PeakPG, p.PeakWaiting, p.WrongRows, p.Errors, p.FirstErr)
		res.Phases = append(res.Phases, p)
	}
	return ctx.Err()
}

// verdict says why the part failed, "" when every client connected, saw only
// its own tenant's rows, got no error, and the warehouse never saw more
// service-role connections than the pool's size.
func (r *poolResult) verdict() string {
	var why []string
	if r.Connected < r.Clients {
		why = append(why, fmt.Sprintf("%d of %d clients connected", r.Connected, r.Clients))
	}
	if r.Sessions < r.Clients {
		why = append(why, fmt.Sprintf("%d distinct sessions for %d clients", r.Sessions, r.Clients))
	}
	if w := r.wrongRows(); w > 0 {
		why = append(why, fmt.Sprintf("%d rows of another tenant reached a client", w))
	}
	if e := r.errors(); e > 0 {
		why = append(why, fmt.Sprintf("%d errors (first: %s)", e, oneLine(r.firstErr(), 200)))
	}
	if p := r.peakPG(); p > r.PoolSize {
		why = append(why, fmt.Sprintf("the warehouse saw %d service-role connections, more than the pool's %d", p, r.PoolSize))
	}
	if r.IdleWarehouse > r.PoolSize {
		why = append(why, fmt.Sprintf("%d service-role connections with every client idle, more than the pool's %d", r.IdleWarehouse, r.PoolSize))
	}
	return strings.Join(why, "; ")
}

func (r *poolResult) wrongRows() (n int64) {
	for _, p := range r.Phases {
		n += p.WrongRows
	}
	return n
}

func (r *poolResult) errors() (n int) {
	for _, p := range r.Phases {
		n += p.Errors
	}
	return n
}

func (r *poolResult) firstErr() string {
	for _, p := range r.Phases {
		if p.FirstErr != "" {
			return p.FirstErr
		}
	}
	return ""
}

func (r *poolResult) peakPG() (n int) {
	for _, p := range r.Phases {
		n = max(n, p.PeakPG)
	}
	return n
}

// rounds are the phases after the isolation check.
func (r *poolResult) rounds() []poolPhase {
	if len(r.Phases) < 2 {
		return nil
	}
	return r.Phases[1:]
}

// mintPoolSessions mints and exchanges n sessions with workers concurrent
// HTTP clients; client i belongs to tenant t(i%4+1).
func mintPoolSessions(ctx context.Context, tc *ticketClient, n, workers int) ([]*poolClient, error) {
	clients := make([]*poolClient, n)
	for i := range clients {
		clients[i] = &poolClient{id: i, tenant: fmt.Sprintf("t%d", i%poolTenants+1)}
	}
	_, first := forAllN(clients, workers, func(cl *poolClient) error {
		ticket, err := tc.mint(ctx, ticketRequest{Tenant: cl.tenant, ExternalID: fmt.Sprintf("pool-user-%d", cl.id),
			ConnectionRoles: map[string]string{whBench: "querier"}})
		if err != nil {
			return err
		}
		cl.token, cl.sessionID, err = tc.exchange(ctx, ticket)
		if err == nil && cl.sessionID == "" {
			cl.sessionID = cl.token // the token identifies the session just as well
		}
		return err
	})
	if first != "" {
		return nil, fmt.Errorf("minting sessions: %s", first)
	}
	return clients, nil
}

func (cl *poolClient) connect(ctx context.Context, cfg *pgconn.Config) error {
	c := cfg.Copy()
	c.Password = cl.token
	conn, err := pgconn.ConnectConfig(ctx, c)
	if err != nil {
		return err
	}
	cl.conn = conn
	return nil
}

// check runs poolCheckSQL over the accounts from lo and returns how many rows
// of another tenant it saw; a wrong row count is an error.
func (cl *poolClient) check(ctx context.Context, lo int) (int64, error) {
	sql := fmt.Sprintf(poolCheckSQL, lo, lo+poolRange)
	res := cl.conn.ExecParams(ctx, sql, [][]byte{[]byte(cl.tenant)}, nil, nil, nil).Read()
	if res.Err != nil {
		return 0, res.Err
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 4 {
		return 0, fmt.Errorf("check returned %d rows, want one of 4 columns", len(res.Rows))
	}
	row := res.Rows[0]
	count, err1 := strconv.ParseInt(string(row[0]), 10, 64)
	wrong, err2 := strconv.ParseInt(string(row[1]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("check returned %q, %q: not counts", row[0], row[1])
	}
	if wrong == 0 && (string(row[2]) != cl.tenant || string(row[3]) != cl.tenant) {
		return 1, fmt.Errorf("tenant %s saw tenant_id from %q to %q", cl.tenant, row[2], row[3])
	}
	if want := int64(poolRange / poolTenants); count != want {
		return wrong, fmt.Errorf("tenant %s saw %d accounts among aid %d..%d, want %d", cl.tenant, count, lo, lo+poolRange-1, want)
	}
	return wrong, nil
}

// runPoolPhase has every client run its check concurrently: once when d is 0,
// else back to back until d has passed. Client i reads a different range on
// each query, so that the clients spread over the table.
func runPoolPhase(ctx context.Context, name string, clients []*poolClient, accounts int, d time.Duration) poolPhase {
	p := poolPhase{Name: name}
	var mu sync.Mutex
	var lats []float64
	start := time.Now()
	deadline := start.Add(d)
	spans := (accounts - poolRange) / poolRange
	var wg sync.WaitGroup
	for _, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var my []float64
			var errs int
			var wrong int64
			var firstErr string
			for k := 0; ctx.Err() == nil; k++ {
				lo := 1 + ((cl.id+k*len(clients))%spans)*poolRange
				t := time.Now()
				w, err := cl.check(ctx, lo)
				my = append(my, float64(time.Since(t))/float64(time.Millisecond))
				wrong += w
				if err != nil {
					errs++
					if firstErr == "" {
						firstErr = err.Error()
					}
					if cl.conn.IsClosed() {
						break
					}
				}
				if d == 0 || !time.Now().Before(deadline) {
					break
				}
			}
			mu.Lock()
			lats = append(lats, my...)
			p.Errors += errs
			p.WrongRows += wrong
			if p.FirstErr == "" {
				p.FirstErr = firstErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	p.Elapsed = time.Since(start)
	p.Queries = len(lats)
	p.QPS = float64(p.Queries) / p.Elapsed.Seconds()
	p.Lat = summarizeLatencies(lats)
	return p
}

// forAll runs f for every client concurrently and returns the number of
// failures and the first error's text.
func forAll(clients []*poolClient, f func(*poolClient) error) (int, string) {
	return forAllN(clients, len(clients), f)
}

// forAllN runs f for every client with at most workers at a time.
func forAllN(clients []*poolClient, workers int, f func(*poolClient) error) (int, string) {
	var mu sync.Mutex
	var fails int
	var first string
	sem := make(chan struct{}, max(1, workers))
	var wg sync.WaitGroup
	for _, cl := range clients {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(cl); err != nil {
				mu.Lock()
				fails++
				if first == "" {
					first = err.Error()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return fails, first
}

// serviceBackends counts the warehouse connections of pgwarden's service
// account.
func serviceBackends(ctx context.Context, db *pgx.Conn) (int, error) {
	var n int
	err := db.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", roleSvc).Scan(&n)
	return n, err
}

// poolPeaks are the largest values a poolSampler saw.
type poolPeaks struct {
	PG, InUse, Open, Waiting, Samples int
}

// poolSampler polls pg_stat_activity and the proxy's pool gauges until
// stopped. It owns db meanwhile.
type poolSampler struct {
	quit chan struct{}
	done chan poolPeaks
}

const poolSampleEvery = 50 * time.Millisecond

func startPoolSampler(ctx context.Context, db *pgx.Conn, metricsPort int) *poolSampler {
	s := &poolSampler{quit: make(chan struct{}), done: make(chan poolPeaks, 1)}
	go func() {
		var pk poolPeaks
		tick := time.NewTicker(poolSampleEvery)
		defer tick.Stop()
		for {
			// The samples run under ctx, not a context stop cancels: pgx closes
			// a connection whose query is cancelled, and db outlives the sampler.
			if n, err := serviceBackends(ctx, db); err == nil {
				pk.PG = max(pk.PG, n)
				pk.Samples++
			}
			if m, err := scrapeMetrics(ctx, metricsPort); err == nil {
				inUse := int(m.value("pgwarden_proxy_pool_connections", "warehouse", whBench, "state", "in_use"))
				idle := int(m.value("pgwarden_proxy_pool_connections", "warehouse", whBench, "state", "idle"))
				pk.InUse = max(pk.InUse, inUse)
				pk.Open = max(pk.Open, inUse+idle)
				pk.Waiting = max(pk.Waiting, int(m.value("pgwarden_proxy_pool_waiting_clients", "warehouse", whBench)))
			}
			select {
			case <-s.quit:
				s.done <- pk
				return
			case <-ctx.Done():
				s.done <- pk
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *poolSampler) stop() poolPeaks {
	close(s.quit)
	return <-s.done
}

func (p *poolPhase) addSampler(pk poolPeaks) {
	p.PeakPG, p.PeakInUse, p.PeakOpen, p.PeakWaiting, p.Samples = pk.PG, pk.InUse, pk.Open, pk.Waiting, pk.Samples
}

// addAcquire records the pool's acquire-wait histogram between two scrapes.
func (p *poolPhase) addAcquire(before, after promSamples) {
	if before == nil || after == nil {
		return
	}
	const name = "pgwarden_proxy_pool_acquire_seconds"
	n := after.value(name+"_count", "warehouse", whBench) - before.value(name+"_count", "warehouse", whBench)
	sum := after.value(name+"_sum", "warehouse", whBench) - before.value(name+"_sum", "warehouse", whBench)
	if n <= 0 {
		return
	}
	p.AcquireN = int(n)
	p.AcquireMs = sum / n * 1000
	type bucket struct{ le, n float64 }
	var bs []bucket
	for _, s := range after {
		if s.Name != name+"_bucket" || s.Labels["warehouse"] != whBench {
			continue
		}
		le, err := strconv.ParseFloat(s.Labels["le"], 64)
		if err != nil {
			continue
		}
		bs = append(bs, bucket{le, s.Value - before.value(name+"_bucket", "warehouse", whBench, "le", s.Labels["le"])})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	for _, b := range bs {
		if math.IsInf(b.le, 1) {
			p.AcquireP99Above = true // JSON has no infinity: keep the last finite bound
			return
		}
		p.AcquireP99 = b.le * 1000
		if b.n >= 0.99*n {
			return
		}
	}
}

// promSample is one line of Prometheus's text exposition format.
type promSample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

type promSamples []promSample

// value returns the sample named name whose labels include the given
// name/value pairs, 0 when there is none (as an unset gauge reads).
func (ss promSamples) value(name string, labels ...string) float64 {
next:
	for _, s := range ss {
		if s.Name != name {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if s.Labels[labels[i]] != labels[i+1] {
				continue next
			}
		}
		return s.Value
	}
	return 0
}

// liveKB is the proxy's live heap plus goroutine stacks in kB right after
// collections it is made to run (/debug/pprof/heap?gc=1), from its Go
// metrics: what its connections hold, where RSS also counts memory the
// runtime freed but has not yet handed back to the kernel.
func liveKB(ctx context.Context, port int) (int64, error) {
	// Four times: buffers back in a sync.Pool survive one collection, and
	// each halves at most a goroutine stack a statement grew (to 16 KiB,
	// say); a Go process collects at least every two minutes, so this is
	// where an idle session settles.
	for range 4 {
		body, err := getProxy(ctx, port, "/debug/pprof/heap?gc=1")
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, body)
		body.Close()
	}
	m, err := scrapeMetrics(ctx, port)
	if err != nil {
		return 0, err
	}
	return int64(m.value("go_memstats_heap_alloc_bytes")+m.value("go_memstats_stack_inuse_bytes")) / 1024, nil
}

func scrapeMetrics(ctx context.Context, port int) (promSamples, error) {
	body, err := getProxy(ctx, port, "/metrics")
	if err != nil {
		return nil, err
	}
	defer body.Close()
	return parseMetrics(body)
}

// getProxy GETs path from the proxy's metrics listener: the body of a 200
// answer, an error for any other.
func getProxy(ctx context.Context, port int, path string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return resp.Body, nil
}

// parseMetrics reads the text exposition format, enough of it for the
// proxy's own metrics: no escaped quotes or commas inside label values.
func parseMetrics(r io.Reader) (promSamples, error) {
	var out promSamples
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s := promSample{Labels: map[string]string{}}
		rest := line
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				return nil, fmt.Errorf("metrics line %q: unbalanced braces", line)
			}
			s.Name, rest = line[:i], line[j+1:]
			for _, pair := range strings.Split(line[i+1:j], ",") {
				k, v, ok := strings.Cut(pair, "=")
				if !ok {
					continue
				}
				s.Labels[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
			}
		} else {
			name, after, _ := strings.Cut(line, " ")
			s.Name, rest = name, after
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return nil, fmt.Errorf("metrics line %q: no value", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		s.Value = v
		out = append(out, s)
	}
	return out, sc.Err()
}

// writePool writes the pool part's section of RESULTS.md.
func writePool(w io.Writer, r *poolResult) {
	fmt.Fprintf(w, "## Transaction pooling: %d clients over a pool of %d\n\n", r.Clients, r.PoolSize)
	fmt.Fprintf(w, "`pgwarden serve` with the bench warehouse's `pool: {mode: transaction, size: %d}`. The bench mints %d sessions\n", r.PoolSize, r.Clients)
	fmt.Fprintf(w, "through the ticket service's HTTP API (POST /v1/tickets, then POST /v1/sessions; tenants t1…t%d in turn), opens\n", r.Tenants)
	fmt.Fprintf(w, "one connection per session, all at once, each with its own session token as password, and has every client run\n")
	fmt.Fprintf(w, "`%s`\n", fmt.Sprintf(poolCheckSQL, 1001, 1001+poolRange))
	fmt.Fprintf(w, "(extended protocol; $1 is the client's own tenant; each query another range) over %d accounts, which hold exactly %d rows of\n", poolRange, poolRange/poolTenants)
	fmt.Fprintf(w, "each tenant: a client must count %d rows, none of another tenant. First once each (check), then in rounds where\n", poolRange/poolTenants)
	fmt.Fprintf(w, "every client repeats it back to back. Warehouse connections are the service role's backends in pg_stat_activity,\n")
	fmt.Fprintf(w, "sampled every %s together with the proxy's pool gauges on /metrics. RSS per idle client = (proxy RSS with every\n", poolSampleEvery)
	fmt.Fprintf(w, "client idle after its check − RSS with one client connected) ÷ (N − 1).\n\n")
	if r.Failed != "" {
		fmt.Fprintf(w, "**FAILED: %s**\n\n", oneLine(r.Failed, 400))
	}
	if r.Err != "" && len(r.Phases) == 0 {
		return
	}
	var qps, p50, p99 []float64
	for _, p := range r.rounds() {
		qps = append(qps, p.QPS)
		p50 = append(p50, p.Lat.P50Ms)
		p99 = append(p99, p.Lat.P99Ms)
	}
	mdTable(w, []string{">clients", ">distinct sessions", ">tenants", ">pool size", ">peak warehouse conns", ">wrong-tenant rows",
		">errors", ">RSS / idle client kB", ">queries/s", ">p50 ms", ">p99 ms"}, [][]string{{
		fmt.Sprint(r.Connected), fmt.Sprint(r.Sessions), fmt.Sprint(r.Tenants), fmt.Sprint(r.PoolSize), fmt.Sprint(r.peakPG()),
		fmt.Sprint(r.wrongRows()), fmt.Sprint(r.errors()), fmtF(r.PerIdleKB, 1), fmtF(median(qps), 0), fmtF(median(p50), 1), fmtF(median(p99), 1)}})
	fmt.Fprintf(w, "\nqueries/s, p50 and p99 are medians over the rounds; latency is the client's, from sending the query to its\n")
	fmt.Fprintf(w, "last result, so it includes the wait for a pooled connection.\n\n")
	fmt.Fprintf(w, "Minting and exchanging the %d sessions took %.1f s; opening the connections at once took %.1f s. Proxy RSS: %d kB\n",
		r.Sessions, r.MintS, r.ConnectS, r.BaseKB)
	fmt.Fprintf(w, "with one client; %d kB with all %d connected before any query (%s kB per client); %d kB with all idle after\n",
		r.ConnectedKB, r.Connected, fmtF(r.PerConnectedKB, 1), r.IdleKB)
	fmt.Fprintf(w, "their check (%s kB per client). With every client idle the service role held %d warehouse connections.\n",
		fmtF(r.PerIdleKB, 1), r.IdleWarehouse)
	if r.PerIdleLiveKB > 0 {
		fmt.Fprintf(w, "RSS keeps the peak of the check, when every client was busy at once. After four forced garbage collections\n")
		fmt.Fprintf(w, "(/debug/pprof/heap?gc=1), the proxy's live heap and goroutine stacks were %d kB with one client and %d kB with all\n",
			r.BaseLiveKB, r.IdleLiveKB)
		fmt.Fprintf(w, "idle after their check: %s kB per idle client, each with its own session.\n", fmtF(r.PerIdleLiveKB, 1))
	}
	fmt.Fprintln(w)
	var rows [][]string
	for _, p := range r.Phases {
		errs := fmt.Sprint(p.Errors)
		if p.FirstErr != "" {
			errs += " (" + oneLine(p.FirstErr, 60) + ")"
		}
		acqP99 := "–"
		switch {
		case p.AcquireN > 0 && p.AcquireP99Above:
			acqP99 = "> " + fmtF(p.AcquireP99, 1)
		case p.AcquireN > 0:
			acqP99 = "≤ " + fmtF(p.AcquireP99, 1)
		}
		rows = append(rows, []string{p.Name, fmt.Sprint(p.Queries), fmtF(p.Elapsed.Seconds(), 1), fmtF(p.QPS, 0), fmtF(p.Lat.P50Ms, 1), fmtF(p.Lat.P99Ms, 1),
			fmt.Sprint(p.PeakPG), fmt.Sprint(p.PeakInUse), fmt.Sprint(p.PeakWaiting), fmtF(p.AcquireMs, 2), acqP99, fmt.Sprint(p.WrongRows), errs})
	}
	mdTable(w, []string{"phase", ">queries", ">s", ">queries/s", ">p50 ms", ">p99 ms", ">peak warehouse conns", ">peak in use",
		">peak waiting", ">mean acquire ms", ">acquire p99 ms", ">wrong-tenant rows", "errors"}, rows)
	fmt.Fprintf(w, "\npeak in use and peak waiting are the proxy's pgwarden_proxy_pool_connections{state=\"in_use\"} and\n")
	fmt.Fprintf(w, "pgwarden_proxy_pool_waiting_clients; the acquire figures come from pgwarden_proxy_pool_acquire_seconds over the\n")
	fmt.Fprintf(w, "phase (its p99 is the upper bound of the histogram bucket that holds it).\n\n")
}

// poolFailure is the error the bench exits with when the pool part failed.
func poolFailure(r *poolResult) error {
	if r == nil || r.Failed == "" {
		return nil
	}
	return fmt.Errorf("pool: %s", r.Failed)
}
