package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/store"
	"coffer.dev/coffer/store/point"
)

// The real types fit the interfaces.
var (
	_ Backupper       = (*vsphere.Engine)(nil)
	_ InventorySource = (*vsphere.Client)(nil)
	_ PointStore      = (*store.Store)(nil)
)

// t0 is a Monday evening.
var t0 = time.Date(2026, 3, 2, 21, 0, 0, 0, time.UTC)

// fakeClock is a settable clock whose After channels fire when it is
// advanced past them.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{now: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	return ch
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(t) {
			w.ch <- t
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

func (c *fakeClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// fakeInventory serves a settable list of VMs.
type fakeInventory struct {
	mu  sync.Mutex
	vms []vsphere.VM
	err error
}

func (f *fakeInventory) Inventory(ctx context.Context) (*vsphere.Inventory, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return &vsphere.Inventory{VMs: slices.Clone(f.vms)}, nil
}

func (f *fakeInventory) set(vms ...vsphere.VM) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vms = vms
}

func (f *fakeInventory) add(vms ...vsphere.VM) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vms = append(f.vms, vms...)
}

func (f *fakeInventory) find(uuid string) vsphere.VM {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, vm := range f.vms {
		if vm.InstanceUUID == uuid {
			return vm
		}
	}
	return vsphere.VM{InstanceUUID: uuid}
}

// fakeStore records prunes and serves points.
type fakeStore struct {
	mu       sync.Mutex
	points   []*point.RecoveryPoint
	prunes   []pruneCall
	pruneErr error
}

type pruneCall struct {
	r      store.Retention
	source string
	dryRun bool
}

func (s *fakeStore) Points() ([]*point.RecoveryPoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.points), nil
}

func (s *fakeStore) Prune(r store.Retention, source string, dryRun bool) ([]store.PruneDecision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prunes = append(s.prunes, pruneCall{r, source, dryRun})
	if s.pruneErr != nil {
		return nil, s.pruneErr
	}
	return []store.PruneDecision{{ID: "x", Source: source, Keep: true}}, nil
}

func (s *fakeStore) calls() []pruneCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.prunes)
}

// fakeEngine is a Backupper that records concurrency.
type fakeEngine struct {
	inv *fakeInventory

	mu    sync.Mutex
	gate  chan struct{} // when set, backups wait for a token (or its close)
	delay time.Duration // each backup takes this long
	disks int           // disk streams per backup, each through Acquire
	fail  map[string]string
	warn  map[string]string
	reqs  []vsphere.BackupRequest

	host, ds                  map[string]int
	global                    int
	maxHost, maxDS, maxGlobal int
	streams, maxStreams       int
	sweeps                    []string
	sweepErr                  error
	swept                     []vsphere.SweptSnapshot
	startedN                  int
	progress                  bool
}

func newFakeEngine(inv *fakeInventory) *fakeEngine {
	return &fakeEngine{inv: inv, fail: map[string]string{}, warn: map[string]string{}, host: map[string]int{}, ds: map[string]int{}}
}

func (f *fakeEngine) BackupVM(ctx context.Context, req vsphere.BackupRequest) (*vsphere.Result, error) {
	vm := f.inv.find(req.InstanceUUID)
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.startedN++
	f.global++
	f.maxGlobal = max(f.maxGlobal, f.global)
	f.host[vm.Host]++
	f.maxHost = max(f.maxHost, f.host[vm.Host])
	for _, d := range vm.Datastores {
		f.ds[d]++
		f.maxDS = max(f.maxDS, f.ds[d])
	}
	gate, delay, disks, progress := f.gate, f.delay, f.disks, f.progress
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.global--
		f.host[vm.Host]--
		for _, d := range vm.Datastores {
			f.ds[d]--
		}
		f.mu.Unlock()
	}()
	res := &vsphere.Result{VM: vsphere.VM{InstanceUUID: vm.InstanceUUID, Name: vm.Name}}
	if progress && req.Progress != nil {
		req.Progress(vsphere.Progress{VM: vm.Name, Disk: "scsi0:0", ToRead: 1000, Read: 0, Disks: 2})
		req.Progress(vsphere.Progress{VM: vm.Name, Disk: "scsi0:0", ToRead: 1000, Read: 500, Disks: 2})
	}
	var wg sync.WaitGroup
	errs := make(chan error, disks)
	for range disks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			release, err := req.Acquire(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer release()
			f.mu.Lock()
			f.streams++
			f.maxStreams = max(f.maxStreams, f.streams)
			f.mu.Unlock()
			time.Sleep(time.Millisecond)
			f.mu.Lock()
			f.streams--
			f.mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return res, err
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return res, fmt.Errorf("back up %s: %w", vm.Name, ctx.Err())
		}
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return res, fmt.Errorf("back up %s: %w", vm.Name, ctx.Err())
		}
	}
	f.mu.Lock()
	msg, w := f.fail[vm.InstanceUUID], f.warn[vm.InstanceUUID]
	f.mu.Unlock()
	if msg != "" {
		return res, errors.New(msg)
	}
	if w != "" {
		res.Warnings = append(res.Warnings, w)
	}
	res.Point = point.NewID(time.Now())
	res.Consistency = point.CrashConsistent
	res.Read, res.Stored = 1000, 400
	return res, nil
}

