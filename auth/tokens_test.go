package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
)

// ticketClaims returns valid ticket claims as the service would mint them.
func (e *env) ticketClaims() *claims {
	now := e.clock.Now()
	jti, _ := randomID(18)
	return &claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: e.svc.cfg.Issuer, Audience: jwt.ClaimStrings{AudienceTicket}, ID: jti,
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)),
		},
		Tenant: "acme", ExternalID: "mallory", Kind: policy.KindEmbed, BaseRole: policy.RoleNoAccess,
	}
}

func (e *env) forgeTicket(mod func(*claims)) string {
	c := e.ticketClaims()
	mod(c)
	tok, err := sign(e.svc.key, c)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// tamper replaces the payload of tok, keeping header and signature.
func tamper(t *testing.T, tok string, mod func(map[string]any)) string {
	parts := strings.Split(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	mod(m)
	raw, _ = json.Marshal(m)
	parts[1] = base64.RawURLEncoding.EncodeToString(raw)
	return strings.Join(parts, ".")
}

func signWith(t *testing.T, method jwt.SigningMethod, key any, kid string, c jwt.Claims) string {
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAuthenticateRefusesForgeries(t *testing.T) {
	e := newEnv(t)
	v := e.verifier()
	_, sessTok := e.session()
	realKID := e.svc.key.KID
	pub := e.svc.key.Public()
	pubDER, _ := x509.MarshalPKIXPublicKey(pub)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	other := &SigningKey{KID: KeyID(otherPriv.Public().(ed25519.PublicKey)), Private: otherPriv}

	tests := []struct {
		name string
		cred func() string
		want string // message; "" = accepted
	}{
		{"valid ticket", func() string { return e.mint() }, ""},
		{"valid forged-by-us ticket", func() string { return e.forgeTicket(func(*claims) {}) }, ""},
		{"valid session", func() string { return sessTok }, ""},
		{"empty", func() string { return "" }, msgInvalidCred},
		{"not a jwt", func() string { return "hunter2" }, msgInvalidCred},
		{"huge", func() string { return strings.Repeat("a", maxTokenLen+1) }, msgInvalidCred},
		{"tampered session tenant", func() string {
			return tamper(t, sessTok, func(m map[string]any) { m["tenant"] = "globex" })
		}, msgInvalidCred},
		{"tampered ticket groups", func() string {
			return tamper(t, e.mint(), func(m map[string]any) { m["groups"] = []string{"pii", "admins"} })
		}, msgInvalidCred},
		{"signed with another key, our kid", func() string {
			return signWith(t, jwt.SigningMethodEdDSA, otherPriv, realKID, e.ticketClaims())
		}, msgInvalidCred},
		{"signed with another key, its kid", func() string { return mustSign(t, other, e.ticketClaims()) }, msgInvalidCred},
		{"no kid", func() string { return signWith(t, jwt.SigningMethodEdDSA, e.svc.key.Private, "", e.ticketClaims()) }, msgInvalidCred},
		{"alg none", func() string {
			return signWith(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, realKID, e.ticketClaims())
		}, msgInvalidCred},
		{"HS256 keyed with raw public key", func() string {
			return signWith(t, jwt.SigningMethodHS256, []byte(pub), realKID, e.ticketClaims())
		}, msgInvalidCred},
		{"HS256 keyed with public key PEM", func() string {
			return signWith(t, jwt.SigningMethodHS256, pubPEM, realKID, e.ticketClaims())
		}, msgInvalidCred},
		{"wrong issuer", func() string { return e.forgeTicket(func(c *claims) { c.Issuer = "evil" }) }, msgInvalidCred},
		{"wrong audience", func() string {
			return e.forgeTicket(func(c *claims) { c.Audience = jwt.ClaimStrings{"pgwarden-admin"} })
		}, msgInvalidCred},
		{"two audiences", func() string {
			return e.forgeTicket(func(c *claims) { c.Audience = jwt.ClaimStrings{AudienceTicket, AudienceSession} })
		}, msgInvalidCred},
		{"session audience without sid", func() string {
			return e.forgeTicket(func(c *claims) { c.Audience = jwt.ClaimStrings{AudienceSession} })
		}, msgInvalidCred},
		{"expired ticket", func() string {
			return e.forgeTicket(func(c *claims) { c.ExpiresAt = jwt.NewNumericDate(e.clock.Now().Add(-time.Hour)) })
		}, msgTicketExpired},
		{"no exp", func() string { return e.forgeTicket(func(c *claims) { c.ExpiresAt = nil }) }, msgInvalidCred},
		{"no jti", func() string { return e.forgeTicket(func(c *claims) { c.ID = "" }) }, msgInvalidCred},
		{"nbf in future", func() string {
			return e.forgeTicket(func(c *claims) { c.NotBefore = jwt.NewNumericDate(e.clock.Now().Add(10 * time.Minute)) })
		}, msgInvalidCred},
		{"iat in future", func() string {
			return e.forgeTicket(func(c *claims) { c.IssuedAt = jwt.NewNumericDate(e.clock.Now().Add(10 * time.Minute)) })
		}, msgInvalidCred},
		{"no tenant", func() string { return e.forgeTicket(func(c *claims) { c.Tenant = "" }) }, msgInvalidCred},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := v.Authenticate(context.Background(), tc.cred())
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if s.Tenant != "acme" || s.ID == "" {
					t.Fatalf("session = %+v", s)
				}
				return
			}
			var pe *pgerr.Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *pgerr.Error", err)
			}
			if pe.Code != pgerr.InvalidPassword || pe.Severity != pgerr.SeverityFatal || pe.Message != tc.want {
				t.Fatalf("err = %s %s %q, want FATAL 28P01 %q", pe.Severity, pe.Code, pe.Message, tc.want)
			}
		})
	}
}

