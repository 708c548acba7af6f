package rewrite

// All construction of pg_query nodes lives in this file, so that a move to a
// newer pg_query grammar touches one place.

import (
	"fmt"
	"google.golang.org/protobuf/reflect/protoreflect"
	"strconv"
	"strings"
	"sync"

	pg_query "github.com/pganalyze/pg_query_go/v5"
	"google.golang.org/protobuf/proto"
)

// The builders a rewrite calls most (a fence has one column reference per
// column and a constant per filter) allocate a node with its oneof wrapper
// and message at once, as the helpers of pg_query below build them apart:
// the same tree, a third or less of the allocations.

// strNode is pg_query.MakeStrNode(s).
func strNode(s string) *pg_query.Node {
	c := new(struct {
		n pg_query.Node
		w pg_query.Node_String_
		v pg_query.String
	})
	c.v.Sval = s
	c.w.String_ = &c.v
	c.n.Node = &c.w
	return &c.n
}

// colRef is pg_query.MakeColumnRefNode([]*pg_query.Node{strNode(name)}, 0).
func colRef(name string) *pg_query.Node {
	c := new(struct {
		n      pg_query.Node
		w      pg_query.Node_ColumnRef
		v      pg_query.ColumnRef
		fields [1]*pg_query.Node
	})
	c.fields[0] = strNode(name)
	c.v.Fields = c.fields[:]
	c.w.ColumnRef = &c.v
	c.n.Node = &c.w
	return &c.n
}

// strConst is pg_query.MakeAConstStrNode(s, 0).
func strConst(s string) *pg_query.Node {
	c := new(struct {
		n  pg_query.Node
		w  pg_query.Node_AConst
		v  pg_query.A_Const
		vw pg_query.A_Const_Sval
		vv pg_query.String
	})
	c.vv.Sval = s
	c.vw.Sval = &c.vv
	c.v.Val = &c.vw
	c.w.AConst = &c.v
	c.n.Node = &c.w
	return &c.n
}

// intConst is pg_query.MakeAConstIntNode(n, 0).
func intConst(n int64) *pg_query.Node {
	c := new(struct {
		n  pg_query.Node
		w  pg_query.Node_AConst
		v  pg_query.A_Const
		vw pg_query.A_Const_Ival
		vv pg_query.Integer
	})
	c.vv.Ival = int32(n)
	c.vw.Ival = &c.vv
	c.v.Val = &c.vw
	c.w.AConst = &c.v
	c.n.Node = &c.w
	return &c.n
}

func boolConst(b bool) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_AConst{AConst: &pg_query.A_Const{
		Val: &pg_query.A_Const_Boolval{Boolval: &pg_query.Boolean{Boolval: b}}, Location: 0}}}
}

func nullConst() *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_AConst{AConst: &pg_query.A_Const{Isnull: true, Location: 0}}}
}

func typeCast(arg *pg_query.Node, tn *pg_query.TypeName) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_TypeCast{TypeCast: &pg_query.TypeCast{Arg: arg, TypeName: tn, Location: 0}}}
}

// textType is pg_catalog.text; textArrayType is text[].
func textType() *pg_query.TypeName {
	return &pg_query.TypeName{Names: []*pg_query.Node{strNode("text")}, Typemod: -1, Location: 0}
}

func textArrayType() *pg_query.TypeName {
	tn := textType()
	tn.ArrayBounds = []*pg_query.Node{pg_query.MakeIntNode(-1)}
	return tn
}

// textArray is ARRAY['a', 'b']::text[] (ARRAY[]::text[] when empty).
func textArray(vals []string) *pg_query.Node {
	elems := make([]*pg_query.Node, len(vals))
	for i, v := range vals {
		elems[i] = strConst(v)
	}
	arr := &pg_query.Node{Node: &pg_query.Node_AArrayExpr{AArrayExpr: &pg_query.A_ArrayExpr{Elements: elems, Location: 0}}}
	return typeCast(arr, textArrayType())
}

func opExpr(op string, l, r *pg_query.Node) *pg_query.Node {
	return pg_query.MakeAExprNode(pg_query.A_Expr_Kind_AEXPR_OP, []*pg_query.Node{strNode(op)}, l, r, 0)
}

