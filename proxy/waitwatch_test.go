package proxy

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pgwarden/pgwarden/proxy/pool"
)

// waitPool serves a pool of one connection with an acquire timeout far
// longer than any wait the tests allow, so that only the watcher can end
// a wait in time. It accepts TLS and records the logs.
type waitPool struct {
	*testProxy
	reg  *prometheus.Registry
	logs *observer.ObservedLogs
}

func startWaitPool(t *testing.T) *waitPool {
	t.Helper()
	if !canWatchGone {
		t.Skip("waiting clients are watched on Linux only")
	}
	cert, key := writeSelfSignedCert(t)
	reg := prometheus.NewRegistry()
	core, logs := observer.New(zap.DebugLevel)
	tp := startPool(t, pool.Config{Size: 1, AcquireTimeout: 30 * time.Second}, func(c *Config, d *Deps) {
		c.TLSCertFile, c.TLSKeyFile = cert, key
		d.Metrics = reg
		d.Logger = zap.New(zapcore.NewTee(d.Logger.Core(), core))
	})
	return &waitPool{testProxy: tp, reg: reg, logs: logs}
}

// hold takes the pool's only connection inside a transaction.
func (wp *waitPool) hold(t *testing.T, ctx context.Context) pgx.Tx {
	t.Helper()
	holder := connectPgx(t, ctx, wp.testProxy, "tok-acme", pgx.QueryExecModeSimpleProtocol)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	return tx
}

// waiter logs in over sslmode and returns the raw connection (TLS or not).
func (wp *waitPool) waiter(t *testing.T, ctx context.Context, sslmode string) (net.Conn, *pgproto3.Frontend) {
	t.Helper()
	return hijacked(t, ctx, "postgres://alice:tok-globex@"+wp.addr+"/wh?sslmode="+sslmode, 20*time.Second)
}

// send writes a simple query.
func send(t *testing.T, fe *pgproto3.Frontend, sql string) {
	t.Helper()
	fe.Send(&pgproto3.Query{String: sql})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
}

// await polls a metric until it has the wanted value. It gives up after
// 10 s, a third of the acquire timeout: a wait that only the timeout ends
// fails the test.
func (wp *waitPool) await(t *testing.T, name, label, value string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := metricValue(t, wp.reg, name, label, value)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s{%s=%q} = %v, want %v", name, label, value, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (wp *waitPool) awaitWaiting(t *testing.T, n float64) {
	t.Helper()
	wp.await(t, "pgwarden_proxy_pool_waiting_clients", "warehouse", "wh", n)
}

// waitsOnLoop checks that the one waiter waits parked on its event loop,
// beside the holder, over TLS (sslmode require) or not.
func (wp *waitPool) waitsOnLoop(t *testing.T, sslmode string) {
	t.Helper()
	if on := int(testutil.ToFloat64(wp.srv.loopStats.on)); on != 2 {
		t.Fatalf("%d sessions on an event loop while a client (sslmode %s) waits, want 2", on, sslmode)
	}
}

