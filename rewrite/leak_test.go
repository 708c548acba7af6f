package rewrite

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/policy"
)

// leakFunctions are what a careless warehouse admin might allow-list: a
// cheap function that shows its argument in a notice, and one that raises it.
const leakFunctions = `
CREATE FUNCTION leak(text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS
  $$BEGIN RAISE NOTICE 'leak: %', $1; RETURN true; END$$;
INSERT INTO orders VALUES ('globex', 99999, 1, 'EU', 'placed', '2024-06-01', 77777.77);
CREATE FUNCTION boom(text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS
  $$BEGIN IF $1 LIKE '%glob%' OR $1 LIKE '%initec%' THEN RAISE EXCEPTION 'boom: %', $1 USING HINT = $1; END IF; RETURN true; END$$;
`

// session is a connection that records everything the server says.
type session struct {
	conn    *pgx.Conn
	mu      sync.Mutex
	notices []string
}

func connect(t *testing.T, url string) *session {
	t.Helper()
	s := &session{}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		s.mu.Lock()
		s.notices = append(s.notices, n.Message+" "+n.Detail+" "+n.Hint)
		s.mu.Unlock()
	}
	s.conn, err = pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.conn.Close(context.Background()) })
	return s
}

// run executes sql and returns everything the client could see: rows,
// error fields and notices.
func (s *session) run(sql string) (string, error) {
	s.mu.Lock()
	s.notices = nil
	s.mu.Unlock()
	var b strings.Builder
	results, err := s.conn.PgConn().Exec(context.Background(), sql).ReadAll()
	for _, r := range results {
		for _, row := range r.Rows {
			for _, v := range row {
				b.Write(v)
				b.WriteByte('|')
			}
			b.WriteByte('\n')
		}
	}
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			fmt.Fprintf(&b, "ERROR %s %s %s %s %s\n", pe.Code, pe.Message, pe.Detail, pe.Hint, pe.Where)
		} else {
			fmt.Fprintf(&b, "ERROR %v\n", err)
		}
	}
	s.mu.Lock()
	for _, n := range s.notices {
		b.WriteString("NOTICE " + n + "\n")
	}
	s.mu.Unlock()
	s.conn.PgConn().Exec(context.Background(), "ROLLBACK").ReadAll()
	return b.String(), err
}

// leakSetup returns a read-only session on a demo database with the leaky
// functions, and a rewriter whose policy allow-lists them.
func leakSetup(t *testing.T) (*session, *Rewriter) {
	t.Helper()
	s := leakDatabase(t, "")
	pol := "functions: {allow: [leak, boom]}\n" + readFile(t, "../testdata/demo/policy.yaml")
	p, err := policy.Parse([]byte(pol), "leak.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(p, catalogFromDDL(t, readFile(t, "../testdata/demo/schema.sql")), Options{CacheBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	return s, r
}

// acmeOnly leaves a leak database holding acme's rows alone: what a rewritten
// statement run as acme must answer, had the warehouse never held the others.
const acmeOnly = `
DELETE FROM comments WHERE tenant_id <> 'acme';
DELETE FROM order_items WHERE tenant_id <> 'acme';
DELETE FROM orders WHERE tenant_id <> 'acme';
DELETE FROM events WHERE tenant_id <> 'acme';
DELETE FROM internal_costs WHERE tenant_id <> 'acme';
DELETE FROM customers WHERE tenant_id <> 'acme';
DELETE FROM tenants WHERE tenant_id <> 'acme';
`

// leakDatabase returns a read-only session on a new demo database with the
// leaky functions, after extra SQL.
func leakDatabase(t *testing.T, extra string) *session {
	t.Helper()
	setup := readFile(t, "../testdata/demo/schema.sql") + readFile(t, "../testdata/demo/data.sql") + leakFunctions + extra
	u := pgtest.NewDatabase(t, setup)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	admin.Exec(ctx, "DO $$BEGIN CREATE ROLE warden_ro LOGIN PASSWORD 'pw'; EXCEPTION WHEN duplicate_object THEN NULL; END$$")
	if _, err := admin.Exec(ctx, "GRANT SELECT ON ALL TABLES IN SCHEMA public TO warden_ro"); err != nil {
		t.Fatal(err)
	}
	admin.Close(ctx)
	return connect(t, pgtest.WithUser(t, u, "warden_ro", "pw"))
}

// sqlState is err's SQLSTATE, "" for none.
func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	if err != nil {
		return "not a PostgreSQL error: " + err.Error()
	}
	return ""
}

var otherTenants = []string{"globex", "initech", "Globex", "Initech"}

