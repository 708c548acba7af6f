// Package pool lends a warehouse's connections to the proxy's clients in
// transaction mode: one pool per warehouse, or per tenant database. It
// queues clients by tenant when it is saturated (fairq: each tenant's
// share and limits), dials with backoff while the warehouse restarts,
// checks a connection's health before it lends it, retires idle and old
// connections, and reports its state (Metrics, Stats).
//
// The client side of the protocol stays in the proxy, which holds a
// Backend while a client's transaction runs and gives it back (Release).
// The pool knows the proxy only through what New is given (Deps): how to
// dial, how to tell that an idle socket got something, and, for a client
// on an event loop, how to park it while it waits (Parker).
package pool

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/proxy/fairq"
)

// Deps are what a pool is given by the proxy that owns it.
type Deps struct {
	// Dial opens a warehouse connection for the pool (required).
	Dial func(ctx context.Context) (Conn, error)
	// Timeout bounds the pool's own round trips (health checks, settings
	// checks).
	Timeout time.Duration
	// Log gets the pool's warnings, with the warehouse as a field
	// (required).
	Log *zap.Logger
	// Metrics are the series the pool reports to (required).
	Metrics *Metrics
	// Stats, if not nil, receives the pool's state and its clients' waits.
	Stats Stats
	// Params names the ParameterStatus values kept of the first connection
	// (StartupParams), those the proxy greets its clients with.
	Params []string
	// SocketIdle, if not nil, reports whether nothing arrived on an idle
	// connection's socket (a FATAL from a restarting warehouse): a peek
	// without a round trip, which only the proxy's connections allow.
	SocketIdle func(Conn) bool
	// LetGo, if not nil, is called with each connection given back
	// (Release), before another client may take it: an event loop lets
	// go of its socket.
	LetGo func(*Backend)
}

// Pool lends a warehouse's connections to clients in transaction mode.
type Pool struct {
	warehouse string
	dialConn  func(ctx context.Context) (Conn, error)
	cfg       Config
	timeout   time.Duration // for internal round trips
	log       *zap.Logger
	m         *poolMetrics
	gauges    *TenantGauges
	stats     Stats
	params    []string // names of ParameterStatus values kept
	sockIdle  func(Conn) bool
	letGo     func(*Backend)

	mu    sync.Mutex
	idle  []*Backend // most recently used last
	open  int
	inUse int
	// sched queues the waiters, by tenant, and counts each tenant's
	// connections in use; called with mu held. A waiter's channel gets a
	// connection, or nil for a slot (open and inUse counted for it) in
	// which to dial one.
	sched *fairq.Scheduler[*Waiter]
	// waiters are reused (*Waiter): under saturation every checkout waits.
	waiters   sync.Pool
	paramVals map[string]string // ParameterStatus of the first connection
	failures  int               // consecutive dial failures, for backoff
	// lastDialErr is why the last dial failed, unless the caller's deadline
	// cut it; nil after a success.
	lastDialErr error
	closed      bool
	// validSettings: startup settings (name=value) the warehouse took
	// (CheckSettings), so that they are asked about once.
	validSettings map[string]string
	// shown is what this pool last set its gauges to, guarded by mu;
	// none at first, so that the first change sets all three.
	shown poolGauges
}

// New returns warehouse's pool with cfg, which has its defaults applied
// and is valid (Config.WithDefaults, Config.Validate). Its reaper runs
// once the owner starts Reap.
func New(warehouse string, cfg Config, deps Deps) *Pool {
	stats := deps.Stats
	if stats == nil {
		stats = noStats{}
	}
	sockIdle := deps.SocketIdle
	if sockIdle == nil {
		sockIdle = func(Conn) bool { return true }
	}
	letGo := deps.LetGo
	if letGo == nil {
		letGo = func(*Backend) {}
	}
	p := &Pool{warehouse: warehouse, dialConn: deps.Dial, cfg: cfg, timeout: deps.Timeout, log: deps.Log.With(zap.String("warehouse", warehouse)), m: deps.Metrics.forPool(warehouse, cfg.Tenants),
		sched: fairq.New[*Waiter](cfg.Tenants, nil), gauges: deps.Metrics.Gauges, stats: stats, params: deps.Params, sockIdle: sockIdle, letGo: letGo,
		shown: poolGauges{-1, -1, -1}}
	p.gauges.add(p)
	p.m.size.Set(float64(cfg.Size))
	stats.PoolAt(time.Now(), warehouse, cfg.Size, 0, 0, 0)
	return p
}

