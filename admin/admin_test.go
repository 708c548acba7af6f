package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
)

// The end-to-end matrix runs in cmd/pgwarden (TestRoleMatrix) against the
// real ticket service and store; these cover the API's own answers with
// in-memory stand-ins for them.

type fakeSessions struct {
	sessions map[string]*auth.Session
	minted   int
}

func (f *fakeSessions) VerifySession(_ context.Context, tok string) (*auth.Session, error) {
	if s, ok := f.sessions[tok]; ok {
		return s, nil
	}
	return nil, auth.ErrInvalidSession
}
func (f *fakeSessions) RevokeSession(context.Context, string, string) error { return nil }
func (f *fakeSessions) RevokeSessions(context.Context, auth.RevokeFilter, string) ([]string, int, error) {
	return nil, 0, nil
}
func (f *fakeSessions) RevokeSubject(context.Context, string) ([]string, error) {
	return nil, nil
}
func (f *fakeSessions) MintActing(_ context.Context, a *auth.Session, r auth.ActAs) (*auth.Session, string, error) {
	f.minted++
	return &auth.Session{ID: "act", Tenant: r.Tenant, Actor: &auth.Actor{Subject: a.Subject, Role: a.Role}}, "tok", nil
}

type fakeStore struct{ Store }

func (fakeStore) AdminKeyByHash(context.Context, string) (*auth.AdminKey, error) {
	return nil, auth.ErrAdminKeyNotFound
}
func (fakeStore) LiveSessions(context.Context, time.Time) ([]auth.SessionRecord, error) {
	return nil, nil
}

type fakePolicies struct{ reloadErr error }

func (fakePolicies) Check(context.Context) error    { return nil }
func (p fakePolicies) Reload(context.Context) error { return p.reloadErr }
func (fakePolicies) TestTenants() []string          { return []string{"acme"} }
func (fakePolicies) Explain(_ context.Context, _, sql string, id *policy.Identity) ([]string, error) {
	if strings.Contains(sql, "secret") {
		return nil, pgerr.Denied("permission denied for table secret")
	}
	return []string{sql + " /* " + id.Tenant + " */"}, nil
}

func TestAnswers(t *testing.T) {
	sess := &fakeSessions{sessions: map[string]*auth.Session{
		"a.b.creator": {Kind: policy.KindInternal, Subject: "cora", Role: auth.RoleCreator},
		"a.b.admin":   {Kind: policy.KindInternal, Subject: "adam", Role: auth.RoleAdministrator},
		"a.b.embed":   {Kind: policy.KindEmbed, Tenant: "acme"},
	}}
	decode := func(w http.ResponseWriter, r *http.Request, dst any) bool {
		if err := json.NewDecoder(r.Body).Decode(dst); err != nil {
			auth.WriteError(w, 400, "invalid_request", "bad json")
			return false
		}
		return true
	}
	fail := func(w http.ResponseWriter, r *http.Request, err error) {
		auth.WriteError(w, 500, "internal_error", "internal")
	}
	h, err := New(Config{}, sess, fakeStore{}, fakePolicies{reloadErr: errors.New("policy.yaml: line 3: bad")}, decode, fail, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, path, bearer, body string
		code                             int
		want                             string
	}{
		{"no credential", "GET", "/v1/admin/whoami", "", "", 401, "unauthorized"},
		{"unknown key", "GET", "/v1/admin/whoami", "pgw_nope", "", 401, "invalid admin API key"},
		{"bad session", "GET", "/v1/admin/whoami", "a.b.c", "", 401, "invalid session token"},
		{"embed session", "GET", "/v1/admin/whoami", "a.b.embed", "", 403, "embed session has no admin role"},
		{"whoami", "GET", "/v1/admin/whoami", "a.b.creator", "", 200, `"role":"creator"`},
		{"creator acts as a non-test tenant", "POST", "/v1/admin/act-as", "a.b.creator", `{"tenant":"globex"}`, 403, "only as the policy's test_tenants"},
		{"creator acts as a test tenant", "POST", "/v1/admin/act-as", "a.b.creator", `{"tenant":"acme"}`, 201, `"sub":"cora"`},
		{"creator lists sessions", "GET", "/v1/admin/sessions", "a.b.creator", "", 403, "role creator may not use /v1/admin/sessions"},
		{"explain", "POST", "/v1/admin/explain", "a.b.creator", `{"sql":"SELECT 1","tenant":"acme"}`, 200, `SELECT 1 /* acme */`},
		{"explain refused", "POST", "/v1/admin/explain", "a.b.creator", `{"sql":"SELECT * FROM secret"}`, 200, `"sqlstate":"42501"`},
		{"explain bad role", "POST", "/v1/admin/explain", "a.b.creator", `{"sql":"SELECT 1","role":"root"}`, 400, "unknown role"},
		{"reload rejected", "POST", "/v1/admin/policies/reload", "a.b.admin", "", 409, "line 3: bad"},
		{"key with a non-operator role", "POST", "/v1/admin/keys", "a.b.admin", `{"name":"k","role":"viewer"}`, 400, "want owner or administrator"},
		{"wrong method", "GET", "/v1/admin/act-as", "a.b.admin", "", 405, ""},
		{"unknown endpoint", "GET", "/v1/admin/nope", "a.b.admin", "", 404, "no such admin endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			if tc.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+tc.bearer)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.want) {
				t.Fatalf("got %d %s, want %d containing %q", rec.Code, rec.Body, tc.code, tc.want)
			}
		})
	}
	if sess.minted != 1 {
		t.Fatalf("MintActing called %d times, want 1 (refusals never reach it)", sess.minted)
	}
}
