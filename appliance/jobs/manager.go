package jobs

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/store"
	"coffer.dev/coffer/store/point"
)

// Backupper backs up VMs and removes leftover snapshots; *vsphere.Engine
// implements it.
type Backupper interface {
	BackupVM(ctx context.Context, req vsphere.BackupRequest) (*vsphere.Result, error)
	SweepSnapshots(ctx context.Context, vmUUID string) ([]vsphere.SweptSnapshot, error)
}

// InventorySource reads the vSphere inventory; *vsphere.Client implements
// it.
type InventorySource interface {
	Inventory(ctx context.Context) (*vsphere.Inventory, error)
}

// PointStore lists and prunes recovery points; *store.Store implements it.
type PointStore interface {
	Points() ([]*point.RecoveryPoint, error)
	Prune(r store.Retention, source string, dryRun bool) ([]store.PruneDecision, error)
}

// Secrets resolves a policy's guest credentials ID. It may return nil, nil
// for the empty ID.
type Secrets interface {
	GuestCredentials(id string) (*vsphere.GuestCredentials, error)
}

// Options configure a Manager. Backupper, Inventory and Points are
// required; zero limits take their defaults.
type Options struct {
	Backupper Backupper
	Inventory InventorySource
	Points    PointStore
	Secrets   Secrets // optional: without it, policies with guest credentials get a warning
	Log       *slog.Logger

	// Now is the clock (default time.Now) and After waits on it (default
	// time.After). Tests pass a fake clock; the scheduler never sleeps
	// more than a minute at a time, so a changed wall clock is noticed.
	Now   func() time.Time
	After func(d time.Duration) <-chan time.Time

	// PerHost, PerDatastore and Global limit concurrent VM backups
	// (defaults 2, 2 and 8). A VM on several datastores takes a slot on
	// each.
	PerHost      int
	PerDatastore int
	Global       int
	// DiskStreams caps the disks read at once over all backups (default
	// 8).
	DiskStreams int
	// MaxJobs is how many jobs run at once, sharing the limits above
	// (default 4).
	MaxJobs int
	// History is how many finished jobs are kept (default 1000).
	History int
}

func (o *Options) setDefaults() {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.PerHost, 2)
	def(&o.PerDatastore, 2)
	def(&o.Global, 8)
	def(&o.DiskStreams, 8)
	def(&o.MaxJobs, 4)
	def(&o.History, 1000)
}

// Manager owns the policies, the job queue and history, the scheduler and
// the runner. Its methods are safe for concurrent use.
type Manager struct {
	dir string
	opt Options
	log *slog.Logger

	// saveMu serializes writes to the state directory; it is taken before
	// mu, never after.
	saveMu sync.Mutex

	mu          sync.Mutex
	policies    map[string]*Policy
	jobs        map[string]*Job
	sched       map[string]*schedState
	running     map[string]*jobRun
	activeVMs   map[string]activeVM // lower-case instance UUID → who backs it up
	limits      limits
	sinceVerify map[string]int // lower-case UUID → good backups since the last CBT verification
	recovered   []string       // jobs interrupted by a crash, for the start-up sweep
	lastID      time.Time
	started     bool
	closed      bool
	stop        context.CancelFunc

	wg        sync.WaitGroup // runner and scheduler loops
	vmWG      sync.WaitGroup // job preparation and VM backups
	kick      chan struct{}
	wakeSched chan struct{}
	streams   chan struct{} // disk stream semaphore

	subMu      sync.Mutex
	subs       map[int]*subscriber
	nextSub    int
	subsClosed bool
}

type activeVM struct{ job, policy string }

