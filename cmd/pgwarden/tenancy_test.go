package main

import (
	"os"
	"strings"
	"testing"
)

// checkTenancyDemo runs the demo's schema-per-tenant suggestions on the
// saas warehouse as acme and globex, and explain and policy check on it
// (TestDemo calls it with what the running demo printed).
func checkTenancyDemo(t *testing.T, sessions map[string]demoSession, cfgPath string, lines []string) {
	t.Helper()
	out := strings.Join(lines, "\n")
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]map[string]queryCheck{
		"acme": {
			"SELECT count(*) FROM orders;": wantRows("4"),
			"SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 2;": wantRows(
				"public|customers", "public|orders"),
			"SELECT count(*) FROM tenant_globex.orders;": wantSQLState("42501"),
			"SELECT kind FROM shared.events;":            wantRows("login"),
		},
		"globex": {"SELECT count(*) FROM orders;": wantRows("6"), "SELECT kind FROM shared.events;": wantRows("login")},
	}
	for _, q := range demoTenancyQueries {
		if !strings.Contains(out, q.SQL+" ") || !strings.Contains(out, "-- "+q.Shows) {
			t.Errorf("demo did not print %q -- %s", q.SQL, q.Shows)
		}
		if !strings.Contains(string(readme), q.SQL) {
			t.Errorf("README does not suggest %q, which the demo does", q.SQL)
		}
		if checks["acme"][q.SQL] == nil {
			t.Errorf("no check of what %q shows", q.SQL)
		}
	}
	for tenant, qs := range checks {
		s := sessions[tenant]
		s.conninfo = strings.Replace(s.conninfo, "dbname="+demoWarehouse, "dbname="+demoTenancyWarehouse, 1)
		conn := connectDemo(t, s)
		for sql, check := range qs {
			rows, err := runSuggested(conn, sql)
			if err := check(rows, err); err != nil {
				t.Errorf("%s on %s: %s: %v", tenant, demoTenancyWarehouse, sql, err)
			}
		}
	}
	code, got, errOut := runCLI(t, "explain", "--config", cfgPath, "--warehouse", demoTenancyWarehouse, "--tenant", "acme",
		"SELECT o.order_id, e.kind FROM orders o, shared.events e")
	want := "-- tenancy: public.orders: schema per tenant (tenant_acme.orders); shared.events: row tenancy (tenant_id = 'acme')"
	if code != 0 || !strings.Contains(got, want) || !strings.Contains(got, "FROM ONLY tenant_acme.orders") {
		t.Errorf("explain on %s: exit %d\n%s%s\nwant %s", demoTenancyWarehouse, code, got, errOut, want)
	}
	code, got, errOut = runCLI(t, "policy", "check", "--config", cfgPath, "--catalog")
	for _, line := range []string{"tenant acme: schema tenant_acme: ok", "tenant initech: schema initech_prod: ok"} {
		if code != 0 || !strings.Contains(got, "warehouse "+demoTenancyWarehouse+": "+line) {
			t.Errorf("policy check --catalog: exit %d, want %q in\n%s%s", code, line, got, errOut)
		}
	}
}
