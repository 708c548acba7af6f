package policy

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Tenancy is how a relation keeps its tenants apart (the relation's
// `tenancy:` field).
type Tenancy string

const (
	// TenancyColumn: one shared table, rows keyed by tenant_column (the
	// default when tenant_column is set).
	TenancyColumn Tenancy = "column"
	// TenancySchema: one schema per tenant, each with the same relations;
	// clients name the logical schema and the rewriter names the tenant's.
	TenancySchema Tenancy = "schema"
	// TenancyPassthrough: the warehouse's own row-level security guards the
	// relation, reading the role and settings pgwarden sets from the
	// session (RowSecurity). The rewriter's masks, denies and tenant filter
	// still apply unless the relation says rewrite: false.
	TenancyPassthrough Tenancy = "passthrough"
)

// TenantSchemas maps tenants to their physical schemas (the policy's
// `tenant_schemas:` block):
//
//	tenant_schemas:
//	  logical: public               # what clients name; default public
//	  physical: "tenant_{{tenant}}" # template; and/or
//	  map: { acme: acme_prod }      # explicit schemas, tried first
//	  model: tenant_template        # where the logical shape is read; default logical
type TenantSchemas struct {
	Logical  string
	Template string // "" when only Map is used
	Map      map[string]string
	// Model is the warehouse schema whose relations are the logical model
	// every tenant schema must match.
	Model string
	// claimed is the set of Map's schemas, so that a template never hands
	// one tenant a schema the map gives another.
	claimed map[string]string
	// reserved are schemas no tenant may be given (the model, the schemas
	// of other relations, the system's).
	reserved map[string]bool
}

type fileTenantSchemas struct {
	Logical  string            `yaml:"logical"`
	Physical string            `yaml:"physical"`
	Map      map[string]string `yaml:"map"`
	Model    string            `yaml:"model"`
}

// maxIdentLen is PostgreSQL's NAMEDATALEN-1: longer names are truncated by
// the server, so a tenant whose schema name would be is refused instead.
const maxIdentLen = 63

func parseTenantSchemas(fts *fileTenantSchemas, where string) (*TenantSchemas, error) {
	if fts == nil {
		return nil, nil
	}
	ts := &TenantSchemas{Logical: fts.Logical, Template: fts.Physical, Map: map[string]string{}, Model: fts.Model,
		claimed: map[string]string{}, reserved: map[string]bool{}}
	if ts.Logical == "" {
		ts.Logical = "public"
	}
	if ts.Model == "" {
		ts.Model = ts.Logical
	}
	if ts.Template == "" && len(fts.Map) == 0 {
		return nil, fmt.Errorf("%s: want physical (a template with {{tenant}}) and/or map", where)
	}
	if ts.Template != "" {
		rest := strings.ReplaceAll(ts.Template, "{{tenant}}", "")
		if rest == ts.Template {
			return nil, fmt.Errorf("%s.physical: the template must contain {{tenant}}", where)
		}
		if strings.Contains(rest, "{{") || strings.Contains(rest, "}}") {
			return nil, fmt.Errorf("%s.physical: only the {{tenant}} placeholder is allowed", where)
		}
	}
	tenants := make([]string, 0, len(fts.Map))
	for t := range fts.Map {
		tenants = append(tenants, t)
	}
	sort.Strings(tenants)
	for _, t := range tenants {
		s := fts.Map[t]
		if t == "" || s == "" || len(s) > maxIdentLen {
			return nil, fmt.Errorf("%s.map.%q: want a tenant and a schema name of at most %d bytes", where, t, maxIdentLen)
		}
		if other, dup := ts.claimed[s]; dup {
			return nil, fmt.Errorf("%s.map.%q: schema %q is also tenant %q's", where, t, s, other)
		}
		ts.claimed[s] = t
		ts.Map[t] = s
	}
	return ts, nil
}

// SchemaFor is tenant's physical schema; false when the tenant has none (no
// map entry and no template, a name too long, or one the policy keeps for
// something else).
func (ts *TenantSchemas) SchemaFor(tenant string) (string, bool) {
	if ts == nil || tenant == "" {
		return "", false
	}
	if s, ok := ts.Map[tenant]; ok {
		return s, !ts.SchemaReserved(s)
	}
	if ts.Template == "" {
		return "", false
	}
	s := strings.ReplaceAll(ts.Template, "{{tenant}}", tenant)
	if _, taken := ts.claimed[s]; taken || len(s) > maxIdentLen || ts.SchemaReserved(s) {
		return "", false
	}
	return s, true
}

// reservedSchema reports whether no tenant may have schema s.
func reservedSchema(s string) bool {
	return s == "pg_catalog" || s == "information_schema" || strings.HasPrefix(s, "pg_")
}

// TenantSchemasFor is the tenant_schemas block of the relation set of
// sessions of kind k (internal falls back to the top-level block).
func (p *Policy) TenantSchemasFor(k Kind) *TenantSchemas {
	if k == KindInternal && p.InternalTenantSchemas != nil {
		return p.InternalTenantSchemas
	}
	return p.TenantSchemas
}

// HasSchemaTenancy reports whether sessions of kind k have relations kept
// one schema per tenant.
func (p *Policy) HasSchemaTenancy(k Kind) bool {
	for _, r := range p.RelationsFor(k) {
		if r.Tenancy == TenancySchema {
			return true
		}
	}
	return false
}

// parseTenancy sets r.Tenancy from the relation's `tenancy:` field (and
// r.Rewrite from `rewrite:`) and checks that the model fits the relation.
func (p *Policy) parseTenancy(r *Relation, fr fileRelation, ts *TenantSchemas, where string) error {
	if fr.Rewrite != nil && Tenancy(fr.Tenancy) != TenancyPassthrough {
		return fmt.Errorf("%s.rewrite: only passthrough relations can turn pgwarden's rewriting off", where)
	}
	switch Tenancy(fr.Tenancy) {
	case "":
		if !r.Shared {
			r.Tenancy = TenancyColumn
		}
		return nil
	case TenancyColumn:
		r.Tenancy = TenancyColumn
		if r.Shared {
			return fmt.Errorf("%s.tenancy: a shared relation has no tenancy", where)
		}
		return nil
	case TenancySchema:
		r.Tenancy = TenancySchema
		switch {
		case r.Shared:
			return fmt.Errorf("%s.tenancy: a shared relation has no tenancy", where)
		case r.TenantColumn != "":
			return fmt.Errorf("%s.tenant_column: a relation kept one schema per tenant has no tenant column", where)
		case ts == nil:
			return fmt.Errorf("%s.tenancy: schema needs a tenant_schemas block", where)
		case r.Schema != ts.Logical:
			return fmt.Errorf("%s.tenancy: schema-per-tenant relations are declared under the logical schema %q", where, ts.Logical)
		}
		return nil
	case TenancyPassthrough:
		return p.parsePassthrough(r, fr, where)
	}
	return fmt.Errorf("%s.tenancy: unknown value %q (want column, schema or passthrough)", where, fr.Tenancy)
}

// reserveSchemas records, once a relation set is parsed, the schemas no
// tenant may be given: those of the set's other relations, the logical and
// model schemas, and the system's.
func reserveSchemas(ts *TenantSchemas, rels map[string]*Relation) {
	if ts == nil {
		return
	}
	ts.reserved[ts.Logical] = true
	ts.reserved[ts.Model] = true
	for _, r := range rels {
		if r.Tenancy != TenancySchema {
			ts.reserved[r.Schema] = true
		}
	}
	for _, s := range ts.Map {
		if reservedSchema(s) {
			ts.reserved[s] = true
		}
	}
	ts.reserved["pg_catalog"], ts.reserved["information_schema"] = true, true
}

// SchemaReserved reports whether s may never be a tenant's schema.
func (ts *TenantSchemas) SchemaReserved(s string) bool {
	return ts.reserved[s] || reservedSchema(s)
}

// tenantSchemasOf is the tenant_schemas block that applies to the relation
// set being parsed (field "relations" or "internal.relations").
func (p *Policy) tenantSchemasOf(field string) *TenantSchemas {
	if field == "internal.relations" {
		return p.TenantSchemasFor(KindInternal)
	}
	return p.TenantSchemas
}

// catalogNames are the warehouse relations LoadCatalog reads, sorted: every
// listed relation, where a schema-per-tenant one is read from its model
// schema. logical maps a model relation to the logical schemas it is also
// filed under.
func (p *Policy) catalogNames() (names []string, logical map[string][]string) {
	seen := map[string]bool{}
	logical = map[string][]string{}
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			names = append(names, k)
		}
	}
	for _, set := range []struct {
		rels map[string]*Relation
		kind Kind
	}{{p.Relations, KindEmbed}, {p.Internal, KindInternal}} {
		for k, r := range set.rels {
			ts := p.TenantSchemasFor(set.kind)
			if r.Tenancy != TenancySchema || ts.Model == ts.Logical {
				add(k)
				continue
			}
			m := ts.Model + "." + r.Name
			add(m)
			if !slices.Contains(logical[m], r.Schema) {
				logical[m] = append(logical[m], r.Schema)
			}
		}
	}
	sort.Strings(names)
	return names, logical
}
