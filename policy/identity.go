package policy

// Role is what a session may do on one warehouse (the ticket's connection_roles).
type Role string

// Connection roles, from least to most access.
const (
	// RoleNoAccess cannot connect.
	RoleNoAccess Role = "no_access"
	// RoleViewer may read only relations the policy marks published, and
	// when the policy has a content section, run only the statements it
	// lists (content.go).
	RoleViewer Role = "viewer"
	// RoleRestrictedQuerier may write ad-hoc SQL against published relations only.
	RoleRestrictedQuerier Role = "restricted_querier"
	// RoleQuerier may write ad-hoc SQL against every exposed relation.
	RoleQuerier Role = "querier"
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	switch r {
	case RoleNoAccess, RoleViewer, RoleRestrictedQuerier, RoleQuerier:
		return true
	}
	return false
}

// Kind tells embed sessions (minted through the ticket service for a host
// application's end user) from internal ones (authors and admins through SSO).
type Kind string

const (
	KindEmbed    Kind = "embed"
	KindInternal Kind = "internal"
)

// Identity is who a session is, as far as policy is concerned. It comes only
// from a verified session token; nothing a client sends on the wire changes it.
type Identity struct {
	SessionID  string
	Kind       Kind
	Tenant     string
	ExternalID string
	Email      string
	Groups     []string
	// Attributes are named lists of strings (e.g. regions: [EU, NA]).
	Attributes map[string][]string
	// Role is the session's connection role on the warehouse it is connected to.
	Role Role
}

// InGroup reports whether the identity is in any of groups.
func (id *Identity) InGroup(groups ...string) bool {
	for _, g := range groups {
		for _, have := range id.Groups {
			if g == have {
				return true
			}
		}
	}
	return false
}
