package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/pgwarden/pgwarden/config"
)

// Issue #5's proof, in CI: many concurrent client connections, each its own
// session minted through the ticket service's HTTP API, spread over the demo's
// tenants, served over a transaction pool far smaller than the client count.
// Every client must see exactly its own tenant's orders, none of another's,
// and the warehouse must never see more connections of the service account
// than the pool holds. bench's pool part measures the same at 2,000 clients
// with memory and throughput; this test keeps the 2,000 too: 18 to 33 s under
// -race on a shared two-core machine (minting 3-7 s, connecting 4-9 s, the
// 8,000 statements 8-14 s).
func TestTransactionPoolManyClients(t *testing.T) {
	const (
		wantClients = 2000
		poolSize    = 20
		statements  = 4 // per client, alternating the simple and extended protocols
	)
	// The proxy runs in this process, so every client costs two descriptors here.
	clients := wantClients
	if lim := raiseNoFileLimit(t); lim < uint64(2*wantClients+500) {
		clients = int(lim-500) / 2
		if clients < 100 {
			t.Skipf("RLIMIT_NOFILE hard limit %d leaves room for %d clients", lim, clients)
		}
		t.Logf("RLIMIT_NOFILE hard limit %d: %d clients instead of %d", lim, clients, wantClients)
	}
	r := startServeWith(t, zaptest.NewLogger(t, zaptest.Level(zapcore.WarnLevel)), func(cfg *config.File) {
		cfg.Proxy.MaxClientConns = clients + 100
		w := cfg.Warehouses[demoWarehouse]
		// All clients ask at once and the pool serves them in turn: under
		// -race on a loaded machine the last of a burst of 2,000 may wait
		// longer than the default 5 s and get 53300. That is the pool's
		// documented answer to overload, not what this test is about, so
		// the wait is bounded only loosely.
		w.Pool = config.Pool{Mode: "transaction", Size: poolSize, AcquireTimeout: 2 * time.Minute}
		cfg.Warehouses[demoWarehouse] = w
		// Likewise every login checks the store for revocation: the last of
		// 2,000 at once may wait for a store connection longer than the
		// default 5 s store_query_timeout, and the store's SCRAM handshake
		// longer than the 5 s store_connect_timeout, and get 57P03.
		cfg.Auth.StoreQueryTimeout = 2 * time.Minute
		cfg.Auth.StoreConnectTimeout = time.Minute
		cfg.Audit.Path = "" // thousands of JSON lines of SQL would only slow the test down
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// What each tenant must see, read directly as the superuser.
	su, err := pgx.Connect(ctx, r.demo.cluster.DSN("demo"))
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(context.Background())
	want := map[string]int64{}
	rows, _ := su.Query(ctx, "SELECT tenant_id, count(*) FROM orders GROUP BY 1")
	var tenants []string
	for rows.Next() {
		var tenant string
		var n int64
		if err := rows.Scan(&tenant, &n); err != nil {
			t.Fatal(err)
		}
		want[tenant] = n
		tenants = append(tenants, tenant)
	}
	if err := rows.Err(); err != nil || len(tenants) < 3 {
		t.Fatalf("orders by tenant: %v, %v; want the demo's three tenants", tenants, err)
	}
	svcRole := r.svcRole(t)

	start := time.Now()
	sessions := mintSessionsHTTP(t, ctx, "http://"+r.cfg.Auth.Listen, r.apiKey, tenants, clients)
	t.Logf("%d sessions minted and exchanged over HTTP in %s", clients, time.Since(start).Round(time.Millisecond))

	peak := sampleBackends(ctx, t, r.demo.cluster.DSN("demo"), svcRole)
	cfg, err := pgconn.ParseConfig("postgres://someone@" + r.cfg.Proxy.Listen + "/" + demoWarehouse + "?sslmode=disable&connect_timeout=60")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		failures []string
		failed   int
		queries  int
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failed++
		if len(failures) < 10 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	// Every client connects, waits for all the others, then runs its
	// statements: all connections are open at once while they query.
	start = time.Now()
	var connected, done sync.WaitGroup
	connected.Add(len(sessions))
	allIn := make(chan struct{})
	conns := make([]*pgconn.PgConn, len(sessions))
	for i, s := range sessions {
		done.Add(1)
		go func() {
			defer done.Done()
			c := cfg.Copy()
			c.Password = s.token
			conn, err := pgconn.ConnectConfig(ctx, c)
			connected.Done()
			if err != nil {
				fail("client %d (%s): connect: %v", i, s.tenant, err)
				return
			}
			conns[i] = conn
			<-allIn
			for k := 0; k < statements; k++ {
				got, err := poolCheck(ctx, conn, s.tenant, k%2 == 1)
				if err != nil {
					fail("client %d (%s), statement %d: %v", i, s.tenant, k, err)
					return
				}
				if got != [2]int64{want[s.tenant], 0} {
					fail("client %d (%s), statement %d: %d orders of which %d of another tenant, want %d and 0",
						i, s.tenant, k, got[0], got[1], want[s.tenant])
				}
				mu.Lock()
				queries++
				mu.Unlock()
			}
		}()
	}
	connected.Wait()
	t.Logf("%d connections opened in %s", len(sessions), time.Since(start).Round(time.Millisecond))
	start = time.Now()
	close(allIn)
	done.Wait()
	t.Logf("%d statements in %s", queries, time.Since(start).Round(time.Millisecond))
	for _, f := range failures {
		t.Error(f)
	}
	if failed > len(failures) {
		t.Errorf("… and %d more failures", failed-len(failures))
	}
	if queries != len(sessions)*statements {
		t.Errorf("%d statements succeeded, want %d", queries, len(sessions)*statements)
	}
	// The simple-protocol statements (the tenant as a string constant) ran
	// as prepared statements once their shape was probed, tenant isolation
	// checked above included.
	prepared := metricValue(t, "http://"+r.cfg.Metrics.Listen+"/metrics", "pgwarden_proxy_simple_prepared_total")
	t.Logf("%v of %d simple-protocol statements ran as prepared statements", prepared, len(sessions)*statements/2)
	if prepared < float64(len(sessions)/2) {
		t.Errorf("%v simple-protocol statements ran as prepared statements, want at least %d", prepared, len(sessions)/2)
	}

	// With every client still connected and idle, the pool holds at most its
	// size; at no sample during the run did the warehouse see more.
	idle := countBackends(t, ctx, su, svcRole)
	peakSeen, samples := peak()
	t.Logf("service-role backends: peak %d over %d samples, %d with every client idle", peakSeen, samples, idle)
	if peakSeen > poolSize || idle > poolSize {
		t.Errorf("warehouse saw %d service-role connections at peak and %d idle, want at most the pool's %d", peakSeen, idle, poolSize)
	}
	if peakSeen == 0 || samples < 2 {
		t.Errorf("sampler saw %d backends over %d samples: it did not watch the run", peakSeen, samples)
	}
	for _, c := range conns {
		if c != nil {
			c.Close(context.Background())
		}
	}
}

// svcRole is the user name in the warehouse DSN: pgwarden's service account.
func (r *running) svcRole(t *testing.T) string {
	t.Helper()
	c, err := pgconn.ParseConfig(r.cfg.Warehouses[demoWarehouse].DSN)
	if err != nil || c.User == "" {
		t.Fatalf("warehouse DSN: %v", err)
	}
	return c.User
}

// poolCheck counts the orders the client sees and those of another tenant,
// in the extended protocol (the tenant bound as a parameter) or the simple one.
func poolCheck(ctx context.Context, conn *pgconn.PgConn, tenant string, extended bool) ([2]int64, error) {
	const q = "SELECT count(*), count(*) FILTER (WHERE tenant_id <> %s) FROM orders"
	var res *pgconn.Result
	if extended {
		res = conn.ExecParams(ctx, fmt.Sprintf(q, "$1"), [][]byte{[]byte(tenant)}, nil, nil, nil).Read()
	} else {
		rs, err := conn.Exec(ctx, fmt.Sprintf(q, "'"+tenant+"'")).ReadAll()
		if err != nil {
			return [2]int64{}, err
		}
		if len(rs) != 1 {
			return [2]int64{}, fmt.Errorf("%d results, want 1", len(rs))
		}
		res = rs[0]
	}
	if res.Err != nil {
		return [2]int64{}, res.Err
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 2 {
		return [2]int64{}, fmt.Errorf("%d rows, want one of two columns", len(res.Rows))
	}
	var out [2]int64
	for i, v := range res.Rows[0] {
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return out, fmt.Errorf("column %d = %q: %w", i, v, err)
		}
		out[i] = n
	}
	return out, nil
}

type mintedSession struct {
	tenant, id, token string
}

// mintSessionsHTTP mints and exchanges n sessions as a host application and
// a browser would, tenants in turn, and checks that they are n distinct
// sessions.
func mintSessionsHTTP(t *testing.T, ctx context.Context, base, apiKey string, tenants []string, n int) []mintedSession {
	t.Helper()
	const workers = 8
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	defer hc.CloseIdleConnections()
	post := func(path, bearer string, body any) (map[string]any, error) {
		b, _ := json.Marshal(body)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusCreated {
			return nil, fmt.Errorf("POST %s: %s %.200s", path, resp.Status, raw)
		}
		var out map[string]any
		return out, json.Unmarshal(raw, &out)
	}
	out := make([]mintedSession, n)
	errs := make(chan error, workers)
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				tenant := tenants[i%len(tenants)]
				tk, err := post("/v1/tickets", apiKey, map[string]any{"tenant": tenant, "external_id": fmt.Sprintf("user-%d", i),
					"connection_roles": map[string]string{demoWarehouse: "querier"}})
				if err != nil {
					errs <- err
					return
				}
				sess, err := post("/v1/sessions", "", map[string]any{"ticket": tk["ticket"]})
				if err != nil {
					errs <- err
					return
				}
				token, _ := sess["session_token"].(string)
				id, _ := sess["session_id"].(string)
				out[i] = mintedSession{tenant: tenant, id: id, token: token}
			}
		}()
	}
	var mintErr error
	for i := 0; i < n && mintErr == nil; i++ {
		select {
		case next <- i:
		case mintErr = <-errs:
		}
	}
	close(next)
	wg.Wait()
	if mintErr == nil && len(errs) > 0 {
		mintErr = <-errs
	}
	if mintErr != nil {
		t.Fatalf("minting sessions: %v", mintErr)
	}
	ids := map[string]bool{}
	for _, s := range out {
		if s.id == "" || s.token == "" {
			t.Fatalf("a session without id or token: %+v", s.id)
		}
		ids[s.id] = true
	}
	if len(ids) != n {
		t.Fatalf("%d distinct sessions for %d clients", len(ids), n)
	}
	return out
}

