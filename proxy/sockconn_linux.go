package proxy

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sockConn reads and writes a TCP or Unix socket with raw system calls, in
// one of two modes:
//
//   - Through the runtime's poller (syscall.RawConn), the mode it starts in.
//     Why raw: a read or write through the net package enters the
//     scheduler's syscall state, and the first system call after the
//     process has gone idle wakes the runtime's monitor thread. A proxy
//     waiting on the warehouse goes idle between every request and its
//     answer, so at low concurrency each round trip paid two or three extra
//     thread wake-ups. The sockets are non-blocking, so a raw read or write
//     never blocks the thread: EAGAIN hands the wait to the poller, with
//     deadlines and Close working as for net.Conn.
//   - On an event loop (evloop_linux.go), once a session's coroutine takes
//     it (toLoop). The socket leaves the runtime's poller (a socket in both
//     would wake both for every arrival), and its owner's reads wait for the
//     loop to say the socket is readable before reading, so that no read
//     returns EAGAIN. Anyone else who reads or writes it meanwhile waits in
//     poll(2) (pollWait), which needs nothing from the loop.
//
// The mode changes only while its holder has it alone (rmu, wmu and mmu
// held), so the conn stays the one object that the session's reader, writer
// and deadline setters refer to.
type sockConn struct {
	laddr, raddr net.Addr

	rmu     sync.Mutex // one Read at a time owns the r* fields
	rbuf    []byte
	rget    func() []byte // readPooled's
	rput    func([]byte)
	poolFn  func(uintptr) bool
	rn      int
	rerr    error
	readFn  func(uintptr) bool
	wmu     sync.Mutex // one Write at a time owns the w* fields
	wbuf    []byte
	wn      int
	werr    error
	writeFn func(uintptr) bool

	// mmu guards the mode (with rmu and wmu: Read and Write look without
	// it), nc and rc, and wakers; deadline setters and Close take it.
	mmu    sync.Mutex
	onLoop bool
	nc     net.Conn        // the poller's connection (nil on the loop)
	rc     syscall.RawConn // nc's
	wakers []int           // eventfds of pollWait callers, woken by deadlines and Close

	// On the loop: the socket (-1 once closed); fdmu is held for reading
	// across each system call on it, for writing to close it.
	fdmu   sync.RWMutex
	fd     int
	closed atomic.Bool
	full   bool // the last read filled its buffer: more is likely there
	// carry is bytes received on a loop's ring and not read by the owner
	// that let the socket go: the next reader reads them first (rmu).
	carry []byte
	// Deadlines as unix nanoseconds, 0 for none, kept in both modes.
	rdl, wdl atomic.Int64
	// owner is the coroutine whose waits the loop serves, nil while the
	// socket is idle in a pool or off the loop.
	owner atomic.Pointer[coro]
	// rwait and wwait: the owner is parked on the loop to read / write,
	// so that a deadline set meanwhile must reach the loop.
	rwait, wwait atomic.Bool
	ls           loopSockState // the loop's alone
}

// wrapSocket returns nc with raw-syscall I/O when it is a plain TCP or Unix
// socket, and nc itself otherwise.
func wrapSocket(nc net.Conn) net.Conn {
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return nc
	}
	rc, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		return nc
	}
	c := &sockConn{laddr: nc.LocalAddr(), raddr: nc.RemoteAddr(), nc: nc, rc: rc, fd: -1}
	c.ls.init(c)
	c.readFn = c.read
	c.poolFn = c.readPooledFn
	c.writeFn = c.write
	return c
}

func (c *sockConn) LocalAddr() net.Addr  { return c.laddr }
func (c *sockConn) RemoteAddr() net.Addr { return c.raddr }

// SyscallConn lets the connection checks reach the socket.
func (c *sockConn) SyscallConn() (syscall.RawConn, error) {
	c.mmu.Lock()
	defer c.mmu.Unlock()
	if !c.onLoop {
		return c.rc, nil
	}
	return loopRawConn{c}, nil
}

