//go:build linux

package proxy

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pgwarden/pgwarden/proxy/pool"
)

// bothLoopIO runs f as two subtests: its loops on io_uring (skipped where
// the kernel allows none) and on epoll. Every other test runs on the
// default, io_uring where allowed.
func bothLoopIO(t *testing.T, f func(t *testing.T)) {
	t.Run("io_uring", func(t *testing.T) {
		if err := ringSupport(); err != nil {
			t.Skipf("no io_uring here: %v", err)
		}
		f(t)
	})
	t.Run("epoll", f)
}

// startLoopPool is a transaction pool whose sessions run on one event loop,
// so that every session of a test shares it.
func startLoopPool(t *testing.T, pc pool.Config, mod func(*Config, *Deps)) *testProxy {
	t.Helper()
	return startPool(t, pc, func(c *Config, d *Deps) {
		c.EventLoops = 1
		if mod != nil {
			mod(c, d)
		}
	})
}

// loopCounts is how many sessions started on a loop, run on one now and
// left one, by reason.
func loopCounts(tp *testProxy) (total, on int, leaves map[string]int) {
	m := tp.srv.loopStats
	leaves = map[string]int{}
	for _, why := range []string{"pool_dial", "relay", "throttle", "session_store", "long_statement", "cancel", "warehouse_socket", "client_socket"} {
		if n := int(testutil.ToFloat64(m.leaves.WithLabelValues(why))); n > 0 {
			leaves[why] = n
		}
	}
	return int(testutil.ToFloat64(m.total)), int(testutil.ToFloat64(m.on)), leaves
}

// wantOnLoop checks that total sessions started on the loop and on run on
// it now; a session that left it (to dial the pool's next connection, say)
// has come back.
func wantOnLoop(t *testing.T, tp *testProxy, total, on int) {
	t.Helper()
	gotTotal, gotOn, left := loopCounts(tp)
	n := 0
	for _, k := range left {
		n += k
	}
	for _, io := range []string{"io_uring", "epoll"} {
		if strings.Contains(t.Name(), "/"+io) && testutil.ToFloat64(tp.srv.loopStats.loops.WithLabelValues(io)) < 1 {
			t.Fatalf("no event loop on %s", io)
		}
	}
	back := int(testutil.ToFloat64(tp.srv.loopStats.returns))
	if gotTotal != total || gotOn != on || n != back {
		t.Fatalf("event loop: %d sessions started, %d on it now, left %v, came back %d times; want %d, %d, all back", gotTotal, gotOn, left, back, total, on)
	}
}

// Every protocol path of a session stays on the loop: simple and extended
// queries, prepared statements, a transaction that holds its connection
// between statements, a large result, an error, COPY out; over TLS too.
func TestEventLoopProtocols(t *testing.T) { bothLoopIO(t, testEventLoopProtocolsIO) }

func testEventLoopProtocolsIO(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(sslName(tlsOn), func(t *testing.T) { testEventLoopProtocols(t, tlsOn) })
	}
}

func sslName(tlsOn bool) string {
	if tlsOn {
		return "tls"
	}
	return "plain"
}

// startLoopPoolTLS is startLoopPool accepting TLS when tlsOn.
func startLoopPoolTLS(t *testing.T, pc pool.Config, tlsOn bool) *testProxy {
	t.Helper()
	if !tlsOn {
		return startLoopPool(t, pc, nil)
	}
	cert, key := writeSelfSignedCert(t)
	return startLoopPool(t, pc, func(c *Config, _ *Deps) { c.TLSCertFile, c.TLSKeyFile = cert, key })
}

