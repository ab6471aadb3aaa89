package schedule

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // zones for the DST tests even without /usr/share/zoneinfo
)

func loadLocation(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// instant parses an RFC 3339 time, whose explicit offset makes it
// unambiguous around changes of the clocks.
func instant(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `schedule "": empty`},
		{"   ", `schedule "   ": empty`},
		{"Mon..Fri 25:00", `schedule "Mon..Fri 25:00": hour 25 out of range 0-23`},
		{"12:60", `schedule "12:60": minute 60 out of range 0-59`},
		{"Mon 01:00:60", `schedule "Mon 01:00:60": second 60 out of range 0-59`},
		{"*-13-01", `schedule "*-13-01": month 13 out of range 1-12`},
		{"*-00-01", `schedule "*-00-01": month 0 out of range 1-12`},
		{"*-*-32", `schedule "*-*-32": day 32 out of range 1-31`},
		{"*-*-00 03:00", `schedule "*-*-00 03:00": day 0 out of range 1-31`},
		{"99999999999999999999:00", `schedule "99999999999999999999:00": hour 99999999999999999999 out of range 0-23`},
		{"*-02-30", `schedule "*-02-30": day 30 never occurs in month 02`},
		{"*-02-30,31", `schedule "*-02-30,31": day 30,31 never occurs in month 02`},
		{"*-04,06,09,11-31 12:00", `schedule "*-04,06,09,11-31 12:00": day 31 never occurs in month 04,06,09,11`},
		{"*-02~30", `schedule "*-02~30": day ~30 never occurs in month 02`},
		{"Mon..Fry 22:00", `schedule "Mon..Fry 22:00": unknown weekday "Fry"`},
		{"Mo 22:00", `schedule "Mo 22:00": unknown weekday "Mo"`},
		{"Mon-Fri 22:00", `schedule "Mon-Fri 22:00": weekday range "Mon-Fri": write ranges with "..", as in Mon..Fri`},
		{"Mon,,Tue", `schedule "Mon,,Tue": weekday list "Mon,,Tue" has an empty item`},
		{"2025-01-01 03:00", `schedule "2025-01-01 03:00": date "2025-01-01": year "2025" not supported, write *`},
		{"*-*-*-* 03:00", `schedule "*-*-*-* 03:00": date "*-*-*-*": want YEAR-MONTH-DAY or MONTH-DAY`},
		{"-01 03:00", `schedule "-01 03:00": month is empty`},
		{"22:00 Mon", `schedule "22:00 Mon": weekdays "Mon" must come first`},
		{"*-*-01 Mon", `schedule "*-*-01 Mon": weekdays "Mon" must come first`},
		{"Sat Sun", `schedule "Sat Sun": weekdays "Sun" given twice; join lists with ",", as in Sat,Sun`},
		{"22:00 *-*-01", `schedule "22:00 *-*-01": date "*-*-01" must come before the time`},
		{"*-*-01 *-*-02", `schedule "*-*-01 *-*-02": date "*-*-02" given twice`},
		{"22:00 02:00", `schedule "22:00 02:00": time "02:00" given twice; list several hours or minutes with ",", as in 22,02:00`},
		{"daily 22:00", `schedule "daily 22:00": "daily" must stand alone`},
		{"22:00 UTC", `schedule "22:00 UTC": unexpected "UTC" after the time (there is no time zone suffix: the policy's time zone applies)`},
		{"22", `schedule "22": "22" is neither weekdays (Mon..Fri), a date (*-*-01) nor a time (22:00)`},
		{"05..01:00", `schedule "05..01:00": hour range "05..01" is backwards`},
		{"00/0:00", `schedule "00/0:00": hour "00/0": repetition step "0" must be a number of at least 1`},
		{"00/x:00", `schedule "00/x:00": hour "00/x": repetition step "x" must be a number of at least 1`},
		{"00/+2:00", `schedule "00/+2:00": hour "00/+2": repetition step "+2" must be a number of at least 1`},
		{"1,,2:00", `schedule "1,,2:00": hour list "1,,2" has an empty item`},
		{"1x:00", `schedule "1x:00": hour "1x" is not a number`},
		{"-1:00", `schedule "-1:00": hour "-1" is not a number`},
		{"12:", `schedule "12:": minute is empty`},
		{"1:2:3:4", `schedule "1:2:3:4": time "1:2:3:4": want HOUR:MINUTE or HOUR:MINUTE:SECOND`},
		{"12:00:00.5", `schedule "12:00:00.5": second "00.5" is not a number`},
		{"*-*~*", `schedule "*-*~*": day "~*": * cannot be counted from the end of the month`},
		{"*-*~1..3/2", `schedule "*-*~1..3/2": day "~1..3/2": a range counted from the end of the month takes no step`},
		{"*-*~3..1", `schedule "*-*~3..1": day range "~3..1" is backwards`},
		{"*-*~0", `schedule "*-*~0": day 0 out of range 1-31`},
		{"*-*-L/2", `schedule "*-*-L/2": day "L" is not a number`},
	}
	for _, tt := range tests {
		e, err := Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%q) = %q, want error %q", tt.in, e, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("Parse(%q) error\n got %s\nwant %s", tt.in, err, tt.want)
		}
		if !e.IsZero() {
			t.Errorf("Parse(%q) returned a non-zero Event with its error", tt.in)
		}
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"daily", "*-*-* 00:00"},
		{"DAILY", "*-*-* 00:00"},
		{"hourly", "*-*-* *:00"},
		{"minutely", "*-*-* *:*"},
		{"weekly", "Mon *-*-* 00:00"},
		{"monthly", "*-*-01 00:00"},
		{"quarterly", "*-01/3-01 00:00"},
		{"semiannually", "*-01,07-01 00:00"},
		{"yearly", "*-01-01 00:00"},
		{"annually", "*-01-01 00:00"},
		{"Mon..Fri 22:00", "Mon..Fri *-*-* 22:00"},
		{"Sat,Sun 08:30", "Sat,Sun *-*-* 08:30"},
		{"  Sat,Sun   8:30  ", "Sat,Sun *-*-* 08:30"},
		{"*-*-01 03:00", "*-*-01 03:00"},
		{"*-*-* 00/4:00", "*-*-* 00/4:00"},
		{"*/4:00", "*-*-* 00/4:00"},
		{"Mon 01:00:30", "Mon *-*-* 01:00:30"},
		{"22,02:00", "*-*-* 02,22:00"},
		{"08,20:00,30", "*-*-* 08,20:00,30"},
		{"*-*-L 23:00", "*-*~01 23:00"},
		{"*-*-l 23:00", "*-*~01 23:00"},
		{"*-*~1 23:00", "*-*~01 23:00"},
		{"*-05~07/1", "*-05~01..07 00:00"},
		{"Mon *-05~7/1 6:00", "Mon *-05~01..07 06:00"},
		{"*-*~1,3", "*-*~01,03 00:00"},
		{"*-*~1..31", "*-*-* 00:00"},
		{"*-*-1..31", "*-*-* 00:00"},
		{"*-*-*/10", "*-*-01/10 00:00"},
		{"02-29", "*-02-29 00:00"},
		{"*-02-29", "*-02-29 00:00"},
		{"Fri..Mon 1:5", "Mon,Fri..Sun *-*-* 01:05"},
		{"mon,TUE,Wednesday,thu 7:00", "Mon..Thu *-*-* 07:00"},
		{"Sun..Sat 12:00", "*-*-* 12:00"},
		{"Mon..Sun 12:00", "*-*-* 12:00"},
		{"Monday", "Mon *-*-* 00:00"},
		{"Tue,Thu", "Tue,Thu *-*-* 00:00"},
		{"Mon,Wed,Fri", "Mon,Wed,Fri *-*-* 00:00"},
		{"Sat..Sat", "Sat *-*-* 00:00"},
		{"*:0/15", "*-*-* *:00/15"},
		{"*:0..30/15", "*-*-* *:00,15,30"},
		{"8..18/2:00", "*-*-* 08,10,12,14,16,18:00"},
		{"1,2,3,5:00", "*-*-* 01..03,05:00"},
		{"3,2,1:00", "*-*-* 01..03:00"},
		{"*:*:*", "*-*-* *:*:*"},
		{"*:*:0/30", "*-*-* *:*:00,30"},
		{"*:*:0/20", "*-*-* *:*:00/20"},
		{"0..23:0..59", "*-*-* *:*"},
		{"12:00:00", "*-*-* 12:00"},
		{"012:000", "*-*-* 12:00"},
		{"*-*-* 0:0:0", "*-*-* 00:00"},
		{"Mon *-*-01", "Mon *-*-01 00:00"},
		{"*-04..09-* 05:00", "*-04..09-* 05:00"},
		{"01,02-01", "*-01,02-01 00:00"},
	}
	for _, tt := range tests {
		e, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got := e.String(); got != tt.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
		back, err := Parse(e.String())
		if err != nil {
			t.Errorf("Parse(%q) (normalized from %q): %v", e, tt.in, err)
			continue
		}
		if back != e {
			t.Errorf("Parse(%q) != Parse(%q)", e, tt.in)
		}
	}
}

