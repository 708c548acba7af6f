package rewrite

import (
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgwarden/pgwarden/pgerr"
)

// TABLESAMPLE on an exposed relation samples inside the fence: the fenced
// subquery's scan of the base relation carries the sample, so what is
// sampled is the tenant's rows, and the client's expressions still see only
// those.
//
// Both methods run as BERNOULLI, row by row with a fresh random seed each
// time. SYSTEM picks whole pages, so which of the tenant's rows come
// together would show which of them share a page, and with it how many rows
// other tenants wrote between them. REPEATABLE is refused: a repeatable
// sample picks rows by where they are stored (page and slot), so running one
// with many seeds would locate the tenant's rows in the table, and the
// distance between two of them is what every tenant wrote in between.

// tableSample resolves a TABLESAMPLE's relation as rangeVar does and moves
// the sample onto the fenced subquery's base relation.
func (p *pass) tableSample(n *pg_query.Node, ts *pg_query.RangeTableSample, s *scope) {
	rv := ts.Relation.GetRangeVar()
	if rv == nil {
		p.unsupported("TABLESAMPLE of " + nodeKind(ts.Relation))
		return
	}
	schema, method := "", ""
	switch len(ts.Method) {
	case 1:
		method = ts.Method[0].GetString_().GetSval()
	case 2:
		schema, method = ts.Method[0].GetString_().GetSval(), ts.Method[1].GetString_().GetSval()
	}
	method = strings.ToLower(method)
	if (schema != "" && schema != "pg_catalog") || (method != "bernoulli" && method != "system") {
		p.fail(p.at(pgerr.Unsupported("tablesample method %s is not supported", funcDisplay(ts.Method)).
			WithHint("use BERNOULLI or SYSTEM"), ts.Location))
		return
	}
	if ts.Repeatable != nil {
		p.fail(p.at(pgerr.Unsupported("TABLESAMPLE ... REPEATABLE is not supported").
			WithHint("a repeatable sample depends on where rows are stored, which other tenants' writes decide"), ts.Location))
		return
	}
	if len(ts.Args) != 1 {
		p.fail(p.at(pgerr.Unsupported("tablesample method %s requires 1 argument, not %d", method, len(ts.Args)), ts.Location))
		return
	}
	p.exprs(ts.Args, s)
	if p.err != nil {
		return
	}
	before := len(s.items)
	p.rangeVar(ts.Relation, rv, s)
	if p.err != nil {
		return
	}
	if len(s.items) != before+1 || s.items[before].v == nil {
		// A CTE or a catalog: not a table of the warehouse's to sample.
		p.fail(p.at(pgerr.Unsupported("TABLESAMPLE is supported only on the relations the policy exposes"), ts.Location))
		return
	}
	n.Node = sampled(ts.Relation, ts.Args).Node
}
