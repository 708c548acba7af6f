package compat

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// testChatter runs what BI tools and drivers send when they connect, before
// any user query: settings, version and schema probes, type loading. It uses
// the simple protocol, as libpq-based tools (psql, Metabase's and Tableau's
// drivers through libpq/JDBC simple mode) do, except where a driver binds.
func testChatter(t *testing.T) {
	ctx := testCtx(t)
	simple := pgx.QueryExecModeSimpleProtocol
	check(t, "chatter", "show", withPgx(ctx, t, simple, func(conn *pgx.Conn) error {
		want := map[string]string{
			"standard_conforming_strings": "on",
			"transaction isolation level": "read committed",
			"integer_datetimes":           "on",
			"max_identifier_length":       "63",
			"client_encoding":             "UTF8",
			"server_encoding":             "UTF8",
			"statement_timeout":           "1min",
		}
		for _, name := range []string{"server_version", "server_version_num", "TimeZone", "DateStyle", "lc_collate",
			"extra_float_digits", "application_name", "IntervalStyle", "default_transaction_isolation",
			"standard_conforming_strings", "transaction isolation level", "integer_datetimes", "max_identifier_length",
			"client_encoding", "server_encoding", "transaction_read_only", "statement_timeout"} {
			vals, err := pgxStrings(ctx, conn, "SHOW "+name)
			if err != nil {
				return fmt.Errorf("SHOW %s: %w", name, err)
			}
			if w, ok := want[name]; ok && (len(vals) != 1 || vals[0] != w) {
				return fmt.Errorf("SHOW %s: got %q, want %q", name, vals, w)
			}
		}
		v, err := pgxStrings(ctx, conn, "SELECT current_setting('server_version_num')")
		if err != nil {
			return err
		}
		if len(v) != 1 || !strings.HasPrefix(v[0], "1") {
			return fmt.Errorf("server_version_num: got %q", v)
		}
		return nil
	}))
	check(t, "chatter", "version", withPgx(ctx, t, simple, func(conn *pgx.Conn) error {
		for _, q := range []string{"SELECT version()", "SELECT pg_catalog.version()"} {
			v, err := pgxStrings(ctx, conn, q)
			if err != nil {
				return err
			}
			if len(v) != 1 || !strings.HasPrefix(v[0], "PostgreSQL ") {
				return fmt.Errorf("%s: got %q, want PostgreSQL …", q, v)
			}
		}
		return nil
	}))
	check(t, "chatter", "current_schema", withPgx(ctx, t, simple, func(conn *pgx.Conn) error {
		var schema, user string
		var schemas []string
		if err := conn.QueryRow(ctx, "SELECT current_schema(), current_schemas(false), current_user").Scan(&schema, &schemas, &user); err != nil {
			return err
		}
		if schema != "public" || len(schemas) != 1 || schemas[0] != "public" {
			return fmt.Errorf("current_schema() %q, current_schemas(false) %q: want public, {public}", schema, schemas)
		}
		return nil
	}))
	check(t, "chatter", "current_database", withPgx(ctx, t, simple, func(conn *pgx.Conn) error {
		// PostgreSQL answers with the database the client connected to; pgjdbc
		// reports it as TABLE_CAT and DBeaver and Metabase compare it.
		v, err := pgxStrings(ctx, conn, "SELECT current_database()")
		if err != nil {
			return err
		}
		return sameList("current_database()", v, []string{acme(t).Database})
	}))
	check(t, "chatter", "set_config", withPgx(ctx, t, simple, func(conn *pgx.Conn) error {
		v, err := pgxStrings(ctx, conn, "SELECT pg_catalog.set_config('application_name', 'compat suite', false)")
		if err != nil {
			return err
		}
		if err := sameList("set_config result", v, []string{"compat suite"}); err != nil {
			return err
		}
		v, err = pgxStrings(ctx, conn, "SHOW application_name")
		if err != nil {
			return err
		}
		if err := sameList("application_name after set_config", v, []string{"compat suite"}); err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, "SELECT set_config('datestyle', 'ISO, MDY', false), set_config('TimeZone', 'UTC', true)"); err != nil {
			return err
		}
		_, err = conn.Exec(ctx, "SELECT pg_catalog.set_config('search_path', 'pg_temp, public', false)")
		if err := wantRefused("set_config(search_path)", err); err != nil {
			return err
		}
		_, err = conn.Exec(ctx, "SELECT set_config('statement_timeout', '0', false)")
		return wantRefused("set_config(statement_timeout, 0)", err)
	}))
	check(t, "chatter", "set", withPgx(ctx, t, simple, func(conn *pgx.Conn) error {
		for _, q := range []string{"SET extra_float_digits = 3", "SET DateStyle = 'ISO'", "SET TIME ZONE 'UTC'",
			"SET application_name = 'Metabase v0.50'", "SET client_min_messages TO warning",
			"RESET extra_float_digits", "SET extra_float_digits = 3"} {
			if _, err := conn.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		v, err := pgxStrings(ctx, conn, "SHOW extra_float_digits")
		if err != nil {
			return err
		}
		if err := sameList("extra_float_digits", v, []string{"3"}); err != nil {
			return err
		}
		for _, q := range []string{"SET search_path TO pg_temp, public", "SET ROLE postgres", "SET SESSION AUTHORIZATION postgres", "SET session_authorization = postgres", "SET statement_timeout = 0"} {
			_, err := conn.Exec(ctx, q)
			if err := wantRefused(q, err); err != nil {
				return err
			}
		}
		return nil
	}))
	check(t, "chatter", "session-characteristics", withPgx(ctx, t, simple, func(conn *pgx.Conn) error {
		// pgjdbc's setReadOnly(true) with readOnlyMode=always sends this.
		q := "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		v, err := pgxStrings(ctx, conn, "SHOW default_transaction_read_only")
		if err != nil {
			return err
		}
		if err := sameList("default_transaction_read_only", v, []string{"on"}); err != nil {
			return err
		}
		// The demo policy opens writes (its comments), so READ WRITE is accepted.
		q = "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		v, err = pgxStrings(ctx, conn, "SHOW default_transaction_read_only")
		if err != nil {
			return err
		}
		return sameList("default_transaction_read_only after READ WRITE", v, []string{"off"})
	}))
	check(t, "chatter", "discard-all", withPgx(ctx, t, simple, func(conn *pgx.Conn) error {
		// Poolers and JDBC pools send DISCARD ALL / RESET ALL between borrowers:
		// the tenant filter and the statement_timeout cap must survive both.
		for _, q := range []string{"SET application_name = 'x'", "DISCARD ALL", "RESET ALL", "DEALLOCATE ALL", "DISCARD PLANS"} {
			if _, err := conn.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		v, err := pgxStrings(ctx, conn, "SHOW statement_timeout")
		if err != nil {
			return err
		}
		if err := sameList("statement_timeout after DISCARD ALL", v, []string{"1min"}); err != nil {
			return err
		}
		return pgxAcmeBasics(ctx, conn)
	}))
	check(t, "chatter", "transaction", withPgx(ctx, t, simple, func(conn *pgx.Conn) error {
		for _, q := range []string{"BEGIN READ ONLY", "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", "SHOW transaction_read_only",
			"SELECT count(*) FROM orders", "SAVEPOINT s1", "ROLLBACK TO SAVEPOINT s1", "RELEASE SAVEPOINT s1", "COMMIT",
			"START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE", "ROLLBACK"} {
			if _, err := conn.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return nil
	}))
	check(t, "chatter", "pgjdbc-types", withPgx(ctx, t, pgx.QueryExecModeDescribeExec, func(conn *pgx.Conn) error {
		// pgjdbc's TypeInfoCache, as it asks about an OID it does not know
		// (here _int4, int4 and jsonb) and about a type name.
		for _, oid := range []uint32{1007, 23, 3802} {
			rows, err := conn.Query(ctx, `SELECT n.nspname = ANY(current_schemas(true)), n.nspname, t.typname FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON t.typnamespace = n.oid WHERE t.oid = $1`, oid)
			if err != nil {
				return err
			}
			n := 0
			for rows.Next() {
				n++
			}
			if rows.Close(); rows.Err() != nil {
				return fmt.Errorf("type %d: %w", oid, rows.Err())
			}
			if n != 1 {
				return fmt.Errorf("type %d: %d rows, want 1", oid, n)
			}
		}
		queries := []struct {
			sql string
			arg any
		}{
			{`SELECT e.typdelim FROM pg_catalog.pg_type t, pg_catalog.pg_type e WHERE t.oid = $1 and t.typelem = e.oid`, uint32(1007)},
			{`SELECT e.oid, n.nspname = ANY(current_schemas(true)), n.nspname, e.typname FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON t.typnamespace = n.oid JOIN pg_catalog.pg_type e ON t.typelem = e.oid WHERE t.oid = $1`, uint32(1007)},
			{`SELECT pg_type.oid, typname   FROM pg_catalog.pg_type   LEFT   JOIN (select ns.oid as nspoid, ns.nspname, r.r           from pg_namespace as ns           join ( select s.r, (current_schemas(false))[s.r] as nspname                    from generate_series(1, array_upper(current_schemas(false), 1)) as s(r) ) as r          using ( nspname )        ) as sp     ON sp.nspoid = typnamespace  WHERE typname = $1  ORDER BY sp.r, pg_type.oid DESC LIMIT 1`, "jsonb"},
			{`SELECT typinput='pg_catalog.array_in'::regproc as is_array, typtype, typname, pg_type.oid   FROM pg_catalog.pg_type   LEFT JOIN (select ns.oid as nspoid, ns.nspname, r.r           from pg_namespace as ns           join ( select s.r, (current_schemas(false))[s.r] as nspname                    from generate_series(1, array_upper(current_schemas(false), 1)) as s(r) ) as r          using ( nspname )        ) as sp     ON sp.nspoid = typnamespace  WHERE pg_type.oid = $1  ORDER BY sp.r, pg_type.oid DESC`, uint32(1007)},
		}
		for _, q := range queries {
			rows, err := conn.Query(ctx, q.sql, q.arg)
			if err != nil {
				return fmt.Errorf("%s: %w", oneLine(q.sql), err)
			}
			n := 0
			for rows.Next() {
				n++
			}
			if rows.Close(); rows.Err() != nil {
				return fmt.Errorf("%s: %w", oneLine(q.sql), rows.Err())
			}
			if n != 1 {
				return fmt.Errorf("%s: %d rows, want 1", oneLine(q.sql), n)
			}
		}
		return nil
	}))
	check(t, "chatter", "application_name", func() error {
		// PostgreSQL answers SHOW application_name with what the client sent
		// at startup (pgAdmin, DBeaver and Metabase set it).
		cfg, err := pgx.ParseConfig(acme(t).url())
		if err != nil {
			return err
		}
		cfg.RuntimeParams["application_name"] = "compat-startup"
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		if ps := conn.PgConn().ParameterStatus("application_name"); ps != "compat-startup" {
			return fmt.Errorf("ParameterStatus application_name %q, want compat-startup", ps)
		}
		v, err := pgxStrings(ctx, conn, "SHOW application_name")
		if err != nil {
			return err
		}
		return sameList("SHOW application_name", v, []string{"compat-startup"})
	})
	check(t, "chatter", "current_user", withPgx(ctx, t, simple, func(conn *pgx.Conn) error {
		var cu, su string
		if err := conn.QueryRow(ctx, "SELECT current_user, session_user").Scan(&cu, &su); err != nil {
			return err
		}
		return sameList("current_user, session_user", []string{cu, su}, []string{acme(t).User, acme(t).User})
	}))
	check(t, "chatter", "pg_database", withPgx(ctx, t, simple, func(conn *pgx.Conn) error {
		// pgjdbc-based tools (DBeaver) read the current database's row.
		names, err := pgxStrings(ctx, conn, "SELECT datname::text FROM pg_catalog.pg_database WHERE datallowconn AND NOT datistemplate")
		if err != nil {
			return err
		}
		return sameList("pg_database", names, []string{acme(t).Database})
	}))
	check(t, "chatter", "statement_timeout", withPgx(ctx, t, simple, func(conn *pgx.Conn) error {
		// Tools lower the timeout per query (PostgreSQL accepts it; lowering
		// cannot lift the proxy's cap of 60s, and raising it is refused).
		if _, err := conn.Exec(ctx, "SET statement_timeout = '200ms'"); err != nil {
			return err
		}
		_, err := conn.Exec(ctx, "SELECT count(*) FROM generate_series(1, 100000000000)")
		if code := sqlState(err); code != "57014" {
			return fmt.Errorf("long query under statement_timeout 200ms: got %v, want SQLSTATE 57014", err)
		}
		if _, err := conn.Exec(ctx, "RESET statement_timeout"); err != nil {
			return err
		}
		return pgxAcmeBasics(ctx, conn)
	}))
	check(t, "chatter", "parameter-status", withPgx(ctx, t, simple, func(conn *pgx.Conn) error {
		// Drivers track TimeZone and DateStyle from ParameterStatus to decode
		// timestamps; a SET must be reported like PostgreSQL does.
		for _, q := range []string{"SET TIME ZONE 'America/New_York'", "SET DateStyle = 'ISO, DMY'"} {
			if _, err := conn.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		got := []string{conn.PgConn().ParameterStatus("TimeZone"), conn.PgConn().ParameterStatus("DateStyle")}
		return sameList("ParameterStatus TimeZone, DateStyle", got, []string{"America/New_York", "ISO, DMY"})
	}))
	check(t, "chatter", "odbc-cursor", withPgx(ctx, t, simple, func(conn *pgx.Conn) error {
		// psqlODBC (Tableau, Power BI's ODBC path) with UseDeclareFetch: one
		// simple query with BEGIN, DECLARE ... WITH HOLD and the first FETCH.
		res, err := conn.PgConn().Exec(ctx, `BEGIN;declare "SQL_CUR0x1" cursor with hold for SELECT tenant_id FROM orders;fetch 100 in "SQL_CUR0x1"`).ReadAll()
		if err != nil {
			return err
		}
		if len(res) != 3 {
			return fmt.Errorf("got %d results, want 3", len(res))
		}
		rows, tenants := 0, map[string]bool{}
		for batch := res[2].Rows; len(batch) > 0; {
			for _, r := range batch {
				tenants[string(r[0])] = true
				rows++
			}
			more, err := conn.PgConn().Exec(ctx, `fetch 100 in "SQL_CUR0x1"`).ReadAll()
			if err != nil {
				return err
			}
			batch = more[0].Rows
		}
		if _, err := conn.PgConn().Exec(ctx, `close "SQL_CUR0x1";COMMIT`).ReadAll(); err != nil {
			return err
		}
		var seen []string
		for tn := range tenants {
			seen = append(seen, tn)
		}
		return firstErr(onlyAcme(seen), wantCount("rows fetched", int64(rows), acmeOrders))
	}))
	check(t, "chatter", "psqlodbc-connect", withPgx(ctx, t, simple, func(conn *pgx.Conn) error {
		// psqlODBC's connect sequence (Tableau, Power BI's ODBC path), one
		// multi-statement simple query, then its large-object type probe.
		res, err := conn.PgConn().Exec(ctx, "SET DateStyle = 'ISO';SET extra_float_digits = 2;show transaction_isolation").ReadAll()
		if err != nil {
			return err
		}
		if len(res) != 3 || len(res[2].Rows) != 1 || string(res[2].Rows[0][0]) != "read committed" {
			return fmt.Errorf("got %d results, want 3 ending in read committed", len(res))
		}
		if _, err := conn.Exec(ctx, "select oid, typbasetype from pg_type where typname = 'lo'"); err != nil {
			return err
		}
		_, err = conn.Exec(ctx, "SET client_encoding TO 'UTF8'")
		return err
	}))
	check(t, "chatter", "privilege-functions", withPgx(ctx, t, simple, func(conn *pgx.Conn) error {
		// Metabase's sync and DBeaver ask which tables they may read.
		var orders bool
		if err := conn.QueryRow(ctx, "SELECT has_table_privilege('public.orders', 'SELECT')").Scan(&orders); err != nil {
			return err
		}
		if !orders {
			return fmt.Errorf("has_table_privilege(public.orders, SELECT) = false")
		}
		var hidden bool
		err := conn.QueryRow(ctx, "SELECT has_table_privilege('public.internal_costs', 'SELECT')").Scan(&hidden)
		if err == nil && hidden {
			return fmt.Errorf("has_table_privilege(public.internal_costs, SELECT) = true")
		}
		return nil
	}))
	check(t, "chatter", "npgsql-types", withPgx(ctx, t, simple, func(conn *pgx.Conn) error {
		for _, q := range []string{npgsqlTypesSQL, npgsqlCompositesSQL, npgsqlEnumsSQL} {
			if _, err := conn.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", firstLine(strings.TrimSpace(q)), err)
			}
		}
		return nil
	}))
	check(t, "chatter", "hidden-metadata", withPgx(ctx, t, simple, func(conn *pgx.Conn) error {
		// The allowed catalogs must not describe what the policy hides:
		// internal_costs is never exposed and customers.phone is denied without
		// group pii. Either a refusal or no rows is fine; names are not.
		for _, q := range []struct{ sql, what string }{
			{"SELECT attname::text FROM pg_catalog.pg_attribute WHERE attrelid = 'internal_costs'::regclass AND attnum > 0", "columns of internal_costs"},
			{"SELECT attname::text FROM pg_catalog.pg_attribute WHERE attrelid = 'customers'::regclass AND attname = 'phone'", "customers.phone"},
			{"SELECT typname::text FROM pg_catalog.pg_type WHERE typname = 'internal_costs'", "the row type of internal_costs"},
		} {
			names, err := pgxStrings(ctx, conn, q.sql)
			if err == nil && len(names) > 0 {
				return fmt.Errorf("%s visible through the catalog: %q", q.what, names)
			}
		}
		return nil
	}))
	check(t, "chatter", "relation-oracle", withPgx(ctx, t, simple, func(conn *pgx.Conn) error {
		// A hidden relation must look like a missing one (the rewriter's rule
		// for FROM), including through a regclass cast.
		_, errHidden := pgxStrings(ctx, conn, "SELECT 'internal_costs'::regclass::text")
		_, errMissing := pgxStrings(ctx, conn, "SELECT 'no_such_relation_xyz'::regclass::text")
		if errHidden == nil || sqlState(errHidden) != sqlState(errMissing) {
			return fmt.Errorf("'internal_costs'::regclass: got %v; a missing relation gives %v", errHidden, errMissing)
		}
		return nil
	}))
	check(t, "chatter", "information_schema", withPgx(ctx, t, simple, func(conn *pgx.Conn) error {
		tables, err := pgxStrings(ctx, conn, "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'")
		if err != nil {
			return err
		}
		if err := sameSet("information_schema.tables", tables, exposedTables); err != nil {
			return err
		}
		cols, err := pgxStrings(ctx, conn, "SELECT column_name::text FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'customers' ORDER BY ordinal_position")
		if err != nil {
			return err
		}
		return sameList("information_schema.columns of customers", cols, customersColumns)
	}))
}

// Npgsql 6+'s type loading queries (PostgresDatabaseInfo), which it sends on
// the first connection to a server.
const npgsqlTypesSQL = `
SELECT ns.nspname, t.oid, t.typname, t.typtype, t.typnotnull, t.elemtypoid
FROM (
    SELECT
        typ.oid, typ.typnamespace, typ.typname, typ.typtype, typ.typrelid, typ.typnotnull, typ.relkind,
        elemtyp.oid AS elemtypoid, elemtyp.typname AS elemtypname, elemcls.relkind AS elemrelkind,
        CASE WHEN elemproc.proname='array_recv' THEN 'a' ELSE elemtyp.typtype END AS elemtyptype
    FROM (
        SELECT typ.oid, typnamespace, typname, typrelid, typnotnull, relkind, typelem AS elemoid,
            CASE WHEN proc.proname='array_recv' THEN 'a' ELSE typ.typtype END AS typtype,
            CASE
                WHEN proc.proname='array_recv' THEN typ.typelem
                WHEN typ.typtype='r' THEN rngsubtype
                WHEN typ.typtype='m' THEN (SELECT rngtypid FROM pg_range WHERE rngmultitypid = typ.oid)
                WHEN typ.typtype='d' THEN typ.typbasetype
            END AS elemtypoid
        FROM pg_type AS typ
        LEFT JOIN pg_class AS cls ON (cls.oid = typ.typrelid)
        LEFT JOIN pg_proc AS proc ON proc.oid = typ.typreceive
        LEFT JOIN pg_range ON (pg_range.rngtypid = typ.oid)
    ) AS typ
    LEFT JOIN pg_type AS elemtyp ON elemtyp.oid = elemtypoid
    LEFT JOIN pg_class AS elemcls ON (elemcls.oid = elemtyp.typrelid)
    LEFT JOIN pg_proc AS elemproc ON elemproc.oid = elemtyp.typreceive
) AS t
JOIN pg_namespace AS ns ON (ns.oid = typnamespace)
WHERE
    typtype IN ('b', 'r', 'm', 'e', 'd') OR
    (typtype = 'c' AND relkind='c') OR
    (typtype = 'p' AND typname IN ('record', 'void', 'unknown')) OR
    (typtype = 'a' AND (
        elemtyptype IN ('b', 'r', 'm', 'e', 'd') OR
        (elemtyptype = 'p' AND elemtypname IN ('record', 'void')) OR
        (elemtyptype = 'c' AND elemrelkind='c')
    ))
ORDER BY CASE
       WHEN typtype IN ('b', 'e', 'p') THEN 0
       WHEN typtype = 'r' THEN 1
       WHEN typtype = 'm' THEN 2
       WHEN typtype = 'c' THEN 3
       WHEN typtype = 'd' AND elemtyptype <> 'a' THEN 4
       WHEN typtype = 'a' THEN 5
       WHEN typtype = 'd' AND elemtyptype = 'a' THEN 6
END`

const npgsqlCompositesSQL = `
SELECT typ.oid, att.attname, att.atttypid
FROM pg_type AS typ
JOIN pg_namespace AS ns ON (ns.oid = typ.typnamespace)
JOIN pg_class AS cls ON (cls.oid = typ.typrelid)
JOIN pg_attribute AS att ON (att.attrelid = typ.typrelid)
WHERE
  (typ.typtype = 'c' AND cls.relkind='c') AND
  attnum > 0 AND
  NOT attisdropped
ORDER BY typ.oid, att.attnum`

const npgsqlEnumsSQL = `
SELECT pg_type.oid, enumlabel
FROM pg_enum
JOIN pg_type ON pg_type.oid=enumtypid
ORDER BY oid, enumsortorder`