func andExpr(args []*pg_query.Node) *pg_query.Node {
	if len(args) == 1 {
		return args[0]
	}
	return pg_query.MakeBoolExprNode(pg_query.BoolExprType_AND_EXPR, args, 0)
}

func funcCall(name string, args ...*pg_query.Node) *pg_query.Node {
	return pg_query.MakeFuncCallNode([]*pg_query.Node{strNode("pg_catalog"), strNode(name)}, args, 0)
}

// resTarget is pg_query.MakeResTargetNodeWithNameAndVal(name, val, 0).
func resTarget(name string, val *pg_query.Node) *pg_query.Node {
	c := new(struct {
		n pg_query.Node
		w pg_query.Node_ResTarget
		v pg_query.ResTarget
	})
	c.v.Name, c.v.Val = name, val
	c.w.ResTarget = &c.v
	c.n.Node = &c.w
	return &c.n
}

// isNotNull is arg IS NOT NULL.
func isNotNull(arg *pg_query.Node) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_NullTest{NullTest: &pg_query.NullTest{
		Arg: arg, Nulltesttype: pg_query.NullTestType_IS_NOT_NULL, Location: -1}}}
}

// caseElse builds CASE WHEN cond THEN then ELSE els END.
func caseElse(cond, then, els *pg_query.Node) *pg_query.Node {
	n := pg_query.MakeCaseExprNode(nil, []*pg_query.Node{pg_query.MakeCaseWhenNode(cond, then, 0)}, 0)
	n.GetCaseExpr().Defresult = els
	return n
}

// fencedSubquery builds the relation's replacement:
// (SELECT targets FROM [ONLY] schema.rel WHERE where OFFSET 0) AS alias.
// OFFSET 0 keeps PostgreSQL from pulling the subquery up or pushing the
// client's quals into it, so no client expression sees another tenant's row.
func fencedSubquery(schema, rel string, only bool, targets []*pg_query.Node, where *pg_query.Node, alias *pg_query.Alias) *pg_query.Node {
	rv := &pg_query.RangeVar{Schemaname: schema, Relname: rel, Inh: !only, Relpersistence: "p", Location: 0}
	sel := &pg_query.SelectStmt{
		TargetList:  targets,
		FromClause:  []*pg_query.Node{{Node: &pg_query.Node_RangeVar{RangeVar: rv}}},
		WhereClause: where,
		LimitOffset: intConst(0),
		LimitOption: pg_query.LimitOption_LIMIT_OPTION_COUNT,
		Op:          pg_query.SetOperation_SETOP_NONE,
	}
	return &pg_query.Node{Node: &pg_query.Node_RangeSubselect{RangeSubselect: &pg_query.RangeSubselect{
		Subquery: &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}},
		Alias:    alias,
	}}}
}

// parseTypeName turns a format_type name from the warehouse catalog into a
// TypeName node (once, at New).
func parseTypeName(typ string) (*pg_query.TypeName, error) {
	tree, err := pg_query.Parse("SELECT NULL::" + typ)
	if err != nil {
		return nil, fmt.Errorf("type %q: %w", typ, err)
	}
	if len(tree.Stmts) == 1 {
		if sel := tree.Stmts[0].Stmt.GetSelectStmt(); sel != nil && len(sel.TargetList) == 1 && sel.FromClause == nil {
			if tc := sel.TargetList[0].GetResTarget().GetVal().GetTypeCast(); tc != nil && tc.TypeName != nil {
				return tc.TypeName, nil
			}
		}
	}
	return nil, fmt.Errorf("type %q: not a type name", typ)
}

func asText(col string) *pg_query.Node { return typeCast(colRef(col), textType()) }

// keepMask builds CASE WHEN length(col::text) > first+last
// THEN left(col::text, first) || '***' || right(col::text, last) ELSE '***' END,
// so that short values are not shown whole.
func keepMask(col string, first, last int) *pg_query.Node {
	var val *pg_query.Node
	if first > 0 {
		val = funcCall("left", asText(col), intConst(int64(first)))
	}
	stars := strConst("***")
	if val == nil {
		val = stars
	} else {
		val = opExpr("||", val, stars)
	}
	if last > 0 {
		val = opExpr("||", val, funcCall("right", asText(col), intConst(int64(last))))
	}
	cond := opExpr(">", funcCall("length", asText(col)), intConst(int64(first+last)))
	return caseElse(cond, val, strConst("***"))
}

