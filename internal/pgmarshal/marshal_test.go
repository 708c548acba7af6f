package pgmarshal

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v5"
	"google.golang.org/protobuf/proto"

	"github.com/pgwarden/pgwarden/internal/pgmarshal/gen"
)

// statements returns every text of the repository's SQL corpora and golden
// files that parses: each .sql file whole, each golden file by its blocks
// (a statement, or its expected rewrite) and by its lines.
func statements(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, root := range []string{"../../testdata", "../../bench/testdata"} {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			ext := filepath.Ext(path)
			if ext != ".sql" && ext != ".txt" {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			texts := []string{string(b)}
			if ext == ".txt" {
				texts = append(strings.Split(string(b), "\n----\n"), strings.Split(string(b), "\n")...)
			}
			for _, s := range texts {
				if _, err := pg_query.Parse(s); err == nil && strings.TrimSpace(s) != "" {
					out = append(out, s)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(out) < 500 {
		t.Fatalf("only %d statements parse: is testdata where it was?", len(out))
	}
	return out
}

func checkSame(t *testing.T, tree *pg_query.ParseResult, what string) {
	t.Helper()
	want, werr := proto.Marshal(tree)
	got, gerr := Marshal(tree)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%s: proto.Marshal error %v, Marshal error %v", what, werr, gerr)
	}
	if werr != nil {
		return
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: Marshal differs from proto.Marshal (%d bytes against %d)", what, len(got), len(want))
	}
}

// TestSameAsProto checks Marshal against proto.Marshal byte for byte on
// every statement of the corpora and goldens.
func TestSameAsProto(t *testing.T) {
	for _, s := range statements(t) {
		tree, err := pg_query.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		checkSame(t, tree, s)
	}
}

// TestEdgeValues covers what parsed trees seldom hold: zero, negative and
// extreme numbers, -0 and NaN doubles, nil messages in lists and oneofs,
// empty strings next to set ones, packed lists, invalid UTF-8.
func TestEdgeValues(t *testing.T) {
	for name, tree := range edgeTrees() {
		t.Run(name, func(t *testing.T) { checkSame(t, tree, name) })
	}
}

// edgeTrees are trees with what parses seldom hold.
func edgeTrees() map[string]*pg_query.ParseResult {
	stmt := func(n *pg_query.Node) *pg_query.ParseResult {
		return &pg_query.ParseResult{Version: 160001, Stmts: []*pg_query.RawStmt{{Stmt: n, StmtLen: -1}}}
	}
	return map[string]*pg_query.ParseResult{
		"empty":           {},
		"nil stmt":        {Stmts: []*pg_query.RawStmt{nil, {}}},
		"zero int const":  stmt(pg_query.MakeAConstIntNode(0, 0)),
		"negative const":  stmt(pg_query.MakeAConstIntNode(-1<<31, -7)),
		"null const":      stmt(&pg_query.Node{Node: &pg_query.Node_AConst{AConst: &pg_query.A_Const{Isnull: true}}}),
		"empty oneof":     stmt(&pg_query.Node{}),
		"nil in oneof":    stmt(&pg_query.Node{Node: &pg_query.Node_SelectStmt{}}),
		"nil wrapper":     stmt(&pg_query.Node{Node: (*pg_query.Node_SelectStmt)(nil)}),
		"nil list item":   stmt(pg_query.MakeListNode([]*pg_query.Node{nil, pg_query.MakeStrNode("x"), {}})),
		"const with zero": stmt(&pg_query.Node{Node: &pg_query.Node_AConst{AConst: &pg_query.A_Const{Val: &pg_query.A_Const_Ival{Ival: &pg_query.Integer{}}}}}),
		"empty string":    stmt(pg_query.MakeStrNode("")),
		"utf8":            stmt(pg_query.MakeStrNode("é€𝄞")),
		"bad utf8":        stmt(pg_query.MakeStrNode("a\xffb")),
		"max uint32":      stmt(&pg_query.Node{Node: &pg_query.Node_Var{Var: &pg_query.Var{Varno: -3, Vartype: 1<<32 - 1, Varattno: 1 << 30}}}),
		"big string":      stmt(pg_query.MakeStrNode(strings.Repeat("x", 1<<16))),
		"deep":            stmt(deep(300)),
		"packed":          stmt(&pg_query.Node{Node: &pg_query.Node_Var{Var: &pg_query.Var{Varnullingrels: []uint64{0, 1, 300, 1 << 63}}}}),
		"doubles": stmt(pg_query.MakeListNode([]*pg_query.Node{
			{Node: &pg_query.Node_SubPlan{SubPlan: &pg_query.SubPlan{StartupCost: math.Copysign(0, -1), PerCallCost: math.NaN()}}},
			{Node: &pg_query.Node_SubPlan{SubPlan: &pg_query.SubPlan{StartupCost: 1.5, PerCallCost: math.Inf(-1)}}},
			{Node: &pg_query.Node_RangeTblEntry{RangeTblEntry: &pg_query.RangeTblEntry{Enrtuples: 0}}},
		})),
	}
}

// deep nests n lists, each with a sibling, so that lengths take more than
// one byte at every level.
func deep(n int) *pg_query.Node {
	node := pg_query.MakeStrNode(strings.Repeat("y", 200))
	for range n {
		node = pg_query.MakeListNode([]*pg_query.Node{node, pg_query.MakeStrNode("z")})
	}
	return node
}

// TestGenerated checks that nodes_gen.go and unmarshal_gen.go are what the
// generator writes for the pg_query_go of go.mod.
func TestGenerated(t *testing.T) {
	for file, generate := range map[string]func() ([]byte, error){"nodes_gen.go": gen.Generate, "unmarshal_gen.go": gen.GenerateUnmarshal} {
		want, err := generate()
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is out of date: run go generate ./internal/pgmarshal/", file)
		}
	}
}

// FuzzMarshal: whatever parses encodes as proto.Marshal encodes it.
func FuzzMarshal(f *testing.F) {
	for _, s := range []string{"SELECT 1", "SELECT -1.5e300, 'x', B'101', true, NULL", "WITH a AS (SELECT * FROM t) SELECT * FROM a JOIN b USING (c)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tree, err := pg_query.Parse(s)
		if err != nil {
			return
		}
		checkSame(t, tree, s)
	})
}

// BenchmarkMarshal is the A/B of Marshal against proto.Marshal over the
// TPC-H queries' trees; one op = the 22 queries.
func BenchmarkMarshal(b *testing.B) {
	trees := tpchTrees(b)
	for _, c := range []struct {
		name    string
		marshal func(*pg_query.ParseResult) ([]byte, error)
	}{
		{"proto", func(t *pg_query.ParseResult) ([]byte, error) { return proto.Marshal(t) }},
		{"pgmarshal", Marshal},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, t := range trees {
					if _, err := c.marshal(t); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// tpchTrees parses the TPC-H queries.
func tpchTrees(b *testing.B) []*pg_query.ParseResult {
	files, err := filepath.Glob("../../testdata/tpch/*.sql")
	if err != nil || len(files) == 0 {
		b.Fatalf("no TPC-H queries: %v", err)
	}
	var trees []*pg_query.ParseResult
	for _, f := range files {
		sql, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		tree, err := pg_query.Parse(string(sql))
		if err != nil {
			b.Fatal(err)
		}
		trees = append(trees, tree)
	}
	return trees
}
