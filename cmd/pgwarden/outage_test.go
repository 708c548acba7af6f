package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/pgcluster"
)

// startWithOwnStore serves the demo with its control store on a cluster of
// its own (to freeze and stop) and short store timeouts; configure, if
// any, changes the configuration further.
func startWithOwnStore(t *testing.T, configure ...func(*config.File)) (*running, *pgcluster.Cluster) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts two PostgreSQL clusters and the whole service")
	}
	// The store's cluster starts while the demo's is provisioned.
	type started struct {
		c   *pgcluster.Cluster
		err error
	}
	ch := make(chan started, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c, err := pgcluster.Start(ctx, pgcluster.Options{})
		ch <- started{c, err}
	}()
	get := sync.OnceValue(func() started { return <-ch })
	t.Cleanup(func() {
		if s := get(); s.c != nil {
			s.c.Stop()
		}
	})
	var store *pgcluster.Cluster
	r := startServeWith(t, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), func(c *config.File) {
		s := get()
		if s.err != nil {
			t.Fatal(s.err)
		}
		store = s.c
		c.Auth.StoreDSN = store.DSN("postgres")
		c.Auth.StoreConnectTimeout = 500 * time.Millisecond
		c.Auth.StoreQueryTimeout = 500 * time.Millisecond
		c.Auth.HTTPRequestTimeout = 2 * time.Second
		c.Auth.HTTPWriteTimeout = 4 * time.Second
		c.Auth.RetryAfter = 2 * time.Second
		for _, f := range configure {
			f(c)
		}
	})
	return r, store
}

// httpSession mints and exchanges a querier session of tenant over HTTP.
func (r *running) httpSession(t *testing.T, tenant string) (token, sid string) {
	t.Helper()
	status, tk := r.post(t, "/v1/tickets", r.apiKey, map[string]any{
		"external_id": "x", "tenant": tenant, "connection_roles": map[string]string{demoWarehouse: "querier"},
	})
	if status != http.StatusCreated {
		t.Fatalf("mint: %d %v", status, tk)
	}
	status, sess := r.post(t, "/v1/sessions", "", map[string]any{"ticket": tk["ticket"]})
	if status != http.StatusCreated {
		t.Fatalf("exchange: %d %v", status, sess)
	}
	return sess["session_token"].(string), sess["session_id"].(string)
}

// eventually retries f for up to 15s (recovery after an outage).
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err = f(); err == nil {
			return
		}
	}
	t.Fatalf("%s: %v", what, err)
}

