package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/proxy/pool"
	"github.com/pgwarden/pgwarden/rewrite"
)

// startPool serves a proxy whose warehouse "wh" pools in transaction mode.
func startPool(t testing.TB, pc pool.Config, mod func(*Config, *Deps)) *testProxy {
	t.Helper()
	if pc.Mode == "" {
		pc.Mode = pool.Transaction
	}
	return startProxyTB(t, func(cfg *Config, d *Deps) {
		d.Warehouses["wh"].Pool = pc
		if mod != nil {
			mod(cfg, d)
		}
	})
}

func connectPgx(t testing.TB, ctx context.Context, tp *testProxy, token string, mode pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(tp.url(token, "wh", ""))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = mode
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// backendPIDs lists the pids of the proxy's warehouse connections.
func backendPIDs(t *testing.T, ctx context.Context, dbURL string) map[int]bool {
	t.Helper()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgwarden' AND datname = current_database()")
	if err != nil {
		t.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]bool{}
	for _, p := range pids {
		out[p] = true
	}
	return out
}

// Twenty pgx clients in the default mode (statements prepared and cached
// by the driver) share two warehouse connections, so every statement moves
// between connections; each sees only its tenant's rows.
func TestPoolPreparedStatementsMoveBetweenConnections(t *testing.T) {
	tp := startPool(t, pool.Config{Size: 2}, nil)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			token, want, wantN := "tok-acme", 60, 3
			if i%2 == 1 {
				token, want, wantN = "tok-globex", 90, 2
			}
			cfg, _ := pgx.ParseConfig(tp.url(token, "wh", ""))
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close(ctx)
			for j := range 15 {
				var sum int
				if err := conn.QueryRow(ctx, "SELECT coalesce(sum(total), 0)::int FROM orders WHERE order_id > $1", 0).Scan(&sum); err != nil {
					errs <- fmt.Errorf("client %d query %d: %w", i, j, err)
					return
				}
				if sum != want {
					errs <- fmt.Errorf("client %d (%s) sum = %d, want %d", i, token, sum, want)
					return
				}
				err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
					var n int
					if err := tx.QueryRow(ctx, "SELECT count(*)::int FROM orders WHERE total >= $1", 0).Scan(&n); err != nil {
						return err
					}
					if n != wantN {
						return fmt.Errorf("count = %d", n)
					}
					return nil
				})
				if err != nil {
					errs <- fmt.Errorf("client %d tx %d: %w", i, j, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(backendPIDs(t, ctx, tp.dbURL)); n > 2 {
		t.Errorf("%d warehouse connections, want at most the pool size 2", n)
	}
}

// A connection a client leaves dirty never reaches the next client dirty.
func TestPoolDirtyConnections(t *testing.T) {
	tp := startPool(t, pool.Config{Size: 1}, nil)
	ctx := ctxT(t)
	simple := pgx.QueryExecModeSimpleProtocol

	show := func(conn *pgx.Conn, name string) string {
		t.Helper()
		var v string
		if err := conn.QueryRow(ctx, "SHOW "+name).Scan(&v); err != nil {
			t.Fatalf("SHOW %s: %v", name, err)
		}
		return v
	}
	b := connectPgx(t, ctx, tp, "tok-globex", simple)
	defaultTZ := show(b, "TimeZone")

	t.Run("set in effect", func(t *testing.T) {
		a := connectPgx(t, ctx, tp, "tok-acme", simple)
		if _, err := a.Exec(ctx, "SET TimeZone TO 'Asia/Tokyo'"); err != nil {
			t.Fatal(err)
		}
		if got := show(b, "TimeZone"); got != defaultTZ {
			t.Errorf("next client sees TimeZone %q, want %q", got, defaultTZ)
		}
		if got := show(a, "TimeZone"); got != "Asia/Tokyo" {
			t.Errorf("the client's own setting after another client used the connection: %q", got)
		}
		// A SET rolled back is not replayed.
		if _, err := a.Exec(ctx, "BEGIN; SET TimeZone TO 'Europe/Paris'; ROLLBACK"); err != nil {
			t.Fatal(err)
		}
		show(b, "TimeZone")
		if got := show(a, "TimeZone"); got != "Asia/Tokyo" {
			t.Errorf("after a rolled back SET: %q", got)
		}
		// SET LOCAL ends with its transaction.
		if _, err := a.Exec(ctx, "BEGIN; SET LOCAL TimeZone TO 'Europe/Paris'; COMMIT"); err != nil {
			t.Fatal(err)
		}
		if got := show(a, "TimeZone"); got != "Asia/Tokyo" {
			t.Errorf("after SET LOCAL: %q", got)
		}
		a.Close(ctx)
		if got := show(b, "TimeZone"); got != defaultTZ {
			t.Errorf("after the client left: TimeZone %q, want %q", got, defaultTZ)
		}
	})
	t.Run("savepoints", func(t *testing.T) {
		// ROLLBACK TO undoes only the SETs after its savepoint; RELEASE
		// keeps them. Each check lands after b used the one connection.
		a := connectPgx(t, ctx, tp, "tok-acme", simple)
		if _, err := a.Exec(ctx, "BEGIN; SET TimeZone TO 'Europe/Paris'; SAVEPOINT s1; SET TimeZone TO 'America/New_York'; "+
			"ROLLBACK TO SAVEPOINT s1; SAVEPOINT s2; SET DateStyle TO 'SQL, DMY'; SAVEPOINT s3; RELEASE SAVEPOINT s2; COMMIT"); err != nil {
			t.Fatal(err)
		}
		show(b, "TimeZone")
		if got := show(a, "TimeZone"); got != "Europe/Paris" {
			t.Errorf("TimeZone %q after ROLLBACK TO, want the SET before the savepoint", got)
		}
		show(b, "TimeZone")
		if got := show(a, "DateStyle"); got != "SQL, DMY" {
			t.Errorf("DateStyle %q after RELEASE, want the released SET", got)
		}
		// A rolled back transaction drops them all, savepoints or not.
		if _, err := a.Exec(ctx, "BEGIN; SAVEPOINT s1; SET TimeZone TO 'Asia/Tokyo'; RELEASE s1; ROLLBACK"); err != nil {
			t.Fatal(err)
		}
		show(b, "TimeZone")
		if got := show(a, "TimeZone"); got != "Europe/Paris" {
			t.Errorf("TimeZone %q after ROLLBACK, want Europe/Paris", got)
		}
		a.Close(ctx)
	})
	t.Run("set_config", func(t *testing.T) {
		for _, mode := range []pgx.QueryExecMode{simple, pgx.QueryExecModeCacheStatement} {
			a := connectPgx(t, ctx, tp, "tok-acme", mode)
			var v string
			if err := a.QueryRow(ctx, "SELECT set_config('TimeZone', 'Asia/Tokyo', false)").Scan(&v); err != nil {
				t.Fatal(err)
			}
			if got := show(b, "TimeZone"); got != defaultTZ {
				t.Errorf("%v: next client sees TimeZone %q after set_config, want %q", mode, got, defaultTZ)
			}
			if got := show(a, "TimeZone"); got != "Asia/Tokyo" {
				t.Errorf("%v: the client's own set_config in its next transaction: %q", mode, got)
			}
			a.Close(ctx)
		}
	})
	t.Run("cursor with hold", func(t *testing.T) {
		a := connectPgx(t, ctx, tp, "tok-acme", simple)
		if _, err := a.Exec(ctx, "DECLARE c CURSOR WITH HOLD FOR SELECT order_id FROM orders ORDER BY order_id"); err != nil {
			t.Fatal(err)
		}
		var id int
		for want := 1; want <= 2; want++ {
			if err := a.QueryRow(ctx, "FETCH 1 FROM c").Scan(&id); err != nil || id != want {
				t.Fatalf("FETCH in a later transaction: %d, %v", id, err)
			}
		}
		a.Close(ctx)
		_, err := b.Exec(ctx, "FETCH 1 FROM c")
		wantPgErr(t, err, "34000", `cursor "c" does not exist`)
	})
	t.Run("parse in a failed transaction", func(t *testing.T) {
		pc := b.PgConn()
		if _, err := pc.Prepare(ctx, "p1", "SELECT 1", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := pc.Exec(ctx, "BEGIN; SELECT 1/0").ReadAll(); err == nil {
			t.Fatal("no error")
		}
		// "SELECT 1" is prepared on this connection already; PostgreSQL
		// still answers a Parse in a failed transaction with 25P02.
		_, err := pc.Prepare(ctx, "p2", "SELECT 1", nil)
		wantPgErr(t, err, "25P02", "current transaction is aborted")
		if _, err := pc.Exec(ctx, "ROLLBACK").ReadAll(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("open transaction", func(t *testing.T) {
		a := connectPgx(t, ctx, tp, "tok-acme", simple)
		if _, err := a.Exec(ctx, "BEGIN; SELECT txid_current()"); err != nil {
			t.Fatal(err)
		}
		if got := a.PgConn().TxStatus(); got != 'T' {
			t.Fatalf("tx status %c", got)
		}
		a.Close(ctx)
		var txid *int64
		if err := b.QueryRow(ctx, "SELECT txid_current_if_assigned()").Scan(&txid); err != nil {
			t.Fatal(err)
		}
		if txid != nil {
			t.Errorf("next client runs inside the departed client's transaction %d", *txid)
		}
		if got := b.PgConn().TxStatus(); got != 'I' {
			t.Errorf("tx status %c", got)
		}
	})
	t.Run("failed transaction", func(t *testing.T) {
		a := connectPgx(t, ctx, tp, "tok-acme", simple)
		_, err := a.Exec(ctx, "BEGIN; SELECT 1/0")
		wantPgErr(t, err, "22012", "division by zero")
		if got := a.PgConn().TxStatus(); got != 'E' {
			t.Fatalf("tx status %c", got)
		}
		a.Close(ctx)
		var one int
		if err := b.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			t.Fatalf("next client: %v", err)
		}
	})
	t.Run("statement running", func(t *testing.T) {
		a := connectPgx(t, ctx, tp, "tok-acme", simple)
		done := make(chan error, 1)
		go func() {
			_, err := a.Exec(ctx, "SELECT pg_sleep(30)")
			done <- err
		}()
		time.Sleep(300 * time.Millisecond)
		a.PgConn().Conn().Close() // vanish mid-statement
		<-done
		var one int
		if err := b.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			t.Fatalf("next client: %v", err)
		}
		var txid *int64
		if err := b.QueryRow(ctx, "SELECT txid_current_if_assigned()").Scan(&txid); err != nil || txid != nil {
			t.Errorf("txid %v, err %v", txid, err)
		}
	})
	t.Run("discard all", func(t *testing.T) {
		a := connectPgx(t, ctx, tp, "tok-acme", pgx.QueryExecModeCacheStatement)
		if _, err := a.Exec(ctx, "SET TimeZone TO 'Asia/Tokyo'", pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := a.QueryRow(ctx, "SELECT count(*)::int FROM orders WHERE total > $1", 0).Scan(&n); err != nil || n != 3 {
			t.Fatalf("n=%d err=%v", n, err)
		}
		if _, err := a.Exec(ctx, "DISCARD ALL", pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatal(err)
		}
		if got := show(a, "TimeZone"); got != defaultTZ {
			t.Errorf("after DISCARD ALL: %q", got)
		}
		// pgx does not know its cached statement is gone: DISCARD ALL
		// deallocates it, as PostgreSQL does.
		_, err := a.Exec(ctx, "SELECT count(*)::int FROM orders WHERE total > $1", 0)
		wantPgErr(t, err, "26000", "does not exist")
	})
}

// SQL-level PREPARE cannot follow a client across connections: refused.
func TestPoolRefusesSQLPrepare(t *testing.T) {
	tp := startPool(t, pool.Config{Size: 1}, nil)
	ctx := ctxT(t)
	conn := connectPgx(t, ctx, tp, "tok-acme", pgx.QueryExecModeSimpleProtocol)
	_, err := conn.Exec(ctx, "PREPARE p AS SELECT 1")
	if !isCode(err, "0A000") && !isCode(err, "42501") {
		t.Fatalf("PREPARE: %v, want 0A000", err)
	}
	if _, err := conn.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("after the refusal: %v", err)
	}
}

// DEALLOCATE of a protocol-level statement works in both modes (psycopg 3
// evicts its statement cache so), also when another name shares its SQL.
func TestDeallocateProtocolStatement(t *testing.T) {
	for _, mode := range []pool.Mode{pool.Session, pool.Transaction} {
		t.Run(string(mode), func(t *testing.T) {
			tp := startPool(t, pool.Config{Mode: mode, Size: 1}, nil)
			ctx := ctxT(t)
			pc := tp.connect(t, ctx, "tok-acme")
			for _, name := range []string{"s1", "twin"} {
				if _, err := pc.Prepare(ctx, name, "SELECT 41 + $1::int", nil); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := pc.Exec(ctx, "DEALLOCATE s1").ReadAll(); err != nil {
				t.Fatalf("DEALLOCATE: %v", err)
			}
			res := pc.ExecPrepared(ctx, "s1", [][]byte{[]byte("1")}, nil, nil).Read()
			wantPgErr(t, res.Err, "26000", `prepared statement "s1" does not exist`)
			res = pc.ExecPrepared(ctx, "twin", [][]byte{[]byte("1")}, nil, nil).Read()
			if res.Err != nil || string(res.Rows[0][0]) != "42" {
				t.Fatalf("the statement sharing the SQL: %v %v", res.Rows, res.Err)
			}
			if _, err := pc.Prepare(ctx, "s1", "SELECT 40 + $1::int", nil); err != nil {
				t.Fatalf("prepare again: %v", err)
			}
			res = pc.ExecPrepared(ctx, "s1", [][]byte{[]byte("2")}, nil, nil).Read()
			if res.Err != nil || string(res.Rows[0][0]) != "42" {
				t.Fatalf("after re-prepare: %v %v", res.Rows, res.Err)
			}
			_, err := pc.Exec(ctx, "DEALLOCATE nope").ReadAll()
			wantPgErr(t, err, "26000", `prepared statement "nope" does not exist`)
		})
	}
}

func isCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

// A client that cannot get a connection in time gets 53300 and may retry.
func TestPoolAcquireTimeout(t *testing.T) {
	reg := prometheus.NewRegistry()
	tp := startPool(t, pool.Config{Size: 1, AcquireTimeout: 300 * time.Millisecond}, func(_ *Config, d *Deps) { d.Metrics = reg })
	ctx := ctxT(t)
	a := connectPgx(t, ctx, tp, "tok-acme", pgx.QueryExecModeSimpleProtocol)
	b := connectPgx(t, ctx, tp, "tok-globex", pgx.QueryExecModeCacheStatement)
	tx, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, reg, "pgwarden_proxy_pool_connections", "state", "in_use"); got != 1 {
		t.Errorf("in_use = %v, want 1", got)
	}
	if got := metricValue(t, reg, "pgwarden_proxy_pool_connections", "state", "max"); got != 1 {
		t.Errorf("max = %v, want 1", got)
	}
	waits := metricValue(t, reg, "pgwarden_proxy_pool_acquire_seconds", "warehouse", "wh")
	_, err = b.Exec(ctx, "SELECT $1::int", 1)
	wantPgErr(t, err, "53300", "too many clients waiting for a warehouse connection")
	if got := metricValue(t, reg, "pgwarden_proxy_pool_acquire_seconds", "warehouse", "wh"); got != waits+1 {
		t.Errorf("acquire waits observed %v, want %v", got, waits+1)
	}
	var n int
	err = b.QueryRow(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol).Scan(&n)
	wantPgErr(t, err, "53300", "too many clients waiting")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.QueryRow(ctx, "SELECT $1::int", 7).Scan(&n); err != nil || n != 7 {
		t.Fatalf("after the connection came free: %d, %v", n, err)
	}
	// The relay returns the connection just after the client has its answer.
	for i := 0; metricValue(t, reg, "pgwarden_proxy_pool_connections", "state", "idle") != 1; i++ {
		if i == 500 {
			t.Fatal("the connection did not return to the pool")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := metricValue(t, reg, "pgwarden_proxy_pool_waiting_clients", "warehouse", "wh"); got != 0 {
		t.Errorf("waiting = %v, want 0", got)
	}
}

// A cancel reaches the statement the client runs, never another client's.
func TestPoolCancel(t *testing.T) {
	tp := startPool(t, pool.Config{Size: 2}, nil)
	ctx := ctxT(t)
	a := connectPgx(t, ctx, tp, "tok-acme", pgx.QueryExecModeCacheStatement)
	b := connectPgx(t, ctx, tp, "tok-globex", pgx.QueryExecModeCacheStatement)
	bDone := make(chan error, 1)
	go func() {
		_, err := b.Exec(ctx, "SELECT pg_sleep(2)")
		bDone <- err
	}()
	qctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	_, err := a.Exec(qctx, "SELECT pg_sleep(20)")
	if err == nil {
		t.Fatal("the cancelled statement succeeded")
	}
	if err := <-bDone; err != nil {
		t.Fatalf("the other client's statement: %v", err)
	}
	// An idle client holds no connection: its cancel reaches nobody.
	c := connectPgx(t, ctx, tp, "tok-acme", pgx.QueryExecModeCacheStatement)
	go func() {
		time.Sleep(200 * time.Millisecond)
		c.PgConn().CancelRequest(ctx)
	}()
	if _, err := b.Exec(ctx, "SELECT pg_sleep(1)"); err != nil {
		t.Fatalf("a statement running while an idle client cancels: %v", err)
	}
}

// Many concurrent sessions of several tenants over a pool of five: each
// sees only its own tenant's rows.
func TestPoolManyClients(t *testing.T) {
	const clients = 200
	tp := startPool(t, pool.Config{Size: 5, AcquireTimeout: 30 * time.Second}, func(cfg *Config, d *Deps) { cfg.MaxClientConns = 1000 })
	tenants := []struct {
		token, tenant string
		sum           int
	}{{"tok-acme", "acme", 60}, {"tok-globex", "globex", 90}, {"tok-initech", "initech", 0}}
	tp.auth.mu.Lock()
	tp.auth.sessions["tok-initech"] = &auth.Session{ID: "s-initech", Kind: policy.KindEmbed, Tenant: "initech", BaseRole: policy.RoleViewer, ExpiresAt: time.Now().Add(time.Hour)}
	tp.auth.mu.Unlock()
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tn := tenants[i%len(tenants)]
			cfg, _ := pgx.ParseConfig(tp.url(tn.token, "wh", ""))
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close(ctx)
			for j := range 5 {
				var sum int
				var tenants []string
				if err := conn.QueryRow(ctx, "SELECT coalesce(sum(total), 0)::int, coalesce(array_agg(DISTINCT tenant_id), '{}') FROM orders WHERE order_id > $1", j-10).Scan(&sum, &tenants); err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
					return
				}
				if sum != tn.sum || len(tenants) > 1 || len(tenants) == 1 && tenants[0] != tn.tenant {
					errs <- fmt.Errorf("client %d (%s) sees sum %d of tenants %v", i, tn.tenant, sum, tenants)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(backendPIDs(t, ctx, tp.dbURL)); n > 5 {
		t.Errorf("%d warehouse connections, want at most 5", n)
	}
}

// Idle clients hold no warehouse connection; the proxy's heap per idle
// client is logged for the benchmark report (not asserted). The clients are
// bare sockets that log in, so the figure is the proxy's side alone.
func TestPoolIdleClients(t *testing.T) {
	const n = 1000
	tp := startPool(t, pool.Config{Size: 2}, func(cfg *Config, d *Deps) { cfg.MaxClientConns = 2 * n })
	ctx := ctxT(t)
	warm := tp.connect(t, ctx, "tok-acme")
	login := func() net.Conn {
		c, err := net.Dial("tcp", tp.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		be := pgproto3.NewFrontend(c, c)
		be.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": "alice", "database": "wh"}})
		be.Send(&pgproto3.PasswordMessage{Password: "tok-acme"})
		if err := be.Flush(); err != nil {
			t.Fatal(err)
		}
		for {
			msg, err := be.Receive()
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
				c.SetDeadline(time.Time{})
				return c
			}
		}
	}
	login().Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		conns = append(conns, login())
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("proxy heap per idle client: %d bytes (HeapAlloc delta / %d; goroutine stacks: %d bytes per client)",
		int64(after.HeapAlloc-before.HeapAlloc)/n, n, int64(after.StackInuse-before.StackInuse)/n)
	if got := len(backendPIDs(t, ctx, tp.dbURL)); got > 2 {
		t.Errorf("%d warehouse connections for %d idle clients, want at most 2", got, n)
	}
	if _, err := warm.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatal(err)
	}
}

// swapRewriter tags its output so a test can tell which rewriter ran.
type swapRewriter struct {
	tag    string
	refuse bool
}

func (s swapRewriter) Rewrite(ctx context.Context, sql string, id *policy.Identity) (*rewrite.Result, error) {
	if s.refuse {
		return fakeRewriter{}.Rewrite(ctx, "SELECT * FROM internal_costs", id)
	}
	res, err := fakeRewriter{}.Rewrite(ctx, strings.ReplaceAll(sql, "'tag'", "'"+s.tag+"'"), id)
	return res, err
}

// reloadPool serves a pool of one connection whose rewriter the test swaps
// (a policy reload), starting with swapRewriter "old".
func reloadPool(t *testing.T, mode pool.Mode) (*testProxy, *Warehouse) {
	t.Helper()
	var wh *Warehouse
	tp := startPool(t, pool.Config{Mode: mode, Size: 1}, func(_ *Config, d *Deps) {
		wh = d.Warehouses["wh"]
		wh.SetRewriter(swapRewriter{tag: "old"})
	})
	return tp, wh
}

// inReloadModes runs body in both pool modes, with a pgx client of a
// reloadPool and its warehouse.
func inReloadModes(t *testing.T, body func(t *testing.T, ctx context.Context, conn *pgx.Conn, wh *Warehouse)) {
	for _, mode := range []pool.Mode{pool.Session, pool.Transaction} {
		t.Run(string(mode), func(t *testing.T) {
			tp, wh := reloadPool(t, mode)
			ctx := ctxT(t)
			body(t, ctx, connectPgx(t, ctx, tp, "tok-acme", pgx.QueryExecModeCacheStatement), wh)
		})
	}
}

// A statement prepared before a policy reload runs under the new policy.
func TestPreparedStatementAfterReload(t *testing.T) {
	inReloadModes(t, func(t *testing.T, ctx context.Context, conn *pgx.Conn, wh *Warehouse) {
		const q = "SELECT 'tag' || $1::text"
		var got string
		if err := conn.QueryRow(ctx, q, "!").Scan(&got); err != nil || got != "old!" {
			t.Fatalf("before: %q %v", got, err)
		}
		wh.SetRewriter(swapRewriter{tag: "new"})
		if err := conn.QueryRow(ctx, q, "!").Scan(&got); err != nil || got != "new!" {
			t.Fatalf("after the reload: %q %v, want new!", got, err)
		}
		wh.SetRewriter(swapRewriter{refuse: true})
		err := conn.QueryRow(ctx, q, "!").Scan(&got)
		wantPgErr(t, err, "42501", "internal_costs")
		wh.SetRewriter(swapRewriter{tag: "again"})
		if err := conn.QueryRow(ctx, q, "!").Scan(&got); err != nil || got != "again!" {
			t.Fatalf("after a second reload: %q %v", got, err)
		}
	})
}

// A reload that changes a prepared statement's result type fails its next
// execution with 0A000, as PostgreSQL does; pgx then prepares it again.
func TestReloadChangesResultType(t *testing.T) {
	inReloadModes(t, func(t *testing.T, ctx context.Context, conn *pgx.Conn, wh *Warehouse) {
		const q = "SELECT 'tag'::text || $1::text AS v"
		var got any
		if err := conn.QueryRow(ctx, q, "!").Scan(&got); err != nil || got != "old!" {
			t.Fatalf("before: %v %v", got, err)
		}
		// Same type after the reload: no error.
		wh.SetRewriter(swapRewriter{tag: "new"})
		if err := conn.QueryRow(ctx, q, "!").Scan(&got); err != nil || got != "new!" {
			t.Fatalf("same type: %v %v", got, err)
		}
		// "'7'::int::text || ..." is still text; make the column an int.
		wh.SetRewriter(retype{})
		err := conn.QueryRow(ctx, q, "!").Scan(&got)
		wantPgErr(t, err, "0A000", "cached plan must not change result type")
		if err := conn.QueryRow(ctx, q, "!").Scan(&got); err != nil || got != int32(7) {
			t.Fatalf("after pgx prepared again: %v (%T) %v", got, got, err)
		}
	})
}

// Inside a transaction block, that 0A000 fails the transaction as on
// PostgreSQL: status E, and 25P02 until the client rolls back.
func TestReloadChangesResultTypeInTransaction(t *testing.T) {
	inReloadModes(t, func(t *testing.T, ctx context.Context, conn *pgx.Conn, wh *Warehouse) {
		const q = "SELECT 'tag'::text || $1::text AS v"
		var got any
		if err := conn.QueryRow(ctx, q, "!").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		wh.SetRewriter(retype{})
		wantPgErr(t, conn.QueryRow(ctx, q, "!").Scan(&got), "0A000", "cached plan must not change result type")
		if st := conn.PgConn().TxStatus(); st != 'E' {
			t.Fatalf("transaction status %q after the 0A000, want E", st)
		}
		_, err := conn.Exec(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol)
		wantPgErr(t, err, "25P02", "current transaction is aborted")
		wh.SetRewriter(swapRewriter{tag: "new"}) // retype rewrites ROLLBACK too
		if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
		if st := conn.PgConn().TxStatus(); st != 'I' {
			t.Fatalf("transaction status %q after ROLLBACK, want I", st)
		}
	})
}

// retype rewrites every statement to one returning an int column.
type retype struct{}

func (retype) Rewrite(ctx context.Context, sql string, id *policy.Identity) (*rewrite.Result, error) {
	return fakeRewriter{}.Rewrite(ctx, "SELECT 7 + 0 * length($1::text) AS v", id)
}

// Swap between the Parse and the Bind of one batch.
func TestReloadBetweenParseAndBind(t *testing.T) {
	tp, wh := reloadPool(t, pool.Transaction)
	ctx := ctxT(t)
	conn := tp.connect(t, ctx, "tok-acme")
	if _, err := conn.Prepare(ctx, "s1", "SELECT 'tag'", nil); err != nil {
		t.Fatal(err)
	}
	wh.SetRewriter(swapRewriter{tag: "new"})
	res := conn.ExecPrepared(ctx, "s1", nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != "new" {
		t.Fatalf("got %v %v, want new", res.Rows, res.Err)
	}
}

// The warehouse restarts under load: clients recover on a later transaction.
func TestPoolWarehouseRestart(t *testing.T) {
	cl := pgtest.Cluster()
	if cl == nil {
		t.Skip("no managed cluster (PGWARDEN_TEST_DATABASE_URL)")
	}
	tp := startPool(t, pool.Config{Size: 3, AcquireTimeout: 30 * time.Second}, nil)
	ctx := ctxT(t)
	const clients = 8
	conns := make([]*pgx.Conn, clients)
	for i := range conns {
		conns[i] = connectPgx(t, ctx, tp, "tok-acme", pgx.QueryExecModeCacheStatement)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	failures := 0
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var n int
				if err := c.QueryRow(ctx, "SELECT count(*)::int FROM orders WHERE total > $1", 0).Scan(&n); err != nil {
					mu.Lock()
					failures++
					mu.Unlock()
					if c.IsClosed() {
						return
					}
				}
			}
		}()
	}
	// The test cluster runs with synchronous_commit off: make the schema
	// durable before the immediate-mode stop.
	admin, err := pgx.Connect(ctx, tp.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	admin.Close(ctx)
	time.Sleep(300 * time.Millisecond)
	if err := cl.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("%d statements failed during the restart", failures)
	recovered := 0
	for i, c := range conns {
		if c.IsClosed() {
			c = connectPgx(t, ctx, tp, "tok-acme", pgx.QueryExecModeCacheStatement)
		} else {
			recovered++
		}
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*)::int FROM orders WHERE total > $1", 0).Scan(&n); err != nil || n != 3 {
			t.Errorf("client %d after the restart: %d, %v", i, n, err)
		}
	}
	if recovered != clients {
		t.Errorf("%d of %d sessions survived the restart, want all", recovered, clients)
	}
}

// pgbench -M prepared (libpq, named protocol-level statements) through a
// small transaction pool. One client per thread: pgbench prepares with a
// blocking PQprepare, so a thread waiting for a pooled connection cannot
// finish the transactions of its other clients that hold the pool's
// connections (with -c above -j, keep the pool at least -c/-j).
func TestPoolPgbenchPrepared(t *testing.T) {
	bin, err := exec.LookPath("pgbench")
	if err != nil {
		matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
		if len(matches) == 0 {
			t.Skip("pgbench not installed")
		}
		bin = matches[len(matches)-1]
	}
	tp := startPool(t, pool.Config{Size: 2, AcquireTimeout: 30 * time.Second}, nil)
	script := filepath.Join(t.TempDir(), "bench.sql")
	if err := os.WriteFile(script, []byte(`\set id random(1, 5)
BEGIN;
SELECT total FROM orders WHERE order_id = :id;
SELECT count(*) FROM orders WHERE total > :id;
END;
SELECT sum(total) FROM orders;
`), 0o644); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(tp.addr)
	cmd := exec.CommandContext(ctxT(t), bin, "-n", "-M", "prepared", "-c", "8", "-j", "8", "-t", "40", "-f", script,
		"-h", host, "-p", port, "-U", "alice", "wh")
	cmd.Env = append(os.Environ(), "PGPASSWORD=tok-acme", "PGSSLMODE=disable")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pgbench: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "number of transactions actually processed: 320/320") {
		t.Fatalf("pgbench output:\n%s", out)
	}
	if !strings.Contains(string(out), "number of failed transactions: 0") && strings.Contains(string(out), "failed transactions") {
		t.Fatalf("pgbench reports failures:\n%s", out)
	}
}

// The proxy's statement_timeout is a startup parameter of the pooled
// connections: a client's lower SET is undone for the next client by the
// RESET ALL, which returns to it, not to the warehouse default.
func TestPoolStatementTimeoutSurvivesReset(t *testing.T) {
	tp := startPool(t, pool.Config{Size: 1}, func(cfg *Config, _ *Deps) { cfg.StatementTimeout = 7 * time.Second })
	ctx := ctxT(t)
	a := connectPgx(t, ctx, tp, "tok-acme", pgx.QueryExecModeSimpleProtocol)
	b := connectPgx(t, ctx, tp, "tok-globex", pgx.QueryExecModeSimpleProtocol)
	show := func(c *pgx.Conn) string {
		t.Helper()
		var v string
		if err := c.QueryRow(ctx, "SHOW statement_timeout").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if _, err := a.Exec(ctx, "SET statement_timeout TO '2s'"); err != nil {
		t.Fatal(err)
	}
	if got := show(b); got != "7s" {
		t.Errorf("next client: statement_timeout %q, want the proxy's 7s", got)
	}
	if got := show(a); got != "2s" {
		t.Errorf("the client's own: %q, want 2s", got)
	}
	if _, err := a.Exec(ctx, "RESET statement_timeout"); err != nil {
		t.Fatal(err)
	}
	if got := show(a); got != "7s" {
		t.Errorf("after RESET: %q, want 7s", got)
	}
}

// Connections idle past the limit are closed even when no client comes.
func TestPoolIdleTimeout(t *testing.T) {
	tp := startPool(t, pool.Config{Size: 2, IdleTimeout: 300 * time.Millisecond}, nil)
	ctx := ctxT(t)
	conn := connectPgx(t, ctx, tp, "tok-acme", pgx.QueryExecModeSimpleProtocol)
	if _, err := conn.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	for i := 0; len(backendPIDs(t, ctx, tp.dbURL)) > 0; i++ {
		if i == 100 {
			t.Fatal("idle warehouse connections were not closed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := conn.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("after the reaper: %v", err)
	}
}

// A statement another session prepared and described (the same rewritten
// text: a session of the same tenant) is prepared and described without a
// warehouse connection: here the pool's only connection is held by an open
// transaction, and the second session still prepares at once. It runs once
// the connection is free.
func TestPoolDescribesFromCache(t *testing.T) {
	tp := startPool(t, pool.Config{Size: 1, AcquireTimeout: 2 * time.Second}, nil)
	ctx := ctxT(t)
	const q = "SELECT total, order_id FROM orders WHERE order_id > $1 ORDER BY order_id"
	a := tp.connect(t, ctx, "tok-acme")
	first, err := a.Prepare(ctx, "s1", q, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(ctx, "BEGIN").ReadAll(); err != nil {
		t.Fatal(err)
	}
	b := tp.connect(t, ctx, "tok-acme")
	start := time.Now()
	second, err := b.Prepare(ctx, "s2", q, nil)
	if err != nil {
		t.Fatalf("prepare while the pool's connection is busy: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("prepare took %s: it waited for a connection", d)
	}
	if !cmp.Equal(first.ParamOIDs, second.ParamOIDs) || len(second.Fields) != 2 || second.Fields[0].DataTypeOID != first.Fields[0].DataTypeOID ||
		string(second.Fields[1].Name) != "order_id" {
		t.Errorf("described from cache: %+v, want %+v", second, first)
	}
	if _, err := a.Exec(ctx, "COMMIT").ReadAll(); err != nil {
		t.Fatal(err)
	}
	res := b.ExecPrepared(ctx, "s2", [][]byte{[]byte("0")}, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 3 || string(res.Rows[0][0]) != "10" {
		t.Errorf("acme's rows: %v %q", res.Err, res.Rows)
	}
}

// What the cache told a client is checked when the statement is first
// bound: a result type changed since is PostgreSQL's 0A000, not rows of
// another shape.
func TestPoolCachedDescribeChecksShape(t *testing.T) {
	tp := startPool(t, pool.Config{Size: 1}, nil)
	ctx := ctxT(t)
	const q = "SELECT total FROM orders WHERE order_id = $1"
	a := tp.connect(t, ctx, "tok-acme")
	if _, err := a.Prepare(ctx, "s", q, nil); err != nil {
		t.Fatal(err)
	}
	admin := tp.connectDirect(t, ctx)
	// A fresh warehouse connection, where the statement is prepared anew
	// with the new type and PostgreSQL itself has nothing to complain of.
	if _, err := admin.Exec(ctx, "ALTER TABLE orders ALTER total TYPE bigint; "+
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()").ReadAll(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the FATAL reaches the idle connection
	b := tp.connect(t, ctx, "tok-acme")
	if !cachedShapeRefused(t, ctx, b, "s", q) {
		t.Skip("not described from cache: nothing to check")
	}
}

// cachedShapeRefused prepares q (orders.total, now bigint) as name on c and,
// when the proxy described it from the pool's cache (total still int4),
// checks that running it gets 0A000 and leaves the session usable. It
// reports whether the Describe came from the cache.
func cachedShapeRefused(t *testing.T, ctx context.Context, c *pgconn.PgConn, name, q string) bool {
	t.Helper()
	sd, err := c.Prepare(ctx, name, q, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sd.Fields[0].DataTypeOID != 23 {
		return false
	}
	res := c.ExecPrepared(ctx, name, [][]byte{[]byte("1")}, nil, nil).Read()
	wantPgErr(t, res.Err, "0A000", "cached plan must not change result type")
	if _, err := c.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Errorf("connection unusable after 0A000: %v", err)
	}
	return true
}

// A client that pipelines more than fits in the sockets' buffers before its
// Sync, reading the answers as they come (as libpq's pipeline mode does),
// must not deadlock the proxy: the warehouse stops reading while it is
// blocked writing answers that nobody reads.
func TestPoolLargePipeline(t *testing.T) {
	tp := startPool(t, pool.Config{Size: 1}, nil)
	conn, fe := rawSession(t, tp, "tok-acme")
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	const execs, rowsPer = 400, 4
	param := []byte(strings.Repeat("x", 16<<10))
	sent := make(chan error, 1)
	go func() {
		fe.Send(&pgproto3.Parse{Name: "big", Query: fmt.Sprintf("SELECT $1::text FROM generate_series(1, %d)", rowsPer)})
		for i := 0; i < execs; i++ {
			fe.Send(&pgproto3.Bind{PreparedStatement: "big", Parameters: [][]byte{param}})
			fe.Send(&pgproto3.Execute{})
			if i%8 == 7 {
				if err := fe.Flush(); err != nil {
					sent <- err
					return
				}
			}
		}
		fe.Send(&pgproto3.Sync{})
		sent <- fe.Flush()
	}()
	rows := 0
	for {
		m, err := fe.Receive()
		if err != nil {
			t.Fatalf("after %d rows: %v", rows, err)
		}
		switch m := m.(type) {
		case *pgproto3.DataRow:
			rows++
		case *pgproto3.ErrorResponse:
			t.Fatalf("error: %s", m.Message)
		}
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if rows != execs*rowsPer {
		t.Fatalf("got %d rows, want %d", rows, execs*rowsPer)
	}
}

// Clients that share one warehouse connection each see their own startup
// application_name, as on PostgreSQL; one that sent none sees the proxy's.
func TestPoolApplicationName(t *testing.T) {
	tp := startPool(t, pool.Config{Size: 1}, nil)
	ctx := ctxT(t)
	names := []string{"dash-a", "dash-b", ""}
	conns := make([]*pgconn.PgConn, len(names))
	for i, n := range names {
		extra := ""
		if n != "" {
			extra = "application_name=" + n
		}
		c, err := pgconn.Connect(ctx, tp.url("tok-acme", "wh", extra))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		conns[i] = c
	}
	for round := 0; round < 3; round++ {
		for i, c := range conns {
			want := names[i]
			if want == "" {
				want = "pgwarden"
			}
			for _, sql := range []string{"SHOW application_name", "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"} {
				res, err := c.Exec(ctx, sql).ReadAll()
				if err != nil {
					t.Fatal(err)
				}
				if got := string(res[0].Rows[0][0]); got != want {
					t.Fatalf("round %d, client %d: %s = %q, want %q", round, i, sql, got, want)
				}
			}
		}
	}
}

// A warehouse connection keeps at most MaxPreparedStatements statements
// prepared: the least recently used is closed to make room, and prepared
// again, unseen by the client, when it is next used.
func TestPoolPreparedStatementCap(t *testing.T) {
	const max, distinct = 3, 8
	tp := startPool(t, pool.Config{Size: 1, MaxPreparedStatements: max}, nil)
	ctx := ctxT(t)
	conn := connectPgx(t, ctx, tp, "tok-acme", pgx.QueryExecModeCacheStatement)
	for round := 0; round < 3; round++ {
		for i := 0; i < distinct; i++ {
			var got int
			q := fmt.Sprintf("SELECT %d + $1::int", i)
			if err := conn.QueryRow(ctx, q, round).Scan(&got); err != nil {
				t.Fatalf("round %d, statement %d: %v", round, i, err)
			}
			if got != i+round {
				t.Fatalf("round %d, statement %d: got %d", round, i, got)
			}
			// One connection in the pool: this is the one that ran q.
			var n int
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'pgw_%'", pgx.QueryExecModeSimpleProtocol).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n > max {
				t.Fatalf("round %d, statement %d: %d statements prepared on the connection, want at most %d", round, i, n, max)
			}
		}
	}
	// An eviction skipped after an error in its batch leaves the statement
	// known as prepared: preparing it again must not fail with 42P05.
	batch := &pgx.Batch{}
	batch.Queue("SELECT 1/0")
	for i := 0; i < distinct; i++ {
		batch.Queue(fmt.Sprintf("SELECT %d + $1::int", i), 1)
	}
	_ = conn.SendBatch(ctx, batch).Close()
	for i := 0; i < distinct; i++ {
		var got int
		if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT %d + $1::int", i), 1).Scan(&got); err != nil || got != i+1 {
			t.Fatalf("after the failed batch, statement %d: %d %v", i, got, err)
		}
	}
}
