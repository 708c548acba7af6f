package pool

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/internal/pgcluster"
	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/pgerr"
)

// The pool's own contract, against a real PostgreSQL: what it lends, when a
// client waits and what it gets when the wait is over, what it does with
// a connection the warehouse closed, a warehouse it cannot reach, and a
// pool that is closed. Everything a client sends through the pool is the
// proxy's and is tested there.

func TestMain(m *testing.M) { pgtest.Main(m) }

// wireConn is a warehouse connection as the pool sees one (Conn): pgconn
// logs in, then hands over its socket and protocol reader.
type wireConn struct {
	hc *pgconn.HijackedConn
}

func dialWire(ctx context.Context, dsn string) (Conn, error) {
	pc, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	hc, err := pc.Hijack()
	if err != nil {
		pc.Close(ctx)
		return nil, err
	}
	return &wireConn{hc: hc}, nil
}

func (c *wireConn) Send(msg pgproto3.FrontendMessage) error   { c.hc.Frontend.Send(msg); return nil }
func (c *wireConn) Flush() error                              { return c.hc.Frontend.Flush() }
func (c *wireConn) Receive() (pgproto3.BackendMessage, error) { return c.hc.Frontend.Receive() }
func (c *wireConn) Buffered() int                             { return 0 }
func (c *wireConn) ParameterStatus(name string) string        { return c.hc.ParameterStatuses[name] }
func (c *wireConn) PID() uint32                               { return c.hc.PID }
func (c *wireConn) Close() error                              { return c.hc.Conn.Close() }
func (c *wireConn) SetReadDeadline(t time.Time) error         { return c.hc.Conn.SetReadDeadline(t) }

func (c *wireConn) Cancel(ctx context.Context) error {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", c.hc.Conn.RemoteAddr().String())
	if err != nil {
		return err
	}
	defer nc.Close()
	buf, err := (&pgproto3.CancelRequest{ProcessID: c.hc.PID, SecretKey: c.hc.SecretKey}).Encode(nil)
	if err != nil {
		return err
	}
	_, err = nc.Write(buf)
	return err
}

// testMetrics are the series a proxy would define, unregistered.
func testMetrics() *Metrics {
	wh := []string{"warehouse"}
	return &Metrics{
		Conns:          prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "conns"}, []string{"warehouse", "state"}),
		Waiting:        prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "waiting"}, wh),
		Wait:           prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "wait"}, wh),
		Abandoned:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "abandoned"}, wh),
		DialErrors:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dial_errors"}, wh),
		TenantWaits:    prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "tenant_waits"}, []string{"warehouse", "tenant"}),
		TenantRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tenant_refusals"}, []string{"warehouse", "tenant", "limit"}),
		Gauges:         NewTenantGauges(),
	}
}

// newPool returns a transaction pool of the test warehouse with cfg's
// non-zero fields over the defaults; dial, if not nil, replaces the dialer.
func newPool(t *testing.T, cfg Config, dial func(context.Context) (Conn, error)) *Pool {
	t.Helper()
	if dial == nil {
		dsn := pgtest.ServerURL(t)
		dial = func(ctx context.Context) (Conn, error) { return dialWire(ctx, dsn) }
	}
	cfg.Mode = Transaction
	cfg = cfg.WithDefaults()
	if err := cfg.Validate("pool"); err != nil {
		t.Fatal(err)
	}
	p := New("wh", cfg, Deps{Dial: dial, Timeout: 5 * time.Second, Log: zap.NewNop(), Metrics: testMetrics(),
		Params: []string{"server_version"}})
	t.Cleanup(p.Close)
	return p
}

func acquire(t *testing.T, p *Pool, tenant string) *Backend {
	t.Helper()
	b, err := p.Acquire(context.Background(), tenant, nil)
	if err != nil {
		t.Fatalf("Acquire(%q): %v", tenant, err)
	}
	return b
}

// backendPID asks the warehouse which backend serves b: what the pool lent
// is a live session, not only a socket.
func backendPID(t *testing.T, b *Backend) string {
	t.Helper()
	rows, err := b.Query("SELECT pg_backend_pid()", 5*time.Second)
	if err != nil || len(rows) != 1 {
		t.Fatalf("SELECT pg_backend_pid(): %v %v", rows, err)
	}
	return rows[0][0]
}

func wantStat(t *testing.T, p *Pool, want Stat) {
	t.Helper()
	if got := p.Stat(); got != want {
		t.Fatalf("Stat() = %+v, want %+v", got, want)
	}
}

