package main

import (
	"bufio"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// goBench is one Go benchmark, summarized over its -count runs.
type goBench struct {
	Pkg         string // import path from the "pkg:" line
	Name        string // without the "Benchmark" prefix and the -GOMAXPROCS suffix
	Runs        int
	NsPerOp     float64 // median
	BytesPerOp  float64 // median
	AllocsPerOp float64 // median
	// Metrics are the medians of the metrics a benchmark reports itself
	// (b.ReportMetric), by unit.
	Metrics map[string]float64
}

var benchLine = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$`)

// parseGoBench reads `go test -bench -benchmem` output and returns one entry
// per (package, benchmark) in order of first appearance, with medians over the
// repeated runs of -count.
func parseGoBench(r io.Reader) ([]goBench, error) {
	type acc struct {
		pkg, name         string
		ns, bytes, allocs []float64
		metrics           map[string][]float64
	}
	var order []string
	accs := map[string]*acc{}
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		key := pkg + "\x00" + m[1]
		a := accs[key]
		if a == nil {
			a = &acc{pkg: pkg, name: m[1], metrics: map[string][]float64{}}
			accs[key] = a
			order = append(order, key)
		}
		f := strings.Fields(m[3])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				a.ns = append(a.ns, v)
			case "B/op":
				a.bytes = append(a.bytes, v)
			case "allocs/op":
				a.allocs = append(a.allocs, v)
			default:
				a.metrics[f[i+1]] = append(a.metrics[f[i+1]], v)
			}
		}
	}
	out := make([]goBench, 0, len(order))
	for _, k := range order {
		a := accs[k]
		b := goBench{Pkg: a.pkg, Name: a.name, Runs: len(a.ns),
			NsPerOp: medianOrZero(a.ns), BytesPerOp: medianOrZero(a.bytes), AllocsPerOp: medianOrZero(a.allocs)}
		for unit, vs := range a.metrics {
			if b.Metrics == nil {
				b.Metrics = map[string]float64{}
			}
			b.Metrics[unit] = median(vs)
		}
		out = append(out, b)
	}
	return out, sc.Err()
}

// rewriteRatio pairs a rewrite benchmark with the parse+deparse baseline of the
// same query.
type rewriteRatio struct {
	Query          string
	RewriteNs      float64
	RewriteAllocs  float64
	BaselineNs     float64
	BaselineAllocs float64
	Ratio          float64 // RewriteNs / BaselineNs
}

// baselineKinds name benchmark families that measure pg_query parse followed
// by deparse, without any policy work.
var baselineKinds = []string{"ParseDeparse", "ParseAndDeparse", "Parse_Deparse", "Baseline"}

// splitBenchName splits "RewriteTPCH/q01" into family "RewriteTPCH" and query
// "q01"; a benchmark without sub-benchmarks has query "".
func splitBenchName(name string) (family, query string) {
	family, query, _ = strings.Cut(name, "/")
	return family, query
}

// familyKind classifies a benchmark family as "rewrite", "baseline" or "", and
// returns the corpus suffix, so that RewriteTPCH pairs with ParseDeparseTPCH.
func familyKind(family string) (kind, corpus string) {
	for _, b := range baselineKinds {
		if c, ok := strings.CutPrefix(family, b); ok {
			return "baseline", c
		}
	}
	if c, ok := strings.CutPrefix(family, "Rewrite"); ok {
		return "rewrite", c
	}
	return "", ""
}

// Leaf names by which a benchmark says what it measures when the family is
// split by sub-benchmarks instead ("Rewrite/tpch/parse_deparse" next to
// "Rewrite/tpch/rewrite_uncached", as package rewrite does).
var (
	baselineLeaves = map[string]bool{"parse_deparse": true, "parsedeparse": true, "ParseDeparse": true}
	rewriteLeaves  = map[string]bool{"rewrite_uncached": true, "rewrite": true, "Rewrite": true}
)

// pairKey says which baseline a rewrite benchmark is compared with.
type pairKey struct{ pkg, corpus, query string }

// classify returns whether b is a rewrite or a baseline benchmark and the key
// that pairs the two; kind is "" for anything else.
func classify(b goBench) (kind string, k pairKey) {
	if i := strings.LastIndex(b.Name, "/"); i >= 0 {
		prefix, leaf := b.Name[:i], b.Name[i+1:]
		switch {
		case baselineLeaves[leaf]:
			return "baseline", pairKey{b.Pkg, "/", prefix}
		case rewriteLeaves[leaf]:
			return "rewrite", pairKey{b.Pkg, "/", prefix}
		}
	}
	fam, q := splitBenchName(b.Name)
	kind, corpus := familyKind(fam)
	return kind, pairKey{b.Pkg, corpus, q}
}

// pairRewriteBaseline matches every rewrite benchmark with the baseline of the
// same package, corpus and query.
func pairRewriteBaseline(bs []goBench) []rewriteRatio {
	base := map[pairKey]goBench{}
	for _, b := range bs {
		if kind, k := classify(b); kind == "baseline" {
			base[k] = b
		}
	}
	var out []rewriteRatio
	for _, b := range bs {
		kind, k := classify(b)
		if kind != "rewrite" {
			continue
		}
		bb, ok := base[k]
		if !ok || bb.NsPerOp == 0 {
			continue
		}
		name := b.Name
		if k.corpus == "/" {
			name = shortPkg(b.Pkg) + ": " + k.query + " (one op = the whole corpus)"
		}
		out = append(out, rewriteRatio{Query: name, RewriteNs: b.NsPerOp, RewriteAllocs: b.AllocsPerOp,
			BaselineNs: bb.NsPerOp, BaselineAllocs: bb.AllocsPerOp, Ratio: b.NsPerOp / bb.NsPerOp})
	}
	return out
}

func medianOrZero(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return median(xs)
}
