package rewrite

import (
	"fmt"
	"strings"
	"unicode/utf8"

	pg_query "github.com/pganalyze/pg_query_go/v5"
	"google.golang.org/protobuf/proto"

	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
)

// pass is the state of one statement's rewrite. The first error is kept and
// every step after it is a no-op.
type pass struct {
	r         *Rewriter
	m         *meter // counts the walk's nodes (budget.go)
	sql       string // the client's text, for error positions
	id        *policy.Identity
	tmpl      map[string]*relTemplate
	err       *pgerr.Error
	depth     int
	relations []string
	views     map[*relTemplate]*view
	vis       *visibility
	// kinds is set while rewriting a template: the token kind of the
	// constant each parameter stands for (template.go).
	kinds []byte
	// params is set for a statement of the extended protocol's Parse.
	params *params
	// reshaped counts the expressions the pass replaced by others that
	// PostgreSQL would name differently (rowField, current_setting of
	// search_path): a select-list item keeps the name it had.
	reshaped int
	// sysCols are the system columns the statement names (catalog_columns.go).
	sysCols []string
	// lean is set while a lookup's catalog body is built (lookupBody).
	lean bool
	// tenant is the session's tenant schema (schematenancy.go), or nil.
	tenant *tenantState
	// written lists the relations INSERT, UPDATE and DELETE statements
	// write (write.go), top level or in WITH.
	written []string
	// fences are the fenced subqueries the pass built (fencetext.go).
	fences []*fence
}

// scope is one query level: the CTE names it defines and the FROM items it
// has seen so far. Lookups go outward through parent.
type scope struct {
	parent *scope
	ctes   map[string]bool
	items  []rangeItem
}

// rangeItem is a FROM item of a level; v is set for protected relations,
// sub for the ones replaced by a fenced subquery (unless the client renamed
// their columns, which makes pushdown by name wrong).
type rangeItem struct {
	alias string
	v     *view
	sub   *pg_query.SelectStmt
	// fence records sub for its deparse (fencetext.go).
	fence *fence
	// schema is set when an unaliased relation was replaced by a subquery:
	// PostgreSQL also accepts schema.rel.col for it, which must now drop the
	// schema (Metabase qualifies every column that way).
	schema string
	// w is set for the relation a write statement changes (write.go).
	w *writeTarget
}

// view is a protected relation as this session sees it.
type view struct {
	t      *relTemplate
	denied map[string]bool
	cols   map[string]bool // visible columns
	schema string          // the schema it is read from (schematenancy.go)
}

// at sets an error's position from a node's byte offset into the client's
// text; PostgreSQL counts characters from 1.
func (p *pass) at(e *pgerr.Error, loc int32) *pgerr.Error {
	if loc >= 0 && int(loc) <= len(p.sql) {
		e.Position = int32(utf8.RuneCountInString(p.sql[:loc])) + 1
	}
	return e
}

func (p *pass) fail(e *pgerr.Error) {
	if p.err == nil {
		p.err = e
	}
}

func (p *pass) unsupported(what string) {
	p.fail(pgerr.Unsupported("%s is not supported", what))
}

func (s *scope) cteVisible(name string) bool {
	for ; s != nil; s = s.parent {
		if s.ctes[name] {
			return true
		}
	}
	return false
}

// statement classifies and rewrites one statement. Unknown kinds are refused.
func (p *pass) statement(n *pg_query.Node) Statement {
	if n == nil {
		p.fail(pgerr.Unsupported("empty statement node"))
		return Statement{}
	}
	switch x := n.Node.(type) {
	case *pg_query.Node_SelectStmt:
		p.selectStmt(x.SelectStmt, nil)
		if len(p.written) > 0 {
			return Statement{Kind: KindWrite, Writes: p.written}
		}
		return Statement{Kind: KindQuery}
	case *pg_query.Node_InsertStmt, *pg_query.Node_UpdateStmt, *pg_query.Node_DeleteStmt, *pg_query.Node_MergeStmt:
		p.write(n, nil)
		return Statement{Kind: KindWrite, Writes: p.written}
	case *pg_query.Node_ExplainStmt:
		p.explain(x.ExplainStmt)
		return Statement{Kind: KindExplain}
	case *pg_query.Node_VariableShowStmt:
		p.show(x.VariableShowStmt)
		if strings.EqualFold(x.VariableShowStmt.Name, "search_path") {
			n.Node = selectAs("search_path", p.searchPathValue()).Node
		}
		return Statement{Kind: KindShow}
	case *pg_query.Node_VariableSetStmt:
		return p.set(x.VariableSetStmt)
	case *pg_query.Node_TransactionStmt:
		p.transaction(x.TransactionStmt)
		st := Statement{Kind: KindTransaction, Savepoint: x.TransactionStmt.SavepointName}
		switch x.TransactionStmt.Kind {
		case pg_query.TransactionStmtKind_TRANS_STMT_SAVEPOINT:
			st.SavepointOp = SavepointDefine
		case pg_query.TransactionStmtKind_TRANS_STMT_RELEASE:
			st.SavepointOp = SavepointRelease
		case pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK_TO:
			st.SavepointOp = SavepointRollbackTo
		}
		return st
	case *pg_query.Node_PrepareStmt:
		for _, a := range x.PrepareStmt.Argtypes {
			p.typeName(a.GetTypeName())
			p.noRegType(a.GetTypeName())
		}
		p.query(x.PrepareStmt.Query, "PREPARE")
		return Statement{Kind: KindPrepare}
	case *pg_query.Node_ExecuteStmt:
		p.exprs(x.ExecuteStmt.Params, nil)
		return Statement{Kind: KindExecute}
	case *pg_query.Node_DeallocateStmt:
		return Statement{Kind: KindDeallocate}
	case *pg_query.Node_DeclareCursorStmt:
		p.query(x.DeclareCursorStmt.Query, "DECLARE")
		return Statement{Kind: KindCursor}
	case *pg_query.Node_FetchStmt, *pg_query.Node_ClosePortalStmt:
		return Statement{Kind: KindCursor}
	case *pg_query.Node_DiscardStmt:
		if x.DiscardStmt.Target == pg_query.DiscardMode_DISCARD_ALL {
			p.keepRowSecurity("DISCARD ALL")
		}
		return Statement{Kind: KindDiscard}
	case *pg_query.Node_CopyStmt:
		p.copyStmt(x.CopyStmt)
		return Statement{Kind: KindCopy}
	}
	p.fail(refusedStatement(n))
	return Statement{}
}

