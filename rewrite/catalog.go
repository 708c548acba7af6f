package rewrite

import (
	"sort"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"

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
// column, the sequences their visible columns own, and objects created by
// initdb (oid below FirstNormalObjectId), which every PostgreSQL has and so
// reveal nothing. Roles: the session's own, the owners of what it sees and
// initdb's. The database: the connected one, under the name the client
// connected with (information_schema's *_catalog columns too).
//
// A virtual relation carries every column of the real one, under its name
// and type (catalog_columns.go); the few it replaces (sizes, grants, view
// bodies, another role's settings, the GSSAPI state) keep their names. Catalog relations not
// listed here, in statViews, in initdbOnly or in catalogRelations are refused.

// firstNormalOid is PostgreSQL's FirstNormalObjectId: objects with a smaller
// oid were created by initdb.
const firstNormalOid = "16384"

// catalogVirtual are the virtualized pg_catalog relations with a filter of
// their own in catalogSQL.
var catalogVirtual = map[string]bool{
	"pg_class": true, "pg_attribute": true, "pg_attrdef": true, "pg_index": true, "pg_constraint": true,
	"pg_namespace": true, "pg_type": true, "pg_description": true, "pg_inherits": true, "pg_database": true,
	"pg_settings": true, "pg_roles": true, "pg_proc": true, "pg_sequence": true,
	"pg_tables": true, "pg_views": true, "pg_indexes": true, "pg_matviews": true, "pg_enum": true, "pg_range": true,
	"pg_auth_members": true, "pg_depend": true, "pg_extension": true, "pg_shdescription": true, "pg_user": true,
	"pg_stat_gssapi": true,
	// Empty for every session: they describe triggers, view bodies, row
	// security and statistics objects, which can name hidden objects.
	"pg_trigger": true, "pg_rewrite": true, "pg_policy": true, "pg_statistic_ext": true,
	"pg_publication": true, "pg_publication_rel": true, "pg_publication_namespace": true, "pg_default_acl": true,
}

// infoSchemaVirtual are the information_schema views sessions may read.
var infoSchemaVirtual = map[string]bool{
	"tables": true, "columns": true, "schemata": true, "views": true, "table_constraints": true,
	"key_column_usage": true, "constraint_column_usage": true, "referential_constraints": true, "element_types": true,
}

// visibility is what one session may see of the catalog, as SQL snippets
// (computed once per pass, on the first catalog reference).
type visibility struct {
	rels    []*view
	relOids string // oid[] of the visible relations
	idxOids string // oid[] of their visible indexes
	seqOids string // oid[] of the sequences their visible columns own
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
		vw := p.view(t)
		v.rels = append(v.rels, vw)
		oids = append(oids, regclassLit(vw.schema, t.rel.Name))
		pairs = append(pairs, "("+sqlLit(vw.schema)+", "+sqlLit(t.rel.Name)+")")
		schemas[vw.schema] = true
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
	// Sequences owned by visible columns (serial, identity, OWNED BY): part
	// of the column as PostgreSQL shows it (an identity column has one),
	// their parameters in pg_sequence, never their values.
	v.seqOids = "COALESCE((SELECT pg_catalog.array_agg(d.objid) FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class s ON s.oid = d.objid" +
		" WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass" +
		" AND s.relkind = 'S' AND d.deptype IN ('a', 'i') AND d.refobjid = ANY (" + v.relOids + ")" +
		v.deniedAnd("d.refobjid", attnumIn("d.refobjsubid")) + "), '{}'::pg_catalog.oid[])"
	p.vis = v
	return v
}

// relationReadable is the virtual catalogs' rule for a relation of the
// session's set: rangeVar's (relationReached), and served by the tenant's
// schema when it is kept one schema per tenant.
func (p *pass) relationReadable(t *relTemplate) bool {
	return p.relationReached(t) && p.tenantServes(t)
}

// relationReached is rangeVar's rule: published for the role, granted to the
// session's groups, and tenant-keyed only for a session with a tenant. A
// schema-per-tenant relation whose schema cannot serve the tenant fails
// later, with the reason (tenantReady).
func (p *pass) relationReached(t *relTemplate) bool {
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
		rel := regclassLit(vw.schema, vw.t.rel.Name)
		arr := "'{" + strings.Join(nums, ",") + "}'::pg_catalog.int2[]"
		b.WriteString(" AND NOT (" + relCol + " = " + rel + " AND " + cond(rel, arr) + ")")
	}
	return b.String()
}

