package proxy

// A loop's io_uring. On the epoll loop, a transaction's half (a request
// relayed to the warehouse, or its answer to the client) costs a write, a
// wait in epoll_wait and a read: three system calls, each about a
// microsecond of entry and exit on a virtual machine before any work. With
// a ring, the owner's writes are queued in the ring and its reads armed
// there, and one io_uring_enter submits both and waits for what comes
// back: the send goes out as the call begins, and the receive, linked
// after it on the same socket, completes when the answer arrives, with its
// bytes in a buffer the loop provided (so that an idle socket with a
// receive armed holds none).
//
// What the ring serves: the reads and writes of a socket's owner while it
// runs on its loop. Everyone else (the pool's checks of an idle
// connection, a session off the loop) reads and writes as before. The
// rules that keep the two apart:
//   - a receive is in flight only while its owner is parked on it: a
//     deadline or a close cancels it, and the owner resumes only with its
//     completion;
//   - a send (one at a time per socket) may still be in flight as its
//     owner runs on; before the socket is let go (disown, leave) or
//     closed, the owner waits for it, or it is cancelled;
//   - an entry names its socket by descriptor until it is submitted, so a
//     socket is closed only once the loop has submitted what it prepared.
//
// The loop waits in io_uring_enter, and its epoll set (posts, watches for a
// peer's hang-up, reads that found no provided buffer) is one of the
// things it waits for, as a one-shot poll of the epoll descriptor.

import (
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/internal/uring"
)

const (
	// ringEntries is the submission queue's size; a full queue is
	// submitted as it fills.
	ringEntries = 1024
	// ringBufs buffers of ringBufSize bytes are provided for receives:
	// each is held from a receive's completion until its owner has copied
	// the bytes out, which it does as it resumes.
	ringBufs    = 256
	ringBufSize = 16 << 10
	ringGroup   = 1
	// sendBufSize is a queued send's buffer; a larger write goes out in
	// pieces of up to sendBufMax.
	sendBufSize = 16 << 10
	sendBufMax  = 256 << 10
	// userEpoll is the poll of the epoll set's; userCancel is set in a
	// cancellation's, the rest being its target's.
	userEpoll  = 1 << 63
	userCancel = 1 << 62
	// cancelRetry is how soon a receive that a cancellation did not find
	// (it waits, linked, for a send the peer does not take yet) is
	// cancelled again.
	cancelRetry = int64(time.Millisecond)
	// closeLinger is how long the bytes written before a close have to go
	// out (as a write would have put them in the socket before the close)
	// before they are cancelled, for a peer that does not read.
	closeLinger = 2 * int64(time.Second)
)

// Operation kinds.
const (
	opRecv       = iota + 1
	opSend       // posts its completion
	opLinkedSend // linked before a receive: posts a completion only if it fails
)

// loopRing is a loop's io_uring and what it has in flight.
type loopRing struct {
	r     *uring.Ring
	bufs  *uring.BufRing
	ops   []ringOp
	free  []uint32 // slots of ops
	sendq []*sockConn
	spare [len(bufClasses)][][]byte // send buffers kept for reuse, by class
	cqes  []ringCQE
	// polling: the poll of the epoll set is armed.
	polling bool
}

// ringOp is an operation in flight: its socket and, for a send, its bytes
// (kept here until the kernel is done with them) and how far it got.
type ringOp struct {
	c    *sockConn
	kind uint8
	gen  uint32
	buf  []byte
	off  int
}

type ringCQE struct {
	user  uint64
	res   int32
	flags uint32
}

// ringSockState is what a loop with a ring keeps of a socket, its alone
// (and its coroutines').
type ringSockState struct {
	rop, lsop, sop uint64 // a receive, the send linked before it, a send: in flight (user values)
	// rcancel, wcancel: why the receive (send) in flight is being
	// cancelled; its owner resumes with this once it completes.
	rcancel, wcancel error
	pend             []byte // written, not yet submitted (in sendq)
	// stash is bytes received and not yet read, in provided buffer sbid;
	// sfull: that receive filled its buffer, so more is likely waiting.
	stash []byte
	sbid  uint16
	sfull bool
	reof  bool          // a receive found the end of the stream
	rerr  syscall.Errno // a receive failed
	werr  error         // a send failed: every later write fails with it
	// linger is until when the sends of a socket closed go on (closeLinger).
	linger int64
}

