package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"coffer.dev/coffer/appliance/vsphere"
)

// Causes of a job's cancellation.
var (
	errCanceled = errors.New("canceled by an administrator")
	errShutdown = errors.New("the job manager stopped (appliance shutting down)")
)

// reason describes why a job's context ended.
func reason(cause error) string {
	switch {
	case errors.Is(cause, errCanceled), errors.Is(cause, errShutdown):
		return cause.Error()
	}
	return errShutdown.Error()
}

// jobRun is the runner's view of a running job. Its fields are guarded by
// Manager.mu.
type jobRun struct {
	job    *Job
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when the job is final

	ready  bool // VMs resolved (or the job failed before)
	policy Policy
	loc    *time.Location
	vms    []vsphere.VM // the inventory's view of job.VMs, same order
	creds  *vsphere.GuestCredentials

	pending []int // indices of queued VMs, in start order
	active  int   // VMs whose backup goroutine runs

	windowEnd    time.Time // when starting VMs stops (zero: never)
	windowClosed bool
	windowNote   string // why pending VMs are skipped at window end

	cut      bool // something was cut short by cancel or shutdown
	trackers map[int]*progressTracker
}

// queueOrder orders jobs: higher priority first, then older first.
func queueOrder(a, b *Job) int {
	return cmp.Or(cmp.Compare(b.Priority, a.Priority), a.Created.Compare(b.Created), strings.Compare(a.ID, b.ID))
}

// runLoop promotes queued jobs, starts VM backups as limits allow and
// finishes jobs, whenever something changes.
func (m *Manager) runLoop(ctx context.Context) {
	defer m.wg.Done()
	m.sweep(ctx)
	for {
		m.step(ctx)
		select {
		case <-ctx.Done():
			m.vmWG.Wait()
			m.finishAll()
			return
		case <-m.kick:
		}
	}
}

type launch struct {
	jr  *jobRun
	idx int
}

// step does one round of the runner's work.
func (m *Manager) step(ctx context.Context) {
	m.mu.Lock()
	var prepare []*jobRun
	if !m.closed && ctx.Err() == nil {
		prepare = m.promoteLocked(ctx)
	}
	launches, finished, changed := m.dispatchLocked()
	m.mu.Unlock()
	for _, jr := range prepare {
		m.persistJob(jr.job.ID)
		m.vmWG.Add(1)
		go m.prepare(jr)
	}
	for _, id := range changed {
		m.persistJob(id)
	}
	for _, l := range launches {
		m.vmWG.Add(1)
		go m.runVM(l.jr, l.idx)
	}
	if len(finished) > 0 {
		m.pruneHistory()
		m.kickRunner() // room for queued jobs
	}
}

// promoteLocked starts queued jobs, in queue order, up to MaxJobs.
func (m *Manager) promoteLocked(ctx context.Context) []*jobRun {
	if len(m.running) >= m.opt.MaxJobs {
		return nil
	}
	var queued []*Job
	for _, j := range m.jobs {
		if j.State == JobQueued {
			queued = append(queued, j)
		}
	}
	slices.SortFunc(queued, queueOrder)
	var out []*jobRun
	now := m.now()
	for _, j := range queued {
		if len(m.running) >= m.opt.MaxJobs {
			break
		}
		jctx, cancel := context.WithCancelCause(ctx)
		jr := &jobRun{job: j, ctx: jctx, cancel: cancel, done: make(chan struct{}), trackers: map[int]*progressTracker{}}
		j.State, j.Started = JobRunning, now
		m.running[j.ID] = jr
		m.emitJobLocked(j)
		m.log.Info("job started", "job", j.ID, "policy", j.PolicyID, "trigger", j.Trigger)
		out = append(out, jr)
	}
	return out
}

