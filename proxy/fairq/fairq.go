// Package fairq decides which tenant's waiter gets a warehouse connection
// next when a pool is saturated, and holds the per-tenant limits that keep one
// tenant from starving the others: a share of the pool (connections in use at
// once), a bound on queued waiters, a weight for the turn-taking and a
// statements-per-second bucket.
//
// Under the "fair" policy a free connection goes to a waiting tenant that
// holds the fewest connections for its weight (weighted max-min share of the
// pool), and among those by weighted round robin (deficit round robin with
// unit costs): the tenant at the cursor is served up to its weight in
// waiters, then the cursor moves on. So a tenant with forty queued waiters
// and a tenant with one are served in turn, not in arrival order, and a
// tenant whose statements hold connections for seconds does not take every
// connection that comes back from tenants of short statements. Under "fifo" the oldest eligible waiter goes first, as a
// single queue would; the limits apply under both.
//
// A Scheduler holds no connections: the pool calls Start when it lends one
// without queuing, Push to queue, Next when a connection or a slot frees up,
// Remove when a waiter gives up, and Done when a lent connection comes back.
// Every Start, and every Next that returned a waiter, is matched by one Done.
package fairq

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Policy orders waiters when the pool is saturated.
type Policy string

const (
	// Fair serves tenants in turn, weighted.
	Fair Policy = "fair"
	// FIFO serves the oldest waiter first.
	FIFO Policy = "fifo"
)

// Limits are one tenant's limits; a zero field means no limit (Weight: 1).
type Limits struct {
	// Weight is the tenant's turns per round under the fair policy.
	Weight int
	// MaxConns caps the tenant's connections in use at once.
	MaxConns int
	// MaxQueued caps the tenant's waiters; one more is refused.
	MaxQueued int
	// RatePerSecond and Burst make a token bucket of statements.
	RatePerSecond float64
	Burst         int
}

// Config is a pool's scheduling: a policy, the limits every tenant gets and
// overrides by tenant (their zero fields take Defaults).
type Config struct {
	Policy   Policy
	Defaults Limits
	Tenants  map[string]Limits
}

// For returns tenant's limits, overrides over defaults. The internal tenant
// "" (the proxy's own round trips) has none.
func (c Config) For(tenant string) Limits {
	if tenant == "" {
		return Limits{Weight: 1}
	}
	l := c.Defaults
	if o, ok := c.Tenants[tenant]; ok {
		if o.Weight != 0 {
			l.Weight = o.Weight
		}
		if o.MaxConns != 0 {
			l.MaxConns = o.MaxConns
		}
		if o.MaxQueued != 0 {
			l.MaxQueued = o.MaxQueued
		}
		if o.RatePerSecond != 0 {
			l.RatePerSecond = o.RatePerSecond
		}
		if o.Burst != 0 {
			l.Burst = o.Burst
		}
	}
	if l.Weight == 0 {
		l.Weight = 1
	}
	if l.RatePerSecond > 0 && l.Burst == 0 {
		l.Burst = max(1, int(math.Ceil(l.RatePerSecond)))
	}
	return l
}

