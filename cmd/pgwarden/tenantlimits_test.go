package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/proxy"
	"github.com/pgwarden/pgwarden/proxy/fairq"
)

// The pool's tenant limits reach the proxy as configured.
func TestPoolConfigTenantLimits(t *testing.T) {
	p := config.Pool{
		Scheduling: "fifo",
		TenantDefaults: config.TenantLimits{MaxConnections: 10, MaxQueued: 50, StatementTimeout: time.Minute,
			RoleStatementTimeouts: map[string]time.Duration{"viewer": 30 * time.Second}, MaxResultRows: 1000},
		Tenants: map[string]config.TenantLimits{
			"acme": {Weight: 3, MaxConnections: 15, StatementsPerSecond: 20, StatementsBurst: 40, MaxResultBytes: 1 << 20},
		},
	}
	got := poolConfig(p)
	wantSched := fairq.Config{Policy: fairq.FIFO, Defaults: fairq.Limits{MaxConns: 10, MaxQueued: 50},
		Tenants: map[string]fairq.Limits{"acme": {Weight: 3, MaxConns: 15, RatePerSecond: 20, Burst: 40}}}
	if d := cmp.Diff(wantSched, got.Tenants); d != "" {
		t.Errorf("scheduling (-want +got):\n%s", d)
	}
	wantStmt := proxy.TenantStatementLimits{
		Defaults: proxy.StatementLimits{Timeout: time.Minute, RoleTimeouts: map[policy.Role]time.Duration{policy.RoleViewer: 30 * time.Second}, MaxRows: 1000},
		Tenants:  map[string]proxy.StatementLimits{"acme": {MaxBytes: 1 << 20}},
	}
	if d := cmp.Diff(wantStmt, tenantStatementLimits(p)); d != "" {
		t.Errorf("statement limits (-want +got):\n%s", d)
	}
	if err := got.WithDefaults().Validate("warehouses.analytics.pool"); err != nil {
		t.Errorf("validate: %v", err)
	}
}
