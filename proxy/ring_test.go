//go:build linux

package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// onRing runs body as a coroutine on a loop with an io_uring, owning the
// proxy's end of a TCP connection over loopback; it returns the other end
// and a channel closed when body returns. It skips where the kernel
// allows no ring.
func onRing(t *testing.T, body func(co *coro, c *sockConn)) (net.Conn, <-chan struct{}) {
	t.Helper()
	l, err := newEvLoop(true)
	if err != nil {
		t.Fatal(err)
	}
	g := &evLoops{ls: []*evLoop{l}}
	t.Cleanup(g.stop)
	if l.rg == nil {
		t.Skipf("no io_uring here: %v", l.ringErr)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c := wrapSocket(nc).(*sockConn)
	t.Cleanup(func() { c.Close() })
	done := make(chan struct{})
	l.start(func(co *coro) {
		defer close(done)
		if !co.own(c) {
			t.Error("the coroutine cannot own the socket")
			return
		}
		body(co, c)
	})
	return peer, done
}

func waitDone(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the coroutine did not finish")
	}
}

// fillPeer writes to c, as its owner but off the ring, until the socket
// buffers between c and its peer are full.
func fillPeer(c *sockConn) int {
	chunk := make([]byte, 64<<10)
	n := 0
	for {
		c.fdmu.RLock()
		m, err := syscall.Write(c.fd, chunk)
		c.fdmu.RUnlock()
		if err != nil || m <= 0 {
			return n
		}
		n += m
	}
}

// A write is queued and goes out with the receive that waits for the
// answer; the answer comes back through a provided buffer, in as many
// reads as the caller's buffer needs.
func TestRingWriteThenRead(t *testing.T) {
	got := make(chan string, 1)
	peer, done := onRing(t, func(co *coro, c *sockConn) {
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Error(err)
			return
		}
		var out []byte
		buf := make([]byte, 3)
		for len(out) < 9 {
			n, err := c.Read(buf)
			if err != nil {
				t.Error(err)
				return
			}
			out = append(out, buf[:n]...)
		}
		got <- string(out)
	})
	in := make([]byte, 4)
	if _, err := io.ReadFull(peer, in); err != nil || string(in) != "ping" {
		t.Fatalf("the peer got %q, %v", in, err)
	}
	peer.Write([]byte("pong-pong"))
	waitDone(t, done)
	if s := <-got; s != "pong-pong" {
		t.Fatalf("read %q", s)
	}
}

// A read deadline cancels the armed receive and loses no bytes: what
// arrives later is read whole. The end of the stream reads as EOF.
func TestRingReadDeadline(t *testing.T) {
	peer, done := onRing(t, func(co *coro, c *sockConn) {
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		buf := make([]byte, 16)
		if _, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("read: %v; want a timeout", err)
			return
		}
		c.SetReadDeadline(time.Time{})
		if _, err := c.Write([]byte("go")); err != nil {
			t.Error(err)
			return
		}
		n, err := io.ReadAtLeast(c, buf, 5)
		if err != nil || string(buf[:n]) != "after" {
			t.Errorf("read %q, %v; want after", buf[:n], err)
		}
		if _, err := c.Read(buf); err != io.EOF {
			t.Errorf("read at the end: %v; want EOF", err)
		}
	})
	in := make([]byte, 2)
	if _, err := io.ReadFull(peer, in); err != nil {
		t.Fatal(err)
	}
	peer.Write([]byte("after"))
	peer.(*net.TCPConn).CloseWrite()
	waitDone(t, done)
}

// A receive linked after a send the peer does not take yet cannot be
// cancelled by its read deadline until the send is done (a timeout loses
// no bytes, so the send is not cut); then it is, and the bytes all arrive.
// A write deadline that passes meanwhile cuts the send: the read times out
// and the stream is broken for writes.
func TestRingReadDeadlineAfterBlockedSend(t *testing.T) {
	for _, cut := range []bool{false, true} {
		t.Run(map[bool]string{false: "peer reads", true: "write deadline"}[cut], func(t *testing.T) {
			filled := make(chan int, 1)
			msg := bytes.Repeat([]byte("m"), 4000)
			peer, done := onRing(t, func(co *coro, c *sockConn) {
				filled <- fillPeer(c)
				if _, err := c.Write(msg); err != nil {
					t.Error(err)
					return
				}
				if cut {
					c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
				}
				c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				_, err := c.Read(make([]byte, 16))
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Errorf("read: %v; want a timeout", err)
				}
				_, err = c.Write([]byte("more"))
				if cut != (err != nil) {
					t.Errorf("write after the read timed out: %v", err)
				}
			})
			n := <-filled
			if !cut {
				time.Sleep(150 * time.Millisecond) // past the read deadline
				all, err := io.ReadAll(io.LimitReader(peer, int64(n+len(msg))))
				if err != nil || len(all) != n+len(msg) || !bytes.Equal(all[n:], msg) {
					t.Fatalf("the peer read %d bytes (%v); want %d ending with the message", len(all), err, n+len(msg))
				}
			}
			waitDone(t, done)
		})
	}
}

