package rewrite

import (
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	pg_query "github.com/pganalyze/pg_query_go/v5"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
)

// writesExtra adds to the demo schema a relation whose unique key on name
// lacks the tenant column (the unique-key oracle) and that only the group
// editors may write.
const writesExtra = `
CREATE TABLE labels (
    tenant_id text NOT NULL,
    label_id  int  NOT NULL,
    name      text NOT NULL UNIQUE,
    PRIMARY KEY (tenant_id, label_id)
);
INSERT INTO labels VALUES ('acme', 1, 'urgent'), ('globex', 1, 'globex-secret-label');
`

// writesPolicy is the demo policy with comment_id writable (so that ON
// CONFLICT on the key can be tried) and labels.
func writesPolicy(t *testing.T) *policy.Policy {
	t.Helper()
	src := readFile(t, "../testdata/demo/policy.yaml")
	for _, r := range []struct{ old, new string }{
		{"read_only: [comment_id, created_at]", "read_only: [created_at]"},
		{"groups: [pii, analysts]", "groups: [pii, analysts, editors]"},
		{"  # public.internal_costs is deliberately", "  public.labels:\n    tenant_column: tenant_id\n" +
			"    writes: { roles: [querier], groups: [editors], insert: true, update: [name], delete: true }\n" +
			"  # public.internal_costs is deliberately"},
	} {
		if !strings.Contains(src, r.old) {
			t.Fatalf("demo policy has no %q", r.old)
		}
		src = strings.Replace(src, r.old, r.new, 1)
	}
	p, err := policy.Parse([]byte(src), "writes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func demoSetup(t *testing.T) string {
	return readFile(t, "../testdata/demo/schema.sql") + readFile(t, "../testdata/demo/data.sql") + writesExtra
}

// execWrite runs sql as one simple Query and returns its last result's rows.
func execWrite(conn *pgx.Conn, sql string) ([]string, string, error) {
	results, err := conn.PgConn().Exec(context.Background(), sql).ReadAll()
	if err != nil {
		return nil, "", err
	}
	last := results[len(results)-1]
	rows, err := rowsLines(last)
	return rows, last.CommandTag.String(), err
}

func writeState(err error) string {
	var st interface{ SQLState() string }
	if errors.As(err, &st) {
		return st.SQLState()
	}
	return ""
}

// TestWritesGoldenExecute runs every non-error output of writes.txt on the
// demo database, each in a transaction rolled back after it.
func TestWritesGoldenExecute(t *testing.T) {
	if *update {
		t.Skip("updating goldens")
	}
	u := pgtest.NewDatabase(t, demoSetup(t))
	conn, err := pgx.Connect(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	r := demoRewriter(t, Options{CacheBytes: -1, Database: "analytics"})
	n := 0
	for _, c := range readGolden(t, "../testdata/rewrite/writes.txt") {
		if strings.HasPrefix(c.want, "error:") {
			continue
		}
		id, _ := parseSession(c.session)
		res, err := r.Rewrite(context.Background(), c.input, id)
		if err != nil {
			t.Errorf("writes.txt:%d: %v", c.line, err)
			continue
		}
		n++
		if _, err := conn.Exec(context.Background(), "BEGIN"); err != nil {
			t.Fatal(err)
		}
		var err2 error
		if strings.Contains(res.SQL, "$1") {
			// A statement with parameters is prepared: planned, not run.
			_, err2 = conn.PgConn().Prepare(context.Background(), "", res.SQL, nil)
		} else {
			_, _, err2 = execWrite(conn, res.SQL)
		}
		// Integrity errors (NOT NULL of DEFAULT VALUES) mean the statement ran.
		if err := err2; err != nil && !strings.HasPrefix(writeState(err), "23") {
			t.Errorf("writes.txt:%d: execute: %v\n%s", c.line, err, res.SQL)
		}
		if _, err := conn.Exec(context.Background(), "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("executed %d write outputs", n)
}

// othersState is every row of the writable relations that is not acme's.
func othersState(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	var all []string
	for _, q := range []string{
		"SELECT 'c', tenant_id, comment_id, order_id, created_by, body, resolved, created_at FROM comments WHERE tenant_id <> 'acme'",
		"SELECT 'l', * FROM labels WHERE tenant_id <> 'acme'",
		"SELECT 'o', * FROM orders WHERE order_id <= 5",
	} {
		rows, _, err := execWrite(conn, q)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, rows...)
	}
	return all
}

// TestWriteAttacks tries, as acme, to change or learn other tenants' rows
// through every write form. Each attempt is refused or touches acme's rows
// only; other tenants' rows end as they began and no result shows them.
func TestWriteAttacks(t *testing.T) {
	u := pgtest.NewDatabase(t, demoSetup(t))
	conn, r := liveRewriter(t, u, writesPolicy(t))
	before := othersState(t, conn)
	secrets := []string{"globex secret", "u-gina", "u-ivan", "globex-secret-label", "Late delivery", "Check invoice"}
	acme := func(mod func(*policy.Identity)) *policy.Identity {
		id := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", ExternalID: "u1", Role: policy.RoleQuerier}
		if mod != nil {
			mod(id)
		}
		return id
	}
	editor := func(id *policy.Identity) { id.Groups = []string{"editors"} }
	cases := []struct {
		name string
		id   *policy.Identity
		sql  string
		// refused is the SQLSTATE the rewrite refuses with; "" when it runs.
		refused string
		// want, when set, are the rows the statement returns.
		want []string
	}{
		{"update another tenant's row by key", acme(nil), "UPDATE comments SET body = 'pwned' WHERE comment_id = 3 RETURNING comment_id", "", []string{}},
		{"delete other tenants' rows by key", acme(nil), "DELETE FROM comments WHERE comment_id IN (3, 4, 5) RETURNING comment_id", "", []string{}},
		{"update through a join", acme(nil), "UPDATE comments c SET body = 'joined' FROM orders o WHERE o.order_id = c.order_id AND o.tenant_id <> 'acme' RETURNING c.comment_id", "", []string{}},
		{"delete through USING", acme(nil), "DELETE FROM comments c USING comments g WHERE g.comment_id = c.comment_id AND g.body LIKE 'globex%' RETURNING c.comment_id", "", []string{}},
		{"copy another tenant's value through a subquery", acme(nil),
			"UPDATE comments SET body = COALESCE((SELECT x.body FROM comments x WHERE x.comment_id = 3), 'none') WHERE comment_id = 2 RETURNING body", "", []string{"none"}},
		{"ON CONFLICT on another tenant's key inserts the session's own row", acme(nil),
			"INSERT INTO comments (comment_id, order_id, body) VALUES (3, 1, 'mine') ON CONFLICT (tenant_id, comment_id) DO UPDATE SET body = 'pwned' RETURNING tenant_id, comment_id, body", "", []string{"acme|3|mine"}},
		{"ON CONFLICT without the tenant column", acme(nil),
			"INSERT INTO comments (comment_id, order_id, body) VALUES (4, 1, 'x') ON CONFLICT (comment_id) DO UPDATE SET body = 'pwned'", pgerr.InsufficientPrivilege, nil},
		{"ON CONFLICT on a constraint", acme(nil),
			"INSERT INTO comments (comment_id, order_id, body) VALUES (4, 1, 'x') ON CONFLICT ON CONSTRAINT comments_pkey DO NOTHING", pgerr.InsufficientPrivilege, nil},
		{"unique-key oracle through ON CONFLICT", acme(editor),
			"INSERT INTO labels (label_id, name) VALUES (2, 'globex-secret-label') ON CONFLICT (name) DO NOTHING", pgerr.InsufficientPrivilege, nil},
		{"through a writable CTE", acme(nil), "WITH d AS (DELETE FROM comments WHERE comment_id = 4 RETURNING *) SELECT count(*) FROM d", "", []string{"0"}},
		{"CTE reading the target's raw masked values", acme(nil), "WITH d AS (UPDATE comments SET resolved = resolved RETURNING *) SELECT created_by FROM d WHERE created_by = 'u-alice'", "", []string{}},
		{"move a row to another tenant", acme(nil), "UPDATE comments SET tenant_id = 'globex' WHERE comment_id = 1", pgerr.InsufficientPrivilege, nil},
		{"insert as another tenant", acme(nil), "INSERT INTO comments (tenant_id, order_id, body) VALUES ('globex', 1, 'x')", pgerr.InsufficientPrivilege, nil},
		{"insert ... select as another tenant", acme(nil), "INSERT INTO comments (tenant_id, order_id, body) SELECT 'globex', 1, 'x'", pgerr.InsufficientPrivilege, nil},
		{"forge the author", acme(nil), "INSERT INTO comments (order_id, body, created_by) VALUES (1, 'x', 'u-gina')", pgerr.InsufficientPrivilege, nil},
		{"masked value through RETURNING", acme(nil), "UPDATE comments SET resolved = resolved WHERE comment_id = 1 RETURNING created_by", "", []string{md5hex("u-alice")}},
		{"masked value through a RETURNING expression", acme(nil), "UPDATE comments SET resolved = resolved WHERE comment_id = 1 RETURNING upper(created_by)", pgerr.InsufficientPrivilege, nil},
		{"masked value through the whole row", acme(nil), "UPDATE comments c SET resolved = resolved WHERE comment_id = 1 RETURNING c::text", pgerr.InsufficientPrivilege, nil},
		{"masked value through WHERE", acme(nil), "DELETE FROM comments WHERE created_by = 'u-alice'", pgerr.InsufficientPrivilege, nil},
		{"masked value copied into a visible column", acme(nil), "UPDATE comments SET body = created_by", pgerr.InsufficientPrivilege, nil},
		{"errors raised on other tenants' rows", acme(nil),
			"UPDATE comments SET body = body WHERE CASE WHEN body LIKE 'globex%' THEN 1/(length(body) - length(body)) ELSE 0 END = 0 AND comment_id > 0 RETURNING comment_id", "", []string{"1", "2", "3", "6"}},
		{"write a non-writable column", acme(nil), "UPDATE comments SET order_id = 7", pgerr.InsufficientPrivilege, nil},
		{"write a read-only column", acme(nil), "INSERT INTO comments (order_id, body, created_at) VALUES (1, 'x', now())", pgerr.InsufficientPrivilege, nil},
		{"write a relation not opened", acme(nil), "DELETE FROM orders WHERE order_id = 1", pgerr.InsufficientPrivilege, nil},
		{"write a relation not listed", acme(nil), "DELETE FROM internal_costs", pgerr.InsufficientPrivilege, nil},
		{"a role without write", acme(func(id *policy.Identity) { id.Role = policy.RoleViewer; id.Groups = []string{"editors"} }),
			"DELETE FROM labels", pgerr.InsufficientPrivilege, nil},
		{"a group without write", acme(nil), "DELETE FROM labels", pgerr.InsufficientPrivilege, nil},
		{"the group that may write", acme(editor), "UPDATE labels SET name = 'urgent!' WHERE label_id = 1 RETURNING tenant_id, name", "", []string{"acme|urgent!"}},
		{"EXPLAIN of a write", acme(nil), "EXPLAIN DELETE FROM comments", pgerr.InsufficientPrivilege, nil},
		{"WHERE CURRENT OF", acme(nil), "DELETE FROM comments WHERE CURRENT OF c", pgerr.FeatureNotSupported, nil},
		{"MERGE", acme(nil), "MERGE INTO comments c USING orders o ON c.order_id = o.order_id WHEN MATCHED THEN DELETE", pgerr.FeatureNotSupported, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := r.Rewrite(context.Background(), c.sql, c.id)
			if c.refused != "" {
				if writeState(err) != c.refused {
					t.Fatalf("want refusal %s, got %v (%v)", c.refused, err, res)
				}
				return
			}
			if err != nil {
				t.Fatalf("rewrite: %v", err)
			}
			rows, _, err := execWrite(conn, res.SQL)
			if err != nil {
				t.Fatalf("execute: %v\n%s", err, res.SQL)
			}
			for _, row := range rows {
				for _, s := range secrets {
					if strings.Contains(row, s) {
						t.Errorf("result shows another tenant's value %q: %s", s, row)
					}
				}
			}
			if c.want != nil && !slices.Equal(rows, c.want) {
				t.Errorf("rows: want %q, got %q\n%s", c.want, rows, res.SQL)
			}
		})
	}
	if after := othersState(t, conn); !slices.Equal(before, after) {
		t.Errorf("other tenants' rows changed:\nbefore %q\nafter  %q", before, after)
	}
	// The unique-key oracle pgwarden cannot close: a plain unique key
	// without the tenant column answers 23505 across tenants. Operators
	// must not have one on a writable relation (README "Writes").
	res, err := r.Rewrite(context.Background(), "INSERT INTO labels (label_id, name) VALUES (2, 'globex-secret-label')", acme(editor))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := execWrite(conn, res.SQL); writeState(err) != "23505" {
		t.Errorf("want the documented 23505 of a unique key without the tenant column, got %v", err)
	}
}

func md5hex(s string) string { return fmt.Sprintf("%x", md5.Sum([]byte(s))) }

// TestWriteDifferential is the oracle for writes: the same statements run
// through pgwarden as acme on the full database and as they are on a
// database that holds only acme's rows (with the filled columns as
// defaults) return the same rows and leave acme's rows in the same state,
// and the full database's other rows as they were.
func TestWriteDifferential(t *testing.T) {
	setup := demoSetup(t)
	full := pgtest.NewDatabase(t, setup)
	only := pgtest.NewDatabase(t, setup+`
DELETE FROM comments WHERE tenant_id <> 'acme';
DELETE FROM labels WHERE tenant_id <> 'acme';
DELETE FROM order_items WHERE tenant_id <> 'acme';
DELETE FROM orders WHERE tenant_id <> 'acme';
DELETE FROM events WHERE tenant_id <> 'acme';
DELETE FROM customers WHERE tenant_id <> 'acme';
DELETE FROM internal_costs WHERE tenant_id <> 'acme';
DELETE FROM tenants WHERE tenant_id <> 'acme';
ALTER TABLE comments ALTER tenant_id SET DEFAULT 'acme', ALTER created_by SET DEFAULT 'u1';
`)
	conn, r := liveRewriter(t, full, writesPolicy(t))
	oconn, err := pgx.Connect(context.Background(), only)
	if err != nil {
		t.Fatal(err)
	}
	defer oconn.Close(context.Background())
	before := othersState(t, conn)
	// pii: RETURNING shows created_by as it is, as on the oracle.
	id := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", ExternalID: "u1", Role: policy.RoleQuerier, Groups: []string{"pii"}}
	stmts := []string{
		"INSERT INTO comments (order_id, body) VALUES (1, 'first'), (2, 'second') RETURNING comment_id, order_id, body, created_by",
		"UPDATE comments SET resolved = true WHERE order_id = 1 RETURNING comment_id, resolved",
		"UPDATE comments c SET body = c.body || ' (returned)' FROM orders o WHERE o.order_id = c.order_id AND o.status = 'returned' RETURNING c.comment_id, c.body",
		"DELETE FROM comments WHERE comment_id = 3 RETURNING comment_id",
		"INSERT INTO comments (comment_id, order_id, body) VALUES (3, 1, 'taken?') ON CONFLICT (tenant_id, comment_id) DO UPDATE SET body = excluded.body RETURNING comment_id, body",
		"INSERT INTO comments (comment_id, order_id, body) VALUES (1, 1, 'again') ON CONFLICT (tenant_id, comment_id) DO UPDATE SET body = comments.body || '+' RETURNING comment_id, body",
		"INSERT INTO comments (comment_id, order_id, body) VALUES (2, 1, 'again'), (4, 2, 'new') ON CONFLICT (tenant_id, comment_id) DO NOTHING RETURNING comment_id",
		"INSERT INTO comments (order_id, body) SELECT order_id, 'bulk ' || status FROM orders WHERE customer_id = 1 RETURNING order_id, body",
		"WITH d AS (DELETE FROM comments WHERE body LIKE 'bulk%' AND order_id > 3 RETURNING comment_id) SELECT count(*) FROM d",
		"UPDATE comments SET body = upper(body) WHERE length(body) > 12 RETURNING comment_id, body",
		"DELETE FROM comments c USING orders o WHERE o.order_id = c.order_id AND o.region = 'EU' RETURNING c.comment_id",
		"UPDATE comments SET resolved = NOT resolved WHERE comment_id IN (SELECT comment_id FROM comments WHERE NOT resolved) RETURNING comment_id, resolved",
		"WITH u AS (UPDATE comments SET body = body || '!' WHERE resolved RETURNING comment_id) INSERT INTO comments (order_id, body) SELECT 5, 'after ' || count(*) FROM u RETURNING body",
		"INSERT INTO comments DEFAULT VALUES",
		"DELETE FROM comments WHERE order_id = 99",
		"UPDATE comments SET body = 'by key' WHERE comment_id = 5",
	}
	for i, sql := range stmts {
		res, err := r.Rewrite(context.Background(), sql, id)
		if err != nil {
			t.Fatalf("#%d: rewrite: %v\n%s", i+1, err, sql)
		}
		got, gotTag, gerr := execWrite(conn, res.SQL)
		want, wantTag, werr := execWrite(oconn, sql)
		switch {
		case writeState(gerr) != writeState(werr) || (gerr == nil) != (werr == nil):
			t.Errorf("#%d: error: pgwarden %v, oracle %v\n%s", i+1, gerr, werr, res.SQL)
		case !slices.Equal(got, want) || gotTag != wantTag:
			t.Errorf("#%d: pgwarden %s %q, oracle %s %q\n%s", i+1, gotTag, got, wantTag, want, res.SQL)
		}
	}
	const state = "SELECT tenant_id, comment_id, order_id, created_by, body, resolved FROM comments WHERE tenant_id = 'acme'"
	got, _, err := execWrite(conn, state)
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := execWrite(oconn, state)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("acme's comments differ:\npgwarden %q\noracle   %q", got, want)
	}
	if len(got) < 5 {
		t.Errorf("the statements left only %d rows: the oracle compares little", len(got))
	}
	if after := othersState(t, conn); !slices.Equal(before, after) {
		t.Errorf("other tenants' rows changed:\nbefore %q\nafter  %q", before, after)
	}
}

// TestWritePolicy checks the writes: section's validation.
func TestWritePolicy(t *testing.T) {
	base := "groups: [g]\nrelations:\n  public.t:\n    tenant_column: tenant_id\n    filters: [{ sql: \"region = 'EU'\" }]\n    writes: "
	for _, c := range []struct{ writes, err string }{
		{"{ roles: [querier], insert: true }", ""},
		{"{ insert: true }", "writes.roles: missing"},
		{"{ roles: [admin], insert: true }", "unknown role"},
		{"{ roles: [no_access], insert: true }", "unknown role"},
		{"{ roles: [querier] }", "opens nothing"},
		{"{ roles: [querier], groups: [h], insert: true }", "unknown group"},
		{"{ roles: [querier], update: [tenant_id] }", "the tenant column cannot be updated"},
		{"{ roles: [querier], update: [by], fill: { by: '{{external_id}}' } }", "filled from the session"},
		{"{ roles: [querier], update: [a], read_only: [a] }", "read_only"},
		{"{ roles: [querier], update: [region] }", "used by a filter"},
		{"{ roles: [querier], insert: true, fill: { tenant_id: x } }", "always filled"},
		{"{ roles: [querier], insert: true, fill: { by: '{{attr.x}}' } }", "unknown placeholder"},
		{"{ roles: [querier], insert: true, fill: { by: 'a {{tenant}}' } }", "want one placeholder"},
		{"{ roles: [querier], insert: true, fill: { by: constant } }", ""},
		{"{ roles: [querier], insert: true, bogus: 1 }", "unknown field"},
	} {
		_, err := policy.Parse([]byte(base+c.writes+"\n"), "p.yaml")
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.writes, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: want error with %q, got %v", c.writes, c.err, err)
		}
	}
	if _, err := policy.Parse([]byte("relations:\n  public.p: { shared: true, writes: { roles: [querier], insert: true } }\n"), "p.yaml"); err == nil ||
		!strings.Contains(err.Error(), "shared relations cannot be written") {
		t.Errorf("shared writable: %v", err)
	}
}

