package proxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/proxy/fairq"
)

// PoolMode says how clients share warehouse connections.
type PoolMode string

const (
	// PoolSession gives each client its own warehouse connection for its
	// whole session (SQL-level PREPARE, cursors WITH HOLD, ... all work).
	PoolSession PoolMode = "session"
	// PoolTransaction lends a pooled connection to a client for one
	// transaction: it is acquired at the first message that needs the
	// warehouse and returned at the ReadyForQuery 'I' that ends the
	// client's synced batch. The rewritten SQL carries the tenant as a
	// literal, so a connection has no tenant state to leak.
	PoolTransaction PoolMode = "transaction"
)

// Pool defaults, applied by PoolConfig.WithDefaults.
const (
	DefaultPoolMode             = PoolTransaction
	DefaultPoolSize             = 20
	DefaultPoolAcquireTimeout   = 5 * time.Second
	DefaultPoolIdleTimeout      = 10 * time.Minute
	DefaultPoolMaxLifetime      = time.Hour
	DefaultPoolHealthCheckAfter = 30 * time.Second
	// DefaultMaxPreparedStatements is PgBouncer's default: the rewritten
	// text carries the tenant, so without a cap a long-lived connection
	// would keep a plan for every tenant and statement it ever served.
	DefaultMaxPreparedStatements = 200
)

// PoolConfig configures a warehouse's connection pool (transaction mode; in
// session mode only Mode is used).
type PoolConfig struct {
	Mode PoolMode
	// Size caps the warehouse connections open at once.
	Size int
	// AcquireTimeout bounds a client's wait for a connection; it then gets
	// 53300 and may retry.
	AcquireTimeout time.Duration
	// IdleTimeout closes connections unused for this long.
	IdleTimeout time.Duration
	// MaxLifetime retires connections this old when they are returned.
	MaxLifetime time.Duration
	// HealthCheckAfter: a connection idle for longer is checked with a
	// round trip before it is lent.
	HealthCheckAfter time.Duration
	// MaxPreparedStatements caps the statements the proxy keeps prepared
	// on one warehouse connection (both modes); the least recently used is
	// closed to make room, and prepared again when a client next binds it.
	MaxPreparedStatements int
	// PlainSimpleQueries turns off running simple-protocol statements as
	// prepared statements (simpleprep.go; both modes): for warehouses whose
	// data makes the generic plans PostgreSQL settles on a poor choice.
	PlainSimpleQueries bool
	// Tenants is who goes next when the pool is saturated and each
	// tenant's share of it (fairq): policy fair (the default) or fifo,
	// limits for every tenant and overrides by tenant.
	Tenants fairq.Config
	// Statements are each tenant's limits on its statements (timeout,
	// result rows and bytes; tenantlimits.go), in both modes.
	Statements TenantStatementLimits
}

// WithDefaults returns c with zero fields set to their defaults.
func (c PoolConfig) WithDefaults() PoolConfig {
	if c.Mode == "" {
		c.Mode = DefaultPoolMode
	}
	if c.Size == 0 {
		c.Size = DefaultPoolSize
	}
	if c.AcquireTimeout == 0 {
		c.AcquireTimeout = DefaultPoolAcquireTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultPoolIdleTimeout
	}
	if c.MaxLifetime == 0 {
		c.MaxLifetime = DefaultPoolMaxLifetime
	}
	if c.HealthCheckAfter == 0 {
		c.HealthCheckAfter = DefaultPoolHealthCheckAfter
	}
	if c.MaxPreparedStatements == 0 {
		c.MaxPreparedStatements = DefaultMaxPreparedStatements
	}
	if c.Tenants.Policy == "" {
		c.Tenants.Policy = fairq.Fair
	}
	return c
}

// Validate reports invalid fields (after defaults); prefix names the section.
func (c PoolConfig) Validate(prefix string) error {
	var errs []error
	if c.Mode != PoolSession && c.Mode != PoolTransaction {
		errs = append(errs, fmt.Errorf("%s.mode: %q is not session or transaction", prefix, c.Mode))
	}
	if c.Size < 1 {
		errs = append(errs, fmt.Errorf("%s.size: must be at least 1", prefix))
	}
	if c.MaxPreparedStatements < 1 {
		errs = append(errs, fmt.Errorf("%s.max_prepared_statements: must be at least 1", prefix))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"acquire_timeout", c.AcquireTimeout}, {"idle_timeout", c.IdleTimeout}, {"max_lifetime", c.MaxLifetime}, {"health_check_after", c.HealthCheckAfter}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s.%s: must not be negative", prefix, d.name))
		}
	}
	if err := c.Tenants.Validate(prefix); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// backend is one pooled warehouse connection. Only the client holding it
