package auth

import (
	"net/netip"

	"github.com/pgwarden/pgwarden/audit"

	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/policy"
)

// InternalUser is an internal user as sign-on (package auth/oidc) verified
// them: the same facts a ticket carries for an embed user, plus a role.
type InternalUser struct {
	Subject string
	Email   string
	Groups  []string
	Role    UserRole
	// IssuedAt is when the provider issued the token (its iat; zero when
	// it has none): a token older than the subject's last revocation opens
	// no session.
	IssuedAt time.Time
}

// ErrSubjectRevoked refuses a provider token issued before its subject's
// sessions were revoked.
var ErrSubjectRevoked = errors.New("sign-on token issued before this user's sessions were revoked: sign in again")

// checkSubject refuses u when its subject was revoked after its token was
// issued (or at all, when the token says not when it was issued).
func checkSubject(ctx context.Context, store *Store, u *InternalUser) error {
	at, err := store.SubjectRevokedAt(ctx, u.Subject)
	if err != nil {
		return err
	}
	if !at.IsZero() && !u.IssuedAt.After(at) {
		return ErrSubjectRevoked
	}
	return nil
}

// errInvalidUser: an internal user that sign-on should not have let
// through (no subject, no role, fields past the limits).
var errInvalidUser = errors.New("internal user")

func (u *InternalUser) validate() error {
	switch {
	case u.Subject == "" || len(u.Subject) > maxStringLen:
		return fmt.Errorf("%w: subject must be 1 to %d bytes", errInvalidUser, maxStringLen)
	case len(u.Email) > maxStringLen:
		return fmt.Errorf("%w: email longer than %d bytes", errInvalidUser, maxStringLen)
	case len(u.Groups) > maxGroups:
		return fmt.Errorf("%w: more than %d groups", errInvalidUser, maxGroups)
	case !u.Role.Valid():
		return fmt.Errorf("%w: no role", errInvalidUser)
	}
	return nil
}

// newSessionClaims returns the claims of a new session minted at now and
// its store record, from the identity fields in base.
func newSessionClaims(cfg *Config, base claims) (*claims, SessionRecord, error) {
	sid, err := randomID(18)
	if err != nil {
		return nil, SessionRecord{}, err
	}
	jti, err := randomID(18)
	if err != nil {
		return nil, SessionRecord{}, err
	}
	now := cfg.Now().Truncate(time.Second)
	maxExp := now.Add(cfg.SessionMaxLifetime)
	exp := earliest(now.Add(cfg.SessionTTL), maxExp)
	c := base
	c.RegisteredClaims = jwt.RegisteredClaims{
		Issuer:    cfg.Issuer,
		Subject:   base.Subject,
		Audience:  jwt.ClaimStrings{AudienceSession},
		ID:        jti,
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
	}
	c.SID = sid
	c.Max = jwt.NewNumericDate(maxExp)
	rec := SessionRecord{
		ID: sid, Tenant: c.Tenant, ExternalID: c.ExternalID, APIKey: c.APIKey,
		Created: now, Expires: exp, MaxExpires: maxExp,
		Kind: string(c.Kind), Subject: c.Subject, Role: string(c.URole), Email: c.Email,
	}
	if c.Act != nil {
		rec.Subject, rec.Role = c.Act.Subject, string(c.Act.Role)
	}
	return &c, rec, nil
}

func internalClaims(u InternalUser) claims {
	return claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: u.Subject},
		ExternalID:       u.Subject,
		Email:            u.Email,
		Groups:           slices.Clone(u.Groups),
		BaseRole:         u.Role.SQLRole(),
		Kind:             policy.KindInternal,
		URole:            u.Role,
	}
}

// MintInternal opens an internal session for u and returns it with its
// token: what POST /v1/sessions/oidc and `pgwarden login` hand out. The
// token renews and revokes like an embed session's.
func (s *Service) MintInternal(ctx context.Context, u InternalUser) (*Session, string, error) {
	return s.MintInternalFrom(ctx, u, netip.Addr{})
}

// MintInternalFrom is MintInternal for a client at address client (the
// HTTP peer). It records the sign-on in the audit log, opened or not: u
// was verified, so a refusal names its subject and email.
func (s *Service) MintInternalFrom(ctx context.Context, u InternalUser, client netip.Addr) (*Session, string, error) {
	c, tok, err := s.mintInternal(ctx, u)
	if err != nil {
		a := SignOnAttempt{Client: client, Subject: u.Subject, Email: u.Email, Reason: err.Error()}
		switch {
		case errors.Is(err, ErrSubjectRevoked), errors.Is(err, errInvalidUser):
		case errors.Is(err, ErrStoreUnavailable), errors.Is(err, context.DeadlineExceeded):
			a.Reason, a.Failed = msgStoreUnavailable, true
		default:
			a.Reason, a.Failed = "internal error", true
		}
		s.AuditSignOn(a)
		return nil, "", err
	}
	sess := c.session()
	s.auditSignOnOpened(sess, client)
	s.log.Info("internal session opened", zap.String("session", c.SID), zap.String("subject", u.Subject), zap.String("role", string(u.Role)))
	return sess, tok, nil
}

