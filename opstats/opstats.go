// Package opstats keeps the operational statistics the operator console
// charts, in bounded memory, per proxy process: per tenant and per time
// bucket (statements, refusals by SQLSTATE class, errors, a latency
// histogram), per warehouse pool (size, in use, idle, waiting, wait time),
// and the live connections per tenant. The proxy feeds it where statements
// complete and where the pool changes; the admin API reads Snapshots and
// merges those of several replicas (Merge).
//
// Memory is bounded by configuration: MaxTenants series (plus one "other"
// that takes every tenant beyond them) and MaxPools pools, each a ring of
// Window/Bucket buckets. A tenant's series is given up to a newcomer once
// the tenant has been idle for IdleEvict.
package opstats

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Other is the series of tenants beyond MaxTenants; Internal that of
// internal users' own sessions (no tenant).
const (
	Other    = "other"
	Internal = "(internal)"
)

// Config bounds the statistics.
type Config struct {
	// Bucket is one point of a chart (default 10s).
	Bucket time.Duration
	// Window is how far back points are kept (default 1h).
	Window time.Duration
	// MaxTenants is how many tenants get series of their own (default 20).
	MaxTenants int
	// MaxPools is how many warehouse pools get series (default 64).
	MaxPools int
	// IdleEvict frees a tenant's series for a newcomer after this long
	// without a statement (default 5m).
	IdleEvict time.Duration
	Now       func() time.Time
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.Bucket == 0 {
		c.Bucket = 10 * time.Second
	}
	if c.Window == 0 {
		c.Window = time.Hour
	}
	if c.MaxTenants == 0 {
		c.MaxTenants = 20
	}
	if c.MaxPools == 0 {
		c.MaxPools = 64
	}
	if c.IdleEvict == 0 {
		c.IdleEvict = 5 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Bucket < time.Second:
		return errors.New("opstats: bucket: at least 1s")
	case c.Window < c.Bucket || c.Window/c.Bucket > 10000:
		return errors.New("opstats: window: between one bucket and 10000 buckets")
	case c.MaxTenants < 1 || c.MaxTenants > 1000:
		return errors.New("opstats: max_tenants: between 1 and 1000")
	case c.MaxPools < 1:
		return errors.New("opstats: max_pools: at least 1")
	}
	return nil
}

// Outcome is how a statement ended.
type Outcome uint8

const (
	OK      Outcome = iota
	Refused         // by pgwarden, before the warehouse saw it
	Failed          // the warehouse answered an error
)

// maxClasses is how many SQLSTATE classes a bucket counts apart; further
// classes count under "other".
const maxClasses = 6

// bucket is one tenant's time bucket. epoch is its index since the Unix
// epoch; a slot whose epoch is stale is reset before use.
type bucket struct {
	epoch      int64
	statements uint32
	errors     uint32
	refused    uint32
	classes    [maxClasses]classCount
	otherClass uint32
	hist       [histBins]uint32
}

type classCount struct {
	class [2]byte
	n     uint32
}

type series struct {
	name string
	last int64 // epoch of the last statement
	ring []bucket
}

type poolBucket struct {
	epoch                   int64
	size, inUseMax, waitMax int32
	waits                   uint32
	waitSum, waitMaxD       time.Duration
}

// poolSeries has a lock of its own: a pool reports every checkout and
// return (under its own lock, so this one is rarely contended), and should
// not queue behind the statements' lock.
type poolSeries struct {
	name string

	mu                         sync.Mutex
	size, inUse, idle, waiting int
	ring                       []poolBucket
}

// Recorder collects the statistics; its methods are safe for concurrent
// use. The zero value is not usable: New.
type Recorder struct {
	cfg    Config
	bucket int64 // ns
	n      int   // buckets in the ring

	mu      sync.Mutex
	tenants map[string]*series
	other   *series
	scanned int64          // epoch of the last search for an idle series
	conns   map[string]int // live connections per tenant, entries dropped at zero
	// pools is replaced, not changed, under mu (a pool is added once), and
	// read without it.
	pools atomic.Pointer[map[string]*poolSeries]
}

// New returns a Recorder for cfg.
func New(cfg Config) (*Recorder, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Recorder{cfg: cfg, bucket: int64(cfg.Bucket), n: int(cfg.Window / cfg.Bucket),
		tenants: map[string]*series{}, conns: map[string]int{}}
	r.pools.Store(&map[string]*poolSeries{})
	r.other = r.newSeries(Other)
	return r, nil
}

func (r *Recorder) newSeries(name string) *series {
	return &series{name: name, ring: make([]bucket, r.n)}
}

func (r *Recorder) epoch(t time.Time) int64 { return t.UnixNano() / r.bucket }

// slot returns the bucket of epoch e in s, reset if it held an older one.
func (r *Recorder) slot(s *series, e int64) *bucket {
	b := &s.ring[int(e%int64(r.n))]
	if b.epoch != e {
		*b = bucket{epoch: e}
	}
	return b
}