// emailMask is '***@' || split_part(col::text, '@', 2).
func emailMask(col string) *pg_query.Node {
	return opExpr("||", strConst("***@"), funcCall("split_part", asText(col), strConst("@"), intConst(2)))
}

// hashMask is md5(col::text).
func hashMask(col string) *pg_query.Node { return funcCall("md5", asText(col)) }

// redactConst is a constant of the column's type family cast to its type.
func redactConst(family string, tn *pg_query.TypeName) *pg_query.Node {
	var lit string
	switch family {
	case "text":
		lit = "***"
	case "number":
		lit = "0"
	case "date", "timestamp", "timestamptz":
		lit = "epoch"
	case "time":
		lit = "00:00"
	case "bool":
		lit = "false"
	case "json", "jsonb":
		lit = "{}"
	case "uuid":
		lit = "00000000-0000-0000-0000-000000000000"
	case "bytea":
		lit = ""
	default:
		return typeCast(nullConst(), tn)
	}
	return typeCast(strConst(lit), tn)
}

func nullOf(tn *pg_query.TypeName) *pg_query.Node { return typeCast(nullConst(), tn) }

// aliasFor returns the subquery's alias: the client's (with its column
// names) or the bare relation name, so t.col, rel.col and * keep working.
func aliasFor(client *pg_query.Alias, relname string) *pg_query.Alias {
	if client != nil && client.Aliasname != "" {
		return &pg_query.Alias{Aliasname: client.Aliasname, Colnames: client.Colnames}
	}
	return &pg_query.Alias{Aliasname: relname}
}

func rangeVarNode(rv *pg_query.RangeVar) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_RangeVar{RangeVar: rv}}
}

func paramRef(n int32) *pg_query.Node { return pg_query.MakeParamRefNode(n, 0) }

// appendAnd returns where AND cond, flattening into an existing AND.
func appendAnd(where, cond *pg_query.Node) *pg_query.Node {
	if where == nil {
		return cond
	}
	if b := where.GetBoolExpr(); b != nil && b.Boolop == pg_query.BoolExprType_AND_EXPR {
		b.Args = append(b.Args, cond)
		return where
	}
	return andExpr([]*pg_query.Node{where, cond})
}

// singleStatement wraps one statement for Deparse.
func singleStatement(version int32, raw *pg_query.RawStmt) *pg_query.ParseResult {
	return &pg_query.ParseResult{Version: version, Stmts: []*pg_query.RawStmt{raw}}
}

func starRef() *pg_query.Node {
	return pg_query.MakeColumnRefNode([]*pg_query.Node{pg_query.MakeAStarNode()}, 0)
}

// explicitCall makes x AT TIME ZONE z deparse as pg_catalog.timezone(z, x):
// pg_query prints the SQL syntax without parentheses, so a cast around it,
// (x AT TIME ZONE 'UTC')::date, would come out applied to the zone.
func explicitCall(fc *pg_query.FuncCall) {
	if fc.Funcformat == pg_query.CoercionForm_COERCE_SQL_SYNTAX {
		fc.Funcformat = pg_query.CoercionForm_COERCE_EXPLICIT_CALL
	}
}

// copySelect is the query of COPY relation [(columns)] TO:
// SELECT columns FROM relation, or SELECT * without a column list. The
// column references carry no location: they are not the client's text.
func copySelect(rel *pg_query.RangeVar, cols []*pg_query.Node) *pg_query.Node {
	targets := []*pg_query.Node{resTarget("", pg_query.MakeColumnRefNode([]*pg_query.Node{pg_query.MakeAStarNode()}, -1))}
	if len(cols) > 0 {
		targets = targets[:0]
		for _, c := range cols {
			ref := pg_query.MakeColumnRefNode([]*pg_query.Node{strNode(c.GetString_().GetSval())}, -1)
			targets = append(targets, resTarget("", ref))
		}
	}
	return &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: &pg_query.SelectStmt{
		TargetList:  targets,
		FromClause:  []*pg_query.Node{rangeVarNode(rel)},
		LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT,
		Op:          pg_query.SetOperation_SETOP_NONE,
	}}}
}