func (c *sockConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if len(c.carry) > 0 {
		return c.readCarry(p), nil
	}
	if c.onLoop {
		return c.loopRead(nil, nil, p)
	}
	c.rbuf, c.rn, c.rerr = p, 0, nil
	err := c.rc.Read(c.readFn)
	c.rbuf = nil
	if err != nil {
		return 0, c.opError("read", err)
	}
	if c.rerr != nil && c.rerr != io.EOF {
		return c.rn, c.opError("read", os.NewSyscallError("read", c.rerr))
	}
	return c.rn, c.rerr
}

// readPooled is Read into a buffer borrowed from get once the socket is
// readable: a read that would block gives it back (put) before waiting, so
// a connection parked in the poller holds none.
func (c *sockConn) readPooled(get func() []byte, put func([]byte)) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if len(c.carry) > 0 {
		return c.readCarry(get()), nil
	}
	if c.onLoop {
		return c.loopRead(get, put, nil)
	}
	c.rget, c.rput, c.rbuf, c.rn, c.rerr = get, put, nil, 0, nil
	err := c.rc.Read(c.poolFn)
	c.rget, c.rput, c.rbuf = nil, nil, nil
	if err != nil {
		return 0, c.opError("read", err)
	}
	if c.rerr != nil && c.rerr != io.EOF {
		return c.rn, c.opError("read", os.NewSyscallError("read", c.rerr))
	}
	return c.rn, c.rerr
}

// readCarry reads what carry holds into p.
func (c *sockConn) readCarry(p []byte) int {
	n := copy(p, c.carry)
	if c.carry = c.carry[n:]; len(c.carry) == 0 {
		c.carry = nil
	}
	return n
}

func (c *sockConn) readPooledFn(fd uintptr) bool {
	if c.rbuf == nil {
		c.rbuf = c.rget()
	}
	if c.read(fd) {
		return true
	}
	c.rput(c.rbuf)
	c.rbuf = nil
	return false
}

// read is the RawConn callback: false means "wait until readable".
func (c *sockConn) read(fd uintptr) bool {
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rbuf[0])), uintptr(len(c.rbuf)))
		switch errno {
		case 0:
			c.rn = int(n)
			if n == 0 {
				c.rerr = io.EOF
			}
			return true
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.rerr = errno
			return true
		}
	}
}

func (c *sockConn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.onLoop {
		return c.loopWrite(p)
	}
	c.wbuf, c.wn, c.werr = p, 0, nil
	err := c.rc.Write(c.writeFn)
	c.wbuf = nil
	if err == nil && c.werr != nil {
		err = os.NewSyscallError("write", c.werr)
	}
	if err != nil {
		return c.wn, c.opError("write", err)
	}
	return c.wn, nil
}

// write is the RawConn callback: false means "wait until writable".
func (c *sockConn) write(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		chunk := min(len(c.wbuf)-c.wn, 1<<30)
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&c.wbuf[c.wn])), uintptr(chunk))
		switch errno {
		case 0:
			c.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werr = errno
			return true
		}
	}
	return true
}

func (c *sockConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *sockConn) SetReadDeadline(t time.Time) error {
	return c.setDeadline(&c.rdl, &c.rwait, t, true)
}

func (c *sockConn) SetWriteDeadline(t time.Time) error {
	return c.setDeadline(&c.wdl, &c.wwait, t, false)
}

