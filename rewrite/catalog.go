package rewrite

import (
	"sort"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"
	"google.golang.org/protobuf/proto"

	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
)

// Catalog virtualization: a reference to a catalog relation that describes
// relations (pg_class, pg_attribute, information_schema.columns, ...) is
// replaced in place by a fenced subquery over the real catalog that keeps only
// the rows of what the session may query, the same technique as for tenant
// tables. Client SQL of any shape then keeps working and sees a warehouse made
// of its exposed relations, their allowed columns and the keys among them.
//
// Visible means: the relations of the session's relation set that rangeVar
// would let it read (published only for viewer and restricted_querier, shared
// only without a tenant), their indexes unless an index touches a denied
// column, and objects created by initdb (oid below FirstNormalObjectId),
// which every PostgreSQL has and so reveal nothing.

// firstNormalOid is PostgreSQL's FirstNormalObjectId: objects with a smaller
// oid were created by initdb.
const firstNormalOid = "16384"

// catalogVirtual maps the virtualized pg_catalog relations to their filter.
// pg_class and pg_database list their columns to mask some.
var catalogVirtual = map[string]bool{
	"pg_class": true, "pg_attribute": true, "pg_attrdef": true, "pg_index": true, "pg_constraint": true,
	"pg_namespace": true, "pg_type": true, "pg_description": true, "pg_inherits": true, "pg_database": true,
	"pg_settings": true, "pg_roles": true, "pg_proc": true, "pg_sequence": true,
	"pg_tables": true, "pg_views": true, "pg_indexes": true,
	// Empty for every session: they describe triggers, view bodies, row
	// security and statistics objects, which can name hidden objects.
	"pg_trigger": true, "pg_rewrite": true, "pg_policy": true, "pg_statistic_ext": true,
	"pg_publication": true, "pg_publication_rel": true, "pg_publication_namespace": true,
}

// infoSchemaVirtual are the information_schema views sessions may read.
var infoSchemaVirtual = map[string]bool{
	"tables": true, "columns": true, "schemata": true, "views": true, "table_constraints": true,
	"key_column_usage": true, "constraint_column_usage": true, "referential_constraints": true,
}

// infoViewsColumns are information_schema.views' columns (PostgreSQL 10 to
// 17): view bodies can name hidden relations.
var infoViewsColumns = []string{
	"table_catalog", "table_schema", "table_name", "NULL::information_schema.character_data AS view_definition",
	"check_option", "is_updatable", "is_insertable_into", "is_trigger_updatable", "is_trigger_deletable",
	"is_trigger_insertable_into",
}

// pgClassColumns are pg_class's columns (PostgreSQL 12 to 17); sizes are
// masked so that no session learns another tenant's row counts.
var pgClassColumns = []string{
	"oid", "relname", "relnamespace", "reltype", "reloftype", "relowner", "relam", "relfilenode", "reltablespace",
	"0::pg_catalog.int4 AS relpages", "(-1)::pg_catalog.float4 AS reltuples", "0::pg_catalog.int4 AS relallvisible",
	"reltoastrelid", "relhasindex", "relisshared", "relpersistence", "relkind", "relnatts", "relchecks",
	"relhasrules", "relhastriggers", "relhassubclass", "relrowsecurity", "relforcerowsecurity", "relispartition",
	"relreplident", "relispopulated", "relrewrite", "relfrozenxid", "relminmxid", "relacl", "reloptions",
	"relpartbound",
}

// pgDatabaseColumns are the pg_database columns every PostgreSQL from 12
// to 17 has (the locale provider columns came and were renamed since);
// datname becomes the name the client connected with.
var pgDatabaseColumns = []string{
	"oid", "%s AS datname", "datdba", "encoding", "datistemplate", "datallowconn", "datconnlimit",
	"datfrozenxid", "datminmxid", "dattablespace", "datcollate", "datctype", "datacl",
}

