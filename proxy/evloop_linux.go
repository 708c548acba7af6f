package proxy

// The event loop. With two goroutines' worth of machinery per client (the
// runtime's edge-triggered poller, a park and a wake-up for every wait),
// pgwarden spent on the kernel alone about what PgBouncer spends in all: a
// read that waits starts with a read that returns EAGAIN, and each wake-up
// is a scheduler round. Here a session's message loop runs instead as a
// coroutine (iter.Pull) on one of a few loops, each a goroutine around a
// level-triggered epoll set driven with raw system calls: the coroutine
// parks on the loop until its socket is readable or writable, then reads
// once, and the loop resumes it directly, with no scheduler in between.
//
// What the loop serves: socket clients (over TLS or not) in transaction
// mode, and the warehouse connections they relay inline (inline.go). A
// session queued for a pooled connection naps on the loop (nap, rouse;
// pool.Parker). It leaves its loop (leaveLoop) before anything that
// could block it or that the loop does not serve: a dial, the relay
// goroutine, a throttle, a session store, a large rewrite. Its sockets then
// go back to the runtime's poller and it runs as before, on a goroutine of
// its own, until rejoinLoop. Everyone else who touches a loop's socket (the
// pool's checks, a watcher, Close, a deadline) either tells the loop
// (post) or waits in poll(2) (sockConn.pollWait): nothing outside a loop
// waits on it in a way the loop would have to serve, and a coroutine on
// the loop never blocks on what another coroutine must do.

import (
	"container/heap"
	"iter"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe" // and go:linkname
)

// evLoops is the server's loops, one per processor less one (at least one)
// so that the warehouse and the rest of the process keep a processor.
type evLoops struct {
	ls []*evLoop
	n  atomic.Uint32
}

func newEvLoops(n int, ring bool) (*evLoops, error) {
	if n == 0 {
		n = max(runtime.GOMAXPROCS(0)-1, 1)
	}
	g := &evLoops{}
	for range n {
		l, err := newEvLoop(ring)
		if err != nil {
			g.stop()
			return nil, err
		}
		g.ls = append(g.ls, l)
	}
	return g, nil
}

// pick returns the loop for a new session, in turn.
func (g *evLoops) pick() *evLoop { return g.ls[int(g.n.Add(1))%len(g.ls)] }

// stop ends the loops once their sessions have ended.
func (g *evLoops) stop() {
	if g == nil {
		return
	}
	for _, l := range g.ls {
		l.post(func() { l.stopped = true })
		<-l.done
	}
}

type evLoop struct {
	ep, efd  int
	mu       sync.Mutex
	inbox    []func() // guarded by mu
	spare    []func()
	sleeping atomic.Bool // blocked in epoll_wait: a post must write efd
	// running is the coroutine the loop runs now: a socket's owner waits
	// on the loop only from there (coro.onLoop).
	running atomic.Pointer[coro]
	done    chan struct{}

	socksMu sync.Mutex
	socks   map[int32]*sockConn // registered, by descriptor

	// The loop's alone (and of the coroutine it runs):
	stopped bool
	// now is the clock as the loop last woke (Unix nanoseconds): one
	// reading per round serves its timers, its next wait's timeout and the
	// deadlines its coroutines park with, late by that round's work at
	// most, so a deadline fires that much later at worst. clock is the
	// same reading, for its coroutines' accounting (clientConn.now).
	now    int64
	clock  time.Time
	timers timerHeap
	events []syscall.EpollEvent
	// yielded is when the loop last went through the scheduler (yieldEvery).
	yielded int64
	// rg is the loop's io_uring (ring_linux.go), nil when it waits in
	// epoll_wait; ringErr says why, when one was asked for.
	rg      *loopRing
	ringErr error
}

// loopSockState is what a loop keeps of a socket registered with it.
type loopSockState struct {
	// A warehouse socket stays registered with its loop while it is idle in
	// the pool, so that the loop's next session to take it (most often)
	// changes nothing; another loop, or a session off the loops, takes it
	// out of that loop's set first. regmu guards the registration.
	regmu    sync.Mutex
	l        *evLoop // registered with, nil when not
	fd       int32   // as registered
	events   uint32  // the epoll interest registered
	rco, wco *coro   // parked to read, to write (the owner's loop's)
	hup      *loopGone
	rt, wt   timerEnt // the read and write deadlines' timers
	ct       timerEnt // a cancellation's retry (ring_linux.go)
	ring     ringSockState
}

