package auth

import (
	"github.com/pgwarden/pgwarden/audit"

	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/policy"
)

// PolicyChecker is what the ticket service needs of the policy: whether a
// tenant and a group exist. *policy.Policy satisfies it.
type PolicyChecker interface {
	KnowsTenant(tenant string) bool
	KnowsGroup(group string) bool
}

// TicketRequest is what a host application asks a ticket for.
type TicketRequest struct {
	ExternalID      string                 `json:"external_id"`
	Email           string                 `json:"email"`
	Tenant          string                 `json:"tenant"`
	Groups          []string               `json:"groups"`
	Attributes      map[string][]string    `json:"attributes"`
	ConnectionRoles map[string]policy.Role `json:"connection_roles"`
	// TTL shortens the ticket's life below Config.TicketTTL; zero means
	// TicketTTL. In JSON: seconds (60) or a Go duration ("30s").
	TTL Duration `json:"ttl"`
	// PinClientAddress pins the session to the client address that
	// exchanges the ticket (POST /v1/sessions): the proxy refuses the
	// session token from any other address.
	PinClientAddress bool `json:"pin_client_address"`
	// APIKeyName is who asks; set by the HTTP layer or the CLI, not by JSON.
	APIKeyName string `json:"-"`
}

// Limits on a ticket request, so that a token stays a reasonable header.
const (
	maxStringLen  = 256
	maxGroups     = 64
	maxAttrs      = 64
	maxAttrValues = 256
	maxRoles      = 64
)

// FieldError is a refused ticket request field.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Service mints tickets and exchanges them for sessions. It is used by the
// HTTP handler and directly by the CLI.
type Service struct {
	cfg    Config
	key    *SigningKey
	keys   *KeySet
	tokens *tokenVerifier
	store  *Store
	policy PolicyChecker
	log    *zap.Logger
}