// query rewrites the query of PREPARE, DECLARE or EXPLAIN: only SELECT.
func (p *pass) query(n *pg_query.Node, in string) {
	if sel := n.GetSelectStmt(); sel != nil {
		p.selectStmt(sel, nil)
		if len(p.written) > 0 {
			p.fail(pgerr.Denied("permission denied: data-modifying statements in WITH are not allowed in %s", in))
		}
		return
	}
	if n == nil {
		p.fail(pgerr.Unsupported("%s without a query is not supported", in))
		return
	}
	e := refusedStatement(n)
	e.Message = fmt.Sprintf("%s in %s", e.Message, in)
	p.fail(e)
}

// statementNames names refused statements in errors.
var statementNames = map[string]string{
	"InsertStmt": "INSERT", "UpdateStmt": "UPDATE", "DeleteStmt": "DELETE", "MergeStmt": "MERGE",
	"DoStmt": "DO", "CallStmt": "CALL", "GrantStmt": "GRANT", "GrantRoleStmt": "GRANT",
	"CreateStmt": "CREATE TABLE", "CreateTableAsStmt": "CREATE TABLE AS", "DropStmt": "DROP",
	"AlterTableStmt": "ALTER TABLE", "TruncateStmt": "TRUNCATE", "ListenStmt": "LISTEN", "NotifyStmt": "NOTIFY",
	"UnlistenStmt": "UNLISTEN", "LockStmt": "LOCK", "VacuumStmt": "VACUUM", "ViewStmt": "CREATE VIEW",
	"CreateFunctionStmt": "CREATE FUNCTION", "IndexStmt": "CREATE INDEX", "CreateRoleStmt": "CREATE ROLE",
	"AlterRoleStmt": "ALTER ROLE", "ClusterStmt": "CLUSTER", "ReindexStmt": "REINDEX", "CheckPointStmt": "CHECKPOINT",
	"LoadStmt": "LOAD", "CreateExtensionStmt": "CREATE EXTENSION", "AlterSystemStmt": "ALTER SYSTEM",
	"RefreshMatViewStmt": "REFRESH MATERIALIZED VIEW", "CreateSchemaStmt": "CREATE SCHEMA",
	"CommentStmt": "COMMENT", "SecLabelStmt": "SECURITY LABEL", "RuleStmt": "CREATE RULE",
	"CreateTrigStmt": "CREATE TRIGGER", "CreatedbStmt": "CREATE DATABASE", "DropdbStmt": "DROP DATABASE",
	"ConstraintsSetStmt": "SET CONSTRAINTS", "ReassignOwnedStmt": "REASSIGN OWNED", "DropOwnedStmt": "DROP OWNED",
	"CreateSeqStmt": "CREATE SEQUENCE", "AlterDatabaseSetStmt": "ALTER DATABASE", "RenameStmt": "ALTER ... RENAME",
}

func refusedStatement(n *pg_query.Node) *pgerr.Error {
	kind := nodeKind(n)
	if name, ok := statementNames[kind]; ok {
		return pgerr.Denied("permission denied: %s is not allowed", name)
	}
	return pgerr.Denied("permission denied: statement %s is not allowed", kind)
}

func nodeKind(n *pg_query.Node) string {
	if n == nil || n.Node == nil {
		return "empty node"
	}
	s := fmt.Sprintf("%T", n.Node)
	s = strings.TrimPrefix(s, "*pg_query.Node_")
	return strings.TrimSuffix(s, "_")
}

