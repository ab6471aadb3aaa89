package chart

import (
	htmltemplate "html/template"
	"math"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2024, 12, 2, 0, 0, 0, 0, time.UTC)

// hourly returns n points an hour apart with values from f.
func hourly(n int, f func(i int) float64) []Point {
	pts := make([]Point, n)
	for i := range pts {
		pts[i] = Point{X: t0.Add(time.Duration(i) * time.Hour), Y: f(i)}
	}
	return pts
}

func TestTimeLineWellFormed(t *testing.T) {
	const GiB = 1 << 30
	tests := []struct {
		name   string
		opts   LineOptions
		noData bool
	}{
		{name: "zero options", opts: LineOptions{}, noData: true},
		{name: "empty series", opts: LineOptions{Series: []Series{{Name: "used"}}}, noData: true},
		{name: "only NaN and Inf", opts: LineOptions{Series: []Series{{Name: "used", Points: []Point{
			{X: t0, Y: math.NaN()}, {X: t0.Add(time.Hour), Y: math.Inf(1)}, {X: t0.Add(2 * time.Hour), Y: math.Inf(-1)},
		}}}}, noData: true},
		{name: "one point", opts: LineOptions{Series: []Series{{Name: "used", Points: []Point{{X: t0, Y: 5 * GiB}}}}, Y: Axis{Unit: Bytes}}},
		{name: "two points same time", opts: LineOptions{Series: []Series{{Points: []Point{{X: t0, Y: 1}, {X: t0, Y: 2}}}}}},
		{name: "two points a second apart", opts: LineOptions{Series: []Series{{Points: []Point{{X: t0, Y: 1}, {X: t0.Add(time.Second), Y: 2}}}}}},
		{name: "flat", opts: LineOptions{Series: []Series{{Points: hourly(48, func(int) float64 { return 7 })}}, Y: Axis{Unit: Count}}},
		{name: "flat zero", opts: LineOptions{Series: []Series{{Points: hourly(48, func(int) float64 { return 0 })}}, Y: Axis{Unit: Bytes}}},
		{name: "negative", opts: LineOptions{Series: []Series{{Points: hourly(48, func(i int) float64 { return float64(i-40) * GiB })}}, Y: Axis{Unit: Bytes}}},
		{name: "all negative", opts: LineOptions{Series: []Series{{Points: hourly(10, func(i int) float64 { return -float64(i + 1) })}}, Y: Axis{Unit: Percent}}},
		{name: "NaN filtered", opts: LineOptions{Series: []Series{{Points: hourly(48, func(i int) float64 {
			if i%5 == 0 {
				return math.NaN()
			}
			if i%7 == 0 {
				return math.Inf(1)
			}
			return float64(i)
		})}}}},
		{name: "huge values", opts: LineOptions{Series: []Series{{Points: hourly(10, func(i int) float64 { return math.MaxFloat64 / float64(i+1) })}}, Y: Axis{Unit: Bytes}}},
		{name: "huge both signs", opts: LineOptions{Series: []Series{{Points: hourly(10, func(i int) float64 {
			return math.Copysign(math.MaxFloat64, float64(i%2)-0.5)
		})}}, Y: Axis{Unit: Count}}},
		{name: "tiny values", opts: LineOptions{Series: []Series{{Points: hourly(10, func(i int) float64 { return float64(i) * 1e-9 })}}, Y: Axis{Unit: Duration}}},
		{name: "unsorted", opts: LineOptions{Series: []Series{{Points: []Point{
			{X: t0.Add(3 * time.Hour), Y: 3}, {X: t0, Y: 0}, {X: t0.Add(time.Hour), Y: 1},
		}}}}},
		{name: "zero time point", opts: LineOptions{Series: []Series{{Points: []Point{{X: time.Time{}, Y: 1}, {X: t0, Y: 2}}}}}},
		{name: "10k points", opts: LineOptions{Series: []Series{{Points: hourly(10000, func(i int) float64 { return math.Sin(float64(i)/50) * GiB })}}, Y: Axis{Unit: Bytes}}},
		{name: "many series", opts: LineOptions{Series: func() []Series {
			var s []Series
			for i := 0; i < 30; i++ {
				s = append(s, Series{Name: strings.Repeat("long series name ", i%3+1), Points: hourly(5, func(j int) float64 { return float64(i * j) })})
			}
			return s
		}()}},
		{name: "everything", opts: LineOptions{
			Title: "Pool capacity", Y: Axis{Label: "Used", Unit: Bytes}, XLabel: "Time",
			Series: []Series{
				{Name: "used", Points: hourly(72, func(i int) float64 { return float64(i) * GiB })},
				{Name: "forecast", Dashed: true, Points: []Point{{X: t0.Add(71 * time.Hour), Y: 71 * GiB}, {X: t0.Add(200 * time.Hour), Y: 200 * GiB}}},
			},
			Reference: &Reference{Label: "capacity", Value: 180 * GiB},
			Now:       t0.Add(71 * time.Hour),
		}},
		{name: "reference NaN", opts: LineOptions{Series: []Series{{Points: hourly(3, func(i int) float64 { return float64(i) })}}, Reference: &Reference{Value: math.NaN()}}},
		{name: "reference only above", opts: LineOptions{Series: []Series{{Points: hourly(3, func(i int) float64 { return float64(i) })}}, Reference: &Reference{Label: "max", Value: 1e6}}},
		{name: "now far away", opts: LineOptions{Series: []Series{{Points: hourly(3, func(i int) float64 { return float64(i) })}}, Now: t0.AddDate(5, 0, 0)}},
		{name: "tiny size", opts: LineOptions{Width: 1, Height: 1, Series: []Series{{Points: hourly(3, func(i int) float64 { return float64(i) })}}}},
		{name: "huge size", opts: LineOptions{Width: 1 << 30, Height: 1 << 30, Series: []Series{{Points: hourly(3, func(i int) float64 { return float64(i) })}}}},
		{name: "hostile ID", opts: LineOptions{ID: hostile, Series: []Series{{Points: hourly(3, func(i int) float64 { return float64(i) })}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := checkSVG(t, TimeLine(tt.opts))
			if got := doc.hasText(noData); got != tt.noData {
				t.Errorf("shows %q: %v, want %v", noData, got, tt.noData)
			}
			if doc.root["width"] != "100%" {
				t.Errorf("width = %q, want 100%%", doc.root["width"])
			}
			if !tt.noData && doc.elements["path"] == 0 {
				t.Errorf("no line drawn")
			}
		})
	}
}

func TestTimeLineEscaping(t *testing.T) {
	opts := LineOptions{
		Title:       hostile,
		Y:           Axis{Label: hostile, Unit: Bytes},
		XLabel:      hostile,
		Series:      []Series{{Name: hostile, Points: hourly(3, float64Of)}, {Name: "b" + hostile, Points: hourly(3, float64Of)}},
		Reference:   &Reference{Label: hostile, Value: 10},
		Description: "",
	}
	out := string(TimeLine(opts))
	doc := checkSVG(t, htmltemplate.HTML(out))
	if strings.Contains(out, "<script>") || strings.Contains(out, `"x"`) {
		t.Errorf("unescaped label in output")
	}
	if doc.titles[0] != hostile {
		t.Errorf("title = %q, want the label back after unescaping", doc.titles[0])
	}
	if !strings.Contains(doc.desc, hostile) {
		t.Errorf("desc %q lacks the series name", doc.desc)
	}
	if !doc.hasText(hostile+" 10 B") && !doc.hasText(truncate(hostile+" 10 B", 1000)) {
		t.Errorf("reference label missing: %q", doc.texts)
	}
	opts.Description = hostile
	if doc := checkSVG(t, TimeLine(opts)); doc.desc != hostile {
		t.Errorf("desc = %q", doc.desc)
	}
}

func float64Of(i int) float64 { return float64(i) }

func TestTimeLineFeatures(t *testing.T) {
	const TiB = 1 << 40
	used := Series{Name: "used", Points: hourly(24, func(i int) float64 { return float64(i) * TiB / 4 })}
	tests := []struct {
		name       string
		opts       LineOptions
		legend     bool
		circles    int
		texts      []string
		classes    []string
		descHas    []string
		notClasses []string
	}{
		{
			name:       "single series: no legend, circles",
			opts:       LineOptions{Series: []Series{used}, Y: Axis{Unit: Bytes}},
			circles:    24,
			classes:    []string{"chart-line", "series-0", "chart-point", "chart-timeline"},
			notClasses: []string{"chart-legend", "chart-reference", "chart-now"},
			texts:      []string{"0", "2 TiB", "4 TiB", "6 TiB", "Mon 02", "12:00"},
			descHas:    []string{"used: 24 points", "latest 5.75 TiB", "highest 5.75 TiB", "2 Dec 2024 00:00"},
		},
		{
			name: "two series: legend",
			opts: LineOptions{Series: []Series{used, {Name: "forecast", Dashed: true, Points: []Point{
				{X: t0.Add(23 * time.Hour), Y: 5.75 * TiB}, {X: t0.Add(40 * time.Hour), Y: 10 * TiB},
			}}}, Y: Axis{Unit: Bytes}},
			legend:  true,
			circles: 26,
			texts:   []string{"used", "forecast"},
			classes: []string{"chart-legend", "series-1", "chart-dashed"},
		},
		{
			name:    "many points: no circles",
			opts:    LineOptions{Series: []Series{{Points: hourly(41, float64Of)}}},
			circles: 0,
		},
		{
			name:    "capacity and now",
			opts:    LineOptions{Series: []Series{used}, Y: Axis{Unit: Bytes}, Reference: &Reference{Label: "capacity", Value: 10 * TiB}, Now: t0.Add(23 * time.Hour)},
			circles: 24,
			texts:   []string{"capacity 10 TiB", "now", "10 TiB"},
			classes: []string{"chart-reference", "chart-now"},
			descHas: []string{"capacity 10 TiB"},
		},
		{
			name:    "negative values get a zero line",
			opts:    LineOptions{Series: []Series{{Points: hourly(5, func(i int) float64 { return float64(i - 2) })}}},
			circles: 5,
			texts:   []string{"-2", "0", "2"},
			classes: []string{"chart-zero"},
		},
		{
			name:    "axis labels",
			opts:    LineOptions{Series: []Series{used}, Y: Axis{Label: "Used space", Unit: Bytes}, XLabel: "Date"},
			circles: 24,
			texts:   []string{"Used space", "Date"},
			classes: []string{"chart-axis-label"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := checkSVG(t, TimeLine(tt.opts))
			if got := doc.hasClass("chart-legend"); got != tt.legend {
				t.Errorf("legend %v, want %v", got, tt.legend)
			}
			if got := doc.elements["circle"]; got != tt.circles {
				t.Errorf("%d circles, want %d", got, tt.circles)
			}
			for _, s := range tt.texts {
				if !doc.hasText(s) {
					t.Errorf("no text %q in %q", s, doc.texts)
				}
			}
			for _, c := range tt.classes {
				if !doc.hasClass(c) {
					t.Errorf("no class %q", c)
				}
			}
			for _, c := range tt.notClasses {
				if doc.hasClass(c) {
					t.Errorf("unexpected class %q", c)
				}
			}
			for _, s := range tt.descHas {
				if !strings.Contains(doc.desc, s) {
					t.Errorf("desc %q lacks %q", doc.desc, s)
				}
			}
		})
	}
}

func TestTimeLineLarge(t *testing.T) {
	pts := hourly(10000, func(i int) float64 { return float64(i % 977) })
	pts[5000].Y = 1e6 // a spike that thinning must keep
	opts := LineOptions{Series: []Series{{Name: "throughput", Points: pts}}, Y: Axis{Unit: BytesPerSecond}}
	TimeLine(opts) // warm up
	start := time.Now()
	out := TimeLine(opts)
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("10k points took %v, want < 50ms", d)
	}
	doc := checkSVG(t, out)
	if len(out) > 60_000 {
		t.Errorf("output is %d bytes; the series was not thinned", len(out))
	}
	if doc.elements["circle"] != 0 {
		t.Errorf("circles drawn for 10k points")
	}
	if !doc.hasText("1000 KiB/s") {
		t.Errorf("spike lost: axis does not reach 1e6 B/s: %q", doc.texts)
	}
}