// NewService loads the keys of cfg and returns a service on store.
func NewService(cfg Config, store *Store, pol PolicyChecker, log *zap.Logger) (*Service, error) {
	if store == nil || pol == nil || log == nil {
		return nil, errors.New("auth: NewService: nil dependency")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.SigningKeyFile == "" {
		return nil, errors.New("auth config: signing_key_file: required by the ticket service")
	}
	key, err := LoadSigningKey(cfg.SigningKeyFile)
	if err != nil {
		return nil, err
	}
	keys, err := LoadKeySet(cfg)
	if err != nil {
		return nil, err
	}
	return &Service{
		cfg: cfg, key: key, keys: keys,
		tokens: newTokenVerifier(keys, cfg.Issuer, cfg.Leeway, cfg.Now),
		store:  store, policy: pol, log: log,
	}, nil
}

// Config returns the service's configuration with defaults applied.
func (s *Service) Config() Config { return s.cfg }

// KeySet returns the verification keys (served as JWKS).
func (s *Service) KeySet() *KeySet { return s.keys }

// validate checks r and returns the ticket's lifetime.
func (s *Service) validate(r *TicketRequest) (time.Duration, error) {
	str := func(field, v string, required bool) error {
		switch {
		case required && v == "":
			return fieldErr(field, "required")
		case len(v) > maxStringLen:
			return fieldErr(field, "longer than %d bytes", maxStringLen)
		}
		return nil
	}
	if err := str("external_id", r.ExternalID, true); err != nil {
		return 0, err
	}
	if err := str("email", r.Email, false); err != nil {
		return 0, err
	}
	if err := str("tenant", r.Tenant, true); err != nil {
		return 0, err
	}
	if !s.policy.KnowsTenant(r.Tenant) {
		return 0, fieldErr("tenant", "unknown tenant %q", r.Tenant)
	}
	if len(r.Groups) > maxGroups {
		return 0, fieldErr("groups", "more than %d groups", maxGroups)
	}
	for i, g := range r.Groups {
		field := fmt.Sprintf("groups[%d]", i)
		if err := str(field, g, true); err != nil {
			return 0, err
		}
		if !s.policy.KnowsGroup(g) {
			return 0, fieldErr(field, "unknown group %q", g)
		}
	}
	if len(r.Attributes) > maxAttrs {
		return 0, fieldErr("attributes", "more than %d attributes", maxAttrs)
	}
	for name, vals := range r.Attributes {
		field := "attributes." + name
		if err := str("attributes", name, true); err != nil {
			return 0, fieldErr("attributes", "attribute names must be 1 to %d bytes", maxStringLen)
		}
		if len(vals) > maxAttrValues {
			return 0, fieldErr(field, "more than %d values", maxAttrValues)
		}
		for i, v := range vals {
			if err := str(fmt.Sprintf("%s[%d]", field, i), v, false); err != nil {
				return 0, err
			}
		}
	}
	if len(r.ConnectionRoles) > maxRoles {
		return 0, fieldErr("connection_roles", "more than %d warehouses", maxRoles)
	}
	for wh, role := range r.ConnectionRoles {
		if wh == "" || len(wh) > maxStringLen {
			return 0, fieldErr("connection_roles", "warehouse names must be 1 to %d bytes", maxStringLen)
		}
		if !role.Valid() {
			return 0, fieldErr("connection_roles."+wh, "unknown role %q (want no_access, viewer, restricted_querier or querier)", role)
		}
	}
	// With base_role no_access, a ticket naming no role would be redeemed at
	// exchange and then refused at every connection: refuse it here, where the
	// host application can still fix its request.
	if s.cfg.BaseRole == policy.RoleNoAccess && !grantsAccess(r.ConnectionRoles) {
		return 0, fieldErr("connection_roles", "required: name each warehouse the session may open and its role, "+
			`e.g. {"analytics": "querier"} (auth.base_role is no_access, so this ticket would open no warehouse)`)
	}
	ttl := time.Duration(r.TTL)
	switch {
	case ttl == 0:
		ttl = s.cfg.TicketTTL
	case ttl < time.Second:
		return 0, fieldErr("ttl", "must be at least 1s")
	case ttl > s.cfg.TicketTTL:
		return 0, fieldErr("ttl", "may only shorten the ticket lifetime of %s", s.cfg.TicketTTL)
	}
	return ttl, nil
}

// grantsAccess reports whether roles opens at least one warehouse.
func grantsAccess(roles map[string]policy.Role) bool {
	for _, role := range roles {
		if role != policy.RoleNoAccess {
			return true
		}
	}
	return false
}

// MintTicket validates r and returns a signed single-use ticket. A refused
// field is a *FieldError.
func (s *Service) MintTicket(ctx context.Context, r TicketRequest) (token string, expires time.Time, err error) {
	ttl, err := s.validate(&r)
	if err != nil {
		return "", time.Time{}, err
	}
	jti, err := randomID(18)
	if err != nil {
		return "", time.Time{}, err
	}
	now := s.cfg.Now().Truncate(time.Second)
	expires = now.Add(ttl)
	c := &claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.cfg.Issuer,
			Audience:  jwt.ClaimStrings{AudienceTicket},
			ID:        jti,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(expires),
		},
		Tenant:     r.Tenant,
		ExternalID: r.ExternalID,
		Email:      r.Email,
		Groups:     slices.Clone(r.Groups),
		Attrs:      r.Attributes,
		Roles:      r.ConnectionRoles,
		BaseRole:   s.cfg.BaseRole,
		Kind:       policy.KindEmbed,
		APIKey:     r.APIKeyName,
		Pin:        r.PinClientAddress,
	}
	token, err = sign(s.key, c)
	if err != nil {
		return "", time.Time{}, err
	}
	s.log.Info("ticket minted", zap.String("tenant", r.Tenant), zap.String("api_key", r.APIKeyName))
	return token, expires, nil
}