// selectStmt rewrites one query level (and, through it, every level below).
func (p *pass) selectStmt(sel *pg_query.SelectStmt, parent *scope) {
	if p.err != nil || sel == nil {
		return
	}
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		p.fail(pgerr.New(pgerr.ProgramLimitExceeded, "statement is too deeply nested"))
		return
	}
	if sel.IntoClause != nil {
		p.fail(pgerr.Denied("permission denied: SELECT INTO is not allowed"))
		return
	}
	if len(sel.LockingClause) > 0 {
		p.fail(pgerr.Denied("permission denied: SELECT ... FOR UPDATE/SHARE is not allowed"))
		return
	}
	if sel.Op != pg_query.SetOperation_SETOP_NONE || len(sel.ValuesLists) > 1 {
		typeRegColumns(sel)
	}
	s := &scope{parent: parent}
	if w := sel.WithClause; w != nil {
		p.with(w, s)
	}
	if sel.Op != pg_query.SetOperation_SETOP_NONE {
		p.selectStmt(sel.Larg, s)
		p.selectStmt(sel.Rarg, s)
		p.exprs(sel.SortClause, s)
		p.expr(sel.LimitCount, s)
		p.expr(sel.LimitOffset, s)
		return
	}
	for _, vl := range sel.ValuesLists {
		p.expr(vl, s)
	}
	for _, f := range sel.FromClause {
		p.from(f, s)
	}
	p.exprs(sel.TargetList, s)
	p.expr(sel.WhereClause, s)
	p.exprs(sel.GroupClause, s)
	p.expr(sel.HavingClause, s)
	p.exprs(sel.WindowClause, s)
	p.exprs(sel.SortClause, s)
	p.exprs(sel.DistinctClause, s)
	p.expr(sel.LimitCount, s)
	p.expr(sel.LimitOffset, s)
	if p.err == nil && sel.WhereClause != nil {
		p.pushDown(sel.WhereClause, s)
	}
}

// with walks CTE bodies with PostgreSQL's scoping: a CTE sees the ones
// before it, or all of its WITH list (itself included) when RECURSIVE.
func (p *pass) with(w *pg_query.WithClause, s *scope) {
	s.ctes = map[string]bool{}
	if w.Recursive {
		for _, c := range w.Ctes {
			if cte := c.GetCommonTableExpr(); cte != nil {
				s.ctes[cte.Ctename] = true
			}
		}
	}
	for _, c := range w.Ctes {
		cte := c.GetCommonTableExpr()
		if cte == nil {
			p.unsupported(nodeKind(c) + " in WITH")
			return
		}
		if c := cte.CycleClause; c != nil {
			// SEARCH and CYCLE name the CTE's own columns; only CYCLE's
			// mark values are expressions (constants, by the grammar). A
			// typed literal (TO text 'x') deparses as a cast, which the
			// grammar does not take there.
			for _, v := range []*pg_query.Node{c.CycleMarkValue, c.CycleMarkDefault} {
				if v != nil && v.GetAConst() == nil {
					p.fail(pgerr.Unsupported("a CYCLE mark value other than a plain constant is not supported").
						WithHint("write plain constants, as in CYCLE id SET is_cycle TO 'Y' DEFAULT 'N' USING path"))
					return
				}
			}
		}
		sel := cte.Ctequery.GetSelectStmt()
		if sel == nil && p.writeCTE(cte.Ctequery, s) {
			s.ctes[cte.Ctename] = true
			continue
		}
		if sel == nil {
			p.fail(pgerr.Denied("permission denied: data-modifying statements in WITH are not allowed"))
			return
		}
		// The body sees the CTEs of this level (and outer ones) but not the
		// level's FROM items: walk it one level down.
		p.selectStmt(sel, s)
		s.ctes[cte.Ctename] = true
	}
}

// from rewrites one FROM item in place and records it in s.
func (p *pass) from(n *pg_query.Node, s *scope) {
	if p.err != nil || n == nil {
		return
	}
	switch x := n.Node.(type) {
	case *pg_query.Node_RangeVar:
		p.rangeVar(n, x.RangeVar, s)
	case *pg_query.Node_JoinExpr:
		j := x.JoinExpr
		p.from(j.Larg, s)
		p.from(j.Rarg, s)
		p.expr(j.Quals, s)
		if j.Alias != nil {
			s.items = append(s.items, rangeItem{alias: j.Alias.Aliasname})
		}
	case *pg_query.Node_RangeSubselect:
		rs := x.RangeSubselect
		sel := rs.Subquery.GetSelectStmt()
		if sel == nil {
			p.unsupported("subquery in FROM of kind " + nodeKind(rs.Subquery))
			return
		}
		p.selectStmt(sel, s)
		s.items = append(s.items, rangeItem{alias: rs.Alias.GetAliasname()})
	case *pg_query.Node_RangeFunction:
		rf := x.RangeFunction
		if p.catalogRangeFunction(n, rf, s) {
			return
		}
		for _, f := range rf.Functions {
			l := f.GetList()
			if l == nil || len(l.Items) == 0 {
				p.unsupported("function in FROM")
				return
			}
			fc := l.Items[0].GetFuncCall()
			p.expr(l.Items[0], s) // usually a FuncCall; checked against the allow-list
			if p.err == nil && fc != nil && l.Items[0].GetFuncCall() == nil {
				// Answered in place (a catalog function's visible answer,
				// current_database()) by an expression that FROM does not
				// take.
				p.fail(pgerr.Unsupported("function %s in FROM is not supported", funcDisplay(fc.Funcname)).
					WithHint("call it in the select list instead"))
				return
			}
			if len(l.Items) > 1 {
				p.columnDefs(l.Items[1].GetList().GetItems())
			}
		}
		p.columnDefs(rf.Coldeflist)
		s.items = append(s.items, rangeItem{alias: rf.Alias.GetAliasname()})
	case *pg_query.Node_RangeTableSample:
		p.tableSample(n, x.RangeTableSample, s)
	case *pg_query.Node_RangeTableFunc:
		p.unsupported("XMLTABLE")
	default:
		p.unsupported(nodeKind(n) + " in FROM")
	}
}