// touches it, except prepared, which the holder's loop and relay share.
type backend struct {
	sc       ServerConn
	created  time.Time
	lastUsed time.Time
	// tenant is whom the pool lent b to (its share in the scheduler).
	tenant string

	prepMu sync.Mutex
	// prepared: proxy statement names prepared here, by last use (a
	// pointer, so that a use is one lookup of the name).
	prepared map[string]*uint64
	// confirmed is what the warehouse has confirmed (ParseComplete, less
	// CloseComplete): prepared is made from it again after messages were
	// skipped (prepDirty), when a Close and a later Parse of the same
	// name may both have been skipped.
	confirmed map[string]struct{}
	prepDirty bool
	prepTick  uint64
	// quietTick is prepTick when the warehouse had last answered all that
	// was sent: statements used since may have a Parse in flight.
	quietTick uint64
	maxPrep   int

	// settings is the SET script applied since the last RESET ALL;
	// settingsUnknown forces a RESET ALL before the next lending.
	settings        string
	settingsUnknown bool
	// rlsReset undoes the row security role and settings a client's
	// lending set here (rowsecurity.go); "" when none are set.
	rlsReset string
}

func newBackend(sc ServerConn, now time.Time, maxPrepared int) *backend {
	return &backend{sc: sc, created: now, lastUsed: now, prepared: map[string]*uint64{}, confirmed: map[string]struct{}{}, maxPrep: maxPrepared}
}

// markPrepared records a use of name and reports whether it is new here,
// in which case evict, if not "", is the least recently used statement
// that must be closed first to stay within the cap.
func (b *backend) markPrepared(name string) (isNew bool, evict string) {
	b.prepMu.Lock()
	defer b.prepMu.Unlock()
	b.prepTick++
	if t := b.prepared[name]; t != nil {
		*t = b.prepTick
		return false, ""
	}
	if b.maxPrep > 0 && len(b.prepared) >= b.maxPrep {
		// A scan, but only when a full connection prepares a new one.
		// Only a statement unused since the warehouse was last quiet may
		// go, not one the batch in flight binds; if none, the cap waits.
		oldest := b.quietTick + 1
		for n, t := range b.prepared {
			if *t < oldest {
				evict, oldest = n, *t
			}
		}
		if evict != "" {
			delete(b.prepared, evict)
		}
	}
	tick := b.prepTick
	b.prepared[name] = &tick
	return true, evict
}

// settle records that the warehouse has answered everything sent on b.
func (b *backend) settle() {
	b.prepMu.Lock()
	defer b.prepMu.Unlock()
	b.quietTick = b.prepTick
	if !b.prepDirty {
		return
	}
	b.prepDirty = false
	for n := range b.prepared {
		if _, ok := b.confirmed[n]; !ok {
			delete(b.prepared, n)
		}
	}
	for n := range b.confirmed {
		if _, ok := b.prepared[n]; !ok {
			b.prepared[n] = new(uint64)
		}
	}
}

// confirm records the warehouse's answer to a Parse (prepared) or a Close.
func (b *backend) confirm(name string, prepared bool) {
	b.prepMu.Lock()
	if prepared {
		b.confirmed[name] = struct{}{}
	} else {
		delete(b.confirmed, name)
	}
	b.prepMu.Unlock()
}

// skipped records that a Parse or Close of a proxy statement failed or was
// skipped: settle makes prepared the warehouse's confirmed set again.
func (b *backend) skipped() {
	b.prepMu.Lock()
	b.prepDirty = true
	b.prepMu.Unlock()
}

// unmarkPrepared forgets name as prepared: its Parse failed or was
// skipped (the warehouse never confirmed it), or it is being deallocated.
func (b *backend) unmarkPrepared(name string, deallocated bool) {
	b.prepMu.Lock()
	delete(b.prepared, name)
	if deallocated {
		delete(b.confirmed, name)
	}
	b.prepMu.Unlock()
}