func (s *loopSockState) init(c *sockConn) {
	s.rt = timerEnt{s: c, read: true, idx: -1}
	s.wt = timerEnt{s: c, idx: -1}
	s.ct = timerEnt{s: c, idx: -1, cancel: true}
}

const (
	epollRead = syscall.EPOLLIN | syscall.EPOLLRDHUP
	epollGone = syscall.EPOLLRDHUP | syscall.EPOLLHUP | syscall.EPOLLERR
)

// newEvLoop starts a loop, with an io_uring when ring is set and the
// kernel allows one.
func newEvLoop(ring bool) (*evLoop, error) {
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	r, _, errno := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if errno != 0 {
		syscall.Close(ep)
		return nil, os.NewSyscallError("eventfd", errno)
	}
	l := &evLoop{ep: ep, efd: int(r), done: make(chan struct{}), socks: map[int32]*sockConn{}, events: make([]syscall.EpollEvent, 128)}
	l.tick()
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(l.efd)}
	if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, l.efd, &ev); err != nil {
		syscall.Close(ep)
		syscall.Close(l.efd)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	if ring {
		l.rg, l.ringErr = newLoopRing() // nil: epoll_wait it is
	}
	go l.run()
	return l, nil
}

// post runs f on the loop, soon.
func (l *evLoop) post(f func()) {
	l.mu.Lock()
	l.inbox = append(l.inbox, f)
	l.mu.Unlock()
	if l.sleeping.Load() {
		one := uint64(1)
		syscall.RawSyscall(syscall.SYS_WRITE, uintptr(l.efd), uintptr(unsafe.Pointer(&one)), 8)
	}
}

// start runs body as a coroutine on the loop.
func (l *evLoop) start(body func(co *coro)) {
	l.post(func() {
		co := &coro{l: l, nt: timerEnt{idx: -1}}
		co.nt.co = co
		co.rouseFn = func() { l.rouse(co) }
		co.rouseAny = func() { l.post(co.rouseFn) }
		co.next, _ = iter.Pull(func(yield func(struct{}) bool) {
			co.yield = yield
			body(co)
		})
		l.resume(co, nil)
	})
}

// coro is a session's message loop run as a coroutine on a loop.
type coro struct {
	l       *evLoop
	next    func() (struct{}, bool)
	yield   func(struct{}) bool
	res     error       // why the loop resumed it: nil, a timeout, a close
	leaving bool        // it yielded to leave the loop (leave)
	back    bool        // it yielded to go back to the loop (rejoin)
	owned   []*sockConn // the sockets it owns
	// napping: it waits on the loop for no socket (nap), until rouse or
	// its timer nt.
	napping bool
	nt      timerEnt
	// rouseFn rouses it on the loop; rouseAny from any goroutine, for
	// nothing if it no longer naps by the time the loop looks.
	rouseFn, rouseAny func()
}

// onLoop reports whether co runs on its loop now, which is also whether
// the caller is co: a coroutine's owned sockets see no other user while it
// runs there.
func (co *coro) onLoop() bool { return co.l.running.Load() == co }

// own makes c co's on the loop; false when it cannot.
func (co *coro) own(c *sockConn) bool {
	if !c.toLoop(co) {
		return false
	}
	for _, s := range co.owned {
		if s == c {
			return true
		}
	}
	co.owned = append(co.owned, c)
	return true
}

// disown lets c go, its timers and watch dropped, so that another session,
// on any loop or none, may take it; it stays in the loop's set until then.
// On the loop.
func (co *coro) disown(c *sockConn) {
	for i, s := range co.owned {
		if s == c {
			if co.l.rg != nil {
				if co.l.ringLetGo(co, c) {
					co.l.timers.remove(&c.ls.ct)
				} else {
					defer c.Close()
				}
			}
			co.owned = append(co.owned[:i], co.owned[i+1:]...)
			co.l.timers.remove(&c.ls.rt)
			co.l.timers.remove(&c.ls.wt)
			c.ls.hup = nil
			c.mmu.Lock()
			c.owner.Store(nil)
			c.mmu.Unlock()
			return
		}
	}
}