// errDenied is the one refusal for relations: the same for one that does not
// exist, one the policy does not list and one the role may not read, so that
// it is no existence oracle.
func errDenied(relname string) *pgerr.Error {
	return pgerr.Denied("permission denied for relation %s", relname)
}

// rangeVar resolves a relation reference and replaces it in place by its
// fenced subquery when the relation is protected.
func (p *pass) rangeVar(n *pg_query.Node, rv *pg_query.RangeVar, s *scope) {
	alias := rv.Relname
	if rv.Alias != nil && rv.Alias.Aliasname != "" {
		alias = rv.Alias.Aliasname
	}
	if rv.Catalogname != "" {
		// database.schema.relation: the connected database's name is
		// redundant, as in PostgreSQL; another's is PostgreSQL's error.
		if !p.ownDatabase(rv.Catalogname) {
			p.fail(p.at(pgerr.Unsupported("cross-database references are not implemented: \"%s.%s.%s\"",
				rv.Catalogname, rv.Schemaname, rv.Relname), rv.Location))
			return
		}
		rv.Catalogname = ""
	}
	if rv.Schemaname == "" && s.cteVisible(rv.Relname) {
		s.items = append(s.items, rangeItem{alias: alias})
		return
	}
	// pg_catalog is searched first, as PostgreSQL does implicitly.
	if rv.Schemaname == "" || rv.Schemaname == "pg_catalog" {
		if catalogVirtual[rv.Relname] || statViews[rv.Relname] || initdbOnly[rv.Relname] {
			p.catalogRangeVar(n, rv, false, s)
			return
		}
		if catalogRelations[rv.Relname] {
			rv.Schemaname = "pg_catalog"
			p.note("pg_catalog." + rv.Relname)
			s.items = append(s.items, rangeItem{alias: alias})
			return
		}
	}
	if rv.Schemaname == "information_schema" && infoSchemaVirtual[rv.Relname] {
		p.catalogRangeVar(n, rv, true, s)
		return
	}
	var t *relTemplate
	if rv.Schemaname != "" {
		t = p.tmpl[rv.Schemaname+"."+rv.Relname]
	} else {
		for _, schema := range p.r.pol.SearchPath {
			if t = p.tmpl[schema+"."+rv.Relname]; t != nil {
				break
			}
		}
	}
	// Unlisted, unpublished for the role, granted to groups the session is
	// not in, or tenant-keyed for a session without a tenant: the same
	// error, so it is no existence oracle.
	if t == nil || !p.relationReached(t) {
		p.fail(p.at(errDenied(rv.Relname), rv.Location))
		return
	}
	if !p.tenantReady(t, rv.Location) {
		return
	}
	v := p.view(t)
	p.note(t.rel.QualifiedName())
	item := rangeItem{alias: alias, v: v}
	if rv.Alias != nil && len(rv.Alias.Colnames) > 0 {
		// Column aliases rename by position; a hidden column would shift them.
		k := 0
		for _, c := range t.cols {
			if k >= len(rv.Alias.Colnames) {
				break
			}
			if v.denied[c.name] {
				p.fail(p.at(errColumn(c.name, t.rel.Name), rv.Location))
				return
			}
			k++
		}
	}
	if t.rel.Shared && len(t.rel.Columns) == 0 {
		rv.Schemaname = t.rel.Schema
		s.items = append(s.items, item)
		return
	}
	sub := p.subquery(t, v, rv.Alias, rv.Relname)
	f := p.newFence(n, sub)
	if rv.Alias == nil || len(rv.Alias.Colnames) == 0 {
		item.sub = sub.GetRangeSubselect().GetSubquery().GetSelectStmt()
		item.fence = f
	}
	if rv.Alias == nil {
		item.schema = t.rel.Schema
	}
	s.items = append(s.items, item)
	n.Node = sub.Node
}

func (p *pass) note(rel string) {
	p.m.stop(len(p.relations)) // the walk checks the meter at its next node
	for _, r := range p.relations {
		if r == rel {
			return
		}
	}
	p.relations = append(p.relations, rel)
}

func errColumn(col, rel string) *pgerr.Error {
	return pgerr.Denied("permission denied for column %s of relation %s", col, rel)
}

// view computes (once per pass) how the session sees a relation.
func (p *pass) view(t *relTemplate) *view {
	if v, ok := p.views[t]; ok {
		return v
	}
	v := &view{t: t, denied: map[string]bool{}, cols: map[string]bool{}, schema: p.relSchema(t)}
	for _, c := range t.cols {
		if c.rule != nil && c.rule.Deny && !p.id.InGroup(c.rule.UnlessGroups...) {
			v.denied[c.name] = true
			continue
		}
		v.cols[c.name] = true
	}
	if p.views == nil {
		p.views = map[*relTemplate]*view{}
	}
	p.views[t] = v
	return v
}

