package auth

import (
	"testing"

	"github.com/pgwarden/pgwarden/policy"
)

// POST /v1/sessions names the database to connect with even when several
// warehouses are configured and auth.connect.database is not set.
func TestConnectDatabase(t *testing.T) {
	s := func(base policy.Role, roles map[string]policy.Role) *Session {
		return &Session{BaseRole: base, ConnectionRoles: roles}
	}
	for _, tc := range []struct {
		name, configured string
		warehouses       []string
		s                *Session
		want             string
	}{
		{"configured wins", "analytics", []string{"a", "b"}, s(policy.RoleNoAccess, map[string]policy.Role{"b": policy.RoleQuerier}), "analytics"},
		{"the one the ticket opens", "", []string{"a", "b", "c"}, s(policy.RoleNoAccess, map[string]policy.Role{"b": policy.RoleViewer, "a": policy.RoleNoAccess}), "b"},
		{"first by name of several", "", []string{"c", "b"}, s(policy.RoleNoAccess, map[string]policy.Role{"b": policy.RoleQuerier, "c": policy.RoleQuerier}), "b"},
		{"base role opens all", "", []string{"z", "y"}, s(policy.RoleViewer, nil), "y"},
		{"none opened", "", []string{"a"}, s(policy.RoleNoAccess, nil), ""},
	} {
		h := &Handler{cfg: Config{ConnectDatabase: tc.configured, Warehouses: tc.warehouses}}
		if got := h.connectDatabase(tc.s); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
