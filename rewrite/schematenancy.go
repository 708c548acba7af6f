package rewrite

import (
	"context"
	"errors"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"
	"google.golang.org/protobuf/proto"

	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
)

// Schema per tenant. A relation with tenancy: schema is declared under its
// logical schema (public.orders) and read, for each session, from its
// tenant's physical schema (tenant_acme.orders): rangeVar resolves the
// client's name (qualified or not, at any depth) to the logical relation as
// for any other, and the fenced subquery it builds names the physical one.
// The warehouse's search_path plays no part. A client that names a physical
// schema, its own or another tenant's, gets the error of a relation that
// does not exist; the virtual catalog lists the tenant's relations under
// the logical schema's name.

// TenantSchemaSource knows the tenants' physical schemas
// (*policy.TenantCatalog is one).
type TenantSchemaSource interface {
	TenantSchema(ctx context.Context, k policy.Kind, tenant string) (*policy.TenantSchema, error)
}

var _ TenantSchemaSource = (*policy.TenantCatalog)(nil)

// schemaTenancy is the Rewriter's part of schema per tenant.
type schemaTenancy struct {
	src TenantSchemaSource
	// embed and internal: the session kinds whose relation set has
	// schema-per-tenant relations (fields, not a map: read at every
	// statement).
	embed, internal bool
}

func newSchemaTenancy(p *policy.Policy, src TenantSchemaSource) (*schemaTenancy, error) {
	st := &schemaTenancy{src: src, embed: p.HasSchemaTenancy(policy.KindEmbed), internal: p.HasSchemaTenancy(policy.KindInternal)}
	if (st.embed || st.internal) && src == nil {
		return nil, errors.New("rewrite: the policy has schema-per-tenant relations but no tenant schema source (Options.TenantSchemas)")
	}
	return st, nil
}

// has reports whether sessions of kind have schema-per-tenant relations.
func (st *schemaTenancy) has(kind policy.Kind) bool {
	switch kind {
	case policy.KindEmbed:
		return st.embed
	case policy.KindInternal:
		return st.internal
	}
	return false
}

// tenantState is one session's tenant schema, for one rewrite.
type tenantState struct {
	schema string       // the physical schema, when err is nil
	err    *pgerr.Error // why its relations are refused
	key    string       // what the rewrite cache keys by
}

// tenantFor resolves the session's tenant schema (reading it from the
// warehouse on the tenant's first use); nil when no relation of the
// session's set is kept one schema per tenant, or it has no tenant.
func (r *Rewriter) tenantFor(ctx context.Context, id *policy.Identity) *tenantState {
	if r.tenancy == nil || !r.tenancy.has(id.Kind) || id.Tenant == "" {
		return nil
	}
	ts, err := r.tenancy.src.TenantSchema(ctx, id.Kind, id.Tenant)
	switch {
	case err != nil:
		return &tenantState{key: "\x00unreadable", err: pgerr.New("58000", "this tenant's schema cannot be read from the warehouse").
			WithHint("try again; pgwarden reads a tenant's schema on its first use")}
	case !ts.OK():
		return &tenantState{key: "\x00refused" + strconv.FormatUint(ts.Gen, 10), err: pgerr.New("55000",
			"this tenant's schema does not match the policy's model: %s", strings.Join(ts.Problems, "; ")).
			WithHint("pgwarden policy check --config FILE --catalog lists every tenant schema's differences")}
	}
	return &tenantState{schema: ts.Schema, key: ts.Schema + "\x00" + strconv.FormatUint(ts.Gen, 10)}
}

// relSchema is the schema a relation is read from for this session.
func (p *pass) relSchema(t *relTemplate) string {
	if t.rel.Tenancy == policy.TenancySchema && p.tenant != nil && p.tenant.err == nil {
		return p.tenant.schema
	}
	return t.rel.Schema
}

// tenantReady reports whether t can be read by this session, failing the
// pass (at loc) when it is a schema-per-tenant relation the tenant's schema
// cannot serve.
func (p *pass) tenantReady(t *relTemplate, loc int32) bool {
	if t.rel.Tenancy != policy.TenancySchema {
		return true
	}
	if p.tenant == nil {
		p.fail(p.at(errDenied(t.rel.Name), loc))
		return false
	}
	if p.tenant.err != nil {
		e := *p.tenant.err
		p.fail(p.at(&e, loc))
		return false
	}
	return true
}

// tenantServes reports whether the session's tenant schema serves t (true
// for relations of other models): the catalog lists only what it serves.
func (p *pass) tenantServes(t *relTemplate) bool {
	return t.rel.Tenancy != policy.TenancySchema || (p.tenant != nil && p.tenant.err == nil)
}

// namespaceSQL is the body of the virtualized pg_namespace (from is " FROM
// pg_catalog.pg_namespace WHERE ", where its visibility condition). For a
// session served from a tenant schema, that schema is named as the logical
// one, and the warehouse's own logical schema (public, which initdb
// creates) is hidden unless a relation of another model lives there, so
// that the logical name lists once, for the tenant's schema.
func (p *pass) namespaceSQL(name, from, where string) string {
	ts := p.r.pol.TenantSchemasFor(p.id.Kind)
	if p.tenant == nil || p.tenant.err != nil || ts == nil {
		return "SELECT " + p.selectList(name, nil) + from + where
	}
	hide := " AND nspname <> " + sqlLit(ts.Logical)
	for _, vw := range p.visible().rels {
		if vw.t.rel.Tenancy != policy.TenancySchema && vw.t.rel.Schema == ts.Logical {
			hide = ""
		}
	}
	cols := p.selectList(name, func(c policy.Column) string {
		if c.Name == "nspname" {
			return "CASE WHEN nspname = " + sqlLit(p.tenant.schema) + " THEN " + sqlLit(ts.Logical) + "::pg_catalog.name ELSE nspname END"
		}
		return ""
	})
	return "SELECT " + cols + from + "(" + where + ")" + hide
}

