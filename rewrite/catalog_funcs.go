package rewrite

import (
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"
	"google.golang.org/protobuf/proto"

	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
)

// Catalog functions: a function that describes an object given its oid or
// name answers only for objects the session's virtual catalog has, and as
// for a missing object otherwise.

// catalogFunc says which argument of a catalog function names an object by
// oid, and in which virtualized catalog it must be visible. The argument is
// replaced by a lookup that yields NULL for a hidden object, so the (strict)
// function answers NULL as for a missing one instead of describing it.
type catalogFunc struct {
	arg     int
	catalog string // virtualized pg_catalog relation
	col     string // its oid column
	subArg  int    // col_description: the argument matched against objsubid (-1: none)
	exprRel bool   // pg_get_expr: relations with denied columns are hidden too (Vars name columns by number)
}

var catalogFuncs = map[string]catalogFunc{
	"pg_table_is_visible":                {arg: 0, catalog: "pg_class", col: "oid", subArg: -1},
	"pg_type_is_visible":                 {arg: 0, catalog: "pg_type", col: "oid", subArg: -1},
	"format_type":                        {arg: 0, catalog: "pg_type", col: "oid", subArg: -1},
	"pg_get_indexdef":                    {arg: 0, catalog: "pg_class", col: "oid", subArg: -1},
	"pg_get_constraintdef":               {arg: 0, catalog: "pg_constraint", col: "oid", subArg: -1},
	"pg_get_triggerdef":                  {arg: 0, catalog: "pg_trigger", col: "oid", subArg: -1},
	"pg_get_statisticsobjdef_columns":    {arg: 0, catalog: "pg_statistic_ext", col: "oid", subArg: -1},
	"pg_relation_is_publishable":         {arg: 0, catalog: "pg_class", col: "oid", subArg: -1},
	"pg_partition_ancestors":             {arg: 0, catalog: "pg_class", col: "oid", subArg: -1},
	"pg_get_expr":                        {arg: 1, catalog: "pg_class", col: "oid", subArg: -1, exprRel: true},
	"obj_description":                    {arg: 0, catalog: "pg_description", col: "objoid", subArg: -1},
	"col_description":                    {arg: 0, catalog: "pg_description", col: "objoid", subArg: 1},
	"pg_get_function_result":             {arg: 0, catalog: "pg_proc", col: "oid", subArg: -1},
	"pg_get_function_arguments":          {arg: 0, catalog: "pg_proc", col: "oid", subArg: -1},
	"pg_get_function_identity_arguments": {arg: 0, catalog: "pg_proc", col: "oid", subArg: -1},
	"pg_function_is_visible":             {arg: 0, catalog: "pg_proc", col: "oid", subArg: -1},
	"pg_opclass_is_visible":              {arg: 0, catalog: "pg_opclass", col: "oid", subArg: -1},
	"pg_opfamily_is_visible":             {arg: 0, catalog: "pg_opfamily", col: "oid", subArg: -1},
	"pg_operator_is_visible":             {arg: 0, catalog: "pg_operator", col: "oid", subArg: -1},
	"pg_conversion_is_visible":           {arg: 0, catalog: "pg_conversion", col: "oid", subArg: -1},
	"pg_ts_config_is_visible":            {arg: 0, catalog: "pg_ts_config", col: "oid", subArg: -1},
	"pg_ts_dict_is_visible":              {arg: 0, catalog: "pg_ts_dict", col: "oid", subArg: -1},
	"pg_ts_parser_is_visible":            {arg: 0, catalog: "pg_ts_parser", col: "oid", subArg: -1},
	"pg_ts_template_is_visible":          {arg: 0, catalog: "pg_ts_template", col: "oid", subArg: -1},
	"pg_statistics_obj_is_visible":       {arg: 0, catalog: "pg_statistic_ext", col: "oid", subArg: -1},
	"pg_tablespace_location":             {arg: 0, catalog: "pg_tablespace", col: "oid", subArg: -1},
	"pg_get_functiondef":                 {arg: 0, catalog: "pg_proc", col: "oid", subArg: -1},
	"pg_get_ruledef":                     {arg: 0, catalog: "pg_rewrite", col: "oid", subArg: -1},
	"pg_get_statisticsobjdef":            {arg: 0, catalog: "pg_statistic_ext", col: "oid", subArg: -1},
	"pg_get_partkeydef":                  {arg: 0, catalog: "pg_class", col: "oid", subArg: -1},
	"pg_get_partition_constraintdef":     {arg: 0, catalog: "pg_class", col: "oid", subArg: -1},
	"pg_get_viewdef":                     {arg: -1, catalog: "pg_class", col: "oid", subArg: -1},
	"pg_get_userbyid":                    {arg: 0, catalog: "pg_roles", col: "oid", subArg: -1},
	"has_table_privilege":                {arg: -1, catalog: "pg_class", col: "oid", subArg: -1},
	"has_schema_privilege":               {arg: -1, catalog: "pg_namespace", col: "oid", subArg: -1},
	"has_database_privilege":             {arg: -1, catalog: "pg_database", col: "oid", subArg: -1},
	"pg_get_serial_sequence":             {arg: -1, catalog: "pg_class", col: "oid", subArg: -1},
	"to_regclass":                        {arg: -1, catalog: "pg_class", col: "oid", subArg: -1},
	"to_regtype":                         {arg: -1, catalog: "pg_type", col: "oid", subArg: -1},
	"to_regnamespace":                    {arg: -1, catalog: "pg_namespace", col: "oid", subArg: -1},
	"to_regrole":                         {arg: -1, catalog: "pg_roles", col: "oid", subArg: -1},
	"to_regproc":                         {arg: -1, catalog: "pg_proc", col: "oid", subArg: -1},
	"to_regprocedure":                    {arg: -1, catalog: "pg_proc", col: "oid", subArg: -1},
	"to_regoper":                         {arg: -1, catalog: "pg_operator", col: "oid", subArg: -1},
	"to_regoperator":                     {arg: -1, catalog: "pg_operator", col: "oid", subArg: -1},
	"pg_relation_size":                   {arg: -1, catalog: "pg_class", col: "oid", subArg: -1},
	"pg_total_relation_size":             {arg: -1, catalog: "pg_class", col: "oid", subArg: -1},
	"pg_table_size":                      {arg: -1, catalog: "pg_class", col: "oid", subArg: -1},
	"pg_indexes_size":                    {arg: -1, catalog: "pg_class", col: "oid", subArg: -1},
}

