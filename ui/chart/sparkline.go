package chart

import (
	"fmt"
	"html/template"
	"math"
	"strings"
)

// Sparkline renders a tiny trend line of values, in order, sized w×h
// pixels (zero means 120×32), for dashboard tiles. The last value gets a
// dot. NaN and infinite values are dropped; without values it says
// "No data yet".
func Sparkline(values []float64, w, h int) template.HTML {
	fw, fh := float64(w), float64(h)
	if w <= 0 {
		fw = 120
	}
	if h <= 0 {
		fh = 32
	}
	fw, fh = math.Max(16, math.Min(fw, 4000)), math.Max(8, math.Min(fh, 4000))
	vs := make([]float64, 0, len(values))
	for _, v := range values {
		if finite(v) {
			vs = append(vs, clampValue(v))
		}
	}
	id := chartID("", func(hh *idHash) {
		hh.str("sparkline")
		for _, v := range vs {
			hh.f64(v)
		}
	})
	size := fmt.Sprintf(`width="%s" height="%s"`, num(fw), num(fh))
	var b svgBuf
	if len(vs) == 0 {
		b.open(id, "chart-sparkline chart-no-data", fw, fh, size, "Trend", noData+".")
		b.noDataText(fw, fh, math.Min(fontSize, fh*0.6))
		return b.close()
	}
	lo, hi := vs[0], vs[0]
	for _, v := range vs {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	desc := fmt.Sprintf("Trend of %d values from %s to %s, lowest %s, highest %s.",
		len(vs), formatNum(vs[0], autoDecimals(vs[0])), formatNum(vs[len(vs)-1], autoDecimals(vs[len(vs)-1])),
		formatNum(lo, autoDecimals(lo)), formatNum(hi, autoDecimals(hi)))
	b.open(id, "chart-sparkline", fw, fh, size, "Trend", desc)

	const pad = 2.5
	px := func(i int) float64 {
		if len(vs) == 1 {
			return fw - pad
		}
		return pad + float64(i)/float64(len(vs)-1)*(fw-2*pad)
	}
	py := func(v float64) float64 {
		if hi == lo {
			return fh / 2
		}
		return fh - pad - (v/2-lo/2)/(hi/2-lo/2)*(fh-2*pad)
	}
	// Thin to at most two values (lowest and highest) per pixel column.
	type iv struct {
		i int
		v float64
	}
	pts := make([]iv, 0, min(len(vs), 2*int(fw)+2))
	for i := 0; i < len(vs); {
		c := int(px(i))
		lo, hi := i, i
		j := i + 1
		for ; j < len(vs) && int(px(j)) == c; j++ {
			if vs[j] < vs[lo] {
				lo = j
			}
			if vs[j] > vs[hi] {
				hi = j
			}
		}
		pts = append(pts, iv{min(lo, hi), vs[min(lo, hi)]})
		if lo != hi {
			pts = append(pts, iv{max(lo, hi), vs[max(lo, hi)]})
		}
		i = j
	}
	var d strings.Builder
	for k, p := range pts {
		cmd := "L"
		if k == 0 {
			cmd = "M"
		}
		fmt.Fprintf(&d, "%s%s %s", cmd, num(px(p.i)), num(py(p.v)))
	}
	if len(pts) == 1 {
		fmt.Fprintf(&d, "L%s %s", num(pad), num(py(vs[0])))
	}
	color := seriesColor(0)
	b.f(`<path class="chart-line series-0" d="%s" fill="none" stroke="%s" stroke-width="1.5" stroke-linejoin="round" stroke-linecap="round"/>`, d.String(), color)
	last := len(vs) - 1
	b.f(`<circle class="chart-point series-0" cx="%s" cy="%s" r="2" fill="%s"/>`, num(px(last)), num(py(vs[last])), color)
	return b.close()
}