func TestZeroEvent(t *testing.T) {
	var e Event
	if !e.IsZero() || e.String() != "" {
		t.Errorf("zero Event: IsZero %v, String %q", e.IsZero(), e)
	}
	if got := e.Next(time.Now(), time.UTC); !got.IsZero() {
		t.Errorf("zero Event: Next = %v, want zero", got)
	}
	if Missed(e, time.UTC, time.Time{}, time.Now()) {
		t.Error("zero Event: Missed = true")
	}
	if MustParse("daily").IsZero() {
		t.Error("daily IsZero")
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustParse(\"25:00\") did not panic")
		}
	}()
	MustParse("25:00")
}

func TestNext(t *testing.T) {
	tests := []struct {
		event string
		after string
		want  []string // successive results
	}{
		// Strictly after.
		{"daily", "2025-06-01T00:00:00Z", []string{"2025-06-02T00:00:00Z"}},
		{"daily", "2025-05-31T23:59:59.999Z", []string{"2025-06-01T00:00:00Z"}},
		{"daily", "2025-06-01T00:00:00.5Z", []string{"2025-06-02T00:00:00Z"}},
		{"hourly", "2025-06-01T10:59:59Z", []string{"2025-06-01T11:00:00Z", "2025-06-01T12:00:00Z"}},
		{"minutely", "2025-12-31T23:59:30Z", []string{"2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"}},
		// Weekdays: Friday 13 June 2025.
		{"Mon..Fri 22:00", "2025-06-13T22:00:00Z", []string{"2025-06-16T22:00:00Z", "2025-06-17T22:00:00Z"}},
		{"Mon..Fri 22:00", "2025-06-13T21:00:00Z", []string{"2025-06-13T22:00:00Z", "2025-06-16T22:00:00Z"}},
		{"Sat,Sun 08:30", "2025-06-13T12:00:00Z", []string{"2025-06-14T08:30:00Z", "2025-06-15T08:30:00Z", "2025-06-21T08:30:00Z"}},
		{"weekly", "2025-06-13T12:00:00Z", []string{"2025-06-16T00:00:00Z", "2025-06-23T00:00:00Z"}},
		{"Mon 01:00:30", "2025-06-16T01:00:30Z", []string{"2025-06-23T01:00:30Z"}},
		{"Mon 01:00:30", "2025-06-16T01:00:29Z", []string{"2025-06-16T01:00:30Z"}},
		// Several times a day.
		{"22,02:00", "2025-06-01T02:00:00Z", []string{"2025-06-01T22:00:00Z", "2025-06-02T02:00:00Z", "2025-06-02T22:00:00Z"}},
		{"*-*-* 00/4:00", "2025-12-31T21:00:00Z", []string{"2026-01-01T00:00:00Z", "2026-01-01T04:00:00Z"}},
		{"08,20:00,30", "2025-06-01T08:10:00Z", []string{"2025-06-01T08:30:00Z", "2025-06-01T20:00:00Z", "2025-06-01T20:30:00Z", "2025-06-02T08:00:00Z"}},
		// Month ends.
		{"monthly", "2025-01-31T12:00:00Z", []string{"2025-02-01T00:00:00Z", "2025-03-01T00:00:00Z"}},
		{"*-*-01 03:00", "2025-12-15T00:00:00Z", []string{"2026-01-01T03:00:00Z"}},
		{"*-*-31 12:00", "2025-01-31T12:00:00Z", []string{"2025-03-31T12:00:00Z", "2025-05-31T12:00:00Z", "2025-07-31T12:00:00Z", "2025-08-31T12:00:00Z"}},
		{"*-*-30", "2025-01-30T00:00:00Z", []string{"2025-03-30T00:00:00Z"}},
		{"*-*-29", "2024-01-29T00:00:00Z", []string{"2024-02-29T00:00:00Z", "2024-03-29T00:00:00Z"}},
		{"*-*-29", "2025-01-29T00:00:00Z", []string{"2025-03-29T00:00:00Z"}},
		{"*-*~01 23:00", "2025-01-01T00:00:00Z", []string{"2025-01-31T23:00:00Z", "2025-02-28T23:00:00Z", "2025-03-31T23:00:00Z", "2025-04-30T23:00:00Z"}},
		{"*-*-L 23:00", "2024-02-01T00:00:00Z", []string{"2024-02-29T23:00:00Z"}},
		{"*-*~02", "2025-02-01T00:00:00Z", []string{"2025-02-27T00:00:00Z", "2025-03-30T00:00:00Z"}},
		{"Fri *-*~07/1 18:00", "2025-05-01T00:00:00Z", []string{"2025-05-30T18:00:00Z", "2025-06-27T18:00:00Z"}},
		{"*-12-31 23:59:59", "2025-12-31T23:59:59Z", []string{"2026-12-31T23:59:59Z"}},
		// Leap years.
		{"*-02-29 06:00", "2025-01-01T00:00:00Z", []string{"2028-02-29T06:00:00Z", "2032-02-29T06:00:00Z"}},
		{"*-02-29", "2096-03-01T00:00:00Z", []string{"2104-02-29T00:00:00Z"}}, // 2100 is no leap year
		{"*-02-29", "2000-01-01T00:00:00Z", []string{"2000-02-29T00:00:00Z", "2004-02-29T00:00:00Z"}},
		{"Mon *-02-29", "2025-01-01T00:00:00Z", []string{"2044-02-29T00:00:00Z"}},
		{"Mon *-*-01", "2025-01-01T00:00:00Z", []string{"2025-09-01T00:00:00Z", "2025-12-01T00:00:00Z"}},
	}
	for _, tt := range tests {
		e := MustParse(tt.event)
		after := instant(t, tt.after)
		for i, w := range tt.want {
			got := e.Next(after, time.UTC)
			if want := instant(t, w); !got.Equal(want) {
				t.Errorf("%q: Next #%d after %s = %s, want %s", tt.event, i+1, after.Format(time.RFC3339Nano), got.Format(time.RFC3339), want.Format(time.RFC3339))
				break
			}
			after = got
		}
	}
}