// countLoops sets the gauge of loops by their I/O, and says so in the log
// when a ring was asked for and not had.
func (s *Server) countLoops(g *evLoops) {
	if g == nil {
		return
	}
	n := 0
	var why error
	for _, l := range g.ls {
		if l.rg != nil {
			n++
		} else if why == nil {
			why = l.ringErr
		}
	}
	s.loopStats.loops.WithLabelValues("io_uring").Set(float64(n))
	s.loopStats.loops.WithLabelValues("epoll").Set(float64(len(g.ls) - n))
	if why != nil {
		s.log.Info("event loops on epoll: io_uring is not available", zap.Error(why))
	}
}

// ringSupport says why a loop could not have a ring here, nil if it can.
func ringSupport() error {
	g, err := newLoopRing()
	g.close()
	return err
}

// newLoopRing sets up a loop's ring, or says why it cannot (a kernel
// without io_uring or provided buffer rings, or a container that forbids
// io_uring_setup: the loop then waits in epoll_wait).
func newLoopRing() (*loopRing, error) {
	// Before 6.0 a send with MSG_WAITALL may complete short, which breaks
	// a link; provided buffer rings came in 5.19.
	if major, minor := kernelVersion(); major < 6 {
		return nil, fmt.Errorf("io_uring: kernel %d.%d, want 6.0 or later", major, minor)
	}
	r, err := uring.New(ringEntries, 0)
	if err != nil {
		return nil, err
	}
	bufs, err := r.RegisterBufRing(ringGroup, ringBufs, ringBufSize)
	if err != nil {
		r.Close()
		return nil, err
	}
	return &loopRing{r: r, bufs: bufs, cqes: make([]ringCQE, 0, 256)}, nil
}

// kernelVersion is the running kernel's major and minor version.
func kernelVersion() (major, minor int) {
	var u syscall.Utsname
	if syscall.Uname(&u) != nil {
		return 0, 0
	}
	var b []byte
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	fmt.Sscanf(string(b), "%d.%d", &major, &minor)
	return major, minor
}

func (g *loopRing) close() {
	if g != nil {
		g.r.Close()
	}
}

// add enters an operation in the table; its user value names it.
func (g *loopRing) add(c *sockConn, kind uint8, buf []byte) uint64 {
	var slot uint32
	if n := len(g.free); n > 0 {
		slot = g.free[n-1]
		g.free = g.free[:n-1]
	} else {
		g.ops = append(g.ops, ringOp{})
		slot = uint32(len(g.ops) - 1)
	}
	op := &g.ops[slot]
	op.gen = max((op.gen+1)&genMask, 1)
	op.c, op.kind, op.buf, op.off = c, kind, buf, 0
	return uint64(op.gen)<<32 | uint64(slot)
}

// genMask bounds an operation's generation, the high half of its user
// value, below the bits userEpoll and userCancel use.
const genMask = 1<<24 - 1

// lookup returns the operation user names, nil for a stale value.
func (g *loopRing) lookup(user uint64) *ringOp {
	slot := uint32(user)
	if int(slot) >= len(g.ops) || g.ops[slot].gen != uint32(user>>32)&genMask || g.ops[slot].c == nil {
		return nil
	}
	return &g.ops[slot]
}

// done takes an operation out of the table, its send buffer back.
func (g *loopRing) done(user uint64) {
	op := g.lookup(user)
	if op == nil {
		return
	}
	g.recycle(op.buf)
	op.c, op.buf = nil, nil
	g.free = append(g.free, uint32(user))
}

// recycle keeps a send buffer the kernel is done with for reuse, if it is
// of one of bufClasses' sizes and fewer than spareBufs of it are kept.
func (g *loopRing) recycle(b []byte) {
	for k, size := range bufClasses {
		if cap(b) == size {
			if len(g.spare[k]) < spareBufs {
				g.spare[k] = append(g.spare[k], b[:0])
			}
			return
		}
	}
}

