package rewrite

import (
	"fmt"
	"os"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgwarden/pgwarden/internal/cstack"
)

// depthConstruct generates a statement that nests one construct n times.
type depthConstruct struct {
	name string
	gen  func(n int) string
}

func chain(head, link string, n int) string { return head + strings.Repeat(link, n) }

func nest(open, leaf, close string, n int) string {
	return strings.Repeat(open, n) + leaf + strings.Repeat(close, n)
}

// depthConstructs are the ways to nest that the estimate must bound: left
// chains (unbounded by bison), right nesting, and the flat lists it must
// not count as deep.
var depthConstructs = []depthConstruct{
	{"plus", func(n int) string { return chain("SELECT 1", "+1", n) }},
	{"plus_cols", func(n int) string { return chain("SELECT a", " + a", n) + " FROM t" }},
	{"minus", func(n int) string { return chain("SELECT 1", "-1", n) }},
	{"times", func(n int) string { return chain("SELECT 1", "*1", n) }},
	{"div", func(n int) string { return chain("SELECT 1", "/1", n) }},
	{"mod", func(n int) string { return chain("SELECT 1", "%1", n) }},
	{"pow", func(n int) string { return chain("SELECT 1", "^1", n) }},
	{"concat", func(n int) string { return chain("SELECT 'a'", "||'a'", n) }},
	{"arrow", func(n int) string { return chain("SELECT j", "->'k'", n) + " FROM t" }},
	{"arrow2", func(n int) string { return chain("SELECT j", "->>'k'", n) + " FROM t" }},
	{"contains", func(n int) string { return chain("SELECT j", " @> j", n) + " FROM t" }},
	{"less", func(n int) string { return "SELECT " + strings.Repeat("(", n) + "true" + strings.Repeat("<true)", n) }},
	{"eq", func(n int) string { return "SELECT " + strings.Repeat("(", n) + "true" + strings.Repeat("=true)", n) }},
	{"custom_op", func(n int) string { return chain("SELECT 1", " OPERATOR(pg_catalog.+) 1", n) }},
	{"and", func(n int) string { return chain("SELECT 1 WHERE true", " AND true", n) }},
	{"or", func(n int) string { return chain("SELECT 1 WHERE true", " OR true", n) }},
	{"and_or", func(n int) string { return chain("SELECT 1 WHERE true", " AND true OR true", n) }},
	{"cast", func(n int) string { return chain("SELECT 1", "::int", n) }},
	{"is_null", func(n int) string { return chain("SELECT 1", " IS NULL", n) }},
	{"is_true", func(n int) string { return chain("SELECT true", " IS TRUE", n) }},
	{"collate", func(n int) string { return chain("SELECT 'a'", ` COLLATE "C"`, n) }},
	{"at_time_zone", func(n int) string { return chain("SELECT now()", " AT TIME ZONE 'UTC'", n) }},
	{"like", func(n int) string { return "SELECT " + strings.Repeat("(", n) + "'a'" + strings.Repeat(" LIKE 'a')::text", n) }},
	{"distinct_from", func(n int) string {
		return "SELECT " + strings.Repeat("(", n) + "1" + strings.Repeat(" IS DISTINCT FROM 1)::int", n)
	}},
	{"neg", func(n int) string { return chain("SELECT ", "- ", n) + "1" }},
	{"neg_col", func(n int) string { return chain("SELECT ", "- ", n) + "a FROM t" }},
	{"cast_fn", func(n int) string { return "SELECT " + nest("CAST(", "1", " AS int)", n) }},
	{"coalesce", func(n int) string { return "SELECT " + nest("COALESCE(", "1", ", 1)", n) }},
	{"subscript", func(n int) string { return "SELECT " + nest("a[", "1", "]", n) + " FROM t" }},
	{"lateral", func(n int) string { return "SELECT 1 FROM " + nest("(t JOIN ", "t", " ON true)", n) }},
	{"not", func(n int) string { return chain("SELECT ", "NOT ", n) + "true" }},
	{"paren", func(n int) string { return "SELECT " + nest("(", "1", ")", n) }},
	{"paren_left", func(n int) string { return "SELECT " + strings.Repeat("(", n) + "1" + strings.Repeat("+1)", n) }},
	{"subquery", func(n int) string { return "SELECT " + nest("(SELECT ", "1", ")", n) }},
	{"from_subquery", func(n int) string { return "SELECT * FROM " + nest("(SELECT * FROM ", "t", ") s", n) }},
	{"exists", func(n int) string { return "SELECT " + nest("EXISTS (SELECT ", "1", ")", n) }},
	{"in_subquery", func(n int) string { return "SELECT 1 WHERE 1 IN " + nest("(SELECT 1 WHERE 1 IN ", "(1)", ")", n) }},
	{"case", func(n int) string { return "SELECT " + nest("CASE WHEN true THEN ", "1", " END", n) }},
	{"case_else", func(n int) string { return "SELECT " + nest("CASE WHEN true THEN 1 ELSE ", "1", " END", n) }},
	{"case_left", func(n int) string { return "SELECT " + nest("CASE WHEN ", "true", " THEN true END", n) }},
	{"func", func(n int) string { return "SELECT " + nest("abs(", "1", ")", n) }},
	{"array", func(n int) string { return "SELECT " + nest("ARRAY[", "1", "]", n) }},
	{"row", func(n int) string { return "SELECT " + nest("ROW(", "1", ")", n) }},
	{"in_list", func(n int) string { return "SELECT 1 WHERE 1 IN (1" + strings.Repeat(",1", n) + ")" }},
	{"select_list", func(n int) string { return "SELECT 1" + strings.Repeat(",1", n) }},
	{"union", func(n int) string { return chain("SELECT 1", " UNION SELECT 1", n) }},
	{"union_all_cols", func(n int) string { return chain("SELECT 1, 2", " UNION ALL SELECT 1, 2", n) }},
	{"union_paren", func(n int) string { return nest("(SELECT 1 UNION ", "SELECT 1", ")", n) }},
	{"intersect", func(n int) string { return chain("SELECT 1", " INTERSECT SELECT 1", n) }},
	{"join", func(n int) string { return chain("SELECT 1 FROM t", " JOIN t ON true", n) }},
	{"join_and", func(n int) string { return chain("SELECT 1 FROM t", " JOIN t ON true AND true", n) }},
	{"cross_join", func(n int) string { return chain("SELECT 1 FROM t", " CROSS JOIN t", n) }},
	{"between", func(n int) string { return "SELECT " + nest("1 BETWEEN 1 AND (", "1", ")", n) }},
	{"statements", func(n int) string { return chain("SELECT 1 UNION SELECT 1", "; SELECT 1 UNION SELECT 1", n) }},
}

