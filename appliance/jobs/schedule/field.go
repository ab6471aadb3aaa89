package schedule

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// A set of small integers (0 to 63) is kept as a bit mask: bit v set means
// v is in the set.

// field describes one numeric component of a calendar event.
type field struct {
	name     string
	min, max int
}

var (
	fieldMonth  = field{"month", 1, 12}
	fieldDay    = field{"day", 1, 31}
	fieldHour   = field{"hour", 0, 23}
	fieldMinute = field{"minute", 0, 59}
	fieldSecond = field{"second", 0, 59}
)

// all is the set of every value of f.
func (f field) all() uint64 {
	return span(f.min, f.max)
}

// span is the set {lo, ..., hi}.
func span(lo, hi int) uint64 {
	if hi < lo {
		return 0
	}
	return (^uint64(0) >> (63 - hi)) &^ (1<<lo - 1)
}

// number parses the decimal number s, which must lie in f's range.
func (f field) number(s string) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("%s is empty", f.name)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%s %q is not a number", f.name, s)
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s %s out of range %d-%d", f.name, s, f.min, f.max)
	}
	if n < f.min || n > f.max {
		return 0, fmt.Errorf("%s %d out of range %d-%d", f.name, n, f.min, f.max)
	}
	return n, nil
}

// step parses the repetition step s of item.
func (f field) step(s, item string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || strings.IndexFunc(s, notDigit) >= 0 {
		return 0, fmt.Errorf("%s %q: repetition step %q must be a number of at least 1", f.name, item, s)
	}
	return n, nil
}

func notDigit(r rune) bool { return r < '0' || r > '9' }

// parse parses a comma-separated list of items into a set. An item is one
// of
//
//	N        one value
//	N..M     the values N to M
//	N/S      N, N+S, N+2S, ... up to the field's maximum
//	N..M/S   N, N+S, N+2S, ... up to M
//	*        every value
//	*/S      the field's minimum, then every S
func (f field) parse(s string) (uint64, error) {
	if s == "" {
		return 0, fmt.Errorf("%s is empty", f.name)
	}
	var set uint64
	for _, item := range strings.Split(s, ",") {
		if item == "" {
			return 0, fmt.Errorf("%s list %q has an empty item", f.name, s)
		}
		base, stepText, hasStep := strings.Cut(item, "/")
		step := 1
		if hasStep {
			var err error
			if step, err = f.step(stepText, item); err != nil {
				return 0, err
			}
		}
		var lo, hi int
		switch loText, hiText, isRange := strings.Cut(base, ".."); {
		case base == "*":
			lo, hi = f.min, f.max
		case isRange:
			var err error
			if lo, err = f.number(loText); err != nil {
				return 0, err
			}
			if hi, err = f.number(hiText); err != nil {
				return 0, err
			}
			if hi < lo {
				return 0, fmt.Errorf("%s range %q is backwards", f.name, base)
			}
		default:
			var err error
			if lo, err = f.number(base); err != nil {
				return 0, err
			}
			hi = lo
			if hasStep {
				hi = f.max
			}
		}
		for v := lo; v <= hi; v += step {
			set |= 1 << v
		}
	}
	return set, nil
}

// parseFromEnd parses the day list of a "~" date (days counted from the end
// of the month, 1 being the last day) into a set of such counts. Items are
// N, N..M and N/S; as in systemd, a repetition runs towards the end of the
// month: "7/1" is the 7th last day, the 6th last, ..., the last.
func parseFromEnd(s string) (uint64, error) {
	f := fieldDay
	if s == "" {
		return 0, fmt.Errorf("day is empty")
	}
	var set uint64
	for _, item := range strings.Split(s, ",") {
		if item == "" {
			return 0, fmt.Errorf("day list %q has an empty item", s)
		}
		base, stepText, hasStep := strings.Cut(item, "/")
		if base == "*" {
			return 0, fmt.Errorf("day \"~%s\": * cannot be counted from the end of the month", item)
		}
		loText, hiText, isRange := strings.Cut(base, "..")
		if isRange && hasStep {
			return 0, fmt.Errorf("day \"~%s\": a range counted from the end of the month takes no step", item)
		}
		lo, err := f.number(loText)
		if err != nil {
			return 0, err
		}
		hi := lo
		if isRange {
			if hi, err = f.number(hiText); err != nil {
				return 0, err
			}
			if hi < lo {
				return 0, fmt.Errorf("day range \"~%s\" is backwards", base)
			}
		}
		if hasStep {
			step, err := f.step(stepText, item)
			if err != nil {
				return 0, err
			}
			for v := lo; v >= 1; v -= step {
				set |= 1 << v
			}
			continue
		}
		set |= span(lo, hi)
	}
	return set, nil
}

