package auth

import (
	"bytes"
	"os"
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
		MaxBodyBytes: 65536,
	}
	if diff := cmp.Diff(want, cfg, cmpopts.IgnoreFields(Config{}, "Now")); diff != "" {
		t.Errorf("decoded config (-want +got):\n%s", diff)
	}
}