// visibility is what one session may see of the catalog, as SQL snippets
// (computed once per pass, on the first catalog reference).
type visibility struct {
	rels    []*view
	relOids string // oid[] of the visible relations
	idxOids string // oid[] of their visible indexes
	schemas string // name[] of their schemas
	pairs   string // ((schema, name), ...) for information_schema
}

func sqlLit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func regclassLit(schema, name string) string {
	return sqlLit(quoteIdent(schema)+"."+quoteIdent(name)) + "::pg_catalog.regclass"
}

// visible computes the session's visibility once per pass.
func (p *pass) visible() *visibility {
	if p.vis != nil {
		return p.vis
	}
	keys := sortedTemplateKeys(p.tmpl)
	v := &visibility{}
	var oids, pairs []string
	schemas := map[string]bool{}
	for _, k := range keys {
		t := p.tmpl[k]
		if !p.relationReadable(t) {
			continue
		}
		v.rels = append(v.rels, p.view(t))
		oids = append(oids, regclassLit(t.rel.Schema, t.rel.Name))
		pairs = append(pairs, "("+sqlLit(t.rel.Schema)+", "+sqlLit(t.rel.Name)+")")
		schemas[t.rel.Schema] = true
	}
	if len(oids) == 0 {
		v.relOids = "'{}'::pg_catalog.oid[]"
		v.pairs = "((NULL, NULL))"
	} else {
		// A scalar subquery is an InitPlan: the names resolve once per
		// query. The cast keeps it scalar (ANY (SELECT ...) is a set).
		v.relOids = "(SELECT ARRAY[" + strings.Join(oids, ", ") + "]::pg_catalog.oid[])::pg_catalog.oid[]"
		v.pairs = "(" + strings.Join(pairs, ", ") + ")"
	}
	var ss []string
	for s := range schemas {
		ss = append(ss, sqlLit(s))
	}
	sort.Strings(ss)
	v.schemas = "ARRAY[" + strings.Join(append(ss, "NULL"), ", ") + "]::pg_catalog.name[]"
	// Indexes of visible relations, unless they touch a denied column (or
	// may, through an expression or a predicate).
	v.idxOids = "(SELECT pg_catalog.array_agg(indexrelid) FROM pg_catalog.pg_index WHERE indrelid = ANY (" +
		v.relOids + ")" + v.deniedAnd("indrelid", func(rel, nums string) string {
		return "(indkey::pg_catalog.int2[] OPERATOR(pg_catalog.&&) " + nums + " OR indexprs IS NOT NULL OR indpred IS NOT NULL)"
	}) + ")"
	v.idxOids = "COALESCE(" + v.idxOids + ", '{}'::pg_catalog.oid[])"
	p.vis = v
	return v
}

// relationReadable is rangeVar's rule for a relation of the session's set.
func (p *pass) relationReadable(t *relTemplate) bool {
	if !t.rel.Published && (p.id.Role == policy.RoleViewer || p.id.Role == policy.RoleRestrictedQuerier) {
		return false
	}
	return t.rel.ReachedBy(p.id) && (t.rel.Shared || p.id.Tenant != "")
}

func sortedTemplateKeys(m map[string]*relTemplate) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// deniedAnd returns " AND NOT (relCol = R AND cond(R, attnums))" for every
// visible relation R with denied columns, or "".
func (v *visibility) deniedAnd(relCol string, cond func(rel, nums string) string) string {
	var b strings.Builder
	for _, vw := range v.rels {
		if len(vw.denied) == 0 {
			continue
		}
		var nums []string
		for _, c := range vw.t.cols {
			if vw.denied[c.name] {
				nums = append(nums, strconv.Itoa(vw.t.cat.Columns[c.colIndex].Ordinal))
			}
		}
		sort.Strings(nums)
		rel := regclassLit(vw.t.rel.Schema, vw.t.rel.Name)
		arr := "'{" + strings.Join(nums, ",") + "}'::pg_catalog.int2[]"
		b.WriteString(" AND NOT (" + relCol + " = " + rel + " AND " + cond(rel, arr) + ")")
	}
	return b.String()
}

