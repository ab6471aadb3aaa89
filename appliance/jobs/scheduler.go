package jobs

import (
	"context"
	"errors"
	"slices"
	"time"

	"coffer.dev/coffer/appliance/jobs/schedule"
)

const (
	// maxSchedSleep bounds each wait of the scheduler, so that a changed
	// wall clock is noticed within a minute.
	maxSchedSleep = time.Minute
	// onTimeGrace is how late the scheduler may handle an instant and
	// still call the run scheduled rather than missed.
	onTimeGrace = 5 * time.Minute
)

// schedLoop queues a job at every schedule instant of every enabled
// policy.
func (m *Manager) schedLoop(ctx context.Context) {
	defer m.wg.Done()
	for {
		next := m.evaluateSchedules(ctx)
		wait := maxSchedSleep
		if !next.IsZero() {
			wait = min(wait, next.Sub(m.now()))
		}
		wait = max(wait, time.Millisecond)
		select {
		case <-ctx.Done():
			return
		case <-m.opt.After(wait):
		case <-m.wakeSched:
		}
	}
}

type dueRun struct {
	policy  string
	trigger Trigger
}

// evaluateSchedules queues the runs that are due and returns the next
// instant at which one may be (zero if none).
//
// For each policy, every instant up to schedState.Last has been handled.
// If an instant fell due since (schedule.Missed), the policy is queued
// once: as "schedule" if the latest such instant is recent, as "missed"
// otherwise (the appliance was off or asleep). A scheduled instant outside
// the window is dropped; a missed run outside the window waits until the
// window opens, unless a scheduled run comes first.
func (m *Manager) evaluateSchedules(ctx context.Context) time.Time {
	now := m.now()
	var due []dueRun
	var next time.Time
	soonest := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	dirty := false
	m.mu.Lock()
	ids := make([]string, 0, len(m.policies))
	for id := range m.policies {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		p := m.policies[id]
		if !p.Enabled || p.Schedule.IsZero() {
			continue
		}
		loc, err := p.Location()
		if err != nil {
			m.log.Error("policy not scheduled", "policy", p.ID, "err", err)
			continue
		}
		st := m.sched[id]
		if st == nil {
			st = &schedState{Last: p.Created}
			if st.Last.IsZero() || st.Last.After(now) {
				st.Last = now
			}
			m.sched[id] = st
			dirty = true
		}
		if st.Last.After(now) {
			// The clock went back: start over from now rather than wait
			// for the old time to come again.
			m.log.Warn("the clock went back; scheduling from now", "policy", id, "last", st.Last, "now", now)
			st.Last, dirty = now, true
		}
		local := now.In(loc)
		open := p.Window.IsZero() || p.Window.Contains(local)
		if schedule.Missed(p.Schedule, loc, st.Last, now) {
			recent := p.Schedule.Next(latest(st.Last, now.Add(-onTimeGrace)), loc)
			onTime := !recent.IsZero() && !recent.After(now)
			st.Last, dirty = now, true
			switch {
			case onTime && open:
				due = append(due, dueRun{id, TriggerSchedule})
				st.MissedPending = false
			case onTime:
				m.log.Info("scheduled run dropped: outside the backup window", "policy", id, "instant", recent, "window", p.Window.String())
			case open:
				due = append(due, dueRun{id, TriggerMissed})
				st.MissedPending = false
			default:
				m.log.Info("missed run waits for the backup window", "policy", id, "window", p.Window.String())
				st.MissedPending = true
			}
		} else if st.MissedPending && open {
			due = append(due, dueRun{id, TriggerMissed})
			st.MissedPending, dirty = false, true
		}
		soonest(p.Schedule.Next(now, loc))
		if st.MissedPending {
			soonest(p.Window.NextOpen(local))
		}
	}
	m.mu.Unlock()

	// Queue first, then record that the instants were handled: a crash in
	// between queues nothing twice, as a policy with a queued job is not
	// queued again.
	for _, d := range due {
		id, err := m.RunPolicy(ctx, d.policy, d.trigger)
		switch {
		case errors.Is(err, ErrPolicyBusy):
			m.log.Warn("run not queued: the policy's previous job has not finished", "policy", d.policy, "trigger", d.trigger, "err", err)
		case err != nil:
			m.log.Error("could not queue a scheduled run", "policy", d.policy, "trigger", d.trigger, "err", err)
		default:
			m.log.Info("run queued", "policy", d.policy, "trigger", d.trigger, "job", id)
		}
	}
	if dirty {
		m.saveSchedule()
	}
	return next
}