// subquery builds the fenced subquery for a protected relation.
func (p *pass) subquery(t *relTemplate, v *view, alias *pg_query.Alias, relname string) *pg_query.Node {
	targets := make([]*pg_query.Node, 0, len(t.cols))
	restricted := false
	for _, c := range t.cols {
		switch {
		case v.denied[c.name]:
			restricted = true
		case c.masked != nil && !p.id.InGroup(c.rule.UnlessGroups...):
			restricted = true
			targets = append(targets, resTarget(c.name, c.masked))
		default:
			targets = append(targets, resTarget("", colRef(c.name)))
		}
	}
	if !restricted && t.rel.Tenancy != policy.TenancySchema {
		// Every column as it is: * says the same as the full list (columns
		// are visible unless the policy says otherwise) with a smaller tree
		// to deparse. A tenant's schema is read by the model's column list,
		// so that one changed since it was checked shows no other column.
		targets = []*pg_query.Node{resTarget("", starRef())}
	}
	var conds []*pg_query.Node
	if t.rel.TenantColumn != "" {
		conds = append(conds, opExpr("=", colRef(t.rel.TenantColumn), strConst(p.id.Tenant)))
	}
	for i, f := range t.rel.Filters {
		c := p.filter(f)
		if c == nil {
			continue
		}
		if t.guard[i] {
			// CASE fixes the order: PostgreSQL may evaluate the conjuncts of
			// a WHERE in any order, a CASE branch only when its test holds.
			c = caseElse(opExpr("=", colRef(t.rel.TenantColumn), strConst(p.id.Tenant)), c, boolConst(false))
		}
		conds = append(conds, c)
	}
	var where *pg_query.Node
	if len(conds) > 0 {
		where = andExpr(conds)
	}
	return fencedSubquery(v.schema, t.rel.Name, !t.cat.Partitioned, targets, where, aliasFor(alias, relname))
}

// filter instantiates a policy filter for the session: its placeholders
// become typed constants. It returns nil for a dropped filter.
func (p *pass) filter(f *policy.Filter) *pg_query.Node {
	vals := make(map[int32]*pg_query.Node, len(f.Placeholders))
	for _, ph := range f.Placeholders {
		var v *pg_query.Node
		switch ph.Kind {
		case policy.PlaceTenant:
			if p.id.Tenant != "" {
				v = strConst(p.id.Tenant)
			}
		case policy.PlaceExternalID:
			if p.id.ExternalID != "" {
				v = strConst(p.id.ExternalID)
			}
		case policy.PlaceEmail:
			if p.id.Email != "" {
				v = strConst(p.id.Email)
			}
		case policy.PlaceGroups:
			v = textArray(p.id.Groups)
		case policy.PlaceAttr:
			if vs, ok := p.id.Attributes[ph.Attr]; ok {
				v = textArray(vs)
			}
		}
		if v == nil {
			if f.WhenAbsent == policy.AbsentIgnore {
				return nil
			}
			return boolConst(false)
		}
		vals[ph.Param] = v
	}
	expr := proto.Clone(f.Expr).(*pg_query.Node)
	return substitute(expr, vals)
}

// substitute replaces ParamRefs in a policy expression (which contains only
// the node kinds policy validation accepts).
func substitute(n *pg_query.Node, vals map[int32]*pg_query.Node) *pg_query.Node {
	if n == nil {
		return nil
	}
	list := func(ns []*pg_query.Node) {
		for i := range ns {
			ns[i] = substitute(ns[i], vals)
		}
	}
	switch x := n.Node.(type) {
	case *pg_query.Node_ParamRef:
		if v, ok := vals[x.ParamRef.Number]; ok {
			return v
		}
		return nullConst()
	case *pg_query.Node_AExpr:
		x.AExpr.Lexpr = substitute(x.AExpr.Lexpr, vals)
		x.AExpr.Rexpr = substitute(x.AExpr.Rexpr, vals)
	case *pg_query.Node_BoolExpr:
		list(x.BoolExpr.Args)
	case *pg_query.Node_List:
		list(x.List.Items)
	case *pg_query.Node_TypeCast:
		x.TypeCast.Arg = substitute(x.TypeCast.Arg, vals)
	case *pg_query.Node_NullTest:
		x.NullTest.Arg = substitute(x.NullTest.Arg, vals)
	case *pg_query.Node_BooleanTest:
		x.BooleanTest.Arg = substitute(x.BooleanTest.Arg, vals)
	case *pg_query.Node_CoalesceExpr:
		list(x.CoalesceExpr.Args)
	case *pg_query.Node_MinMaxExpr:
		list(x.MinMaxExpr.Args)
	case *pg_query.Node_AArrayExpr:
		list(x.AArrayExpr.Elements)
	case *pg_query.Node_CaseExpr:
		x.CaseExpr.Arg = substitute(x.CaseExpr.Arg, vals)
		list(x.CaseExpr.Args)
		x.CaseExpr.Defresult = substitute(x.CaseExpr.Defresult, vals)
	case *pg_query.Node_CaseWhen:
		x.CaseWhen.Expr = substitute(x.CaseWhen.Expr, vals)
		x.CaseWhen.Result = substitute(x.CaseWhen.Result, vals)
	case *pg_query.Node_FuncCall:
		list(x.FuncCall.Args)
	}
	return n
}