// sizeFuncs answer 0 for a visible relation, as reltuples is masked: a
// relation's size tells its row count.
var sizeFuncs = map[string]bool{
	"pg_relation_size": true, "pg_total_relation_size": true, "pg_table_size": true, "pg_indexes_size": true,
}

// catalogFuncCall rewrites the oid argument of a catalog function (its
// arguments are already walked).
func (p *pass) catalogFuncCall(n *pg_query.Node, fc *pg_query.FuncCall, name string, spec catalogFunc) {
	i := spec.arg
	p.reshaped++ // a replaced argument must not rename the result
	switch {
	case name == "pg_get_serial_sequence":
		p.serialSequence(fc)
		return
	case name == "has_schema_privilege":
		p.schemaPrivilege(fc)
		return
	case name == "has_database_privilege":
		p.databasePrivilege(fc)
		return
	case strings.HasPrefix(name, "to_reg"):
		p.toReg(n, fc, name)
		return
	case sizeFuncs[name]:
		p.relationSize(n, fc, name)
		return
	case name == "pg_get_viewdef":
		// A view's body can name hidden relations: no definition, as in
		// pg_views.
		n.Node = typeCast(nullConst(), textType()).Node
		return
	}
	if name == "has_table_privilege" {
		// (table, privilege) or (role, table, privilege).
		switch len(fc.Args) {
		case 2:
			i = 0
		case 3:
			i = 1
			p.roleArg(fc)
		default:
			p.fail(p.at(pgerr.Denied("permission denied for function %s", name), fc.Location))
			return
		}
		if p.placeholder(fc.Args[i]) {
			p.fail(errNoTemplate) // a string names a relation, a parameter does not
			return
		}
		if c := fc.Args[i].GetAConst(); c != nil && c.GetSval() != nil && !allDigits(c.GetSval().Sval) {
			lit, err := p.relationLiteral(c.GetSval().Sval)
			if err != nil {
				p.fail(p.at(err, fc.Location))
				return
			}
			fc.Args[i] = strConst(lit)
			return
		}
		// A name or an oid of any type: the visible relation's oid, or NULL.
		if sub := p.regLookup("regclass", fc.Args[i]); sub != nil {
			fc.Args[i] = sub
		}
		return
	}
	if i >= len(fc.Args) {
		return // PostgreSQL reports the wrong arity
	}
	body := p.lookupBody(spec.catalog)
	if spec.exprRel {
		if cond := p.visible().deniedRelsCond(); cond != "" {
			body = "SELECT * FROM (" + body + ") r WHERE " + cond
		}
	}
	var sub *pg_query.Node
	var err error
	if spec.subArg >= 0 && spec.subArg < len(fc.Args) {
		args := []*pg_query.Node{fc.Args[i], proto.Clone(fc.Args[spec.subArg]).(*pg_query.Node)}
		sub, err = oidLookup(p.r.bodies, body, spec.col, args, func(ref func(string) *pg_query.Node, arg func(int) *pg_query.Node) *pg_query.Node {
			return andExpr([]*pg_query.Node{opExpr("=", ref(spec.col), arg(0)), opExpr("=", ref("objsubid"), arg(1))})
		})
	} else {
		sub, err = oidLookup(p.r.bodies, body, spec.col, []*pg_query.Node{fc.Args[i]}, eqArg(spec.col))
	}
	if err != nil {
		p.fail(pgerr.New(pgerr.InternalError, "internal error in catalog rewrite"))
		return
	}
	if spec.exprRel {
		// pg_get_expr(node, 0) prints expressions without Vars.
		sub = coalesceExpr(sub, intConst(0))
	}
	fc.Args[i] = sub
}

