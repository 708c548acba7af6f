package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	pgwarden "github.com/pgwarden/pgwarden"
	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/oidctest"
	"github.com/pgwarden/pgwarden/internal/testutil"
)

// ssoUsers are the provider's users, one per role and the refused kinds.
var ssoUsers = []oidctest.User{
	{ID: "olga", Email: "olga@corp.example", Groups: []string{"bi-owners"}},
	{ID: "adam", Email: "adam@corp.example", Groups: []string{"bi-admins", "bi-viewers"}},
	{ID: "adele", Email: "adele@corp.example", Groups: []string{"bi-admins"}},
	{ID: "cora", Email: "cora@corp.example", Groups: []string{"bi-creators"}},
	{ID: "dina", Email: "dina@corp.example", Groups: []string{"bi-designers"}},
	{ID: "vic", Email: "vic@corp.example", Groups: []string{"bi-viewers"}},
	{ID: "founder", Email: "founder@corp.example", Groups: []string{}},
	{ID: "nogroups", Email: "nogroups@corp.example"},
	{ID: "outsider", Email: "eve@elsewhere.example", Groups: []string{"bi-admins"}},
	{ID: "nobody", Email: "nobody@corp.example", Groups: []string{"marketing"}},
}

// ssoPolicy is the demo policy with test tenants and an internal section:
// products published, events readable by queriers only.
func ssoPolicy() string {
	p, _, _ := strings.Cut(pgwarden.DemoPolicy, "internal:")
	p = strings.Replace(p, "tenants: [acme, globex, initech]\n", "tenants: [acme, globex, initech]\ntest_tenants: [acme]\n", 1)
	return p + `internal:
  relations:
    public.products: { shared: true, published: true }
    public.events: { shared: true }
`
}

type ssoRun struct {
	*running
	idp     *oidctest.Provider
	service string
	audit   string
	logs    *testutil.Buffer
}

func startSSO(t *testing.T) *ssoRun {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster, an identity provider and the whole service")
	}
	idp := oidctest.Start(t, ssoUsers...)
	logs := &testutil.Buffer{}
	// Every log line goes to the test log and to a buffer that is searched
	// for token text.
	core := zapcore.NewTee(zaptest.NewLogger(t).Core(),
		zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(logs), zap.DebugLevel))
	var audit string
	r := startServeWith(t, zap.New(core), func(cfg *config.File) {
		if err := os.WriteFile(cfg.Warehouses[demoWarehouse].Policy, []byte(ssoPolicy()), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg.SSO = config.SSO{
			Providers: []config.SSOProvider{{Issuer: idp.Issuer, ClientID: oidctest.ClientID, AllowedEmailDomains: []string{"corp.example"}}},
			RoleMapping: map[string]string{"bi-owners": "Owner", "bi-admins": "Administrator", "bi-creators": "Creator",
				"bi-designers": "Designer", "bi-viewers": "Viewer"},
			Owners: []string{"founder"},
		}
		audit = cfg.Audit.Path
		cfg.Audit.Store = true // the admin API's audit reader
	})
	return &ssoRun{running: r, idp: idp, service: "http://" + r.cfg.Auth.Listen, audit: audit, logs: logs}
}

// call sends a JSON request with a bearer credential and decodes the answer.
func (s *ssoRun) call(t *testing.T, method, path, bearer string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.service+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// session exchanges user's ID token for an internal session token.
func (s *ssoRun) session(t *testing.T, user string) (token, sid string) {
	t.Helper()
	code, out := s.call(t, "POST", "/v1/sessions/oidc", "", map[string]string{"id_token": s.idp.SignIn(t, user)})
	// A user revoked within this second needs a token of a later second.
	for deadline := time.Now().Add(30 * time.Second); code == 401 && out["error"] == "subject_revoked" && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		code, out = s.call(t, "POST", "/v1/sessions/oidc", "", map[string]string{"id_token": s.idp.SignIn(t, user)})
	}
	if code != 201 {
		t.Fatalf("exchange for %s: %d %v", user, code, out)
	}
	return out["session_token"].(string), out["session_id"].(string)
}

func pgCode(err error) (string, string) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code, pe.Message
	}
	return "", ""
}

// auditLines returns the audit records with session sid.
func (s *ssoRun) auditLines(t *testing.T, sid string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(s.audit)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["session"] == sid {
			out = append(out, m)
		}
	}
	return out
}