// connectSSL is tp.connect over TLS when tlsOn.
func (tp *testProxy) connectSSL(t *testing.T, ctx context.Context, token string, tlsOn bool) *pgconn.PgConn {
	t.Helper()
	if !tlsOn {
		return tp.connect(t, ctx, token)
	}
	c, err := pgconn.Connect(ctx, fmt.Sprintf("postgres://alice:%s@%s/wh?sslmode=require", token, tp.addr))
	if err != nil {
		t.Fatalf("connect over TLS as %s: %v", token, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func testEventLoopProtocols(t *testing.T, tlsOn bool) {
	tp := startLoopPoolTLS(t, pool.Config{Size: 2}, tlsOn)
	ctx := ctxT(t)
	c := tp.connectSSL(t, ctx, "tok-acme", tlsOn)
	if _, err := c.Exec(ctx, "SELECT 1; SELECT 2").ReadAll(); err != nil {
		t.Fatal(err)
	}
	rr := c.ExecParams(ctx, "SELECT g FROM generate_series(1, $1::int) g", [][]byte{[]byte("20000")}, nil, nil, nil).Read()
	if rr.Err != nil || len(rr.Rows) != 20000 || string(rr.Rows[19999][0]) != "20000" {
		t.Fatalf("extended: %d rows, %v", len(rr.Rows), rr.Err)
	}
	if _, err := c.Prepare(ctx, "s1", "SELECT $1::int + 1", nil); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		rr := c.ExecPrepared(ctx, "s1", [][]byte{fmt.Appendf(nil, "%d", i)}, nil, nil).Read()
		if rr.Err != nil || string(rr.Rows[0][0]) != fmt.Sprint(i+1) {
			t.Fatalf("prepared %d: %v %v", i, rr.Rows, rr.Err)
		}
	}
	for _, q := range []string{"BEGIN", "CREATE TEMP TABLE t (x int)", "INSERT INTO t SELECT generate_series(1, 10)"} {
		if _, err := c.Exec(ctx, q).ReadAll(); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	rr = c.ExecParams(ctx, "SELECT sum(x) FROM t", nil, nil, nil, nil).Read()
	if rr.Err != nil || string(rr.Rows[0][0]) != "55" {
		t.Fatalf("in the transaction: %v %v", rr.Rows, rr.Err)
	}
	if _, err := c.Exec(ctx, "ROLLBACK").ReadAll(); err != nil {
		t.Fatal(err)
	}
	_, err := c.Exec(ctx, "SELECT 1/0").ReadAll()
	wantPgErr(t, err, "22012", "division by zero")
	var out strings.Builder
	if _, err := c.CopyTo(ctx, &out, "COPY (SELECT g FROM generate_series(1, 3) g) TO STDOUT"); err != nil || out.String() != "1\n2\n3\n" {
		t.Fatalf("copy out: %q %v", out.String(), err)
	}
	wantOnLoop(t, tp, 1, 1)
	c.Close(ctx)
	for i := 0; ; i++ {
		if _, on, _ := loopCounts(tp); on == 0 {
			break
		}
		if i > 400 {
			t.Fatal("the session ended but still counts as on the loop")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A client that stops reading a large result leaves the loop's other
// sessions unaffected: the loop waits for its socket to drain, it does not
// block on it. Over TLS too.
func TestEventLoopSlowClient(t *testing.T) { bothLoopIO(t, testEventLoopSlowClientIO) }

func testEventLoopSlowClientIO(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(sslName(tlsOn), func(t *testing.T) { testEventLoopSlowClient(t, tlsOn) })
	}
}

func testEventLoopSlowClient(t *testing.T, tlsOn bool) {
	tp := startLoopPoolTLS(t, pool.Config{Size: 2}, tlsOn)
	ctx := ctxT(t)
	slow := tp.connectSSL(t, ctx, "tok-acme", tlsOn)
	other := tp.connectSSL(t, ctx, "tok-globex", tlsOn)
	const rows = 40000 // 40 MB: more than the sockets between them buffer
	rr := slow.ExecParams(ctx, "SELECT repeat('x', 1000) FROM generate_series(1, $1::int)", [][]byte{[]byte(fmt.Sprint(rows))}, nil, nil, nil)
	n := 0
	for n < 10 && rr.NextRow() {
		n++
	}
	// The slow client reads nothing more until the other session has run
	// twenty statements on the same loop.
	qctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for i := range 20 {
		r := other.ExecParams(qctx, "SELECT $1::int", [][]byte{fmt.Appendf(nil, "%d", i)}, nil, nil, nil).Read()
		if r.Err != nil || string(r.Rows[0][0]) != fmt.Sprint(i) {
			t.Fatalf("the other session, statement %d, while a client stalls: %v %v", i, r.Rows, r.Err)
		}
	}
	for rr.NextRow() {
		n++
	}
	if _, err := rr.Close(); err != nil || n != rows {
		t.Fatalf("the slow client got %d rows of %d: %v", n, rows, err)
	}
	wantOnLoop(t, tp, 2, 2)
}

// Interrupts reach a session parked on the loop: the idle timeout, a
// revocation while it waits for its client or for the warehouse (its
// statement is cancelled), and a shutdown.
func TestEventLoopInterrupts(t *testing.T) { bothLoopIO(t, testEventLoopInterruptsIO) }

func testEventLoopInterruptsIO(t *testing.T) {
	t.Run("idle timeout", func(t *testing.T) {
		tp := startLoopPool(t, pool.Config{Size: 2}, func(c *Config, _ *Deps) { c.IdleTimeout = 300 * time.Millisecond })
		_, fe := rawSession(t, tp, "tok-acme")
		fe.Send(&pgproto3.Query{String: "SELECT pg_sleep(0.6)"})
		fe.Flush()
		wantSeq(t, readUntilReady(t, fe), "RowDescription", "DataRow()", "CommandComplete(SELECT 1)", "ReadyForQuery(I)")
		wantOnLoop(t, tp, 1, 1)
		wantFatal(t, fe, "57P05")
	})
	t.Run("revoked while idle", func(t *testing.T) {
		tp := startLoopPool(t, pool.Config{Size: 2}, nil)
		fe := idleOnLoop(t, tp, "tok-globex")
		tp.auth.revoke("s-globex")
		wantFatal(t, fe, "28000")
	})
	for _, tc := range []struct{ name, sql string }{
		{"revoked while its statement runs", "SELECT pg_sleep(30)"},
		{"revoked while its client stalls", "SELECT repeat('x', 100000) FROM generate_series(1, 5000)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := startLoopPool(t, pool.Config{Size: 2}, nil)
			_, running := sendRunning(t, ctxT(t), tp, tc.sql)
			time.Sleep(300 * time.Millisecond) // a large result fills the socket buffers
			wantOnLoop(t, tp, 1, 1)
			tp.auth.revoke("s-acme")
			awaitStopped(t, running, "the revoked session's statement still runs on the warehouse")
		})
	}
	t.Run("shutdown", func(t *testing.T) {
		tp := startLoopPool(t, pool.Config{Size: 2}, nil)
		fe := idleOnLoop(t, tp, "tok-acme")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tp.srv.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		wantFatal(t, fe, "57P01")
	})
}

// idleOnLoop is a session that has run a statement and waits, parked on
// the loop, for its client.
func idleOnLoop(t *testing.T, tp *testProxy, token string) *pgproto3.Frontend {
	t.Helper()
	_, fe := rawSession(t, tp, token)
	fe.Send(&pgproto3.Query{String: "SELECT 1"})
	fe.Flush()
	wantSeq(t, readUntilReady(t, fe), "RowDescription", "DataRow(1)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)")
	wantOnLoop(t, tp, 1, 1)
	return fe
}

func wantFatal(t *testing.T, fe *pgproto3.Frontend, code string) {
	t.Helper()
	m, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	if got := describe(m); got != "Error("+code+")" {
		t.Fatalf("got %s, want Error(%s)", got, code)
	}
	if _, err := fe.Receive(); err == nil {
		t.Fatal("connection still open after the FATAL")
	}
}

// awaitQueued polls, at most tries times 10 ms, until n sessions queue for
// pool "wh"'s connections; it fails with why otherwise.
func awaitQueued(t *testing.T, tp *testProxy, n, tries int, why string) {
	t.Helper()
	p := tp.srv.pools["wh"]
	for i := 0; ; i++ {
		if queued := p.Scheduler().Queued(); queued == n {
			return
		}
		if i > tries {
			t.Fatal(why)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A session waits for a pooled connection parked on its loop, and leaves
// the loop only to dial one or to rewrite a long statement, coming back on
// after.
func TestEventLoopLeaves(t *testing.T) { bothLoopIO(t, testEventLoopLeavesIO) }

func testEventLoopLeavesIO(t *testing.T) {
	tp := startLoopPool(t, pool.Config{Size: 2, AcquireTimeout: 30 * time.Second}, nil)
	ctx := ctxT(t)
	holder := tp.connect(t, ctx, "tok-acme")
	dialer := tp.connect(t, ctx, "tok-acme")
	waiter := tp.connect(t, ctx, "tok-globex")
	// The first takes the connection the pool opened at startup; the second
	// dials the pool's other one, off the loop.
	for _, c := range []*pgconn.PgConn{holder, dialer} {
		if _, err := c.Exec(ctx, "BEGIN; SELECT 1").ReadAll(); err != nil {
			t.Fatal(err)
		}
	}
	if total, on, leaves := loopCounts(tp); total != 3 || on != 2 || !maps.Equal(leaves, map[string]int{"pool_dial": 1}) {
		t.Fatalf("event loop: %d sessions started, %d on it now, left %v; want 3, 2, one dial", total, on, leaves)
	}
	done := make(chan *pgconn.Result, 1)
	go func() { done <- waiter.ExecParams(ctx, "SELECT 42", nil, nil, nil, nil).Read() }()
	awaitQueued(t, tp, 1, 400, "the third session did not queue")
	if _, on, leaves := loopCounts(tp); on != 2 || len(leaves) != 1 {
		t.Fatalf("the queued session left its loop: %d on it, left %v", on, leaves)
	}
	if _, err := holder.Exec(ctx, "COMMIT").ReadAll(); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.Err != nil || string(r.Rows[0][0]) != "42" {
		t.Fatalf("the waiter: %v %v", r.Rows, r.Err)
	}
	if _, err := dialer.Exec(ctx, "COMMIT").ReadAll(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		for _, c := range []*pgconn.PgConn{waiter, dialer} {
			r := c.ExecParams(ctx, "SELECT $1::int", [][]byte{fmt.Appendf(nil, "%d", i)}, nil, nil, nil).Read()
			if r.Err != nil || string(r.Rows[0][0]) != fmt.Sprint(i) {
				t.Fatalf("after the wait: %v %v", r.Rows, r.Err)
			}
		}
	}
	long := "SELECT 1 AS x" + strings.Repeat(" ", loopStatementMax) + " WHERE true"
	if _, err := holder.Exec(ctx, long).ReadAll(); err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatal(err)
	}
	total, on, leaves := loopCounts(tp)
	if total != 3 || on != 3 || !maps.Equal(leaves, map[string]int{"pool_dial": 1, "long_statement": 1}) || testutil.ToFloat64(tp.srv.loopStats.returns) != 2 {
		t.Fatalf("event loop: %d sessions started, %d on it now, left %v, %v returns", total, on, leaves, testutil.ToFloat64(tp.srv.loopStats.returns))
	}
}

// With event_loops at -1 every session runs on goroutines of its own.
func TestEventLoopOff(t *testing.T) {
	tp := startPool(t, pool.Config{Size: 2}, func(c *Config, _ *Deps) { c.EventLoops = -1 })
	ctx := ctxT(t)
	c := tp.connect(t, ctx, "tok-acme")
	if _, err := c.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatal(err)
	}
	if total, _, _ := loopCounts(tp); total != 0 || tp.srv.loops.Load() != nil {
		t.Fatalf("%d sessions on an event loop with event_loops -1", total)
	}
}

// Sessions on several loops share a pool's connections: a connection idle
// in the set of the loop that used it last is taken out of it by a session
// of another loop, or of none.
func TestEventLoopsShareConnections(t *testing.T) { bothLoopIO(t, testEventLoopsShareConnections) }

func testEventLoopsShareConnections(t *testing.T) {
	tp := startPool(t, pool.Config{Size: 3, AcquireTimeout: 30 * time.Second}, func(c *Config, _ *Deps) { c.EventLoops = 3 })
	ctx := ctxT(t)
	const sessions, statements = 12, 40
	errs := make(chan error, sessions)
	for i := range sessions {
		c := tp.connect(t, ctx, "tok-acme")
		go func() {
			for j := range statements {
				n := i*statements + j
				r := c.ExecParams(ctx, "SELECT $1::int", [][]byte{fmt.Appendf(nil, "%d", n)}, nil, nil, nil).Read()
				if r.Err != nil || len(r.Rows) != 1 || string(r.Rows[0][0]) != fmt.Sprint(n) {
					errs <- fmt.Errorf("session %d, statement %d: %v %v", i, j, r.Rows, r.Err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range sessions {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if total, _, _ := loopCounts(tp); total != sessions {
		t.Fatalf("%d sessions started on the loops, want %d", total, sessions)
	}
}

// A session queued on its loop whose socket the server closes (the last
// step of a hard shutdown) leaves the queue then, not at the end of its
// acquire timeout. Its client is a raw one, which sends no CancelRequest
// when the connection breaks (pgconn does, which would end the wait too).
func TestEventLoopQueuedClosed(t *testing.T) { bothLoopIO(t, testEventLoopQueuedClosedIO) }

func testEventLoopQueuedClosedIO(t *testing.T) {
	tp := startLoopPool(t, pool.Config{Size: 1, AcquireTimeout: time.Minute}, nil)
	ctx := ctxT(t)
	holder := tp.connect(t, ctx, "tok-acme")
	if _, err := holder.Exec(ctx, "BEGIN; SELECT 1").ReadAll(); err != nil {
		t.Fatal(err)
	}
	_, fe := rawSession(t, tp, "tok-globex")
	fe.Send(&pgproto3.Query{String: "SELECT 42"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	awaitQueued(t, tp, 1, 400, "the second session did not queue")
	if _, on, _ := loopCounts(tp); on != 2 {
		t.Fatalf("%d sessions on the loop, want both", on)
	}
	tp.srv.mu.Lock()
	for c := range tp.srv.conns {
		if c.session.Tenant == "globex" {
			c.raw.Close()
		}
	}
	tp.srv.mu.Unlock()
	awaitQueued(t, tp, 0, 500, "the closed session is still queued")
	if _, err := holder.Exec(ctx, "COMMIT; SELECT 1").ReadAll(); err != nil {
		t.Fatal(err)
	}
}
