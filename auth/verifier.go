package auth

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/pgerr"
)

// Messages the proxy sends to a client whose password was refused. They say
// what to do next and never echo the credential.
const (
	msgTicketUsed      = "ticket already used: mint a new ticket"
	msgTicketExpired   = "ticket expired: mint a new ticket"
	msgSessionExpired  = "session expired: renew it or mint a new ticket"
	msgSessionRevoked  = "session revoked"
	msgInvalidCred     = "invalid credential: not a pgwarden ticket or session token"
	msgStoreDown       = "cannot verify credential now: control store unavailable"
	msgKeysUnavailable = "cannot verify credential now: verification keys unavailable"
)

// Verifier checks the credentials a proxy receives as a PostgreSQL password
// and tells the proxy when a session it serves is revoked.
type Verifier struct {
	cfg    Config
	tokens *tokenVerifier
	store  *Store
	log    *zap.Logger
	ready  chan struct{}
	once   sync.Once
	// listening is set once the first LISTEN succeeded; ready closes at the
	// first successful resync after that.
	listening atomic.Bool

	mu       sync.Mutex
	revoked  map[string]time.Time // sid → absolute expiry, to prune
	watchers map[string]map[*watcher]struct{}
}

// watcher is one Watch (ch closed on revocation) or WatchFunc (fn called).
type watcher struct {
	ch chan struct{}
	fn func()
}

// NewVerifier returns a verifier that checks tokens against keys and
// redemptions and revocations against store. Call Run to follow revocations.
func NewVerifier(cfg Config, keys KeySource, store *Store, log *zap.Logger) (*Verifier, error) {
	if keys == nil || store == nil || log == nil {
		return nil, errors.New("auth: NewVerifier: nil dependency")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Verifier{
		cfg:      cfg,
		tokens:   newTokenVerifier(keys, cfg.Issuer, cfg.Leeway, cfg.Now),
		store:    store,
		log:      log,
		ready:    make(chan struct{}),
		revoked:  map[string]time.Time{},
		watchers: map[string]map[*watcher]struct{}{},
	}, nil
}

// Authenticate verifies credential, a session token or a fresh ticket. A
// session token is verified offline and checked for revocation; a ticket is
// redeemed (once, across every replica and proxy) and becomes a new session
// in the store. Refusals are *pgerr.Error FATAL 28P01 (57P03 when the store
// or the key set cannot be reached).
func (v *Verifier) Authenticate(ctx context.Context, credential string) (*Session, error) {
	c, aud, err := v.tokens.verify(ctx, credential, AudienceSession, AudienceTicket)
	switch {
	case errors.Is(err, errExpired) && aud == AudienceTicket:
		return nil, pgerr.BadCredentials(msgTicketExpired)
	case errors.Is(err, errExpired):
		return nil, pgerr.BadCredentials(msgSessionExpired)
	case errors.Is(err, errBadToken):
		return nil, pgerr.BadCredentials(msgInvalidCred)
	case err != nil:
		v.log.Warn("verification keys unavailable", zap.Error(err))
		return nil, pgerr.Fatalf(pgerr.CannotConnectNow, msgKeysUnavailable)
	}
	if aud == AudienceTicket {
		s, _, err := redeemTicket(ctx, v.store, &v.cfg, c, netip.Addr{})
		switch {
		case errors.Is(err, ErrTicketUsed):
			return nil, pgerr.BadCredentials(msgTicketUsed)
		case err != nil:
			v.logStoreError(ctx, "ticket redemption failed", err)
			return nil, v.errStoreDown(err)
		}
		v.log.Info("ticket redeemed by proxy", zap.String("session", s.ID), zap.String("tenant", s.Tenant), zap.String("api_key", s.APIKeyName))
		return s, nil
	}
	if v.isRevoked(c.SID) {
		return nil, pgerr.BadCredentials(msgSessionRevoked)
	}
	revoked, err := v.store.IsRevoked(ctx, c.SID)
	switch {
	case errors.Is(err, ErrSessionNotFound):
		// A token whose session row is gone was not minted by this
		// deployment, or outlived its absolute expiry.
		return nil, pgerr.BadCredentials(msgInvalidCred)
	case err != nil:
		v.logStoreError(ctx, "revocation check failed", err)
		return nil, v.errStoreDown(err)
	case revoked:
		v.markRevoked(c.SID, c.Max.Time)
		return nil, pgerr.BadCredentials(msgSessionRevoked)
	}
	return c.session(), nil
}

// errStoreDown is the refusal of a login that needed the store when the
// store failed. 57P03 cannot_connect_now is what PostgreSQL itself answers
// when it cannot take connections for now (starting up, in recovery):
// drivers and poolers treat it as transient and retry. 08006 would say the
// client's own connection broke, and 28P01 that its credential is wrong;
// neither is true.
func (v *Verifier) errStoreDown(err error) *pgerr.Error {
	e := pgerr.Fatalf(pgerr.CannotConnectNow, msgStoreDown).WithHint("retry in a few seconds")
	if errors.Is(err, context.DeadlineExceeded) {
		return e.WithDetail("the control store did not answer within %s", v.cfg.StoreQueryTimeout)
	}
	return e
}

// logStoreError logs a store failure unless the caller gave up first: a
// store that is unavailable is a warning (every login says so while it
// lasts, and /readyz tells the operator), anything else an error.
func (v *Verifier) logStoreError(ctx context.Context, msg string, err error) {
	switch {
	case ctx.Err() != nil:
	case errors.Is(err, ErrStoreUnavailable):
		v.log.Warn(msg, zap.Error(err))
	default:
		v.log.Error(msg, zap.Error(err))
	}
}

// Watch returns a channel that is closed when session sessionID is revoked
// anywhere, within about a second when the listener is connected and within
// ResyncInterval otherwise. Call stop when the session ends.
func (v *Verifier) Watch(sessionID string) (revoked <-chan struct{}, stop func()) {
	w := &watcher{ch: make(chan struct{})}
	return w.ch, v.watch(sessionID, w)
}

// WatchFunc is Watch with a callback: f runs once, on a goroutine of its
// own, when session sessionID is revoked (once stop has returned, it is not
// called unless the revocation was already under way). A
// caller holding many idle sessions needs no goroutine per session to
// wait for a channel.
func (v *Verifier) WatchFunc(sessionID string, f func()) (stop func()) {
	return v.watch(sessionID, &watcher{fn: f})
}

func (v *Verifier) watch(sessionID string, w *watcher) (stop func()) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.revoked[sessionID]; ok {
		w.fire()
		return func() {}
	}
	ws := v.watchers[sessionID]
	if ws == nil {
		ws = map[*watcher]struct{}{}
		v.watchers[sessionID] = ws
	}
	ws[w] = struct{}{}
	return func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		if ws, ok := v.watchers[sessionID]; ok {
			delete(ws, w)
			if len(ws) == 0 {
				delete(v.watchers, sessionID)
			}
		}
	}
}

