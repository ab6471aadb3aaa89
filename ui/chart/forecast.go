package chart

import (
	"fmt"
	"math"
	"time"
)

// Forecast tuning.
const (
	forecastWindow  = 30 * 24 * time.Hour  // history used for the fit
	projectionLimit = 365 * 24 * time.Hour // how far the projection is drawn
	forecastHorizon = 100 * 365.25         // days; later than this counts as never
)

// ForecastResult is the projection of used capacity.
type ForecastResult struct {
	// Slope is the fitted growth in bytes per day (negative when
	// shrinking, 0 when it cannot be fitted).
	Slope float64
	// Used is the estimated use at now: the latest sample carried along
	// the slope.
	Used float64
	// Never is true when the pool is not projected to fill up: the slope
	// is not positive, there are fewer than two distinct samples, the
	// capacity is unknown, or the date lies over 100 years out.
	Never bool
	// Full is when the capacity is reached: now when already full, the
	// zero time when Never.
	Full time.Time
	// DaysLeft is the number of days from now until Full: 0 when already
	// full, +Inf when Never.
	DaysLeft float64
	// Projection is the dashed line from now to Full, cut at 365 days, to
	// add to a capacity chart; it has no points when Never.
	Projection Series
}

// String says the result in words: "full in 10 days (12 Dec 2024)",
// "full now", "not filling up".
func (r ForecastResult) String() string {
	switch {
	case r.Never:
		return "not filling up"
	case r.DaysLeft <= 0:
		return "full now"
	case r.DaysLeft < 1:
		return "full within a day"
	}
	days := math.Floor(r.DaysLeft)
	unit := "days"
	if days == 1 {
		unit = "day"
	}
	return fmt.Sprintf("full in %.0f %s (%s)", days, unit, r.Full.Format("2 Jan 2006"))
}

// Forecast fits a least-squares line through the history of used bytes —
// its most recent 30 days, counted back from the latest sample — and
// projects it from now to the moment capacity is reached. The projection
// starts at the latest sample carried along the fitted slope, so the
// dashed line continues the drawn history. NaN and infinite samples are
// ignored; the history need not be sorted.
func Forecast(history []Point, capacity float64, now time.Time) ForecastResult {
	res := ForecastResult{Never: true, DaysLeft: math.Inf(1)}
	pts := make([]Point, 0, len(history))
	for _, p := range history {
		if finite(p.Y) {
			pts = append(pts, p)
		}
	}
	if len(pts) == 0 {
		return res
	}
	latest := pts[0]
	for _, p := range pts[1:] {
		if p.X.After(latest.X) {
			latest = p
		}
	}
	from := unixSeconds(latest.X) - forecastWindow.Seconds()
	var n, sx, sy float64
	for _, p := range pts {
		if x := unixSeconds(p.X); x >= from {
			n++
			sx += dayOffset(p.X, latest.X)
			sy += p.Y
		}
	}
	mx, my := sx/n, sy/n
	var sxx, sxy float64
	for _, p := range pts {
		if unixSeconds(p.X) >= from {
			dx := dayOffset(p.X, latest.X) - mx
			sxx += dx * dx
			sxy += dx * (p.Y - my)
		}
	}
	if sxx > 0 && finite(sxy/sxx) {
		res.Slope = sxy / sxx
	}
	res.Used = latest.Y + res.Slope*dayOffset(now, latest.X)
	if !finite(res.Used) {
		res.Used = latest.Y
	}
	if !finite(capacity) || capacity <= 0 {
		return res
	}
	if res.Used >= capacity {
		res.Never, res.Full, res.DaysLeft = false, now, 0
		return res
	}
	if res.Slope <= 0 {
		return res
	}
	days := (capacity - res.Used) / res.Slope
	if !finite(days) || days > forecastHorizon {
		return res
	}
	res.Never, res.DaysLeft = false, days
	res.Full = now.Add(time.Duration(days * float64(24*time.Hour)))
	end, endDays := res.Full, days
	if limit := projectionLimit.Hours() / 24; days > limit {
		end, endDays = now.Add(projectionLimit), limit
	}
	res.Projection = Series{
		Name:   "forecast",
		Dashed: true,
		Points: []Point{{X: now, Y: res.Used}, {X: end, Y: res.Used + res.Slope*endDays}},
	}
	return res
}

// dayOffset is t - ref in days.
func dayOffset(t, ref time.Time) float64 {
	return (unixSeconds(t) - unixSeconds(ref)) / 86400
}
