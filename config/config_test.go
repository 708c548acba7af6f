package config

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

const minimal = `
warehouses:
  analytics:
    dsn: postgres://svc:pw@127.0.0.1:5432/analytics
    policy: policy.yaml
auth:
  signing_key_file: keys/signing.pem
  store_dsn: postgres://ctl:pw@127.0.0.1:5432/control
`

func TestParseDefaultsAndPaths(t *testing.T) {
	f, err := Parse([]byte(minimal), "/etc/pgwarden/pgwarden.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if f.Proxy.Listen != "127.0.0.1:6432" || f.Auth.TicketTTL != time.Minute || f.Auth.SessionTTL != time.Hour {
		t.Errorf("defaults not applied: %+v %+v", f.Proxy, f.Auth)
	}
	if got := f.Warehouses["analytics"].Policy; got != filepath.FromSlash("/etc/pgwarden/policy.yaml") {
		t.Errorf("policy path = %q, want it resolved against the config's directory", got)
	}
	if f.Proxy.MaxWorkMemMB != 256 {
		t.Errorf("max_work_mem_mb default = %d, want 256", f.Proxy.MaxWorkMemMB)
	}
	if f.Auth.Connect.Host != "127.0.0.1" || f.Auth.Connect.Port != 6432 || f.Auth.Connect.Database != "analytics" {
		t.Errorf("connect defaults = %+v", f.Auth.Connect)
	}
	if p := f.Proxy; p.RewriteTimeout != 10*time.Second || p.RewriteConcurrency != runtime.GOMAXPROCS(0) ||
		p.RewriteMemoryBytes != 16<<20 || p.RewriteMemoryWait != 5*time.Second {
		t.Errorf("rewrite limit defaults = %s %d %d %s", p.RewriteTimeout, p.RewriteConcurrency, p.RewriteMemoryBytes, p.RewriteMemoryWait)
	}
}

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"unknown field", minimal + "\nproxy: {listn: x}\n", "field listn not found"},
		{"no warehouses", "auth: {signing_key_file: k, store_dsn: x}\n", "c.yaml: warehouses: at least one warehouse is needed"},
		{"no policy", "warehouses: {w: {dsn: postgres://x}}\nauth: {signing_key_file: k, store_dsn: x}\n",
			"c.yaml: warehouses.w.policy: missing: every warehouse needs a policy file (default deny)"},
		{"long ticket", minimal + "  ticket_ttl: 1h\n", "c.yaml: auth.ticket_ttl: 1h0m0s is longer than the 10m cap"},
		{"bad api key hash", minimal + "  api_keys: [{name: app, sha256: abc}]\n", "c.yaml: auth.api_keys[0].sha256: must be the lowercase hex SHA-256"},
		{"service without key", minimal + "  listen: 127.0.0.1:8080\n", "c.yaml: auth.api_keys: the ticket service (auth.listen) needs at least one API key"},
		{"bad origin", minimal + "  cors_origins: [app.example.com]\n", `c.yaml: auth.cors_origins[0]: "app.example.com" is not an origin`},
		{"bad role", minimal + "  base_role: admin\n", `c.yaml: auth.base_role: unknown role "admin"`},
		{"bad listen", minimal + "proxy: {listen: nope}\n", `c.yaml: proxy.listen: "nope" is not host:port`},
		{"bad pool mode", strings.Replace(minimal, "policy: policy.yaml", "policy: policy.yaml\n    pool: {mode: statement}", 1), `c.yaml: warehouses.analytics.pool.mode: "statement" is not session or transaction`},
		{"negative pool size", strings.Replace(minimal, "policy: policy.yaml", "policy: policy.yaml\n    pool: {size: -1}", 1), `c.yaml: warehouses.analytics.pool.size: must not be negative`},
		{"bad scheduling", strings.Replace(minimal, "policy: policy.yaml", "policy: policy.yaml\n    pool: {scheduling: lifo}", 1), `c.yaml: warehouses.analytics.pool.scheduling: "lifo" is not fair or fifo`},
		{"negative tenant share", strings.Replace(minimal, "policy: policy.yaml", "policy: policy.yaml\n    pool: {tenant_defaults: {max_connections: -1}}", 1),
			"c.yaml: warehouses.analytics.pool.tenant_defaults.max_connections: must not be negative"},
		{"tenant weight", strings.Replace(minimal, "policy: policy.yaml", "policy: policy.yaml\n    pool: {tenants: {acme: {weight: 5000}}}", 1),
			"c.yaml: warehouses.analytics.pool.tenants.acme.weight: 5000 is not between 1 and 1000"},
		{"tenant rate", strings.Replace(minimal, "policy: policy.yaml", "policy: policy.yaml\n    pool: {tenants: {acme: {statements_per_second: -1}}}", 1),
			"c.yaml: warehouses.analytics.pool.tenants.acme.statements_per_second: must be a positive number"},
		{"tenant role timeout", strings.Replace(minimal, "policy: policy.yaml", "policy: policy.yaml\n    pool: {tenants: {acme: {role_statement_timeouts: {admin: 1s}}}}", 1),
			"c.yaml: warehouses.analytics.pool.tenants.acme.role_statement_timeouts.admin: unknown role"},
		{"tenant result rows", strings.Replace(minimal, "policy: policy.yaml", "policy: policy.yaml\n    pool: {tenants: {acme: {max_result_rows: -5}}}", 1),
			"c.yaml: warehouses.analytics.pool.tenants.acme.max_result_rows: must not be negative"},
		{"tiny tenant timeout", strings.Replace(minimal, "policy: policy.yaml", "policy: policy.yaml\n    pool: {tenant_defaults: {statement_timeout: 1us}}", 1),
			"c.yaml: warehouses.analytics.pool.tenant_defaults.statement_timeout: must be at least 1ms"},
		{"negative store timeout", minimal + "  store_query_timeout: -1s\n", "c.yaml: auth.store_query_timeout: must not be negative"},
		{"request outlives write", minimal + "  http_request_timeout: 30s\n  http_write_timeout: 20s\n", "c.yaml: auth.http_request_timeout: must be below http_write_timeout"},
		{"negative auth timeout", minimal + "proxy: {auth_timeout: -1s}\n", "c.yaml: proxy.auth_timeout: must not be negative"},
		{"huge result limit", minimal + "proxy: {max_result_message_bytes: 4294967296}\n", "c.yaml: proxy.max_result_message_bytes: 4294967296 is outside"},
		{"negative rewrite timeout", minimal + "proxy: {rewrite_timeout: -1s}\n", "c.yaml: proxy.rewrite_timeout: must not be negative"},
		{"negative rewrite wait", minimal + "proxy: {rewrite_memory_wait: -1s}\n", "c.yaml: proxy.rewrite_memory_wait: must not be negative"},
		{"negative rewrite concurrency", minimal + "proxy: {rewrite_concurrency: -2}\n", "c.yaml: proxy.rewrite_concurrency: must be at least 1"},
		{"tiny rewrite memory", minimal + "proxy: {rewrite_memory_bytes: 100}\n", "c.yaml: proxy.rewrite_memory_bytes: 100 is too small (at least 4096)"},
		{"tls half", minimal + "proxy: {tls_cert_file: c.pem}\n", "c.yaml: proxy.tls_cert_file: tls_cert_file and tls_key_file go together"},
		{"negative work_mem cap", minimal + "proxy: {max_work_mem_mb: -1}\n", "c.yaml: proxy.max_work_mem_mb: -1 is not between 1 and 2097151"},
		{"tenant_dsn without placeholder", strings.Replace(minimal, "policy: policy.yaml", "policy: policy.yaml\n    tenant_dsn: postgres://svc@db/tenant", 1),
			"c.yaml: warehouses.analytics.tenant_dsn: needs {{tenant}}"},
		{"negative tenant bound", strings.Replace(minimal, "policy: policy.yaml", "policy: policy.yaml\n    tenant_dsn: postgres://svc@db/t_{{tenant}}\n    tenant_max_conns: -1", 1),
			"c.yaml: warehouses.analytics.tenant_max_conns: must not be negative"},
		{"short stats bucket", minimal + "console: {stats_bucket: 100ms}\n", "c.yaml: console.stats_bucket: 100ms is too short"},
		{"long stats window", minimal + "console: {stats_bucket: 1s, stats_window: 24h}\n", "c.yaml: console.stats_window: 24h0m0s: between one bucket (1s) and 10000 buckets"},
		{"too many stats tenants", minimal + "console: {stats_max_tenants: 5000}\n", "c.yaml: console.stats_max_tenants: 5000: between 1 and 1000"},
		{"console url with a path", minimal + "console: {public_url: https://x.example/console}\n", `c.yaml: console.public_url: "https://x.example/console": want an origin`},
		{"empty tenant dsn", strings.Replace(minimal, "policy: policy.yaml", "policy: policy.yaml\n    tenant_dsns: {acme: \"\"}", 1),
			"c.yaml: warehouses.analytics.tenant_dsns.acme: not a valid DSN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), "c.yaml")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestPeerIDFromHostname(t *testing.T) {
	for host, want := range map[string]int{"pgwarden-proxy-0": 1, "pgwarden-proxy-2": 3, "p-254": 255} {
		if got, err := PeerIDFromHostname(host); err != nil || got != want {
			t.Errorf("%s: %d, %v; want %d", host, got, err, want)
		}
	}
	for _, host := range []string{"pgwarden-tickets-5d8f9-abcde", "nodash", "x-255", "x-"} {
		if _, err := PeerIDFromHostname(host); err == nil {
			t.Errorf("%s: no error", host)
		}
	}
}

func TestTenantDSNFor(t *testing.T) {
	w := Warehouse{TenantDSN: "postgres://svc@db:5432/t_{{tenant}}?sslmode=require",
		TenantDSNs: map[string]string{"big corp": "postgres://svc@other:5432/bigcorp"}}
	for tenant, want := range map[string]string{
		"acme":     "postgres://svc@db:5432/t_acme?sslmode=require",
		"big corp": "postgres://svc@other:5432/bigcorp", // the map first, for any name
		"a/b":      "",                                  // never spliced into a DSN
		"x?y=z":    "",
		"":         "",
	} {
		got, ok := w.TenantDSNFor(tenant)
		if got != want || ok != (want != "") {
			t.Errorf("TenantDSNFor(%q) = %q, %v; want %q", tenant, got, ok, want)
		}
	}
	if (Warehouse{}).TenantDatabases() || !w.TenantDatabases() {
		t.Error("TenantDatabases")
	}
}