func wantCode(t *testing.T, err error, code string) *pgerr.Error {
	t.Helper()
	var pe *pgerr.Error
	if !errors.As(err, &pe) || pe.Code != code {
		t.Fatalf("error %v (%T), want SQLSTATE %s", err, err, code)
	}
	return pe
}

// A connection given back is lent again, the most recently used first, and
// the pool dials only what it must.
func TestPoolReusesConnections(t *testing.T) {
	p := newPool(t, Config{Size: 3}, nil)
	a := acquire(t, p, "t1")
	pidA := backendPID(t, a)
	wantStat(t, p, Stat{Open: 1, InUse: 1})
	p.Release(a, true)
	wantStat(t, p, Stat{Open: 1, Idle: 1})

	b := acquire(t, p, "t2")
	if pid := backendPID(t, b); pid != pidA {
		t.Fatalf("lent backend %s after %s was given back, want it again", pid, pidA)
	}
	c := acquire(t, p, "t1") // the other is lent: a second one is dialled
	if pid := backendPID(t, c); pid == pidA {
		t.Fatalf("two clients share backend %s", pid)
	}
	wantStat(t, p, Stat{Open: 2, InUse: 2})
	if params, err := p.StartupParams(context.Background()); err != nil || params["server_version"] == "" {
		t.Errorf("StartupParams() = %v, %v; want server_version of the first connection", params, err)
	}
	p.Release(b, true)
	p.Release(c, false) // broken or dirty: closed, not kept
	wantStat(t, p, Stat{Open: 1, Idle: 1})
}

// With every connection lent, a client waits for one to come back; after
// acquire_timeout it gets 53300 with the pool's size and wait in the
// detail, and the connection stays lent to its holder.
func TestPoolSaturated(t *testing.T) {
	p := newPool(t, Config{Size: 1, AcquireTimeout: 300 * time.Millisecond}, nil)
	held := acquire(t, p, "t1")

	start := time.Now()
	_, err := p.Acquire(context.Background(), "t2", nil)
	waited := time.Since(start)
	pe := wantCode(t, err, pgerr.TooManyConnections)
	if !strings.Contains(pe.Detail, "pool of 1") || !strings.Contains(pe.Detail, "300ms") || pe.Hint == "" {
		t.Errorf("53300 detail %q, hint %q: want the pool's size and wait, and what to do", pe.Detail, pe.Hint)
	}
	if waited < 300*time.Millisecond {
		t.Errorf("refused after %v, before acquire_timeout", waited)
	}
	wantStat(t, p, Stat{Open: 1, InUse: 1})

	// A waiter gets the connection as soon as it is given back.
	pid := backendPID(t, held)
	got := make(chan *Backend, 1)
	go func() {
		b, err := p.Acquire(context.Background(), "t2", nil)
		if err != nil {
			t.Error(err)
		}
		got <- b
	}()
	for p.Scheduler().Queued() == 0 {
		time.Sleep(time.Millisecond)
	}
	p.Release(held, true)
	select {
	case b := <-got:
		if b == nil {
			t.FailNow()
		}
		if g := backendPID(t, b); g != pid {
			t.Errorf("waiter got backend %s, want the one given back (%s)", g, pid)
		}
		p.Release(b, true)
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter did not get the connection given back")
	}
}

// A waiter whose context ends leaves the queue at once with the context's
// error, and the connection given back later goes idle.
func TestPoolWaiterCancelled(t *testing.T) {
	p := newPool(t, Config{Size: 1, AcquireTimeout: time.Minute}, nil)
	held := acquire(t, p, "t1")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := p.Acquire(ctx, "t2", nil)
		done <- err
	}()
	for p.Scheduler().Queued() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a cancelled waiter got a connection")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled waiter still waits")
	}
	if q := p.Scheduler().Queued(); q != 0 {
		t.Fatalf("%d still queued", q)
	}
	p.Release(held, true)
	wantStat(t, p, Stat{Open: 1, Idle: 1})
}

