package oidc

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/pgwarden/pgwarden/auth"
)

// maxTokenLen bounds what we parse; provider ID tokens with many groups
// reach a few KiB (Entra ID switches to an overage claim past 200 groups).
const maxTokenLen = 64 << 10

// Verifier verifies provider tokens and maps users to roles. It is safe for
// concurrent use.
type Verifier struct {
	cfg       Config
	client    *http.Client
	providers map[string]*provider
	owners    map[string]bool
}

type provider struct {
	cfg    Provider
	client *http.Client
	keys   *keySet

	mu       sync.Mutex
	verifier *gooidc.IDTokenVerifier // nil until discovery succeeded
}

// New returns a verifier for cfg. client makes the discovery and JWKS
// requests (nil: a client with a 10s timeout). Discovery happens on first
// use and is retried until it succeeds, so a provider that is down when
// pgwarden starts does not stop it.
func New(cfg Config, client *http.Client) (*Verifier, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	v := &Verifier{cfg: cfg, client: client, providers: map[string]*provider{}, owners: map[string]bool{}}
	for _, p := range cfg.Providers {
		algs := make([]jose.SignatureAlgorithm, len(p.Algorithms))
		for i, a := range p.Algorithms {
			algs[i] = jose.SignatureAlgorithm(a)
		}
		v.providers[p.Issuer] = &provider{cfg: p, client: client,
			keys: &keySet{client: client, algs: algs, now: cfg.Now, minRefresh: 5 * time.Second}}
	}
	for _, o := range cfg.Owners {
		v.owners[o] = true
	}
	return v, nil
}

// peek reads a token's header and payload without trusting them, to route
// it to its provider and to classify refusals precisely. Nothing read here
// is believed until go-oidc has verified the signature.
type peeked struct {
	alg, kid, iss string
}

func peek(raw string) (*peeked, bool) {
	if raw == "" || len(raw) > maxTokenLen {
		return nil, false
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, false
	}
	var h struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	var c struct {
		Iss string `json:"iss"`
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	pb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	if err1 != nil || err2 != nil || json.Unmarshal(hb, &h) != nil || json.Unmarshal(pb, &c) != nil {
		return nil, false
	}
	return &peeked{alg: h.Alg, kid: h.Kid, iss: c.Iss}, true
}

// IsJWT reports whether raw looks like a JWT and, if so, its (unverified)
// issuer: the proxy routes a password to sign-on or to tickets by it.
func IsJWT(raw string) (issuer string, ok bool) {
	p, ok := peek(raw)
	if !ok {
		return "", false
	}
	return p.iss, true
}

// Verify checks raw, a provider's ID token, in hashicorp/cap's order —
// signature against the pinned algorithms, issuer, audience, time claims
// with leeway, then the claims themselves — and returns the internal user
// it names with their role. Refusals are the Err* values of this package
// (ErrProviderUnavailable wrapped when discovery or the JWKS failed).
func (v *Verifier) Verify(ctx context.Context, raw string) (auth.InternalUser, error) {
	u, _, err := v.verify(ctx, raw)
	return u, err
}

// identity is who a refused token names, for the audit log: set only once
// the token's signature and issuer verified (the provider vouches for its
// claims even when the token is expired or for another audience), zero for
// a refusal before that.
type identity struct{ subject, email string }

func (v *Verifier) verify(ctx context.Context, raw string) (auth.InternalUser, identity, error) {
	pk, ok := peek(raw)
	if !ok {
		return auth.InternalUser{}, identity{}, ErrMalformed
	}
	p := v.providers[strings.TrimSuffix(pk.iss, "/")]
	if p == nil {
		return auth.InternalUser{}, identity{}, ErrIssuer
	}
	if !slices.Contains(p.cfg.Algorithms, pk.alg) {
		return auth.InternalUser{}, identity{}, ErrAlgorithm
	}
	verifier, err := p.discover(ctx)
	if err != nil {
		return auth.InternalUser{}, identity{}, err
	}
	tok, err := verifier.Verify(ctx, raw)
	if err != nil {
		return auth.InternalUser{}, identity{}, classify(err)
	}
	var std struct {
		NBF *jsonTime `json:"nbf"`
	}
	var all map[string]any
	if err := tok.Claims(&all); err != nil {
		return auth.InternalUser{}, identity{}, ErrMalformed
	}
	if err := tok.Claims(&std); err != nil {
		return auth.InternalUser{}, identity{}, ErrMalformed
	}
	// From here on the claims are the provider's.
	id := v.identity(p, all)
	now := v.cfg.Now()
	leeway := p.cfg.Leeway
	if !slices.ContainsFunc(tok.Audience, func(a string) bool { return slices.Contains(p.cfg.Audiences, a) }) {
		return auth.InternalUser{}, id, ErrAudience
	}
	switch {
	case tok.Expiry.IsZero():
		return auth.InternalUser{}, id, ErrMalformed
	case !now.Before(tok.Expiry.Add(leeway)):
		return auth.InternalUser{}, id, ErrExpired
	case std.NBF != nil && now.Add(leeway).Before(time.Time(*std.NBF)):
		return auth.InternalUser{}, id, ErrNotYetValid
	case !tok.IssuedAt.IsZero() && now.Add(leeway).Before(tok.IssuedAt):
		return auth.InternalUser{}, id, ErrNotYetValid
	}
	u, err := v.user(p, id, all)
	u.IssuedAt = tok.IssuedAt
	return u, id, err
}

// identity reads the subject and email of verified claims. Two providers
// may hand out the same subject: with more than one, it is qualified by
// the issuer.
func (v *Verifier) identity(p *provider, all map[string]any) identity {
	sub, _ := all[p.cfg.SubjectClaim].(string)
	if sub != "" && len(v.providers) > 1 {
		sub = p.cfg.Issuer + "#" + sub
	}
	email, _ := all[p.cfg.EmailClaim].(string)
	return identity{subject: sub, email: email}
}

// user turns verified claims, whose identity id holds, into an internal
// user with a role.
func (v *Verifier) user(p *provider, id identity, all map[string]any) (auth.InternalUser, error) {
	sub, email := id.subject, id.email
	if sub == "" {
		return auth.InternalUser{}, ErrNoSubject
	}
	if len(p.cfg.AllowedEmailDomains) > 0 {
		_, domain, ok := strings.Cut(email, "@")
		if !ok || !slices.ContainsFunc(p.cfg.AllowedEmailDomains, func(d string) bool { return strings.EqualFold(d, domain) }) {
			return auth.InternalUser{}, ErrEmailDomain
		}
	}
	raw, present := all[p.cfg.GroupsClaim]
	var groups []string
	switch g := raw.(type) {
	case []any:
		for _, x := range g {
			if s, ok := x.(string); ok && s != "" {
				groups = append(groups, s)
			}
		}
	case string: // some providers send a single group as a string
		if g != "" {
			groups = []string{g}
		}
	}
	owner := v.owners[sub]
	if !present && !owner {
		return auth.InternalUser{}, ErrNoGroups
	}
	role := auth.UserRole("")
	if owner {
		role = auth.RoleOwner
	}
	for _, g := range groups {
		if r, ok := v.cfg.RoleMapping[g]; ok && r.Outranks(role) {
			role = r
		}
	}
	if !role.Valid() {
		return auth.InternalUser{}, ErrNoRole
	}
	if len(groups) > 64 {
		// Keep the mapped ones first; the session carries at most 64.
		slices.SortStableFunc(groups, func(a, b string) int {
			_, ma := v.cfg.RoleMapping[a]
			_, mb := v.cfg.RoleMapping[b]
			switch {
			case ma && !mb:
				return -1
			case mb && !ma:
				return 1
			}
			return 0
		})
		groups = groups[:64]
	}
	return auth.InternalUser{Subject: sub, Email: email, Groups: groups, Role: role}, nil
}

type jsonTime time.Time

func (t *jsonTime) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	f, err := n.Float64()
	if err != nil {
		return err
	}
	*t = jsonTime(time.Unix(int64(f), 0))
	return nil
}