// The provider's ID token as the PostgreSQL password opens an internal
// session whose SQL role on the internal relations follows the user's role:
// querier for Owner, Administrator and Creator, restricted_querier for
// Designer, viewer for Viewer. Audit lines carry kind, subject and role.
func TestSSOPasswordRoleSQL(t *testing.T) {
	s := startSSO(t)
	ctx := context.Background()
	for _, tc := range []struct {
		user, role, sqlRole string
		events              bool // the unpublished internal relation
	}{
		{"olga", "owner", "querier", true},
		{"adam", "administrator", "querier", true},
		{"cora", "creator", "querier", true},
		{"dina", "designer", "restricted_querier", false},
		{"vic", "viewer", "viewer", false},
	} {
		t.Run(tc.user, func(t *testing.T) {
			conn, err := s.connect(t, s.idp.SignIn(t, tc.user))
			if err != nil {
				t.Fatal(err)
			}
			var n int
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM products").Scan(&n); err != nil || n == 0 {
				t.Fatalf("published internal relation: %d, %v", n, err)
			}
			err = conn.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&n)
			if code, _ := pgCode(err); tc.events && err != nil || !tc.events && code != "42501" {
				t.Fatalf("unpublished internal relation as %s: %v", tc.sqlRole, err)
			}
			// Embed relations outside the internal set do not exist here.
			if code, _ := pgCode(conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n)); code != "42501" {
				t.Fatalf("orders is not an internal relation: got %q", code)
			}
			var sid string
			for _, l := range s.auditTail(t) {
				if l["subject"] == tc.user {
					sid, _ = l["session"].(string)
				}
			}
			lines := s.auditLines(t, sid)
			if len(lines) < 3 {
				t.Fatalf("audit lines of %s: %v", tc.user, lines)
			}
			for _, l := range lines {
				if l["kind"] != "internal" || l["subject"] != tc.user || l["role"] != tc.role {
					t.Fatalf("audit line %v, want kind internal, subject %s, role %s", l, tc.user, tc.role)
				}
			}
		})
	}
	url := "http://" + s.cfg.Metrics.Listen + "/metrics"
	if got := metricValue(t, url, `pgwarden_proxy_statements_total{kind="internal",outcome="refused"}`); got < 7 {
		t.Errorf("refused statements of internal sessions = %v, want at least 7", got)
	}
	if got := metricValue(t, url, `pgwarden_proxy_sessions_authenticated_total{kind="internal",role="designer"}`); got != 1 {
		t.Errorf("designer sessions = %v, want 1", got)
	}
}

