package pool

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgwarden/pgwarden/proxy/fairq"
)

// Metrics are the series a proxy's pools report to, each pool with its
// warehouse as a label. The proxy defines and registers them: some also
// count what happens outside a pool (a session-mode dial's errors, a
// login's refusal by a tenant limit).
type Metrics struct {
	// Conns are the pools' connections by warehouse and state (max,
	// in_use, idle).
	Conns *prometheus.GaugeVec
	// Waiting are the clients queued, by warehouse.
	Waiting *prometheus.GaugeVec
	// Wait is how long clients waited for a connection, by warehouse.
	Wait *prometheus.HistogramVec
	// Abandoned counts clients gone while they waited, by warehouse.
	Abandoned *prometheus.CounterVec
	// DialErrors counts failed dials, by warehouse.
	DialErrors *prometheus.CounterVec
	// TenantWaits is Wait by warehouse and tenant (TenantLabels).
	TenantWaits *prometheus.HistogramVec
	// TenantRefusals counts statements refused by a tenant limit, by
	// warehouse, tenant and limit.
	TenantRefusals *prometheus.CounterVec
	// Gauges are the per-tenant gauges, read from the pools at scrape time.
	Gauges *TenantGauges
}

// Stats receives a pool's state and its clients' waits (the proxy's
// statistics recorder): called at every checkout and return, so it must be
// cheap and must not block. at is the time of the event, from a caller
// that has read the clock already.
type Stats interface {
	PoolAt(at time.Time, warehouse string, size, inUse, idle, waiting int)
	PoolWaitAt(at time.Time, warehouse string, d time.Duration)
}

type noStats struct{}

func (noStats) PoolAt(time.Time, string, int, int, int, int) {}
func (noStats) PoolWaitAt(time.Time, string, time.Duration)  {}

// poolMetrics are one pool's series.
type poolMetrics struct {
	size, inUse, idle, waiting prometheus.Gauge
	wait                       prometheus.Observer
	dialErrors, abandoned      prometheus.Counter

	warehouse      string
	labels         *TenantLabels
	tenantWaits    *prometheus.HistogramVec
	tenantRefusals *prometheus.CounterVec
}

func (m *Metrics) forPool(warehouse string, cfg fairq.Config) *poolMetrics {
	return &poolMetrics{
		warehouse:      warehouse,
		labels:         NewTenantLabels(cfg),
		tenantWaits:    m.TenantWaits,
		tenantRefusals: m.TenantRefusals,
		size:           m.Conns.WithLabelValues(warehouse, "max"),
		inUse:          m.Conns.WithLabelValues(warehouse, "in_use"),
		idle:           m.Conns.WithLabelValues(warehouse, "idle"),
		waiting:        m.Waiting.WithLabelValues(warehouse),
		wait:           m.Wait.WithLabelValues(warehouse),
		dialErrors:     m.DialErrors.WithLabelValues(warehouse),
		abandoned:      m.Abandoned.WithLabelValues(warehouse),
	}
}
