package disks

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const mdstatRecovery40 = `Personalities : [raid6] [raid5] [raid4] 
md127 : active raid6 sde[4] sdd[3] sdb[1] sda[0]
      20953088 blocks super 1.2 level 6, 512k chunk, algorithm 2 [4/3] [UU_U]
      [========>............]  recovery = 40.0% (4190617/10476544) finish=0.9min speed=110000K/sec
      bitmap: 1/1 pages [4KB], 65536KB chunk

unused devices: <none>
`

const mdstatRecovery60 = `Personalities : [raid6] [raid5] [raid4] 
md127 : active raid6 sde[4] sdd[3] sdb[1] sda[0]
      20953088 blocks super 1.2 level 6, 512k chunk, algorithm 2 [4/3] [UU_U]
      [============>........]  recovery = 60.0% (6285926/10476544) finish=0.6min speed=110000K/sec
      bitmap: 1/1 pages [4KB], 65536KB chunk

unused devices: <none>
`

const mdstatRebuilt = `Personalities : [raid6] [raid5] [raid4] 
md127 : active raid6 sde[4] sdd[3] sdb[1] sda[0]
      20953088 blocks super 1.2 level 6, 512k chunk, algorithm 2 [4/4] [UUUU]
      bitmap: 0/1 pages [0KB], 65536KB chunk

unused devices: <none>
`

const mdstatRemoved = `Personalities : [raid6] [raid5] [raid4] 
md127 : active raid6 sdd[3] sdb[1] sda[0]
      20953088 blocks super 1.2 level 6, 512k chunk, algorithm 2 [4/3] [UU_U]
      bitmap: 1/1 pages [4KB], 65536KB chunk

unused devices: <none>
`

func kinds(evs []Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Kind)
	}
	return out
}

func TestMonitorRebuild(t *testing.T) {
	f := newFake(t)
	f.mdNode("coffer", "md127", 1<<20)
	m := &Monitor{Host: f.h}
	ctx := context.Background()
	var all []Event
	for _, step := range []struct {
		mdstat string
		want   []string
	}{
		{mdstatClean6, nil},
		{mdstatDegraded6, []string{EventDegraded}},
		{mdstatDegraded6, nil},
		{mdstatRemoved, nil},
		{mdstatRecovery40, []string{EventRecovering}},
		{mdstatRecovery60, nil},
		{mdstatRebuilt, []string{EventRebuilt}},
		{mdstatRebuilt, nil},
	} {
		f.write("proc/mdstat", step.mdstat)
		evs, err := m.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(kinds(evs), step.want) {
			t.Fatalf("events %v, want %v (%+v)", kinds(evs), step.want, evs)
		}
		all = append(all, evs...)
	}
	d := all[0]
	if !slices.Equal(d.Members, []string{"sdc"}) || d.Array != "md127" || d.Alias != "coffer" ||
		d.Message != "pool coffer (md127) is degraded (3 of 4 disks in sync): failed sdc" {
		t.Errorf("degraded %+v", d)
	}
	if r := all[1]; r.Progress != 40 || !strings.Contains(r.Message, "40.0%") {
		t.Errorf("recovering %+v", r)
	}
	if st := m.Arrays(); len(st) != 1 || st[0].State != StateClean {
		t.Errorf("arrays %+v", st)
	}
}

// A disk that vanishes without being marked failed, seen at the first
// look: the failed slot is named.
func TestMonitorDegradedAtStart(t *testing.T) {
	f := newFake(t)
	f.write("proc/mdstat", mdstatRemoved)
	m := &Monitor{Host: f.h}
	evs, _ := m.Poll(context.Background())
	if len(evs) != 1 || evs[0].Kind != EventDegraded || !slices.Equal(evs[0].Members, []string{"slot 2"}) {
		t.Fatalf("%+v", evs)
	}
	// A member disappearing from a whole array is reported by name.
	f.write("proc/mdstat", mdstatClean6)
	m = &Monitor{Host: f.h}
	m.Poll(context.Background())
	f.write("proc/mdstat", strings.Replace(strings.Replace(mdstatClean6, " sdc[2]", "", 1), "[4/4] [UUUU]", "[4/3] [UU_U]", 1))
	evs, _ = m.Poll(context.Background())
	if len(evs) != 1 || !slices.Equal(evs[0].Members, []string{"sdc"}) {
		t.Fatalf("%+v", evs)
	}
	// The array stops.
	f.write("proc/mdstat", mdstatInactive)
	evs, _ = m.Poll(context.Background())
	if !slices.Equal(kinds(evs), []string{EventInactive}) {
		t.Fatalf("%+v", evs)
	}
}

