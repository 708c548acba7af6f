package rewrite

import (
	"path/filepath"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// BenchmarkCheckDepth is the bound's cost on a cache miss next to the parse
// it guards, over the BI dashboards' statements (1-3 KB each).
func BenchmarkCheckDepth(b *testing.B) {
	files, _ := filepath.Glob("../bench/testdata/bi/*.sql")
	var qs []string
	for _, f := range files {
		qs = append(qs, readFile(b, f))
	}
	b.Run("check", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if err := checkDepth(qs[i%len(qs)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := pg_query.Parse(qs[i%len(qs)]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
