package proxy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/proxy/fairq"
	"github.com/pgwarden/pgwarden/proxy/pool"
)

// addTenant gives the fake authenticator a session of tenant and returns
// its token.
func addTenant(tp *testProxy, tenant string) string {
	tp.auth.mu.Lock()
	defer tp.auth.mu.Unlock()
	tok := "tok-" + tenant
	if tp.auth.sessions[tok] == nil {
		tp.auth.sessions[tok] = &auth.Session{ID: "s-" + tenant, Kind: policy.KindEmbed, Tenant: tenant, ExternalID: "ext-" + tenant,
			BaseRole: policy.RoleViewer, ExpiresAt: time.Now().Add(time.Hour)}
	}
	return tok
}

// waitFor polls cond until it holds (a state the test waits for, not a
// timing): the test fails after a generous minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; !cond(); i++ {
		if i == 6000 {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waiting(t *testing.T, reg *prometheus.Registry) int {
	return int(metricValue(t, reg, "pgwarden_proxy_pool_waiting_clients", "warehouse", "wh"))
}

// A heavy tenant that fills the pool and queues more statements cannot keep
// a light tenant waiting behind all of them: under the fair policy the light
// tenant's statement is served at the next connection's return but one,
// under fifo after every heavy statement queued before it.
func TestFairQueueLightTenantNotBlocked(t *testing.T) {
	for _, tc := range []struct {
		policy fairq.Policy
		// lightAt: the light tenant's place among the completions, at most
		lightAtMost, lightAtLeast int
	}{
		{fairq.Fair, 2, 1},
		{fairq.FIFO, 6, 6},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			reg := prometheus.NewRegistry()
			tp := startPool(t, pool.Config{Size: 2, AcquireTimeout: time.Minute, Tenants: fairq.Config{Policy: tc.policy}},
				func(_ *Config, d *Deps) { d.Metrics = reg })
			ctx := ctxT(t)
			heavy, light := addTenant(tp, "heavy"), addTenant(tp, "light")
			// The heavy tenant holds both connections.
			var txs []pgx.Tx
			for range 2 {
				c := connectPgx(t, ctx, tp, heavy, pgx.QueryExecModeSimpleProtocol)
				tx, err := c.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
					t.Fatal(err)
				}
				txs = append(txs, tx)
			}
			// Each statement takes a number from a sequence where it runs:
			// the order the warehouse served them in, whatever order the
			// clients hear back in.
			db, err := pgconn.Connect(ctx, tp.dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close(ctx)
			if _, err := db.Exec(ctx, "CREATE SEQUENCE served").ReadAll(); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			served := map[string]int64{}
			var wg sync.WaitGroup
			run := func(token, name string) {
				c := connectPgx(t, ctx, tp, token, pgx.QueryExecModeSimpleProtocol)
				wg.Add(1)
				go func() {
					defer wg.Done()
					var n int64
					err := c.QueryRow(ctx, "SELECT nextval('served')").Scan(&n)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						t.Errorf("%s: %v", name, err)
					}
					served[name] = n
				}()
			}
			// Five more heavy statements queue, then one light one.
			for i := range 5 {
				run(heavy, fmt.Sprintf("heavy%d", i))
				waitFor(t, "heavy waiter queued", func() bool { return waiting(t, reg) == i+1 })
			}
			run(light, "light")
			waitFor(t, "light waiter queued", func() bool { return waiting(t, reg) == 6 })
			if got := metricValue(t, reg, "pgwarden_proxy_tenant_queued_statements", "tenant", "heavy"); got != 5 {
				t.Errorf("heavy tenant's queued gauge = %v, want 5", got)
			}
			// One connection comes back: the queue drains through it.
			if err := txs[0].Commit(ctx); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			if err := txs[1].Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if place := int(served["light"]); place < tc.lightAtLeast || place > tc.lightAtMost {
				t.Errorf("light tenant served %d of 6 (%v), want between %d and %d", place, served, tc.lightAtLeast, tc.lightAtMost)
			}
		})
	}
}

