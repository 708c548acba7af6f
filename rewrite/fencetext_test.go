package rewrite

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	pg_query "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgwarden/pgwarden/policy"
)

// wholeDeparse makes r deparse every statement's tree whole, fences
// included: what fencetext.go must print byte for byte.
func wholeDeparse(r *Rewriter) *Rewriter {
	r.fenceText = nil
	return r
}

// TestFenceTextIdentical rewrites every golden case, the TPC-H queries and
// statements made to trouble the fence texts with and without them, and
// wants the same outcome; and checks that fence texts were used.
func TestFenceTextIdentical(t *testing.T) {
	r := demoRewriter(t, Options{CacheBytes: -1, Database: "analytics"})
	whole := wholeDeparse(demoRewriter(t, Options{CacheBytes: -1, Database: "analytics"}))
	same := func(t *testing.T, where, sql string, id *policy.Identity) {
		t.Helper()
		// Twice: the fence texts are printed with the statement on the
		// first, kept and spliced in on the second.
		clear(r.fenceText.m)
		for range 2 {
			got, gerr := r.Rewrite(context.Background(), sql, id)
			want, werr := whole.Rewrite(context.Background(), sql, id)
			if g, w := formatOutcome(got, gerr), formatOutcome(want, werr); g != w {
				t.Fatalf("%s: fence texts print\n%s\nthe whole tree\n%s", where, g, w)
			}
		}
	}
	n := 0
	for _, path := range goldenFiles(t) {
		for _, c := range readGolden(t, path) {
			id, err := parseSession(c.session)
			if err != nil {
				t.Fatal(err)
			}
			same(t, path, c.input, id)
			n++
		}
	}
	acme := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleQuerier}
	regions := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleQuerier,
		Attributes: map[string][]string{"regions": {"EU", "it's"}}}
	for _, sql := range []string{
		// Pushed-down constants of every kind, quotes and backslashes.
		`SELECT * FROM orders WHERE status = 'shipped' AND order_id = 42 AND customer_id >= -7`,
		`SELECT * FROM orders WHERE status = 'it''s' AND region <> E'back\\slash'`,
		`SELECT * FROM orders WHERE status = 'ünïcødé ✓' AND 3 < order_id`,
		`SELECT * FROM orders WHERE order_id = $1 AND status = $2 AND customer_id BETWEEN 1 AND 9`,
		`SELECT * FROM orders WHERE order_id = '12'::int AND status = 'x'::text`,
		// The sentinels' own texts in the statement.
		`SELECT * FROM orders WHERE status = 'pgwarden_fence_value' AND order_id = 1987654321`,
		`SELECT * FROM orders WHERE customer_id = $2123456789`,
		// Several fences, joins, aliases, column aliases, subqueries.
		`SELECT o.order_id, c.name FROM orders o JOIN customers c ON c.customer_id = o.customer_id WHERE o.status = 'new' AND c.country = 'FR'`,
		`SELECT * FROM orders AS x(a, b, c) WHERE a = 'acme'`,
		`SELECT (SELECT count(*) FROM orders WHERE status = 'a'), (SELECT count(*) FROM orders WHERE status = 'b')`,
		`SELECT * FROM orders o, LATERAL (SELECT * FROM order_items i WHERE i.order_id = o.order_id AND i.quantity > 2) l`,
		`SELECT * FROM orders TABLESAMPLE BERNOULLI (10) WHERE status = 'x'`,
		`WITH t AS (SELECT * FROM orders WHERE status = 'x') SELECT * FROM t JOIN orders USING (order_id)`,
		`SELECT * FROM orders WHERE status = 'a' UNION ALL SELECT * FROM orders WHERE status = 'b'`,
	} {
		same(t, sql, sql, acme)
		same(t, sql, sql, regions)
		n++
	}
	tpch := benchRewriter(t, tpchPolicy, readFile(t, "../testdata/rewrite/tpch/schema.sql"), Options{CacheBytes: -1})
	tpchWhole := wholeDeparse(benchRewriter(t, tpchPolicy, readFile(t, "../testdata/rewrite/tpch/schema.sql"), Options{CacheBytes: -1}))
	t1 := &policy.Identity{Kind: policy.KindEmbed, Tenant: "t1", Role: policy.RoleQuerier}
	for i, sql := range tpchQueries(t) {
		got, gerr := tpch.Rewrite(context.Background(), sql, t1)
		want, werr := tpchWhole.Rewrite(context.Background(), sql, t1)
		if g, w := formatOutcome(got, gerr), formatOutcome(want, werr); g != w {
			t.Fatalf("TPC-H q%02d: fence texts print\n%s\nthe whole tree\n%s", i+1, g, w)
		}
		n++
	}
	if len(r.fenceText.m) == 0 || len(tpch.fenceText.m) == 0 {
		t.Fatal("no fence text was kept")
	}
	if w := r.fenceText.wholes.Load() + tpch.fenceText.wholes.Load(); w != 0 {
		t.Fatalf("%d statements were deparsed again whole", w)
	}
	t.Logf("%d statements, %d fence texts", n, len(r.fenceText.m))
}

