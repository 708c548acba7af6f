package rewrite

import pg_query "github.com/pganalyze/pg_query_go/v5"

// figureColname is PostgreSQL's FigureColname (parser/parse_target.c) for
// the expression kinds a select-list item can start with: the name of the
// output column of an unnamed item, and its strength (2: a name from the
// expression, 1: from a cast's type, 0: none, "?column?"). known is false
// for a kind it does not model. The rewrite keeps a client's column names
// where it changes an item's form (rowField).
func figureColname(n *pg_query.Node) (name string, strength int, known bool) {
	switch x := n.GetNode().(type) {
	case *pg_query.Node_ColumnRef:
		f := x.ColumnRef.Fields
		if len(f) > 0 {
			if s := f[len(f)-1].GetString_(); s != nil {
				return s.Sval, 2, true
			}
		}
		return "", 0, true
	case *pg_query.Node_AIndirection:
		for i := len(x.AIndirection.Indirection) - 1; i >= 0; i-- {
			if s := x.AIndirection.Indirection[i].GetString_(); s != nil {
				return s.Sval, 2, true
			}
		}
		return figureColname(x.AIndirection.Arg)
	case *pg_query.Node_FuncCall:
		f := x.FuncCall.Funcname
		if len(f) > 0 {
			return f[len(f)-1].GetString_().GetSval(), 2, true
		}
		return "", 0, true
	case *pg_query.Node_AExpr:
		if x.AExpr.Kind == pg_query.A_Expr_Kind_AEXPR_NULLIF {
			return "nullif", 2, true
		}
		return "", 0, true
	case *pg_query.Node_TypeCast:
		name, strength, known := figureColname(x.TypeCast.Arg)
		if strength <= 1 && x.TypeCast.TypeName != nil && len(x.TypeCast.TypeName.Names) > 0 {
			names := x.TypeCast.TypeName.Names
			return names[len(names)-1].GetString_().GetSval(), 1, known
		}
		return name, strength, known
	case *pg_query.Node_CollateClause:
		return figureColname(x.CollateClause.Arg)
	case *pg_query.Node_CaseExpr:
		name, strength, known := figureColname(x.CaseExpr.Defresult)
		if strength <= 1 {
			return "case", 2, known
		}
		return name, strength, known
	case *pg_query.Node_AArrayExpr:
		return "array", 2, true
	case *pg_query.Node_RowExpr:
		return "row", 2, true
	case *pg_query.Node_CoalesceExpr:
		return "coalesce", 2, true
	case *pg_query.Node_MinMaxExpr:
		if x.MinMaxExpr.Op == pg_query.MinMaxOp_IS_LEAST {
			return "least", 2, true
		}
		return "greatest", 2, true
	case nil:
		return "", 0, true
	case *pg_query.Node_AConst, *pg_query.Node_ParamRef, *pg_query.Node_BoolExpr, *pg_query.Node_NullTest,
		*pg_query.Node_BooleanTest:
		return "", 0, true
	}
	return "", 0, false
}

// colnameOrUnnamed is figureColname's name as PostgreSQL prints it.
func colnameOrUnnamed(n *pg_query.Node) (string, bool) {
	name, strength, known := figureColname(n)
	if strength == 0 {
		name = "?column?"
	}
	return name, known
}
