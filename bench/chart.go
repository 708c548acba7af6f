package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// barGroup is one cluster of bars, one value per series (NaN: not measured).
type barGroup struct {
	Label  string
	Values []float64
}

// barPanel is one chart with its own y scale.
type barPanel struct {
	Title  string
	YLabel string
	Groups []barGroup
}

var (
	seriesColors = []color.RGBA{
		{0x4c, 0x72, 0xb0, 0xff}, // blue
		{0xdd, 0x84, 0x52, 0xff}, // orange
		{0x55, 0xa8, 0x68, 0xff}, // green
		{0xc4, 0x4e, 0x52, 0xff}, // red
		{0x81, 0x72, 0xb3, 0xff}, // purple
	}
	colInk  = color.RGBA{0x22, 0x22, 0x22, 0xff}
	colGrid = color.RGBA{0xe2, 0xe2, 0xe2, 0xff}
	colAxis = color.RGBA{0x88, 0x88, 0x88, 0xff}
)

const (
	chartWidth   = 1200
	panelHeight  = 300
	legendHeight = 56
	marginLeft   = 80
	marginRight  = 20
	panelTop     = 34 // title band
	panelBottom  = 30 // group labels
	glyphW       = 7  // basicfont.Face7x13 advance
)

// drawBarChart renders grouped bars: one panel per entry of panels, stacked,
// with a legend naming series on top.
func drawBarChart(title string, series []string, panels []barPanel) *image.RGBA {
	h := legendHeight + len(panels)*panelHeight
	img := image.NewRGBA(image.Rect(0, 0, chartWidth, h))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	text(img, 12, 18, title, colInk)
	// Legend.
	x := 12
	for i, s := range series {
		fillRect(img, x, 32, x+14, 46, seriesColors[i%len(seriesColors)])
		text(img, x+20, 44, s, colInk)
		x += 20 + len(s)*glyphW + 24
	}
	for i, p := range panels {
		drawPanel(img, legendHeight+i*panelHeight, p, len(series))
	}
	return img
}

func drawPanel(img *image.RGBA, top int, p barPanel, nSeries int) {
	text(img, marginLeft, top+20, p.Title, colInk)
	plotTop := top + panelTop
	plotBottom := top + panelHeight - panelBottom
	plotLeft, plotRight := marginLeft, chartWidth-marginRight
	maxV := 0.0
	for _, g := range p.Groups {
		for _, v := range g.Values {
			if !math.IsNaN(v) && v > maxV {
				maxV = v
			}
		}
	}
	step := niceStep(maxV * 1.12 / 5)
	top5 := step * math.Ceil(maxV*1.12/step)
	if top5 == 0 {
		top5 = 1
	}
	yOf := func(v float64) int { return plotBottom - int(math.Round(v/top5*float64(plotBottom-plotTop))) }
	for v := 0.0; v <= top5+step/2; v += step {
		y := yOf(v)
		fillRect(img, plotLeft, y, plotRight, y+1, colGrid)
		lbl := humanize(v)
		text(img, plotLeft-8-len(lbl)*glyphW, y+4, lbl, colAxis)
	}
	if p.YLabel != "" {
		text(img, 8, plotTop-6, p.YLabel, colAxis)
	}
	fillRect(img, plotLeft, plotBottom, plotRight, plotBottom+1, colAxis)
	if len(p.Groups) == 0 {
		return
	}
	groupW := float64(plotRight-plotLeft) / float64(len(p.Groups))
	barW := int(groupW * 0.8 / float64(nSeries))
	for gi, g := range p.Groups {
		gx := plotLeft + int(float64(gi)*groupW+groupW*0.1)
		centre := plotLeft + int(float64(gi)*groupW+groupW/2)
		text(img, centre-len(g.Label)*glyphW/2, plotBottom+18, g.Label, colInk)
		for si, v := range g.Values {
			x0 := gx + si*barW
			x1 := x0 + barW - 3
			mid := (x0 + x1) / 2
			if math.IsNaN(v) {
				text(img, mid-3*glyphW/2, plotBottom-4, "n/a", colAxis)
				continue
			}
			y := yOf(v)
			fillRect(img, x0, y, x1, plotBottom, seriesColors[si%len(seriesColors)])
			lbl := humanize(v)
			text(img, mid-len(lbl)*glyphW/2, y-4, lbl, colInk)
		}
	}
}

// niceStep rounds x up to 1, 2 or 5 times a power of ten.
func niceStep(x float64) float64 {
	if x <= 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}

// humanize prints 950, 1.2k, 12k, 1.5M.
func humanize(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return trimZero(fmt.Sprintf("%.1f", v/1e6)) + "M"
	case a >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case a >= 1e3:
		return trimZero(fmt.Sprintf("%.1f", v/1e3)) + "k"
	case a >= 10 || a == 0:
		return fmt.Sprintf("%.0f", v)
	default:
		return trimZero(fmt.Sprintf("%.1f", v))
	}
}

func trimZero(s string) string {
	if len(s) > 2 && s[len(s)-2:] == ".0" {
		return s[:len(s)-2]
	}
	return s
}

func fillRect(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	draw.Draw(img, image.Rect(x0, y0, x1, y1), &image.Uniform{C: c}, image.Point{}, draw.Src)
}

func text(img *image.RGBA, x, y int, s string, c color.Color) {
	d := &font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13,
		Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func writePNG(w io.Writer, img image.Image) error { return png.Encode(w, img) }
