package auth

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var apiKeyHdr = bearerHdr(testAPIKey)

func ticketBody() map[string]any {
	return map[string]any{
		"external_id":      "alice",
		"email":            "alice@acme.test",
		"tenant":           "acme",
		"groups":           []string{"pii", "analysts"},
		"attributes":       map[string][]string{"regions": {"EU", "NA"}},
		"connection_roles": map[string]string{"demo": "querier", "finance": "no_access"},
	}
}

func with(m map[string]any, k string, v any) map[string]any {
	m[k] = v
	return m
}

func (e *env) httpTicket() string {
	e.t.Helper()
	code, _, out := e.do("POST", "/v1/tickets", ticketBody(), apiKeyHdr)
	if code != http.StatusCreated {
		e.t.Fatalf("mint: %d %v", code, out)
	}
	return out["ticket"].(string)
}

func (e *env) httpSession() map[string]any {
	e.t.Helper()
	code, _, out := e.do("POST", "/v1/sessions", map[string]any{"ticket": e.httpTicket()}, nil)
	if code != http.StatusCreated {
		e.t.Fatalf("exchange: %d %v", code, out)
	}
	return out
}

func wantError(t *testing.T, code int, out map[string]any, wantCode int, wantErr string) {
	t.Helper()
	if code != wantCode || out["error"] != wantErr {
		t.Fatalf("got %d %v, want %d %s", code, out, wantCode, wantErr)
	}
	if m, _ := out["message"].(string); m == "" {
		t.Fatalf("error without message: %v", out)
	}
}

func TestHTTPMintTicket(t *testing.T) {
	e := newEnv(t)
	code, _, out := e.do("POST", "/v1/tickets", ticketBody(), apiKeyHdr)
	if code != http.StatusCreated {
		t.Fatalf("%d %v", code, out)
	}
	if got, want := out["expires_at"], e.clock.Now().Add(time.Minute).Format(time.RFC3339); got != want {
		t.Errorf("expires_at = %v, want %s", got, want)
	}
	for _, ttl := range []struct {
		v    any
		want time.Duration
	}{{30, 30 * time.Second}, {"15s", 15 * time.Second}, {1.5, time.Second}, {nil, time.Minute}} {
		code, _, out := e.do("POST", "/v1/tickets", with(ticketBody(), "ttl", ttl.v), apiKeyHdr)
		if code != http.StatusCreated {
			t.Fatalf("ttl %v: %d %v", ttl.v, code, out)
		}
		// Times are whole seconds in JWTs.
		if got, want := out["expires_at"], e.clock.Now().Add(ttl.want).Format(time.RFC3339); got != want && ttl.v != 1.5 {
			t.Errorf("ttl %v: expires_at = %v, want %s", ttl.v, got, want)
		}
	}
	s, err := e.verifier().Authenticate(context.Background(), out["ticket"].(string))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"pii", "analysts"}
	if diff := cmp.Diff(want, s.Groups); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
	if s.APIKeyName != "acme-backend" {
		t.Errorf("api key name = %q", s.APIKeyName)
	}
}