func (c *sockConn) setDeadline(dl *atomic.Int64, parked *atomic.Bool, t time.Time, read bool) error {
	var ns int64
	if !t.IsZero() {
		ns = max(t.UnixNano(), 1) // a time before 1970 is as past as 1
	}
	c.mmu.Lock()
	dl.Store(ns)
	if !c.onLoop {
		nc := c.nc
		c.mmu.Unlock()
		if read {
			return nc.SetReadDeadline(t)
		}
		return nc.SetWriteDeadline(t)
	}
	if c.closed.Load() {
		c.mmu.Unlock()
		return c.opError("set", net.ErrClosed)
	}
	c.wakeLocked()
	c.mmu.Unlock()
	// Stored before looking: a park that announces itself after this
	// sees the new deadline; one that announced itself before is told.
	if parked.Load() {
		if co := c.owner.Load(); co != nil {
			co.l.post(func() { co.l.rearm(c) })
		}
	}
	return nil
}

// Close closes the socket. On the loop, a socket that a coroutine owns is
// closed by its loop, which wakes the owner if it is parked on it.
func (c *sockConn) Close() error {
	c.mmu.Lock()
	if !c.onLoop {
		nc := c.nc
		c.mmu.Unlock()
		return nc.Close()
	}
	if !c.closed.CompareAndSwap(false, true) {
		c.mmu.Unlock()
		return c.opError("close", net.ErrClosed)
	}
	c.wakeLocked()
	co := c.owner.Load()
	c.mmu.Unlock()
	if co == nil {
		c.closeFD()
		return nil
	}
	// Posted even by the owner: onLoop cannot tell the owner from another
	// goroutine that closes the socket while the owner runs, and only the
	// loop may touch the socket's waiters, timers and ring.
	co.l.post(func() { co.l.closeSock(c) })
	return nil
}

func (c *sockConn) closeFD() {
	c.deregister()
	c.fdmu.Lock()
	if c.fd >= 0 {
		syscall.Close(c.fd)
		c.fd = -1
	}
	c.fdmu.Unlock()
}

// wakeLocked wakes the pollWait callers to look at the deadlines and
// whether the socket closed. c.mmu is held.
func (c *sockConn) wakeLocked() {
	one := uint64(1)
	for _, efd := range c.wakers {
		syscall.RawSyscall(syscall.SYS_WRITE, uintptr(efd), uintptr(unsafe.Pointer(&one)), 8)
	}
}

// hold takes the locks a change of mode needs: no Read, Write, deadline or
// Close runs meanwhile.
func (c *sockConn) hold() {
	c.rmu.Lock()
	c.wmu.Lock()
	c.mmu.Lock()
}

func (c *sockConn) unhold() {
	c.mmu.Unlock()
	c.wmu.Unlock()
	c.rmu.Unlock()
}

// toLoop takes the socket off the runtime's poller for co, which runs on
// its loop; false when it cannot (it stays as it was).
func (c *sockConn) toLoop(co *coro) bool {
	c.mmu.Lock()
	if c.onLoop {
		// A pooled connection a loop had: only its owner changes, which
		// Close looks at under mmu.
		ok := !c.closed.Load()
		if ok {
			c.owner.Store(co)
		}
		c.mmu.Unlock()
		return ok
	}
	c.mmu.Unlock() // a mode changes only with its holder's locks: this one
	c.hold()
	defer c.unhold()
	fd, err := -1, error(nil)
	cerr := c.rc.Control(func(f uintptr) { fd, err = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) })
	if cerr != nil || err != nil {
		return false
	}
	// Closing the poller's descriptor takes the socket out of its epoll
	// set; the duplicate keeps it open (and non-blocking: that is the
	// socket's, not the descriptor's).
	c.nc.Close()
	c.nc, c.rc, c.fd, c.full = nil, nil, fd, false
	c.onLoop = true
	c.owner.Store(co)
	return true
}