// deniedColumnsAnd excludes the denied columns by name (information_schema).
func (v *visibility) deniedColumnsAnd() string {
	var b strings.Builder
	for _, vw := range v.rels {
		var names []string
		for _, c := range vw.t.cols {
			if vw.denied[c.name] {
				names = append(names, sqlLit(c.name))
			}
		}
		if len(names) == 0 {
			continue
		}
		b.WriteString(" AND NOT (table_schema = " + sqlLit(vw.t.rel.Schema) + " AND table_name = " + sqlLit(vw.t.rel.Name) +
			" AND column_name IN (" + strings.Join(names, ", ") + "))")
	}
	return b.String()
}

func attnumIn(col string) func(rel, nums string) string {
	return func(_, nums string) string { return col + " = ANY (" + nums + ")" }
}

func arrayOverlaps(col string) func(rel, nums string) string {
	return func(_, nums string) string { return col + " OPERATOR(pg_catalog.&&) " + nums }
}

// catalogSQL returns the body of the virtualized catalog relation name
// (pg_catalog, or information_schema when info).
func (p *pass) catalogSQL(name string, info bool) string {
	v := p.visible()
	sys := " < " + firstNormalOid + "::pg_catalog.oid"
	inV := func(col string) string { return col + " = ANY (" + v.relOids + ")" }
	if info {
		where := "(table_schema, table_name) IN " + v.pairs
		cols := "*"
		// Constraints by (schema, relation, name) of the virtualized
		// pg_constraint; NOT NULL pseudo-constraints (named after attnums)
		// are left out with the rest.
		conTriples := "(table_schema::text, table_name::text, constraint_name::text) IN (SELECT n.nspname::text, r.relname::text, c.conname::text FROM (" +
			p.catalogSQL("pg_constraint", false) + ") c JOIN pg_catalog.pg_class r ON r.oid = c.conrelid JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace)"
		conPairs := func(contype string) string {
			return "(constraint_schema::text, constraint_name::text) IN (SELECT n.nspname::text, c.conname::text FROM (" +
				p.catalogSQL("pg_constraint", false) + ") c JOIN pg_catalog.pg_namespace n ON n.oid = c.connamespace" + contype + ")"
		}
		switch name {
		case "columns":
			where = "(" + where + v.deniedColumnsAnd() + ")"
		case "schemata":
			return "SELECT * FROM information_schema.schemata WHERE schema_name = ANY (" + v.schemas +
				") OR schema_name IN ('pg_catalog', 'information_schema')"
		case "views":
			cols = strings.Join(infoViewsColumns, ", ")
		case "table_constraints", "key_column_usage":
			return "SELECT * FROM information_schema." + name + " WHERE " + where + " AND " + conTriples
		case "constraint_column_usage":
			return "SELECT * FROM information_schema." + name + " WHERE " + where + v.deniedColumnsAnd() + " AND " + conPairs("")
		case "referential_constraints":
			// By name only: one a hidden relation's constraint shares is left out.
			return "SELECT * FROM information_schema." + name + " WHERE " + conPairs(" WHERE c.contype = 'f'") +
				" AND (constraint_schema::text, constraint_name::text) NOT IN (SELECT n.nspname::text, c.conname::text FROM pg_catalog.pg_constraint c" +
				" JOIN pg_catalog.pg_namespace n ON n.oid = c.connamespace WHERE c.contype = 'f' AND c.oid NOT IN (SELECT oid FROM (" +
				p.catalogSQL("pg_constraint", false) + ") vc))"
		}
		return "SELECT " + cols + " FROM information_schema." + name + " WHERE " + where +
			" OR table_schema IN ('pg_catalog', 'information_schema')"
	}
	from := " FROM pg_catalog." + name + " WHERE "
	switch name {
	case "pg_class":
		return "SELECT " + strings.Join(pgClassColumns, ", ") + from +
			inV("oid") + " OR oid = ANY (" + v.idxOids + ") OR oid" + sys
	case "pg_attribute":
		return "SELECT *" + from + "(" + inV("attrelid") + v.deniedAnd("attrelid", attnumIn("attnum")) +
			") OR attrelid = ANY (" + v.idxOids + ") OR attrelid" + sys
	case "pg_attrdef":
		return "SELECT *" + from + inV("adrelid") + v.deniedAnd("adrelid", attnumIn("adnum"))
	case "pg_index":
		return "SELECT *" + from + "indexrelid = ANY (" + v.idxOids + ")"
	case "pg_constraint":
		return "SELECT *" + from + "(" + inV("conrelid") + " AND (confrelid = 0 OR " + inV("confrelid") + ")" +
			v.deniedAnd("conrelid", func(_, nums string) string {
				// Exclusion constraints may name columns in expressions only.
				return "(conkey OPERATOR(pg_catalog.&&) " + nums + " OR contype = 'x')"
			}) + v.deniedAnd("confrelid", arrayOverlaps("confkey")) +
			") OR (conrelid = 0 AND oid" + sys + ")"
	case "pg_namespace":
		return "SELECT *" + from + "oid" + sys + " OR nspname = ANY (" + v.schemas + ")"
	case "pg_type":
		// Row types of hidden relations, and arrays of them, are hidden.
		return "SELECT *" + from + "(typrelid" + sys + " OR " + inV("typrelid") + ") AND (typelem" + sys +
			" OR typelem IN (SELECT e.oid FROM pg_catalog.pg_type e WHERE e.typrelid" + sys + " OR " + inV("e.typrelid") + "))"
	case "pg_description":
		return "SELECT *" + from + "objoid" + sys + " OR (classoid = 'pg_catalog.pg_class'::pg_catalog.regclass AND (" +
			inV("objoid") + " OR objoid = ANY (" + v.idxOids + "))" + v.deniedAnd("objoid", attnumIn("objsubid")) + ")"
	case "pg_inherits":
		return "SELECT *" + from + inV("inhrelid") + " AND " + inV("inhparent")
	case "pg_database":
		cols := "*"
		if p.r.opts.Database != "" {
			cs := append([]string(nil), pgDatabaseColumns...)
			cs[1] = sqlLit(p.r.opts.Database) + "::pg_catalog.name AS datname"
			cols = strings.Join(cs, ", ")
		}
		return "SELECT " + cols + from + "datname = pg_catalog.current_database()"
	case "pg_settings":
		names := make([]string, 0, len(settableSettings)+len(showableSettings))
		for n := range settableSettings {
			names = append(names, sqlLit(n))
		}
		for n := range showableSettings {
			names = append(names, sqlLit(n))
		}
		sort.Strings(names)
		return "SELECT *" + from + "pg_catalog.lower(name) IN (" + strings.Join(names, ", ") + ")"
	case "pg_roles":
		return "SELECT *" + from + "rolname = CURRENT_USER"
	case "pg_sequence":
		// Sequences owned by visible columns (serial and identity); their
		// parameters only, not their values.
		return "SELECT *" + from + "seqrelid IN (SELECT objid FROM pg_catalog.pg_depend WHERE classid = " +
			"'pg_catalog.pg_class'::pg_catalog.regclass AND refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND " +
			inV("refobjid") + v.deniedAnd("refobjid", attnumIn("refobjsubid")) + " AND deptype IN ('a', 'i'))"
	case "pg_tables":
		return "SELECT *" + from + "(schemaname, tablename) IN " + v.pairs + " OR schemaname IN ('pg_catalog', 'information_schema')"
	case "pg_views":
		return "SELECT schemaname, viewname, viewowner, NULL::pg_catalog.text AS definition" + from +
			"(schemaname, viewname) IN " + v.pairs + " OR schemaname IN ('pg_catalog', 'information_schema')"
	case "pg_indexes":
		return "SELECT *" + from + "(schemaname, indexname) IN (SELECT n.nspname, c.relname FROM pg_catalog.pg_class c" +
			" JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = ANY (" + v.idxOids + ") OR c.oid" + sys + ")"
	case "pg_proc":
		return "SELECT *" + from + "oid" + sys
	}
	return "SELECT *" + from + "false"
}