// errPoolTimeout is what a client waiting too long for a connection gets.
func (p *Pool) errPoolTimeout() *pgerr.Error {
	return pgerr.New(pgerr.TooManyConnections, "too many clients waiting for a warehouse connection").
		WithDetail("no connection of warehouse %s's pool of %d became free within %s", p.warehouse, p.cfg.Size, p.cfg.AcquireTimeout).
		WithHint("retry the transaction, or raise the warehouse's pool size")
}

// Acquire lends a connection to tenant ("" for the proxy's own round
// trips), waiting at most cfg.AcquireTimeout. A dial failure (the warehouse
// restarting) is retried with backoff within that time. watch, if not nil,
// watches the client while it waits in the queue: a client gone meanwhile
// leaves the queue with 57014 (errWaitAbandoned). The caller gives the
// connection back with Release.
func (p *Pool) Acquire(ctx context.Context, tenant string, watch Watch) (*Backend, error) {
	start := time.Now()
	if b := p.AcquireIdle(tenant, start); b != nil {
		return b, nil
	}
	return p.AcquireWaiting(ctx, tenant, watch, nil, start)
}

// AcquireIdle is Acquire's fast path, the common case under load, for a
// caller that has read the clock (now): a healthy idle connection lent at
// once, or nil when there is none or the tenant must queue. It arms no
// timer and reads no clock; a checkout that finds a connection idle does
// not wait, so its wait is observed as zero.
func (p *Pool) AcquireIdle(tenant string, now time.Time) *Backend {
	b := p.tryIdleAt(tenant, now)
	if b != nil {
		p.m.wait.Observe(0)
		p.m.tenantWait(tenant, 0, nil)
	}
	return b
}

// AcquireWaiting is Acquire after AcquireIdle found nothing: it queues or
// dials until start plus cfg.AcquireTimeout; pk, if not nil, parks a caller
// on an event loop while it queues.
func (p *Pool) AcquireWaiting(ctx context.Context, tenant string, watch Watch, pk Parker, start time.Time) (*Backend, error) {
	// No context.WithTimeout: a wait arms one timer for both its deadline
	// and its watch (await), and only a dial gets a context with the
	// deadline.
	b, err := p.get(ctx, tenant, watch, pk, start.Add(p.cfg.AcquireTimeout))
	end := time.Now()
	d := end.Sub(start)
	p.m.wait.Observe(d.Seconds())
	p.m.tenantWait(tenant, d, err)
	// The statistics count the waits of clients that found no idle
	// connection; the fast path above does not wait.
	p.stats.PoolWaitAt(end, p.warehouse, d)
	return b, err
}

// tryIdleAt lends a healthy idle connection if there is one and the
// tenant need not queue for it (under its share, none of its waiters
// ahead); nil otherwise, for get to do the rest. now is the clock, read
// already.
func (p *Pool) tryIdleAt(tenant string, now time.Time) *Backend {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil
		}
		// No Blocked first: lendIdleLocked's Start asks the same (one
		// scheduler call per checkout rather than two).
		b := p.lendIdleLocked(tenant, now)
		p.mu.Unlock()
		if b == nil {
			return nil
		}
		if p.healthy(b, now) {
			return b
		}
		p.Release(b, false)
	}
}

// lendIdleLocked takes an idle connection out for tenant, or returns nil
// (none idle, or the tenant must queue).
func (p *Pool) lendIdleLocked(tenant string, now time.Time) *Backend {
	if len(p.idle) == 0 {
		return nil
	}
	b := p.popIdleLocked(now)
	if b == nil {
		p.gaugesLocked(now)
		return nil
	}
	if !p.sched.Start(tenant) {
		p.idle = append(p.idle, b)
		return nil
	}
	b.tenant = tenant
	p.inUse++
	p.gaugesLocked(now)
	return b
}

// errTenantLimit is a refusal by one of a tenant's limits.
func errTenantLimit(le *fairq.LimitError) *pgerr.Error {
	e := pgerr.New(pgerr.TooManyConnections, "%s", le.Error())
	if le.Limit == "max_queued" {
		return e.WithDetail("the tenant's statements already wait for its share of the warehouse's connections").
			WithHint("retry when fewer of the tenant's statements are running")
	}
	return e
}

