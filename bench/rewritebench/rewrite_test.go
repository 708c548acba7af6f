package rewritebench

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	pg_query "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/rewrite"
)

// identity is an embed session of tenant with full ad-hoc access.
func identity(tenant string) *policy.Identity {
	return &policy.Identity{SessionID: "bench", Kind: policy.KindEmbed, Tenant: tenant,
		ExternalID: "bench-user", Role: policy.RoleQuerier}
}

// newRewriter loads the suite's policy, reads its catalog from a fresh
// database holding the suite's schema and builds a rewriter with the given
// cache size (negative: none). It returns the database URL too.
func newRewriter(tb testing.TB, s suite, cacheBytes int64) (*rewrite.Rewriter, string) {
	tb.Helper()
	pol, err := policy.Load(s.Policy)
	if err != nil {
		tb.Fatal(err)
	}
	return rewriterFor(tb, pol, s.Schema, cacheBytes)
}

// rewriterFor builds a rewriter for pol over the catalog of a fresh
// database holding schema, and returns that database's URL too.
func rewriterFor(tb testing.TB, pol *policy.Policy, schema string, cacheBytes int64) (*rewrite.Rewriter, string) {
	tb.Helper()
	url := pgtest.NewDatabase(tb, schema)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(context.Background())
	cat, err := policy.LoadCatalog(ctx, conn, pol)
	if err != nil {
		tb.Fatal(err)
	}
	rw, err := rewrite.New(pol, cat, rewrite.Options{CacheBytes: cacheBytes})
	if err != nil {
		tb.Fatal(err)
	}
	return rw, url
}

// TestCorpus checks that every benchmark query is valid SQL on its schema, is
// accepted by the rewriter, and that the output parses again and runs.
func TestCorpus(t *testing.T) {
	for _, s := range suites(t) {
		t.Run(s.Name, func(t *testing.T) {
			rw, url := newRewriter(t, s, -1)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			for _, q := range s.Queries {
				t.Run(strings.TrimPrefix(q.Name, s.Name+"/"), func(t *testing.T) {
					res, err := rw.Rewrite(context.Background(), q.SQL, identity(s.Tenant))
					if err != nil {
						t.Fatalf("rewrite: %v", err)
					}
					if _, err := pg_query.Parse(res.SQL); err != nil {
						t.Fatalf("rewritten SQL does not parse: %v\n%s", err, res.SQL)
					}
					if s.Prepared[q.Name] || q.Name == "size/050" || q.Name == "size/200" {
						return // parameters, or a join too big to be worth planning
					}
					prefix := ""
					if strings.HasPrefix(q.Name, "size/") {
						prefix = "EXPLAIN " // a 10-way self-join on the tenant key is a cross product
					}
					for _, sql := range []string{prefix + q.SQL, prefix + res.SQL} {
						rows, err := conn.Query(ctx, sql)
						if err == nil {
							rows.Close()
							err = rows.Err()
						}
						if err != nil {
							t.Fatalf("fails on PostgreSQL: %v\n%s", err, sql)
						}
					}
				})
			}
		})
	}
}

// BenchmarkRewrite measures a full rewrite (parse, policy walk, deparse) with
// the rewrite cache off; pair it with BenchmarkParseDeparse of the same query.
func BenchmarkRewrite(b *testing.B) {
	benchRewrite(b, -1)
}

// BenchmarkRewriteCached is the steady state of a dashboard that reruns the
// same statements: the rewrite cache answers.
func BenchmarkRewriteCached(b *testing.B) {
	benchRewrite(b, 0)
}

func benchRewrite(b *testing.B, cacheBytes int64) {
	for _, s := range suites(b) {
		rw, _ := newRewriter(b, s, cacheBytes)
		id := identity(s.Tenant)
		for _, q := range s.Queries {
			b.Run(q.Name, func(b *testing.B) {
				b.ReportAllocs()
				if _, err := rw.Rewrite(context.Background(), q.SQL, id); err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					if _, err := rw.Rewrite(context.Background(), q.SQL, id); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkRewriteNewConstant is the proxy's path under pgbench -S: the same
// statement with another constant every time, so the exact-text cache
// misses and the statement's template answers.
func BenchmarkRewriteNewConstant(b *testing.B) {
	for _, s := range suites(b) {
		if s.Name != "pgbench" {
			continue
		}
		rw, _ := newRewriter(b, s, 0)
		id := identity(s.Tenant)
		b.ReportAllocs()
		aid := 0
		for b.Loop() {
			aid++
			sql := fmt.Sprintf("SELECT abalance FROM pgbench_accounts WHERE aid = %d;", aid)
			if _, err := rw.Rewrite(context.Background(), sql, id); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkColdRewrite measures, per query and in the same loop, pg_query's
// parse, its deparse of that tree and a cold rewrite (cache off) of the same
// text, so that their ratio is a same-run figure that survives a noisy
// machine: each iteration times the three back to back, and the figures are
// medians over the iterations, so that an iteration that lost its core to
// another process counts no more than one that did not. It reports
// parse-ns/op, deparse-ns/op, parse+deparse-ns/op, rewrite-ns/op and, as
// x-parse+deparse, the median of each iteration's rewrite ÷ (parse +
// deparse); ns/op is the whole loop's mean.
func BenchmarkColdRewrite(b *testing.B) {
	ctx := context.Background()
	for _, s := range suites(b) {
		rw, _ := newRewriter(b, s, -1)
		id := identity(s.Tenant)
		for _, q := range s.Queries {
			b.Run(q.Name, func(b *testing.B) {
				if _, err := rw.Rewrite(ctx, q.SQL, id); err != nil {
					b.Fatal(err)
				}
				var parse, deparse, both, rewrite, ratio []float64
				for b.Loop() {
					t0 := time.Now()
					tree, err := pg_query.Parse(q.SQL)
					t1 := time.Now()
					if err == nil {
						_, err = pg_query.Deparse(tree)
					}
					t2 := time.Now()
					if err == nil {
						_, err = rw.Rewrite(ctx, q.SQL, id)
					}
					t3 := time.Now()
					if err != nil {
						b.Fatal(err)
					}
					p, d, r := float64(t1.Sub(t0)), float64(t2.Sub(t1)), float64(t3.Sub(t2))
					parse, deparse, both, rewrite = append(parse, p), append(deparse, d), append(both, p+d), append(rewrite, r)
					ratio = append(ratio, r/(p+d))
				}
				b.ReportMetric(median(parse), "parse-ns/op")
				b.ReportMetric(median(deparse), "deparse-ns/op")
				b.ReportMetric(median(both), "parse+deparse-ns/op")
				b.ReportMetric(median(rewrite), "rewrite-ns/op")
				b.ReportMetric(median(ratio), "x-parse+deparse")
			})
		}
	}
}

// median sorts xs and returns its middle value.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}
