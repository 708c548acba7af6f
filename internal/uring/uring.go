//go:build linux

// Package uring is a minimal io_uring instance driven with raw system
// calls: one submission and one completion queue mapped into the process,
// entries written in place, and an enter that submits what was prepared and
// waits for completions. It holds only what pgwarden's I/O measurements use
// (accept, send, receive, links and skipped completions); it is not a
// general binding.
//
// A Ring is not safe for concurrent use: one goroutine prepares, enters and
// reaps.
package uring

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// The system call numbers are the same on every architecture.
const (
	sysSetup = 425
	sysEnter = 426
)

// Operations (enum io_uring_op).
const (
	OpPollAdd     uint8 = 6
	OpAccept      uint8 = 13
	OpAsyncCancel uint8 = 14
	OpSend        uint8 = 26
	OpRecv        uint8 = 27
)

// Submission flags (IOSQE_*).
const (
	// Link makes the next entry start only once this one has completed
	// in full; a failure cancels the rest of the chain (-ECANCELED).
	Link uint8 = 1 << 2
	// SkipSuccess posts no completion when the operation succeeds.
	SkipSuccess uint8 = 1 << 6
)

// BufferSelect has a receive take a buffer from a group the ring was given
// (BufRing) when data arrives, rather than one named at submission: a
// socket with a receive armed and nothing to read holds no memory.
const BufferSelect uint8 = 1 << 5

// Completion flags (IORING_CQE_F_*).
const (
	// CQEBuffer says the completion used a provided buffer, whose id is
	// flags >> 16.
	CQEBuffer uint32 = 1 << 0
)

const (
	sysRegister      = 427
	registerPbufRing = 22

	enterGetEvents = 1 << 0
	enterExtArg    = 1 << 3
	featSingleMmap = 1 << 0
	offSQRing      = 0
	offSQEs        = 0x10000000
	sqeSize        = 64
	cqeSize        = 16
	paramsSize     = 120
	// Offsets in struct io_uring_params.
	pSQEntries, pCQEntries, pFlags, pFeatures = 0, 4, 8, 20
	pSQOff, pCQOff                            = 40, 80
)

// Ring is one io_uring instance.
type Ring struct {
	fd          int
	mem, sqes   []byte
	sqHead      *uint32 // the kernel's
	sqTail      *uint32 // ours, published at Enter
	sqMask      uint32
	cqHead      *uint32 // ours
	cqTail      *uint32 // the kernel's
	cqMask      uint32
	cqes        uint32 // offset of the completion array in mem
	entries     uint32
	tail        uint32 // the next entry to prepare
	unsubmitted uint32
	bufRings    []*BufRing
	// EnterTimeout's io_uring_getevents_arg and the timespec it points
	// to, here so that their addresses stay put.
	waitArg [3]uint64
	waitTS  [2]int64
}

