package oidc

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/internal/oidctest"
)

func testUsers() []oidctest.User {
	return []oidctest.User{
		{ID: "olga", Email: "olga@corp.example", Groups: []string{"bi-owners"}},
		{ID: "adam", Email: "adam@corp.example", Groups: []string{"bi-admins", "bi-viewers"}},
		{ID: "cora", Email: "cora@corp.example", Groups: []string{"bi-creators"}},
		{ID: "dina", Email: "dina@corp.example", Groups: []string{"bi-designers"}},
		{ID: "vic", Email: "vic@corp.example", Groups: []string{"bi-viewers"}},
		{ID: "nobody", Email: "nobody@corp.example", Groups: []string{"marketing"}},
		{ID: "nogroups", Email: "nogroups@corp.example"},
		{ID: "outsider", Email: "eve@elsewhere.example", Groups: []string{"bi-admins"}},
		{ID: "founder", Email: "founder@corp.example", Groups: []string{}},
	}
}

func testMapping() map[string]auth.UserRole {
	return map[string]auth.UserRole{
		"bi-owners": auth.RoleOwner, "bi-admins": auth.RoleAdministrator, "bi-creators": auth.RoleCreator,
		"bi-designers": auth.RoleDesigner, "bi-viewers": auth.RoleViewer,
	}
}

func testVerifier(t *testing.T, p *oidctest.Provider, mod func(*Config)) *Verifier {
	t.Helper()
	cfg := Config{
		Providers:   []Provider{{Issuer: p.Issuer, ClientID: oidctest.ClientID, AllowedEmailDomains: []string{"corp.example"}}},
		RoleMapping: testMapping(),
		Owners:      []string{"founder"},
	}
	if mod != nil {
		mod(&cfg)
	}
	v, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Tokens from a real provider map to the highest role of the user's
// groups; Owners are also listed by subject.
func TestVerifyRoles(t *testing.T) {
	p := oidctest.Start(t, testUsers()...)
	v := testVerifier(t, p, nil)
	for _, tc := range []struct {
		user string
		role auth.UserRole
	}{
		{"olga", auth.RoleOwner}, {"adam", auth.RoleAdministrator}, {"cora", auth.RoleCreator},
		{"dina", auth.RoleDesigner}, {"vic", auth.RoleViewer}, {"founder", auth.RoleOwner},
	} {
		t.Run(tc.user, func(t *testing.T) {
			u, err := v.Verify(context.Background(), p.SignIn(t, tc.user))
			if err != nil {
				t.Fatal(err)
			}
			if u.Role != tc.role || u.Subject != tc.user || !strings.HasSuffix(u.Email, "@corp.example") {
				t.Fatalf("got %+v, want role %s", u, tc.role)
			}
		})
	}
}

// Every bad token is refused with an error that says which check failed and
// never contains the token.
func TestVerifyRefusals(t *testing.T) {
	p := oidctest.Start(t, testUsers()...)
	other := oidctest.Start(t, testUsers()...)
	good := p.SignIn(t, "adam")
	parts := strings.Split(good, ".")
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var h map[string]any
	json.Unmarshal(hdr, &h)
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	json.Unmarshal(payload, &claims)

	tampered := func() string {
		c := map[string]any{}
		for k, v := range claims {
			c[k] = v
		}
		c["groups"] = []string{"bi-owners"}
		return parts[0] + "." + enc(c) + "." + parts[2]
	}()
	unknownKID := func() string {
		hh := map[string]any{}
		for k, v := range h {
			hh[k] = v
		}
		hh["kid"] = "not-a-published-key"
		return enc(hh) + "." + parts[1] + "." + parts[2]
	}()
	none := enc(map[string]any{"alg": "none", "typ": "JWT"}) + "." + parts[1] + "."
	hs256 := func() string {
		s := enc(map[string]any{"alg": "HS256", "typ": "JWT", "kid": h["kid"]}) + "." + parts[1]
		m := hmac.New(sha256.New, []byte("guessed secret"))
		m.Write([]byte(s))
		return s + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}()

	base := testVerifier(t, p, nil)
	later := testVerifier(t, p, func(c *Config) { c.Now = func() time.Time { return time.Now().Add(3 * time.Hour) } })
	earlier := testVerifier(t, p, func(c *Config) { c.Now = func() time.Time { return time.Now().Add(-3 * time.Hour) } })
	otherAud := testVerifier(t, p, func(c *Config) { c.Providers[0].Audiences = []string{"some-other-app"} })
	onlyRS512 := testVerifier(t, p, func(c *Config) { c.Providers[0].Algorithms = []string{"RS512"} })

	for _, tc := range []struct {
		name  string
		v     *Verifier
		token string
		want  error
	}{
		{"wrong issuer", base, other.SignIn(t, "adam"), ErrIssuer},
		{"wrong audience", otherAud, good, ErrAudience},
		{"bad signature", base, tampered, ErrSignature},
		{"alg none", base, none, ErrAlgorithm},
		{"alg HS256", base, hs256, ErrAlgorithm},
		{"alg not pinned", onlyRS512, good, ErrAlgorithm},
		{"expired", later, good, ErrExpired},
		{"not yet valid", earlier, good, ErrNotYetValid},
		{"unknown kid", base, unknownKID, ErrUnknownKey},
		{"missing groups claim", base, p.SignIn(t, "nogroups"), ErrNoGroups},
		{"disallowed email domain", base, p.SignIn(t, "outsider"), ErrEmailDomain},
		{"no mapped role", base, p.SignIn(t, "nobody"), ErrNoRole},
		{"not a jwt", base, "hunter2", ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.v.Verify(context.Background(), tc.token)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if len(tc.token) > 20 && strings.Contains(err.Error(), tc.token[len(tc.token)-20:]) {
				t.Fatalf("error contains the token: %v", err)
			}
		})
	}
}