// rowField makes (ROW(arg)).f1 of arg, in place of arg under a subscript or
// field selection: the same value (the planner folds it away), in a form
// pg_query's deparser parenthesizes. It prints (ARRAY[1])[1] as ARRAY[1][1],
// a syntax error; (ROW(ARRAY[1])).f1[1] comes out as written.
func rowField(ind *pg_query.A_Indirection) {
	row := &pg_query.Node{Node: &pg_query.Node_RowExpr{RowExpr: &pg_query.RowExpr{
		Args:      []*pg_query.Node{ind.Arg},
		RowFormat: pg_query.CoercionForm_COERCE_EXPLICIT_CALL,
		Location:  -1,
	}}}
	ind.Arg = row
	ind.Indirection = append([]*pg_query.Node{strNode("f1")}, ind.Indirection...)
}

// sampled puts TABLESAMPLE pg_catalog.bernoulli(args) on rel, a relation
// rangeVar resolved: on the base relation of its fenced subquery, or on the
// relation itself when it was left as it is (a shared relation without
// column rules).
func sampled(rel *pg_query.Node, args []*pg_query.Node) *pg_query.Node {
	sample := func(base *pg_query.Node) *pg_query.Node {
		return &pg_query.Node{Node: &pg_query.Node_RangeTableSample{RangeTableSample: &pg_query.RangeTableSample{
			Relation: base,
			Method:   []*pg_query.Node{strNode("pg_catalog"), strNode("bernoulli")},
			Args:     args,
			Location: -1,
		}}}
	}
	if sub := rel.GetRangeSubselect(); sub != nil {
		sel := sub.Subquery.GetSelectStmt()
		sel.FromClause[0] = sample(sel.FromClause[0])
		return rel
	}
	return sample(rel)
}

// costsOff is the EXPLAIN option COSTS OFF.
func costsOff() *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_DefElem{DefElem: &pg_query.DefElem{
		Defname: "costs", Arg: strNode("off"), Defaction: pg_query.DefElemAction_DEFELEM_UNSPEC, Location: -1}}}
}

// boolNode is a Boolean value node (an option's argument).
func boolNode(b bool) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_Boolean{Boolean: &pg_query.Boolean{Boolval: b}}}
}

// clientSetting is COALESCE(NULLIF(pg_catalog.current_setting(name, true),
// the empty string), dflt): a setting of pgwarden's own on the warehouse, or
// dflt when the client has not set it (or RESET it, which leaves it empty).
func clientSetting(name, dflt string) *pg_query.Node {
	cur := funcCall("current_setting", strConst(name), boolConst(true))
	nullif := pg_query.MakeAExprNode(pg_query.A_Expr_Kind_AEXPR_NULLIF, []*pg_query.Node{strNode("=")}, cur, strConst(""), -1)
	return coalesceExpr(nullif, strConst(dflt))
}

// selectAs is SELECT val AS name: a statement answered by a query.
func selectAs(name string, val *pg_query.Node) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: &pg_query.SelectStmt{
		TargetList:  []*pg_query.Node{resTarget(name, val)},
		LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT,
		Op:          pg_query.SetOperation_SETOP_NONE,
	}}}
}

// fetchAll is PostgreSQL's FETCH_ALL (LONG_MAX): FETCH ALL, FORWARD ALL.
const fetchAll = 1<<63 - 1

// fetchSQL prints FETCH and MOVE. pg_query's deparser leaves the cursor name
// unquoted, so "SQL_CUR0x1" would fold to sql_cur0x1 (psqlODBC's cursors) and
// a name with a space would not parse; the statement has no expressions, so
// printing it from its fields is all a deparser would do.
func fetchSQL(f *pg_query.FetchStmt) string {
	verb := "FETCH"
	if f.Ismove {
		verb = "MOVE"
	}
	count := strconv.FormatInt(f.HowMany, 10)
	if f.HowMany == fetchAll {
		count = "ALL"
	}
	var dir string
	switch f.Direction {
	case pg_query.FetchDirection_FETCH_BACKWARD:
		dir = "BACKWARD " + count
	case pg_query.FetchDirection_FETCH_ABSOLUTE:
		dir = "ABSOLUTE " + strconv.FormatInt(f.HowMany, 10)
	case pg_query.FetchDirection_FETCH_RELATIVE:
		dir = "RELATIVE " + strconv.FormatInt(f.HowMany, 10)
	default:
		dir = "FORWARD " + count
	}
	return verb + " " + dir + " FROM " + quoteIdent(f.Portalname)
}

