package pool

// Waiting in the queue for a connection: on a goroutine (await), or, for a
// session on one of the proxy's event loops, parked there (awaitParked).

import (
	"context"
	"time"

	"github.com/pgwarden/pgwarden/pgerr"
)

// Watch is started by Acquire when the caller has to queue: gone is closed
// when the waiting client disconnects; stop ends the watch before Acquire
// returns and reports whether the client was seen gone.
type Watch func() (gone <-chan struct{}, stop func() bool)

// errWaitAbandoned ends an Acquire whose client went away. The client
// never reads it: the session ends on the closed socket.
func errWaitAbandoned() *pgerr.Error {
	return pgerr.New(pgerr.QueryCanceled, "client disconnected while waiting for a warehouse connection")
}

// WatchDelay is how long a client waits in the queue before it is watched
// for a disconnect: under load most waits are shorter than a transaction,
// and a watch costs a goroutine and polls of the client's socket. The
// proxy waits as long before it watches a client in its other waits.
const WatchDelay = 50 * time.Millisecond

// Waiter is a queued client's channel, on which it is handed a connection
// or a slot, and the timer of its wait. Its channel is empty whenever the
// pool has it (get puts it back once it is out of the queue and has taken
// what it was handed), and its timer stopped. It is exported only as the
// type of a pool's scheduler (Pool.Scheduler), which the proxy also uses
// for the tenant limits of its session-mode warehouses.
type Waiter struct {
	ch    chan *Backend
	t     *time.Timer
	rouse func() // a parked waiter's (Parker.Rouser), nil for a goroutine's
}

// A Parker is how a session on an event loop waits in the queue: as its
// coroutine parked on the loop, roused through the loop by whoever hands
// it a connection. A goroutine blocked in the wait would block the loop,
// and the connection it waits for may come from a session on that loop.
// The proxy's event loop implements it.
type Parker interface {
	// OnLoop reports whether the caller runs on its loop (and must park).
	OnLoop() bool
	// Park parks until rouse, or until the deadline if it is not zero.
	Park(deadline time.Time)
	// Rouser returns what ends Park, from any goroutine (one call too
	// many is harmless): one func for the session, allocated once.
	Rouser() func()
	// RouseOnDone makes ctx's end rouse Park. The session's wait context
	// lasts from one cancel to the next, so this registers once per
	// context, not once per wait (context.AfterFunc and its stop cost
	// about 2% of a transaction's CPU when every checkout waits).
	RouseOnDone(ctx context.Context)
	// WatchGone is the client's Watch, which rouses Park when the client
	// is seen gone.
	WatchGone() (gone <-chan struct{}, stop func() bool)
	// Leave takes the caller off its loop, before it blocks (a dial).
	Leave()
}

// leaveToDial takes a parked caller off its loop before it dials: the dial
// blocks for as long as the warehouse takes.
func leaveToDial(pk Parker) {
	if pk != nil && pk.OnLoop() {
		pk.Leave()
	}
}

func (p *Pool) waiter() *Waiter {
	if w, ok := p.waiters.Get().(*Waiter); ok {
		return w
	}
	return &Waiter{ch: make(chan *Backend, 1)}
}

// await waits for a connection on w.ch until deadline. woken reports that
// the channel delivered (b, or nil for a free slot); abandoned that the
// client left meanwhile, which stop also reports when woken: it may have
// left just now. One timer serves the deadline and, first, the watch's
// delay.
func (w *Waiter) await(ctx context.Context, watch Watch, deadline time.Time) (b *Backend, woken, abandoned bool) {
	wait := time.Until(deadline)
	if watch != nil {
		wait = min(wait, WatchDelay)
	}
	if w.t == nil {
		w.t = time.NewTimer(wait)
	} else {
		w.t.Reset(wait) // stopped: no stale tick (Go 1.23 timers)
	}
	t, ch := w.t, w.ch
	defer t.Stop()
	select {
	case b = <-ch:
		return b, true, false
	case <-ctx.Done():
		return nil, false, false
	case <-t.C:
	}
	left := time.Until(deadline)
	if watch == nil || left <= 0 {
		return nil, false, false
	}
	gone, stop := watch()
	t.Reset(left)
	select {
	case b = <-ch:
		woken = true
	case <-ctx.Done():
	case <-t.C:
	case <-gone:
	}
	return b, woken, stop()
}

// awaitParked is await for a caller on an event loop: it parks until it is
// handed something, ctx ends, the client is seen gone (watched after
// WatchDelay, as await does) or the deadline passes, each of which rouses
// it. w.rouse is pk.Rouser().
func (w *Waiter) awaitParked(ctx context.Context, pk Parker, deadline time.Time) (b *Backend, woken, abandoned bool) {
	pk.RouseOnDone(ctx)
	watchAt := time.Now().Add(WatchDelay)
	var gone <-chan struct{}
	stop := func() bool { return false } // nothing watched yet
	for {
		select {
		case b = <-w.ch:
			return b, true, stop()
		case <-gone:
			return nil, false, stop()
		default:
		}
		now := time.Now()
		if ctx.Err() != nil || !now.Before(deadline) {
			return nil, false, stop()
		}
		until := deadline
		if gone == nil {
			if now.Before(watchAt) {
				until = watchAt
			} else if gone, stop = pk.WatchGone(); gone == nil {
				gone = make(chan struct{}) // nothing to watch: never closes
			}
		}
		pk.Park(until)
	}
}
