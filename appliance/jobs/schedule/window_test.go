package schedule

import (
	"testing"
	"time"
)

func TestParseWindow(t *testing.T) {
	tests := []struct {
		in   string
		want Window
		norm string
	}{
		{"", Window{}, ""},
		{"  ", Window{}, ""},
		{"22:00-06:00", Window{Start: Clock(22, 0), Stop: Clock(6, 0)}, "22:00-06:00"},
		{"22:00 - 06:00", Window{Start: Clock(22, 0), Stop: Clock(6, 0)}, "22:00-06:00"},
		{"6:5-7:00", Window{Start: Clock(6, 5), Stop: Clock(7, 0)}, "06:05-07:00"},
		{"Mon..Fri 8:00-17:30", Window{Start: Clock(8, 0), Stop: Clock(17, 30), Days: DaysOf(time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday)}, "Mon..Fri 08:00-17:30"},
		{"Fri 22:00-06:00", Window{Start: Clock(22, 0), Stop: Clock(6, 0), Days: DaysOf(time.Friday)}, "Fri 22:00-06:00"},
		{"sat,sun", Window{Days: DaysOf(time.Saturday, time.Sunday)}, "Sat,Sun 00:00-24:00"},
		{"Sat,Sun 00:00-24:00", Window{Days: DaysOf(time.Saturday, time.Sunday)}, "Sat,Sun 00:00-24:00"},
		{"Mon..Sun 22:00-06:00", Window{Start: Clock(22, 0), Stop: Clock(6, 0)}, "22:00-06:00"},
		{"Mon..Sun", Window{}, ""},
		{"22:00-00:00", Window{Start: Clock(22, 0)}, "22:00-24:00"},
		{"22:00-24:00", Window{Start: Clock(22, 0)}, "22:00-24:00"},
		{"00:00-24:00", Window{}, ""},
		{"10:00-10:00", Window{Start: Clock(10, 0), Stop: Clock(10, 0)}, "10:00-10:00"},
	}
	for _, tt := range tests {
		w, err := ParseWindow(tt.in)
		if err != nil {
			t.Errorf("ParseWindow(%q): %v", tt.in, err)
			continue
		}
		if w != tt.want {
			t.Errorf("ParseWindow(%q) = %+v, want %+v", tt.in, w, tt.want)
		}
		if got := w.String(); got != tt.norm {
			t.Errorf("ParseWindow(%q).String() = %q, want %q", tt.in, got, tt.norm)
		}
		if back, err := ParseWindow(w.String()); err != nil || back != w {
			t.Errorf("ParseWindow(%q) = %+v, %v; want %+v", w, back, err, w)
		}
	}
}

func TestParseWindowErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"22:00-25:00", `window "22:00-25:00": end: hour 25 out of range 0-24`},
		{"24:00-06:00", `window "24:00-06:00": start: hour 24 out of range 0-23`},
		{"22:60-23:00", `window "22:60-23:00": start: minute 60 out of range 0-59`},
		{"22:00-24:30", `window "22:00-24:30": end: time 24:30 is past the end of the day`},
		{"22:00", `window "22:00": "22:00": want START-END, as in 22:00-06:00`},
		{"22-06", `window "22-06": start: "22" is not a time of day HH:MM`},
		{"22.00-06.00", `window "22.00-06.00": start: "22.00" is not a time of day HH:MM`},
		{"2200:00-06:00", `window "2200:00-06:00": start: "2200:00" is not a time of day HH:MM`},
		{"22:00-06:00-07:00", `window "22:00-06:00-07:00": end: "06:00-07:00" is not a time of day HH:MM`},
		{"Mon-Fri 22:00-06:00", `window "Mon-Fri 22:00-06:00": weekday range "Mon-Fri": write ranges with "..", as in Mon..Fri`},
		{"Fry 22:00-06:00", `window "Fry 22:00-06:00": unknown weekday "Fry"`},
		{"22:00-06:00 Mon", `window "22:00-06:00 Mon": unexpected "Mon": want [WEEKDAYS] [HH:MM-HH:MM], as in Mon..Fri 22:00-06:00`},
		{"ab:00-06:00", `window "ab:00-06:00": unknown weekday "ab:00-06:00"`},
		{"Sat Sun", `window "Sat Sun": unexpected "Sun": want [WEEKDAYS] [HH:MM-HH:MM], as in Mon..Fri 22:00-06:00`},
		{"2x:00-06:00", `window "2x:00-06:00": start: hour "2x" is not a number`},
	}
	for _, tt := range tests {
		w, err := ParseWindow(tt.in)
		if err == nil {
			t.Errorf("ParseWindow(%q) = %q, want error %q", tt.in, w, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("ParseWindow(%q) error\n got %s\nwant %s", tt.in, err, tt.want)
		}
	}
}