// deniedRelsCond is "oid <> ALL (relations with denied columns)" or "".
func (v *visibility) deniedRelsCond() string {
	var rels []string
	for _, vw := range v.rels {
		if len(vw.denied) > 0 {
			rels = append(rels, regclassLit(vw.schema, vw.t.rel.Name))
		}
	}
	if len(rels) == 0 {
		return ""
	}
	return "oid <> ALL (ARRAY[" + strings.Join(rels, ", ") + "]::pg_catalog.oid[])"
}

// relationLiteral resolves a relation name given as text (a regclass
// literal, has_table_privilege's argument) as the session would: system
// catalogs and exposed relations resolve (to a qualified name), anything
// else is "does not exist", whether it exists or not.
func (p *pass) relationLiteral(s string) (string, *pgerr.Error) {
	missing := pgerr.New("42P01", "relation %q does not exist", s)
	parts, ok := parseQualifiedName(s)
	if !ok {
		return "", pgerr.New("42602", "invalid name syntax")
	}
	var schema, name string
	switch len(parts) {
	case 1:
		name = parts[0]
	case 2:
		schema, name = parts[0], parts[1]
	default:
		return "", missing
	}
	if (schema == "" || schema == "pg_catalog") && strings.HasPrefix(name, "pg_") {
		return quoteIdent("pg_catalog") + "." + quoteIdent(name), nil
	}
	if schema == "information_schema" {
		return quoteIdent(schema) + "." + quoteIdent(name), nil
	}
	var t *relTemplate
	if schema != "" {
		t = p.tmpl[schema+"."+name]
	} else {
		for _, sp := range p.r.pol.SearchPath {
			if t = p.tmpl[sp+"."+name]; t != nil {
				break
			}
		}
	}
	if t == nil || !p.relationReadable(t) {
		return "", missing
	}
	return quoteIdent(p.relSchema(t)) + "." + quoteIdent(t.rel.Name), nil
}

// parseQualifiedName splits a possibly quoted, dotted name as regclass
// input does (unquoted parts fold to lower case).
func parseQualifiedName(s string) ([]string, bool) {
	var parts []string
	i := 0
	s = strings.TrimSpace(s)
	for {
		var part strings.Builder
		if i < len(s) && s[i] == '"' {
			i++
			for {
				if i >= len(s) {
					return nil, false
				}
				if s[i] == '"' {
					if i+1 < len(s) && s[i+1] == '"' {
						part.WriteByte('"')
						i += 2
						continue
					}
					i++
					break
				}
				part.WriteByte(s[i])
				i++
			}
		} else {
			for i < len(s) && s[i] != '.' && s[i] != '"' {
				part.WriteByte(s[i])
				i++
			}
			if strings.TrimSpace(part.String()) == "" {
				return nil, false
			}
			str := strings.ToLower(strings.TrimSpace(part.String()))
			part.Reset()
			part.WriteString(str)
		}
		parts = append(parts, part.String())
		if i >= len(s) {
			return parts, true
		}
		if s[i] != '.' {
			return nil, false
		}
		i++
	}
}

