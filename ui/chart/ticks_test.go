package chart

import (
	"math"
	"regexp"
	"testing"
	"time"
)

func TestNiceTicks(t *testing.T) {
	tests := []struct {
		name     string
		lo, hi   float64
		n        int
		want     []float64
		wantStep float64
	}{
		{"0 to 10", 0, 10, 6, []float64{0, 2, 4, 6, 8, 10}, 2},
		{"0 to 100", 0, 100, 5, []float64{0, 20, 40, 60, 80, 100}, 20},
		{"0 to 97", 0, 97, 5, []float64{0, 20, 40, 60, 80, 100}, 20},
		{"0 to 1", 0, 1, 6, []float64{0, 0.2, 0.4, 0.6, 0.8, 1}, 0.2},
		{"0.3 exact", 0, 0.3, 4, []float64{0, 0.1, 0.2, 0.3}, 0.1},
		{"5 step", 0, 23, 5, []float64{0, 5, 10, 15, 20, 25}, 5},
		{"negative", -37, 12, 5, []float64{-40, -30, -20, -10, 0, 10, 20}, 10},
		{"reversed", 10, 0, 6, []float64{0, 2, 4, 6, 8, 10}, 2},
		{"flat zero", 0, 0, 5, []float64{0, 0.2, 0.4, 0.6, 0.8, 1}, 0.2},
		{"flat 50", 50, 50, 5, []float64{44, 46, 48, 50, 52, 54, 56}, 2},
		{"non-finite", math.NaN(), math.Inf(1), 5, []float64{0, 0.2, 0.4, 0.6, 0.8, 1}, 0.2},
		{"n below 2", 0, 10, 0, []float64{0, 10}, 10},
		{"large", 0, 3.7e12, 5, []float64{0, 1e12, 2e12, 3e12, 4e12}, 1e12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, step := niceTicks(tt.lo, tt.hi, tt.n)
			if !closeSlices(got, tt.want) || math.Abs(step-tt.wantStep) > 1e-12*math.Abs(tt.wantStep) {
				t.Errorf("niceTicks(%g, %g, %d) = %v step %g, want %v step %g", tt.lo, tt.hi, tt.n, got, step, tt.want, tt.wantStep)
			}
			// 1-2-5 steps only.
			m := step / math.Pow(10, math.Floor(math.Log10(step)))
			if math.Abs(m-1) > 1e-9 && math.Abs(m-2) > 1e-9 && math.Abs(m-5) > 1e-9 {
				t.Errorf("step %g is not 1, 2 or 5 times a power of ten", step)
			}
		})
	}
}

func TestNiceTicksHuge(t *testing.T) {
	for _, hi := range []float64{1e300, math.MaxFloat64, -math.MaxFloat64} {
		ticks, step := niceTicks(0, hi, 5)
		if len(ticks) < 2 || len(ticks) > 12 || !finite(step) {
			t.Errorf("niceTicks(0, %g) = %v step %g", hi, ticks, step)
		}
		for _, v := range ticks {
			if !finite(v) {
				t.Errorf("niceTicks(0, %g): non-finite tick in %v", hi, ticks)
			}
		}
	}
}

func closeSlices(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-9*math.Max(1, math.Abs(b[i])) {
			return false
		}
	}
	return true
}

func TestTimeTicks(t *testing.T) {
	start := time.Date(2024, 12, 2, 9, 17, 0, 0, time.UTC) // a Monday
	tests := []struct {
		name      string
		span      time.Duration
		step      time.Duration // 0: check only labels
		label     string        // every label matches
		first     string
		minN      int
		maxN      int
		wantLabel string // one label that must appear
	}{
		{"6 h", 6 * time.Hour, time.Hour, `^\d\d:00$`, "10:00", 5, 7, "14:00"},
		{"3 days", 72 * time.Hour, 12 * time.Hour, `^(12:00|(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d\d)$`, "12:00", 5, 7, "Tue 03"},
		{"60 days", 60 * 24 * time.Hour, 7 * 24 * time.Hour, `^[A-Z][a-z]{2} \d\d$`, "Dec 09", 8, 9, "Dec 30"},
		{"2 years", 2 * 365 * 24 * time.Hour, 0, `^([A-Z][a-z]{2}|\d{4})$`, "2025", 7, 9, "Jul"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ticks := timeTicks(start, start.Add(tt.span), 10, time.UTC)
			if len(ticks) < tt.minN || len(ticks) > tt.maxN {
				t.Fatalf("%d ticks, want %d–%d: %v", len(ticks), tt.minN, tt.maxN, ticks)
			}
			re := regexp.MustCompile(tt.label)
			found := false
			for i, tk := range ticks {
				if !re.MatchString(tk.Label) {
					t.Errorf("label %q does not match %s", tk.Label, tt.label)
				}
				if tk.At.Before(start) || tk.At.After(start.Add(tt.span)) {
					t.Errorf("tick %v outside the span", tk.At)
				}
				if i > 0 && tt.step > 0 && tk.At.Sub(ticks[i-1].At) != tt.step {
					t.Errorf("step %v between %v and %v, want %v", tk.At.Sub(ticks[i-1].At), ticks[i-1].At, tk.At, tt.step)
				}
				found = found || tk.Label == tt.wantLabel
			}
			if ticks[0].Label != tt.first {
				t.Errorf("first label %q, want %q", ticks[0].Label, tt.first)
			}
			if !found {
				t.Errorf("no label %q in %v", tt.wantLabel, ticks)
			}
		})
	}
}

func TestTimeTicksAlignment(t *testing.T) {
	start := time.Date(2024, 12, 2, 9, 17, 0, 0, time.UTC)
	// Two years: quarters starting on the 1st of Jan, Apr, Jul, Oct.
	for _, tk := range timeTicks(start, start.AddDate(2, 0, 0), 10, time.UTC) {
		if tk.At.Day() != 1 || (tk.At.Month()-1)%3 != 0 || tk.At.Hour() != 0 {
			t.Errorf("2 years: tick %v not at the start of a quarter", tk.At)
		}
	}
	// 60 days: Mondays at midnight.
	for _, tk := range timeTicks(start, start.AddDate(0, 0, 60), 10, time.UTC) {
		if tk.At.Weekday() != time.Monday || tk.At.Hour() != 0 {
			t.Errorf("60 days: tick %v not a Monday midnight", tk.At)
		}
	}
	// Labels follow the location.
	ny, err := time.LoadLocation("America/New_York")
	if err == nil {
		ticks := timeTicks(start, start.Add(6*time.Hour), 10, ny)
		if ticks[0].Label != "05:00" {
			t.Errorf("New York: first label %q, want 05:00", ticks[0].Label)
		}
	}
}

func TestTimeTicksEdges(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		start, end time.Time
	}{
		{"reversed", now.Add(time.Hour), now},
		{"ten seconds", now, now.Add(10 * time.Second)},
		{"zero time to now", time.Time{}, now},
		{"millennia", time.Date(-5000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9000, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ticks := timeTicks(tt.start, tt.end, 10, nil)
			if len(ticks) > 12 {
				t.Errorf("%d ticks, want at most about 10: %v", len(ticks), ticks)
			}
		})
	}
}