// TestFenceTextMarkerInStatement gives the placeholders a known marker and
// writes statements that print it: the statement is deparsed whole, the
// same as without fence texts.
func TestFenceTextMarkerInStatement(t *testing.T) {
	r := demoRewriter(t, Options{CacheBytes: -1})
	r.fenceText.marker = "pgwarden_known_"
	whole := wholeDeparse(demoRewriter(t, Options{CacheBytes: -1}))
	acme := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleQuerier}
	for _, sql := range []string{
		`SELECT 'pgwarden_known_0_' FROM orders`,
		`SELECT 'pgwarden_known_1_', * FROM orders JOIN customers USING (customer_id)`,
		`WITH pgwarden_known_0_ AS (SELECT 1) SELECT * FROM orders, pgwarden_known_0_`,
		`SELECT * FROM orders pgwarden_known_0_`,
		`SELECT * FROM orders WHERE status = 'pgwarden_known_'`,
	} {
		got, gerr := r.Rewrite(context.Background(), sql, acme)
		want, werr := whole.Rewrite(context.Background(), sql, acme)
		if g, w := formatOutcome(got, gerr), formatOutcome(want, werr); g != w {
			t.Errorf("%s:\nfence texts print\n%s\nthe whole tree\n%s", sql, g, w)
		}
	}
	if w := r.fenceText.wholes.Load(); w != 5 {
		t.Errorf("%d statements were deparsed again whole, want the 5, which all print the marker", w)
	}
}

// TestStringLiteral checks the Go printing of a pushed-down string against
// pg_query's deparser.
func TestStringLiteral(t *testing.T) {
	for _, s := range []string{"", "a", "it's", `back\slash`, `\'`, `''\\`, "ünï ✓", "tab\tnewline\n", "\x01\x7f", "E'x'", "$$"} {
		tree := &pg_query.ParseResult{Stmts: []*pg_query.RawStmt{{Stmt: selectAs("x", strConst(s))}}}
		out, err := pg_query.Deparse(tree)
		if err != nil {
			t.Fatal(err)
		}
		want := strings.TrimSuffix(strings.TrimPrefix(out, "SELECT "), " AS x")
		if got := stringLiteral(s); got != want {
			t.Errorf("stringLiteral(%q) = %s, deparser prints %s", s, got, want)
		}
	}
}

// FuzzValueText: the text fencetext prints for a pushed-down constant is the
// deparser's for every string and integer, so a spliced statement reads as
// the whole deparse would.
func FuzzValueText(f *testing.F) {
	for _, s := range []string{"", "it's", `a\b`, "\\'", "ünï", "\xff\xfe", "E'x'", "$1", "--", "/*"} {
		f.Add(s, int64(0))
	}
	f.Add("x", int64(-2147483648))
	f.Add("x", int64(2147483647))
	f.Fuzz(func(t *testing.T, s string, n int64) {
		if !utf8.ValidString(s) {
			t.Skip() // the proxy hands the rewriter UTF-8 only (pgenc)
		}
		for _, val := range []*pg_query.Node{strConst(s), intConst(n)} {
			got, _, ok := valueText(val)
			if !ok {
				continue // deparsed whole: nothing to compare
			}
			out, err := pg_query.Deparse(&pg_query.ParseResult{Stmts: []*pg_query.RawStmt{{Stmt: selectAs("x", val)}}})
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.TrimSuffix(strings.TrimPrefix(out, "SELECT "), " AS x"); got != want {
				t.Fatalf("valueText(%v) = %s, deparser prints %s", val, got, want)
			}
		}
	})
}
