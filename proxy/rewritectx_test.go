package proxy

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/rewrite"
)

// spinRewriter rewrites as fakeRewriter, except that a statement mentioning
// spin_rewrite works until its context ends (a minute at most), counting
// its work as package rewrite's meter does, and answers as it would.
type spinRewriter struct {
	work    atomic.Int64
	stopped chan error // the cause each spin ended with
}

func newSpinRewriter() *spinRewriter { return &spinRewriter{stopped: make(chan error, 1)} }

func (r *spinRewriter) Rewrite(ctx context.Context, sql string, id *policy.Identity) (*rewrite.Result, error) {
	if !strings.Contains(sql, "spin_rewrite") {
		return fakeRewriter{}.Rewrite(ctx, sql, id)
	}
	end := time.Now().Add(time.Minute)
	for ctx.Err() == nil && time.Now().Before(end) {
		r.work.Add(1)
		time.Sleep(100 * time.Microsecond)
	}
	cause := context.Cause(ctx)
	r.stopped <- cause
	var pe *pgerr.Error
	if errors.As(cause, &pe) {
		return nil, pe
	}
	return nil, pgerr.New(pgerr.ProgramLimitExceeded, "spun for a minute")
}

// spinSQL is a statement long enough for its rewrite to be cancellable.
func spinSQL() string {
	return "SELECT 1 AS spin_rewrite -- " + strings.Repeat("x", watchedRewriteBytes)
}

// awaitWork waits until the spinning rewrite has started.
func (r *spinRewriter) awaitWork(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); r.work.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the rewrite never started")
		}
	}
}

// A CancelRequest stops a long rewrite: the client gets 57014 and the
// session goes on.
func TestCancelRequestStopsRewrite(t *testing.T) {
	rw := newSpinRewriter()
	tp := startProxy(t, func(_ *Config, d *Deps) { d.Warehouses["wh"].SetRewriter(rw) })
	ctx := ctxT(t)
	conn := tp.connect(t, ctx, "tok-acme")
	done := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, spinSQL()).ReadAll()
		done <- err
	}()
	rw.awaitWork(t)
	if err := conn.CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	wantPgErr(t, <-done, "57014", "canceling statement due to user request")
	if pgerr.SQLStateOf(<-rw.stopped) != pgerr.QueryCanceled {
		t.Error("the rewrite did not stop for the cancel")
	}
	if _, err := conn.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatalf("after cancel: %v", err)
	}
}

// A client that disconnects while its statement is rewritten has the
// rewrite stopped.
func TestClientGoneStopsRewrite(t *testing.T) {
	if !canWatchGone {
		t.Skip("clients are watched on Linux only")
	}
	rw := newSpinRewriter()
	tp := startProxy(t, func(_ *Config, d *Deps) { d.Warehouses["wh"].SetRewriter(rw) })
	// A raw session: pgconn sends a CancelRequest when its socket fails.
	nc, fe := rawSession(t, tp, "tok-acme")
	send(t, fe, spinSQL())
	rw.awaitWork(t)
	nc.Close()
	cause := <-rw.stopped
	var pe *pgerr.Error
	if !errors.As(cause, &pe) || !strings.Contains(pe.Message, "client disconnected") {
		t.Fatalf("the rewrite stopped with %v, want the client's disconnect", cause)
	}
	before := rw.work.Load()
	time.Sleep(10 * time.Millisecond)
	if rw.work.Load() != before {
		t.Error("the rewrite went on after it stopped")
	}
}
