package proxy

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgwarden/pgwarden/proxy/pool"
)

// benchConns returns a direct warehouse connection, one through the proxy
// and one through the proxy in LATIN1 (the converting path).
func benchConns(b *testing.B) (direct, proxied, latin1 *pgconn.PgConn) {
	tp := startProxyTB(b, nil)
	ctx := context.Background()
	var err error
	if direct, err = pgconn.Connect(ctx, tp.dbURL); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { direct.Close(ctx) })
	if proxied, err = pgconn.Connect(ctx, tp.url("tok-acme", "wh", "")); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { proxied.Close(ctx) })
	if latin1, err = pgconn.Connect(ctx, tp.url("tok-acme", "wh", "client_encoding=LATIN1")); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { latin1.Close(ctx) })
	return direct, proxied, latin1
}

// BenchmarkStream10kRows relays a 10,000-row result (~1.1 MB).
func BenchmarkStream10kRows(b *testing.B) {
	direct, proxied, latin1 := benchConns(b)
	const q = "SELECT g, repeat('x', 100) FROM generate_series(1, 10000) g"
	for _, bc := range []struct {
		name string
		conn *pgconn.PgConn
	}{{"direct", direct}, {"proxy", proxied}, {"proxy-latin1", latin1}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(10000 * 110)
			for b.Loop() {
				rr := bc.conn.ExecParams(context.Background(), q, nil, nil, nil, nil)
				for rr.NextRow() {
				}
				if _, err := rr.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPointQuery is the round trip of a small prepared query.
func BenchmarkPointQuery(b *testing.B) {
	tp := startProxyTB(b, func(_ *Config, d *Deps) { d.Warehouses["wh"].Pool.Mode = pool.Transaction })
	sp := startProxyTB(b, func(_ *Config, d *Deps) { d.Warehouses["wh"].Pool.Mode = pool.Session })
	ctx := context.Background()
	for _, bc := range []struct{ name, url string }{
		{"direct", tp.dbURL}, {"proxy-transaction", tp.url("tok-acme", "wh", "")}, {"proxy-session", sp.url("tok-acme", "wh", "")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			conn, err := pgx.Connect(ctx, bc.url)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close(ctx)
			b.ReportAllocs()
			var total int
			for b.Loop() {
				if err := conn.QueryRow(ctx, "SELECT total FROM orders WHERE order_id = $1", 2).Scan(&total); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
