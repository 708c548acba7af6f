package rewrite

import (
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
)

// Writes: INSERT, UPDATE and DELETE on the relations a policy opens for
// writing (policy.Writes), for the connection roles and groups it names.
// What a session writes is fenced as what it reads:
//
//   - INSERT: the tenant column and the other filled columns take the
//     session's values. A client that names one may only repeat that value
//     (or write DEFAULT); any other value, a parameter or an expression is
//     refused. INSERT ... SELECT reads through the fences and may not name
//     them at all; pgwarden appends them.
//   - UPDATE and DELETE: the target gets the tenant predicate and the
//     relation's filters; the client's condition runs only on rows that
//     passed them (CASE fixes the order, as for guarded filters), so that
//     no expression of the client's sees another tenant's row. FROM and
//     USING relations are fenced subqueries as in a SELECT. The tenant
//     column and the filled columns cannot be set; only the policy's
//     update columns can.
//   - ON CONFLICT needs a conflict target that names the tenant column: the
//     arbiter index then only ever matches the session's own rows, so DO
//     NOTHING and DO UPDATE touch nothing else and an insert learns nothing
//     about another tenant's keys through the arbiter. (A unique index
//     without the tenant column still raises 23505 across tenants: that is
//     the operator's to avoid on writable relations.)
//   - The target's masked columns read as masked everywhere in the
//     statement: RETURNING (and a writable CTE's rows) shows the masked
//     value; an expression elsewhere that reads the raw value of a masked
//     column, or the row as a whole, is refused. Denied columns are
//     refused as in reads.
//   - MERGE and WHERE CURRENT OF are refused (0A000).

// fillsPersonal reports whether a writable relation of rels fills a column
// from the session's external id or email.
func fillsPersonal(rels map[string]*policy.Relation) bool {
	for _, rel := range rels {
		if rel.Writes.Personal() {
			return true
		}
	}
	return false
}

// mayInsert reports whether sql may be an INSERT or hold one: only then can
// a rewrite fill columns from the session. A keyword cannot be quoted or
// escaped, so a statement without the word has no INSERT; the word in a
// comment or a string only costs a shared cache entry.
func mayInsert(sql string) bool {
	for i := 0; i+len("insert") <= len(sql); i++ {
		if strings.EqualFold(sql[i:i+len("insert")], "insert") {
			return true
		}
	}
	return false
}

// writeTarget is the relation a write statement changes, as the session may
// change it.
type writeTarget struct {
	t     *relTemplate
	v     *view
	w     *policy.Writes
	alias string
	// masked are the columns masked for this session, with their mask
	// expressions over the target's (unqualified) columns.
	masked map[string]*pg_query.Node
}

// write rewrites an INSERT, UPDATE or DELETE at the top level or as a WITH
// query (parent is then the WITH's level); MERGE is refused.
func (p *pass) write(n *pg_query.Node, parent *scope) {
	if p.err != nil {
		return
	}
	p.depth++
	defer func() { p.depth-- }()
	switch x := n.Node.(type) {
	case *pg_query.Node_InsertStmt:
		p.insert(x.InsertStmt, parent)
	case *pg_query.Node_UpdateStmt:
		p.update(x.UpdateStmt, parent)
	case *pg_query.Node_DeleteStmt:
		p.deleteStmt(x.DeleteStmt, parent)
	case *pg_query.Node_MergeStmt:
		p.fail(pgerr.Unsupported("MERGE is not supported through pgwarden").
			WithHint("use INSERT ... ON CONFLICT (tenant column, ...) DO UPDATE, UPDATE or DELETE"))
	default:
		p.fail(refusedStatement(n))
	}
}

// writeCTE handles a data-modifying WITH query; it reports false for a
// query that is not one.
func (p *pass) writeCTE(n *pg_query.Node, s *scope) bool {
	switch n.GetNode().(type) {
	case *pg_query.Node_InsertStmt, *pg_query.Node_UpdateStmt, *pg_query.Node_DeleteStmt, *pg_query.Node_MergeStmt:
	default:
		return false
	}
	if s.parent != nil {
		// As PostgreSQL: only the top level may modify data in WITH.
		p.fail(pgerr.New(pgerr.FeatureNotSupported, "WITH clause containing a data-modifying statement must be at the top level"))
		return true
	}
	p.write(n, s)
	return true
}

