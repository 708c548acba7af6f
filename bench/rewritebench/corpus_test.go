package rewritebench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	pg_query "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgwarden/pgwarden"
	"github.com/pgwarden/pgwarden/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const biDir = "../testdata/bi"

// TestCorpusRunsOnDemo checks that every BI query and every generated query is
// valid SQL over the demo schema: PostgreSQL must plan and run it.
func TestCorpusRunsOnDemo(t *testing.T) {
	qs, err := BIQueries(biDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) < 8 {
		t.Fatalf("%d BI queries, want at least 8", len(qs))
	}
	url := pgtest.NewDatabase(t, pgwarden.DemoSchema+pgwarden.DemoData)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, q := range qs {
		t.Run(q.Name, func(t *testing.T) {
			rows, err := conn.Query(ctx, q.SQL)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for rows.Next() {
				n++
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Errorf("no rows: a dashboard query over the demo data should return some")
			}
		})
	}
	// Only the small sizes are worth planning; the big ones are checked by
	// the parser below.
	for _, n := range []int{1, 10} {
		t.Run(fmt.Sprintf("size%d", n), func(t *testing.T) {
			if _, err := conn.Exec(ctx, "EXPLAIN "+SizedQuery(n)); err != nil {
				t.Fatal(err)
			}
		})
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

// BenchmarkParseDeparse is the baseline: pg_query parse then deparse, no policy.
func BenchmarkParseDeparse(b *testing.B) {
	for _, q := range benchCorpus(b) {
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

// benchCorpus is every query the benchmarks of this package run, named
// "bi/<file>" and "size/<n>".
func benchCorpus(b testing.TB) []Query {
	qs, err := BIQueries(biDir)
	if err != nil {
		b.Fatal(err)
	}
	var out []Query
	for _, q := range qs {
		out = append(out, Query{Name: "bi/" + q.Name, SQL: q.SQL})
	}
	for _, n := range Sizes {
		out = append(out, Query{Name: fmt.Sprintf("size/%03d", n), SQL: SizedQuery(n)})
	}
	return out
}
