package rewrite

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v5"
	"github.com/pganalyze/pg_query_go/v5/parser"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pgwarden/pgwarden/internal/cstack"
	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/pgerr"
)

// depthConstruct generates a statement that nests one construct n times.
type depthConstruct struct {
	name string
	gen  func(n int) string
}

// flatConstructs grow wide, not deep: accepted at any length.
var flatConstructs = map[string]bool{
	"and": true, "or": true, "and_or": true, "in_list": true, "select_list": true, "statements": true,
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
	{"like", func(n int) string {
		return "SELECT " + strings.Repeat("(", n) + "'a'" + strings.Repeat(" LIKE 'a')::text", n)
	}},
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
	{"between_not", func(n int) string { return chain("SELECT ", "NOT true BETWEEN true AND ", n) + "true" }},
	{"statements", func(n int) string { return chain("SELECT 1 UNION SELECT 1", "; SELECT 1 UNION SELECT 1", n) }},
}

// estimate is the unbounded estimate of sql's depth.
func estimate(t testing.TB, sql string) int {
	t.Helper()
	scan, err := parser.ScanToProtobuf(sql)
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	d, ok := estimateDepth(scan, 1<<30)
	if !ok {
		t.Fatalf("scan of %.40q… does not decode", sql)
	}
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

// guardedParse is what the rewriter does with client text: the bound, then
// the parse and the deparse.
func guardedParse(sql string) (*pg_query.ParseResult, error) {
	if err := checkDepth(sql); err != nil {
		return nil, err
	}
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return nil, err
	}
	if _, err := pg_query.Deparse(tree); err != nil {
		return nil, err
	}
	return tree, nil
}

// Every construct at 10^3 and 10^4 terms, and a few at 10^5 and 10^6, is
// either refused with 54001 or, when flat, accepted (parsed and deparsed
// up to 10^4 terms); nothing crashes.
func TestDepthBoundConstructs(t *testing.T) {
	big := map[string]bool{"plus": true, "cast": true, "subquery": true, "case": true, "union": true,
		"join": true, "in_list": true, "and": true}
	for _, c := range depthConstructs {
		t.Run(c.name, func(t *testing.T) {
			for _, n := range []int{1e3, 1e4, 1e5, 1e6} {
				if n > 1e4 && (!big[c.name] || testing.Short()) || n > 1e5 && c.name != "plus" {
					continue
				}
				sql := c.gen(n)
				var err error
				if n <= 1e4 {
					_, err = guardedParse(sql)
				} else if perr := checkDepth(sql); perr != nil {
					err = perr
				}
				if flatConstructs[c.name] && err != nil {
					t.Errorf("n=%d: %v, want it accepted", n, err)
				}
				if !flatConstructs[c.name] && pgerr.SQLStateOf(err) != pgerr.StatementTooComplex {
					t.Errorf("n=%d: %v, want 54001", n, err)
				}
			}
		})
	}
}

func TestDepthError(t *testing.T) {
	_, err := guardedParse(depthConstructs[0].gen(1000))
	pe, ok := err.(*pgerr.Error)
	if !ok || pe.Code != "54001" || pe.Message != "stack depth limit exceeded" ||
		!strings.Contains(pe.Detail, "pgwarden's limit") || pe.Hint == "" {
		t.Fatalf("got %#v", err)
	}
}

// The deepest statement of each construct that the bound accepts parses,
// and pg_query's C code uses well under 1 MiB of stack on it: the bound
// keeps even 2 MiB thread stacks safe without internal/cstack.
func TestDepthCStack(t *testing.T) {
	const budget = 1 << 20
	for _, c := range depthConstructs {
		if flatConstructs[c.name] {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			n := deepestAccepted(c)
			if n < 50 {
				t.Fatalf("only %d levels accepted", n)
			}
			sql := c.gen(n)
			u := measureCStack(t, sql)
			if u.parse == 0 || u.deparse == 0 || u.fingerprint == 0 {
				t.Fatalf("n=%d does not parse: %+v", n, u)
			}
			if u.max() > budget {
				t.Errorf("n=%d (estimate %d) uses %d bytes of C stack, want under %d", n, estimate(t, sql), u.max(), budget)
			}
			if d, e := protoDepth(t, sql), estimate(t, sql); d > depthK*e+depthK0 {
				t.Errorf("n=%d: tree depth %d, estimate %d: not an upper bound", n, d, e)
			}
		})
	}
}

// The estimate bounds the protobuf tree's depth: depth <= depthK*estimate+depthK0.
const (
	depthK  = 4
	depthK0 = 16
)

// protoDepth is the nesting of messages in sql's parse tree.
func protoDepth(t testing.TB, sql string) int {
	t.Helper()
	tree, err := pg_query.Parse(sql)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return messageDepth(tree.ProtoReflect())
}