// target resolves the relation a statement writes, as rangeVar resolves
// the ones it reads, and checks that the session may write it with cmd.
func (p *pass) target(rv *pg_query.RangeVar, s *scope, cmd string, allowed func(*policy.Writes) bool) *writeTarget {
	if p.err != nil {
		return nil
	}
	if rv == nil {
		p.fail(pgerr.Unsupported("%s without a relation", cmd))
		return nil
	}
	if rv.Catalogname != "" {
		if !p.ownDatabase(rv.Catalogname) {
			p.fail(p.at(pgerr.Unsupported("cross-database references are not implemented: \"%s.%s.%s\"",
				rv.Catalogname, rv.Schemaname, rv.Relname), rv.Location))
			return nil
		}
		rv.Catalogname = ""
	}
	if rv.Schemaname == "" && s.cteVisible(rv.Relname) {
		p.fail(p.at(pgerr.Denied("permission denied: %s into WITH query %s is not allowed", cmd, rv.Relname), rv.Location))
		return nil
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
	// What the session cannot read it cannot write, with the read's error.
	if t == nil || (!t.rel.Published && (p.id.Role == policy.RoleViewer || p.id.Role == policy.RoleRestrictedQuerier)) ||
		(!t.rel.Shared && p.id.Tenant == "") {
		p.fail(p.at(errDenied(rv.Relname), rv.Location))
		return nil
	}
	w := t.rel.Writes
	if !w.Allows(p.id) || !allowed(w) {
		p.fail(p.at(pgerr.Denied("permission denied: %s on relation %s is not allowed", cmd, rv.Relname), rv.Location).
			WithHint("the policy does not open %s for %s to this session", t.rel.QualifiedName(), cmd))
		return nil
	}
	if rv.Alias != nil && len(rv.Alias.Colnames) > 0 {
		p.fail(pgerr.New(pgerr.SyntaxError, "column aliases are not allowed on the target of %s", cmd))
		return nil
	}
	rv.Schemaname = t.rel.Schema
	if cmd != "INSERT" {
		rv.Inh = t.cat.Partitioned // as reads: ONLY, unless partitioned
	}
	p.note(t.rel.QualifiedName())
	if !slices.Contains(p.written, t.rel.QualifiedName()) {
		p.written = append(p.written, t.rel.QualifiedName())
	}
	wt := &writeTarget{t: t, v: p.view(t), w: w, alias: rv.Relname, masked: map[string]*pg_query.Node{}}
	if rv.Alias != nil && rv.Alias.Aliasname != "" {
		wt.alias = rv.Alias.Aliasname
	}
	for _, c := range t.cols {
		if c.masked != nil && !p.id.InGroup(c.rule.UnlessGroups...) {
			wt.masked[c.name] = c.masked
		}
	}
	return wt
}

func (wt *writeTarget) item() rangeItem { return rangeItem{alias: wt.alias, v: wt.v, w: wt} }

func (wt *writeTarget) name() string { return wt.t.rel.Name }

func (wt *writeTarget) column(name string) bool {
	for _, c := range wt.t.cols {
		if c.name == name {
			return true
		}
	}
	return false
}

// fillValue is the session's value for a filled column; it fails the pass
// when the session has none (an empty external id).
func (p *pass) fillValue(wt *writeTarget, col string) (string, bool) {
	v, ok := wt.w.Fill[col].Value(p.id)
	if !ok {
		p.fail(pgerr.Denied("permission denied: column %s of relation %s is filled from the session, which has no value for it",
			col, wt.name()))
	}
	return v, ok
}

func errFilled(col, rel string) *pgerr.Error {
	return pgerr.Denied("permission denied: column %s of relation %s is set by pgwarden from the session", col, rel).
		WithHint("leave the column out (or write DEFAULT): pgwarden fills it")
}

// insert rewrites INSERT … VALUES, INSERT … SELECT and INSERT … DEFAULT VALUES.
func (p *pass) insert(ins *pg_query.InsertStmt, parent *scope) {
	s := &scope{parent: parent}
	if ins.WithClause != nil {
		p.with(ins.WithClause, s)
	}
	wt := p.target(ins.Relation, s, "INSERT", func(w *policy.Writes) bool { return w.Insert })
	if wt == nil || p.err != nil {
		return
	}
	var src *pg_query.SelectStmt
	if ins.SelectStmt != nil {
		if src = ins.SelectStmt.GetSelectStmt(); src == nil {
			p.unsupported("INSERT source " + nodeKind(ins.SelectStmt))
			return
		}
	}
	values := src != nil && len(src.ValuesLists) > 0 && src.Op == pg_query.SetOperation_SETOP_NONE &&
		src.WithClause == nil && len(src.SortClause) == 0 && src.LimitCount == nil && src.LimitOffset == nil
	if len(ins.Cols) == 0 && src != nil {
		if !values {
			p.fail(pgerr.Unsupported("INSERT ... SELECT without a column list is not supported").
				WithHint("name the columns, leaving out %s: pgwarden fills it", wt.t.rel.TenantColumn))
			return
		}
		// The positional VALUES of INSERT without columns name the
		// relation's first columns: say so, so that the checks below and
		// the filled columns appended after them line up.
		k := len(src.ValuesLists[0].GetList().GetItems())
		if k > len(wt.t.cols) {
			p.fail(pgerr.New(pgerr.SyntaxError, "INSERT has more expressions than target columns"))
			return
		}
		for _, c := range wt.t.cols[:k] {
			ins.Cols = append(ins.Cols, resTarget(c.name, nil))
		}
	}
	present := map[string]int{}
	named := map[string]bool{}
	for i, c := range ins.Cols {
		rt := c.GetResTarget()
		if rt == nil {
			p.unsupported("INSERT column " + nodeKind(c))
			return
		}
		if named[rt.Name] {
			p.fail(p.at(pgerr.New("42701", "column \"%s\" specified more than once", rt.Name), rt.Location))
			return
		}
		named[rt.Name] = true
		p.exprs(rt.Indirection, s)
		switch {
		case !wt.column(rt.Name):
			p.fail(p.at(pgerr.New(pgerr.UndefinedColumn, "column \"%s\" of relation \"%s\" does not exist", rt.Name, wt.name()), rt.Location))
			return
		case wt.w.Fill[rt.Name] != (policy.FillValue{}):
			if len(rt.Indirection) > 0 || !values {
				p.fail(p.at(errFilled(rt.Name, wt.name()), rt.Location))
				return
			}
			present[rt.Name] = i
		case !wt.w.Writable(rt.Name):
			p.fail(p.at(errColumn(rt.Name, wt.name()), rt.Location).WithHint("the policy makes the column read-only"))
			return
		}
	}
	fills := wt.w.FillColumns(wt.t.rel.TenantColumn)
	vals := make(map[string]string, len(fills))
	for _, col := range fills {
		v, ok := p.fillValue(wt, col)
		if !ok {
			return
		}
		vals[col] = v
	}
	var missing []string
	for _, col := range fills {
		if _, ok := present[col]; !ok {
			missing = append(missing, col)
		}
	}
	switch {
	case values:
		for _, l := range src.ValuesLists {
			items := l.GetList().GetItems()
			if len(items) != len(ins.Cols) {
				// PostgreSQL's own errors, without guessing which columns are meant.
				p.fail(pgerr.New(pgerr.SyntaxError, "VALUES lists must all be the same length as the INSERT's column list"))
				return
			}
			for col, i := range present {
				if !sameValue(items[i], vals[col]) {
					p.fail(errFilled(col, wt.name()))
					return
				}
				items[i] = strConst(vals[col])
			}
			for _, it := range items {
				if it.GetSetToDefault() == nil {
					p.expr(it, s)
				}
			}
			for _, col := range missing {
				items = append(items, strConst(vals[col]))
			}
			l.GetList().Items = items
		}
	case src != nil:
		p.selectStmt(src, s)
		if len(missing) > 0 {
			// SELECT src.*, <filled values> FROM (client's query) src
			targets := []*pg_query.Node{resTarget("", pg_query.MakeColumnRefNode(
				[]*pg_query.Node{strNode("pgwarden_src"), starRef().GetColumnRef().Fields[0]}, 0))}
			for _, col := range missing {
				targets = append(targets, resTarget("", strConst(vals[col])))
			}
			ins.SelectStmt = &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: &pg_query.SelectStmt{
				TargetList: targets,
				FromClause: []*pg_query.Node{{Node: &pg_query.Node_RangeSubselect{RangeSubselect: &pg_query.RangeSubselect{
					Subquery: ins.SelectStmt, Alias: &pg_query.Alias{Aliasname: "pgwarden_src"}}}}},
				LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT,
				Op:          pg_query.SetOperation_SETOP_NONE,
			}}}
		}
	default: // DEFAULT VALUES
		items := make([]*pg_query.Node, 0, len(missing))
		for _, col := range missing {
			items = append(items, strConst(vals[col]))
		}
		ins.SelectStmt = &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: &pg_query.SelectStmt{
			ValuesLists: []*pg_query.Node{pg_query.MakeListNode(items)},
			LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT,
			Op:          pg_query.SetOperation_SETOP_NONE,
		}}}
	}
	for _, col := range missing {
		ins.Cols = append(ins.Cols, resTarget(col, nil))
	}
	if p.err != nil {
		return
	}
	// The target is in scope for ON CONFLICT and RETURNING, not for the source.
	s.items = append(s.items, wt.item())
	if oc := ins.OnConflictClause; oc != nil {
		p.onConflict(oc, wt, s)
	}
	ins.ReturningList = p.returning(ins.ReturningList, wt, s, false)
}

