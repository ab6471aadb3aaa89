package chart

import (
	"fmt"
	"html/template"
	"math"
	"sort"
	"strings"
	"time"
)

// Point is one sample of a time series.
type Point struct {
	X time.Time
	Y float64
}

// Series is a named line. Dashed draws it dashed, as for a projection.
type Series struct {
	Name   string
	Points []Point
	Dashed bool
}

// Reference is a horizontal line across a chart, such as the pool
// capacity. It is labelled with Label followed by the formatted Value
// ("capacity 10 TiB").
type Reference struct {
	Label string
	Value float64
}

// LineOptions describes a time-line chart.
type LineOptions struct {
	// ID prefixes the ids of the chart's title and description. Empty
	// means one derived from the content, so distinct charts on a page get
	// distinct ids; two identical charts then share them (harmless, as
	// they name identical text), which an ID keeps HTML-valid.
	ID    string
	Title string
	// Description is the text alternative read by screen readers. Empty
	// means one is written from the data: span, latest, lowest and
	// highest value of each series.
	Description string
	Series      []Series
	Y           Axis
	XLabel      string
	// Reference, when set, draws a labelled horizontal line.
	Reference *Reference
	// Now, when set, draws a vertical "now" marker.
	Now time.Time
	// Location is the time zone of the tick labels; nil means that of
	// the first point.
	Location *time.Location
	// Width and Height are the viewBox size; zero means 640×240. The SVG
	// scales to its container's width either way.
	Width, Height int
}

// Layout of a time line, in viewBox units.
const (
	legendRowHeight = 16
	legendMaxRows   = 3
	maxPointsShown  = 40 // series up to this length get a circle per point
	minTickSpacing  = 56 // horizontal room per time-tick label
	minRowSpacing   = 45 // vertical room per value tick
)

