// Package schedule decides when a backup policy runs: calendar events
// (when a run is due), backup windows (when work may start) and missed
// runs (whether a run fell due while the appliance was off).
//
// # Calendar events
//
// An Event is written in a subset of the OnCalendar syntax of systemd
// (systemd.time(7)), as an administrator would type it:
//
//	daily                   every day at 00:00
//	Mon..Fri 22:00          weekdays at 22:00
//	Sat,Sun 08:30           weekends at 08:30
//	*-*-01 03:00            the 1st of every month at 03:00
//	*-*-* 00/4:00           every 4 hours: 00:00, 04:00, ..., 20:00
//	22,02:00                every day at 02:00 and at 22:00
//	Mon 01:00:30            Mondays at 01:00:30
//	*-*~01 23:00            the last day of every month at 23:00
//
// An expression is either one keyword or up to three parts, in this order,
// each optional but not all absent:
//
//	[WEEKDAYS] [DATE] [TIME]
//
// Keywords (case does not matter) stand for:
//
//	minutely      *-*-* *:*:00
//	hourly        *-*-* *:00:00
//	daily         *-*-* 00:00:00
//	weekly        Mon *-*-* 00:00:00
//	monthly       *-*-01 00:00:00
//	quarterly     *-01,04,07,10-01 00:00:00
//	semiannually  *-01,07-01 00:00:00
//	yearly        *-01-01 00:00:00  (also annually)
//
// WEEKDAYS is a comma-separated list of days and ranges of days: Mon, Tue,
// Wed, Thu, Fri, Sat, Sun or the full English names, in any case, and
// ranges such as Mon..Fri. A range may wrap around the week (Fri..Mon).
// Without WEEKDAYS every day of the week matches.
//
// DATE is YEAR-MONTH-DAY or MONTH-DAY. YEAR must be * (events repeat; a
// year cannot be named). MONTH (1-12) and DAY (1-31) are lists as
// described below. Without DATE every day matches. If DAY is preceded by
// "~" instead of "-", days are counted from the end of the month: ~01 is
// the last day, ~03 the third last, and ~07/1 the last seven days (a
// repetition counts towards the end, as in systemd). As an extension to
// systemd, *-*-L is accepted for the last day and normalized to *-*~01.
//
// TIME is HOUR:MINUTE or HOUR:MINUTE:SECOND (0-23, 0-59, 0-59). Without
// TIME the event fires at 00:00:00; without SECOND, at second 0.
//
// Every numeric field is a comma-separated list of items:
//
//	N       one value; leading zeros are optional
//	N..M    the values N to M
//	N/S     N, N+S, N+2S, ... up to the largest value of the field
//	N..M/S  N, N+S, N+2S, ... up to M
//	*       every value
//	*/S     the smallest value of the field, then every S
//
// All parts must match: "Mon *-*-01" is a Monday that is the 1st of the
// month (systemd semantics, unlike cron, which takes either). Several
// times a day are written as lists in the hour or minute field
// ("22,02:00" is 02:00 and 22:00; "08,20:00,30" is 08:00, 08:30, 20:00 and
// 20:30); a second TIME part is an error.
//
// Not supported: named years, time zone suffixes (the policy's zone is
// passed to Event.Next), fractional seconds, and ranges with a step in
// days counted from the end of the month. Parse reports them as errors.
//
// Parse rejects events that can never occur, such as *-02-30 or
// *-04,06-31, naming the impossible day. Every event Parse accepts occurs
// at least once in 40 years (Mon *-02-29 is the rarest kind); Event.Next
// nevertheless stops after 400 years
// of calendar and returns the zero Time rather than loop.
//
// Event.String returns a normalized form, which Parse turns back into an
// equal Event: weekdays first (omitted if all), then *-MONTH-DAY, then
// HOUR:MINUTE with :SECOND only if it is not just 0, two-digit values,
// ranges for three or more consecutive values and N/S for regular
// repetitions. For example "Mon..Fri 22:00" becomes
// "Mon..Fri *-*-* 22:00" and "daily" becomes "*-*-* 00:00".
//
// # Time zones
//
// An event is a set of wall-clock times in the policy's time zone. When
// the clocks go forward, times in the skipped gap fire once, at the first
// instant after it (a daily 02:30 in Europe/Berlin fires at 03:00 CEST on
// the last Sunday of March). When they go back, a repeated time fires at
// its first occurrence only (a daily 02:30 fires once, at 02:30 CEST, on
// the last Sunday of October).
//
// # Backup windows
//
// A Window is a span of each day, in wall-clock time, in which a policy
// may start work:
//
//	22:00-06:00            every night, crossing midnight
//	Mon..Fri 20:00-24:00   weekday evenings
//	Fri 22:00-06:00        Friday 22:00 to Saturday 06:00
//	Sat,Sun                all day on weekends (00:00-24:00)
//	(empty)                always open
//
// WEEKDAYS are the days on which the window opens. Contains, End and
// NextOpen read the window on the wall clock of their argument's location.
//
// # JSON
//
// Event and Window implement encoding.TextMarshaler and
// encoding.TextUnmarshaler, so encoding/json stores them as their string
// forms ("Mon..Fri *-*-* 22:00", "22:00-06:00"). The empty string is the
// zero Event (no schedule) and the zero Window (always open).
//
// # Missed runs
//
// Missed reports whether an event fell due at least once between the last
// run and now, so that an appliance that was off runs a policy once on
// start, not once per missed occurrence.
package schedule
