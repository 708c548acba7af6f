package oidc

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/pgerr"
)

// TokenAuthenticator is the proxy's authenticator for pgwarden's own
// tickets and session tokens; *auth.Verifier is one.
type TokenAuthenticator interface {
	Authenticate(ctx context.Context, credential string) (*auth.Session, error)
	Watch(sessionID string) (revoked <-chan struct{}, stop func())
	SessionExpiry(ctx context.Context, sessionID string) (time.Time, error)
	OpenInternal(ctx context.Context, u auth.InternalUser) (*auth.Session, error)
}

// Authenticator lets the proxy accept a provider's ID token as the
// PostgreSQL password, as managed PostgreSQL services accept cloud IAM
// tokens: a JWT from a trusted issuer and audience becomes an internal
// session at startup. Every other password goes to next unchanged.
type Authenticator struct {
	next   TokenAuthenticator
	v      *Verifier
	issuer string // pgwarden's own issuer: its tokens go to next
	log    *zap.Logger
}

// NewAuthenticator wraps next; issuer is pgwarden's own token issuer.
func NewAuthenticator(next TokenAuthenticator, v *Verifier, issuer string, log *zap.Logger) (*Authenticator, error) {
	if next == nil || v == nil || log == nil || issuer == "" {
		return nil, errors.New("oidc: NewAuthenticator: nil dependency")
	}
	return &Authenticator{next: next, v: v, issuer: issuer, log: log}, nil
}

// Authenticate implements the proxy's Authenticator.
func (a *Authenticator) Authenticate(ctx context.Context, credential string) (*auth.Session, error) {
	iss, ok := IsJWT(credential)
	if !ok || iss == a.issuer {
		return a.next.Authenticate(ctx, credential)
	}
	u, err := a.v.Verify(ctx, credential)
	if err != nil {
		return nil, a.refusal(err)
	}
	s, err := a.next.OpenInternal(ctx, u)
	if errors.Is(err, auth.ErrSubjectRevoked) {
		a.log.Info("sign-on token refused", zap.String("reason", err.Error()))
		return nil, pgerr.Fatalf(pgerr.InvalidAuthorization, "%s", err.Error())
	}
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("sign-on session not recorded", zap.Error(err))
		}
		return nil, pgerr.Fatalf(pgerr.CannotConnectNow, "cannot open a session now: control store unavailable").WithHint("retry in a few seconds")
	}
	a.log.Info("sign-on session opened", zap.String("session", s.ID), zap.String("subject", s.Subject), zap.String("role", string(s.Role)))
	return s, nil
}

// Watch implements the proxy's Authenticator.
func (a *Authenticator) Watch(sessionID string) (<-chan struct{}, func()) {
	return a.next.Watch(sessionID)
}

// WatchFunc passes on to next's WatchFunc (auth.Verifier's), or waits for
// its Watch channel on a goroutine when next has none.
func (a *Authenticator) WatchFunc(sessionID string, f func()) (stop func()) {
	if wf, ok := a.next.(interface {
		WatchFunc(string, func()) func()
	}); ok {
		return wf.WatchFunc(sessionID, f)
	}
	revoked, stopWatch := a.next.Watch(sessionID)
	done := make(chan struct{})
	go func() {
		select {
		case <-revoked:
			f()
		case <-done:
		}
	}()
	return func() { close(done); stopWatch() }
}

// refusal turns a verification error into the FATAL the client sees: 28000
// saying which check failed, or 57P03 when the provider cannot be reached.
func (a *Authenticator) refusal(err error) *pgerr.Error {
	if errors.Is(err, ErrProviderUnavailable) {
		a.log.Warn("identity provider unavailable", zap.Error(err))
		return pgerr.Fatalf(pgerr.CannotConnectNow, "%s", ErrProviderUnavailable.Error()).WithHint("retry in a few seconds")
	}
	a.log.Info("sign-on token refused", zap.String("reason", err.Error()))
	return pgerr.Fatalf(pgerr.InvalidAuthorization, "%s", err.Error())
}

// refusalCode is the HTTP status and error code of a refusal, for the
// exchange endpoint.
func refusalCode(err error) (status int, code string) {
	if errors.Is(err, ErrProviderUnavailable) {
		return 503, "provider_unavailable"
	}
	if errors.Is(err, ErrNoRole) || errors.Is(err, ErrEmailDomain) {
		return 403, "not_permitted"
	}
	return 401, "invalid_token"
}

// SessionExpiry implements the proxy's Renewer: connections of renewed
// sessions (embed or internal) outlive the token they opened with.
func (a *Authenticator) SessionExpiry(ctx context.Context, sessionID string) (time.Time, error) {
	return a.next.SessionExpiry(ctx, sessionID)
}
