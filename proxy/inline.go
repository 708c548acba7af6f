package proxy

// The inline relay. In transaction mode most transactions are one batch:
// the client writes its messages up to a Sync (or one Query), waits for the
// answers, and the connection goes back to the pool. Handing each such batch
// to the relay goroutine costs a goroutine wake-up and a scheduler round
// per transaction, which on a busy machine is as much CPU as the rewrite.
// So the loop relays the answers itself ("inline") once it has flushed a
// batch, and hands the connection to the relay goroutine only when a batch
// cannot be relayed that way safely:
//   - the client asks for answers before its Sync (Flush), or stops sending
//     mid-batch, so answers must flow while the loop waits for the client;
//   - a write would reach the warehouse while answers are still owed, where
//     a warehouse blocked writing to us would stop reading, and a loop
//     blocked writing to it would never read its answers.
// Once handed over, the relay goroutine keeps the connection until it
// releases it, exactly as before.

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/proxy/pool"
)

// inlineConn is what a pool.Conn needs for the inline relay: a read
// deadline, so that a revocation can interrupt a loop waiting for answers,
// and a view of its write buffer.
type inlineConn interface {
	SetReadDeadline(time.Time) error
	// Available is the room left in the write buffer; Unflushed what it holds.
	Available() int
	Unflushed() int
}

// inlineHeadroom is kept free in the write buffer for a message of unknown
// encoded size beyond what approxSize counts.
const inlineHeadroom = 1 << 10

// handOffLocked gives the held connection to the relay goroutine if the loop
// relays it inline. c.mu is held.
func (c *clientConn) handOffLocked() {
	if c.cur == nil || !c.inline {
		return
	}
	c.inline = false
	c.toRelayLocked(c.cur)
}

// beforeSendLocked hands the connection over before a write of m would
// reach the warehouse while answers are owed. c.mu is held.
func (c *clientConn) beforeSendLocked(b *pool.Backend, m pgproto3.FrontendMessage) {
	if !c.inline {
		return
	}
	// The room first: the queue's lock is the dearer look, and the
	// buffer of a batch's messages seldom fills.
	if ic := b.Conn().(inlineConn); approxSize(m)+inlineHeadroom > ic.Available() && !c.q.empty() {
		c.handOffLocked()
	}
}

// approxSize is about the encoded size of m: exact for the parts that can
// be large (texts and parameter values).
func approxSize(m pgproto3.FrontendMessage) int {
	switch m := m.(type) {
	case *pgproto3.Query:
		return len(m.String) + 6
	case *pgproto3.Parse:
		return len(m.Name) + len(m.Query) + 4*len(m.ParameterOIDs) + 9
	case *pgproto3.Bind:
		n := len(m.DestinationPortal) + len(m.PreparedStatement) + 2*len(m.ParameterFormatCodes) + 2*len(m.ResultFormatCodes) + 13
		for _, p := range m.Parameters {
			n += len(p) + 4
		}
		return n
	}
	return 64
}

// drain relays, in the loop, the answers to the batch the loop has just
// flushed, when it holds its connection inline.
func (c *clientConn) drain() error {
	c.mu.Lock()
	b := c.cur
	if b == nil || !c.inline {
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	c.imu.Lock()
	if c.reasons&reasonRevoked != 0 {
		c.imu.Unlock()
		return errRevoked()
	}
	c.draining = b
	c.imu.Unlock()
	c.dw.arm()
	err := c.relayFrom(b, true)
	c.dw.disarm()
	c.undrain(b)
	if err == nil {
		return nil
	}
	if recoverable(err) {
		return c.lose(b, err)
	}
	b.Conn().Close()
	return c.relayFailure(err)
}

// undrain ends an inline read of b, before b goes back to the pool or the
// loop waits for its client: an interrupt must not reach b after that, and
// the deadline one may have set must not stay behind for b's next reader.
func (c *clientConn) undrain(b *pool.Backend) {
	c.imu.Lock()
	defer c.imu.Unlock()
	if c.draining != b {
		return
	}
	c.draining = nil
	if c.reasons != 0 {
		b.SetReadDeadline(time.Time{})
	}
}

// drainInterrupted is the inline relay's answer to a read interrupted by
// interrupt: a revocation ends the session (its statement is cancelled on
// the way out); a shutdown lets the statement finish until its drain
// deadline passes.
func (c *clientConn) drainInterrupted(b *pool.Backend, err error) error {
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		return err
	}
	select {
	case <-c.srv.hardStop:
		return pgerr.Shutdown()
	default:
	}
	c.imu.Lock()
	defer c.imu.Unlock()
	if c.reasons&reasonRevoked != 0 {
		return errRevoked()
	}
	if c.reasons&reasonClientGone != 0 {
		return clientWriteError{errClientGone}
	}
	b.SetReadDeadline(time.Time{})
	return nil
}

var errClientGone = errors.New("client disconnected")

// drainWatch notices a client that disconnects while the loop relays its
// statement inline, so that the statement is cancelled rather than left to
// run for nobody (the loop does not read the client meanwhile). Like a
// waiting client, it is watched only once the statement outlasts
// pool.WatchDelay: most statements are shorter, and a watch costs a goroutine.
//
// The timer is not reset and stopped for every statement (a timer update
// in the runtime each, twice per transaction): once started it runs out
// and, if the loop is relaying again by then, looks whether it is still
// the same statement (gen). If so the watch starts; if not it waits one
// more delay. A statement is thus watched after between one and two
// delays, and a busy client costs a timer event per delay, not two per
// transaction.
type drainWatch struct {
	c       *clientConn
	mu      sync.Mutex
	t       *time.Timer
	armed   bool
	gen     uint64 // arms so far
	seen    uint64 // gen when the timer was last started
	running bool   // t runs
	stop    func() bool
}

// arm starts the delay; nil (no watching on this platform) does nothing.
func (d *drainWatch) arm() {
	if d == nil {
		return
	}
	d.mu.Lock()
	d.armed = true
	d.gen++
	if !d.running {
		d.running, d.seen = true, d.gen
		d.t.Reset(pool.WatchDelay)
	}
	d.mu.Unlock()
}

// fired runs when the timer runs out.
func (d *drainWatch) fired() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.running = false
	if !d.armed || d.stop != nil {
		return
	}
	if d.gen != d.seen {
		// Another statement since: it has not run a whole delay yet.
		d.running, d.seen = true, d.gen
		d.t.Reset(pool.WatchDelay)
		return
	}
	_, d.stop = d.c.watchGoneThen("client disconnected while its statement ran", func() { d.c.interrupt(reasonClientGone) })
}

func (d *drainWatch) disarm() {
	if d == nil {
		return
	}
	d.mu.Lock()
	d.armed = false
	stop := d.stop
	d.stop = nil
	d.mu.Unlock()
	if stop != nil {
		stop()
	}
}

func newDrainWatch(c *clientConn) *drainWatch {
	if !canWatchGone {
		return nil
	}
	d := &drainWatch{c: c}
	d.t = time.AfterFunc(time.Hour, d.fired)
	d.t.Stop()
	return d
}