func TestHTTPMintTicketErrors(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name      string
		body      any
		hdr       map[string]string
		wantCode  int
		wantErr   string
		wantField string
	}{
		{"no api key", ticketBody(), nil, 401, "unauthorized", ""},
		{"wrong api key", ticketBody(), bearerHdr("pgw_wrong"), 401, "unauthorized", ""},
		{"basic auth", ticketBody(), map[string]string{"Authorization": "Basic " + testAPIKey}, 401, "unauthorized", ""},
		{"empty body", "", apiKeyHdr, 400, "invalid_request", "body"},
		{"malformed", `{"tenant":`, apiKeyHdr, 400, "invalid_request", "body"},
		{"not an object", `[1,2]`, apiKeyHdr, 400, "invalid_request", "body"},
		{"trailing data", `{"tenant":"acme","external_id":"a"} {}`, apiKeyHdr, 400, "invalid_request", "body"},
		{"unknown field", with(ticketBody(), "tenant_id", "acme"), apiKeyHdr, 400, "invalid_request", "tenant_id"},
		{"groups not a list", with(ticketBody(), "groups", "pii"), apiKeyHdr, 400, "invalid_request", "groups"},
		{"tenant not a string", with(ticketBody(), "tenant", 7), apiKeyHdr, 400, "invalid_request", "tenant"},
		{"attribute values not strings", with(ticketBody(), "attributes", map[string]any{"regions": []int{1}}), apiKeyHdr, 400, "invalid_request", "attributes"},
		{"oversize", with(ticketBody(), "email", strings.Repeat("x", 70<<10)), apiKeyHdr, 400, "invalid_request", "body"},
		{"missing external_id", with(ticketBody(), "external_id", ""), apiKeyHdr, 400, "invalid_request", "external_id"},
		{"missing tenant", with(ticketBody(), "tenant", nil), apiKeyHdr, 400, "invalid_request", "tenant"},
		{"unknown tenant", with(ticketBody(), "tenant", "initech"), apiKeyHdr, 400, "invalid_request", "tenant"},
		{"unknown group", with(ticketBody(), "groups", []string{"pii", "admins"}), apiKeyHdr, 400, "invalid_request", "groups[1]"},
		{"empty group", with(ticketBody(), "groups", []string{""}), apiKeyHdr, 400, "invalid_request", "groups[0]"},
		{"bad role", with(ticketBody(), "connection_roles", map[string]string{"demo": "superuser"}), apiKeyHdr, 400, "invalid_request", "connection_roles.demo"},
		// base_role is no_access: a ticket opening no warehouse would be consumed at exchange and then refused.
		{"no connection_roles", with(ticketBody(), "connection_roles", nil), apiKeyHdr, 400, "invalid_request", "connection_roles"},
		{"empty connection_roles", with(ticketBody(), "connection_roles", map[string]string{}), apiKeyHdr, 400, "invalid_request", "connection_roles"},
		{"only no_access roles", with(ticketBody(), "connection_roles", map[string]string{"demo": "no_access"}), apiKeyHdr, 400, "invalid_request", "connection_roles"},
		{"long email", with(ticketBody(), "email", strings.Repeat("x", 300)), apiKeyHdr, 400, "invalid_request", "email"},
		{"ttl longer than configured", with(ticketBody(), "ttl", 3600), apiKeyHdr, 400, "invalid_request", "ttl"},
		{"ttl negative", with(ticketBody(), "ttl", "-5s"), apiKeyHdr, 400, "invalid_request", "ttl"},
		{"ttl garbage", with(ticketBody(), "ttl", "soon"), apiKeyHdr, 400, "invalid_request", "ttl"},
		{"ttl wrong type", with(ticketBody(), "ttl", true), apiKeyHdr, 400, "invalid_request", "ttl"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, out := e.do("POST", "/v1/tickets", tc.body, tc.hdr)
			wantError(t, code, out, tc.wantCode, tc.wantErr)
			if out["field"] != nil && out["field"] != tc.wantField || tc.wantField != "" && out["field"] != tc.wantField {
				t.Errorf("field = %v, want %q (message %v)", out["field"], tc.wantField, out["message"])
			}
			if code == 401 && hdr.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if strings.Contains(out["message"].(string), testAPIKey) {
				t.Error("message leaks the API key")
			}
		})
	}
	code, hdr, out := e.do("GET", "/v1/tickets", nil, apiKeyHdr)
	wantError(t, code, out, 405, "method_not_allowed")
	if hdr.Get("Allow") != "POST" {
		t.Errorf("Allow = %q", hdr.Get("Allow"))
	}
}

func TestHTTPRateLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.APIKeys = []APIKey{
			{Name: "acme-backend", SHA256: HashAPIKey(testAPIKey), RatePerSecond: 0.5, Burst: 2},
			{Name: "other", SHA256: HashAPIKey("pgw_other")},
		}
	})
	for i := range 2 {
		if code, _, out := e.do("POST", "/v1/tickets", ticketBody(), apiKeyHdr); code != 201 {
			t.Fatalf("request %d: %d %v", i, code, out)
		}
	}
	code, hdr, out := e.do("POST", "/v1/tickets", ticketBody(), apiKeyHdr)
	wantError(t, code, out, 429, "rate_limited")
	if hdr.Get("Retry-After") != "2" {
		t.Errorf("Retry-After = %q, want 2", hdr.Get("Retry-After"))
	}
	// Another key has its own (here: no) limit.
	if code, _, out := e.do("POST", "/v1/tickets", ticketBody(), bearerHdr("pgw_other")); code != 201 {
		t.Fatalf("other key: %d %v", code, out)
	}
	e.clock.Advance(2 * time.Second)
	if code, _, out := e.do("POST", "/v1/tickets", ticketBody(), apiKeyHdr); code != 201 {
		t.Fatalf("after refill: %d %v", code, out)
	}
	code, _, out = e.do("POST", "/v1/tickets", ticketBody(), apiKeyHdr)
	wantError(t, code, out, 429, "rate_limited")
}