// spareBuf is an empty buffer of class k: one kept, or a new one.
func (g *loopRing) spareBuf(k int) []byte {
	if n := len(g.spare[k]); n > 0 {
		b := g.spare[k][n-1]
		g.spare[k] = g.spare[k][:n-1]
		return b
	}
	return make([]byte, 0, bufClasses[k])
}

// keepable returns a send's bytes in a buffer fit to be held while the
// receive linked after it waits, which for a session waiting for its
// client is as long as the client is idle: the loop cannot tell when the
// send completes (it posts nothing then), so its buffer is kept until the
// receive does. A send that fills its buffer far from full moves to one
// of the smallest class that holds it (kept for reuse, so that a session's
// every answer does not make one), or of its own size past them, and its
// send buffer goes back at once.
func (g *loopRing) keepable(b []byte) []byte {
	if cap(b)-len(b) < 1024 {
		return b
	}
	var small []byte
	for k := range sendClass {
		if len(b) <= bufClasses[k] {
			small = g.spareBuf(k)
			break
		}
	}
	if small == nil {
		small = make([]byte, 0, (len(b)+63)&^63)
	}
	small = append(small, b...)
	g.recycle(b)
	return small
}

// bufClasses are the sizes of the send buffers a loop keeps for reuse,
// spareBufs of each: a queued write's (sendBufSize, the last class) and
// the smaller ones keepable moves a linked send to, with which an idle
// session holds at most twice its last answer's size (at least 256
// bytes). A loop keeps at most about 1.5 MiB of them.
var bufClasses = [...]int{256, 512, 1 << 10, 2 << 10, 4 << 10, sendBufSize}

const (
	sendClass = len(bufClasses) - 1
	spareBufs = 64
)

// sendBuf is an empty buffer for a write of n bytes.
func (g *loopRing) sendBuf(n int) []byte {
	if n > sendBufSize {
		return make([]byte, 0, min(n, sendBufMax))
	}
	return g.spareBuf(sendClass)
}

// ringOwner returns c's loop when its owner runs there now and the loop
// has a ring: the ring serves the caller's reads and writes of c.
func (c *sockConn) ringOwner() *evLoop {
	if co := c.owner.Load(); co != nil && co.l.rg != nil && co.onLoop() {
		return co.l
	}
	return nil
}

// ringRead reads on the ring into p (or a buffer from get): the bytes a
// receive left, or those of a receive it arms and parks on. ok is false
// when no provided buffer was free: the caller reads as the epoll loop
// does, once.
func (c *sockConn) ringRead(l *evLoop, get func() []byte, p []byte) (n int, err error, ok bool) {
	rs := &c.ls.ring
	for {
		switch {
		case rs.stash != nil:
			buf := p
			if buf == nil {
				buf = get()
			}
			n = copy(buf, rs.stash)
			rs.stash = rs.stash[n:]
			if len(rs.stash) == 0 {
				l.rg.bufs.Provide(rs.sbid)
				rs.stash = nil
				c.full = rs.sfull
			}
			return n, nil, true
		case rs.reof:
			rs.reof = false
			return 0, io.EOF, true
		case rs.rerr == syscall.ENOBUFS:
			rs.rerr = 0
			return 0, nil, false
		case rs.rerr != 0:
			e := rs.rerr
			rs.rerr = 0
			return 0, c.opError("read", os.NewSyscallError("read", e)), true
		}
		if err := l.ringRecv(c.owner.Load(), c); err != nil {
			return 0, c.opError("read", err), true
		}
	}
}

