package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/internal/demo"
	"github.com/pgwarden/pgwarden/internal/pgcluster"
)

// Roles of the bench cluster. app reads everything (the unfiltered baselines,
// direct and through PgBouncer); app_rls is subject to row-level security;
// svc is pgwarden's service account; ctl owns the ticket store. app and svc
// have BYPASSRLS so that the policies created for app_rls cost them nothing.
const (
	roleApp = "app"
	roleRLS = "app_rls"
	roleSvc = "svc"
	roleCtl = "ctl"

	dbBench   = "benchdb"
	dbDemo    = "demodb"
	dbControl = "control"
)

// benchTenant is the tenant of the select workload's filtered targets.
const benchTenant = "t1"

// demoTenantTables are the demo tables keyed by tenant_id that the dashboard
// reads; products is shared.
var demoTenantTables = []string{"tenants", "customers", "orders", "order_items", "events"}

// cluster is the bench's PostgreSQL with its databases, roles and scripts.
type cluster struct {
	pg        *pgcluster.Cluster
	binDir    string
	pgbench   string
	passwords map[string]string
	scale     int
	work      string // scratch directory (scripts, logs, configs)
}

func startCluster(ctx context.Context, work string, maxConns, scale int) (*cluster, error) {
	binDir, err := pgcluster.FindBinDir()
	if err != nil {
		return nil, err
	}
	pgb := filepath.Join(binDir, "pgbench")
	if _, err := os.Stat(pgb); err != nil {
		if pgb, err = exec.LookPath("pgbench"); err != nil {
			return nil, fmt.Errorf("pgbench not found: install it with `apt-get install postgresql-contrib` (or postgresql-15)")
		}
	}
	pg, err := pgcluster.Start(ctx, pgcluster.Options{Settings: map[string]string{
		"max_connections": fmt.Sprint(maxConns),
		"shared_buffers":  "256MB",
		// The bench measures the path to the database, not the planner's
		// choice of parallel plans on a 2-core machine.
		"max_parallel_workers_per_gather": "0",
	}})
	if err != nil {
		return nil, err
	}
	c := &cluster{pg: pg, binDir: binDir, pgbench: pgb, scale: scale, work: work, passwords: map[string]string{}}
	for _, r := range []string{roleApp, roleRLS, roleSvc, roleCtl} {
		c.passwords[r] = demo.RandomSecret(12)
	}
	if err := c.provision(ctx); err != nil {
		pg.Stop()
		return nil, err
	}
	return c, nil
}

func (c *cluster) stop() { c.pg.Stop() }

func (c *cluster) exec(ctx context.Context, db string, stmts ...string) error {
	conn, err := pgx.Connect(ctx, c.pg.DSN(db))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %s: %w", db, firstLine(s), err)
		}
	}
	return nil
}

func (c *cluster) provision(ctx context.Context) error {
	pw := c.passwords
	if err := c.exec(ctx, "postgres",
		fmt.Sprintf("CREATE ROLE %s LOGIN BYPASSRLS PASSWORD '%s'", roleApp, pw[roleApp]),
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", roleRLS, pw[roleRLS]),
		fmt.Sprintf("CREATE ROLE %s LOGIN BYPASSRLS PASSWORD '%s'", roleSvc, pw[roleSvc]),
		fmt.Sprintf("ALTER ROLE %s SET default_transaction_read_only = on", roleSvc),
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", roleCtl, pw[roleCtl]),
		"CREATE DATABASE "+dbBench,
		"CREATE DATABASE "+dbDemo,
		fmt.Sprintf("CREATE DATABASE %s OWNER %s", dbControl, roleCtl),
	); err != nil {
		return err
	}

	// pgbench's own tables, then a tenant key spread over t1..t4 by aid % 4.
	// ALTER COLUMN ... TYPE ... USING rewrites the table once, without the
	// dead tuples an UPDATE of every row would leave.
	cmd := exec.CommandContext(ctx, c.pgbench, "-i", "-q", "-s", fmt.Sprint(c.scale),
		"-h", c.pg.Host, "-p", fmt.Sprint(c.pg.Port), "-U", "postgres", dbBench)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+c.pg.Password)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgbench -i: %w: %s", err, tail(string(out), 1500))
	}
	grantees := strings.Join([]string{roleApp, roleRLS, roleSvc}, ", ")
	if err := c.exec(ctx, dbBench,
		"ALTER TABLE pgbench_accounts ADD COLUMN tenant_id text NOT NULL DEFAULT 't1'",
		"ALTER TABLE pgbench_accounts ALTER COLUMN tenant_id TYPE text USING 't' || (aid % 4 + 1)",
		"CREATE INDEX pgbench_accounts_tenant_aid ON pgbench_accounts (tenant_id, aid)",
		"ALTER TABLE pgbench_accounts ENABLE ROW LEVEL SECURITY",
		"CREATE POLICY tenant_isolation ON pgbench_accounts USING (tenant_id = current_setting('app.tenant'))",
		"GRANT SELECT ON pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history TO "+grantees,
		"VACUUM ANALYZE",
	); err != nil {
		return err
	}

	conn, err := pgx.Connect(ctx, c.pg.DSN(dbDemo))
	if err != nil {
		return err
	}
	err = demo.Load(ctx, conn)
	conn.Close(context.Background())
	if err != nil {
		return err
	}
	stmts := []string{}
	for _, t := range demoTenantTables {
		stmts = append(stmts,
			fmt.Sprintf("ALTER TABLE %s ENABLE ROW LEVEL SECURITY", t),
			fmt.Sprintf("CREATE POLICY tenant_isolation ON %s USING (tenant_id = current_setting('app.tenant'))", t))
	}
	for _, t := range demo.ExposedTables {
		stmts = append(stmts, fmt.Sprintf("GRANT SELECT ON %s TO %s", t, grantees))
	}
	stmts = append(stmts, "VACUUM ANALYZE")
	return c.exec(ctx, dbDemo, stmts...)
}

