package chart_test

import (
	"fmt"
	"strings"
	"time"

	"coffer.dev/coffer/ui/chart"
)

// A capacity chart: used space over the last three weeks, the forecast
// drawn dashed up to the day the pool is full, the capacity as a
// reference line and a marker at now.
func ExampleTimeLine() {
	const GiB = 1 << 30
	now := time.Date(2024, 12, 20, 12, 0, 0, 0, time.UTC)
	var used []chart.Point
	for day := -20; day <= 0; day++ {
		used = append(used, chart.Point{X: now.AddDate(0, 0, day), Y: 90*GiB + float64(day)*GiB})
	}
	capacity := 100.0 * GiB
	f := chart.Forecast(used, capacity, now)

	svg := chart.TimeLine(chart.LineOptions{
		Title:     "Pool capacity",
		Y:         chart.Axis{Label: "Used", Unit: chart.Bytes},
		Series:    []chart.Series{{Name: "used", Points: used}, f.Projection},
		Reference: &chart.Reference{Label: "capacity", Value: capacity},
		Now:       now,
	})
	// In a page: {{.Capacity}} with svg, a template.HTML, in the data.

	fmt.Println(f)
	fmt.Printf("%.0f GiB/day\n", f.Slope/GiB)
	fmt.Println(strings.HasPrefix(string(svg), "<svg"))
	fmt.Println(strings.Contains(string(svg), ">capacity 100 GiB</text>"))
	// Output:
	// full in 10 days (30 Dec 2024)
	// 1 GiB/day
	// true
	// true
}
