package chart

import (
	"math"
	"time"
)

// maxTicks bounds every tick sequence, whatever the input.
const maxTicks = 1000

// niceTicks covers [lo, hi] with about n ticks at a 1-2-5 step (1, 2, 5,
// 10, 20 …). The first tick is at or below lo and the last at or above hi.
// It returns the ticks and the step.
func niceTicks(lo, hi float64, n int) ([]float64, float64) {
	if !finite(lo) || !finite(hi) {
		lo, hi = 0, 1
	}
	if lo > hi {
		lo, hi = hi, lo
	}
	if lo == hi {
		if lo == 0 {
			hi = 1
		} else {
			d := math.Abs(lo) * 0.1
			lo, hi = lo-d, hi+d
		}
	}
	n = max(n, 2)
	// Halve before subtracting so that ±MaxFloat64 cannot overflow.
	raw := (hi/2 - lo/2) * 2 / float64(n-1)
	mant, exp := niceStep(raw)
	return stepTicks(lo, hi, mant, exp)
}

// niceStep rounds x to a 1-2-5 step, returned as mantissa and exponent so
// that ticks can be computed without accumulating binary fractions.
func niceStep(x float64) (float64, int) {
	if !(x > 0) || !finite(x) {
		return 1, 0
	}
	exp := int(math.Floor(math.Log10(x)))
	f := x / math.Pow(10, float64(exp))
	switch {
	case f < 1.5:
		return 1, exp
	case f < 3:
		return 2, exp
	case f < 7:
		return 5, exp
	}
	return 1, exp + 1
}

// stepTicks lays ticks at multiples of mant·10^exp from below lo to above hi.
func stepTicks(lo, hi, mant float64, exp int) ([]float64, float64) {
	at := func(k float64) float64 {
		if exp < 0 {
			return k * mant / math.Pow(10, float64(-exp))
		}
		return k * mant * math.Pow(10, float64(exp))
	}
	step := at(1)
	first, last := math.Floor(lo/step), math.Ceil(hi/step)
	if !finite(first) || !finite(last) || last-first > maxTicks || !finite(at(first)) || !finite(at(last)) {
		return []float64{lo, hi}, hi - lo
	}
	ticks := make([]float64, 0, int(last-first)+1)
	for k := first; k <= last; k++ {
		ticks = append(ticks, at(k))
	}
	return ticks, step
}

// valueTicks is niceTicks for a value axis in unit u: the ticks are nice in
// the unit's prefix (2, 4, 6 TiB rather than 2, 4, 6 TB) and never finer
// than 1 for whole-number units. It returns ticks, step and labels.
func valueTicks(lo, hi float64, n int, u Unit) ([]float64, float64, []string) {
	div, _ := u.scale(math.Max(math.Abs(lo), math.Abs(hi)))
	ticks, step := niceTicks(lo/div, hi/div, n)
	if u.integral() && div == 1 && step < 1 {
		first, last := math.Floor(ticks[0]), math.Ceil(ticks[len(ticks)-1])
		ticks, step = stepTicks(first, last, 1, 0)
		if len(ticks) > n+1 {
			ticks, step = niceTicks(first, last, n)
		}
	}
	out := make([]float64, len(ticks))
	for i, t := range ticks {
		out[i] = t * div
	}
	step *= div
	return out, step, u.tickLabels(out, step)
}

// timeTick is one labelled instant on a time axis.
type timeTick struct {
	At    time.Time
	Label string
}

// timeStep is one candidate spacing of time ticks: a fixed duration below
// a week, whole days or weeks, or whole months (years are 12 months).
type timeStep struct {
	d      time.Duration // fixed steps below a day
	days   int           // 1, 2: at midnight; 7: Mondays
	months int           // at the first of the month; 12k: first of January
}

func (s timeStep) seconds() float64 {
	switch {
	case s.months > 0:
		return float64(s.months) * 30.436875 * 86400
	case s.days > 0:
		return float64(s.days) * 86400
	}
	return s.d.Seconds()
}