// sameValue reports whether a client's value for a filled column is the
// session's value itself (or DEFAULT, which pgwarden fills).
func sameValue(n *pg_query.Node, want string) bool {
	if n.GetSetToDefault() != nil {
		return true
	}
	c := n.GetAConst()
	if c == nil || c.Isnull {
		return false
	}
	switch c.Val.(type) {
	case *pg_query.A_Const_Sval, *pg_query.A_Const_Ival, *pg_query.A_Const_Fval:
		return constText(c) == want
	}
	return false
}

// onConflict checks ON CONFLICT: a conflict target that names the tenant
// column, and a DO UPDATE that only sets update columns of the session's rows.
func (p *pass) onConflict(oc *pg_query.OnConflictClause, wt *writeTarget, s *scope) {
	tc := wt.t.rel.TenantColumn
	inf := oc.Infer
	if inf == nil || inf.Conname != "" {
		p.fail(pgerr.Denied("permission denied: ON CONFLICT on relation %s needs a conflict target of columns that includes %s",
			wt.name(), tc).WithHint("write ON CONFLICT (%s, ...): only a unique key that includes the tenant column keeps the conflict within the session's rows", tc))
		return
	}
	hasTenant := false
	for _, e := range inf.IndexElems {
		ie := e.GetIndexElem()
		if ie == nil {
			p.unsupported("conflict target " + nodeKind(e))
			return
		}
		if ie.Name == tc {
			hasTenant = true
		}
		p.expr(ie.Expr, s)
	}
	if !hasTenant {
		p.fail(pgerr.Denied("permission denied: ON CONFLICT on relation %s needs a conflict target that includes %s", wt.name(), tc).
			WithHint("a unique key without the tenant column would match (and reveal) other tenants' rows"))
		return
	}
	p.expr(inf.WhereClause, s)
	switch oc.Action {
	case pg_query.OnConflictAction_ONCONFLICT_NOTHING:
		return
	case pg_query.OnConflictAction_ONCONFLICT_UPDATE:
	default:
		p.unsupported("ON CONFLICT action " + oc.Action.String())
		return
	}
	if len(wt.w.Update) == 0 {
		p.fail(pgerr.Denied("permission denied: UPDATE on relation %s is not allowed", wt.name()).
			WithHint("the policy does not open %s for UPDATE to this session; ON CONFLICT DO NOTHING is allowed", wt.t.rel.QualifiedName()))
		return
	}
	// excluded is the proposed row: the client's own values and the filled ones.
	us := &scope{parent: s.parent, items: append(slices.Clip(s.items), rangeItem{alias: "excluded"})}
	p.setList(oc.TargetList, wt, us)
	if p.err != nil {
		return
	}
	oc.WhereClause = p.targetWhere(wt, oc.WhereClause, us)
}