func TestNextLocation(t *testing.T) {
	e := MustParse("12:00")
	after := instant(t, "2025-06-01T00:00:00Z")
	if got, want := e.Next(after, nil), instant(t, "2025-06-01T12:00:00Z"); !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("nil location: Next = %s, want %s in UTC", got, want)
	}
	tokyo := loadLocation(t, "Asia/Tokyo")
	got := e.Next(after, tokyo) // 09:00 in Tokyo
	if want := instant(t, "2025-06-01T12:00:00+09:00"); !got.Equal(want) || got.Location() != tokyo {
		t.Errorf("Asia/Tokyo: Next = %s, want %s in Asia/Tokyo", got, want)
	}
}

// TestNextDST checks events across changes of the clocks. Expected times
// carry their offsets.
func TestNextDST(t *testing.T) {
	tests := []struct {
		zone  string
		event string
		after string
		want  []string
	}{
		// Europe/Berlin, 30 March 2025: 02:00 CET becomes 03:00 CEST.
		{"Europe/Berlin", "02:30", "2025-03-29T12:00:00+01:00", []string{"2025-03-30T03:00:00+02:00", "2025-03-31T02:30:00+02:00"}},
		{"Europe/Berlin", "02:00", "2025-03-29T12:00:00+01:00", []string{"2025-03-30T03:00:00+02:00", "2025-03-31T02:00:00+02:00"}},
		{"Europe/Berlin", "01:59:59", "2025-03-29T12:00:00+01:00", []string{"2025-03-30T01:59:59+01:00"}},
		{"Europe/Berlin", "03:00", "2025-03-29T12:00:00+01:00", []string{"2025-03-30T03:00:00+02:00", "2025-03-31T03:00:00+02:00"}},
		{"Europe/Berlin", "02,03:00", "2025-03-29T12:00:00+01:00", []string{"2025-03-30T03:00:00+02:00", "2025-03-31T02:00:00+02:00"}},
		{"Europe/Berlin", "*:0/20", "2025-03-30T01:30:00+01:00", []string{"2025-03-30T01:40:00+01:00", "2025-03-30T03:00:00+02:00", "2025-03-30T03:20:00+02:00"}},
		{"Europe/Berlin", "*:30", "2025-03-30T00:00:00+01:00", []string{"2025-03-30T00:30:00+01:00", "2025-03-30T01:30:00+01:00", "2025-03-30T03:00:00+02:00", "2025-03-30T03:30:00+02:00"}},
		// Europe/Berlin, 26 October 2025: 03:00 CEST becomes 02:00 CET.
		{"Europe/Berlin", "02:30", "2025-10-25T12:00:00+02:00", []string{"2025-10-26T02:30:00+02:00", "2025-10-27T02:30:00+01:00"}},
		{"Europe/Berlin", "02:30", "2025-10-26T02:10:00+01:00", []string{"2025-10-27T02:30:00+01:00"}},
		{"Europe/Berlin", "02:30", "2025-10-26T02:30:00+02:00", []string{"2025-10-27T02:30:00+01:00"}},
		{"Europe/Berlin", "*:30", "2025-10-26T00:00:00+02:00", []string{"2025-10-26T00:30:00+02:00", "2025-10-26T01:30:00+02:00", "2025-10-26T02:30:00+02:00", "2025-10-26T03:30:00+01:00"}},
		{"Europe/Berlin", "03:00", "2025-10-26T02:59:00+01:00", []string{"2025-10-26T03:00:00+01:00"}},
		{"Europe/Berlin", "Sun 00/4:00", "2025-10-25T12:00:00+02:00", []string{"2025-10-26T00:00:00+02:00", "2025-10-26T04:00:00+01:00", "2025-10-26T08:00:00+01:00"}},
		// America/New_York, 9 March 2025: 02:00 EST becomes 03:00 EDT.
		{"America/New_York", "02:30", "2025-03-08T12:00:00-05:00", []string{"2025-03-09T03:00:00-04:00", "2025-03-10T02:30:00-04:00"}},
		{"America/New_York", "Sun 02:15", "2025-03-02T12:00:00-05:00", []string{"2025-03-09T03:00:00-04:00", "2025-03-16T02:15:00-04:00"}},
		{"America/New_York", "Mon..Fri 22:00", "2025-03-07T23:00:00-05:00", []string{"2025-03-10T22:00:00-04:00"}},
		// America/New_York, 2 November 2025: 02:00 EDT becomes 01:00 EST.
		{"America/New_York", "01:30", "2025-11-01T12:00:00-04:00", []string{"2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00"}},
		{"America/New_York", "01:30", "2025-11-02T01:00:00-05:00", []string{"2025-11-03T01:30:00-05:00"}},
		{"America/New_York", "02:30", "2025-11-01T12:00:00-04:00", []string{"2025-11-02T02:30:00-05:00"}},
		{"America/New_York", "hourly", "2025-11-02T00:30:00-04:00", []string{"2025-11-02T01:00:00-04:00", "2025-11-02T02:00:00-05:00", "2025-11-02T03:00:00-05:00"}},
		// America/Santiago changes at midnight: on 8 September 2024,
		// 00:00 -04 becomes 01:00 -03; on 6 April 2025, 00:00 -03
		// becomes 23:00 -04 on the 5th.
		{"America/Santiago", "daily", "2024-09-07T12:00:00-04:00", []string{"2024-09-08T01:00:00-03:00", "2024-09-09T00:00:00-03:00"}},
		{"America/Santiago", "23:30", "2025-04-05T12:00:00-03:00", []string{"2025-04-05T23:30:00-03:00", "2025-04-06T23:30:00-04:00"}},
		{"America/Santiago", "daily", "2025-04-05T12:00:00-03:00", []string{"2025-04-06T00:00:00-04:00", "2025-04-07T00:00:00-04:00"}},
		// Australia/Lord_Howe moves by half an hour.
		{"Australia/Lord_Howe", "02:15", "2025-10-04T12:00:00+10:30", []string{"2025-10-05T02:30:00+11:00", "2025-10-06T02:15:00+11:00"}},
		{"Australia/Lord_Howe", "01:45", "2025-04-05T12:00:00+11:00", []string{"2025-04-06T01:45:00+11:00", "2025-04-07T01:45:00+10:30"}},
		// Samoa skipped 30 December 2011 entirely.
		{"Pacific/Apia", "daily", "2011-12-29T12:00:00-10:00", []string{"2011-12-31T00:00:00+14:00", "2012-01-01T00:00:00+14:00"}},
		{"Pacific/Apia", "*-*-30 12:00", "2011-12-01T00:00:00-10:00", []string{"2011-12-31T00:00:00+14:00", "2012-01-30T12:00:00+14:00"}},
	}
	for _, tt := range tests {
		loc := loadLocation(t, tt.zone)
		e := MustParse(tt.event)
		after := instant(t, tt.after)
		for i, w := range tt.want {
			got := e.Next(after, loc)
			if want := instant(t, w); !got.Equal(want) {
				t.Errorf("%s %q: Next #%d after %s = %s, want %s", tt.zone, tt.event, i+1, after.In(loc).Format(time.RFC3339), got.Format(time.RFC3339), want.In(loc).Format(time.RFC3339))
				break
			}
			if got.Location() != loc {
				t.Errorf("%s %q: Next in %v, want %v", tt.zone, tt.event, got.Location(), loc)
			}
			after = got
		}
	}
}

