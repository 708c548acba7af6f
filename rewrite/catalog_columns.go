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
	"pg_roles":               "rolname name, rolsuper boolean, rolinherit boolean, rolcreaterole boolean, rolcreatedb boolean, rolcanlogin boolean, rolreplication boolean, rolconnlimit integer, rolpassword text, rolvaliduntil timestamp with time zone, rolbypassrls boolean, rolconfig text[], oid oid",
}

// systemColumns are the system columns of every catalog table, which a
// query may name (c.xmin, d.tableoid) though * does not list them.
var systemColumns = []string{"tableoid", "ctid", "xmin", "cmin", "xmax", "cmax"}

var systemColumnWord = regexp.MustCompile(`(?i)\b(tableoid|ctid|xmin|cmin|xmax|cmax)\b`)

// catalogViews are the virtualized pg_catalog relations that are views,
// which have no system columns.
var catalogViews = map[string]bool{
	"pg_settings": true, "pg_roles": true, "pg_tables": true, "pg_views": true, "pg_indexes": true,
	"pg_matviews": true, "pg_timezone_names": true, "pg_timezone_abbrevs": true,
}

// catalogColumns returns the columns of the warehouse's pg_catalog relation
// name, or nil when neither the warehouse nor the fallback lists them.
func (r *Rewriter) catalogColumns(name string) []policy.Column {
	if cols, ok := r.cat.SystemColumns(name); ok {
		return cols
	}
	spec, ok := fallbackColumns[name]
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
