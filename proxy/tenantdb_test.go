package proxy

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/internal/pgcluster"
	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/proxy/pool"
	"github.com/pgwarden/pgwarden/rewrite"
)

// Tenant databases hold the same table without a tenant column: the
// database is what keeps tenants apart.
// (A masked column makes the relation fenced, so its columns are the
// catalog's.)
const tenantDBPolicy = "relations:\n  public.orders: { shared: true, columns: { total: { mask: null } } }\n"

func tenantDBSQL(tenant string) string {
	return fmt.Sprintf(`CREATE TABLE orders (order_id int NOT NULL, total int NOT NULL, owner text NOT NULL);
INSERT INTO orders SELECT g, g * 10, '%s' FROM generate_series(1, 3) g;`, tenant)
}

// tenantRewriter builds a rewriter over the catalog of the database at dsn.
func tenantRewriter(ctx context.Context, dsn string) (Rewriter, error) {
	pol, err := policy.Parse([]byte(tenantDBPolicy), "policy.yaml")
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	cat, err := policy.LoadCatalog(ctx, conn, pol)
	if err != nil {
		return nil, err
	}
	return rewrite.New(pol, cat, rewrite.Options{Database: "wh"})
}

// startTenantDBProxy serves warehouse "wh" with a database per tenant from
// dsns, each tenant a querier session tok-db-<tenant>.
func startTenantDBProxy(t *testing.T, mode pool.Mode, size int, td TenantDatabases, tenants []string) *testProxy {
	t.Helper()
	return startProxy(t, func(cfg *Config, deps *Deps) {
		cfg.ConnectTimeout = 3 * time.Second
		w := deps.Warehouses["wh"]
		rw, err := tenantRewriter(context.Background(), w.DSN)
		if err != nil {
			t.Fatal(err)
		}
		w.SetRewriter(rw)
		w.Pool = pool.Config{Mode: mode, Size: size, AcquireTimeout: 30 * time.Second}
		td.Rewriter = tenantRewriter
		w.Tenants = &td
		fa := deps.Authenticator.(*fakeAuth)
		for _, tn := range tenants {
			fa.sessions["tok-db-"+tn] = &auth.Session{ID: "s-db-" + tn, Kind: policy.KindEmbed, Tenant: tn, ExternalID: "u-" + tn,
				ConnectionRoles: map[string]policy.Role{"wh": policy.RoleQuerier}, ExpiresAt: time.Now().Add(time.Hour)}
		}
	})
}

// ownRows checks that c reads its tenant's database only, under the
// warehouse's name.
func ownRows(ctx context.Context, c *pgconn.PgConn, tenant string) error {
	rr, err := c.Exec(ctx, "SELECT DISTINCT owner, current_database() FROM orders").ReadAll()
	if err != nil {
		return err
	}
	if len(rr[0].Rows) != 1 || string(rr[0].Rows[0][0]) != tenant || string(rr[0].Rows[0][1]) != "wh" {
		return fmt.Errorf("tenant %s read %q", tenant, rr[0].Rows)
	}
	res := c.ExecParams(ctx, "SELECT owner FROM orders WHERE order_id = $1", [][]byte{[]byte("2")}, nil, nil, nil).Read()
	if res.Err != nil {
		return res.Err
	}
	if len(res.Rows) != 1 || string(res.Rows[0][0]) != tenant {
		return fmt.Errorf("tenant %s read %q", tenant, res.Rows)
	}
	return nil
}