// Validate reports invalid fields; prefix names the config section.
func (c Config) Validate(prefix string) error {
	var errs []error
	switch c.Policy {
	case "", Fair, FIFO:
	default:
		errs = append(errs, fmt.Errorf("%s.scheduling: %q is not fair or fifo", prefix, c.Policy))
	}
	check := func(field string, l Limits) {
		if l.Weight < 0 || l.Weight > 1000 {
			errs = append(errs, fmt.Errorf("%s.weight: %d is not between 1 and 1000", field, l.Weight))
		}
		if l.MaxConns < 0 {
			errs = append(errs, fmt.Errorf("%s.max_connections: must not be negative", field))
		}
		if l.MaxQueued < 0 {
			errs = append(errs, fmt.Errorf("%s.max_queued: must not be negative", field))
		}
		if l.RatePerSecond < 0 || math.IsNaN(l.RatePerSecond) || math.IsInf(l.RatePerSecond, 0) {
			errs = append(errs, fmt.Errorf("%s.statements_per_second: must be a positive number or 0 (no limit)", field))
		}
		if l.Burst < 0 {
			errs = append(errs, fmt.Errorf("%s.statements_burst: must not be negative", field))
		}
	}
	check(prefix+".tenant_defaults", c.Defaults)
	names := make([]string, 0, len(c.Tenants))
	for t := range c.Tenants {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, t := range names {
		if t == "" {
			errs = append(errs, fmt.Errorf("%s.tenants: a tenant name is empty", prefix))
			continue
		}
		check(prefix+".tenants."+t, c.Tenants[t])
	}
	return errors.Join(errs...)
}

// LimitError is a refusal by one of a tenant's limits.
type LimitError struct {
	Tenant string
	Limit  string // "max_queued" or "max_connections"
	N      int
}

func (e *LimitError) Error() string {
	switch e.Limit {
	case "max_queued":
		return fmt.Sprintf("too many queued statements for tenant %s (limit %d)", e.Tenant, e.N)
	}
	return fmt.Sprintf("too many connections for tenant %s (limit %d)", e.Tenant, e.N)
}

// Ticket is a queued waiter.
type Ticket[T any] struct {
	Value  T
	tenant *tenantState[T]
	seq    uint64
	queued bool
}

// Tenant is the tenant the ticket queues for.
func (t *Ticket[T]) Tenant() string { return t.tenant.name }

type tenantState[T any] struct {
	name   string
	lim    Limits
	queue  []*Ticket[T]
	inUse  int
	credit int  // turns left in the current round (fair)
	inRing bool // has queued waiters, in the round robin
	// Token bucket; tokens may go below zero for reserved delays.
	tokens float64
	filled time.Time
}

func (t *tenantState[T]) eligible() bool {
	return len(t.queue) > 0 && (t.lim.MaxConns == 0 || t.inUse < t.lim.MaxConns)
}

// Scheduler is safe for concurrent use; a pool may call it with its own lock
// held (the Scheduler calls nothing back).
type Scheduler[T any] struct {
	cfg Config
	now func() time.Time

	mu      sync.Mutex
	tenants map[string]*tenantState[T]
	// hot is one tenant's state kept out of tenants: the last one let go
	// (forgetLocked), or a newcomer's when hot was free. A tenant with one
	// client at a time comes and goes at every transaction, and a map's
	// insert and delete (which reseeds the map once it is empty) cost more
	// than the rest of a checkout. A state is in tenants or hot, not both.
	hot    *tenantState[T]
	ring   []*tenantState[T] // tenants with queued waiters, in turn order
	cur    int
	seq    uint64
	queued int
	// nQueued is queued, for Queued.
	nQueued atomic.Int64
}

// New returns a scheduler; now is the clock (time.Now when nil).
func New[T any](cfg Config, now func() time.Time) *Scheduler[T] {
	if cfg.Policy == "" {
		cfg.Policy = Fair
	}
	if now == nil {
		now = time.Now
	}
	return &Scheduler[T]{cfg: cfg, now: now, tenants: map[string]*tenantState[T]{}}
}

// Policy is the scheduler's policy.
func (s *Scheduler[T]) Policy() Policy { return s.cfg.Policy }

// Limits returns tenant's limits.
func (s *Scheduler[T]) Limits(tenant string) Limits { return s.cfg.For(tenant) }

// lookupLocked returns tenant's state, nil if it has none.
func (s *Scheduler[T]) lookupLocked(tenant string) *tenantState[T] {
	if h := s.hot; h != nil && h.name == tenant {
		return h
	}
	return s.tenants[tenant]
}

func (s *Scheduler[T]) stateLocked(tenant string) *tenantState[T] {
	if t := s.lookupLocked(tenant); t != nil {
		return t
	}
	t := &tenantState[T]{name: tenant, lim: s.cfg.For(tenant)}
	t.tokens, t.filled = float64(t.lim.Burst), s.now()
	if s.hot == nil || s.forgettable(s.hot) {
		s.hot = t // the one there, if any, is dropped
	} else {
		s.tenants[tenant] = t
	}
	return t
}

// forgettable reports whether nothing of t remains: no waiters, nothing in
// use, a full bucket. Its state is then as good as new (out of the ring,
// and a bucket that refills to full), whether it is kept or dropped.
func (s *Scheduler[T]) forgettable(t *tenantState[T]) bool {
	if t.inUse > 0 || len(t.queue) > 0 {
		return false
	}
	return t.lim.RatePerSecond <= 0 || t.tokens+s.now().Sub(t.filled).Seconds()*t.lim.RatePerSecond >= float64(t.lim.Burst)
}

// forgetLocked drops a tenant's state from tenants once nothing of it
// remains; it is kept as hot unless hot holds a tenant still busy.
func (s *Scheduler[T]) forgetLocked(t *tenantState[T]) {
	if t == s.hot || !s.forgettable(t) {
		return
	}
	delete(s.tenants, t.name)
	if s.hot == nil || s.forgettable(s.hot) {
		s.hot = t
	}
}

// Start counts a connection in use for tenant, for a pool that has one free
// to lend without queuing: false when the tenant is at its share or has
// waiters of its own queued (they go first), and must queue.
func (s *Scheduler[T]) Start(tenant string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.stateLocked(tenant)
	if len(t.queue) > 0 || t.lim.MaxConns > 0 && t.inUse >= t.lim.MaxConns {
		return false
	}
	t.inUse++
	return true
}

// Blocked reports whether tenant must queue rather than Start: it is at its
// share, or its own waiters are ahead of it. It changes nothing.
func (s *Scheduler[T]) Blocked(tenant string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.lookupLocked(tenant)
	if t == nil {
		return false
	}
	return len(t.queue) > 0 || t.lim.MaxConns > 0 && t.inUse >= t.lim.MaxConns
}

// Done ends one of tenant's connections in use (from Start or Next).
func (s *Scheduler[T]) Done(tenant string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.lookupLocked(tenant)
	if t == nil || t.inUse == 0 {
		return // unmatched: nothing to end (the pool's tests check the balance)
	}
	t.inUse--
	s.forgetLocked(t)
}

// Push queues v for tenant, or refuses it with a *LimitError when the
// tenant's queue is full.
func (s *Scheduler[T]) Push(tenant string, v T) (*Ticket[T], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.stateLocked(tenant)
	if t.lim.MaxQueued > 0 && len(t.queue) >= t.lim.MaxQueued {
		s.forgetLocked(t)
		return nil, &LimitError{Tenant: tenant, Limit: "max_queued", N: t.lim.MaxQueued}
	}
	s.seq++
	k := &Ticket[T]{Value: v, tenant: t, seq: s.seq, queued: true}
	t.queue = append(t.queue, k)
	s.queued++
	s.nQueued.Store(int64(s.queued))
	if !t.inRing {
		t.inRing = true
		t.credit = t.lim.Weight
		// Behind every tenant already waiting, as DRR's tail: just before
		// the cursor, so that its turn comes after a full lap.
		s.ring = append(s.ring, nil)
		copy(s.ring[s.cur+1:], s.ring[s.cur:])
		s.ring[s.cur] = t
		if len(s.ring) > 1 {
			s.cur++
		}
	}
	return k, nil
}

// Remove takes a waiter out of the queue (it gave up); false when it was
// no longer queued (Next handed it out already).
func (s *Scheduler[T]) Remove(k *Ticket[T]) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !k.queued {
		return false
	}
	t := k.tenant
	for i, q := range t.queue {
		if q == k {
			t.queue = append(t.queue[:i], t.queue[i+1:]...)
			break
		}
	}
	k.queued = false
	s.queued--
	s.nQueued.Store(int64(s.queued))
	if len(t.queue) == 0 {
		s.leaveRingLocked(t)
	}
	s.forgetLocked(t)
	return true
}

