// Package chart owns the management UI's charts: capacity over time with
// its forecast, job durations and throughput, rendered on the server as
// self-contained SVG for embedding inline in html/template pages.
//
// The output is built for a strict Content-Security-Policy: it never
// carries a style attribute or a script element, only presentation
// attributes (fill, stroke, font-size …) and class names (chart-line,
// series-0, state-failed …) that the UI's stylesheet may use to theme it.
// Every chart is well-formed XML, escapes all text it was given (labels
// come from users), scales to its container (viewBox, width="100%") and is
// accessible: role="img" with aria-labelledby naming a <title> and a
// <desc> that describes the data in words.
//
// Bad input never panics and always renders something: an empty series
// shows "No data yet", NaN and infinite values are dropped, a single point
// or all-equal values get a sensible range, and very long series are
// thinned to the pixel width before drawing.
//
// Besides drawing, the package owns the capacity forecast (Forecast): a
// least-squares line through the recent history of used bytes, projected
// to the date the pool fills up.
//
// The package keeps no global state; each call renders from its arguments
// alone.
package chart