// A tenant at its share of the pool queues even though a connection is
// free, and another tenant gets that connection at once.
func TestTenantShareOfPool(t *testing.T) {
	reg := prometheus.NewRegistry()
	tp := startPool(t, pool.Config{Size: 2, AcquireTimeout: time.Minute, Tenants: fairq.Config{
		Tenants: map[string]fairq.Limits{"heavy": {MaxConns: 1}}}}, func(_ *Config, d *Deps) { d.Metrics = reg })
	ctx := ctxT(t)
	heavy, light := addTenant(tp, "heavy"), addTenant(tp, "light")
	a := connectPgx(t, ctx, tp, heavy, pgx.QueryExecModeSimpleProtocol)
	tx, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	b := connectPgx(t, ctx, tp, heavy, pgx.QueryExecModeSimpleProtocol)
	bDone := make(chan error, 1)
	go func() {
		_, err := b.Exec(ctx, "SELECT 1")
		bDone <- err
	}()
	waitFor(t, "the heavy tenant's second statement to queue", func() bool { return waiting(t, reg) == 1 })
	c := connectPgx(t, ctx, tp, light, pgx.QueryExecModeSimpleProtocol)
	var n int
	if err := c.QueryRow(ctx, "SELECT 7").Scan(&n); err != nil || n != 7 {
		t.Fatalf("light tenant beside a heavy one at its share: %d, %v", n, err)
	}
	select {
	case err := <-bDone:
		t.Fatalf("the heavy tenant ran past its share of 1: %v", err)
	default:
	}
	if got := metricValue(t, reg, "pgwarden_proxy_tenant_connections_in_use", "tenant", "heavy"); got != 1 {
		t.Errorf("heavy in use = %v, want 1", got)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-bDone; err != nil {
		t.Fatalf("the queued heavy statement after the first ended: %v", err)
	}
}

// A tenant's queue is bounded: one more gets 53300 and its connection goes
// on working; a waiter that gives up leaves no slot behind.
func TestTenantQueueLimit(t *testing.T) {
	reg := prometheus.NewRegistry()
	tp := startPool(t, pool.Config{Size: 1, AcquireTimeout: time.Minute, Tenants: fairq.Config{
		Defaults: fairq.Limits{MaxQueued: 1}}}, func(_ *Config, d *Deps) { d.Metrics = reg })
	ctx := ctxT(t)
	a := connectPgx(t, ctx, tp, "tok-acme", pgx.QueryExecModeSimpleProtocol)
	tx, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	b := connectPgx(t, ctx, tp, "tok-acme", pgx.QueryExecModeSimpleProtocol)
	bctx, bcancel := context.WithCancel(ctx)
	bDone := make(chan error, 1)
	go func() {
		_, err := b.Exec(bctx, "SELECT 1")
		bDone <- err
	}()
	waitFor(t, "acme's waiter to queue", func() bool { return waiting(t, reg) == 1 })
	c := connectPgx(t, ctx, tp, "tok-acme", pgx.QueryExecModeSimpleProtocol)
	_, err = c.Exec(ctx, "SELECT 1")
	wantPgErr(t, err, "53300", "too many queued statements for tenant acme (limit 1)")
	if got := metricValue(t, reg, "pgwarden_proxy_tenant_refusals_total", "limit", "max_queued"); got != 1 {
		t.Errorf("max_queued refusals = %v, want 1", got)
	}
	// Another tenant's queue is its own.
	g := connectPgx(t, ctx, tp, "tok-globex", pgx.QueryExecModeSimpleProtocol)
	gDone := make(chan error, 1)
	go func() {
		_, err := g.Exec(ctx, "SELECT 1")
		gDone <- err
	}()
	waitFor(t, "globex's waiter to queue", func() bool { return waiting(t, reg) == 2 })
	// acme's waiter gives up (a CancelRequest): its place goes, no slot stays taken.
	bcancel()
	if err := <-bDone; err == nil {
		t.Fatal("the cancelled waiter ran")
	}
	waitFor(t, "the cancelled waiter to leave", func() bool { return waiting(t, reg) == 1 })
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-gDone; err != nil {
		t.Fatalf("globex after the connection came back: %v", err)
	}
	var n int
	if err := c.QueryRow(ctx, "SELECT 5").Scan(&n); err != nil || n != 5 {
		t.Fatalf("the refused client's next statement: %d, %v", n, err)
	}
	if err := a.QueryRow(ctx, "SELECT 6").Scan(&n); err != nil || n != 6 {
		t.Fatalf("the first client's next statement: %d, %v", n, err)
	}
	waitFor(t, "every connection back", func() bool {
		return metricValue(t, reg, "pgwarden_proxy_pool_connections", "state", "in_use") == 0
	})
	tp.srv.mu.Lock()
	p := tp.srv.pools["wh"]
	tp.srv.mu.Unlock()
	for _, tenant := range []string{"acme", "globex"} {
		if n := p.Scheduler().InUse(tenant); n != 0 {
			t.Errorf("tenant %s still counts %d connections in use", tenant, n)
		}
	}
}

// statementLimits runs f against both pool modes with acme's limits.
func statementLimits(t *testing.T, lim StatementLimits, share fairq.Limits, f func(t *testing.T, tp *testProxy, mode pool.Mode)) {
	for _, mode := range []pool.Mode{pool.Transaction, pool.Session} {
		t.Run(string(mode), func(t *testing.T) {
			tp := startPool(t, pool.Config{Mode: mode, Size: 2, AcquireTimeout: time.Second,
				Tenants: fairq.Config{Tenants: map[string]fairq.Limits{"acme": share}}}, func(_ *Config, d *Deps) {
				d.Warehouses["wh"].Statements = TenantStatementLimits{Tenants: map[string]StatementLimits{"acme": lim}}
			})
			f(t, tp, mode)
		})
	}
}

func TestTenantStatementTimeout(t *testing.T) {
	statementLimits(t, StatementLimits{Timeout: 5 * time.Second, RoleTimeouts: map[policy.Role]time.Duration{policy.RoleViewer: 300 * time.Millisecond}}, fairq.Limits{},
		func(t *testing.T, tp *testProxy, mode pool.Mode) {
			ctx := ctxT(t)
			c := connectPgx(t, ctx, tp, "tok-acme", pgx.QueryExecModeSimpleProtocol)
			_, err := c.Exec(ctx, "SELECT pg_sleep(30)")
			wantPgErr(t, err, "57014", "canceling statement due to statement timeout")
			var n int
			if err := c.QueryRow(ctx, "SELECT 1").Scan(&n); err != nil || n != 1 {
				t.Fatalf("after the timeout: %d, %v", n, err)
			}
			_, err = c.Exec(ctx, "SET statement_timeout = '10s'")
			wantPgErr(t, err, "42501", "permission denied to set statement_timeout above 300ms")
			_, err = c.Exec(ctx, "SET statement_timeout = 0")
			wantPgErr(t, err, "42501", "above 300ms")
			if _, err := c.Exec(ctx, "SET statement_timeout = 100"); err != nil {
				t.Fatalf("lowering the timeout: %v", err)
			}
			var v string
			if err := c.QueryRow(ctx, "SHOW statement_timeout").Scan(&v); err != nil || v != "100ms" {
				t.Fatalf("statement_timeout = %q, %v; want 100ms", v, err)
			}
			// Another tenant keeps the proxy's.
			g := connectPgx(t, ctx, tp, "tok-globex", pgx.QueryExecModeSimpleProtocol)
			if err := g.QueryRow(ctx, "SHOW statement_timeout").Scan(&v); err != nil || v != "0" {
				t.Fatalf("globex's statement_timeout = %q, %v; want 0", v, err)
			}
		})
}

func TestTenantResultLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		lim  StatementLimits
		want string
	}{
		{"rows", StatementLimits{MaxRows: 100}, "result exceeds the tenant's limit of 100 rows"},
		{"bytes", StatementLimits{MaxBytes: 4096}, "result exceeds the tenant's limit of 4096 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			statementLimits(t, tc.lim, fairq.Limits{}, func(t *testing.T, tp *testProxy, mode pool.Mode) {
				ctx := ctxT(t)
				for _, qm := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
					c := connectPgx(t, ctx, tp, "tok-acme", qm)
					// Endless unless cancelled: the cancel must reach the warehouse.
					_, err := c.Exec(ctx, "SELECT repeat('x', 100) || generate_series(1, 100000000)")
					wantPgErr(t, err, "54000", tc.want)
					var n int
					if err := c.QueryRow(ctx, "SELECT count(*) FROM generate_series(1, 50)").Scan(&n); err != nil || n != 50 {
						t.Fatalf("%v: after the refusal: %d, %v", qm, n, err)
					}
					// Within the limit, all rows arrive.
					rows, err := c.Query(ctx, "SELECT g FROM generate_series(1, 20) g")
					if err != nil {
						t.Fatal(err)
					}
					got := 0
					for rows.Next() {
						got++
					}
					if rows.Err() != nil || got != 20 {
						t.Fatalf("%v: a small result: %d rows, %v", qm, got, rows.Err())
					}
					// In a transaction block the refusal fails the transaction, as an error would.
					tx, err := c.Begin(ctx)
					if err != nil {
						t.Fatal(err)
					}
					_, err = tx.Exec(ctx, "SELECT repeat('x', 100) FROM generate_series(1, 1000)")
					wantPgErr(t, err, "54000", tc.want)
					_, err = tx.Exec(ctx, "SELECT 1")
					wantPgErr(t, err, "25P02", "current transaction is aborted")
					if err := tx.Rollback(ctx); err != nil {
						t.Fatal(err)
					}
					if err := c.QueryRow(ctx, "SELECT 3").Scan(&n); err != nil || n != 3 {
						t.Fatalf("%v: after the rollback: %d, %v", qm, n, err)
					}
					// Other tenants have no limit.
					g := connectPgx(t, ctx, tp, "tok-globex", qm)
					if err := g.QueryRow(ctx, "SELECT count(*) FROM (SELECT repeat('x', 100) FROM generate_series(1, 1000)) s").Scan(&n); err != nil || n != 1000 {
						t.Fatalf("globex: %d, %v", n, err)
					}
				}
			})
		})
	}
}

