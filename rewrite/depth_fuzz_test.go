package rewrite

import (
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v5"
	"github.com/pganalyze/pg_query_go/v5/parser"
)

// deepGen builds a statement from fuzz bytes with a small grammar of the
// constructs that nest: each byte picks a production or a chain's length.
type deepGen struct {
	b     []byte
	b2    strings.Builder
	depth int
}

func (g *deepGen) next() int {
	if len(g.b) == 0 {
		return 0
	}
	c := g.b[0]
	g.b = g.b[1:]
	return int(c)
}

func (g *deepGen) w(s ...string) {
	for _, x := range s {
		g.b2.WriteString(x)
	}
}

var chainOps = []string{"+", "-", "*", "/", "%", "^", "||", "->", "->>", "@>", "#>"}

func (g *deepGen) expr() {
	if len(g.b) == 0 || g.depth > 300 {
		g.w("a")
		return
	}
	g.depth++
	defer func() { g.depth-- }()
	switch g.next() % 23 {
	case 0:
		g.w([]string{"1", "a", "'s'", "$1", "t.a", "2.5"}[g.next()%6])
	case 1: // a left-deep chain of binary operators
		g.expr()
		for k := g.next() % 48; k >= 0; k-- {
			g.w(" ", chainOps[g.next()%len(chainOps)], " ")
			if g.next()%4 == 0 {
				g.expr()
			} else {
				g.w("1")
			}
		}
	case 2:
		g.w("(")
		g.expr()
		g.w(")")
	case 3:
		g.w("(SELECT ")
		g.expr()
		g.w(")")
	case 4:
		g.w("EXISTS (SELECT ")
		g.expr()
		g.w(" FROM t WHERE ")
		g.expr()
		g.w(")")
	case 5:
		g.w("CASE WHEN ")
		g.expr()
		g.w(" THEN ")
		g.expr()
		g.w(" ELSE ")
		g.expr()
		g.w(" END")
	case 6:
		g.expr()
		g.w(strings.Repeat("::int", g.next()%32+1))
	case 7:
		g.expr()
		g.w(strings.Repeat(" IS NULL", g.next()%32+1))
	case 8:
		g.w(strings.Repeat("NOT ", g.next()%32+1))
		g.expr()
	case 9:
		g.w(strings.Repeat("- ", g.next()%32+1))
		g.expr()
	case 10:
		g.w("ARRAY[")
		g.expr()
		g.w(", ")
		g.expr()
		g.w("]")
	case 11:
		g.w("f(")
		g.expr()
		g.w(", ")
		g.expr()
		g.w(")")
	case 12:
		g.w("(")
		g.expr()
		g.w(" BETWEEN ")
		g.expr()
		g.w(" AND ")
		g.expr()
		g.w(")")
	case 13:
		g.expr()
		g.w(strings.Repeat(` COLLATE "C"`, g.next()%32+1))
	case 14:
		g.w("a[")
		g.expr()
		g.w("]")
	case 15:
		g.expr()
		for k := g.next() % 16; k >= 0; k-- {
			g.w([]string{" AND ", " OR "}[g.next()%2])
			g.expr()
		}
	case 16:
		g.expr()
		g.w(strings.Repeat(" AT TIME ZONE 'UTC'", g.next()%16+1))
	case 17:
		g.w("(")
		g.expr()
		g.w(" IN (")
		g.expr()
		g.w(", ")
		g.expr()
		g.w("))")
	case 18:
		g.w("ROW(")
		g.expr()
		g.w(")")
	case 19:
		g.w("(SELECT ")
		g.expr()
		g.w(" FROM t")
		for k := g.next() % 64; k > 0; k-- {
			g.w(" JOIN t ON ")
			g.expr()
		}
		g.w(")")
	case 20:
		g.w("(")
		g.stmt()
		g.w(")")
	case 21:
		g.w("(")
		g.expr()
		g.w(" IS DISTINCT FROM ")
		g.expr()
		g.w(")")
	case 22: // BETWEEN unparenthesized: its AND is no separator
		g.w(strings.Repeat("NOT ", g.next()%4))
		g.expr()
		g.w(" BETWEEN ")
		g.expr()
		g.w(" AND ")
		g.expr()
	}
}

func (g *deepGen) stmt() {
	g.w("SELECT ")
	g.expr()
	g.w(", ")
	g.expr()
	g.w(" FROM t WHERE ")
	g.expr()
	for k := g.next() % 64; k > 0; k-- {
		g.w([]string{" UNION SELECT ", " UNION ALL SELECT ", " INTERSECT SELECT ", " EXCEPT SELECT "}[g.next()%4])
		g.expr()
		if g.next()%2 == 0 {
			g.w(", ")
			g.expr()
		}
	}
}

func genDeep(b []byte) string {
	g := &deepGen{b: b}
	g.stmt()
	for len(g.b) > 0 && g.next()%3 == 0 {
		g.w("; ")
		g.stmt()
	}
	return g.b2.String()
}

// FuzzDepthBound checks that the estimate is an upper bound: the parse
// tree of every generated statement that parses is at most
// depthK*estimate+depthK0 messages deep.
func FuzzDepthBound(f *testing.F) {
	f.Add([]byte{1, 1, 47, 1, 47})
	f.Add([]byte{3, 3, 3, 3, 3, 3, 5, 1, 40, 0, 0, 0, 0})
	f.Add([]byte{19, 1, 30, 0, 15, 0, 20, 7, 31, 6, 31, 13, 31})
	f.Add([]byte{2, 1, 47, 2, 1, 47, 2, 1, 47, 14, 14, 14, 14, 12, 12, 12})
	f.Fuzz(func(t *testing.T, b []byte) {
		sql := genDeep(b)
		scan, err := parser.ScanToProtobuf(sql)
		if err != nil {
			return
		}
		est, ok := estimateDepth(scan, 1<<30)
		if !ok {
			t.Fatalf("scan of %q does not decode", sql)
		}
		// Far beyond the limit: not safe to parse if the estimate were
		// right, and nothing to learn if it were wrong by that much.
		if est > 4*maxDepthUnits {
			return
		}
		tree, err := pg_query.Parse(sql)
		if err != nil {
			return
		}
		if d := messageDepth(tree.ProtoReflect()); d > depthK*est+depthK0 {
			t.Fatalf("tree depth %d, estimate %d (bound %d) for %q", d, est, depthK*est+depthK0, sql)
		}
	})
}

// FuzzTextDepthBound: for any text that lexes, textDepthBound is at least
// the estimate, both for raw text and for the generator's deep statements.
func FuzzTextDepthBound(f *testing.F) {
	f.Add("SELECT (SELECT CASE WHEN a[1] THEN 1 END)", []byte{3, 3, 3, 5, 1, 40})
	f.Add("1select$1é-- x\n'SELECT'", []byte{19, 1, 30, 0, 15})
	f.Fuzz(func(t *testing.T, text string, b []byte) {
		for _, sql := range []string{text, genDeep(b)} {
			scan, err := parser.ScanToProtobuf(sql)
			if err != nil {
				continue
			}
			est, _ := estimateDepth(scan, 1<<30)
			if got := textDepthBound(sql, 1<<30); got < est {
				t.Fatalf("bound %d below the estimate %d for %q", got, est, sql)
			}
		}
	})
}