func TestHTTPExchange(t *testing.T) {
	e := newEnv(t)
	ticket := e.httpTicket()
	code, _, out := e.do("POST", "/v1/sessions", map[string]any{"ticket": ticket}, nil)
	if code != http.StatusCreated {
		t.Fatalf("%d %v", code, out)
	}
	if out["host"] != "proxy.example.com" || out["port"] != float64(6432) || out["database"] != "warehouse" {
		t.Errorf("connection details = %v", out)
	}
	if got, want := out["expires_at"], e.clock.Now().Add(time.Hour).Format(time.RFC3339); got != want {
		t.Errorf("expires_at = %v, want %s", got, want)
	}
	s, err := e.verifier().Authenticate(context.Background(), out["session_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != out["session_id"] || s.Tenant != "acme" || s.ExternalID != "alice" {
		t.Errorf("session = %+v, response %v", s, out)
	}

	code, _, out = e.do("POST", "/v1/sessions", map[string]any{"ticket": ticket}, nil)
	wantError(t, code, out, 409, "ticket_already_used")

	tests := []struct {
		name     string
		body     any
		wantCode int
		wantErr  string
	}{
		{"garbage ticket", map[string]any{"ticket": "abc.def.ghi"}, 401, "invalid_ticket"},
		{"session token as ticket", map[string]any{"ticket": e.httpSession()["session_token"]}, 401, "invalid_ticket"},
		{"missing ticket", map[string]any{}, 400, "invalid_request"},
		{"unknown field", map[string]any{"ticket": "x", "tenant": "globex"}, 400, "invalid_request"},
		{"ticket not a string", map[string]any{"ticket": 5}, 400, "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, out := e.do("POST", "/v1/sessions", tc.body, nil)
			wantError(t, code, out, tc.wantCode, tc.wantErr)
		})
	}
	t.Run("expired ticket", func(t *testing.T) {
		ticket := e.httpTicket()
		e.clock.Advance(time.Minute + DefaultLeeway)
		code, _, out := e.do("POST", "/v1/sessions", map[string]any{"ticket": ticket}, nil)
		wantError(t, code, out, 401, "ticket_expired")
	})
	code, _, out = e.do("GET", "/v1/sessions", nil, nil)
	wantError(t, code, out, 405, "method_not_allowed")
}

func TestHTTPRenew(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.SessionMaxLifetime = 90 * time.Minute })
	v := e.verifier()
	sess := e.httpSession()
	tok := sess["session_token"].(string)
	before, err := v.Authenticate(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}

	e.clock.Advance(20 * time.Minute)
	code, _, out := e.do("POST", "/v1/sessions/renew", nil, bearerHdr(tok))
	if code != 200 {
		t.Fatalf("renew: %d %v", code, out)
	}
	if out["session_id"] != sess["session_id"] || out["session_token"] == tok {
		t.Fatalf("renewed = %v", out)
	}
	if got, want := out["expires_at"], e.clock.Now().Add(time.Hour).Format(time.RFC3339); got != want {
		t.Errorf("renewed expires_at = %v, want %s", got, want)
	}
	after, err := v.Authenticate(context.Background(), out["session_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	// Renewal changes the expiry and nothing else.
	if diff := cmp.Diff(before, after, cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "ExpiresAt" }, cmp.Ignore())); diff != "" {
		t.Errorf("renewal changed claims (-before +after):\n%s", diff)
	}
	if !after.ExpiresAt.After(before.ExpiresAt) {
		t.Errorf("renewal did not extend: %v → %v", before.ExpiresAt, after.ExpiresAt)
	}

	// Body form; capped by the absolute lifetime (90 min from minting).
	e.clock.Advance(50 * time.Minute)
	code, _, out = e.do("POST", "/v1/sessions/renew", map[string]any{"session_token": out["session_token"]}, nil)
	if code != 200 {
		t.Fatalf("renew: %d %v", code, out)
	}
	maxExp := before.MaxExpiresAt.Format(time.RFC3339)
	if out["expires_at"] != maxExp {
		t.Errorf("expires_at = %v, want the absolute limit %s", out["expires_at"], maxExp)
	}
	last := out["session_token"].(string)

	tests := []struct {
		name     string
		body     any
		hdr      map[string]string
		wantCode int
		wantErr  string
	}{
		{"no token", nil, nil, 400, "invalid_request"},
		{"ticket as session", nil, bearerHdr(e.httpTicket()), 401, "invalid_session"},
		{"garbage", map[string]any{"session_token": "x.y.z"}, nil, 401, "invalid_session"},
		{"header and body differ", map[string]any{"session_token": tok}, bearerHdr(last), 400, "invalid_request"},
		{"unknown field", map[string]any{"session_token": tok, "exp": 1}, nil, 400, "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, out := e.do("POST", "/v1/sessions/renew", tc.body, tc.hdr)
			wantError(t, code, out, tc.wantCode, tc.wantErr)
		})
	}
	// Past the absolute lifetime (plus leeway) nothing renews.
	e.clock.Advance(20*time.Minute + DefaultLeeway + time.Second)
	code, _, out = e.do("POST", "/v1/sessions/renew", nil, bearerHdr(last))
	wantError(t, code, out, 401, "session_expired")
}

