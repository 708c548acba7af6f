package main

import (
	"fmt"
	"io"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgwarden/pgwarden/audit"
	"github.com/pgwarden/pgwarden/proxy"
)

// openAudit opens the audit file (audit.path) and, with audit.store, the
// batched copy to the control store; the proxy and the ticket service of
// this process write to the same log.
func (a *app) openAudit() error {
	c := a.cfg.Audit
	var w io.Writer
	switch c.Path {
	case "":
	case "-":
		w = os.Stdout
	default:
		f, err := os.OpenFile(c.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("audit.path: %w", err)
		}
		a.audit, w = f, f
	}
	var sink audit.Sink
	if c.Store {
		b, err := audit.NewBatcher(audit.BatcherConfig{Queue: c.StoreQueue, Retention: c.StoreRetention}, a.store, a.log.Named("audit"))
		if err != nil {
			return err
		}
		a.auditStore, sink = b, b
		a.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "pgwarden_audit_store_dropped_total",
			Help: "Audit records not copied to the control store (queue full or store failing); the audit file has them.",
		}, func() float64 { return float64(b.Dropped()) }))
	}
	if w != nil || sink != nil {
		a.auditLog = audit.New(w, sink)
	}
	return nil
}

// proxyAudit is the proxy's view of the audit log (nil: none).
func (a *app) proxyAudit() *proxy.AuditLog {
	if a.auditLog == nil {
		return nil
	}
	return proxy.NewAuditLogTo(a.auditLog, a.cfg.Audit.IncludeSQL)
}
