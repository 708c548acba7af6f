package rewrite

import (
	"context"
	"errors"
	"sync"

	"github.com/pgwarden/pgwarden/pgerr"
)

// flights lets callers that miss the cache on the same key at once share
// one rewrite (as x/sync's singleflight, but a waiter's context ends its
// wait, and a rewrite stopped by its caller's context or budget is not
// shared: each waiter then tries on its own).
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct {
	done    chan struct{}
	res     *Result
	err     error
	waiters int // callers waiting for it (under flights.mu)
}

// do returns fn's answer for key, calling fn only when no other caller is
// doing so for the same key.
func (fs *flights) do(ctx context.Context, key string, fn func() (*Result, error)) (*Result, error) {
	fs.mu.Lock()
	if f, ok := fs.m[key]; ok {
		f.waiters++
		fs.mu.Unlock()
		select {
		case <-f.done:
			if !callerBound(f.err) {
				return f.res, f.err
			}
			return fn()
		case <-ctx.Done():
			return nil, canceled(ctx)
		}
	}
	if fs.m == nil {
		fs.m = make(map[string]*flight)
	}
	f := &flight{done: make(chan struct{})}
	fs.m[key] = f
	fs.mu.Unlock()
	returned := false
	defer func() {
		if !returned {
			// fn panicked: the waiters' answer (the caller recovers).
			f.err = pgerr.New(pgerr.InternalError, "internal error in statement rewrite")
		}
		fs.mu.Lock()
		delete(fs.m, key)
		fs.mu.Unlock()
		close(f.done)
	}()
	f.res, f.err = fn()
	returned = true
	return f.res, f.err
}

// callerBound reports an error that says more about the caller that got it
// (its context, its wait, its budget) than about the statement.
func callerBound(err error) bool {
	var pe *pgerr.Error
	if err == nil || !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case pgerr.QueryCanceled, pgerr.ProgramLimitExceeded, pgerr.OutOfMemory, pgerr.AdminShutdown:
		return true
	}
	return false
}
