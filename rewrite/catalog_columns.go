package rewrite

import (
	"regexp"
	"strings"

	"github.com/pgwarden/pgwarden/policy"
)

// The columns of the virtual catalogs. A virtual catalog relation carries
// every column of the warehouse's real one, under its name: the lists are
// read from the warehouse at load time (policy.LoadCatalog), so any
// PostgreSQL version works; fallbackColumns (PostgreSQL 15) serve a catalog
// built without a warehouse (tests). Only relations that replace some of
// their columns need a list: the others select *, which is every column of
// whatever version answers.

// fallbackColumns are PostgreSQL 15's columns of the catalog relations whose
// virtual form replaces columns, as "name type, ...".
var fallbackColumns = map[string]string{
	"pg_class":               "oid oid, relname name, relnamespace oid, reltype oid, reloftype oid, relowner oid, relam oid, relfilenode oid, reltablespace oid, relpages integer, reltuples real, relallvisible integer, reltoastrelid oid, relhasindex boolean, relisshared boolean, relpersistence char, relkind char, relnatts smallint, relchecks smallint, relhasrules boolean, relhastriggers boolean, relhassubclass boolean, relrowsecurity boolean, relforcerowsecurity boolean, relispopulated boolean, relreplident char, relispartition boolean, relrewrite oid, relfrozenxid xid, relminmxid xid, relacl aclitem[], reloptions text[], relpartbound pg_node_tree",
	"pg_database":            "oid oid, datname name, datdba oid, encoding integer, datlocprovider char, datistemplate boolean, datallowconn boolean, datconnlimit integer, datfrozenxid xid, datminmxid xid, dattablespace oid, datcollate text, datctype text, daticulocale text, datcollversion text, datacl aclitem[]",
	"pg_matviews":            "schemaname name, matviewname name, matviewowner name, tablespace name, hasindexes boolean, ispopulated boolean, definition text",
	"pg_stat_all_indexes":    "relid oid, indexrelid oid, schemaname name, relname name, indexrelname name, idx_scan bigint, idx_tup_read bigint, idx_tup_fetch bigint",
	"pg_stat_all_tables":     "relid oid, schemaname name, relname name, seq_scan bigint, seq_tup_read bigint, idx_scan bigint, idx_tup_fetch bigint, n_tup_ins bigint, n_tup_upd bigint, n_tup_del bigint, n_tup_hot_upd bigint, n_live_tup bigint, n_dead_tup bigint, n_mod_since_analyze bigint, n_ins_since_vacuum bigint, last_vacuum timestamp with time zone, last_autovacuum timestamp with time zone, last_analyze timestamp with time zone, last_autoanalyze timestamp with time zone, vacuum_count bigint, autovacuum_count bigint, analyze_count bigint, autoanalyze_count bigint",
	"pg_stat_sys_indexes":    "relid oid, indexrelid oid, schemaname name, relname name, indexrelname name, idx_scan bigint, idx_tup_read bigint, idx_tup_fetch bigint",
	"pg_stat_sys_tables":     "relid oid, schemaname name, relname name, seq_scan bigint, seq_tup_read bigint, idx_scan bigint, idx_tup_fetch bigint, n_tup_ins bigint, n_tup_upd bigint, n_tup_del bigint, n_tup_hot_upd bigint, n_live_tup bigint, n_dead_tup bigint, n_mod_since_analyze bigint, n_ins_since_vacuum bigint, last_vacuum timestamp with time zone, last_autovacuum timestamp with time zone, last_analyze timestamp with time zone, last_autoanalyze timestamp with time zone, vacuum_count bigint, autovacuum_count bigint, analyze_count bigint, autoanalyze_count bigint",
	"pg_stat_user_indexes":   "relid oid, indexrelid oid, schemaname name, relname name, indexrelname name, idx_scan bigint, idx_tup_read bigint, idx_tup_fetch bigint",
	"pg_stat_user_tables":    "relid oid, schemaname name, relname name, seq_scan bigint, seq_tup_read bigint, idx_scan bigint, idx_tup_fetch bigint, n_tup_ins bigint, n_tup_upd bigint, n_tup_del bigint, n_tup_hot_upd bigint, n_live_tup bigint, n_dead_tup bigint, n_mod_since_analyze bigint, n_ins_since_vacuum bigint, last_vacuum timestamp with time zone, last_autovacuum timestamp with time zone, last_analyze timestamp with time zone, last_autoanalyze timestamp with time zone, vacuum_count bigint, autovacuum_count bigint, analyze_count bigint, autoanalyze_count bigint",
	"pg_statio_all_indexes":  "relid oid, indexrelid oid, schemaname name, relname name, indexrelname name, idx_blks_read bigint, idx_blks_hit bigint",
	"pg_statio_all_tables":   "relid oid, schemaname name, relname name, heap_blks_read bigint, heap_blks_hit bigint, idx_blks_read bigint, idx_blks_hit bigint, toast_blks_read bigint, toast_blks_hit bigint, tidx_blks_read bigint, tidx_blks_hit bigint",
	"pg_statio_sys_indexes":  "relid oid, indexrelid oid, schemaname name, relname name, indexrelname name, idx_blks_read bigint, idx_blks_hit bigint",
	"pg_statio_sys_tables":   "relid oid, schemaname name, relname name, heap_blks_read bigint, heap_blks_hit bigint, idx_blks_read bigint, idx_blks_hit bigint, toast_blks_read bigint, toast_blks_hit bigint, tidx_blks_read bigint, tidx_blks_hit bigint",
	"pg_statio_user_indexes": "relid oid, indexrelid oid, schemaname name, relname name, indexrelname name, idx_blks_read bigint, idx_blks_hit bigint",
	"pg_statio_user_tables":  "relid oid, schemaname name, relname name, heap_blks_read bigint, heap_blks_hit bigint, idx_blks_read bigint, idx_blks_hit bigint, toast_blks_read bigint, toast_blks_hit bigint, tidx_blks_read bigint, tidx_blks_hit bigint",
	"pg_views":               "schemaname name, viewname name, viewowner name, definition text",
	"pg_attribute":           "attrelid oid, attname name, atttypid oid, attstattarget integer, attlen smallint, attnum smallint, attndims integer, attcacheoff integer, atttypmod integer, attbyval boolean, attalign \"char\", attstorage \"char\", attcompression \"char\", attnotnull boolean, atthasdef boolean, atthasmissing boolean, attidentity \"char\", attgenerated \"char\", attisdropped boolean, attislocal boolean, attinhcount integer, attcollation oid, attacl aclitem[], attoptions text[], attfdwoptions text[], attmissingval anyarray",
	"pg_namespace":           "oid oid, nspname name, nspowner oid, nspacl aclitem[]",
	"pg_type":                "oid oid, typname name, typnamespace oid, typowner oid, typlen smallint, typbyval boolean, typtype \"char\", typcategory \"char\", typispreferred boolean, typisdefined boolean, typdelim \"char\", typrelid oid, typsubscript regproc, typelem oid, typarray oid, typinput regproc, typoutput regproc, typreceive regproc, typsend regproc, typmodin regproc, typmodout regproc, typanalyze regproc, typalign \"char\", typstorage \"char\", typnotnull boolean, typbasetype oid, typtypmod integer, typndims integer, typcollation oid, typdefaultbin pg_node_tree, typdefault text, typacl aclitem[]",
	"pg_proc":                "oid oid, proname name, pronamespace oid, proowner oid, prolang oid, procost real, prorows real, provariadic oid, prosupport regproc, prokind \"char\", prosecdef boolean, proleakproof boolean, proisstrict boolean, proretset boolean, provolatile \"char\", proparallel \"char\", pronargs smallint, pronargdefaults smallint, prorettype oid, proargtypes oidvector, proallargtypes oid[], proargmodes \"char\"[], proargnames text[], proargdefaults pg_node_tree, protrftypes oid[], prosrc text, probin text, prosqlbody pg_node_tree, proconfig text[], proacl aclitem[]",
	"pg_tablespace":          "oid oid, spcname name, spcowner oid, spcacl aclitem[], spcoptions text[]",
	"pg_user":                "usename name, usesysid oid, usecreatedb boolean, usesuper boolean, userepl boolean, usebypassrls boolean, passwd text, valuntil timestamp with time zone, useconfig text[]",
	"pg_stat_gssapi":         "pid integer, gss_authenticated boolean, principal text, encrypted boolean",
	"pg_settings":            "name text, setting text, unit text, category text, short_desc text, extra_desc text, context text, vartype text, source text, min_val text, max_val text, enumvals text[], boot_val text, reset_val text, sourcefile text, sourceline integer, pending_restart boolean",
	"pg_roles":               "rolname name, rolsuper boolean, rolinherit boolean, rolcreaterole boolean, rolcreatedb boolean, rolcanlogin boolean, rolreplication boolean, rolconnlimit integer, rolpassword text, rolvaliduntil timestamp with time zone, rolbypassrls boolean, rolconfig text[], oid oid",
}

