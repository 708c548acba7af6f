package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pgwarden/pgwarden/policy"
)

// Refusals, tested with errors.Is. Their text never contains a credential.
var (
	ErrInvalidTicket   = errors.New("invalid ticket")
	ErrTicketExpired   = errors.New("ticket expired")
	ErrTicketUsed      = errors.New("ticket already used")
	ErrInvalidSession  = errors.New("invalid session token")
	ErrSessionExpired  = errors.New("session expired")
	ErrSessionRevoked  = errors.New("session revoked")
	ErrSessionNotFound = errors.New("session not found")
	// ErrPinNeedsAddress: a ticket that pins its session to the client
	// address was exchanged where no client address is known (the CLI).
	ErrPinNeedsAddress = errors.New("ticket pins its session to the client address, and none is known here")
)

// maxTokenLen bounds what we hand to the JWT parser; our tokens are ~1 KiB
// unless a ticket carries many attributes.
const maxTokenLen = 32 << 10

// claims is the JWT payload of both tickets and session tokens. Audience
// tells them apart; a session additionally has sid and max.
type claims struct {
	jwt.RegisteredClaims
	Tenant     string                 `json:"tenant"`
	ExternalID string                 `json:"external_id"`
	Email      string                 `json:"email,omitempty"`
	Groups     []string               `json:"groups,omitempty"`
	Attrs      map[string][]string    `json:"attrs,omitempty"`
	Roles      map[string]policy.Role `json:"roles,omitempty"`
	BaseRole   policy.Role            `json:"base_role,omitempty"`
	Kind       policy.Kind            `json:"kind"`
	SID        string                 `json:"sid,omitempty"`
	// Max is the absolute expiry of a session: renewal never passes it.
	Max *jwt.NumericDate `json:"max,omitempty"`
	// APIKey is the name of the API key that minted the ticket.
	APIKey string `json:"akn,omitempty"`
	// Pin, on a ticket, asks that its session be pinned to the client
	// address that exchanges it; PinAddr, on a session, is that address.
	Pin     bool   `json:"pin,omitempty"`
	PinAddr string `json:"pin_addr,omitempty"`
	// URole is an internal session's role; Act the internal user acting
	// as a test tenant in an embed session. Subject is RegisteredClaims'.
	URole UserRole `json:"urole,omitempty"`
	Act   *Actor   `json:"act,omitempty"`
}

func (c *claims) session() *Session {
	s := &Session{
		ID:              c.SID,
		Kind:            c.Kind,
		Tenant:          c.Tenant,
		ExternalID:      c.ExternalID,
		Email:           c.Email,
		Groups:          slices.Clone(c.Groups),
		Attributes:      make(map[string][]string, len(c.Attrs)),
		ConnectionRoles: make(map[string]policy.Role, len(c.Roles)),
		BaseRole:        c.BaseRole,
		APIKeyName:      c.APIKey,
		Subject:         c.Subject,
		Role:            c.URole,
	}
	if c.Act != nil {
		a := *c.Act
		s.Actor = &a
	}
	for k, v := range c.Attrs {
		s.Attributes[k] = slices.Clone(v)
	}
	for k, v := range c.Roles {
		s.ConnectionRoles[k] = v
	}
	if s.BaseRole == "" {
		s.BaseRole = policy.RoleNoAccess
	}
	s.PinnedAddr = c.PinAddr
	if c.ExpiresAt != nil {
		s.ExpiresAt = c.ExpiresAt.Time
	}
	if c.Max != nil {
		s.MaxExpiresAt = c.Max.Time
	}
	return s
}

// randomID returns n random bytes, base64url.
func randomID(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// sign mints c with key, stamping kid in the header.
func sign(key *SigningKey, c *claims) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["kid"] = key.KID
	s, err := t.SignedString(key.Private)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// tokenVerifier checks tokens in hashicorp/cap's order: signature against the
// pinned algorithm, then issuer and audience, then time claims with leeway,
// then the claims themselves.
type tokenVerifier struct {
	keys   KeySource
	issuer string
	leeway time.Duration
	now    func() time.Time
	parser *jwt.Parser
}

func newTokenVerifier(keys KeySource, issuer string, leeway time.Duration, now func() time.Time) *tokenVerifier {
	return &tokenVerifier{
		keys: keys, issuer: issuer, leeway: leeway, now: now,
		// Only EdDSA: no "none", no HS256 keyed with our public key.
		// Claims are checked below, in our order.
		parser: jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}), jwt.WithoutClaimsValidation()),
	}
}

// errBadToken covers every refusal that is not about time: bad signature,
// unknown kid, wrong issuer, wrong audience, malformed claims.
var errBadToken = errors.New("bad token")

// verify checks raw and returns its claims and which of audiences it carries.
// Errors: errBadToken, errExpired, or a key-source error (unreachable JWKS).
func (v *tokenVerifier) verify(ctx context.Context, raw string, audiences ...string) (*claims, string, error) {
	if raw == "" || len(raw) > maxTokenLen {
		return nil, "", errBadToken
	}
	var keyErr error
	c := &claims{}
	_, err := v.parser.ParseWithClaims(raw, c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errUnknownKID
		}
		k, err := v.keys.PublicKey(ctx, kid)
		if err != nil && !errors.Is(err, errUnknownKID) {
			keyErr = err
		}
		if err != nil {
			return nil, err
		}
		return k, nil
	})
	if keyErr != nil {
		return nil, "", fmt.Errorf("verification keys: %w", keyErr)
	}
	if err != nil {
		return nil, "", errBadToken
	}
	if c.Issuer != v.issuer {
		return nil, "", errBadToken
	}
	aud := ""
	for _, a := range audiences {
		if slices.Contains(c.Audience, a) {
			aud = a
			break
		}
	}
	if aud == "" || len(c.Audience) != 1 {
		return nil, "", errBadToken
	}
	now := v.now()
	if c.ExpiresAt == nil || c.IssuedAt == nil || c.ID == "" {
		return nil, "", errBadToken
	}
	if c.NotBefore != nil && now.Add(v.leeway).Before(c.NotBefore.Time) {
		return nil, "", errBadToken
	}
	if now.Add(v.leeway).Before(c.IssuedAt.Time) {
		return nil, "", errBadToken
	}
	if !now.Before(c.ExpiresAt.Add(v.leeway)) {
		return nil, aud, errExpired
	}
	// An internal session has a subject and a role instead of a tenant.
	switch c.Kind {
	case policy.KindEmbed:
		if c.Tenant == "" || c.ExternalID == "" || c.URole != "" {
			return nil, "", errBadToken
		}
	case policy.KindInternal:
		if c.Subject == "" || c.ExternalID != c.Subject || !c.URole.Valid() || c.Act != nil {
			return nil, "", errBadToken
		}
	default:
		return nil, "", errBadToken
	}
	if aud == AudienceSession {
		if c.SID == "" || c.Max == nil || c.ExpiresAt.After(c.Max.Time) {
			return nil, "", errBadToken
		}
		// The absolute lifetime is enforced as a time claim of its own.
		if !now.Before(c.Max.Add(v.leeway)) {
			return nil, aud, errExpired
		}
	}
	return c, aud, nil
}

var errExpired = errors.New("token expired")