// leave moves co off the loop: its sockets are let go and it goes on as a
// goroutine of its own, where it may block as it likes, until rejoin.
func (co *coro) leave() {
	for len(co.owned) > 0 {
		co.disown(co.owned[len(co.owned)-1])
	}
	co.leaving = true
	co.yield(struct{}{})
}

// rejoin moves co, off the loop, back onto it; the sockets it owns (own)
// are the loop's again once it runs there.
func (co *coro) rejoin() {
	co.back = true
	co.yield(struct{}{})
}

// offLoop runs co after it left the loop, until it ends or asks to go back:
// the loop resumes it then, once this goroutine is done with it.
func (co *coro) offLoop() {
	for {
		if _, ok := co.next(); !ok {
			return
		}
		if co.back {
			co.back = false
			co.l.post(func() { co.l.resume(co, nil) })
			return
		}
	}
}

func (l *evLoop) resume(co *coro, res error) {
	co.res = res
	l.running.Store(co)
	_, ok := co.next()
	l.running.Store(nil)
	if !ok {
		for len(co.owned) > 0 { // the session closed them; a defence
			co.disown(co.owned[len(co.owned)-1])
		}
		return
	}
	if co.leaving {
		co.leaving = false
		go co.offLoop()
	}
}

// park waits on the loop until c is readable (read) or writable, its
// deadline passes or it closes. The caller is c's owner, on the loop.
func (l *evLoop) park(co *coro, c *sockConn, read bool) error {
	c.fdmu.RLock()
	fd := c.fd
	c.fdmu.RUnlock()
	if fd < 0 {
		return net.ErrClosed
	}
	want := uint32(epollRead)
	if !read {
		want = syscall.EPOLLOUT
	}
	if err := l.interest(c, fd, want); err != nil {
		return err
	}
	if err := l.announce(co, c, read); err != nil {
		l.unpark(c, read)
		return err
	}
	return l.sleep(co, c, read)
}

// announce makes co the waiter on c for read (or write) before it yields,
// then looks at c's deadline (its timer set) and whether c closed: a
// deadline set or a close after this reaches the loop (rearm, closeSock).
// It returns why co must not wait (the deadline passed, c closed), co
// still the waiter.
func (l *evLoop) announce(co *coro, c *sockConn, read bool) error {
	st := &c.ls
	dl, t := &c.rdl, &st.rt
	if read {
		st.rco = co
		c.rwait.Store(true)
	} else {
		st.wco = co
		c.wwait.Store(true)
		dl, t = &c.wdl, &st.wt
	}
	if ns := dl.Load(); ns != 0 {
		if l.now >= ns {
			return os.ErrDeadlineExceeded
		}
		l.timerAt(t, ns)
	}
	if c.closed.Load() {
		return net.ErrClosed
	}
	return nil
}

// sleep yields co, announced as c's waiter, until the loop resumes it.
func (l *evLoop) sleep(co *coro, c *sockConn, read bool) error {
	if !co.yield(struct{}{}) {
		l.unpark(c, read)
		return net.ErrClosed
	}
	return co.res
}

// unpark takes the waiter off c, returning it.
func (l *evLoop) unpark(c *sockConn, read bool) *coro {
	st := &c.ls
	var co *coro
	if read {
		co, st.rco = st.rco, nil
		c.rwait.Store(false)
	} else {
		co, st.wco = st.wco, nil
		c.wwait.Store(false)
	}
	return co
}

// wake resumes whoever is parked on c for read (or write) with res.
func (l *evLoop) wake(c *sockConn, read bool, res error) {
	if l.rg != nil && res != nil && l.ringCancel(c, read, res) {
		return // its owner resumes as the operation completes
	}
	if co := l.unpark(c, read); co != nil {
		l.resume(co, res)
	}
}

// nap parks co on its loop, on no socket, until rouse or until (Unix
// nanoseconds; 0 for no limit). The caller looks again at what it waits
// for: a rouse may be left over from an earlier nap.
func (l *evLoop) nap(co *coro, until int64) {
	co.napping = true
	if until != 0 {
		l.timerAt(&co.nt, until)
	}
	co.yield(struct{}{})
	co.napping = false
	l.timers.remove(&co.nt)
}

// rouse resumes co if it naps; on the loop (co.rouseAny from elsewhere).
func (l *evLoop) rouse(co *coro) {
	if co.napping {
		co.napping = false
		l.resume(co, nil)
	}
}

