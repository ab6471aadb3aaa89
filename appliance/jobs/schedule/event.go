package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Event is a parsed calendar event: a set of wall-clock times, such as
// "Mon..Fri *-*-* 22:00". Events are comparable; two events are equal if
// and only if their normalized forms (String) are equal.
//
// The zero Event is "no schedule": it never fires, its String is "" and
// its text form is the empty string.
type Event struct {
	weekdays Weekdays // AllWeekdays if the event names no weekdays
	months   uint64   // bits 1..12
	days     uint64   // bits 1..31; zero if fromEnd is used
	fromEnd  uint64   // bit k: the kth last day of the month; zero if days is used
	hours    uint64   // bits 0..23
	minutes  uint64   // bits 0..59
	seconds  uint64   // bits 0..59
}

// keywords are the shorthands that stand for a whole expression.
var keywords = map[string]string{
	"minutely":     "*-*-* *:*:00",
	"hourly":       "*-*-* *:00:00",
	"daily":        "*-*-* 00:00:00",
	"weekly":       "Mon *-*-* 00:00:00",
	"monthly":      "*-*-01 00:00:00",
	"quarterly":    "*-01,04,07,10-01 00:00:00",
	"semiannually": "*-01,07-01 00:00:00",
	"yearly":       "*-01-01 00:00:00",
	"annually":     "*-01-01 00:00:00",
}