// get is Acquire's slow path: it queues, or dials, until deadline.
func (p *Pool) get(ctx context.Context, tenant string, watch Watch, pk Parker, deadline time.Time) (*Backend, error) {
	var lastErr error
	for {
		now := time.Now() // one reading for the lending and the gauges
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, pgerr.Shutdown()
		}
		if !p.sched.Blocked(tenant) {
			if b := p.lendIdleLocked(tenant, now); b != nil {
				p.mu.Unlock()
				if p.healthy(b, now) {
					return b, nil
				}
				p.Release(b, false)
				continue
			}
			if p.open < p.cfg.Size && p.sched.Start(tenant) {
				p.open++
				p.inUse++
				p.gaugesLocked(now)
				p.mu.Unlock()
				leaveToDial(pk)
				b, expired, err := p.dialSlotBy(ctx, tenant, deadline, lastErr == nil)
				if err == nil {
					return b, nil
				}
				lastErr = err
				if expired {
					return nil, err
				}
				continue
			}
		}
		w := p.waiter()
		w.rouse = nil
		if pk != nil && pk.OnLoop() {
			w.rouse = pk.Rouser()
		}
		k, err := p.sched.Push(tenant, w)
		if err != nil {
			p.mu.Unlock()
			p.waiters.Put(w)
			var le *fairq.LimitError
			if errors.As(err, &le) {
				p.m.refused(tenant, le.Limit)
				return nil, errTenantLimit(le)
			}
			return nil, err
		}
		p.gaugesLocked(now)
		p.mu.Unlock()
		var b *Backend
		var woken, abandoned bool
		if w.rouse != nil {
			b, woken, abandoned = w.awaitParked(ctx, pk, deadline)
		} else {
			b, woken, abandoned = w.await(ctx, watch, deadline)
		}
		handed := woken && !abandoned // in time, for a client still there
		if !woken {
			p.mu.Lock()
			removed := p.sched.Remove(k)
			p.gaugesLocked(time.Now())
			p.mu.Unlock()
			if !removed {
				b, woken = <-w.ch, true // handed something just now
			}
		}
		// Out of the queue, and its channel empty.
		p.waiters.Put(w)
		if handed {
			if b != nil {
				if p.healthy(b, time.Now()) { // at once when it was just returned
					return b, nil
				}
				p.Release(b, false)
				continue
			}
			// Handed a slot: dial in it.
			leaveToDial(pk)
			var expired bool
			if b, expired, err = p.dialSlotBy(ctx, tenant, deadline, lastErr == nil); err == nil {
				return b, nil
			}
			lastErr = err
			if expired {
				return nil, err
			}
			continue
		}
		if woken { // pass it on
			if b != nil {
				p.Release(b, true)
			} else {
				p.mu.Lock()
				p.freeSlotLocked(tenant)
				p.mu.Unlock()
			}
		}
		if abandoned {
			p.m.abandoned.Inc()
			return nil, errWaitAbandoned()
		}
		if lastErr != nil {
			return nil, lastErr
		}
		return nil, p.errPoolTimeout()
	}
}

// dialSlotBy is dialSlot bounded by deadline; expired reports that the
// wait is over (the deadline passed or ctx ended).
func (p *Pool) dialSlotBy(ctx context.Context, tenant string, deadline time.Time, first bool) (b *Backend, expired bool, err error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	b, err = p.dialSlot(ctx, tenant, first)
	return b, err != nil && ctx.Err() != nil, err
}

// dialSlot opens a connection for tenant in a slot counted for it (open,
// inUse and the tenant's share), backing off after failed dials; on failure
// the slot goes to the next waiter. first: the wait has not dialled yet.
func (p *Pool) dialSlot(ctx context.Context, tenant string, first bool) (*Backend, error) {
	p.mu.Lock()
	if p.closed {
		p.freeSlotLocked(tenant)
		p.mu.Unlock()
		return nil, pgerr.Shutdown()
	}
	backoff := time.Duration(0)
	if p.failures > 0 {
		backoff = min(25*time.Millisecond<<min(p.failures, 8), 2*time.Second)
	}
	// A wait's first dial backs off at most half of what is left of it,
	// so that every wait dials: with an acquire_timeout shorter than the
	// backoff, waits would otherwise all end in it, none would dial, and
	// the pool would never see the warehouse back.
	if dl, ok := ctx.Deadline(); ok && first {
		backoff = min(backoff, time.Until(dl)/2)
	}
	lastDial := p.lastDialErr
	p.mu.Unlock()
	if backoff > 0 {
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
	}
	if ctx.Err() != nil && lastDial != nil {
		// The wait ended in the backoff after failed dials: say why
		// they failed, not that a dial with no time left did. Not a
		// failure of its own: nothing was dialled.
		p.mu.Lock()
		p.freeSlotLocked(tenant)
		p.mu.Unlock()
		return nil, lastDial
	}
	b, err := p.dial(ctx)
	if err == nil {
		b.tenant = tenant
		return b, nil
	}
	p.mu.Lock()
	p.failures++
	p.freeSlotLocked(tenant)
	p.mu.Unlock()
	return nil, err
}