// prepare resolves a started job's VMs from the inventory.
func (m *Manager) prepare(jr *jobRun) {
	defer m.vmWG.Done()
	defer m.kickRunner()
	m.mu.Lock()
	p := m.policies[jr.job.PolicyID]
	var pol Policy
	if p != nil {
		pol = p.copy()
	}
	trigger := jr.job.Trigger
	m.mu.Unlock()
	fail := func(msg string) {
		m.mu.Lock()
		jr.job.Error = msg
		jr.ready = true
		m.mu.Unlock()
		m.log.Error("job failed to start", "job", jr.job.ID, "policy", jr.job.PolicyID, "err", msg)
	}
	if p == nil {
		fail("the policy was deleted before the job started")
		return
	}
	loc, err := pol.Location()
	if err != nil {
		fail(err.Error())
		return
	}
	inv, err := m.opt.Inventory.Inventory(jr.ctx)
	if err != nil || inv == nil {
		if jr.ctx.Err() != nil {
			m.mu.Lock()
			jr.cut, jr.ready = true, true
			m.mu.Unlock()
			return
		}
		fail(fmt.Sprintf("read the vSphere inventory: %v", err))
		return
	}
	var vms []vsphere.VM
	seen := map[string]bool{}
	for _, vm := range inv.VMs {
		k := strings.ToLower(vm.InstanceUUID)
		if vm.InstanceUUID != "" && !seen[k] && pol.Matches(vm) {
			seen[k] = true
			vms = append(vms, vm)
		}
	}
	slices.SortFunc(vms, func(a, b vsphere.VM) int {
		return cmp.Or(strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)), strings.Compare(a.InstanceUUID, b.InstanceUUID))
	})

	var warnings []string
	var creds *vsphere.GuestCredentials
	if pol.GuestCredentials != "" {
		if m.opt.Secrets == nil {
			warnings = append(warnings, fmt.Sprintf("guest credentials %q: no secret store is configured; guest hooks are skipped", pol.GuestCredentials))
		} else if creds, err = m.opt.Secrets.GuestCredentials(pol.GuestCredentials); err != nil {
			creds = nil
			warnings = append(warnings, fmt.Sprintf("guest credentials %q could not be read (%v); guest hooks are skipped", pol.GuestCredentials, err))
		}
	}

	var windowEnd time.Time
	var windowCh <-chan time.Time
	closedAtStart := false
	if trigger != TriggerManual && !pol.Window.IsZero() {
		now := m.now().In(loc)
		if !pol.Window.Contains(now) {
			closedAtStart = true
		} else if end := pol.Window.End(now); !end.IsZero() {
			windowEnd = end
			windowCh = m.opt.After(end.Sub(now))
		}
	}

	m.mu.Lock()
	j := jr.job
	jr.policy, jr.loc, jr.vms, jr.creds = pol, loc, vms, creds
	j.PolicyName = pol.Name
	j.VMs = make([]VMRun, len(vms))
	jr.pending = make([]int, len(vms))
	for i, vm := range vms {
		j.VMs[i] = VMRun{UUID: vm.InstanceUUID, Name: vm.Name, Host: vm.Host, Datastores: slices.Clone(vm.Datastores), State: VMQueued}
		jr.pending[i] = i
	}
	for _, w := range warnings {
		j.warn(w)
	}
	if len(vms) == 0 {
		j.warn("the policy selects no VM in the inventory")
	}
	jr.windowEnd = windowEnd
	switch {
	case closedAtStart:
		jr.windowClosed = true
		jr.windowNote = fmt.Sprintf("outside the backup window (%s): it was closed when the job started", pol.Window)
	case !windowEnd.IsZero():
		jr.windowNote = fmt.Sprintf("backup window ended (%s, closed at %s)", pol.Window, windowEnd.Format("2006-01-02 15:04 MST"))
	}
	jr.ready = true
	m.emitJobLocked(j)
	m.mu.Unlock()
	m.log.Info("job resolved its VMs", "job", j.ID, "policy", pol.ID, "vms", len(vms))
	m.persistJob(j.ID)

	if windowCh != nil {
		go func() {
			select {
			case <-windowCh:
				m.mu.Lock()
				jr.windowClosed = true
				m.mu.Unlock()
				m.kickRunner()
			case <-jr.done:
			case <-jr.ctx.Done():
			}
		}()
	}
}

