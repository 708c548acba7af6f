// Package auth mints and verifies web-tickets and session tokens and runs the
// ticket service. It knows nothing of the PostgreSQL wire protocol.
package auth

import (
	"time"

	"github.com/pgwarden/pgwarden/policy"
)

// Session is a verified session: who it is and until when. Its claims are
// fixed at minting; renewal extends ExpiresAt only.
type Session struct {
	ID         string
	Kind       policy.Kind
	Tenant     string
	ExternalID string
	Email      string
	Groups     []string
	Attributes map[string][]string
	// ConnectionRoles maps warehouse name to role; a warehouse not named gets BaseRole.
	ConnectionRoles map[string]policy.Role
	BaseRole        policy.Role
	ExpiresAt       time.Time
	// MaxExpiresAt is the absolute end of the session: renewals stop there.
	MaxExpiresAt time.Time
	// APIKeyName names the API key that minted the ticket (for audit logs).
	APIKeyName string
	// PinnedAddr is the client address that exchanged the ticket, when the
	// ticket asked to pin its session there (pin_client_address); the proxy
	// refuses the session from any other address. "" when not pinned; a
	// string (netip's form), so that sessions stay plainly comparable.
	PinnedAddr string
	// Subject is an internal user's stable id at the identity provider
	// (also ExternalID); Role is that user's role. Both are empty for
	// embed sessions.
	Subject string
	Role    UserRole
	// Actor is the internal user acting as a test tenant in this embed
	// session; nil otherwise. Audit lines carry both identities.
	Actor *Actor
}

// Actor is the internal user behind an embed session opened to act as a
// test tenant.
type Actor struct {
	Subject string   `json:"sub"`
	Email   string   `json:"email,omitempty"`
	Role    UserRole `json:"role"`
}

// Identity returns the policy identity of the session on warehouse.
func (s *Session) Identity(warehouse string) *policy.Identity {
	role, ok := s.ConnectionRoles[warehouse]
	if !ok {
		role = s.BaseRole
	}
	if role == "" {
		role = policy.RoleNoAccess
	}
	return &policy.Identity{
		SessionID:  s.ID,
		Kind:       s.Kind,
		Tenant:     s.Tenant,
		ExternalID: s.ExternalID,
		Email:      s.Email,
		Groups:     s.Groups,
		Attributes: s.Attributes,
		Role:       role,
	}
}