// maxDays is the most days each month ever has.
var maxDays = [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

// Parse parses a calendar event in the syntax described in the package
// documentation. Errors name the input and the offending part, as in
//
//	schedule "Mon..Fri 25:00": hour 25 out of range 0-23
//
// Parse rejects events that can never occur, such as "*-02-30". The empty
// string is an error; UnmarshalText, by contrast, takes it as the zero
// Event.
func Parse(s string) (Event, error) {
	e, err := parse(s)
	if err != nil {
		return Event{}, fmt.Errorf("schedule %q: %w", s, err)
	}
	return e, nil
}

// MustParse is like Parse but panics if s cannot be parsed. It is meant for
// constants in programs and tests.
func MustParse(s string) Event {
	e, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return e
}

func parse(s string) (Event, error) {
	toks := strings.Fields(s)
	if len(toks) == 0 {
		return Event{}, errors.New("empty")
	}
	if len(toks) == 1 {
		if exp, ok := keywords[strings.ToLower(toks[0])]; ok {
			return parse(exp)
		}
	}
	e := Event{
		weekdays: AllWeekdays,
		months:   fieldMonth.all(),
		days:     fieldDay.all(),
		hours:    1,
		minutes:  1,
		seconds:  1,
	}
	const (
		start = iota
		sawWeekdays
		sawDate
		sawTime
	)
	stage := start
	for _, tok := range toks {
		switch c := tok[0]; {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
			if _, ok := keywords[strings.ToLower(tok)]; ok {
				return Event{}, fmt.Errorf("%q must stand alone", tok)
			}
			w, err := parseWeekdays(tok)
			switch {
			case stage == sawWeekdays && err == nil:
				return Event{}, fmt.Errorf("weekdays %q given twice; join lists with \",\", as in Sat,Sun", tok)
			case stage > sawWeekdays && err == nil:
				return Event{}, fmt.Errorf("weekdays %q must come first", tok)
			case stage == sawTime:
				return Event{}, fmt.Errorf("unexpected %q after the time (there is no time zone suffix: the policy's time zone applies)", tok)
			case err != nil:
				return Event{}, err
			}
			e.weekdays = w
			stage = sawWeekdays
		case strings.Contains(tok, ":"):
			if stage == sawTime {
				return Event{}, fmt.Errorf("time %q given twice; list several hours or minutes with \",\", as in 22,02:00", tok)
			}
			if err := e.parseTime(tok); err != nil {
				return Event{}, err
			}
			stage = sawTime
		case strings.ContainsAny(tok, "-~"):
			switch stage {
			case sawDate:
				return Event{}, fmt.Errorf("date %q given twice", tok)
			case sawTime:
				return Event{}, fmt.Errorf("date %q must come before the time", tok)
			}
			if err := e.parseDate(tok); err != nil {
				return Event{}, err
			}
			stage = sawDate
		default:
			return Event{}, fmt.Errorf("%q is neither weekdays (Mon..Fri), a date (*-*-01) nor a time (22:00)", tok)
		}
	}
	if err := e.check(); err != nil {
		return Event{}, err
	}
	return e, nil
}

// parseTime parses "H:M" or "H:M:S".
func (e *Event) parseTime(tok string) error {
	parts := strings.Split(tok, ":")
	if len(parts) > 3 {
		return fmt.Errorf("time %q: want HOUR:MINUTE or HOUR:MINUTE:SECOND", tok)
	}
	var err error
	if e.hours, err = fieldHour.parse(parts[0]); err != nil {
		return err
	}
	if e.minutes, err = fieldMinute.parse(parts[1]); err != nil {
		return err
	}
	if len(parts) == 3 {
		if e.seconds, err = fieldSecond.parse(parts[2]); err != nil {
			return err
		}
	}
	return nil
}

// parseDate parses "*-M-D", "M-D", "*-M~D" and "M~D", and "L" as the day.
func (e *Event) parseDate(tok string) error {
	var ym, day string
	fromEnd := false
	if i := strings.IndexByte(tok, '~'); i >= 0 {
		ym, day, fromEnd = tok[:i], tok[i+1:], true
	} else {
		i := strings.LastIndexByte(tok, '-')
		ym, day = tok[:i], tok[i+1:]
	}
	month := ym
	if y, m, ok := strings.Cut(ym, "-"); ok {
		if strings.Contains(m, "-") {
			return fmt.Errorf("date %q: want YEAR-MONTH-DAY or MONTH-DAY", tok)
		}
		if y != "*" {
			return fmt.Errorf("date %q: year %q not supported, write *", tok, y)
		}
		month = m
	}
	var err error
	if e.months, err = fieldMonth.parse(month); err != nil {
		return err
	}
	switch {
	case fromEnd:
		e.days = 0
		if e.fromEnd, err = parseFromEnd(day); err != nil {
			return err
		}
		if e.fromEnd == fieldDay.all() {
			e.days, e.fromEnd = fieldDay.all(), 0
		}
	case strings.EqualFold(day, "L"):
		e.days, e.fromEnd = 0, 1<<1
	default:
		if e.days, err = fieldDay.parse(day); err != nil {
			return err
		}
	}
	return nil
}

// check reports an error if no month of the event has any of its days.
func (e *Event) check() error {
	for m := 1; m <= 12; m++ {
		if e.months&(1<<m) == 0 {
			continue
		}
		if (e.days|e.fromEnd)&span(1, maxDays[m]) != 0 {
			return nil
		}
	}
	day := "day " + fieldDay.format(e.days, true)
	if e.fromEnd != 0 {
		day = "day ~" + fieldDay.format(e.fromEnd, false)
	}
	return fmt.Errorf("%s never occurs in month %s", day, fieldMonth.format(e.months, true))
}

// IsZero reports whether e is the zero Event, which never fires.
func (e Event) IsZero() bool {
	return e == Event{}
}

// String returns the normalized form of e, such as "Mon..Fri *-*-* 22:00"
// or "*-*-01 03:00" or "*-*-* 00/4:00:30". Parse accepts it and returns an
// Event equal to e. The zero Event is "".
func (e Event) String() string {
	if e.IsZero() {
		return ""
	}
	var b strings.Builder
	if e.weekdays != AllWeekdays {
		b.WriteString(e.weekdays.String())
		b.WriteByte(' ')
	}
	b.WriteString("*-")
	b.WriteString(fieldMonth.format(e.months, true))
	if e.fromEnd != 0 {
		b.WriteByte('~')
		b.WriteString(fieldDay.format(e.fromEnd, false))
	} else {
		b.WriteByte('-')
		b.WriteString(fieldDay.format(e.days, true))
	}
	b.WriteByte(' ')
	b.WriteString(fieldHour.format(e.hours, true))
	b.WriteByte(':')
	b.WriteString(fieldMinute.format(e.minutes, true))
	if e.seconds != 1 {
		b.WriteByte(':')
		b.WriteString(fieldSecond.format(e.seconds, true))
	}
	return b.String()
}

// MarshalText returns e.String(), so that an Event is stored in JSON as
// its normalized string.
func (e Event) MarshalText() ([]byte, error) {
	return []byte(e.String()), nil
}

// UnmarshalText parses text with Parse, except that the empty string is
// the zero Event ("no schedule").
func (e *Event) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		*e = Event{}
		return nil
	}
	ev, err := Parse(string(text))
	if err != nil {
		return err
	}
	*e = ev
	return nil
}

// searchYears bounds the search in Next. Parse only returns events that
// occur at least once every 40 years (a weekday on 29 February), so
// the bound is only a guard against looping.
const searchYears = 400

