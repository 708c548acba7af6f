package compat

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Real tools, not drivers: pgcli (Debian's pgcli), pandas (Debian's
// python3-pandas) and Malloy (npm's @malloydata/malloy, the report language
// from the Looker team) do their own introspection and run a report; the figures
// they print are checked against the warehouse itself, read directly as the
// service account with acme's filter written out.

// acmeTruth is what acme's own rows add up to, read past pgwarden.
type acmeTruth struct {
	orders   int64
	lines    int64  // order_items
	revenue  string // sum(total), two decimals
	byRegion map[string]int64
}

func readAcmeTruth(t *testing.T) acmeTruth {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, warehouseURL(t))
	if err != nil {
		t.Fatalf("warehouse: %v", err)
	}
	defer conn.Close(ctx)
	truth := acmeTruth{byRegion: map[string]int64{}}
	if err := conn.QueryRow(ctx, "SELECT count(*), sum(total)::numeric(14,2)::text FROM orders WHERE tenant_id = 'acme'").Scan(&truth.orders, &truth.revenue); err != nil {
		t.Fatalf("warehouse: %v", err)
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM order_items WHERE tenant_id = 'acme'").Scan(&truth.lines); err != nil {
		t.Fatalf("warehouse: %v", err)
	}
	rows, _ := conn.Query(ctx, "SELECT region, count(*) FROM orders WHERE tenant_id = 'acme' GROUP BY region")
	var region string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&region, &n}, func() error { truth.byRegion[region] = n; return nil }); err != nil {
		t.Fatalf("warehouse: %v", err)
	}
	return truth
}

func testPgcli(t *testing.T) {
	py := python(t, "pgcli", "pgcli")
	truth := readAcmeTruth(t)
	runScript(t, "pgcli", []scriptCheck{
		{"connect", func(r scriptResult) error {
			if r.Values["dbname"] != "analytics" || r.Values["server_version"] == "" {
				return fmt.Errorf("connect: %v", r.Values)
			}
			return nil
		}},
		{"refresh", vNoError},
		{"complete-tables", func(r scriptResult) error {
			var public []string
			for _, n := range r.Names {
				if !strings.Contains(n, ".") {
					public = append(public, n)
				}
			}
			return sameSet("tables pgcli completes after FROM", public, exposedTables)
		}},
		{"complete-columns", func(r scriptResult) error {
			return sameSet("columns pgcli completes for customers (phone hidden without group pii)", r.Names, customersColumns)
		}},
		{"query", func(r scriptResult) error {
			return firstErr(onlyAcme(r.Tenants), wantCount("orders by region, added up", r.Counts["orders"], truth.orders),
				wantCount("customers", r.Counts["customers"], acmeCustomers),
				sameSet("regions", r.Names, keys(truth.byRegion)))
		}},
		{"backslash-dt", vTables},
		{"refused", func(r scriptResult) error {
			if !strings.Contains(r.Values["message"], "permission denied for relation internal_costs") {
				return fmt.Errorf("SELECT * FROM internal_costs printed %q", r.Values["message"])
			}
			return wantCount("customers, on the same connection after the refusal", r.Counts["after"], acmeCustomers)
		}},
	}, py, clientDir("python", "pgcli_client.py"))
}

func testPandas(t *testing.T) {
	py := python(t, "pandas", "pandas")
	python(t, "pandas", "sqlalchemy")
	truth := readAcmeTruth(t)
	runScript(t, "pandas", []scriptCheck{
		{"read-table", func(r scriptResult) error {
			return firstErr(onlyAcme(r.Tenants), wantCount("rows of read_sql_table(orders)", r.Counts["rows"], truth.orders),
				sameList("columns of read_sql_table(orders)", r.Names, ordersColumns))
		}},
		{"read-masked", func(r scriptResult) error {
			return firstErr(onlyAcme(r.Tenants), sameList("columns of read_sql_table(customers)", r.Names, customersColumns),
				wantCount("customers", r.Counts["customers"], acmeCustomers), wantCount("masked emails", r.Counts["masked"], acmeCustomers))
		}},
		{"chart-query", func(r scriptResult) error {
			if r.Values["mismatch"] != "" {
				return fmt.Errorf("revenue by region: the query and pandas' own sum disagree: %s", r.Values["mismatch"])
			}
			return firstErr(wantCount("orders in the chart", r.Counts["orders"], truth.orders),
				sameList("revenue in the chart", []string{r.Values["revenue"]}, []string{truth.revenue}))
		}},
		{"chunks", vRows},
		{"report", func(r scriptResult) error {
			return firstErr(wantCount("orders in the report", r.Counts["orders"], truth.orders),
				sameList("report revenue", []string{r.Values["revenue"], r.Values["unmatched"]}, []string{truth.revenue, "0"}))
		}},
	}, py, clientDir("python", "pandas_client.py"))
}

func testMalloy(t *testing.T) {
	needRuntime(t, "malloy", "node")
	if _, err := os.Stat(clientDir("malloy", "node_modules", "@malloydata", "db-postgres", "package.json")); err != nil {
		missingRuntime(t, "malloy", "compat/clients/malloy/node_modules missing (run compat/install.sh: npm ci there)")
	}
	truth := readAcmeTruth(t)
	runScript(t, "malloy", []scriptCheck{
		{"table-schema", func(r scriptResult) error {
			return sameList("columns Malloy read for customers", r.Names, customersColumns)
		}},
		{"sql-schema", func(r scriptResult) error {
			return sameList("columns Malloy read for SELECT * FROM customers", r.Names, customersColumns)
		}},
		{"report", func(r scriptResult) error {
			return firstErr(onlyAcme(r.Tenants), wantCount("orders in the report", r.Counts["orders"], truth.orders),
				sameList("report revenue", []string{r.Values["revenue"]}, []string{truth.revenue}),
				sameSet("regions", r.Names, keys(truth.byRegion)))
		}},
		{"nested", func(r scriptResult) error {
			if r.Counts["countries"] == 0 {
				return fmt.Errorf("the nested report has no countries")
			}
			return wantCount("orders in the nested report", r.Counts["orders"], truth.orders)
		}},
		{"symmetric", func(r scriptResult) error {
			if r.Values["symmetric"] != "true" {
				return fmt.Errorf("Malloy did not use a symmetric aggregate for the fanned-out sum")
			}
			return firstErr(wantCount("orders", r.Counts["orders"], truth.orders), wantCount("order lines", r.Counts["lines"], truth.lines),
				sameList("revenue summed over the order lines, each order once", []string{r.Values["revenue"]}, []string{truth.revenue}))
		}},
	}, "node", clientDir("malloy", "report.js"))
}

func keys(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
