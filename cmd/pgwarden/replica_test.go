package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/pgwarden/pgwarden/internal/pgcluster"
	"go.uber.org/zap/zaptest"
)

// A proxy replica without key files verifies sessions through the ticket
// service's JWKS (auth.jwks_url): a session minted there logs in, a token
// signed by another key does not.
func TestReplicaVerifiesThroughJWKS(t *testing.T) {
	r := startServe(t)
	token, sid := r.httpSession(t, "acme")

	cfg := *r.cfg
	cfg.Auth.SigningKeyFile, cfg.Auth.VerifyKeyFiles, cfg.Auth.Listen = "", nil, ""
	cfg.Auth.JWKSURL = "http://" + r.cfg.Auth.Listen + "/.well-known/jwks.json"
	cfg.Proxy.Listen, cfg.Metrics.Listen = freeLoopback(t), freeLoopback(t)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	serveApp(t, ctx, cancel, &cfg, zaptest.NewLogger(t), onlyProxy)
	replica := &running{cfg: &cfg}

	conn, err := replica.connect(t, token)
	if err != nil {
		t.Fatalf("session minted by the ticket service, on the JWKS replica: %v", err)
	}
	if got := scalar[int64](t, conn, "SELECT count(DISTINCT tenant_id) FROM orders"); got != 1 {
		t.Errorf("the replica's session sees %d tenants", got)
	}
	// A token of the demo's shape signed by a key the service never had.
	forged := forgeSessionToken(t, token)
	if _, err := replica.connect(t, forged); err == nil || !strings.Contains(err.Error(), "28P01") {
		t.Errorf("forged token on the JWKS replica: %v, want 28P01", err)
	}
	// Revoked at the ticket service: the replica closes the connection.
	if status, body := r.post(t, "/v1/sessions/"+sid+"/revoke", r.apiKey, nil); status/100 != 2 {
		t.Fatalf("revoke: %d %v", status, body)
	}
	eventually(t, "the replica's connection closed after revocation", func() error {
		if _, err := conn.Exec(context.Background(), "SELECT 1"); err == nil {
			return errors.New("still served")
		}
		return nil
	})
	// http to a host other than loopback is refused at load.
	cfg.Auth.JWKSURL = "http://tickets.example.com/.well-known/jwks.json"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "use https") {
		t.Errorf("plain http JWKS elsewhere: %v", err)
	}
}

// freeLoopback returns a loopback address with a port free now.
func freeLoopback(t *testing.T) string {
	t.Helper()
	port, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return hostPort(port)
}

// forgeSessionToken re-signs token's claims with a key of its own under the
// same key id.
func forgeSessionToken(t *testing.T, token string) string {
	t.Helper()
	claims := jwt.MapClaims{}
	parsed, _, err := jwt.NewParser().ParseUnverified(token, claims)
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	f.Header["kid"] = parsed.Header["kid"]
	out, err := f.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
