package notify

import (
	"fmt"
	"time"
)

// Kind says what an Event is about.
type Kind string

// The kinds of events.
const (
	KindJobFailed    Kind = "job_failed"    // a backup job failed
	KindRPOMiss      Kind = "rpo_miss"      // a VM misses its recovery point objective
	KindPoolDegraded Kind = "pool_degraded" // a storage pool lost redundancy
	KindVerifyDamage Kind = "verify_damage" // verification found damaged data
	KindTapeNeeded   Kind = "tape_needed"   // a tape must be loaded
	KindDailySummary Kind = "daily_summary" // the daily summary (see SummaryEvent)
	KindTest         Kind = "test"          // the "send test notification" button
)

// Kinds lists every kind, in a stable order.
func Kinds() []Kind {
	return []Kind{KindJobFailed, KindRPOMiss, KindPoolDegraded, KindVerifyDamage,
		KindTapeNeeded, KindDailySummary, KindTest}
}

// Valid tells whether k is one of the kinds above.
func (k Kind) Valid() bool {
	switch k {
	case KindJobFailed, KindRPOMiss, KindPoolDegraded, KindVerifyDamage,
		KindTapeNeeded, KindDailySummary, KindTest:
		return true
	}
	return false
}

// repeatable tells whether events of this kind are held back when they
// repeat within Options.Repeat.
func (k Kind) repeatable() bool { return k != KindDailySummary && k != KindTest }

// Severity says how urgent an Event is.
type Severity string

// The severities, least urgent first.
const (
	SeverityInfo     Severity = "info"
	SeverityWarning  Severity = "warning"
	SeverityCritical Severity = "critical"
)

// Valid tells whether s is one of the severities above.
func (s Severity) Valid() bool {
	return s == SeverityInfo || s == SeverityWarning || s == SeverityCritical
}

// Event is one notification.
type Event struct {
	Kind     Kind
	Severity Severity  // empty means info
	Time     time.Time // zero means now (Options.Now)
	Subject  string    // one line (line breaks become spaces), at most 200 characters
	Text     string    // plain text body
	// Fields are facts for machines and people, such as "job" or "vm".
	// Mails list them under the text (except in the daily summary, whose
	// text has them already); webhooks carry them as an object.
	Fields map[string]string
	Link   string // URL into the user interface; optional
}

// normalise checks e and fills in the defaults.
func (e Event) normalise(now time.Time) (Event, error) {
	if !e.Kind.Valid() {
		return e, fmt.Errorf("unknown event kind %q", e.Kind)
	}
	if e.Severity == "" {
		e.Severity = SeverityInfo
	}
	if !e.Severity.Valid() {
		return e, fmt.Errorf("unknown severity %q", e.Severity)
	}
	if e.Time.IsZero() {
		e.Time = now
	}
	e.Subject = cut(oneLine(e.Subject), maxSubject)
	if e.Subject == "" {
		e.Subject = string(e.Kind)
	}
	return e, nil
}
