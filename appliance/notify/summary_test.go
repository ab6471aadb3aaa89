package notify

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestSummaryEventRendering(t *testing.T) {
	e := SummaryEvent(Summary{
		Date:          time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC),
		JobsSucceeded: 12,
		JobsWarning:   1,
		JobsFailed:    2,
		Failed:        []string{"Nightly: VM db01: snapshot failed", "Nightly: VM web02: datastore\nunreachable"},
		RPOMisses:     []string{"db01: newest point 30 h old (RPO 24 h)"},
		StoredBytes:   1288490188800, // 1.2 TiB
		FreeBytes:     858993459200,  // 800 GiB
		Alerts:        []string{"Pool tank is degraded"},
	})
	want := `Coffer daily summary for Wednesday 4 March 2026

Jobs
  Succeeded      12
  With warnings   1
  Failed          2
  RPO misses      1

Storage
  Stored    1.2 TiB
  Free    800.0 GiB

Failed
  - Nightly: VM db01: snapshot failed
  - Nightly: VM web02: datastore unreachable

RPO misses
  - db01: newest point 30 h old (RPO 24 h)

Alerts
  - Pool tank is degraded
`
	if e.Text != want {
		t.Errorf("text:\n%s\nwant:\n%s", e.Text, want)
	}
	if e.Kind != KindDailySummary || e.Severity != SeverityCritical {
		t.Errorf("kind %s severity %s", e.Kind, e.Severity)
	}
	if want := "Daily summary for 2026-03-04: 2 jobs failed, 1 RPO miss, 1 job with warnings"; e.Subject != want {
		t.Errorf("subject = %q, want %q", e.Subject, want)
	}
	for k, v := range map[string]string{"date": "2026-03-04", "jobs_failed": "2", "rpo_misses": "1", "stored_bytes": "1288490188800"} {
		if e.Fields[k] != v {
			t.Errorf("field %s = %q, want %q", k, e.Fields[k], v)
		}
	}
}

func TestSummarySeverityAndSubject(t *testing.T) {
	day := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		s       Summary
		sev     Severity
		subject string
	}{
		{"all good", Summary{Date: day, JobsSucceeded: 5}, SeverityInfo, "Daily summary for 2026-03-04: 5 jobs succeeded"},
		{"one good", Summary{Date: day, JobsSucceeded: 1}, SeverityInfo, "Daily summary for 2026-03-04: 1 job succeeded"},
		{"nothing ran", Summary{Date: day}, SeverityInfo, "Daily summary for 2026-03-04: no jobs ran"},
		{"warnings only", Summary{Date: day, JobsSucceeded: 3, JobsWarning: 2, Alerts: []string{"x"}}, SeverityInfo,
			"Daily summary for 2026-03-04: 2 jobs with warnings"},
		{"RPO misses", Summary{Date: day, RPOMisses: []string{"a", "b"}}, SeverityWarning, "Daily summary for 2026-03-04: 2 RPO misses"},
		{"failure", Summary{Date: day, JobsFailed: 1, RPOMisses: []string{"a"}}, SeverityCritical,
			"Daily summary for 2026-03-04: 1 job failed, 1 RPO miss"},
		{"failure lines only", Summary{Date: day, Failed: []string{"x"}}, SeverityCritical, "Daily summary for 2026-03-04: no jobs ran"},
		{"no date", Summary{JobsSucceeded: 2}, SeverityInfo, "Daily summary for today: 2 jobs succeeded"},
	} {
		e := SummaryEvent(tc.s)
		if e.Severity != tc.sev || e.Subject != tc.subject {
			t.Errorf("%s: %s %q, want %s %q", tc.name, e.Severity, e.Subject, tc.sev, tc.subject)
		}
	}
}

func TestSummaryListsAreCut(t *testing.T) {
	var failed []string
	for i := range 60 {
		failed = append(failed, fmt.Sprintf("job %d failed", i))
	}
	e := SummaryEvent(Summary{JobsFailed: 60, Failed: failed})
	if !strings.Contains(e.Text, "  - job 49 failed\n  ... and 10 more\n") || strings.Contains(e.Text, "job 50 failed") {
		t.Errorf("text:\n%s", e.Text)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{
		-1: "unknown", 0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB",
		5 << 30: "5.0 GiB", 1288490188800: "1.2 TiB", 3 << 60: "3.0 EiB",
	} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestSummaryMail(t *testing.T) {
	sink := startSMTPSink(t, sinkSTARTTLS)
	cfg := sink.emailConfig(SecurityStartTLS)
	cfg.DailySummary = true
	n := mustNew(t, Config{Email: cfg}, Options{Hostname: "coffer-01"})
	if err := n.Notify(testContext(t), SummaryEvent(Summary{JobsSucceeded: 3})); err != nil {
		t.Fatal(err)
	}
	mails, _ := sink.received()
	if len(mails) != 1 {
		t.Fatalf("%d mails", len(mails))
	}
	msg, body := readMail(t, mails[0])
	if s := msg.Header.Get("Subject"); s != "[Coffer coffer-01] Daily summary for today: 3 jobs succeeded" {
		t.Errorf("subject %q", s)
	}
	if !strings.Contains(body, "Jobs\n  Succeeded      3\n") || strings.Contains(body, "stored_bytes") {
		t.Errorf("body:\n%s", body)
	}
}