// format writes set in the shortest of the forms parse accepts: "*" for
// every value, "N/S" for a repetition of at least three values that runs
// to the maximum (if steps is set), and otherwise a list of values and
// ranges of at least three values. Values have two digits.
func (f field) format(set uint64, steps bool) string {
	if set == f.all() {
		return "*"
	}
	var vs []int
	for s := set; s != 0; s &= s - 1 {
		vs = append(vs, bits.TrailingZeros64(s))
	}
	if steps && len(vs) >= 3 {
		step := vs[1] - vs[0]
		regular := step >= 2 && vs[len(vs)-1]+step > f.max
		for i := 2; regular && i < len(vs); i++ {
			regular = vs[i]-vs[i-1] == step
		}
		if regular {
			return fmt.Sprintf("%02d/%d", vs[0], step)
		}
	}
	var b strings.Builder
	for i := 0; i < len(vs); {
		j := i
		for j+1 < len(vs) && vs[j+1] == vs[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		switch {
		case j-i >= 2:
			fmt.Fprintf(&b, "%02d..%02d", vs[i], vs[j])
			i = j + 1
		default:
			fmt.Fprintf(&b, "%02d", vs[i])
			i++
		}
	}
	return b.String()
}

// Weekdays is a set of days of the week: bit 1<<d is set for each
// time.Weekday d in the set.
type Weekdays uint8

// AllWeekdays is the set of all seven days.
const AllWeekdays Weekdays = 1<<7 - 1

// DaysOf returns the set of the given days.
func DaysOf(days ...time.Weekday) Weekdays {
	var w Weekdays
	for _, d := range days {
		w |= 1 << (d % 7)
	}
	return w
}

// Has reports whether d is in the set.
func (w Weekdays) Has(d time.Weekday) bool {
	return w&(1<<(d%7)) != 0
}

// mondayFirst lists the days in the order schedules print them.
var mondayFirst = [7]time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday}

// String returns the set as schedules write it: days in order from Monday
// to Sunday, three or more consecutive days as a range, as in "Mon..Fri"
// or "Mon,Wed,Sat,Sun". The empty set is "".
func (w Weekdays) String() string {
	var b strings.Builder
	for i := 0; i < 7; {
		if !w.Has(mondayFirst[i]) {
			i++
			continue
		}
		j := i
		for j+1 < 7 && w.Has(mondayFirst[j+1]) {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if j-i >= 2 {
			b.WriteString(dayName(mondayFirst[i]) + ".." + dayName(mondayFirst[j]))
			i = j + 1
		} else {
			b.WriteString(dayName(mondayFirst[i]))
			i++
		}
	}
	return b.String()
}

func dayName(d time.Weekday) string {
	return d.String()[:3]
}

// lookupDay returns the day named s, abbreviated ("Mon") or in full
// ("Monday"), in any case.
func lookupDay(s string) (time.Weekday, bool) {
	for d := time.Sunday; d <= time.Saturday; d++ {
		if strings.EqualFold(s, dayName(d)) || strings.EqualFold(s, d.String()) {
			return d, true
		}
	}
	return 0, false
}

// parseWeekdays parses a comma-separated list of days and day ranges, such
// as "Mon..Fri" or "Sat,Sun". A range may wrap around the end of the week:
// "Fri..Mon" is Friday, Saturday, Sunday and Monday.
func parseWeekdays(s string) (Weekdays, error) {
	var w Weekdays
	for _, item := range strings.Split(s, ",") {
		if item == "" {
			return 0, fmt.Errorf("weekday list %q has an empty item", s)
		}
		if lo, hi, ok := strings.Cut(item, "-"); ok {
			_, loOK := lookupDay(lo)
			_, hiOK := lookupDay(hi)
			if loOK && hiOK {
				return 0, fmt.Errorf("weekday range %q: write ranges with \"..\", as in Mon..Fri", item)
			}
		}
		loText, hiText, isRange := strings.Cut(item, "..")
		lo, ok := lookupDay(loText)
		if !ok {
			return 0, fmt.Errorf("unknown weekday %q", loText)
		}
		hi := lo
		if isRange {
			if hi, ok = lookupDay(hiText); !ok {
				return 0, fmt.Errorf("unknown weekday %q", hiText)
			}
		}
		for d := lo; ; d = (d + 1) % 7 {
			w |= 1 << d
			if d == hi {
				break
			}
		}
	}
	return w, nil
}