func messageDepth(m protoreflect.Message) int {
	d := 0
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				d = max(d, messageDepth(l.Get(i).Message()))
			}
		case fd.Message() != nil && !fd.IsMap():
			d = max(d, messageDepth(v.Message()))
		}
		return true
	})
	return 1 + d
}

// childEnv marks the re-executed test binary of TestDepthCrashSafety.
const childEnv = "PGWARDEN_DEPTH_CHILD"

// Under RLIMIT_STACK unlimited glibc gives threads 2 MiB unless
// internal/cstack raises it. The child parses, deparses and fingerprints,
// on goroutines, the deepest accepted statement of every construct (the
// bound) and statements several times too deep that only the 64 MiB thread
// stacks survive (the defence, bypassing the bound). A crash fails the test.
func TestDepthCrashSafety(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("thread stacks are sized on Linux only")
	}
	if os.Getenv(childEnv) != "" {
		depthChild(t, os.Getenv(childEnv))
		return
	}
	for _, part := range []string{"bound", "defence"} {
		cmd := exec.Command("/bin/sh", "-c", `ulimit -s unlimited && exec "$0" "$@"`,
			os.Args[0], "-test.run=^TestDepthCrashSafety$", "-test.v")
		// A database URL stops TestMain from starting a cluster the child
		// does not use.
		cmd.Env = append(os.Environ(), childEnv+"="+part, pgtest.EnvURL+"=postgres://unused")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestDepthCrashSafety") {
			t.Errorf("%s: child: %v\n%s", part, err, tail(out, 2000))
		}
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func depthChild(t *testing.T, part string) {
	var sqls []string
	switch part {
	case "bound":
		for _, c := range depthConstructs {
			if !flatConstructs[c.name] {
				sqls = append(sqls, c.gen(deepestAccepted(c)))
			}
		}
	case "defence":
		// About 7.5 MiB, 5.6 MiB and 5.6 MiB of C stack (deparse): over
		// glibc's 8 MiB default with the parse's share, far over 2 MiB.
		sqls = []string{depthConstructs[0].gen(4000), nest("(SELECT ", "1", ")", 1000),
			"SELECT " + nest("CASE WHEN true THEN ", "1", " END", 1500)}
		for _, sql := range sqls {
			if accepted(sql) {
				t.Fatalf("the bound accepts %.40q…", sql)
			}
		}
	}
	var wg sync.WaitGroup
	for _, sql := range sqls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tree, err := pg_query.Parse(sql)
			if err != nil {
				t.Errorf("parse %.40q…: %v", sql, err)
				return
			}
			if _, err := pg_query.Deparse(tree); err != nil {
				t.Errorf("deparse %.40q…: %v", sql, err)
			}
			if _, err := pg_query.Fingerprint(sql); err != nil {
				t.Errorf("fingerprint %.40q…: %v", sql, err)
			}
		}()
	}
	wg.Wait()
}

// Real workloads stay far below the limit: TPC-H, the BI dashboards and
// every golden input.
func TestDepthRealQueries(t *testing.T) {
	qs := tpchQueries(t)
	bi, _ := filepath.Glob("../bench/testdata/bi/*.sql")
	for _, f := range bi {
		qs = append(qs, readFile(t, f))
	}
	goldens, _ := filepath.Glob("../testdata/rewrite/*.txt")
	for _, f := range goldens {
		qs = append(qs, readGoldenF(t, f)...)
	}
	// bench/rewritebench's largest statement: a 200-way join on the tenant
	// key with 199 filters (SizedQuery(200)).
	var join strings.Builder
	join.WriteString("SELECT t0.tenant_id, count(*) AS n FROM orders t0")
	for i := 1; i < 200; i++ {
		fmt.Fprintf(&join, "\nJOIN orders t%d ON t%d.tenant_id = t%d.tenant_id", i, i, i-1)
	}
	join.WriteString("\nWHERE t0.tenant_id IS NOT NULL")
	for i := 1; i < 200; i++ {
		fmt.Fprintf(&join, " AND t%d.tenant_id <> 'none%d'", i, i)
	}
	if err := checkDepth(join.String()); err != nil {
		t.Errorf("a 200-way join: %v", err)
	}
	if len(qs) < 100 {
		t.Fatalf("only %d queries", len(qs))
	}
	worst, worstSQL := 0, ""
	for _, q := range qs {
		scan, err := parser.ScanToProtobuf(q)
		if err != nil {
			continue // the goldens of syntax errors
		}
		if e, _ := estimateDepth(scan, 1<<30); e > worst {
			worst, worstSQL = e, q
		}
	}
	t.Logf("%d queries, largest estimate %d: %.80q…", len(qs), worst, worstSQL)
	if worst > maxDepthUnits/4 {
		t.Errorf("estimate %d is within 4x of the limit for %q", worst, worstSQL)
	}
}

