package console

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/pgwarden/pgwarden/admin"
	"github.com/pgwarden/pgwarden/opstats"
)

// fakeAdmin answers as the admin API does for two keys: an
// administrator's and a viewer's. The console's own checks are tested
// here; the admin API's role checks, through the console, in
// cmd/pgwarden's browser test.
type fakeAdmin struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeAdmin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls = append(f.calls, r.Method+" "+r.URL.RequestURI())
	f.mu.Unlock()
	write := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	role := map[string]string{"Bearer admin-key": "administrator", "Bearer viewer-key": "viewer"}[r.Header.Get("Authorization")]
	switch {
	case role == "":
		write(401, map[string]string{"error": "unauthorized", "message": "invalid admin API key"})
	case r.URL.Path == "/v1/admin/whoami":
		write(200, map[string]string{"subject": "key:" + role, "role": role})
	case role == "viewer":
		write(403, map[string]string{"error": "forbidden", "message": "role viewer may not use " + r.URL.Path})
	case r.URL.Path == "/v1/admin/stats":
		now := time.Now().UTC()
		write(200, admin.StatsResponse{Snapshot: opstats.Snapshot{Now: now, BucketSeconds: 10, WindowSeconds: 900,
			Tenants: []opstats.Tenant{{Tenant: "acme", Statements: 3, Refusals: 1, RefusalClasses: map[string]int64{"42": 1},
				Points: []opstats.TenantPoint{{T: now.Unix() / 10 * 10, Statements: 3, Refusals: 1, Latency: opstats.Latency{P50: 1, P95: 2, P99: 3}}}}},
			Pools: []opstats.Pool{{Warehouse: "demo", Size: 20, InUse: 1, Points: []opstats.PoolPoint{{T: now.Unix() / 10 * 10, Size: 20, InUseMax: 4, Waits: 1, WaitMs: 5}}}}}})
	case r.URL.Path == "/v1/admin/sessions":
		write(200, map[string]any{"sessions": []any{map[string]string{"session_id": "s1", "tenant": "acme", "kind": "embed", "external_id": "a"}}})
	case r.URL.Path == "/v1/admin/connections":
		write(200, map[string]any{"connections": []admin.Connection{{ID: "r1-1", Tenant: "acme", Session: "s1", ExternalID: "a", State: "idle"}}, "replicas": []any{}})
	case r.Method == http.MethodPost:
		write(200, map[string]any{"revoked_sessions": []string{"s1"}})
	default:
		write(404, map[string]string{"error": "not_found", "message": "no such admin endpoint"})
	}
}

func (f *fakeAdmin) posted() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if strings.HasPrefix(c, "POST ") {
			out = append(out, c)
		}
	}
	return out
}

