package proxy

import (
	"context"
	"sync"
	"time"

	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/proxy/pool"
)

// Stopping a long rewrite.
//
// The loop rewrites a statement before anything of it reaches the
// warehouse, so a CancelRequest has nothing upstream to cancel and a
// client that leaves is not noticed until the loop reads again: a
// statement of a few megabytes would go on burning a core for nobody.
// While the loop rewrites a long statement (watchedRewriteBytes and up),
// the rewrite's context can therefore be cancelled by a CancelRequest, by
// revocation, and, once the rewrite outlasts pool.WatchDelay, by a watcher of
// the client's socket (waitwatch.go) that sees it gone. Short statements
// rewrite in well under a millisecond and take the session's context as it
// is, which costs nothing.

// watchedRewriteBytes is the statement length from which a rewrite can be
// cancelled and its client is watched.
const watchedRewriteBytes = 64 << 10

// rewriteGuard holds the cancel function of the rewrite in progress.
type rewriteGuard struct {
	mu     sync.Mutex
	cancel context.CancelCauseFunc // nil when no long rewrite runs
}

// stop cancels the rewrite in progress, if any, with cause and reports
// whether there was one.
func (g *rewriteGuard) stop(cause *pgerr.Error) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cancel == nil {
		return false
	}
	g.cancel(cause)
	return true
}

func (g *rewriteGuard) set(cancel context.CancelCauseFunc) {
	g.mu.Lock()
	g.cancel = cancel
	g.mu.Unlock()
}

func errRewriteCanceled() *pgerr.Error {
	return pgerr.New(pgerr.QueryCanceled, "canceling statement due to user request").
		WithDetail("The statement was being rewritten.")
}

func errRewriteAbandoned() *pgerr.Error {
	return pgerr.New(pgerr.QueryCanceled, "client disconnected while its statement was rewritten")
}

// rewriteContext is the context to rewrite sql in, and the function to
// call when the rewrite returns.
func (c *clientConn) rewriteContext(sql string) (context.Context, func()) {
	if len(sql) < watchedRewriteBytes {
		return c.ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(c.ctx)
	c.rewriting.set(cancel)
	var mu sync.Mutex
	var stopWatch func() bool
	ended := false
	t := time.AfterFunc(pool.WatchDelay, func() {
		mu.Lock()
		defer mu.Unlock()
		if !ended {
			_, stopWatch = c.watchGoneThen("client disconnected while its statement was rewritten", func() { cancel(errRewriteAbandoned()) })
		}
	})
	return ctx, func() {
		c.rewriting.set(nil)
		t.Stop()
		mu.Lock()
		ended = true
		stop := stopWatch
		mu.Unlock()
		if stop != nil {
			stop()
		}
		cancel(nil)
	}
}
