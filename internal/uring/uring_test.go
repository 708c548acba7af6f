//go:build linux

package uring

import (
	"bytes"
	"errors"
	"runtime"
	"syscall"
	"testing"
)

func newRing(t *testing.T, entries uint32) *Ring {
	t.Helper()
	r, err := New(entries, 0)
	if errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EPERM) {
		t.Skipf("no io_uring here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func socketPair(t *testing.T) (a, b int) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fds[0]); syscall.Close(fds[1]) })
	return fds[0], fds[1]
}

type completion struct {
	user uint64
	res  int32
}

// reap enters until n completions are in, and returns them in order.
func reap(t *testing.T, r *Ring, n int) []completion {
	t.Helper()
	var got []completion
	for len(got) < n {
		if err := r.EnterTimeout(1, 10e9); err != nil {
			t.Fatal(err)
		}
		if *r.cqTail == *r.cqHead {
			t.Fatalf("after %v, no completion in 10 s", got)
		}
		r.Completions(func(user uint64, res int32, _ uint32) { got = append(got, completion{user, res}) })
	}
	return got
}

// A receive armed before anything is sent completes with what a send on
// the other end carried, each with its own user value.
func TestSendRecv(t *testing.T) {
	r := newRing(t, 8)
	a, b := socketPair(t)
	in := make([]byte, 64)
	must(t, r.Prep(OpRecv, 0, b, in, 0, 1))
	if err := r.Enter(0); err != nil {
		t.Fatal(err)
	}
	must(t, r.Prep(OpSend, 0, a, []byte("hello"), 0, 2))
	got := reap(t, r, 2)
	want := map[uint64]int32{1: 5, 2: 5}
	for _, c := range got {
		if want[c.user] != c.res {
			t.Errorf("completion %d: res %d, want %d", c.user, c.res, want[c.user])
		}
		delete(want, c.user)
	}
	if len(want) != 0 || string(in[:5]) != "hello" {
		t.Errorf("missing %v; received %q", want, in[:5])
	}
}

// A send linked to a receive, with its completion skipped, is what a relay
// submits per message: one completion, the receive's, after the send.
func TestLinkedSendSkipsItsCompletion(t *testing.T) {
	r := newRing(t, 8)
	a, b := socketPair(t)
	in := make([]byte, 64)
	must(t, r.Prep(OpSend, Link|SkipSuccess, a, []byte("ping"), 0, 1))
	must(t, r.Prep(OpRecv, 0, a, in, 0, 2))
	// The peer answers once it has the ping.
	buf := make([]byte, 16)
	if err := r.Enter(0); err != nil {
		t.Fatal(err)
	}
	n, err := syscall.Read(b, buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("peer read %q, %v", buf[:n], err)
	}
	syscall.Write(b, []byte("pong"))
	got := reap(t, r, 1)
	if got[0] != (completion{2, 4}) || string(in[:4]) != "pong" {
		t.Errorf("completions %v, received %q; want only the receive's, of pong", got, in[:4])
	}
	r.Completions(func(user uint64, res int32, _ uint32) { t.Errorf("extra completion %d: %d", user, res) })
}

// A send that fails posts its completion despite SkipSuccess and ends the
// receive linked to it, which posts none: the chain's one completion is
// the failure (a relay closes both sides on it).
func TestFailedSendEndsTheLink(t *testing.T) {
	r := newRing(t, 8)
	a, b := socketPair(t)
	syscall.Close(b)
	in := make([]byte, 64)
	must(t, r.Prep(OpSend, Link|SkipSuccess, a, []byte("ping"), syscall.MSG_NOSIGNAL, 1))
	must(t, r.Prep(OpRecv, 0, a, in, 0, 2))
	if got := reap(t, r, 1); got[0] != (completion{1, -int32(syscall.EPIPE)}) {
		t.Errorf("completions %v; want the send's EPIPE", got)
	}
	// A later send's completion comes next: the receive left nothing behind.
	must(t, r.Prep(OpSend, 0, a, []byte("ping"), syscall.MSG_NOSIGNAL, 3))
	if got := reap(t, r, 1); len(got) != 1 || got[0] != (completion{3, -int32(syscall.EPIPE)}) {
		t.Errorf("completions %v; want only the second send's EPIPE", got)
	}
}

// More operations than the queue holds: Prep submits a full queue first,
// and every operation completes once, in a ring of four entries.
func TestMoreThanTheQueueHolds(t *testing.T) {
	r := newRing(t, 4)
	a, b := socketPair(t)
	const n = 100
	data := heapBytes(n)
	for i := range data {
		data[i] = byte(i)
	}
	for i := range n {
		must(t, r.Prep(OpSend, 0, a, data[i:i+1], 0, uint64(i)))
	}
	got := reap(t, r, n)
	for i, c := range got {
		if c != (completion{uint64(i), 1}) {
			t.Fatalf("completion %d: %v", i, c)
		}
	}
	buf := make([]byte, 2*n)
	m, err := syscall.Read(b, buf)
	if err != nil || !bytes.Equal(buf[:m], data) {
		t.Errorf("peer read %v, %v", buf[:m], err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var keep [][]byte

// heapBytes returns n bytes on the heap. A buffer the compiler can keep on
// the stack is unfit for an operation that outlives the call that prepares
// it: with []byte{byte(i)} in the loop above, every send of a batch read
// the one stack slot, as its last value.
func heapBytes(n int) []byte {
	b := make([]byte, n)
	keep = append(keep, b)
	return b
}

// Receives that select a provided buffer take one only when data arrives,
// report which, and take it again once given back: eight receives over a
// group of two buffers, each given back after its bytes are read.
func TestProvidedBuffers(t *testing.T) {
	r := newRing(t, 8)
	br, err := r.RegisterBufRing(7, 2, 64)
	if errors.Is(err, syscall.EINVAL) {
		t.Skipf("no provided buffer rings here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	a, b := socketPair(t)
	seen := map[uint16]bool{}
	for i := range 8 {
		must(t, r.PrepRecvSelect(0, b, 7, 0, uint64(i)))
		if err := r.Enter(0); err != nil {
			t.Fatal(err)
		}
		msg := []byte{'m', byte('0' + i)}
		syscall.Write(a, msg)
		var res int32
		var flags uint32
		for n := 0; n == 0; {
			if err := r.Enter(1); err != nil {
				t.Fatal(err)
			}
			r.Completions(func(user uint64, r int32, f uint32) {
				if user != uint64(i) {
					t.Errorf("completion %d, want %d", user, i)
				}
				res, flags, n = r, f, n+1
			})
		}
		if res != 2 || flags&CQEBuffer == 0 {
			t.Fatalf("receive %d: res %d, flags %#x", i, res, flags)
		}
		id := uint16(flags >> 16)
		if got := br.Buf(id, int(res)); !bytes.Equal(got, msg) {
			t.Fatalf("receive %d: buffer %d holds %q, want %q", i, id, got, msg)
		}
		seen[id] = true
		br.Provide(id)
	}
	if len(seen) != 2 {
		t.Errorf("buffers used: %v; want both of the group's", seen)
	}
}

// With every buffer of the group taken, a receive that selects it fails
// with ENOBUFS rather than waiting or writing elsewhere.
func TestProvidedBuffersRunOut(t *testing.T) {
	r := newRing(t, 8)
	if _, err := r.RegisterBufRing(3, 1, 16); err != nil {
		t.Skipf("no provided buffer rings here: %v", err)
	}
	a, b := socketPair(t)
	syscall.Write(a, []byte("one"))
	must(t, r.PrepRecvSelect(0, b, 3, 0, 1))
	got := reap(t, r, 1)
	syscall.Write(a, []byte("two"))
	must(t, r.PrepRecvSelect(0, b, 3, 0, 2))
	got = append(got, reap(t, r, 1)...)
	if got[0] != (completion{1, 3}) || got[1] != (completion{2, -int32(syscall.ENOBUFS)}) {
		t.Errorf("completions %v; want 3 bytes, then ENOBUFS", got)
	}
}

// blockedChain fills one end of a socket pair until a write would wait,
// then prepares on it a send of 4 KiB (user 1, its success skipped) linked
// before a receive (user 2). It returns the other end.
func blockedChain(t *testing.T, r *Ring) (peer int) {
	t.Helper()
	a, b := socketPair(t)
	must(t, syscall.SetNonblock(a, true))
	fill := make([]byte, 64<<10)
	for {
		if _, err := syscall.Write(a, fill); err != nil {
			break
		}
	}
	out, in := bytes.Repeat([]byte("x"), 4096), make([]byte, 64)
	// The kernel uses both after this returns: kept, on the heap, for the
	// test's life.
	t.Cleanup(func() { runtime.KeepAlive(out); runtime.KeepAlive(in) })
	must(t, r.Prep(OpSend, Link|SkipSuccess, a, out, syscall.MSG_WAITALL, 1))
	must(t, r.Prep(OpRecv, 0, a, in, 0, 2))
	return b
}

// A receive linked after a send that waits (the peer does not read) has not
// started: cancelling it by its user value finds nothing, and it starts
// once the send is done. One that has started is cancelled. The proxy's
// deadlines rest on both.
func TestCancelLinkedReceive(t *testing.T) {
	r := newRing(t, 16)
	b := blockedChain(t, r)
	fill := make([]byte, 64<<10)
	must(t, r.PrepCancel(0, 2, 3))
	if got := reap(t, r, 1); got[0] != (completion{3, -int32(syscall.ENOENT)}) {
		t.Fatalf("completions %v; want the cancel's ENOENT alone", got)
	}
	// The peer reads: the send completes (silently), the receive starts.
	for drained := 0; drained < 64<<10+4096; {
		n, err := syscall.Read(b, fill)
		if err != nil {
			t.Fatal(err)
		}
		drained += n
		if drained >= 4096 {
			break
		}
	}
	go func() {
		buf := make([]byte, 1<<20)
		for {
			if n, err := syscall.Read(b, buf); n <= 0 || err != nil {
				return
			}
		}
	}()
	// Now it has started (or will, as the send ends): cancelled.
	for i := 0; ; i++ {
		must(t, r.PrepCancel(0, 2, 4))
		if err := r.EnterTimeout(1, 5e9); err != nil {
			t.Fatal(err)
		}
		var got []completion
		r.Completions(func(user uint64, res int32, _ uint32) { got = append(got, completion{user, res}) })
		if len(got) == 0 {
			t.Fatalf("attempt %d: no completion in 5 s", i)
		}
		if got[0] == (completion{4, -int32(syscall.ENOENT)}) && len(got) == 1 {
			continue // not started yet
		}
		if len(got) < 2 {
			if err := r.EnterTimeout(1, 5e9); err != nil {
				t.Fatal(err)
			}
			r.Completions(func(user uint64, res int32, _ uint32) { got = append(got, completion{user, res}) })
		}
		if len(got) != 2 || got[0] != (completion{4, 0}) || got[1] != (completion{2, -int32(syscall.ECANCELED)}) {
			t.Fatalf("completions %v; want the cancel's 0, then the receive's ECANCELED", got)
		}
		break
	}
	r.Completions(func(user uint64, res int32, _ uint32) { t.Errorf("extra completion %d: %d", user, res) })
}

// Cancelling a send that waits, and the receive linked after it, ends the
// chain with one completion, the send's (the receive had not started). A
// cancellation may miss its target as it moves between states (-ENOENT);
// cancelled again, as the proxy does, it is found.
func TestCancelWaitingLinkedSend(t *testing.T) {
	r := newRing(t, 16)
	blockedChain(t, r)
	var ends []completion
	for i := 0; len(ends) == 0; i++ {
		if i == 100 {
			t.Fatal("100 cancellations and the chain has not ended")
		}
		must(t, r.PrepCancel(SkipSuccess, 1, 3))
		must(t, r.PrepCancel(SkipSuccess, 2, 4))
		must(t, r.EnterTimeout(1, 1e9))
		r.Completions(func(user uint64, res int32, _ uint32) {
			if user <= 2 {
				ends = append(ends, completion{user, res})
			}
		})
	}
	must(t, r.EnterTimeout(1, 50e6))
	r.Completions(func(user uint64, res int32, _ uint32) {
		if user <= 2 {
			ends = append(ends, completion{user, res})
		}
	})
	// The send's, or the receive's if the send found room after all (it
	// completes silently, and the receive starts): one, never both.
	if len(ends) != 1 || ends[0].res != -int32(syscall.ECANCELED) {
		t.Fatalf("completions %v; want one ECANCELED, the send's or the receive's", ends)
	}
}
