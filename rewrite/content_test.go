package rewrite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pg_query "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgwarden/pgwarden/policy"
)

const sealedDir = "../testdata/rewrite/sealed"

// sealedRewriter is the demo schema under testdata/rewrite/sealed/policy.yaml:
// a content allow-list for viewers and relations granted to groups.
func sealedRewriter(t testing.TB, opts Options) *Rewriter {
	t.Helper()
	p, err := policy.Load(filepath.Join(sealedDir, "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cat := catalogFromDDL(t, readFile(t, "../testdata/demo/schema.sql"))
	r, err := New(p, cat, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestGoldenSealed runs testdata/rewrite/sealed/*.txt like TestGolden, and
// every output that is not an error on the demo database.
func TestGoldenSealed(t *testing.T) {
	opts := Options{CacheBytes: -1, MaxStatementTimeout: 5 * time.Minute, MaxWorkMem: 256 << 20, Database: "analytics"}
	r := sealedRewriter(t, opts)
	var conn interface {
		Exec(ctx context.Context, sql string) error
	}
	if !*update {
		c := demoDB(t)
		conn = execFunc(func(ctx context.Context, sql string) error {
			_, err := c.PgConn().Exec(ctx, sql).ReadAll()
			c.PgConn().Exec(ctx, "ROLLBACK").ReadAll()
			return err
		})
	}
	files, err := filepath.Glob(filepath.Join(sealedDir, "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			checkGolden(t, path, func(c *goldenCase, id *policy.Identity) string {
				res, rerr := r.Rewrite(context.Background(), c.input, id)
				if rerr == nil {
					if _, err := pg_query.Parse(res.SQL); err != nil {
						t.Errorf("%s:%d: output does not parse: %v\n%s", path, c.line, err, res.SQL)
					}
					if conn != nil && res.SQL != "" {
						if err := conn.Exec(context.Background(), res.SQL); err != nil {
							t.Errorf("%s:%d: execute: %v\n%s", path, c.line, err, res.SQL)
						}
					}
				}
				return formatOutcome(res, rerr)
			})
		})
	}
}

type execFunc func(ctx context.Context, sql string) error

func (f execFunc) Exec(ctx context.Context, sql string) error { return f(ctx, sql) }

// The allow-list is decided once per rewrite and cached with it; a cached
// template must not let a constrained parameter take another value.
func TestContentCachedConstraints(t *testing.T) {
	r := sealedRewriter(t, Options{})
	id := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleViewer}
	ctx := context.Background()
	for i, tc := range []struct {
		sql string
		ok  bool
	}{
		{"SELECT order_id, status, total FROM orders WHERE region = 'EU' ORDER BY order_id LIMIT 10", true},
		{"SELECT order_id, status, total FROM orders WHERE region = 'EU' ORDER BY order_id LIMIT 10", true},
		{"SELECT order_id, status, total FROM orders WHERE region = 'APAC' ORDER BY order_id LIMIT 10", false},
		{"SELECT order_id, status, total FROM orders WHERE region = 'NA' ORDER BY order_id LIMIT 20", true},
		{"SELECT order_id, status, total FROM orders WHERE region = 'NA' ORDER BY order_id LIMIT 101", false},
		{"SELECT order_id, status, total FROM orders WHERE region = 'APAC' ORDER BY order_id LIMIT 10", false},
		// Unconstrained: a template serves other constants.
		{"SELECT region, sum(total) AS revenue FROM orders WHERE ordered_at >= '2024-01-01' GROUP BY region ORDER BY region", true},
		{"SELECT region, sum(total) AS revenue FROM orders WHERE ordered_at >= '2025-01-01' GROUP BY region ORDER BY region", true},
		{"SELECT region, sum(total) AS revenue FROM orders GROUP BY region ORDER BY region", false},
		{"SELECT region, sum(total) AS revenue FROM orders GROUP BY region ORDER BY region", false},
	} {
		_, err := r.Rewrite(ctx, tc.sql, id)
		if (err == nil) != tc.ok {
			t.Errorf("%d: %s: err = %v, want ok=%v", i, tc.sql, err, tc.ok)
		}
	}
}

// A learning session's unlisted statements come back as Learned, from the
// cache too; listed and introspection statements do not.
func TestContentLearned(t *testing.T) {
	r := sealedRewriter(t, Options{})
	ctx := context.Background()
	learner := &policy.Identity{Kind: policy.KindEmbed, Tenant: "initech", Role: policy.RoleViewer}
	for range 3 {
		res, err := r.Rewrite(ctx, "SELECT name FROM customers WHERE customer_id = 7", learner)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Learned) != 1 {
			t.Fatalf("learned = %+v", res.Learned)
		}
		l := res.Learned[0]
		fp, _ := pg_query.Fingerprint("SELECT name FROM customers WHERE customer_id = 1")
		if l.Fingerprint != fp || !strings.Contains(l.Normalized, "customer_id = $1") {
			t.Fatalf("learned = %+v, want fingerprint %s", l, fp)
		}
	}
	for _, sql := range []string{
		"SELECT region, sum(total) AS revenue FROM orders WHERE ordered_at >= '2024-01-01' GROUP BY region ORDER BY region",
		"SELECT 1", "SHOW TimeZone",
	} {
		res, err := r.Rewrite(ctx, sql, learner)
		if err != nil || len(res.Learned) != 0 {
			t.Errorf("%s: %v, learned %+v", sql, err, res)
		}
	}
	// Another tenant is not learning.
	if _, err := r.Rewrite(ctx, "SELECT name FROM customers WHERE customer_id = 7",
		&policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleViewer}); err == nil {
		t.Fatal("acme's viewer ran an unlisted statement")
	}
}

// BenchmarkContentCached compares a cached statement of a viewer bound by
// the allow-list with the same statement of a restricted_querier, which no
// allow-list binds: the check is cached with the rewrite, so both cost the
// same (bench/ has the end-to-end A/B).
func BenchmarkContentCached(b *testing.B) {
	r := sealedRewriter(b, Options{})
	ctx := context.Background()
	for _, role := range []policy.Role{policy.RoleViewer, policy.RoleRestrictedQuerier} {
		id := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: role}
		for _, shape := range []struct{ name, sql string }{
			{"same_text", "SELECT region, sum(total) AS revenue FROM orders WHERE ordered_at >= '2024-01-01' GROUP BY region ORDER BY region"},
			{"new_constants", "SELECT region, sum(total) AS revenue FROM orders WHERE ordered_at >= '2024-01-%02d' GROUP BY region ORDER BY region"},
		} {
			b.Run(string(role)+"/"+shape.name, func(b *testing.B) {
				sqls := make([]string, 28)
				for i := range sqls {
					sqls[i] = shape.sql
					if strings.Contains(shape.sql, "%02d") {
						sqls[i] = strings.Replace(shape.sql, "%02d", twoDigits(i+1), 1)
					}
					if _, err := r.Rewrite(ctx, sqls[i], id); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := r.Rewrite(ctx, sqls[i%len(sqls)], id); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func twoDigits(n int) string { return string(rune('0'+n/10)) + string(rune('0'+n%10)) }