func (b *backend) clearPrepared() {
	b.prepMu.Lock()
	clear(b.prepared)
	clear(b.confirmed)
	b.prepMu.Unlock()
}

// setReadDeadline interrupts or bounds reads when the connection supports it.
func (b *backend) setReadDeadline(t time.Time) bool {
	d, ok := b.sc.(interface{ SetReadDeadline(time.Time) error })
	if !ok {
		return false
	}
	return d.SetReadDeadline(t) == nil
}

// roundTrip sends a simple query (or a lone Sync when sql is "") and reads
// up to ReadyForQuery, swallowing the answers; it returns the first error
// and the final transaction status. The caller holds b exclusively and no
// relay reads it.
func (b *backend) roundTrip(sql string, timeout time.Duration) (byte, error) {
	var msg pgproto3.FrontendMessage = &pgproto3.Sync{}
	if sql != "" {
		msg = &pgproto3.Query{String: sql}
	}
	if err := b.sc.Send(msg); err != nil {
		return 0, err
	}
	if err := b.sc.Flush(); err != nil {
		return 0, err
	}
	if b.setReadDeadline(time.Now().Add(timeout)) {
		defer b.setReadDeadline(time.Time{})
	}
	var first error
	for {
		m, err := b.sc.Receive()
		if err != nil {
			return 0, err
		}
		switch m := m.(type) {
		case *pgproto3.ErrorResponse:
			if first == nil {
				first = pgerr.New(m.Code, "%s", m.Message)
			}
			if m.Severity == pgerr.SeverityFatal || m.Severity == "PANIC" {
				return 0, first
			}
		case *pgproto3.ReadyForQuery:
			return m.TxStatus, first
		}
	}
}

// query runs a simple query whose result is text columns and returns its
// rows. The caller holds b exclusively and no relay reads it.
func (b *backend) query(sql string, timeout time.Duration) ([][]string, error) {
	if err := b.sc.Send(&pgproto3.Query{String: sql}); err != nil {
		return nil, err
	}
	if err := b.sc.Flush(); err != nil {
		return nil, err
	}
	if b.setReadDeadline(time.Now().Add(timeout)) {
		defer b.setReadDeadline(time.Time{})
	}
	var rows [][]string
	var first error
	for {
		m, err := b.sc.Receive()
		if err != nil {
			return nil, err
		}
		switch m := m.(type) {
		case *pgproto3.DataRow:
			row := make([]string, len(m.Values))
			for i, v := range m.Values {
				row[i] = string(v)
			}
			rows = append(rows, row)
		case *pgproto3.ErrorResponse:
			if first == nil {
				first = pgerr.New(m.Code, "%s", m.Message)
			}
		case *pgproto3.ReadyForQuery:
			return rows, first
		}
	}
}

// pool lends a warehouse's connections to clients in transaction mode.
type pool struct {
	warehouse string
	up        Upstream
	cfg       PoolConfig
	timeout   time.Duration // for internal round trips
	log       *zap.Logger
	m         *poolMetrics
	gauges    *tenantGauges
	stats     StatsRecorder

	mu    sync.Mutex
	idle  []*backend // most recently used last
	open  int
	inUse int
	// sched queues the waiters, by tenant, and counts each tenant's
	// connections in use; called with mu held. A waiter's channel gets a
	// connection, or nil for a slot (open and inUse counted for it) in
	// which to dial one.
	sched *fairq.Scheduler[*waiter]
	// waiters are reused (*waiter): under saturation every checkout waits.
	waiters  sync.Pool
	params   map[string]string // ParameterStatus of the first connection
	failures int               // consecutive dial failures, for backoff
	// lastDialErr is why the last dial failed, unless the caller's deadline
	// cut it; nil after a success.
	lastDialErr error
	closed      bool
	// validSettings: startup settings (name=value) the warehouse took
	// (checkSettings), so that they are asked about once.
	validSettings map[string]string
	// descs holds what the warehouse answered to Describe of each proxy
	// statement (by proxy name), so that a client's Parse and Describe need
	// no connection when another client prepared the same statement.
	// descMu guards it, not mu: a Parse and a Describe read it, and should
	// not wait behind checkouts and returns.
	descMu sync.RWMutex
	descs  map[string]*stmtDesc
	// goodRoles: row security roles the service account was seen to take
	// on (checkRowSecurity).
	goodRoles map[string]bool
	// slabs are its clients' pending records (pendings.go).
	slabs *sync.Pool
	// shown is what this pool last set its gauges to, guarded by mu;
	// none at first, so that the first change sets all three.
	shown poolGauges
}