// TestNoLeak runs attacks as acme and checks that nothing the client sees
// mentions another tenant.
func TestNoLeak(t *testing.T) {
	s, r := leakSetup(t)
	attacks := []string{
		`SELECT * FROM customers`,
		`SELECT * FROM customers WHERE leak(name)`,
		`SELECT * FROM customers WHERE leak(email) AND leak(tenant_id)`,
		`SELECT * FROM customers c WHERE boom(c.name)`,
		`SELECT count(*) FROM customers WHERE 1 / (CASE WHEN name LIKE '%glob%' THEN 0 ELSE 1 END) = 1`,
		`SELECT count(*) FROM customers WHERE CASE WHEN name LIKE '%initec%' THEN name::int ELSE 1 END = 1`,
		`SELECT count(*) FROM customers WHERE email::int = 1`,
		`SELECT count(*) FROM customers WHERE name::int = 1`,
		`SELECT count(*) FROM orders o JOIN customers c ON c.customer_id = o.customer_id AND leak(c.name)`,
		`SELECT count(*) FROM orders o LEFT JOIN customers c ON boom(c.name)`,
		`SELECT (SELECT count(*) FROM customers WHERE leak(name))`,
		`SELECT count(*) FROM orders WHERE EXISTS (SELECT 1 FROM customers c WHERE boom(c.name) AND c.customer_id = orders.customer_id)`,
		`SELECT name FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE leak(tenant_id))`,
		`SELECT tenant_id, count(*) FROM orders GROUP BY tenant_id HAVING leak(tenant_id)`,
		`SELECT leak(name) FROM customers ORDER BY 1 LIMIT 1`,
		`WITH x AS (SELECT * FROM customers WHERE leak(name)) SELECT count(*) FROM x`,
		`SELECT count(*) FROM (SELECT * FROM customers) s WHERE boom(s.name)`,
		`SELECT count(*) FROM customers c, LATERAL (SELECT boom(c.name)) l`,
		`SELECT name FROM customers UNION ALL SELECT name FROM customers WHERE boom(name)`,
		`SELECT count(*) FROM events WHERE leak(payload::text)`,
		`SELECT count(*) FROM events WHERE (payload->>'tenant')::int = 1`,
		`SELECT count(*) FROM tenants WHERE leak(name) AND leak(plan)`,
		`SELECT max(tenant_id) FROM order_items WHERE leak(tenant_id)`,
		`SELECT string_agg(DISTINCT tenant_id, ',') FROM orders`,
		`SELECT count(*) FROM customers WHERE tenant_id <> 'acme'`,
		`SELECT count(*) FROM customers WHERE leak(name) OR true`,
		`SELECT row_number() OVER (ORDER BY boom(name)) FROM customers`,
		`DECLARE c CURSOR FOR SELECT * FROM customers WHERE leak(name)`,
		`EXPLAIN (COSTS OFF, VERBOSE) SELECT * FROM customers WHERE leak(name)`,
		`PREPARE p AS SELECT * FROM customers WHERE leak(name); EXECUTE p; DEALLOCATE p`,
		// Pushed-down comparisons: a parameter declared as regtype must not
		// make PostgreSQL cast other tenants' names to it. (Parameters of
		// type regclass are refused: EXECUTE would resolve hidden names.)
		`PREPARE p(oid) AS SELECT count(*) FROM customers WHERE customer_id::oid::regclass = $1; EXECUTE p(1259); DEALLOCATE p`,
		`PREPARE p(text) AS SELECT count(*) FROM customers WHERE name::text = $1::regclass::text; EXECUTE p('pg_type'); DEALLOCATE p`,
		`SELECT count(*) FROM customers WHERE customer_id = 1 AND boom(name)`,
		`SELECT name FROM customers INTERSECT SELECT name FROM customers WHERE boom(name)`,
		`SELECT count(*) FROM (VALUES (1), (2)) v(i) JOIN customers c ON c.customer_id = v.i AND boom(c.name)`,
		`SELECT name FROM customers ORDER BY boom(name), name LIMIT 3`,
		`SELECT DISTINCT ON (boom(name)) name FROM customers`,
		`SELECT boom(name), count(*) FROM customers GROUP BY 1`,
		`SELECT count(*) FROM customers WHERE name = ANY (SELECT name FROM customers WHERE leak(email))`,
		`WITH RECURSIVE r AS (SELECT name FROM customers WHERE boom(name) UNION SELECT name FROM r) SELECT count(*) FROM r`,
		`SELECT count(*) FROM customers WHERE created_at < now() AND country = 'DE' AND leak(name)`,
		`SELECT count(*) FROM orders WHERE order_id < 10 AND 1 / (CASE WHEN tenant_id LIKE 'glob%' THEN 0 ELSE 1 END) = 1`,
	}
	// With pii and analysts nothing is masked, so every attack must answer as
	// the same statement on a database holding only acme's rows: the same
	// error (an attack that fails on acme's own rows, as email::int does,
	// fails there too) or the same count. Without them, masks change values,
	// not which rows there are, so counts and errors still agree except where
	// the statement reads a masked value (listed).
	oracle := leakDatabase(t, acmeOnly)
	readsMasked := map[string]bool{
		`SELECT count(*) FROM customers WHERE email::int = 1`:             true, // fails on '***@acme.example' instead
		`SELECT count(*) FROM events WHERE (payload->>'tenant')::int = 1`: true, // the redacted payload has no 'tenant'
	}
	for _, groups := range [][]string{nil, {"pii", "analysts"}} {
		id := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleQuerier, Groups: groups}
		for _, sql := range attacks {
			res, err := r.Rewrite(context.Background(), sql, id)
			if err != nil {
				t.Errorf("%q: rewrite: %v", sql, err)
				continue
			}
			out, err := s.run(res.SQL)
			for _, other := range otherTenants {
				if strings.Contains(out, other) {
					t.Errorf("groups %v: %q leaks %s:\n%s", groups, sql, other, firstLines(out, 5))
					break
				}
			}
			if groups == nil && readsMasked[sql] {
				continue
			}
			want, wantErr := oracle.run(sql)
			if sqlState(err) != sqlState(wantErr) {
				t.Errorf("groups %v: %q: rewritten, it fails with %q; on acme's rows alone with %q\n%s",
					groups, sql, sqlState(err), sqlState(wantErr), firstLines(out, 3))
				continue
			}
			if err == nil && strings.HasPrefix(sql, "SELECT count(*)") && firstLines(out, 1) != firstLines(want, 1) {
				t.Errorf("groups %v: %q counts %q, on acme's rows alone %q", groups, sql, firstLines(out, 1), firstLines(want, 1))
			}
			if !strings.Contains(sql, "EXPLAIN") && !strings.Contains(out, "acme") && !strings.Contains(sql, "count(*)") &&
				!strings.Contains(sql, "row_number") && !strings.Contains(sql, "DECLARE") {
				t.Errorf("%q: expected to see acme's own data:\n%s", sql, firstLines(out, 5))
			}
		}
	}
}