// deniedElementsAnd excludes the element types of denied columns
// (information_schema.element_types names a table's column by attnum).
func (v *visibility) deniedElementsAnd() string {
	var b strings.Builder
	for _, vw := range v.rels {
		var nums []string
		for _, c := range vw.t.cols {
			if vw.denied[c.name] {
				nums = append(nums, sqlLit(strconv.Itoa(vw.t.cat.Columns[c.colIndex].Ordinal)))
			}
		}
		if len(nums) == 0 {
			continue
		}
		sort.Strings(nums)
		b.WriteString(" AND NOT (object_schema = " + sqlLit(vw.schema) + " AND object_name = " + sqlLit(vw.t.rel.Name) +
			" AND collection_type_identifier IN (" + strings.Join(nums, ", ") + "))")
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
		b.WriteString(" AND NOT (table_schema = " + sqlLit(vw.schema) + " AND table_name = " + sqlLit(vw.t.rel.Name) +
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
		cols := p.infoSelectList(name)
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
			// In each relation's column order, as PostgreSQL's plan for
			// the view happens to give it: tools read the columns of a
			// table without ORDER BY (Malloy's table sources), and the
			// fenced view's own plan would scramble them.
			where = "(" + where + v.deniedColumnsAnd() + ")"
			return "SELECT " + cols + " FROM information_schema.columns WHERE " + where +
				" OR table_schema IN ('pg_catalog', 'information_schema') ORDER BY table_schema, table_name, ordinal_position"
		case "schemata":
			return "SELECT " + cols + " FROM information_schema.schemata WHERE schema_name = ANY (" + v.schemas +
				") OR schema_name IN ('pg_catalog', 'information_schema')"
		case "table_constraints", "key_column_usage":
			return "SELECT " + cols + " FROM information_schema." + name + " WHERE " + where + " AND " + conTriples
		case "constraint_column_usage":
			return "SELECT " + cols + " FROM information_schema." + name + " WHERE " + where + v.deniedColumnsAnd() + " AND " + conPairs("")
		case "element_types":
			// Element types of the visible relations' array columns (by
			// attnum, the columns' dtd_identifier) and of the system
			// schemas' objects; domains, types and routines of other
			// schemas are not in the virtual catalogs.
			return "SELECT " + cols + " FROM information_schema.element_types WHERE ((object_schema, object_name) IN " + v.pairs +
				" AND object_type = 'TABLE'" + v.deniedElementsAnd() + ") OR object_schema IN ('pg_catalog', 'information_schema')"
		case "referential_constraints":
			// By name only: one a hidden relation's constraint shares is left out.
			return "SELECT " + cols + " FROM information_schema." + name + " WHERE " + conPairs(" WHERE c.contype = 'f'") +
				" AND (constraint_schema::text, constraint_name::text) NOT IN (SELECT n.nspname::text, c.conname::text FROM pg_catalog.pg_constraint c" +
				" JOIN pg_catalog.pg_namespace n ON n.oid = c.connamespace WHERE c.contype = 'f' AND c.oid NOT IN (SELECT oid FROM (" +
				p.catalogSQL("pg_constraint", false) + ") vc))"
		}
		return "SELECT " + cols + " FROM information_schema." + name + " WHERE " + where +
			" OR table_schema IN ('pg_catalog', 'information_schema')"
	}
	from := " FROM pg_catalog." + name + " WHERE "
	all := "SELECT " + p.selectList(name, nil) + from
	switch name {
	case "pg_class":
		// Sizes are masked so that no session learns another tenant's row
		// counts.
		return "SELECT " + p.selectList(name, func(c policy.Column) string {
			switch c.Name {
			case "relpages", "relallvisible":
				return "0::" + c.Type
			case "reltuples":
				return "(-1)::" + c.Type
			}
			return ""
		}) + from + inV("oid") + " OR oid = ANY (" + v.idxOids + ") OR oid = ANY (" + v.seqOids + ") OR oid" + sys
	case "pg_attribute":
		return all + "(" + inV("attrelid") + v.deniedAnd("attrelid", attnumIn("attnum")) +
			") OR attrelid = ANY (" + v.idxOids + ") OR attrelid = ANY (" + v.seqOids + ") OR attrelid" + sys
	case "pg_attrdef":
		return all + inV("adrelid") + v.deniedAnd("adrelid", attnumIn("adnum"))
	case "pg_index":
		return all + "indexrelid = ANY (" + v.idxOids + ")"
	case "pg_constraint":
		return all + "(" + inV("conrelid") + " AND (confrelid = 0 OR " + inV("confrelid") + ")" +
			v.deniedAnd("conrelid", func(_, nums string) string {
				// Exclusion constraints may name columns in expressions only.
				return "(conkey OPERATOR(pg_catalog.&&) " + nums + " OR contype = 'x')"
			}) + v.deniedAnd("confrelid", arrayOverlaps("confkey")) +
			") OR (conrelid = 0 AND oid" + sys + ")"
	case "pg_namespace":
		return p.namespaceSQL(name, from, "oid"+sys+" OR nspname = ANY ("+v.schemas+")")
	case "pg_type":
		// initdb's types, the row types of visible relations, the types of
		// their visible columns, and arrays of these; other types (row
		// types of hidden relations, another tenant's enums) are hidden.
		colTypes := "SELECT atttypid FROM pg_catalog.pg_attribute WHERE " + inV("attrelid") +
			" AND attnum > 0" + v.deniedAnd("attrelid", attnumIn("attnum"))
		base := func(t string) string {
			return "(" + t + "oid" + sys + " OR " + inV(t+"typrelid") + " OR " + t + "oid IN (" + colTypes + "))"
		}
		return all + base("") + " OR (typelem <> 0 AND typelem IN (SELECT e.oid FROM pg_catalog.pg_type e WHERE " + base("e.") + "))"
	case "pg_enum":
		return all + "enumtypid IN (SELECT oid FROM (" + p.catalogSQL("pg_type", false) + ") t)"
	case "pg_range":
		return all + "rngtypid IN (SELECT oid FROM (" + p.catalogSQL("pg_type", false) + ") t)"
	case "pg_description":
		return all + "objoid" + sys + " OR (classoid = 'pg_catalog.pg_class'::pg_catalog.regclass AND (" +
			inV("objoid") + " OR objoid = ANY (" + v.idxOids + ") OR objoid = ANY (" + v.seqOids + "))" + v.deniedAnd("objoid", attnumIn("objsubid")) + ")"
	case "pg_inherits":
		return all + inV("inhrelid") + " AND " + inV("inhparent")
	case "pg_database":
		// The connected database only, under the name the client connected
		// with.
		db := p.r.opts.Database
		return "SELECT " + p.selectList(name, func(c policy.Column) string {
			if c.Name == "datname" && db != "" {
				return sqlLit(db) + "::pg_catalog.name"
			}
			return ""
		}) + from + "datname = pg_catalog.current_database()"
	case "pg_settings":
		names := make([]string, 0, len(settableSettings)+len(showableSettings))
		for n := range settableSettings {
			names = append(names, sqlLit(n))
		}
		for n := range showableSettings {
			names = append(names, sqlLit(n))
		}
		sort.Strings(names)
		return "SELECT " + p.selectList(name, func(c policy.Column) string {
			if c.Name == "source" {
				// pgwarden pins standard_conforming_strings on its
				// warehouse connections as a startup parameter, at its
				// built-in value: PostgreSQL says 'default' for a client
				// that did not set it (one that SETs it gets 'session').
				return "CASE WHEN name = 'standard_conforming_strings' AND source = 'client' AND setting = boot_val THEN 'default' ELSE source END"
			}
			return ""
		}) + from + "pg_catalog.lower(name) IN (" + strings.Join(names, ", ") + ")"
	case "pg_roles":
		// The session's own role, the owners of what it sees and the roles
		// of initdb; another role's settings are its own.
		return "SELECT " + p.selectList(name, func(c policy.Column) string {
			if c.Name == "rolconfig" {
				return "CASE WHEN rolname = CURRENT_USER THEN rolconfig END"
			}
			return ""
		}) + from + "oid IN (" + p.roleOids() + ")"
	case "pg_user":
		// pg_roles' rule: the roles the session sees, another role's
		// settings its own.
		return "SELECT " + p.selectList(name, func(c policy.Column) string {
			if c.Name == "useconfig" {
				return "CASE WHEN usename = CURRENT_USER THEN useconfig END"
			}
			return ""
		}) + from + "usesysid IN (" + p.roleOids() + ")"
	case "pg_shdescription":
		// Comments on the shared objects the session sees: the connected
		// database, the roles of pg_roles and initdb's tablespaces.
		reg := func(cat string) string { return "classoid = 'pg_catalog." + cat + "'::pg_catalog.regclass" }
		return all + "(" + reg("pg_database") + " AND objoid IN (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()))" +
			" OR (" + reg("pg_authid") + " AND objoid IN (" + p.roleOids() + "))" +
			" OR (" + reg("pg_tablespace") + " AND objoid" + sys + ")"
	case "pg_stat_gssapi":
		// The session's own backend only (pg_backend_pid() is the
		// warehouse connection's), as its client connection is: pgwarden
		// takes no GSSAPI authentication or encryption.
		return "SELECT " + p.selectList(name, func(c policy.Column) string {
			switch c.Name {
			case "pid":
				return ""
			case "principal":
				return "NULL::" + c.Type
			}
			if c.Type == "boolean" {
				return "false"
			}
			return "NULL::" + c.Type
		}) + from + "pid = pg_catalog.pg_backend_pid()"
	case "pg_auth_members":
		roles := p.roleOids()
		return all + "roleid IN (" + roles + ") AND member IN (" + roles + ")"
	case "pg_depend":
		// Dependencies between objects the session sees, both ends.
		return all + p.objectVisible("classid", "objid", "objsubid") + " AND " +
			p.objectVisible("refclassid", "refobjid", "refobjsubid")
	case "pg_extension":
		// plpgsql, which initdb creates; others would name functions the
		// virtual pg_proc does not have.
		return all + "oid" + sys
	case "pg_sequence":
		// Sequences owned by visible columns (serial and identity); their
		// parameters only, not their values.
		return all + "seqrelid = ANY (" + v.seqOids + ")"
	case "pg_tables":
		return all + "(schemaname, tablename) IN " + v.pairs + " OR schemaname IN ('pg_catalog', 'information_schema')"
	case "pg_views", "pg_matviews":
		// View bodies can name hidden relations.
		nameCol := "viewname"
		if name == "pg_matviews" {
			nameCol = "matviewname"
		}
		return "SELECT " + p.selectList(name, func(c policy.Column) string {
			if c.Name == "definition" {
				return "NULL::pg_catalog.text"
			}
			return ""
		}) + from + "(schemaname, " + nameCol + ") IN " + v.pairs + " OR schemaname IN ('pg_catalog', 'information_schema')"
	case "pg_indexes":
		return all + "(schemaname, indexname) IN (SELECT n.nspname, c.relname FROM pg_catalog.pg_class c" +
			" JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = ANY (" + v.idxOids + ") OR c.oid" + sys + ")"
	case "pg_proc":
		return all + "oid" + sys
	}
	if statViews[name] {
		return p.statSQL(name)
	}
	if initdbOnly[name] {
		return all + "oid" + sys
	}
	return all + "false"
}

