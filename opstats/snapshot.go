package opstats

import (
	"cmp"
	"maps"
	"slices"
	"time"
)

// Snapshot is what GET /v1/admin/stats answers: every series' points over
// the window, oldest first, only buckets that saw something.
type Snapshot struct {
	Now           time.Time `json:"now"`
	BucketSeconds float64   `json:"bucket_seconds"`
	WindowSeconds float64   `json:"window_seconds"`
	Tenants       []Tenant  `json:"tenants"`
	Pools         []Pool    `json:"pools"`
}

// Latency is a distribution's percentiles in milliseconds.
type Latency struct {
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
}

func latencyOf(h *[histBins]uint32) Latency {
	return Latency{P50: quantile(h, 0.50), P95: quantile(h, 0.95), P99: quantile(h, 0.99)}
}

// Tenant is one tenant's series ("other" for those beyond the tracked,
// "(internal)" for internal users' own sessions). Totals are over the window.
type Tenant struct {
	Tenant      string `json:"tenant"`
	Connections int    `json:"connections"`
	Statements  int64  `json:"statements"`
	Refusals    int64  `json:"refusals"`
	Errors      int64  `json:"errors"`
	// RefusalClasses counts refusals by SQLSTATE class ("42", "0A", …;
	// "other" past the classes a bucket keeps apart).
	RefusalClasses map[string]int64 `json:"refusal_classes"`
	Latency        Latency          `json:"latency"`
	Points         []TenantPoint    `json:"points"`
}

// TenantPoint is one bucket of a tenant; T is its start (Unix seconds).
type TenantPoint struct {
	T          int64 `json:"t"`
	Statements int64 `json:"statements"`
	Refusals   int64 `json:"refusals"`
	Errors     int64 `json:"errors"`
	Latency
	Hist Hist `json:"hist"`
}

// Pool is one warehouse pool: its state now and its points.
type Pool struct {
	Warehouse string      `json:"warehouse"`
	Size      int         `json:"size"`
	InUse     int         `json:"in_use"`
	Idle      int         `json:"idle"`
	Waiting   int         `json:"waiting"`
	Points    []PoolPoint `json:"points"`
}

// PoolPoint is one bucket of a pool: the most connections in use and
// clients waiting seen in it, and the waits for a connection that ended in it.
type PoolPoint struct {
	T          int64   `json:"t"`
	Size       int     `json:"size"`
	InUseMax   int     `json:"in_use_max"`
	WaitingMax int     `json:"waiting_max"`
	Waits      int64   `json:"waits"`
	WaitMs     float64 `json:"wait_total_ms"`
	WaitMaxMs  float64 `json:"wait_max_ms"`
}

