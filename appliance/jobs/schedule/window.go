package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// TimeOfDay is a wall-clock time of day in minutes after midnight, from 0
// (00:00) to 1439 (23:59). As a Window's Stop, 0 is the midnight that ends
// the day (24:00). Windows take other values modulo a day.
type TimeOfDay int

// minutesPerDay is the number of minutes in a day on the wall clock.
const minutesPerDay = 24 * 60

// Clock returns the time of day hour:minute.
func Clock(hour, minute int) TimeOfDay {
	return TimeOfDay(hour*60 + minute)
}

// String returns t as "HH:MM".
func (t TimeOfDay) String() string {
	return fmt.Sprintf("%02d:%02d", int(t)/60, int(t)%60)
}

// norm returns t reduced to [0, 1440).
func (t TimeOfDay) norm() int {
	return (int(t)%minutesPerDay + minutesPerDay) % minutesPerDay
}

// Window is a backup window: the span of each day in which a policy may
// start work. It opens at Start and closes at Stop on the wall clock of a
// location; if Stop is not after Start the window crosses midnight and
// closes on the next day (22:00-06:00). Start == Stop means 24 hours.
// (The closing time is called Stop, not End, because End is the method
// that says when an open window closes.)
//
// Days, if not empty, lists the days on which the window opens: with
// Days = Fri, the window 22:00-06:00 is open from Friday 22:00 to Saturday
// 06:00. An empty Days means every day.
//
// The zero Window (String "") is always open, as is any window that lasts
// 24 hours on every day, such as 10:00-10:00.
//
// The methods take the location from their argument: the window's times
// are read on the wall clock of t.Location(), so pass t.In(policyZone).
// Wall-clock times that do not exist on a day when the clocks go forward
// are taken at the first instant after the gap, and those that occur twice
// when they go back at their first occurrence, as for Event.Next.
type Window struct {
	Start TimeOfDay
	Stop  TimeOfDay
	Days  Weekdays
}

// ParseWindow parses a window written as
//
//	[WEEKDAYS] [HH:MM-HH:MM]
//
// such as "22:00-06:00", "Mon..Fri 22:00-06:00" or "Sat,Sun" (all day).
// WEEKDAYS is a list as in events ("Mon..Fri", "Sat,Sun"); the end may be
// written 24:00. The empty string is the zero Window, which is always
// open. Errors name the input, as in
//
//	window "22:00-25:00": end: hour 25 out of range 0-24
func ParseWindow(s string) (Window, error) {
	w, err := parseWindow(s)
	if err != nil {
		return Window{}, fmt.Errorf("window %q: %w", s, err)
	}
	return w, nil
}

func parseWindow(s string) (Window, error) {
	toks := strings.Fields(s)
	if len(toks) == 0 {
		return Window{}, nil
	}
	var w Window
	if c := toks[0][0]; 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' {
		days, err := parseWeekdays(toks[0])
		if err != nil {
			return Window{}, err
		}
		if days != AllWeekdays {
			w.Days = days
		}
		toks = toks[1:]
	}
	if len(toks) == 0 {
		return w, nil // whole days
	}
	for _, tok := range toks {
		if c := tok[0]; 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' {
			return Window{}, fmt.Errorf("unexpected %q: want [WEEKDAYS] [HH:MM-HH:MM], as in Mon..Fri 22:00-06:00", tok)
		}
	}
	rng := strings.Join(toks, "")
	startText, endText, ok := strings.Cut(rng, "-")
	if !ok {
		return Window{}, fmt.Errorf("%q: want START-END, as in 22:00-06:00", rng)
	}
	var err error
	if w.Start, err = parseClock(startText, false); err != nil {
		return Window{}, fmt.Errorf("start: %w", err)
	}
	if w.Stop, err = parseClock(endText, true); err != nil {
		return Window{}, fmt.Errorf("end: %w", err)
	}
	return w, nil
}

// parseClock parses "HH:MM" (one or two digits each). If end is set, 24:00
// is allowed and means midnight at the end of the day, which is 0.
func parseClock(s string, end bool) (TimeOfDay, error) {
	hText, mText, ok := strings.Cut(s, ":")
	if !ok || len(hText) > 2 || len(mText) > 2 {
		return 0, fmt.Errorf("%q is not a time of day HH:MM", s)
	}
	hours := fieldHour
	if end {
		hours.max = 24
	}
	h, err := hours.number(hText)
	if err != nil {
		return 0, err
	}
	m, err := fieldMinute.number(mText)
	if err != nil {
		return 0, err
	}
	if h == 24 {
		if m != 0 {
			return 0, errors.New("time 24:" + mText + " is past the end of the day")
		}
		h = 0
	}
	return Clock(h, m), nil
}

// IsZero reports whether w is the zero Window.
func (w Window) IsZero() bool {
	return w == Window{}
}