// Next takes the next waiter to serve, counting a connection in use for its
// tenant; false when no waiter may be served (none queued, or every queued
// tenant is at its share).
func (s *Scheduler[T]) Next() (*Ticket[T], bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queued == 0 {
		return nil, false
	}
	var t *tenantState[T]
	if s.cfg.Policy == FIFO {
		for _, r := range s.ring {
			if r.eligible() && (t == nil || r.queue[0].seq < t.queue[0].seq) {
				t = r
			}
		}
	} else {
		// Only the tenants holding the fewest connections for their
		// weight may go: a tenant whose statements hold connections for
		// seconds does not get a turn whenever one comes back, while
		// tenants of short statements have none. Among them, each tenant
		// at the cursor is served up to its weight, then the cursor moves
		// on and the next tenant's turns are refilled; others are passed
		// over, and one full lap finds every one that may go.
		var least *tenantState[T]
		for _, r := range s.ring {
			if r.eligible() && (least == nil || r.inUse*least.lim.Weight < least.inUse*r.lim.Weight) {
				least = r
			}
		}
		if least == nil {
			return nil, false
		}
		for range len(s.ring) + 1 {
			r := s.ring[s.cur]
			if r.credit > 0 && r.eligible() && r.inUse*least.lim.Weight == least.inUse*r.lim.Weight {
				t = r
				break
			}
			s.advanceLocked()
		}
	}
	if t == nil {
		return nil, false
	}
	k := t.queue[0]
	t.queue[0] = nil
	t.queue = t.queue[1:]
	k.queued = false
	s.queued--
	s.nQueued.Store(int64(s.queued))
	t.inUse++
	t.credit--
	switch {
	case len(t.queue) == 0:
		s.leaveRingLocked(t)
	case t.credit <= 0 && s.cfg.Policy == Fair:
		s.advanceLocked()
	}
	return k, true
}