// pickTimeStep returns the finest candidate step that fits
// span seconds in at most n ticks.
func pickTimeStep(span float64, n int) timeStep {
	fixed := []time.Duration{
		time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second,
		15 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute,
		15 * time.Minute, 30 * time.Minute,
		time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
	}
	fits := func(s timeStep) bool { return span/s.seconds() <= float64(n) }
	for _, d := range fixed {
		if s := (timeStep{d: d}); fits(s) {
			return s
		}
	}
	for _, s := range []timeStep{{days: 1}, {days: 2}, {days: 7}, {months: 1}, {months: 2}, {months: 3}, {months: 6}} {
		if fits(s) {
			return s
		}
	}
	for years := 1; ; years *= 10 {
		for _, m := range []int{1, 2, 5} {
			s := timeStep{months: 12 * years * m}
			if fits(s) || years >= 1e6 {
				return s
			}
		}
	}
}

// timeTicks lays at most about n ticks on [start, end] in loc, at round
// instants of a step chosen by the span: hours ("14:00", midnight as
// "Mon 02"), days ("Mon 02"), weeks from Monday ("Dec 02"), months ("Jan",
// January as "2025") or years ("2025").
func timeTicks(start, end time.Time, n int, loc *time.Location) []timeTick {
	if loc == nil {
		loc = time.UTC
	}
	if end.Before(start) {
		start, end = end, start
	}
	n = max(n, 2)
	start, end = start.In(loc), end.In(loc)
	st := pickTimeStep(unixSeconds(end)-unixSeconds(start), n)
	y, m, d := start.Date()
	midnight := time.Date(y, m, d, 0, 0, 0, 0, loc)

	var t time.Time
	var next func(time.Time) time.Time
	var label func(time.Time) string
	switch {
	case st.months > 0:
		first := time.Date(y, m, 1, 0, 0, 0, 0, loc)
		if first.Before(start) {
			first = first.AddDate(0, 1, 0)
		}
		for i := 0; i < 12*1000 && !onMonthStep(first, st.months); i++ {
			first = first.AddDate(0, 1, 0)
		}
		t = first
		next = func(t time.Time) time.Time { return t.AddDate(0, st.months, 0) }
		label = func(t time.Time) string {
			if t.Month() == time.January {
				return t.Format("2006")
			}
			return t.Format("Jan")
		}
	case st.days == 7:
		t = midnight
		if t.Before(start) {
			t = t.AddDate(0, 0, 1)
		}
		for t.Weekday() != time.Monday {
			t = t.AddDate(0, 0, 1)
		}
		next = func(t time.Time) time.Time { return t.AddDate(0, 0, 7) }
		label = func(t time.Time) string { return t.Format("Jan 02") }
	case st.days > 0:
		t = midnight
		if t.Before(start) {
			t = t.AddDate(0, 0, 1)
		}
		next = func(t time.Time) time.Time { return t.AddDate(0, 0, st.days) }
		label = func(t time.Time) string { return t.Format("Mon 02") }
	default:
		k := math.Ceil(start.Sub(midnight).Seconds() / st.d.Seconds())
		t = midnight.Add(time.Duration(k) * st.d)
		next = func(t time.Time) time.Time { return t.Add(st.d) }
		label = func(t time.Time) string {
			switch {
			case t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0:
				return t.Format("Mon 02")
			case st.d < time.Minute:
				return t.Format("15:04:05")
			}
			return t.Format("15:04")
		}
	}
	var ticks []timeTick
	for ; !t.After(end) && len(ticks) < maxTicks; t = next(t) {
		if !t.Before(start) {
			ticks = append(ticks, timeTick{At: t, Label: label(t)})
		}
	}
	return ticks
}

// onMonthStep reports whether the first of t's month is a tick for a step
// of k months: quarters start in January, April …; years where year%k == 0.
func onMonthStep(t time.Time, k int) bool {
	if k < 12 {
		return (int(t.Month())-1)%k == 0
	}
	return t.Month() == time.January && t.Year()%(k/12) == 0
}

// unixSeconds is t as float seconds since 1970, defined for every year.
func unixSeconds(t time.Time) float64 {
	return float64(t.Unix()) + float64(t.Nanosecond())/1e9
}
