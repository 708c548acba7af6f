package main

import (
	"strings"
	"testing"

	"github.com/pgwarden/pgwarden/policy"
)

func TestExplainTenancy(t *testing.T) {
	p, err := policy.Parse([]byte(`
row_security:
  role: "tenant_{{tenant}}"
  settings: { prefix: app, claims: request.jwt.claims }
relations:
  public.orders: { tenant_column: tenant_id }
  public.docs: { tenancy: passthrough, tenant_column: tenant_id }
  public.notes: { tenancy: passthrough, rewrite: false }
`), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	id := &policy.Identity{Tenant: "acme", Role: policy.RoleQuerier, Kind: policy.KindEmbed}
	var b strings.Builder
	explainTenancy(&b, p, id, []string{"public.orders", "public.docs", "public.notes"})
	if err := explainRowSecurity(&b, p, id); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"public.orders: row tenancy (tenant_id = 'acme')",
		"public.docs: passthrough (the warehouse's row security, and pgwarden's fence as above)",
		"public.notes: passthrough (the warehouse's row security alone; not rewritten)",
		"-- runs as role tenant_acme\n",
		"-- with app.tenant = 'acme'\n",
		`-- with request.jwt.claims = '{"tenant":"acme"`,
		"-- SELECT pg_catalog.set_config('role', 'tenant_acme', false), pg_catalog.set_config('app.tenant', 'acme', false)",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("explain output lacks %q:\n%s", want, b.String())
		}
	}
}