// ringRecv arms a receive on c, after c's queued bytes (linked: the
// receive starts once they are sent), and parks co until it completes. A
// deadline or a close cancels it; co resumes with the completion.
func (l *evLoop) ringRecv(co *coro, c *sockConn) error {
	rs, g := &c.ls.ring, l.rg
	if err := l.announce(co, c, true); err != nil {
		l.unpark(c, true)
		return err
	}
	c.fdmu.RLock()
	fd := c.fd
	c.fdmu.RUnlock()
	if fd < 0 {
		l.unpark(c, true)
		return net.ErrClosed
	}
	// The chain goes in whole: a full queue submitted between its two
	// entries would leave the send linked to nothing.
	err := g.r.Room(2)
	if err == nil && rs.pend != nil {
		rs.lsop = g.add(c, opLinkedSend, g.keepable(rs.pend))
		rs.pend = nil
		err = g.r.Prep(uring.OpSend, uring.Link|uring.SkipSuccess, fd, g.ops[uint32(rs.lsop)].buf, syscall.MSG_WAITALL|syscall.MSG_NOSIGNAL, rs.lsop)
	}
	if err == nil {
		rs.rop = g.add(c, opRecv, nil)
		err = g.r.PrepRecvSelect(0, fd, ringGroup, 0, rs.rop)
	}
	if err != nil { // the ring is broken: nothing of it can be trusted
		l.unpark(c, true)
		return err
	}
	return l.sleep(co, c, true)
}

// ringWrite queues p to be sent on c: copied, so the caller may reuse p at
// once, and submitted at the loop's next round (or with the receive c's
// owner parks on next). It waits only for a send of c still in flight.
func (c *sockConn) ringWrite(l *evLoop, p []byte) (int, error) {
	rs, g := &c.ls.ring, l.rg
	w := 0
	for w < len(p) {
		if c.closed.Load() {
			return w, c.opError("write", net.ErrClosed)
		}
		if rs.werr != nil {
			return w, c.opError("write", rs.werr)
		}
		if rs.sop != 0 {
			if err := l.ringAwaitSend(c.owner.Load(), c); err != nil {
				return w, c.opError("write", err)
			}
			continue
		}
		if rs.pend == nil {
			rs.pend = g.sendBuf(len(p) - w)
			g.sendq = append(g.sendq, c)
		}
		n := copy(rs.pend[len(rs.pend):cap(rs.pend)], p[w:])
		rs.pend = rs.pend[:len(rs.pend)+n]
		w += n
		if w < len(p) { // full: send it, then wait for it
			if err := l.ringSend(c); err != nil {
				return w, c.opError("write", err)
			}
		}
	}
	return w, nil
}

// ringSend submits c's queued bytes as a send of their own.
func (l *evLoop) ringSend(c *sockConn) error {
	rs, g := &c.ls.ring, l.rg
	c.fdmu.RLock()
	fd := c.fd
	c.fdmu.RUnlock()
	if fd < 0 || rs.pend == nil || rs.sop != 0 {
		return nil
	}
	rs.sop = g.add(c, opSend, rs.pend)
	rs.pend = nil
	return g.r.Prep(uring.OpSend, 0, fd, g.ops[uint32(rs.sop)].buf, syscall.MSG_WAITALL|syscall.MSG_NOSIGNAL, rs.sop)
}

// ringAwaitSend parks co until c's send in flight completes. A deadline
// that has passed, or a close, cancels the send; co still resumes only
// with its completion.
func (l *evLoop) ringAwaitSend(co *coro, c *sockConn) error {
	if err := l.announce(co, c, false); err != nil {
		l.wake(c, false, err)
	}
	return l.sleep(co, c, false)
}

// ringBusy reports whether an operation of c is in flight or queued.
func (l *evLoop) ringBusy(c *sockConn) bool {
	rs := &c.ls.ring
	return rs.rop != 0 || rs.sop != 0 || rs.pend != nil
}

// ringCancel asks that c's receive (read) or send in flight end with res,
// if its owner is parked on it: true when it is, and the owner then
// resumes with the completion. Only the receive is cancelled: the send
// linked before it, if still waiting for the peer, goes on (a timeout
// loses no bytes), and the receive, not started, is not found; the
// cancellation's failure then tries again shortly (ringComplete).
func (l *evLoop) ringCancel(c *sockConn, read bool, res error) bool {
	rs := &c.ls.ring
	op, co := rs.rop, c.ls.rco
	if !read {
		op, co = rs.sop, c.ls.wco
	}
	if op == 0 || co == nil {
		return false
	}
	if read {
		rs.rcancel = res
	} else {
		rs.wcancel = res
	}
	l.rg.r.PrepCancel(uring.SkipSuccess, op, userCancel|op)
	return true
}