// WaitMeanMs is the mean wait of the point's waits.
func (p PoolPoint) WaitMeanMs() float64 {
	if p.Waits == 0 {
		return 0
	}
	return p.WaitMs / float64(p.Waits)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Snapshot copies the statistics of the last window (at most the
// configured one; 0 means all of it).
func (r *Recorder) Snapshot(window time.Duration) Snapshot {
	if window <= 0 || window > r.cfg.Window {
		window = r.cfg.Window
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.cfg.Now()
	e := r.epoch(now)
	first := e - int64(window)/r.bucket + 1
	out := Snapshot{Now: now.UTC(), BucketSeconds: r.cfg.Bucket.Seconds(), WindowSeconds: window.Seconds(), Tenants: []Tenant{}, Pools: []Pool{}}
	seen := map[string]bool{}
	add := func(s *series) {
		t := r.tenantOf(s, first, e)
		t.Connections = r.conns[s.name]
		seen[s.name] = true
		if t.Statements > 0 || t.Connections > 0 {
			out.Tenants = append(out.Tenants, t)
		}
	}
	for _, s := range r.tenants {
		add(s)
	}
	add(r.other)
	// Tenants with connections but no series of their own (beyond
	// MaxTenants) count under "other".
	for name, n := range r.conns {
		if !seen[name] {
			i := slices.IndexFunc(out.Tenants, func(t Tenant) bool { return t.Tenant == Other })
			if i < 0 {
				out.Tenants = append(out.Tenants, Tenant{Tenant: Other, RefusalClasses: map[string]int64{}, Points: []TenantPoint{}})
				i = len(out.Tenants) - 1
			}
			out.Tenants[i].Connections += n
		}
	}
	sortTenants(out.Tenants)
	for _, p := range *r.pools.Load() {
		out.Pools = append(out.Pools, r.poolOf(p, first, e))
	}
	slices.SortFunc(out.Pools, func(a, b Pool) int { return cmp.Compare(a.Warehouse, b.Warehouse) })
	return out
}

// sortTenants orders by statements, most first, with "other" last.
func sortTenants(ts []Tenant) {
	slices.SortFunc(ts, func(a, b Tenant) int {
		if (a.Tenant == Other) != (b.Tenant == Other) {
			if a.Tenant == Other {
				return 1
			}
			return -1
		}
		if c := cmp.Compare(b.Statements, a.Statements); c != 0 {
			return c
		}
		return cmp.Compare(a.Tenant, b.Tenant)
	})
}

func (r *Recorder) tenantOf(s *series, first, last int64) Tenant {
	t := Tenant{Tenant: s.name, RefusalClasses: map[string]int64{}, Points: []TenantPoint{}}
	var all [histBins]uint32
	for e := first; e <= last; e++ {
		b := &s.ring[int(e%int64(r.n))]
		if b.epoch != e || b.statements == 0 {
			continue
		}
		t.Statements += int64(b.statements)
		t.Refusals += int64(b.refused)
		t.Errors += int64(b.errors)
		for _, c := range b.classes {
			if c.n > 0 {
				t.RefusalClasses[string(c.class[:])] += int64(c.n)
			}
		}
		if b.otherClass > 0 {
			t.RefusalClasses[Other] += int64(b.otherClass)
		}
		for i, n := range b.hist {
			all[i] += n
		}
		t.Points = append(t.Points, TenantPoint{T: e * r.bucket / int64(time.Second), Statements: int64(b.statements),
			Refusals: int64(b.refused), Errors: int64(b.errors), Latency: latencyOf(&b.hist), Hist: sparse(&b.hist)})
	}
	t.Latency = latencyOf(&all)
	return t
}

func (r *Recorder) poolOf(p *poolSeries, first, last int64) Pool {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := Pool{Warehouse: p.name, Size: p.size, InUse: p.inUse, Idle: p.idle, Waiting: p.waiting, Points: []PoolPoint{}}
	for e := first; e <= last; e++ {
		b := &p.ring[int(e%int64(r.n))]
		if b.epoch != e {
			continue
		}
		out.Points = append(out.Points, PoolPoint{T: e * r.bucket / int64(time.Second), Size: int(b.size), InUseMax: int(b.inUseMax),
			WaitingMax: int(b.waitMax), Waits: int64(b.waits), WaitMs: ms(b.waitSum), WaitMaxMs: ms(b.waitMaxD)})
	}
	return out
}

// Merge adds up the snapshots of several replicas: counts and histograms
// are summed and percentiles computed again from the summed histograms;
// a pool's size, connections and waiting clients are summed across the
// replicas' pools (each replica has its own), its per-bucket maxima summed
// too (an upper bound: the replicas' peaks need not coincide).
func Merge(snaps ...Snapshot) Snapshot {
	if len(snaps) == 1 {
		return snaps[0]
	}
	out := Snapshot{Tenants: []Tenant{}, Pools: []Pool{}}
	tenants := map[string]*Tenant{}
	tpoints := map[string]map[int64]*TenantPoint{}
	thists := map[string]map[int64]*[histBins]uint32{}
	pools := map[string]*Pool{}
	ppoints := map[string]map[int64]*PoolPoint{}
	for _, s := range snaps {
		if s.Now.After(out.Now) {
			out.Now = s.Now
		}
		out.BucketSeconds, out.WindowSeconds = max(out.BucketSeconds, s.BucketSeconds), max(out.WindowSeconds, s.WindowSeconds)
		for _, t := range s.Tenants {
			m := tenants[t.Tenant]
			if m == nil {
				m = &Tenant{Tenant: t.Tenant, RefusalClasses: map[string]int64{}}
				tenants[t.Tenant], tpoints[t.Tenant], thists[t.Tenant] = m, map[int64]*TenantPoint{}, map[int64]*[histBins]uint32{}
			}
			m.Connections += t.Connections
			m.Statements += t.Statements
			m.Refusals += t.Refusals
			m.Errors += t.Errors
			for c, n := range t.RefusalClasses {
				m.RefusalClasses[c] += n
			}
			for _, p := range t.Points {
				q := tpoints[t.Tenant][p.T]
				if q == nil {
					q = &TenantPoint{T: p.T}
					tpoints[t.Tenant][p.T], thists[t.Tenant][p.T] = q, &[histBins]uint32{}
				}
				q.Statements += p.Statements
				q.Refusals += p.Refusals
				q.Errors += p.Errors
				p.Hist.addTo(thists[t.Tenant][p.T])
			}
		}
		for _, p := range s.Pools {
			m := pools[p.Warehouse]
			if m == nil {
				m = &Pool{Warehouse: p.Warehouse}
				pools[p.Warehouse], ppoints[p.Warehouse] = m, map[int64]*PoolPoint{}
			}
			m.Size += p.Size
			m.InUse += p.InUse
			m.Idle += p.Idle
			m.Waiting += p.Waiting
			for _, pt := range p.Points {
				q := ppoints[p.Warehouse][pt.T]
				if q == nil {
					q = &PoolPoint{T: pt.T}
					ppoints[p.Warehouse][pt.T] = q
				}
				q.Size += pt.Size
				q.InUseMax += pt.InUseMax
				q.WaitingMax += pt.WaitingMax
				q.Waits += pt.Waits
				q.WaitMs += pt.WaitMs
				q.WaitMaxMs = max(q.WaitMaxMs, pt.WaitMaxMs)
			}
		}
	}
	for name, t := range tenants {
		var all [histBins]uint32
		for _, ts := range slices.Sorted(maps.Keys(tpoints[name])) {
			p, h := tpoints[name][ts], thists[name][ts]
			p.Latency, p.Hist = latencyOf(h), sparse(h)
			for i, n := range h {
				all[i] += n
			}
			t.Points = append(t.Points, *p)
		}
		if t.Points == nil {
			t.Points = []TenantPoint{}
		}
		t.Latency = latencyOf(&all)
		out.Tenants = append(out.Tenants, *t)
	}
	sortTenants(out.Tenants)
	for name, p := range pools {
		p.Points = []PoolPoint{}
		for _, ts := range slices.Sorted(maps.Keys(ppoints[name])) {
			p.Points = append(p.Points, *ppoints[name][ts])
		}
		out.Pools = append(out.Pools, *p)
	}
	slices.SortFunc(out.Pools, func(a, b Pool) int { return cmp.Compare(a.Warehouse, b.Warehouse) })
	return out
}