// freeSlotLocked gives up a slot counted for tenant that holds no
// connection, and hands it on.
func (p *Pool) freeSlotLocked(tenant string) {
	p.open--
	p.inUse--
	p.sched.Done(tenant)
	p.wakeLocked(nil)
	p.gaugesLocked(time.Now())
}

func (p *Pool) dial(ctx context.Context) (*Backend, error) {
	sc, err := p.dialConn(ctx)
	if err != nil {
		p.m.dialErrors.Inc()
		p.log.Warn("warehouse connection failed", zap.Error(err))
		if ctx.Err() == nil {
			p.mu.Lock()
			p.lastDialErr = err
			p.mu.Unlock()
		}
		return nil, err
	}
	p.mu.Lock()
	p.failures = 0
	p.lastDialErr = nil
	if p.paramVals == nil {
		p.paramVals = map[string]string{}
		for _, name := range p.params {
			if v := sc.ParameterStatus(name); v != "" {
				p.paramVals[name] = v
			}
		}
	}
	p.mu.Unlock()
	return NewBackend(sc, time.Now(), p.cfg.MaxPreparedStatements), nil
}

// popIdleLocked returns the most recently used idle connection that is not
// past its idle or lifetime limit, closing the ones that are.
func (p *Pool) popIdleLocked(now time.Time) *Backend {
	for len(p.idle) > 0 {
		b := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if now.Sub(b.lastUsed) > p.cfg.IdleTimeout || now.Sub(b.created) > p.cfg.MaxLifetime {
			p.open--
			go b.sc.Close()
			continue
		}
		return b
	}
	return nil
}

// peekAfter: a connection back in the pool for less than this is lent
// without the peek for a FATAL that the warehouse sent before closing it.
// Under load connections come back every few microseconds, and the peek is
// a system call per transaction; a connection that died within the last
// millisecond fails its next statement with 08006, as one that dies just
// after the peek does.
const peekAfter = time.Millisecond

// healthy checks a connection about to be lent: that nothing (a FATAL from
// a restarting warehouse, EOF) arrived while it was idle, unless it was
// idle for less than peekAfter, and with a round trip when it was idle for
// long.
func (p *Pool) healthy(b *Backend, now time.Time) bool {
	idle := now.Sub(b.lastUsed)
	if idle < peekAfter {
		return true
	}
	if !p.sockIdle(b.sc) {
		return false
	}
	if idle < p.cfg.HealthCheckAfter {
		return true
	}
	status, err := b.RoundTrip("", p.timeout)
	return err == nil && status == 'I'
}

// Release returns b; reuse=false closes it (broken or dirty).
func (p *Pool) Release(b *Backend, reuse bool) {
	p.letGo(b)
	now := time.Now()
	p.mu.Lock()
	p.inUse--
	p.sched.Done(b.tenant)
	b.tenant = ""
	if !reuse || p.closed || now.Sub(b.created) > p.cfg.MaxLifetime {
		p.open--
		p.wakeLocked(nil)
		p.gaugesLocked(now)
		p.mu.Unlock()
		b.sc.Close()
		return
	}
	b.lastUsed = now
	if p.sched.Queued() > 0 {
		p.inUse++
		p.wakeLocked(b)
		p.gaugesLocked(now)
		p.mu.Unlock()
		return
	}
	p.idle = append(p.idle, b)
	// Close connections idle past the limit (the oldest come first).
	for len(p.idle) > 1 && now.Sub(p.idle[0].lastUsed) > p.cfg.IdleTimeout {
		old := p.idle[0]
		p.idle = p.idle[1:]
		p.open--
		go old.sc.Close()
	}
	p.gaugesLocked(now)
	p.mu.Unlock()
}