func (s *Scheduler[T]) advanceLocked() {
	s.cur = (s.cur + 1) % len(s.ring)
	s.ring[s.cur].credit = s.ring[s.cur].lim.Weight
}

func (s *Scheduler[T]) leaveRingLocked(t *tenantState[T]) {
	if !t.inRing {
		return
	}
	t.inRing = false
	for i, r := range s.ring {
		if r != t {
			continue
		}
		s.ring = append(s.ring[:i], s.ring[i+1:]...)
		switch {
		case len(s.ring) == 0:
			s.cur = 0
		case i < s.cur:
			s.cur--
		case i == s.cur:
			// The cursor moves onto the one that followed: its turn.
			s.cur %= len(s.ring)
			s.ring[s.cur].credit = s.ring[s.cur].lim.Weight
		}
		return
	}
}

// Reserve takes a statement token from tenant's bucket and returns how long
// the statement must wait for it (0 when one was there). A wait longer than
// maxWait takes nothing and is returned as is, for the caller to refuse.
func (s *Scheduler[T]) Reserve(tenant string, maxWait time.Duration) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.stateLocked(tenant)
	if t.lim.RatePerSecond <= 0 {
		return 0
	}
	now := s.now()
	if el := now.Sub(t.filled).Seconds(); el > 0 {
		t.tokens = min(float64(t.lim.Burst), t.tokens+el*t.lim.RatePerSecond)
	}
	t.filled = now
	if t.tokens >= 1 {
		t.tokens--
		return 0
	}
	wait := time.Duration((1 - t.tokens) / t.lim.RatePerSecond * float64(time.Second))
	if wait > maxWait {
		s.forgetLocked(t)
		return wait
	}
	t.tokens--
	return wait
}

// TenantStats is one tenant's state at a moment.
type TenantStats struct {
	Tenant string
	Queued int
	InUse  int
}

// Stats returns the tenants with waiters or connections in use, busiest
// (in use plus queued) first, ties by name.
func (s *Scheduler[T]) Stats() []TenantStats {
	s.mu.Lock()
	out := make([]TenantStats, 0, len(s.tenants)+1)
	add := func(t *tenantState[T]) {
		if t.inUse > 0 || len(t.queue) > 0 {
			out = append(out, TenantStats{Tenant: t.name, Queued: len(t.queue), InUse: t.inUse})
		}
	}
	for _, t := range s.tenants {
		add(t)
	}
	if s.hot != nil {
		add(s.hot)
	}
	s.mu.Unlock()
	SortBusiest(out)
	return out
}

// SortBusiest sorts stats busiest (in use plus queued) first, ties by name.
func SortBusiest(stats []TenantStats) {
	sort.Slice(stats, func(i, j int) bool {
		a, b := stats[i].InUse+stats[i].Queued, stats[j].InUse+stats[j].Queued
		if a != b {
			return a > b
		}
		return stats[i].Tenant < stats[j].Tenant
	})
}

// InUse is tenant's connections in use.
func (s *Scheduler[T]) InUse(tenant string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.lookupLocked(tenant); t != nil {
		return t.inUse
	}
	return 0
}

// Queued is the number of waiters queued across tenants. It takes no
// lock: a pool asks after every checkout and return.
func (s *Scheduler[T]) Queued() int { return int(s.nQueued.Load()) }