// TimeLine renders series over time as an SVG line chart with nice time
// and value ticks, an optional reference line and "now" marker, a legend
// when there is more than one series, and a circle per point when a
// series has few. NaN and infinite values are dropped; when nothing is
// left, the chart says "No data yet".
func TimeLine(opts LineOptions) template.HTML {
	w, h := clampSize(opts.Width, 640, 200), clampSize(opts.Height, 240, 120)
	title := strings.TrimSpace(opts.Title)
	if title == "" {
		title = "Chart"
	}

	series := make([][]Point, len(opts.Series))
	total := 0
	loc := opts.Location
	for i, s := range opts.Series {
		series[i] = cleanPoints(s.Points)
		total += len(series[i])
		if loc == nil && len(series[i]) > 0 {
			loc = series[i][0].X.Location()
		}
	}
	if loc == nil {
		loc = time.UTC
	}
	id := chartID(opts.ID, func(hh *idHash) {
		hh.str("timeline")
		hh.str(opts.Title)
		hh.str(opts.Description)
		hh.str(opts.Y.Label)
		hh.u64(uint64(opts.Y.Unit))
		hh.str(opts.XLabel)
		if r := opts.Reference; r != nil {
			hh.str(r.Label)
			hh.f64(r.Value)
		}
		hh.time(opts.Now)
		for i, s := range opts.Series {
			hh.str(s.Name)
			for _, p := range series[i] {
				hh.time(p.X)
				hh.f64(p.Y)
			}
		}
	})
	ref := opts.Reference
	if ref != nil && !finite(ref.Value) {
		ref = nil
	}
	if ref != nil {
		r := *ref
		r.Value = clampValue(r.Value)
		ref = &r
	}

	var b svgBuf
	if total == 0 {
		desc := opts.Description
		if desc == "" {
			desc = noData + "."
		}
		b.open(id, "chart-timeline chart-no-data", w, h, `width="100%"`, title, desc)
		b.noDataText(w, h, fontSize+2)
		return b.close()
	}

	// Domains.
	x0, x1 := math.Inf(1), math.Inf(-1)
	lo, hi := 0.0, 0.0
	for _, pts := range series {
		for _, p := range pts {
			x := unixSeconds(p.X)
			x0, x1 = math.Min(x0, x), math.Max(x1, x)
			lo, hi = math.Min(lo, p.Y), math.Max(hi, p.Y)
		}
	}
	if !opts.Now.IsZero() {
		x := unixSeconds(opts.Now)
		x0, x1 = math.Min(x0, x), math.Max(x1, x)
	}
	switch span := x1 - x0; {
	case span == 0:
		x0, x1 = x0-3600, x1+3600
	case span < 60:
		mid := x0 + span/2
		x0, x1 = mid-30, mid+30
	}
	if ref != nil {
		lo, hi = math.Min(lo, ref.Value), math.Max(hi, ref.Value)
		if ref.Value > 0 && ref.Value == hi {
			// Room above the line for its label.
			hi += (hi/2 - lo/2) * 0.2
		}
	}

	// Vertical layout: legend on top, time labels below.
	var legend []legendItem
	top := 12.0
	if len(opts.Series) > 1 {
		legend = layoutLegend(opts.Series, w)
		top = 18 + float64(legend[len(legend)-1].row+1)*legendRowHeight
	}
	bottom := 24.0
	if opts.XLabel != "" {
		bottom += 16
	}
	if h-top-bottom < 60 {
		h = top + bottom + 60
	}
	plotH := h - top - bottom

	yTicks, _, yLabels := valueTicks(lo, hi, max(3, int(plotH/minRowSpacing)+1), opts.Y.Unit)
	yLo, yHi := yTicks[0], yTicks[len(yTicks)-1]
	labelW := 0.0
	for _, l := range yLabels {
		labelW = math.Max(labelW, textWidth(l))
	}
	left := 6 + labelW + 8
	if opts.Y.Label != "" {
		left += 16
	}
	right := 16.0
	plotW := w - left - right
	if plotW < 60 {
		w = left + right + 60
		plotW = 60
	}
	px := func(x float64) float64 { return left + (x-x0)/(x1-x0)*plotW }
	py := func(v float64) float64 { return top + plotH - (v-yLo)/(yHi-yLo)*plotH }
	t0, t1 := timeAt(x0), timeAt(x1)
	xTicks := timeTicks(t0, t1, max(2, int(plotW/minTickSpacing)), loc)

	desc := opts.Description
	if desc == "" {
		desc = describeLine(opts, series, ref, t0, t1, loc)
	}
	b.open(id, "chart-timeline", w, h, `width="100%"`, title, desc)

	// Grid and value labels.
	b.f(`<g class="chart-grid" stroke="%s" stroke-width="1">`, gridColor)
	for _, t := range yTicks {
		y := py(t)
		b.f(`<line x1="%s" y1="%s" x2="%s" y2="%s"/>`, num(left), num(y), num(left+plotW), num(y))
	}
	b.WriteString(`</g>`)
	b.f(`<g class="chart-axis chart-axis-y" fill="%s" text-anchor="end">`, textColor)
	for i, t := range yTicks {
		b.f(`<text x="%s" y="%s" dy="0.35em">%s</text>`, num(left-6), num(py(t)), esc(yLabels[i]))
	}
	b.WriteString(`</g>`)

	// Time axis.
	base := top + plotH
	b.f(`<g class="chart-axis chart-axis-x" stroke="%s" stroke-width="1">`, mutedColor)
	b.f(`<line x1="%s" y1="%s" x2="%s" y2="%s"/>`, num(left), num(base), num(left+plotW), num(base))
	if yLo < 0 && yHi > 0 {
		b.f(`<line class="chart-zero" x1="%s" y1="%s" x2="%s" y2="%s"/>`, num(left), num(py(0)), num(left+plotW), num(py(0)))
	}
	for _, t := range xTicks {
		x := px(unixSeconds(t.At))
		b.f(`<line x1="%s" y1="%s" x2="%s" y2="%s"/>`, num(x), num(base), num(x), num(base+4))
	}
	b.WriteString(`</g>`)
	b.f(`<g class="chart-axis chart-axis-x" fill="%s">`, textColor)
	for _, t := range xTicks {
		x := px(unixSeconds(t.At))
		b.f(`<text x="%s" y="%s" text-anchor="%s">%s</text>`, num(x), num(base+16), anchorFor(x, textWidth(t.Label), 0, w), esc(t.Label))
	}
	b.WriteString(`</g>`)
	if opts.Y.Label != "" {
		b.f(`<text class="chart-axis-label" transform="rotate(-90)" x="%s" y="12" text-anchor="middle" fill="%s">%s</text>`,
			num(-(top + plotH/2)), textColor, esc(truncate(opts.Y.Label, int(plotH/charWidth))))
	}
	if opts.XLabel != "" {
		b.f(`<text class="chart-axis-label" x="%s" y="%s" text-anchor="middle" fill="%s">%s</text>`,
			num(left+plotW/2), num(h-6), textColor, esc(truncate(opts.XLabel, int(plotW/charWidth))))
	}

	// Reference line and now marker.
	if ref != nil {
		y := py(ref.Value)
		label := opts.Y.Unit.Format(ref.Value)
		if l := strings.TrimSpace(ref.Label); l != "" {
			label = l + " " + label
		}
		ly := y - 4
		if ly-fontSize < top {
			ly = y + fontSize + 2
		}
		b.f(`<g class="chart-reference"><line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1.5"/>`,
			num(left), num(y), num(left+plotW), num(y), refColor)
		b.f(`<text x="%s" y="%s" text-anchor="end" fill="%s">%s</text></g>`,
			num(left+plotW-4), num(ly), refColor, esc(truncate(label, int(plotW/charWidth))))
	}
	if !opts.Now.IsZero() {
		x := px(unixSeconds(opts.Now))
		b.f(`<g class="chart-now"><line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1" stroke-dasharray="4 3"/>`,
			num(x), num(top), num(x), num(base), mutedColor)
		tx, anchor := x+3, "start"
		if tx+textWidth("now") > w {
			tx, anchor = x-3, "end"
		}
		b.f(`<text x="%s" y="%s" text-anchor="%s" fill="%s">now</text></g>`, num(tx), num(top+fontSize), anchor, mutedColor)
	}

	// Series.
	for i, pts := range series {
		if len(pts) == 0 {
			continue
		}
		s := opts.Series[i]
		color := seriesColor(i)
		class := fmt.Sprintf("chart-line series-%d", i)
		dash := ""
		if s.Dashed {
			class += " chart-dashed"
			dash = ` stroke-dasharray="6 4"`
		}
		drawn := thin(pts, func(p Point) float64 { return px(unixSeconds(p.X)) - left }, int(plotW))
		var d strings.Builder
		for j, p := range drawn {
			cmd := "L"
			if j == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&d, "%s%s %s", cmd, num(px(unixSeconds(p.X))), num(py(p.Y)))
		}
		b.f(`<path class="%s" d="%s" fill="none" stroke="%s" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"%s>`,
			class, d.String(), color, dash)
		if s.Name != "" {
			b.f(`<title>%s</title>`, esc(s.Name))
		}
		b.WriteString(`</path>`)
		if len(pts) <= maxPointsShown {
			b.f(`<g class="chart-point series-%d" fill="%s">`, i, color)
			for _, p := range pts {
				tip := p.X.In(loc).Format("Mon 02 Jan 15:04") + ": " + opts.Y.Unit.Format(p.Y)
				if s.Name != "" {
					tip = s.Name + ", " + tip
				}
				b.f(`<circle cx="%s" cy="%s" r="3"><title>%s</title></circle>`, num(px(unixSeconds(p.X))), num(py(p.Y)), esc(tip))
			}
			b.WriteString(`</g>`)
		}
	}

	if len(legend) > 0 {
		b.WriteString(`<g class="chart-legend">`)
		for _, it := range legend {
			y := 10 + float64(it.row)*legendRowHeight + legendRowHeight/2
			if it.more > 0 {
				b.f(`<text x="%s" y="%s" dy="0.35em" fill="%s">+%d more</text>`, num(it.x), num(y), mutedColor, it.more)
				continue
			}
			s := opts.Series[it.index]
			dash := ""
			if s.Dashed {
				dash = ` stroke-dasharray="4 3"`
			}
			b.f(`<g class="chart-legend-item series-%d"><line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2"%s/>`,
				it.index, num(it.x), num(y), num(it.x+14), num(y), seriesColor(it.index), dash)
			b.f(`<text x="%s" y="%s" dy="0.35em" fill="%s">%s`, num(it.x+18), num(y), textColor, esc(it.label))
			if it.label != it.full {
				b.f(`<title>%s</title>`, esc(it.full))
			}
			b.WriteString(`</text></g>`)
		}
		b.WriteString(`</g>`)
	}
	return b.close()
}

