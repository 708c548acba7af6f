package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// jwksServer serves a settable key set and counts fetches.
type jwksServer struct {
	mu      sync.Mutex
	set     *KeySet
	fail    bool
	fetches atomic.Int32
}

func (s *jwksServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.fetches.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		http.Error(w, "down", http.StatusBadGateway)
		return
	}
	json.NewEncoder(w).Encode(s.set.JWKS())
}

func (s *jwksServer) setKeys(fail bool, pubs ...ed25519.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.set, s.fail = NewKeySet(pubs...), fail
}

func newPub(t *testing.T) ed25519.PublicKey {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func TestRemoteKeySetRefresh(t *testing.T) {
	k1, k2 := newPub(t), newPub(t)
	js := &jwksServer{}
	js.setKeys(false, k1)
	srv := httptest.NewServer(js)
	defer srv.Close()
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	rs, err := NewRemoteKeySet(srv.URL+"/.well-known/jwks.json", srv.Client(), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	get := func(kid string) (ed25519.PublicKey, error) { return rs.PublicKey(ctx, kid) }

	if k, err := get(KeyID(k1)); err != nil || !k.Equal(k1) {
		t.Fatalf("k1: %v", err)
	}
	if _, err := get(KeyID(k1)); err != nil || js.fetches.Load() != 1 {
		t.Fatalf("cached k1: %v, %d fetches", err, js.fetches.Load())
	}
	// An unknown kid right after a fetch does not fetch again.
	for range 20 {
		if _, err := get("made-up"); !errors.Is(err, errUnknownKID) {
			t.Fatalf("made-up kid: %v", err)
		}
	}
	if n := js.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches after unknown kids, want 1", n)
	}
	// Rotation: the service starts signing with k2.
	js.setKeys(false, k1, k2)
	clock.Advance(remoteMinRefresh)
	if k, err := get(KeyID(k2)); err != nil || !k.Equal(k2) {
		t.Fatalf("k2 after rotation: %v", err)
	}
	if n := js.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	// The service is down: known keys keep working, unknown ones fail as
	// unavailable (not as bad tokens).
	js.setKeys(true)
	clock.Advance(remoteMaxAge)
	if _, err := get(KeyID(k1)); err != nil {
		t.Fatalf("stale k1 while down: %v", err)
	}
	clock.Advance(remoteMinRefresh)
	if _, err := get("another"); err == nil || errors.Is(err, errUnknownKID) {
		t.Fatalf("unknown kid while down: %v, want a fetch error", err)
	}
	if _, err := NewRemoteKeySet("ftp://x", srv.Client(), clock.Now); err == nil {
		t.Error("ftp URL accepted")
	}
}

// A proxy verifying with keys fetched from the service's JWKS endpoint.
func TestVerifierWithRemoteKeys(t *testing.T) {
	e := newEnv(t)
	st, _ := e.instance()
	rs, err := NewRemoteKeySet(e.srv.URL+"/.well-known/jwks.json", e.srv.Client(), e.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(e.cfg, rs, st, e.log)
	if err != nil {
		t.Fatal(err)
	}
	_, tok := e.session()
	if s, err := v.Authenticate(context.Background(), tok); err != nil || s.Tenant != "acme" {
		t.Fatalf("remote-key session: %v", err)
	}
	if _, err := v.Authenticate(context.Background(), e.mint()); err != nil {
		t.Fatalf("remote-key ticket: %v", err)
	}
	// The JWKS cannot be reached and the kid is unknown: 57P03, not 28P01.
	rs2, _ := NewRemoteKeySet("http://127.0.0.1:1/jwks.json", e.srv.Client(), e.clock.Now)
	v2, err := NewVerifier(e.cfg, rs2, st, e.log)
	if err != nil {
		t.Fatal(err)
	}
	_, err = v2.Authenticate(context.Background(), tok)
	if pgMessage(err) != msgKeysUnavailable {
		t.Fatalf("unreachable JWKS: %v", err)
	}
}
