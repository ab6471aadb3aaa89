package chart

import (
	"math"
	"strconv"
	"strings"
)

// Unit says what a value axis measures and so how its numbers are written.
type Unit int

const (
	// Count is a plain number: 42, 1.5k, 3.2M.
	Count Unit = iota
	// Bytes uses binary units: 512 B, 1.5 GiB, 10 TiB.
	Bytes
	// BytesPerSecond is a rate in binary units: 120 MiB/s.
	BytesPerSecond
	// Duration takes seconds: 45 s, 3 min, 1.5 h.
	Duration
	// Percent takes values in percent (0–100, not 0–1): 42%.
	Percent
)

// Axis describes a value axis: its label and the unit of its values.
type Axis struct {
	Label string
	Unit  Unit
}

// Format writes v in the unit, choosing the prefix from v's magnitude and
// keeping about three significant digits. NaN and infinities give "n/a".
func (u Unit) Format(v float64) string {
	if !finite(v) {
		return "n/a"
	}
	div, suffix := u.scale(math.Abs(v))
	x := v / div
	return formatNum(x, autoDecimals(x)) + suffix
}

// integral reports whether the unit's values are whole numbers at their
// base unit, so that ticks finer than 1 make no sense there.
func (u Unit) integral() bool {
	return u == Bytes || u == BytesPerSecond || u == Count
}

// scale picks the divisor and the suffix (with its leading space, if any)
// for values of magnitude a.
func (u Unit) scale(a float64) (float64, string) {
	switch u {
	case Bytes, BytesPerSecond:
		rate := ""
		if u == BytesPerSecond {
			rate = "/s"
		}
		div, k := 1.0, 0
		for a >= 1024 && k < 6 {
			a /= 1024
			div *= 1024
			k++
		}
		return div, " " + binaryPrefix(k) + "B" + rate
	case Duration:
		switch {
		case a >= 3600:
			return 3600, " h"
		case a >= 60:
			return 60, " min"
		case a > 0 && a < 1:
			return 0.001, " ms"
		}
		return 1, " s"
	case Percent:
		return 1, "%"
	}
	switch {
	case a >= 1e12:
		return 1e12, "T"
	case a >= 1e9:
		return 1e9, "G"
	case a >= 1e6:
		return 1e6, "M"
	case a >= 1e3:
		return 1e3, "k"
	}
	return 1, ""
}

func binaryPrefix(k int) string {
	switch k {
	case 1:
		return "Ki"
	case 2:
		return "Mi"
	case 3:
		return "Gi"
	case 4:
		return "Ti"
	case 5:
		return "Pi"
	case 6:
		return "Ei"
	}
	return ""
}

// tickLabels writes the labels of a tick sequence with one common prefix
// and as many decimals as the step needs. A zero tick is written "0".
func (u Unit) tickLabels(ticks []float64, step float64) []string {
	maxAbs := 0.0
	for _, t := range ticks {
		maxAbs = math.Max(maxAbs, math.Abs(t))
	}
	div, suffix := u.scale(maxAbs)
	dec := 0
	if s := step / div; s > 0 && s < 1 {
		dec = int(math.Ceil(-math.Log10(s) - 1e-9))
		dec = min(dec, 6)
	}
	labels := make([]string, len(ticks))
	for i, t := range ticks {
		if math.Abs(t) < step*1e-9 || t == 0 {
			labels[i] = "0"
			continue
		}
		labels[i] = formatNum(t/div, dec) + suffix
	}
	return labels
}

// autoDecimals keeps about three significant digits.
func autoDecimals(x float64) int {
	switch a := math.Abs(x); {
	case a == 0 || a >= 100:
		return 0
	case a >= 10:
		return 1
	}
	return 2
}

// formatNum writes x with at most dec decimals, without trailing zeros.
// Very large or very small magnitudes fall back to exponent notation.
func formatNum(x float64, dec int) string {
	if !finite(x) {
		return "n/a"
	}
	a := math.Abs(x)
	if a >= 1e6 || (a > 0 && a < math.Pow(10, -float64(dec))/2 && dec <= 2) {
		return strconv.FormatFloat(x, 'g', 3, 64)
	}
	s := strconv.FormatFloat(x, 'f', dec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s
}

func finite(v float64) bool {
	return !math.IsNaN(v) && !math.IsInf(v, 0)
}