// The fuzz oracle's part for writes (fuzz_test.go's fenceChecker): the
// target of a write is a protected relation named directly, so it is checked
// here: schema-qualified, writable, and fenced as write.go fences it.

func withOf(stmt any) *pg_query.WithClause {
	switch x := stmt.(type) {
	case *pg_query.SelectStmt:
		return x.WithClause
	case *pg_query.InsertStmt:
		return x.WithClause
	case *pg_query.UpdateStmt:
		return x.WithClause
	case *pg_query.DeleteStmt:
		return x.WithClause
	}
	return nil
}

func isWrite(m protoreflect.Message) bool {
	switch m.Interface().(type) {
	case *pg_query.InsertStmt, *pg_query.UpdateStmt, *pg_query.DeleteStmt:
		return true
	}
	return false
}

// writeTarget checks the target of an INSERT, UPDATE or DELETE.
func (c *fenceChecker) writeTarget(stmt any) {
	var rv *pg_query.RangeVar
	var where *pg_query.Node
	switch x := stmt.(type) {
	case *pg_query.InsertStmt:
		rv = x.Relation
	case *pg_query.UpdateStmt:
		rv, where = x.Relation, x.WhereClause
	case *pg_query.DeleteStmt:
		rv, where = x.Relation, x.WhereClause
	default:
		return
	}
	t := c.tmpl[rv.GetSchemaname()+"."+rv.GetRelname()]
	if t == nil || t.rel.Writes == nil {
		c.problem = "write to " + rv.GetRelname() + ", which is not writable"
		return
	}
	alias := rv.Relname
	if rv.Alias != nil {
		alias = rv.Alias.Aliasname
	}
	tenantFirst := func(w *pg_query.Node) bool {
		if b := w.GetBoolExpr(); b != nil && b.Boolop == pg_query.BoolExprType_AND_EXPR && len(b.Args) > 0 {
			w = b.Args[0]
		}
		e := w.GetAExpr()
		f := e.GetLexpr().GetColumnRef().GetFields()
		return e != nil && len(f) == 2 && f[0].GetString_().GetSval() == alias &&
			f[1].GetString_().GetSval() == t.rel.TenantColumn && e.Rexpr.GetAConst().GetSval().GetSval() == c.tenant &&
			len(e.Name) == 1 && e.Name[0].GetString_().GetSval() == "="
	}
	ins, ok := stmt.(*pg_query.InsertStmt)
	if !ok {
		if !tenantFirst(where) {
			c.problem = "write to " + rv.Relname + " lacks the tenant predicate"
		}
		return
	}
	if oc := ins.OnConflictClause; oc != nil && oc.Action == pg_query.OnConflictAction_ONCONFLICT_UPDATE && !tenantFirst(oc.WhereClause) {
		c.problem = "ON CONFLICT DO UPDATE of " + rv.Relname + " lacks the tenant predicate"
		return
	}
	col := -1
	for i, n := range ins.Cols {
		if n.GetResTarget().GetName() == t.rel.TenantColumn {
			col = i
		}
	}
	sel := ins.SelectStmt.GetSelectStmt()
	if col < 0 || sel == nil {
		c.problem = "insert into " + rv.Relname + " without its tenant column"
		return
	}
	var rows [][]*pg_query.Node
	for _, l := range sel.ValuesLists {
		rows = append(rows, l.GetList().GetItems())
	}
	if len(rows) == 0 {
		var items []*pg_query.Node
		for _, n := range sel.TargetList {
			items = append(items, n.GetResTarget().GetVal())
		}
		if len(items) > 0 && len(items[0].GetColumnRef().GetFields()) == 2 && items[0].GetColumnRef().Fields[1].GetAStar() != nil {
			// SELECT pgwarden_src.*, <filled values>: counted from the end.
			col = len(items) - (len(ins.Cols) - col)
		}
		rows = append(rows, items)
	}
	for _, items := range rows {
		if col < 0 || col >= len(items) || items[col].GetAConst().GetSval().GetSval() != c.tenant {
			c.problem = "insert into " + rv.Relname + " with another tenant column value"
			return
		}
	}
}

