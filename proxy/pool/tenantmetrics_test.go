package pool

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgwarden/pgwarden/proxy/fairq"
)

// Counters label the configured tenants and the first tenantMetricsTop
// others; the rest share "other".
func TestTenantLabelsBounded(t *testing.T) {
	l := NewTenantLabels(fairq.Config{Tenants: map[string]fairq.Limits{"vip": {Weight: 2}}})
	labels := map[string]bool{}
	for i := range 3 * tenantMetricsTop {
		labels[l.Label(fmt.Sprintf("t%d", i))] = true
	}
	if got := l.Label("vip"); got != "vip" {
		t.Errorf("configured tenant labelled %q", got)
	}
	if len(labels) != tenantMetricsTop+1 || !labels[otherTenants] {
		t.Errorf("%d labels for %d tenants, want %d plus %q", len(labels), 3*tenantMetricsTop, tenantMetricsTop, otherTenants)
	}
	if got := l.Label("t0"); got != "t0" {
		t.Errorf("a tenant labelled before is now %q", got)
	}
	if got := l.Label(""); got != "" {
		t.Errorf("the proxy's own round trips labelled %q", got)
	}
}

// Gauges report the busiest tenants of each warehouse and sum the rest,
// across the pools of a warehouse (one per tenant database).
func TestTenantGaugesTopN(t *testing.T) {
	g := NewTenantGauges()
	reg := prometheus.NewRegistry()
	reg.MustRegister(g)
	p1 := &Pool{warehouse: "wh", sched: fairq.New[*Waiter](fairq.Config{}, nil)}
	p2 := &Pool{warehouse: "wh", sched: fairq.New[*Waiter](fairq.Config{}, nil)}
	g.add(p1)
	g.add(p2)
	n := tenantMetricsTop + 10
	for i := range n {
		// tenant i holds i+1 connections: the busiest have the highest i.
		for range i + 1 {
			p1.sched.Start(fmt.Sprintf("t%d", i))
		}
	}
	p2.sched.Start("t0") // t0 holds 2 across the warehouse's pools
	p2.sched.Push("t0", &Waiter{})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	inUse := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "pgwarden_proxy_tenant_connections_in_use" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "tenant" {
					inUse[lp.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	if len(inUse) != tenantMetricsTop+1 {
		t.Fatalf("%d series, want %d and other: %v", len(inUse), tenantMetricsTop, inUse)
	}
	if inUse[fmt.Sprintf("t%d", n-1)] != float64(n) {
		t.Errorf("busiest tenant: %v", inUse)
	}
	// The 10 least busy (t0 with 2 and 1 queued, t1..t9) are summed.
	want := 2.0
	for i := 1; i < 10; i++ {
		want += float64(i + 1)
	}
	if inUse[otherTenants] != want {
		t.Errorf("other = %v, want %v", inUse[otherTenants], want)
	}
	g.remove(p2)
	g.remove(p1)
	if mfs, _ := reg.Gather(); len(mfs) != 0 {
		t.Errorf("series left after the pools closed: %d families", len(mfs))
	}
}