// toPoller gives the socket back to the runtime's poller. Its owner has let
// it go (disown) or it never had one; a closed socket stays as it is.
func (c *sockConn) toPoller() {
	c.mmu.Lock()
	onLoop := c.onLoop
	c.mmu.Unlock()
	if !onLoop {
		return // a mode changes only with its holder's locks: this one
	}
	c.hold()
	defer c.unhold()
	if !c.onLoop || c.closed.Load() || c.owner.Load() != nil {
		return
	}
	c.deregister() // from the loop that had it last
	c.fdmu.Lock()
	defer c.fdmu.Unlock()
	f := os.NewFile(uintptr(c.fd), "")
	nc, err := net.FileConn(f) // a duplicate, in the poller
	if err != nil {
		f.Close()
		c.fd = -1
		c.closed.Store(true)
		return
	}
	f.Close()
	rc, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		nc.Close()
		c.fd = -1
		c.closed.Store(true)
		return
	}
	if ns := c.rdl.Load(); ns != 0 {
		nc.SetReadDeadline(time.Unix(0, ns))
	}
	if ns := c.wdl.Load(); ns != 0 {
		nc.SetWriteDeadline(time.Unix(0, ns))
	}
	c.nc, c.rc, c.fd, c.onLoop = nc, rc, -1, false
}

// awaitReadable parks on the loop until the socket is readable, and the
// next read then reads at once. Called from near the top of the session's
// coroutine, it lets an idle session wait with a shallow stack, which the
// GC shrinks back to its minimum after a statement grew it.
func (c *sockConn) awaitReadable() error {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if !c.onLoop || c.full || len(c.carry) > 0 {
		return nil
	}
	if l := c.ringOwner(); l != nil {
		// The receive's bytes wait in the ring for the read.
		if rs := &c.ls.ring; rs.stash == nil && !rs.reof && rs.rerr == 0 {
			if err := l.ringRecv(c.owner.Load(), c); err != nil {
				return c.opError("read", err)
			}
		}
		return nil
	}
	if err := c.waitIO(true); err != nil {
		return c.opError("read", err)
	}
	c.full = true
	return nil
}