// ExchangeTicket redeems ticket (once) and returns the session it becomes
// and the session token. Errors: ErrInvalidTicket, ErrTicketExpired,
// ErrTicketUsed, or a store error.
func (s *Service) ExchangeTicket(ctx context.Context, ticket string) (*Session, string, error) {
	return s.ExchangeTicketFrom(ctx, ticket, netip.Addr{})
}

// ExchangeTicketFrom is ExchangeTicket for a client at address client (the
// HTTP peer): a ticket minted with pin_client_address pins its session
// there, and cannot be exchanged without an address (ErrPinNeedsAddress).
func (s *Service) ExchangeTicketFrom(ctx context.Context, ticket string, client netip.Addr) (*Session, string, error) {
	sess, token, err := s.exchangeTicket(ctx, ticket, client)
	s.auditSession(audit.EventExchange, sess, client, "", err)
	return sess, token, err
}

func (s *Service) exchangeTicket(ctx context.Context, ticket string, client netip.Addr) (*Session, string, error) {
	c, _, err := s.tokens.verify(ctx, ticket, AudienceTicket)
	switch {
	case errors.Is(err, errExpired):
		return nil, "", ErrTicketExpired
	case errors.Is(err, errBadToken):
		return nil, "", ErrInvalidTicket
	case err != nil:
		return nil, "", err
	}
	if c.Pin && !client.IsValid() {
		return nil, "", ErrPinNeedsAddress
	}
	sess, sc, err := redeemTicket(ctx, s.store, &s.cfg, c, client)
	if err != nil {
		return nil, "", err
	}
	token, err := sign(s.key, sc)
	if err != nil {
		return nil, "", err
	}
	s.log.Info("ticket exchanged", zap.String("session", sess.ID), zap.String("tenant", sess.Tenant), zap.String("api_key", sess.APIKeyName))
	return sess, token, nil
}

// redeemTicket turns verified ticket claims into session claims, redeeming
// the ticket and recording the session in one transaction.
//
// A ticket that asks to be pinned pins its session to client. The proxy
// redeeming a ticket used as a password passes no address: that session
// serves the one connection that presented the ticket, so it is pinned to
// that client by construction.
func redeemTicket(ctx context.Context, store *Store, cfg *Config, t *claims, client netip.Addr) (*Session, *claims, error) {
	sid, err := randomID(18)
	if err != nil {
		return nil, nil, err
	}
	jti, err := randomID(18)
	if err != nil {
		return nil, nil, err
	}
	now := cfg.Now().Truncate(time.Second)
	maxExp := now.Add(cfg.SessionMaxLifetime)
	exp := earliest(now.Add(cfg.SessionTTL), maxExp)
	sc := *t
	sc.RegisteredClaims = jwt.RegisteredClaims{
		Issuer:    cfg.Issuer,
		Audience:  jwt.ClaimStrings{AudienceSession},
		ID:        jti,
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
	}
	sc.SID = sid
	sc.Max = jwt.NewNumericDate(maxExp)
	sc.Pin = false
	if t.Pin && client.IsValid() {
		sc.PinAddr = client.Unmap().String()
	}
	err = store.RedeemAndCreate(ctx, t.ID, t.ExpiresAt.Time, SessionRecord{
		ID: sid, Tenant: t.Tenant, ExternalID: t.ExternalID, APIKey: t.APIKey,
		Created: now, Expires: exp, MaxExpires: maxExp,
	})
	if err != nil {
		return nil, nil, err
	}
	return sc.session(), &sc, nil
}

// RenewSession returns a new token for the session of token with the same
// claims and a later expiry, never past the session's absolute lifetime.
// Errors: ErrInvalidSession, ErrSessionExpired, ErrSessionRevoked, or a store
// error.
func (s *Service) RenewSession(ctx context.Context, token string) (*Session, string, error) {
	sess, tok, err := s.renewSession(ctx, token)
	s.auditSession(audit.EventRenew, sess, netip.Addr{}, "", err)
	return sess, tok, err
}

