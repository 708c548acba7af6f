package proxy

import (
	"context"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/opstats"
	"github.com/pgwarden/pgwarden/proxy/pool"
)

// The proxy feeds the statistics where statements end and where its pool
// changes: a tenant's statements, its refusals by SQLSTATE class, the
// warehouse's errors, its live connections, and the pool's state.
func TestOpStatsFed(t *testing.T) {
	rec, err := opstats.New(opstats.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tp := startProxy(t, func(_ *Config, d *Deps) {
		d.Stats = rec
		d.Warehouses["wh"].Pool.Mode = pool.Transaction
	})
	ctx := ctxT(t)
	acme := tp.connect(t, ctx, "tok-acme")
	globex := tp.connect(t, ctx, "tok-globex")
	for range 3 {
		if _, err := acme.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
			t.Fatal(err)
		}
	}
	_, err = acme.Exec(ctx, "SELECT * FROM internal_costs").ReadAll()
	wantPgErr(t, err, "42501", "")
	_, err = globex.Exec(ctx, "SELECT 1/0").ReadAll()
	wantPgErr(t, err, "22012", "")

	// The client has its ReadyForQuery before the relay gives the
	// connection back to the pool: wait for the pool to show it idle.
	s := rec.Snapshot(0)
	for deadline := time.Now().Add(30 * time.Second); len(s.Pools) == 1 && s.Pools[0].Idle == 0 && time.Now().Before(deadline); s = rec.Snapshot(0) {
		time.Sleep(10 * time.Millisecond)
	}
	byName := map[string]opstats.Tenant{}
	for _, tn := range s.Tenants {
		byName[tn.Tenant] = tn
	}
	a, g := byName["acme"], byName["globex"]
	if a.Statements != 4 || a.Refusals != 1 || a.RefusalClasses["42"] != 1 || a.Errors != 0 || a.Connections != 1 {
		t.Errorf("acme: %+v", a)
	}
	if g.Statements != 1 || g.Errors != 1 || g.Refusals != 0 || g.Connections != 1 {
		t.Errorf("globex: %+v", g)
	}
	if len(s.Pools) != 1 || s.Pools[0].Warehouse != "wh" || s.Pools[0].Size == 0 || s.Pools[0].Idle == 0 {
		t.Errorf("pools: %+v", s.Pools)
	}
	globex.Close(context.Background())
	// The connection count drops once the proxy has seen the client go.
	for deadline := time.Now().Add(30 * time.Second); ; {
		n := -1
		for _, tn := range rec.Snapshot(0).Tenants {
			if tn.Tenant == "globex" {
				n = tn.Connections
			}
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("globex still has %d connections", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