// TestNextOracle compares Next, minute by minute over days on which the
// clocks change, with a model that walks every minute of real time:
// an event fires at the first instant that shows a matching wall-clock
// time, or at the end of a gap that swallowed one.
func TestNextOracle(t *testing.T) {
	zones := []struct {
		name string
		days []string // a day on which the clocks change
	}{
		{"Europe/Berlin", []string{"2025-03-30", "2025-10-26"}},
		{"America/New_York", []string{"2025-03-09", "2025-11-02"}},
		{"America/Santiago", []string{"2024-09-08", "2025-04-06"}},
		{"Australia/Lord_Howe", []string{"2025-04-06", "2025-10-05"}},
		{"Pacific/Apia", []string{"2011-12-30"}},
		{"UTC", []string{"2024-02-29"}},
	}
	events := []string{
		"daily", "hourly", "minutely", "02:30", "01:30", "23:30", "02,03:00",
		"*:0/15", "*:30", "00/4:00", "Sun 02:45", "*-*~01 00:30", "*-*-30,31 02:10",
	}
	for _, z := range zones {
		loc := loadLocation(t, z.name)
		for _, day := range z.days {
			d, err := time.Parse(time.DateOnly, day)
			if err != nil {
				t.Fatal(err)
			}
			// Check two days either side of the change, in UTC minutes.
			from := d.Add(-48 * time.Hour)
			to := d.Add(72 * time.Hour)
			for _, ev := range events {
				e := MustParse(ev)
				want := oracle(e, loc, from, to)
				var got []time.Time
				for next := e.Next(from.Add(-time.Nanosecond), loc); next.Before(to); next = e.Next(next, loc) {
					got = append(got, next)
				}
				if !equalTimes(got, want) {
					t.Errorf("%s %s %q:\n got %s\nwant %s", z.name, day, ev, formatTimes(got, loc), formatTimes(want, loc))
				}
			}
		}
	}
}

