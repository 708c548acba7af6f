package rewrite

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/policy"
)

// otherTenantObjects are another tenant's objects beside the demo's: a role
// with a comment, its schema and table (with an array column and a serial),
// a view, a materialized view, a function, an enum, an index, a sequence
// owned by a hidden table's column and one owned by a denied column, a
// grant to the role on an exposed table and the session's role made a
// member of it. No session may learn of any of them.
const otherTenantObjects = `
DO $$BEGIN CREATE ROLE globex_owner; EXCEPTION WHEN duplicate_object THEN NULL; END$$;
DO $$BEGIN CREATE ROLE warden_ro LOGIN PASSWORD 'pw'; EXCEPTION WHEN duplicate_object THEN NULL; END$$;
CREATE SCHEMA globex_private AUTHORIZATION globex_owner;
CREATE TABLE globex_private.secrets (tenant_id text, secret text, tags text[], id serial);
COMMENT ON ROLE globex_owner IS 'hidden_role_comment';
CREATE SEQUENCE hidden_seq OWNED BY internal_costs.infra_cost;
CREATE SEQUENCE hidden_phone_seq OWNED BY customers.phone;
ALTER TABLE internal_costs OWNER TO globex_owner;
CREATE VIEW hidden_view AS SELECT tenant_id, infra_cost FROM internal_costs;
CREATE MATERIALIZED VIEW hidden_mv AS SELECT tenant_id, sum(infra_cost) AS infra_total FROM internal_costs GROUP BY 1;
CREATE FUNCTION hidden_fn(integer) RETURNS integer LANGUAGE sql AS 'SELECT $1';
CREATE TYPE hidden_enum AS ENUM ('globex_only');
CREATE INDEX internal_costs_infra ON internal_costs (infra_cost);
GRANT SELECT ON orders TO globex_owner;
GRANT globex_owner TO warden_ro;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO warden_ro;
`