// interest registers c with l for events too, taking it from another
// loop's set first.
func (l *evLoop) interest(c *sockConn, fd int, events uint32) error {
	st := &c.ls
	st.regmu.Lock()
	defer st.regmu.Unlock()
	if st.l == l {
		if events |= st.events; events == st.events {
			return nil
		}
	}
	if st.l != nil && st.l != l {
		st.l.dropLocked(c)
	}
	ev := syscall.EpollEvent{Events: events, Fd: int32(fd)}
	if st.l == nil {
		if err := syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return os.NewSyscallError("epoll_ctl", err)
		}
		st.l, st.fd = l, int32(fd)
		l.socksMu.Lock()
		l.socks[st.fd] = c
		l.socksMu.Unlock()
	} else if err := syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_MOD, fd, &ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	st.events = events
	return nil
}

// dropLocked takes c out of l's set; c.ls.regmu is held.
func (l *evLoop) dropLocked(c *sockConn) {
	st := &c.ls
	c.fdmu.RLock()
	if c.fd >= 0 {
		syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_DEL, c.fd, nil)
	}
	c.fdmu.RUnlock()
	l.socksMu.Lock()
	if l.socks[st.fd] == c {
		delete(l.socks, st.fd)
	}
	l.socksMu.Unlock()
	st.l, st.events = nil, 0
}

// deregister takes c out of the set of whichever loop it is in.
func (c *sockConn) deregister() {
	st := &c.ls
	st.regmu.Lock()
	if st.l != nil {
		st.l.dropLocked(c)
	}
	st.regmu.Unlock()
}

// unregister takes c out of the loop's set and timers, with its watch.
func (l *evLoop) unregister(c *sockConn) {
	c.deregister()
	l.timers.remove(&c.ls.rt)
	l.timers.remove(&c.ls.wt)
	c.ls.hup = nil
}

// closeSock closes an owned socket: on the loop, which wakes its waiter.
// A socket that changed hands since the close was posted (a warehouse
// connection back in the pool and taken on another loop) goes to its
// owner's loop: only that loop touches its waiters and timers. A watch
// for the peer's hang-up fires (the socket is gone as far as anyone
// waiting on it can tell, as goneWatch has it), and an owner napping is
// roused to look again.
func (l *evLoop) closeSock(c *sockConn) {
	co := c.owner.Load()
	if co != nil && co.l != l {
		co.l.post(func() { co.l.closeSock(c) })
		return
	}
	hup := c.ls.hup
	if l.rg != nil {
		l.ringAbort(c, net.ErrClosed)
	}
	l.unregister(c)
	c.closeFD()
	l.wake(c, true, net.ErrClosed)
	l.wake(c, false, net.ErrClosed)
	if hup != nil {
		hup.fire()
	}
	if co != nil {
		l.rouse(co)
	}
}

// rearm looks again at c's deadlines for whoever is parked on it, if a
// coroutine of this loop still owns it (one that took it since reads its
// deadlines as it parks).
func (l *evLoop) rearm(c *sockConn) {
	if co := c.owner.Load(); co == nil || co.l != l {
		return
	}
	now := time.Now().UnixNano()
	l.deadline(&c.ls.rt, now)
	l.deadline(&c.ls.wt, now)
}

// deadline times out t's waiter if its deadline has passed, or sets t for
// the deadline; a waiter whose deadline went later simply waits on. A
// nap's timer rouses it.
func (l *evLoop) deadline(t *timerEnt, now int64) {
	if t.cancel {
		l.ringRecancel(t.s)
		return
	}
	if t.co != nil {
		l.rouse(t.co)
		return
	}
	c := t.s
	dl, co := &c.wdl, c.ls.wco
	if t.read {
		dl, co = &c.rdl, c.ls.rco
	}
	ns := dl.Load()
	if co == nil || ns == 0 {
		return
	}
	if now < ns {
		l.timerAt(t, ns)
		return
	}
	l.wake(c, t.read, os.ErrDeadlineExceeded)
}

// timerAt makes t fire by when (an earlier one already set stays: it
// fires, finds the deadline later and sets it again).
func (l *evLoop) timerAt(t *timerEnt, when int64) {
	if t.idx >= 0 {
		if t.when <= when {
			return
		}
		t.when = when
		heap.Fix(&l.timers, t.idx)
		return
	}
	t.when = when
	heap.Push(&l.timers, t)
}

