// Command floorrelay is the bench's floor for a proxy written in Go: it copies
// bytes between each client and its own PostgreSQL connection and does
// nothing else (no parsing, pooling, authentication or policy). What it costs
// per transaction is what any Go proxy pays before doing its work, in the
// runtime's model (-mode goroutine: two goroutines per client on the netpoller,
// as pgwarden's sessions off its event loop), in an event loop (-mode epoll: one
// locked thread, level triggered, as PgBouncer's libevent loop), or in that
// loop with each connection's relay written as blocking code in a coroutine
// (-mode coro -block runtime: pgwarden's event loop, waiting as it waits), or
// with io_uring (-mode uring: a receive always armed on each socket, each
// send linked to the next receive, one io_uring_enter per round, on an
// unlocked loop as pgwarden's). The bench measures its CPU per transaction
// beside PgBouncer's and pgwarden's (targets relay-go, relay-epoll,
// relay-coro and relay-uring). It is a measuring instrument, not a proxy
// anyone should run.
package main

import (
	"flag"
	"fmt"
	"io"
	"iter"
	"net"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
	"unsafe" // and go:linkname
)

func main() {
	mode := flag.String("mode", "goroutine", "goroutine, epoll, coro or uring")
	listen := flag.Int("listen", 0, "port to listen on, on 127.0.0.1")
	backend := flag.Int("backend", 0, "PostgreSQL's port on 127.0.0.1")
	block := flag.String("block", "raw", "how -mode epoll and coro wait with nothing ready: raw (keep the processor, on a locked thread) or runtime (give it back, as pgwarden's loop)")
	flag.Parse()
	var err error
	switch *mode {
	case "goroutine":
		err = goroutines(*listen, *backend)
	case "uring":
		err = uringRelay(*listen, *backend)
	case "epoll", "coro":
		if *block == "raw" {
			runtime.LockOSThread()
		}
		var l *loop
		if l, err = newLoop(*listen, *backend, *block == "raw"); err != nil {
			break
		}
		if *mode == "epoll" {
			err = l.relay()
		} else {
			err = l.coro()
		}
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	fmt.Fprintln(os.Stderr, "floorrelay:", err)
	os.Exit(1)
}

func goroutines(listen, backend int) error {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(listen)))
	if err != nil {
		return err
	}
	return serveGoroutines(ln, backend)
}

func serveGoroutines(ln net.Listener, backend int) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			s, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(backend)))
			if err != nil {
				return
			}
			defer s.Close()
			go func() {
				io.CopyBuffer(s, c, make([]byte, 16<<10))
				s.Close()
			}()
			io.CopyBuffer(c, s, make([]byte, 16<<10))
		}()
	}
}

// loop is a level-triggered epoll loop on the calling goroutine. Its reads
// and writes are raw system calls: a Go system call enters the scheduler's
// syscall state, which a non-blocking read or write has no use for.
type loop struct {
	ep, lfd  int
	backend  int
	rawBlock bool
	events   []syscall.EpollEvent
	yielded  int64 // when the loop last passed through the scheduler (-block runtime)
}

func newLoop(listen, backend int, rawBlock bool) (*loop, error) {
	l := &loop{backend: backend, rawBlock: rawBlock, events: make([]syscall.EpollEvent, 256)}
	var err error
	if l.lfd, err = listenFD(listen, syscall.SOCK_NONBLOCK); err != nil {
		return nil, err
	}
	if l.ep, err = syscall.EpollCreate1(syscall.EPOLL_CLOEXEC); err != nil {
		return nil, err
	}
	return l, l.watch(l.lfd)
}

// listenFD listens on 127.0.0.1:port with a socket of the extra flags
// (SOCK_NONBLOCK for an epoll loop's accept4).
func listenFD(port, flags int) (int, error) {
	lfd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|flags, 0)
	if err != nil {
		return 0, err
	}
	syscall.SetsockoptInt(lfd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	if err := syscall.Bind(lfd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(lfd)
		return 0, err
	}
	if err := syscall.Listen(lfd, 4096); err != nil {
		syscall.Close(lfd)
		return 0, err
	}
	return lfd, nil
}

// dialBackend connects a client's own PostgreSQL connection (blocking,
// TCP_NODELAY), or closes what it opened.
func dialBackend(port int) (int, error) {
	sfd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := syscall.Connect(sfd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(sfd)
		return -1, err
	}
	syscall.SetsockoptInt(sfd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	return sfd, nil
}

func (l *loop) watch(fd int) error {
	return syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)})
}

