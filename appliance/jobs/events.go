package jobs

import (
	"math"
	"time"

	"coffer.dev/coffer/appliance/vsphere"
)

// EventType says what an Event reports.
type EventType string

const (
	EventJob      EventType = "job"      // a job was queued or changed state
	EventVM       EventType = "vm"       // a VM of a job changed state
	EventProgress EventType = "progress" // a running VM backup made progress
)

// Event is a change for live displays.
type Event struct {
	Type     EventType `json:"type"`
	Time     time.Time `json:"time"`
	JobID    string    `json:"job_id"`
	PolicyID string    `json:"policy_id"`
	JobState JobState  `json:"job_state"`
	// VM is a copy of the VM's run for vm and progress events; its
	// Progress has the percentage, throughput and ETA.
	VM *VMRun `json:"vm,omitempty"`
	// Dropped counts the events this subscriber lost just before this one
	// because it did not read fast enough; it should reload the jobs.
	Dropped int `json:"dropped,omitempty"`
}

// subscriberBuffer is how many events a subscriber may lag behind.
const subscriberBuffer = 256

type subscriber struct {
	ch      chan Event
	dropped int
}

// Subscribe returns a channel of events and a function that ends the
// subscription. Events are never waited for: a subscriber that lags more
// than 256 events behind loses some, and the next event it gets says how
// many. The channel is closed by cancel or Close.
func (m *Manager) Subscribe() (<-chan Event, func()) {
	m.subMu.Lock()
	defer m.subMu.Unlock()
	s := &subscriber{ch: make(chan Event, subscriberBuffer)}
	if m.subsClosed {
		close(s.ch)
		return s.ch, func() {}
	}
	id := m.nextSub
	m.nextSub++
	m.subs[id] = s
	return s.ch, func() {
		m.subMu.Lock()
		defer m.subMu.Unlock()
		if s, ok := m.subs[id]; ok {
			close(s.ch)
			delete(m.subs, id)
		}
	}
}

func (m *Manager) emit(ev Event) {
	m.subMu.Lock()
	defer m.subMu.Unlock()
	for _, s := range m.subs {
		e := ev
		e.Dropped = s.dropped
		select {
		case s.ch <- e:
			s.dropped = 0
		default:
			s.dropped++
		}
	}
}

func (m *Manager) emitJobLocked(j *Job) {
	m.emit(Event{Type: EventJob, Time: m.now(), JobID: j.ID, PolicyID: j.PolicyID, JobState: j.State})
}

func (m *Manager) emitVMLocked(t EventType, j *Job, idx int) {
	r := j.VMs[idx]
	if r.Progress != nil {
		p := *r.Progress
		r.Progress = &p
	}
	m.emit(Event{Type: t, Time: m.now(), JobID: j.ID, PolicyID: j.PolicyID, JobState: j.State, VM: &r})
}

// progressTracker turns the engine's byte counts into percentage,
// throughput and ETA.
type progressTracker struct {
	lastT    time.Time
	lastRead int64
	rate     float64 // bytes/s, moving average
	pct      float64
}

// rateTimeConstant weights the throughput average: a sample's weight
// falls by e every 10 s.
const rateTimeConstant = 10 * time.Second

func (t *progressTracker) update(now time.Time, p vsphere.Progress) Progress {
	out := Progress{Disk: p.Disk, Disks: p.Disks, DisksDone: p.DisksDone, Read: p.Read, ToRead: p.ToRead}
	if dt := now.Sub(t.lastT).Seconds(); dt > 0 && p.Read >= t.lastRead {
		inst := float64(p.Read-t.lastRead) / dt
		if t.rate == 0 {
			t.rate = inst
		} else {
			t.rate += (1 - math.Exp(-dt/rateTimeConstant.Seconds())) * (inst - t.rate)
		}
		t.lastT, t.lastRead = now, p.Read
	}
	out.Throughput = t.rate

	// Disks not started yet count as large as the average started one.
	total := float64(p.ToRead)
	started := p.DisksDone
	if p.Disk != "" && p.DisksDone < p.Disks {
		started++
	}
	if started > 0 && started < p.Disks {
		total = total * float64(p.Disks) / float64(started)
	}
	pct := 0.0
	switch {
	case p.Disks > 0 && p.DisksDone >= p.Disks:
		pct = 100
	case total > 0:
		pct = 100 * float64(p.Read) / total
	}
	pct = math.Max(0, math.Min(pct, 100))
	t.pct = math.Max(t.pct, pct)
	out.Percent = t.pct
	if left := total - float64(p.Read); t.rate > 0 && left > 0 {
		out.ETA = time.Duration(left / t.rate * float64(time.Second)).Round(time.Second)
	}
	return out
}
