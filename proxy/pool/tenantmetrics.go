package pool

// Per-tenant pool metrics with bounded label cardinality: a proxy may serve
// thousands of tenants, and a series per tenant would swamp Prometheus.
//
//   - Gauges (queued waiters, connections in use) are computed at scrape
//     time from the pools' schedulers: the tenantMetricsTop busiest tenants
//     of each warehouse get their own series, the rest are summed as
//     tenant="other".
//   - Counters and the wait histogram cannot move a tenant between series
//     without breaking their monotonicity, so their tenant label is fixed
//     when first used: the tenants named in the pool's configuration, then
//     the first tenantMetricsTop others seen; the rest count as "other".

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgwarden/pgwarden/proxy/fairq"
)

// tenantMetricsTop bounds the tenants with series of their own, per
// warehouse and metric.
const tenantMetricsTop = 20

// otherTenants is the label of the tenants without a series of their own.
const otherTenants = "other"

// TenantLabels fixes the tenant label of a warehouse's counters: a pool's,
// and the proxy's own for refusals outside a pool's wait.
type TenantLabels struct {
	mu    sync.Mutex
	named map[string]bool // configured tenants: always labelled
	seen  map[string]bool // others labelled, at most tenantMetricsTop
	// waits caches the wait histogram's series by tenant and by label
	// (string to *tenantObserver): read without mu at every checkout,
	// written under it; nWaits counts its entries.
	waits  sync.Map
	nWaits int
	// last is the entry of waits used last, checked first: a pool's
	// checkouts often come from one tenant in a row.
	last atomic.Pointer[tenantObserver]
}

type tenantObserver struct {
	tenant string
	o      prometheus.Observer
}

// NewTenantLabels labels the tenants cfg names, and the first
// tenantMetricsTop others.
func NewTenantLabels(cfg fairq.Config) *TenantLabels {
	l := &TenantLabels{named: map[string]bool{}, seen: map[string]bool{}}
	for t := range cfg.Tenants {
		l.named[t] = true
	}
	return l
}

// Label is tenant's label: its own, or "other" (tenant="" is the
// proxy's own round trips, "").
func (l *TenantLabels) Label(tenant string) string {
	if tenant == "" {
		return "" // the proxy's own round trips are not counted by tenant
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.labelLocked(tenant)
}

func (l *TenantLabels) labelLocked(tenant string) string {
	if l.named[tenant] || l.seen[tenant] {
		return tenant
	}
	if len(l.seen) < tenantMetricsTop {
		l.seen[tenant] = true
		return tenant
	}
	return otherTenants
}

// TenantGauges reports the pools' per-tenant gauges at scrape time: a
// prometheus.Collector, which the proxy registers once for all its pools.
type TenantGauges struct {
	queued, inUse *prometheus.Desc

	mu    sync.Mutex
	pools map[*Pool]struct{}
}

// NewTenantGauges returns the collector of pools not yet made (New adds
// each, Close removes it).
func NewTenantGauges() *TenantGauges {
	return &TenantGauges{
		queued: prometheus.NewDesc("pgwarden_proxy_tenant_queued_statements",
			"Clients of a tenant waiting for a pooled warehouse connection (busiest tenants, the rest as tenant=\"other\").",
			[]string{"warehouse", "tenant"}, nil),
		inUse: prometheus.NewDesc("pgwarden_proxy_tenant_connections_in_use",
			"Pooled warehouse connections a tenant holds (busiest tenants, the rest as tenant=\"other\").",
			[]string{"warehouse", "tenant"}, nil),
		pools: map[*Pool]struct{}{},
	}
}

func (g *TenantGauges) add(p *Pool) {
	g.mu.Lock()
	g.pools[p] = struct{}{}
	g.mu.Unlock()
}

func (g *TenantGauges) remove(p *Pool) {
	g.mu.Lock()
	delete(g.pools, p)
	g.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (g *TenantGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.queued
	ch <- g.inUse
}

// Collect implements prometheus.Collector.
func (g *TenantGauges) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	byWarehouse := map[string]map[string]*fairq.TenantStats{}
	for p := range g.pools {
		// A warehouse with a database per tenant has a pool per database.
		w := byWarehouse[p.warehouse]
		if w == nil {
			w = map[string]*fairq.TenantStats{}
			byWarehouse[p.warehouse] = w
		}
		for _, st := range p.sched.Stats() {
			if st.Tenant == "" {
				continue
			}
			if s := w[st.Tenant]; s != nil {
				s.Queued += st.Queued
				s.InUse += st.InUse
			} else {
				st := st
				w[st.Tenant] = &st
			}
		}
	}
	g.mu.Unlock()
	for wh, tenants := range byWarehouse {
		list := make([]fairq.TenantStats, 0, len(tenants))
		for _, s := range tenants {
			list = append(list, *s)
		}
		fairq.SortBusiest(list)
		var other fairq.TenantStats
		for i, s := range list {
			if i >= tenantMetricsTop {
				other.Queued += s.Queued
				other.InUse += s.InUse
				continue
			}
			ch <- prometheus.MustNewConstMetric(g.queued, prometheus.GaugeValue, float64(s.Queued), wh, s.Tenant)
			ch <- prometheus.MustNewConstMetric(g.inUse, prometheus.GaugeValue, float64(s.InUse), wh, s.Tenant)
		}
		if len(list) > tenantMetricsTop {
			ch <- prometheus.MustNewConstMetric(g.queued, prometheus.GaugeValue, float64(other.Queued), wh, otherTenants)
			ch <- prometheus.MustNewConstMetric(g.inUse, prometheus.GaugeValue, float64(other.InUse), wh, otherTenants)
		}
	}
}

// tenantWait records how long a tenant's client waited for a connection.
func (m *poolMetrics) tenantWait(tenant string, d time.Duration, err error) {
	if err != nil || tenant == "" {
		return
	}
	if o := m.labels.observer(tenant, m.tenantWaits, m.warehouse); o != nil {
		o.Observe(d.Seconds())
	}
}

// observer is tenant's series of waits (at every checkout): looked up in
// the vector once per label, not hashed again each time.
func (l *TenantLabels) observer(tenant string, v *prometheus.HistogramVec, warehouse string) prometheus.Observer {
	if t := l.last.Load(); t != nil && t.tenant == tenant {
		return t.o
	}
	if t, ok := l.waits.Load(tenant); ok {
		l.last.Store(t.(*tenantObserver))
		return t.(*tenantObserver).o
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.waits.Load(tenant); ok {
		return t.(*tenantObserver).o
	}
	label := l.labelLocked(tenant)
	var o prometheus.Observer
	if t, ok := l.waits.Load(label); ok {
		o = t.(*tenantObserver).o
	} else {
		o = v.WithLabelValues(warehouse, label)
		l.waits.Store(label, &tenantObserver{label, o})
		l.nWaits++
	}
	if label != tenant && l.nWaits < 2*tenantMetricsTop+len(l.named) {
		l.waits.Store(tenant, &tenantObserver{tenant, o}) // "other" tenants too, within a bound
		l.nWaits++
	}
	return o
}

// refused counts a statement refused by one of its tenant's limits.
func (m *poolMetrics) refused(tenant, limit string) {
	if l := m.labels.Label(tenant); l != "" {
		m.tenantRefusals.WithLabelValues(m.warehouse, l, limit).Inc()
	}
}