// Reap closes idle connections past their idle or lifetime limit until
// done is closed, so that a quiet warehouse does not keep them open.
func (p *Pool) Reap(done <-chan struct{}) {
	every := min(max(min(p.cfg.IdleTimeout, p.cfg.MaxLifetime)/2, 100*time.Millisecond), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		now := time.Now()
		var old []*Backend
		p.mu.Lock()
		kept := p.idle[:0]
		for _, b := range p.idle {
			if now.Sub(b.lastUsed) > p.cfg.IdleTimeout || now.Sub(b.created) > p.cfg.MaxLifetime {
				old = append(old, b)
				p.open--
			} else {
				kept = append(kept, b)
			}
		}
		clear(p.idle[len(kept):])
		p.idle = kept
		p.gaugesLocked(now)
		p.mu.Unlock()
		for _, b := range old {
			b.sc.Close()
		}
	}
}

// wakeLocked hands b (counted in inUse), or with nil a free slot, to the
// waiter the scheduler picks; with none that may go, b becomes idle. A
// slot goes as an idle connection when there is one, else as room to dial
// (open and inUse counted for the waiter).
func (p *Pool) wakeLocked(b *Backend) {
	if b == nil && p.closed {
		return // waiters time out, or go on a connection's return
	}
	k, ok := p.sched.Next()
	if !ok {
		if b != nil {
			p.idle = append(p.idle, b)
			p.inUse--
		}
		return
	}
	if b == nil {
		if b = p.popIdleLocked(time.Now()); b == nil {
			p.open++ // callers freed a slot (open--) just before
		}
		p.inUse++
	}
	if b != nil {
		b.tenant = k.Tenant()
	}
	w := k.Value
	rouse := w.rouse // read before the hand-over, after which w is its owner's
	w.ch <- b
	if rouse != nil {
		rouse()
	}
}

// gaugesLocked reports the pool's state after a change at now (a clock
// reading the caller had, or takes for it).
func (p *Pool) gaugesLocked(now time.Time) {
	q := p.sched.Queued()
	// Only the gauges that changed: each is a cache line that the cores
	// checking connections out and in would otherwise pass around.
	if g := (poolGauges{p.inUse, len(p.idle), q}); g != p.shown {
		if g.inUse != p.shown.inUse {
			p.m.inUse.Set(float64(g.inUse))
		}
		if g.idle != p.shown.idle {
			p.m.idle.Set(float64(g.idle))
		}
		if g.waiting != p.shown.waiting {
			p.m.waiting.Set(float64(g.waiting))
		}
		p.shown = g
	}
	p.stats.PoolAt(now, p.warehouse, p.cfg.Size, p.inUse, len(p.idle), q)
}

// poolGauges are the values a pool's gauges show.
type poolGauges struct{ inUse, idle, waiting int }

// Scheduler is the pool's tenant scheduler (fairq): the tenants' shares
// and limits, which the proxy's sessions also read (a tenant's statement
// rate) and its tests watch (Queued, InUse).
func (p *Pool) Scheduler() *fairq.Scheduler[*Waiter] { return p.sched }

// Stat is a snapshot of a pool's connections.
type Stat struct {
	Open  int // dialled or being dialled
	InUse int // lent, or slots handed to a waiter to dial in
	Idle  int
}

// Stat reports the pool's connections now.
func (p *Pool) Stat() Stat {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stat{Open: p.open, InUse: p.inUse, Idle: len(p.idle)}
}

// IdleSince is when the least recently used idle connection was last
// used; false when none is idle. A proxy bounding connections across
// pools (one per tenant database) closes that of the pool idle longest.
func (p *Pool) IdleSince() (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) == 0 {
		return time.Time{}, false
	}
	return p.idle[0].lastUsed, true
}

// CloseOldestIdle closes p's least recently used idle connection.
func (p *Pool) CloseOldestIdle() bool {
	p.mu.Lock()
	if len(p.idle) == 0 {
		p.mu.Unlock()
		return false
	}
	b := p.idle[0]
	p.idle = p.idle[1:]
	p.open--
	p.gaugesLocked(time.Now())
	p.mu.Unlock()
	b.sc.Close()
	return true
}

// Close closes idle connections and makes lent ones close on return.
func (p *Pool) Close() {
	p.gauges.remove(p)
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.open -= len(idle)
	p.gaugesLocked(time.Now())
	p.mu.Unlock()
	for _, b := range idle {
		b.sc.Close()
	}
}