// setList checks and walks the SET list of UPDATE and of ON CONFLICT DO UPDATE.
func (p *pass) setList(targets []*pg_query.Node, wt *writeTarget, s *scope) {
	for _, n := range targets {
		rt := n.GetResTarget()
		if rt == nil {
			p.unsupported("SET item " + nodeKind(n))
			return
		}
		switch {
		case rt.Name == wt.t.rel.TenantColumn:
			p.fail(p.at(pgerr.Denied("permission denied: the tenant column %s of relation %s cannot be updated", rt.Name, wt.name()), rt.Location).
				WithHint("a row cannot move to another tenant"))
			return
		case wt.w.Fill[rt.Name] != (policy.FillValue{}):
			p.fail(p.at(errFilled(rt.Name, wt.name()), rt.Location).WithHint("filled columns are set on INSERT and never updated"))
			return
		case !wt.w.Updatable(rt.Name):
			if !wt.column(rt.Name) {
				p.fail(p.at(pgerr.New(pgerr.UndefinedColumn, "column \"%s\" of relation \"%s\" does not exist", rt.Name, wt.name()), rt.Location))
				return
			}
			p.fail(p.at(errColumn(rt.Name, wt.name()), rt.Location).
				WithHint("UPDATE may set only: %s", strings.Join(wt.w.Update, ", ")))
			return
		}
		p.exprs(rt.Indirection, s)
		switch v := rt.Val.GetNode().(type) {
		case *pg_query.Node_SetToDefault:
		case *pg_query.Node_MultiAssignRef:
			p.expr(v.MultiAssignRef.Source, s)
		default:
			p.expr(rt.Val, s)
		}
	}
}