// A write larger than a send buffer goes out in order, in pieces, to a
// peer that reads slowly.
func TestRingLargeWrite(t *testing.T) {
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	peer, done := onRing(t, func(co *coro, c *sockConn) {
		for i := 0; i < len(big); i += 1 << 20 {
			if _, err := c.Write(big[i : i+1<<20]); err != nil {
				t.Error(err)
				return
			}
		}
		c.Close()
	})
	var got []byte
	buf := make([]byte, 100<<10)
	for {
		time.Sleep(time.Millisecond)
		n, err := peer.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	waitDone(t, done)
	if !bytes.Equal(got, big) {
		t.Fatalf("the peer got %d bytes, not what was written (%d)", len(got), len(big))
	}
}

// Closing the socket from elsewhere wakes its owner parked on a receive;
// what the owner queued before still goes out before the close.
func TestRingCloseWhileParked(t *testing.T) {
	parked := make(chan *sockConn, 1)
	peer, done := onRing(t, func(co *coro, c *sockConn) {
		c.Write([]byte("bye"))
		parked <- c
		if _, err := c.Read(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("read: %v; want closed", err)
		}
	})
	c := <-parked
	time.Sleep(20 * time.Millisecond)
	c.Close()
	waitDone(t, done)
	all, err := io.ReadAll(peer)
	if err != nil || string(all) != "bye" {
		t.Fatalf("the peer read %q, %v", all, err)
	}
}

// A socket let go keeps its order: what its owner queued goes out before
// anyone else writes, and what the ring received and nobody read yet is
// read by the next reader, off the loop.
func TestRingLetGo(t *testing.T) {
	out := make(chan *sockConn, 1)
	peer, done := onRing(t, func(co *coro, c *sockConn) {
		if _, err := c.Write([]byte("first,")); err != nil {
			t.Error(err)
		}
		if err := c.awaitReadable(); err != nil { // the bytes wait in the ring
			t.Error(err)
		}
		if _, err := c.Write([]byte("then,")); err != nil { // queued
			t.Error(err)
		}
		co.leave()
		c.toPoller()
		out <- c
	})
	in := make([]byte, 6)
	io.ReadFull(peer, in)
	peer.Write([]byte("stashed"))
	c := <-out
	waitDone(t, done)
	if _, err := c.Write([]byte("second")); err != nil {
		t.Fatal(err)
	}
	rest := make([]byte, 11)
	if _, err := io.ReadFull(peer, rest); err != nil || string(in)+string(rest) != "first,then,second" {
		t.Fatalf("the peer read %q%q, %v", in, rest, err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 16)
	n, err := c.Read(got)
	if err != nil || string(got[:n]) != "stashed" {
		t.Fatalf("read off the loop %q, %v; want the stashed bytes", got[:n], err)
	}
}

// The kernel's version reads from uname, as newLoopRing's gate needs it.
func TestKernelVersion(t *testing.T) {
	if major, minor := kernelVersion(); major < 3 || minor < 0 {
		t.Fatalf("kernel %d.%d", major, minor)
	}
}

// TestRingKeepable checks the buffer a linked send is held in while its
// receive waits: a small send's in the smallest size class that holds it,
// reused once given back; a large one's of its own size; a full one's
// unmoved.
func TestRingKeepable(t *testing.T) {
	g := &loopRing{}
	fill := func(n int) []byte {
		b := g.sendBuf(n)
		for i := range n {
			b = append(b, byte(i))
		}
		return b
	}
	for _, tc := range []struct{ n, wantCap int }{
		{1, 256}, {256, 256}, {257, 512}, {1000, 1024}, {4096, 4096},
		{4097, 4160}, {15000, 15040}, {sendBufSize - 1023, sendBufSize}, {sendBufSize, sendBufSize},
	} {
		b := fill(tc.n)
		k := g.keepable(b)
		if cap(k) != tc.wantCap || !bytes.Equal(k, fill(tc.n)) {
			t.Errorf("keepable(%d bytes): cap %d, bytes kept %v; want cap %d and the bytes", tc.n, cap(k), bytes.Equal(k, fill(tc.n)), tc.wantCap)
		}
		g.recycle(k)
	}
	// Given back, a class's buffer is the next one of its class.
	k := g.keepable(fill(300))
	g.recycle(k)
	if again := g.keepable(fill(500)); &again[0] != &k[0] {
		t.Error("a kept buffer given back was not reused for the next send of its class")
	}
	// The spares stay bounded.
	for range 2 * spareBufs {
		g.recycle(make([]byte, 0, 256))
	}
	if n := len(g.spare[0]); n != spareBufs {
		t.Errorf("%d spares of 256 bytes kept, want %d", n, spareBufs)
	}
}