func TestHTTPRevoke(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.APIKeys = append(c.APIKeys, APIKey{Name: "globex-backend", SHA256: HashAPIKey("pgw_globex")})
	})
	v := e.verifier()
	sess := e.httpSession()
	sid := sess["session_id"].(string)
	code, _, out := e.do("POST", "/v1/sessions/"+sid+"/revoke", nil, nil)
	wantError(t, code, out, 401, "unauthorized")
	// Another host application's key does not even see the session.
	code, _, out = e.do("POST", "/v1/sessions/"+sid+"/revoke", nil, bearerHdr("pgw_globex"))
	wantError(t, code, out, 404, "session_not_found")
	if _, err := v.Authenticate(context.Background(), sess["session_token"].(string)); err != nil {
		t.Fatalf("session after a foreign revoke attempt: %v", err)
	}
	code, _, out = e.do("POST", "/v1/sessions/"+sid+"/revoke", nil, apiKeyHdr)
	if code != 200 || out["revoked"] != true || out["session_id"] != sid {
		t.Fatalf("revoke: %d %v", code, out)
	}
	// Idempotent.
	if code, _, out := e.do("POST", "/v1/sessions/"+sid+"/revoke", nil, apiKeyHdr); code != 200 {
		t.Fatalf("second revoke: %d %v", code, out)
	}
	code, _, out = e.do("POST", "/v1/sessions/nope/revoke", nil, apiKeyHdr)
	wantError(t, code, out, 404, "session_not_found")
	code, _, out = e.do("POST", "/v1/sessions/renew", nil, bearerHdr(sess["session_token"].(string)))
	wantError(t, code, out, 401, "session_revoked")
	if _, err := v.Authenticate(context.Background(), sess["session_token"].(string)); err == nil || !strings.Contains(err.Error(), msgSessionRevoked) {
		t.Fatalf("authenticate revoked session: %v", err)
	}
}

