package auth

import (
	"context"
	"testing"
)

// BenchmarkMintExchange mints a ticket and exchanges it for a session
// against the real PostgreSQL store (one transaction per exchange).
func BenchmarkMintExchange(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	req := acmeRequest()
	b.ReportAllocs()
	for b.Loop() {
		tok, _, err := e.svc.MintTicket(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := e.svc.ExchangeTicket(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkMintExchangeParallel is the same with concurrent clients.
func BenchmarkMintExchangeParallel(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	req := acmeRequest()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tok, _, err := e.svc.MintTicket(ctx, req)
			if err != nil {
				b.Error(err)
				return
			}
			if _, _, err := e.svc.ExchangeTicket(ctx, tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkAuthenticateSession is the proxy's per-connection check of a
// session token: offline verification plus one revocation lookup.
func BenchmarkAuthenticateSession(b *testing.B) {
	e := newEnv(b)
	v := e.verifier()
	_, tok := e.session()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Authenticate(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