// yieldEvery is how often a busy loop passes through the scheduler. Its
// coroutine switches and system calls never do, so the runtime sees one
// goroutine that has run for as long as the loop has had work: after 10 ms
// its monitor thread preempts it with a signal (while it runs) or takes its
// processor away (while it waits in epoll_pwait), the loop goes on on
// another thread, and the monitor, having found work, polls every 20 µs
// again: at one client about 1,700 wake-ups and 60 signals a second, some
// 5% of the proxy's CPU. A yield lets the monitor sleep (per 5 s at one
// client: nanosleep 4,186 → 489, tgkill 300 → 4). Every 5 ms that costs
// less than it saves; every 1–2 ms it did not.
const yieldEvery = 5 * int64(time.Millisecond)

// goyield is the runtime's own yield for a goroutine that will want its
// processor back at once: it requeues the caller on its processor's queue
// and schedules, as runtime.Gosched does through the global queue, but
// without waking an idle thread to look for work. Each Gosched woke one,
// which spun, found none (or took the loop to another thread) and went
// back to sleep: per 5 s at one client, futex 1,985 → 63, and 3–10% less
// proxy CPU per transaction at 1 client, up to 5% at 8, none at 64. The
// runtime keeps the symbol for linkname callers (go.dev/issue/67401).
//
//go:linkname goyield runtime.goyield
func goyield()

func (l *evLoop) run() {
	defer close(l.done)
	for !l.stopped {
		l.mu.Lock()
		in := l.inbox
		l.inbox = l.spare[:0]
		l.mu.Unlock()
		for i, f := range in {
			f()
			in[i] = nil
		}
		l.spare = in
		if l.stopped {
			break
		}
		if l.now-l.yielded > yieldEvery {
			l.yielded = l.now
			goyield()
		}
		if l.rg != nil {
			l.ringRound()
		} else {
			l.epollRound(true)
		}
		for len(l.timers) > 0 && l.timers[0].when <= l.now {
			t := heap.Pop(&l.timers).(*timerEnt)
			l.deadline(t, l.now)
		}
	}
	// Forget the sockets still registered (warehouse connections idle in a
	// pool): closing them later must not touch a descriptor number that
	// closing the epoll set frees for reuse.
	l.socksMu.Lock()
	socks := make([]*sockConn, 0, len(l.socks))
	for _, c := range l.socks {
		socks = append(socks, c)
	}
	l.socksMu.Unlock()
	for _, c := range socks { // regmu before socksMu, as dropLocked
		c.ls.regmu.Lock()
		if c.ls.l == l {
			l.dropLocked(c)
		}
		c.ls.regmu.Unlock()
	}
	l.rg.close()
	syscall.Close(l.ep)
	syscall.Close(l.efd)
}

// epollRound serves the epoll set's events: waiting for them (block), or
// those there now (with a ring, whose poll of the set said there are).
func (l *evLoop) epollRound(block bool) {
	var evs []syscall.EpollEvent
	if block {
		evs = l.wait()
		l.tick()
	} else {
		n, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(l.ep), uintptr(unsafe.Pointer(&l.events[0])), uintptr(len(l.events)), 0, 0, 0)
		if errno != 0 {
			return
		}
		evs = l.events[:n]
	}
	for _, ev := range evs {
		if int(ev.Fd) == l.efd {
			var buf [8]byte
			syscall.RawSyscall(syscall.SYS_READ, uintptr(l.efd), uintptr(unsafe.Pointer(&buf[0])), 8)
			continue
		}
		l.dispatch(ev.Fd, ev.Events)
	}
}

// tick reads the clock as the loop wakes.
func (l *evLoop) tick() {
	l.clock = time.Now()
	l.now = l.clock.UnixNano()
}