func (p *pass) exprs(ns []*pg_query.Node, s *scope) {
	for _, n := range ns {
		if p.err != nil {
			return
		}
		p.expr(n, s)
	}
}

// expr walks an expression for sublinks, function calls and column
// references. Kinds it does not know are refused.
func (p *pass) expr(n *pg_query.Node, s *scope) {
	if p.err != nil || n == nil || n.Node == nil { // an empty node (as in SELECT DISTINCT) carries nothing
		return
	}
	if p.m.stop(1) {
		p.fail(p.m.err)
		return
	}
	switch x := n.Node.(type) {
	case *pg_query.Node_ColumnRef:
		p.columnRef(x.ColumnRef, s)
		p.writeRef(x.ColumnRef, s)
		return
	case *pg_query.Node_ParamRef:
		if x.ParamRef.Number < 1 {
			p.fail(pgerr.New("42P02", "there is no parameter $%d", x.ParamRef.Number))
		}
		return
	case *pg_query.Node_SqlvalueFunction:
		if x.SqlvalueFunction.Op == pg_query.SQLValueFunctionOp_SVFOP_CURRENT_CATALOG && p.r.opts.Database != "" {
			n.Node = nameConst(p.r.opts.Database).Node
		}
		return
	case *pg_query.Node_AConst, *pg_query.Node_AStar, *pg_query.Node_String_,
		*pg_query.Node_Integer, *pg_query.Node_Float, *pg_query.Node_Boolean:
		return
	}
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		p.fail(pgerr.New(pgerr.ProgramLimitExceeded, "statement is too deeply nested"))
		return
	}
	switch x := n.Node.(type) {
	case *pg_query.Node_AExpr:
		if !operatorAllowed(x.AExpr.Name) {
			p.fail(pgerr.Denied("permission denied: schema-qualified operator"))
			return
		}
		typeRegLiterals(x.AExpr)
		p.expr(x.AExpr.Lexpr, s)
		p.expr(x.AExpr.Rexpr, s)
	case *pg_query.Node_BoolExpr:
		p.exprs(x.BoolExpr.Args, s)
	case *pg_query.Node_FuncCall:
		p.funcCall(n, x.FuncCall, s)
	case *pg_query.Node_TypeCast:
		if tn := x.TypeCast.TypeName; isRegType(tn) && len(tn.ArrayBounds) == 1 {
			p.regArrayCast(n, x.TypeCast, s)
			return
		}
		p.typeName(x.TypeCast.TypeName)
		p.expr(x.TypeCast.Arg, s)
		if p.err == nil {
			p.regCast(x.TypeCast)
		}
	case *pg_query.Node_CollateClause:
		p.expr(x.CollateClause.Arg, s)
	case *pg_query.Node_NullTest:
		p.expr(x.NullTest.Arg, s)
	case *pg_query.Node_BooleanTest:
		p.expr(x.BooleanTest.Arg, s)
	case *pg_query.Node_SubLink:
		p.expr(x.SubLink.Testexpr, s)
		sel := x.SubLink.Subselect.GetSelectStmt()
		if sel == nil {
			p.unsupported("subquery of kind " + nodeKind(x.SubLink.Subselect))
			return
		}
		p.selectStmt(sel, s)
	case *pg_query.Node_CaseExpr:
		typeRegCase(x.CaseExpr)
		p.expr(x.CaseExpr.Arg, s)
		p.exprs(x.CaseExpr.Args, s)
		p.expr(x.CaseExpr.Defresult, s)
	case *pg_query.Node_CaseWhen:
		p.expr(x.CaseWhen.Expr, s)
		p.expr(x.CaseWhen.Result, s)
	case *pg_query.Node_CoalesceExpr:
		typeRegList(x.CoalesceExpr.Args)
		p.exprs(x.CoalesceExpr.Args, s)
	case *pg_query.Node_MinMaxExpr:
		typeRegList(x.MinMaxExpr.Args)
		p.exprs(x.MinMaxExpr.Args, s)
	case *pg_query.Node_RowExpr:
		p.exprs(x.RowExpr.Args, s)
	case *pg_query.Node_AArrayExpr:
		typeRegList(x.AArrayExpr.Elements)
		p.exprs(x.AArrayExpr.Elements, s)
	case *pg_query.Node_List:
		p.exprs(x.List.Items, s)
	case *pg_query.Node_AIndirection:
		// pg_query's deparser drops the parentheses around some arguments
		// ((ARRAY[1])[1] becomes ARRAY[1][1]): those it keeps pass as they
		// are, the others it would lose go into (ROW(arg)).f1 (rowField).
		ind := x.AIndirection
		wrap := false
		switch ind.Arg.GetNode().(type) {
		case *pg_query.Node_ColumnRef, *pg_query.Node_FuncCall, *pg_query.Node_RowExpr, *pg_query.Node_TypeCast,
			*pg_query.Node_AExpr, *pg_query.Node_ParamRef, *pg_query.Node_SubLink, *pg_query.Node_AIndirection:
		case *pg_query.Node_AArrayExpr, *pg_query.Node_CaseExpr, *pg_query.Node_CoalesceExpr, *pg_query.Node_MinMaxExpr:
			wrap = true
		default:
			p.fail(pgerr.Unsupported("subscript or field selection on %s is not supported", nodeKind(ind.Arg)).
				WithHint("cast the expression first, as in (expr::type)[1]"))
			return
		}
		p.expr(ind.Arg, s)
		p.exprs(ind.Indirection, s)
		if wrap && p.err == nil {
			rowField(ind)
			p.reshaped++
		}
	case *pg_query.Node_AIndices:
		p.expr(x.AIndices.Lidx, s)
		p.expr(x.AIndices.Uidx, s)
	case *pg_query.Node_ResTarget:
		p.exprs(x.ResTarget.Indirection, s)
		name := databaseFuncName(x.ResTarget.Val)
		reshaped := p.reshaped
		colname, known := colnameOrUnnamed(x.ResTarget.Val)
		p.expr(x.ResTarget.Val, s)
		if name != "" && x.ResTarget.Name == "" && x.ResTarget.Val.GetTypeCast() != nil {
			// Replaced by a constant: keep the column name PostgreSQL gives.
			x.ResTarget.Name = name
		}
		if p.reshaped != reshaped && known && x.ResTarget.Name == "" && x.ResTarget.Val != nil {
			// Part of it was replaced (rowField would name it f1).
			x.ResTarget.Name = colname
		}
	case *pg_query.Node_SortBy:
		if len(x.SortBy.UseOp) > 0 && !operatorAllowed(x.SortBy.UseOp) {
			p.fail(pgerr.Denied("permission denied: schema-qualified operator"))
			return
		}
		p.expr(x.SortBy.Node, s)
	case *pg_query.Node_WindowDef:
		w := x.WindowDef
		p.exprs(w.PartitionClause, s)
		p.exprs(w.OrderClause, s)
		p.expr(w.StartOffset, s)
		p.expr(w.EndOffset, s)
	case *pg_query.Node_GroupingSet:
		p.exprs(x.GroupingSet.Content, s)
	case *pg_query.Node_GroupingFunc:
		p.exprs(x.GroupingFunc.Args, s)
	case *pg_query.Node_NamedArgExpr:
		p.expr(x.NamedArgExpr.Arg, s)
	case *pg_query.Node_XmlExpr:
		p.exprs(x.XmlExpr.NamedArgs, s)
		p.exprs(x.XmlExpr.Args, s)
	case *pg_query.Node_XmlSerialize:
		p.typeName(x.XmlSerialize.TypeName)
		p.expr(x.XmlSerialize.Expr, s)
	case *pg_query.Node_JsonIsPredicate:
		p.expr(x.JsonIsPredicate.Expr, s)
	default:
		p.unsupported("expression " + nodeKind(n))
	}
}

