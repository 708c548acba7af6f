package rewrite

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/pgwarden/pgwarden/pgerr"
)

// What rewrites may use, per statement and all together.
//
// Every pass over a statement is linear in its size, but the size is the
// client's: a statement of max_message_bytes holds about two million
// constants, costs seconds of CPU and, at its peak, up to about 35 times its
// size in memory (the C parser's tree and protobuf; rewrite.go gives each
// phase's trees back before the next builds its own).
// A Gate, one per process and shared by every Rewriter (across warehouses
// and policy reloads), keeps one tenant from taking every core or all the
// memory: a rewrite first takes its statement's bytes from a memory budget
// (waiting, for at most MemoryWait, while others hold it), then one of
// Concurrency slots. Statements under smallStatement bytes take no memory:
// the slots bound them already, and they must not queue behind a large one
// (the budget is first come, first served). Inside, a meter counts the work and stops the rewrite
// when its context ends (the client cancelled or left), its time budget
// runs out or its work budget is spent. Only the cache's answers pass no
// gate: the exact-text hit, a map lookup, and the template hit of a
// statement of at most hitBytes (rewrite.go), a scan and a copy of a few
// microseconds; a longer statement takes a slot for its template hit too.

// Limits configures a Gate. Zero fields take the defaults below.
type Limits struct {
	// Concurrency is how many statements are rewritten at once; the rest
	// wait for a slot. 0 means GOMAXPROCS.
	Concurrency int
	// MemoryBytes bounds the bytes of statement text being rewritten at
	// once, all sessions together. A statement longer than this alone is
	// refused with 53200. 0 means DefaultMemoryBytes. A rewrite's peak
	// memory is about 6 (one long string) to 35 (an IN list of numbers)
	// times its statement's length.
	MemoryBytes int64
	// MemoryWait is how long a statement waits for MemoryBytes held by
	// others before it is refused with 53200. 0 means DefaultMemoryWait.
	MemoryWait time.Duration
	// Timeout is a statement's rewrite budget in time, its waits for
	// memory and a slot included; past it the rewrite answers 54000. 0
	// means DefaultTimeout.
	Timeout time.Duration
	// MaxWork is a statement's rewrite budget in work units (a node walked,
	// a constant or token handled, about a microsecond each); past it the
	// rewrite answers 54000. 0 means no budget beyond Timeout.
	MaxWork int64
}

// Defaults of Limits.
const (
	DefaultMemoryBytes = 16 << 20 // one statement of the proxy's largest
	DefaultMemoryWait  = 5 * time.Second
	DefaultTimeout     = 10 * time.Second
)

// Gate bounds the rewrites of a process; see Limits. Safe for concurrent
// use.
type Gate struct {
	lim Limits
	mem *semaphore.Weighted
	cpu *semaphore.Weighted

	running atomic.Int64
	waiting atomic.Int64
	held    atomic.Int64
	work    atomic.Int64
}

// NewGate returns a Gate with l's limits, zero fields defaulted.
func NewGate(l Limits) (*Gate, error) {
	if l.Concurrency < 0 || l.MemoryBytes < 0 || l.MemoryWait < 0 || l.Timeout < 0 || l.MaxWork < 0 {
		return nil, errors.New("rewrite: negative limit")
	}
	if l.Concurrency == 0 {
		l.Concurrency = runtime.GOMAXPROCS(0)
	}
	if l.MemoryBytes == 0 {
		l.MemoryBytes = DefaultMemoryBytes
	}
	if l.MemoryWait == 0 {
		l.MemoryWait = DefaultMemoryWait
	}
	if l.Timeout == 0 {
		l.Timeout = DefaultTimeout
	}
	return &Gate{lim: l, mem: semaphore.NewWeighted(l.MemoryBytes), cpu: semaphore.NewWeighted(int64(l.Concurrency))}, nil
}

// Limits returns the gate's limits, defaults applied.
func (g *Gate) Limits() Limits { return g.lim }

// GateStats is a snapshot of a Gate.
type GateStats struct {
	Running     int64 // statements being rewritten
	Waiting     int64 // statements waiting for memory or a slot
	MemoryBytes int64 // statement bytes held by both
	// Work is the work units spent by every rewrite so far (counted every
	// few thousand units, and when a rewrite ends).
	Work int64
}

// Stats returns the gate's counters now.
func (g *Gate) Stats() GateStats {
	return GateStats{Running: g.running.Load(), Waiting: g.waiting.Load(), MemoryBytes: g.held.Load(), Work: g.work.Load()}
}