// infoFallbackColumns are PostgreSQL 15's columns of the virtual
// information_schema views (all of them rename their *_catalog columns), as
// fallbackColumns.
var infoFallbackColumns = map[string]string{
	"tables":                  "table_catalog sql_identifier, table_schema sql_identifier, table_name sql_identifier, table_type character_data, self_referencing_column_name sql_identifier, reference_generation character_data, user_defined_type_catalog sql_identifier, user_defined_type_schema sql_identifier, user_defined_type_name sql_identifier, is_insertable_into yes_or_no, is_typed yes_or_no, commit_action character_data",
	"columns":                 "table_catalog sql_identifier, table_schema sql_identifier, table_name sql_identifier, column_name sql_identifier, ordinal_position cardinal_number, column_default character_data, is_nullable yes_or_no, data_type character_data, character_maximum_length cardinal_number, character_octet_length cardinal_number, numeric_precision cardinal_number, numeric_precision_radix cardinal_number, numeric_scale cardinal_number, datetime_precision cardinal_number, interval_type character_data, interval_precision cardinal_number, character_set_catalog sql_identifier, character_set_schema sql_identifier, character_set_name sql_identifier, collation_catalog sql_identifier, collation_schema sql_identifier, collation_name sql_identifier, domain_catalog sql_identifier, domain_schema sql_identifier, domain_name sql_identifier, udt_catalog sql_identifier, udt_schema sql_identifier, udt_name sql_identifier, scope_catalog sql_identifier, scope_schema sql_identifier, scope_name sql_identifier, maximum_cardinality cardinal_number, dtd_identifier sql_identifier, is_self_referencing yes_or_no, is_identity yes_or_no, identity_generation character_data, identity_start character_data, identity_increment character_data, identity_maximum character_data, identity_minimum character_data, identity_cycle yes_or_no, is_generated character_data, generation_expression character_data, is_updatable yes_or_no",
	"schemata":                "catalog_name sql_identifier, schema_name sql_identifier, schema_owner sql_identifier, default_character_set_catalog sql_identifier, default_character_set_schema sql_identifier, default_character_set_name sql_identifier, sql_path character_data",
	"views":                   "table_catalog sql_identifier, table_schema sql_identifier, table_name sql_identifier, view_definition character_data, check_option character_data, is_updatable yes_or_no, is_insertable_into yes_or_no, is_trigger_updatable yes_or_no, is_trigger_deletable yes_or_no, is_trigger_insertable_into yes_or_no",
	"table_constraints":       "constraint_catalog sql_identifier, constraint_schema sql_identifier, constraint_name sql_identifier, table_catalog sql_identifier, table_schema sql_identifier, table_name sql_identifier, constraint_type character_data, is_deferrable yes_or_no, initially_deferred yes_or_no, enforced yes_or_no, nulls_distinct yes_or_no",
	"key_column_usage":        "constraint_catalog sql_identifier, constraint_schema sql_identifier, constraint_name sql_identifier, table_catalog sql_identifier, table_schema sql_identifier, table_name sql_identifier, column_name sql_identifier, ordinal_position cardinal_number, position_in_unique_constraint cardinal_number",
	"constraint_column_usage": "table_catalog sql_identifier, table_schema sql_identifier, table_name sql_identifier, column_name sql_identifier, constraint_catalog sql_identifier, constraint_schema sql_identifier, constraint_name sql_identifier",
	"referential_constraints": "constraint_catalog sql_identifier, constraint_schema sql_identifier, constraint_name sql_identifier, unique_constraint_catalog sql_identifier, unique_constraint_schema sql_identifier, unique_constraint_name sql_identifier, match_option character_data, update_rule character_data, delete_rule character_data",
	"element_types":           "object_catalog sql_identifier, object_schema sql_identifier, object_name sql_identifier, object_type character_data, collection_type_identifier sql_identifier, data_type character_data, character_maximum_length cardinal_number, character_octet_length cardinal_number, character_set_catalog sql_identifier, character_set_schema sql_identifier, character_set_name sql_identifier, collation_catalog sql_identifier, collation_schema sql_identifier, collation_name sql_identifier, numeric_precision cardinal_number, numeric_precision_radix cardinal_number, numeric_scale cardinal_number, datetime_precision cardinal_number, interval_type character_data, interval_precision cardinal_number, domain_default character_data, udt_catalog sql_identifier, udt_schema sql_identifier, udt_name sql_identifier, scope_catalog sql_identifier, scope_schema sql_identifier, scope_name sql_identifier, maximum_cardinality cardinal_number, dtd_identifier sql_identifier",
}

