package proxy

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/proxy/fairq"
	"github.com/pgwarden/pgwarden/proxy/pool"
)

type metrics struct {
	connsCurrent    prometheus.Gauge
	connsTotal      prometheus.Counter
	statements      *prometheus.CounterVec
	statementsBy    statementCounters // statements' children
	duration        prometheus.Histogram
	authFailures    *prometheus.CounterVec
	cancels         *prometheus.CounterVec
	upstreamErrors  *prometheus.CounterVec
	bytesToClient   prometheus.Counter
	bytesFromClient prometheus.Counter
	poolConns       *prometheus.GaugeVec
	poolWaiting     *prometheus.GaugeVec
	poolWait        *prometheus.HistogramVec
	poolAbandoned   *prometheus.CounterVec
	simplePrepared  prometheus.Counter
	probes          *prometheus.CounterVec
	embedRefusals   *prometheus.CounterVec
	sessions        *prometheus.CounterVec
	// Per tenant (proxy/pool/tenantmetrics.go).
	tenantWaits    *prometheus.HistogramVec
	tenantRefusals *prometheus.CounterVec
	tenantGauges   *pool.TenantGauges
	sessionLabels  *pool.TenantLabels // for refusals outside a pool's wait
	// pools are the series above that the pools report to.
	pools *pool.Metrics
}

// newMetrics builds the proxy's metrics and registers them with reg (if not nil).
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgwarden_proxy_bytes_total", Help: "Protocol bytes relayed, by direction.",
	}, []string{"direction"})
	m := &metrics{
		connsCurrent: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pgwarden_proxy_connections", Help: "Client connections currently open.",
		}),
		connsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgwarden_proxy_connections_total", Help: "Client connections accepted.",
		}),
		statements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgwarden_proxy_statements_total", Help: "Statements by outcome (ok, refused, error) and session kind (embed, internal).",
		}, []string{"outcome", "kind"}),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgwarden_proxy_sessions_authenticated_total", Help: "Client connections authenticated, by session kind (embed, internal) and internal role.",
		}, []string{"kind", "role"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pgwarden_proxy_statement_duration_seconds", Help: "Statement duration from receipt to completion.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgwarden_proxy_auth_failures_total", Help: "Refused connection attempts by reason.",
		}, []string{"reason"}),
		cancels: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgwarden_proxy_cancel_requests_total", Help: "Cancel requests by result (forwarded, unknown_key, peer_forwarded, peer_failed, bad_peer_signature).",
		}, []string{"result"}),
		embedRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgwarden_proxy_embed_context_refusals_total", Help: "Embed sessions refused outside their embed context, by reason (outside_embed_context, pinned_address).",
		}, []string{"reason"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgwarden_proxy_warehouse_connect_errors_total", Help: "Failed warehouse connection attempts by warehouse.",
		}, []string{"warehouse"}),
		poolConns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgwarden_proxy_pool_connections", Help: "Transaction-pool warehouse connections by warehouse and state (max, in_use, idle).",
		}, []string{"warehouse", "state"}),
		poolWaiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgwarden_proxy_pool_waiting_clients", Help: "Clients waiting for a pooled warehouse connection.",
		}, []string{"warehouse"}),
		poolWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pgwarden_proxy_pool_acquire_seconds", Help: "Time clients waited for a pooled warehouse connection.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"warehouse"}),
		poolAbandoned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgwarden_proxy_pool_waits_abandoned_total", Help: "Clients that disconnected while waiting for a pooled warehouse connection.",
		}, []string{"warehouse"}),
		simplePrepared: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgwarden_proxy_simple_prepared_total", Help: "Simple-protocol statements run as prepared statements.",
		}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgwarden_proxy_prepared_probes_total", Help: "Probes of statement shapes' prepared forms, by outcome (accepted, rejected).",
		}, []string{"outcome"}),
		tenantWaits: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pgwarden_proxy_tenant_pool_acquire_seconds", Help: "Time a tenant's clients waited for a pooled warehouse connection (tenants beyond the first 20 seen and not configured count as tenant=\"other\").",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"warehouse", "tenant"}),
		tenantRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgwarden_proxy_tenant_refusals_total", Help: "Statements or logins refused by a tenant limit (max_queued, max_connections, statements_per_second, max_result_rows, max_result_bytes), by warehouse and tenant.",
		}, []string{"warehouse", "tenant", "limit"}),
		tenantGauges:    pool.NewTenantGauges(),
		sessionLabels:   pool.NewTenantLabels(fairq.Config{}),
		bytesToClient:   bytes.WithLabelValues("to_client"),
		bytesFromClient: bytes.WithLabelValues("from_client"),
	}
	m.pools = &pool.Metrics{Conns: m.poolConns, Waiting: m.poolWaiting, Wait: m.poolWait, Abandoned: m.poolAbandoned,
		DialErrors: m.upstreamErrors, TenantWaits: m.tenantWaits, TenantRefusals: m.tenantRefusals, Gauges: m.tenantGauges}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.connsCurrent, m.connsTotal, m.statements, m.duration, m.authFailures, m.cancels, m.upstreamErrors, bytes, m.poolConns, m.poolWaiting, m.poolWait, m.poolAbandoned, m.simplePrepared, m.probes, m.embedRefusals, m.sessions, m.tenantWaits, m.tenantRefusals, m.tenantGauges} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// statementCounters holds statements' children by outcome and session
// kind, resolved at their first statement: WithLabelValues hashes its
// labels and takes the vector's lock, at every statement otherwise.
type statementCounters struct {
	c [3][2]atomic.Pointer[counterRef]
}

type counterRef struct{ prometheus.Counter }

// statement counts one statement of a session of kind that ended with
// outcome (ok, error, refused).
func (m *metrics) statement(outcome, kind string) {
	i, j := statementOutcome(outcome), sessionKind(kind)
	if i < 0 || j < 0 {
		m.statements.WithLabelValues(outcome, kind).Inc()
		return
	}
	ref := m.statementsBy.c[i][j].Load()
	if ref == nil {
		// Racing first statements store the same child.
		ref = &counterRef{m.statements.WithLabelValues(outcome, kind)}
		m.statementsBy.c[i][j].Store(ref)
	}
	ref.Inc()
}

func statementOutcome(outcome string) int {
	switch outcome {
	case "ok":
		return 0
	case "error":
		return 1
	case "refused":
		return 2
	}
	return -1
}

func sessionKind(kind string) int {
	switch policy.Kind(kind) {
	case policy.KindEmbed:
		return 0
	case policy.KindInternal:
		return 1
	}
	return -1
}

func (m *metrics) authFailure(reason string) { m.authFailures.WithLabelValues(reason).Inc() }
