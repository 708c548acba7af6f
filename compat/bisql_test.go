package compat

import (
	"context"
	"fmt"
	"sort"
	"testing"

	"github.com/jackc/pgx/v5"
)

// biQueries are the SQL shapes BI tools generate for a simple "orders by
// region" question. Each must run unchanged and give acme's numbers.
var biQueries = []struct {
	check, sql string
}{
	// Metabase qualifies every column with schema and table.
	{"metabase", `SELECT "public"."orders"."region" AS "region", count(*) AS "count" FROM "public"."orders"
		GROUP BY "public"."orders"."region" ORDER BY "public"."orders"."region" ASC LIMIT 2000`},
	{"metabase-join", `SELECT "public"."orders"."region" AS "region", count(*) AS "count" FROM "public"."orders"
		LEFT JOIN "public"."customers" ON "public"."orders"."customer_id" = "public"."customers"."customer_id"
		AND "public"."orders"."tenant_id" = "public"."customers"."tenant_id"
		GROUP BY "public"."orders"."region" ORDER BY "public"."orders"."region" ASC`},
	// Superset wraps a virtual dataset's SQL in a subquery.
	{"superset", `SELECT region AS region, COUNT(*) AS count FROM (SELECT * FROM orders) AS virtual_table
		GROUP BY region ORDER BY count DESC LIMIT 1000`},
	// Tableau aliases the table with its own name and quotes everything.
	{"tableau", `SELECT "orders"."region" AS "region", COUNT("orders"."order_id") AS "cnt:order_id:ok" FROM "public"."orders" "orders" GROUP BY 1`},
	// Power BI (Npgsql, query folding) aliases with "_".
	{"powerbi", `select "_"."region", count(1) as "C1" from "public"."orders" "_" group by "_"."region"`},
	// Grafana's $__timeGroup/$__timeFilter macros expand to this.
	{"grafana", `SELECT region, count(*) FROM (SELECT date_trunc('month', ordered_at) AS "time", region FROM orders
		WHERE ordered_at BETWEEN '2000-01-01T00:00:00Z' AND '2100-01-01T00:00:00Z') g GROUP BY region`},
	// A hand-written CTE and a join with the shared products table (DBeaver, psql users).
	{"cte-join", `WITH o AS (SELECT * FROM orders) SELECT o.region, count(DISTINCT o.order_id) FROM o
		JOIN order_items oi USING (tenant_id, order_id) JOIN products p USING (product_id) GROUP BY o.region`},
}

// sameAnswer pairs a query in the shape a tool writes with an equivalent
// that avoids the construct under test: both must run and agree.
var sameAnswer = []struct {
	check, sql, reference string
}{
	// Metabase with a report time zone buckets by day like this.
	{"at-time-zone-cast", `SELECT count(DISTINCT CAST(("public"."orders"."ordered_at" AT TIME ZONE 'UTC') AS date)) FROM "public"."orders"`,
		`SELECT count(DISTINCT date_trunc('day', timezone('UTC', ordered_at))) FROM orders`},
	{"at-time-zone-cast-short", `SELECT count(DISTINCT (ordered_at AT TIME ZONE 'UTC')::date) FROM orders`,
		`SELECT count(DISTINCT date_trunc('day', timezone('UTC', ordered_at))) FROM orders`},
	{"array-subscript", `SELECT (ARRAY[min(order_id), max(order_id)])[1]::bigint FROM orders`,
		`SELECT min(order_id)::bigint FROM orders`},
	{"array-slice", `SELECT count(*) FROM orders WHERE region = ANY ((ARRAY['EU','NA','APAC'])[:2])`,
		`SELECT count(*) FROM orders WHERE region IN ('EU', 'NA')`},
	{"typed-literals", `SELECT count(*) FROM orders WHERE ordered_at >= timestamp with time zone '2000-01-01 00:00:00.000Z'
		AND ordered_at < DATE '2100-01-01' + INTERVAL '1' DAY`, `SELECT count(*) FROM orders`},
	{"window-grouping", `SELECT count(*) FROM (SELECT region, row_number() OVER (PARTITION BY region ORDER BY total DESC) AS rn
		FROM orders GROUP BY GROUPING SETS ((region, total), ())) x WHERE rn IS NOT NULL AND region IS NOT NULL`,
		`SELECT count(*) FROM (SELECT DISTINCT region, total FROM orders) x`},
}

// regionCounts runs a query returning (region, count) rows.
func regionCounts(ctx context.Context, conn *pgx.Conn, sql string) (map[string]int64, error) {
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	var region string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&region, &n}, func() error {
		out[region] = n
		return nil
	})
	return out, err
}

func formatCounts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for _, k := range keys {
		s += fmt.Sprintf("%s=%d ", k, m[k])
	}
	return s
}

func testBISQL(t *testing.T) {
	ctx := testCtx(t)
	conn, err := pgxConnect(ctx, t, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	want, err := regionCounts(ctx, conn, "SELECT region, count(*) FROM orders GROUP BY region")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, n := range want {
		total += n
	}
	if total != acmeOrders {
		t.Fatalf("acme's orders by region add up to %d, want %d", total, acmeOrders)
	}
	for _, q := range sameAnswer {
		check(t, "bi-sql", q.check, func() error {
			var got, want int64
			if err := conn.QueryRow(ctx, q.reference).Scan(&want); err != nil {
				return fmt.Errorf("reference %s: %w", oneLine(q.reference), err)
			}
			if err := conn.QueryRow(ctx, q.sql).Scan(&got); err != nil {
				return err
			}
			return wantCount(oneLine(q.sql), got, want)
		})
	}
	for _, q := range biQueries {
		check(t, "bi-sql", q.check, func() error {
			got, err := regionCounts(ctx, conn, q.sql)
			if err != nil {
				return err
			}
			if formatCounts(got) != formatCounts(want) {
				return fmt.Errorf("orders by region: got %s, want %s", formatCounts(got), formatCounts(want))
			}
			return nil
		})
	}
}