// wait returns the ready descriptors.
//
// With -block raw (the default) it blocks in a raw epoll_wait for at most
// 10 ms at a time, keeping the locked thread's processor, and gives the
// scheduler a turn after every empty wait so that the garbage collector can
// stop it.
//
// With -block runtime it waits as pgwarden's loop does (proxy/evloop_linux.go),
// since a proxy that runs other goroutines beside its loop has to give its
// processor back while it waits: it blocks in an ordinary system call,
// without a non-blocking look first, and passes through the scheduler every
// 5 ms of its own time with the runtime's goyield. Without those yields
// the runtime's monitor takes the processor from a loop that has been busy
// for 10 ms and then polls every 20 µs; a look first costs a system call per
// wait. Together they cost this floor, against PgBouncer's CPU per
// transaction, 1.23× → 1.01× at one client and 1.16× → 1.06× at eight
// (simple protocol, 6 rounds), which pgwarden's loop does not pay.
func (l *loop) wait() []syscall.EpollEvent {
	ev := uintptr(unsafe.Pointer(&l.events[0]))
	for {
		var n uintptr
		var errno syscall.Errno
		if l.rawBlock {
			n, _, errno = syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(l.ep), ev, uintptr(len(l.events)), 10, 0, 0)
		} else {
			if now := time.Now().UnixNano(); now-l.yielded > yieldEvery {
				l.yielded = now
				goyield()
			}
			n, _, errno = syscall.Syscall6(syscall.SYS_EPOLL_PWAIT, uintptr(l.ep), ev, uintptr(len(l.events)), ^uintptr(0), 0, 0)
		}
		if errno == 0 && n > 0 {
			return l.events[:n]
		}
		runtime.Gosched()
	}
}

// yieldEvery is pgwarden's loop's (proxy/evloop_linux.go).
const yieldEvery = 5 * int64(time.Millisecond)

// goyield is the runtime's yield that requeues the caller on its own
// processor without waking an idle thread, as pgwarden's loop uses it.
//
//go:linkname goyield runtime.goyield
func goyield()

// accept takes a client and dials its own PostgreSQL connection.
func (l *loop) accept() (cfd, sfd int, ok bool) {
	cfd, _, err := syscall.Accept4(l.lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
	if err != nil {
		return 0, 0, false // another event took it, or the client left
	}
	sfd, err = dialBackend(l.backend)
	if err == nil {
		err = syscall.SetNonblock(sfd, true)
	}
	if err == nil {
		syscall.SetsockoptInt(cfd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		if err = l.watch(cfd); err == nil {
			err = l.watch(sfd)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "floorrelay:", err)
		syscall.Close(cfd)
		if sfd > 0 {
			syscall.Close(sfd)
		}
		return 0, 0, false
	}
	return cfd, sfd, true
}

// relay copies each readiness event's bytes to the peer at once.
func (l *loop) relay() error {
	peer := map[int]int{}
	closePair := func(fd int) {
		if p, ok := peer[fd]; ok {
			syscall.Close(p)
			delete(peer, p)
		}
		syscall.Close(fd)
		delete(peer, fd)
	}
	buf := make([]byte, 16<<10)
	for {
		for _, ev := range l.wait() {
			fd := int(ev.Fd)
			if fd == l.lfd {
				if cfd, sfd, ok := l.accept(); ok {
					peer[cfd], peer[sfd] = sfd, cfd
				}
				continue
			}
			p, ok := peer[fd]
			if !ok {
				continue // closed with its peer earlier in this batch
			}
			m, errno := read(fd, buf)
			if errno == syscall.EAGAIN {
				continue
			}
			if m <= 0 || writeAll(p, buf[:m]) != nil {
				closePair(fd)
			}
		}
	}
}

// coroPair is one client and its PostgreSQL connection, relayed by blocking
// code in a coroutine that yields whenever it has to wait.
type coroPair struct {
	cfd, sfd int
	ready    int // the descriptor the loop resumed the coroutine for
	next     func() (struct{}, bool)
	stop     func()
}

// coro runs each pair's relay as a coroutine (iter.Pull): a readiness event
// resumes the pair on this thread, with no scheduler work between the event
// and the code that reads.
func (l *loop) coro() error {
	pairs := map[int]*coroPair{}
	resume := func(p *coroPair) {
		if _, ok := p.next(); ok {
			return
		}
		p.stop()
		delete(pairs, p.cfd)
		delete(pairs, p.sfd)
		syscall.Close(p.cfd)
		syscall.Close(p.sfd)
	}
	for {
		for _, ev := range l.wait() {
			fd := int(ev.Fd)
			if fd == l.lfd {
				if cfd, sfd, ok := l.accept(); ok {
					p := &coroPair{cfd: cfd, sfd: sfd, ready: -1}
					p.next, p.stop = iter.Pull(p.run)
					pairs[cfd], pairs[sfd] = p, p
					resume(p)
				}
				continue
			}
			if p := pairs[fd]; p != nil {
				p.ready = fd
				resume(p)
			}
		}
	}
}

// run is the pair's relay as a proxy's connection code is written: wait,
// read what is there, write it to the other side, wait again.
func (p *coroPair) run(yield func(struct{}) bool) {
	buf := make([]byte, 16<<10)
	for yield(struct{}{}) {
		from, to := p.cfd, p.sfd
		if p.ready == p.sfd {
			from, to = p.sfd, p.cfd
		}
		n, errno := read(from, buf)
		if errno == syscall.EAGAIN {
			continue
		}
		if n <= 0 || writeAll(to, buf[:n]) != nil {
			return
		}
	}
}

func read(fd int, b []byte) (int, syscall.Errno) {
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		if errno != syscall.EINTR {
			if errno != 0 {
				return -1, errno
			}
			return int(n), 0
		}
	}
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		w, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch errno {
		case 0:
			b = b[w:]
		case syscall.EINTR:
		case syscall.EAGAIN:
			// The peer's buffer is full: finish this write blocking.
			if err := syscall.SetNonblock(fd, false); err != nil {
				return err
			}
			defer syscall.SetNonblock(fd, true)
		default:
			return errno
		}
	}
	return nil
}