func TestTenantStatementRate(t *testing.T) {
	// A bucket of one, refilled every two seconds: the second statement
	// would wait longer than the pool's acquire timeout (1s) for its token.
	statementLimits(t, StatementLimits{}, fairq.Limits{RatePerSecond: 0.5, Burst: 1}, func(t *testing.T, tp *testProxy, mode pool.Mode) {
		ctx := ctxT(t)
		for _, qm := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
			c := connectPgx(t, ctx, tp, "tok-acme", qm)
			var n int
			var refused error
			for i := range 5 {
				if err := c.QueryRow(ctx, "SELECT $1::int", i).Scan(&n); err != nil {
					refused = err
					break
				}
				if i == 4 {
					t.Fatal("five statements at once passed a bucket of one every 2s")
				}
			}
			wantPgErr(t, refused, "53300", "too many statements per second for tenant acme (limit 0.5)")
			// The connection stays usable: the next statement runs once a token is due.
			waitFor(t, "the bucket to refill", func() bool { return c.QueryRow(ctx, "SELECT $1::int", 9).Scan(&n) == nil && n == 9 })
		}
	})
}

func TestTenantSessionsInSessionMode(t *testing.T) {
	tp := startPool(t, pool.Config{Mode: pool.Session, Tenants: fairq.Config{Tenants: map[string]fairq.Limits{"acme": {MaxConns: 1}}}}, nil)
	ctx := ctxT(t)
	a, err := pgconn.Connect(ctx, tp.url("tok-acme", "wh", ""))
	if err != nil {
		t.Fatal(err)
	}
	_, err = pgconn.Connect(ctx, tp.url("tok-acme", "wh", ""))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "53300" || pe.Message != "too many connections for tenant acme (limit 1)" {
		t.Fatalf("second acme session: %v, want FATAL 53300", err)
	}
	g := tp.connect(t, ctx, "tok-globex")
	if _, err := g.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatal(err)
	}
	a.Close(ctx)
	waitFor(t, "acme's session to end", func() bool {
		c, err := pgconn.Connect(ctx, tp.url("tok-acme", "wh", ""))
		if err == nil {
			c.Close(ctx)
		}
		return err == nil
	})
}