// enter waits for size bytes of memory and a slot, then returns the meter
// of the rewrite; leave ends it and gives both back.
func (g *Gate) enter(ctx context.Context, size int) (*meter, *pgerr.Error) {
	m := &meter{ctx: ctx, gate: g, deadline: time.Now().Add(g.lim.Timeout), max: g.lim.MaxWork}
	m.setNext()
	n := int64(size)
	if n > g.lim.MemoryBytes {
		return nil, pgerr.New(pgerr.OutOfMemory, "out of memory: statement of %d bytes exceeds the rewrite memory limit of %d bytes", n, g.lim.MemoryBytes).
			WithHint("send a shorter statement, or raise proxy.rewrite_memory_bytes")
	}
	if n < smallStatement {
		n = 0
	}
	if n > 0 && !g.mem.TryAcquire(n) {
		if err := g.wait(ctx, func(ctx context.Context) error { return g.mem.Acquire(ctx, n) }, g.lim.MemoryWait, errMemoryWait(g.lim.MemoryWait)); err != nil {
			return nil, err
		}
	}
	g.held.Add(n)
	if !g.cpu.TryAcquire(1) {
		if err := g.wait(ctx, func(ctx context.Context) error { return g.cpu.Acquire(ctx, 1) }, time.Until(m.deadline), errTimeout(g.lim.Timeout)); err != nil {
			g.releaseMemory(n)
			return nil, err
		}
	}
	g.running.Add(1)
	m.held = n
	return m, nil
}

// leave ends the rewrite of m, which enter returned.
func (g *Gate) leave(m *meter) {
	m.flush()
	g.running.Add(-1)
	g.cpu.Release(1)
	g.releaseMemory(m.held)
}

func (g *Gate) releaseMemory(n int64) {
	if n > 0 {
		g.held.Add(-n)
		g.mem.Release(n)
	}
}

// smallStatement is the length under which a statement takes no memory
// from the budget.
const smallStatement = 64 << 10

// wait runs acquire for at most d; ctx ending first is a cancellation,
// d running out is late.
func (g *Gate) wait(ctx context.Context, acquire func(context.Context) error, d time.Duration, late *pgerr.Error) *pgerr.Error {
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	wctx, cancel := context.WithTimeoutCause(ctx, d, late)
	defer cancel()
	if acquire(wctx) == nil {
		return nil
	}
	if ctx.Err() != nil {
		return canceled(ctx)
	}
	return late
}

func errMemoryWait(d time.Duration) *pgerr.Error {
	return pgerr.New(pgerr.OutOfMemory, "out of memory: waited %s for rewrite memory held by other statements", d).
		WithHint("retry later, or raise proxy.rewrite_memory_bytes")
}

func errTimeout(d time.Duration) *pgerr.Error {
	return pgerr.New(pgerr.ProgramLimitExceeded, "statement rewrite exceeded its time budget of %s", d).
		WithHint("send a smaller statement, or raise proxy.rewrite_timeout")
}

func errWork(max int64) *pgerr.Error {
	return pgerr.New(pgerr.ProgramLimitExceeded, "statement rewrite exceeded its budget of %d work units", max).
		WithHint("send a smaller statement")
}

// canceled is the error of a rewrite whose context ended: its cause when
// that is a *pgerr.Error (the proxy says why it cancels), a plain
// cancellation otherwise.
func canceled(ctx context.Context) *pgerr.Error {
	var pe *pgerr.Error
	if errors.As(context.Cause(ctx), &pe) {
		return pe
	}
	return pgerr.New(pgerr.QueryCanceled, "canceling statement rewrite: %s", reason(ctx.Err()))
}

func reason(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "deadline exceeded"
	}
	return "canceled"
}

// meter counts a rewrite's work and stops it (see stop). Not safe for
// concurrent use: one per rewrite.
type meter struct {
	ctx      context.Context
	gate     *Gate
	deadline time.Time
	max      int64 // 0: no work budget
	used     int64
	counted  int64 // used when last added to gate.work
	next     int64 // used at which to check again
	held     int64 // bytes of the gate's memory
	err      *pgerr.Error
}

// checkEvery is how many work units pass between looks at the context and
// the clock: a few microseconds of work, so a stop is prompt and the looks
// cost nothing measurable.
const checkEvery = 1 << 10

// stop spends n work units and reports whether the rewrite must stop, m.err
// saying why. A nil meter never stops.
func (m *meter) stop(n int) bool {
	if m == nil {
		return false
	}
	m.used += int64(n)
	if m.used < m.next {
		return false
	}
	return m.check()
}

// check looks at the context, the clock and the work budget now.
func (m *meter) check() bool {
	if m == nil {
		return false
	}
	if m.err != nil {
		return true
	}
	m.flush()
	m.setNext()
	switch {
	case m.ctx.Err() != nil:
		m.err = canceled(m.ctx)
	case m.max > 0 && m.used > m.max:
		m.err = errWork(m.max)
	case time.Now().After(m.deadline):
		m.err = errTimeout(m.gate.lim.Timeout)
	}
	return m.err != nil
}

func (m *meter) setNext() {
	m.next = m.used + checkEvery
	if m.max > 0 && m.next > m.max+1 {
		m.next = m.max + 1
	}
}

// flush adds the work not yet counted to the gate's.
func (m *meter) flush() {
	m.gate.work.Add(m.used - m.counted)
	m.counted = m.used
}
