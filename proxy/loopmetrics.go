package proxy

import "github.com/prometheus/client_golang/prometheus"

// loopMetrics count the sessions that run on event loops (evloop_linux.go)
// and why sessions leave them: a session that left runs as before, on
// goroutines, at the CPU cost of before.
type loopMetrics struct {
	on      prometheus.Gauge
	total   prometheus.Counter
	leaves  *prometheus.CounterVec
	returns prometheus.Counter
	// loops counts the loops by how they do their I/O (io_uring, epoll).
	loops *prometheus.GaugeVec
}

func newLoopMetrics(reg prometheus.Registerer) (*loopMetrics, error) {
	m := &loopMetrics{
		on: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pgwarden_proxy_event_loop_sessions", Help: "Client sessions running on an event loop now.",
		}),
		total: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgwarden_proxy_event_loop_sessions_total", Help: "Client sessions started on an event loop.",
		}),
		leaves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgwarden_proxy_event_loop_leaves_total",
			Help: "Sessions that left their event loop for goroutines, by reason (pool_dial, relay, throttle, session_store, long_statement, cancel, warehouse_socket, client_socket).",
		}, []string{"reason"}),
		returns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgwarden_proxy_event_loop_returns_total", Help: "Sessions that went back to their event loop after leaving it.",
		}),
		loops: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgwarden_proxy_event_loops", Help: "Event loops running, by how they do their I/O (io_uring, or epoll where io_uring is off or not allowed).",
		}, []string{"io"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.on, m.total, m.leaves, m.returns, m.loops} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