// Open loads (or creates) the state in dir. Jobs that were running when
// the appliance stopped are marked interrupted; queued jobs stay queued.
// Unreadable files are moved aside and logged. Start starts the work.
func Open(dir string, o Options) (*Manager, error) {
	if o.Backupper == nil || o.Inventory == nil || o.Points == nil {
		return nil, errors.New("open job manager: Options need a Backupper, an InventorySource and a PointStore")
	}
	o.setDefaults()
	m := &Manager{
		dir: dir, opt: o, log: o.Log,
		policies: map[string]*Policy{}, jobs: map[string]*Job{}, sched: map[string]*schedState{},
		running: map[string]*jobRun{}, activeVMs: map[string]activeVM{}, sinceVerify: map[string]int{},
		limits:    newLimits(o.PerHost, o.PerDatastore, o.Global),
		kick:      make(chan struct{}, 1),
		wakeSched: make(chan struct{}, 1),
		streams:   make(chan struct{}, o.DiskStreams),
		subs:      map[int]*subscriber{},
	}
	for _, d := range []string{dir, m.path(policiesDir), m.path(jobsDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("open job manager: %w", err)
		}
	}
	if err := m.load(); err != nil {
		return nil, fmt.Errorf("open job manager in %s: %w", dir, err)
	}
	m.recover()
	m.pruneHistory()
	m.countVerifications()
	return m, nil
}

func (m *Manager) path(elem ...string) string {
	return filepath.Join(append([]string{m.dir}, elem...)...)
}

// now reads the clock in UTC without its monotonic reading, so that times
// kept in memory equal those read back from the files.
func (m *Manager) now() time.Time { return m.opt.Now().Round(0).UTC() }