// catalogRangeVar replaces a virtualized catalog relation by its subquery.
func (p *pass) catalogRangeVar(n *pg_query.Node, rv *pg_query.RangeVar, info bool, s *scope) {
	alias := aliasFor(rv.Alias, rv.Relname)
	sub, err := parseSubselect(p.r.bodies, p.catalogSQL(rv.Relname, info), alias)
	if err != nil {
		p.fail(pgerr.New(pgerr.InternalError, "internal error in catalog rewrite"))
		return
	}
	schema := "pg_catalog"
	if info {
		schema = "information_schema"
	}
	p.note(schema + "." + rv.Relname)
	item := rangeItem{alias: alias.Aliasname}
	if rv.Alias == nil {
		item.schema = schema
	}
	s.items = append(s.items, item)
	n.Node = sub.Node
}

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
	"pg_table_is_visible":             {arg: 0, catalog: "pg_class", col: "oid", subArg: -1},
	"pg_type_is_visible":              {arg: 0, catalog: "pg_type", col: "oid", subArg: -1},
	"format_type":                     {arg: 0, catalog: "pg_type", col: "oid", subArg: -1},
	"pg_get_indexdef":                 {arg: 0, catalog: "pg_class", col: "oid", subArg: -1},
	"pg_get_constraintdef":            {arg: 0, catalog: "pg_constraint", col: "oid", subArg: -1},
	"pg_get_triggerdef":               {arg: 0, catalog: "pg_trigger", col: "oid", subArg: -1},
	"pg_get_statisticsobjdef_columns": {arg: 0, catalog: "pg_statistic_ext", col: "oid", subArg: -1},
	"pg_relation_is_publishable":      {arg: 0, catalog: "pg_class", col: "oid", subArg: -1},
	"pg_partition_ancestors":          {arg: 0, catalog: "pg_class", col: "oid", subArg: -1},
	"pg_get_expr":                     {arg: 1, catalog: "pg_class", col: "oid", subArg: -1, exprRel: true},
	"obj_description":                 {arg: 0, catalog: "pg_description", col: "objoid", subArg: -1},
	"col_description":                 {arg: 0, catalog: "pg_description", col: "objoid", subArg: 1},
	"has_table_privilege":             {arg: -1, catalog: "pg_class", col: "oid", subArg: -1},
	"pg_get_serial_sequence":          {arg: -1, catalog: "pg_class", col: "oid", subArg: -1},
}

