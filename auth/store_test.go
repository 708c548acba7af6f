package auth

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/pgerr"
)

// Replicas starting at once all migrate without error, and once.
func TestMigrateConcurrently(t *testing.T) {
	dsn := pgtest.NewDatabase(t, "")
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Go(func() {
			st, err := Open(ctx, Config{StoreDSN: dsn, Schema: "ctl"})
			if err != nil {
				errs[i] = err
				return
			}
			defer st.Close()
			errs[i] = st.Migrate(ctx)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var version, rows int
	if err := conn.QueryRow(ctx, `SELECT max(version), count(*) FROM ctl.schema_version`).Scan(&version, &rows); err != nil {
		t.Fatal(err)
	}
	if version != len(migrations) || rows != 1 {
		t.Errorf("schema_version = %d (%d rows), want %d (1 row)", version, rows, len(migrations))
	}
	if _, err := Open(ctx, Config{StoreDSN: dsn, Schema: "Bad-Schema"}); err == nil {
		t.Error("Open accepted a schema name that needs quoting")
	}
}

// One ticket, presented at the same moment to two service replicas and a
// proxy's verifier: exactly one wins, every time.
func TestReplayAcrossReplicas(t *testing.T) {
	e := newEnv(t)
	_, svcB := e.instance()
	v := e.verifier()
	ctx := context.Background()
	for round := range 50 {
		ticket := e.mint()
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make([]error, 3)
		wg.Go(func() { <-start; _, _, errs[0] = e.svc.ExchangeTicket(ctx, ticket) })
		wg.Go(func() { <-start; _, _, errs[1] = svcB.ExchangeTicket(ctx, ticket) })
		wg.Go(func() { <-start; _, errs[2] = v.Authenticate(ctx, ticket) })
		close(start)
		wg.Wait()
		wins := 0
		for i, err := range errs {
			var pe *pgerr.Error
			switch {
			case err == nil:
				wins++
			case errors.Is(err, ErrTicketUsed):
			case errors.As(err, &pe) && pe.Message == msgTicketUsed && pe.Code == pgerr.InvalidPassword:
			default:
				t.Fatalf("round %d, contender %d: unexpected error %v", round, i, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d winners (%v), want exactly 1", round, wins, errs)
		}
	}
	var sessions int
	if err := e.store.pool.QueryRow(ctx, `SELECT count(*) FROM pgwarden.sessions`).Scan(&sessions); err != nil {
		t.Fatal(err)
	}
	if sessions != 50 {
		t.Errorf("%d sessions recorded, want 50", sessions)
	}
}

func TestStoreRedeemTicket(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	now := e.clock.Now()
	if err := e.store.RedeemTicket(ctx, "jti-1", now.Add(time.Minute), now); err != nil {
		t.Fatal(err)
	}
	if err := e.store.RedeemTicket(ctx, "jti-1", now.Add(time.Minute), now); !errors.Is(err, ErrTicketUsed) {
		t.Fatalf("second redemption: %v, want ErrTicketUsed", err)
	}
	// A failed session insert rolls the redemption back.
	rec := SessionRecord{ID: "s1", Tenant: "acme", ExternalID: "a", Created: now, Expires: now.Add(time.Hour), MaxExpires: now.Add(2 * time.Hour)}
	if err := e.store.CreateSession(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := e.store.RedeemAndCreate(ctx, "jti-2", now.Add(time.Minute), rec); err == nil {
		t.Fatal("duplicate session id accepted")
	}
	rec.ID = "s2"
	if err := e.store.RedeemAndCreate(ctx, "jti-2", now.Add(time.Minute), rec); err != nil {
		t.Fatalf("redeem after rolled-back attempt: %v", err)
	}
	if err := e.store.ExtendSession(ctx, "nope", now); !errors.Is(err, ErrSessionNotFound) {
		t.Errorf("extend unknown: %v", err)
	}
	if _, err := e.store.IsRevoked(ctx, "nope"); !errors.Is(err, ErrSessionNotFound) {
		t.Errorf("IsRevoked unknown: %v", err)
	}
	if err := e.store.Revoke(ctx, "nope", "", now); !errors.Is(err, ErrSessionNotFound) {
		t.Errorf("revoke unknown: %v", err)
	}
	if err := e.store.Revoke(ctx, "s2", "", now); err != nil {
		t.Fatal(err)
	}
	if err := e.store.ExtendSession(ctx, "s2", now.Add(2*time.Hour)); !errors.Is(err, ErrSessionRevoked) {
		t.Errorf("extend revoked: %v", err)
	}
	// SessionExpiry follows renewals (what open connections ask at expiry).
	if got, err := e.store.SessionExpiry(ctx, "s1"); err != nil || !got.Equal(rec.Expires) {
		t.Errorf("expiry of s1: %v, %v; want %v", got, err, rec.Expires)
	}
	if err := e.store.ExtendSession(ctx, "s1", now.Add(90*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, err := e.store.SessionExpiry(ctx, "s1"); err != nil || !got.Equal(now.Add(90*time.Minute)) {
		t.Errorf("expiry of s1 after renewal: %v, %v", got, err)
	}
	if _, err := e.store.SessionExpiry(ctx, "s2"); !errors.Is(err, ErrSessionRevoked) {
		t.Errorf("expiry of a revoked session: %v", err)
	}
	if _, err := e.store.SessionExpiry(ctx, "nope"); !errors.Is(err, ErrSessionNotFound) {
		t.Errorf("expiry of an unknown session: %v", err)
	}
}

func TestPurge(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.SessionMaxLifetime = 2 * time.Hour })
	ctx := context.Background()
	old := e.mint()
	if _, _, err := e.svc.ExchangeTicket(ctx, old); err != nil {
		t.Fatal(err)
	}
	count := func() (tickets, sessions int) {
		t.Helper()
		if err := e.store.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM pgwarden.redeemed_tickets), (SELECT count(*) FROM pgwarden.sessions)`).Scan(&tickets, &sessions); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := e.svc.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if tk, s := count(); tk != 1 || s != 1 {
		t.Fatalf("purged live rows: %d tickets %d sessions", tk, s)
	}
	// The redeemed ticket row goes once the ticket cannot verify anyway.
	e.clock.Advance(3 * time.Minute)
	if err := e.svc.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if tk, s := count(); tk != 0 || s != 1 {
		t.Fatalf("after 3m: %d tickets %d sessions, want 0 1", tk, s)
	}
	if _, _, err := e.svc.ExchangeTicket(ctx, old); !errors.Is(err, ErrTicketExpired) {
		t.Fatalf("replay after purge: %v, want ErrTicketExpired", err)
	}
	e.clock.Advance(2 * time.Hour)
	if err := e.svc.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if tk, s := count(); tk != 0 || s != 0 {
		t.Fatalf("after max lifetime: %d tickets %d sessions", tk, s)
	}
}
