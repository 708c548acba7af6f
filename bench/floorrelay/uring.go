package main

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// An io_uring ring driven with raw system calls (its system call numbers
// are the same on every architecture).
const (
	sysIOUringSetup = 425
	sysIOUringEnter = 426

	opAccept = 13
	opSend   = 26
	opRecv   = 27

	sqeIOLink         = 1 << 2
	sqeCQESkipSuccess = 1 << 6
	enterGetEvents    = 1 << 0
	setupSingleIssuer = 1 << 12
	setupDeferTaskrun = 1 << 13
	offSQRing         = 0
	offSQEs           = 0x10000000
	featSingleMmap    = 1 << 0
	sqeSize, cqeSize  = 64, 16
	paramsSize        = 120
)

// ring is an io_uring instance with its submission and completion queues
// mapped into this process (IORING_FEAT_SINGLE_MMAP: one mapping for both).
type ring struct {
	fd                 int
	sq, cq, sqes       []byte
	sqHead, sqTail     *uint32
	sqMask, sqArray    uint32
	cqHead, cqTail     *uint32
	cqMask, cqesOff    uint32
	pending            uint32 // SQEs written since the last enter
	localTail, entries uint32
}

func newRing(entries uint32, flags uint32) (*ring, error) {
	var p [paramsSize]byte
	binary.LittleEndian.PutUint32(p[8:], flags)
	fd, _, errno := syscall.Syscall(sysIOUringSetup, uintptr(entries), uintptr(unsafe.Pointer(&p[0])), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	u32 := func(off int) uint32 { return binary.LittleEndian.Uint32(p[off:]) }
	r := &ring{fd: int(fd)}
	sqEntries, cqEntries := u32(0), u32(4)
	if u32(20)&featSingleMmap == 0 {
		return nil, fmt.Errorf("io_uring without a single mmap")
	}
	// sq_off at 40: head, tail, ring_mask, ring_entries, flags, dropped, array
	// cq_off at 80: head, tail, ring_mask, ring_entries, overflow, cqes
	sqSize := u32(40+24) + sqEntries*4
	cqSize := u32(80+20) + cqEntries*cqeSize
	size := max(sqSize, cqSize)
	mem, err := syscall.Mmap(r.fd, offSQRing, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		return nil, err
	}
	r.sq, r.cq = mem, mem
	if r.sqes, err = syscall.Mmap(r.fd, offSQEs, int(sqEntries*sqeSize), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE); err != nil {
		return nil, err
	}
	r.sqHead = (*uint32)(unsafe.Pointer(&mem[u32(40)]))
	r.sqTail = (*uint32)(unsafe.Pointer(&mem[u32(44)]))
	r.sqMask = *(*uint32)(unsafe.Pointer(&mem[u32(48)]))
	r.sqArray = u32(64)
	r.cqHead = (*uint32)(unsafe.Pointer(&mem[u32(80)]))
	r.cqTail = (*uint32)(unsafe.Pointer(&mem[u32(84)]))
	r.cqMask = *(*uint32)(unsafe.Pointer(&mem[u32(88)]))
	r.cqesOff = u32(100)
	r.entries = sqEntries
	r.localTail = atomic.LoadUint32(r.sqTail)
	// The SQ array maps slot i to SQE i once and for all.
	for i := uint32(0); i < sqEntries; i++ {
		*(*uint32)(unsafe.Pointer(&mem[r.sqArray+4*i])) = i
	}
	return r, nil
}

// sqe returns the next submission entry, zeroed, flushing the ring first
// if it is full.
func (r *ring) sqe() []byte {
	for r.localTail-atomic.LoadUint32(r.sqHead) >= r.entries {
		r.enter(0)
	}
	i := r.localTail & r.sqMask
	r.localTail++
	r.pending++
	e := r.sqes[i*sqeSize : (i+1)*sqeSize]
	clear(e)
	return e
}

// lastSQE is the entry prep wrote last, for a field it does not set.
func (r *ring) lastSQE() []byte {
	i := (r.localTail - 1) & r.sqMask
	return r.sqes[i*sqeSize : (i+1)*sqeSize]
}

func (r *ring) prep(op uint8, flags uint8, fd int, buf []byte, user uint64) {
	e := r.sqe()
	e[0], e[1] = op, flags
	binary.LittleEndian.PutUint32(e[4:], uint32(int32(fd)))
	if len(buf) > 0 {
		binary.LittleEndian.PutUint64(e[16:], uint64(uintptr(unsafe.Pointer(&buf[0]))))
		binary.LittleEndian.PutUint32(e[24:], uint32(len(buf)))
	}
	binary.LittleEndian.PutUint64(e[32:], user)
}

// enter submits what was prepared and waits for at least wait completions.
// A wait is an ordinary system call, which the scheduler sees: in a raw one
// the runtime could not stop this goroutine for a collection, and the whole
// process would wait with it.
func (r *ring) enter(wait uint32) {
	atomic.StoreUint32(r.sqTail, r.localTail)
	call := syscall.RawSyscall6
	if wait > 0 {
		call = syscall.Syscall6
	}
	for {
		_, _, errno := call(sysIOUringEnter, uintptr(r.fd), uintptr(r.pending), uintptr(wait), enterGetEvents, 0, 0)
		if errno == 0 || errno != syscall.EINTR {
			r.pending = 0
			return
		}
	}
}

// completions calls f for each completion there is and consumes them.
func (r *ring) completions(f func(user uint64, res int32)) {
	head := atomic.LoadUint32(r.cqHead)
	tail := atomic.LoadUint32(r.cqTail)
	for ; head != tail; head++ {
		off := r.cqesOff + (head&r.cqMask)*cqeSize
		c := r.cq[off : off+cqeSize]
		f(binary.LittleEndian.Uint64(c), int32(binary.LittleEndian.Uint32(c[8:])))
	}
	atomic.StoreUint32(r.cqHead, head)
}

// uring relays each pair with a receive always outstanding on both of its
// sockets: a completed receive is sent on to the peer, linked to the next
// receive on the same socket (so that the buffer is free again), and the
// send posts no completion when it succeeds. A relay of one request and its
// answer is then two io_uring_enter calls, each submitting a send and a
// receive and waiting for the next receive, where an epoll loop makes a
// wait, a read and a write for each half.
func uring(listen, backend int) error {
	r, err := lockedRing()
	if err != nil {
		return err // before listening: the bench sees it exit, not start
	}
	lfd, err := listenFD(listen)
	if err != nil {
		return err
	}
	return r.relay(lfd, backend)
}

// lockedRing locks the calling goroutine to its thread and makes the ring
// that thread alone submits to and reaps (single issuer), whose
// completions' work runs only when it waits for them (deferred task work),
// not as interrupts of whatever the thread runs meanwhile.
func lockedRing() (*ring, error) {
	runtime.LockOSThread()
	return newRing(1024, setupSingleIssuer|setupDeferTaskrun)
}

func listenFD(port int) (int, error) {
	lfd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
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

// relay relays the clients lfd accepts, on the ring's thread, forever.
func (r *ring) relay(lfd, backend int) error {
	type side struct {
		fd, peer int
		buf      []byte
		closed   bool
	}
	// user data: 0 is the accept; otherwise a side's index+1 (a receive) or,
	// with the high bit, a failed send.
	var sides []*side
	const sendBit = 1 << 63
	recv := func(i int) { r.prep(opRecv, 0, sides[i].fd, sides[i].buf, uint64(i+1)) }
	// A receive armed on a socket holds it open past close(2); shutdown
	// ends it (its completion then finds the side closed). A side's buffer
	// stays with it for that late completion: this is a bench instrument,
	// run for a few hundred connections.
	closeSide := func(i int) {
		for _, s := range []*side{sides[i], sides[sides[i].peer]} {
			if !s.closed {
				s.closed = true
				syscall.Shutdown(s.fd, syscall.SHUT_RDWR)
				syscall.Close(s.fd)
			}
		}
	}
	r.prep(opAccept, 0, lfd, nil, 0)
	var yielded int64
	for {
		// Waiting as pgwarden's loop waits (loop.wait): a wait the scheduler
		// sees, and a turn through it every 5 ms of the loop's own time.
		// Without the turns this floor cost 38-44 µs per transaction at one
		// client instead of 29-33, for the runtime's monitor taking the
		// processor back at every wait.
		if now := time.Now().UnixNano(); now-yielded > yieldEvery {
			yielded = now
			goyield()
		}
		r.enter(1)
		r.completions(func(user uint64, res int32) {
			switch {
			case user == 0:
				r.prep(opAccept, 0, lfd, nil, 0)
				if res < 0 {
					return
				}
				cfd := int(res)
				sfd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
				if err == nil {
					err = syscall.Connect(sfd, &syscall.SockaddrInet4{Port: backend, Addr: [4]byte{127, 0, 0, 1}})
				}
				if err != nil {
					syscall.Close(cfd)
					return
				}
				for _, fd := range []int{cfd, sfd} {
					syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
				}
				i := len(sides)
				sides = append(sides, &side{fd: cfd, peer: i + 1, buf: make([]byte, 16<<10)}, &side{fd: sfd, peer: i, buf: make([]byte, 16<<10)})
				recv(i)
				recv(i + 1)
			case user&sendBit != 0: // only a failed or short send posts one
				closeSide(int(user &^ sendBit))
			default:
				i := int(user - 1)
				s := sides[i]
				if s.closed {
					return
				}
				if res <= 0 {
					closeSide(i)
					return
				}
				// The send (all of it: MSG_WAITALL has io_uring finish a
				// short one), then, linked, the next receive into the same
				// buffer. A send that fails posts a completion and cancels
				// the receive.
				r.prep(opSend, sqeIOLink|sqeCQESkipSuccess, sides[s.peer].fd, s.buf[:res], sendBit|uint64(i))
				binary.LittleEndian.PutUint32(r.lastSQE()[28:], syscall.MSG_WAITALL)
				recv(i)
			}
		})
	}
}