// systemColumns are the system columns of every catalog table, which a
// query may name (c.xmin, d.tableoid) though * does not list them.
var systemColumns = []string{"tableoid", "ctid", "xmin", "cmin", "xmax", "cmax"}

// infoTypes are the information_schema domains infoFallbackColumns name
// without their schema.
var infoTypes = regexp.MustCompile(` (sql_identifier|character_data|cardinal_number|yes_or_no)\b`)

var systemColumnWord = regexp.MustCompile(`(?i)\b(tableoid|ctid|xmin|cmin|xmax|cmax)\b`)

// catalogViews are the virtualized pg_catalog relations that are views,
// which have no system columns.
var catalogViews = map[string]bool{
	"pg_settings": true, "pg_roles": true, "pg_tables": true, "pg_views": true, "pg_indexes": true,
	"pg_matviews": true, "pg_timezone_names": true, "pg_timezone_abbrevs": true, "pg_user": true, "pg_stat_gssapi": true,
}

// catalogColumns returns the columns of the warehouse's pg_catalog relation
// name, or nil when neither the warehouse nor the fallback lists them.
func (r *Rewriter) catalogColumns(name string) []policy.Column {
	if cols, ok := r.cat.SystemColumns(name); ok {
		return cols
	}
	spec, ok := fallbackColumns[name]
	if info, isInfo := strings.CutPrefix(name, "information_schema."); isInfo {
		spec, ok = infoFallbackColumns[info]
		spec = infoTypes.ReplaceAllString(spec, " information_schema.$1")
	}
	if !ok {
		return nil
	}
	var cols []policy.Column
	for i, c := range strings.Split(spec, ", ") {
		n, typ, _ := strings.Cut(c, " ")
		cols = append(cols, policy.Column{Name: n, Type: typ, Ordinal: i + 1})
	}
	return cols
}