func (f *fakeEngine) SweepSnapshots(ctx context.Context, vmUUID string) ([]vsphere.SweptSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sweeps = append(f.sweeps, vmUUID)
	return f.swept, f.sweepErr
}

func (f *fakeEngine) setFail(uuid, msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if msg == "" {
		delete(f.fail, uuid)
	} else {
		f.fail[uuid] = msg
	}
}

func (f *fakeEngine) setGate(g chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gate = g
}

func (f *fakeEngine) requests() []vsphere.BackupRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

func (f *fakeEngine) running() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.global
}

func (f *fakeEngine) started() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.startedN
}

// vmOn makes a VM named name on host and datastores, in folder "Prod".
func vmOn(name, host string, ds ...string) vsphere.VM {
	return vsphere.VM{InstanceUUID: "4200ABCD-" + name, Name: name, Host: host, Datastores: ds, Folder: "Prod", Datacenter: "DC1", PowerState: "poweredOn"}
}

// env is a manager with fakes.
type env struct {
	t     *testing.T
	dir   string
	inv   *fakeInventory
	eng   *fakeEngine
	store *fakeStore
	clock *fakeClock
	opt   Options
	m     *Manager
}

func newEnv(t *testing.T, clock *fakeClock, tweak func(*Options)) *env {
	t.Helper()
	inv := &fakeInventory{}
	e := &env{t: t, dir: t.TempDir(), inv: inv, eng: newFakeEngine(inv), store: &fakeStore{}, clock: clock}
	e.opt = Options{Backupper: e.eng, Inventory: inv, Points: e.store, Log: testLogger(t)}
	if clock != nil {
		e.opt.Now, e.opt.After = clock.Now, clock.After
	}
	if tweak != nil {
		tweak(&e.opt)
	}
	e.open()
	return e
}

func (e *env) open() {
	e.t.Helper()
	m, err := Open(e.dir, e.opt)
	if err != nil {
		e.t.Fatal(err)
	}
	e.m = m
	e.t.Cleanup(func() { _ = m.Close() })
}

func (e *env) start() {
	e.t.Helper()
	if err := e.m.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) reopen() {
	e.t.Helper()
	if err := e.m.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

func (e *env) policy(p Policy) Policy {
	e.t.Helper()
	if p.Name == "" {
		p.Name = "test"
	}
	out, err := e.m.CreatePolicy(p)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) run(policyID string, trig Trigger) string {
	e.t.Helper()
	id, err := e.m.RunPolicy(context.Background(), policyID, trig)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// wait polls cond until it holds or 10 s pass.
func wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitJob waits until the job is finished and returns it.
func (e *env) waitJob(id string) Job {
	e.t.Helper()
	var j Job
	wait(e.t, "job "+id+" to finish", func() bool {
		var err error
		j, err = e.m.Job(id)
		if err != nil {
			e.t.Fatal(err)
		}
		return j.State.Finished()
	})
	return j
}

func (e *env) job(id string) Job {
	e.t.Helper()
	j, err := e.m.Job(id)
	if err != nil {
		e.t.Fatal(err)
	}
	return j
}

func countVMs(j Job, st VMState) int {
	n := 0
	for _, r := range j.VMs {
		if r.State == st {
			n++
		}
	}
	return n
}

// testLogger logs to the test output when -v is given.
func testLogger(t *testing.T) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