// ringRecancel cancels again what a cancellation missed, and what lingered
// after a close. A receive behind a send the peer does not take is
// cancelled with the send once the write deadline has passed (the stream is
// then broken, as after any write that timed out) or the close's linger
// has; before that, the receive alone.
func (l *evLoop) ringRecancel(c *sockConn) {
	rs, r := &c.ls.ring, l.rg.r
	cut := c.closed.Load() && l.now >= rs.linger
	if dl := c.wdl.Load(); dl != 0 && l.now >= dl {
		cut = true
	}
	if rs.rop != 0 && rs.rcancel != nil {
		if rs.lsop != 0 && cut {
			r.PrepCancel(uring.SkipSuccess, rs.lsop, userCancel|rs.lsop)
		}
		r.PrepCancel(uring.SkipSuccess, rs.rop, userCancel|rs.rop)
	}
	if rs.sop != 0 && rs.wcancel != nil && (cut || !c.closed.Load()) {
		r.PrepCancel(uring.SkipSuccess, rs.sop, userCancel|rs.sop)
	}
}

// ringAbort ends what the ring has of c, which is closing: the receive in
// flight is cancelled; the bytes queued go out, and those in flight go on,
// for closeLinger at most (as a write would have put them in the socket
// before the close), and are then cancelled.
func (l *evLoop) ringAbort(c *sockConn, why error) {
	rs, g := &c.ls.ring, l.rg
	rs.linger = l.now + closeLinger
	if rs.pend != nil {
		if rs.sop != 0 || l.ringSend(c) != nil {
			g.recycle(rs.pend)
			rs.pend = nil
		}
	}
	if rs.rop != 0 {
		rs.rcancel = why
		g.r.PrepCancel(uring.SkipSuccess, rs.rop, userCancel|rs.rop)
	}
	if rs.sop != 0 {
		rs.wcancel = why
		l.timerAt(&c.ls.ct, rs.linger)
	}
	if rs.stash != nil {
		g.bufs.Provide(rs.sbid)
		rs.stash = nil
	}
	// What was prepared names descriptors by number: submitted now, before
	// the caller closes c's and the number goes to another socket.
	if g.r.Unsubmitted() {
		g.r.Enter(0)
	}
}

// ringRound is a round of the loop with a ring: the queued sends are
// submitted with what the coroutines armed, the loop waits for a
// completion (until its next timer at most; not at all with a post
// waiting), and serves what completed.
func (l *evLoop) ringRound() {
	g := l.rg
	for _, c := range g.sendq {
		if c.ls.ring.pend != nil && !c.closed.Load() {
			l.ringSend(c)
		}
	}
	clear(g.sendq)
	g.sendq = g.sendq[:0]
	if !g.polling {
		g.polling = g.r.PrepPoll(l.ep, uint32(syscall.EPOLLIN), userEpoll) == nil
	}
	timeout := l.timeout()
	if timeout != 0 {
		l.sleeping.Store(true)
		l.mu.Lock()
		if len(l.inbox) > 0 {
			timeout = 0
		}
		l.mu.Unlock()
	}
	var err error
	switch timeout {
	case 0:
		err = g.r.Enter(0)
	case -1:
		err = g.r.Enter(1)
	default:
		err = g.r.EnterTimeout(1, int64(timeout)*1e6)
	}
	l.sleeping.Store(false)
	if err != nil {
		goyield()
	}
	g.cqes = g.cqes[:0]
	g.r.Completions(func(user uint64, res int32, flags uint32) {
		g.cqes = append(g.cqes, ringCQE{user, res, flags})
	})
	l.tick()
	for _, e := range g.cqes {
		l.ringComplete(e)
	}
}

