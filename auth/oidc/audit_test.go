package oidc_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/pgwarden/pgwarden/admin"
	"github.com/pgwarden/pgwarden/audit"
	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/auth/oidc"
	"github.com/pgwarden/pgwarden/console"
	"github.com/pgwarden/pgwarden/internal/oidctest"
	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/internal/testutil"
	"github.com/pgwarden/pgwarden/policy"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// lines is the audit file: written by the servers' goroutines, read by
// the test.
type lines struct{ testutil.Buffer }

// since returns the records written after the first n, and the new count.
func (l *lines) since(t *testing.T, n int) ([]audit.Record, int) {
	t.Helper()
	var out []audit.Record
	sc := bufio.NewScanner(strings.NewReader(l.String()))
	i := 0
	for sc.Scan() {
		if i++; i <= n {
			continue
		}
		var r audit.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit line %q: %v", sc.Bytes(), err)
		}
		out = append(out, r)
	}
	return out, i
}

var signOnUsers = []oidctest.User{
	{ID: "adam", Email: "adam@corp.example", Groups: []string{"bi-admins"}},
	{ID: "vic", Email: "vic@corp.example", Groups: []string{"bi-viewers"}},
	{ID: "nobody", Email: "nobody@corp.example", Groups: []string{"marketing"}},
	{ID: "nogroups", Email: "nogroups@corp.example"},
	{ID: "outsider", Email: "eve@elsewhere.example", Groups: []string{"bi-admins"}},
}

type anyPolicy struct{}

func (anyPolicy) KnowsTenant(string) bool { return true }
func (anyPolicy) KnowsGroup(string) bool  { return true }

// signOnEnv is a real ticket service on a throwaway database with its
// audit file and the store's copy (through a real batcher), and sign-on
// exchanges mounted under prefixes, one per verifier configuration.
type signOnEnv struct {
	p, other *oidctest.Provider
	cfg      auth.Config
	store    *auth.Store
	svc      *auth.Service
	h        *auth.Handler
	srv      *httptest.Server
	file     *lines
	stop     func() // flushes the batcher to the store
	log      *zap.Logger
}

func newSignOnEnv(t *testing.T) *signOnEnv {
	t.Helper()
	ctx := context.Background()
	e := &signOnEnv{p: oidctest.Start(t, signOnUsers...), other: oidctest.Start(t, signOnUsers...), file: &lines{},
		log: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))}
	g, err := auth.GenerateKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = auth.Config{SigningKeyFile: g.PrivateKeyFile, StoreDSN: pgtest.NewDatabase(t, ""), ConnectHost: "127.0.0.1", ConnectPort: 6432}
	if e.store, err = auth.Open(ctx, e.cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.store.Close)
	if err := e.store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := audit.NewBatcher(audit.BatcherConfig{}, e.store, e.log)
	if err != nil {
		t.Fatal(err)
	}
	bctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); b.Run(bctx) }()
	var once sync.Once
	e.stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(e.stop)
	e.cfg.Audit = audit.New(e.file, b)
	if e.svc, err = auth.NewService(e.cfg, e.store, anyPolicy{}, e.log); err != nil {
		t.Fatal(err)
	}
	if e.h, err = auth.NewHandler(e.svc, prometheus.NewRegistry(), e.log); err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.h)
	t.Cleanup(e.srv.Close)
	return e
}

// exchange mounts a sign-on exchange with verifier v at prefix and
// returns it.
func (e *signOnEnv) exchange(t *testing.T, prefix string, v *oidc.Verifier) *oidc.Handler {
	t.Helper()
	x, err := oidc.NewHandler(v, e.svc, e.h, e.log)
	if err != nil {
		t.Fatal(err)
	}
	e.h.Mount(prefix+"/v1/sessions/oidc", "sessions_oidc"+strings.ReplaceAll(prefix, "/", "_"), x)
	return x
}

