package jobs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"regexp"
	"slices"
	"strings"
	"time"

	"coffer.dev/coffer/appliance/vsphere"
)

// Errors the Manager returns (wrapped with details).
var (
	ErrNotFound    = errors.New("not found")
	ErrExists      = errors.New("already exists")
	ErrPolicyBusy  = errors.New("the policy already has a queued or running job")
	ErrJobFinished = errors.New("the job has finished")
	ErrClosed      = errors.New("the job manager is closed")
)

// Trigger says why a job was queued.
type Trigger string

const (
	TriggerSchedule Trigger = "schedule" // a schedule instant
	TriggerManual   Trigger = "manual"   // RunPolicy from a user
	TriggerMissed   Trigger = "missed"   // a run missed while the appliance was off
)

// Valid reports whether t is one of the triggers.
func (t Trigger) Valid() bool {
	return t == TriggerSchedule || t == TriggerManual || t == TriggerMissed
}

// JobState is the state of a job.
type JobState string

const (
	JobQueued      JobState = "queued"
	JobRunning     JobState = "running"
	JobSucceeded   JobState = "succeeded"   // every VM backed up without warnings
	JobWarning     JobState = "warning"     // done, but with warnings or skipped VMs
	JobFailed      JobState = "failed"      // at least one VM failed, or the job could not start
	JobInterrupted JobState = "interrupted" // stopped by a shutdown or crash
	JobCanceled    JobState = "canceled"    // canceled by a user
)

// Finished reports whether s is final.
func (s JobState) Finished() bool {
	switch s {
	case JobSucceeded, JobWarning, JobFailed, JobInterrupted, JobCanceled:
		return true
	}
	return false
}

func (s JobState) valid() bool { return s == JobQueued || s == JobRunning || s.Finished() }

// VMState is the state of one VM within a job.
type VMState string

const (
	VMQueued      VMState = "queued"
	VMRunning     VMState = "running"
	VMSucceeded   VMState = "succeeded"
	VMWarning     VMState = "warning" // backed up, with warnings
	VMFailed      VMState = "failed"
	VMInterrupted VMState = "interrupted" // stopped by a cancel, shutdown or crash
	VMSkipped     VMState = "skipped"     // not started; Reason says why
)

// Finished reports whether s is final.
func (s VMState) Finished() bool { return s != VMQueued && s != VMRunning }