// loopRead reads p (or a buffer from get) on the loop: it waits first
// unless the last read filled its buffer.
func (c *sockConn) loopRead(get func() []byte, put func([]byte), p []byte) (int, error) {
	for {
		if l := c.ringOwner(); l != nil && (!c.full || c.ls.ring.stash != nil) {
			if n, err, ok := c.ringRead(l, get, p); ok {
				return n, err
			}
		}
		if !c.full {
			if err := c.waitIO(true); err != nil {
				return 0, c.opError("read", err)
			}
		}
		buf := p
		if buf == nil {
			buf = get()
		}
		c.fdmu.RLock()
		if c.fd < 0 {
			c.fdmu.RUnlock()
			if p == nil {
				put(buf)
			}
			return 0, c.opError("read", net.ErrClosed)
		}
		n, _, errno := syscall.RawSyscall(syscall.SYS_READ, uintptr(c.fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
		c.fdmu.RUnlock()
		switch errno {
		case 0:
		case syscall.EAGAIN, syscall.EINTR:
			if p == nil {
				put(buf)
			}
			c.full = false
			continue
		default:
			if p == nil {
				put(buf)
			}
			return 0, c.opError("read", os.NewSyscallError("read", errno))
		}
		c.full = int(n) == len(buf)
		if n == 0 {
			if p == nil {
				put(buf)
			}
			return 0, io.EOF
		}
		return int(n), nil
	}
}

func (c *sockConn) loopWrite(p []byte) (int, error) {
	if l := c.ringOwner(); l != nil {
		return c.ringWrite(l, p)
	}
	w := 0
	for w < len(p) {
		c.fdmu.RLock()
		if c.fd < 0 || c.closed.Load() {
			c.fdmu.RUnlock()
			return w, c.opError("write", net.ErrClosed)
		}
		chunk := min(len(p)-w, 1<<30)
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(c.fd), uintptr(unsafe.Pointer(&p[w])), uintptr(chunk))
		c.fdmu.RUnlock()
		switch errno {
		case 0:
			w += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			if err := c.waitIO(false); err != nil {
				return w, c.opError("write", err)
			}
		default:
			return w, c.opError("write", os.NewSyscallError("write", errno))
		}
	}
	return w, nil
}

// waitIO waits until the socket is readable (read) or writable: parked on
// the loop when its owner asks from the loop, in poll(2) otherwise.
func (c *sockConn) waitIO(read bool) error {
	if c.closed.Load() {
		return net.ErrClosed
	}
	if co := c.owner.Load(); co != nil && co.onLoop() {
		return co.l.park(co, c, read)
	}
	if read {
		return c.pollWait(&c.rdl, unix.POLLIN)
	}
	return c.pollWait(&c.wdl, unix.POLLOUT)
}

// pollWait waits in poll(2) for events on the socket, or until the deadline
// dl passes, the socket closes or a new deadline is set. It blocks a thread,
// not the loop: it serves those who use a loop's socket without being its
// owner on the loop (the pool's checks of an idle connection, a watcher).
func (c *sockConn) pollWait(dl *atomic.Int64, events int16) error {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return os.NewSyscallError("eventfd", err)
	}
	defer syscall.Close(efd)
	c.mmu.Lock()
	c.wakers = append(c.wakers, efd)
	c.mmu.Unlock()
	defer func() {
		c.mmu.Lock()
		for i, w := range c.wakers {
			if w == efd {
				c.wakers = append(c.wakers[:i], c.wakers[i+1:]...)
				break
			}
		}
		c.mmu.Unlock()
	}()
	for {
		if c.closed.Load() {
			return net.ErrClosed
		}
		timeout := -1
		if ns := dl.Load(); ns != 0 {
			left := ns - time.Now().UnixNano()
			if left <= 0 {
				return os.ErrDeadlineExceeded
			}
			timeout = int((left + int64(time.Millisecond) - 1) / int64(time.Millisecond))
		}
		c.fdmu.RLock()
		fd := c.fd
		c.fdmu.RUnlock()
		if fd < 0 {
			return net.ErrClosed
		}
		fds := [2]unix.PollFd{{Fd: int32(fd), Events: events}, {Fd: int32(efd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds[:], timeout); err != nil && err != unix.EINTR {
			return os.NewSyscallError("poll", err)
		}
		if fds[1].Revents != 0 {
			var buf [8]byte
			syscall.Read(efd, buf[:])
			continue // look again at the deadline and whether it closed
		}
		if fds[0].Revents != 0 {
			return nil
		}
	}
}

// loopRawConn is SyscallConn's answer on the loop.
type loopRawConn struct{ c *sockConn }

func (r loopRawConn) Control(f func(fd uintptr)) error {
	r.c.fdmu.RLock()
	defer r.c.fdmu.RUnlock()
	if r.c.fd < 0 {
		return net.ErrClosed
	}
	f(uintptr(r.c.fd))
	return nil
}

func (r loopRawConn) Read(f func(fd uintptr) bool) error  { return r.io(f, &r.c.rdl, unix.POLLIN) }
func (r loopRawConn) Write(f func(fd uintptr) bool) error { return r.io(f, &r.c.wdl, unix.POLLOUT) }

func (r loopRawConn) io(f func(fd uintptr) bool, dl *atomic.Int64, events int16) error {
	for {
		done := false
		if err := r.Control(func(fd uintptr) { done = f(fd) }); err != nil {
			return err
		}
		if done {
			return nil
		}
		if err := r.c.pollWait(dl, events); err != nil {
			return err
		}
	}
}

// opError shapes err as the net package's own Read and Write do, so
// timeouts, net.ErrClosed and resets test the same.
func (c *sockConn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		err = oe.Err // RawConn's own wrapping, with op "raw-read"
	}
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// peekSocket is a non-blocking MSG_PEEK of fd, raw for the same reason as
// sockConn: the pool checks a connection this way at every checkout.
func peekSocket(fd uintptr, buf []byte) error {
	for {
		_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)),
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		if errno != syscall.EINTR {
			if errno == 0 {
				return nil
			}
			return errno
		}
	}
}
