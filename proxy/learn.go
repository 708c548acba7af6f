package proxy

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/rewrite"
)

// ContentRecorder keeps the statements that viewer sessions of a learning
// warehouse or tenant ran unlisted (*auth.Store is one).
type ContentRecorder interface {
	RecordLearned(ctx context.Context, l auth.LearnedStatement) error
}

// maxLearnedSeen bounds the fingerprints a learner remembers having
// recorded; past it, it forgets them all and records each again once.
const maxLearnedSeen = 10000

// learner records learned statements once per process and fingerprint:
// the rewrite (and its cache) hands the same Learned back at every
// execution, and the store keeps one row per warehouse and fingerprint.
// The first sighting waits for one store insert on the client's
// connection; every later one costs a map lookup.
type learner struct {
	rec ContentRecorder
	log *zap.Logger
	now func() time.Time

	mu   sync.Mutex
	seen map[string]bool // warehouse NUL fingerprint
}

func newLearner(rec ContentRecorder, log *zap.Logger, now func() time.Time) *learner {
	if rec == nil {
		return nil
	}
	return &learner{rec: rec, log: log, now: now, seen: map[string]bool{}}
}

// learn records ls, seen on warehouse wh in session s. Nil-safe: without a
// recorder, learning allows but records nothing.
func (l *learner) learn(ctx context.Context, wh string, s *auth.Session, ls []rewrite.Learned) {
	if l == nil {
		return
	}
	for _, x := range ls {
		key := wh + "\x00" + x.Fingerprint
		l.mu.Lock()
		if l.seen[key] {
			l.mu.Unlock()
			continue
		}
		if len(l.seen) >= maxLearnedSeen {
			l.seen = map[string]bool{}
		}
		l.seen[key] = true
		l.mu.Unlock()
		err := l.rec.RecordLearned(ctx, auth.LearnedStatement{
			Warehouse: wh, Fingerprint: x.Fingerprint, Normalized: x.Normalized, Example: x.Example,
			Tenant: s.Tenant, APIKey: s.APIKeyName, LastSeen: l.now(),
		})
		if err != nil {
			// Not remembered: the next execution tries again.
			l.mu.Lock()
			delete(l.seen, key)
			l.mu.Unlock()
			l.log.Warn("learned statement not recorded", zap.String("warehouse", wh), zap.String("fingerprint", x.Fingerprint), zap.Error(err))
			continue
		}
		l.log.Info("statement learned", zap.String("warehouse", wh), zap.String("fingerprint", x.Fingerprint), zap.String("tenant", s.Tenant))
	}
}