// TestWriteFenceChecker makes sure the fuzz oracle's part for writes can fail.
func TestWriteFenceChecker(t *testing.T) {
	r := demoRewriter(t, Options{CacheBytes: -1})
	id := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleQuerier}
	for _, tc := range []struct{ sql, want string }{
		{"UPDATE ONLY public.comments SET body = 'x'", "write to comments lacks the tenant predicate"},
		{"UPDATE ONLY public.comments SET body = 'x' WHERE comments.tenant_id = 'globex'", "write to comments lacks the tenant predicate"},
		{"UPDATE ONLY public.comments SET body = 'x' WHERE comments.tenant_id = 'acme'", ""},
		{"DELETE FROM ONLY public.comments c WHERE c.tenant_id = 'acme' AND c.comment_id = 1", ""},
		{"DELETE FROM ONLY public.orders WHERE orders.tenant_id = 'acme'", "write to orders, which is not writable"},
		{"INSERT INTO public.comments (order_id, body) VALUES (1, 'x')", "insert into comments without its tenant column"},
		{"INSERT INTO public.comments (order_id, tenant_id) VALUES (1, 'acme'), (2, 'globex')", "insert into comments with another tenant column value"},
		{"INSERT INTO public.comments (order_id, body, tenant_id, created_by) SELECT pgwarden_src.*, 'acme', 'u1' FROM (SELECT 1, 'x') pgwarden_src", ""},
		{"INSERT INTO public.comments (order_id, body, tenant_id, created_by) SELECT pgwarden_src.*, 'globex', 'u1' FROM (SELECT 1, 'x') pgwarden_src", "insert into comments with another tenant column value"},
		{"INSERT INTO public.comments (order_id, tenant_id) VALUES (1, 'acme') ON CONFLICT (tenant_id, comment_id) DO UPDATE SET body = 'x'", "ON CONFLICT DO UPDATE of comments lacks the tenant predicate"},
		{"WITH d AS (DELETE FROM ONLY public.comments) SELECT 1", "write to comments lacks the tenant predicate"},
		{"WITH o AS (SELECT * FROM orders) DELETE FROM ONLY public.comments WHERE comments.tenant_id = 'acme'", "protected relation orders outside a fenced subquery"},
	} {
		tree, err := pg_query.Parse(tc.sql)
		if err != nil {
			t.Fatal(err)
		}
		if got := checkFenced(r, id, tree); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.sql, got, tc.want)
		}
	}
}