func TestHTTPJWKSHealthMetrics(t *testing.T) {
	e := newEnv(t)
	code, hdr, out := e.do("GET", "/.well-known/jwks.json", nil, nil)
	if code != 200 || !strings.Contains(hdr.Get("Cache-Control"), "max-age") {
		t.Fatalf("jwks: %d %v %v", code, hdr, out)
	}
	keys := out["keys"].([]any)
	if len(keys) != 1 {
		t.Fatalf("keys = %v", keys)
	}
	k := keys[0].(map[string]any)
	x, _ := base64.RawURLEncoding.DecodeString(k["x"].(string))
	if k["kty"] != "OKP" || k["crv"] != "Ed25519" || k["alg"] != "EdDSA" || k["kid"] != e.svc.key.KID || !ed25519.PublicKey(x).Equal(e.svc.key.Public()) {
		t.Fatalf("jwk = %v", k)
	}
	if _, ok := k["d"]; ok {
		t.Fatal("JWKS exposes the private key")
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, _, out := e.do("GET", p, nil, nil); code != 200 || out["status"] != "ok" {
			t.Errorf("%s: %d %v", p, code, out)
		}
	}
	e.httpSession()
	resp, err := e.srv.Client().Get(e.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`pgwarden_auth_tickets_minted_total{api_key="acme-backend"} 1`,
		`pgwarden_auth_ticket_exchanges_total{result="ok"} 1`,
		`pgwarden_auth_http_requests_total{code="201",route="tickets"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	code, _, out = e.do("GET", "/v2/whatever", nil, nil)
	wantError(t, code, out, 404, "not_found")
	code, _, out = e.do("POST", "/healthz", nil, nil)
	wantError(t, code, out, 405, "method_not_allowed")

	// An error the store answers with is a 500 with a correlation id, not
	// internals.
	if _, err := e.store.pool.Exec(context.Background(), `ALTER TABLE pgwarden.redeemed_tickets RENAME TO gone`); err != nil {
		t.Fatal(err)
	}
	code, _, out = e.do("POST", "/v1/sessions", map[string]any{"ticket": e.mint()}, nil)
	wantError(t, code, out, 500, "internal_error")
	if !strings.Contains(out["message"].(string), "correlation id") || strings.Contains(out["message"].(string), "gone") {
		t.Errorf("message = %v", out["message"])
	}

	// A store that cannot be reached is a 503 with Retry-After: retry later.
	e.store.Close()
	code, _, out = e.do("GET", "/readyz", nil, nil)
	wantError(t, code, out, 503, "unavailable")
	if code, _, _ := e.do("GET", "/healthz", nil, nil); code != 200 {
		t.Errorf("healthz with store down: %d", code)
	}
	code, hdr, out = e.do("POST", "/v1/sessions", map[string]any{"ticket": e.mint()}, nil)
	wantError(t, code, out, 503, "store_unavailable")
	if hdr.Get("Retry-After") != "5" {
		t.Errorf("Retry-After = %q, want the default 5", hdr.Get("Retry-After"))
	}
}

func TestHTTPCORS(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.CORSOrigins = []string{"https://app.example.com", "http://localhost:3000"} })
	preflight := func(origin, path string) (int, http.Header) {
		code, hdr, _ := e.do("OPTIONS", path, nil, map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type",
		})
		return code, hdr
	}
	for _, path := range []string{"/v1/sessions", "/v1/sessions/renew"} {
		code, hdr := preflight("https://app.example.com", path)
		if code != 204 || hdr.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
			!strings.Contains(hdr.Get("Access-Control-Allow-Methods"), "POST") ||
			hdr.Get("Access-Control-Allow-Headers") != "Content-Type, Authorization" ||
			hdr.Get("Access-Control-Max-Age") == "" || hdr.Get("Vary") != "Origin" {
			t.Errorf("%s allowed preflight: %d %v", path, code, hdr)
		}
		for _, bad := range []string{"https://evil.example.com", "https://app.example.com.evil.com", "http://app.example.com", "null"} {
			code, hdr := preflight(bad, path)
			if code != 403 || hdr.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("%s preflight from %s: %d %v", path, bad, code, hdr)
			}
		}
	}
	code, hdr := preflight("http://localhost:3000", "/v1/sessions")
	if code != 204 || hdr.Get("Access-Control-Allow-Origin") != "http://localhost:3000" {
		t.Errorf("second origin: %d %v", code, hdr)
	}
	// The actual request.
	code, hdr, out := e.do("POST", "/v1/sessions", map[string]any{"ticket": e.httpTicket()}, map[string]string{"Origin": "https://app.example.com"})
	if code != 201 || hdr.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("allowed exchange: %d %v %v", code, hdr, out)
	}
	ticket := e.httpTicket()
	code, hdr, out = e.do("POST", "/v1/sessions", map[string]any{"ticket": ticket}, map[string]string{"Origin": "https://evil.example.com"})
	wantError(t, code, out, 403, "origin_not_allowed")
	if hdr.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("refused origin got CORS headers: %v", hdr)
	}
	// The refused request did not burn the ticket.
	if code, _, out := e.do("POST", "/v1/sessions", map[string]any{"ticket": ticket}, nil); code != 201 {
		t.Errorf("exchange after refused origin: %d %v", code, out)
	}
	// API-key endpoints are not for browsers: no preflight succeeds.
	if code, hdr := preflight("https://app.example.com", "/v1/tickets"); code == 204 || hdr.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("tickets preflight: %d %v", code, hdr)
	}
}
