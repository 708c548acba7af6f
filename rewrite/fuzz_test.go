package rewrite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v5"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
)

// FuzzRewrite: the rewriter never panics (a recovered panic surfaces as
// XX000), every accepted statement parses again, and every protected relation
// in the output is read only through its injected, filtered subquery.
func FuzzRewrite(f *testing.F) {
	files, _ := filepath.Glob("../testdata/rewrite/*.txt")
	for _, path := range files {
		for _, c := range readGoldenF(f, path) {
			f.Add(c)
		}
	}
	for _, q := range tpchQueries(f) {
		f.Add(q)
	}
	r := demoRewriter(f, Options{CacheBytes: -1})
	ids := []*policy.Identity{
		{Kind: policy.KindEmbed, Tenant: "acme", ExternalID: "u1", Role: policy.RoleQuerier},
		{Kind: policy.KindEmbed, Tenant: "globex", Role: policy.RoleViewer, Groups: []string{"pii"},
			Attributes: map[string][]string{"regions": {"EU"}}},
	}
	f.Fuzz(func(t *testing.T, sql string) {
		for _, id := range ids {
			res, err := r.Rewrite(context.Background(), sql, id)
			if err != nil {
				if pgerr.SQLStateOf(err) == pgerr.InternalError {
					t.Fatalf("internal error (recovered panic) for %q: %v", sql, err)
				}
				if _, ok := err.(*pgerr.Error); !ok {
					t.Fatalf("error is not a *pgerr.Error: %T %v", err, err)
				}
				continue
			}
			for _, st := range res.Statements {
				if st.Kind == KindEmpty {
					continue
				}
				tree, err := pg_query.Parse(st.SQL)
				if err != nil {
					t.Fatalf("output does not parse: %v\ninput:  %q\noutput: %s", err, sql, st.SQL)
				}
				// Deparsing is stable: what runs is what was checked. FETCH and
				// MOVE are printed by fetchSQL, pg_query's deparse drops quotes.
				again, err := pg_query.Deparse(tree)
				if f := tree.Stmts[0].GetStmt().GetFetchStmt(); f != nil {
					again, err = fetchSQL(f), nil
				}
				if err != nil || again != st.SQL {
					t.Fatalf("deparse not stable: %v\ninput:  %q\nfirst:  %s\nsecond: %s", err, sql, st.SQL, again)
				}
				if msg := checkFenced(r, id, tree); msg != "" {
					t.Fatalf("%s\ninput:  %q\noutput: %s", msg, sql, st.SQL)
				}
			}
		}
	})
}

func readGoldenF(f testing.TB, path string) []string {
	var out []string
	var in []string
	state := 0
	for _, l := range strings.Split(readFile(f, path), "\n") {
		switch {
		case state == 0 && strings.HasPrefix(l, "session"):
			state, in = 1, nil
		case state == 1 && l == "----":
			out = append(out, strings.Join(in, "\n"))
			state = 0
		case state == 1:
			in = append(in, l)
		}
	}
	return out
}

// checkFenced walks an output tree independently of the rewriter's walk and
// returns a description of the first protected relation read outside its
// fenced subquery, or "".
func checkFenced(r *Rewriter, id *policy.Identity, tree *pg_query.ParseResult) string {
	tmpl := r.embed
	if id.Kind == policy.KindInternal {
		tmpl = r.inter
	}
	c := &fenceChecker{tmpl: tmpl, tenant: id.Tenant}
	for _, raw := range tree.Stmts {
		c.walk(raw.ProtoReflect(), nil, nil)
	}
	return c.problem
}

type fenceChecker struct {
	tmpl    map[string]*relTemplate
	tenant  string
	problem string
}

type cteScope struct {
	parent *cteScope
	names  map[string]bool
}

func (s *cteScope) has(name string) bool {
	for ; s != nil; s = s.parent {
		if s.names[name] {
			return true
		}
	}
	return false
}

func (c *fenceChecker) walk(m protoreflect.Message, parents []protoreflect.Message, sc *cteScope) {
	if c.problem != "" {
		return
	}
	switch x := m.Interface().(type) {
	case *pg_query.RangeVar:
		c.rangeVar(x, parents, sc)
		return
	case *pg_query.SelectStmt, *pg_query.InsertStmt, *pg_query.UpdateStmt, *pg_query.DeleteStmt:
		c.writeTarget(x) // write_test.go
		if w := withOf(x); w != nil {
			inner := &cteScope{parent: sc, names: map[string]bool{}}
			if w.Recursive {
				for _, n := range w.Ctes {
					inner.names[n.GetCommonTableExpr().GetCtename()] = true
				}
			}
			for _, n := range w.Ctes {
				cte := n.GetCommonTableExpr()
				if cte == nil {
					continue
				}
				c.walk(cte.Ctequery.ProtoReflect(), append(parents, m), inner)
				inner.names[cte.Ctename] = true
			}
			sc = inner
		}
	}
	parents = append(parents, m)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Name() == "with_clause" || fd.Name() == "relation" && isWrite(m) {
			return true // walked above
		}
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				if fd.Message() != nil {
					c.walk(l.Get(i).Message(), parents, sc)
				}
			}
		case fd.Message() != nil:
			c.walk(v.Message(), parents, sc)
		}
		return true
	})
}