// quoteIdent double-quotes an identifier as PostgreSQL's quote_ident would
// when quoting is needed; quoting always keeps the name exactly.
func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// parseSubselect parses a catalog view's SQL (built by catalog.go from
// identifiers and literals it quotes itself) into the fenced subquery
// (body OFFSET 0) AS alias.
func parseSubselect(bc *bodyCache, body string, alias *pg_query.Alias) (*pg_query.Node, error) {
	return parseRangeSubselect(bc, body+" OFFSET 0", alias)
}

func parseRangeSubselect(bc *bodyCache, body string, alias *pg_query.Alias) (*pg_query.Node, error) {
	n, err := bc.parse(body)
	if err != nil {
		return nil, err
	}
	n.GetRangeSubselect().Alias = alias
	return n, nil
}

// bodyCache keeps parsed catalog view bodies: they depend only on what a
// session may see, so few distinct ones exist, and parsing them is most of
// a catalog query's rewrite time.
type bodyCache struct {
	mu sync.Mutex
	m  map[string]*pg_query.Node
}

const maxCachedBodies = 512

// parse returns a fresh copy of body parsed as a RangeSubselect.
func (bc *bodyCache) parse(body string) (*pg_query.Node, error) {
	bc.mu.Lock()
	n, ok := bc.m[body]
	bc.mu.Unlock()
	if ok {
		return proto.Clone(n).(*pg_query.Node), nil
	}
	tree, err := pg_query.Parse("SELECT * FROM (" + body + ") AS x")
	if err != nil {
		return nil, err
	}
	if len(tree.Stmts) != 1 {
		return nil, fmt.Errorf("not a subquery: %s", body)
	}
	sel := tree.Stmts[0].Stmt.GetSelectStmt()
	if sel == nil || len(sel.FromClause) != 1 || sel.FromClause[0].GetRangeSubselect() == nil {
		return nil, fmt.Errorf("not a subquery: %s", body)
	}
	n = sel.FromClause[0]
	bc.mu.Lock()
	if bc.m == nil {
		bc.m = map[string]*pg_query.Node{}
	}
	if len(bc.m) < maxCachedBodies {
		bc.m[body] = n
	}
	bc.mu.Unlock()
	return proto.Clone(n).(*pg_query.Node), nil
}

// oidLookup builds
//
//	(SELECT x.col FROM (SELECT args[0] AS a0, …) y, (body) x WHERE where(x, y) LIMIT 1):
//
// the object when the virtualized catalog has it, else NULL. A hidden object
// then looks like a missing one to whatever gets the result. No fence: the
// client's arguments do not read the catalog's rows, and PostgreSQL may then
// look the oid up by index. The arguments are evaluated in y, listed before x
// and not LATERAL, so that an unqualified column of the client's (the oid in
// psql's pg_get_constraintdef(oid)) binds to the client's row: written in the
// WHERE clause it would bind to x's own column of that name, and every row
// would get the first row's answer.
func oidLookup(bc *bodyCache, body, col string, args []*pg_query.Node,
	where func(ref func(string) *pg_query.Node, arg func(int) *pg_query.Node) *pg_query.Node) (*pg_query.Node, error) {
	from, err := parseRangeSubselect(bc, body, &pg_query.Alias{Aliasname: "x"})
	if err != nil {
		return nil, err
	}
	ref := func(c string) *pg_query.Node {
		return pg_query.MakeColumnRefNode([]*pg_query.Node{strNode("x"), strNode(c)}, 0)
	}
	// Only arguments that name a column can be captured; constants and
	// parameters stay in the WHERE clause, where an untyped literal still
	// takes the type of the column it is compared with.
	argName := func(i int) string { return "a" + strconv.Itoa(i) }
	var targets []*pg_query.Node
	for i, a := range args {
		if hasColumnRef(a.ProtoReflect()) {
			targets = append(targets, resTarget(argName(i), a))
		}
	}
	arg := func(i int) *pg_query.Node {
		if !hasColumnRef(args[i].ProtoReflect()) {
			return proto.Clone(args[i]).(*pg_query.Node)
		}
		return pg_query.MakeColumnRefNode([]*pg_query.Node{strNode("y"), strNode(argName(i))}, 0)
	}
	fromClause := []*pg_query.Node{from}
	if len(targets) > 0 {
		argSel := &pg_query.SelectStmt{TargetList: targets, Op: pg_query.SetOperation_SETOP_NONE}
		fromClause = []*pg_query.Node{{Node: &pg_query.Node_RangeSubselect{RangeSubselect: &pg_query.RangeSubselect{
			Subquery: &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: argSel}},
			Alias:    &pg_query.Alias{Aliasname: "y"},
		}}}, from}
	}
	sel := &pg_query.SelectStmt{
		TargetList:  []*pg_query.Node{resTarget("", ref(col))},
		FromClause:  fromClause,
		WhereClause: where(ref, arg),
		LimitCount:  intConst(1),
		LimitOption: pg_query.LimitOption_LIMIT_OPTION_COUNT,
		Op:          pg_query.SetOperation_SETOP_NONE,
	}
	return &pg_query.Node{Node: &pg_query.Node_SubLink{SubLink: &pg_query.SubLink{
		SubLinkType: pg_query.SubLinkType_EXPR_SUBLINK,
		Subselect:   &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}},
	}}}, nil
}

