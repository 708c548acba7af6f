package rewrite

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/internal/pgtest"
)

// driverQueries reads the catalog queries psql, pgjdbc and SQLAlchemy send.
func driverQueries(t *testing.T) []string {
	t.Helper()
	var qs []string
	for _, q := range strings.Split(readFile(t, "../testdata/rewrite/catalog/driver_queries.sql"), "\n-- next\n") {
		var lines []string
		for _, l := range strings.Split(q, "\n") {
			if !strings.HasPrefix(l, "-- ") {
				lines = append(lines, l)
			}
		}
		if q := strings.TrimSpace(strings.Join(lines, "\n")); q != "" {
			qs = append(qs, q)
		}
	}
	return qs
}

// catalogRows runs a rewritten catalog query and returns every row as text
// cells, with the column names.
func catalogRows(ctx context.Context, conn *pgx.Conn, sql string) ([]string, [][]string, error) {
	res := conn.PgConn().Exec(ctx, sql)
	all, err := res.ReadAll()
	if err != nil {
		return nil, nil, err
	}
	var cols []string
	var rows [][]string
	for _, r := range all {
		cols = cols[:0]
		for _, f := range r.FieldDescriptions {
			cols = append(cols, strings.ToLower(f.Name))
		}
		for _, row := range r.Rows {
			cells := make([]string, len(row))
			for i, c := range row {
				cells[i] = string(c)
			}
			rows = append(rows, cells)
		}
	}
	return cols, rows, nil
}

// TestCatalogDriverQueries runs the catalog queries of psql (\dt, \d, \dn),
// pgjdbc (DatabaseMetaData) and SQLAlchemy (Inspector) through the rewriter
// on the demo database, describing every relation of the schema, and checks
// that each session sees exactly what it may query.
func TestCatalogDriverQueries(t *testing.T) {
	conn := demoDB(t)
	ctx := context.Background()
	r := demoRewriter(t, Options{CacheBytes: -1, MaxStatementTimeout: 5 * time.Minute, Database: "analytics"})
	oids := map[string]string{}
	for _, rel := range []string{"customers", "orders", "events", "products", "internal_costs"} {
		var oid uint32
		if err := conn.QueryRow(ctx, "SELECT $1::regclass::oid", "public."+rel).Scan(&oid); err != nil {
			t.Fatal(err)
		}
		oids[rel] = strconv.FormatUint(uint64(oid), 10)
	}
	queries := driverQueries(t)
	if len(queries) < 20 {
		t.Fatalf("read %d driver queries, want at least 20", len(queries))
	}
	hiddenNames := []string{"internal_costs", "infra_cost", "support_cost"}
	realNames := objectNames(t, conn, "analytics")
	for _, sess := range []struct {
		name, line string
		seePhone   bool
		seeEvents  bool
		hide       string // what the session may not see, dropped from the oracle database
	}{
		{"querier", "session tenant=acme", false, true, "ALTER TABLE customers DROP COLUMN phone;"},
		{"pii", "session tenant=acme groups=pii", true, true, ""},
		{"viewer", "session tenant=acme role=viewer", false, false, "ALTER TABLE customers DROP COLUMN phone; DROP TABLE events;"},
	} {
		t.Run(sess.name, func(t *testing.T) {
			id, err := parseSession(sess.line)
			if err != nil {
				t.Fatal(err)
			}
			oracle := exposedDB(t, "DROP TABLE internal_costs; "+sess.hide)
			oracleNames := objectNames(t, oracle, "analytics")
			seen := map[string]bool{}
			nonEmpty := 0
			for qi, q := range queries {
				for rel, oid := range oids {
					sql := strings.ReplaceAll(strings.ReplaceAll(q, "{{name}}", rel), "{{oid}}", oid)
					if sql == q && rel != "customers" {
						continue // not about one relation: once is enough
					}
					res, err := r.Rewrite(context.Background(), sql, id)
					if err != nil {
						t.Errorf("query %d (%s): rewrite: %v\n%s", qi, rel, err, sql)
						continue
					}
					cols, rows, err := catalogRows(ctx, conn, res.SQL)
					if err != nil {
						t.Errorf("query %d (%s): execute: %v\n%s", qi, rel, err, res.SQL)
						continue
					}
					// PostgreSQL's own answer on a database of the exposed objects alone.
					oracleOid, ok := oracleNames.oidOf["rel "+rel]
					if !ok {
						oracleOid = missingOid
					}
					_, want, err := catalogRows(ctx, oracle, strings.ReplaceAll(strings.ReplaceAll(q, "{{name}}", rel), "{{oid}}", oracleOid))
					if err != nil {
						t.Errorf("query %d (%s): on the exposed database: %v", qi, rel, err)
					} else if diff := cmp.Diff(realNames.normalize(want, oracleNames), realNames.normalize(rows, realNames)); diff != "" {
						t.Errorf("query %d (%s): the catalog answers differently from PostgreSQL on the exposed objects alone (-want +got):\n%s\n%s", qi, rel, diff, sql)
					}
					if len(rows) > 0 {
						nonEmpty++
					}
					for _, row := range rows {
						for i, cell := range row {
							for _, h := range hiddenNames {
								if strings.Contains(cell, h) {
									t.Errorf("query %d (%s): %s visible: %q", qi, rel, h, row)
								}
							}
							if i < len(cols) && cols[i] == "reltuples" && cell != "-1" {
								t.Errorf("query %d (%s): reltuples = %s", qi, rel, cell)
							}
							seen[cell] = true
							for _, w := range strings.FieldsFunc(cell, func(r rune) bool {
								return !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
							}) {
								seen[w] = true
							}
						}
					}
				}
			}
			if seen["phone"] != sess.seePhone {
				t.Errorf("customers.phone seen = %v, want %v", seen["phone"], sess.seePhone)
			}
			if seen["events"] != sess.seeEvents {
				t.Errorf("events seen = %v, want %v", seen["events"], sess.seeEvents)
			}
			for _, want := range []string{"customers", "orders", "orders_pkey", "tenant_id", "email"} {
				if !seen[want] {
					t.Errorf("%s never seen: the catalog hides too much", want)
				}
			}
			t.Logf("%d driver queries, %d results with rows", len(queries), nonEmpty)
		})
	}
}

