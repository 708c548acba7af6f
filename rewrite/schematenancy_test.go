package rewrite

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	pg_query "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
)

// tenancyFixture is testdata/tenancy: a database with three tenant schemas
// (tenant_acme, tenant_globex and initech_prod by the policy's map), a
// drifted one (tenant_hooli), the model (tenant_template) and a shared
// schema, read as a read-only role.
type tenancyFixture struct {
	admin *pgx.Conn // superuser, to change the warehouse
	ro    *pgx.Conn // what rewritten SQL runs as
	roURL string
	pol   *policy.Policy
	tc    *policy.TenantCatalog
	rw    *Rewriter
}

func newTenancyFixture(t *testing.T, retry time.Duration) *tenancyFixture {
	t.Helper()
	ctx := context.Background()
	u := pgtest.NewDatabase(t, readFile(t, "../testdata/tenancy/schema.sql")+readFile(t, "../testdata/tenancy/drift.sql"))
	admin, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	admin.Exec(ctx, "DO $$BEGIN CREATE ROLE warden_ro LOGIN PASSWORD 'pw'; EXCEPTION WHEN duplicate_object THEN NULL; END$$")
	if _, err := admin.Exec(ctx, `DO $$DECLARE s text; BEGIN
		FOR s IN SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\_%' AND nspname <> 'information_schema' LOOP
			EXECUTE format('GRANT USAGE ON SCHEMA %I TO warden_ro; GRANT SELECT ON ALL TABLES IN SCHEMA %I TO warden_ro', s, s);
		END LOOP; END$$`); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO warden_ro"); err != nil {
		t.Fatal(err)
	}
	roURL := pgtest.WithUser(t, u, "warden_ro", "pw")
	ro, err := pgx.Connect(ctx, roURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ro.Close(context.Background()) })
	p := tenancyPolicy(t)
	cat, err := policy.LoadCatalog(ctx, ro, p)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := policy.NewTenantCatalog(p, cat, policy.DialLoader(func(ctx context.Context) (*pgx.Conn, error) {
		return pgx.Connect(ctx, roURL)
	}), retry, nil)
	if err != nil {
		t.Fatal(err)
	}
	rw, err := New(p, cat, Options{CacheBytes: -1, Database: "analytics", TenantSchemas: tc})
	if err != nil {
		t.Fatal(err)
	}
	return &tenancyFixture{admin: admin, ro: ro, roURL: roURL, pol: p, tc: tc, rw: rw}
}