// oracle returns the instants in [from, to) at which e fires in loc. e
// must fire only at second 0, and the zone's clocks change only on minute
// boundaries.
func oracle(e Event, loc *time.Location, from, to time.Time) []time.Time {
	wallMinute := func(t time.Time) int64 {
		w := t.In(loc)
		return time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), 0, 0, time.UTC).Unix() / 60
	}
	matches := func(wall int64) bool {
		w := time.Unix(wall*60, 0).UTC()
		return e.onDay(w.Year(), w.Month(), w.Day(), w.Weekday()) &&
			e.hours&(1<<w.Hour()) != 0 && e.minutes&(1<<w.Minute()) != 0 && e.seconds&1 != 0
	}
	seen := map[int64]bool{} // wall-clock minutes already shown
	var fires []time.Time
	// Start a day early so that times shown before from are known.
	start := from.Add(-24 * time.Hour)
	prev := wallMinute(start) - 1
	for t := start; t.Before(to); t = t.Add(time.Minute) {
		wall := wallMinute(t)
		fire := false
		// A jump forward swallows the minutes between prev and wall.
		for w := prev + 1; w <= wall; w++ {
			if !seen[w] && matches(w) {
				fire = true
			}
			seen[w] = true
		}
		if fire && !t.Before(from) {
			fires = append(fires, t)
		}
		if wall > prev {
			prev = wall
		}
	}
	return fires
}