// String returns the normalized form of w, which ParseWindow accepts:
// "22:00-06:00", "Mon..Fri 22:00-24:00". A window that ends at midnight
// is written with 24:00. The zero Window is "".
func (w Window) String() string {
	if w.IsZero() {
		return ""
	}
	end := TimeOfDay(w.Stop.norm()).String()
	if end == "00:00" {
		end = "24:00"
	}
	rng := TimeOfDay(w.Start.norm()).String() + "-" + end
	if w.Days == 0 || w.Days&AllWeekdays == AllWeekdays {
		return rng
	}
	return w.Days.String() + " " + rng
}

// MarshalText returns w.String(), so that a Window is stored in JSON as its
// string form.
func (w Window) MarshalText() ([]byte, error) {
	return []byte(w.String()), nil
}

// UnmarshalText parses text with ParseWindow.
func (w *Window) UnmarshalText(text []byte) error {
	v, err := ParseWindow(string(text))
	if err != nil {
		return err
	}
	*w = v
	return nil
}

// length returns how many wall-clock minutes the window stays open.
func (w Window) length() int {
	n := w.Stop.norm() - w.Start.norm()
	if n <= 0 {
		n += minutesPerDay
	}
	return n
}

// always reports whether w never closes.
func (w Window) always() bool {
	return w.length() == minutesPerDay && (w.Days == 0 || w.Days&AllWeekdays == AllWeekdays)
}

// opensOn reports whether the window opens on day d.
func (w Window) opensOn(d time.Weekday) bool {
	return w.Days == 0 || w.Days.Has(d)
}

// bounds returns the instants at which the window opening on the given date
// (a midnight in UTC standing for the civil date) opens and closes in loc.
// If the two are equal, the window does not open that day: it lies in a
// gap of the wall clock.
func (w Window) bounds(date time.Time, loc *time.Location) (open, close time.Time) {
	y, mo, d := date.Date()
	start := w.Start.norm()
	open = resolve(y, mo, d, start/60, start%60, 0, loc)
	c := date.Add(time.Duration(start+w.length()) * time.Minute)
	cy, cmo, cd := c.Date()
	ch, cm, _ := c.Clock()
	close = resolve(cy, cmo, cd, ch, cm, 0, loc)
	return open, close
}

// civilDate returns t's date on its wall clock as a midnight in UTC.
func civilDate(t time.Time) time.Time {
	y, mo, d := t.Date()
	return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
}

// containing returns the span of the window that contains t, if any.
func (w Window) containing(t time.Time) (date, close time.Time, ok bool) {
	today := civilDate(t)
	// A window opens at most a day before it closes; look back two days
	// and forward one in case a change of the clocks moves t's date.
	for k := -2; k <= 1; k++ {
		day := today.AddDate(0, 0, k)
		if !w.opensOn(day.Weekday()) {
			continue
		}
		open, c := w.bounds(day, t.Location())
		if !t.Before(open) && t.Before(c) {
			if !ok || c.After(close) {
				date, close, ok = day, c, true
			}
		}
	}
	return date, close, ok
}

// Contains reports whether the window is open at t, read on the wall clock
// of t.Location(). It is open from its start up to, not including, its end.
func (w Window) Contains(t time.Time) bool {
	if w.always() {
		return true
	}
	_, _, ok := w.containing(t)
	return ok
}

// End returns when the window that is open at t closes, in t.Location():
// the instant at which the engine stops starting new work and reports that
// the window ended. Windows that follow each other without a gap (whole
// days on Sat,Sun) count as one. End returns the zero Time if the window
// is always open, and also if it is closed at t.
func (w Window) End(t time.Time) time.Time {
	if w.always() {
		return time.Time{}
	}
	day, close, ok := w.containing(t)
	if !ok {
		return time.Time{}
	}
	for range 7 {
		day = day.AddDate(0, 0, 1)
		if !w.opensOn(day.Weekday()) {
			break
		}
		open, c := w.bounds(day, t.Location())
		if open.After(close) {
			break
		}
		if c.After(close) {
			close = c
		}
	}
	return close
}

// NextOpen returns the first instant at or after after at which the window
// is open, in after.Location(): after itself if the window is open then,
// otherwise the next time it opens. It returns the zero Time only if Days
// holds no valid day.
func (w Window) NextOpen(after time.Time) time.Time {
	if w.always() || w.Contains(after) {
		return after
	}
	today := civilDate(after)
	for k := -1; k <= 15; k++ {
		day := today.AddDate(0, 0, k)
		if !w.opensOn(day.Weekday()) {
			continue
		}
		open, close := w.bounds(day, after.Location())
		if open.After(after) && close.After(open) {
			return open
		}
	}
	return time.Time{} // only if Days holds no valid day
}
