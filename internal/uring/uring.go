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
	OpAccept uint8 = 13
	OpSend   uint8 = 26
	OpRecv   uint8 = 27
)

// Submission flags (IOSQE_*).
const (
	// Link makes the next entry start only once this one has completed
	// in full; a failure cancels the rest of the chain (-ECANCELED).
	Link uint8 = 1 << 2
	// SkipSuccess posts no completion when the operation succeeds.
	SkipSuccess uint8 = 1 << 6
)

const (
	enterGetEvents = 1 << 0
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
	return syscall.Close(r.fd)
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
	for r.tail-atomic.LoadUint32(r.sqHead) >= r.entries {
		if err := r.Enter(0); err != nil {
			return err
		}
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

// Enter submits what was prepared and waits until at least wait
// completions are there. A wait is an ordinary system call, which the
// scheduler sees (its processor goes to other goroutines, and a collection
// does not wait for it); a call that does not wait is raw.
func (r *Ring) Enter(wait uint32) error {
	atomic.StoreUint32(r.sqTail, r.tail)
	call := syscall.RawSyscall6
	if wait > 0 {
		call = syscall.Syscall6
	}
	for {
		n, _, errno := call(sysEnter, uintptr(r.fd), uintptr(r.unsubmitted), uintptr(wait), enterGetEvents, 0, 0)
		switch errno {
		case 0:
			r.unsubmitted -= min(uint32(n), r.unsubmitted)
			return nil
		case syscall.EINTR:
			// Interrupted while waiting: what it took is off the queue.
			r.unsubmitted = r.tail - atomic.LoadUint32(r.sqHead)
			if wait == 0 {
				return nil
			}
		default:
			r.unsubmitted = r.tail - atomic.LoadUint32(r.sqHead)
			return os.NewSyscallError("io_uring_enter", errno)
		}
	}
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