// initdbOnly are the catalogs of objects no policy exposes (operators,
// operator classes, casts, languages, text search configurations, foreign
// servers, ...): the virtual catalogs have initdb's, which every PostgreSQL
// has, and hide those created since, whoever created them.
var initdbOnly = map[string]bool{
	"pg_opclass": true, "pg_opfamily": true, "pg_operator": true, "pg_amop": true, "pg_amproc": true, "pg_cast": true,
	"pg_conversion": true, "pg_language": true, "pg_ts_config": true, "pg_ts_dict": true, "pg_ts_parser": true,
	"pg_ts_template": true, "pg_foreign_data_wrapper": true, "pg_foreign_server": true, "pg_event_trigger": true,
	"pg_transform": true, "pg_am": true, "pg_tablespace": true,
}

// statViews are the statistics views of tables and indexes, answered for the
// visible ones with every counter masked.
var statViews = map[string]bool{
	"pg_stat_all_tables": true, "pg_stat_user_tables": true, "pg_stat_sys_tables": true,
	"pg_statio_all_tables": true, "pg_statio_user_tables": true, "pg_statio_sys_tables": true,
	"pg_stat_all_indexes": true, "pg_stat_user_indexes": true, "pg_stat_sys_indexes": true,
	"pg_statio_all_indexes": true, "pg_statio_user_indexes": true, "pg_statio_sys_indexes": true,
}