func (s *Service) mintInternal(ctx context.Context, u InternalUser) (*claims, string, error) {
	if err := u.validate(); err != nil {
		return nil, "", err
	}
	if err := checkSubject(ctx, s.store, &u); err != nil {
		return nil, "", err
	}
	c, rec, err := newSessionClaims(&s.cfg, internalClaims(u))
	if err != nil {
		return nil, "", err
	}
	tok, err := s.record(ctx, c, rec)
	if err != nil {
		return nil, "", err
	}
	return c, tok, nil
}

// OpenInternal opens an internal session for u without a token: the proxy
// calls it when a provider's token is the PostgreSQL password. The session
// is recorded (so that it is listed and revoked like any other) and lasts
// as long as the connection, within SessionTTL.
func (v *Verifier) OpenInternal(ctx context.Context, u InternalUser) (*Session, error) {
	if err := u.validate(); err != nil {
		return nil, err
	}
	if err := checkSubject(ctx, v.store, &u); err != nil {
		return nil, err
	}
	c, rec, err := newSessionClaims(&v.cfg, internalClaims(u))
	if err != nil {
		return nil, err
	}
	if err := v.store.CreateSession(ctx, rec); err != nil {
		return nil, err
	}
	return c.session(), nil
}

// ActAs is a test-tenant session an internal user asks for.
type ActAs struct {
	Tenant     string              `json:"tenant"`
	Groups     []string            `json:"groups"`
	Attributes map[string][]string `json:"attributes"`
}

// ErrNotInternal refuses an embed session where an internal one is needed.
var ErrNotInternal = errors.New("not an internal session")

// MintActing opens an embed session of tenant a.Tenant with a's groups and
// attributes for the internal user of actor (whose right to it the caller
// checked), with the actor's SQL role. The session carries the actor, so
// that its audit lines name both, and revoking the actor's subject ends it.
func (s *Service) MintActing(ctx context.Context, actor *Session, a ActAs) (*Session, string, error) {
	if actor == nil || actor.Kind != policy.KindInternal || !actor.Role.Valid() {
		return nil, "", ErrNotInternal
	}
	// The same checks as a ticket request for these fields.
	if _, err := s.validate(&TicketRequest{ExternalID: actor.Subject, Tenant: a.Tenant, Groups: a.Groups, Attributes: a.Attributes,
		ConnectionRoles: map[string]policy.Role{"*": actor.Role.SQLRole()}}); err != nil {
		return nil, "", err
	}
	c, rec, err := newSessionClaims(&s.cfg, claims{
		Tenant:     a.Tenant,
		ExternalID: "act:" + actor.Subject,
		Email:      actor.Email,
		Groups:     slices.Clone(a.Groups),
		Attrs:      a.Attributes,
		BaseRole:   actor.Role.SQLRole(),
		Kind:       policy.KindEmbed,
		Act:        &Actor{Subject: actor.Subject, Email: actor.Email, Role: actor.Role},
	})
	if err != nil {
		return nil, "", err
	}
	tok, err := s.record(ctx, c, rec)
	if err != nil {
		return nil, "", err
	}
	s.auditSession(audit.EventActAs, c.session(), netip.Addr{}, "", nil)
	s.log.Info("test-tenant session opened", zap.String("session", c.SID), zap.String("tenant", a.Tenant),
		zap.String("actor", actor.Subject), zap.String("role", string(actor.Role)))
	return c.session(), tok, nil
}

// VerifySession checks a session token (for the admin API's bearer
// authentication) including revocation. Errors: ErrInvalidSession,
// ErrSessionExpired, ErrSessionRevoked, or a store error.
func (s *Service) VerifySession(ctx context.Context, token string) (*Session, error) {
	c, _, err := s.tokens.verify(ctx, token, AudienceSession)
	switch {
	case errors.Is(err, errExpired):
		return nil, ErrSessionExpired
	case errors.Is(err, errBadToken):
		return nil, ErrInvalidSession
	case err != nil:
		return nil, err
	}
	switch revoked, err := s.store.IsRevoked(ctx, c.SID); {
	case errors.Is(err, ErrSessionNotFound):
		return nil, ErrInvalidSession
	case err != nil:
		return nil, err
	case revoked:
		return nil, ErrSessionRevoked
	}
	return c.session(), nil
}

// RevokeSubject ends every session of subject on every replica.
func (s *Service) RevokeSubject(ctx context.Context, subject string) ([]string, error) {
	sids, err := s.store.RevokeSubject(ctx, subject, s.cfg.Now())
	if err != nil {
		return nil, err
	}
	for _, sid := range sids {
		s.auditSession(audit.EventRevoke, &Session{ID: sid, Subject: subject}, netip.Addr{}, "subject revoked", nil)
	}
	s.log.Info("subject revoked", zap.String("subject", subject), zap.Int("sessions", len(sids)))
	return sids, nil
}

// Store returns the service's store (for the admin API).
func (s *Service) Store() *Store { return s.store }

// record stores a new session's record and signs its token.
func (s *Service) record(ctx context.Context, c *claims, rec SessionRecord) (string, error) {
	if err := s.store.CreateSession(ctx, rec); err != nil {
		return "", err
	}
	return sign(s.key, c)
}