func TestThinKeepsExtremes(t *testing.T) {
	pts := hourly(1000, func(i int) float64 { return float64(i % 10) })
	pts[555].Y = -50
	pts[777].Y = 99
	got := thin(pts, func(p Point) float64 { return p.X.Sub(t0).Hours() / 10 }, 100)
	if len(got) > 200 {
		t.Errorf("thinned to %d points, want ≤ 200", len(got))
	}
	var lo, hi bool
	for i, p := range got {
		lo = lo || p.Y == -50
		hi = hi || p.Y == 99
		if i > 0 && p.X.Before(got[i-1].X) {
			t.Errorf("thinned points out of order at %d", i)
		}
	}
	if !lo || !hi {
		t.Errorf("extremes lost: low %v high %v", lo, hi)
	}
	short := hourly(10, float64Of)
	if got := thin(short, func(p Point) float64 { return 0 }, 100); len(got) != 10 {
		t.Errorf("short series thinned to %d", len(got))
	}
}

func TestTimeLineIDs(t *testing.T) {
	a := TimeLine(LineOptions{Title: "a", Series: []Series{{Points: hourly(3, float64Of)}}})
	b := TimeLine(LineOptions{Title: "b", Series: []Series{{Points: hourly(3, float64Of)}}})
	ida, idb := checkSVG(t, a).root["aria-labelledby"], checkSVG(t, b).root["aria-labelledby"]
	if ida == idb {
		t.Errorf("two different charts share ids %q", ida)
	}
	if again := checkSVG(t, TimeLine(LineOptions{Title: "a", Series: []Series{{Points: hourly(3, float64Of)}}})).root["aria-labelledby"]; again != ida {
		t.Errorf("ids not deterministic: %q vs %q", ida, again)
	}
	if got := checkSVG(t, TimeLine(LineOptions{ID: "cap", Series: []Series{{Points: hourly(3, float64Of)}}})).root["aria-labelledby"]; got != "cap-title cap-desc" {
		t.Errorf("given ID: aria-labelledby = %q", got)
	}
}

func TestTimeLineLocation(t *testing.T) {
	tokyo := time.FixedZone("JST", 9*3600)
	opts := LineOptions{Series: []Series{{Points: hourly(6, float64Of)}}, Location: tokyo}
	doc := checkSVG(t, TimeLine(opts))
	if !doc.hasText("09:00") || doc.hasText("00:00") {
		t.Errorf("labels not in the given location: %q", doc.texts)
	}
}
