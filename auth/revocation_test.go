package auth

import (
	"context"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/internal/pgtest"
)

// waitClosed returns how long ch took to close, failing after limit (a
// functional timeout, not a performance assertion).
func waitClosed(t *testing.T, ch <-chan struct{}, start time.Time, limit time.Duration) time.Duration {
	t.Helper()
	select {
	case <-ch:
		return time.Since(start)
	case <-time.After(limit):
		t.Fatalf("revocation not seen within %s", limit)
		return 0
	}
}

// Revoke through instance A; a proxy's verifier on its own store connection
// (instance B) closes the Watch channel promptly.
func TestRevocationReachesOtherInstance(t *testing.T) {
	e := newEnv(t)
	v := e.verifier() // its own store: another process, as far as PostgreSQL is concerned
	ctx := context.Background()
	s, tok := e.session()
	if _, err := v.Authenticate(ctx, tok); err != nil {
		t.Fatal(err)
	}
	other, otherTok := e.session()
	revoked, stop := v.Watch(s.ID)
	defer stop()
	otherRevoked, stopOther := v.Watch(other.ID)
	defer stopOther()

	start := time.Now()
	code, _, out := e.do("POST", "/v1/sessions/"+s.ID+"/revoke", nil, apiKeyHdr)
	if code != 200 {
		t.Fatalf("revoke: %d %v", code, out)
	}
	took := waitClosed(t, revoked, start, 2*time.Second)
	t.Logf("revocation reached the other instance's Watch %s after the revoke request was sent", took)
	select {
	case <-otherRevoked:
		t.Fatal("revoking one session fired another session's watch")
	default:
	}
	if _, err := v.Authenticate(ctx, tok); pgMessage(err) != msgSessionRevoked {
		t.Fatalf("authenticate revoked: %v", err)
	}
	// A Watch after the fact is closed at once.
	late, stopLate := v.Watch(s.ID)
	defer stopLate()
	waitClosed(t, late, time.Now(), time.Second)
	// The other session still works.
	if _, err := v.Authenticate(ctx, otherTok); err != nil {
		t.Fatal(err)
	}
}

// A revocation made while the listener is disconnected is picked up by the
// resync that follows the reconnect.
func TestRevocationAfterReconnect(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ResyncInterval = time.Hour })
	v := e.verifier()
	ctx := context.Background()
	s, _ := e.session()
	revoked, stop := v.Watch(s.ID)
	defer stop()
	// Revoke without a notification, so only the resync that follows the
	// reconnect can find it, then kill the LISTEN connection.
	start := time.Now()
	if _, err := e.store.pool.Exec(ctx, `UPDATE pgwarden.sessions SET revoked_at = now() WHERE sid = $1`, s.ID); err != nil {
		t.Fatal(err)
	}
	var killed int
	if err := e.store.pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN%'`).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed != 1 {
		t.Fatalf("terminated %d listener connections, want 1", killed)
	}
	took := waitClosed(t, revoked, start, 15*time.Second)
	t.Logf("revocation seen after reconnect in %s", took)
}

// The periodic resync catches a revocation whose notification never came.
func TestRevocationPeriodicResync(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ResyncInterval = 200 * time.Millisecond })
	v := e.verifier()
	s, _ := e.session()
	revoked, stop := v.Watch(s.ID)
	defer stop()
	start := time.Now()
	if _, err := e.store.pool.Exec(context.Background(), `UPDATE pgwarden.sessions SET revoked_at = now() WHERE sid = $1`, s.ID); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, revoked, start, 10*time.Second)
}

// stop unregisters a watch; a stopped watch is never closed.
func TestWatchStop(t *testing.T) {
	e := newEnv(t)
	v := e.verifier()
	s, _ := e.session()
	ch, stop := v.Watch(s.ID)
	stop()
	stop() // idempotent
	v.mu.Lock()
	n := len(v.watchers)
	v.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d watcher sets left after stop", n)
	}
	if err := e.svc.RevokeSession(context.Background(), s.ID, ""); err != nil {
		t.Fatal(err)
	}
	// The verifier learns of the revocation; the stopped watch stays open.
	deadline := time.After(5 * time.Second)
	for !v.isRevoked(s.ID) {
		select {
		case <-deadline:
			t.Fatal("revocation not received")
		case <-time.After(10 * time.Millisecond):
		}
	}
	select {
	case <-ch:
		t.Fatal("stopped watch was closed")
	default:
	}
}

