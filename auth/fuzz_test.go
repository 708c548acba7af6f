package auth

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pgwarden/pgwarden/policy"
)

// FuzzVerify feeds arbitrary credentials to the token verifier: it never
// panics, and whatever it accepts carries the claims we signed.
func FuzzVerify(f *testing.F) {
	seed := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	key := &SigningKey{KID: KeyID(seed.Public().(ed25519.PublicKey)), Private: seed}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, aud := range []string{AudienceTicket, AudienceSession} {
		c := &claims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: "pgwarden", Audience: jwt.ClaimStrings{aud}, ID: "seed-jti",
				IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
			},
			Tenant: "acme", ExternalID: "alice", Kind: policy.KindEmbed, SID: "sid", Max: jwt.NewNumericDate(now.Add(2 * time.Hour)),
		}
		tok, err := sign(key, c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok)
	}
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	v := newTokenVerifier(NewKeySet(key.Public()), "pgwarden", time.Second, func() time.Time { return now })
	f.Fuzz(func(t *testing.T, raw string) {
		c, _, err := v.verify(context.Background(), raw, AudienceTicket, AudienceSession)
		if err != nil {
			return
		}
		if c.ID != "seed-jti" || c.Tenant != "acme" || c.ExternalID != "alice" {
			t.Fatalf("accepted claims we never signed: %+v", c)
		}
	})
}