func TestWindowContains(t *testing.T) {
	berlin := loadLocation(t, "Europe/Berlin")
	// 13 June 2025 is a Friday.
	tests := []struct {
		window string
		loc    *time.Location
		at     string
		want   bool
	}{
		{"", time.UTC, "2025-06-13T12:00:00Z", true},
		{"10:00-10:00", time.UTC, "2025-06-13T12:00:00Z", true},
		{"Mon..Sun 00:00-24:00", time.UTC, "2025-06-13T12:00:00Z", true},
		{"22:00-06:00", time.UTC, "2025-06-13T21:59:59Z", false},
		{"22:00-06:00", time.UTC, "2025-06-13T22:00:00Z", true},
		{"22:00-06:00", time.UTC, "2025-06-13T23:59:59Z", true},
		{"22:00-06:00", time.UTC, "2025-06-14T00:00:00Z", true},
		{"22:00-06:00", time.UTC, "2025-06-14T05:59:59.999Z", true},
		{"22:00-06:00", time.UTC, "2025-06-14T06:00:00Z", false},
		{"22:00-06:00", time.UTC, "2025-06-14T12:00:00Z", false},
		{"08:00-17:00", time.UTC, "2025-06-13T07:59:00Z", false},
		{"08:00-17:00", time.UTC, "2025-06-13T08:00:00Z", true},
		{"08:00-17:00", time.UTC, "2025-06-13T17:00:00Z", false},
		// The window belongs to the day it opens.
		{"Fri 22:00-06:00", time.UTC, "2025-06-13T23:00:00Z", true},
		{"Fri 22:00-06:00", time.UTC, "2025-06-14T03:00:00Z", true},  // Saturday morning
		{"Fri 22:00-06:00", time.UTC, "2025-06-13T03:00:00Z", false}, // Friday morning: Thursday's window
		{"Fri 22:00-06:00", time.UTC, "2025-06-14T23:00:00Z", false},
		{"Sat,Sun", time.UTC, "2025-06-13T23:59:59Z", false},
		{"Sat,Sun", time.UTC, "2025-06-14T00:00:00Z", true},
		{"Sat,Sun", time.UTC, "2025-06-15T23:59:59Z", true},
		{"Sat,Sun", time.UTC, "2025-06-16T00:00:00Z", false},
		// Read on the wall clock of the argument's location.
		{"22:00-06:00", berlin, "2025-06-13T20:30:00Z", true}, // 22:30 CEST
		{"22:00-06:00", time.UTC, "2025-06-13T20:30:00Z", false},
		{"22:00-06:00", berlin, "2025-06-14T04:30:00Z", false}, // 06:30 CEST
		// 30 March 2025: 02:00 CET becomes 03:00 CEST. A window inside
		// the gap is empty that day; one that ends in it ends at 03:00.
		{"02:00-03:00", berlin, "2025-03-30T01:59:00+01:00", false},
		{"02:00-03:00", berlin, "2025-03-30T03:00:00+02:00", false},
		{"02:00-03:00", berlin, "2025-03-31T02:30:00+02:00", true},
		{"22:00-02:30", berlin, "2025-03-30T01:59:00+01:00", true},
		{"22:00-02:30", berlin, "2025-03-30T03:00:00+02:00", false},
		{"02:30-05:00", berlin, "2025-03-30T03:00:00+02:00", true},
		{"02:30-05:00", berlin, "2025-03-30T01:59:00+01:00", false},
		// 26 October 2025: 03:00 CEST becomes 02:00 CET. 01:00-03:00
		// lasts three hours; 02:00-02:30 only its first half hour.
		{"01:00-03:00", berlin, "2025-10-26T02:30:00+01:00", true},
		{"01:00-03:00", berlin, "2025-10-26T03:00:00+01:00", false},
		{"02:00-02:30", berlin, "2025-10-26T02:15:00+02:00", true},
		{"02:00-02:30", berlin, "2025-10-26T02:15:00+01:00", false},
	}
	for _, tt := range tests {
		w, err := ParseWindow(tt.window)
		if err != nil {
			t.Fatal(err)
		}
		at := instant(t, tt.at).In(tt.loc)
		if got := w.Contains(at); got != tt.want {
			t.Errorf("%q.Contains(%s) = %v, want %v", tt.window, at.Format(time.RFC3339Nano), got, tt.want)
		}
	}
}

