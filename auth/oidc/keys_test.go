package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/pgwarden/pgwarden/auth"
)

// rotatingProvider serves discovery and a JWKS whose keys the test changes,
// as a provider does when it rotates its signing key.
type rotatingProvider struct {
	srv     *httptest.Server
	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetches int
}

func newRotatingProvider(t *testing.T) *rotatingProvider {
	p := &rotatingProvider{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(map[string]any{"issuer": p.srv.URL, "jwks_uri": p.srv.URL + "/keys",
				"authorization_endpoint": p.srv.URL + "/auth", "token_endpoint": p.srv.URL + "/token"})
		case "/keys":
			p.mu.Lock()
			p.fetches++
			json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: p.keys})
			p.mu.Unlock()
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *rotatingProvider) newKey(t *testing.T, kid string) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.keys = append(p.keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"})
	p.mu.Unlock()
	return k
}

func (p *rotatingProvider) token(t *testing.T, k *ecdsa.PrivateKey, kid string, now time.Time) string {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, (&jose.SignerOptions{}).WithHeader("kid", kid).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"iss": p.srv.URL, "aud": "pgwarden", "sub": "u1", "email": "u1@corp.example",
		"groups": []string{"admins"}, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	obj, err := sig.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The JWKS is cached, and fetched again when a token names a key id it does
// not hold: a provider's key rotation is picked up without a restart, while
// made-up key ids cannot make pgwarden fetch more than once per interval.
func TestKeyRotation(t *testing.T) {
	p := newRotatingProvider(t)
	now := time.Now()
	clock := now
	v, err := New(Config{Providers: []Provider{{Issuer: p.srv.URL, ClientID: "pgwarden"}},
		RoleMapping: map[string]auth.UserRole{"admins": auth.RoleAdministrator},
		Now:         func() time.Time { return clock }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	k1 := p.newKey(t, "k1")
	for range 3 {
		if u, err := v.Verify(ctx, p.token(t, k1, "k1", now)); err != nil || u.Role != auth.RoleAdministrator {
			t.Fatalf("k1: %+v %v", u, err)
		}
	}
	if p.fetches != 1 {
		t.Fatalf("JWKS fetched %d times for one key, want 1 (cached)", p.fetches)
	}
	// The provider rotates: k2 appears. Within the refresh interval an
	// unknown kid is refused without a fetch; after it, k2 is fetched.
	k2 := p.newKey(t, "k2")
	if _, err := v.Verify(ctx, p.token(t, k2, "k2", now)); !errors.Is(err, ErrUnknownKey) || p.fetches != 1 {
		t.Fatalf("within the interval: %v, %d fetches", err, p.fetches)
	}
	clock = now.Add(6 * time.Second)
	if _, err := v.Verify(ctx, p.token(t, k2, "k2", now)); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if _, err := v.Verify(ctx, p.token(t, k2, "made-up", now)); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("made-up kid: %v", err)
	}
	if p.fetches != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", p.fetches)
	}
}

// A provider that cannot be reached is ErrProviderUnavailable (57P03 at
// the proxy, 503 on the exchange), not a refusal of the user.
func TestProviderUnavailable(t *testing.T) {
	p := newRotatingProvider(t)
	k := p.newKey(t, "k1")
	tok := p.token(t, k, "k1", time.Now())
	v, err := New(Config{Providers: []Provider{{Issuer: p.srv.URL, ClientID: "pgwarden"}},
		RoleMapping: map[string]auth.UserRole{"admins": auth.RoleViewer}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.srv.Close()
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrProviderUnavailable) {
		t.Fatalf("got %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Provider{Issuer: "https://login.example.com", ClientID: "pgwarden"}
	roles := map[string]auth.UserRole{"g": auth.RoleViewer}
	for name, tc := range map[string]struct {
		cfg  Config
		want string
	}{
		"no providers":   {Config{RoleMapping: roles}, "at least one provider"},
		"plain http":     {Config{Providers: []Provider{{Issuer: "http://login.example.com", ClientID: "x"}}, RoleMapping: roles}, "only accepted on loopback"},
		"no audience":    {Config{Providers: []Provider{{Issuer: "https://login.example.com"}}, RoleMapping: roles}, "client_id or audiences"},
		"hmac":           {Config{Providers: []Provider{{Issuer: ok.Issuer, ClientID: "x", Algorithms: []string{"HS256"}}}, RoleMapping: roles}, "not an accepted asymmetric algorithm"},
		"twice":          {Config{Providers: []Provider{ok, ok}, RoleMapping: roles}, "listed twice"},
		"no mapping":     {Config{Providers: []Provider{ok}}, "role_mapping"},
		"bad role":       {Config{Providers: []Provider{ok}, RoleMapping: map[string]auth.UserRole{"g": "root"}}, "unknown role"},
		"bad domain":     {Config{Providers: []Provider{{Issuer: ok.Issuer, ClientID: "x", AllowedEmailDomains: []string{"@x.com"}}}, RoleMapping: roles}, "allowed_email_domains"},
		"leeway too big": {Config{Providers: []Provider{{Issuer: ok.Issuer, ClientID: "x", Leeway: time.Hour}}, RoleMapping: roles}, "leeway"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := New(tc.cfg, nil)
			if err == nil || !contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