func TestStatementLimitsFor(t *testing.T) {
	lim := TenantStatementLimits{
		Defaults: StatementLimits{Timeout: time.Minute, RoleTimeouts: map[policy.Role]time.Duration{policy.RoleViewer: 30 * time.Second}, MaxRows: 1000},
		Tenants: map[string]StatementLimits{
			"acme":   {Timeout: 10 * time.Second, RoleTimeouts: map[policy.Role]time.Duration{policy.RoleQuerier: 5 * time.Minute}, MaxBytes: 1 << 20},
			"globex": {MaxRows: 50},
		},
	}
	tests := []struct {
		tenant string
		role   policy.Role
		want   sessionLimits
	}{
		{"acme", policy.RoleQuerier, sessionLimits{timeout: 5 * time.Minute, maxRows: 1000, maxBytes: 1 << 20}},
		{"acme", policy.RoleViewer, sessionLimits{timeout: 10 * time.Second, maxRows: 1000, maxBytes: 1 << 20}},
		{"globex", policy.RoleViewer, sessionLimits{timeout: 30 * time.Second, maxRows: 50}},
		{"globex", policy.RoleQuerier, sessionLimits{timeout: time.Minute, maxRows: 50}},
		{"other", policy.RoleRestrictedQuerier, sessionLimits{timeout: time.Minute, maxRows: 1000}},
	}
	for _, tt := range tests {
		if got := lim.For(tt.tenant, tt.role); got != tt.want {
			t.Errorf("%s as %s: %+v, want %+v", tt.tenant, tt.role, got, tt.want)
		}
	}
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{{"100", 100 * time.Millisecond, true}, {"'2s'", 2 * time.Second, true}, {"1min", time.Minute, true}, {"1.5s", 1500 * time.Millisecond, true}, {"0", 0, true}, {"x", 0, false}, {"5 parsecs", 0, false}} {
		got, ok := parseTimeoutSetting(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseTimeoutSetting(%q) = %v %v, want %v %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
