package policy

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

const tenancyBase = `
tenant_schemas: { physical: "tenant_{{tenant}}", map: { initech: initech_prod, evil: pg_catalog } }
relations:
  public.orders: { tenancy: schema }
  shared.products: { shared: true }
  shared.events: { tenant_column: tenant_id }
`

func TestTenancyParseErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"schema without block", "relations:\n  public.orders: {tenancy: schema}\n",
			`policy.yaml: relations."public.orders".tenancy: schema needs a tenant_schemas block`},
		{"schema with tenant column", "tenant_schemas: {physical: \"t_{{tenant}}\"}\nrelations:\n  public.orders: {tenancy: schema, tenant_column: t}\n",
			`policy.yaml: relations."public.orders".tenant_column: a relation kept one schema per tenant has no tenant column`},
		{"schema and shared", "tenant_schemas: {physical: \"t_{{tenant}}\"}\nrelations:\n  public.orders: {tenancy: schema, shared: true}\n",
			`policy.yaml: relations."public.orders".tenancy: a shared relation has no tenancy`},
		{"not under the logical schema", "tenant_schemas: {physical: \"t_{{tenant}}\"}\nrelations:\n  app.orders: {tenancy: schema}\n",
			`policy.yaml: relations."app.orders".tenancy: schema-per-tenant relations are declared under the logical schema "public"`},
		{"unknown tenancy", "relations:\n  public.orders: {tenancy: rows, tenant_column: t}\n",
			`policy.yaml: relations."public.orders".tenancy: unknown value "rows" (want column, schema or passthrough)`},
		{"template without placeholder", "tenant_schemas: {physical: tenants}\nrelations:\n  public.orders: {tenancy: schema}\n",
			`policy.yaml: tenant_schemas.physical: the template must contain {{tenant}}`},
		{"template with another placeholder", "tenant_schemas: {physical: \"{{tenant}}_{{email}}\"}\nrelations:\n  public.orders: {tenancy: schema}\n",
			`policy.yaml: tenant_schemas.physical: only the {{tenant}} placeholder is allowed`},
		{"empty block", "tenant_schemas: {logical: app}\nrelations:\n  app.orders: {tenancy: schema}\n",
			`policy.yaml: tenant_schemas: want physical (a template with {{tenant}}) and/or map`},
		{"one schema for two tenants", "tenant_schemas: {map: {a: s, b: s}}\nrelations:\n  public.orders: {tenancy: schema}\n",
			`policy.yaml: tenant_schemas.map."b": schema "s" is also tenant "a"'s`},
		{"column tenancy without column", "relations:\n  public.orders: {tenancy: column}\n",
			`policy.yaml: relations."public.orders".tenant_column: missing (or set shared: true)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "policy.yaml")
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got %v\nwant %s", err, tt.want)
			}
		})
	}
}

// SchemaFor: the map first, then the template; never a schema the map
// gives another tenant, the model, the logical schema, another relation's
// schema, a system schema or a name PostgreSQL would truncate.
func TestTenantSchemaFor(t *testing.T) {
	p, err := Parse([]byte(tenancyBase), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ts := p.TenantSchemasFor(KindEmbed)
	if p.TenantSchemasFor(KindInternal) != ts {
		t.Error("internal sessions without a block of their own use the top-level one")
	}
	for tenant, want := range map[string]string{
		"acme": "tenant_acme", "initech": "initech_prod", "Acme Corp": "tenant_Acme Corp",
		"evil": "", "": "", strings.Repeat("x", 60): "",
		// Names that a template would turn into schemas kept for others.
		"initech_prod": "tenant_initech_prod",
	} {
		got, ok := ts.SchemaFor(tenant)
		if (want == "") == ok || got != want && ok {
			t.Errorf("SchemaFor(%q) = %q, %v; want %q", tenant, got, ok, want)
		}
	}
	p2, err := Parse([]byte("tenant_schemas: {physical: \"{{tenant}}\", map: {a: x}}\nrelations:\n  public.orders: {tenancy: schema}\n  shared.p: {shared: true}\n"), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tenant := range []string{"public", "shared", "x", "pg_catalog", "pg_toast", "information_schema"} {
		if s, ok := p2.TenantSchemas.SchemaFor(tenant); ok {
			t.Errorf("tenant %q gets schema %q, which is kept for something else", tenant, s)
		}
	}
	if s, ok := p2.TenantSchemas.SchemaFor("a"); !ok || s != "x" {
		t.Errorf("mapped tenant a: %q %v", s, ok)
	}
}

// The model's shape is compared column by column, in order, with types.
func TestCompareTenantSchema(t *testing.T) {
	p, err := Parse([]byte("tenant_schemas: {physical: \"t_{{tenant}}\"}\nrelations:\n  public.orders: {tenancy: schema}\n  public.items: {tenancy: schema}\n"), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cols := []Column{{Name: "id", Type: "integer", Ordinal: 1}, {Name: "amount", Type: "numeric(12,2)", Ordinal: 2}}
	model := NewCatalog(CatalogRelation{Schema: "public", Name: "orders", Columns: cols}, CatalogRelation{Schema: "public", Name: "items", Columns: cols[:1]})
	same := []CatalogRelation{{Name: "orders", Columns: cols}, {Name: "items", Columns: cols[:1]}, {Name: "extra"}}
	if got := p.CompareTenantSchema(KindEmbed, model, same); len(got) != 0 {
		t.Errorf("same shape: %v", got)
	}
	other := []CatalogRelation{{Name: "orders", Columns: []Column{cols[1], cols[0]}}}
	got := strings.Join(p.CompareTenantSchema(KindEmbed, model, other), "\n")
	want := "relation items is missing\nrelation orders: columns (amount numeric(12,2), id integer), want (id integer, amount numeric(12,2))"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// A burst of sessions of a new tenant reads its schema once; a schema found
// missing is read again only after the retry interval; a good one is kept.
func TestTenantCatalogReads(t *testing.T) {
	p, err := Parse([]byte("tenant_schemas: {physical: \"t_{{tenant}}\"}\nrelations:\n  public.orders: {tenancy: schema}\n"), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cols := []Column{{Name: "id", Type: "integer", Ordinal: 1}}
	model := NewCatalog(CatalogRelation{Schema: "public", Name: "orders", Columns: cols})
	var mu sync.Mutex
	reads := map[string]int{}
	exists := map[string]bool{"t_acme": true}
	release := make(chan struct{})
	load := func(ctx context.Context, schema string, names []string) ([]CatalogRelation, bool, error) {
		<-release
		mu.Lock()
		defer mu.Unlock()
		reads[schema]++
		if !exists[schema] {
			return nil, false, nil
		}
		return []CatalogRelation{{Schema: schema, Name: "orders", Columns: cols}}, true, nil
	}
	now := time.Unix(0, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	tc, err := NewTenantCatalog(p, model, load, time.Minute, clock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ts, err := tc.TenantSchema(context.Background(), KindEmbed, "acme")
			if err != nil || !ts.OK() || ts.Schema != "t_acme" || ts.Tenant != "acme" {
				t.Errorf("acme: %+v %v", ts, err)
			}
		}()
	}
	close(release)
	wg.Wait()
	get := func(tenant string) *TenantSchema {
		ts, err := tc.TenantSchema(context.Background(), KindEmbed, tenant)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	get("acme")
	if ts := get("new"); ts.OK() || ts.Problems[0] != "schema t_new does not exist in the warehouse" {
		t.Fatalf("missing schema: %+v", ts)
	}
	mu.Lock()
	exists["t_new"] = true
	mu.Unlock()
	if get("new").OK() {
		t.Fatal("a missing schema was read again before the retry interval")
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if ts := get("new"); !ts.OK() {
		t.Fatalf("after the retry interval: %+v", ts)
	}
	get("acme")
	mu.Lock()
	defer mu.Unlock()
	if reads["t_acme"] != 1 || reads["t_new"] != 2 {
		t.Errorf("reads %v, want t_acme 1 and t_new 2", reads)
	}
}
