package main

import (
	"syscall"
	"time"

	"github.com/pgwarden/pgwarden/internal/uring"
)

// uringRelay relays each pair with a receive always outstanding on both of
// its sockets: a completed receive is sent on to the peer, linked to the
// next receive on the same socket (so that the buffer is free again), and
// the send posts no completion when it succeeds. Relaying one request and
// its answer is then two io_uring_enter calls, each submitting a send and
// a receive and waiting for the next receive, where an epoll loop makes a
// wait, a read and a write for each half.
//
// The ring is set up without a single issuer or deferred task work, which
// need the loop on one locked thread: pgwarden's loop resumes coroutines
// that may have run on other threads, which the runtime refuses on a locked
// one. Measured on this 2-core VM both ways, the same (one client: 32.5 µs
// of CPU per transaction unlocked, 36.9 locked; eight: 23.6 and 24.3; 5
// rounds each, noisy). Taking buffers from a provided group rather than
// one per socket cost about as little (33.6 against 31.6 at one client,
// 26.8 against 26.4 at eight; PgBouncer 35.2 and 30.0 in the same run).
func uringRelay(listen, backend int) error {
	r, br, err := newRelayRing()
	if err != nil {
		return err // before listening: the bench sees it exit, not start
	}
	lfd, err := listenFD(listen, 0)
	if err != nil {
		return err
	}
	return relayRing(r, br, lfd, backend)
}

// recvGroup is the provided buffer group the relay's receives select.
const recvGroup = 1

// newRelayRing sets up the ring and its receive buffers: 1024 of 16 KiB,
// taken only when data arrives, so that a socket waiting for input holds
// none (as pgwarden's idle clients must not).
func newRelayRing() (*uring.Ring, *uring.BufRing, error) {
	r, err := uring.New(1024, 0)
	if err != nil {
		return nil, nil, err
	}
	br, err := r.RegisterBufRing(recvGroup, 1024, 16<<10)
	if err != nil {
		r.Close()
		return nil, nil, err
	}
	return r, br, nil
}

// relayRing relays the clients lfd accepts, forever, or returns the ring's
// error. A side gives the buffer its last receive took back at its next
// completion, by when the send linked before that receive is done with it.
func relayRing(r *uring.Ring, br *uring.BufRing, lfd, backend int) error {
	type side struct {
		fd, peer int
		last     int // the buffer its last receive took, -1 for none
		closed   bool
	}
	var starved []int // sides whose receive found the group empty
	// User values: 0 is the accept; otherwise a side's index+1 (a receive)
	// or, with the high bit, its failed send.
	var sides []*side
	const sendBit = 1 << 63
	recv := func(i int) error { return r.PrepRecvSelect(0, sides[i].fd, recvGroup, 0, uint64(i+1)) }
	giveBack := func(s *side) {
		if s.last >= 0 {
			br.Provide(uint16(s.last))
			s.last = -1
		}
	}
	// A receive armed on a socket holds it open past close(2); shutdown
	// ends it (its completion then finds the side closed).
	closeSide := func(i int) {
		for _, s := range []*side{sides[i], sides[sides[i].peer]} {
			if !s.closed {
				s.closed = true
				syscall.Shutdown(s.fd, syscall.SHUT_RDWR)
				syscall.Close(s.fd)
			}
		}
	}
	if err := r.Prep(uring.OpAccept, 0, lfd, nil, 0, 0); err != nil {
		return err
	}
	var yielded int64
	var perr error
	for perr == nil {
		// Waiting as pgwarden's loop waits (loop.wait): a wait the scheduler
		// sees, and a turn through it every 5 ms of the loop's own time.
		// Without the turns this floor cost 38-44 µs per transaction at one
		// client instead of 29-33, for the runtime's monitor taking the
		// processor back at every wait.
		if now := time.Now().UnixNano(); now-yielded > yieldEvery {
			yielded = now
			goyield()
		}
		if err := r.Enter(1); err != nil {
			return err
		}
		r.Completions(func(user uint64, res int32, flags uint32) {
			if perr != nil {
				return
			}
			switch {
			case user == 0:
				if perr = r.Prep(uring.OpAccept, 0, lfd, nil, 0, 0); perr != nil || res < 0 {
					return
				}
				cfd := int(res)
				sfd, err := dialBackend(backend)
				if err != nil {
					syscall.Close(cfd)
					return
				}
				syscall.SetsockoptInt(cfd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
				i := len(sides)
				sides = append(sides, &side{fd: cfd, peer: i + 1, last: -1}, &side{fd: sfd, peer: i, last: -1})
				if perr = recv(i); perr == nil {
					perr = recv(i + 1)
				}
			case user&sendBit != 0: // only a failed or short send posts one
				// The send is done with its buffer, and the receive linked
				// to it ended without a completion.
				i := int(user &^ sendBit)
				giveBack(sides[i])
				closeSide(i)
			default:
				i := int(user - 1)
				s := sides[i]
				giveBack(s)
				if flags&uring.CQEBuffer != 0 {
					s.last = int(flags >> 16)
				}
				if s.closed {
					giveBack(s)
					return
				}
				if res == -int32(syscall.ENOBUFS) {
					starved = append(starved, i)
					return
				}
				if res <= 0 {
					giveBack(s)
					closeSide(i)
					return
				}
				// The send (all of it: MSG_WAITALL has io_uring finish a
				// short one), then, linked, the next receive into the same
				// buffer. A send that fails posts its completion and ends
				// the receive, which posts none.
				if perr = r.Prep(uring.OpSend, uring.Link|uring.SkipSuccess, sides[s.peer].fd, br.Buf(uint16(s.last), int(res)), syscall.MSG_WAITALL|syscall.MSG_NOSIGNAL, sendBit|uint64(i)); perr == nil {
					perr = recv(i)
				}
			}
		})
		// Buffers given back this round serve the receives that found none.
		for len(starved) > 0 && perr == nil {
			i := starved[len(starved)-1]
			starved = starved[:len(starved)-1]
			if !sides[i].closed {
				perr = recv(i)
			}
		}
	}
	return perr
}
