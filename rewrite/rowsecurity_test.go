package rewrite

import (
	"context"
	"strings"
	"testing"

	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
)

// With pass-through row security, what would undo the role and settings
// pgwarden sets is refused; without it, RESET ALL and DISCARD ALL run.
func TestRowSecurityStatements(t *testing.T) {
	cat := catalogFromDDL(t, "CREATE TABLE docs (tenant_id text, body text); CREATE TABLE notes (note text);")
	build := func(yaml string) *Rewriter {
		p, err := policy.Parse([]byte(yaml), "policy.yaml")
		if err != nil {
			t.Fatal(err)
		}
		rw, err := New(p, cat, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return rw
	}
	plain := build("relations:\n  public.docs: {tenant_column: tenant_id}\n  public.notes: {shared: true}\n")
	rls := build(`row_security: {role: "t_{{tenant}}", settings: {prefix: app, claims: request.jwt.claims}}
relations:
  public.docs: {tenancy: passthrough, tenant_column: tenant_id}
  public.notes: {tenancy: passthrough, rewrite: false}
`)
	id := &policy.Identity{Tenant: "acme", Role: policy.RoleQuerier, Kind: policy.KindEmbed}
	ctx := context.Background()
	for _, sql := range []string{"RESET ALL", "DISCARD ALL"} {
		if _, err := plain.Rewrite(ctx, sql, id); err != nil {
			t.Errorf("%s without row security: %v", sql, err)
		}
		_, err := rls.Rewrite(ctx, sql, id)
		if pe, ok := err.(*pgerr.Error); !ok || pe.Code != pgerr.InsufficientPrivilege {
			t.Errorf("%s with row security: %v, want 42501", sql, err)
		}
	}
	for _, sql := range []string{"SET ROLE t_globex", "RESET ROLE", "SET app.tenant = 'globex'", "RESET app.tenant",
		"SET request.jwt.claims = '{}'", "SELECT set_config('app.tenant', 'globex', true)", "SELECT current_setting('app.tenant')",
		"SET SESSION AUTHORIZATION DEFAULT"} {
		_, err := rls.Rewrite(ctx, sql, id)
		if pe, ok := err.(*pgerr.Error); !ok || pe.Code != pgerr.InsufficientPrivilege {
			t.Errorf("%s: %v, want 42501", sql, err)
		}
	}
	for _, sql := range []string{"DISCARD PLANS", "RESET work_mem"} {
		if _, err := rls.Rewrite(ctx, sql, id); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
	// rewrite: false leaves the relation to the warehouse; the fenced one
	// keeps pgwarden's tenant filter as well.
	res, err := rls.Rewrite(ctx, "SELECT note FROM notes", id)
	if err != nil || res.SQL != "SELECT note FROM public.notes" {
		t.Errorf("rewrite: false: %v %q", err, res.SQL)
	}
	res, err = rls.Rewrite(ctx, "SELECT body FROM docs", id)
	if err != nil || !strings.Contains(res.SQL, "tenant_id = 'acme'") {
		t.Errorf("passthrough with rewriting: %v %q", err, res.SQL)
	}
}