// waitCut polls conn until the proxy ends it and returns how long that took
// from start; a generous limit, not a performance assertion.
func waitCut(t *testing.T, conn *pgx.Conn, start time.Time, limit time.Duration) time.Duration {
	t.Helper()
	for {
		if _, err := conn.Exec(context.Background(), "SELECT 1"); err != nil {
			if c := sqlstate(err); c != "" && c != "28000" {
				t.Errorf("revoked session's statement: %v, want FATAL 28000 or a closed connection", err)
			}
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("revoked session still served %s after revocation", limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A frozen store (every process of its cluster SIGSTOPped) bounds logins
// through the proxy by store_query_timeout, not the 60s auth_timeout, with
// FATAL 57P03; the HTTP API answers 503 with Retry-After; open sessions keep
// working; everything recovers after SIGCONT.
func TestServeFrozenStore(t *testing.T) {
	r, store := startWithOwnStore(t)
	token, _ := r.httpSession(t, "acme")
	open, err := r.connect(t, token)
	if err != nil {
		t.Fatal(err)
	}
	ticket, err := r.app.mintTicket(context.Background(), sessionRequest{Tenant: "acme", ExternalID: "t",
		Roles: map[string]string{demoWarehouse: "querier"}})
	if err != nil {
		t.Fatal(err)
	}
	status, tk := r.post(t, "/v1/tickets", r.apiKey, map[string]any{"external_id": "y", "tenant": "acme",
		"connection_roles": map[string]string{demoWarehouse: "querier"}})
	if status != http.StatusCreated {
		t.Fatalf("minting a ticket: %d %v", status, tk)
	}

	if err := store.Freeze(); err != nil {
		t.Fatal(err)
	}
	thawed := false
	defer func() {
		if !thawed {
			store.Thaw()
		}
	}()
	for _, tc := range []struct{ name, password string }{{"session token", token}, {"ticket", ticket}} {
		start := time.Now()
		_, err := r.connect(t, tc.password) // its own 20s deadline is the outer bound
		took := time.Since(start)
		if sqlstate(err) != "57P03" {
			t.Errorf("login with a %s, store frozen: %v, want FATAL 57P03", tc.name, err)
		}
		t.Logf("login with a %s answered in %s with the store frozen: %v", tc.name, took.Round(time.Millisecond), err)
	}
	start := time.Now()
	status, body := r.post(t, "/v1/sessions", "", map[string]any{"ticket": tk["ticket"]})
	t.Logf("POST /v1/sessions answered in %s with the store frozen: %d %v", time.Since(start).Round(time.Millisecond), status, body)
	if status != http.StatusServiceUnavailable || body["error"] != "store_unavailable" {
		t.Errorf("exchange with the store frozen: %d %v, want 503 store_unavailable", status, body)
	}
	if got := httpStatus(t, "http://"+r.cfg.Metrics.Listen+"/healthz"); got != 200 {
		t.Errorf("/healthz with the store frozen: %d, want 200", got)
	}
	if got := httpStatus(t, "http://"+r.cfg.Metrics.Listen+"/readyz"); got != 503 {
		t.Errorf("/readyz with the store frozen: %d, want 503", got)
	}
	// An open session needs only the warehouse.
	if got := scalar[int64](t, open, "SELECT count(*) FROM orders"); got == 0 {
		t.Error("open session sees no orders with the store frozen")
	}

	if err := store.Thaw(); err != nil {
		t.Fatal(err)
	}
	thawed = true
	eventually(t, "login after thaw", func() error {
		c, err := r.connect(t, token)
		if err == nil {
			c.Close(context.Background())
		}
		return err
	})
	eventually(t, "exchange after thaw", func() error {
		if status, body := r.post(t, "/v1/sessions", "", map[string]any{"ticket": tk["ticket"]}); status != http.StatusCreated {
			return &statusError{status, body}
		}
		return nil
	})
}

// Logins waiting on a frozen store hold client slots, as a backend in
// authentication counts against PostgreSQL's max_connections and a client
// in login against PgBouncer's max_client_conn, but each for at most
// store_query_timeout (not auth_timeout): wave after wave of logins fills
// max_client_conns, every login is answered 57P03 (or 53300 while the slots
// are full) and its slot is free again, and the established session is
// served throughout. After the thaw, every slot is there to take.
func TestServeFrozenStoreClientSlots(t *testing.T) {
	const slots = 5
	r, store := startWithOwnStore(t, func(c *config.File) {
		c.Proxy.MaxClientConns = slots
		c.Proxy.AuthTimeout = 5 * time.Minute // far beyond what any login may take here
	})
	token, _ := r.httpSession(t, "acme")
	open, err := r.connect(t, token) // one slot, held throughout
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Freeze(); err != nil {
		t.Fatal(err)
	}
	thawed := false
	defer func() {
		if !thawed {
			store.Thaw()
		}
	}()

	type outcome struct {
		code string
		err  error
		took time.Duration
	}
	// A few store timeouts' worth of waves, each more logins than slots.
	const waves, perWave = 4, 2 * slots
	codes := map[string]int{}
	var slowest time.Duration
	for wave := 0; wave < waves; wave++ {
		out := make(chan outcome, perWave)
		for i := 0; i < perWave; i++ {
			go func() {
				start := time.Now()
				conn, err := r.connect(t, token)
				if err == nil {
					conn.Close(context.Background())
				}
				out <- outcome{sqlstate(err), err, time.Since(start)}
			}()
		}
		// The open session answers while the logins wait on the store.
		for i := 0; i < 3; i++ {
			if got := scalar[int64](t, open, "SELECT count(*) FROM orders"); got == 0 {
				t.Fatal("open session sees no orders while logins wait on the frozen store")
			}
		}
		for i := 0; i < perWave; i++ {
			o := <-out
			codes[o.code]++
			slowest = max(slowest, o.took)
			if o.code != "57P03" && o.code != "53300" {
				t.Errorf("login with the store frozen: %v, want FATAL 57P03 or 53300", o.err)
			}
		}
	}
	t.Logf("%d logins in %d waves with the store frozen and %d of %d client slots free: %v; the slowest answered in %s",
		waves*perWave, waves, slots-1, slots, codes, slowest.Round(time.Millisecond))
	if codes["57P03"] < waves {
		t.Errorf("only %d logins reached the store (57P03) in %d waves: slots are not freed after store_query_timeout", codes["57P03"], waves)
	}
	// Generous (store_query_timeout is 500ms), but far below auth_timeout
	// and the 20s client deadline.
	if slowest > 15*time.Second {
		t.Errorf("a login waited %s with the store frozen, store_query_timeout 500ms", slowest)
	}
	// Every slot came back: the next login waits on the store, not refused.
	eventually(t, "a login reaching the frozen store", func() error {
		if _, err := r.connect(t, token); sqlstate(err) != "57P03" {
			return fmt.Errorf("login: %v, want FATAL 57P03", err)
		}
		return nil
	})
	if got := scalar[int64](t, open, "SELECT count(*) FROM orders"); got == 0 {
		t.Fatal("open session sees no orders with the store frozen")
	}

	if err := store.Thaw(); err != nil {
		t.Fatal(err)
	}
	thawed = true
	var held []*pgx.Conn
	for len(held) < slots-1 {
		var conn *pgx.Conn
		eventually(t, fmt.Sprintf("login %d of %d after thaw", len(held)+1, slots-1), func() error {
			c, err := r.connect(t, token)
			conn = c
			return err
		})
		held = append(held, conn)
	}
	if _, err := r.connect(t, token); sqlstate(err) != "53300" {
		t.Errorf("login beyond max_client_conns after thaw: %v, want FATAL 53300", err)
	}
	if got := scalar[int64](t, open, "SELECT count(*) FROM orders"); got == 0 {
		t.Fatal("open session sees no orders after thaw")
	}
}

type statusError struct {
	status int
	body   map[string]any
}

func (e *statusError) Error() string { return http.StatusText(e.status) }

// Revocations made while the proxy's LISTEN connection is down reach open
// connections once it is back: after a store outage (the listener was in
// its reconnect backoff) and after its connection alone was killed.
func TestServeRevocationAfterListenerLoss(t *testing.T) {
	r, store := startWithOwnStore(t)
	ctx := context.Background()

	t.Run("store outage", func(t *testing.T) {
		token, sid := r.httpSession(t, "acme")
		conn, err := r.connect(t, token)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.StopServer(ctx); err != nil {
			t.Fatal(err)
		}
		// Long enough for the listener's backoff to reach its cap.
		time.Sleep(2 * time.Second)
		if err := store.StartServer(ctx); err != nil {
			t.Fatal(err)
		}
		var revoked time.Time
		eventually(t, "revoke after the outage", func() error {
			status, body := r.post(t, "/v1/sessions/"+sid+"/revoke", r.apiKey, nil)
			if status != http.StatusOK {
				return &statusError{status, body}
			}
			revoked = time.Now()
			return nil
		})
		took := waitCut(t, conn, revoked, 10*time.Second)
		t.Logf("revocation right after a store outage cut the open connection in %s", took.Round(time.Millisecond))
		if took > 2*time.Second {
			t.Errorf("revocation took %s after the store came back; the listener's reconnect backoff is capped at 500ms", took)
		}
	})

	t.Run("listener killed", func(t *testing.T) {
		token, sid := r.httpSession(t, "globex")
		conn, err := r.connect(t, token)
		if err != nil {
			t.Fatal(err)
		}
		su, err := pgx.Connect(ctx, store.DSN("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer su.Close(ctx)
		var killed int
		if err := su.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE 'LISTEN %revocations%'`).Scan(&killed); err != nil {
			t.Fatal(err)
		}
		if killed != 1 {
			t.Fatalf("terminated %d listener connections, want 1", killed)
		}
		start := time.Now()
		if status, body := r.post(t, "/v1/sessions/"+sid+"/revoke", r.apiKey, nil); status != http.StatusOK {
			t.Fatalf("revoke: %d %v", status, body)
		}
		took := waitCut(t, conn, start, 10*time.Second)
		t.Logf("revocation made as the listener's connection was killed cut the open connection in %s", took.Round(time.Millisecond))
	})
}

// At shutdown, while the proxy drains, /healthz keeps answering 200 and
// /readyz answers 503 on the metrics and the ticket service's listeners,
// until the process exits.
func TestServeHealthzWhileDraining(t *testing.T) {
	r := startServe(t)
	conn := r.acmeConn(t)
	health := "http://" + r.cfg.Metrics.Listen + "/healthz"
	ready := "http://" + r.cfg.Metrics.Listen + "/readyz"
	// The ticket service's own listener behaves the same.
	ticketsHealth := "http://" + r.cfg.Auth.Listen + "/healthz"
	ticketsReady := "http://" + r.cfg.Auth.Listen + "/readyz"
	if got := httpStatus(t, ready); got != 200 {
		t.Fatalf("/readyz before shutdown: %d", got)
	}
	// A statement waiting on a lock keeps the drain going until the lock is
	// released, two seconds into it.
	ctx := context.Background()
	su, err := pgx.Connect(ctx, r.demo.cluster.DSN("demo"))
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	tx, err := su.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE orders IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	stmt := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "SELECT count(*) FROM orders")
		stmt <- err
	}()
	time.Sleep(300 * time.Millisecond)
	r.stop()
	released := make(chan struct{})
	time.AfterFunc(2*time.Second, func() {
		tx.Rollback(ctx)
		close(released)
	})
	defer func() { <-released }() // before su closes
	get := func(url string) (int, error) {
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	checks := 0
drain:
	for {
		select {
		case <-r.exited:
			break drain
		default:
		}
		var errs []error
		var wrong []string
		for url, want := range map[string]int{health: 200, ticketsHealth: 200, ready: 503, ticketsReady: 503} {
			code, err := get(url)
			if err != nil {
				errs = append(errs, err)
			} else if code != want {
				wrong = append(wrong, fmt.Sprintf("%s: %d, want %d", url, code, want))
			}
		}
		if len(errs) > 0 || len(wrong) > 0 {
			// Only once the drain is over do the listeners close.
			select {
			case <-r.exited:
				break drain
			case <-time.After(2 * time.Second):
				t.Fatalf("during the drain: %v %v", errors.Join(errs...), wrong)
			}
		}
		checks++
		time.Sleep(100 * time.Millisecond)
	}
	if err := <-stmt; err != nil {
		t.Errorf("statement running at shutdown: %v, want it to finish", err)
	}
	if checks < 3 {
		t.Errorf("only %d health checks during the drain", checks)
	}
	t.Logf("/healthz answered 200 and /readyz 503 %d times during the drain", checks)
}