// fire tells w of the revocation; v.mu is held, so a callback runs on its
// own goroutine.
func (w *watcher) fire() {
	if w.ch != nil {
		close(w.ch)
	}
	if w.fn != nil {
		go w.fn()
	}
}

// SessionExpiry returns when session sessionID expires now: later than the
// token it connected with if it was renewed since (renewal extends the
// connections a session has open, not only its next logins).
func (v *Verifier) SessionExpiry(ctx context.Context, sessionID string) (time.Time, error) {
	if v.isRevoked(sessionID) {
		return time.Time{}, ErrSessionRevoked
	}
	return v.store.SessionExpiry(ctx, sessionID)
}

// Ready is closed once the verifier listens for revocations and has loaded
// the revocations made before.
func (v *Verifier) Ready() <-chan struct{} { return v.ready }

// Run follows revocations until ctx ends: LISTEN with reconnect, a resync on
// every (re)connect and every ResyncInterval. It returns ctx.Err().
func (v *Verifier) Run(ctx context.Context) error {
	l, err := NewRevocationListener(v.store, v.log, func(sid string) {
		v.markRevoked(sid, v.cfg.Now().Add(v.cfg.SessionMaxLifetime))
	}, func(ctx context.Context) error {
		v.listening.Store(true)
		return v.resync(ctx)
	})
	if err != nil {
		return err
	}
	l.ping = v.cfg.ListenPingInterval
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		t := time.NewTicker(v.cfg.ResyncInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				v.resync(ctx)
			}
		}
	})
	return l.Run(ctx)
}

// resync loads every revocation still relevant and forgets the ones past
// their absolute expiry.
func (v *Verifier) resync(ctx context.Context) error {
	now := v.cfg.Now()
	rs, err := v.store.RevokedSessions(ctx, now.Add(-v.cfg.Leeway))
	if err != nil {
		if ctx.Err() == nil {
			v.log.Warn("revocation resync failed", zap.Error(err))
		}
		return err
	}
	for _, r := range rs {
		v.markRevoked(r.ID, r.MaxExpires)
	}
	if v.listening.Load() {
		v.once.Do(func() { close(v.ready) })
	}
	v.mu.Lock()
	for sid, until := range v.revoked {
		if until.Add(v.cfg.Leeway).Before(now) {
			delete(v.revoked, sid)
		}
	}
	v.mu.Unlock()
	return nil
}

func (v *Verifier) markRevoked(sid string, until time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if old, ok := v.revoked[sid]; !ok || until.After(old) {
		v.revoked[sid] = until
	}
	for w := range v.watchers[sid] {
		w.fire()
	}
	delete(v.watchers, sid)
}

func (v *Verifier) isRevoked(sid string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	_, ok := v.revoked[sid]
	return ok
}