// operatorAllowed accepts unqualified operators and pg_catalog ones.
func operatorAllowed(name []*pg_query.Node) bool {
	switch len(name) {
	case 1:
		return true
	case 2:
		return name[0].GetString_().GetSval() == "pg_catalog"
	}
	return false
}

// columnRef refuses references to denied columns with a clear message. The
// subquery omits denied columns anyway; this only says why.
func (p *pass) columnRef(c *pg_query.ColumnRef, s *scope) {
	if len(c.Fields) == 4 {
		db := c.Fields[0].GetString_().GetSval()
		if !p.ownDatabase(db) {
			p.fail(p.at(pgerr.Unsupported("cross-database references are not implemented: %s", funcDisplay(c.Fields)), c.Location))
			return
		}
		c.Fields = c.Fields[1:]
	}
	if len(c.Fields) == 3 {
		p.unqualifySchema(c, s)
	}
	f := c.Fields
	if len(f) == 0 {
		return
	}
	col := f[len(f)-1].GetString_()
	if col == nil { // rel.*
		return
	}
	// Name resolution scans the FROM items of every level out, as
	// PostgreSQL's does: charged to the meter, so that a statement of
	// many items and many references stops within its budget.
	if len(f) == 1 {
		for lv := s; lv != nil; lv = lv.parent {
			if p.m.stop(len(lv.items)) {
				p.fail(p.m.err)
				return
			}
			var denied *view
			for _, it := range lv.items {
				switch {
				case it.v == nil:
					// A subquery, function or CTE may have the column: let
					// PostgreSQL resolve it (the denied column is absent anyway).
					return
				case it.v.cols[col.Sval]:
					return
				case it.v.denied[col.Sval]:
					denied = it.v
				}
			}
			if denied != nil {
				p.fail(p.at(errColumn(col.Sval, denied.t.rel.Name), c.Location))
				return
			}
		}
		return
	}
	qual := f[len(f)-2].GetString_().GetSval()
	for lv := s; lv != nil; lv = lv.parent {
		if p.m.stop(len(lv.items)) {
			p.fail(p.m.err)
			return
		}
		for i := len(lv.items) - 1; i >= 0; i-- {
			it := lv.items[i]
			if it.alias != qual {
				continue
			}
			if it.v != nil && it.v.denied[col.Sval] {
				p.fail(p.at(errColumn(col.Sval, it.v.t.rel.Name), c.Location))
			}
			return
		}
	}
}