func (e *signOnEnv) post(t *testing.T, prefix, token string) int {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"id_token": token})
	resp, err := e.srv.Client().Post(e.srv.URL+prefix+"/v1/sessions/oidc", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func verifierFor(t *testing.T, p *oidctest.Provider, client *http.Client, mod func(*oidc.Config)) *oidc.Verifier {
	t.Helper()
	cfg := oidc.Config{
		Providers:   []oidc.Provider{{Issuer: p.Issuer, ClientID: oidctest.ClientID, AllowedEmailDomains: []string{"corp.example"}}},
		RoleMapping: map[string]auth.UserRole{"bi-admins": auth.RoleAdministrator, "bi-viewers": auth.RoleViewer},
	}
	if mod != nil {
		mod(&cfg)
	}
	v, err := oidc.New(cfg, client)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Every sign-on through POST /v1/sessions/oidc is audited exactly once:
// a refusal for each reason with outcome refused (error when the provider
// is down), the words the client was answered, the client's address, and
// the user's subject and email only when the token's signature verified —
// never the claims of a forged or unverifiable token. An opened session's
// record carries the address too. The records reach the store's copy,
// where the admin API's reader filters them by event, kind and outcome.
func TestSignOnAudit(t *testing.T) {
	e := newSignOnEnv(t)
	ctx := context.Background()
	adam := e.p.SignIn(t, "adam")
	parts := strings.Split(adam, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	json.Unmarshal(payload, &claims)
	claims["groups"], claims["sub"], claims["email"] = []string{"bi-owners"}, "mallory", "mallory@corp.example"
	forged, _ := json.Marshal(claims)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2]

	// A provider that cannot be reached: its discovery dials a loopback
	// port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	down := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, dead)
		}}}

	e.exchange(t, "", verifierFor(t, e.p, nil, nil))
	e.exchange(t, "/aud", verifierFor(t, e.p, nil, func(c *oidc.Config) { c.Providers[0].Audiences = []string{"some-other-app"} }))
	e.exchange(t, "/later", verifierFor(t, e.p, nil, func(c *oidc.Config) { c.Now = func() time.Time { return time.Now().Add(3 * time.Hour) } }))
	e.exchange(t, "/down", verifierFor(t, e.p, down, nil))

	// vic's sessions are revoked after their token was issued.
	vic := e.p.SignIn(t, "vic")
	if _, err := e.svc.RevokeSubject(ctx, "vic"); err != nil {
		t.Fatal(err)
	}

	type want struct {
		status         int
		outcome        string
		reason         string
		subject, email string
	}
	cases := []struct {
		name, prefix, token string
		want                want
	}{
		{"not a jwt", "", "hunter2", want{401, audit.OutcomeRefused, oidc.ErrMalformed.Error(), "", ""}},
		{"no token", "", "", want{400, audit.OutcomeRefused, "send the provider's ID token as id_token or as a bearer token", "", ""}},
		{"untrusted issuer", "", e.other.SignIn(t, "adam"), want{401, audit.OutcomeRefused, oidc.ErrIssuer.Error(), "", ""}},
		{"forged claims", "", tampered, want{401, audit.OutcomeRefused, oidc.ErrSignature.Error(), "", ""}},
		{"wrong audience", "/aud", adam, want{401, audit.OutcomeRefused, oidc.ErrAudience.Error(), "adam", "adam@corp.example"}},
		{"expired", "/later", adam, want{401, audit.OutcomeRefused, oidc.ErrExpired.Error(), "adam", "adam@corp.example"}},
		{"no groups claim", "", e.p.SignIn(t, "nogroups"), want{401, audit.OutcomeRefused, oidc.ErrNoGroups.Error(), "nogroups", "nogroups@corp.example"}},
		{"email domain", "", e.p.SignIn(t, "outsider"), want{403, audit.OutcomeRefused, oidc.ErrEmailDomain.Error(), "outsider", "eve@elsewhere.example"}},
		{"no role", "", e.p.SignIn(t, "nobody"), want{403, audit.OutcomeRefused, oidc.ErrNoRole.Error(), "nobody", "nobody@corp.example"}},
		{"subject revoked", "", vic, want{401, audit.OutcomeRefused, auth.ErrSubjectRevoked.Error(), "vic", "vic@corp.example"}},
		{"provider unavailable", "/down", adam, want{503, audit.OutcomeError, oidc.ErrProviderUnavailable.Error(), "", ""}},
		{"signed on", "", adam, want{201, audit.OutcomeOK, "sign-on", "adam", "adam@corp.example"}},
	}
	_, n := e.file.since(t, 0)
	counts := map[string]int{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := e.post(t, tc.prefix, tc.token); got != tc.want.status {
				t.Errorf("status %d, want %d", got, tc.want.status)
			}
			var recs []audit.Record
			recs, n = e.file.since(t, n)
			if len(recs) != 1 {
				t.Fatalf("%d audit records, want exactly 1: %+v", len(recs), recs)
			}
			r := recs[0]
			got := want{tc.want.status, r.Outcome, r.Reason, r.Subject, r.Email}
			if got != tc.want {
				t.Errorf("record %+v\n got %+v\nwant %+v", r, got, tc.want)
			}
			if r.Event != audit.EventExchange || r.Kind != "internal" || r.ClientAddr != "127.0.0.1" {
				t.Errorf("event %q kind %q client_addr %q, want exchange internal 127.0.0.1", r.Event, r.Kind, r.ClientAddr)
			}
			if (r.Session != "") != (tc.want.outcome == audit.OutcomeOK) {
				t.Errorf("session %q with outcome %s", r.Session, r.Outcome)
			}
			if strings.Contains(r.Subject+r.Email, "mallory") {
				t.Errorf("the forged token's claims were recorded: %+v", r)
			}
			counts[r.Outcome]++
		})
	}

	// A store that fails is pgwarden's error, not the user's.
	broken, err := auth.Open(ctx, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	svc2, err := auth.NewService(e.cfg, broken, anyPolicy{}, e.log)
	if err != nil {
		t.Fatal(err)
	}
	broken.Close()
	u, err := verifierFor(t, e.p, nil, nil).Verify(ctx, adam)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc2.MintInternalFrom(ctx, u, netip.MustParseAddr("127.0.0.1")); err == nil {
		t.Fatal("a closed store opened a session")
	}
	recs, _ := e.file.since(t, n)
	if len(recs) != 1 || recs[0].Outcome != audit.OutcomeError || recs[0].Subject != "adam" || recs[0].ClientAddr != "127.0.0.1" || recs[0].Session != "" {
		t.Fatalf("store failure recorded as %+v", recs)
	}
	counts[audit.OutcomeError]++

	// The admin API's reader (auth.Store.QueryAudit behind
	// GET /v1/admin/audit and the console's audit page) finds each.
	e.stop()
	for outcome, want := range counts {
		page, err := e.store.QueryAudit(ctx, auth.AuditQuery{Event: audit.EventExchange, Kind: "internal", Outcome: outcome, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Records) != want || page.Incomplete {
			t.Errorf("outcome %s: %d stored records (incomplete %v), want %d", outcome, len(page.Records), page.Incomplete, want)
		}
	}
	page, err := e.store.QueryAudit(ctx, auth.AuditQuery{Subject: "nobody", Outcome: audit.OutcomeRefused, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var stored audit.Record
	if len(page.Records) != 1 || json.Unmarshal(page.Records[0], &stored) != nil || stored.ClientAddr != "127.0.0.1" || stored.Email != "nobody@corp.example" {
		t.Errorf("by subject: %s", page.Records)
	}
}

// A console sign-in that fails at the provider's answer — no state cookie,
// another sign-in's state, the provider's refusal — is audited once each,
// refused, with the browser's address and fixed words: never the error
// description the answer's URL carried.
func TestConsoleSignOnAudit(t *testing.T) {
	e := newSignOnEnv(t)
	x := e.exchange(t, "", verifierFor(t, e.p, nil, nil))
	ad, err := admin.New(admin.Config{AuditStored: true}, e.svc, e.store, noPolicies{}, e.h.Decode, e.h.Fail, e.log)
	if err != nil {
		t.Fatal(err)
	}
	e.h.Mount("/v1/admin/", "admin", ad)
	c, err := console.New(console.Config{SignOn: x}, ad, e.log)
	if err != nil {
		t.Fatal(err)
	}
	e.h.Mount(console.Prefix, "console", c)
	state := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"` + e.p.Issuer + `","st":"s1"}`))
	junk := url.QueryEscape(strings.Repeat(`injected", "outcome": "ok `, 200))
	_, n := e.file.since(t, 0)
	for _, tc := range []struct {
		name, query, cookie, reason string
	}{
		{"no state cookie", "state=s1&code=c", "", "console sign-in: sign-in answer with a wrong state: start again"},
		{"another sign-in's state", "state=s2&code=c", state, "console sign-in: sign-in answer with a wrong state: start again"},
		{"provider refused", "state=s1&error=access_denied&error_description=" + junk, state, "console sign-in: identity provider refused: access_denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/console/callback?"+tc.query, nil)
			if tc.cookie != "" {
				req.AddCookie(&http.Cookie{Name: "pgwarden_console_sso", Value: tc.cookie})
			}
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("status %d", resp.StatusCode)
			}
			var recs []audit.Record
			recs, n = e.file.since(t, n)
			if len(recs) != 1 {
				t.Fatalf("%d audit records, want 1: %+v", len(recs), recs)
			}
			r := recs[0]
			if r.Event != audit.EventExchange || r.Kind != "internal" || r.Outcome != audit.OutcomeRefused || r.Reason != tc.reason ||
				r.ClientAddr != "127.0.0.1" || r.Subject != "" || r.Email != "" || r.Session != "" {
				t.Errorf("record %+v, want reason %q", r, tc.reason)
			}
		})
	}

	// The operator finds them on the console's audit page (the admin
	// API's reader) filtered to refused internal sign-ons.
	e.stop()
	_, tok, err := e.svc.MintInternal(context.Background(), auth.InternalUser{Subject: "adam", Role: auth.RoleAdministrator})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/console/audit?event=exchange&kind=internal&outcome=refused", nil)
	req.AddCookie(&http.Cookie{Name: "pgwarden_console", Value: tok})
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	if resp.StatusCode != http.StatusOK || strings.Count(page, `data-outcome="refused"`) != 3 ||
		strings.Count(page, "sign-in answer with a wrong state") != 2 || !strings.Contains(page, "identity provider refused: access_denied") ||
		strings.Count(page, "<td>127.0.0.1</td>") != 3 || strings.Contains(page, "injected") {
		t.Errorf("audit page: %d\n%s", resp.StatusCode, page)
	}
}

// noPolicies: the admin API here serves whoami and the audit reader,
// which read no policy.
type noPolicies struct{}

var errNoPolicies = errors.New("no policies in this test")

func (noPolicies) Check(context.Context) error  { return errNoPolicies }
func (noPolicies) Reload(context.Context) error { return errNoPolicies }
func (noPolicies) TestTenants() []string        { return nil }
func (noPolicies) Explain(context.Context, string, string, *policy.Identity) ([]string, error) {
	return nil, errNoPolicies
}
