package rewrite

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/policy"
)

// scaleSizes are the constant counts of BenchmarkConstants: each pass over
// a statement must cost about the same per constant at every size.
var scaleSizes = []int{100, 1000, 10000, 100000, 1000000}

// manyConsts is a query on the pgbench table with n integer constants, as
// an IN list or as an OR chain; off shifts every constant so that two
// statements of one shape differ.
func manyConsts(shape string, n, off int) string {
	var b strings.Builder
	b.Grow(n * 16)
	b.WriteString("SELECT abalance FROM pgbench_accounts WHERE ")
	for k := 0; k < n; k++ {
		v := strconv.Itoa(off + k + 1)
		switch {
		case shape == "in" && k == 0:
			b.WriteString("aid IN (" + v)
		case shape == "in":
			b.WriteString(", " + v)
		case k == 0:
			b.WriteString("aid = " + v)
		default:
			b.WriteString(" OR aid = " + v)
		}
	}
	if shape == "in" {
		b.WriteByte(')')
	}
	return b.String()
}

// BenchmarkConstants rewrites statements of 10^2 … 10^6 constants and
// reports ns/const: flat across sizes when every pass is linear.
//   - first: the shape's first statement (a miss: full rewrite, template,
//     the check that it matches, the prepared form);
//   - template: a later statement of the shape (normalize, instantiate,
//     prepared form);
//   - uncached: the cache off (parse, walk, deparse).
func BenchmarkConstants(b *testing.B) {
	id := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleQuerier}
	// No time budget: a million constants take longer than the default's.
	gate, err := NewGate(Limits{Timeout: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	for _, shape := range []string{"in", "or"} {
		for _, n := range scaleSizes {
			if testing.Short() && n > 10000 {
				continue
			}
			q := manyConsts(shape, n, 0)
			run := func(b *testing.B, r func() *Rewriter, next func(i int) string) {
				b.ReportAllocs()
				b.SetBytes(int64(len(q)))
				cpu0 := cpuTime()
				for i := 0; b.Loop(); i++ {
					if _, err := r().Rewrite(context.Background(), next(i), id); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/const")
				// The process's CPU time, GC included: steadier than wall
				// time on a shared machine.
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/float64(n), "cpu-ns/const")
			}
			b.Run(fmt.Sprintf("%s/first/%d", shape, n), func(b *testing.B) {
				r := pgbenchRewriter(b, Options{Gate: gate})
				run(b, func() *Rewriter {
					r.cache = newCache(defaultCacheBytes) // forget the shape
					return r
				}, func(int) string { return q })
			})
			b.Run(fmt.Sprintf("%s/template/%d", shape, n), func(b *testing.B) {
				r := pgbenchRewriter(b, Options{Gate: gate})
				if _, err := r.Rewrite(context.Background(), q, id); err != nil {
					b.Fatal(err)
				}
				// Two variants whose exact texts the cache does not keep
				// (too big for it at the larger sizes; alternated below).
				vs := []string{manyConsts(shape, n, 7), manyConsts(shape, n, 11)}
				run(b, func() *Rewriter { return r }, func(i int) string {
					if n <= 10000 {
						return manyConsts(shape, n, 13+i) // a new text each time
					}
					return vs[i%2]
				})
			})
			b.Run(fmt.Sprintf("%s/uncached/%d", shape, n), func(b *testing.B) {
				r := pgbenchRewriter(b, Options{CacheBytes: -1, Gate: gate})
				run(b, func() *Rewriter { return r }, func(int) string { return q })
			})
		}
	}
}