// selectList is the select list of a virtual catalog relation: every column
// of the real one in its order, the replaced ones as "expr AS name"
// (replace returns "" to keep a column), then the system columns the
// statement names, for a table. Without replacements it is "*".
func (p *pass) selectList(name string, replace func(c policy.Column) string) string {
	if p.lean {
		return "*"
	}
	if acl := aclColumns[name]; acl != "" {
		// Grants name roles: only those to and by roles the session sees.
		inner := replace
		replace = func(c policy.Column) string {
			if c.Name == acl {
				if !p.mentions(acl) {
					// Not named and no *: only a whole-row reference could
					// reach it, which gets no grants (the filter is costly).
					return "NULL::" + c.Type
				}
				return p.aclFilter(acl)
			}
			if inner != nil {
				return inner(c)
			}
			return ""
		}
	}
	var items []string
	if replace == nil {
		items = []string{"*"}
	} else {
		cols := p.r.catalogColumns(name)
		if cols == nil {
			return "" // catalogSQL refuses the relation
		}
		for _, c := range cols {
			if e := replace(c); e != "" {
				items = append(items, e+" AS "+quoteIdent(c.Name))
			} else {
				items = append(items, quoteIdent(c.Name))
			}
		}
	}
	if !catalogViews[name] && !statViews[name] {
		for _, sc := range p.systemColumnsNamed() {
			items = append(items, sc)
		}
	}
	return strings.Join(items, ", ")
}