// statSQL answers a statistics view: the rows of visible relations (user),
// of initdb's (sys), or both (all); the counters as a table never scanned
// has them (0, timestamps NULL), as reltuples is masked in pg_class.
func (p *pass) statSQL(name string) string {
	v := p.visible()
	sys := " < " + firstNormalOid + "::pg_catalog.oid"
	col, set := "relid", v.relOids
	if strings.HasSuffix(name, "_indexes") {
		col, set = "indexrelid", v.idxOids
	}
	var where string
	switch {
	case strings.Contains(name, "_user_"):
		where = col + " = ANY (" + set + ")"
	case strings.Contains(name, "_sys_"):
		where = col + sys
	default:
		where = col + " = ANY (" + set + ") OR " + col + sys
	}
	list := p.selectList(name, func(c policy.Column) string {
		switch c.Name {
		case "relid", "indexrelid", "schemaname", "relname", "indexrelname":
			return ""
		}
		switch c.Type {
		case "bigint", "integer", "smallint", "double precision", "real", "numeric":
			return "0::" + c.Type
		}
		return "NULL::" + c.Type
	})
	return "SELECT " + list + " FROM pg_catalog." + name + " WHERE " + where
}

// roleOids is a query of the roles the session sees: its own, the owners
// of the relations, schemas and database it sees, and initdb's (the
// bootstrap superuser, which owns pg_catalog, and the predefined roles).
func (p *pass) roleOids() string {
	v := p.visible()
	return "SELECT oid FROM pg_catalog.pg_roles WHERE oid < " + firstNormalOid + "::pg_catalog.oid OR rolname = CURRENT_USER" +
		" OR oid IN (SELECT relowner FROM pg_catalog.pg_class WHERE oid = ANY (" + v.relOids + ") OR oid = ANY (" + v.idxOids + "))" +
		" OR oid IN (SELECT nspowner FROM pg_catalog.pg_namespace WHERE nspname = ANY (" + v.schemas + "))" +
		" OR oid IN (SELECT datdba FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())"
}