// ordersWith counts the rows with order_id id, straight on the warehouse.
func (wp *waitPool) ordersWith(t *testing.T, ctx context.Context, id int) int {
	t.Helper()
	conn, err := pgx.Connect(ctx, wp.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders WHERE order_id = $1", id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A client that disconnects while it waits for a pooled connection leaves
// the queue at once, not at the acquire timeout; its session ends quietly
// and its statement never runs, even once the connection comes free.
func TestPoolWaiterDisconnects(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sslmode string
		leave   func(t *testing.T, nc net.Conn, fe *pgproto3.Frontend)
	}{
		{"close", "disable", func(t *testing.T, nc net.Conn, fe *pgproto3.Frontend) { nc.Close() }},
		{"reset", "disable", func(t *testing.T, nc net.Conn, fe *pgproto3.Frontend) {
			nc.(*net.TCPConn).SetLinger(0)
			nc.Close()
		}},
		// A driver closing cleanly: Terminate, then FIN behind it.
		{"terminate", "disable", func(t *testing.T, nc net.Conn, fe *pgproto3.Frontend) {
			fe.Send(&pgproto3.Terminate{})
			fe.Flush()
			nc.Close()
		}},
		// Pipelined bytes first; the FIN comes later and is still seen.
		{"pipeline then close", "disable", func(t *testing.T, nc net.Conn, fe *pgproto3.Frontend) {
			send(t, fe, "INSERT INTO orders VALUES ('globex', 98, 98)")
			time.Sleep(100 * time.Millisecond)
			nc.Close()
		}},
		// TLS: close_notify, then FIN.
		{"tls close", "require", func(t *testing.T, nc net.Conn, fe *pgproto3.Frontend) { nc.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wp := startWaitPool(t)
			ctx := ctxT(t)
			tx := wp.hold(t, ctx)
			nc, fe := wp.waiter(t, ctx, tc.sslmode)
			send(t, fe, "INSERT INTO orders VALUES ('globex', 99, 99)")
			wp.awaitWaiting(t, 1)
			wp.waitsOnLoop(t, tc.sslmode)
			tc.leave(t, nc, fe)

			wp.awaitWaiting(t, 0)
			wp.await(t, "pgwarden_proxy_pool_waits_abandoned_total", "warehouse", "wh", 1)
			wp.await(t, "pgwarden_proxy_connections", "", "", 1) // the holder's

			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			wp.await(t, "pgwarden_proxy_pool_connections", "state", "idle", 1)
			if n := wp.ordersWith(t, ctx, 99) + wp.ordersWith(t, ctx, 98); n != 0 {
				t.Errorf("the abandoned statements inserted %d rows", n)
			}
			var n int
			if err := tx.Conn().QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 3 {
				t.Errorf("the pool after the abandoned wait: count = %d, %v", n, err)
			}

			if got := wp.logs.FilterMessage("client disconnected while waiting for a warehouse connection").Len(); got != 1 {
				t.Errorf("logged the disconnect %d times, want 1", got)
			}
			for _, e := range wp.logs.All() {
				waiter := e.ContextMap()["session"] == "s-globex"
				if e.Level >= zap.WarnLevel || waiter && e.Level > zap.DebugLevel && e.Message != "session started" {
					t.Errorf("logged %s %q %v", e.Level, e.Message, e.ContextMap())
				}
			}
		})
	}
}

// A waiting client that pipelines more is alive: it keeps its place, and
// both statements run once the connection comes free.
func TestPoolWaiterPipelines(t *testing.T) {
	for _, sslmode := range []string{"disable", "require"} {
		t.Run(sslmode, func(t *testing.T) {
			wp := startWaitPool(t)
			ctx := ctxT(t)
			tx := wp.hold(t, ctx)
			_, fe := wp.waiter(t, ctx, sslmode)
			send(t, fe, "INSERT INTO orders VALUES ('globex', 101, 1)")
			wp.awaitWaiting(t, 1)
			wp.waitsOnLoop(t, sslmode)
			send(t, fe, "INSERT INTO orders VALUES ('globex', 102, 2)")
			// Time for a watcher that took the bytes for a disconnect to
			// act (this cannot make the test pass).
			time.Sleep(200 * time.Millisecond)
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			want := []string{"CommandComplete(INSERT 0 1)", "ReadyForQuery(I)"}
			for i := range 2 {
				if got := readUntilReady(t, fe); !slices.Equal(got, want) {
					t.Fatalf("statement %d: %v, want %v", i+1, got, want)
				}
			}
			if n := wp.ordersWith(t, ctx, 101) + wp.ordersWith(t, ctx, 102); n != 2 {
				t.Errorf("inserted %d rows, want 2", n)
			}
			if got := metricValue(t, wp.reg, "pgwarden_proxy_pool_waits_abandoned_total", "warehouse", "wh"); got != 0 {
				t.Errorf("abandoned waits = %v, want 0", got)
			}
		})
	}
}

// A revocation ends a wait for a pooled connection at once: the session
// ends with FATAL 28000 while the connection is still taken, and its
// statement never runs.
func TestPoolWaiterRevoked(t *testing.T) {
	wp := startWaitPool(t)
	ctx := ctxT(t)
	tx := wp.hold(t, ctx)
	_, fe := wp.waiter(t, ctx, "disable")
	send(t, fe, "INSERT INTO orders VALUES ('globex', 104, 4)")
	wp.awaitWaiting(t, 1)
	wp.waitsOnLoop(t, "disable")
	wp.auth.revoke("s-globex")
	// While the connection is still held: the wait ends with the session.
	for {
		m, err := fe.Receive()
		if err != nil {
			t.Fatalf("no revocation error: %v", err)
		}
		if er, ok := m.(*pgproto3.ErrorResponse); ok {
			if er.Code != "28000" || er.Severity != "FATAL" {
				t.Fatalf("error %s %s %q, want FATAL 28000", er.Severity, er.Code, er.Message)
			}
			break
		}
	}
	wp.awaitWaiting(t, 0)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := wp.ordersWith(t, ctx, 104); n != 0 {
		t.Errorf("the revoked session's statement inserted %d rows", n)
	}
}

// A CancelRequest ends a wait for a pooled connection with 57014, as it
// would end a statement waiting on a lock in PostgreSQL; the statement
// never runs and the session goes on. With nothing running or waiting, a
// cancel does nothing.
func TestPoolWaiterCancelled(t *testing.T) {
	wp := startWaitPool(t)
	ctx := ctxT(t)
	tx := wp.hold(t, ctx)
	waiter := wp.connect(t, ctx, "tok-globex")
	done := make(chan error, 1)
	go func() {
		_, err := waiter.Exec(ctx, "INSERT INTO orders VALUES ('globex', 103, 3)").ReadAll()
		done <- err
	}()
	wp.awaitWaiting(t, 1)
	wp.waitsOnLoop(t, "disable")
	if err := waiter.CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		wantPgErr(t, err, "57014", "canceling statement due to user request")
	case <-time.After(10 * time.Second):
		t.Fatal("the cancelled wait went on")
	}
	wp.awaitWaiting(t, 0)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := wp.ordersWith(t, ctx, 103); n != 0 {
		t.Errorf("the cancelled statement inserted %d rows", n)
	}
	if err := waiter.CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // a stray cancel would land now
	if _, err := waiter.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatalf("after the cancels: %v", err)
	}
}