// infoSelectList is the select list of a virtual information_schema view:
// every column of the real one, the *_catalog columns naming the database
// the client connected to (Options.Database), as current_database() does,
// and no view bodies, which can name hidden relations.
func (p *pass) infoSelectList(name string) string {
	db := p.r.opts.Database
	cols := p.r.catalogColumns("information_schema." + name)
	if p.lean || cols == nil || db == "" && name != "views" {
		return "*"
	}
	items := make([]string, 0, len(cols))
	for _, c := range cols {
		col := quoteIdent(c.Name)
		switch {
		case name == "views" && c.Name == "view_definition":
			items = append(items, "NULL::"+c.Type+" AS "+col)
		case db != "" && (c.Name == "catalog_name" || strings.HasSuffix(c.Name, "_catalog")):
			items = append(items, "(CASE WHEN "+col+" IS NOT NULL THEN "+sqlLit(db)+" END)::"+c.Type+" AS "+col)
		default:
			items = append(items, col)
		}
	}
	return strings.Join(items, ", ")
}

// aclColumns are the access privilege columns of the virtual catalogs.
var aclColumns = map[string]string{
	"pg_class": "relacl", "pg_namespace": "nspacl", "pg_database": "datacl", "pg_type": "typacl",
	"pg_attribute": "attacl", "pg_proc": "proacl", "pg_tablespace": "spcacl",
}

// aclFilter keeps the items of an aclitem[] column whose grantee (or
// PUBLIC) and grantor are roles the session sees; NULL (the default
// privileges) stays NULL.
func (p *pass) aclFilter(col string) string {
	roles := p.roleOids()
	return "CASE WHEN " + col + " IS NULL THEN NULL ELSE ARRAY(SELECT a FROM pg_catalog.unnest(" + col + ") a WHERE NOT EXISTS (" +
		"SELECT 1 FROM pg_catalog.aclexplode(ARRAY[a]) e WHERE (e.grantee <> 0 AND e.grantee NOT IN (" + roles +
		")) OR e.grantor NOT IN (" + roles + ")))::pg_catalog.aclitem[] END"
}

// mentions reports whether the statement's text has the word col or a *.
func (p *pass) mentions(col string) bool {
	if strings.Contains(p.sql, "*") {
		return true
	}
	lower := strings.ToLower(p.sql)
	for i := strings.Index(lower, col); i >= 0; {
		end := i + len(col)
		if (i == 0 || !identChar(lower[i-1])) && (end == len(lower) || !identChar(lower[end])) {
			return true
		}
		next := strings.Index(lower[end:], col)
		if next < 0 {
			break
		}
		i = end + next
	}
	return false
}

func identChar(b byte) bool {
	return b == '_' || b == '$' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b >= 0x80
}

// systemColumnsNamed are the system columns the statement's text names
// (once per pass). Only those are added: * must not list them.
func (p *pass) systemColumnsNamed() []string {
	if p.sysCols == nil {
		seen := map[string]bool{}
		for _, m := range systemColumnWord.FindAllString(p.sql, -1) {
			seen[strings.ToLower(m)] = true
		}
		p.sysCols = []string{}
		for _, c := range systemColumns {
			if seen[c] {
				p.sysCols = append(p.sysCols, c)
			}
		}
	}
	return p.sysCols
}
