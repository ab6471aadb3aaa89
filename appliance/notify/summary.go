package notify

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// maxSummaryLines is how many lines of each list a summary shows.
const maxSummaryLines = 50

// Summary is what the daily summary reports about one day.
type Summary struct {
	Date          time.Time // the day summarised
	JobsSucceeded int
	JobsFailed    int
	JobsWarning   int
	Failed        []string // one line per failed job or VM
	RPOMisses     []string // one line per VM that misses its RPO
	StoredBytes   int64    // negative: unknown
	FreeBytes     int64    // negative: unknown
	Alerts        []string // other things to look at
}

// SummaryEvent renders s as a daily_summary event: critical when
// something failed, warning when a VM misses its RPO, info otherwise.
func SummaryEvent(s Summary) Event {
	sev := SeverityInfo
	switch {
	case s.JobsFailed > 0 || len(s.Failed) > 0:
		sev = SeverityCritical
	case len(s.RPOMisses) > 0:
		sev = SeverityWarning
	}
	day := "today"
	if !s.Date.IsZero() {
		day = s.Date.Format("2006-01-02")
	}
	return Event{
		Kind:     KindDailySummary,
		Severity: sev,
		Subject:  "Daily summary for " + day + ": " + summaryHeadline(s),
		Text:     summaryText(s),
		Fields: map[string]string{
			"date":           day,
			"jobs_succeeded": strconv.Itoa(s.JobsSucceeded),
			"jobs_warning":   strconv.Itoa(s.JobsWarning),
			"jobs_failed":    strconv.Itoa(s.JobsFailed),
			"rpo_misses":     strconv.Itoa(len(s.RPOMisses)),
			"stored_bytes":   strconv.FormatInt(s.StoredBytes, 10),
			"free_bytes":     strconv.FormatInt(s.FreeBytes, 10),
		},
	}
}

// summaryHeadline is the gist of s for the subject line.
func summaryHeadline(s Summary) string {
	var parts []string
	if s.JobsFailed > 0 {
		parts = append(parts, plural(s.JobsFailed, "job failed", "jobs failed"))
	}
	if n := len(s.RPOMisses); n > 0 {
		parts = append(parts, plural(n, "RPO miss", "RPO misses"))
	}
	if s.JobsWarning > 0 {
		parts = append(parts, plural(s.JobsWarning, "job with warnings", "jobs with warnings"))
	}
	switch {
	case len(parts) > 0:
		return strings.Join(parts, ", ")
	case s.JobsSucceeded > 0:
		return plural(s.JobsSucceeded, "job succeeded", "jobs succeeded")
	}
	return "no jobs ran"
}

// summaryText is the body of the summary: a short table, then the lists.
func summaryText(s Summary) string {
	var b strings.Builder
	if s.Date.IsZero() {
		b.WriteString("Coffer daily summary\n\n")
	} else {
		b.WriteString("Coffer daily summary for " + s.Date.Format("Monday 2 January 2006") + "\n\n")
	}
	table(&b, "Jobs", [][2]string{
		{"Succeeded", strconv.Itoa(s.JobsSucceeded)},
		{"With warnings", strconv.Itoa(s.JobsWarning)},
		{"Failed", strconv.Itoa(s.JobsFailed)},
		{"RPO misses", strconv.Itoa(len(s.RPOMisses))},
	})
	table(&b, "Storage", [][2]string{
		{"Stored", formatBytes(s.StoredBytes)},
		{"Free", formatBytes(s.FreeBytes)},
	})
	list(&b, "Failed", s.Failed)
	list(&b, "RPO misses", s.RPOMisses)
	list(&b, "Alerts", s.Alerts)
	return strings.TrimRight(b.String(), "\n") + "\n"
}

// table writes a titled two-column table: labels left, values right.
func table(b *strings.Builder, title string, rows [][2]string) {
	lw, vw := 0, 0
	for _, r := range rows {
		lw, vw = max(lw, len(r[0])), max(vw, len(r[1]))
	}
	b.WriteString(title + "\n")
	for _, r := range rows {
		fmt.Fprintf(b, "  %-*s  %*s\n", lw, r[0], vw, r[1])
	}
	b.WriteString("\n")
}

// list writes a titled list, if it has lines, cut to maxSummaryLines.
func list(b *strings.Builder, title string, lines []string) {
	if len(lines) == 0 {
		return
	}
	b.WriteString(title + "\n")
	for i, l := range lines {
		if i == maxSummaryLines {
			fmt.Fprintf(b, "  ... and %d more\n", len(lines)-i)
			break
		}
		b.WriteString("  - " + oneLine(l) + "\n")
	}
	b.WriteString("\n")
}

// formatBytes writes n in binary units: "0 B", "1.5 KiB", "2.0 TiB".
func formatBytes(n int64) string {
	if n < 0 {
		return "unknown"
	}
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	v, unit := float64(n), 0
	for v >= 1024 && unit < 6 {
		v /= 1024
		unit++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[unit-1])
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