// load reads policies, scheduler state and jobs.
func (m *Manager) load() error {
	err := readDir(m.log, m.path(policiesDir), func(key string, b []byte) error {
		var p Policy
		if err := decodeStrict(b, &p); err != nil {
			return err
		}
		if p.ID != key {
			return fmt.Errorf("the file holds policy %q", p.ID)
		}
		if err := p.Validate(); err != nil {
			// Kept: an administrator fixes it; runs fail with the reason.
			m.log.Error("stored policy is not valid", "policy", p.ID, "err", err)
		}
		p = p.withDefaults()
		m.policies[p.ID] = &p
		return nil
	})
	if err != nil {
		return err
	}
	if b, err := os.ReadFile(m.path(scheduleFile)); err == nil {
		var st map[string]*schedState
		if err := decodeStrict(b, &st); err != nil {
			moveAside(m.log, m.path(scheduleFile), err)
		} else {
			for id, s := range st {
				if s != nil && m.policies[id] != nil {
					m.sched[id] = s
				}
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", scheduleFile, err)
	}
	return readDir(m.log, m.path(jobsDir), func(key string, b []byte) error {
		var j Job
		if err := decodeStrict(b, &j); err != nil {
			return err
		}
		switch {
		case j.ID != key || !validJobID(j.ID):
			return fmt.Errorf("the file holds job %q", j.ID)
		case !j.State.valid():
			return fmt.Errorf("job state %q is unknown", j.State)
		}
		m.jobs[j.ID] = &j
		return nil
	})
}

// recover marks the jobs a crash left running as interrupted.
func (m *Manager) recover() {
	for _, j := range m.sortedJobs() {
		if j.State != JobRunning {
			continue
		}
		last := j.Started
		for _, r := range j.VMs {
			last = latest(last, r.Started, r.Finished)
		}
		last = latest(last, j.Created)
		for i := range j.VMs {
			r := &j.VMs[i]
			switch r.State {
			case VMRunning:
				r.State = VMInterrupted
				r.Error = "the appliance stopped while this VM was being backed up (crash or power loss)"
				r.Reason = "its snapshot, if one was left behind, is removed when the job manager starts"
				r.finishRun(last)
			case VMQueued:
				r.State = VMSkipped
				r.Reason = "not started: the appliance stopped during the job"
				r.Finished = last
			}
		}
		j.State = JobInterrupted
		j.Finished = last
		j.warn("the appliance stopped while this job was running; the job was marked interrupted at the next start")
		j.summarize()
		m.recovered = append(m.recovered, j.ID)
		m.log.Warn("job interrupted by a crash or power loss", "job", j.ID, "policy", j.PolicyID)
		m.persistJob(j.ID)
	}
}

func latest(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if t.After(out) {
			out = t
		}
	}
	return out
}

// countVerifications rebuilds, from the history, how many good backups
// each VM had since its last CBT verification.
func (m *Manager) countVerifications() {
	for _, j := range m.sortedJobs() {
		for _, r := range j.VMs {
			if r.State == VMSucceeded || r.State == VMWarning {
				m.noteBackupLocked(r.UUID, r.VerifyCBT)
			}
		}
	}
}

func (m *Manager) noteBackupLocked(uuid string, verified bool) {
	k := strings.ToLower(uuid)
	if verified {
		m.sinceVerify[k] = 0
	} else {
		m.sinceVerify[k]++
	}
}

// sortedJobs returns the jobs oldest first.
func (m *Manager) sortedJobs() []*Job {
	out := make([]*Job, 0, len(m.jobs))
	for _, j := range m.jobs {
		out = append(out, j)
	}
	slices.SortFunc(out, func(a, b *Job) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// persistJob writes a job's current state; failures are logged (the job
// goes on in memory).
func (m *Manager) persistJob(id string) {
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	if err := m.writeJobLocked(id); err != nil {
		m.log.Error("could not save job state", "job", id, "err", err)
	}
}

// writeJobLocked writes a job; saveMu must be held, mu must not.
func (m *Manager) writeJobLocked(id string) error {
	m.mu.Lock()
	j, ok := m.jobs[id]
	var b []byte
	var err error
	if ok {
		b, err = json.MarshalIndent(j, "", "  ")
	}
	m.mu.Unlock()
	if !ok {
		return nil // pruned meanwhile
	}
	if err != nil {
		return fmt.Errorf("encode job %s: %w", id, err)
	}
	return writeFileAtomic(m.path(jobsDir), id+".json", append(b, '\n'))
}

// saveSchedule writes the scheduler state.
func (m *Manager) saveSchedule() {
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	m.mu.Lock()
	b, err := json.MarshalIndent(m.sched, "", "  ")
	m.mu.Unlock()
	if err == nil {
		err = writeFileAtomic(m.dir, scheduleFile, append(b, '\n'))
	}
	if err != nil {
		m.log.Error("could not save the scheduler state", "err", err)
	}
}

// pruneHistory deletes the oldest finished jobs beyond Options.History.
func (m *Manager) pruneHistory() {
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	m.mu.Lock()
	var done []*Job
	for _, j := range m.sortedJobs() {
		if j.State.Finished() {
			done = append(done, j)
		}
	}
	var drop []string
	if n := len(done) - m.opt.History; n > 0 {
		for _, j := range done[:n] {
			drop = append(drop, j.ID)
			delete(m.jobs, j.ID)
		}
	}
	m.mu.Unlock()
	for _, id := range drop {
		if err := removeFile(m.path(jobsDir), id+".json"); err != nil {
			m.log.Warn("could not delete an old job from the history", "job", id, "err", err)
		}
	}
}

// newJobIDLocked returns a fresh job ID, later than every earlier one.
func (m *Manager) newJobIDLocked(now time.Time) string {
	t := now.UTC().Truncate(time.Microsecond)
	if !t.After(m.lastID) {
		t = m.lastID.Add(time.Microsecond)
	}
	m.lastID = t
	return newJobID(t)
}

// ---- Policies ----

// CreatePolicy validates p, fills in defaults and stores it. Without an ID
// one is made from the name. It returns the stored policy.
func (m *Manager) CreatePolicy(p Policy) (Policy, error) {
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	p = p.withDefaults()
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return Policy{}, ErrClosed
	}
	if p.ID == "" {
		base := slug(p.Name)
		p.ID = base
		for i := 2; m.policies[p.ID] != nil; i++ {
			p.ID = fmt.Sprintf("%s-%d", base, i)
		}
	} else if m.policies[p.ID] != nil {
		m.mu.Unlock()
		return Policy{}, fmt.Errorf("create policy %s: %w", p.ID, ErrExists)
	}
	now := m.now()
	p.Created, p.Updated = now, now
	m.mu.Unlock()
	if err := writeJSON(m.path(policiesDir), p.ID+".json", p); err != nil {
		return Policy{}, fmt.Errorf("create policy %s: %w", p.ID, err)
	}
	m.mu.Lock()
	stored := p
	m.policies[p.ID] = &stored
	m.mu.Unlock()
	m.log.Info("policy created", "policy", p.ID, "name", p.Name)
	m.Wake()
	return p.copy(), nil
}

// UpdatePolicy replaces the stored policy with p's ID. Running jobs keep
// the version they started with; queued ones take the new priority.
func (m *Manager) UpdatePolicy(p Policy) (Policy, error) {
	if p.ID == "" {
		return Policy{}, fmt.Errorf("update policy: %w: the policy has no ID", ErrInvalid)
	}
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	p = p.withDefaults()
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	m.mu.Lock()
	old := m.policies[p.ID]
	if old == nil {
		m.mu.Unlock()
		return Policy{}, fmt.Errorf("update policy %s: %w", p.ID, ErrNotFound)
	}
	p.Created, p.Updated = old.Created, m.now()
	m.mu.Unlock()
	if err := writeJSON(m.path(policiesDir), p.ID+".json", p); err != nil {
		return Policy{}, fmt.Errorf("update policy %s: %w", p.ID, err)
	}
	var queued []string
	m.mu.Lock()
	stored := p
	m.policies[p.ID] = &stored
	for _, j := range m.jobs {
		if j.PolicyID == p.ID && j.State == JobQueued {
			j.Priority, j.PolicyName = p.Priority, p.Name
			queued = append(queued, j.ID)
		}
	}
	m.mu.Unlock()
	for _, id := range queued {
		if err := m.writeJobLocked(id); err != nil {
			m.log.Warn("could not save a queued job", "job", id, "err", err)
		}
	}
	m.log.Info("policy updated", "policy", p.ID, "name", p.Name)
	m.Wake()
	m.kickRunner()
	return p.copy(), nil
}

// DeletePolicy removes a policy. Its queued jobs are canceled; a running
// job finishes. The points it made stay in the store.
func (m *Manager) DeletePolicy(id string) error {
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	m.mu.Lock()
	if m.policies[id] == nil {
		m.mu.Unlock()
		return fmt.Errorf("delete policy %s: %w", id, ErrNotFound)
	}
	m.mu.Unlock()
	if err := removeFile(m.path(policiesDir), id+".json"); err != nil {
		return fmt.Errorf("delete policy %s: %w", id, err)
	}
	var canceled []string
	m.mu.Lock()
	delete(m.policies, id)
	delete(m.sched, id)
	now := m.now()
	for _, j := range m.jobs {
		if j.PolicyID == id && j.State == JobQueued {
			j.State, j.Finished = JobCanceled, now
			j.warn("canceled before it started: the policy was deleted")
			m.emitJobLocked(j)
			canceled = append(canceled, j.ID)
		}
	}
	m.mu.Unlock()
	for _, jid := range canceled {
		if err := m.writeJobLocked(jid); err != nil {
			m.log.Warn("could not save a canceled job", "job", jid, "err", err)
		}
	}
	m.log.Info("policy deleted", "policy", id, "canceled_jobs", len(canceled))
	return nil
}

// Policies returns all policies, by name.
func (m *Manager) Policies() []Policy {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Policy, 0, len(m.policies))
	for _, p := range m.policies {
		out = append(out, p.copy())
	}
	slices.SortFunc(out, func(a, b Policy) int {
		return cmp.Or(strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)), strings.Compare(a.ID, b.ID))
	})
	return out
}

