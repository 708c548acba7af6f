package proxy

// Noticing a client that disconnects while it waits for a pooled
// connection (as PgBouncer does), so that its statement never runs for
// nobody and its place in the queue goes to the next client at once.
//
// While the wait lasts (once it outlasts pool.WatchDelay: see the pool's
// await) the loop is blocked in Acquire and nothing reads the client, so a
// watcher goroutine waits for the socket through the runtime's poller
// (RawConn.Read) and looks without consuming a byte: end of stream or an
// error means the client is gone; bytes alone mean it pipelined more and
// stays. The poller is edge-triggered, so bytes left
// unread wake the watcher once, not in a loop, and a FIN behind them
// (libpq's Terminate, a TLS close_notify) wakes it again.
//
// The watcher is stopped as the loop's reads are interrupted: a past read
// deadline on c.raw, set under c.imu. interrupt (revocation, shutdown) and
// the loop's idle deadline use the same lever; a deadline the watcher did
// not ask for is cleared and the watch goes on, because the reason stays
// in c.reasons and armRead, which runs before the loop's next read,
// returns it then.

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// goneWatch watches one wait (or one inline relay: see drainWatch).
type goneWatch struct {
	c        *clientConn
	rc       syscall.RawConn
	why      string
	onGone   func()
	stopping bool          // guarded by c.imu
	gone     chan struct{} // closed when the client is seen gone
	done     chan struct{} // closed when the watcher returns
	sawGone  bool          // written before done closes
}

func noWatch() bool { return false }

// watchGone is the client's pool.Watch.
func (c *clientConn) watchGone() (<-chan struct{}, func() bool) {
	return c.watchGoneThen("client disconnected while waiting for a warehouse connection", nil)
}

// watchGoneThen watches the client until stopped; when it is gone, it logs
// why at debug level and calls onGone, if any, before gone closes.
func (c *clientConn) watchGoneThen(why string, onGone func()) (<-chan struct{}, func() bool) {
	if !canWatchGone {
		return nil, noWatch
	}
	if gone, stop, ok := c.loopWatchGone(why, onGone); ok {
		return gone, stop
	}
	sc, ok := c.raw.(syscall.Conn)
	if !ok {
		return nil, noWatch
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, noWatch
	}
	w := &goneWatch{c: c, rc: rc, why: why, onGone: onGone, gone: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w.gone, w.stop
}

func (w *goneWatch) run() {
	defer close(w.done)
	c := w.c
	for {
		err := w.rc.Read(peerGone)
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			// Gone, or the socket was closed under us (a hard shutdown).
			c.log.Debug(w.why)
			// Closed now, so that the answer to the abandoned statement
			// fails and the session ends quietly without reading on.
			c.raw.Close()
			w.sawGone = true
			if w.onGone != nil {
				w.onGone()
			}
			close(w.gone)
			return
		}
		c.imu.Lock()
		if w.stopping {
			c.imu.Unlock()
			return
		}
		c.raw.SetReadDeadline(time.Time{})
		c.rdlSet = false
		c.imu.Unlock()
	}
}

// stop ends the watch and waits for the watcher; it leaves the read
// deadline cleared, or past if an interrupt is pending (armRead re-arms it).
func (w *goneWatch) stop() bool {
	c := w.c
	c.imu.Lock()
	w.stopping = true
	c.raw.SetReadDeadline(time.Unix(1, 0))
	c.rdlSet = false
	c.imu.Unlock()
	<-w.done
	c.imu.Lock()
	if c.reasons == 0 {
		c.raw.SetReadDeadline(time.Time{})
	}
	c.imu.Unlock()
	return w.sawGone
}
