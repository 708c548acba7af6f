package proxy

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/proxy/pool"
	"github.com/pgwarden/pgwarden/rewrite"
)

// Schema per tenant through the proxy in transaction mode: clients of three
// tenants, interleaved over two warehouse connections, with the same
// statement text prepared by each, every answer from its own tenant's
// schema. The rewritten text names the tenant's schema, so neither the
// rewrite cache nor the statements prepared on a pooled connection are
// shared across tenants.
func TestSchemaTenancyPooled(t *testing.T) {
	ctx := ctxT(t)
	schema, err := os.ReadFile("../testdata/tenancy/schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	whURL := pgtest.NewDatabase(t, string(schema))
	pol, err := policy.Load("../testdata/tenancy/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, whURL)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := policy.LoadCatalog(ctx, conn, pol)
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := policy.NewTenantCatalog(pol, cat, policy.DialLoader(func(ctx context.Context) (*pgx.Conn, error) {
		return pgx.Connect(ctx, whURL)
	}), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	rw, err := rewrite.New(pol, cat, rewrite.Options{Database: "wh", TenantSchemas: tc})
	if err != nil {
		t.Fatal(err)
	}
	tp := startProxyTB(t, func(c *Config, d *Deps) {
		w := NewWarehouse("wh", whURL, rw)
		w.Pool = pool.Config{Mode: pool.Transaction, Size: 2}
		d.Warehouses = map[string]*Warehouse{"wh": w}
	})
	future := time.Now().Add(time.Hour)
	tp.auth.mu.Lock()
	for _, tenant := range []string{"acme", "globex", "initech"} {
		tp.auth.sessions["tok-"+tenant] = &auth.Session{ID: "s-" + tenant, Kind: policy.KindEmbed, Tenant: tenant,
			ExternalID: "ext-" + tenant, BaseRole: policy.RoleQuerier, ExpiresAt: future}
	}
	tp.auth.mu.Unlock()

	// acme has 2 customers and 4 orders, globex 3 and 6, initech 4 and 8;
	// emails are masked (no group pii), their domains the tenant's own.
	want := map[string]string{"acme": "4 2 ***@acme.example", "globex": "6 3 ***@globex.example", "initech": "8 4 ***@initech.example"}
	modes := []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeDescribeExec, pgx.QueryExecModeSimpleProtocol}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for _, tenant := range []string{"acme", "globex", "initech"} {
		for _, mode := range modes {
			c := connectPgx(t, ctx, tp, "tok-"+tenant, mode)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for round := 0; round < 20; round++ {
					var got string
					var orders, customers int64
					var email string
					// The same text for every tenant; a transaction each.
					tx, err := c.Begin(ctx)
					if err != nil {
						errs <- err
						return
					}
					err = tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM orders WHERE amount > $1),
						(SELECT count(*) FROM public.customers), (SELECT email FROM customers WHERE customer_id = 1)`, 0).
						Scan(&orders, &customers, &email)
					if err == nil {
						err = tx.Commit(ctx)
					}
					if err != nil {
						errs <- fmt.Errorf("%s %v round %d: %w", tenant, mode, round, err)
						return
					}
					if got = fmt.Sprintf("%d %d %s", orders, customers, email); got != want[tenant] {
						errs <- fmt.Errorf("%s %v round %d: got %q, want %q", tenant, mode, round, got, want[tenant])
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(backendPIDs(t, ctx, whURL)); n > 2 {
		t.Errorf("%d warehouse connections, want at most the pool's 2", n)
	}
}