// An idle connection whose backend the warehouse ended (an administrator,
// a restart) is not lent: the health check finds it dead and the client
// gets a new one.
func TestPoolReplacesDeadIdleConnection(t *testing.T) {
	p := newPool(t, Config{Size: 2, HealthCheckAfter: time.Millisecond}, nil)
	a := acquire(t, p, "t1")
	admin := acquire(t, p, "") // a second connection, to end the first
	pid := backendPID(t, a)
	p.Release(a, true)
	if _, err := admin.Query("SELECT pg_terminate_backend("+pid+")", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Release(admin, false)
	time.Sleep(20 * time.Millisecond) // past peekAfter and HealthCheckAfter

	b := acquire(t, p, "t1")
	if got := backendPID(t, b); got == pid {
		t.Fatalf("lent backend %s, which the warehouse terminated", pid)
	}
	wantStat(t, p, Stat{Open: 1, InUse: 1})
	p.Release(b, true)
}

// While the warehouse cannot be reached the client gets why (the dial's
// error, not a pool timeout) once acquire_timeout is over, dials back off
// rather than spin, and the pool serves again once the warehouse is back.
func TestPoolWarehouseUnreachable(t *testing.T) {
	port, err := pgcluster.FreePort() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	up := pgtest.ServerURL(t)
	u, err := url.Parse(up)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var mu sync.Mutex
	dsn := u.String()
	dials := 0
	p := newPool(t, Config{Size: 2, AcquireTimeout: 500 * time.Millisecond}, func(ctx context.Context) (Conn, error) {
		mu.Lock()
		dials++
		d := dsn
		mu.Unlock()
		return dialWire(ctx, d)
	})
	_, err = p.Acquire(context.Background(), "t1", nil)
	if err == nil {
		t.Fatal("Acquire succeeded with the warehouse unreachable")
	}
	var pe *pgerr.Error
	if errors.As(err, &pe) && pe.Code == pgerr.TooManyConnections {
		t.Fatalf("got the pool's timeout (%v), want why the dial failed", err)
	}
	if !strings.Contains(err.Error(), "connect") && !strings.Contains(err.Error(), "refused") {
		t.Errorf("error %q does not say the warehouse could not be reached", err)
	}
	mu.Lock()
	n := dials
	dsn = up
	mu.Unlock()
	if n > 8 {
		t.Errorf("%d dials in 500ms: no backoff", n)
	}
	wantStat(t, p, Stat{})

	// Back: the next client is served, though the failed dials have
	// grown the backoff past its acquire_timeout.
	b, err := p.Acquire(context.Background(), "t1", nil)
	if err != nil {
		t.Fatalf("the warehouse is back but Acquire fails: %v", err)
	}
	backendPID(t, b)
	p.Release(b, true)
}

// Idle connections past idle_timeout are closed by the reaper, so a quiet
// warehouse is not kept busy.
func TestPoolReapsIdle(t *testing.T) {
	p := newPool(t, Config{Size: 2, IdleTimeout: 100 * time.Millisecond}, nil)
	a, b := acquire(t, p, "t1"), acquire(t, p, "t2")
	p.Release(a, true)
	p.Release(b, true)
	wantStat(t, p, Stat{Open: 2, Idle: 2})
	done := make(chan struct{})
	defer close(done)
	go p.Reap(done)
	deadline := time.Now().Add(5 * time.Second)
	for p.Stat() != (Stat{}) {
		if time.Now().After(deadline) {
			t.Fatalf("Stat() = %+v 5s after idle_timeout of 100ms", p.Stat())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A closed pool lends nothing (57P01), closes its idle connections at once
// and a lent one when it comes back.
func TestPoolClose(t *testing.T) {
	p := newPool(t, Config{Size: 2}, nil)
	a, b := acquire(t, p, "t1"), acquire(t, p, "t1")
	p.Release(a, true)
	p.Close()
	wantStat(t, p, Stat{Open: 1, InUse: 1})
	_, err := p.Acquire(context.Background(), "t1", nil)
	wantCode(t, err, pgerr.AdminShutdown)
	p.Release(b, true)
	wantStat(t, p, Stat{})
	if _, err := b.RoundTrip("", time.Second); err == nil {
		t.Error("a connection given back to a closed pool is still open")
	}
}

// A client's startup settings are checked on the warehouse: a value it
// takes comes back as it spells it, one it refuses gets its error (22023),
// and the connection used for the check goes back to the pool either way.
func TestPoolCheckSettings(t *testing.T) {
	p := newPool(t, Config{Size: 1}, nil)
	ctx := context.Background()
	have := map[string]string{"DateStyle": "ISO, MDY", "TimeZone": "UTC"}
	got, err := p.CheckSettings(ctx, map[string]string{"DateStyle": "iso, mdy", "TimeZone": "Europe/Paris"}, have)
	if err != nil {
		t.Fatal(err)
	}
	if got["TimeZone"] != "Europe/Paris" || len(got) != 1 {
		t.Errorf("CheckSettings = %v, want the time zone only (DateStyle is the warehouse's already, spelled otherwise)", got)
	}
	_, err = p.CheckSettings(ctx, map[string]string{"TimeZone": "Mars/Olympus"}, have)
	wantCode(t, err, "22023")
	wantStat(t, p, Stat{Open: 1, Idle: 1})
}