// dispatchLocked starts the VMs that the limits allow, skips those that
// cannot run any more and finishes jobs that are done. It returns the
// backups to start, the jobs finished, and the jobs that changed.
func (m *Manager) dispatchLocked() (launches []launch, finished []*jobRun, changed []string) {
	now := m.now()
	runs := make([]*jobRun, 0, len(m.running))
	for _, jr := range m.running {
		runs = append(runs, jr)
	}
	slices.SortFunc(runs, func(a, b *jobRun) int { return queueOrder(a.job, b.job) })
	for _, jr := range runs {
		if !jr.ready {
			continue
		}
		j := jr.job
		dirty := false
		if len(jr.pending) > 0 && jr.ctx.Err() != nil {
			m.skipPendingLocked(jr, "not started: "+reason(context.Cause(jr.ctx)), now)
			jr.cut, dirty = true, true
		}
		if len(jr.pending) > 0 && (jr.windowClosed || (!jr.windowEnd.IsZero() && !now.Before(jr.windowEnd))) {
			m.log.Info("backup window closed; skipping the VMs not started", "job", j.ID, "vms", len(jr.pending))
			m.skipPendingLocked(jr, jr.windowNote, now)
			dirty = true
		}
		kept := jr.pending[:0]
		for _, idx := range jr.pending {
			r := &j.VMs[idx]
			key := strings.ToLower(r.UUID)
			if other, busy := m.activeVMs[key]; busy {
				r.State, r.Finished = VMSkipped, now
				r.Reason = fmt.Sprintf("already being backed up by job %s of policy %s", other.job, other.policy)
				m.emitVMLocked(EventVM, j, idx)
				dirty = true
				continue
			}
			if !m.limits.fits(r.Host, r.Datastores) {
				kept = append(kept, idx)
				continue
			}
			m.limits.take(r.Host, r.Datastores)
			m.activeVMs[key] = activeVM{job: j.ID, policy: j.PolicyID}
			r.State, r.Started = VMRunning, now
			if n := jr.policy.verifyEvery(); n > 0 && m.sinceVerify[key] >= n-1 {
				r.VerifyCBT = true
			}
			jr.active++
			launches = append(launches, launch{jr, idx})
			m.emitVMLocked(EventVM, j, idx)
			dirty = true
		}
		jr.pending = kept
		if len(jr.pending) == 0 && jr.active == 0 {
			m.finalizeLocked(jr, now)
			finished = append(finished, jr)
			dirty = true
		}
		if dirty {
			changed = append(changed, j.ID)
		}
	}
	return launches, finished, changed
}

func (m *Manager) skipPendingLocked(jr *jobRun, why string, now time.Time) {
	for _, idx := range jr.pending {
		r := &jr.job.VMs[idx]
		r.State, r.Reason, r.Finished = VMSkipped, why, now
		m.emitVMLocked(EventVM, jr.job, idx)
	}
	jr.pending = nil
}

// finalizeLocked gives a job whose VMs are all done its final state.
func (m *Manager) finalizeLocked(jr *jobRun, now time.Time) {
	j := jr.job
	cause := context.Cause(jr.ctx)
	switch {
	case jr.cut && errors.Is(cause, errCanceled):
		j.State = JobCanceled
		j.warn("canceled by an administrator")
	case jr.cut:
		j.State = JobInterrupted
		j.warn("interrupted: " + reason(cause))
	default:
		j.State = j.outcome()
	}
	j.Finished = now
	j.summarize()
	delete(m.running, j.ID)
	close(jr.done)
	jr.cancel(nil)
	m.emitJobLocked(j)
	m.log.Info("job finished", "job", j.ID, "policy", j.PolicyID, "state", j.State,
		"vms", len(j.VMs), "read", j.BytesRead, "stored", j.BytesStored, "duration", j.Duration)
}

// finishAll finalizes the jobs left when the runner stops; their backups
// have returned.
func (m *Manager) finishAll() {
	m.mu.Lock()
	now := m.now()
	var ids []string
	for _, jr := range m.running {
		if len(jr.pending) > 0 || !jr.ready {
			m.skipPendingLocked(jr, "not started: "+reason(context.Cause(jr.ctx)), now)
			jr.cut = true
		}
		jr.cancel(errShutdown)
		m.finalizeLocked(jr, now)
		ids = append(ids, jr.job.ID)
	}
	m.mu.Unlock()
	for _, id := range ids {
		m.persistJob(id)
	}
	m.pruneHistory()
}