// legendItem is one placed legend entry, or the "+N more" note.
type legendItem struct {
	index       int
	label, full string
	x           float64
	row         int
	more        int
}

// layoutLegend places the series names in rows across the width, wrapping
// as needed; what does not fit in legendMaxRows rows is summarised.
func layoutLegend(series []Series, w float64) []legendItem {
	const left, gap = 8.0, 14.0
	var items []legendItem
	x, row := left, 0
	for i, s := range series {
		full := strings.TrimSpace(s.Name)
		if full == "" {
			full = fmt.Sprintf("Series %d", i+1)
		}
		label := truncate(full, 28)
		width := 18 + textWidth(label)
		if x > left && x+width > w-8 {
			x, row = left, row+1
		}
		if row >= legendMaxRows {
			last := &items[len(items)-1]
			*last = legendItem{x: last.x, row: last.row, more: len(series) - last.index}
			break
		}
		items = append(items, legendItem{index: i, label: label, full: full, x: x, row: row})
		x += width + gap
	}
	return items
}

// cleanPoints drops points with NaN or infinite values, clamps huge ones
// and sorts by time.
func cleanPoints(in []Point) []Point {
	out := make([]Point, 0, len(in))
	for _, p := range in {
		if finite(p.Y) {
			out = append(out, Point{X: p.X, Y: clampValue(p.Y)})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].X.Before(out[j].X) })
	return out
}