// New sets up a ring of at least entries submission entries (a power of
// two; the completion queue is twice that) with the IORING_SETUP_* flags.
func New(entries, flags uint32) (*Ring, error) {
	var p [paramsSize]byte
	binary.LittleEndian.PutUint32(p[pFlags:], flags)
	fd, _, errno := syscall.Syscall(sysSetup, uintptr(entries), uintptr(unsafe.Pointer(&p[0])), 0)
	if errno != 0 {
		return nil, os.NewSyscallError("io_uring_setup", errno)
	}
	r := &Ring{fd: int(fd)}
	u32 := func(off int) uint32 { return binary.LittleEndian.Uint32(p[off:]) }
	if u32(pFeatures)&featSingleMmap == 0 {
		r.Close()
		return nil, fmt.Errorf("io_uring_setup: the kernel does not map both queues at once (IORING_FEAT_SINGLE_MMAP)")
	}
	sqEntries, cqEntries := u32(pSQEntries), u32(pCQEntries)
	// io_sqring_offsets: head, tail, ring_mask, ring_entries, flags,
	// dropped, array; io_cqring_offsets: head, tail, ring_mask,
	// ring_entries, overflow, cqes.
	sqSize := u32(pSQOff+24) + sqEntries*4
	cqSize := u32(pCQOff+20) + cqEntries*cqeSize
	var err error
	if r.mem, err = syscall.Mmap(r.fd, offSQRing, int(max(sqSize, cqSize)), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE); err != nil {
		r.Close()
		return nil, os.NewSyscallError("mmap", err)
	}
	if r.sqes, err = syscall.Mmap(r.fd, offSQEs, int(sqEntries*sqeSize), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE); err != nil {
		r.Close()
		return nil, os.NewSyscallError("mmap", err)
	}
	at := func(off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&r.mem[off])) }
	r.sqHead, r.sqTail, r.sqMask = at(u32(pSQOff)), at(u32(pSQOff+4)), *at(u32(pSQOff + 8))
	r.cqHead, r.cqTail, r.cqMask = at(u32(pCQOff)), at(u32(pCQOff+4)), *at(u32(pCQOff + 8))
	r.cqes = u32(pCQOff + 20)
	r.entries = sqEntries
	r.tail = atomic.LoadUint32(r.sqTail)
	// The indirection array maps slot i to entry i once and for all.
	array := u32(pSQOff + 24)
	for i := range sqEntries {
		*at(array + 4*i) = i
	}
	return r, nil
}

// Close unmaps the queues and closes the ring; operations still in flight
// are cancelled by the kernel.
func (r *Ring) Close() error {
	if r.sqes != nil {
		syscall.Munmap(r.sqes)
	}
	if r.mem != nil {
		syscall.Munmap(r.mem)
	}
	r.sqes, r.mem = nil, nil
	err := syscall.Close(r.fd) // unregisters the buffer rings
	for _, b := range r.bufRings {
		syscall.Munmap(b.ring)
	}
	r.bufRings = nil
	return err
}

// Prep prepares an operation on fd with buf (for accept, nil), the
// operation's own flags (a send's or receive's MSG_* flags) and user,
// which its completion carries. It is submitted at the next Enter; a full
// submission queue is submitted first.
//
// The kernel uses buf until the operation completes, so it must be heap
// memory the caller keeps until then: a slice on a goroutine's stack moves
// when the stack does, and one the compiler keeps on the stack (a small
// literal that does not escape) is reused by the next iteration.
func (r *Ring) Prep(op, flags uint8, fd int, buf []byte, opFlags uint32, user uint64) error {
	if err := r.Room(1); err != nil {
		return err
	}
	i := r.tail & r.sqMask
	e := r.sqes[i*sqeSize : (i+1)*sqeSize]
	clear(e)
	e[0], e[1] = op, flags
	binary.LittleEndian.PutUint32(e[4:], uint32(int32(fd)))
	if len(buf) > 0 {
		binary.LittleEndian.PutUint64(e[16:], uint64(uintptr(unsafe.Pointer(&buf[0]))))
		binary.LittleEndian.PutUint32(e[24:], uint32(len(buf)))
	}
	binary.LittleEndian.PutUint32(e[28:], opFlags)
	binary.LittleEndian.PutUint64(e[32:], user)
	r.tail++
	r.unsubmitted++
	return nil
}

// Room makes room for n entries in the submission queue, submitting what
// is there if it must: a chain of linked entries must be prepared whole
// (Room first), since one submitted without the rest is a chain that ends
// early.
func (r *Ring) Room(n uint32) error {
	for r.tail-atomic.LoadUint32(r.sqHead)+n > r.entries {
		if err := r.Enter(0); err != nil {
			return err
		}
	}
	return nil
}