// tcpRelay forwards loopback connections to target. vanish makes every
// connection open so far drop what it carries without closing, as a host
// that vanished would; connections made after still work.
type tcpRelay struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []*relayedConn
}

type relayedConn struct {
	a, b net.Conn
	dead atomic.Bool
}

func startRelay(t *testing.T, target string) *tcpRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &tcpRelay{ln: ln, target: target}
	go func() {
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", target)
			if err != nil {
				a.Close()
				continue
			}
			c := &relayedConn{a: a, b: b}
			r.mu.Lock()
			r.conns = append(r.conns, c)
			r.mu.Unlock()
			go c.pipe(a, b)
			go c.pipe(b, a)
		}
	}()
	t.Cleanup(r.close)
	return r
}

// close ends the relay and every connection through it; closing twice is
// fine.
func (r *tcpRelay) close() {
	r.ln.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.a.Close()
		c.b.Close()
	}
}

func (c *relayedConn) pipe(from, to net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if err != nil {
			return
		}
		if c.dead.Load() {
			continue // swallowed: nobody answers, nobody closes
		}
		if _, err := to.Write(buf[:n]); err != nil {
			return
		}
	}
}

func (r *tcpRelay) vanish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.dead.Store(true)
	}
}

// A LISTEN connection to a store host that vanished without closing it is
// found out by the listener's ping and replaced, and the resync that
// follows finds the revocation its notification never brought.
func TestRevocationAfterListenerHostVanished(t *testing.T) {
	direct := pgtest.NewDatabase(t, "")
	u, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	relay := startRelay(t, u.Host)
	u.Host = relay.ln.Addr().String()
	e := newEnv(t, func(c *Config) {
		c.StoreDSN = u.String()
		c.ListenPingInterval = 300 * time.Millisecond
		c.StoreQueryTimeout = 500 * time.Millisecond
		c.ResyncInterval = time.Hour // only the reconnect's resync can find it
	})
	v := e.verifier()
	// Cleanups run last first: end the dead connections before the
	// verifier and the stores close them, or each close waits for an
	// answer that never comes.
	t.Cleanup(relay.close)
	s, _ := e.session()
	revoked, stop := v.Watch(s.ID)
	defer stop()

	relay.vanish()
	other, err := Open(context.Background(), Config{StoreDSN: direct})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	start := time.Now()
	if err := other.Revoke(context.Background(), s.ID, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	took := waitClosed(t, revoked, start, 15*time.Second)
	t.Logf("revocation seen %s after its notification went to a vanished connection", took.Round(time.Millisecond))
}

// WatchFunc calls its function on revocation, and at once for a session
// revoked already; a watch of another session stays quiet.
func TestWatchFunc(t *testing.T) {
	e := newEnv(t)
	v := e.verifier()
	s, _ := e.session()
	other, _ := e.session()
	fired := make(chan struct{})
	stop := v.WatchFunc(s.ID, func() { close(fired) })
	defer stop()
	otherFired := make(chan struct{}, 1)
	stopOther := v.WatchFunc(other.ID, func() { otherFired <- struct{}{} })
	defer stopOther()
	if code, _, out := e.do("POST", "/v1/sessions/"+s.ID+"/revoke", nil, apiKeyHdr); code != 200 {
		t.Fatalf("revoke: %d %v", code, out)
	}
	waitClosed(t, fired, time.Now(), 30*time.Second)
	late := make(chan struct{})
	defer v.WatchFunc(s.ID, func() { close(late) })()
	waitClosed(t, late, time.Now(), 30*time.Second)
	select {
	case <-otherFired:
		t.Fatal("revoking one session called another session's function")
	default:
	}
}
