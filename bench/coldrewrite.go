package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// coldTarget is issue #21's bound on a cold rewrite: at most this many times
// pg_query's parse + deparse of the same query.
const coldTarget = 1.3

// coldRow is one query of rewritebench's BenchmarkColdRewrite: the phases it
// times in the same loop, in ns, and their same-run ratio.
type coldRow struct {
	Query                                 string
	Parse, Deparse, ParseDeparse, Rewrite float64
	Ratio                                 float64 // median over the -count runs of each run's ratio
}

// coldRows picks the BenchmarkColdRewrite results out of bs, in run order.
func coldRows(bs []goBench) []coldRow {
	var out []coldRow
	for _, b := range bs {
		q, ok := strings.CutPrefix(b.Name, "ColdRewrite/")
		if !ok || b.Metrics["x-parse+deparse"] == 0 {
			continue
		}
		m := b.Metrics
		out = append(out, coldRow{Query: q, Parse: m["parse-ns/op"], Deparse: m["deparse-ns/op"],
			ParseDeparse: m["parse+deparse-ns/op"], Rewrite: m["rewrite-ns/op"], Ratio: m["x-parse+deparse"]})
	}
	return out
}

// writeColdRewrite renders the per-query table of a cold rewrite against
// parse + deparse, with the median and the maximum ratio over the corpora
// and the queries above the target.
func writeColdRewrite(w io.Writer, rows []coldRow) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "Cold rewrite (cache off) against pg_query's parse and deparse of the same query, timed in the same loop\n")
	fmt.Fprintf(w, "(BenchmarkColdRewrite: each figure is the median over a run's iterations, the ratio the median of each iteration's\n")
	fmt.Fprintf(w, "own, then the median over the runs; target ≤ %s):\n\n", fmtRatio(coldTarget))
	var table [][]string
	rs := make([]float64, 0, len(rows))
	for _, r := range rows {
		table = append(table, []string{r.Query, fmtF(r.Parse/1000, 1), fmtF(r.Deparse/1000, 1), fmtF(r.ParseDeparse/1000, 1),
			fmtF(r.Rewrite/1000, 1), fmtRatio(r.Ratio)})
		rs = append(rs, r.Ratio)
	}
	mdTable(w, []string{"query", ">parse µs", ">deparse µs", ">parse+deparse µs", ">cold rewrite µs", ">ratio"}, table)
	worst := append([]coldRow(nil), rows...)
	sort.SliceStable(worst, func(i, j int) bool { return worst[i].Ratio > worst[j].Ratio })
	var over []string
	for _, r := range worst {
		if r.Ratio > coldTarget {
			over = append(over, fmt.Sprintf("%s %s", r.Query, fmtRatio(r.Ratio)))
		}
	}
	fmt.Fprintf(w, "\nRatio over %d queries: median %s, max %s (%s).", len(rows), fmtRatio(median(rs)), fmtRatio(worst[0].Ratio), worst[0].Query)
	if len(over) == 0 {
		fmt.Fprintf(w, " Every query is within %s.\n\n", fmtRatio(coldTarget))
	} else {
		fmt.Fprintf(w, " Above %s: %s.\n\n", fmtRatio(coldTarget), strings.Join(over, ", "))
	}
}
