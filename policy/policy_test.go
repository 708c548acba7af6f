package policy

import (
	"strings"
	"testing"
)

const base = `
tenants: [acme, globex]
groups: [pii]
relations:
  public.orders:
    tenant_column: tenant_id
`

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown top-level field", "relationz: {}\n", `policy.yaml: line 1: unknown field "relationz"`},
		{"no relations", "search_path: [public]\n", `policy.yaml: relations: no relations listed`},
		{"test tenant not a tenant", "tenants: [acme]\ntest_tenants: [globex]\nrelations:\n  public.p: {shared: true}\n",
			`policy.yaml: test_tenants[0]: "globex" is not one of tenants`},
		{"unknown relation field", "relations:\n  public.orders: {tenant_colum: x}\n",
			`policy.yaml: line 2: unknown field "tenant_colum"`},
		{"missing tenant column", "relations:\n  public.orders: {published: true}\n",
			`policy.yaml: relations."public.orders".tenant_column: missing (or set shared: true)`},
		{"shared with tenant column", "relations:\n  public.p: {shared: true, tenant_column: t}\n",
			`policy.yaml: relations."public.p": shared relations have no tenant_column`},
		{"bad relation name", "relations:\n  a.b.c: {shared: true}\n",
			`policy.yaml: relations."a.b.c": bad relation name (want schema.name)`},
		{"unknown mask", base + "    columns:\n      email: {mask: emial}\n",
			`policy.yaml: relations."public.orders".columns.email.mask: unknown mask "emial" (want null, redact, hash, email, last4, partial or sql)`},
		{"deny and mask", base + "    columns:\n      email: {mask: email, deny: true}\n",
			`policy.yaml: relations."public.orders".columns.email.mask: a denied column cannot also be masked`},
		{"neither deny nor mask", base + "    columns:\n      email: {unless_groups: [pii]}\n",
			`policy.yaml: relations."public.orders".columns.email.mask: missing (want deny: true or a mask)`},
		{"unknown group", base + "    columns:\n      email: {mask: email, unless_groups: [pi]}\n",
			`policy.yaml: relations."public.orders".columns.email.unless_groups[0]: unknown group "pi"`},
		{"partial without keep", base + "    columns:\n      email: {mask: partial}\n",
			`policy.yaml: relations."public.orders".columns.email.keep_first: partial needs keep_first and/or keep_last > 0`},
		{"sql mask without sql", base + "    columns:\n      email: {mask: sql}\n",
			`policy.yaml: relations."public.orders".columns.email.sql: missing expression for the sql mask`},
		{"sql mask placeholder", base + "    columns:\n      email: {mask: sql, sql: \"{{tenant}}\"}\n",
			`policy.yaml: relations."public.orders".columns.email.sql: placeholder {{tenant}} not allowed here`},
		{"deny tenant column", base + "    columns:\n      tenant_id: {deny: true}\n",
			`policy.yaml: relations."public.orders".columns.tenant_id.deny: the tenant column cannot be denied`},
		{"filter parse error", base + "    filters:\n      - sql: \"region = = 1\"\n",
			`policy.yaml: relations."public.orders".filters[0].sql: parse error: syntax error at or near "="`},
		{"filter unknown placeholder", base + "    filters:\n      - sql: \"region = {{regions}}\"\n",
			`policy.yaml: relations."public.orders".filters[0].sql: unknown placeholder {{regions}} (want tenant, external_id, email, groups or attr.NAME)`},
		{"filter subquery", base + "    filters:\n      - sql: \"region IN (SELECT r FROM x)\"\n",
			`policy.yaml: relations."public.orders".filters[0].sql: SubLink is not allowed in policy expressions`},
		{"filter other relation column", base + "    filters:\n      - sql: \"x.region = 'EU'\"\n",
			`policy.yaml: relations."public.orders".filters[0].sql: only plain column names of the relation may be referenced`},
		{"filter function", base + "    filters:\n      - sql: \"pg_sleep(1) IS NULL\"\n",
			`policy.yaml: relations."public.orders".filters[0].sql: function pg_sleep is not allowed`},
		{"filter set_config", base + "    filters:\n      - sql: \"set_config('a','b',false) = 'b'\"\n",
			`policy.yaml: relations."public.orders".filters[0].sql: function set_config is not allowed`},
		{"filter aggregate", base + "    filters:\n      - sql: \"count(*) > 1\"\n",
			`policy.yaml: relations."public.orders".filters[0].sql: aggregate and window functions are not allowed in policy expressions`},
		{"filter two expressions", base + "    filters:\n      - sql: \"1, 2\"\n",
			`policy.yaml: relations."public.orders".filters[0].sql: want exactly one expression`},
		{"filter injection", base + "    filters:\n      - sql: \"true; DROP TABLE x\"\n",
			`policy.yaml: relations."public.orders".filters[0].sql: want exactly one expression`},
		{"filter param", base + "    filters:\n      - sql: \"region = $1\"\n",
			`policy.yaml: relations."public.orders".filters[0].sql: parameter $1 not allowed (use {{...}} placeholders)`},
		{"when_absent", base + "    filters:\n      - sql: \"true\"\n        when_absent: never\n",
			`policy.yaml: relations."public.orders".filters[0].when_absent: unknown value "never" (want no_rows or ignore)`},
		{"denied function in allow", "functions: {allow: [pg_sleep]}\n" + base,
			`policy.yaml: functions.allow[0]: function "pg_sleep" can never be allowed`},
		{"internal relation", base + "internal:\n  relations:\n    public.x: {}\n",
			`policy.yaml: internal.relations."public.x".tenant_column: missing (or set shared: true)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "policy.yaml")
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n got: %s\nwant: %s", err, tc.want)
			}
		})
	}
}

func TestParseDemo(t *testing.T) {
	p, err := Load("../testdata/demo/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := p.SearchPath; len(got) != 1 || got[0] != "public" {
		t.Errorf("search_path = %v", got)
	}
	if !p.KnowsTenant("acme") || p.KnowsTenant("umbrella") || p.KnowsTenant("") {
		t.Error("KnowsTenant")
	}
	if !p.KnowsGroup("pii") || p.KnowsGroup("admins") {
		t.Error("KnowsGroup")
	}
	o := p.Relations["public.orders"]
	if o == nil || o.TenantColumn != "tenant_id" || !o.Published || len(o.Filters) != 1 {
		t.Fatalf("orders = %+v", o)
	}
	f := o.Filters[0]
	if f.WhenAbsent != AbsentIgnore || len(f.Placeholders) != 1 || f.Placeholders[0].Kind != PlaceAttr ||
		f.Placeholders[0].Attr != "regions" || strings.Join(f.Columns, ",") != "region" {
		t.Errorf("filter = %+v", f)
	}
	c := p.Relations["public.customers"].Columns
	if c["email"].Mask.Kind != MaskEmail || !c["phone"].Deny {
		t.Errorf("customers columns = %+v", c)
	}
	if p.RelationsFor(KindInternal)["public.internal_costs"] == nil || p.RelationsFor(KindEmbed)["public.internal_costs"] != nil {
		t.Error("internal_costs must be internal only")
	}
	if len(p.Version()) != 32 {
		t.Errorf("version %q", p.Version())
	}
	// Renaming a group everywhere keeps the policy valid and changes its content.
	p2, err := Parse([]byte(strings.ReplaceAll(string(mustRead(t, "../testdata/demo/policy.yaml")), "pii", "pii2")), "x")
	if err != nil {
		t.Fatalf("demo policy with pii renamed: %v", err)
	}
	if p2.Version() == p.Version() {
		t.Error("version must change with content")
	}
}

func TestEmptyListsKnowEverything(t *testing.T) {
	p, err := Parse([]byte("relations:\n  public.p: {shared: true}\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !p.KnowsTenant("anyone") || !p.KnowsGroup("anything") || p.KnowsTenant("") {
		t.Error("empty lists must accept every non-empty name")
	}
}

func TestFunctionAllowed(t *testing.T) {
	p, err := Parse([]byte("functions: {allow: [my_udf, analytics.score]}\nrelations:\n  public.p: {shared: true}\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		schema, name string
		want         bool
	}{
		{"", "count", true}, {"pg_catalog", "count", true}, {"", "my_udf", true}, {"analytics", "score", true},
		{"", "score", false}, {"public", "count", false}, {"", "pg_sleep", false}, {"pg_catalog", "pg_read_file", false},
		{"", "query_to_xml", false}, {"", "dblink", false},
	} {
		if got := p.FunctionAllowed(tc.schema, tc.name); got != tc.want {
			t.Errorf("FunctionAllowed(%q, %q) = %v", tc.schema, tc.name, got)
		}
	}
}

func TestCheckCatalog(t *testing.T) {
	p, err := Parse([]byte(base+"    filters:\n      - sql: \"regio = 'EU'\"\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cat := NewCatalog(CatalogRelation{Schema: "public", Name: "orders", Columns: []Column{
		{Name: "tenant_id", Type: "text", Ordinal: 1}, {Name: "region", Type: "text", Ordinal: 2}}})
	want := `p.yaml: relations."public.orders".filters[0].sql: column "regio" does not exist`
	if err := p.Check(cat); err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	if err := p.Check(NewCatalog()); err == nil || err.Error() != `p.yaml: relations."public.orders": relation does not exist in the warehouse` {
		t.Errorf("got %v", err)
	}
}

func TestNullMaskIsNotYAMLNull(t *testing.T) {
	p, err := Parse([]byte(base+"    columns:\n      a: {mask: null}\n      b: {mask: ~}\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"a", "b"} {
		if m := p.Relations["public.orders"].Columns[c].Mask; m == nil || m.Kind != MaskNull {
			t.Errorf("%s: mask = %+v", c, m)
		}
	}
	if _, err := Parse([]byte(base+"    columns:\n      a: {mask: }\n"), "p.yaml"); err == nil {
		t.Error("empty mask accepted")
	}
}
