package proxy

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// sockConn reads and writes a TCP or Unix socket with raw system calls
// through the runtime's poller (syscall.RawConn).
//
// Why: a read or write through the net package enters the scheduler's
// syscall state, and the first system call after the process has gone idle
// wakes the runtime's monitor thread. A proxy waiting on the warehouse goes
// idle between every request and its answer, so at low concurrency each
// round trip paid two or three extra thread wake-ups, the largest part of
// its CPU on a virtual machine where a context switch is expensive. The
// sockets are non-blocking, so a raw read or write never blocks the thread:
// EAGAIN hands the wait to the poller, with deadlines and Close working as
// for net.Conn.
type sockConn struct {
	net.Conn // *net.TCPConn or *net.UnixConn: deadlines, addresses, Close
	rc       syscall.RawConn

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
	c := &sockConn{Conn: nc, rc: rc}
	c.readFn = c.read
	c.poolFn = c.readPooledFn
	c.writeFn = c.write
	return c
}

// SyscallConn lets the connection checks reach the socket.
func (c *sockConn) SyscallConn() (syscall.RawConn, error) { return c.rc, nil }

func (c *sockConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
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
