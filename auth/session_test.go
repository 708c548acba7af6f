package auth

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/pgerr"
)

// The same user in two tenants holds two independent sessions, each bound
// to its tenant.
func TestSessionsAreBoundToOneTenant(t *testing.T) {
	e := newEnv(t)
	v := e.verifier()
	ctx := context.Background()
	exchange := func(tenant string) (*Session, string) {
		r := acmeRequest()
		r.Tenant = tenant
		tok, _, err := e.svc.MintTicket(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		s, st, err := e.svc.ExchangeTicket(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		return s, st
	}
	a, aTok := exchange("acme")
	g, gTok := exchange("globex")
	if a.ID == g.ID || a.Tenant != "acme" || g.Tenant != "globex" {
		t.Fatalf("sessions %+v %+v", a, g)
	}
	if err := e.svc.RevokeSession(ctx, a.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Authenticate(ctx, aTok); pgMessage(err) != msgSessionRevoked {
		t.Fatalf("revoked acme session: %v", err)
	}
	s, err := v.Authenticate(ctx, gTok)
	if err != nil || s.Tenant != "globex" || s.Identity("demo").Tenant != "globex" {
		t.Fatalf("globex session: %+v %v", s, err)
	}
}

// The purge loop runs on its own until its context ends.
func TestServiceRunPurges(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PurgeInterval = 20 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.svc.Run(ctx) }()
	e.session()
	e.clock.Advance(13 * time.Hour)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := e.store.pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM pgwarden.sessions) + (SELECT count(*) FROM pgwarden.redeemed_tickets)`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d rows left after the purge loop ran", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
}

// The store down: the proxy is told to retry later, not that the password
// is wrong.
func TestAuthenticateStoreDown(t *testing.T) {
	e := newEnv(t)
	st, _ := e.instance()
	keys, err := LoadKeySet(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(e.cfg, keys, st, e.log)
	if err != nil {
		t.Fatal(err)
	}
	_, tok := e.session()
	st.Close()
	for _, cred := range []string{tok, e.mint()} {
		_, err := v.Authenticate(context.Background(), cred)
		var pe *pgerr.Error
		if !errors.As(err, &pe) || pe.Code != pgerr.CannotConnectNow || pe.Message != msgStoreDown {
			t.Fatalf("store down: %v", err)
		}
	}
}

func TestConstructorsRejectNil(t *testing.T) {
	e := newEnv(t)
	keys, _ := LoadKeySet(e.cfg)
	if _, err := NewService(e.cfg, nil, testPolicy, e.log); err == nil {
		t.Error("NewService(nil store)")
	}
	if _, err := NewService(e.cfg, e.store, nil, e.log); err == nil {
		t.Error("NewService(nil policy)")
	}
	if _, err := NewVerifier(e.cfg, nil, e.store, e.log); err == nil {
		t.Error("NewVerifier(nil keys)")
	}
	if _, err := NewVerifier(e.cfg, keys, e.store, nil); err == nil {
		t.Error("NewVerifier(nil logger)")
	}
	if _, err := NewHandler(e.svc, nil, e.log); err == nil {
		t.Error("NewHandler(nil registerer)")
	}
	if _, err := NewRemoteKeySet("https://x/jwks", nil, time.Now); err == nil {
		t.Error("NewRemoteKeySet(nil client)")
	}
	cfg := e.cfg
	cfg.SigningKeyFile = ""
	if _, err := NewService(cfg, e.store, testPolicy, e.log); err == nil {
		t.Error("NewService without a signing key")
	}
}

// HTTPServer serves the handler with timeouts set.
func TestHTTPServer(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := e.h.HTTPServer(ln.Addr().String())
	if srv.ReadHeaderTimeout == 0 || srv.WriteTimeout == 0 {
		t.Fatalf("server without timeouts: %+v", srv)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
}