func newConsole(t *testing.T) (*Handler, *fakeAdmin) {
	t.Helper()
	fa := &fakeAdmin{}
	h, err := New(Config{}, fa, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return h, fa
}

type req struct {
	method, path string
	form         url.Values
	cookies      []*http.Cookie
	origin       string
	tls          bool
}

func (h *Handler) do_(t *testing.T, q req) *http.Response {
	t.Helper()
	var body io.Reader
	if q.form != nil {
		body = strings.NewReader(q.form.Encode())
	}
	r := httptest.NewRequest(q.method, "http://console.test"+q.path, body)
	if q.form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if q.origin != "" {
		r.Header.Set("Origin", q.origin)
	}
	if q.tls {
		r.TLS = &tls.ConnectionState{}
	}
	for _, c := range q.cookies {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func cookieNamed(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func bodyOf(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// signIn runs the sign-in form with key and returns the credential cookie.
func signIn(t *testing.T, h *Handler, key string, tls bool) *http.Response {
	t.Helper()
	form := h.do_(t, req{method: "GET", path: "/console/login", tls: tls})
	lc := cookieNamed(form, loginCookie)
	if lc == nil {
		t.Fatal("the sign-in form set no CSRF cookie")
	}
	return h.do_(t, req{method: "POST", path: "/console/login", cookies: []*http.Cookie{lc}, origin: "http://console.test", tls: tls,
		form: url.Values{"csrf": {lc.Value}, "credential": {key}}})
}

func TestSignInCookie(t *testing.T) {
	h, _ := newConsole(t)
	for _, tls := range []bool{false, true} {
		resp := signIn(t, h, "admin-key", tls)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/" {
			t.Fatalf("sign-in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		c := cookieNamed(resp, cookieName)
		if c == nil || c.Value != "admin-key" || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/console/" || c.Secure != tls {
			t.Fatalf("tls=%v: cookie %+v", tls, c)
		}
	}
	// A wrong key is refused and sets no credential cookie.
	resp := signIn(t, h, "wrong", false)
	if resp.StatusCode != http.StatusUnauthorized || cookieNamed(resp, cookieName) != nil {
		t.Fatalf("wrong key: %d %v", resp.StatusCode, resp.Cookies())
	}
	if b := bodyOf(t, resp); !strings.Contains(b, "invalid admin API key") {
		t.Fatalf("wrong key page: %s", b)
	}
}

func TestSignInCSRF(t *testing.T) {
	h, _ := newConsole(t)
	form := h.do_(t, req{method: "GET", path: "/console/login"})
	lc := cookieNamed(form, loginCookie)
	for name, q := range map[string]req{
		"no token":     {cookies: []*http.Cookie{lc}, form: url.Values{"credential": {"admin-key"}}},
		"wrong token":  {cookies: []*http.Cookie{lc}, form: url.Values{"csrf": {"x"}, "credential": {"admin-key"}}},
		"no cookie":    {form: url.Values{"csrf": {lc.Value}, "credential": {"admin-key"}}},
		"cross-origin": {cookies: []*http.Cookie{lc}, origin: "http://evil.test", form: url.Values{"csrf": {lc.Value}, "credential": {"admin-key"}}},
	} {
		q.method, q.path = "POST", "/console/login"
		resp := h.do_(t, q)
		if resp.StatusCode != http.StatusForbidden || cookieNamed(resp, cookieName) != nil {
			t.Errorf("%s: %d, credential cookie %v", name, resp.StatusCode, cookieNamed(resp, cookieName))
		}
	}
}

func TestPostNeedsCSRF(t *testing.T) {
	h, fa := newConsole(t)
	cred := &http.Cookie{Name: cookieName, Value: "admin-key"}
	revoke := url.Values{"do": {"revoke-tenant"}, "tenant": {"acme"}}
	with := func(v url.Values, token string) url.Values {
		out := url.Values{"csrf": {token}}
		for k, vs := range v {
			out[k] = vs
		}
		return out
	}
	for name, q := range map[string]req{
		"no token":            {form: revoke},
		"another user's":      {form: with(revoke, csrfFor("viewer-key"))},
		"cross-origin":        {form: with(revoke, csrfFor("admin-key")), origin: "http://evil.test"},
		"logout without one":  {path: "/console/logout", form: url.Values{}},
		"explain without one": {path: "/console/explain", form: url.Values{"sql": {"SELECT 1"}}},
	} {
		q.method, q.cookies = "POST", []*http.Cookie{cred}
		if q.path == "" {
			q.path = "/console/do"
		}
		if resp := h.do_(t, q); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, resp.StatusCode)
		}
	}
	if p := fa.posted(); len(p) != 0 {
		t.Fatalf("the admin API was called: %v", p)
	}
	resp := h.do_(t, req{method: "POST", path: "/console/do", cookies: []*http.Cookie{cred}, origin: "http://console.test", form: with(revoke, csrfFor("admin-key"))})
	if b := bodyOf(t, resp); resp.StatusCode != 200 || !strings.Contains(b, "Revoked 1 session(s).") {
		t.Fatalf("with the token: %d %s", resp.StatusCode, b)
	}
	if p := fa.posted(); len(p) != 1 || p[0] != "POST /v1/admin/tenants/acme/revoke" {
		t.Fatalf("admin calls %v", p)
	}
}

func TestRolesAsTheAPI(t *testing.T) {
	h, _ := newConsole(t)
	viewer := []*http.Cookie{{Name: cookieName, Value: "viewer-key"}}
	for path, what := range map[string]string{"/console/": "see the operational statistics", "/console/connections": "see sessions and connections"} {
		resp := h.do_(t, req{method: "GET", path: path, cookies: viewer})
		b := bodyOf(t, resp)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(b, "Your role (viewer) may not "+what) {
			t.Errorf("%s as viewer: %d %s", path, resp.StatusCode, b)
		}
	}
	admin := []*http.Cookie{{Name: cookieName, Value: "admin-key"}}
	resp := h.do_(t, req{method: "GET", path: "/console/", cookies: admin})
	b := bodyOf(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(b, `data-chart="activity-acme"`) || !strings.Contains(b, `data-chart="pool-demo"`) ||
		!strings.Contains(b, `data-series="refusals" data-sum="1"`) {
		t.Fatalf("overview as administrator: %d %s", resp.StatusCode, b)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Fatalf("CSP %q", csp)
	}
	// Without a cookie, or with one the API no longer accepts: the sign-in page.
	if resp := h.do_(t, req{method: "GET", path: "/console/"}); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/login" {
		t.Fatalf("signed out: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp = h.do_(t, req{method: "GET", path: "/console/", cookies: []*http.Cookie{{Name: cookieName, Value: "revoked-key"}}})
	if c := cookieNamed(resp, cookieName); resp.StatusCode != http.StatusUnauthorized || c == nil || c.MaxAge >= 0 {
		t.Fatalf("stale credential: %d, cookie %+v", resp.StatusCode, c)
	}
}

func TestConfirmStep(t *testing.T) {
	h, fa := newConsole(t)
	admin := []*http.Cookie{{Name: cookieName, Value: "admin-key"}}
	resp := h.do_(t, req{method: "GET", path: "/console/confirm?do=cancel&id=r1-7", cookies: admin})
	b := bodyOf(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(b, "Cancel the statement running on connection r1-7?") || !strings.Contains(b, csrfFor("admin-key")) {
		t.Fatalf("confirm: %d %s", resp.StatusCode, b)
	}
	if p := fa.posted(); len(p) != 0 {
		t.Fatalf("the confirm step acted: %v", p)
	}
	if resp := h.do_(t, req{method: "GET", path: "/console/confirm?do=drop-everything", cookies: admin}); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown action: %d", resp.StatusCode)
	}
}

// fakeSignOn serves the exchange's provider list and records the failed
// sign-ins the console reports.
type fakeSignOn struct {
	http.HandlerFunc
	failures []error
}

func (f *fakeSignOn) AuditWebFailure(r *http.Request, err error) {
	f.failures = append(f.failures, err)
}

// The sign-on callback refuses an answer without this browser's state
// (a forged or replayed redirect), sets no credential cookie, and reports
// each refusal for the audit log.
func TestSignOnState(t *testing.T) {
	signOn := &fakeSignOn{HandlerFunc: func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			t.Error("the ID token exchange was called")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"providers": [{"issuer": "http://127.0.0.1:1", "client_id": "pgwarden-cli", "scopes": ["openid"]}]}`))
	}}
	h, err := New(Config{SignOn: signOn}, &fakeAdmin{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	resp := h.do_(t, req{method: "GET", path: "/console/login"})
	if b := bodyOf(t, resp); !strings.Contains(b, `href="/console/login/sso?issuer=http%3a%2f%2f127.0.0.1%3a1"`) {
		t.Fatalf("sign-in page offers no provider: %s", b)
	}
	if resp := h.do_(t, req{method: "GET", path: "/console/login/sso?issuer=http://evil.example"}); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown provider: %d", resp.StatusCode)
	}
	cases := map[string][]*http.Cookie{
		"no state cookie":   nil,
		"another sign-in's": {{Name: ssoCookie, Value: "eyJzdCI6Im90aGVyIn0"}}, // {"st":"other"}
	}
	for name, cookies := range cases {
		resp := h.do_(t, req{method: "GET", path: "/console/callback?state=mine&code=c", cookies: cookies})
		if b := bodyOf(t, resp); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(b, "wrong state") || cookieNamed(resp, cookieName) != nil {
			t.Errorf("%s: %d %s", name, resp.StatusCode, b)
		}
	}
	if len(signOn.failures) != len(cases) {
		t.Fatalf("%d failures reported for the audit log, want %d", len(signOn.failures), len(cases))
	}
	for _, err := range signOn.failures {
		if !strings.Contains(err.Error(), "wrong state") {
			t.Errorf("reported %v", err)
		}
	}
}
