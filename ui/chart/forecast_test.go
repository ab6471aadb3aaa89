package chart

import (
	"math"
	"testing"
	"time"
)

func TestForecast(t *testing.T) {
	const GiB = 1 << 30
	now := time.Date(2024, 12, 20, 12, 0, 0, 0, time.UTC)
	// daily returns samples for the last n days up to now, growing by
	// perDay from start.
	daily := func(n int, start, perDay float64) []Point {
		var pts []Point
		for i := 0; i < n; i++ {
			pts = append(pts, Point{X: now.AddDate(0, 0, i-n+1), Y: start + float64(i)*perDay})
		}
		return pts
	}
	reverse := func(p []Point) []Point {
		out := make([]Point, len(p))
		for i := range p {
			out[len(p)-1-i] = p[i]
		}
		return out
	}
	tests := []struct {
		name      string
		history   []Point
		capacity  float64
		now       time.Time
		slope     float64
		used      float64
		never     bool
		daysLeft  float64
		projEnd   time.Time // zero: no projection
		projValue float64
	}{
		{
			name: "1 GiB/day, 10 GiB free", history: daily(20, 71*GiB, GiB), capacity: 100 * GiB, now: now,
			slope: GiB, used: 90 * GiB, daysLeft: 10, projEnd: now.AddDate(0, 0, 10), projValue: 100 * GiB,
		},
		{
			name: "only the last 30 days count",
			history: append([]Point{
				{X: now.AddDate(0, 0, -90), Y: 500 * GiB}, {X: now.AddDate(0, 0, -60), Y: 0}, {X: now.AddDate(0, 0, -31), Y: 900 * GiB},
			}, daily(31, 60*GiB, GiB)...),
			capacity: 100 * GiB, now: now,
			slope: GiB, used: 90 * GiB, daysLeft: 10, projEnd: now.AddDate(0, 0, 10), projValue: 100 * GiB,
		},
		{
			name: "unsorted", history: reverse(daily(20, 71*GiB, GiB)), capacity: 100 * GiB, now: now,
			slope: GiB, used: 90 * GiB, daysLeft: 10, projEnd: now.AddDate(0, 0, 10), projValue: 100 * GiB,
		},
		{
			name: "now two days after the latest sample", history: daily(20, 71*GiB, GiB), capacity: 100 * GiB, now: now.AddDate(0, 0, 2),
			slope: GiB, used: 92 * GiB, daysLeft: 8, projEnd: now.AddDate(0, 0, 10), projValue: 100 * GiB,
		},
		{
			name: "NaN and Inf samples ignored",
			history: append(daily(20, 71*GiB, GiB),
				Point{X: now.AddDate(0, 0, -3), Y: math.NaN()}, Point{X: now.AddDate(0, 0, 1), Y: math.Inf(1)}),
			capacity: 100 * GiB, now: now,
			slope: GiB, used: 90 * GiB, daysLeft: 10, projEnd: now.AddDate(0, 0, 10), projValue: 100 * GiB,
		},
		{
			name: "projection cut at 365 days", history: daily(10, 0, GiB), capacity: 1009 * GiB, now: now,
			slope: GiB, used: 9 * GiB, daysLeft: 1000, projEnd: now.AddDate(0, 0, 365), projValue: 374 * GiB,
		},
		{
			name: "already full", history: daily(10, 95*GiB, GiB), capacity: 100 * GiB, now: now,
			slope: GiB, used: 104 * GiB, daysLeft: 0,
		},
		{name: "flat", history: daily(10, 50*GiB, 0), capacity: 100 * GiB, now: now, used: 50 * GiB, never: true},
		{name: "shrinking", history: daily(10, 50*GiB, -GiB), capacity: 100 * GiB, now: now, slope: -GiB, used: 41 * GiB, never: true},
		{name: "single point", history: []Point{{X: now, Y: 5 * GiB}}, capacity: 100 * GiB, now: now, used: 5 * GiB, never: true},
		{name: "two samples at one time", history: []Point{{X: now, Y: 5 * GiB}, {X: now, Y: 7 * GiB}}, capacity: 100 * GiB, now: now, used: 5 * GiB, never: true},
		{name: "empty", history: nil, capacity: 100 * GiB, now: now, never: true},
		{name: "all NaN", history: []Point{{X: now, Y: math.NaN()}}, capacity: 100 * GiB, now: now, never: true},
		{name: "capacity unknown", history: daily(10, 0, GiB), capacity: 0, now: now, slope: GiB, used: 9 * GiB, never: true},
		{name: "capacity NaN", history: daily(10, 0, GiB), capacity: math.NaN(), now: now, slope: GiB, used: 9 * GiB, never: true},
		{name: "beyond a century", history: daily(10, 0, 1), capacity: 1e15, now: now, slope: 1, used: 9, never: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Forecast(tt.history, tt.capacity, tt.now)
			if !near(r.Slope, tt.slope) || !near(r.Used, tt.used) {
				t.Errorf("slope %g used %g, want %g and %g", r.Slope, r.Used, tt.slope, tt.used)
			}
			if r.Never != tt.never {
				t.Fatalf("Never = %v, want %v (%+v)", r.Never, tt.never, r)
			}
			if tt.never {
				if !math.IsInf(r.DaysLeft, 1) || !r.Full.IsZero() || len(r.Projection.Points) != 0 {
					t.Errorf("never: DaysLeft %g Full %v projection %v", r.DaysLeft, r.Full, r.Projection.Points)
				}
				return
			}
			if !near(r.DaysLeft, tt.daysLeft) {
				t.Errorf("DaysLeft = %g, want %g", r.DaysLeft, tt.daysLeft)
			}
			if want := tt.now.Add(time.Duration(tt.daysLeft * 24 * float64(time.Hour))); absDur(r.Full.Sub(want)) > time.Second {
				t.Errorf("Full = %v, want %v", r.Full, want)
			}
			if tt.projEnd.IsZero() {
				if len(r.Projection.Points) != 0 {
					t.Errorf("projection %v, want none", r.Projection.Points)
				}
				return
			}
			p := r.Projection
			if !p.Dashed || len(p.Points) != 2 {
				t.Fatalf("projection %+v, want two dashed points", p)
			}
			if !p.Points[0].X.Equal(tt.now) || !near(p.Points[0].Y, tt.used) {
				t.Errorf("projection starts at %v, want now at %g", p.Points[0], tt.used)
			}
			if absDur(p.Points[1].X.Sub(tt.projEnd)) > time.Second || !near(p.Points[1].Y, tt.projValue) {
				t.Errorf("projection ends at %v %g, want %v %g", p.Points[1].X, p.Points[1].Y, tt.projEnd, tt.projValue)
			}
		})
	}
}

func TestForecastString(t *testing.T) {
	now := time.Date(2024, 12, 2, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		r    ForecastResult
		want string
	}{
		{ForecastResult{Never: true, DaysLeft: math.Inf(1)}, "not filling up"},
		{ForecastResult{Full: now}, "full now"},
		{ForecastResult{DaysLeft: 0.5, Full: now.Add(12 * time.Hour)}, "full within a day"},
		{ForecastResult{DaysLeft: 1.2, Full: now.AddDate(0, 0, 1)}, "full in 1 day (3 Dec 2024)"},
		{ForecastResult{DaysLeft: 10, Full: now.AddDate(0, 0, 10)}, "full in 10 days (12 Dec 2024)"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