// TestTenantDatabases: three tenant databases on one cluster and one on a
// second; each tenant reads its own; a second cluster going down affects
// only its tenant.
func TestTenantDatabases(t *testing.T) {
	ctx := ctxT(t)
	dsns := map[string]string{}
	for _, tn := range []string{"acme", "globex", "initech"} {
		dsns[tn] = pgtest.NewDatabase(t, tenantDBSQL(tn))
	}
	c2, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatalf("second cluster: %v", err)
	}
	t.Cleanup(func() { c2.Stop() })
	admin, err := pgx.Connect(ctx, c2.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE umbrella_db"); err != nil {
		t.Fatal(err)
	}
	admin.Close(ctx)
	dsns["umbrella"] = c2.DSN("umbrella_db")
	u2, err := pgx.Connect(ctx, dsns["umbrella"])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u2.Exec(ctx, tenantDBSQL("umbrella")); err != nil {
		t.Fatal(err)
	}
	u2.Close(ctx)
	tenants := []string{"acme", "globex", "initech", "umbrella"}
	for _, mode := range []pool.Mode{pool.Transaction, pool.Session} {
		t.Run(string(mode), func(t *testing.T) {
			td := TenantDatabases{DSN: func(tn string) (string, bool) { d, ok := dsns[tn]; return d, ok }, MaxConns: 8}
			tp := startTenantDBProxy(t, mode, 2, td, append(tenants, "nodb"))
			conns := map[string]*pgconn.PgConn{}
			for _, tn := range tenants {
				conns[tn] = tp.connect(t, ctx, "tok-db-"+tn)
				if err := ownRows(ctx, conns[tn], tn); err != nil {
					t.Fatal(err)
				}
			}
			// A tenant with no database cannot log in.
			_, err := pgconn.Connect(ctx, tp.url("tok-db-nodb", "wh", ""))
			wantPgErr(t, err, "28000", `tenant "nodb" has no database on warehouse wh`)
			// Another tenant's database cannot be named.
			_, err = conns["acme"].Exec(ctx, "SELECT * FROM umbrella_db.public.orders").ReadAll()
			if err == nil {
				t.Error("a three-part name reached another tenant's database")
			}
			r := tp.srv.tenants["wh"]
			if dbs, _ := r.open(); dbs != 4 {
				t.Errorf("%d tenant databases in use, want 4", dbs)
			}
		})
	}
	// Last: the second cluster goes down; only its tenant notices.
	td := TenantDatabases{DSN: func(tn string) (string, bool) { d, ok := dsns[tn]; return d, ok }}
	tp := startTenantDBProxy(t, pool.Transaction, 2, td, tenants)
	um := tp.connect(t, ctx, "tok-db-umbrella")
	acme := tp.connect(t, ctx, "tok-db-acme")

	// A reload reads each tenant database's catalog again: a column added
	// to acme's table becomes readable by acme's open session.
	a, err := pgx.Connect(ctx, dsns["acme"])
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Exec(ctx, "ALTER TABLE orders ADD COLUMN region text NOT NULL DEFAULT 'EU'")
	a.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acme.Exec(ctx, "SELECT region FROM orders").ReadAll(); err == nil {
		t.Fatal("a column not in the loaded catalog was readable")
	}
	w := tp.srv.warehouses["wh"]
	rw, err := tenantRewriter(ctx, w.DSN)
	if err != nil {
		t.Fatal(err)
	}
	w.SetRewriter(rw)
	if err := tp.srv.ReloadTenantDatabases(ctx); err != nil {
		t.Fatal(err)
	}
	if rr, err := acme.Exec(ctx, "SELECT DISTINCT region FROM orders").ReadAll(); err != nil || string(rr[0].Rows[0][0]) != "EU" {
		t.Errorf("after the reload: %v", err)
	}
	if err := ownRows(ctx, um, "umbrella"); err != nil {
		t.Fatal(err)
	}
	if err := c2.StopServer(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ownRows(ctx, um, "umbrella"); err == nil {
		t.Error("umbrella's database is down, yet its statement succeeded")
	}
	for i := 0; i < 3; i++ {
		if err := ownRows(ctx, acme, "acme"); err != nil {
			t.Fatalf("acme while umbrella's database is down: %v", err)
		}
		g := tp.connect(t, ctx, "tok-db-globex")
		if err := ownRows(ctx, g, "globex"); err != nil {
			t.Fatalf("globex login while umbrella's database is down: %v", err)
		}
	}
	if err := c2.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	um2 := tp.connect(t, ctx, "tok-db-umbrella")
	if err := ownRows(ctx, um2, "umbrella"); err != nil {
		t.Errorf("umbrella after its database is back: %v", err)
	}
}

// TestTenantDatabasesBound: 100 tenants, each its own pool, never hold more
// than the shared bound of connections; their pools close when idle.
func TestTenantDatabasesBound(t *testing.T) {
	ctx := ctxT(t)
	db := pgtest.NewDatabase(t, tenantDBSQL("shared"))
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	// One database, a hundred DSNs: application_name tells them apart,
	// so each tenant gets a pool of its own.
	q := u.Query()
	q.Set("application_name", "t_{{tenant}}")
	u.RawQuery = q.Encode()
	tmpl := strings.ReplaceAll(u.String(), "%7B%7Btenant%7D%7D", "{{tenant}}")
	var tenants []string
	for i := 0; i < 100; i++ {
		tenants = append(tenants, fmt.Sprintf("t%03d", i))
	}
	const bound = 10
	td := TenantDatabases{
		DSN:         func(tn string) (string, bool) { return strings.ReplaceAll(tmpl, "{{tenant}}", tn), true },
		MaxConns:    bound,
		IdleTimeout: 300 * time.Millisecond,
	}
	tp := startTenantDBProxy(t, pool.Transaction, 3, td, tenants)
	var wg sync.WaitGroup
	errs := make(chan error, len(tenants))
	for _, tn := range tenants {
		wg.Add(1)
		go func(tn string) {
			defer wg.Done()
			c, err := pgconn.Connect(ctx, tp.url("tok-db-"+tn, "wh", ""))
			if err != nil {
				errs <- fmt.Errorf("%s: %w", tn, err)
				return
			}
			defer c.Close(context.Background())
			for k := 0; k < 3; k++ {
				if err := ownRows(ctx, c, "shared"); err != nil {
					errs <- fmt.Errorf("%s: %w", tn, err)
					return
				}
			}
		}(tn)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	r := tp.srv.tenants["wh"]
	r.lim.mu.Lock()
	peak := r.lim.peak
	r.lim.mu.Unlock()
	if peak > bound || peak == 0 {
		t.Errorf("peak open connections across tenant databases: %d, want 1..%d", peak, bound)
	}
	// Idle tenant databases are closed, and with them their connections.
	deadline := time.Now().Add(30 * time.Second)
	for {
		dbs, open := r.open()
		if dbs == 0 && open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d tenant databases and %d connections still open after the idle timeout", dbs, open)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("peak %d connections for %d tenants", peak, len(tenants))
}