// hasColumnRef reports whether a column reference is anywhere under m.
func hasColumnRef(m protoreflect.Message) bool {
	if _, ok := m.Interface().(*pg_query.ColumnRef); ok {
		return true
	}
	found := false
	eachChild(m, func(c protoreflect.Message) { found = found || hasColumnRef(c) })
	return found
}

// eqArg is x.col = y.a0.
func eqArg(col string) func(ref func(string) *pg_query.Node, arg func(int) *pg_query.Node) *pg_query.Node {
	return func(ref func(string) *pg_query.Node, arg func(int) *pg_query.Node) *pg_query.Node {
		return opExpr("=", ref(col), arg(0))
	}
}

// regMatch is x.oid = CASE WHEN y.a0::text ~ '^[0-9]+$' THEN
// y.a0::text::oid ELSE toReg(y.a0::text) END: it matches an oid (of any
// integer or reg type) and a name alike, without knowing the argument's
// type, and stays one equality on oid (an index lookup).
func regMatch(toReg string) func(ref func(string) *pg_query.Node, arg func(int) *pg_query.Node) *pg_query.Node {
	return func(ref func(string) *pg_query.Node, arg func(int) *pg_query.Node) *pg_query.Node {
		asText := func() *pg_query.Node { return typeCast(arg(0), textType()) }
		digits := opExpr("~", asText(), strConst("^[0-9]+$"))
		oid := caseElse(digits, typeCast(asText(), typeNamed("oid")), funcCall(toReg, asText()))
		return opExpr("=", ref("oid"), oid)
	}
}

// typeNamed is pg_catalog.name.
func typeNamed(name string) *pg_query.TypeName {
	return &pg_query.TypeName{Names: []*pg_query.Node{strNode("pg_catalog"), strNode(name)}, Typemod: -1}
}

// nameConst is 'name'::pg_catalog.name.
func nameConst(s string) *pg_query.Node {
	return typeCast(strConst(s), &pg_query.TypeName{Names: []*pg_query.Node{strNode("pg_catalog"), strNode("name")}, Typemod: -1})
}

func coalesceExpr(args ...*pg_query.Node) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_CoalesceExpr{CoalesceExpr: &pg_query.CoalesceExpr{Args: args}}}
}