// classify maps go-oidc's errors (strings, apart from expiry) onto ours.
// Our key set returns our own errors, which go-oidc wraps with %v, so they
// are matched by text too.
func classify(err error) error {
	msg := err.Error()
	for _, e := range []error{ErrUnknownKey, ErrSignature, ErrAlgorithm, ErrMalformed} {
		if strings.Contains(msg, e.Error()) {
			return e
		}
	}
	if strings.Contains(msg, ErrProviderUnavailable.Error()) {
		return fmt.Errorf("%w", ErrProviderUnavailable)
	}
	var exp *gooidc.TokenExpiredError
	switch {
	case errors.As(err, &exp):
		return ErrExpired
	case strings.Contains(msg, "issued by a different provider"):
		return ErrIssuer
	case strings.Contains(msg, "nbf"):
		return ErrNotYetValid
	case strings.Contains(msg, "unexpected signature algorithm"), strings.Contains(msg, "unsupported algorithm"):
		return ErrAlgorithm
	}
	return ErrMalformed
}

// discover fetches the provider's metadata once; a failure is retried on
// the next token.
func (p *provider) discover(ctx context.Context) (*gooidc.IDTokenVerifier, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.verifier != nil {
		return p.verifier, nil
	}
	gp, err := gooidc.NewProvider(gooidc.ClientContext(ctx, p.client), p.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("%w: discovery of %s: %v", ErrProviderUnavailable, p.cfg.Issuer, err)
	}
	var meta struct {
		JWKS string `json:"jwks_uri"`
	}
	if err := gp.Claims(&meta); err != nil || meta.JWKS == "" {
		return nil, fmt.Errorf("%w: discovery of %s: no jwks_uri", ErrProviderUnavailable, p.cfg.Issuer)
	}
	p.keys.url = meta.JWKS
	// Audience and time claims are checked by Verify with the configured
	// audiences and leeway; go-oidc checks signature and issuer.
	p.verifier = gooidc.NewVerifier(p.cfg.Issuer, p.keys, &gooidc.Config{
		SkipClientIDCheck: true, SkipExpiryCheck: true, SupportedSigningAlgs: p.cfg.Algorithms,
	})
	return p.verifier, nil
}