// The estimate's rules on small statements, worked by hand.
func TestEstimateDepthRules(t *testing.T) {
	for _, c := range []struct {
		sql  string
		want int
	}{
		{"SELECT 1", 2},                                  // the statement level + SELECT
		{"SELECT 1+1+1", 4},                              // operators add up in a segment
		{"SELECT a, b+b, c+c+c", 3},                      // segments: the largest counts
		{"SELECT a FROM t WHERE x AND y+y+y", 4},         // AND separates
		{"SELECT (1+1)+1", 5},                            // the child sits below the rest of its segment
		{"SELECT (SELECT 1)", 5},                         // a subquery's SELECT weighs 2
		{"SELECT CASE WHEN a THEN b+b ELSE c END", 5},    // CASE weighs 1 and opens a level
		{"SELECT 1 UNION SELECT 2 UNION SELECT 3", 4},    // set operations count level-wide
		{"SELECT 1; SELECT 2+2+2", 4},                    // statements are siblings
		{"SELECT a[1][2]", 5},                            // "]" weighs 1
		{"SELECT x BETWEEN 1 AND 2 AND y", 4},            // BETWEEN's AND separates nothing
		{"SELECT 1 FROM a JOIN b ON x+x JOIN c ON y", 5}, // joins: level-wide, ON conditions siblings
		{"SELECT )))", 5},                                // unbalanced: a syntax error, counted
		{"SELECT (((", 5},                                // unclosed levels fold into their parents
		{"SELECT CASE )", 5},                             // ")" closes the CASE, then counts
		{"END", 2},
		{"-- comment\nSELECT 'x', $1, \"y\"", 2}, // names, constants and comments weigh nothing
	} {
		if got := estimate(t, c.sql); got != c.want {
			t.Errorf("%q: estimate %d, want %d", c.sql, got, c.want)
		}
	}
}

// textDepthBound is an upper bound of the estimate: on hand-picked
// statements, every real query, and the constructs of the depth tests.
func TestTextDepthBound(t *testing.T) {
	qs := []string{
		"SELECT 1", "select (select (select 1))", "SELECT CASE WHEN a THEN b+b ELSE c END", "SELECT a[1][2]",
		"SELECT )))", "SELECT (((", "END", "-- comment\nSELECT 'x', $1, \"y\"", "SELECT 1and 2", "SELECT 0x1Fselect",
		"SELECT U&\"d\\0061t\\+000061\" FROM t", "SELECT N'x', E'\\n', B'1', X'1F'", "SELECT $$a$$, $q$SELECT$q$",
		"SELECT x::int::text, a.b.c, 1.5e3, .5, 1..2", "SELECT a NOT LIKE b, c NULLS FIRST, WITH",
		"SELECT é, ẞelect, selecté FROM \"SELECT\"",
	}
	qs = append(qs, tpchQueries(t)...)
	bi, _ := filepath.Glob("../bench/testdata/bi/*.sql")
	for _, f := range bi {
		qs = append(qs, readFile(t, f))
	}
	goldens, _ := filepath.Glob("../testdata/rewrite/*.txt")
	for _, f := range goldens {
		qs = append(qs, readGoldenF(t, f)...)
	}
	for _, c := range depthConstructs {
		for _, n := range []int{1, 10, 100} {
			qs = append(qs, c.gen(n))
		}
	}
	skipped := 0
	for _, q := range qs {
		scan, err := parser.ScanToProtobuf(q)
		if err != nil {
			continue
		}
		est, _ := estimateDepth(scan, 1<<30)
		if b := textDepthBound(q, 1<<30); b < est {
			t.Errorf("bound %d below the estimate %d for %q", b, est, q)
		}
		if textDepthBound(q, maxDepthUnits) <= maxDepthUnits {
			skipped++
		}
	}
	t.Logf("%d of %d statements need no scan", skipped, len(qs))
}

// Every keyword's text is a key of keywordWords: each token kind the
// scanner reports for a keyword's text is one of pg_query's token names,
// so scanning each name back gives its own kind.
func TestTextDepthBoundKeywords(t *testing.T) {
	n := 0
	for w := range keywordWords.weight {
		if len(w) > len(keywordWords.buf) {
			t.Errorf("keyword %q is longer than keywordWords.buf", w)
		}
		res, err := pg_query.Scan(w)
		if err != nil || len(res.Tokens) != 1 || res.Tokens[0].KeywordKind == pg_query.KeywordKind_NO_KEYWORD {
			continue // a token name that is no keyword (IDENT, ASCII_40)
		}
		n++
		if got := strings.ToLower(res.Tokens[0].Token.String()); got != w && got != w+"_p" && got != w+"_la" {
			t.Errorf("%q scans as %s", w, res.Tokens[0].Token)
		}
	}
	// PostgreSQL 16's kwlist.h has 471 keywords.
	if n < 471 {
		t.Errorf("only %d keywords", n)
	}
	t.Logf("%d keywords", n)
}