// missingOid stands, in the exposed database, for a relation it does not
// have: the virtual catalog must answer for the real relation's oid as
// PostgreSQL does for an oid that names nothing.
const missingOid = "4000000000"

// exposedDB returns a connection (as a read-only role) to a new database with
// the demo schema, no rows, and drop applied: the exposed objects alone.
// Hidden columns are dropped rather than left out, so that attnums keep the
// real table's numbering, as the virtual catalog does.
func exposedDB(t *testing.T, drop string) *pgx.Conn {
	t.Helper()
	u := pgtest.NewDatabase(t, readFile(t, "../testdata/demo/schema.sql")+drop)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	admin.Exec(ctx, "DO $$BEGIN CREATE ROLE warden_ro LOGIN PASSWORD 'pw'; EXCEPTION WHEN duplicate_object THEN NULL; END$$")
	if _, err := admin.Exec(ctx, "GRANT SELECT ON ALL TABLES IN SCHEMA public TO warden_ro"); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, pgtest.WithUser(t, u, "warden_ro", "pw"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// dbObjects names the oids of a database's own objects, which differ
// between two databases built from the same DDL.
type dbObjects struct {
	nameOf map[string]string // oid -> "rel orders", "con orders_pkey", …
	oidOf  map[string]string
}

func objectNames(t *testing.T, conn *pgx.Conn, dbName string) dbObjects {
	t.Helper()
	rows, err := conn.Query(context.Background(), `
		SELECT oid::text, 'rel ' || relname FROM pg_class WHERE relnamespace = 'public'::regnamespace
		UNION ALL SELECT oid::text, 'type ' || typname FROM pg_type WHERE typnamespace = 'public'::regnamespace
		UNION ALL SELECT oid::text, 'con ' || conname FROM pg_constraint WHERE connamespace = 'public'::regnamespace
		UNION ALL SELECT a.oid::text, 'default ' || c.relname || '.' || a.adnum FROM pg_attrdef a JOIN pg_class c ON c.oid = a.adrelid
		UNION ALL SELECT oid::text, 'database' FROM pg_database WHERE datname = current_database()
		UNION ALL SELECT current_database(), 'database name'`)
	if err != nil {
		t.Fatal(err)
	}
	o := dbObjects{nameOf: map[string]string{}, oidOf: map[string]string{}}
	for rows.Next() {
		var oid, name string
		if err := rows.Scan(&oid, &name); err != nil {
			t.Fatal(err)
		}
		o.nameOf[oid], o.oidOf[name] = name, oid
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if _, ok := o.oidOf["rel internal_costs"]; !ok {
		o.nameOf[missingOid] = "rel internal_costs"
	}
	o.nameOf[dbName] = "database name"
	return o
}

// normalize replaces the cells that are oids (or the name) of objs's
// objects by their names, and sorts the rows: what remains should not
// depend on which database answered.
func (dbObjects) normalize(rows [][]string, objs dbObjects) []string {
	out := make([]string, len(rows))
	for i, row := range rows {
		cells := make([]string, len(row))
		for j, c := range row {
			if name, ok := objs.nameOf[c]; ok {
				c = "<" + name + ">"
			}
			cells[j] = c
		}
		out[i] = strings.Join(cells, " | ")
	}
	sort.Strings(out)
	return out
}

// TestCatalogOracles checks that hidden relations and columns look exactly
// like missing ones, whichever catalog path a query takes.
func TestCatalogOracles(t *testing.T) {
	conn := demoDB(t)
	ctx := context.Background()
	r := demoRewriter(t, Options{CacheBytes: -1, Database: "analytics"})
	var hiddenOid uint32
	if err := conn.QueryRow(ctx, "SELECT 'public.internal_costs'::regclass::oid").Scan(&hiddenOid); err != nil {
		t.Fatal(err)
	}
	id, _ := parseSession("session tenant=acme")
	for _, c := range []struct {
		sql  string
		want string // the first cell of the only row, "" for no rows, "error: CODE" for an error
	}{
		{"SELECT count(*) FROM pg_class WHERE relname = 'internal_costs'", "0"},
		{"SELECT count(*) FROM pg_class WHERE reltuples > 0 OR relpages > 0", "0"},
		{fmt.Sprintf("SELECT count(*) FROM pg_attribute WHERE attrelid = %d", hiddenOid), "0"},
		{"SELECT count(*) FROM pg_attribute WHERE attname = 'phone'", "0"},
		{"SELECT count(*) FROM pg_type WHERE typname IN ('internal_costs', '_internal_costs')", "0"},
		{"SELECT count(*) FROM pg_constraint WHERE conname LIKE 'internal_costs%'", "0"},
		{"SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname LIKE 'internal%'", "0"},
		{"SELECT count(*) FROM information_schema.tables WHERE table_name = 'internal_costs'", "0"},
		{"SELECT count(*) FROM information_schema.columns WHERE column_name = 'phone'", "0"},
		{fmt.Sprintf("SELECT %d::regclass::text IS NULL", hiddenOid), "t"},
		{fmt.Sprintf("SELECT pg_catalog.format_type((SELECT reltype FROM pg_catalog.pg_class WHERE oid = %d), NULL) IS NULL", hiddenOid), "t"},
		{fmt.Sprintf("SELECT pg_table_is_visible(%d) IS NULL", hiddenOid), "t"},
		{"SELECT 'internal_costs'::regclass", "error: 42P01"},
		{"SELECT 'no_such_relation'::regclass", "error: 42P01"},
		{"SELECT has_table_privilege('internal_costs', 'SELECT')", "error: 42P01"},
		{"SELECT has_table_privilege('orders', 'SELECT')", "t"},
		{"SELECT 'orders'::regclass::text", "orders"},
		{"SELECT current_database()", "analytics"},
		{"SELECT datname FROM pg_database", "analytics"},
		{"SELECT count(*) FROM pg_settings", "count>0"},
		{"SELECT '{internal_costs}'::regclass[]", "error: 42501"},
		{"SELECT count(*) FROM pg_class c WHERE has_table_privilege(c.oid, 'SELECT') AND c.relname = 'internal_costs'", "0"},
		{"SELECT has_table_privilege('public.internal_costs'::text, 'SELECT') IS NULL", "t"},
		{"SELECT count(*) FROM information_schema.table_constraints WHERE table_name = 'internal_costs'", "0"},
		{"SELECT count(*) FROM information_schema.key_column_usage WHERE column_name = 'phone' OR table_name = 'internal_costs'", "0"},
		// table_constraints, referential_constraints and constraint_column_usage
		// list only relations the warehouse role has more than SELECT on: empty
		// for a read-only service account, and never more than the session sees.
		{"SELECT count(*) FROM information_schema.table_constraints WHERE table_name NOT IN ('customers', 'events', 'order_items', 'orders', 'products', 'tenants')", "0"},
		{"SELECT string_agg(column_name::text, ',' ORDER BY ordinal_position) FROM information_schema.key_column_usage WHERE constraint_name = 'orders_pkey'",
			"tenant_id,order_id"},
		{"SELECT count(*) FROM information_schema.referential_constraints WHERE constraint_name LIKE 'internal%'", "0"},
		{"SELECT count(*) FROM information_schema.constraint_column_usage WHERE column_name = 'phone' OR table_name = 'internal_costs'", "0"},
		{"SELECT string_agg(tablename::text, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'",
			"comments,customers,events,order_items,orders,products,tenants"},
		{"SELECT string_agg(indexname::text, ',' ORDER BY indexname) FROM pg_indexes WHERE schemaname = 'public' AND tablename IN ('orders', 'internal_costs')",
			"orders_pkey,orders_tenant_ordered_at"},
		{"SELECT count(*) FROM information_schema.views WHERE view_definition IS NOT NULL", "0"},
		{"SELECT count(*) FROM pg_views WHERE definition IS NOT NULL", "0"},
		{"SELECT 1259::regclass = 'internal_costs'", "error: 42P01"},
		{"SELECT count(*) FROM pg_class c WHERE c.oid::regclass IN ('orders', 'customers')", "2"},
		// An unqualified argument is the client's row, not the lookup's own
		// column: each constraint gets its own definition (psql's "Referenced by").
		{"SELECT string_agg(pg_get_constraintdef(oid, true), ' | ' ORDER BY conname) FROM pg_constraint WHERE conrelid = 'orders'::regclass",
			"PRIMARY KEY (tenant_id, order_id) | CHECK (region = ANY (ARRAY['EU'::text, 'NA'::text, 'APAC'::text])) | " +
				"FOREIGN KEY (tenant_id, customer_id) REFERENCES customers(tenant_id, customer_id)"},
		{"SELECT string_agg(relname::text, ',' ORDER BY relname) FROM pg_class WHERE relname IN ('products', 'tenants', 'internal_costs') AND pg_table_is_visible(oid)",
			"products,tenants"},
		{"SELECT * FROM pg_stats", "error: 42501"},
		{"SELECT string_agg(relname || ':' || n_live_tup || ':' || seq_scan, ',' ORDER BY relname) FROM pg_stat_user_tables", "comments:0:0,customers:0:0,events:0:0,order_items:0:0,orders:0:0,products:0:0,tenants:0:0"},
		{"SELECT * FROM pg_statistic", "error: 42501"},
	} {
		res, err := r.Rewrite(context.Background(), c.sql, id)
		got := ""
		if err != nil {
			got = "error: " + formatOutcome(nil, err)[7:12]
		} else {
			_, rows, err := catalogRows(ctx, conn, res.SQL)
			switch {
			case err != nil:
				got = "execute error: " + err.Error()
			case len(rows) > 0 && c.want == "count>0":
				if rows[0][0] != "0" {
					got = "count>0"
				}
			case len(rows) > 0:
				got = rows[0][0]
			}
		}
		if got != c.want {
			t.Errorf("%s: got %q, want %q", c.sql, got, c.want)
		}
	}
}

// BenchmarkCatalogRewrite rewrites the driver catalog corpus (psql, pgjdbc,
// SQLAlchemy) uncached. One op = the whole corpus.
func BenchmarkCatalogRewrite(b *testing.B) {
	r := demoRewriter(b, Options{CacheBytes: -1, Database: "analytics"})
	id, _ := parseSession("session tenant=acme")
	var queries []string
	for _, q := range strings.Split(readFile(b, "../testdata/rewrite/catalog/driver_queries.sql"), "\n-- next\n") {
		q = strings.ReplaceAll(strings.ReplaceAll(q, "{{name}}", "orders"), "{{oid}}", "16411")
		queries = append(queries, q)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, q := range queries {
			if _, err := r.Rewrite(context.Background(), q, id); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func TestParseQualifiedName(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"orders", []string{"orders"}},
		{"Public.Orders", []string{"public", "orders"}},
		{`"My Schema"."Odd""Name"`, []string{"My Schema", `Odd"Name`}},
		{` public . orders `, []string{"public", "orders"}},
		{"a.b.c", []string{"a", "b", "c"}},
		{"", nil},
		{"a..b", nil},
		{`"unterminated`, nil},
		{`"a"b`, nil},
	} {
		got, ok := parseQualifiedName(c.in)
		if !ok {
			got = nil
		}
		if strings.Join(got, "|") != strings.Join(c.want, "|") || (c.want == nil) == ok {
			t.Errorf("parseQualifiedName(%q) = %q, %v; want %q", c.in, got, ok, c.want)
		}
	}
}
