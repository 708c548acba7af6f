package proxy

import "sync"

// The loop's pending records in transaction mode. A transaction's messages
// each queue one (a prepared statement's Bind, Describe, Execute and Sync:
// four), and allocating each costs more than the rest of a Bind's
// handling. So the loop takes them from a slab borrowed from its pool, and
// reuses the slab's records once nothing is bound: the relay releases the
// connection (or loses it) only with the queue empty and under c.mu, after
// its last look at any record, so a record of an earlier transaction is
// referenced by nobody then. The slab goes back to the pool when the loop
// may wait for its client, so that an idle client holds none, and the next
// transaction (of any client) finds one already in the cache.
//
// Session mode (no pool: the relay goroutine holds the connection from
// startup on) and the records that outnumber the slab are allocated as
// before.

// pendingSlabLen covers a transaction of the extended protocol (Parse,
// Bind, Describe, Execute, Sync) and a simple statement run prepared
// (simpleprep.go: its Query and four more).
const pendingSlabLen = 8

type pendingSlab struct {
	recs [pendingSlabLen]pending
	used int
}

func newPendingSlabPool() *sync.Pool {
	return &sync.Pool{New: func() any { return new(pendingSlab) }}
}

// newPendingLocked returns a zeroed record of kind, starting at the
// message's arrival. c.mu is held.
func (c *clientConn) newPendingLocked(kind pendingKind) *pending {
	if c.pool == nil {
		return &pending{kind: kind, start: c.msgAt}
	}
	s := c.slab
	switch {
	case s == nil:
		s = c.pool.slabs.Get().(*pendingSlab)
		c.slab = s
	case c.cur == nil && s.used > 0:
		// Nothing bound: every record handed out is done with.
		clear(s.recs[:s.used])
		s.used = 0
	}
	if s.used == len(s.recs) {
		return &pending{kind: kind, start: c.msgAt}
	}
	p := &s.recs[s.used]
	s.used++
	p.kind, p.start = kind, c.msgAt
	return p
}

// putSlabLocked gives the slab back once nothing is bound (the loop is
// about to wait for its client). c.mu is held.
func (c *clientConn) putSlabLocked() {
	s := c.slab
	if s == nil || c.cur != nil {
		return
	}
	clear(s.recs[:s.used])
	s.used = 0
	c.slab = nil
	c.pool.slabs.Put(s)
}
