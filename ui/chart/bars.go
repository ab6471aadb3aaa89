package chart

import (
	"fmt"
	"html/template"
	"math"
	"strings"
)

// Bar is one category of a bar chart: a job run, a VM, a policy.
type Bar struct {
	Label string
	Value float64
	// State, when set, adds the class "state-<State>" to the bar and, for
	// the known states ok, warning, failed and skipped (and their usual
	// synonyms), its colour, so that failed runs stand out.
	State string
}

// BarOptions describes a bar chart.
type BarOptions struct {
	// ID, Title and Description work as in LineOptions; the written
	// description lists the bars with their values.
	ID          string
	Title       string
	Description string
	Bars        []Bar
	// Value is the axis of the bar lengths.
	Value Axis
	// Width is the viewBox width; zero means 640. The height follows
	// from the number of bars.
	Width int
}

// Layout of a bar chart, in viewBox units.
const (
	barRowHeight = 22
	barHeight    = 14
	barLabelMax  = 24  // runes of a category label before the ellipsis
	maxBarsShown = 100 // bars beyond these are summarised in a note
)

// Bars renders horizontal bars, one row per category in the given order,
// with the label on the left (truncated with an ellipsis; the full text is
// in the bar's <title> for hover) and the formatted value after the bar.
// Bars may be negative; NaN values show "n/a" without a bar. Without bars
// the chart says "No data yet".
func Bars(opts BarOptions) template.HTML {
	w := clampSize(opts.Width, 640, 200)
	title := strings.TrimSpace(opts.Title)
	if title == "" {
		title = "Chart"
	}
	id := chartID(opts.ID, func(h *idHash) {
		h.str("bars")
		h.str(opts.Title)
		h.str(opts.Description)
		h.str(opts.Value.Label)
		h.u64(uint64(opts.Value.Unit))
		for _, bar := range opts.Bars {
			h.str(bar.Label)
			h.f64(bar.Value)
			h.str(bar.State)
		}
	})
	var b svgBuf
	if len(opts.Bars) == 0 {
		desc := opts.Description
		if desc == "" {
			desc = noData + "."
		}
		const h = 80
		b.open(id, "chart-bars chart-no-data", w, h, `width="100%"`, title, desc)
		b.noDataText(w, h, fontSize+2)
		return b.close()
	}

	bars := opts.Bars
	hidden := 0
	if len(bars) > maxBarsShown {
		hidden = len(bars) - maxBarsShown
		bars = bars[:maxBarsShown]
	}
	u := opts.Value.Unit
	lo, hi := 0.0, 0.0
	labels := make([]string, len(bars))
	values := make([]float64, len(bars))
	valueText := make([]string, len(bars))
	labelBudget := min(barLabelMax, max(4, int(w*0.35/charWidth)))
	labelW, valueW := 0.0, 0.0
	for i, bar := range bars {
		labels[i] = truncate(bar.Label, labelBudget)
		labelW = math.Max(labelW, textWidth(labels[i]))
		v := bar.Value
		if finite(v) {
			v = clampValue(v)
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
		values[i] = v
		valueText[i] = u.Format(v)
		valueW = math.Max(valueW, textWidth(valueText[i]))
	}

	top := 8.0
	left := 6 + labelW + 8
	right := valueW + 12
	plotW := w - left - right
	if plotW < 60 {
		w = left + right + 60
		plotW = 60
	}
	rowsH := float64(len(bars)) * barRowHeight
	h := top + rowsH + 24
	if opts.Value.Label != "" {
		h += 16
	}
	if hidden > 0 {
		h += barRowHeight
	}
	ticks, _, tickLabels := valueTicks(lo, hi, max(2, int(plotW/80)+1), u)
	vLo, vHi := ticks[0], ticks[len(ticks)-1]
	px := func(v float64) float64 { return left + (v-vLo)/(vHi-vLo)*plotW }

	desc := opts.Description
	if desc == "" {
		desc = describeBars(opts.Value, bars, hidden)
	}
	b.open(id, "chart-bars", w, h, `width="100%"`, title, desc)

	base := top + rowsH
	b.f(`<g class="chart-grid" stroke="%s" stroke-width="1">`, gridColor)
	for _, t := range ticks {
		x := px(t)
		b.f(`<line x1="%s" y1="%s" x2="%s" y2="%s"/>`, num(x), num(top), num(x), num(base))
	}
	b.WriteString(`</g>`)
	b.f(`<g class="chart-axis chart-axis-x" fill="%s">`, textColor)
	for i, t := range ticks {
		x := px(t)
		b.f(`<text x="%s" y="%s" text-anchor="%s">%s</text>`, num(x), num(base+16), anchorFor(x, textWidth(tickLabels[i]), 0, w), esc(tickLabels[i]))
	}
	b.WriteString(`</g>`)
	zero := px(0)
	b.f(`<line class="chart-axis chart-zero" x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1"/>`,
		num(zero), num(top), num(zero), num(base), mutedColor)
	if opts.Value.Label != "" {
		b.f(`<text class="chart-axis-label" x="%s" y="%s" text-anchor="middle" fill="%s">%s</text>`,
			num(left+plotW/2), num(h-6-float64(min(hidden, 1))*barRowHeight), textColor, esc(truncate(opts.Value.Label, int(plotW/charWidth))))
	}

	for i, bar := range bars {
		state := className(bar.State)
		class := "chart-bar"
		if state != "" {
			class += " state-" + state
		}
		cy := top + float64(i)*barRowHeight + barRowHeight/2
		tip := strings.TrimSpace(bar.Label) + ": " + valueText[i]
		if s := strings.TrimSpace(bar.State); s != "" {
			tip += " (" + s + ")"
		}
		b.f(`<g class="%s"><title>%s</title>`, class, esc(tip))
		b.f(`<text class="chart-bar-label" x="%s" y="%s" dy="0.35em" text-anchor="end" fill="%s">%s</text>`,
			num(left-6), num(cy), textColor, esc(labels[i]))
		v := values[i]
		valueX := zero + 4
		if finite(v) {
			x0, x1 := math.Min(zero, px(v)), math.Max(zero, px(v))
			b.f(`<rect x="%s" y="%s" width="%s" height="%d" rx="2" fill="%s"/>`,
				num(x0), num(cy-barHeight/2), num(x1-x0), barHeight, stateColor(state))
			valueX = math.Max(zero, x1) + 4
		}
		b.f(`<text class="chart-bar-value" x="%s" y="%s" dy="0.35em" fill="%s">%s</text></g>`,
			num(valueX), num(cy), textColor, esc(valueText[i]))
	}
	if hidden > 0 {
		b.f(`<text class="chart-more" x="%s" y="%s" fill="%s">+%d more not shown</text>`,
			num(left), num(h-8), mutedColor, hidden)
	}
	return b.close()
}

// describeBars lists the bars and their values for screen readers.
func describeBars(axis Axis, bars []Bar, hidden int) string {
	const listed = 20
	var b strings.Builder
	b.WriteString("Bar chart")
	if l := strings.TrimSpace(axis.Label); l != "" {
		b.WriteString(" of " + l)
	}
	fmt.Fprintf(&b, ", %d bar", len(bars)+hidden)
	if len(bars)+hidden != 1 {
		b.WriteString("s")
	}
	b.WriteString(":")
	for i, bar := range bars {
		if i == listed {
			break
		}
		if i > 0 {
			b.WriteString(";")
		}
		fmt.Fprintf(&b, " %s %s", strings.TrimSpace(bar.Label), axis.Unit.Format(bar.Value))
		if s := strings.TrimSpace(bar.State); s != "" {
			fmt.Fprintf(&b, " (%s)", s)
		}
	}
	if more := len(bars) + hidden - listed; more > 0 {
		fmt.Fprintf(&b, "; and %d more", more)
	}
	b.WriteString(".")
	return b.String()
}
