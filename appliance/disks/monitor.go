package disks

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Event kinds.
const (
	EventDegraded      = "degraded"       // a member failed or went missing (Members)
	EventRecovering    = "recovering"     // a rebuild started (Progress)
	EventRebuilt       = "rebuilt"        // the rebuild finished, every slot in sync
	EventScrubStarted  = "scrub-started"  // the scheduler started a check
	EventScrubFinished = "scrub-finished" // a check ended (Mismatches)
	EventInactive      = "inactive"       // the array stopped running (too many members lost)
)

// Event is a change of an array the monitor saw.
type Event struct {
	Kind  string    `json:"kind"`
	Array string    `json:"array"`           // "md127"
	Alias string    `json:"alias,omitempty"` // "coffer"
	Time  time.Time `json:"time"`
	// Members are the failed members of a degraded event ("sdc", or
	// "slot 2" when md no longer lists the disk).
	Members    []string `json:"members,omitempty"`
	Progress   float64  `json:"progress,omitempty"` // percent
	Mismatches int64    `json:"mismatches,omitempty"`
	Message    string   `json:"message"`
	// State is the array as the monitor saw it.
	State Array `json:"state"`
}

// Monitor watches the arrays and starts the scheduled scrubs. Its
// fields are set before Run.
type Monitor struct {
	Host *Host
	// Interval between two looks at mdstat; 10 s when zero.
	Interval time.Duration
	// OnEvent receives each event, in order, from Run's goroutine.
	OnEvent func(Event)
	// Schedule, when set, starts a check of every clean array when
	// Schedule.Next(LastScrub) has passed.
	Schedule *ScrubSchedule
	// LastScrub is when the last scheduled scrub started (persisted by
	// the caller from scrub-started events); zero means the schedule
	// starts counting at the monitor's first look.
	LastScrub time.Time
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	mu       sync.Mutex
	started  bool
	prev     map[string]Array
	reported map[string]map[string]bool // failed members already reported, per array
	current  []Array
}

// Arrays is what the last look saw.
func (m *Monitor) Arrays() []Array {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.current)
}

// Run looks every Interval until ctx ends, handing the events to
// OnEvent. A failed look is retried at the next interval.
func (m *Monitor) Run(ctx context.Context) error {
	interval := m.Interval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		evs, _ := m.Poll(ctx)
		for _, e := range evs {
			if m.OnEvent != nil {
				m.OnEvent(e)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Poll looks once: it reads the arrays, compares them with the last look
// and starts a scheduled scrub that is due. Run calls it; tests too.
func (m *Monitor) Poll(ctx context.Context) ([]Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	t := now()
	arrays, err := m.Host.Arrays(ctx)
	if err != nil {
		return nil, err
	}
	if m.prev == nil {
		m.prev = map[string]Array{}
		m.reported = map[string]map[string]bool{}
	}
	var evs []Event
	seen := map[string]bool{}
	for _, a := range arrays {
		seen[a.Name] = true
		prev, had := m.prev[a.Name]
		evs = append(evs, m.diff(prev, had, a, t)...)
		m.prev[a.Name] = a
	}
	for name := range m.prev {
		if !seen[name] {
			delete(m.prev, name)
			delete(m.reported, name)
		}
	}
	m.current = arrays

	if m.Schedule != nil {
		if !m.started && m.LastScrub.IsZero() {
			m.LastScrub = t
		}
		if !t.Before(m.Schedule.Next(m.LastScrub)) {
			evs = append(evs, m.scrub(ctx, arrays, t)...)
		}
	}
	m.started = true
	return evs, nil
}

// scrub starts a check of every clean, idle array; the schedule moves on
// once every array has been started (a busy one is retried next look).
func (m *Monitor) scrub(ctx context.Context, arrays []Array, t time.Time) []Event {
	var evs []Event
	waiting := false
	for _, a := range arrays {
		if a.State == StateInactive {
			continue
		}
		if a.State != StateClean || (a.SyncAction != "" && a.SyncAction != "idle") {
			waiting = true
			continue
		}
		if err := m.Host.StartScrub(ctx, a.Name); err != nil {
			waiting = true
			continue
		}
		a.Action, a.State = "check", StateChecking
		m.prev[a.Name] = a // its end is reported as scrub-finished
		evs = append(evs, event(EventScrubStarted, a, t, "scrub of "+label(a)+" started"))
	}
	if !waiting {
		m.LastScrub = t
	}
	return evs
}

// diff compares two looks at one array.
func (m *Monitor) diff(prev Array, had bool, a Array, t time.Time) []Event {
	var evs []Event
	if a.State == StateInactive {
		if had && prev.State != StateInactive {
			evs = append(evs, event(EventInactive, a, t, label(a)+" stopped: too many disks are missing"))
		}
		return evs
	}

	rep := m.reported[a.Name]
	if rep == nil {
		rep = map[string]bool{}
		m.reported[a.Name] = rep
	}
	var failed []string
	for _, d := range a.Devices {
		if d.Faulty && !rep[d.Name] {
			failed = append(failed, d.Name)
			rep[d.Name] = true
		}
	}
	if had {
		for _, d := range prev.Devices {
			if !d.Faulty && !slices.ContainsFunc(a.Devices, func(x Member) bool { return x.Name == d.Name }) && !rep[d.Name] {
				failed = append(failed, d.Name)
				rep[d.Name] = true
			}
		}
	}
	for name := range rep {
		if !slices.ContainsFunc(a.Devices, func(x Member) bool { return x.Name == name }) && !slices.Contains(failed, name) {
			delete(rep, name) // removed from the array: a new failure of it is new
		}
	}
	degraded := a.Total > 0 && a.Active < a.Total
	wasDegraded := had && prev.Total > 0 && prev.Active < prev.Total
	if len(failed) > 0 || (degraded && !wasDegraded) {
		members := failed
		if len(members) == 0 {
			members = missingSlots(a)
		}
		e := event(EventDegraded, a, t, fmt.Sprintf("%s is degraded (%d of %d disks in sync)", label(a), a.Active, a.Total))
		if len(members) > 0 {
			e.Message += ": failed " + strings.Join(members, ", ")
		}
		e.Members = members
		evs = append(evs, e)
	}

	recovering := a.Action == "recovery"
	wasRecovering := had && prev.Action == "recovery"
	if recovering && !wasRecovering {
		e := event(EventRecovering, a, t, fmt.Sprintf("%s is rebuilding: %.1f%%", label(a), a.Progress))
		e.Progress = a.Progress
		evs = append(evs, e)
	}
	if wasRecovering && !recovering && !degraded {
		evs = append(evs, event(EventRebuilt, a, t, label(a)+" is rebuilt: every disk is in sync"))
	}
	if had && prev.Action == "check" && a.Action != "check" {
		e := event(EventScrubFinished, a, t, fmt.Sprintf("scrub of %s finished: %d mismatched sectors", label(a), a.Mismatches))
		e.Mismatches = a.Mismatches
		e.Progress = prev.Progress
		evs = append(evs, e)
	}
	return evs
}

// missingSlots names the slots mdstat shows out of sync ("slot 2").
func missingSlots(a Array) []string {
	var out []string
	for i, c := range a.Status {
		if c == '_' {
			out = append(out, fmt.Sprintf("slot %d", i))
		}
	}
	return out
}

func label(a Array) string {
	if a.Alias != "" {
		return "pool " + a.Alias + " (" + a.Name + ")"
	}
	return a.Name
}

func event(kind string, a Array, t time.Time, msg string) Event {
	return Event{Kind: kind, Array: a.Name, Alias: a.Alias, Time: t, Message: msg, State: a}
}