// regCasts are the object identifier types a cast may produce, with the
// virtualized catalog their oid must be visible in and the to_reg function
// that looks a name up without failing.
var regCasts = map[string]struct{ catalog, toReg string }{
	"regclass":     {"pg_class", "to_regclass"},
	"regtype":      {"pg_type", "to_regtype"},
	"regnamespace": {"pg_namespace", "to_regnamespace"},
	"regrole":      {"pg_roles", "to_regrole"},
	"regproc":      {"pg_proc", "to_regproc"},
	"regprocedure": {"pg_proc", "to_regprocedure"},
	"regoper":      {"pg_operator", "to_regoper"},
	"regoperator":  {"pg_operator", "to_regoperator"},
}

// regCast rewrites a cast to an object identifier type (regCasts) so that it
// resolves only visible objects: a relation name resolves as in FROM (a
// hidden one "does not exist"), other names and oids go through the
// virtualized catalog (NULL when hidden).
func (p *pass) regCast(tc *pg_query.TypeCast) {
	if tc.TypeName == nil || len(tc.TypeName.Names) == 0 || len(tc.TypeName.ArrayBounds) > 0 {
		return
	}
	typ := regTypeName(tc.TypeName)
	if typ == "" {
		return
	}
	if p.placeholder(tc.Arg) {
		p.fail(errNoTemplate)
		return
	}
	if c := tc.Arg.GetAConst(); c != nil && c.GetSval() != nil && !allDigits(c.GetSval().Sval) && typ == "regclass" {
		lit, err := p.relationLiteral(c.GetSval().Sval)
		if err != nil {
			p.fail(p.at(err, c.Location))
			return
		}
		tc.Arg = strConst(lit)
		return
	}
	p.logicalNamespace(typ, tc)
	if sub := p.regLookup(typ, tc.Arg); sub != nil {
		tc.Arg = sub
		p.reshaped++ // the lookup must not rename the result
	}
}

// regLookup returns the oid of the visible object that arg (an oid or a
// name, of any type) denotes, or NULL.
func (p *pass) regLookup(typ string, arg *pg_query.Node) *pg_query.Node {
	rc := regCasts[typ]
	sub, err := oidLookup(p.r.bodies, p.lookupBody(rc.catalog), "oid", []*pg_query.Node{arg}, regMatch(rc.toReg))
	if err != nil {
		p.fail(pgerr.New(pgerr.InternalError, "internal error in catalog rewrite"))
		return nil
	}
	return sub
}

