package rewrite

import (
	"context"
	"strconv"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgwarden/pgwarden/policy"
)

const tpchPolicy = "../testdata/rewrite/tpch/policy.yaml"

func benchRewriter(b testing.TB, policyPath, ddl string, opts Options) *Rewriter {
	b.Helper()
	p, err := policy.Load(policyPath)
	if err != nil {
		b.Fatal(err)
	}
	r, err := New(p, catalogFromDDL(b, ddl), opts)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

const pgbenchDDL = `CREATE TABLE pgbench_accounts (tenant_id text NOT NULL, aid int NOT NULL, bid int, abalance int, filler char(84));`

func pgbenchRewriter(b testing.TB, opts Options) *Rewriter {
	b.Helper()
	p, err := policy.Parse([]byte("relations:\n  public.pgbench_accounts: {tenant_column: tenant_id}\n"), "pgbench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	r, err := New(p, catalogFromDDL(b, pgbenchDDL), opts)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkRewrite compares, per corpus, parsing alone, parse+deparse, a full
// uncached rewrite and a cache hit. One op = the whole corpus.
func BenchmarkRewrite(b *testing.B) {
	id := &policy.Identity{Kind: policy.KindEmbed, Tenant: "acme", Role: policy.RoleQuerier,
		Groups: []string{"analysts"}, Attributes: map[string][]string{"regions": {"EU"}}}
	corpora := []struct {
		name    string
		queries []string
		r       func(b *testing.B, o Options) *Rewriter
	}{
		{"tpch", tpchQueries(b), func(b *testing.B, o Options) *Rewriter {
			return benchRewriter(b, tpchPolicy, readFile(b, "../testdata/rewrite/tpch/schema.sql"), o)
		}},
		{"pgbench", []string{"SELECT abalance FROM pgbench_accounts WHERE aid = $1"}, func(b *testing.B, o Options) *Rewriter { return pgbenchRewriter(b, o) }},
	}
	for _, c := range corpora {
		b.Run(c.name+"/parse", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				for _, q := range c.queries {
					if _, err := pg_query.Parse(q); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(c.name+"/parse_deparse", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				for _, q := range c.queries {
					tree, err := pg_query.Parse(q)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := pg_query.Deparse(tree); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(c.name+"/rewrite_uncached", func(b *testing.B) {
			r := c.r(b, Options{CacheBytes: -1})
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, q := range c.queries {
					if _, err := r.Rewrite(context.Background(), q, id); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(c.name+"/rewrite_template", func(b *testing.B) {
			// The simple protocol: the same shapes with new constants
			// each time, so only the template can answer.
			r := c.r(b, Options{})
			variants := make([][]string, len(c.queries))
			for i, q := range c.queries {
				if n, ok := normalize(nil, strings.ReplaceAll(q, "$1", "1")); ok {
					for v := range 64 {
						consts := make([]string, len(n.consts))
						for k, kind := range n.kinds {
							consts[k] = n.consts[k]
							if kind == constInt {
								consts[k] = strconv.Itoa(v*1000 + k + 1)
							}
						}
						variants[i] = append(variants[i], n.withConsts(consts))
					}
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, vs := range variants {
					if len(vs) > 0 {
						if _, err := r.Rewrite(context.Background(), vs[i%len(vs)], id); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
		})
		b.Run(c.name+"/rewrite_cached", func(b *testing.B) {
			r := c.r(b, Options{})
			for _, q := range c.queries {
				if _, err := r.Rewrite(context.Background(), q, id); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, q := range c.queries {
					if _, err := r.Rewrite(context.Background(), q, id); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
