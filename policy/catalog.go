package policy

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Column is one column of an exposed relation, as the warehouse has it.
type Column struct {
	Name string
	// Type is the column's type as format_type prints it ("integer", "text",
	// "timestamp with time zone", "numeric(12,2)", ...).
	Type    string
	Ordinal int
}

// CatalogRelation is an exposed relation's shape in the warehouse.
type CatalogRelation struct {
	Schema  string
	Name    string
	Columns []Column // in ordinal order
	// Partitioned is true for a declaratively partitioned table, which
	// must not be read with ONLY (it holds no rows itself).
	Partitioned bool
	// What pass-through relations need (CheckRowSecurity), as LoadCatalog
	// read it: a table (not a view), its row-level security enabled and
	// forced, and whether the account that read the catalog owns it.
	Table, RowSecurity, ForceRowSecurity, Owned bool
}

// Column returns the named column.
func (r *CatalogRelation) Column(name string) (Column, bool) {
	for _, c := range r.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// Catalog holds the column lists of the exposed relations, and those of the
// warehouse's own pg_catalog relations. It is immutable.
type Catalog struct {
	rels map[string]*CatalogRelation
	// system has the columns of the warehouse's pg_catalog tables and views
	// by name, in attnum order: the virtual catalogs carry every one of them
	// whatever the PostgreSQL version. Nil when not read (NewCatalog).
	system map[string][]Column
	// live: read from a warehouse by LoadCatalog (CheckRowSecurity runs);
	// bypassRLS: the account that read it is a superuser or has BYPASSRLS.
	live, bypassRLS bool
}

// WithSystemColumns returns a catalog like c whose pg_catalog relations have
// the given columns (by relation name, in attnum order).
func (c *Catalog) WithSystemColumns(cols map[string][]Column) *Catalog {
	out := &Catalog{rels: c.rels, live: c.live, bypassRLS: c.bypassRLS, system: make(map[string][]Column, len(cols))}
	for k, v := range cols {
		out.system[k] = slices.Clone(v)
	}
	return out
}

// SystemColumns returns the columns of the warehouse's pg_catalog relation
// name (or "information_schema.name"), when they were read.
func (c *Catalog) SystemColumns(name string) ([]Column, bool) {
	cols, ok := c.system[name]
	return cols, ok
}

// NewCatalog builds a catalog from known relation shapes (tests, or a
// catalog read elsewhere). Columns are sorted by ordinal.
func NewCatalog(rels ...CatalogRelation) *Catalog {
	c := &Catalog{rels: make(map[string]*CatalogRelation, len(rels))}
	for i := range rels {
		r := rels[i]
		r.Columns = slices.Clone(r.Columns)
		sort.SliceStable(r.Columns, func(a, b int) bool { return r.Columns[a].Ordinal < r.Columns[b].Ordinal })
		c.rels[r.Schema+"."+r.Name] = &r
	}
	return c
}

// Relation returns the shape of schema.name.
func (c *Catalog) Relation(schema, name string) (*CatalogRelation, bool) {
	r, ok := c.rels[schema+"."+name]
	return r, ok
}

const catalogQuery = `
SELECT n.nspname, c.relname, c.relkind = 'p', a.attname, format_type(a.atttypid, a.atttypmod), a.attnum,
  c.relkind IN ('r', 'p'), c.relrowsecurity, c.relforcerowsecurity, pg_catalog.pg_get_userbyid(c.relowner) = current_user
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND (n.nspname || '.' || c.relname) = ANY($1)
ORDER BY 1, 2, a.attnum`

// LoadCatalog reads the column lists of every relation the policy lists (in
// both relation sets) and checks the policy against them.
func LoadCatalog(ctx context.Context, conn *pgx.Conn, p *Policy) (*Catalog, error) {
	// Relations kept one schema per tenant are read where their model is
	// (tenancy.go) and filed under their logical name.
	names, logical := p.catalogNames()
	rows, err := conn.Query(ctx, catalogQuery, names)
	if err != nil {
		return nil, fmt.Errorf("policy: load catalog: %w", err)
	}
	defer rows.Close()
	byName := map[string]*CatalogRelation{}
	var order []string
	for rows.Next() {
		var schema, rel, attname, typ string
		var partitioned, table, rls, force, owned bool
		var attnum int16
		if err := rows.Scan(&schema, &rel, &partitioned, &attname, &typ, &attnum, &table, &rls, &force, &owned); err != nil {
			return nil, fmt.Errorf("policy: load catalog: %w", err)
		}
		key := schema + "." + rel
		r := byName[key]
		if r == nil {
			r = &CatalogRelation{Schema: schema, Name: rel, Partitioned: partitioned, Table: table, RowSecurity: rls,
				ForceRowSecurity: force, Owned: owned}
			byName[key] = r
			order = append(order, key)
		}
		r.Columns = append(r.Columns, Column{Name: attname, Type: typ, Ordinal: int(attnum)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("policy: load catalog: %w", err)
	}
	rels := make([]CatalogRelation, 0, len(order))
	for _, k := range order {
		rels = append(rels, *byName[k])
		for _, l := range logical[k] {
			r := *byName[k]
			r.Schema = l
			rels = append(rels, r)
		}
	}
	system, err := loadSystemColumns(ctx, conn)
	if err != nil {
		return nil, err
	}
	cat := NewCatalog(rels...).WithSystemColumns(system)
	cat.live = true
	if err := conn.QueryRow(ctx, "SELECT rolsuper OR rolbypassrls FROM pg_catalog.pg_roles WHERE rolname = current_user").Scan(&cat.bypassRLS); err != nil {
		return nil, fmt.Errorf("policy: load catalog: %w", err)
	}
	if err := p.Check(cat); err != nil {
		return nil, err
	}
	if err := p.CheckRowSecurity(cat); err != nil {
		return nil, err
	}
	return cat, nil
}

const systemColumnsQuery = `
SELECT CASE WHEN c.relnamespace = 'pg_catalog'::pg_catalog.regnamespace THEN c.relname::text
  ELSE 'information_schema.' || c.relname END, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnum
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relnamespace IN ('pg_catalog'::pg_catalog.regnamespace, 'information_schema'::pg_catalog.regnamespace)
  AND c.relkind IN ('r', 'v')
ORDER BY 1, a.attnum`

// loadSystemColumns reads the column lists of the warehouse's pg_catalog
// tables and views, and of its information_schema views as
// "information_schema.name" (a few thousand rows, readable by any role).
func loadSystemColumns(ctx context.Context, conn *pgx.Conn) (map[string][]Column, error) {
	rows, err := conn.Query(ctx, systemColumnsQuery)
	if err != nil {
		return nil, fmt.Errorf("policy: load pg_catalog columns: %w", err)
	}
	defer rows.Close()
	out := map[string][]Column{}
	for rows.Next() {
		var rel string
		var c Column
		var attnum int16
		if err := rows.Scan(&rel, &c.Name, &c.Type, &attnum); err != nil {
			return nil, fmt.Errorf("policy: load pg_catalog columns: %w", err)
		}
		c.Ordinal = int(attnum)
		out[rel] = append(out[rel], c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("policy: load pg_catalog columns: %w", err)
	}
	return out, nil
}

// CheckRowSecurity verifies, against a catalog LoadCatalog read as the
// service account, that the warehouse itself guards every passthrough
// relation: the account does not bypass row security, and each relation is
// a table with row-level security enabled (and forced, if the account owns
// it, since owners are exempt otherwise). A view is refused: its policies
// would be checked as its owner. Catalogs built with NewCatalog pass.
func (p *Policy) CheckRowSecurity(cat *Catalog) error {
	if !cat.live {
		return nil
	}
	for _, set := range []struct {
		field string
		rels  map[string]*Relation
	}{{"relations", p.Relations}, {"internal.relations", p.Internal}} {
		keys := make([]string, 0, len(set.rels))
		for k, r := range set.rels {
			if r.Tenancy == TenancyPassthrough {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			r := set.rels[k]
			where := fmt.Sprintf("%s: %s.%q.tenancy", p.File, set.field, k)
			cr, _ := cat.Relation(r.Schema, r.Name)
			switch {
			case cat.bypassRLS:
				return fmt.Errorf("%s: passthrough, but the service account is a superuser or has BYPASSRLS, so the warehouse's row security would not apply", where)
			case !cr.Table:
				return fmt.Errorf("%s: passthrough needs a table: a view's row security is checked as its owner", where)
			case !cr.RowSecurity:
				return fmt.Errorf("%s: passthrough, but row-level security is not enabled on it (ALTER TABLE %s ENABLE ROW LEVEL SECURITY)", where, k)
			case cr.Owned && !cr.ForceRowSecurity:
				return fmt.Errorf("%s: passthrough, but the service account owns it and its owner is exempt (ALTER TABLE %s FORCE ROW LEVEL SECURITY)", where, k)
			}
		}
	}
	return nil
}

// Check verifies the policy against a catalog: every listed relation exists,
// and every column it names (tenant column, column rules, filter and mask
// expressions) is a column of that relation.
func (p *Policy) Check(cat *Catalog) error {
	for _, set := range []struct {
		field string
		rels  map[string]*Relation
	}{{"relations", p.Relations}, {"internal.relations", p.Internal}} {
		keys := make([]string, 0, len(set.rels))
		for k := range set.rels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			r := set.rels[k]
			where := fmt.Sprintf("%s: %s.%q", p.File, set.field, k)
			cr, ok := cat.Relation(r.Schema, r.Name)
			if !ok {
				return fmt.Errorf("%s: relation does not exist in the warehouse", where)
			}
			if r.TenantColumn != "" {
				if _, ok := cr.Column(r.TenantColumn); !ok {
					return fmt.Errorf("%s.tenant_column: column %q does not exist", where, r.TenantColumn)
				}
			}
			if err := checkWrites(r, cr, where); err != nil {
				return err
			}
			cols := make([]string, 0, len(r.Columns))
			for c := range r.Columns {
				cols = append(cols, c)
			}
			sort.Strings(cols)
			for _, c := range cols {
				if _, ok := cr.Column(c); !ok {
					return fmt.Errorf("%s.columns.%s: column does not exist", where, c)
				}
				if m := r.Columns[c].Mask; m != nil {
					for _, ref := range m.Columns {
						if _, ok := cr.Column(ref); !ok {
							return fmt.Errorf("%s.columns.%s.sql: column %q does not exist", where, c, ref)
						}
					}
				}
			}
			for i, f := range r.Filters {
				for _, ref := range f.Columns {
					if _, ok := cr.Column(ref); !ok {
						return fmt.Errorf("%s.filters[%d].sql: column %q does not exist", where, i, ref)
					}
				}
			}
		}
	}
	return nil
}

// TypeFamily classifies a format_type name for masks: "text", "number",
// "date", "timestamp", "timestamptz", "time", "bool", "json", "jsonb",
// "uuid", "bytea" or "other".
func TypeFamily(typ string) string {
	t := typ
	if i := strings.IndexByte(t, '('); i >= 0 {
		t = strings.TrimSpace(t[:i]) + t[strings.IndexByte(t, ')')+1:]
	}
	if strings.HasSuffix(t, "[]") {
		return "other"
	}
	switch t {
	case "text", "character varying", "character", "varchar", "char", "name", "citext", "bpchar":
		return "text"
	case "smallint", "integer", "bigint", "numeric", "real", "double precision", "int2", "int4", "int8",
		"float4", "float8", "decimal", "money":
		return "number"
	case "date":
		return "date"
	case "timestamp without time zone", "timestamp":
		return "timestamp"
	case "timestamp with time zone", "timestamptz":
		return "timestamptz"
	case "time without time zone", "time", "time with time zone", "timetz":
		return "time"
	case "boolean", "bool":
		return "bool"
	case "json":
		return "json"
	case "jsonb":
		return "jsonb"
	case "uuid":
		return "uuid"
	case "bytea":
		return "bytea"
	}
	return "other"
}
