package auth

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
)

// An internal session carries kind, subject, email, groups and role through
// minting, verification and renewal; its SQL role follows its user role.
func TestInternalSession(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	v := e.verifier()
	u := InternalUser{Subject: "00u1", Email: "dina@corp.example", Groups: []string{"bi-designers"}, Role: RoleDesigner}
	s, tok, err := e.svc.MintInternal(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Authenticate(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != policy.KindInternal || got.Subject != "00u1" || got.Role != RoleDesigner || got.Tenant != "" ||
		!slices.Equal(got.Groups, u.Groups) || got.ID != s.ID {
		t.Fatalf("session %+v", got)
	}
	if r := got.Identity("analytics").Role; r != policy.RoleRestrictedQuerier {
		t.Fatalf("designer's SQL role %s", r)
	}
	_, renewed, err := e.svc.RenewSession(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v.Authenticate(ctx, renewed); err != nil || got.Role != RoleDesigner || got.Subject != "00u1" {
		t.Fatalf("renewed: %+v %v", got, err)
	}
	// A password-path session (no token) is recorded and listed too.
	open, err := v.OpenInternal(ctx, InternalUser{Subject: "00u1", Role: RoleDesigner})
	if err != nil {
		t.Fatal(err)
	}
	live, err := e.store.LiveSessions(ctx, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range live {
		if r.Subject == "00u1" && r.Kind == "internal" && r.Role == "designer" {
			ids = append(ids, r.ID)
		}
	}
	if len(ids) != 2 || !slices.Contains(ids, open.ID) {
		t.Fatalf("live sessions of the subject: %v", ids)
	}
	// Revoking the subject ends both, on the verifier through the same
	// notification path as single revocations.
	revoked, stop := v.Watch(open.ID)
	defer stop()
	sids, err := e.svc.RevokeSubject(ctx, "00u1")
	if err != nil || len(sids) != 2 {
		t.Fatalf("revoke subject: %v %v", sids, err)
	}
	select {
	case <-revoked:
	case <-time.After(30 * time.Second):
		t.Fatal("no revocation notice for the subject's session")
	}
	if _, err := v.Authenticate(ctx, renewed); pgerr.SQLStateOf(err) != "28P01" {
		t.Fatalf("revoked subject's token: %v", err)
	}
}

// Internal claims are checked as strictly as embed ones: a token of kind
// internal needs a subject equal to its external id and a valid role, and an
// embed token may not carry a role.
func TestInternalClaimsForgeries(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, tok, err := e.svc.MintInternal(ctx, InternalUser{Subject: "00u2", Role: RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(c *claims){
		"no role":          func(c *claims) { c.URole = "" },
		"unknown role":     func(c *claims) { c.URole = "root" },
		"subject mismatch": func(c *claims) { c.ExternalID = "someone-else" },
		"embed with role":  func(c *claims) { c.Kind = policy.KindEmbed; c.Tenant = "acme" },
		"unknown kind":     func(c *claims) { c.Kind = "service" },
	} {
		t.Run(name, func(t *testing.T) {
			c, _, err := e.svc.tokens.verify(ctx, tok, AudienceSession)
			if err != nil {
				t.Fatal(err)
			}
			mod(c)
			forged, err := sign(e.svc.key, c)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.svc.VerifySession(ctx, forged); !errors.Is(err, ErrInvalidSession) {
				t.Fatalf("got %v, want ErrInvalidSession", err)
			}
		})
	}
	if _, _, err := e.svc.MintInternal(ctx, InternalUser{Subject: "x"}); err == nil {
		t.Fatal("minted an internal session without a role")
	}
}