// Policy returns one policy.
func (m *Manager) Policy(id string) (Policy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.policies[id]
	if p == nil {
		return Policy{}, fmt.Errorf("policy %s: %w", id, ErrNotFound)
	}
	return p.copy(), nil
}

func (p Policy) copy() Policy {
	p.Selection = p.Selection.clone()
	return p
}

// ---- Jobs ----

// RunPolicy queues a job for the policy and returns its ID. A policy that
// already has a queued or running job is not queued again (ErrPolicyBusy).
func (m *Manager) RunPolicy(ctx context.Context, policyID string, trigger Trigger) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("run policy %s: %w", policyID, err)
	}
	if !trigger.Valid() {
		return "", fmt.Errorf("run policy %s: unknown trigger %q", policyID, trigger)
	}
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return "", fmt.Errorf("run policy %s: %w", policyID, ErrClosed)
	}
	p := m.policies[policyID]
	if p == nil {
		m.mu.Unlock()
		return "", fmt.Errorf("run policy %s: %w", policyID, ErrNotFound)
	}
	for _, j := range m.jobs {
		if j.PolicyID == policyID && (j.State == JobQueued || j.State == JobRunning) {
			m.mu.Unlock()
			return "", fmt.Errorf("run policy %s: %w: job %s is %s", policyID, ErrPolicyBusy, j.ID, j.State)
		}
	}
	now := m.now()
	j := &Job{
		ID: m.newJobIDLocked(now), PolicyID: p.ID, PolicyName: p.Name, Trigger: trigger,
		State: JobQueued, Priority: p.Priority, Created: now, VMs: []VMRun{},
	}
	b, err := json.MarshalIndent(j, "", "  ")
	m.mu.Unlock()
	if err == nil {
		err = writeFileAtomic(m.path(jobsDir), j.ID+".json", append(b, '\n'))
	}
	if err != nil {
		return "", fmt.Errorf("run policy %s: queue the job: %w", policyID, err)
	}
	m.mu.Lock()
	m.jobs[j.ID] = j
	m.emitJobLocked(j)
	m.mu.Unlock()
	m.log.Info("job queued", "job", j.ID, "policy", p.ID, "trigger", trigger)
	m.kickRunner()
	return j.ID, nil
}

