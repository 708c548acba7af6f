package rewritebench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/rewrite"
)

// pointLookup is a statement whose constant changes at every execution, as
// a dashboard filter's does: the rewrite cache serves it from a template.
const pointLookup = "SELECT name, country FROM customers WHERE customer_id = %d"

// contentRewriter is the bi suite's policy with a content section listing
// every BI dashboard and the point lookup, so that a viewer may run them.
func contentRewriter(tb testing.TB) (*rewrite.Rewriter, []Query) {
	tb.Helper()
	qs, err := ReadQueries("../testdata/bi", "bi/")
	if err != nil {
		tb.Fatal(err)
	}
	entries := []policy.NewContentEntry{{Name: "point_lookup", SQL: fmt.Sprintf(pointLookup, 1)}}
	for _, q := range qs {
		entries = append(entries, policy.NewContentEntry{Name: filepath.Base(q.Name), SQL: q.SQL})
	}
	data, err := os.ReadFile("../testdata/bi/policy.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	data, err = policy.AppendContent(data, "bi/policy.yaml", entries)
	if err != nil {
		tb.Fatal(err)
	}
	pol, err := policy.Parse(data, "bi/policy.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	rw, _ := rewriterFor(tb, pol, pgwarden.DemoSchema, 0)
	return rw, qs
}

// BenchmarkContentCached is the A/B of the allow-list's cost on a cached
// statement: a viewer, whom the content section binds, against a
// restricted_querier, whom it does not, running the same statements in the
// same run. The allow-list is decided when a statement is rewritten and
// cached with the rewrite, so a cached statement should cost both the same.
// point_lookup changes its constant at every execution (the template path).
func BenchmarkContentCached(b *testing.B) {
	rw, qs := contentRewriter(b)
	ctx := context.Background()
	for _, role := range []policy.Role{policy.RoleViewer, policy.RoleRestrictedQuerier} {
		id := &policy.Identity{SessionID: "bench", Kind: policy.KindEmbed, Tenant: "acme", ExternalID: "bench-user", Role: role}
		for _, q := range qs {
			b.Run(string(role)+"/"+filepath.Base(q.Name), func(b *testing.B) {
				b.ReportAllocs()
				if _, err := rw.Rewrite(ctx, q.SQL, id); err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					if _, err := rw.Rewrite(ctx, q.SQL, id); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		b.Run(string(role)+"/point_lookup", func(b *testing.B) {
			sqls := make([]string, 1000)
			for i := range sqls {
				sqls[i] = fmt.Sprintf(pointLookup, i+1)
			}
			if _, err := rw.Rewrite(ctx, sqls[0], id); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := rw.Rewrite(ctx, sqls[i%len(sqls)], id); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// TestContentCorpus checks that the A/B measures what it says: the viewer
// may run every listed statement, and not an unlisted one.
func TestContentCorpus(t *testing.T) {
	rw, qs := contentRewriter(t)
	ctx := context.Background()
	viewer := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleViewer}
	for _, q := range qs {
		if _, err := rw.Rewrite(ctx, q.SQL, viewer); err != nil {
			t.Errorf("%s: %v", q.Name, err)
		}
	}
	if _, err := rw.Rewrite(ctx, fmt.Sprintf(pointLookup, 42), viewer); err != nil {
		t.Error(err)
	}
	if _, err := rw.Rewrite(ctx, "SELECT * FROM customers", viewer); err == nil {
		t.Error("an unlisted statement ran")
	}
}

// BenchmarkContentInterleaved is BenchmarkContentCached with the two roles
// alternating in batches of 200 statements within one benchmark, so that
// a shared machine's drifting load falls on both alike: it reports each
// role's ns per statement (viewer-ns/op, rq-ns/op) and their ratio.
func BenchmarkContentInterleaved(b *testing.B) {
	rw, qs := contentRewriter(b)
	ctx := context.Background()
	ids := []*policy.Identity{
		{SessionID: "bench", Kind: policy.KindEmbed, Tenant: "acme", ExternalID: "bench-user", Role: policy.RoleViewer},
		{SessionID: "bench", Kind: policy.KindEmbed, Tenant: "acme", ExternalID: "bench-user", Role: policy.RoleRestrictedQuerier},
	}
	var sqls []string
	for _, q := range qs {
		sqls = append(sqls, q.SQL)
	}
	for i := range 200 {
		sqls = append(sqls, fmt.Sprintf(pointLookup, i+1))
	}
	for _, id := range ids {
		for _, sql := range sqls {
			if _, err := rw.Rewrite(ctx, sql, id); err != nil {
				b.Fatal(err)
			}
		}
	}
	const batch = 200
	var spent [2]time.Duration
	var ops [2]int
	b.ResetTimer()
	for n := 0; n < b.N; n += 2 * batch {
		for r, id := range ids {
			start := time.Now()
			for i := range batch {
				if _, err := rw.Rewrite(ctx, sqls[(n+i)%len(sqls)], id); err != nil {
					b.Fatal(err)
				}
			}
			spent[r] += time.Since(start)
			ops[r] += batch
		}
	}
	v := float64(spent[0].Nanoseconds()) / float64(ops[0])
	q := float64(spent[1].Nanoseconds()) / float64(ops[1])
	b.ReportMetric(v, "viewer-ns/op")
	b.ReportMetric(q, "rq-ns/op")
	b.ReportMetric(v/q, "viewer/rq")
}