func TestWindowEnd(t *testing.T) {
	berlin := loadLocation(t, "Europe/Berlin")
	newYork := loadLocation(t, "America/New_York")
	tests := []struct {
		window string
		loc    *time.Location
		at     string
		want   string // "" for the zero Time
	}{
		{"", time.UTC, "2025-06-13T12:00:00Z", ""},
		{"10:00-10:00", time.UTC, "2025-06-13T12:00:00Z", ""},
		{"22:00-06:00", time.UTC, "2025-06-13T23:00:00Z", "2025-06-14T06:00:00Z"},
		{"22:00-06:00", time.UTC, "2025-06-14T03:00:00Z", "2025-06-14T06:00:00Z"},
		{"22:00-06:00", time.UTC, "2025-06-14T22:00:00Z", "2025-06-15T06:00:00Z"},
		{"22:00-06:00", time.UTC, "2025-06-14T12:00:00Z", ""}, // closed
		{"22:00-24:00", time.UTC, "2025-06-14T23:00:00Z", "2025-06-15T00:00:00Z"},
		{"Fri 22:00-06:00", time.UTC, "2025-06-14T03:00:00Z", "2025-06-14T06:00:00Z"},
		// Whole days that follow each other make one window.
		{"Sat,Sun", time.UTC, "2025-06-14T10:00:00Z", "2025-06-16T00:00:00Z"},
		{"Fri..Sun 00:00-24:00", time.UTC, "2025-06-13T10:00:00Z", "2025-06-16T00:00:00Z"},
		{"Mon..Sat", time.UTC, "2025-06-15T10:00:00Z", ""}, // Sunday: closed
		{"Mon..Sat", time.UTC, "2025-06-14T10:00:00Z", "2025-06-15T00:00:00Z"},
		{"Sun..Fri", time.UTC, "2025-06-15T10:00:00Z", "2025-06-21T00:00:00Z"},
		{"Sat 10:00-10:00", time.UTC, "2025-06-14T11:00:00Z", "2025-06-15T10:00:00Z"},
		{"Sat,Sun 10:00-10:00", time.UTC, "2025-06-14T11:00:00Z", "2025-06-16T10:00:00Z"},
		// Wall-clock hours: 22:00-06:00 lasts 9 hours when the clocks go
		// back and 7 when they go forward.
		{"22:00-06:00", berlin, "2025-10-25T22:00:00+02:00", "2025-10-26T06:00:00+01:00"},
		{"22:00-06:00", berlin, "2025-03-29T22:00:00+01:00", "2025-03-30T06:00:00+02:00"},
		{"22:00-02:30", berlin, "2025-03-30T01:00:00+01:00", "2025-03-30T03:00:00+02:00"},
		{"Sat,Sun", berlin, "2025-03-29T12:00:00+01:00", "2025-03-31T00:00:00+02:00"},
		{"20:00-01:30", newYork, "2025-11-02T00:30:00-04:00", "2025-11-02T01:30:00-04:00"},
		{"20:00-01:30", newYork, "2025-11-02T01:10:00-05:00", ""}, // the repeated hour, after the first 01:30
		{"23:00-02:30", newYork, "2025-03-09T01:30:00-05:00", "2025-03-09T03:00:00-04:00"},
	}
	for _, tt := range tests {
		w, err := ParseWindow(tt.window)
		if err != nil {
			t.Fatal(err)
		}
		at := instant(t, tt.at).In(tt.loc)
		got := w.End(at)
		if tt.want == "" {
			if !got.IsZero() {
				t.Errorf("%q.End(%s) = %s, want zero", tt.window, at.Format(time.RFC3339), got.Format(time.RFC3339))
			}
			continue
		}
		if want := instant(t, tt.want); !got.Equal(want) || got.Location() != tt.loc {
			t.Errorf("%q.End(%s) = %s, want %s", tt.window, at.Format(time.RFC3339), got.Format(time.RFC3339), want.In(tt.loc).Format(time.RFC3339))
		}
		if !w.Contains(at) {
			t.Errorf("%q.End(%s) = %s but Contains = false", tt.window, at.Format(time.RFC3339), got)
		}
	}
}