// virtualDB is the demo database with another tenant's objects, the
// rewriter built from its catalog as the proxy builds it, and a connection
// as the read-only role that runs the rewritten SQL.
func virtualDB(t *testing.T) (*pgx.Conn, *Rewriter) {
	t.Helper()
	u := pgtest.NewDatabase(t, readFile(t, "../testdata/demo/schema.sql")+readFile(t, "../testdata/demo/data.sql")+otherTenantObjects)
	p, err := policy.Load("../testdata/demo/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.WithUser(t, u, "warden_ro", "pw"))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := policy.LoadCatalog(ctx, conn, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cat.SystemColumns("pg_class"); !ok {
		t.Fatal("the catalog has no pg_catalog columns")
	}
	r, err := New(p, cat, Options{CacheBytes: -1, Database: "analytics"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn, r
}

// TestCatalogVirtualColumns checks that every virtual catalog relation has
// the real one's columns, in order and with their types, and that system
// columns can be named.
func TestCatalogVirtualColumns(t *testing.T) {
	conn, r := virtualDB(t)
	ctx := context.Background()
	id, _ := parseSession("session tenant=acme")
	// The other tenant's names, and its objects' oids as text.
	hidden := []string{"globex", "internal_costs", "infra_cost", "hidden_", "secrets"}
	rows, err := conn.Query(ctx, `SELECT oid::text FROM pg_class WHERE relname IN ('internal_costs', 'secrets', 'hidden_view', 'hidden_mv', 'internal_costs_infra',
		'hidden_seq', 'hidden_phone_seq', 'secrets_id_seq')
		UNION ALL SELECT oid::text FROM pg_type WHERE typname IN ('hidden_enum', '_hidden_enum', 'internal_costs', 'secrets')
		UNION ALL SELECT oid::text FROM pg_proc WHERE proname = 'hidden_fn'
		UNION ALL SELECT oid::text FROM pg_namespace WHERE nspname = 'globex_private'
		UNION ALL SELECT oid::text FROM pg_roles WHERE rolname = 'globex_owner'`)
	if err != nil {
		t.Fatal(err)
	}
	oids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(oids) < 10 {
		t.Fatalf("hidden oids: %v, %v", oids, err)
	}
	var names []string
	for _, set := range []map[string]bool{catalogVirtual, statViews, initdbOnly} {
		for n := range set {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		sql := "SELECT * FROM pg_catalog." + name + " LIMIT 0"
		w, err := resultColumns(ctx, conn, sql)
		if err != nil {
			t.Errorf("%s directly: %v", name, err)
			continue
		}
		res, err := r.Rewrite(ctx, sql, id)
		if err != nil {
			t.Errorf("%s: rewrite: %v", name, err)
			continue
		}
		g, err := resultColumns(ctx, conn, res.SQL)
		if err != nil {
			t.Errorf("%s: %v\n%s", name, err, res.SQL)
			continue
		}
		if w != g {
			t.Errorf("%s: columns differ\nreal:    %s\nvirtual: %s", name, w, g)
		}
		// Every row, every column (system columns too): nothing of the
		// other tenant's objects, by name or by oid.
		all := "SELECT *, " + strings.Join(systemColumns, ", ") + " FROM pg_catalog." + name
		if catalogViews[name] || statViews[name] {
			all = "SELECT * FROM pg_catalog." + name
		}
		if res, err = r.Rewrite(ctx, all, id); err != nil {
			t.Errorf("%s: rewrite: %v", name, err)
			continue
		}
		names, rows, err := catalogRows(ctx, conn, res.SQL)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		isOid := map[string]bool{}
		for _, o := range oids {
			isOid[o] = true
		}
		// Transaction and command ids are no oids, though they may
		// coincide with one.
		xid := map[string]bool{"xmin": true, "xmax": true, "cmin": true, "cmax": true}
		for _, row := range rows {
			for j, cell := range row {
				if isOid[cell] && !(j < len(names) && xid[names[j]]) {
					t.Errorf("%s shows a hidden object's oid %s: %q", name, cell, row)
				}
				for _, h := range hidden {
					if strings.Contains(cell, h) {
						t.Errorf("%s shows %q: %q", name, h, row)
					}
				}
			}
		}
	}
	// The information_schema views: the real one's columns (the catalog
	// names replaced under their names and types), nothing of the hidden
	// objects, and the database the client connected to.
	var infos []string
	for n := range infoSchemaVirtual {
		infos = append(infos, n)
	}
	sort.Strings(infos)
	for _, name := range infos {
		sql := "SELECT * FROM information_schema." + name
		w, err := resultColumns(ctx, conn, sql+" LIMIT 0")
		if err != nil {
			t.Errorf("%s directly: %v", name, err)
			continue
		}
		res, err := r.Rewrite(ctx, sql, id)
		if err != nil {
			t.Errorf("information_schema.%s: rewrite: %v", name, err)
			continue
		}
		g, err := resultColumns(ctx, conn, res.SQL)
		if err != nil {
			t.Errorf("information_schema.%s: %v\n%s", name, err, res.SQL)
			continue
		}
		if w != g {
			t.Errorf("information_schema.%s: columns differ\nreal:    %s\nvirtual: %s", name, w, g)
		}
		gres, err := conn.PgConn().Exec(ctx, res.SQL).ReadAll()
		if err != nil {
			t.Errorf("information_schema.%s: %v", name, err)
			continue
		}
		for i, f := range gres[0].FieldDescriptions {
			isCatalog := f.Name == "catalog_name" || strings.HasSuffix(f.Name, "_catalog")
			for _, row := range gres[0].Rows {
				cell := string(row[i])
				if isCatalog && row[i] != nil && cell != "analytics" {
					t.Errorf("information_schema.%s.%s = %q, want the connected database (analytics)", name, f.Name, cell)
				}
				for _, h := range hidden {
					if strings.Contains(cell, h) {
						t.Errorf("information_schema.%s shows %q", name, h)
					}
				}
			}
		}
	}
	// System columns, and the names of replaced expressions.
	for _, c := range []struct{ sql, want string }{
		{"SELECT c.tableoid::regclass::text, c.xmin IS NOT NULL, c.ctid IS NOT NULL FROM pg_class c WHERE c.relname = 'orders'", "tableoid,?column?,?column?"},
		{"SELECT d.xmin IS NOT NULL AS x, d.daticulocale FROM pg_database d", "x,daticulocale"},
		{"SELECT c.reloftype::pg_catalog.regtype::pg_catalog.text, c.oid::regclass, pg_get_userbyid(c.relowner) FROM pg_class c WHERE c.relname = 'orders'", "reloftype,oid,pg_get_userbyid"},
		{"SELECT pg_table_size(c.oid), pg_catalog.to_regclass('orders') FROM pg_class c WHERE c.relname = 'orders'", "pg_table_size,to_regclass"},
	} {
		res, err := r.Rewrite(ctx, c.sql, id)
		if err != nil {
			t.Errorf("%s: %v", c.sql, err)
			continue
		}
		cols, rows, err := catalogRows(ctx, conn, res.SQL)
		if err != nil || len(rows) != 1 {
			t.Errorf("%s: %v, %d rows\n%s", c.sql, err, len(rows), res.SQL)
			continue
		}
		if got := strings.Join(cols, ","); got != c.want {
			t.Errorf("%s: columns %s, want %s", c.sql, got, c.want)
		}
	}
}

// TestCatalogVirtualOracles asks the newly answered catalog relations and
// functions about another tenant's objects: each must answer as for a
// missing one, and about the session's own as PostgreSQL does.
func TestCatalogVirtualOracles(t *testing.T) {
	conn, r := virtualDB(t)
	ctx := context.Background()
	oid := func(sql string) uint32 {
		var o uint32
		if err := conn.QueryRow(ctx, sql).Scan(&o); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return o
	}
	hiddenRel := oid("SELECT 'public.internal_costs'::regclass::oid")
	hiddenRole := oid("SELECT 'globex_owner'::regrole::oid")
	hiddenSchema := oid("SELECT 'globex_private'::regnamespace::oid")
	hiddenFn := oid("SELECT 'hidden_fn'::regproc::oid")
	id, _ := parseSession("session tenant=acme")
	for _, c := range []struct {
		sql  string
		want string // the first cell of the only row, "" for no rows, "error: CODE" for an error
	}{
		{"SELECT string_agg(relname || ':' || n_live_tup || ':' || seq_scan || ':' || coalesce(last_analyze::text, '-'), ',' ORDER BY relname) FROM pg_stat_user_tables",
			"comments:0:0:-,customers:0:0:-,events:0:0:-,order_items:0:0:-,orders:0:0:-,products:0:0:-,tenants:0:0:-"},
		{"SELECT count(*) FROM pg_stat_all_tables WHERE relname IN ('internal_costs', 'secrets', 'hidden_mv')", "0"},
		{"SELECT count(*) FROM pg_stat_all_tables WHERE relname = 'pg_class' AND n_tup_ins = 0", "1"},
		{"SELECT count(*) FROM pg_statio_user_tables WHERE heap_blks_read > 0 OR heap_blks_hit > 0", "0"},
		{"SELECT string_agg(indexrelname, ',' ORDER BY indexrelname) FROM pg_stat_user_indexes WHERE relname IN ('orders', 'internal_costs')",
			"orders_pkey,orders_tenant_ordered_at"},
		{fmt.Sprintf("SELECT count(*) FROM pg_depend WHERE refobjid = %d OR objid = %d", hiddenRel, hiddenRel), "0"},
		{fmt.Sprintf("SELECT count(*) FROM pg_depend WHERE refobjid = %d OR objid = %d", hiddenSchema, hiddenSchema), "0"},
		{"SELECT count(*) > 0 FROM pg_depend WHERE refobjid = 'orders'::regclass", "t"},
		{fmt.Sprintf("SELECT count(*) FROM pg_auth_members WHERE roleid = %d OR member = %d", hiddenRole, hiddenRole), "0"},
		{"SELECT count(*) FROM pg_roles WHERE rolname = 'globex_owner'", "0"},
		{"SELECT count(*) FROM pg_roles WHERE rolname = CURRENT_USER", "1"},
		// pgjdbc's privilege queries join relowner on pg_roles.
		{"SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE c.relname = 'orders'", "1"},
		{fmt.Sprintf("SELECT pg_get_userbyid(%d) IS NULL", hiddenRole), "t"},
		{fmt.Sprintf("SELECT '%d'::regrole IS NULL", hiddenRole), "t"},
		{"SELECT position('globex_owner' IN c.relacl::text) FROM pg_class c WHERE c.relname = 'orders'", "0"},
		{"SELECT position('warden_ro=r/' IN c.relacl::text) > 0 FROM pg_class c WHERE c.relname = 'orders'", "t"},
		{"SELECT string_agg(extname, ',') FROM pg_extension", "plpgsql"},
		{"SELECT count(*) FROM pg_matviews", "0"},
		{"SELECT count(*) FROM pg_views WHERE schemaname = 'public'", "0"},
		{"SELECT count(*) > 100 FROM pg_timezone_names", "t"},
		{"SELECT count(*) > 10 FROM pg_timezone_abbrevs", "t"},
		{"SELECT count(*) FROM pg_settings WHERE name IN ('data_directory', 'config_file', 'hba_file')", "0"},
		{"SELECT setting FROM pg_settings WHERE name = 'max_identifier_length'", "63"},
		{"SELECT count(*) FROM pg_type WHERE typname IN ('hidden_enum', '_hidden_enum', 'hidden_mv', 'secrets')", "0"},
		{"SELECT count(*) FROM pg_enum WHERE enumlabel = 'globex_only'", "0"},
		{"SELECT count(*) FROM pg_namespace WHERE nspname = 'globex_private'", "0"},
		{"SELECT has_schema_privilege('public', 'USAGE')", "t"},
		{"SELECT has_schema_privilege('globex_private', 'USAGE') IS NULL", "t"},
		{fmt.Sprintf("SELECT has_schema_privilege(%d, 'USAGE') IS NULL", hiddenSchema), "t"},
		{"SELECT has_schema_privilege('globex_owner', 'public', 'USAGE') IS NULL", "t"},
		{"SELECT count(*) FROM pg_namespace n WHERE has_schema_privilege(n.oid, 'USAGE') AND n.nspname = 'public'", "1"},
		{"SELECT has_table_privilege('globex_owner', 'orders', 'SELECT') IS NULL", "t"},
		{fmt.Sprintf("SELECT pg_get_function_result(%d) IS NULL", hiddenFn), "t"},
		{"SELECT pg_get_function_result('pg_catalog.now'::regproc)", "timestamp with time zone"},
		{"SELECT pg_get_function_arguments('pg_catalog.lower(text)'::regprocedure)", "text"},
		{"SELECT 'hidden_fn'::regproc IS NULL", "t"},
		{"SELECT to_regproc('hidden_fn') IS NULL", "t"},
		{"SELECT count(*) FROM pg_proc WHERE proname = 'hidden_fn'", "0"},
		{"SELECT to_regclass('internal_costs') IS NULL", "t"},
		{"SELECT to_regclass('globex_private.secrets') IS NULL", "t"},
		{"SELECT to_regclass('orders')::text", "orders"},
		{fmt.Sprintf("SELECT to_regclass('%d') IS NULL", hiddenRel), "t"},
		{"SELECT to_regtype('hidden_enum') IS NULL", "t"},
		{"SELECT to_regtype('integer')::text", "integer"},
		{"SELECT to_regnamespace('globex_private') IS NULL", "t"},
		{"SELECT to_regnamespace('public')::text", "public"},
		{"SELECT to_regrole('globex_owner') IS NULL", "t"},
		{"SELECT pg_relation_size('orders')", "0"},
		{"SELECT pg_total_relation_size('orders'::regclass)", "0"},
		{"SELECT pg_indexes_size(c.oid) FROM pg_class c WHERE c.relname = 'orders'", "0"},
		{fmt.Sprintf("SELECT pg_table_size(%d) IS NULL", hiddenRel), "t"},
		{"SELECT pg_table_size('internal_costs')", "error: 42P01"},
		{"SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace", "0 bytes"},
		{"SELECT (proargtypes::regtype[])::text FROM pg_proc WHERE oid = 'pg_catalog.lower(text)'::regprocedure", "[0:0]={text}"},
		{"SELECT (proargtypes::regtype[])::text FROM pg_proc WHERE oid = 'pg_catalog.now()'::regprocedure", "{}"},
		{"SELECT (ARRAY['hidden_enum'::regtype::oid, 'integer'::regtype::oid]::regtype[])::text", "{NULL,integer}"},
		{fmt.Sprintf("SELECT (ARRAY[%d]::oid[]::regproc[])::text", hiddenFn), "{NULL}"},
		{"SELECT (NULL::oid[]::regtype[]) IS NULL", "t"},
		{"SELECT pg_get_viewdef('hidden_view') IS NULL", "t"},
		{"SELECT pg_get_viewdef('orders'::regclass, true) IS NULL", "t"},
		{fmt.Sprintf("SELECT pg_get_functiondef(%d) IS NULL", hiddenFn), "t"},
		{"SELECT pg_get_functiondef('pg_catalog.lower(text)'::regprocedure) LIKE '%lower%'", "t"},
		// Shared objects' comments, users, the own backend's GSSAPI row.
		{"SELECT count(*) FROM pg_shdescription WHERE description = 'hidden_role_comment'", "0"},
		{fmt.Sprintf("SELECT count(*) FROM pg_shdescription WHERE objoid = %d", hiddenRole), "0"},
		{"SELECT count(*) FROM pg_user WHERE usename = 'globex_owner'", "0"},
		{"SELECT count(*) FROM pg_user WHERE usename = CURRENT_USER", "1"},
		{"SELECT count(*) FROM pg_user WHERE usename <> CURRENT_USER AND useconfig IS NOT NULL", "0"},
		{"SELECT count(*) FROM pg_user u JOIN pg_class c ON c.relowner = u.usesysid WHERE c.relname = 'orders'", "1"},
		{"SELECT count(*) FROM pg_stat_gssapi", "1"},
		{"SELECT gss_authenticated::text || encrypted::text || coalesce(principal, '-') FROM pg_stat_gssapi WHERE pid = pg_backend_pid()", "falsefalse-"},
		// pg_show_all_settings() is pg_settings.
		{"SELECT count(*) FROM pg_show_all_settings() WHERE name IN ('data_directory', 'config_file', 'hba_file')", "0"},
		{"SELECT s.setting FROM pg_catalog.pg_show_all_settings() s WHERE s.name = 'max_identifier_length'", "63"},
		{"SELECT set_config('bytea_output', 'hex', false) FROM pg_show_all_settings() WHERE name = 'bytea_output'", "hex"},
		{"SELECT count(*) FROM pg_show_all_settings() WITH ORDINALITY", "error: 42501"},
		{"SELECT source FROM pg_settings WHERE name = 'standard_conforming_strings'", "default"},
		// has_database_privilege: the connected database only.
		{"SELECT has_database_privilege('analytics', 'CONNECT')", "t"},
		{"SELECT has_database_privilege(d.oid, 'CONNECT') FROM pg_database d", "t"},
		{"SELECT has_database_privilege(d.datname, 'CONNECT') FROM pg_database d", "t"},
		{"SELECT has_database_privilege(1, 'CONNECT') IS NULL", "t"},
		{"SELECT has_database_privilege('postgres', 'CONNECT')", "error: 3D000"},
		{"SELECT has_database_privilege('globex_owner', 'analytics', 'CONNECT') IS NULL", "t"},
		// information_schema.element_types: the visible relations' arrays.
		{"SELECT count(*) FROM information_schema.element_types WHERE object_name IN ('secrets', 'internal_costs', 'hidden_view')", "0"},
		{"SELECT count(*) > 0 FROM information_schema.element_types WHERE object_schema = 'pg_catalog'", "t"},
		{"SELECT DISTINCT table_catalog FROM information_schema.tables WHERE table_schema = 'public'", "analytics"},
		// Sequences: those of visible columns (comments.comment_id's identity).
		{"SELECT string_agg(relname, ',') FROM pg_class WHERE relkind = 'S'", "comments_comment_id_seq"},
		{"SELECT count(*) FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid", "1"},
		{"SELECT pg_get_serial_sequence('comments', 'comment_id')", "public.comments_comment_id_seq"},
		{"SELECT count(*) FROM pg_attribute WHERE attrelid = 'comments_comment_id_seq'::regclass", "error: 42P01"},
		{"SELECT last_value FROM pg_sequences", "error: 42501"},
		{"SELECT pg_sequence_last_value(s.seqrelid) FROM pg_sequence s", "error: 42501"},
		{"SELECT last_value FROM comments_comment_id_seq", "error: 42501"},
		{"SELECT nextval('comments_comment_id_seq')", "error: 42501"},
		{"SELECT * FROM pg_subscription", "error: 42501"},
		{"SELECT * FROM pg_statistic", "error: 42501"},
		{"SELECT pg_database_size('analytics')", "error: 42501"},
	} {
		res, err := r.Rewrite(ctx, c.sql, id)
		got := ""
		if err != nil {
			got = "error: " + formatOutcome(nil, err)[7:12]
		} else {
			_, rows, err := catalogRows(ctx, conn, res.SQL)
			switch {
			case err != nil:
				got = "execute error: " + err.Error()
			case len(rows) > 0:
				got = rows[0][0]
			}
		}
		if got != c.want {
			t.Errorf("%s: got %q, want %q", c.sql, got, c.want)
		}
	}
}

// resultColumns runs sql and returns its result's columns as "name:typeoid,
// ...", read from the row description (pgconn's ReadAll keeps them only
// for a result with rows).
func resultColumns(ctx context.Context, conn *pgx.Conn, sql string) (string, error) {
	rr := conn.PgConn().ExecParams(ctx, sql, nil, nil, nil, nil)
	var b []string
	for _, f := range rr.FieldDescriptions() {
		b = append(b, fmt.Sprintf("%s:%d", f.Name, f.DataTypeOID))
	}
	if _, err := rr.Close(); err != nil {
		return "", err
	}
	if len(b) == 0 {
		return "", fmt.Errorf("no columns")
	}
	return strings.Join(b, ","), nil
}