func equalTimes(a, b []time.Time) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

func formatTimes(ts []time.Time, loc *time.Location) string {
	var s []string
	for _, t := range ts {
		s = append(s, t.In(loc).Format("01-02T15:04Z07:00"))
	}
	if len(s) > 40 {
		return strings.Join(s[:40], " ") + " ..."
	}
	return strings.Join(s, " ")
}

func TestMissed(t *testing.T) {
	berlin := loadLocation(t, "Europe/Berlin")
	tests := []struct {
		event     string
		loc       *time.Location
		last, now string
		want      bool
	}{
		{"22:00", time.UTC, "2025-06-02T22:00:00Z", "2025-06-02T23:00:00Z", false},
		{"22:00", time.UTC, "2025-06-02T22:00:00Z", "2025-06-03T21:59:59Z", false},
		{"22:00", time.UTC, "2025-06-02T22:00:00Z", "2025-06-03T22:00:00Z", true},  // now is included
		{"22:00", time.UTC, "2025-06-02T22:00:00Z", "2025-06-20T08:00:00Z", true},  // many missed: still just true
		{"22:00", time.UTC, "2025-06-02T22:00:00Z", "2025-06-02T22:00:00Z", false}, // last is excluded
		{"22:00", time.UTC, "2025-06-03T22:00:00Z", "2025-06-02T22:00:00Z", false}, // clock went back
		{"22:00", time.UTC, "2025-06-02T21:59:59Z", "2025-06-02T22:00:00Z", true},
		{"Mon..Fri 22:00", time.UTC, "2025-06-13T22:00:00Z", "2025-06-16T12:00:00Z", false}, // weekend
		{"Mon..Fri 22:00", time.UTC, "2025-06-13T22:00:00Z", "2025-06-16T22:00:00Z", true},
		{"22:00", time.UTC, "0001-01-01T00:00:00Z", "2025-06-02T23:00:00Z", true}, // never ran
		{"22:00", berlin, "2025-06-02T22:00:00+02:00", "2025-06-03T21:30:00Z", true},
		{"22:00", berlin, "2025-06-02T22:00:00+02:00", "2025-06-03T19:30:00Z", false},
		{"02:30", berlin, "2025-03-29T02:30:00+01:00", "2025-03-30T03:00:00+02:00", true},
		{"02:30", berlin, "2025-03-29T02:30:00+01:00", "2025-03-30T01:59:00+01:00", false},
		{"02:30", berlin, "2025-10-26T02:30:00+02:00", "2025-10-26T02:45:00+01:00", false}, // no second 02:30
	}
	for _, tt := range tests {
		last, now := instant(t, tt.last), instant(t, tt.now)
		if got := Missed(MustParse(tt.event), tt.loc, last, now); got != tt.want {
			t.Errorf("Missed(%q, %v, %s, %s) = %v, want %v", tt.event, tt.loc, tt.last, tt.now, got, tt.want)
		}
	}
}