// tenantTableVisible makes pg_table_is_visible answer true for the
// tenant's relations that the policy's search_path would find by their
// unqualified name: the warehouse's own search_path does not include the
// tenant's schema. n is the call (its oid argument already rewritten).
func (p *pass) tenantTableVisible(n *pg_query.Node, fc *pg_query.FuncCall, name string) {
	if name != "pg_table_is_visible" || len(fc.Args) != 1 || p.tenant == nil || p.tenant.err != nil {
		return
	}
	var rels [][2]string
	for _, vw := range p.visible().rels {
		t := vw.t
		if t.rel.Tenancy != policy.TenancySchema {
			continue
		}
		for _, sp := range p.r.pol.SearchPath {
			if first := p.tmpl[sp+"."+t.rel.Name]; first != nil {
				if first == t {
					rels = append(rels, [2]string{p.tenant.schema, t.rel.Name})
				}
				break
			}
		}
	}
	if len(rels) == 0 {
		return
	}
	arg := proto.Clone(fc.Args[0]).(*pg_query.Node)
	call := &pg_query.Node{Node: n.Node}
	n.Node = orExpr(call, oidAny(arg, rels)).Node
}

// schemaNameColumns are the catalog views that name schemas in text, with
// their columns (PostgreSQL 12 to 17) and the one that names the schema:
// for a session served from a tenant schema, they name it as the logical
// one. Views that name schemas in other columns too (constraints, index
// definitions) keep the physical name: see the README's limits.
var schemaNameColumns = map[string]struct {
	cols   []string
	schema string
}{
	"tables": {[]string{"table_catalog", "table_schema", "table_name", "table_type", "self_referencing_column_name",
		"reference_generation", "user_defined_type_catalog", "user_defined_type_schema", "user_defined_type_name",
		"is_insertable_into", "is_typed", "commit_action"}, "table_schema"},
	"columns": {[]string{"table_catalog", "table_schema", "table_name", "column_name", "ordinal_position", "column_default",
		"is_nullable", "data_type", "character_maximum_length", "character_octet_length", "numeric_precision",
		"numeric_precision_radix", "numeric_scale", "datetime_precision", "interval_type", "interval_precision",
		"character_set_catalog", "character_set_schema", "character_set_name", "collation_catalog", "collation_schema",
		"collation_name", "domain_catalog", "domain_schema", "domain_name", "udt_catalog", "udt_schema", "udt_name",
		"scope_catalog", "scope_schema", "scope_name", "maximum_cardinality", "dtd_identifier", "is_self_referencing",
		"is_identity", "identity_generation", "identity_start", "identity_increment", "identity_maximum",
		"identity_minimum", "identity_cycle", "is_generated", "generation_expression", "is_updatable"}, "table_schema"},
	"schemata": {[]string{"catalog_name", "schema_name", "schema_owner", "default_character_set_catalog",
		"default_character_set_schema", "default_character_set_name", "sql_path"}, "schema_name"},
	"element_types": {[]string{"object_catalog", "object_schema", "object_name", "object_type", "collection_type_identifier",
		"data_type", "character_maximum_length", "character_octet_length", "character_set_catalog", "character_set_schema",
		"character_set_name", "collation_catalog", "collation_schema", "collation_name", "numeric_precision",
		"numeric_precision_radix", "numeric_scale", "datetime_precision", "interval_type", "interval_precision",
		"domain_default", "udt_catalog", "udt_schema", "udt_name", "scope_catalog", "scope_schema", "scope_name",
		"maximum_cardinality", "dtd_identifier"}, "object_schema"},
	"pg_tables": {[]string{"schemaname", "tablename", "tableowner", "tablespace", "hasindexes", "hasrules",
		"hastriggers", "rowsecurity"}, "schemaname"},
	"pg_indexes": {[]string{"schemaname", "tablename", "indexname", "tablespace", "indexdef"}, "schemaname"},
}

// logicalSchemaNames wraps the body of the virtualized catalog view name so
// that it names the session's tenant schema as the logical one.
func (p *pass) logicalSchemaNames(name string, info bool, body string) string {
	ts := p.r.pol.TenantSchemasFor(p.id.Kind)
	spec, ok := schemaNameColumns[name]
	if !ok || info != (name != "pg_tables" && name != "pg_indexes") || p.tenant == nil || p.tenant.err != nil || ts == nil {
		return body
	}
	cols := make([]string, len(spec.cols))
	for i, c := range spec.cols {
		cols[i] = c
		if c == spec.schema {
			cols[i] = "CASE WHEN " + c + " = " + sqlLit(p.tenant.schema) + " THEN " + sqlLit(ts.Logical) + " ELSE " + c + " END AS " + c
		}
	}
	return "SELECT " + strings.Join(cols, ", ") + " FROM (" + body + ") v"
}

// logicalNamespace makes 'public'::regnamespace (the logical schema, named
// in a constant) the tenant's schema, as pg_namespace names it public.
func (p *pass) logicalNamespace(typ string, tc *pg_query.TypeCast) {
	ts := p.r.pol.TenantSchemasFor(p.id.Kind)
	c := tc.Arg.GetAConst()
	if typ != "regnamespace" || c == nil || c.GetSval() == nil || p.tenant == nil || p.tenant.err != nil || ts == nil {
		return
	}
	if parts, ok := parseQualifiedName(c.GetSval().Sval); ok && len(parts) == 1 && parts[0] == ts.Logical {
		tc.Arg = strConst(quoteIdent(p.tenant.schema))
	}
}