func (s *Service) renewSession(ctx context.Context, token string) (*Session, string, error) {
	c, _, err := s.tokens.verify(ctx, token, AudienceSession)
	switch {
	case errors.Is(err, errExpired):
		return nil, "", ErrSessionExpired
	case errors.Is(err, errBadToken):
		return nil, "", ErrInvalidSession
	case err != nil:
		return nil, "", err
	}
	now := s.cfg.Now().Truncate(time.Second)
	exp := earliest(now.Add(s.cfg.SessionTTL), c.Max.Time)
	switch err := s.store.ExtendSession(ctx, c.SID, exp); {
	case errors.Is(err, ErrSessionNotFound):
		return nil, "", ErrInvalidSession
	case err != nil:
		return nil, "", err
	}
	jti, err := randomID(18)
	if err != nil {
		return nil, "", err
	}
	nc := *c
	nc.ID = jti
	nc.IssuedAt = jwt.NewNumericDate(now)
	nc.NotBefore = jwt.NewNumericDate(now)
	nc.ExpiresAt = jwt.NewNumericDate(exp)
	out, err := sign(s.key, &nc)
	if err != nil {
		return nil, "", err
	}
	s.log.Info("session renewed", zap.String("session", c.SID), zap.String("tenant", c.Tenant))
	return nc.session(), out, nil
}

// RevokeSession ends session sid everywhere. by is the name of the API key
// asking: it may only revoke sessions minted through it; "" (an operator on
// the command line) may revoke any. Unknown: ErrSessionNotFound.
func (s *Service) RevokeSession(ctx context.Context, sid, by string) error {
	if sid == "" || len(sid) > maxStringLen {
		return ErrSessionNotFound
	}
	reason := "by api key " + by
	if by == "" {
		reason = "by an operator"
	}
	rec, err := s.store.RevokeRecord(ctx, sid, by, s.cfg.Now())
	if err != nil {
		s.auditSession(audit.EventRevoke, &Session{ID: sid}, netip.Addr{}, "", err)
		return err
	}
	s.auditSession(audit.EventRevoke, &Session{ID: sid, Kind: policy.Kind(rec.Kind), Tenant: rec.Tenant, ExternalID: rec.ExternalID,
		Subject: rec.Subject, Role: UserRole(rec.Role), APIKeyName: by}, netip.Addr{}, reason, nil)
	s.log.Info("session revoked", zap.String("session", sid), zap.String("api_key", by))
	return nil
}

// RevokeSessions ends the sessions f selects on every replica (a tenant's,
// an external id's), with an audit event per session; by names who asked.
func (s *Service) RevokeSessions(ctx context.Context, f RevokeFilter, by string) ([]string, int, error) {
	sids, spared, err := s.store.RevokeSessions(ctx, f, s.cfg.Now())
	if err != nil {
		return nil, 0, err
	}
	for _, sid := range sids {
		s.auditSession(audit.EventRevoke, &Session{ID: sid, Tenant: f.Tenant, ExternalID: f.ExternalID}, netip.Addr{}, "by "+by, nil)
	}
	s.log.Info("sessions revoked", zap.String("tenant", f.Tenant), zap.String("external_id", f.ExternalID), zap.Int("sessions", len(sids)), zap.String("by", by))
	return sids, spared, nil
}

// Purge deletes tickets and sessions that can no longer verify.
func (s *Service) Purge(ctx context.Context) error {
	// A row must outlive every token it guards, leeway included.
	t, n, err := s.store.Purge(ctx, s.cfg.Now().Add(-s.cfg.Leeway-time.Minute))
	if err != nil {
		return err
	}
	if t+n > 0 {
		s.log.Debug("purged", zap.Int64("tickets", t), zap.Int64("sessions", n))
	}
	return nil
}

// Run purges every PurgeInterval until ctx ends, and returns ctx.Err().
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.PurgeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if err := s.Purge(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("purge failed", zap.Error(err))
			}
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
