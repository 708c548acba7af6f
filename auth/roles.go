package auth

import (
	"fmt"
	"strings"

	"github.com/pgwarden/pgwarden/policy"
)

// UserRole is an internal user's role, from the most to the least powerful.
// Embed sessions have none (""). The table of what each may do is in the
// README ("Sign-on and roles"); the methods below are that table.
type UserRole string

const (
	RoleOwner         UserRole = "owner"
	RoleAdministrator UserRole = "administrator"
	RoleCreator       UserRole = "creator"
	RoleDesigner      UserRole = "designer"
	RoleViewer        UserRole = "viewer"
)

// UserRoles lists the roles from the most to the least powerful.
var UserRoles = []UserRole{RoleOwner, RoleAdministrator, RoleCreator, RoleDesigner, RoleViewer}

// ParseUserRole accepts a role name in any case ("Owner", "owner").
func ParseUserRole(s string) (UserRole, error) {
	r := UserRole(strings.ToLower(strings.TrimSpace(s)))
	if r.rank() == 0 {
		return "", fmt.Errorf("unknown role %q (want owner, administrator, creator, designer or viewer)", s)
	}
	return r, nil
}

// rank orders roles: 5 for Owner down to 1 for Viewer, 0 for none.
func (r UserRole) rank() int {
	switch r {
	case RoleOwner:
		return 5
	case RoleAdministrator:
		return 4
	case RoleCreator:
		return 3
	case RoleDesigner:
		return 2
	case RoleViewer:
		return 1
	}
	return 0
}

// Valid reports whether r is one of the five roles.
func (r UserRole) Valid() bool { return r.rank() > 0 }

// Outranks reports whether r is more powerful than o.
func (r UserRole) Outranks(o UserRole) bool { return r.rank() > o.rank() }

// SQLRole is the connection role of r on the policy's internal relations.
func (r UserRole) SQLRole() policy.Role {
	switch r {
	case RoleOwner, RoleAdministrator, RoleCreator:
		return policy.RoleQuerier
	case RoleDesigner:
		return policy.RoleRestrictedQuerier
	case RoleViewer:
		return policy.RoleViewer
	}
	return policy.RoleNoAccess
}

// ActAsAnyTenant reports whether r may act as any tenant; ActAsTestTenants
// whether it may act as the policy's test tenants.
func (r UserRole) ActAsAnyTenant() bool { return r.rank() >= RoleAdministrator.rank() }

// ActAsTestTenants reports whether r may act as the policy's test tenants.
func (r UserRole) ActAsTestTenants() bool { return r.rank() >= RoleDesigner.rank() }

// Explain reports whether r may see the rewrite of a statement for any identity.
func (r UserRole) Explain() bool { return r.rank() >= RoleDesigner.rank() }

// Operate reports whether r may list and revoke sessions, check and reload
// policies and manage admin API keys (an Administrator not those of Owners).
func (r UserRole) Operate() bool { return r.rank() >= RoleAdministrator.rank() }
