package chart

import (
	"math"
	"testing"
)

func TestUnitFormat(t *testing.T) {
	const (
		KiB = 1024.0
		MiB = 1024 * KiB
		GiB = 1024 * MiB
		TiB = 1024 * GiB
		EiB = 1024 * 1024 * TiB
	)
	tests := []struct {
		unit Unit
		v    float64
		want string
	}{
		{Bytes, 0, "0 B"},
		{Bytes, 512, "512 B"},
		{Bytes, 1023, "1023 B"},
		{Bytes, 1024, "1 KiB"},
		{Bytes, 1536, "1.5 KiB"},
		{Bytes, 1.25 * GiB, "1.25 GiB"},
		{Bytes, 12.34 * GiB, "12.3 GiB"},
		{Bytes, 10 * TiB, "10 TiB"},
		{Bytes, 500 * TiB, "500 TiB"},
		{Bytes, 3 * EiB, "3 EiB"},
		{Bytes, 5000 * EiB, "5000 EiB"},
		{Bytes, 1e300, "8.67e+281 EiB"},
		{Bytes, -2 * GiB, "-2 GiB"},
		{Bytes, math.NaN(), "n/a"},
		{Bytes, math.Inf(1), "n/a"},
		{BytesPerSecond, 0, "0 B/s"},
		{BytesPerSecond, 120 * MiB, "120 MiB/s"},
		{BytesPerSecond, 1.5 * GiB, "1.5 GiB/s"},
		{BytesPerSecond, 800 * KiB, "800 KiB/s"},
		{Duration, 0, "0 s"},
		{Duration, 0.25, "250 ms"},
		{Duration, 45, "45 s"},
		{Duration, 4.5, "4.5 s"},
		{Duration, 180, "3 min"},
		{Duration, 150, "2.5 min"},
		{Duration, 5400, "1.5 h"},
		{Duration, 36000, "10 h"},
		{Duration, -90, "-1.5 min"},
		{Count, 0, "0"},
		{Count, 42, "42"},
		{Count, 3.5, "3.5"},
		{Count, 1234, "1.23k"},
		{Count, 25000, "25k"},
		{Count, 3.2e6, "3.2M"},
		{Count, 7e9, "7G"},
		{Count, 2e12, "2T"},
		{Count, 0.001, "0.001"},
		{Count, -5, "-5"},
		{Percent, 42, "42%"},
		{Percent, 99.5, "99.5%"},
		{Percent, 100, "100%"},
		{Percent, 0, "0%"},
	}
	for _, tt := range tests {
		if got := tt.unit.Format(tt.v); got != tt.want {
			t.Errorf("Unit(%d).Format(%g) = %q, want %q", tt.unit, tt.v, got, tt.want)
		}
	}
}

func TestTickLabels(t *testing.T) {
	const GiB = 1 << 30
	tests := []struct {
		name string
		unit Unit
		lo   float64
		hi   float64
		n    int
		want []string
	}{
		{"bytes in TiB", Bytes, 0, 10 << 40, 6, []string{"0", "2 TiB", "4 TiB", "6 TiB", "8 TiB", "10 TiB"}},
		{"bytes fractional", Bytes, 0, 1.5 * (1 << 40), 4, []string{"0", "0.5 TiB", "1 TiB", "1.5 TiB"}},
		{"bytes tiny", Bytes, 0, 3, 5, []string{"0", "1 B", "2 B", "3 B"}},
		{"bytes all zero", Bytes, 0, 0, 5, []string{"0", "1 B"}},
		{"rate", BytesPerSecond, 0, 250 * (1 << 20), 6, []string{"0", "50 MiB/s", "100 MiB/s", "150 MiB/s", "200 MiB/s", "250 MiB/s"}},
		{"duration seconds", Duration, 0, 50, 6, []string{"0", "10 s", "20 s", "30 s", "40 s", "50 s"}},
		{"duration minutes", Duration, 0, 1800, 4, []string{"0", "10 min", "20 min", "30 min"}},
		{"duration hours", Duration, 0, 3 * 3600, 7, []string{"0", "0.5 h", "1 h", "1.5 h", "2 h", "2.5 h", "3 h"}},
		{"count", Count, 0, 7, 8, []string{"0", "1", "2", "3", "4", "5", "6", "7"}},
		{"count thousands", Count, 0, 5000, 6, []string{"0", "1k", "2k", "3k", "4k", "5k"}},
		{"percent", Percent, 0, 100, 6, []string{"0", "20%", "40%", "60%", "80%", "100%"}},
		{"negative", Bytes, -2 * GiB, 2 * GiB, 5, []string{"-2 GiB", "-1 GiB", "0", "1 GiB", "2 GiB"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, got := valueTicks(tt.lo, tt.hi, tt.n, tt.unit)
			if !equalStrings(got, tt.want) {
				t.Errorf("labels = %q, want %q", got, tt.want)
			}
		})
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
