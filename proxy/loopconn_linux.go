package proxy

// A session on an event loop (evloop_linux.go): when it goes on one, which
// sockets it owns there, and when it leaves.

import (
	"context"
	"crypto/tls"
	"time"

	"github.com/pgwarden/pgwarden/proxy/pool"
)

// loopFor returns the loop for a session that has just started, or nil to
// run it on its goroutine: a client on a TCP or Unix socket, in TLS or not,
// in transaction mode, holding no warehouse connection yet. Over TLS, only
// the session's coroutine reads and writes its tls.Conn while it is on the
// loop, so the conn's locks never make the loop's thread wait; whoever
// else stops it closes or sets deadlines on the socket under it (c.raw),
// which reach the loop.
func (c *clientConn) loopFor() *evLoop {
	loops := c.srv.loops.Load()
	if loops == nil || c.pool == nil || c.cur != nil {
		return nil
	}
	if tc, ok := c.nc.(*tls.Conn); c.nc != c.raw && (!ok || tc.NetConn() != c.raw) {
		return nil
	}
	if _, ok := c.raw.(*sockConn); !ok {
		return nil
	}
	return loops.pick()
}

// runOn runs the session's message loop as co on its loop.
func (c *clientConn) runOn(co *coro) {
	defer c.close()
	c.co, c.loopCo = co, co
	c.srv.loopStats.total.Inc()
	c.srv.loopStats.on.Inc()
	defer func() {
		if c.co != nil {
			c.srv.loopStats.on.Dec()
		}
	}()
	if !co.own(c.raw.(*sockConn)) {
		c.leaveLoop("client_socket")
	}
	c.messages()
}

// now is the time for the session's accounting (a message's arrival, a
// statement's end): on its loop, the loop's reading as it woke for what
// the session handles now, which arrived by then (one reading a round
// for every session it serves, where each would read the clock again).
func (c *clientConn) now() time.Time {
	if co := c.loopCo; co != nil && co.onLoop() {
		return co.l.clock
	}
	return time.Now()
}

// awaitClient waits, when the session is on its loop with nothing from its
// client buffered, until the client's socket is readable. The wait is what
// the read would do, only higher in the coroutine's stack. Parked in the
// read (under msgReader and loopRead) an idle session used more than a
// quarter of 8 KiB, so the GC never shrank a stack a statement had grown
// below that; parked here it uses less, and each collection halves the
// stack down to 4 KiB. Over TLS the tls.Conn may hold a record already
// read: no wait there.
func (c *clientConn) awaitClient() error {
	if c.co == nil || c.nc != c.raw || c.in.buffered() {
		return nil
	}
	c.in.release()      // emptied: parked, the session holds no read buffer
	c.flushBeforeRead() // as the read would first
	return c.raw.(*sockConn).awaitReadable()
}

// leaveLoop takes the session off its loop, before it may wait on what the
// loop does not serve (why, for the metrics): its sockets go back to the
// runtime's poller, until rejoinLoop. A session off the loop calls it for
// nothing.
func (c *clientConn) leaveLoop(why string) {
	co := c.co
	if co == nil {
		return
	}
	c.co = nil
	c.srv.loopStats.on.Dec()
	c.srv.loopStats.leaves.WithLabelValues(why).Inc()
	co.leave()
	if s, ok := c.raw.(*sockConn); ok {
		s.toPoller()
	}
	if c.cur != nil {
		if s := backendSock(c.cur); s != nil {
			s.toPoller()
		}
	}
}

// rejoinLoop puts a session that left its loop back on it as it waits for
// its client, once nothing it left for is there: no warehouse connection
// held and no relay goroutine.
func (c *clientConn) rejoinLoop() {
	co := c.loopCo
	if co == nil || c.co != nil || c.cur != nil || c.relayStarted {
		return
	}
	s, ok := c.raw.(*sockConn)
	if !ok || !co.own(s) {
		return
	}
	c.co = co
	c.srv.loopStats.on.Inc()
	c.srv.loopStats.returns.Inc()
	co.rejoin()
}