// Job is one run of a policy.
type Job struct {
	// ID sorts by creation time: 20261123T220000.000000Z-3fa9c2e1.
	ID         string   `json:"id"`
	PolicyID   string   `json:"policy_id"`
	PolicyName string   `json:"policy_name"`
	Trigger    Trigger  `json:"trigger"`
	State      JobState `json:"state"`
	// Priority is the policy's priority, which orders the queue.
	Priority int       `json:"priority"`
	Created  time.Time `json:"created"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// VMs are the selected VMs, by name; filled when the job starts.
	VMs []VMRun `json:"vms"`
	// Totals over the VMs; Duration is the job's (Finished - Started) and
	// Speed is BytesRead per second of it.
	BytesRead   int64         `json:"bytes_read"`
	BytesStored int64         `json:"bytes_stored"`
	Duration    time.Duration `json:"duration"`
	Speed       float64       `json:"speed"`
	Warnings    []string      `json:"warnings,omitempty"`
	// Error says why the job as a whole failed (no VM list, policy gone).
	Error string `json:"error,omitempty"`
}

// VMRun is one VM's backup within a job.
type VMRun struct {
	UUID       string   `json:"uuid"`
	Name       string   `json:"name"`
	Host       string   `json:"host,omitempty"`
	Datastores []string `json:"datastores,omitempty"`
	State      VMState  `json:"state"`
	// VerifyCBT is set when this backup verified changed block tracking.
	VerifyCBT bool            `json:"verify_cbt,omitempty"`
	Result    *vsphere.Result `json:"result,omitempty"`
	// Error is the failure or interruption; Reason explains a skip or an
	// interruption.
	Error       string        `json:"error,omitempty"`
	Reason      string        `json:"reason,omitempty"`
	Started     time.Time     `json:"started,omitzero"`
	Finished    time.Time     `json:"finished,omitzero"`
	BytesRead   int64         `json:"bytes_read"`
	BytesStored int64         `json:"bytes_stored"`
	Duration    time.Duration `json:"duration"`
	Speed       float64       `json:"speed"` // bytes read per second
	// Progress is the latest progress of a running backup.
	Progress *Progress `json:"progress,omitempty"`
}

// Progress is a running VM backup's progress, for live display.
type Progress struct {
	Disk      string `json:"disk"`
	Disks     int    `json:"disks"`
	DisksDone int    `json:"disks_done"`
	Read      int64  `json:"read_bytes"`
	// ToRead is the bytes to read of the disks started so far.
	ToRead int64 `json:"to_read_bytes"`
	// Percent estimates the whole VM (disks not started yet are assumed
	// as large as the average started one); it never goes down.
	Percent float64 `json:"percent"`
	// Throughput is a moving average in bytes per second.
	Throughput float64       `json:"throughput"`
	ETA        time.Duration `json:"eta"`
}

// JobFilter selects jobs; zero fields select everything.
type JobFilter struct {
	PolicyID string
	States   []JobState
	VM       string    // instance UUID the job backed up (or tried to)
	Since    time.Time // created at or after
	Limit    int       // at most this many, newest first
}

func (f JobFilter) match(j *Job) bool {
	if f.PolicyID != "" && j.PolicyID != f.PolicyID {
		return false
	}
	if len(f.States) > 0 && !slices.Contains(f.States, j.State) {
		return false
	}
	if !f.Since.IsZero() && j.Created.Before(f.Since) {
		return false
	}
	if f.VM != "" && !slices.ContainsFunc(j.VMs, func(r VMRun) bool { return equalUUID(r.UUID, f.VM) }) {
		return false
	}
	return true
}

// clone copies j deeply enough that the caller may keep it: Results are
// shared, as they never change once set.
func (j *Job) clone() Job {
	c := *j
	c.VMs = slices.Clone(j.VMs)
	for i := range c.VMs {
		if p := c.VMs[i].Progress; p != nil {
			cp := *p
			c.VMs[i].Progress = &cp
		}
	}
	c.Warnings = slices.Clone(j.Warnings)
	return c
}

func (j *Job) warn(s string) { j.Warnings = append(j.Warnings, s) }

// summarize sets the job's totals from its VMs and times.
func (j *Job) summarize() {
	j.BytesRead, j.BytesStored = 0, 0
	for _, r := range j.VMs {
		j.BytesRead += r.BytesRead
		j.BytesStored += r.BytesStored
	}
	if !j.Started.IsZero() && !j.Finished.IsZero() {
		j.Duration = j.Finished.Sub(j.Started)
	}
	j.Speed = speed(j.BytesRead, j.Duration)
}

// outcome is the state a job that ran to its end gets from its VMs:
// failed if any VM failed, warning if any has warnings or was skipped (or
// the job has warnings or selected nothing), succeeded otherwise.
func (j *Job) outcome() JobState {
	if j.Error != "" {
		return JobFailed
	}
	st := JobSucceeded
	if len(j.Warnings) > 0 || len(j.VMs) == 0 {
		st = JobWarning
	}
	for _, r := range j.VMs {
		switch r.State {
		case VMFailed:
			return JobFailed
		case VMWarning, VMSkipped, VMInterrupted:
			st = JobWarning
		}
	}
	return st
}

// finishRun fills the figures of a finished VM run.
func (r *VMRun) finishRun(now time.Time) {
	r.Finished = now
	r.Progress = nil
	if r.Result != nil {
		r.BytesRead, r.BytesStored = r.Result.Read, r.Result.Stored
	}
	if !r.Started.IsZero() {
		r.Duration = r.Finished.Sub(r.Started)
	}
	r.Speed = speed(r.BytesRead, r.Duration)
}

func equalUUID(a, b string) bool { return strings.EqualFold(a, b) }

func speed(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / d.Seconds()
}

var jobIDPattern = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}\.[0-9]{6}Z-[0-9a-f]{8}$`)

func validJobID(id string) bool { return jobIDPattern.MatchString(id) }

// newJobID returns an ID for a job created at t.
func newJobID(t time.Time) string {
	var r [4]byte
	_, _ = rand.Read(r[:]) // never fails (crypto/rand)
	return t.UTC().Format("20060102T150405.000000Z") + "-" + hex.EncodeToString(r[:])
}