// update rewrites UPDATE target SET … [FROM …] [WHERE …] [RETURNING …].
func (p *pass) update(u *pg_query.UpdateStmt, parent *scope) {
	s := &scope{parent: parent}
	if u.WithClause != nil {
		p.with(u.WithClause, s)
	}
	wt := p.target(u.Relation, s, "UPDATE", func(w *policy.Writes) bool { return len(w.Update) > 0 })
	if wt == nil || p.err != nil {
		return
	}
	s.items = append(s.items, wt.item())
	for _, f := range u.FromClause {
		p.from(f, s)
	}
	p.setList(u.TargetList, wt, s)
	if p.noCurrentOf(u.WhereClause) {
		return
	}
	p.expr(u.WhereClause, s)
	if p.err != nil {
		return
	}
	u.WhereClause = p.targetWhere(wt, u.WhereClause, s)
	u.ReturningList = p.returning(u.ReturningList, wt, s, len(u.FromClause) > 0)
}

// deleteStmt rewrites DELETE FROM target [USING …] [WHERE …] [RETURNING …].
func (p *pass) deleteStmt(d *pg_query.DeleteStmt, parent *scope) {
	s := &scope{parent: parent}
	if d.WithClause != nil {
		p.with(d.WithClause, s)
	}
	wt := p.target(d.Relation, s, "DELETE", func(w *policy.Writes) bool { return w.Delete })
	if wt == nil || p.err != nil {
		return
	}
	s.items = append(s.items, wt.item())
	for _, f := range d.UsingClause {
		p.from(f, s)
	}
	if p.noCurrentOf(d.WhereClause) {
		return
	}
	p.expr(d.WhereClause, s)
	if p.err != nil {
		return
	}
	d.WhereClause = p.targetWhere(wt, d.WhereClause, s)
	d.ReturningList = p.returning(d.ReturningList, wt, s, len(d.UsingClause) > 0)
}