// runVM backs up one VM and applies retention after a success.
func (m *Manager) runVM(jr *jobRun, idx int) {
	defer m.vmWG.Done()
	defer m.kickRunner()
	m.mu.Lock()
	r := jr.job.VMs[idx]
	vm := jr.vms[idx]
	pol := jr.policy
	jobID := jr.job.ID
	m.mu.Unlock()
	log := m.log.With("job", jobID, "vm", r.Name, "uuid", r.UUID)
	log.Info("VM backup started", "verify_cbt", r.VerifyCBT)

	req := vsphere.BackupRequest{
		InstanceUUID: r.UUID,
		Consistency:  pol.Consistency,
		Hooks:        pol.Hooks,
		Guest:        jr.creds,
		VerifyCBT:    r.VerifyCBT,
		NoCatalog:    pol.SkipRecoverabilityCheck,
		Labels:       map[string]string{"policy": pol.ID, "job": jobID},
		Progress:     func(p vsphere.Progress) { m.progress(jr, idx, p) },
		Acquire:      m.acquireStream,
	}
	res, err := m.opt.Backupper.BackupVM(jr.ctx, req)

	// Free the slots first: retention does not touch vSphere.
	m.mu.Lock()
	m.limits.release(r.Host, r.Datastores)
	delete(m.activeVMs, strings.ToLower(r.UUID))
	m.mu.Unlock()
	m.kickRunner()

	var warnings []string
	if err == nil {
		warnings = m.applyRetention(pol, jr.loc, vm, log)
	}

	m.mu.Lock()
	run := &jr.job.VMs[idx]
	run.Result = res
	switch {
	case err == nil && res != nil && len(res.Warnings) > 0:
		run.State = VMWarning
	case err == nil:
		run.State = VMSucceeded
	case jr.ctx.Err() != nil:
		run.State = VMInterrupted
		run.Error = err.Error()
		run.Reason = reason(context.Cause(jr.ctx))
		jr.cut = true
	default:
		run.State = VMFailed
		run.Error = err.Error()
	}
	if err == nil {
		m.noteBackupLocked(run.UUID, run.VerifyCBT)
	}
	for _, w := range warnings {
		jr.job.warn(w)
	}
	run.finishRun(m.now())
	jr.active--
	m.emitVMLocked(EventVM, jr.job, idx)
	state, errText := run.State, run.Error
	m.mu.Unlock()
	if err != nil {
		log.Warn("VM backup did not complete", "state", state, "err", errText)
	} else {
		log.Info("VM backed up", "state", state, "point", res.Point)
	}
	m.persistJob(jobID)
}

// applyRetention prunes a VM's points after a successful backup. If
// several policies select the VM, each count is the largest of theirs, so
// that no policy loses points another one keeps.
func (m *Manager) applyRetention(pol Policy, loc *time.Location, vm vsphere.VM, log *slog.Logger) []string {
	r := pol.retention(loc)
	m.mu.Lock()
	for _, o := range m.policies {
		if o.ID == pol.ID || !o.Matches(vm) {
			continue
		}
		or := o.retention(loc)
		r.Last, r.Daily, r.Weekly = max(r.Last, or.Last), max(r.Daily, or.Daily), max(r.Weekly, or.Weekly)
		r.Monthly, r.Yearly = max(r.Monthly, or.Monthly), max(r.Yearly, or.Yearly)
	}
	m.mu.Unlock()
	source := vsphere.SourceName(vm.InstanceUUID)
	decisions, err := m.opt.Points.Prune(r, source, false)
	if err != nil {
		log.Warn("retention failed", "err", err)
		return []string{fmt.Sprintf("retention for VM %s: %v", vm.Name, err)}
	}
	var warnings []string
	deleted := 0
	for _, d := range decisions {
		switch {
		case d.Error != "":
			warnings = append(warnings, fmt.Sprintf("retention for VM %s: point %s could not be deleted: %s", vm.Name, d.ID, d.Error))
		case d.Deleted:
			deleted++
		}
	}
	if deleted > 0 || len(warnings) > 0 {
		log.Info("retention applied", "deleted", deleted, "errors", len(warnings))
	}
	return warnings
}