// Cancel cancels a job: a queued job at once, a running one by canceling
// its backups (they stop, remove their snapshots and are marked
// interrupted; VMs not started yet are skipped).
func (m *Manager) Cancel(jobID string) error {
	m.mu.Lock()
	j := m.jobs[jobID]
	switch {
	case j == nil:
		m.mu.Unlock()
		return fmt.Errorf("cancel job %s: %w", jobID, ErrNotFound)
	case j.State == JobQueued:
		j.State, j.Finished = JobCanceled, m.now()
		j.warn("canceled by an administrator before it started")
		m.emitJobLocked(j)
		m.mu.Unlock()
		m.log.Info("queued job canceled", "job", jobID)
		m.persistJob(jobID)
		m.pruneHistory()
		return nil
	case j.State == JobRunning:
		if jr := m.running[jobID]; jr != nil {
			jr.cancel(errCanceled)
		}
		m.mu.Unlock()
		m.log.Info("running job canceled", "job", jobID)
		m.kickRunner()
		return nil
	default:
		st := j.State
		m.mu.Unlock()
		return fmt.Errorf("cancel job %s: %w (%s)", jobID, ErrJobFinished, st)
	}
}

// Jobs returns the jobs that match f, newest first.
func (m *Manager) Jobs(f JobFilter) []Job {
	m.mu.Lock()
	defer m.mu.Unlock()
	all := m.sortedJobs()
	var out []Job
	for i := len(all) - 1; i >= 0; i-- {
		if f.match(all[i]) {
			out = append(out, all[i].clone())
			if f.Limit > 0 && len(out) == f.Limit {
				break
			}
		}
	}
	return out
}

// Job returns one job.
func (m *Manager) Job(id string) (Job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j := m.jobs[id]
	if j == nil {
		return Job{}, fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	return j.clone(), nil
}

// ---- Life cycle ----

// Start starts the runner and the scheduler. First it sweeps leftover
// backup snapshots once (a crash may have left some). They run until ctx
// is done or Close is called.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return ErrClosed
	case m.started:
		return errors.New("job manager already started")
	}
	m.started = true
	runCtx, stop := context.WithCancel(ctx)
	m.stop = stop
	m.wg.Add(2)
	go m.runLoop(runCtx)
	go m.schedLoop(runCtx)
	return nil
}

// Close stops the scheduler and the runner. Running backups are canceled
// and their jobs marked interrupted; Close waits for them to return.
// Queued jobs stay queued for the next start.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	for _, jr := range m.running {
		jr.cancel(errShutdown)
	}
	stop := m.stop
	m.mu.Unlock()
	if stop != nil {
		stop()
	}
	m.wg.Wait()
	m.subMu.Lock()
	for id, s := range m.subs {
		close(s.ch)
		delete(m.subs, id)
	}
	m.subsClosed = true
	m.subMu.Unlock()
	return nil
}

// Wake makes the scheduler look at the clock now rather than at its next
// planned time: after the system clock was changed, or in tests with a
// fake clock.
func (m *Manager) Wake() {
	select {
	case m.wakeSched <- struct{}{}:
	default:
	}
}

func (m *Manager) kickRunner() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}
