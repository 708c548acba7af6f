package rewrite

import "testing"

// BenchmarkNormalize finds the constants of the statements the simple
// protocol sends most: pgbench's select, a TPC-H query and a BI tile query.
func BenchmarkNormalize(b *testing.B) {
	for _, c := range []struct{ name, sql string }{
		{"pgbench", "SELECT abalance FROM pgbench_accounts WHERE aid = 4244;"},
		{"tpch_q06", readFile(b, "../testdata/tpch/q06.sql")},
		{"tpch_q19", readFile(b, "../testdata/tpch/q19.sql")},
		{"bi_kpi", readFile(b, "../bench/testdata/bi/07_kpi_tiles.sql")},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				normalize(nil, c.sql)
			}
		})
	}
}
