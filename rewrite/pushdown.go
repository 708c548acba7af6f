package rewrite

import (
	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// leakproofOps lists, per column type (as format_type spells it), the
// comparison operators whose functions are leakproof in PostgreSQL
// (pg_proc.proleakproof; TestPushdownOperatorsAreLeakproof checks this list
// against the server). Only these may run inside the fence, where they can
// see other tenants' rows.
var leakproofOps = map[string]map[string]bool{
	"smallint":                    allCompare,
	"integer":                     allCompare,
	"bigint":                      allCompare,
	"text":                        {"=": true, "<>": true},
	"character varying":           {"=": true, "<>": true},
	"date":                        allCompare,
	"timestamp without time zone": allCompare,
	"timestamp with time zone":    allCompare,
	"boolean":                     {"=": true, "<>": true},
	"uuid":                        allCompare,
}

var allCompare = map[string]bool{"=": true, "<>": true, "<": true, "<=": true, ">": true, ">=": true}

// pushDown copies simple conjuncts of a level's WHERE (column op constant,
// with a leakproof operator, on an unmasked column of a fenced relation) into
// that relation's subquery, so that PostgreSQL can use indexes for them. The
// original conjunct stays where it is; it is strict, so the copy removes only
// rows the original would remove too, whatever the join type. A BETWEEN is
// copied as its two comparisons, which is what PostgreSQL makes of it.
func (p *pass) pushDown(where *pg_query.Node, s *scope) {
	conjuncts := []*pg_query.Node{where}
	if b := where.GetBoolExpr(); b != nil && b.Boolop == pg_query.BoolExprType_AND_EXPR {
		conjuncts = b.Args
	}
	for _, c := range conjuncts {
		e := c.GetAExpr()
		if e == nil {
			continue
		}
		switch {
		case e.Kind == pg_query.A_Expr_Kind_AEXPR_OP && len(e.Name) == 1:
			op := e.Name[0].GetString_().GetSval()
			if col := e.Lexpr.GetColumnRef(); col != nil {
				p.pushComparison(s, col, op, e.Rexpr, true)
			} else if col := e.Rexpr.GetColumnRef(); col != nil {
				p.pushComparison(s, col, op, e.Lexpr, false)
			}
		case e.Kind == pg_query.A_Expr_Kind_AEXPR_BETWEEN:
			bounds := e.Rexpr.GetList().GetItems()
			if col := e.Lexpr.GetColumnRef(); col != nil && len(bounds) == 2 {
				p.pushComparison(s, col, ">=", bounds[0], true)
				p.pushComparison(s, col, "<=", bounds[1], true)
			}
		}
	}
}

// pushComparison copies "col op val" (or "val op col") into the fence of the
// relation col belongs to, when that is safe.
func (p *pass) pushComparison(s *scope, col *pg_query.ColumnRef, op string, val *pg_query.Node, colLeft bool) {
	if val == nil {
		return
	}
	item, name := pushTarget(col, s)
	if item == nil {
		return
	}
	ct := item.v.t.column(name)
	if ct == nil || (ct.masked != nil && !p.id.InGroup(ct.rule.UnlessGroups...)) {
		return
	}
	typ := item.v.t.cat.Columns[ct.colIndex].Type
	if !leakproofOps[typ][op] {
		return
	}
	if tc := val.GetTypeCast(); tc != nil && castToType(tc.TypeName, typ) {
		// 'literal'::coltype (or coltype 'literal'): the same as the untyped
		// literal compared with the column, so it goes in as one.
		if c := tc.Arg.GetAConst(); c != nil && c.GetSval() != nil {
			val = tc.Arg
		} else if tc.Arg.GetParamRef() != nil {
			val = tc.Arg
		}
	}
	var v *pg_query.Node
	switch x := val.Node.(type) {
	case *pg_query.Node_AConst:
		// Only literals that take the column's own type: integers for
		// integer columns, untyped strings for anything.
		switch x.AConst.Val.(type) {
		case *pg_query.A_Const_Sval:
			v = strConst(x.AConst.GetSval().GetSval())
		case *pg_query.A_Const_Ival:
			if typ == "smallint" || typ == "integer" || typ == "bigint" {
				v = intConst(int64(x.AConst.GetIval().GetIval()))
			}
		}
	case *pg_query.Node_ParamRef:
		switch p.placeholderKind(x.ParamRef) {
		case constString:
			v = paramRef(x.ParamRef.Number) // as the literal above
		case constInt:
			if typ == "smallint" || typ == "integer" || typ == "bigint" {
				v = paramRef(x.ParamRef.Number)
			}
		}
		if p.kinds != nil {
			break
		}
		// The client may declare a parameter's type: cast it to the
		// column's, so that neither another operator nor an implicit cast
		// of the column (text to regclass fails per row, naming the value)
		// can run inside the fence. A cast may round, which = survives (the
		// copy keeps a superset of the rows) but a range would not: other
		// operators only when the parameter is known to have the column's
		// type already.
		if op == "=" || p.params.fits(x.ParamRef.Number, typ, p.sql) {
			v = typeCast(paramRef(x.ParamRef.Number), ct.typ)
		}
	}
	if v == nil {
		return
	}
	cond := opExpr(op, colRef(name), v)
	if !colLeft {
		cond = opExpr(op, v, colRef(name))
	}
	item.sub.WhereClause = appendAnd(item.sub.WhereClause, cond)
	item.fence.pushed(v)
}

// castToType reports whether tn names the column type typ (as format_type
// spells it) exactly: a built-in name, no type modifiers (varchar(3) would
// truncate), no array.
func castToType(tn *pg_query.TypeName, typ string) bool {
	if tn == nil || len(tn.Typmods) > 0 || len(tn.ArrayBounds) > 0 || tn.Setof || tn.PctType {
		return false
	}
	var name string
	switch len(tn.Names) {
	case 1:
		name = tn.Names[0].GetString_().GetSval()
	case 2:
		if tn.Names[0].GetString_().GetSval() != "pg_catalog" {
			return false
		}
		name = tn.Names[1].GetString_().GetSval()
	default:
		return false
	}
	return typeNames[name] == typ
}

// typeNames maps the names a cast may use to the types of leakproofOps.
var typeNames = map[string]string{
	"int2": "smallint", "smallint": "smallint", "int4": "integer", "integer": "integer", "int": "integer",
	"int8": "bigint", "bigint": "bigint", "text": "text", "varchar": "character varying",
	"date": "date", "timestamp": "timestamp without time zone", "timestamptz": "timestamp with time zone",
	"bool": "boolean", "boolean": "boolean", "uuid": "uuid",
}

// pushTarget finds the fenced relation a column reference of this level
// belongs to, or nil when that is not certain.
func pushTarget(c *pg_query.ColumnRef, s *scope) (*rangeItem, string) {
	var qual, name string
	switch len(c.Fields) {
	case 1:
		name = c.Fields[0].GetString_().GetSval()
	case 2:
		qual = c.Fields[0].GetString_().GetSval()
		name = c.Fields[1].GetString_().GetSval()
	default:
		return nil, ""
	}
	if name == "" {
		return nil, ""
	}
	var found *rangeItem
	for i := range s.items {
		it := &s.items[i]
		if qual != "" {
			if it.alias == qual {
				if found != nil {
					return nil, ""
				}
				found = it
			}
			continue
		}
		if it.v == nil {
			return nil, "" // a subquery, function or CTE might have the column too
		}
		if it.v.cols[name] {
			if found != nil {
				return nil, ""
			}
			found = it
		}
	}
	if found == nil || found.sub == nil || !found.v.cols[name] {
		return nil, ""
	}
	return found, name
}

func (t *relTemplate) column(name string) *colTemplate {
	for i := range t.cols {
		if t.cols[i].name == name {
			return &t.cols[i]
		}
	}
	return nil
}

// params are what the extended protocol's Parse tells about a statement's
// parameters: the types the client declared.
type params struct {
	types []uint32
	uses  map[int32]int // occurrences of each $n in the text, counted once
}

// clone is a copy of p for a rewrite to fill in (nil for nil): the caller's
// stays on its stack when the cache answers.
func (p *params) clone() *params {
	if p == nil {
		return nil
	}
	c := *p
	return &c
}

// fits reports whether parameter n of sql is certain to have the column type
// typ, so that "column op $n" inside the fence compares exactly as outside.
// That holds when the client declared typ for it, or declared nothing and
// "column op $n" is its only use: PostgreSQL then gives it the column's type
// (and the fence's own $n::typ, analysed first, agrees). A second use could
// give it another type first (FROM b, a with $n compared to columns of both),
// and the fence's cast would then round.
func (prm *params) fits(n int32, typ, sql string) bool {
	if prm == nil || n < 1 {
		return false
	}
	if int(n) <= len(prm.types) && prm.types[n-1] != 0 && prm.types[n-1] != typeOIDs[typ] {
		return false
	}
	if prm.uses == nil {
		prm.uses = map[int32]int{}
		refs, ok := paramTokens(sql)
		if !ok {
			return false
		}
		for _, ref := range refs {
			prm.uses[int32(ref.n)]++
		}
	}
	return prm.uses[n] == 1
}

// typeOIDs are the OIDs of leakproofOps' types, to compare with the types a
// client declares.
var typeOIDs = map[string]uint32{
	"smallint": 21, "integer": 23, "bigint": 20, "text": 25, "character varying": 1043, "date": 1082,
	"timestamp without time zone": 1114, "timestamp with time zone": 1184, "boolean": 16, "uuid": 2950,
}
