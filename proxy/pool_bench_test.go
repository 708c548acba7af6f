//go:build unix

package proxy

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/opstats"
	"github.com/pgwarden/pgwarden/proxy/pool"
)

// BenchmarkPoolCheckout is a pool's checkout and return of a connection
// as a transaction makes them (metrics and statistics included), by one
// client ("idle": a connection is always idle) and by eight clients
// sharing a pool of two ("saturated": they queue and are handed
// connections).
func BenchmarkPoolCheckout(b *testing.B) {
	dbURL := pgtest.NewDatabase(b, setupSQL)
	for _, bc := range []struct {
		name    string
		size, n int
	}{{"idle", 1, 1}, {"saturated", 2, 8}} {
		b.Run(bc.name, func(b *testing.B) {
			up, err := newDSNUpstream("wh", dbURL, Config{ConnectTimeout: 5 * time.Second})
			if err != nil {
				b.Fatal(err)
			}
			m, err := newMetrics(nil)
			if err != nil {
				b.Fatal(err)
			}
			stats, err := opstats.New(opstats.Config{})
			if err != nil {
				b.Fatal(err)
			}
			p := newWarehousePool("wh", up, pool.Config{Size: bc.size}.WithDefaults(), 5*time.Second, zap.NewNop(), m, stats)
			defer p.Close()
			ctx := context.Background()
			checkout := func() {
				c, err := p.Acquire(ctx, "acme", nil)
				if err != nil {
					b.Error(err)
					return
				}
				p.Release(c, true)
			}
			var open []*pool.Backend // the pool's connections, opened first
			for range bc.size {
				c, err := p.Acquire(ctx, "acme", nil)
				if err != nil {
					b.Fatal(err)
				}
				open = append(open, c)
			}
			for _, c := range open {
				p.Release(c, true)
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU()
			var wg sync.WaitGroup
			per := b.N / bc.n
			for range bc.n {
				wg.Go(func() {
					for range per {
						checkout()
					}
				})
			}
			wg.Wait()
			// The process's CPU time per checkout holds up on a shared
			// machine, where ns/op measures the other processes too.
			b.ReportMetric(float64(processCPU()-cpu0)/float64(per*bc.n), "cpu-ns/op")
		})
	}
}

// processCPU is the CPU time (user and system) the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
