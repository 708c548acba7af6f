// Package rewritebench holds Go benchmarks of the rewriter, each next to
// pg_query's parse + deparse of the same text (the floor any rewriter built
// on pg_query pays), over three suites:
//
//   - bi: BI-style queries over the demo schema (bench/testdata/bi: wide
//     dashboards, many joins, CTEs, window functions) and generated queries
//     with 1, 10, 50 and 200 table references, to read cost against size;
//   - tpch: the 22 TPC-H queries over the tenant-keyed TPC-H schema;
//   - pgbench: the select of `pgbench -S`, the proxy's hottest statement.
//
// `make bench` runs them with go test -bench and reports the ratio.
package rewritebench

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Query is one named SQL text of a corpus.
type Query struct {
	Name string
	SQL  string
}

// ReadQueries reads the *.sql files of dir, sorted by name and named
// prefix + file name without ".sql".
func ReadQueries(dir, prefix string) ([]Query, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.sql"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []Query
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, Query{Name: prefix + strings.TrimSuffix(filepath.Base(f), ".sql"), SQL: string(b)})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no .sql files in %s", dir)
	}
	return out, nil
}

// sizeTables are the demo's tenant-keyed tables that generated queries cycle
// through; every one of them gets a tenant filter from the rewriter.
var sizeTables = []string{"orders", "customers", "order_items", "events"}

// SizedQuery returns a SELECT with n table references: a chain of n-1 joins on
// the tenant key, each with a predicate of its own, so that rewrite cost can be
// read against query size.
func SizedQuery(n int) string {
	var b strings.Builder
	b.WriteString("SELECT t0.tenant_id, count(*) AS n")
	for i := 1; i < n && i < 4; i++ {
		fmt.Fprintf(&b, ", max(t%d.tenant_id) AS m%d", i, i)
	}
	fmt.Fprintf(&b, "\nFROM %s t0", sizeTables[0])
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "\nJOIN %s t%d ON t%d.tenant_id = t%d.tenant_id", sizeTables[i%len(sizeTables)], i, i, i-1)
	}
	b.WriteString("\nWHERE t0.tenant_id IS NOT NULL")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, " AND t%d.tenant_id <> 'none%d'", i, i)
	}
	b.WriteString("\nGROUP BY t0.tenant_id")
	return b.String()
}

// Sizes are the table-reference counts of the growth benchmark.
var Sizes = []int{1, 10, 50, 200}