// ownDatabase reports whether name is the database the client connected
// to: the logical name it connects with (Options.Database).
func (p *pass) ownDatabase(name string) bool {
	return p.r.opts.Database != "" && name == p.r.opts.Database
}

// unqualifySchema turns schema.rel.col into rel.col when rel names, in
// scope, a relation that was replaced by its (unaliased) fenced subquery,
// which PostgreSQL resolves by its alias only.
func (p *pass) unqualifySchema(c *pg_query.ColumnRef, s *scope) {
	schema, rel := c.Fields[0].GetString_().GetSval(), c.Fields[1].GetString_().GetSval()
	for lv := s; lv != nil; lv = lv.parent {
		for i := len(lv.items) - 1; i >= 0; i-- {
			if it := lv.items[i]; it.alias == rel {
				if it.schema != "" && it.schema == schema {
					c.Fields = c.Fields[1:]
				}
				return
			}
		}
	}
}

// funcCall checks a function call against the allow-list and walks its
// arguments.
func (p *pass) funcCall(n *pg_query.Node, fc *pg_query.FuncCall, s *scope) {
	schema, name := policy.FuncName(fc.Funcname)
	if schema == "" || schema == "pg_catalog" {
		if spec, ok := catalogFuncs[name]; ok && fc.Over == nil && !fc.AggStar {
			p.exprs(fc.Args, s)
			p.exprs(fc.AggOrder, s)
			p.expr(fc.AggFilter, s)
			if p.err == nil {
				p.catalogFuncCall(n, fc, name, spec)
				p.tenantTableVisible(n, fc, name)
			}
			return
		}
		if name == "current_database" && len(fc.Args) == 0 && p.r.opts.Database != "" {
			n.Node = nameConst(p.r.opts.Database).Node
			return
		}
	}
	if schema == "information_schema" && name == "_pg_expandarray" {
		// Unnests an array with positions (pgjdbc's getPrimaryKeys); reads nothing.
		p.exprs(fc.Args, s)
		return
	}
	display := name
	if schema != "" {
		display = schema + "." + name
	}
	if name == "" {
		p.fail(p.at(pgerr.Denied("permission denied for function %s", funcDisplay(fc.Funcname)), fc.Location))
		return
	}
	if !p.r.pol.FunctionAllowed(schema, name) {
		p.fail(p.at(pgerr.Denied("permission denied for function %s", display), fc.Location))
		return
	}
	switch name {
	case "current_setting", "set_config":
		if schema == "" || schema == "pg_catalog" {
			setting := p.settingFunc(name, fc.Args)
			if name == "current_setting" && p.err == nil && setting == "search_path" {
				n.Node = p.searchPathValue().Node
				p.reshaped++
				return
			}
		}
	case "timezone":
		explicitCall(fc)
	}
	p.exprs(fc.Args, s)
	p.exprs(fc.AggOrder, s)
	p.expr(fc.AggFilter, s)
	if fc.Over != nil {
		w := fc.Over
		p.exprs(w.PartitionClause, s)
		p.exprs(w.OrderClause, s)
		p.expr(w.StartOffset, s)
		p.expr(w.EndOffset, s)
	}
}

func funcDisplay(names []*pg_query.Node) string {
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, n.GetString_().GetSval())
	}
	return strings.Join(parts, ".")
}

// typeName accepts type modifiers that are plain constants or identifiers,
// as PostgreSQL itself does; anything else (expressions, subqueries) is
// refused before it reaches the deparser.
func (p *pass) typeName(tn *pg_query.TypeName) {
	if tn == nil {
		return
	}
	if isRegType(tn) && len(tn.ArrayBounds) > 0 {
		// Only scalar casts are rewritten to resolve visible objects (regCast).
		p.fail(pgerr.Denied("permission denied: arrays of %s are not supported", regTypeName(tn)))
		return
	}
	for _, m := range tn.Typmods {
		if m.GetAConst() != nil {
			continue
		}
		if cr := m.GetColumnRef(); cr != nil && len(cr.Fields) == 1 && cr.Fields[0].GetString_() != nil {
			continue
		}
		p.fail(pgerr.New(pgerr.SyntaxError, "type modifiers must be simple constants or identifiers"))
		return
	}
}

// columnDefs checks the column definition list of a function in FROM.
func (p *pass) columnDefs(defs []*pg_query.Node) {
	for _, d := range defs {
		cd := d.GetColumnDef()
		if cd == nil {
			p.unsupported("column definition " + nodeKind(d))
			return
		}
		if cd.RawDefault != nil || cd.CookedDefault != nil || len(cd.Constraints) > 0 {
			p.unsupported("column definition options")
			return
		}
		p.typeName(cd.TypeName)
		p.noRegType(cd.TypeName)
	}
}
