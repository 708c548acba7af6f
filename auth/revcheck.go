package auth

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// revMaxBatch caps the session ids of one revocation query: large enough
// that a burst of 10,000 logins needs about ten queries, small enough that
// one query stays a fast index lookup.
const revMaxBatch = 1000

// revChecker coalesces concurrent revocation checks into batched queries
// (the "data loader" pattern), so that a burst of logins does not need one
// store connection and one round trip each: a burst of 10,000 logins over a
// pool of 16 connections used to queue past store_query_timeout and be
// refused with 57P03.
//
// A caller enqueues its sid and waits. Up to maxRunners goroutines, started
// on demand and gone when the queue is empty, each take a store connection
// first and only then up to maxBatch waiting sids, so a batch holds whatever
// queued while a connection was busy and a lone login is sent at once, with
// no timer. Callers of the same sid that is still waiting share one answer.
// A sid already sent is not joined: its query may have taken its snapshot
// before a revocation a later login must see, so nothing is reused beyond
// the batch a caller was queued for.
type revChecker struct {
	pool       *pgxpool.Pool
	query      string // $1 text[] → (sid, revoked) rows
	timeout    time.Duration
	maxBatch   int
	maxRunners int
	fail       func(op string, err error) error

	mu      sync.Mutex
	pending map[string]*revCall // sid → call not yet sent
	queue   []*revCall          // pending in arrival order (abandoned ones skipped)
	runners int

	// batches and sent count queries and the sids they carried (tests).
	batches, sent atomic.Int64
}

// revCall is one sid's check, shared by every caller queued for it. Its
// result fields are written before done closes.
type revCall struct {
	sid     string
	waiters int  // callers still waiting (mu)
	taken   bool // in a batch (mu)
	done    chan struct{}
	found   bool
	revoked bool
	err     error
}

func newRevChecker(pool *pgxpool.Pool, query string, timeout time.Duration, fail func(string, error) error) *revChecker {
	// Leave half the pool to redemptions, renewals and revocations.
	runners := max(1, int(pool.Config().MaxConns)/2)
	return &revChecker{pool: pool, query: query, timeout: timeout, maxBatch: revMaxBatch, maxRunners: runners,
		fail: fail, pending: map[string]*revCall{}}
}

// check reports whether sid is revoked, as Store.IsRevoked. The wait for the
// answer, queued or sent, is bounded by ctx and the store's query timeout,
// as one query of the caller's own was.
func (r *revChecker) check(ctx context.Context, sid string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	r.mu.Lock()
	c := r.pending[sid]
	if c == nil {
		c = &revCall{sid: sid, done: make(chan struct{})}
		r.pending[sid] = c
		r.queue = append(r.queue, c)
		if r.runners < r.maxRunners {
			r.runners++
			go r.run()
		}
	}
	c.waiters++
	r.mu.Unlock()
	select {
	case <-c.done:
	case <-ctx.Done():
		r.mu.Lock()
		c.waiters--
		if c.waiters == 0 && !c.taken {
			// Nobody wants it any more: do not send it.
			delete(r.pending, sid)
		}
		r.mu.Unlock()
		select {
		case <-c.done:
			// Answered as the deadline came: select picks at random
			// among ready cases, and the answer is the better one.
		default:
			return false, r.fail("is revoked", ctx.Err())
		}
	}
	switch {
	case c.err != nil:
		return false, c.err
	case !c.found:
		return false, ErrSessionNotFound
	}
	return c.revoked, nil
}

// run sends batches while sids are queued, each on a connection taken
// before the batch is, and exits when the queue is empty.
func (r *revChecker) run() {
	for {
		r.mu.Lock()
		if len(r.pending) == 0 {
			r.queue = nil
			r.runners--
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		r.batch()
	}
}

// batch takes a connection, then the sids queued by then, and answers them.
func (r *revChecker) batch() {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	conn, err := r.pool.Acquire(ctx)
	if conn != nil {
		defer conn.Release()
	}
	calls := r.take()
	if len(calls) == 0 {
		return
	}
	if err == nil {
		err = r.send(ctx, conn, calls)
	}
	for _, c := range calls {
		if err != nil {
			c.err = r.fail("is revoked", err)
		}
		close(c.done)
	}
}

// take removes up to maxBatch live calls from the queue.
func (r *revChecker) take() []*revCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	var calls []*revCall
	i := 0
	for ; i < len(r.queue) && len(calls) < r.maxBatch; i++ {
		c := r.queue[i]
		if c.waiters == 0 {
			continue // abandoned while queued; already out of pending
		}
		c.taken = true
		delete(r.pending, c.sid)
		calls = append(calls, c)
	}
	r.queue = r.queue[i:]
	return calls
}

func (r *revChecker) send(ctx context.Context, conn *pgxpool.Conn, calls []*revCall) error {
	sids := make([]string, len(calls))
	bySID := make(map[string]*revCall, len(calls))
	for i, c := range calls {
		sids[i] = c.sid
		bySID[c.sid] = c
	}
	r.batches.Add(1)
	r.sent.Add(int64(len(sids)))
	rows, err := conn.Query(ctx, r.query, sids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			sid     string
			revoked bool
		)
		if err := rows.Scan(&sid, &revoked); err != nil {
			return err
		}
		if c := bySID[sid]; c != nil {
			c.found, c.revoked = true, revoked
		}
	}
	return rows.Err()
}
