package policy

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	pg_query "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgwarden/pgwarden/internal/pgtest"
)

const rlsBase = `
row_security:
  role: "tenant_{{tenant}}"
  settings: { prefix: app, claims: request.jwt.claims }
relations:
`

func TestRowSecurityParseErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"empty block", "row_security: {}\nrelations:\n  public.o: {shared: true}\n",
			`policy.yaml: row_security: set role, settings.prefix or settings.claims (what the warehouse's policies read)`},
		{"unknown placeholder", "row_security: {role: \"t_{{tenent}}\"}\nrelations:\n  public.o: {shared: true}\n",
			`policy.yaml: row_security.role: unknown placeholder {{tenent}} (want tenant, role or external_id)`},
		{"reserved prefix", "row_security: {settings: {prefix: pgwarden}}\nrelations:\n  public.o: {shared: true}\n",
			`policy.yaml: row_security.settings.prefix: "pgwarden" is not a custom setting prefix (lowercase letters, digits, _; not pgwarden or pg)`},
		{"claims without prefix", "row_security: {settings: {claims: claims}}\nrelations:\n  public.o: {shared: true}\n",
			`policy.yaml: row_security.settings.claims: "claims" is not a custom setting name (prefix.name, lowercase)`},
		{"claims clash", "row_security: {settings: {prefix: app, claims: app.tenant}}\nrelations:\n  public.o: {shared: true}\n",
			`policy.yaml: row_security.settings.claims: "app.tenant" is one of the prefix's own settings`},
		{"passthrough without block", "relations:\n  public.o: {tenancy: passthrough}\n",
			`policy.yaml: relations."public.o".tenancy: passthrough needs the policy's row_security block (what the warehouse's policies read)`},
		{"unknown tenancy", rlsBase + "  public.o: {tenancy: rows}\n",
			`policy.yaml: relations."public.o".tenancy: unknown value "rows" (want column, schema or passthrough)`},
		{"rewrite off for column tenancy", rlsBase + "  public.o: {tenant_column: t, rewrite: false}\n",
			`policy.yaml: relations."public.o".rewrite: only passthrough relations can turn pgwarden's rewriting off`},
		{"rewrite off with rules", rlsBase + "  public.o: {tenancy: passthrough, rewrite: false, tenant_column: t}\n",
			`policy.yaml: relations."public.o".rewrite: a relation pgwarden does not rewrite has no tenant_column, filters or columns`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "policy.yaml")
			if err == nil || err.Error() != tc.want {
				t.Errorf("error:\n got: %v\nwant: %s", err, tc.want)
			}
		})
	}
}

func TestRowSecurityRelations(t *testing.T) {
	p, err := Parse([]byte(rlsBase+`  public.a: {tenancy: passthrough, tenant_column: tenant_id}
  public.b: {tenancy: passthrough}
  public.c: {tenancy: passthrough, rewrite: false}
  public.d: {tenant_column: tenant_id}
`), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]Relation{
		"public.a": {Tenancy: TenancyPassthrough, Rewrite: true, TenantColumn: "tenant_id"},
		"public.b": {Tenancy: TenancyPassthrough, Rewrite: true, Shared: true},
		"public.c": {Tenancy: TenancyPassthrough, Rewrite: false, Shared: true},
		"public.d": {Tenancy: TenancyColumn, Rewrite: true, TenantColumn: "tenant_id"},
	} {
		r := p.Relations[name]
		if r.Tenancy != want.Tenancy || r.Rewrite != want.Rewrite || r.Shared != want.Shared || r.TenantColumn != want.TenantColumn {
			t.Errorf("%s: tenancy %s rewrite %v shared %v tenant_column %q, want %+v", name, r.Tenancy, r.Rewrite, r.Shared, r.TenantColumn, want)
		}
	}
}

