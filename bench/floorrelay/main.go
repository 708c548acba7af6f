// Command floorrelay is the bench's floor for a proxy written in Go: it copies
// bytes between each client and its own PostgreSQL connection and does
// nothing else (no parsing, pooling, authentication or policy). What it costs
// per transaction is what any Go proxy pays before doing its work, in the
// runtime's model (-mode goroutine: two goroutines per client on the netpoller,
// as pgwarden) or in an event loop (-mode epoll: one locked thread, level
// triggered, as PgBouncer's libevent loop). The bench measures its CPU per
// transaction beside PgBouncer's and pgwarden's (targets relay-go and
// relay-epoll). It is a measuring instrument, not a proxy anyone should run.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"syscall"
)

func main() {
	mode := flag.String("mode", "goroutine", "goroutine or epoll")
	listen := flag.Int("listen", 0, "port to listen on, on 127.0.0.1")
	backend := flag.Int("backend", 0, "PostgreSQL's port on 127.0.0.1")
	flag.Parse()
	var err error
	switch *mode {
	case "goroutine":
		err = goroutines(*listen, *backend)
	case "epoll":
		err = epoll(*listen, *backend)
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

// epoll relays on one locked thread: one read per readiness event, written
// to the peer at once (blocking for the rest of a partial write, which the
// bench's small messages never cause).
func epoll(listen, backend int) error {
	runtime.LockOSThread()
	lfd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	syscall.SetsockoptInt(lfd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	loopback := [4]byte{127, 0, 0, 1}
	if err := syscall.Bind(lfd, &syscall.SockaddrInet4{Port: listen, Addr: loopback}); err != nil {
		return err
	}
	if err := syscall.Listen(lfd, 4096); err != nil {
		return err
	}
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	watch := func(fd int) error {
		return syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)})
	}
	if err := watch(lfd); err != nil {
		return err
	}
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
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(ep, events, -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == lfd {
				if err := accept(lfd, backend, loopback, peer, watch); err != nil {
					fmt.Fprintln(os.Stderr, "floorrelay:", err)
				}
				continue
			}
			p, ok := peer[fd]
			if !ok {
				continue // closed with its peer earlier in this batch
			}
			m, err := syscall.Read(fd, buf)
			if err == syscall.EAGAIN || err == syscall.EINTR {
				continue
			}
			if m <= 0 || writeAll(p, buf[:m]) != nil {
				closePair(fd)
			}
		}
	}
}

func accept(lfd, backend int, loopback [4]byte, peer map[int]int, watch func(int) error) error {
	cfd, _, err := syscall.Accept4(lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
	if err != nil {
		return nil // another event took it, or the client left
	}
	sfd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err == nil {
		err = syscall.Connect(sfd, &syscall.SockaddrInet4{Port: backend, Addr: loopback})
	}
	if err == nil {
		err = syscall.SetNonblock(sfd, true)
	}
	if err != nil {
		syscall.Close(cfd)
		if sfd > 0 {
			syscall.Close(sfd)
		}
		return err
	}
	for _, fd := range []int{cfd, sfd} {
		syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	}
	peer[cfd], peer[sfd] = sfd, cfd
	if err := watch(cfd); err != nil {
		return err
	}
	return watch(sfd)
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		w, err := syscall.Write(fd, b)
		switch {
		case err == syscall.EAGAIN:
			// The peer's buffer is full: finish this write blocking.
			if err := syscall.SetNonblock(fd, false); err != nil {
				return err
			}
			defer syscall.SetNonblock(fd, true)
			continue
		case err == syscall.EINTR:
			continue
		case err != nil:
			return err
		}
		b = b[w:]
	}
	return nil
}