// noCurrentOf refuses WHERE CURRENT OF: a session's cursors read through
// fenced subqueries, which PostgreSQL cannot update through, and a cursor
// of the relation itself is never declared.
func (p *pass) noCurrentOf(where *pg_query.Node) bool {
	if where.GetCurrentOfExpr() == nil {
		return false
	}
	p.fail(pgerr.Unsupported("WHERE CURRENT OF is not supported through pgwarden").
		WithHint("cursors read through the tenant fence and cannot be updated through; UPDATE or DELETE by key instead"))
	return true
}

// targetWhere is the target's fence for UPDATE, DELETE and DO UPDATE: the
// tenant predicate and the relation's filters, then the client's condition
// only on rows that passed them (unless it is made of plain comparisons,
// which cannot fail or raise on another tenant's row; see plainFilter).
func (p *pass) targetWhere(wt *writeTarget, client *pg_query.Node, s *scope) *pg_query.Node {
	if p.err != nil {
		return client
	}
	tenant := func() *pg_query.Node {
		return opExpr("=", pg_query.MakeColumnRefNode([]*pg_query.Node{strNode(wt.alias), strNode(wt.t.rel.TenantColumn)}, 0),
			strConst(p.id.Tenant))
	}
	conds := []*pg_query.Node{tenant()}
	fence := []*pg_query.Node{tenant()}
	for i, f := range wt.t.rel.Filters {
		c := p.filter(f)
		if c == nil {
			continue
		}
		c = qualify(c, wt.alias)
		if wt.t.guard[i] {
			c = caseElse(tenant(), c, boolConst(false))
		}
		conds = append(conds, c)
		fence = append(fence, proto.Clone(c).(*pg_query.Node))
	}
	switch {
	case client == nil:
	case plainFilter(client):
		conds = append(conds, client)
	default:
		conds = append(conds, caseElse(andExpr(fence), client, boolConst(false)))
	}
	return andExpr(conds)
}

// returning rewrites a RETURNING list: the target's columns as the session
// reads them (masked, denied ones left out of * and refused by name).
func (p *pass) returning(list []*pg_query.Node, wt *writeTarget, s *scope, hasFrom bool) []*pg_query.Node {
	if len(list) == 0 || p.err != nil {
		return list
	}
	if wt.w.NoReturning {
		p.fail(pgerr.Denied("permission denied: RETURNING on relation %s is not allowed", wt.name()))
		return list
	}
	out := make([]*pg_query.Node, 0, len(list))
	for _, n := range list {
		rt := n.GetResTarget()
		if rt == nil {
			p.unsupported("RETURNING item " + nodeKind(n))
			return list
		}
		f := rt.Val.GetColumnRef().GetFields()
		var qual, col string
		star := false
		switch len(f) {
		case 1:
			col, star = f[0].GetString_().GetSval(), f[0].GetAStar() != nil
		case 2:
			qual, col, star = f[0].GetString_().GetSval(), f[1].GetString_().GetSval(), f[1].GetAStar() != nil
		}
		switch {
		case star && qual == "" && hasFrom:
			p.fail(pgerr.Unsupported("RETURNING * with FROM or USING is not supported through pgwarden").
				WithHint("name what to return, as in RETURNING %s.*, other.col", wt.alias))
			return list
		case star && (qual == "" || qual == wt.alias):
			out = append(out, p.targetColumns(wt)...)
			continue
		case col != "" && (qual == "" || qual == wt.alias) && wt.masked[col] != nil:
			name := rt.Name
			if name == "" {
				name = col
			}
			out = append(out, resTarget(name, qualify(wt.masked[col], wt.alias)))
			continue
		}
		p.expr(n, s)
		out = append(out, n)
	}
	return out
}

