package console

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"

	"github.com/pgwarden/pgwarden/opstats"
)

// Charts are inline SVG drawn here, styled by console.css through their
// series' classes: no script, nothing loaded.

const (
	chartW, chartH         float64 = 640, 190
	padL, padR, padT, padB float64 = 52, 12, 26, 26
)

type point struct {
	t int64
	v float64
}

type series struct {
	name, class string
	bars        bool
	pts         []point
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func fmtTick(v float64, unit string) string {
	s := fmt.Sprintf("%g", v)
	if v >= 10000 {
		s = fmt.Sprintf("%.0fk", v/1000)
	}
	return s + unit
}

// chart draws series over [start, end] (Unix seconds); bars are one
// bucket wide.
func chart(id, title, unit string, start, end, bucket int64, ss []series) template.HTML {
	esc := template.HTMLEscapeString
	top := 0.0
	for _, s := range ss {
		for _, p := range s.pts {
			top = max(top, p.v)
		}
	}
	top = niceCeil(top)
	span := float64(max(end-start+bucket, 1))
	plotW, plotH := chartW-padL-padR, chartH-padT-padB
	x := func(t int64) float64 { return padL + float64(t-start)/span*plotW }
	y := func(v float64) float64 { return padT + plotH - v/top*plotH }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" data-chart="%s" viewBox="0 0 %g %g" role="img" aria-label="%s"><title>%s</title>`,
		esc(id), chartW, chartH, esc(title), esc(title))
	fmt.Fprintf(&b, `<text class="chart-title" x="%g" y="14">%s</text>`, padL, esc(title))
	// Axes and gridlines at 0, half and the top.
	for _, f := range []float64{0, 0.5, 1} {
		fmt.Fprintf(&b, `<line class="grid" x1="%g" x2="%g" y1="%.1f" y2="%.1f"/>`, padL, chartW-padR, y(f*top), y(f*top))
		fmt.Fprintf(&b, `<text class="tick" x="%g" y="%.1f" text-anchor="end">%s</text>`, padL-4, y(f*top)+4, esc(fmtTick(f*top, unit)))
	}
	for i, t := range []int64{start, start + (end-start)/2, end} {
		anchor, tx := []string{"start", "middle", "end"}[i], []float64{padL, x(t), chartW - padR}[i]
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%g" text-anchor="%s">%s</text>`, tx, chartH-8, anchor,
			time.Unix(t, 0).UTC().Format("15:04:05"))
	}
	// Legend, right-aligned on the title line.
	lx := float64(chartW) - padR
	for i := len(ss) - 1; i >= 0; i-- {
		fmt.Fprintf(&b, `<text class="legend %s" x="%.1f" y="14" text-anchor="end">%s</text>`, ss[i].class, lx, esc(ss[i].name))
		lx -= float64(len(ss[i].name))*7 + 14
	}
	bw := math.Max(plotW/span*float64(bucket)-1, 1)
	for _, s := range ss {
		sum := 0.0
		for _, p := range s.pts {
			sum += p.v
		}
		if s.bars {
			fmt.Fprintf(&b, `<g class="%s" data-series="%s" data-sum="%g">`, s.class, esc(s.name), sum)
			for _, p := range s.pts {
				if p.v > 0 && p.t >= start && p.t <= end {
					fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s %s: %g</title></rect>`,
						x(p.t), y(p.v), bw, padT+plotH-y(p.v), time.Unix(p.t, 0).UTC().Format("15:04:05"), esc(s.name), p.v)
				}
			}
			b.WriteString(`</g>`)
			continue
		}
		var pts []string
		for _, p := range s.pts {
			if p.t >= start && p.t <= end {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.t)+bw/2, y(p.v)))
			}
		}
		fmt.Fprintf(&b, `<polyline class="%s" data-series="%s" data-sum="%g" points="%s"/>`, s.class, esc(s.name), sum, strings.Join(pts, " "))
		if len(s.pts) <= 60 { // sparse series: mark each point
			fmt.Fprintf(&b, `<g class="%s">`, s.class)
			for _, p := range s.pts {
				if p.t >= start && p.t <= end && p.v > 0 {
					fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.5"><title>%s %s: %g</title></circle>`, x(p.t)+bw/2, y(p.v),
						time.Unix(p.t, 0).UTC().Format("15:04:05"), esc(s.name), p.v)
				}
			}
			b.WriteString(`</g>`)
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// filled returns one point per bucket of [start, end], 0 where v has none.
func filled(start, end, bucket int64, v map[int64]float64) []point {
	out := make([]point, 0, (end-start)/bucket+1)
	for t := start - start%bucket; t <= end; t += bucket {
		out = append(out, point{t, v[t]})
	}
	return out
}

func activityChart(t opstats.Tenant, start, end, bucket int64) template.HTML {
	st, rf, er := map[int64]float64{}, map[int64]float64{}, map[int64]float64{}
	for _, p := range t.Points {
		st[p.T], rf[p.T], er[p.T] = float64(p.Statements), float64(p.Refusals), float64(p.Errors)
	}
	return chart("activity-"+t.Tenant, t.Tenant+": statements, refusals and errors per bucket", "", start, end, bucket, []series{
		{name: "statements", class: "s-statements", pts: filled(start, end, bucket, st)},
		{name: "refusals", class: "s-refusals", bars: true, pts: filled(start, end, bucket, rf)},
		{name: "errors", class: "s-errors", bars: true, pts: filled(start, end, bucket, er)},
	})
}

func latencyChart(t opstats.Tenant, start, end, bucket int64) template.HTML {
	var p50, p95, p99 []point
	for _, p := range t.Points {
		p50, p95, p99 = append(p50, point{p.T, p.P50}), append(p95, point{p.T, p.P95}), append(p99, point{p.T, p.P99})
	}
	return chart("latency-"+t.Tenant, t.Tenant+": statement latency", " ms", start, end, bucket, []series{
		{name: "p50", class: "s-p50", pts: p50}, {name: "p95", class: "s-p95", pts: p95}, {name: "p99", class: "s-p99", pts: p99},
	})
}

func saturationChart(p opstats.Pool, start, end, bucket int64) template.HTML {
	size, use, wait := map[int64]float64{}, map[int64]float64{}, map[int64]float64{}
	for _, pt := range p.Points {
		size[pt.T], use[pt.T], wait[pt.T] = float64(pt.Size), float64(pt.InUseMax), float64(pt.WaitingMax)
	}
	// A bucket without a change still had the pool's size.
	sz := filled(start, end, bucket, size)
	for i := range sz {
		if sz[i].v == 0 {
			sz[i].v = float64(p.Size)
		}
	}
	return chart("pool-"+p.Warehouse, p.Warehouse+": pool connections in use and clients waiting (peaks)", "", start, end, bucket, []series{
		{name: "size", class: "s-size", pts: sz},
		{name: "in use", class: "s-inuse", pts: filled(start, end, bucket, use)},
		{name: "waiting", class: "s-waiting", bars: true, pts: filled(start, end, bucket, wait)},
	})
}

func waitChart(p opstats.Pool, start, end, bucket int64) template.HTML {
	var mean, most []point
	for _, pt := range p.Points {
		if pt.Waits > 0 {
			mean, most = append(mean, point{pt.T, pt.WaitMeanMs()}), append(most, point{pt.T, pt.WaitMaxMs})
		}
	}
	return chart("waits-"+p.Warehouse, p.Warehouse+": waits for a pool connection", " ms", start, end, bucket, []series{
		{name: "mean", class: "s-p50", pts: mean}, {name: "max", class: "s-p99", pts: most},
	})
}