func (s *ssoRun) auditTail(t *testing.T) []map[string]any {
	t.Helper()
	data, _ := os.ReadFile(s.audit)
	var out []map[string]any
	for _, line := range strings.Split(string(data), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// Bad tokens as the password get FATAL 28000 saying which check failed; no
// token text reaches the log or the error.
func TestSSOPasswordRefusals(t *testing.T) {
	s := startSSO(t)
	other := oidctest.Start(t, ssoUsers...)
	good := s.idp.SignIn(t, "adam")
	parts := strings.Split(good, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	json.Unmarshal(payload, &claims)
	claims["groups"] = []string{"bi-owners"} // promote oneself
	forged, _ := json.Marshal(claims)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2]
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var h map[string]any
	json.Unmarshal(header, &h)
	h["kid"] = "a-key-the-provider-never-published"
	hb, _ := json.Marshal(h)
	unknownKID := base64.RawURLEncoding.EncodeToString(hb) + "." + parts[1] + "." + parts[2]
	hs := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + parts[1]
	mac := hmac.New(sha256.New, []byte("the provider's public key, guessed"))
	mac.Write([]byte(hs))
	hs256 := hs + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	for _, tc := range []struct {
		name, token, want string
	}{
		{"wrong issuer", other.SignIn(t, "adam"), "issuer is not a trusted identity provider"},
		{"bad signature", tampered, "signature does not verify"},
		{"unknown kid", unknownKID, "signed with a key the provider does not publish"},
		{"alg HS256", hs256, "signature algorithm not allowed"},
		{"alg none", strings.Join([]string{"eyJhbGciOiJub25lIn0", parts[1], ""}, "."), "signature algorithm not allowed"},
		{"missing groups claim", s.idp.SignIn(t, "nogroups"), "no groups claim"},
		{"disallowed email domain", s.idp.SignIn(t, "outsider"), "email domain not allowed"},
		{"no mapped role", s.idp.SignIn(t, "nobody"), "none of the user's groups maps to a role"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.connect(t, tc.token)
			code, msg := pgCode(err)
			if code != "28000" || !strings.Contains(msg, tc.want) {
				t.Fatalf("got %q %q (%v), want 28000 %q", code, msg, err, tc.want)
			}
			sig := tc.token[strings.LastIndex(tc.token, ".")+1:]
			if len(sig) > 16 && (strings.Contains(err.Error(), sig) || strings.Contains(s.logs.String(), sig)) {
				t.Fatal("token text in the error or the log")
			}
		})
	}
	// A pgwarden credential still goes the ticket way.
	if _, err := s.connect(t, "not-a-token"); err == nil {
		t.Fatal("garbage accepted")
	} else if code, _ := pgCode(err); code != "28P01" {
		t.Fatalf("garbage: %v", err)
	}
}

// A BI server exchanges a signed-in author's token at POST
// /v1/sessions/oidc; the internal session connects, renews like an embed
// session, and revoking its subject closes every connection of that user —
// password-path and exchanged sessions alike.
func TestSSOExchangeRenewRevokeSubject(t *testing.T) {
	s := startSSO(t)
	ctx := context.Background()
	tok, sid := s.session(t, "cora")
	c1, err := s.connect(t, tok)
	if err != nil {
		t.Fatal(err)
	}
	code, renewed := s.call(t, "POST", "/v1/sessions/renew", tok, nil)
	if code != 200 || renewed["session_id"] != sid || renewed["role"] != "creator" {
		t.Fatalf("renew: %d %v", code, renewed)
	}
	c2, err := s.connect(t, renewed["session_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	coraID := s.idp.SignIn(t, "cora")
	c3, err := s.connect(t, coraID)
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.connect(t, s.idp.SignIn(t, "dina"))
	if err != nil {
		t.Fatal(err)
	}
	admin, _ := s.session(t, "adam")
	start := time.Now()
	code, out := s.call(t, "POST", "/v1/admin/subjects/cora/revoke", admin, nil)
	if code != 200 || len(out["revoked_sessions"].([]any)) != 2 {
		t.Fatalf("revoke subject: %d %v", code, out)
	}
	for i, c := range []*pgx.Conn{c1, c2, c3} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, err := c.Exec(ctx, "SELECT 1")
			if err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("connection %d of the revoked subject still open", i)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("all connections of the revoked subject closed %s after the revocation", time.Since(start))
	if _, err := other.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("another user's connection was closed: %v", err)
	}
	if _, err := s.connect(t, tok); err == nil {
		t.Fatal("revoked session token still connects")
	}
	if code, _ := s.call(t, "POST", "/v1/sessions/renew", tok, nil); code != 401 {
		t.Fatalf("revoked session renewed: %d", code)
	}
	// Deprovisioned: the ID token Cora still holds opens nothing, neither
	// as a password nor at the exchange.
	_, err = s.connect(t, coraID)
	if code, msg := pgCode(err); code != "28000" || !strings.Contains(msg, "issued before this user's sessions were revoked") {
		t.Fatalf("pre-revocation ID token as password: %v", err)
	}
	if code, out := s.call(t, "POST", "/v1/sessions/oidc", "", map[string]string{"id_token": coraID}); code != 401 || out["error"] != "subject_revoked" {
		t.Fatalf("pre-revocation ID token exchanged: %d %v", code, out)
	}
	// Signing in again at the provider (which still lets her) works: the
	// new token is issued after the revocation (iat has whole seconds, so
	// a sign-in within the revocation's second is refused too).
	for deadline := time.Now().Add(30 * time.Second); ; {
		_, err := s.connect(t, s.idp.SignIn(t, "cora"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fresh sign-in after the revocation: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The exchange refuses bad tokens with 401 and a reason.
	code, out = s.call(t, "POST", "/v1/sessions/oidc", "", map[string]string{"id_token": s.idp.SignIn(t, "nogroups")})
	if code != 401 || !strings.Contains(out["message"].(string), "no groups claim") {
		t.Fatalf("exchange of a token without groups: %d %v", code, out)
	}
	code, out = s.call(t, "POST", "/v1/sessions/oidc", "", map[string]string{"id_token": s.idp.SignIn(t, "nobody")})
	if code != 403 {
		t.Fatalf("exchange for a user without a role: %d %v", code, out)
	}
}