// catalogFuncCall rewrites the oid argument of a catalog function (its
// arguments are already walked).
func (p *pass) catalogFuncCall(fc *pg_query.FuncCall, name string, spec catalogFunc) {
	i := spec.arg
	if name == "pg_get_serial_sequence" {
		p.serialSequence(fc)
		return
	}
	if name == "has_table_privilege" {
		// (table, privilege) or (role, table, privilege).
		switch len(fc.Args) {
		case 2:
			i = 0
		case 3:
			i = 1
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
	body := p.catalogSQL(spec.catalog, false)
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
			rels = append(rels, regclassLit(vw.t.rel.Schema, vw.t.rel.Name))
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
	return quoteIdent(t.rel.Schema) + "." + quoteIdent(t.rel.Name), nil
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
}

// regCast rewrites a cast to regclass, regtype or regnamespace so that it
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
	if sub := p.regLookup(typ, tc.Arg); sub != nil {
		tc.Arg = sub
	}
}

// regLookup returns the oid of the visible object that arg (an oid or a
// name, of any type) denotes, or NULL.
func (p *pass) regLookup(typ string, arg *pg_query.Node) *pg_query.Node {
	rc := regCasts[typ]
	sub, err := oidLookup(p.r.bodies, p.catalogSQL(rc.catalog, false), "oid", []*pg_query.Node{arg}, regMatch(rc.toReg))
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
	sub, err := oidLookup(p.r.bodies, p.catalogSQL("pg_attribute", false), "attname", []*pg_query.Node{relOid, col},
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