type policy struct {
	Name     string `json:"name"`
	Schedule Event  `json:"schedule"`
	Window   Window `json:"window"`
}

func TestJSON(t *testing.T) {
	p := policy{Name: "vms", Schedule: MustParse("Mon..Fri 22:00"), Window: Window{Start: Clock(22, 0), Stop: Clock(6, 0)}}
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"name":"vms","schedule":"Mon..Fri *-*-* 22:00","window":"22:00-06:00"}`
	if string(data) != want {
		t.Errorf("Marshal = %s, want %s", data, want)
	}
	var back policy
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back != p {
		t.Errorf("round trip: %+v, want %+v", back, p)
	}

	// Pointers and the zero values.
	data, err = json.Marshal(struct {
		E *Event
		W *Window
		Z Event
		V Window
	}{&p.Schedule, &p.Window, Event{}, Window{}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"E":"Mon..Fri *-*-* 22:00","W":"22:00-06:00","Z":"","V":""}`; string(data) != want {
		t.Errorf("Marshal = %s, want %s", data, want)
	}

	// Whatever an administrator typed is accepted and normalized.
	if err := json.Unmarshal([]byte(`{"schedule":"daily","window":"Sat,Sun"}`), &back); err != nil {
		t.Fatal(err)
	}
	if back.Schedule.String() != "*-*-* 00:00" || back.Window.String() != "Sat,Sun 00:00-24:00" {
		t.Errorf("Unmarshal: schedule %q, window %q", back.Schedule, back.Window)
	}
	if err := json.Unmarshal([]byte(`{"schedule":"","window":""}`), &back); err != nil {
		t.Fatal(err)
	}
	if !back.Schedule.IsZero() || !back.Window.IsZero() {
		t.Errorf("empty strings: %+v, want zero schedule and window", back)
	}

	for _, tt := range []struct{ in, want string }{
		{`{"schedule":"Mon..Fri 25:00"}`, `schedule "Mon..Fri 25:00": hour 25 out of range 0-23`},
		{`{"window":"22:00-25:00"}`, `window "22:00-25:00": end: hour 25 out of range 0-24`},
	} {
		err := json.Unmarshal([]byte(tt.in), &back)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Unmarshal(%s) error %v, want %s", tt.in, err, tt.want)
		}
	}
	if err := json.Unmarshal([]byte(`{"schedule":3}`), &back); err == nil {
		t.Error("Unmarshal of a number succeeded")
	}
}

// FuzzParse checks that whatever Parse accepts normalizes to a form that
// parses back to the same event and that Next makes progress.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"daily", "Mon..Fri 22:00", "Sat,Sun 08:30", "*-*-01 03:00", "*-*-* 00/4:00",
		"Mon 01:00:30", "22,02:00", "*-*-L 23:00", "*-05~07/1", "*-02-29", "*:0..30/15",
		"Fri..Mon 1:5", "*-02-30", "1..3,5,7..9/2:*:*/7",
	} {
		f.Add(s)
	}
	after := time.Date(2025, 3, 30, 1, 59, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Parse(s)
		if err != nil {
			return
		}
		norm := e.String()
		back, err := Parse(norm)
		if err != nil {
			t.Fatalf("Parse(%q) -> %q: %v", s, norm, err)
		}
		if back != e || back.String() != norm {
			t.Fatalf("Parse(%q) -> %q -> %q", s, norm, back)
		}
		next := e.Next(after, time.UTC)
		if !next.After(after) {
			t.Fatalf("%q: Next(%s) = %s", s, after, next)
		}
	})
}
