package rewritebench

import (
	"fmt"
	"os"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgwarden/pgwarden"
	"github.com/pgwarden/pgwarden/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// suite is a corpus with the schema and policy it is rewritten under.
type suite struct {
	Name    string
	Schema  string // DDL and data for a fresh database
	Policy  string // policy file
	Tenant  string
	Queries []Query
	// Prepared marks queries with $n parameters (rewritten, never executed).
	Prepared map[string]bool
}

func readFile(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// suites returns every corpus the benchmarks run.
func suites(tb testing.TB) []suite {
	tb.Helper()
	bi, err := ReadQueries("../testdata/bi", "bi/")
	if err != nil {
		tb.Fatal(err)
	}
	for _, n := range Sizes {
		bi = append(bi, Query{Name: fmt.Sprintf("size/%03d", n), SQL: SizedQuery(n)})
	}
	tpch, err := ReadQueries("../../testdata/tpch", "tpch/")
	if err != nil {
		tb.Fatal(err)
	}
	pgb, err := ReadQueries("../testdata/pgbench/queries", "pgbench/")
	if err != nil {
		tb.Fatal(err)
	}
	return []suite{
		{Name: "bi", Schema: pgwarden.DemoSchema + pgwarden.DemoData, Policy: "../testdata/bi/policy.yaml", Tenant: "acme", Queries: bi},
		{Name: "tpch", Schema: readFile(tb, "../../testdata/rewrite/tpch/schema.sql") + readFile(tb, "../../testdata/rewrite/tpch/data.sql"),
			Policy: "../../testdata/rewrite/tpch/policy.yaml", Tenant: "t1", Queries: tpch},
		{Name: "pgbench", Schema: readFile(tb, "../testdata/pgbench/schema.sql"), Policy: "../testdata/pgbench/policy.yaml",
			Tenant: "t1", Queries: pgb, Prepared: map[string]bool{"pgbench/select_prepared": true}},
	}
}

// TestSizedQuery checks that the generated query has exactly n table
// references and parses.
func TestSizedQuery(t *testing.T) {
	for _, n := range Sizes {
		sql := SizedQuery(n)
		tree, err := pg_query.ParseToJSON(sql)
		if err != nil {
			t.Fatalf("size %d: %v", n, err)
		}
		if got := strings.Count(tree, `"RangeVar"`); got != n {
			t.Errorf("size %d: %d RangeVar nodes, want %d", n, got, n)
		}
	}
}

func TestCorpusSizes(t *testing.T) {
	want := map[string]int{"bi": 8 + len(Sizes), "tpch": 22, "pgbench": 2}
	for _, s := range suites(t) {
		if len(s.Queries) < want[s.Name] {
			t.Errorf("suite %s: %d queries, want at least %d", s.Name, len(s.Queries), want[s.Name])
		}
	}
}

// BenchmarkParseDeparse is the baseline: pg_query parse then deparse, no policy.
func BenchmarkParseDeparse(b *testing.B) {
	for _, s := range suites(b) {
		for _, q := range s.Queries {
			b.Run(q.Name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					tree, err := pg_query.Parse(q.SQL)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := pg_query.Deparse(tree); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