// stmtDesc is a statement's Describe answer, copied out of the
// connection's buffers and shared read-only between clients.
type stmtDesc struct {
	params *pgproto3.ParameterDescription
	result pgproto3.BackendMessage // *RowDescription or *NoData
	shape  string                  // resultShape(result)
}

// maxDescs bounds the pool's Describe cache (entries are a few hundred bytes).
const maxDescs = 4096

func (p *pool) desc(name string) *stmtDesc {
	p.descMu.RLock()
	defer p.descMu.RUnlock()
	return p.descs[name]
}

func (p *pool) putDesc(name string, d *stmtDesc) {
	p.descMu.Lock()
	defer p.descMu.Unlock()
	if p.descs == nil {
		p.descs = map[string]*stmtDesc{}
	}
	if _, ok := p.descs[name]; !ok && len(p.descs) >= maxDescs {
		for k := range p.descs { // evict one at random
			delete(p.descs, k)
			break
		}
	}
	p.descs[name] = d
}

// newStmtDesc copies a Describe's answers (pgproto3 reuses its messages).
func newStmtDesc(params *pgproto3.ParameterDescription, result pgproto3.BackendMessage) (*stmtDesc, error) {
	d := &stmtDesc{params: &pgproto3.ParameterDescription{ParameterOIDs: append([]uint32(nil), params.ParameterOIDs...)}, shape: resultShape(result)}
	switch m := result.(type) {
	case *pgproto3.NoData:
		d.result = &pgproto3.NoData{}
	case *pgproto3.RowDescription:
		buf, err := m.Encode(nil)
		if err != nil {
			return nil, err
		}
		rd := &pgproto3.RowDescription{}
		if err := rd.Decode(buf[5:]); err != nil { // our own buffer: the fields may point into it
			return nil, err
		}
		d.result = rd
	default:
		return nil, fmt.Errorf("unexpected describe answer %T", result)
	}
	return d, nil
}

func newPool(warehouse string, up Upstream, cfg PoolConfig, timeout time.Duration, log *zap.Logger, m *metrics, stats StatsRecorder) *pool {
	if stats == nil {
		stats = noStats{}
	}
	p := &pool{warehouse: warehouse, up: up, cfg: cfg, timeout: timeout, log: log.With(zap.String("warehouse", warehouse)), m: m.forPool(warehouse, cfg.Tenants),
		sched: fairq.New[*waiter](cfg.Tenants, nil), gauges: m.tenantGauges, stats: stats, slabs: newPendingSlabPool(),
		shown: poolGauges{-1, -1, -1}}
	p.gauges.add(p)
	p.m.size.Set(float64(cfg.Size))
	stats.PoolAt(time.Now(), warehouse, cfg.Size, 0, 0, 0)
	return p
}

// errPoolTimeout is what a client waiting too long for a connection gets.
func (p *pool) errPoolTimeout() *pgerr.Error {
	return pgerr.New(pgerr.TooManyConnections, "too many clients waiting for a warehouse connection").
		WithDetail("no connection of warehouse %s's pool of %d became free within %s", p.warehouse, p.cfg.Size, p.cfg.AcquireTimeout).
		WithHint("retry the transaction, or raise the warehouse's pool size")
}

// acquire lends a connection to tenant ("" for the proxy's own round
// trips), waiting at most cfg.AcquireTimeout. A dial failure (the warehouse
// restarting) is retried with backoff within that time. watch, if not nil,
// watches the client while it waits in the queue: a client gone meanwhile
// leaves the queue with errWaitAbandoned.
func (p *pool) acquire(ctx context.Context, tenant string, watch waitWatch) (*backend, error) {
	start := time.Now()
	if b := p.acquireIdle(tenant, start); b != nil {
		return b, nil
	}
	return p.acquireWaiting(ctx, tenant, watch, nil, start)
}

// acquireIdle is acquire's fast path, the common case under load, for a
// caller that has read the clock (now): a healthy idle connection lent at
// once, or nil when there is none or the tenant must queue. It arms no
// timer and reads no clock; a checkout that finds a connection idle does
// not wait, so its wait is observed as zero.
func (p *pool) acquireIdle(tenant string, now time.Time) *backend {
	b := p.tryIdleAt(tenant, now)
	if b != nil {
		p.m.wait.Observe(0)
		p.m.tenantWait(tenant, 0, nil)
	}
	return b
}