// objectVisible is the condition that the object (class, oid, subid) of a
// pg_depend row is one the virtual catalogs have: initdb's, or a visible
// relation, index, column, type, constraint or schema.
func (p *pass) objectVisible(class, oid, sub string) string {
	v := p.visible()
	reg := func(cat string) string { return class + " = 'pg_catalog." + cat + "'::pg_catalog.regclass" }
	return "(" + oid + " < " + firstNormalOid + "::pg_catalog.oid" +
		" OR (" + reg("pg_class") + " AND (" + oid + " = ANY (" + v.relOids + ") OR " + oid + " = ANY (" + v.idxOids + ") OR " + oid + " = ANY (" + v.seqOids + "))" +
		v.deniedAnd(oid, attnumIn(sub)) + ")" +
		" OR (" + reg("pg_type") + " AND " + oid + " IN (SELECT oid FROM (" + p.catalogSQL("pg_type", false) + ") t))" +
		" OR (" + reg("pg_constraint") + " AND " + oid + " IN (SELECT oid FROM (" + p.catalogSQL("pg_constraint", false) + ") c))" +
		" OR (" + reg("pg_namespace") + " AND " + oid + " IN (SELECT oid FROM (" + p.catalogSQL("pg_namespace", false) + ") n)))"
}

// catalogRangeVar replaces a virtualized catalog relation by its subquery.
func (p *pass) catalogRangeVar(n *pg_query.Node, rv *pg_query.RangeVar, info bool, s *scope) {
	alias := aliasFor(rv.Alias, rv.Relname)
	sub, err := parseSubselect(p.r.bodies, p.logicalSchemaNames(rv.Relname, info, p.catalogSQL(rv.Relname, info)), alias)
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

// catalogRangeFunction replaces pg_show_all_settings() in FROM, the function
// behind pg_settings, by the virtual pg_settings under the function's name
// or alias; it reports whether it did. WITH ORDINALITY, ROWS FROM and a
// column definition list are left to the allow-list, which refuses them.
func (p *pass) catalogRangeFunction(n *pg_query.Node, rf *pg_query.RangeFunction, s *scope) bool {
	if len(rf.Functions) != 1 || rf.Ordinality || rf.IsRowsfrom || len(rf.Coldeflist) > 0 {
		return false
	}
	l := rf.Functions[0].GetList()
	if l == nil || len(l.Items) == 0 || len(l.Items) > 1 && len(l.Items[1].GetList().GetItems()) > 0 {
		return false
	}
	fc := l.Items[0].GetFuncCall()
	if fc == nil || len(fc.Args) > 0 || fc.AggStar || fc.Over != nil {
		return false
	}
	if schema, name := policy.FuncName(fc.Funcname); name != "pg_show_all_settings" || schema != "" && schema != "pg_catalog" {
		return false
	}
	alias := rf.Alias
	if alias == nil {
		alias = &pg_query.Alias{Aliasname: "pg_show_all_settings"}
	}
	sub, err := parseSubselect(p.r.bodies, p.catalogSQL("pg_settings", false), alias)
	if err != nil {
		p.fail(pgerr.New(pgerr.InternalError, "internal error in catalog rewrite"))
		return true
	}
	p.note("pg_catalog.pg_settings")
	s.items = append(s.items, rangeItem{alias: alias.Aliasname})
	n.Node = sub.Node
	return true
}