func (c *fenceChecker) rangeVar(rv *pg_query.RangeVar, parents []protoreflect.Message, sc *cteScope) {
	if rv.Schemaname == "" && sc.has(rv.Relname) {
		return
	}
	var t *relTemplate
	for key, tt := range c.tmpl {
		if tt.rel.Name == rv.Relname && (rv.Schemaname == "" || key == rv.Schemaname+"."+rv.Relname) {
			t = tt
		}
	}
	if t == nil || (t.rel.Shared && len(t.rel.Columns) == 0) {
		return
	}
	// parents: ... RangeSubselect, Node, SelectStmt, Node, RangeVar's Node,
	// or with a sample ..., Node, RangeTableSample, RangeVar's Node.
	n := len(parents)
	if n >= 2 {
		if ts, ok := parents[n-2].Interface().(*pg_query.RangeTableSample); ok {
			if ts.Repeatable != nil || funcDisplay(ts.Method) != "pg_catalog.bernoulli" {
				c.problem = "protected relation " + rv.Relname + " sampled by " + funcDisplay(ts.Method)
				return
			}
			n -= 2
		}
	}
	if n < 4 || rv.Schemaname == "" || rv.Inh {
		c.problem = "protected relation " + rv.Relname + " outside a fenced subquery"
		return
	}
	sel, ok := parents[n-2].Interface().(*pg_query.SelectStmt)
	_, inSub := parents[n-4].Interface().(*pg_query.RangeSubselect)
	if !ok || !inSub || len(sel.FromClause) != 1 || sel.LimitOffset.GetAConst().GetIval().GetIval() != 0 ||
		sel.LimitOffset.GetAConst() == nil {
		c.problem = "protected relation " + rv.Relname + " outside a fenced subquery"
		return
	}
	if t.rel.Shared {
		return
	}
	w := sel.WhereClause
	if b := w.GetBoolExpr(); b != nil && b.Boolop == pg_query.BoolExprType_AND_EXPR && len(b.Args) > 0 {
		w = b.Args[0]
	}
	e := w.GetAExpr()
	if e == nil || len(e.Lexpr.GetColumnRef().GetFields()) != 1 ||
		e.Lexpr.GetColumnRef().Fields[0].GetString_().GetSval() != t.rel.TenantColumn ||
		e.Rexpr.GetAConst().GetSval().GetSval() != c.tenant || len(e.Name) != 1 || e.Name[0].GetString_().GetSval() != "=" {
		c.problem = "fenced subquery of " + rv.Relname + " lacks the tenant filter"
	}
}

// TestFenceChecker makes sure the fuzz oracle itself can fail.
func TestFenceChecker(t *testing.T) {
	r := demoRewriter(t, Options{CacheBytes: -1})
	id := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleQuerier}
	for _, tc := range []struct {
		sql, want string
	}{
		{"SELECT * FROM orders", "protected relation orders outside a fenced subquery"},
		{"SELECT * FROM public.orders", "protected relation orders outside a fenced subquery"},
		{"WITH orders AS (SELECT 1) SELECT * FROM orders", ""},
		{"WITH orders AS (SELECT * FROM orders) SELECT * FROM orders", "protected relation orders outside a fenced subquery"},
		{"SELECT * FROM (SELECT * FROM ONLY public.orders WHERE tenant_id = 'globex' OFFSET 0) o", "fenced subquery of orders lacks the tenant filter"},
		{"SELECT * FROM (SELECT * FROM ONLY public.orders WHERE true OFFSET 0) o", "fenced subquery of orders lacks the tenant filter"},
		{"SELECT * FROM (SELECT * FROM ONLY public.orders WHERE tenant_id = 'acme') o", "protected relation orders outside a fenced subquery"},
		{"SELECT * FROM (SELECT * FROM ONLY public.orders WHERE tenant_id = 'acme' OFFSET 0) o", ""},
		{"SELECT * FROM products", ""},
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
