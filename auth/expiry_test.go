package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pgwarden/pgwarden/pgerr"
)

func pgMessage(err error) string {
	var pe *pgerr.Error
	if errors.As(err, &pe) {
		return pe.Message
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// Expiry is exp + leeway, exclusive; the clock is injected.
func TestExpiryEdges(t *testing.T) {
	for _, leeway := range []time.Duration{DefaultLeeway, 5 * time.Second} {
		t.Run(leeway.String(), func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Leeway = leeway })
			v := e.verifier()
			ctx := context.Background()
			start := e.clock.Now()

			// Tickets: 60s plus leeway.
			t1, t2 := e.mint(), e.mint()
			e.clock.Advance(time.Minute + leeway - time.Nanosecond)
			if _, _, err := e.svc.ExchangeTicket(ctx, t1); err != nil {
				t.Fatalf("ticket just inside leeway: %v", err)
			}
			e.clock.Advance(time.Nanosecond)
			if _, _, err := e.svc.ExchangeTicket(ctx, t2); !errors.Is(err, ErrTicketExpired) {
				t.Fatalf("ticket at exp+leeway: %v, want ErrTicketExpired", err)
			}
			if _, err := v.Authenticate(ctx, t2); pgMessage(err) != msgTicketExpired {
				t.Fatalf("proxy, ticket at exp+leeway: %v", err)
			}

			// Sessions: 1h plus leeway.
			e.clock.Set(start)
			_, tok := e.session()
			e.clock.Advance(time.Hour + leeway - time.Nanosecond)
			if _, err := v.Authenticate(ctx, tok); err != nil {
				t.Fatalf("session just inside leeway: %v", err)
			}
			e.clock.Advance(time.Nanosecond)
			if _, err := v.Authenticate(ctx, tok); pgMessage(err) != msgSessionExpired {
				t.Fatalf("session at exp+leeway: %v", err)
			}
			if _, _, err := e.svc.RenewSession(ctx, tok); !errors.Is(err, ErrSessionExpired) {
				t.Fatalf("renew at exp+leeway: %v", err)
			}

			// nbf and iat from a clock that runs ahead: tolerated up to leeway.
			e.clock.Set(start)
			ahead := func(d time.Duration) string {
				return e.forgeTicket(func(c *claims) {
					c.NotBefore = jwt.NewNumericDate(start.Add(d))
					c.IssuedAt = jwt.NewNumericDate(start.Add(d))
					c.ExpiresAt = jwt.NewNumericDate(start.Add(d + time.Minute))
				})
			}
			if _, err := v.Authenticate(ctx, ahead(leeway)); err != nil {
				t.Fatalf("nbf = now+leeway: %v", err)
			}
			if _, err := v.Authenticate(ctx, ahead(leeway+time.Second)); pgMessage(err) != msgInvalidCred {
				t.Fatalf("nbf = now+leeway+1s: %v", err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{StoreDSN: "postgres://x", APIKeys: []APIKey{{Name: "a", SHA256: HashAPIKey("k")}}}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	d := good.WithDefaults()
	if d.TicketTTL != time.Minute || d.SessionTTL != time.Hour || d.SessionMaxLifetime != 12*time.Hour ||
		d.Leeway != 30*time.Second || d.Schema != "pgwarden" || d.BaseRole != "no_access" || d.Now == nil {
		t.Errorf("defaults = %+v", d)
	}
	tests := []struct {
		name  string
		mod   func(*Config)
		field string
	}{
		{"no store", func(c *Config) { c.StoreDSN = "" }, "store_dsn"},
		{"ticket ttl too long", func(c *Config) { c.TicketTTL = time.Hour }, "ticket_ttl"},
		{"max lifetime below ttl", func(c *Config) { c.SessionMaxLifetime = time.Minute }, "session_max_lifetime"},
		{"leeway too long", func(c *Config) { c.Leeway = time.Hour }, "leeway"},
		{"schema", func(c *Config) { c.Schema = "a;drop" }, "schema"},
		{"port", func(c *Config) { c.ConnectPort = 70000 }, "connect_port"},
		{"base role", func(c *Config) { c.BaseRole = "root" }, "base_role"},
		{"key name", func(c *Config) { c.APIKeys = []APIKey{{SHA256: HashAPIKey("k")}} }, "api_keys[0].name"},
		{"key dup", func(c *Config) { c.APIKeys = append(c.APIKeys, c.APIKeys[0]) }, "api_keys[1].name"},
		{"key hash", func(c *Config) { c.APIKeys = []APIKey{{Name: "a", SHA256: "plaintext"}} }, "api_keys[0].sha256"},
		{"origin with path", func(c *Config) { c.CORSOrigins = []string{"https://a.example/embed"} }, "cors_origins[0]"},
		{"origin wildcard", func(c *Config) { c.CORSOrigins = []string{"*"} }, "cors_origins[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			c.APIKeys = append([]APIKey(nil), good.APIKeys...)
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.field+":") {
				t.Fatalf("err = %v, want one naming %s", err, tc.field)
			}
		})
	}
}
