package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"go.yaml.in/yaml/v3"
)

// runCLI runs one pgwarden command in-process and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// The operator commands against a running demo: ticket mints sessions with
// other groups and attributes, explain shows rewrites and refusals, policy
// check validates.
func TestCLIAgainstDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster and the whole service")
	}
	sessions, cfgPath, _ := startDemo(t)

	code, out, errOut := runCLI(t, "ticket", "--config", cfgPath, "--tenant", "acme", "--external-id", "alice",
		"--groups", "pii", "--attr", "regions=EU", "--session")
	if code != 0 {
		t.Fatalf("ticket --session: exit %d: %s", code, errOut)
	}
	token := strings.TrimSpace(out)
	if strings.ContainsAny(token, " \n") || strings.Count(token, ".") != 2 {
		t.Fatalf("ticket --session printed %q, want only a token", out)
	}
	conn := connectDemo(t, demoSession{tenant: "acme", password: token,
		conninfo: strings.Replace(sessions["acme"].conninfo, "user=acme", "user=alice", 1)})
	var regions, phone string
	if err := conn.QueryRow(context.Background(), "SELECT string_agg(DISTINCT region, ',') FROM orders").Scan(&regions); err != nil {
		t.Fatal(err)
	}
	if regions != "EU" {
		t.Errorf("regions=EU session sees regions %q", regions)
	}
	if err := conn.QueryRow(context.Background(), "SELECT phone FROM customers WHERE customer_id = 1").Scan(&phone); err != nil {
		t.Fatalf("pii session reading phone: %v", err)
	}
	if phone == "" {
		t.Error("pii session got an empty phone")
	}
	// The demo opens comments for writing, and its service account may write them.
	var author string
	if err := conn.QueryRow(context.Background(), "INSERT INTO comments (order_id, body) VALUES (1, 'from the cli') RETURNING created_by").Scan(&author); err != nil || author != "alice" {
		t.Errorf("insert through the demo: author %q, %v; want alice", author, err)
	}

	// A plain ticket works once as a password.
	code, out, errOut = runCLI(t, "ticket", "--config", cfgPath, "--tenant", "globex", "--external-id", "bob")
	if code != 0 {
		t.Fatalf("ticket: exit %d: %s", code, errOut)
	}
	c2 := connectDemo(t, demoSession{tenant: "globex", password: strings.TrimSpace(out),
		conninfo: sessions["globex"].conninfo})
	var n int
	if err := c2.QueryRow(context.Background(), "SELECT count(*) FROM customers", pgx.QueryExecModeSimpleProtocol).Scan(&n); err != nil || n != 150 {
		t.Errorf("globex via ticket password: %d %v, want 150", n, err)
	}

	code, _, errOut = runCLI(t, "ticket", "--config", cfgPath, "--tenant", "umbrella", "--external-id", "x")
	if code != 1 || !strings.Contains(errOut, "tenant") {
		t.Errorf("ticket for an unknown tenant: exit %d, %q; want exit 1 naming the tenant", code, errOut)
	}

	code, out, errOut = runCLI(t, "explain", "--config", cfgPath, "--warehouse", demoWarehouse, "--tenant", "acme", "SELECT email FROM customers")
	if code != 0 || !strings.Contains(out, "tenant_id = 'acme'") || !strings.Contains(out, "OFFSET 0") {
		t.Errorf("explain: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, "explain", "--config", cfgPath, "--warehouse", demoWarehouse, "--tenant", "acme", "SELECT * FROM internal_costs")
	if code != 1 || !strings.Contains(out, "refused: 42501") {
		t.Errorf("explain of a refused statement: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "explain", "--config", cfgPath, "--warehouse", demoWarehouse, "--tenant", "acme", "--groups", "pii", "SELECT phone FROM customers")
	if code != 0 || !strings.Contains(out, "phone") {
		t.Errorf("explain with pii: exit %d\n%s", code, out)
	}

	if !strings.Contains(out, "public.customers: row tenancy (tenant_id = 'acme')") || strings.Contains(out, "runs as role") {
		t.Errorf("explain names the tenancy model:\n%s", out)
	}
	code, out, _ = runCLI(t, "explain", "--config", cfgPath, "--warehouse", demoRLSWarehouse, "--tenant", "acme", "SELECT count(*) FROM support_tickets")
	if code != 0 || !strings.Contains(out, "public.support_tickets: passthrough") || !strings.Contains(out, "-- runs as role tenant_acme") {
		t.Errorf("explain of a pass-through relation: exit %d\n%s", code, out)
	}

	code, out, errOut = runCLI(t, "policy", "check", "--config", cfgPath, "--catalog")
	if code != 0 || !strings.Contains(out, "ok") {
		t.Errorf("policy check --config --catalog: exit %d %s %s", code, out, errOut)
	}

	// With tenant databases: those tenant_dsns names are checked too.
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	wh := doc["warehouses"].(map[string]any)[demoWarehouse].(map[string]any)
	dsn := wh["dsn"].(string)
	wh["tenant_dsns"] = map[string]any{"acme": dsn, "ghost": strings.Replace(dsn, "/demo?", "/no_such_db?", 1)}
	out2, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	tenantCfg := filepath.Join(filepath.Dir(cfgPath), "tenants.yaml")
	if err := os.WriteFile(tenantCfg, out2, 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(tenantCfg)
	code, out, _ = runCLI(t, "policy", "check", "--config", tenantCfg, "--catalog")
	if code != 1 || !strings.Contains(out, "warehouse analytics: tenant acme's database: ok") ||
		!strings.Contains(out, "warehouse analytics: tenant ghost's database: warehouse analytics: cannot load its catalog") {
		t.Errorf("policy check with tenant databases: exit %d\n%s", code, out)
	}
}

func TestPolicyCheckFile(t *testing.T) {
	code, out, errOut := runCLI(t, "policy", "check", "../../testdata/demo/policy.yaml")
	if code != 0 || !strings.Contains(out, "policy.yaml: ok") {
		t.Errorf("policy check of the demo policy: exit %d %s %s", code, out, errOut)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("relations:\n  public.t: {tenant_column: tenant_id, shared: true}\n"), 0o644)
	code, _, errOut = runCLI(t, "policy", "check", bad)
	if code != 1 || !strings.Contains(errOut, "bad.yaml") {
		t.Errorf("policy check of a bad policy: exit %d, %q; want exit 1 naming the file", code, errOut)
	}
}

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runCLI(t, "keygen", "--dir", dir)
	if code != 0 {
		t.Fatalf("keygen: exit %d %s", code, errOut)
	}
	for _, name := range []string{signingKeyName, publicKeyName} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("keygen did not write %s: %v (%s)", name, err, out)
		}
	}
	if code, _, _ := runCLI(t, "keygen", "--dir", dir); code != 1 {
		t.Errorf("keygen over an existing key: exit %d, want 1 (never overwrite a key)", code)
	}
	if code, out, _ := runCLI(t, "keygen", "--dir", dir, "--if-missing"); code != 0 || !strings.Contains(out, "kept") {
		t.Errorf("keygen --if-missing: exit %d %q", code, out)
	}
	code, out, _ = runCLI(t, "keygen", "--api-key")
	if code != 0 || !strings.Contains(out, "key: ") || !strings.Contains(out, "sha256: ") {
		t.Errorf("keygen --api-key: exit %d %q", code, out)
	}
}

func TestUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
	}{
		{nil, 2}, {[]string{"nope"}, 2}, {[]string{"help"}, 0}, {[]string{"version"}, 0},
		{[]string{"serve", "--only", "both"}, 2}, {[]string{"ticket", "--config", "x"}, 2},
		{[]string{"serve", "--config", "/nonexistent.yaml"}, 1},
		{[]string{"revoke", "--config", "x"}, 2}, {[]string{"revoke", "--config", "/nonexistent.yaml", "sid"}, 1},
		// A session id may begin with "-": after "--" it is not a flag (exit 1 for the missing config, not 2).
		{[]string{"revoke", "--config", "/nonexistent.yaml", "--", "-sid"}, 1},
	} {
		if code, _, _ := runCLI(t, tt.args...); code != tt.code {
			t.Errorf("pgwarden %v: exit %d, want %d", tt.args, code, tt.code)
		}
	}
}