// estimate is the unbounded estimate of sql's depth.
func estimate(t testing.TB, sql string) int {
	t.Helper()
	scan, err := pg_query.Scan(sql)
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	d, _ := estimateDepth(scan.Tokens, 1<<30)
	return d
}

// cStackUse is the C stack that parsing, deparsing and fingerprinting sql
// use, each measured alone (0 when the step fails).
type cStackUse struct{ parse, deparse, fingerprint int }

func (u cStackUse) max() int { return max(u.parse, u.deparse, u.fingerprint) }

func measureCStack(t testing.TB, sql string) cStackUse {
	t.Helper()
	const window = 8 << 20
	var u cStackUse
	var tree *pg_query.ParseResult
	var ok bool
	u.parse, ok = cstack.Used(window, func() {
		var err error
		if tree, err = pg_query.Parse(sql); err != nil {
			tree = nil
		}
	})
	if !ok {
		t.Skip("C stacks are measured on Linux with cgo only")
	}
	if tree == nil {
		return cStackUse{}
	}
	u.deparse, _ = cstack.Used(window, func() { _, _ = pg_query.Deparse(tree) })
	u.fingerprint, _ = cstack.Used(window, func() { _, _ = pg_query.Fingerprint(sql) })
	return u
}

// deepestAccepted is the largest n whose statement the bound accepts.
func deepestAccepted(c depthConstruct) int {
	lo, hi := 0, 1
	for accepted(c.gen(hi)) {
		lo, hi = hi, hi*2
		if hi > 1<<16 {
			return lo // flat: accepted at any length
		}
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if accepted(c.gen(mid)) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

func accepted(sql string) bool { return checkDepth(sql) == nil }

// TestDepthMeasure prints, per construct, the deepest accepted statement,
// its estimate and the C stack it uses. It measures rather than tests: run
// it with PGWARDEN_DEPTH_MEASURE=1 when changing the limit or the weights.
func TestDepthMeasure(t *testing.T) {
	if os.Getenv("PGWARDEN_DEPTH_MEASURE") == "" {
		t.Skip("set PGWARDEN_DEPTH_MEASURE=1 to measure")
	}
	fmt.Printf("%-16s %8s %6s %9s %9s %9s %9s %10s\n", "construct", "n", "est", "parse", "deparse", "fprint", "B/level", "B/unit")
	for _, c := range depthConstructs {
		n := deepestAccepted(c)
		if n >= 1<<15 {
			fmt.Printf("%-16s %8s\n", c.name, "flat")
			continue
		}
		sql := c.gen(n)
		u := measureCStack(t, sql)
		half := measureCStack(t, c.gen(n/2))
		est, estHalf := estimate(t, sql), estimate(t, c.gen(n/2))
		perLevel := float64(u.max()-half.max()) / float64(n-n/2)
		perUnit := float64(u.max()-half.max()) / float64(est-estHalf)
		fmt.Printf("%-16s %8d %6d %9d %9d %9d %9.0f %10.0f\n", c.name, n, est, u.parse, u.deparse, u.fingerprint, perLevel, perUnit)
	}
}