func TestMonitorScrub(t *testing.T) {
	f := newFake(t)
	f.write("proc/mdstat", mdstatClean6)
	f.write("sys/block/md127/md/sync_action", "idle\n")
	f.write("sys/block/md127/md/mismatch_cnt", "0\n")
	loc := time.FixedZone("CET", 3600)
	now := time.Date(2026, 3, 20, 12, 0, 0, 0, loc)
	sched := ScrubSchedule{Weekday: time.Sunday, Hour: 2, Location: loc}
	m := &Monitor{Host: f.h, Schedule: &sched, LastScrub: time.Date(2026, 3, 1, 2, 0, 5, 0, loc), Now: func() time.Time { return now }}
	ctx := context.Background()
	poll := func(want ...string) []Event {
		t.Helper()
		evs, err := m.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(kinds(evs), want) {
			t.Fatalf("at %s: events %v, want %v", now, kinds(evs), want)
		}
		return evs
	}
	poll()
	// The first Sunday of April 2026 is the 5th.
	now = time.Date(2026, 4, 5, 1, 59, 0, 0, loc)
	poll()
	now = time.Date(2026, 4, 5, 2, 0, 0, 0, loc)
	poll(EventScrubStarted)
	if b, _ := os.ReadFile(f.path("sys/block/md127/md/sync_action")); string(b) != "check\n" {
		t.Errorf("sync_action %q", b)
	}
	if !m.LastScrub.Equal(now) {
		t.Errorf("last scrub %s", m.LastScrub)
	}
	now = now.Add(time.Minute)
	f.write("proc/mdstat", strings.Replace(mdstatClean6, "[UUUU]\n", "[UUUU]\n      [===>.................]  check = 17.4% (1823232/10476544) finish=0.7min speed=202581K/sec\n", 1))
	f.write("sys/block/md127/md/sync_action", "check\n")
	if evs := poll(); m.Arrays()[0].State != StateChecking {
		t.Fatalf("%+v %+v", evs, m.Arrays())
	}
	now = now.Add(time.Minute)
	f.write("proc/mdstat", mdstatClean6)
	f.write("sys/block/md127/md/sync_action", "idle\n")
	f.write("sys/block/md127/md/mismatch_cnt", "8\n")
	evs := poll(EventScrubFinished)
	if evs[0].Mismatches != 8 || !strings.Contains(evs[0].Message, "8 mismatched sectors") {
		t.Errorf("%+v", evs[0])
	}
	poll()
}

// A scrub due while the array rebuilds waits for the rebuild.
func TestMonitorScrubWaits(t *testing.T) {
	f := newFake(t)
	f.write("proc/mdstat", mdstatRecovery40)
	f.write("sys/block/md127/md/sync_action", "recover\n")
	now := time.Date(2026, 4, 5, 3, 0, 0, 0, time.UTC)
	sched := ScrubSchedule{Weekday: time.Sunday, Hour: 2, Location: time.UTC}
	m := &Monitor{Host: f.h, Schedule: &sched, LastScrub: time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC), Now: func() time.Time { return now }}
	evs, _ := m.Poll(context.Background())
	if slices.Contains(kinds(evs), EventScrubStarted) {
		t.Fatalf("%v", kinds(evs))
	}
	f.write("proc/mdstat", mdstatRebuilt)
	f.write("sys/block/md127/md/sync_action", "idle\n")
	now = now.Add(time.Hour)
	evs, _ = m.Poll(context.Background())
	if !slices.Equal(kinds(evs), []string{EventRebuilt, EventScrubStarted}) {
		t.Fatalf("%v", kinds(evs))
	}
}

func TestMonitorRun(t *testing.T) {
	f := newFake(t)
	f.write("proc/mdstat", mdstatDegraded6)
	var mu sync.Mutex
	var got []Event
	ctx, cancel := context.WithCancel(context.Background())
	m := &Monitor{Host: f.h, Interval: 5 * time.Millisecond, OnEvent: func(e Event) {
		mu.Lock()
		got = append(got, e)
		mu.Unlock()
		f.write("proc/mdstat", mdstatRecovery40)
	}}
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(kinds(got), []string{EventDegraded, EventRecovering}) {
		t.Fatalf("%v", kinds(got))
	}
}

func TestNextScrub(t *testing.T) {
	loc := time.FixedZone("X", -5*3600)
	s := ScrubSchedule{Weekday: time.Sunday, Hour: 2, Location: loc}
	d := func(y int, m time.Month, day, h, min int) time.Time { return time.Date(y, m, day, h, min, 0, 0, loc) }
	for _, c := range []struct {
		s          ScrubSchedule
		last, want time.Time
	}{
		{s, d(2026, 1, 10, 12, 0), d(2026, 2, 1, 2, 0)}, // Feb 1st 2026 is a Sunday
		{s, d(2026, 2, 1, 1, 59), d(2026, 2, 1, 2, 0)},  // the same day, before
		{s, d(2026, 2, 1, 2, 0), d(2026, 3, 1, 2, 0)},   // exactly then: the next month
		{s, d(2026, 3, 1, 2, 30), d(2026, 4, 5, 2, 0)},  // April 5th
		{s, d(2026, 12, 10, 0, 0), d(2027, 1, 3, 2, 0)}, // across the year
		{s, d(2026, 5, 31, 23, 0), d(2026, 6, 7, 2, 0)}, // June 7th
		{s, time.Date(2026, 2, 1, 6, 30, 0, 0, time.UTC), // 01:30 in loc: still before
			d(2026, 2, 1, 2, 0)},
		{ScrubSchedule{Weekday: time.Saturday, Hour: 23, Minute: 30, Location: loc}, d(2026, 8, 1, 23, 30), d(2026, 9, 5, 23, 30)},
	} {
		if got := c.s.Next(c.last); !got.Equal(c.want) {
			t.Errorf("Next(%s) = %s, want %s", c.last, got, c.want)
		}
	}
	// The package's default: local time.
	last := time.Date(2026, 1, 10, 12, 0, 0, 0, time.Local)
	if got := NextScrub(last); !got.Equal(time.Date(2026, 2, 1, 2, 0, 0, 0, time.Local)) {
		t.Errorf("NextScrub = %s", got)
	}
	if got := NextScrub(time.Time{}); got.IsZero() || got.Weekday() != time.Sunday || got.Day() > 7 {
		t.Errorf("NextScrub(zero) = %s", got)
	}
}
