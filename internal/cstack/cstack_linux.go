//go:build linux && cgo

package cstack

/*
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/syscall.h>

// A constructor runs before main, so before the Go runtime creates its
// first thread; the runtime's cgo thread start (runtime/cgo
// _cgo_sys_thread_start) takes glibc's default attributes, so its threads
// get this size too. It never shrinks a larger default.
__attribute__((constructor)) static void pgwarden_cstack_init(void) {
	pthread_attr_t a;
	size_t cur = 0;
	if (pthread_getattr_default_np(&a) != 0) {
		return;
	}
	if (pthread_attr_getstacksize(&a, &cur) == 0 && cur < (64u << 20)) {
		if (pthread_attr_setstacksize(&a, 64u << 20) == 0) {
			pthread_setattr_default_np(&a);
		}
	}
	pthread_attr_destroy(&a);
}

static size_t pgwarden_cstack_default(void) {
	pthread_attr_t a;
	size_t size = 0;
	if (pthread_getattr_default_np(&a) != 0) {
		return 0;
	}
	pthread_attr_getstacksize(&a, &size);
	pthread_attr_destroy(&a);
	return size;
}

static int pgwarden_cstack_main(void) {
	return syscall(SYS_gettid) == getpid();
}

static int pgwarden_cstack_bounds(uintptr_t *lo, uintptr_t *hi) {
	pthread_attr_t a;
	void *addr;
	size_t size;
	if (pgwarden_cstack_main()) {
		return -1; // the main thread's stack grows on demand: not ours to paint
	}
	if (pthread_getattr_np(pthread_self(), &a) != 0) {
		return -1;
	}
	pthread_attr_getstack(&a, &addr, &size);
	pthread_attr_destroy(&a);
	*lo = (uintptr_t)addr;
	*hi = (uintptr_t)addr + size;
	return 0;
}

#define PGWARDEN_PAINT 0x5aa5c33cf00fe11eULL

// paint fills at most max bytes of the unused stack below the caller with a
// pattern and returns its top, or 0. The Go runtime enters C from the same
// point of the thread's stack each time, so the next C call starts here.
static uintptr_t pgwarden_cstack_paint(size_t max, uintptr_t *plo) {
	uintptr_t lo, hi, top;
	volatile char here;
	if (pgwarden_cstack_bounds(&lo, &hi) != 0) {
		return 0;
	}
	top = ((uintptr_t)&here - 4096) & ~(uintptr_t)7;
	lo = (lo + 65536 + 7) & ~(uintptr_t)7; // clear of the guard page
	if (top <= lo) {
		return 0;
	}
	if (top - lo > max) {
		lo = top - max;
	}
	for (volatile uint64_t *p = (uint64_t *)lo; (uintptr_t)p < top; p++) {
		*p = PGWARDEN_PAINT;
	}
	*plo = lo;
	return top;
}

// used is how far below top the pattern was overwritten.
static size_t pgwarden_cstack_used(uintptr_t lo, uintptr_t top) {
	uint64_t *p = (uint64_t *)lo;
	while ((uintptr_t)p < top && *p == PGWARDEN_PAINT) {
		p++;
	}
	return top - (uintptr_t)p;
}
*/
import "C"

import "runtime"

// supported: this build sets and measures thread stacks.
const supported = true

// Default returns the stack size glibc gives new threads.
func Default() (int, bool) {
	n := int(C.pgwarden_cstack_default())
	return n, n > 0
}

// Current returns the stack size of a thread that the Go runtime created to
// run goroutines (not the main thread, whose stack is sized differently).
func Current() (n int, ok bool) {
	onWorker(func() {
		var lo, hi C.uintptr_t
		if C.pgwarden_cstack_bounds(&lo, &hi) == 0 {
			n, ok = int(hi-lo), true
		}
	})
	return n, ok
}

// Used runs f on a thread that the Go runtime created to run goroutines and
// returns how many bytes of that thread's C stack f's C calls reached,
// looking at most max bytes deep (a result close to max means "at least").
// Go's own work on the thread's system stack during f counts too, so it is
// an upper bound. For tests and measurement: painting the stack costs max
// bytes of writes.
func Used(max int, f func()) (n int, ok bool) {
	onWorker(func() {
		var lo C.uintptr_t
		top := C.pgwarden_cstack_paint(C.size_t(max), &lo)
		if top == 0 {
			return
		}
		f()
		n, ok = int(C.pgwarden_cstack_used(lo, top)), true
	})
	return n, ok
}

// onWorker runs f on a goroutine locked to a thread other than the main
// one. A goroutine that finds itself on the main thread keeps it locked
// while the next one starts, so that one runs elsewhere.
func onWorker(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if C.pgwarden_cstack_main() != 0 {
			onWorker(f)
			return
		}
		f()
	}()
	<-done
}