// seriesFor returns tenant's series, taking a free or idle one for a
// newcomer and otherwise the shared "other". Called with mu held.
func (r *Recorder) seriesFor(tenant string, e int64) *series {
	if s, ok := r.tenants[tenant]; ok {
		return s
	}
	if tenant == Other {
		return r.other
	}
	if len(r.tenants) < r.cfg.MaxTenants {
		s := r.newSeries(tenant)
		r.tenants[tenant] = s
		return s
	}
	// Full: reuse the longest idle series if idle long enough. A scan of
	// at most MaxTenants entries, at most once a bucket: the statements of
	// untracked tenants go to "other" with a map lookup.
	if r.scanned == e {
		return r.other
	}
	r.scanned = e
	idle := int64(r.cfg.IdleEvict) / r.bucket
	var victim *series
	for _, s := range r.tenants {
		if e-s.last >= idle && (victim == nil || s.last < victim.last) {
			victim = s
		}
	}
	if victim == nil {
		return r.other
	}
	delete(r.tenants, victim.name)
	victim.name = tenant
	clear(victim.ring)
	r.tenants[tenant] = victim
	return victim
}

// Statement records one statement of tenant ("" for an internal user's
// own session) that ended with outcome after d; sqlstate is its error
// code ("" when OK). It allocates nothing once the tenant has a series.
func (r *Recorder) Statement(tenant string, outcome Outcome, sqlstate string, d time.Duration) {
	r.StatementAt(r.cfg.Now(), tenant, outcome, sqlstate, d)
}

// StatementAt is Statement for a statement that ended at at, for a caller
// that has read the clock already (a reading costs more than the rest of
// the call on some virtual machines).
func (r *Recorder) StatementAt(at time.Time, tenant string, outcome Outcome, sqlstate string, d time.Duration) {
	if tenant == "" {
		tenant = Internal
	}
	bin := histBin(d)
	e := r.epoch(at)
	r.mu.Lock()
	s := r.seriesFor(tenant, e)
	s.last = e
	b := r.slot(s, e)
	b.statements++
	b.hist[bin]++
	switch outcome {
	case Refused:
		b.refused++
		b.addClass(sqlstate)
	case Failed:
		b.errors++
	}
	r.mu.Unlock()
}

func (b *bucket) addClass(sqlstate string) {
	var c [2]byte
	if len(sqlstate) >= 2 {
		c = [2]byte{sqlstate[0], sqlstate[1]}
	}
	for i := range b.classes {
		switch b.classes[i].class {
		case c:
			b.classes[i].n++
			return
		case [2]byte{}:
			b.classes[i] = classCount{class: c, n: 1}
			return
		}
	}
	b.otherClass++
}

// Connected and Disconnected count tenant's live client connections.
func (r *Recorder) Connected(tenant string) {
	if tenant == "" {
		tenant = Internal
	}
	r.mu.Lock()
	r.conns[tenant]++
	r.mu.Unlock()
}

func (r *Recorder) Disconnected(tenant string) {
	if tenant == "" {
		tenant = Internal
	}
	r.mu.Lock()
	if r.conns[tenant] <= 1 {
		delete(r.conns, tenant)
	} else {
		r.conns[tenant]--
	}
	r.mu.Unlock()
}

// poolFor returns warehouse's pool series; nil beyond MaxPools.
func (r *Recorder) poolFor(warehouse string) *poolSeries {
	if p := (*r.pools.Load())[warehouse]; p != nil {
		return p
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.pools.Load()
	if p := old[warehouse]; p != nil {
		return p
	}
	if len(old) >= r.cfg.MaxPools {
		return nil
	}
	pools := make(map[string]*poolSeries, len(old)+1)
	for k, v := range old {
		pools[k] = v
	}
	p := &poolSeries{name: warehouse, ring: make([]poolBucket, r.n)}
	pools[warehouse] = p
	r.pools.Store(&pools)
	return p
}

// poolSlot returns the bucket of epoch e in p, reset if it held an older
// one. Called with p.mu held.
func (r *Recorder) poolSlot(p *poolSeries, e int64) *poolBucket {
	b := &p.ring[int(e%int64(r.n))]
	if b.epoch != e {
		*b = poolBucket{epoch: e}
	}
	return b
}

// Pool records warehouse's pool state after a change.
func (r *Recorder) Pool(warehouse string, size, inUse, idle, waiting int) {
	r.PoolAt(r.cfg.Now(), warehouse, size, inUse, idle, waiting)
}

// PoolAt is Pool for a change at at, for a caller that has read the clock.
func (r *Recorder) PoolAt(at time.Time, warehouse string, size, inUse, idle, waiting int) {
	p := r.poolFor(warehouse)
	if p == nil {
		return
	}
	e := r.epoch(at)
	p.mu.Lock()
	p.size, p.inUse, p.idle, p.waiting = size, inUse, idle, waiting
	b := r.poolSlot(p, e)
	b.size = int32(size)
	b.inUseMax = max(b.inUseMax, int32(inUse))
	b.waitMax = max(b.waitMax, int32(waiting))
	p.mu.Unlock()
}

// PoolWait records one client's wait for a connection of warehouse's pool.
func (r *Recorder) PoolWait(warehouse string, d time.Duration) {
	r.PoolWaitAt(r.cfg.Now(), warehouse, d)
}

// PoolWaitAt is PoolWait for a wait that ended at at.
func (r *Recorder) PoolWaitAt(at time.Time, warehouse string, d time.Duration) {
	p := r.poolFor(warehouse)
	if p == nil {
		return
	}
	e := r.epoch(at)
	p.mu.Lock()
	b := r.poolSlot(p, e)
	b.size = int32(p.size)
	b.inUseMax = max(b.inUseMax, int32(p.inUse))
	b.waits++
	b.waitSum += d
	b.waitMaxD = max(b.waitMaxD, d)
	p.mu.Unlock()
}
