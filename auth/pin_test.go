package auth

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"testing"
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
