package disks

import "time"

// ScrubSchedule is a monthly scrub: the first Weekday of each month at
// Hour:Minute in Location.
type ScrubSchedule struct {
	Weekday  time.Weekday
	Hour     int
	Minute   int
	Location *time.Location // time.Local when nil
}

// DefaultScrubSchedule is the first Sunday of the month at 02:00 local
// time.
func DefaultScrubSchedule() ScrubSchedule {
	return ScrubSchedule{Weekday: time.Sunday, Hour: 2}
}

// Next is the first scheduled time after last.
func (s ScrubSchedule) Next(last time.Time) time.Time {
	loc := s.Location
	if loc == nil {
		loc = time.Local
	}
	l := last.In(loc)
	for i := 0; ; i++ {
		c := s.in(l.Year(), l.Month()+time.Month(i), loc)
		if c.After(last) {
			return c
		}
	}
}

// in is the scheduled time of a month (time.Date normalises month 13).
func (s ScrubSchedule) in(year int, month time.Month, loc *time.Location) time.Time {
	first := time.Date(year, month, 1, 0, 0, 0, 0, loc)
	day := 1 + (int(s.Weekday)-int(first.Weekday())+7)%7
	return time.Date(first.Year(), first.Month(), day, s.Hour, s.Minute, 0, 0, loc)
}

// NextScrub is DefaultScrubSchedule's next time after last.
func NextScrub(last time.Time) time.Time { return DefaultScrubSchedule().Next(last) }