// sampleBackends counts the role's backends in pg_stat_activity every 20 ms
// until the returned function is called, which reports the peak and the
// number of samples.
func sampleBackends(ctx context.Context, t *testing.T, dsn, role string) func() (peak, samples int) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	result := make(chan [2]int, 1)
	go func() {
		defer conn.Close(context.Background())
		var peak, samples int
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			var n int
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", role).Scan(&n); err == nil {
				peak = max(peak, n)
				samples++
			}
			select {
			case <-stop:
				result <- [2]int{peak, samples}
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	var res [2]int
	get := func() (int, int) {
		once.Do(func() { close(stop); res = <-result })
		return res[0], res[1]
	}
	t.Cleanup(func() { get() })
	return get
}

func countBackends(t *testing.T, ctx context.Context, conn *pgx.Conn, role string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", role).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// raiseNoFileLimit lifts the open-file soft limit to the hard limit (client
// and proxy ends of every connection live in this process) and returns it.
// Go does this at startup already; a test binary run under a wrapper that
// lowered the soft limit again still gets the room.
func raiseNoFileLimit(t *testing.T) uint64 {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
	}
	return lim.Cur
}

// metricValue reads one unlabelled sample from a Prometheus text endpoint.
func metricValue(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in %s", name, url)
	return 0
}
