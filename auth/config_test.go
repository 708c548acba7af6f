package auth

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.yaml.in/yaml/v3"

	"github.com/pgwarden/pgwarden/policy"
)

// The example configuration decodes (yaml tags, durations) and validates.
func TestExampleConfig(t *testing.T) {
	raw, err := os.ReadFile("../testdata/auth/config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	want := Config{
		Issuer: "pgwarden", TicketTTL: time.Minute, SessionTTL: time.Hour, SessionMaxLifetime: 12 * time.Hour,
		Leeway: 30 * time.Second, SigningKeyFile: "/etc/pgwarden/keys/signing-current.key",
		VerifyKeyFiles: []string{"/etc/pgwarden/keys/signing-previous.pub"},
		APIKeys: []APIKey{{Name: "acme-backend", SHA256: "4a1d6f3fc5fcb8b4b3f3bbd4e16a0f2bb7ed3bb4b1e4bba5e5d6f1c97e0c6f12",
			RatePerSecond: 20, Burst: 40}},
		CORSOrigins: []string{"https://app.acme.example", "http://localhost:3000"},
		StoreDSN:    "postgres://pgwarden:secret@db.internal:5432/pgwarden_control", Schema: "pgwarden",
		ConnectHost: "warehouse.pgwarden.example", ConnectPort: 5432, ConnectDatabase: "analytics",
		BaseRole: policy.RoleNoAccess, ResyncInterval: 30 * time.Second, PurgeInterval: 10 * time.Minute,
		MaxBodyBytes: 65536, StoreConnectTimeout: 5 * time.Second, StoreQueryTimeout: 5 * time.Second, StoreMaxConns: 16, ListenPingInterval: 10 * time.Second,
		HTTPReadTimeout: 10 * time.Second, HTTPWriteTimeout: 20 * time.Second, HTTPIdleTimeout: 2 * time.Minute,
		HTTPRequestTimeout: 10 * time.Second, RetryAfter: 5 * time.Second,
	}
	if diff := cmp.Diff(want, cfg, cmpopts.IgnoreFields(Config{}, "Now")); diff != "" {
		t.Errorf("decoded config (-want +got):\n%s", diff)
	}
}

// The store and HTTP timeouts: defaults fill zero fields, and a request
// deadline that the write timeout would cut short is refused.
func TestTimeoutConfig(t *testing.T) {
	d := Config{StoreDSN: "postgres://x"}.WithDefaults()
	if d.StoreQueryTimeout != DefaultStoreQueryTimeout || d.StoreConnectTimeout != DefaultStoreConnectTimeout ||
		d.HTTPRequestTimeout != DefaultHTTPRequestTimeout || d.HTTPWriteTimeout <= d.HTTPRequestTimeout || d.RetryAfter != DefaultRetryAfter {
		t.Errorf("defaults: %+v", d)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"negative store timeout", func(c *Config) { c.StoreQueryTimeout = -time.Second }, "auth config: store_query_timeout: must be at least 1ms"},
		{"request outlives write", func(c *Config) { c.HTTPRequestTimeout = 30 * time.Second }, "auth config: http_request_timeout: must be below http_write_timeout (20s)"},
		{"negative retry after", func(c *Config) { c.RetryAfter = -1 }, "auth config: retry_after: must be at least 1ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{StoreDSN: "postgres://x"}
			tc.mod(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}