// Next returns the first instant strictly after after at which e fires,
// with the event's wall-clock times taken in loc (nil means UTC). The
// result is in loc.
//
// Every matching wall-clock time fires exactly once:
//
//   - a time that is skipped when the clocks go forward (02:30 on a day
//     when 02:00 becomes 03:00) fires at the first instant after the gap
//     (03:00); several such times fire once, together;
//   - a time that occurs twice when the clocks go back fires at its first
//     occurrence only, so a daily 02:30 event fires once that day and an
//     hourly one is silent during the repeated hour.
//
// Next returns the zero Time for the zero Event, and, as a guard that
// events from Parse never reach, if no instant matches within 400 years.
func (e Event) Next(after time.Time, loc *time.Location) time.Time {
	if e.IsZero() {
		return time.Time{}
	}
	if loc == nil {
		loc = time.UTC
	}
	a := after.In(loc)
	y, mo, d := a.Date()
	h0, m0, s0 := a.Clock()
	// Wall-clock times earlier than a's own resolve to instants no later
	// than after (the mapping from wall clock to instants never goes
	// backwards), so the search starts at a's wall-clock time.
	day := time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
	end := day.AddDate(searchYears, 0, 0)
	for first := true; day.Before(end); first = false {
		y, mo, d := day.Date()
		if e.months&(1<<mo) == 0 {
			day = time.Date(y, mo+1, 1, 0, 0, 0, 0, time.UTC)
			continue
		}
		if e.onDay(y, mo, d, day.Weekday()) {
			if t, ok := e.nextOnDay(y, mo, d, first, h0, m0, s0, after, loc); ok {
				return t
			}
		}
		day = day.AddDate(0, 0, 1)
	}
	return time.Time{}
}

// onDay reports whether e fires on the given date.
func (e Event) onDay(y int, mo time.Month, d int, wd time.Weekday) bool {
	if !e.weekdays.Has(wd) {
		return false
	}
	if e.fromEnd != 0 {
		return e.fromEnd&(1<<(daysIn(y, mo)-d+1)) != 0
	}
	return e.days&(1<<d) != 0
}

// nextOnDay returns the first time of e on the given date that resolves to
// an instant after after. If first is set, times before h0:m0:s0 are
// skipped.
func (e Event) nextOnDay(y int, mo time.Month, d int, first bool, h0, m0, s0 int, after time.Time, loc *time.Location) (time.Time, bool) {
	for h := 0; h < 24; h++ {
		if e.hours&(1<<h) == 0 || first && h < h0 {
			continue
		}
		firstHour := first && h == h0
		for m := 0; m < 60; m++ {
			if e.minutes&(1<<m) == 0 || firstHour && m < m0 {
				continue
			}
			firstMinute := firstHour && m == m0
			for s := 0; s < 60; s++ {
				if e.seconds&(1<<s) == 0 || firstMinute && s < s0 {
					continue
				}
				if t := resolve(y, mo, d, h, m, s, loc); t.After(after) {
					return t, true
				}
			}
		}
	}
	return time.Time{}, false
}

// Missed reports whether e was due at least once in (last, now] in loc:
// whether a run was missed, for example while the appliance was off. It
// says nothing of how many; the caller runs the policy once. A zero last
// counts every past occurrence; for a policy that has never run, pass the
// time it was created.
func Missed(e Event, loc *time.Location, last, now time.Time) bool {
	next := e.Next(last, loc)
	return !next.IsZero() && !next.After(now)
}

// daysIn returns the number of days in month mo of year y.
func daysIn(y int, mo time.Month) int {
	return time.Date(y, mo+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// resolve returns the instant at which the wall clock in loc shows the
// given date and time. A time the clocks skip (a gap when they go forward)
// resolves to the first instant after the gap; a time they show twice
// (when they go back) resolves to its first occurrence. Unlike time.Date,
// which leaves both cases unspecified, resolve is therefore monotonic:
// a later wall-clock time never resolves to an earlier instant.
func resolve(y int, mo time.Month, d, h, m, s int, loc *time.Location) time.Time {
	wall := time.Date(y, mo, d, h, m, s, 0, time.UTC).Unix()
	// Start the scan of the zone's periods well before any instant that
	// can show this wall-clock time (offsets are less than a day), then
	// take the first period that shows it.
	t := time.Unix(wall-26*3600, 0).In(loc)
	for range 16 {
		_, offset := t.Zone()
		start, end := t.ZoneBounds()
		u := wall - int64(offset)
		if !start.IsZero() && u < start.Unix() {
			// Before this period's first wall-clock time, but after the
			// last one of the period before: a gap.
			return start
		}
		if end.IsZero() || u < end.Unix() {
			return time.Unix(u, 0).In(loc)
		}
		t = end
	}
	return time.Date(y, mo, d, h, m, s, 0, loc)
}