// selectScript is the select workload: pgbench's built-in -S transaction as a
// custom script, so that every target runs the same SQL text.
func (c *cluster) selectScript() (string, error) {
	path := filepath.Join(c.work, "select.sql")
	body := fmt.Sprintf("\\set aid random(1, %d)\nSELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n", 100000*c.scale)
	return path, os.WriteFile(path, []byte(body), 0o644)
}

// sharedScript is the proxy-overhead workload: a point lookup on
// pgbench_tellers, which every policy here marks shared, so no target filters
// it and every target runs the same query; what differs is only the path.
func (c *cluster) sharedScript() (string, error) {
	path := filepath.Join(c.work, "shared.sql")
	body := fmt.Sprintf("\\set tid random(1, %d)\nSELECT tbalance FROM pgbench_tellers WHERE tid = :tid;\n", 10*c.scale)
	return path, os.WriteFile(path, []byte(body), 0o644)
}

// dashboardSQL is one dashboard load: the aggregates an embedded analytics page
// runs when it opens. {{where "x"}} and {{and "x"}} expand to a hand-written
// tenant filter on alias x for the unfiltered baselines (what the application
// would have to write itself without pgwarden or RLS) and to nothing for the
// targets that filter by themselves.
const dashboardSQL = `SELECT region, count(*) AS orders, sum(total) AS revenue FROM orders o {{where "o"}} GROUP BY region ORDER BY region;
SELECT date_trunc('month', ordered_at) AS month, count(*) AS orders, sum(total) AS revenue FROM orders o {{where "o"}} GROUP BY 1 ORDER BY 1;
SELECT p.category, p.name, sum(oi.quantity * oi.unit_price) AS revenue FROM order_items oi JOIN products p ON p.product_id = oi.product_id {{where "oi"}} GROUP BY p.category, p.name ORDER BY revenue DESC LIMIT 10;
SELECT c.country, count(DISTINCT c.customer_id) AS customers, sum(o.total) AS revenue FROM customers c JOIN orders o ON o.tenant_id = c.tenant_id AND o.customer_id = c.customer_id {{where "c"}} GROUP BY c.country ORDER BY revenue DESC;
SELECT kind, count(*) AS events, count(DISTINCT customer_id) AS customers FROM events e {{where "e"}} GROUP BY kind ORDER BY events DESC;
SELECT o.status, avg(o.total) AS avg_total, max(o.ordered_at) AS last_order FROM orders o WHERE o.ordered_at >= timestamptz '2023-01-01' {{and "o"}} GROUP BY o.status ORDER BY o.status;
`

// dashboardQueries is the number of statements in one dashboard load.
const dashboardQueries = 6

// dashboardScript writes the dashboard script for tenant, filtered by hand
// when handFilter is set.
func (c *cluster) dashboardScript(tenant string, handFilter bool) (string, error) {
	body, err := renderDashboard(tenant, handFilter)
	if err != nil {
		return "", err
	}
	name := "dashboard.sql"
	if handFilter {
		name = "dashboard_" + tenant + ".sql"
	}
	path := filepath.Join(c.work, name)
	return path, os.WriteFile(path, []byte(body), 0o644)
}

func renderDashboard(tenant string, handFilter bool) (string, error) {
	cond := func(alias string) string { return fmt.Sprintf("%s.tenant_id = '%s'", alias, tenant) }
	funcs := template.FuncMap{
		"where": func(alias string) string {
			if !handFilter {
				return ""
			}
			return "WHERE " + cond(alias)
		},
		"and": func(alias string) string {
			if !handFilter {
				return ""
			}
			return "AND " + cond(alias)
		},
	}
	t, err := template.New("dashboard").Funcs(funcs).Parse(dashboardSQL)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, nil); err != nil {
		return "", err
	}
	// Collapse the double spaces an empty expansion leaves.
	return strings.ReplaceAll(b.String(), "  ", " "), nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// waitTCPWhile waits until addr accepts connections, giving up when exited
// is closed (the server process died) or after timeout.
func waitTCPWhile(ctx context.Context, addr string, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := netDialer().DialContext(ctx, "tcp", addr)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not accept connections within %s: %w", addr, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return fmt.Errorf("the process exited before %s accepted connections", addr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// postmasterPID reads the first line of the cluster's postmaster.pid.
func (c *cluster) postmasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(c.pg.DataDir(), "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("postmaster.pid: bad pid %q", first)
	}
	return pid, nil
}