// tenancyPolicy is testdata/tenancy/policy.yaml with more tenants: hooli
// (whose schema drifted), umbrella (whose schema does not exist yet) and
// template (whose schema would be the model's).
func tenancyPolicy(t *testing.T) *policy.Policy {
	t.Helper()
	src := strings.Replace(readFile(t, "../testdata/tenancy/policy.yaml"), "tenants: [acme, globex, initech]",
		"tenants: [acme, globex, initech, hooli, umbrella, template]", 1)
	p, err := policy.Parse([]byte(src), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// run rewrites sql for the session line and runs it on the warehouse,
// returning every row as text (or the error of either step).
func (f *tenancyFixture) run(t *testing.T, rw *Rewriter, session, sql string) ([]string, string, error) {
	t.Helper()
	id, err := parseSession(session)
	if err != nil {
		t.Fatal(err)
	}
	res, err := rw.Rewrite(context.Background(), sql, id)
	if err != nil {
		return nil, "", err
	}
	rows, err := f.ro.Query(context.Background(), res.SQL, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return nil, res.SQL, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, res.SQL, err
		}
		out = append(out, strings.TrimSuffix(fmt.Sprintln(vals...), "\n"))
	}
	return out, res.SQL, rows.Err()
}

// TestSchemaTenancyGolden rewrites testdata/tenancy/rewrite.txt and runs
// every output that is not an error on the warehouse.
func TestSchemaTenancyGolden(t *testing.T) {
	f := newTenancyFixture(t, 0)
	path := "../testdata/tenancy/rewrite.txt"
	checkGolden(t, path, func(c *goldenCase, id *policy.Identity) string {
		res, rerr := f.rw.Rewrite(context.Background(), c.input, id)
		if rerr == nil {
			if _, err := pg_query.Parse(res.SQL); err != nil {
				t.Errorf("%s:%d: output does not parse: %v", path, c.line, err)
			}
			if _, err := f.ro.PgConn().Exec(context.Background(), res.SQL).ReadAll(); err != nil {
				t.Errorf("%s:%d: execute: %v\n%s", filepath.Base(path), c.line, err, res.SQL)
			}
			f.ro.PgConn().Exec(context.Background(), "RESET ALL").ReadAll()
		}
		return formatOutcome(res, rerr)
	})
}

// forbidden are names and values of the other tenants (and the model
// schema) that no acme session may see.
var forbidden = []string{"globex", "initech", "hooli", "tenant_template", "GLOBEX"}

// TestSchemaTenancyAttacks tries to reach another tenant's schema, its
// names or its rows from an acme session: the answer holds nothing of
// theirs, and a refusal is the one a schema that does not exist gets.
func TestSchemaTenancyAttacks(t *testing.T) {
	f := newTenancyFixture(t, 0)
	attacks := []string{
		`SELECT * FROM tenant_globex.orders`,
		`SELECT * FROM "tenant_globex"."orders"`,
		`SELECT * FROM tenant_globex . orders`,
		`SELECT * FROM analytics.tenant_globex.orders`,
		`SELECT * FROM initech_prod.customers`,
		`SELECT * FROM tenant_template.orders`,
		`SELECT 'tenant_globex.orders'::regclass`,
		`SELECT '"tenant_globex"."orders"'::regclass::oid`,
		`SELECT 'tenant_globex.orders'::text::regclass`,
		`SELECT CAST('tenant_globex.customers' AS regclass)`,
		`SELECT to_regclass('tenant_globex.orders')`,
		`SELECT has_table_privilege('tenant_globex.orders', 'select')`,
		`SELECT obj_description('tenant_globex.orders'::regclass)`,
		`SELECT attname FROM pg_attribute WHERE attrelid = 'tenant_globex.orders'::regclass`,
		`SELECT 'tenant_globex'::regnamespace`,
		`SELECT nspname FROM pg_namespace`,
		`SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname LIKE 'tenant%' OR nspname LIKE '%prod'`,
		`SELECT c.relname, n.nspname, c.relnamespace::regnamespace FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'i')`,
		`SELECT oid::regclass FROM pg_class WHERE relname IN ('orders', 'customers')`,
		`SELECT table_schema, table_name FROM information_schema.tables`,
		`SELECT table_schema, column_name FROM information_schema.columns WHERE table_name = 'customers'`,
		`SELECT schema_name FROM information_schema.schemata`,
		`SELECT object_schema, object_name, data_type FROM information_schema.element_types`,
		`SELECT DISTINCT table_catalog, table_schema FROM information_schema.tables`,
		`SELECT d.description, r.rolname FROM pg_shdescription d LEFT JOIN pg_roles r ON r.oid = d.objoid`,
		`SELECT usename FROM pg_user`,
		`SELECT c.relname, n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'S'`,
		`SELECT name, setting FROM pg_show_all_settings()`,
		`SELECT schemaname, tablename FROM pg_tables`,
		`SELECT schemaname, indexname FROM pg_indexes`,
		`SELECT typname FROM pg_type WHERE typname LIKE '%orders%' OR typname LIKE '%customers%'`,
		`SELECT pg_get_indexdef(indexrelid) FROM pg_index`,
		`SELECT relname FROM pg_stat_user_tables`,
		`SELECT relname FROM pg_catalog.pg_statio_user_tables`,
		`SELECT schemaname, tablename FROM pg_stats`,
		`SELECT relation::regclass FROM pg_locks`,
		`SELECT current_schemas(true), current_schema()`,
		`SET search_path TO tenant_globex, public`,
		`SET search_path = '"tenant_globex"'`,
		`SELECT set_config('search_path', 'tenant_globex', false)`,
		`WITH x AS (SELECT * FROM tenant_globex.orders) SELECT * FROM x`,
		`WITH customers AS (SELECT * FROM tenant_globex.customers) SELECT * FROM customers`,
		`WITH RECURSIVE orders AS (SELECT * FROM public.orders) SELECT * FROM orders`,
		`SELECT * FROM orders WHERE order_id IN (SELECT order_id FROM tenant_globex.orders)`,
		`SELECT (SELECT count(*) FROM initech_prod.orders)`,
		`SELECT * FROM "TENANT_GLOBEX".orders`,
		`SELECT * FROM public.tenant_globex`,
		`SELECT * FROM ROWS FROM (pg_catalog.pg_get_keywords()) k WHERE false`,
		`COPY tenant_globex.orders TO STDOUT`,
		`COPY (SELECT * FROM orders) TO STDOUT`,
		`SELECT name, email FROM customers`,
		`SELECT c.name, sum(o.amount) FROM orders o JOIN public.customers c USING (customer_id) GROUP BY 1`,
	}
	for _, sql := range attacks {
		rows, out, err := f.run(t, f.rw, "session tenant=acme", sql)
		if err != nil {
			// The refusal a schema that does not exist gets (its name
			// echoed as the client wrote it).
			swap := strings.NewReplacer("globex", "zzqx", "initech_prod", "zzqy_prod", "tenant_template", "tenant_zzqz")
			back := strings.NewReplacer("zzqx", "globex", "zzqy_prod", "initech_prod", "tenant_zzqz", "tenant_template")
			if other := swap.Replace(sql); other != sql {
				_, _, err2 := f.run(t, f.rw, "session tenant=acme", other)
				if err2 == nil || back.Replace(err2.Error()) != err.Error() {
					t.Errorf("%s: refused with %v, but a missing schema gets %v", sql, err, err2)
				}
			}
		}
		for _, bad := range forbidden {
			if strings.Contains(rowsAndErr(rows, err, sql), bad) {
				t.Errorf("%s: the answer names %q:\n%s\n%s", sql, bad, strings.Join(rows, "\n"), out)
			}
		}
		t.Logf("%s\n  -> %d rows, err %v", sql, len(rows), err)
	}
	// The tenant's own rows: acme has 2 customers and 4 orders.
	rows, _, err := f.run(t, f.rw, "session tenant=acme", "SELECT count(*) FROM orders UNION ALL SELECT count(*) FROM public.customers")
	if err != nil || strings.Join(rows, ",") != "4,2" {
		t.Fatalf("acme's own rows: %v %v", rows, err)
	}
}

// rowsAndErr is what an answer shows the client: its rows and its error,
// minus the names the client itself wrote (PostgreSQL echoes them).
func rowsAndErr(rows []string, err error, sql string) string {
	s := strings.Join(rows, "\n")
	if err != nil {
		msg := err.Error()
		for _, name := range []string{"tenant_globex", "initech_prod", "tenant_template", "globex"} {
			if strings.Contains(sql, name) {
				msg = strings.ReplaceAll(msg, name, "")
			}
		}
		s += "\n" + msg
	}
	return s
}

// TestSchemaTenancyNewTenant: a tenant whose schema is created after the
// rewriter was built is served at its next use, without a restart; until
// then it gets a clear refusal. The cached rewrite of one tenant is never
// another's.
func TestSchemaTenancyNewTenant(t *testing.T) {
	f := newTenancyFixture(t, time.Millisecond)
	ctx := context.Background()
	rw, err := New(f.pol, mustModel(t, f), Options{Database: "analytics", TenantSchemas: f.tc})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = f.run(t, rw, "session tenant=umbrella", "SELECT count(*) FROM orders")
	if pgerr.SQLStateOf(err) != "55000" || !strings.Contains(err.Error(), "schema tenant_umbrella does not exist") {
		t.Fatalf("before its schema exists: %v", err)
	}
	if _, err := f.admin.Exec(ctx, `CREATE SCHEMA tenant_umbrella;
		CREATE TABLE tenant_umbrella.customers (LIKE tenant_template.customers INCLUDING ALL);
		CREATE TABLE tenant_umbrella.orders (LIKE tenant_template.orders INCLUDING ALL);
		INSERT INTO tenant_umbrella.customers VALUES (1, 'u', 'u@umbrella.example', NULL);
		INSERT INTO tenant_umbrella.orders VALUES (1, 1, 'EU', 1, 5), (2, 1, 'NA', 2, 6), (3, 1, 'NA', 2, 7);
		GRANT USAGE ON SCHEMA tenant_umbrella TO warden_ro; GRANT SELECT ON ALL TABLES IN SCHEMA tenant_umbrella TO warden_ro`); err != nil {
		t.Fatal(err)
	}
	// The retry interval (1ms here) bounds how often a missing schema is
	// read again.
	deadline := time.Now().Add(30 * time.Second)
	for {
		rows, _, err := f.run(t, rw, "session tenant=umbrella", "SELECT count(*) FROM orders")
		if err == nil {
			if strings.Join(rows, ",") != "3" {
				t.Fatalf("umbrella's orders: %v", rows)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new schema is not served: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The same text, cached, for each tenant in turn: each its own rows.
	want := map[string]string{"acme": "4", "globex": "6", "initech": "8", "umbrella": "3"}
	for i := 0; i < 3; i++ {
		for _, tenant := range []string{"acme", "globex", "initech", "umbrella"} {
			rows, sql, err := f.run(t, rw, "session tenant="+tenant, "SELECT count(*) FROM orders WHERE amount > 0")
			if err != nil || strings.Join(rows, ",") != want[tenant] {
				t.Fatalf("%s: %v %v\n%s", tenant, rows, err, sql)
			}
		}
	}
}

func mustModel(t *testing.T, f *tenancyFixture) *policy.Catalog {
	t.Helper()
	cat, err := policy.LoadCatalog(context.Background(), f.ro, f.pol)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// TestSchemaTenancyCheck: policy check reads every tenant schema the policy
// can name and reports the ones that differ from the model or are missing.
func TestSchemaTenancyCheck(t *testing.T) {
	f := newTenancyFixture(t, 0)
	reps, err := policy.CheckTenantSchemas(context.Background(), f.ro, f.pol, mustModel(t, f))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range reps {
		got = append(got, fmt.Sprintf("%s %s %s", r.Tenant, r.Schema, strings.Join(r.Problems, "; ")))
	}
	want := []string{
		"acme tenant_acme ",
		"globex tenant_globex ",
		"hooli tenant_hooli relation customers: columns (customer_id integer, name text, email text, ssn text, notes text), want (customer_id integer, name text, email text, ssn text)",
		"initech initech_prod ",
		"template  the policy gives this tenant no schema",
		"umbrella tenant_umbrella schema tenant_umbrella does not exist in the warehouse",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestSchemaTenancyCatalog: psql's \dt and the schema list show the
// tenant's relations under the logical schema, and no other tenant's.
func TestSchemaTenancyCatalog(t *testing.T) {
	f := newTenancyFixture(t, 0)
	cases := []struct{ sql, want string }{
		{`SELECT n.nspname as "Schema", c.relname as "Name", CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' END as "Type"
FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r','p','') AND n.nspname <> 'pg_catalog' AND n.nspname !~ '^pg_toast' AND n.nspname <> 'information_schema'
  AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 1,2`, "public customers table|public orders table"},
		{`SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2`, "public customers|public orders|shared events|shared products"},
		{`SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname !~ '^pg_' ORDER BY 1`, "information_schema|public|shared"},
		{`SELECT c.relname FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'public') AND c.relkind = 'r' ORDER BY 1`, "customers|orders"},
		{`SELECT attname FROM pg_attribute WHERE attrelid = 'public.customers'::regclass AND attnum > 0 ORDER BY attnum`, "customer_id|name|email"},
		{`SELECT table_schema, table_name, table_type FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2`,
			"public customers BASE TABLE|public orders BASE TABLE|shared events BASE TABLE|shared products BASE TABLE"},
		{`SELECT table_schema, column_name, data_type FROM information_schema.columns WHERE table_name = 'customers' ORDER BY ordinal_position`,
			"public customer_id integer|public name text|public email text"},
		{`SELECT schema_name FROM information_schema.schemata ORDER BY 1`, "information_schema|pg_catalog|public|shared"},
		{`SELECT schemaname, tablename FROM pg_catalog.pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2`,
			"public customers|public orders|shared events|shared products"},
		{`SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'`, "3"},
		{`SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY 1`, "customers|orders"},
		// psql's \d orders (its first query) and \dn.
		{`SELECT c.oid IS NOT NULL, n.nspname, c.relname FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname OPERATOR(pg_catalog.~) '^(orders)$' COLLATE pg_catalog.default AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 2, 3`, "true public orders"},
		{`SELECT n.nspname AS "Name", pg_catalog.pg_get_userbyid(n.nspowner) IS NOT NULL AS "Owner" FROM pg_catalog.pg_namespace n
WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' ORDER BY 1`, "public true|shared true"},
	}
	for _, c := range cases {
		rows, sql, err := f.run(t, f.rw, "session tenant=acme", c.sql)
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.sql, err, sql)
		}
		if got := strings.Join(rows, "|"); got != c.want {
			t.Errorf("%s:\ngot  %s\nwant %s", c.sql, got, c.want)
		}
	}
}