// hugeValue bounds plotted magnitudes so that ranges and tick arithmetic
// stay finite.
const hugeValue = 1e300

func clampValue(v float64) float64 {
	return math.Max(-hugeValue, math.Min(hugeValue, v))
}

// thin reduces a sorted series to at most two points (its lowest and
// highest, in order) per pixel column when it has more than two per
// column, so that peaks survive. col maps a point to its column.
func thin(pts []Point, col func(Point) float64, width int) []Point {
	width = max(width, 1)
	if len(pts) <= 2*width {
		return pts
	}
	out := make([]Point, 0, 2*width+2)
	for i := 0; i < len(pts); {
		c := int(col(pts[i]))
		lo, hi := i, i
		j := i + 1
		for ; j < len(pts) && int(col(pts[j])) == c; j++ {
			if pts[j].Y < pts[lo].Y {
				lo = j
			}
			if pts[j].Y > pts[hi].Y {
				hi = j
			}
		}
		first, second := min(lo, hi), max(lo, hi)
		out = append(out, pts[first])
		if second != first {
			out = append(out, pts[second])
		}
		i = j
	}
	return out
}

// describeLine writes the text alternative of a time line.
func describeLine(opts LineOptions, series [][]Point, ref *Reference, t0, t1 time.Time, loc *time.Location) string {
	const layout = "2 Jan 2006 15:04"
	var b strings.Builder
	fmt.Fprintf(&b, "Time line from %s to %s.", t0.In(loc).Format(layout), t1.In(loc).Format(layout))
	u := opts.Y.Unit
	shown := 0
	for i, pts := range series {
		if len(pts) == 0 {
			continue
		}
		if shown == 6 {
			fmt.Fprintf(&b, " And %d more series.", countNonEmpty(series[i:]))
			break
		}
		shown++
		name := strings.TrimSpace(opts.Series[i].Name)
		if name == "" {
			name = fmt.Sprintf("Series %d", i+1)
		}
		lo, hi := pts[0].Y, pts[0].Y
		for _, p := range pts {
			lo, hi = math.Min(lo, p.Y), math.Max(hi, p.Y)
		}
		last := pts[len(pts)-1]
		fmt.Fprintf(&b, " %s: %d point", name, len(pts))
		if len(pts) != 1 {
			b.WriteString("s")
		}
		fmt.Fprintf(&b, ", latest %s on %s, lowest %s, highest %s.",
			u.Format(last.Y), last.X.In(loc).Format(layout), u.Format(lo), u.Format(hi))
	}
	if ref != nil {
		label := strings.TrimSpace(ref.Label)
		if label == "" {
			label = "Reference"
		}
		fmt.Fprintf(&b, " %s %s.", label, u.Format(ref.Value))
	}
	return b.String()
}

func countNonEmpty(series [][]Point) int {
	n := 0
	for _, s := range series {
		if len(s) > 0 {
			n++
		}
	}
	return n
}

// anchorFor keeps a centred label of width tw at x inside [lo, hi].
func anchorFor(x, tw, lo, hi float64) string {
	switch {
	case x-tw/2 < lo:
		return "start"
	case x+tw/2 > hi:
		return "end"
	}
	return "middle"
}

// timeAt is the inverse of unixSeconds.
func timeAt(s float64) time.Time {
	sec := math.Floor(s)
	return time.Unix(int64(sec), int64((s-sec)*1e9))
}

// clampSize applies the default and bounds to a requested size.
func clampSize(v, def, lo int) float64 {
	if v <= 0 {
		v = def
	}
	return float64(max(lo, min(v, 4000)))
}