func mustSign(t *testing.T, k *SigningKey, c *claims) string {
	tok, err := sign(k, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// A ticket is never a session token and a session token never a ticket.
func TestAudiencesDoNotCross(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, sessTok := e.session()
	if _, _, err := e.svc.ExchangeTicket(ctx, sessTok); !errors.Is(err, ErrInvalidTicket) {
		t.Errorf("exchange of a session token: err = %v, want ErrInvalidTicket", err)
	}
	if _, _, err := e.svc.RenewSession(ctx, e.mint()); !errors.Is(err, ErrInvalidSession) {
		t.Errorf("renewal with a ticket: err = %v, want ErrInvalidSession", err)
	}
}

// The session carries exactly what the ticket said, plus its id and expiry.
func TestSessionClaims(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.BaseRole = policy.RoleViewer })
	v := e.verifier()
	s, tok := e.session()
	want := &Session{
		ID: s.ID, Kind: policy.KindEmbed, Tenant: "acme", ExternalID: "alice", Email: "alice@acme.test",
		Groups: []string{"pii"}, Attributes: map[string][]string{"regions": {"EU", "NA"}},
		ConnectionRoles: map[string]policy.Role{"demo": policy.RoleQuerier}, BaseRole: policy.RoleViewer,
		ExpiresAt:    e.clock.Now().Add(time.Hour),
		MaxExpiresAt: e.clock.Now().Add(12 * time.Hour),
		APIKeyName:   "acme-backend",
	}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("exchanged session (-want +got):\n%s", diff)
	}
	got, err := v.Authenticate(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s, got); diff != "" {
		t.Errorf("authenticated session (-want +got):\n%s", diff)
	}
	if id := got.Identity("demo"); id.Role != policy.RoleQuerier || id.Tenant != "acme" {
		t.Errorf("identity on demo = %+v", id)
	}
	if id := got.Identity("other"); id.Role != policy.RoleViewer {
		t.Errorf("identity on other = %+v, want base role viewer", id)
	}
}

// Without connection_roles a ticket gets base_role everywhere: refused at
// minting when that opens nothing, accepted when base_role grants a role.
func TestTicketWithoutConnectionRoles(t *testing.T) {
	req := acmeRequest()
	req.ConnectionRoles = nil
	_, _, err := newEnv(t).svc.MintTicket(context.Background(), req)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "connection_roles" {
		t.Errorf("base_role no_access, no connection_roles: %v, want a FieldError on connection_roles", err)
	}

	e := newEnv(t, func(c *Config) { c.BaseRole = policy.RoleViewer })
	tok, _, err := e.svc.MintTicket(context.Background(), req)
	if err != nil {
		t.Fatalf("base_role viewer, no connection_roles: %v", err)
	}
	s, _, err := e.svc.ExchangeTicket(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if id := s.Identity("demo"); id.Role != policy.RoleViewer {
		t.Errorf("identity on demo = %+v, want base role viewer", id)
	}
}

// Several verification keys are accepted during a rotation; the old one is
// found by kid.
func TestKeyRotation(t *testing.T) {
	old := newEnv(t)
	oldTok := old.mint()
	dir := t.TempDir()
	g, err := GenerateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	oldPub, err := LoadSigningKey(old.cfg.SigningKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	pubFile := dir + "/old.pub"
	der, _ := x509.MarshalPKIXPublicKey(oldPub.Public())
	if err := writeNew(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := old.cfg
	cfg.SigningKeyFile = g.PrivateKeyFile
	cfg.VerifyKeyFiles = []string{pubFile}
	rotated, err := NewService(cfg, old.store, testPolicy, old.log)
	if err != nil {
		t.Fatal(err)
	}
	if rotated.key.KID != g.KID || rotated.key.KID == oldPub.KID {
		t.Fatalf("signing kid = %s, want new key %s", rotated.key.KID, g.KID)
	}
	if _, _, err := rotated.ExchangeTicket(context.Background(), oldTok); err != nil {
		t.Fatalf("ticket signed by the old key: %v", err)
	}
	if len(rotated.KeySet().JWKS().Keys) != 2 {
		t.Errorf("JWKS = %+v, want 2 keys", rotated.KeySet().JWKS())
	}
	// Without the old public key, its tokens are refused.
	cfg.VerifyKeyFiles = nil
	fresh, err := NewService(cfg, old.store, testPolicy, old.log)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := fresh.ExchangeTicket(context.Background(), old.mint()); !errors.Is(err, ErrInvalidTicket) {
		t.Fatalf("old-key ticket after rotation: err = %v, want ErrInvalidTicket", err)
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	g, err := GenerateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	k, err := LoadSigningKey(g.PrivateKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	p, err := LoadPublicKey(g.PublicKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if k.KID != g.KID || KeyID(p) != g.KID || !p.Equal(k.Public()) {
		t.Fatal("loaded keys do not match the generated pair")
	}
	if _, err := LoadSigningKey(g.PublicKeyFile); err == nil {
		t.Error("public key loaded as signing key")
	}
	if _, err := LoadPublicKey(g.PrivateKeyFile); err == nil {
		t.Error("private key loaded as public key")
	} else if strings.Contains(err.Error(), "MC4C") {
		t.Errorf("error leaks key material: %v", err)
	}
}

// RFC 8037 appendix A.3: the thumbprint of the example key.
func TestKeyIDIsRFC7638Thumbprint(t *testing.T) {
	x, _ := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if got, want := KeyID(ed25519.PublicKey(x)), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; got != want {
		t.Fatalf("KeyID = %s, want %s", got, want)
	}
}