// acquireWaiting is acquire after acquireIdle found nothing: it queues or
// dials until start plus cfg.AcquireTimeout; pk, if not nil, parks a caller
// on an event loop while it queues.
func (p *pool) acquireWaiting(ctx context.Context, tenant string, watch waitWatch, pk parker, start time.Time) (*backend, error) {
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

// tryIdle lends a healthy idle connection if there is one and the tenant
// need not queue for it (under its share, none of its waiters ahead); nil
// otherwise, for get to do the rest.
func (p *pool) tryIdle(tenant string) *backend { return p.tryIdleAt(tenant, time.Now()) }

// tryIdleAt is tryIdle with the clock read already (now).
func (p *pool) tryIdleAt(tenant string, now time.Time) *backend {
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
		p.release(b, false)
	}
}

// lendIdleLocked takes an idle connection out for tenant, or returns nil
// (none idle, or the tenant must queue).
func (p *pool) lendIdleLocked(tenant string, now time.Time) *backend {
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

// get is acquire's slow path: it queues, or dials, until deadline.
func (p *pool) get(ctx context.Context, tenant string, watch waitWatch, pk parker, deadline time.Time) (*backend, error) {
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
				p.release(b, false)
				continue
			}
			if p.open < p.cfg.Size && p.sched.Start(tenant) {
				p.open++
				p.inUse++
				p.gaugesLocked(now)
				p.mu.Unlock()
				leaveToDial(pk)
				b, expired, err := p.dialSlotBy(ctx, tenant, deadline)
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
		if pk != nil && pk.onLoop() {
			w.rouse = pk.rouser()
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
		var b *backend
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
				p.release(b, false)
				continue
			}
			// Handed a slot: dial in it.
			leaveToDial(pk)
			var expired bool
			if b, expired, err = p.dialSlotBy(ctx, tenant, deadline); err == nil {
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
				p.release(b, true)
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
func (p *pool) dialSlotBy(ctx context.Context, tenant string, deadline time.Time) (b *backend, expired bool, err error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	b, err = p.dialSlot(ctx, tenant)
	return b, err != nil && ctx.Err() != nil, err
}

// dialSlot opens a connection for tenant in a slot counted for it (open,
// inUse and the tenant's share), backing off after failed dials; on failure
// the slot goes to the next waiter.
func (p *pool) dialSlot(ctx context.Context, tenant string) (*backend, error) {
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
	lastDial := p.lastDialErr
	p.mu.Unlock()
	if backoff > 0 {
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
	}
	var b *backend
	var err error
	if ctx.Err() != nil && lastDial != nil {
		// The wait ran out in the backoff after failed dials: say
		// why they failed, not that a dial with no time left did.
		err = lastDial
	} else if b, err = p.dial(ctx); err == nil {
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
func (p *pool) freeSlotLocked(tenant string) {
	p.open--
	p.inUse--
	p.sched.Done(tenant)
	p.wakeLocked(nil)
	p.gaugesLocked(time.Now())
}

// watchDelay is how long a client waits in the queue before it is watched
// for a disconnect: under load most waits are shorter than a transaction,
// and a watch costs a goroutine and polls of the client's socket.
const watchDelay = 50 * time.Millisecond

// waiter is a queued client's channel, on which it is handed a connection
// or a slot, and the timer of its wait. Its channel is empty whenever the
// pool has it (get puts it back once it is out of the queue and has taken
// what it was handed), and its timer stopped.
type waiter struct {
	ch    chan *backend
	t     *time.Timer
	rouse func() // a parked waiter's (parker.rouser), nil for a goroutine's
}

// A parker is how a session on an event loop waits in the queue: as its
// coroutine parked on the loop, roused through the loop by whoever hands
// it a connection. A goroutine blocked in the wait would block the loop,
// and the connection it waits for may come from a session on that loop.
type parker interface {
	// onLoop reports whether the caller runs on its loop (and must park).
	onLoop() bool
	// park parks until rouse, or until the deadline if it is not zero.
	park(deadline time.Time)
	// rouser returns what ends park, from any goroutine (one call too
	// many is harmless): one func for the session, allocated once.
	rouser() func()
	// rouseOnDone makes ctx's end rouse park. The session's wait context
	// lasts from one cancel to the next, so this registers once per
	// context, not once per wait (context.AfterFunc and its stop cost
	// about 2% of a transaction's CPU when every checkout waits).
	rouseOnDone(ctx context.Context)
	// watchGone is the client's waitWatch, which rouses park when the
	// client is seen gone.
	watchGone() (gone <-chan struct{}, stop func() bool)
	// leave takes the caller off its loop, before it blocks (a dial).
	leave()
}

// leaveToDial takes a parked caller off its loop before it dials: the dial
// blocks for as long as the warehouse takes.
func leaveToDial(pk parker) {
	if pk != nil && pk.onLoop() {
		pk.leave()
	}
}

func (p *pool) waiter() *waiter {
	if w, ok := p.waiters.Get().(*waiter); ok {
		return w
	}
	return &waiter{ch: make(chan *backend, 1)}
}

// await waits for a connection on w.ch until deadline. woken reports that
// the channel delivered (b, or nil for a free slot); abandoned that the
// client left meanwhile, which stop also reports when woken: it may have
// left just now. One timer serves the deadline and, first, the watch's
// delay.
func (w *waiter) await(ctx context.Context, watch waitWatch, deadline time.Time) (b *backend, woken, abandoned bool) {
	wait := time.Until(deadline)
	if watch != nil {
		wait = min(wait, watchDelay)
	}
	if w.t == nil {
		w.t = time.NewTimer(wait)
	} else {
		w.t.Reset(wait) // stopped: no stale tick (Go 1.23 timers)
	}
	t, ch := w.t, w.ch
	defer t.Stop()
	select {
	case b = <-ch:
		return b, true, false
	case <-ctx.Done():
		return nil, false, false
	case <-t.C:
	}
	left := time.Until(deadline)
	if watch == nil || left <= 0 {
		return nil, false, false
	}
	gone, stop := watch()
	t.Reset(left)
	select {
	case b = <-ch:
		woken = true
	case <-ctx.Done():
	case <-t.C:
	case <-gone:
	}
	return b, woken, stop()
}

// awaitParked is await for a caller on an event loop: it parks until it is
// handed something, ctx ends, the client is seen gone (watched after
// watchDelay, as await does) or the deadline passes, each of which rouses
// it. w.rouse is pk.rouser().
func (w *waiter) awaitParked(ctx context.Context, pk parker, deadline time.Time) (b *backend, woken, abandoned bool) {
	pk.rouseOnDone(ctx)
	watchAt := time.Now().Add(watchDelay)
	var gone <-chan struct{}
	stop := noWatch
	for {
		select {
		case b = <-w.ch:
			return b, true, stop()
		case <-gone:
			return nil, false, stop()
		default:
		}
		now := time.Now()
		if ctx.Err() != nil || !now.Before(deadline) {
			return nil, false, stop()
		}
		until := deadline
		if gone == nil {
			if now.Before(watchAt) {
				until = watchAt
			} else if gone, stop = pk.watchGone(); gone == nil {
				gone = make(chan struct{}) // nothing to watch: never closes
			}
		}
		pk.park(until)
	}
}

func (p *pool) dial(ctx context.Context) (*backend, error) {
	sc, err := p.up.Acquire(ctx, &ClientInfo{Warehouse: p.warehouse, User: "pgwarden-pool"})
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
	if p.params == nil {
		p.params = map[string]string{}
		for _, name := range reportedParams {
			if v := sc.ParameterStatus(name); v != "" {
				p.params[name] = v
			}
		}
	}
	p.mu.Unlock()
	return newBackend(sc, time.Now(), p.cfg.MaxPreparedStatements), nil
}

// popIdleLocked returns the most recently used idle connection that is not
// past its idle or lifetime limit, closing the ones that are.
func (p *pool) popIdleLocked(now time.Time) *backend {
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
func (p *pool) healthy(b *backend, now time.Time) bool {
	idle := now.Sub(b.lastUsed)
	if idle < peekAfter {
		return true
	}
	if !socketIdle(b.sc) {
		return false
	}
	if idle < p.cfg.HealthCheckAfter {
		return true
	}
	status, err := b.roundTrip("", p.timeout)
	return err == nil && status == 'I'
}

// release returns b; reuse=false closes it (broken or dirty).
func (p *pool) release(b *backend, reuse bool) {
	letGo(b)
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

// reapLoop closes idle connections past their idle or lifetime limit until
// done is closed, so that a quiet warehouse does not keep them open.
func (p *pool) reapLoop(done <-chan struct{}) {
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
		var old []*backend
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
func (p *pool) wakeLocked(b *backend) {
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
func (p *pool) gaugesLocked(now time.Time) {
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

// startupParams returns the ParameterStatus set clients are greeted with,
// opening a first connection if none was opened yet.
func (p *pool) startupParams(ctx context.Context) (map[string]string, error) {
	p.mu.Lock()
	params := p.params
	p.mu.Unlock()
	if params != nil {
		return params, nil
	}
	b, err := p.acquire(ctx, "", nil)
	if err != nil {
		return nil, err
	}
	p.release(b, true)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.params, nil
}

// maxValidSettings bounds checkSettings' memory of accepted values.
const maxValidSettings = 1024

// checkSettings asks the warehouse whether it takes a client's startup
// settings, those that differ from its connections': each is set with
// set_config local to a statement of its own, which changes nothing after
// it. A value refused answers with the warehouse's error (22023 "invalid
// value for parameter ..."); a value taken is not asked about again. It
// returns the accepted values as the warehouse spells them ("iso" is
// "ISO, MDY"), for the client's ParameterStatus.
func (p *pool) checkSettings(ctx context.Context, want, have map[string]string) (map[string]string, error) {
	canon := map[string]string{}
	var names, sets []string
	p.mu.Lock()
	for _, name := range []string{"DateStyle", "TimeZone", "IntervalStyle", "extra_float_digits"} {
		v, ok := want[name]
		if !ok || strings.EqualFold(v, have[name]) {
			continue
		}
		if c, ok := p.validSettings[name+"="+v]; ok {
			canon[name] = c
			continue
		}
		names = append(names, name)
		sets = append(sets, fmt.Sprintf("pg_catalog.set_config('%s', '%s', true)", name, strings.ReplaceAll(v, "'", "''")))
	}
	p.mu.Unlock()
	if len(sets) == 0 {
		return canon, nil
	}
	b, err := p.acquire(ctx, "", nil)
	if err != nil {
		return nil, err
	}
	rows, err := b.query("SELECT "+strings.Join(sets, ", "), p.timeout)
	var pe *pgerr.Error
	if err != nil && !errors.As(err, &pe) {
		p.release(b, false) // the connection failed, not the settings
		return nil, err
	}
	p.release(b, true)
	if err != nil {
		return nil, err
	}
	if len(rows) != 1 || len(rows[0]) != len(names) {
		return nil, fmt.Errorf("settings check returned %d rows", len(rows))
	}
	p.mu.Lock()
	if p.validSettings == nil || len(p.validSettings) >= maxValidSettings {
		p.validSettings = map[string]string{}
	}
	for i, name := range names {
		canon[name] = rows[0][i]
		p.validSettings[name+"="+want[name]] = rows[0][i]
	}
	p.mu.Unlock()
	return canon, nil
}

// close closes idle connections and makes lent ones close on return.
func (p *pool) close() {
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

type poolMetrics struct {
	size, inUse, idle, waiting prometheus.Gauge
	wait                       prometheus.Observer
	dialErrors, abandoned      prometheus.Counter

	warehouse      string
	labels         *tenantLabels
	tenantWaits    *prometheus.HistogramVec
	tenantRefusals *prometheus.CounterVec
}

func (m *metrics) forPool(warehouse string, cfg fairq.Config) *poolMetrics {
	return &poolMetrics{
		warehouse:      warehouse,
		labels:         newTenantLabels(cfg),
		tenantWaits:    m.tenantWaits,
		tenantRefusals: m.tenantRefusals,
		size:           m.poolConns.WithLabelValues(warehouse, "max"),
		inUse:          m.poolConns.WithLabelValues(warehouse, "in_use"),
		idle:           m.poolConns.WithLabelValues(warehouse, "idle"),
		waiting:        m.poolWaiting.WithLabelValues(warehouse),
		wait:           m.poolWait.WithLabelValues(warehouse),
		dialErrors:     m.upstreamErrors.WithLabelValues(warehouse),
		abandoned:      m.poolAbandoned.WithLabelValues(warehouse),
	}
}