// TestFenceIsNeeded shows that the attacks above are real: without OFFSET 0
// PostgreSQL pushes the cheap leaky function below the tenant filter.
func TestFenceIsNeeded(t *testing.T) {
	s, _ := leakSetup(t)
	out, _ := s.run(`SELECT count(*) FROM (SELECT * FROM public.customers WHERE tenant_id = 'acme') c WHERE leak(name)`)
	if !strings.Contains(out, "globex") && !strings.Contains(out, "initech") {
		t.Fatalf("unfenced subquery did not leak; the attack in TestNoLeak proves nothing:\n%s", firstLines(out, 3))
	}
}

// rowLines counts the rows in session.run's output.
func rowLines(out string) int {
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if l != "" && !strings.HasPrefix(l, "ERROR ") && !strings.HasPrefix(l, "NOTICE ") {
			n++
		}
	}
	return n
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

// TestMaskedValuesOnly checks that a session outside pii never sees a raw email.
func TestMaskedValuesOnly(t *testing.T) {
	s, r := leakSetup(t)
	id := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleQuerier}
	for _, tc := range []struct {
		sql     string
		wantErr string // SQLSTATE
		rows    int
	}{
		{`SELECT email FROM customers`, "", 200},
		// leak's notices show only masked values (checked below).
		{`SELECT c.email FROM customers c WHERE leak(c.email)`, "", 200},
		// The cast fails on the masked value, and its message shows only that.
		{`SELECT count(*) FROM customers WHERE email::int = 0`, "22P02", 0},
		// The filter sees the masked value, which matches nothing.
		{`SELECT email FROM customers WHERE email LIKE 'alice%'`, "", 0},
	} {
		sql := tc.sql
		res, err := r.Rewrite(context.Background(), sql, id)
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.run(res.SQL)
		if code := sqlState(err); code != tc.wantErr {
			t.Errorf("%q: SQLSTATE %q, want %q:\n%s", sql, code, tc.wantErr, firstLines(out, 3))
		}
		if n := rowLines(out); n != tc.rows {
			t.Errorf("%q: %d rows, want %d:\n%s", sql, n, tc.rows, firstLines(out, 3))
		}
		for _, w := range []string{"alice.", "bob.", "carol.", "dave."} {
			if strings.Contains(out, w) {
				t.Errorf("%q shows a raw email:\n%s", sql, firstLines(out, 3))
			}
		}
	}
}

// TestFenceDivisionByZero: only one globex order has total k; acme's query
// dividing by (total - K) must not fail.
func TestFenceDivisionByZero(t *testing.T) {
	s, r := leakSetup(t)
	const k = "77777.77" // only globex's order 99999 has this total
	id := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleQuerier}
	for _, sql := range []string{
		`SELECT count(*) FROM orders WHERE 1 / (total - ` + k + `) <> 0`,
		`SELECT count(*) FROM orders o JOIN customers c USING (customer_id) WHERE 1 / (o.total - ` + k + `) <> 0`,
		`SELECT count(*) FROM orders WHERE (CASE WHEN total = ` + k + ` THEN 'x' ELSE '1' END)::int = 1`,
	} {
		res, err := r.Rewrite(context.Background(), sql, id)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := s.run(res.SQL); err != nil {
			t.Errorf("%q failed on another tenant's row: %s", sql, out)
		}
	}
}