func TestWindowNextOpen(t *testing.T) {
	berlin := loadLocation(t, "Europe/Berlin")
	tests := []struct {
		window string
		loc    *time.Location
		at     string
		want   string
	}{
		{"", time.UTC, "2025-06-13T12:00:00Z", "2025-06-13T12:00:00Z"},
		{"22:00-06:00", time.UTC, "2025-06-13T12:00:00Z", "2025-06-13T22:00:00Z"},
		{"22:00-06:00", time.UTC, "2025-06-13T23:00:00Z", "2025-06-13T23:00:00Z"}, // open now
		{"22:00-06:00", time.UTC, "2025-06-14T06:00:00Z", "2025-06-14T22:00:00Z"},
		{"22:00-06:00", time.UTC, "2025-06-14T05:59:00Z", "2025-06-14T05:59:00Z"},
		{"Fri 22:00-06:00", time.UTC, "2025-06-14T07:00:00Z", "2025-06-20T22:00:00Z"},
		{"Fri 22:00-06:00", time.UTC, "2025-06-13T21:00:00Z", "2025-06-13T22:00:00Z"},
		{"Mon..Fri 08:00-17:00", time.UTC, "2025-06-13T18:00:00Z", "2025-06-16T08:00:00Z"},
		{"Mon..Fri 08:00-17:00", time.UTC, "2025-06-13T07:00:00Z", "2025-06-13T08:00:00Z"},
		{"Sat,Sun", time.UTC, "2025-06-16T00:00:00Z", "2025-06-21T00:00:00Z"},
		{"22:00-06:00", berlin, "2025-06-13T12:00:00Z", "2025-06-13T22:00:00+02:00"},
		// A window inside the gap does not open that day.
		{"02:00-03:00", berlin, "2025-03-30T00:00:00+01:00", "2025-03-31T02:00:00+02:00"},
		{"02:30-05:00", berlin, "2025-03-30T00:00:00+01:00", "2025-03-30T03:00:00+02:00"},
		{"02:00-02:30", berlin, "2025-10-26T02:10:00+01:00", "2025-10-27T02:00:00+01:00"},
	}
	for _, tt := range tests {
		w, err := ParseWindow(tt.window)
		if err != nil {
			t.Fatal(err)
		}
		at := instant(t, tt.at).In(tt.loc)
		got := w.NextOpen(at)
		if want := instant(t, tt.want); !got.Equal(want) || got.Location() != tt.loc {
			t.Errorf("%q.NextOpen(%s) = %s, want %s", tt.window, at.Format(time.RFC3339), got.Format(time.RFC3339), want.In(tt.loc).Format(time.RFC3339))
		}
		if !w.Contains(got) {
			t.Errorf("%q.NextOpen(%s) = %s, where Contains = false", tt.window, at.Format(time.RFC3339), got.Format(time.RFC3339))
		}
	}
}

// TestWindowConsistent walks a year of minutes in Berlin and checks that
// Contains, End and NextOpen agree with each other.
func TestWindowConsistent(t *testing.T) {
	berlin := loadLocation(t, "Europe/Berlin")
	windows := []string{"22:00-06:00", "Fri 22:00-06:00", "Sat,Sun", "Mon..Fri 02:00-03:00", "01:30-02:30", "Sun 02:30-02:00"}
	from := time.Date(2025, 3, 27, 0, 0, 0, 0, berlin)
	to := time.Date(2025, 4, 3, 0, 0, 0, 0, berlin)
	from2 := time.Date(2025, 10, 23, 0, 0, 0, 0, berlin)
	to2 := time.Date(2025, 10, 30, 0, 0, 0, 0, berlin)
	step := 7 * time.Minute
	for _, s := range windows {
		w, err := ParseWindow(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range [][2]time.Time{{from, to}, {from2, to2}} {
			for at := r[0]; at.Before(r[1]); at = at.Add(step) {
				open := w.Contains(at)
				end := w.End(at)
				next := w.NextOpen(at)
				switch {
				case open && (!end.After(at) || !next.Equal(at)):
					t.Fatalf("%q at %s: open, End %s, NextOpen %s", s, at, end, next)
				case open && (!w.Contains(end.Add(-time.Second)) || w.Contains(end)):
					t.Fatalf("%q at %s: End %s is not where the window closes", s, at, end)
				case !open && (!end.IsZero() || !next.After(at) || !w.Contains(next) || w.Contains(next.Add(-time.Second))):
					t.Fatalf("%q at %s: closed, End %s, NextOpen %s", s, at, end, next)
				}
			}
		}
	}
}