// dispatch serves one event of the socket registered as fd.
func (l *evLoop) dispatch(fd int32, events uint32) {
	l.socksMu.Lock()
	c := l.socks[fd]
	l.socksMu.Unlock()
	if c == nil {
		return
	}
	st := &c.ls
	st.regmu.Lock()
	if st.l != l { // taken by another loop since
		st.regmu.Unlock()
		return
	}
	var hup *loopGone
	if events&epollGone != 0 && st.hup != nil {
		hup, st.hup = st.hup, nil
	}
	readable := events&(epollRead|epollGone) != 0
	writable := events&(syscall.EPOLLOUT|syscall.EPOLLHUP|syscall.EPOLLERR) != 0
	rco, wco := st.rco, st.wco
	// Level-triggered: readiness that nobody waits for would come back at
	// every wait, so it is asked for no more until someone waits again
	// (park); a writer woken asks again only if it must wait again.
	var keep uint32
	if rco != nil {
		keep |= epollRead
	}
	if st.hup != nil {
		keep |= syscall.EPOLLRDHUP
	}
	if wco != nil && !writable {
		keep |= syscall.EPOLLOUT
	}
	if keep != st.events {
		if keep == 0 {
			l.dropLocked(c)
		} else {
			ev := syscall.EpollEvent{Events: keep, Fd: st.fd}
			c.fdmu.RLock()
			if c.fd >= 0 && syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_MOD, c.fd, &ev) == nil {
				st.events = keep
			}
			c.fdmu.RUnlock()
		}
	}
	st.regmu.Unlock()
	if hup != nil {
		hup.fire()
	}
	if readable && rco != nil && st.ring.rop == 0 {
		l.wake(c, true, nil)
	}
	if writable && wco != nil && st.wco == wco && st.ring.sop == 0 {
		l.wake(c, false, nil)
	}
}

// wait returns the next events, blocking through the runtime (so that the
// processor goes to other work) until an event, a post or the next timer.
// It does not look without blocking first: under load the blocking call
// returns at once too, and with one client that look found nothing nearly
// every time, a system call more per wait.
func (l *evLoop) wait() []syscall.EpollEvent {
	evs := uintptr(unsafe.Pointer(&l.events[0]))
	for {
		timeout := l.timeout()
		if timeout != 0 {
			l.sleeping.Store(true)
			l.mu.Lock()
			posted := len(l.inbox) > 0
			l.mu.Unlock()
			if posted {
				timeout = 0
			}
		}
		var n uintptr
		var errno syscall.Errno
		if timeout == 0 {
			n, _, errno = syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(l.ep), evs, uintptr(len(l.events)), 0, 0, 0)
		} else {
			n, _, errno = syscall.Syscall6(syscall.SYS_EPOLL_PWAIT, uintptr(l.ep), evs, uintptr(len(l.events)), uintptr(timeout), 0, 0)
		}
		l.sleeping.Store(false)
		if errno == 0 {
			return l.events[:n]
		}
		if errno != syscall.EINTR {
			goyield()
		}
	}
}

// timeout is epoll_wait's until the next timer: -1 for none, in
// milliseconds rounded up.
func (l *evLoop) timeout() int {
	if len(l.timers) == 0 {
		return -1
	}
	left := l.timers[0].when - l.now
	if left <= 0 {
		return 0
	}
	return int(min((left+int64(time.Millisecond)-1)/int64(time.Millisecond), 1<<30))
}

// loopGone watches an owned client socket for its peer's hang-up, the
// loop's form of goneWatch (waitwatch.go).
type loopGone struct {
	fire    func() // on the loop, once, when the peer is seen gone
	stopped atomic.Bool
	saw     atomic.Bool
}

// watchHup watches c for w; c's owner is parked on another socket or runs.
func (l *evLoop) watchHup(c *sockConn, w *loopGone) {
	if w.stopped.Load() || c.owner.Load() == nil {
		return
	}
	c.fdmu.RLock()
	closed := c.fd < 0
	if !closed && l.interest(c, c.fd, syscall.EPOLLRDHUP) == nil {
		c.ls.hup = w
	}
	c.fdmu.RUnlock()
	if closed { // closed under us: gone, as closeSock has it
		w.fire()
	}
}

// timerEnt is a socket's read or write deadline in a loop's heap, or a
// nap's end (co).
type timerEnt struct {
	when int64
	idx  int // in the heap, -1 when not
	s    *sockConn
	read bool
	co   *coro
	// cancel: the retry of a cancellation that missed (ringRecancel).
	cancel bool
}

type timerHeap []*timerEnt

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].when < h[j].when }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(*timerEnt)
	t.idx = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.idx = -1
	return t
}

func (h *timerHeap) remove(t *timerEnt) {
	if t.idx >= 0 {
		heap.Remove(h, t.idx)
	}
}
