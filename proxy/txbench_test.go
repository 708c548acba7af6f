//go:build unix

package proxy

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/proxy/pool"
)

// BenchmarkTransactionPath is one single-statement transaction through the
// proxy in transaction mode, as pgbench runs them in each protocol: a
// simple Query, an unnamed Parse … Sync (extended) and a Bind … Sync of a
// statement prepared once (prepared). The logger is off, so allocs/op is
// the proxy's per transaction plus the client's (pgconn: a few, the same
// in every run); cpu-ns/op is this process's CPU, the proxy's and the
// client's, which holds up on a shared machine where ns/op does not.
func BenchmarkTransactionPath(b *testing.B) {
	tp := startProxyTB(b, func(_ *Config, d *Deps) {
		d.Logger = zap.NewNop()
		d.Warehouses["wh"].Pool.Mode = pool.Transaction
		d.Warehouses["wh"].SetRewriter(&cachingRewriter{}) // a repeated text's result, as package rewrite's cache
	})
	ctx := context.Background()
	conn, err := pgconn.Connect(ctx, tp.url("tok-acme", "wh", ""))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(ctx) })
	const q = "SELECT total FROM orders WHERE order_id = $1"
	if _, err := conn.Prepare(ctx, "point", q, nil); err != nil {
		b.Fatal(err)
	}
	args := [][]byte{[]byte("2")}
	for _, bc := range []struct {
		name string
		run  func() error
	}{
		{"simple", func() error { return conn.Exec(ctx, "SELECT total FROM orders WHERE order_id = 2").Close() }},
		{"extended", func() error { _, err := conn.ExecParams(ctx, q, args, nil, nil, nil).Close(); return err }},
		{"prepared", func() error { _, err := conn.ExecPrepared(ctx, "point", args, nil, nil).Close(); return err }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for range 100 { // warm: the pool's connection, the statement on it
				if err := bc.run(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			cpu0 := processCPU()
			n := 0
			for b.Loop() {
				if err := bc.run(); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(processCPU()-cpu0)/float64(n), "cpu-ns/op")
		})
	}
}