func allDigits(s string) bool {
	s = strings.TrimSpace(s)
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// serialSequence rewrites pg_get_serial_sequence(table, column): the table
// (a name) must be visible and the column one of its allowed columns, else
// both become NULL, and the answer is NULL as for a missing one.
func (p *pass) serialSequence(fc *pg_query.FuncCall) {
	if len(fc.Args) != 2 {
		return // PostgreSQL reports the wrong arity
	}
	rel := p.regLookup("regclass", fc.Args[0])
	if rel == nil {
		return
	}
	relName := typeCast(typeCast(rel, typeNamed("regclass")), textType())
	col := fc.Args[1]
	relOid := proto.Clone(rel).(*pg_query.Node)
	sub, err := oidLookup(p.r.bodies, p.lookupBody("pg_attribute"), "attname", []*pg_query.Node{relOid, col},
		func(ref func(string) *pg_query.Node, arg func(int) *pg_query.Node) *pg_query.Node {
			return andExpr([]*pg_query.Node{
				opExpr("=", ref("attrelid"), arg(0)),
				opExpr("=", typeCast(ref("attname"), textType()), typeCast(arg(1), textType())),
				opExpr(">", ref("attnum"), intConst(0)),
			})
		})
	if err != nil {
		p.fail(pgerr.New(pgerr.InternalError, "internal error in catalog rewrite"))
		return
	}
	fc.Args[0], fc.Args[1] = relName, typeCast(sub, textType())
}

// regTypeName is the object identifier type tn names ("regclass", ...) or "".
func regTypeName(tn *pg_query.TypeName) string {
	if tn == nil || len(tn.Names) == 0 || len(tn.Names) > 2 {
		return ""
	}
	if len(tn.Names) == 2 && tn.Names[0].GetString_().GetSval() != "pg_catalog" {
		return ""
	}
	name := tn.Names[len(tn.Names)-1].GetString_().GetSval()
	if _, ok := regCasts[name]; ok {
		return name
	}
	return ""
}

func isRegType(tn *pg_query.TypeName) bool { return regTypeName(tn) != "" }

// noRegType refuses an object identifier type where a value would be
// resolved by its input function without regCast's rewrite: parameters of
// PREPARE and column definitions of record functions.
func (p *pass) noRegType(tn *pg_query.TypeName) {
	if p.err == nil && isRegType(tn) {
		p.fail(pgerr.Denied("permission denied: parameters and columns of type %s are not supported", regTypeName(tn)))
	}
}

// databaseFuncName is the column name of current_database() or
// current_catalog when n is one of them, else "".
func databaseFuncName(n *pg_query.Node) string {
	if v := n.GetSqlvalueFunction(); v != nil && v.Op == pg_query.SQLValueFunctionOp_SVFOP_CURRENT_CATALOG {
		return "current_catalog"
	}
	if fc := n.GetFuncCall(); fc != nil && len(fc.Args) == 0 {
		if schema, name := policy.FuncName(fc.Funcname); name == "current_database" && (schema == "" || schema == "pg_catalog") {
			return "current_database"
		}
	}
	return ""
}

// typeRegLiterals gives an untyped string literal or a parameter compared
// with a cast to an object identifier type (X::regclass = 'name',
// X::regclass IN ('a', 'b'), X::regclass = $1) that type explicitly, so that
// regCast resolves it: PostgreSQL would otherwise resolve the name with the
// type's input function, hidden or not.
func typeRegLiterals(e *pg_query.A_Expr) {
	if l := e.Rexpr.GetList(); l != nil {
		if tn := regCastType(e.Lexpr); tn != nil {
			typeRegItems(l.Items, tn)
		}
		return
	}
	ops := []*pg_query.Node{e.Lexpr, e.Rexpr}
	typeRegList(ops)
	e.Lexpr, e.Rexpr = ops[0], ops[1]
}

// regCastType is the reg type n is cast to, or nil.
func regCastType(n *pg_query.Node) *pg_query.TypeName {
	if tc := n.GetTypeCast(); tc != nil && isRegType(tc.TypeName) {
		return tc.TypeName
	}
	return nil
}

// typeRegList types the untyped literals and parameters of expressions
// whose types PostgreSQL unifies (operands, CASE results, COALESCE,
// GREATEST, ARRAY[...]) when one of them is a reg* cast.
func typeRegList(items []*pg_query.Node) {
	for _, it := range items {
		if tn := regCastType(it); tn != nil {
			typeRegItems(items, tn)
			return
		}
	}
}

func typeRegItems(items []*pg_query.Node, tn *pg_query.TypeName) {
	for i, n := range items {
		if c := n.GetAConst(); c != nil && c.GetSval() != nil {
			items[i] = typeCast(n, proto.Clone(tn).(*pg_query.TypeName))
		} else if n.GetParamRef() != nil {
			// A parameter would be inferred as the reg type and its value
			// resolved by the input function: pass it as text instead.
			items[i] = typeCast(typeCast(n, textType()), proto.Clone(tn).(*pg_query.TypeName))
		}
	}
}

// typeRegCase applies typeRegList to a CASE's results and to its tested
// value with the WHEN values.
func typeRegCase(c *pg_query.CaseExpr) {
	results := make([]*pg_query.Node, 0, len(c.Args)+1)
	tests := []*pg_query.Node{c.Arg}
	for _, w := range c.Args {
		if cw := w.GetCaseWhen(); cw != nil {
			results = append(results, cw.Result)
			tests = append(tests, cw.Expr)
		}
	}
	if c.Defresult != nil {
		results = append(results, c.Defresult)
	}
	typeRegList(results)
	if c.Arg != nil {
		typeRegList(tests)
		c.Arg = tests[0]
	}
	k := 0
	for _, w := range c.Args {
		if cw := w.GetCaseWhen(); cw != nil {
			cw.Result = results[k]
			if c.Arg != nil {
				cw.Expr = tests[k+1]
			}
			k++
		}
	}
	if c.Defresult != nil {
		c.Defresult = results[k]
	}
}

// typeRegColumns applies typeRegList column by column to the branches of a
// set operation and to the rows of VALUES, whose types PostgreSQL unifies
// by position too.
func typeRegColumns(sel *pg_query.SelectStmt) {
	var rows [][]**pg_query.Node
	var leaves func(s *pg_query.SelectStmt)
	leaves = func(s *pg_query.SelectStmt) {
		if s == nil {
			return
		}
		if s.Op != pg_query.SetOperation_SETOP_NONE {
			leaves(s.Larg)
			leaves(s.Rarg)
			return
		}
		for _, vl := range s.ValuesLists {
			if l := vl.GetList(); l != nil {
				var row []**pg_query.Node
				for j := range l.Items {
					row = append(row, &l.Items[j])
				}
				rows = append(rows, row)
			}
		}
		if len(s.ValuesLists) == 0 {
			var row []**pg_query.Node
			for _, t := range s.TargetList {
				if rt := t.GetResTarget(); rt != nil {
					row = append(row, &rt.Val)
				}
			}
			rows = append(rows, row)
		}
	}
	leaves(sel)
	if len(rows) < 2 {
		return
	}
	for i := range rows[0] {
		col := make([]*pg_query.Node, 0, len(rows))
		for _, r := range rows {
			if i < len(r) && *r[i] != nil {
				col = append(col, *r[i])
			}
		}
		if len(col) != len(rows) {
			continue
		}
		typeRegList(col)
		for k, r := range rows {
			*r[i] = col[k]
		}
	}
}

// roleArg replaces the role of a three-argument has_*_privilege (a name or
// an oid) by the visible role's oid, or NULL: a hidden role answers NULL
// instead of "role does not exist".
func (p *pass) roleArg(fc *pg_query.FuncCall) {
	if p.placeholder(fc.Args[0]) {
		p.fail(errNoTemplate)
		return
	}
	if sub := p.regLookup("regrole", fc.Args[0]); sub != nil {
		fc.Args[0] = typeCast(sub, typeNamed("oid"))
	}
}

// privilegeObject checks the role argument of a has_*_privilege([role,]
// object, privilege) call and returns the object argument's index; false
// when there is nothing more to do (PostgreSQL reports a wrong arity, or the
// pass failed).
func (p *pass) privilegeObject(fc *pg_query.FuncCall) (int, bool) {
	i := 0
	switch len(fc.Args) {
	case 2:
	case 3:
		i = 1
		p.roleArg(fc)
	default:
		return 0, false
	}
	if p.err != nil {
		return 0, false
	}
	if p.placeholder(fc.Args[i]) {
		p.fail(errNoTemplate)
		return 0, false
	}
	return i, true
}

// schemaPrivilege rewrites has_schema_privilege([role,] schema, privilege):
// the schema (a name or an oid) must be one the session sees, else the
// answer is NULL, as for the role.
func (p *pass) schemaPrivilege(fc *pg_query.FuncCall) {
	i, ok := p.privilegeObject(fc)
	if !ok {
		return
	}
	if sub := p.regLookup("regnamespace", fc.Args[i]); sub != nil {
		fc.Args[i] = typeCast(sub, typeNamed("oid"))
	}
}

// databasePrivilege rewrites has_database_privilege([role,] database,
// privilege): the database is the one the session sees, the connected one
// under the name the client connected with (Options.Database) or by its
// oid; a name constant naming another is PostgreSQL's "does not exist",
// whether it exists or not, and any other value answers NULL, as for the
// role.
func (p *pass) databasePrivilege(fc *pg_query.FuncCall) {
	i, ok := p.privilegeObject(fc)
	if !ok {
		return
	}
	own := func() *pg_query.Node { return typeCast(funcCall("current_database"), textType()) }
	if db := p.r.opts.Database; db != "" {
		own = func() *pg_query.Node { return strConst(db) }
	}
	if c := fc.Args[i].GetAConst(); c != nil && c.GetSval() != nil && !allDigits(c.GetSval().Sval) {
		if name := c.GetSval().Sval; p.r.opts.Database != "" && name != p.r.opts.Database {
			p.fail(p.at(pgerr.New("3D000", "database %q does not exist", name), c.Location))
			return
		}
	}
	sub, err := oidLookup(p.r.bodies, p.lookupBody("pg_database"), "oid", []*pg_query.Node{fc.Args[i]},
		func(ref func(string) *pg_query.Node, arg func(int) *pg_query.Node) *pg_query.Node {
			asText := func() *pg_query.Node { return typeCast(arg(0), textType()) }
			return orExpr(opExpr("=", asText(), typeCast(ref("oid"), textType())), opExpr("=", asText(), own()))
		})
	if err != nil {
		p.fail(pgerr.New(pgerr.InternalError, "internal error in catalog rewrite"))
		return
	}
	fc.Args[i] = sub
}

// toReg rewrites to_regclass, to_regtype, to_regnamespace and to_regrole
// through the virtual catalog: a hidden object is NULL, as a missing one.
// A relation name given as a constant resolves as in FROM (the session's
// search path).
func (p *pass) toReg(n *pg_query.Node, fc *pg_query.FuncCall, name string) {
	if len(fc.Args) != 1 {
		return // PostgreSQL reports the wrong arity
	}
	typ := "reg" + strings.TrimPrefix(name, "to_reg")
	arg := fc.Args[0]
	if p.placeholder(arg) {
		p.fail(errNoTemplate)
		return
	}
	if c := arg.GetAConst(); c != nil && c.GetSval() != nil && !allDigits(c.GetSval().Sval) && typ == "regclass" {
		lit, err := p.relationLiteral(c.GetSval().Sval)
		if err != nil {
			if err.Code == "42602" {
				p.fail(p.at(err, c.Location))
				return
			}
			n.Node = typeCast(nullConst(), typeNamed(typ)).Node
			return
		}
		arg = strConst(lit)
	}
	sub := p.regLookup(typ, arg)
	if sub == nil {
		return
	}
	n.Node = typeCast(sub, typeNamed(typ)).Node
}

// relationSize rewrites a size function: 0 for a visible relation or index
// (its size would tell its row count, as reltuples does), NULL for a
// hidden one, as PostgreSQL answers for an oid that names nothing. A name
// given as a constant resolves as in FROM.
func (p *pass) relationSize(n *pg_query.Node, fc *pg_query.FuncCall, name string) {
	if len(fc.Args) == 0 || len(fc.Args) > 2 {
		return // PostgreSQL reports the wrong arity
	}
	arg := fc.Args[0]
	if p.placeholder(arg) {
		p.fail(errNoTemplate)
		return
	}
	if c := arg.GetAConst(); c != nil && c.GetSval() != nil && !allDigits(c.GetSval().Sval) {
		lit, err := p.relationLiteral(c.GetSval().Sval)
		if err != nil {
			p.fail(p.at(err, c.Location))
			return
		}
		arg = strConst(lit)
	}
	sub := p.regLookup("regclass", arg)
	if sub == nil {
		return
	}
	n.Node = caseElse(isNotNull(sub), typeCast(intConst(0), typeNamed("int8")), typeCast(nullConst(), typeNamed("int8"))).Node
}

// lookupBody is the virtual catalog relation name as a lookup reads it:
// the same rows, but all columns as they are, since the lookup reads only
// the ones it names (an oid, a name), never the replaced ones; this keeps
// the masks and grant filters out of every lookup's text.
func (p *pass) lookupBody(name string) string {
	p.lean = true
	defer func() { p.lean = false }()
	return p.catalogSQL(name, false)
}

// regArrayCast rewrites a cast of an array of oids (proargtypes::regtype[],
// pgcli's function list) to an array of an object identifier type: each
// element resolves through the virtual catalog, NULL when hidden. An array
// given as text or as a parameter would be resolved by the type's input
// function and stays refused.
func (p *pass) regArrayCast(n *pg_query.Node, tc *pg_query.TypeCast, s *scope) {
	typ := regTypeName(tc.TypeName)
	if p.placeholder(tc.Arg) {
		p.fail(errNoTemplate)
		return
	}
	if tc.Arg.GetAConst() != nil || tc.Arg.GetParamRef() != nil {
		p.fail(pgerr.Denied("permission denied: arrays of %s are not supported", typ).
			WithHint("cast an array of oids, as in proargtypes::%s[]", typ))
		return
	}
	p.expr(tc.Arg, s)
	if p.err != nil {
		return
	}
	n.Node = regArray(tc.Arg, typ, func(elem *pg_query.Node) *pg_query.Node {
		if sub := p.regLookup(typ, elem); sub != nil {
			return sub
		}
		return nullConst()
	}).Node
	p.reshaped++
}