// ringComplete serves a completion.
func (l *evLoop) ringComplete(e ringCQE) {
	g := l.rg
	switch {
	case e.user == userEpoll:
		g.polling = false
		l.epollRound(false)
		return
	case e.user&userCancel != 0:
		// A cancellation that failed: its target had completed (its
		// completion is on its way), or is a receive not started yet.
		// A cancellation that missed (its target had completed, its
		// completion on its way; or is a receive not started, behind its
		// send; or was between states): tried again shortly while the
		// target is in flight.
		if op := g.lookup(e.user &^ userCancel); op != nil {
			c, when := op.c, l.now+cancelRetry
			if rs := &c.ls.ring; c.closed.Load() && rs.lsop != 0 && rs.linger > when {
				when = rs.linger // the receive waits for a send that lingers
			}
			l.timerAt(&c.ls.ct, when)
		}
		return
	}
	op := g.lookup(e.user)
	if op == nil {
		return
	}
	c := op.c
	rs := &c.ls.ring
	switch op.kind {
	case opRecv:
		g.done(e.user)
		rs.rop = 0
		if rs.lsop != 0 { // it started: the send before it went out whole
			g.done(rs.lsop)
			rs.lsop = 0
		}
		var err error
		switch {
		case e.res > 0 && e.flags&uring.CQEBuffer != 0:
			id := uint16(e.flags >> 16)
			rs.stash, rs.sbid, rs.sfull = g.bufs.Buf(id, int(e.res)), id, int(e.res) == ringBufSize
		case e.res == 0:
			if e.flags&uring.CQEBuffer != 0 {
				g.bufs.Provide(uint16(e.flags >> 16))
			}
			rs.reof = true
		case e.res == -int32(syscall.ECANCELED) && rs.rcancel != nil:
			err = rs.rcancel
		case e.res < 0:
			rs.rerr = syscall.Errno(-e.res)
		}
		rs.rcancel = nil
		if c.closed.Load() && rs.stash != nil {
			g.bufs.Provide(rs.sbid)
			rs.stash = nil
		}
		if co := l.unpark(c, true); co != nil {
			l.resume(co, err)
		}
	case opLinkedSend:
		// It failed or went short, and the receive after it will not
		// complete: this is the chain's one completion.
		sent := op.off + int(max(e.res, 0))
		short := e.res >= 0 && sent < len(op.buf)
		g.done(e.user)
		g.done(rs.rop)
		rs.lsop, rs.rop = 0, 0
		err := rs.rcancel
		if err == nil {
			err = io.ErrShortWrite
			if !short {
				err = os.NewSyscallError("write", syscall.Errno(-e.res))
			}
		}
		rs.rcancel = nil
		rs.werr = err
		if co := l.unpark(c, true); co != nil {
			l.resume(co, err)
		}
	case opSend:
		var err error
		switch {
		case e.res >= 0 && op.off+int(e.res) < len(op.buf) && rs.wcancel == nil:
			op.off += int(e.res)
			c.fdmu.RLock()
			fd := c.fd
			c.fdmu.RUnlock()
			if fd >= 0 && g.r.Prep(uring.OpSend, 0, fd, op.buf[op.off:], syscall.MSG_WAITALL|syscall.MSG_NOSIGNAL, e.user) == nil {
				return
			}
			err = net.ErrClosed
		case e.res >= 0 && op.off+int(e.res) == len(op.buf):
		case rs.wcancel != nil:
			err = rs.wcancel
		case e.res < 0:
			err = os.NewSyscallError("write", syscall.Errno(-e.res))
		default:
			err = io.ErrShortWrite
		}
		g.done(e.user)
		rs.sop, rs.wcancel = 0, nil
		if err != nil {
			rs.werr = err
		}
		if co := l.unpark(c, false); co != nil {
			l.resume(co, err)
		}
	}
}

// ringLetGo readies c, which co lets go, for another owner: the bytes
// received and not yet read are kept where any reader finds them, and,
// when co runs (on the loop), what it queued is sent and waited for. False
// when something was left in flight, cancelled now, or a send had failed:
// the stream is broken and the caller closes c.
func (l *evLoop) ringLetGo(co *coro, c *sockConn) bool {
	rs := &c.ls.ring
	if rs.stash != nil {
		c.carry = append(c.carry, rs.stash...)
		l.rg.bufs.Provide(rs.sbid)
		rs.stash = nil
	}
	if co.onLoop() && !c.closed.Load() {
		if l.ringSend(c) == nil {
			for rs.sop != 0 && rs.wcancel == nil {
				l.ringAwaitSend(co, c)
			}
		}
	}
	if !l.ringBusy(c) && rs.werr == nil {
		return true
	}
	l.ringAbort(c, net.ErrClosed)
	return false
}
