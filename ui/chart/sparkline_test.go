package chart

import (
	"math"
	"testing"
	"time"
)

func TestSparkline(t *testing.T) {
	big := make([]float64, 10000)
	for i := range big {
		big[i] = math.Sin(float64(i) / 100)
	}
	tests := []struct {
		name   string
		values []float64
		w, h   int
		noData bool
		width  string
	}{
		{"empty", nil, 120, 32, true, "120"},
		{"all NaN", []float64{math.NaN(), math.Inf(-1)}, 120, 32, true, "120"},
		{"one", []float64{5}, 120, 32, false, "120"},
		{"flat", []float64{3, 3, 3}, 80, 20, false, "80"},
		{"negative", []float64{-1, -5, -2}, 80, 20, false, "80"},
		{"NaN inside", []float64{1, math.NaN(), 3}, 80, 20, false, "80"},
		{"huge", []float64{math.MaxFloat64, -math.MaxFloat64, 0}, 80, 20, false, "80"},
		{"default size", []float64{1, 2}, 0, 0, false, "120"},
		{"absurd size", []float64{1, 2}, -5, 1 << 30, false, "120"},
		{"10k values", big, 120, 32, false, "120"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			out := Sparkline(tt.values, tt.w, tt.h)
			if d := time.Since(start); d > 50*time.Millisecond {
				t.Errorf("took %v", d)
			}
			doc := checkSVG(t, out)
			if got := doc.hasText(noData); got != tt.noData {
				t.Errorf("shows %q: %v, want %v", noData, got, tt.noData)
			}
			if doc.root["width"] != tt.width {
				t.Errorf("width = %q, want %q", doc.root["width"], tt.width)
			}
			if !tt.noData && (doc.elements["path"] != 1 || doc.elements["circle"] != 1) {
				t.Errorf("want one path and one dot: %v", doc.elements)
			}
			if len(out) > 8000 {
				t.Errorf("%d bytes: not thinned", len(out))
			}
		})
	}
}