// regArray casts an array of oids (an oidvector) to an array of an object
// identifier type, each element resolved by lookup, in order:
//
//	CASE WHEN arr IS NULL THEN NULL
//	WHEN cardinality(arr::oid[]) > 0 AND array_lower(arr::oid[], 1) <> 1 THEN ('[lb:ub]=' || A::text)::typ[]
//	ELSE A END
//
// with A = ARRAY(SELECT lookup(u.o)::typ FROM pg_catalog.unnest(arr::oid[])
// WITH ORDINALITY AS u(o, n) ORDER BY u.n). An oidvector counts from 0,
// which ARRAY() cannot: its bounds go through text, whose names are those
// of visible objects. arr is cloned where it is used again.
func regArray(arr *pg_query.Node, typ string, lookup func(elem *pg_query.Node) *pg_query.Node) *pg_query.Node {
	u := func(c string) *pg_query.Node {
		return pg_query.MakeColumnRefNode([]*pg_query.Node{strNode("u"), strNode(c)}, -1)
	}
	oids := func() *pg_query.Node {
		oidArray := &pg_query.TypeName{Names: []*pg_query.Node{strNode("pg_catalog"), strNode("oid")}, Typemod: -1,
			ArrayBounds: []*pg_query.Node{pg_query.MakeIntNode(-1)}}
		return typeCast(proto.Clone(arr).(*pg_query.Node), oidArray)
	}
	regArrayType := func() *pg_query.TypeName {
		tn := typeNamed(typ)
		tn.ArrayBounds = []*pg_query.Node{pg_query.MakeIntNode(-1)}
		return tn
	}
	array := func() *pg_query.Node {
		from := &pg_query.Node{Node: &pg_query.Node_RangeFunction{RangeFunction: &pg_query.RangeFunction{
			Ordinality: true,
			Functions:  []*pg_query.Node{pg_query.MakeListNode([]*pg_query.Node{funcCall("unnest", oids()), nil})},
			Alias:      &pg_query.Alias{Aliasname: "u", Colnames: []*pg_query.Node{strNode("o"), strNode("n")}},
		}}}
		sel := &pg_query.SelectStmt{
			TargetList:  []*pg_query.Node{resTarget("", typeCast(lookup(u("o")), typeNamed(typ)))},
			FromClause:  []*pg_query.Node{from},
			SortClause:  []*pg_query.Node{pg_query.MakeSortByNode(u("n"), pg_query.SortByDir_SORTBY_DEFAULT, pg_query.SortByNulls_SORTBY_NULLS_DEFAULT, -1)},
			LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT,
			Op:          pg_query.SetOperation_SETOP_NONE,
		}
		return &pg_query.Node{Node: &pg_query.Node_SubLink{SubLink: &pg_query.SubLink{
			SubLinkType: pg_query.SubLinkType_ARRAY_SUBLINK,
			Subselect:   &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}},
		}}}
	}
	lower := func() *pg_query.Node { return funcCall("array_lower", oids(), intConst(1)) }
	bounds := strConst("[")
	for _, part := range []*pg_query.Node{lower(), strConst(":"), funcCall("array_upper", oids(), intConst(1)), strConst("]="),
		typeCast(array(), textType())} {
		bounds = opExpr("||", bounds, part)
	}
	isNull := &pg_query.Node{Node: &pg_query.Node_NullTest{NullTest: &pg_query.NullTest{
		Arg: proto.Clone(arr).(*pg_query.Node), Nulltesttype: pg_query.NullTestType_IS_NULL, Location: -1}}}
	n := pg_query.MakeCaseExprNode(nil, []*pg_query.Node{
		pg_query.MakeCaseWhenNode(isNull, typeCast(nullConst(), regArrayType()), -1),
		pg_query.MakeCaseWhenNode(andExpr([]*pg_query.Node{opExpr(">", funcCall("cardinality", oids()), intConst(0)),
			opExpr("<>", lower(), intConst(1))}), typeCast(bounds, regArrayType()), -1),
	}, -1)
	n.GetCaseExpr().Defresult = array()
	return n
}

// orExpr is l OR r.
func orExpr(l, r *pg_query.Node) *pg_query.Node {
	return pg_query.MakeBoolExprNode(pg_query.BoolExprType_OR_EXPR, []*pg_query.Node{l, r}, 0)
}

// oidAny is arg = ANY (ARRAY['s.r'::regclass, ...]::oid[]) over rels, schema-qualified relation names.
func oidAny(arg *pg_query.Node, rels [][2]string) *pg_query.Node {
	elems := make([]*pg_query.Node, len(rels))
	for i, r := range rels {
		elems[i] = typeCast(strConst(quoteIdent(r[0])+"."+quoteIdent(r[1])), typeNamed("regclass"))
	}
	arr := &pg_query.Node{Node: &pg_query.Node_AArrayExpr{AArrayExpr: &pg_query.A_ArrayExpr{Elements: elems, Location: -1}}}
	oidArr := typeNamed("oid")
	oidArr.ArrayBounds = []*pg_query.Node{pg_query.MakeIntNode(-1)}
	return pg_query.MakeAExprNode(pg_query.A_Expr_Kind_AEXPR_OP_ANY, []*pg_query.Node{strNode("=")}, arg, typeCast(arr, oidArr), 0)
}