// targetColumns is the target's * as the session reads it.
func (p *pass) targetColumns(wt *writeTarget) []*pg_query.Node {
	out := make([]*pg_query.Node, 0, len(wt.t.cols))
	for _, c := range wt.t.cols {
		switch {
		case wt.v.denied[c.name]:
		case wt.masked[c.name] != nil:
			out = append(out, resTarget(c.name, qualify(wt.masked[c.name], wt.alias)))
		default:
			out = append(out, resTarget("", pg_query.MakeColumnRefNode([]*pg_query.Node{strNode(wt.alias), strNode(c.name)}, 0)))
		}
	}
	return out
}

// writeRef refuses a reference, outside the places returning rewrites, to
// the raw value of a write target's masked column or to its whole row
// (which holds the raw values). Resolution follows PostgreSQL's, leaning to
// refusal where it cannot be sure.
func (p *pass) writeRef(c *pg_query.ColumnRef, s *scope) {
	f := c.Fields
	if len(f) == 0 || p.err != nil {
		return
	}
	last := f[len(f)-1]
	if len(f) >= 2 {
		qual := f[len(f)-2].GetString_().GetSval()
		for lv := s; lv != nil; lv = lv.parent {
			for i := len(lv.items) - 1; i >= 0; i-- {
				it := lv.items[i]
				if it.alias != qual {
					continue
				}
				if it.w != nil && (last.GetAStar() != nil && it.w.restricted() || it.w.masked[last.GetString_().GetSval()] != nil) {
					p.fail(p.at(errMaskedWrite(last.GetString_().GetSval(), it.w), c.Location))
				}
				return
			}
		}
		return
	}
	col := last.GetString_().GetSval()
	if col == "" {
		return
	}
	for lv := s; lv != nil; lv = lv.parent {
		resolved := false
		for _, it := range lv.items {
			switch {
			case it.w != nil && it.w.masked[col] != nil:
				p.fail(p.at(errMaskedWrite(col, it.w), c.Location))
				return
			case it.w != nil && it.alias == col && !it.w.column(col) && it.w.restricted():
				p.fail(p.at(errMaskedWrite("", it.w), c.Location))
				return
			case it.v != nil && (it.v.cols[col] || it.v.denied[col]):
				resolved = true
			}
		}
		if resolved {
			return
		}
	}
}

// restricted reports whether the session reads the target other than as it is.
func (wt *writeTarget) restricted() bool { return len(wt.masked) > 0 || len(wt.v.denied) > 0 }

func errMaskedWrite(col string, wt *writeTarget) *pgerr.Error {
	if col == "" {
		return pgerr.Denied("permission denied: the whole row of relation %s holds columns this session reads masked", wt.name()).
			WithHint("name the columns")
	}
	return pgerr.Denied("permission denied for column %s of relation %s: it reads masked for this session", col, wt.name()).
		WithHint("RETURNING %s shows the masked value; other expressions cannot read it", col)
}

// qualify returns a copy of a policy expression (a filter or mask over the
// relation's own columns) with its column references qualified by alias,
// so that FROM and USING relations of the same statement cannot capture them.
func qualify(n *pg_query.Node, alias string) *pg_query.Node {
	n = proto.Clone(n).(*pg_query.Node)
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		if cr, ok := m.Interface().(*pg_query.ColumnRef); ok {
			if len(cr.Fields) == 1 && cr.Fields[0].GetString_() != nil {
				cr.Fields = append([]*pg_query.Node{strNode(alias)}, cr.Fields...)
			}
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.IsList() && fd.Message() != nil:
				l := v.List()
				for i := 0; i < l.Len(); i++ {
					walk(l.Get(i).Message())
				}
			case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
				walk(v.Message())
			}
			return true
		})
	}
	walk(n.ProtoReflect())
	return n
}
