// Package oidc is pgwarden's sign-on for internal users: it verifies an
// OpenID Connect provider's ID token (github.com/coreos/go-oidc, signatures
// by go-jose), maps the user's groups to one of five roles, and turns the
// result into an internal session of package auth — the same session claims
// a ticket becomes, so the proxy learns nothing new. The three ways in:
//
//   - the provider's token as the PostgreSQL password (Authenticator);
//   - POST /v1/sessions/oidc on the ticket service (Handler), for a BI
//     server exchanging a signed-in author's token;
//   - `pgwarden login` (Login): authorization code with PKCE and a loopback
//     redirect, then the same exchange.
package oidc

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/pgwarden/pgwarden/auth"
)

// Config is the sign-on configuration. Zero fields take their defaults
// (WithDefaults); Validate names the field at fault.
type Config struct {
	Providers []Provider
	// RoleMapping maps a provider group to a role; a user gets the highest
	// role of their groups, and a user with none is refused.
	RoleMapping map[string]auth.UserRole
	// Owners are subjects ("issuer|sub" or a bare sub) that are Owners
	// whatever their groups.
	Owners []string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Provider is one trusted identity provider.
type Provider struct {
	// Issuer is the provider's issuer URL; discovery reads
	// Issuer + "/.well-known/openid-configuration".
	Issuer string
	// ClientID is pgwarden's client at the provider (used by `pgwarden
	// login`, and the default audience).
	ClientID string
	// Audiences are the aud values accepted (default [ClientID]).
	Audiences []string
	// SubjectClaim, EmailClaim and GroupsClaim name the claims that carry
	// them (defaults sub, email, groups; Entra ID uses oid and groups or
	// roles, Okta groups, Keycloak groups, Google has no groups claim).
	SubjectClaim string
	EmailClaim   string
	GroupsClaim  string
	// AllowedEmailDomains, when set, refuses users whose email is not in
	// one of them (exact domain, case-insensitive).
	AllowedEmailDomains []string
	// Leeway tolerates clock skew on exp, nbf and iat (default 30s).
	Leeway time.Duration
	// Algorithms are the accepted signature algorithms (default RS256,
	// RS384, RS512, PS256, ES256, ES384, EdDSA). "none" and HMAC never are.
	Algorithms []string
	// Scopes requested by `pgwarden login` (default openid, email, profile, groups).
	Scopes []string
}

var defaultAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Now == nil {
		c.Now = time.Now
	}
	ps := make([]Provider, len(c.Providers))
	for i, p := range c.Providers {
		p.Issuer = strings.TrimSuffix(p.Issuer, "/")
		if len(p.Audiences) == 0 && p.ClientID != "" {
			p.Audiences = []string{p.ClientID}
		}
		if p.SubjectClaim == "" {
			p.SubjectClaim = "sub"
		}
		if p.EmailClaim == "" {
			p.EmailClaim = "email"
		}
		if p.GroupsClaim == "" {
			p.GroupsClaim = "groups"
		}
		if p.Leeway == 0 {
			p.Leeway = auth.DefaultLeeway
		}
		if len(p.Algorithms) == 0 {
			p.Algorithms = defaultAlgorithms
		}
		if len(p.Scopes) == 0 {
			p.Scopes = []string{"openid", "email", "profile", "groups"}
		}
		ps[i] = p
	}
	c.Providers = ps
	return c
}

// Validate checks c (after WithDefaults).
func (c Config) Validate() error {
	if len(c.Providers) == 0 {
		return errors.New("sso.providers: at least one provider is required")
	}
	seen := map[string]bool{}
	for i, p := range c.Providers {
		f := fmt.Sprintf("sso.providers[%d]", i)
		u, err := url.Parse(p.Issuer)
		switch {
		case p.Issuer == "" || err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			return fmt.Errorf("%s.issuer: want an http(s) URL, got %q", f, p.Issuer)
		case u.Scheme == "http" && !loopbackHost(u.Hostname()):
			return fmt.Errorf("%s.issuer: plain http is only accepted on loopback (tests); use https", f)
		case seen[p.Issuer]:
			return fmt.Errorf("%s.issuer: %q is listed twice", f, p.Issuer)
		case len(p.Audiences) == 0:
			return fmt.Errorf("%s: client_id or audiences is required", f)
		case p.Leeway < 0 || p.Leeway > auth.MaxLeeway:
			return fmt.Errorf("%s.leeway: must be between 0 and %s", f, auth.MaxLeeway)
		}
		seen[p.Issuer] = true
		for _, a := range p.Algorithms {
			if !slices.Contains(defaultAlgorithms, a) {
				return fmt.Errorf("%s.algorithms: %q is not an accepted asymmetric algorithm (want one of %s)", f, a, strings.Join(defaultAlgorithms, ", "))
			}
		}
		for j, d := range p.AllowedEmailDomains {
			if d == "" || strings.Contains(d, "@") {
				return fmt.Errorf("%s.allowed_email_domains[%d]: want a domain such as example.com", f, j)
			}
		}
	}
	if len(c.RoleMapping) == 0 && len(c.Owners) == 0 {
		return errors.New("sso.role_mapping: map at least one group to a role (owner, administrator, creator, designer, viewer)")
	}
	for g, r := range c.RoleMapping {
		if g == "" {
			return errors.New("sso.role_mapping: empty group name")
		}
		if !r.Valid() {
			return fmt.Errorf("sso.role_mapping.%s: unknown role %q (want owner, administrator, creator, designer or viewer)", g, r)
		}
	}
	return nil
}

func loopbackHost(h string) bool {
	return h == "localhost" || h == "::1" || strings.HasPrefix(h, "127.")
}
