package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// The role matrix of the README ("Sign-on and roles"), one subtest per cell
// beyond the SQL row (TestSSOPasswordRoleSQL): acting as a test tenant,
// explaining as any identity, and the operator verbs with the Owners'
// exception for Administrators.
func TestRoleMatrix(t *testing.T) {
	s := startSSO(t)
	ctx := context.Background()
	users := map[string]string{"owner": "olga", "administrator": "adam", "creator": "cora", "designer": "dina", "viewer": "vic"}
	tokens := map[string]string{}
	for role, user := range users {
		tokens[role], _ = s.session(t, user)
	}
	roles := []string{"owner", "administrator", "creator", "designer", "viewer"}

	t.Run("act as", func(t *testing.T) {
		for _, tc := range []struct {
			role, tenant string
			want         int
		}{
			{"owner", "globex", 201}, {"administrator", "globex", 201},
			{"creator", "globex", 403}, {"creator", "acme", 201},
			{"designer", "globex", 403}, {"designer", "acme", 201},
			{"viewer", "acme", 403}, {"viewer", "globex", 403},
		} {
			t.Run(tc.role+" as "+tc.tenant, func(t *testing.T) {
				code, out := s.call(t, "POST", "/v1/admin/act-as", tokens[tc.role],
					map[string]any{"tenant": tc.tenant, "groups": []string{"analysts"}, "attributes": map[string][]string{"regions": {"EU"}}})
				if code != tc.want {
					t.Fatalf("got %d %v, want %d", code, out, tc.want)
				}
				if code != 201 {
					return
				}
				// The new session is the tenant's, with the actor's SQL role.
				conn, err := s.connect(t, out["session_token"].(string))
				if err != nil {
					t.Fatal(err)
				}
				var others int
				if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders WHERE tenant_id <> $1 OR region <> 'EU'", tc.tenant).Scan(&others); err != nil || others != 0 {
					t.Fatalf("acting session sees other tenants' or regions' rows: %d, %v", others, err)
				}
				var n int
				err = conn.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&n) // unpublished embed relation
				if code, _ := pgCode(err); (tc.role == "designer") != (code == "42501") {
					t.Fatalf("unpublished relation as the %s's test tenant: %v", tc.role, err)
				}
				lines := s.auditLines(t, out["session_id"].(string))
				if len(lines) == 0 {
					t.Fatal("no audit line")
				}
				for _, l := range lines {
					if l["tenant"] != tc.tenant || l["kind"] != "embed" || l["actor_subject"] != users[tc.role] || l["actor_role"] != tc.role {
						t.Fatalf("audit line %v does not carry both identities", l)
					}
				}
			})
		}
	})

	t.Run("explain as any identity", func(t *testing.T) {
		for _, role := range roles {
			t.Run(role, func(t *testing.T) {
				code, out := s.call(t, "POST", "/v1/admin/explain", tokens[role],
					map[string]any{"warehouse": demoWarehouse, "sql": "SELECT count(*) FROM orders", "tenant": "initech", "role": "viewer"})
				want := 200
				if role == "viewer" {
					want = 403
				}
				if code != want {
					t.Fatalf("got %d %v, want %d", code, out, want)
				}
				if code == 200 && !strings.Contains(fmt.Sprint(out["statements"]), "WHERE tenant_id = 'initech'") {
					t.Fatalf("explain: %v", out)
				}
			})
		}
	})

	t.Run("operate", func(t *testing.T) {
		for _, role := range roles {
			t.Run(role, func(t *testing.T) {
				allowed := role == "owner" || role == "administrator"
				// A victim to revoke: another Administrator's session.
				_, victim := s.session(t, "adele")
				for _, step := range []struct {
					name, method, path string
					body               any
				}{
					{"sessions list", "GET", "/v1/admin/sessions", nil},
					{"connections list", "GET", "/v1/admin/connections", nil},
					{"audit read", "GET", "/v1/admin/audit", nil},
					{"stats", "GET", "/v1/admin/stats", nil},
					{"keys list", "GET", "/v1/admin/keys", nil},
					{"tenant revoke", "POST", "/v1/admin/tenants/initech/revoke", nil},
					{"external id revoke", "POST", "/v1/admin/external-ids/nobody/revoke", nil},
					{"session revoke", "POST", "/v1/admin/sessions/" + victim + "/revoke", nil},
					{"subject revoke", "POST", "/v1/admin/subjects/adele/revoke", nil},
					{"policies check", "POST", "/v1/admin/policies/check", nil},
					{"policies reload", "POST", "/v1/admin/policies/reload", nil},
					{"key create", "POST", "/v1/admin/keys", map[string]string{"name": "k-" + role, "role": "administrator"}},
					{"key rotate", "POST", "/v1/admin/keys/k-" + role + "/rotate", nil},
					{"key revoke", "POST", "/v1/admin/keys/k-" + role + "/revoke", nil},
				} {
					code, out := s.call(t, step.method, step.path, tokens[role], step.body)
					switch {
					case allowed && code/100 != 2:
						t.Errorf("%s as %s: %d %v, want success", step.name, role, code, out)
					case !allowed && code != 403:
						t.Errorf("%s as %s: %d %v, want 403", step.name, role, code, out)
					}
					if step.name == "policies check" && allowed && out["ok"] != true {
						t.Errorf("policies check: %v", out)
					}
				}
			})
		}
	})

	t.Run("administrator except owners' own", func(t *testing.T) {
		_, ownerSession := s.session(t, "olga")
		code, out := s.call(t, "POST", "/v1/admin/keys", tokens["owner"], map[string]string{"name": "owner-key", "role": "owner"})
		if code != 201 {
			t.Fatalf("owner creates an owner key: %d %v", code, out)
		}
		ownerKey := out["key"].(string)
		admin := tokens["administrator"]
		for _, step := range []struct {
			name, path string
			body       any
		}{
			{"revoke an owner's session", "/v1/admin/sessions/" + ownerSession + "/revoke", nil},
			{"revoke an owner (by role)", "/v1/admin/subjects/olga/revoke", nil},
			{"revoke an owner (by config)", "/v1/admin/subjects/founder/revoke", nil},
			{"create an owner key", "/v1/admin/keys", map[string]string{"name": "mine", "role": "owner"}},
			{"rotate an owner key", "/v1/admin/keys/owner-key/rotate", nil},
			{"revoke an owner key", "/v1/admin/keys/owner-key/revoke", nil},
		} {
			if code, out := s.call(t, "POST", step.path, admin, step.body); code != 403 {
				t.Errorf("administrator may not %s: got %d %v", step.name, code, out)
			}
		}
		// The owner key works, and an owner may revoke another owner's session.
		if code, out := s.call(t, "GET", "/v1/admin/whoami", ownerKey, nil); code != 200 || out["role"] != "owner" {
			t.Fatalf("owner key: %d %v", code, out)
		}
		if code, out := s.call(t, "POST", "/v1/admin/sessions/"+ownerSession+"/revoke", ownerKey, nil); code != 200 {
			t.Fatalf("owner revokes an owner's session: %d %v", code, out)
		}
	})

	t.Run("admin api keys", func(t *testing.T) {
		code, out := s.call(t, "POST", "/v1/admin/keys", tokens["administrator"], map[string]string{"name": "ops-script", "role": "administrator"})
		if code != 201 {
			t.Fatalf("create: %d %v", code, out)
		}
		key := out["key"].(string)
		if code, out := s.call(t, "GET", "/v1/admin/sessions", key, nil); code != 200 {
			t.Fatalf("key lists sessions: %d %v", code, out)
		}
		code, out = s.call(t, "POST", "/v1/admin/keys/ops-script/rotate", key, nil)
		if code != 200 {
			t.Fatalf("rotate: %d %v", code, out)
		}
		if code, _ := s.call(t, "GET", "/v1/admin/whoami", key, nil); code != 401 {
			t.Fatalf("old key after rotation: %d", code)
		}
		key = out["key"].(string)
		if code, _ := s.call(t, "POST", "/v1/admin/keys/ops-script/revoke", key, nil); code != 200 {
			t.Fatalf("revoke: %d", code)
		}
		if code, _ := s.call(t, "GET", "/v1/admin/whoami", key, nil); code != 401 {
			t.Fatalf("revoked key: %d", code)
		}
		// Embed sessions have no admin role.
		embed, _, err := s.app.mintSession(ctx, sessionRequest{Tenant: "acme", ExternalID: "a", Roles: map[string]string{demoWarehouse: "querier"}})
		if err != nil {
			t.Fatal(err)
		}
		if code, _ := s.call(t, "GET", "/v1/admin/whoami", embed, nil); code != 403 {
			t.Fatalf("embed session on the admin API: %d", code)
		}
	})
}