// The statements pgwarden runs are built from the session's values: they
// must parse as exactly the calls intended, whatever the values hold.
func TestRowSecuritySQL(t *testing.T) {
	rs := &RowSecurity{RoleTemplate: "t_{{tenant}}_{{role}}", Prefix: "app", Claims: "request.jwt.claims"}
	id := &Identity{Tenant: "o'brien", ExternalID: `x\'); DROP TABLE t; --`, Email: "a@b", Groups: []string{"g'1"},
		Attributes: map[string][]string{"regions": {"EU"}}, Role: RoleQuerier, Kind: KindEmbed}
	s, err := rs.For(id)
	if err != nil {
		t.Fatal(err)
	}
	if s.Role != "t_o'brien_querier" {
		t.Errorf("role %q", s.Role)
	}
	want := map[string]string{"app.tenant": "o'brien", "app.external_id": id.ExternalID, "app.email": "a@b",
		"app.groups": `["g'1"]`, "app.role": "querier",
		"request.jwt.claims": `{"tenant":"o'brien","sub":"x\\'); DROP TABLE t; --","email":"a@b","groups":["g'1"],"attributes":{"regions":["EU"]},"role":"t_o'brien_querier","connection_role":"querier","kind":"embed"}`}
	if len(s.Settings) != len(want) {
		t.Fatalf("settings %v", s.Settings)
	}
	for _, st := range s.Settings {
		if want[st.Name] != st.Value {
			t.Errorf("%s = %q, want %q", st.Name, st.Value, want[st.Name])
		}
	}
	for _, sql := range []string{s.SetSQL(), s.ResetSQL()} {
		tree, err := pg_query.Parse(sql)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if len(tree.Stmts) != 1 {
			t.Errorf("%s: %d statements, want 1", sql, len(tree.Stmts))
		}
	}
	// Every value comes back as the argument of its set_config call.
	tree, _ := pg_query.Parse(s.SetSQL())
	sel := tree.Stmts[0].Stmt.GetSelectStmt()
	got := map[string]string{}
	for _, tgt := range sel.TargetList {
		args := tgt.GetResTarget().Val.GetFuncCall().Args
		got[args[0].GetAConst().GetSval().Sval] = args[1].GetAConst().GetSval().Sval
	}
	want["role"] = s.Role
	for k, v := range want {
		if got[k] != v {
			t.Errorf("SetSQL sets %s to %q, want %q", k, got[k], v)
		}
	}
	if n := strings.Count(s.ResetSQL(), "set_config("); n != 7 {
		t.Errorf("ResetSQL resets %d settings, want 7", n)
	}
	// A role name PostgreSQL would truncate is refused.
	if _, err := rs.For(&Identity{Tenant: strings.Repeat("x", 60), Role: RoleQuerier}); err == nil {
		t.Error("a 70-byte role name was accepted")
	}
}

// LoadCatalog, read as the service account, refuses passthrough relations
// the warehouse would not guard.
func TestCheckRowSecurity(t *testing.T) {
	u := pgtest.NewDatabase(t, `
CREATE TABLE guarded (tenant_id text); ALTER TABLE guarded ENABLE ROW LEVEL SECURITY;
CREATE TABLE open_table (tenant_id text);
CREATE VIEW a_view AS SELECT * FROM guarded;`)
	ctx := context.Background()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	db := strings.TrimPrefix(pu.Path, "/")
	svc := db + "_rlscheck"
	admin, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD 'x'; GRANT CONNECT ON DATABASE %s TO %s; CREATE TABLE owned (t text); ALTER TABLE owned OWNER TO %s; ALTER TABLE owned ENABLE ROW LEVEL SECURITY", svc, db, svc, svc)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a, err := pgx.Connect(context.Background(), u)
		if err == nil {
			a.Exec(context.Background(), "DROP TABLE owned; DROP ROLE "+svc)
			a.Close(context.Background())
		}
	})
	pu.User = url.UserPassword(svc, "x")
	load := func(conn *pgx.Conn, rel string) error {
		p, err := Parse([]byte(rlsBase+"  public."+rel+": {tenancy: passthrough, rewrite: false}\n"), "p.yaml")
		if err != nil {
			t.Fatal(err)
		}
		_, err = LoadCatalog(ctx, conn, p)
		return err
	}
	svcConn, err := pgx.Connect(ctx, pu.String())
	if err != nil {
		t.Fatal(err)
	}
	defer svcConn.Close(ctx)
	if err := load(svcConn, "guarded"); err != nil {
		t.Errorf("guarded table: %v", err)
	}
	for rel, want := range map[string]string{
		"open_table": "row-level security is not enabled on it",
		"a_view":     "passthrough needs a table",
		"owned":      "the service account owns it",
	} {
		if err := load(svcConn, rel); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", rel, err, want)
		}
	}
	if err := load(admin, "guarded"); err == nil || !strings.Contains(err.Error(), "superuser or has BYPASSRLS") {
		t.Errorf("as a superuser: %v", err)
	}
}