// Users of a tenant share the rewrites of what they read, not of the
// INSERTs that fill created_by from their external id.
func TestWriteFillsNotShared(t *testing.T) {
	r := demoRewriter(t, Options{})
	user := func(ext string) *policy.Identity {
		return &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleQuerier, ExternalID: ext}
	}
	for _, sql := range []string{
		"INSERT INTO comments (order_id, body) VALUES (1, 'x')",
		"WITH n AS (insert INTO comments (order_id, body) VALUES (1, 'x') RETURNING 1) SELECT * FROM n",
	} {
		a, err := r.Rewrite(context.Background(), sql, user("u-a"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := r.Rewrite(context.Background(), sql, user("u-b"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(a.SQL, "'u-a'") || !strings.Contains(b.SQL, "'u-b'") {
			t.Errorf("%s: each user's insert must carry their own id:\n%s\n%s", sql, a.SQL, b.SQL)
		}
	}
	const read = "SELECT count(*) FROM comments"
	a, _ := r.Rewrite(context.Background(), read, user("u-a"))
	b, _ := r.Rewrite(context.Background(), read, user("u-b"))
	if a != b {
		t.Error("a read is no longer shared between a tenant's users")
	}
}

// BenchmarkWriteRewrite rewrites every accepted write of writes.txt, uncached.
func BenchmarkWriteRewrite(b *testing.B) {
	r := demoRewriter(b, Options{CacheBytes: -1})
	type input struct {
		sql string
		id  *policy.Identity
	}
	var ins []input
	for _, c := range readGoldenF(b, "../testdata/rewrite/writes.txt") {
		id := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", ExternalID: "u1", Role: policy.RoleQuerier}
		if _, err := r.Rewrite(context.Background(), c, id); err == nil {
			ins = append(ins, input{c, id})
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		in := ins[i%len(ins)]
		if _, err := r.Rewrite(context.Background(), in.sql, in.id); err != nil {
			b.Fatal(err)
		}
	}
}
