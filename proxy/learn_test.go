package proxy

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/rewrite"
)

// learningRewriter marks every statement learned, as the rewriter does for
// a viewer of a learning tenant.
type learningRewriter struct{ fakeRewriter }

func (l learningRewriter) Rewrite(ctx context.Context, sql string, id *policy.Identity) (*rewrite.Result, error) {
	res, err := l.fakeRewriter.Rewrite(ctx, sql, id)
	if err == nil {
		res.Learned = []rewrite.Learned{{Fingerprint: res.Fingerprint, Normalized: sql, Example: sql}}
	}
	return res, err
}

type fakeRecorder struct {
	mu    sync.Mutex
	got   []auth.LearnedStatement
	fails int // the next calls that fail
}

func (f *fakeRecorder) RecordLearned(_ context.Context, l auth.LearnedStatement) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fails > 0 {
		f.fails--
		return errors.New("store down")
	}
	f.got = append(f.got, l)
	return nil
}

// Each fingerprint is recorded once per process, again after a failed
// attempt, with the session's tenant and the warehouse.
func TestLearnedRecordedOnce(t *testing.T) {
	rec := &fakeRecorder{fails: 1}
	tp := startProxy(t, func(_ *Config, d *Deps) {
		d.Warehouses["wh"].SetRewriter(learningRewriter{})
		d.Learned = rec
	})
	ctx := ctxT(t)
	conn := tp.connect(t, ctx, "tok-acme")
	for _, sql := range []string{"SELECT 1", "SELECT 1", "SELECT 1", "SELECT 2", "SELECT 2"} {
		if _, err := conn.Exec(ctx, sql).ReadAll(); err != nil {
			t.Fatal(err)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.got) != 2 || rec.got[0].Example != "SELECT 1" || rec.got[1].Example != "SELECT 2" ||
		rec.got[0].Tenant != "acme" || rec.got[0].Warehouse != "wh" || rec.got[0].LastSeen.IsZero() {
		t.Fatalf("recorded %+v", rec.got)
	}
}