// leaveLoopFor leaves the loop before rewriting a statement this long: the
// parse holds the loop's thread for as long as it takes.
func (c *clientConn) leaveLoopFor(sql string) {
	if c.co != nil && len(sql) > loopStatementMax {
		c.leaveLoop("long_statement")
	}
}

// loopStatementMax is the longest statement rewritten on a loop, about a
// millisecond of parsing.
const loopStatementMax = 16 << 10

// takeBackend makes the socket of b, just bound and relayed inline, the
// loop's for a session on one, or the runtime poller's otherwise.
func (c *clientConn) takeBackend(b *pool.Backend) {
	s := backendSock(b)
	if c.co == nil {
		if s != nil {
			s.toPoller()
		}
		return
	}
	if s == nil || !c.co.own(s) {
		c.leaveLoop("warehouse_socket") // a TLS warehouse, say: its reads would block the loop
	}
}

// backendSock is b's socket when it can go on a loop: a plain socket, which
// only its reader reads (pgconn's background reader was stopped at connect:
// stopBackgroundRead).
func backendSock(b *pool.Backend) *sockConn {
	s, ok := b.Conn().(*serverConn)
	if !ok {
		return nil
	}
	sc, _ := s.conn.(*sockConn)
	return sc
}

// letGo takes b's socket from the loop that owns it as b goes back to its
// pool, where a session on another loop, or on none, may take it.
func letGo(b *pool.Backend) {
	s := backendSock(b)
	if s == nil {
		return
	}
	co := s.owner.Load()
	if co == nil {
		return
	}
	if co.onLoop() {
		co.disown(s)
		return
	}
	done := make(chan struct{})
	co.l.post(func() {
		co.disown(s)
		close(done)
	})
	<-done
}

// loopWatchGone is watchGoneThen for a client socket on a loop: the loop
// watches for the peer's hang-up while the session waits on another socket.
func (c *clientConn) loopWatchGone(why string, onGone func()) (<-chan struct{}, func() bool, bool) {
	s, ok := c.raw.(*sockConn)
	if !ok {
		return nil, nil, false
	}
	co := s.owner.Load()
	if co == nil {
		return nil, nil, false
	}
	gone := make(chan struct{})
	w := &loopGone{}
	w.fire = func() {
		c.log.Debug(why)
		c.raw.Close() // as goneWatch: the abandoned statement's answer fails
		w.saw.Store(true)
		if onGone != nil {
			onGone()
		}
		close(gone)
	}
	co.l.post(func() { co.l.watchHup(s, w) })
	stop := func() bool {
		w.stopped.Store(true)
		unwatch := func() {
			if s.ls.hup == w {
				s.ls.hup = nil
			}
		}
		if co.onLoop() {
			unwatch()
		} else {
			done := make(chan struct{})
			co.l.post(func() {
				unwatch()
				close(done)
			})
			<-done
		}
		return w.saw.Load()
	}
	return gone, stop, true
}

// parker is the session's pool.Parker for a pool wait: its coroutine
// parks on the loop; nil off the loops.
func (c *clientConn) parker() pool.Parker {
	if c.co == nil {
		return nil
	}
	return (*loopParker)(c)
}

// loopParker is a session's pool.Parker. Its rouse may come from any goroutine
// and goes to the loop, where a session no longer napping ignores it.
type loopParker clientConn

func (p *loopParker) OnLoop() bool { return p.co != nil }

func (p *loopParker) Park(deadline time.Time) {
	var until int64
	if !deadline.IsZero() {
		until = deadline.UnixNano()
	}
	p.co.l.nap(p.co, until)
}

func (p *loopParker) Rouser() func() { return p.loopCo.rouseAny }

func (p *loopParker) RouseOnDone(ctx context.Context) {
	if p.rousedBy != ctx {
		p.rousedBy = ctx
		context.AfterFunc(ctx, p.loopCo.rouseAny) // never stopped: a late rouse is harmless
	}
}

func (p *loopParker) WatchGone() (<-chan struct{}, func() bool) {
	return (*clientConn)(p).watchGoneThen("client disconnected while waiting for a warehouse connection", p.loopCo.rouseAny)
}

func (p *loopParker) Leave() { (*clientConn)(p).leaveLoop("pool_dial") }
