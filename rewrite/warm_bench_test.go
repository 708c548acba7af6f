package rewrite

import (
	"context"
	"strconv"
	"testing"

	"github.com/pgwarden/pgwarden/policy"
)

// BenchmarkWarm is the rewriter's share of a pgbench -S transaction once
// its shape is known, with an identity like a ticket's embed session:
// simple sends a new literal every time (the exact-text cache misses and
// the template answers), extended the same text with $1 (the exact-text
// cache answers), groups is simple for a session with groups and
// attributes in its key. cpu-ns/op is the process's CPU time per op.
func BenchmarkWarm(b *testing.B) {
	ctx := context.Background()
	plain := &policy.Identity{SessionID: "bench-session", Kind: policy.KindEmbed, Tenant: "t1", ExternalID: "bench",
		Role: policy.RoleQuerier}
	grouped := &policy.Identity{SessionID: "bench-session", Kind: policy.KindEmbed, Tenant: "t1", ExternalID: "bench",
		Role: policy.RoleQuerier, Groups: []string{"analysts", "finance"},
		Attributes: map[string][]string{"regions": {"EU", "NA"}, "level": {"3"}}}
	// Literals cycle, but a template's answer is not cached by its text,
	// so every one misses the exact-text cache as in pgbench.
	sqls := make([]string, 1<<14)
	for i := range sqls {
		sqls[i] = "SELECT abalance FROM pgbench_accounts WHERE aid = " + strconv.Itoa(i*37+1) + ";"
	}
	for _, c := range []struct {
		name string
		id   *policy.Identity
		run  func(r *Rewriter, id *policy.Identity, i int) (*Result, error)
	}{
		{"simple", plain, func(r *Rewriter, id *policy.Identity, i int) (*Result, error) {
			return r.Rewrite(ctx, sqls[i%len(sqls)], id)
		}},
		{"extended", plain, func(r *Rewriter, id *policy.Identity, i int) (*Result, error) {
			return r.RewriteParams(ctx, "SELECT abalance FROM pgbench_accounts WHERE aid = $1;", id, nil)
		}},
		{"groups", grouped, func(r *Rewriter, id *policy.Identity, i int) (*Result, error) {
			return r.Rewrite(ctx, sqls[i%len(sqls)], id)
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			r := pgbenchRewriter(b, Options{})
			if _, err := c.run(r, c.id, 0); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 1
			cpu0 := cpuTime()
			for b.Loop() {
				res, err := c.run(r, c.id, i)
				if err != nil {
					b.Fatal(err)
				}
				if c.name != "extended" && res.Prepared == nil {
					b.Fatal("no prepared form")
				}
				i++
			}
			// CPU time, GC included, survives a busy machine better
			// than ns/op.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
