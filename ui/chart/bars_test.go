package chart

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestBarsWellFormed(t *testing.T) {
	many := make([]Bar, 250)
	for i := range many {
		many[i] = Bar{Label: fmt.Sprintf("run %d", i), Value: float64(i * 7), State: []string{"ok", "failed", ""}[i%3]}
	}
	tests := []struct {
		name   string
		opts   BarOptions
		noData bool
		rects  int
	}{
		{name: "zero options", opts: BarOptions{}, noData: true},
		{name: "one bar", opts: BarOptions{Bars: []Bar{{Label: "vm", Value: 30}}, Value: Axis{Unit: Duration}}, rects: 1},
		{name: "all zero", opts: BarOptions{Bars: []Bar{{Label: "a"}, {Label: "b"}}}, rects: 2},
		{name: "all equal", opts: BarOptions{Bars: []Bar{{Label: "a", Value: 5}, {Label: "b", Value: 5}}}, rects: 2},
		{name: "negative", opts: BarOptions{Bars: []Bar{{Label: "a", Value: -5}, {Label: "b", Value: 3}}}, rects: 2},
		{name: "NaN and Inf", opts: BarOptions{Bars: []Bar{{Label: "a", Value: math.NaN()}, {Label: "b", Value: math.Inf(1)}, {Label: "c", Value: 1}}}, rects: 1},
		{name: "only NaN", opts: BarOptions{Bars: []Bar{{Label: "a", Value: math.NaN()}}}, rects: 0},
		{name: "huge", opts: BarOptions{Bars: []Bar{{Label: "a", Value: math.MaxFloat64}, {Label: "b", Value: -math.MaxFloat64}}, Value: Axis{Unit: Bytes}}, rects: 2},
		{name: "empty labels", opts: BarOptions{Bars: []Bar{{Value: 1}, {Label: "   ", Value: 2}}}, rects: 2},
		{name: "many bars", opts: BarOptions{Bars: many, Value: Axis{Label: "Duration", Unit: Duration}}, rects: maxBarsShown},
		{name: "narrow", opts: BarOptions{Width: 10, Bars: []Bar{{Label: strings.Repeat("x", 100), Value: 1e9}}, Value: Axis{Unit: BytesPerSecond}}, rects: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := checkSVG(t, Bars(tt.opts))
			if got := doc.hasText(noData); got != tt.noData {
				t.Errorf("shows %q: %v, want %v", noData, got, tt.noData)
			}
			if got := doc.elements["rect"]; got != tt.rects {
				t.Errorf("%d bars drawn, want %d", got, tt.rects)
			}
			if doc.root["width"] != "100%" {
				t.Errorf("width = %q", doc.root["width"])
			}
		})
	}
}

func TestBarsContent(t *testing.T) {
	long := "database-primary-production-eu-west-1"
	opts := BarOptions{
		Title: "Job durations",
		Value: Axis{Label: "Duration", Unit: Duration},
		Bars: []Bar{
			{Label: "web-01", Value: 300, State: "ok"},
			{Label: long, Value: 5400, State: "failed"},
			{Label: hostile, Value: 1200, State: `warning"><script>`},
			{Label: "pending", Value: math.NaN()},
		},
	}
	out := string(Bars(opts))
	doc := checkSVG(t, Bars(opts))
	if strings.Contains(out, "<script>") {
		t.Errorf("unescaped label")
	}
	for _, want := range []string{"web-01", "5 min", "1.5 h", "20 min", "n/a", "database-primary-produc…", "Duration", "0", "1 h"} {
		if !doc.hasText(want) {
			t.Errorf("no text %q in %q", want, doc.texts)
		}
	}
	for _, want := range []string{long + ": 1.5 h (failed)", "web-01: 5 min (ok)", hostile + `: 20 min (warning"><script>)`, "pending: n/a"} {
		found := false
		for _, ti := range doc.titles {
			found = found || ti == want
		}
		if !found {
			t.Errorf("no bar title %q in %q", want, doc.titles)
		}
	}
	for _, c := range []string{"chart-bars", "chart-bar", "state-ok", "state-failed", "state-warningscript"} {
		if !doc.hasClass(c) {
			t.Errorf("no class %q in %q", c, doc.classes)
		}
	}
	if !strings.Contains(out, `fill="`+stateColor("failed")+`"`) {
		t.Errorf("failed bar not in the failure colour")
	}
	for _, want := range []string{"Bar chart of Duration, 4 bars:", long + " 1.5 h (failed)", "pending n/a"} {
		if !strings.Contains(doc.desc, want) {
			t.Errorf("desc %q lacks %q", doc.desc, want)
		}
	}
}

func TestBarsMoreNote(t *testing.T) {
	bars := make([]Bar, maxBarsShown+5)
	for i := range bars {
		bars[i] = Bar{Label: "x", Value: 1}
	}
	doc := checkSVG(t, Bars(BarOptions{Bars: bars}))
	if !doc.hasText("+5 more not shown") {
		t.Errorf("no overflow note")
	}
	if !strings.Contains(doc.desc, "105 bars") || !strings.Contains(doc.desc, "and 85 more") {
		t.Errorf("desc %q", doc.desc)
	}
}
