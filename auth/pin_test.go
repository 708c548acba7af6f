package auth

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

// A ticket minted with pin_client_address pins its session to the address
// that exchanged it; the pin survives renewal, and the CLI (no address)
// cannot exchange such a ticket.
func TestPinClientAddress(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	code, _, out := e.do("POST", "/v1/tickets", with(ticketBody(), "pin_client_address", true), apiKeyHdr)
	if code != http.StatusCreated {
		t.Fatalf("mint: %d %v", code, out)
	}
	code, _, out = e.do("POST", "/v1/sessions", map[string]any{"ticket": out["ticket"]}, nil)
	if code != http.StatusCreated {
		t.Fatalf("exchange: %d %v", code, out)
	}
	tok := out["session_token"].(string)
	v := e.verifier()
	s, err := v.Authenticate(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if want := "127.0.0.1"; s.PinnedAddr != want {
		t.Fatalf("pinned to %v, want %v (the httptest client's address)", s.PinnedAddr, want)
	}
	rs, rtok, err := e.svc.RenewSession(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if rs.PinnedAddr != s.PinnedAddr {
		t.Fatalf("renewed session pinned to %v", rs.PinnedAddr)
	}
	if s2, err := v.Authenticate(ctx, rtok); err != nil || s2.PinnedAddr != s.PinnedAddr {
		t.Fatalf("renewed token: %v, %v", s2, err)
	}

	// Without the field, nothing is pinned.
	plain := e.httpSession()["session_token"].(string)
	if s, err := v.Authenticate(ctx, plain); err != nil || s.PinnedAddr != "" {
		t.Fatalf("unpinned ticket: pinned to %v, %v", s.PinnedAddr, err)
	}

	req := acmeRequest()
	req.PinClientAddress = true
	ticket, _, err := e.svc.MintTicket(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.ExchangeTicket(ctx, ticket); !errors.Is(err, ErrPinNeedsAddress) {
		t.Fatalf("exchange without an address: %v, want ErrPinNeedsAddress", err)
	}
	s, _, err = e.svc.ExchangeTicketFrom(ctx, ticket, netip.MustParseAddr("::ffff:10.1.2.3"))
	if err != nil || s.PinnedAddr != "10.1.2.3" {
		t.Fatalf("exchange from 10.1.2.3: %v, %v", s, err)
	}
}

// GET /v1/content lists what was learned from the caller's API key's
// sessions only, per warehouse.
func TestHTTPContent(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	now := e.clock.Now()
	for _, l := range []LearnedStatement{
		{Warehouse: "demo", Fingerprint: "aa", Normalized: "SELECT $1", Example: "SELECT 1", Tenant: "acme", APIKey: "acme-backend", LastSeen: now},
		{Warehouse: "demo", Fingerprint: "aa", Normalized: "SELECT $1", Example: "SELECT 2", Tenant: "acme", APIKey: "acme-backend", LastSeen: now.Add(time.Minute)},
		{Warehouse: "other", Fingerprint: "bb", Normalized: "SELECT $1", Example: "SELECT 3", Tenant: "acme", APIKey: "acme-backend", LastSeen: now},
		{Warehouse: "demo", Fingerprint: "cc", Normalized: "SELECT x", Example: "SELECT x", Tenant: "globex", APIKey: "someone-else", LastSeen: now},
	} {
		if err := e.store.RecordLearned(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	code, _, out := e.do("GET", "/v1/content?warehouse=demo", nil, apiKeyHdr)
	if code != http.StatusOK {
		t.Fatalf("%d %v", code, out)
	}
	list := out["statements"].([]any)
	if len(list) != 1 {
		t.Fatalf("statements = %v", list)
	}
	got := list[0].(map[string]any)
	if got["fingerprint"] != "aa" || got["example"] != "SELECT 1" || got["sightings"] != float64(2) || got["api_key"] != nil {
		t.Fatalf("statement = %v", got)
	}
	if code, _, out := e.do("GET", "/v1/content", nil, apiKeyHdr); code != http.StatusOK || len(out["statements"].([]any)) != 2 {
		t.Fatalf("every warehouse: %d %v", code, out)
	}
	code, _, out = e.do("GET", "/v1/content", nil, nil)
	wantError(t, code, out, http.StatusUnauthorized, "unauthorized")
	all, err := e.svc.LearnedStatements(ctx, "demo", "")
	if err != nil || len(all) != 2 {
		t.Fatalf("operator's list: %v, %v", all, err)
	}
}