// progress records a running backup's progress and tells subscribers.
func (m *Manager) progress(jr *jobRun, idx int, p vsphere.Progress) {
	m.mu.Lock()
	defer m.mu.Unlock()
	run := &jr.job.VMs[idx]
	if run.State != VMRunning {
		return
	}
	t := jr.trackers[idx]
	if t == nil {
		t = &progressTracker{lastT: run.Started}
		jr.trackers[idx] = t
	}
	pr := t.update(m.now(), p)
	run.Progress = &pr
	m.emitVMLocked(EventProgress, jr.job, idx)
}

// acquireStream takes one of the disk stream slots, waiting as long as
// ctx allows; the returned function gives it back (once).
func (m *Manager) acquireStream(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case m.streams <- struct{}{}:
		var once sync.Once
		return func() { once.Do(func() { <-m.streams }) }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// sweep removes backup snapshots a crash left behind, once at start, and
// notes the outcome on the jobs the crash interrupted.
func (m *Manager) sweep(ctx context.Context) {
	swept, err := m.opt.Backupper.SweepSnapshots(ctx, "")
	m.mu.Lock()
	recovered := m.recovered
	m.recovered = nil
	var all []string
	byVM := map[string][]string{}
	if err != nil {
		m.log.Error("could not sweep leftover backup snapshots", "err", err)
		all = append(all, fmt.Sprintf("leftover snapshot sweep at start failed: %v", err))
	}
	for _, s := range swept {
		if s.Error != "" {
			m.log.Error("leftover backup snapshot could not be removed", "vm", s.VM, "snapshot", s.Name, "err", s.Error)
			all = append(all, fmt.Sprintf("leftover snapshot %q of VM %s could not be removed: %s", s.Name, s.VM, s.Error))
			continue
		}
		m.log.Warn("leftover backup snapshot removed", "vm", s.VM, "snapshot", s.Name, "created", s.Created)
		k := strings.ToLower(s.VMUUID)
		byVM[k] = append(byVM[k], fmt.Sprintf("leftover snapshot %q of VM %s removed at start", s.Name, s.VM))
	}
	var changed []string
	for _, id := range recovered {
		j := m.jobs[id]
		if j == nil {
			continue
		}
		notes := slices.Clone(all)
		for _, r := range j.VMs {
			notes = append(notes, byVM[strings.ToLower(r.UUID)]...)
		}
		for _, n := range notes {
			j.warn(n)
		}
		if len(notes) > 0 {
			changed = append(changed, id)
		}
	}
	m.mu.Unlock()
	for _, id := range changed {
		m.persistJob(id)
	}
}

// limits counts the VM backups running per host, per datastore and in all.
type limits struct {
	perHost, perDS, global int
	host, ds               map[string]int
	n                      int
}

func newLimits(perHost, perDS, global int) limits {
	return limits{perHost: perHost, perDS: perDS, global: global, host: map[string]int{}, ds: map[string]int{}}
}

func (l *limits) fits(host string, dss []string) bool {
	if l.n >= l.global || (host != "" && l.host[host] >= l.perHost) {
		return false
	}
	for _, d := range uniq(dss) {
		if l.ds[d] >= l.perDS {
			return false
		}
	}
	return true
}

func (l *limits) take(host string, dss []string) {
	l.n++
	if host != "" {
		l.host[host]++
	}
	for _, d := range uniq(dss) {
		l.ds[d]++
	}
}

func (l *limits) release(host string, dss []string) {
	l.n--
	if host != "" {
		if l.host[host]--; l.host[host] <= 0 {
			delete(l.host, host)
		}
	}
	for _, d := range uniq(dss) {
		if l.ds[d]--; l.ds[d] <= 0 {
			delete(l.ds, d)
		}
	}
}

// uniq returns the distinct non-empty names of s.
func uniq(s []string) []string {
	out := make([]string, 0, len(s))
	for _, v := range s {
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
