package proxy

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/proxy/pool"
)

// Every login that got as far as its password has one login record:
// accepted, refused for what the client brought, or failed on the server's
// side (outcome error); the last two carry the SQLSTATE and, as reason, the
// message the client got.
func TestLoginAudit(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().String() // nothing listens there once closed
	ln.Close()
	var buf syncBuffer
	tp := startProxy(t, func(c *Config, d *Deps) {
		d.Audit = NewAuditLog(&buf, false)
		down := NewWarehouse("down", "postgres://svc:hunter2@"+refused+"/db?sslmode=disable", fakeRewriter{})
		down.Pool = pool.Config{Mode: pool.Session}
		d.Warehouses["down"] = down
		fa := d.Authenticator.(*fakeAuth)
		// As auth.Verifier answers when the control store does not.
		fa.errs["tok-storedown"] = pgerr.Fatalf(pgerr.CannotConnectNow, "cannot verify credential now: control store unavailable").
			WithHint("retry in a few seconds")
		fa.errs["tok-broken"] = errors.New("secret internal detail")
	})
	acme := AuditRecord{Session: "s-acme", Kind: "embed", Tenant: "acme", ExternalID: "ext-s-acme"}
	noaccess := AuditRecord{Session: "s-noaccess", Kind: "embed", Tenant: "acme", ExternalID: "ext-s-noaccess"}
	longDB := strings.Repeat("d", 300)
	for _, tc := range []struct {
		name, token, db string
		want            AuditRecord // the reason is the client's message unless set
	}{
		{"accepted", "tok-acme", "wh", with(acme, AuditRecord{Outcome: "ok"})},
		{"bad token", "wrong", "wh", AuditRecord{Outcome: "refused", SQLState: "28P01"}},
		{"expired", "tok-expired", "wh", AuditRecord{Outcome: "refused", SQLState: "28P01"}},
		{"no access", "tok-noaccess", "wh", with(noaccess, AuditRecord{Outcome: "refused", SQLState: "28000"})},
		{"unknown database", "tok-acme", "nowhere", with(acme, AuditRecord{Outcome: "refused", SQLState: "3D000"})},
		{"long reason cut", "tok-acme", longDB, with(acme, AuditRecord{Outcome: "refused", SQLState: "3D000",
			Reason: (`database "` + longDB)[:maxReason]})},
		{"control store down", "tok-storedown", "wh", AuditRecord{Outcome: "error", SQLState: "57P03"}},
		{"warehouse unreachable", "tok-acme", "down", with(acme, AuditRecord{Outcome: "error", SQLState: "08006"})},
		{"internal error", "tok-broken", "wh", AuditRecord{Outcome: "error", SQLState: "XX000", Reason: "internal error"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(buf.records(t))
			ctx := ctxT(t)
			c, err := pgconn.Connect(ctx, tp.url(tc.token, tc.db, ""))
			want := tc.want
			if want.Outcome == "ok" {
				if err != nil {
					t.Fatal(err)
				}
				c.Close(ctx)
			} else if pe := wantPgErr(t, err, want.SQLState, ""); want.Reason == "" {
				want.Reason = pe.Message
			}
			want.Event, want.Warehouse, want.ClientAddr = "login", tc.db, "127.0.0.1"
			// An accepted login is recorded once the client has its ReadyForQuery.
			var got []AuditRecord
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				if got = buf.records(t)[before:]; len(got) > 0 || time.Now().After(deadline) {
					break
				}
			}
			opts := cmpopts.IgnoreFields(AuditRecord{}, "Time", "DurationMS")
			if diff := cmp.Diff([]AuditRecord{want}, got, opts); diff != "" {
				t.Errorf("login records (-want +got):\n%s", diff)
			}
			for _, r := range got {
				if strings.Contains(r.Reason, "secret") || strings.Contains(r.Reason, "hunter2") {
					t.Errorf("reason leaks internals: %q", r.Reason)
				}
			}
		})
	}
}

// with is r with s's session fields: a login authenticated, then accepted or
// not.
func with(s, r AuditRecord) AuditRecord {
	r.Session, r.Kind, r.Tenant, r.ExternalID = s.Session, s.Kind, s.Tenant, s.ExternalID
	return r
}

// A login's SQLSTATE says whether it failed on the server's side (outcome
// error) or was refused (outcome refused), by class as PostgreSQL names them.
func TestServerFailure(t *testing.T) {
	for _, tc := range []struct {
		code string
		want bool
	}{
		{pgerr.CannotConnectNow, true}, // not ready, shutting down, store or provider unreachable
		{pgerr.AdminShutdown, true},
		{pgerr.ConnectionFailure, true}, // a warehouse unreachable
		{pgerr.InternalError, true},
		{"58030", true}, // io_error
		{pgerr.InvalidPassword, false},
		{pgerr.InvalidAuthorization, false},
		{pgerr.InvalidCatalogName, false},
		{pgerr.TooManyConnections, false}, // a limit on the tenant
		{pgerr.ProtocolViolation, false},  // the client's
		{pgerr.QueryCanceled, false},      // the client's cancel or hang-up
		{"", false},
	} {
		if got := serverFailure(tc.code); got != tc.want {
			t.Errorf("serverFailure(%q) = %v, want %v", tc.code, got, tc.want)
		}
	}
}