// PrepRecvSelect prepares a receive on fd into a buffer of group, taken
// when data arrives; its completion's flags carry CQEBuffer and the id.
func (r *Ring) PrepRecvSelect(flags uint8, fd int, group uint16, opFlags uint32, user uint64) error {
	if err := r.Prep(OpRecv, flags|BufferSelect, fd, nil, opFlags, user); err != nil {
		return err
	}
	e := r.sqes[((r.tail-1)&r.sqMask)*sqeSize:]
	binary.LittleEndian.PutUint16(e[40:], group)
	return nil
}

// BufRing is a group of equal buffers provided to a ring
// (IORING_REGISTER_PBUF_RING): the kernel takes one for each receive that
// selects the group, and the program gives it back (Provide) when done
// with its bytes.
type BufRing struct {
	ring []byte // the io_uring_buf entries, shared with the kernel
	bufs []byte // the buffers, back to back
	size int
	mask uint16
	tail uint16 // the kernel's copy is entry 0's resv field (publish)
}

// RegisterBufRing gives r a group of n buffers of size bytes each (n a
// power of two up to 32768), all provided.
func (r *Ring) RegisterBufRing(group uint16, n uint16, size int) (*BufRing, error) {
	if n == 0 || n&(n-1) != 0 || n > 1<<15 {
		return nil, fmt.Errorf("uring: %d buffers: want a power of two up to 32768", n)
	}
	mem, err := syscall.Mmap(-1, 0, int(n)*16, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	var reg [40]byte // io_uring_buf_reg: ring_addr, ring_entries, bgid, flags, resv[3]
	binary.LittleEndian.PutUint64(reg[0:], uint64(uintptr(unsafe.Pointer(&mem[0]))))
	binary.LittleEndian.PutUint32(reg[8:], uint32(n))
	binary.LittleEndian.PutUint16(reg[12:], group)
	if _, _, errno := syscall.Syscall6(sysRegister, uintptr(r.fd), registerPbufRing, uintptr(unsafe.Pointer(&reg[0])), 1, 0, 0); errno != 0 {
		syscall.Munmap(mem)
		return nil, os.NewSyscallError("io_uring_register", errno)
	}
	b := &BufRing{ring: mem, bufs: make([]byte, int(n)*size), size: size, mask: n - 1}
	for id := range n {
		b.add(id)
	}
	b.publish()
	r.bufRings = append(r.bufRings, b)
	return b, nil
}

// Buf is buffer id's first n bytes, as a completion reported them.
func (b *BufRing) Buf(id uint16, n int) []byte {
	off := int(id) * b.size
	return b.bufs[off : off+n : off+b.size]
}

// Provide gives buffer id back to the kernel.
func (b *BufRing) Provide(id uint16) {
	b.add(id)
	b.publish()
}

func (b *BufRing) add(id uint16) {
	e := b.ring[int(b.tail&b.mask)*16:]
	// io_uring_buf: addr, len, bid; resv (the tail, in entry 0) untouched.
	binary.LittleEndian.PutUint64(e[0:], uint64(uintptr(unsafe.Pointer(&b.bufs[int(id)*b.size]))))
	binary.LittleEndian.PutUint32(e[8:], uint32(b.size))
	binary.LittleEndian.PutUint16(e[12:], id)
	b.tail++
}

// publish stores the tail, after the entries it covers. The tail is 16
// bits (entry 0's resv) and Go has no 16-bit atomic store, so it is stored
// with the 32-bit word it shares with entry 0's bid, which only this side
// writes.
func (b *BufRing) publish() {
	w := (*uint32)(unsafe.Pointer(&b.ring[12]))
	atomic.StoreUint32(w, atomic.LoadUint32(w)&0xffff|uint32(b.tail)<<16)
}

// Enter submits what was prepared and waits until at least wait
// completions are there. A wait is an ordinary system call, which the
// scheduler sees (its processor goes to other goroutines, and a collection
// does not wait for it); a call that does not wait is raw.
func (r *Ring) Enter(wait uint32) error {
	call := syscall.RawSyscall6
	if wait > 0 {
		call = syscall.Syscall6
	}
	for {
		switch errno := r.enter(call, wait, enterGetEvents, 0, 0); errno {
		case 0:
			return nil
		case syscall.EINTR: // interrupted while waiting
			if wait == 0 {
				return nil
			}
		default:
			return os.NewSyscallError("io_uring_enter", errno)
		}
	}
}

// EnterTimeout is Enter with the wait limited to ns nanoseconds
// (IORING_ENTER_EXT_ARG): it returns nil when the time runs out first.
func (r *Ring) EnterTimeout(wait uint32, ns int64) error {
	if wait == 0 || ns < 0 {
		return r.Enter(wait)
	}
	r.waitTS = [2]int64{ns / 1e9, ns % 1e9}
	r.waitArg = [3]uint64{0, 0, uint64(uintptr(unsafe.Pointer(&r.waitTS)))}
	switch errno := r.enter(syscall.Syscall6, wait, enterGetEvents|enterExtArg, uintptr(unsafe.Pointer(&r.waitArg)), unsafe.Sizeof(r.waitArg)); errno {
	case 0, syscall.ETIME, syscall.EINTR:
		return nil
	default:
		return os.NewSyscallError("io_uring_enter", errno)
	}
}

// enter publishes what was prepared and makes one io_uring_enter with
// call; what the kernel took is off the queue, whatever the outcome.
func (r *Ring) enter(call func(trap, a1, a2, a3, a4, a5, a6 uintptr) (uintptr, uintptr, syscall.Errno), wait uint32, flags, arg, argSize uintptr) syscall.Errno {
	atomic.StoreUint32(r.sqTail, r.tail)
	n, _, errno := call(sysEnter, uintptr(r.fd), uintptr(r.unsubmitted), uintptr(wait), flags, arg, argSize)
	if errno == 0 {
		r.unsubmitted -= min(uint32(n), r.unsubmitted)
	} else {
		r.unsubmitted = r.tail - atomic.LoadUint32(r.sqHead)
	}
	return errno
}

// Unsubmitted reports whether entries were prepared since the last Enter.
// Each names its descriptor by number until it is submitted, so a
// descriptor must not be closed (and its number reused) in between.
func (r *Ring) Unsubmitted() bool { return r.unsubmitted > 0 }

// PrepPoll prepares a one-shot poll of fd for events (POLLIN and the
// like); its completion's result is the events seen.
func (r *Ring) PrepPoll(fd int, events uint32, user uint64) error {
	return r.Prep(OpPollAdd, 0, fd, nil, events, user)
}

// PrepCancel prepares the cancellation of the operation submitted with
// user value target. The operation completes with -ECANCELED if it was
// still waiting, as it would have otherwise if not; the cancellation's own
// completion (user) says which: 0, -ENOENT or -EALREADY.
func (r *Ring) PrepCancel(flags uint8, target, user uint64) error {
	if err := r.Prep(OpAsyncCancel, flags, -1, nil, 0, user); err != nil {
		return err
	}
	e := r.sqes[((r.tail-1)&r.sqMask)*sqeSize:]
	binary.LittleEndian.PutUint64(e[16:], target)
	return nil
}

// Completions calls f for each completion posted so far, in order, with
// its user value, result (a count, or a negated errno) and IORING_CQE_F_*
// flags, and consumes them. f may Prep.
func (r *Ring) Completions(f func(user uint64, res int32, flags uint32)) {
	head := *r.cqHead
	for tail := atomic.LoadUint32(r.cqTail); head != tail; head++ {
		c := r.mem[r.cqes+(head&r.cqMask)*cqeSize:]
		f(binary.LittleEndian.Uint64(c), int32(binary.LittleEndian.Uint32(c[8:])), binary.LittleEndian.Uint32(c[12:]))
	}
	atomic.StoreUint32(r.cqHead, head)
}
