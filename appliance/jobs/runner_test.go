package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"coffer.dev/coffer/appliance/jobs/schedule"
	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/store"
)

func TestRunSucceedsAndTotals(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.inv.set(vmOn("b", "h1", "ds1"), vmOn("a", "h1", "ds1"), vsphere.VM{InstanceUUID: "tmpl", Name: "tmpl", Template: true, Folder: "Prod"})
	p := e.policy(Policy{Name: "prod", Selection: Selection{Folders: []string{"Prod"}}})
	e.start()
	j := e.waitJob(e.run(p.ID, TriggerManual))
	if j.State != JobSucceeded {
		t.Fatalf("state %s: %+v", j.State, j)
	}
	if len(j.VMs) != 2 || j.VMs[0].Name != "a" || j.VMs[1].Name != "b" {
		t.Fatalf("VMs not the two non-templates by name: %+v", j.VMs)
	}
	if j.BytesRead != 2000 || j.BytesStored != 800 || j.Trigger != TriggerManual || j.PolicyName != "prod" {
		t.Errorf("totals/fields: %+v", j)
	}
	r := j.VMs[0]
	if r.Result == nil || r.Result.Point == "" || r.BytesRead != 1000 || r.Started.IsZero() || r.Finished.IsZero() {
		t.Errorf("VM run: %+v", r)
	}
	req := e.eng.requests()[0]
	if req.Consistency != vsphere.PreferApplication || req.Labels["policy"] != p.ID || req.Labels["job"] != j.ID || req.Acquire == nil {
		t.Errorf("request: %+v", req)
	}

	// A VM added to the folder later is backed up by the next run.
	e.inv.add(vmOn("c", "h2", "ds2"))
	j = e.waitJob(e.run(p.ID, TriggerManual))
	if len(j.VMs) != 3 {
		t.Fatalf("new VM not included: %+v", j.VMs)
	}

	// Failures and warnings decide the job's state.
	e.eng.mu.Lock()
	e.eng.warn[vmOn("a", "", "").InstanceUUID] = "quiescing failed"
	e.eng.mu.Unlock()
	if j = e.waitJob(e.run(p.ID, TriggerManual)); j.State != JobWarning || countVMs(j, VMWarning) != 1 {
		t.Errorf("with a warning: %s", j.State)
	}
	e.eng.setFail(vmOn("b", "", "").InstanceUUID, "snapshot failed")
	if j = e.waitJob(e.run(p.ID, TriggerManual)); j.State != JobFailed || j.VMs[1].Error != "snapshot failed" {
		t.Errorf("with a failure: %s %+v", j.State, j.VMs[1])
	}

	// Inventory errors fail the job as a whole.
	e.inv.mu.Lock()
	e.inv.err = errors.New("vCenter unreachable")
	e.inv.mu.Unlock()
	if j = e.waitJob(e.run(p.ID, TriggerManual)); j.State != JobFailed || !strings.Contains(j.Error, "vCenter unreachable") {
		t.Errorf("inventory error: %s %q", j.State, j.Error)
	}
}

func TestLimitsDeterministic(t *testing.T) {
	tests := []struct {
		name string
		vms  func(i int) vsphere.VM
		want int
	}{
		{"per host", func(i int) vsphere.VM { return vmOn(fmt.Sprintf("vm%02d", i), "h1", fmt.Sprintf("ds%d", i)) }, 2},
		{"per datastore", func(i int) vsphere.VM { return vmOn(fmt.Sprintf("vm%02d", i), fmt.Sprintf("h%d", i), "shared") }, 2},
		{"per datastore, VM on two", func(i int) vsphere.VM {
			if i == 0 {
				return vmOn("vm00", "h0", "x", "y") // holds a slot on x and on y
			}
			return vmOn(fmt.Sprintf("vm%02d", i), fmt.Sprintf("h%d", i), []string{"x", "y"}[i%2])
		}, 3},
		{"global", func(i int) vsphere.VM {
			return vmOn(fmt.Sprintf("vm%02d", i), fmt.Sprintf("h%d", i), fmt.Sprintf("ds%d", i))
		}, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil, nil)
			var vms []vsphere.VM
			for i := range 12 {
				vms = append(vms, tt.vms(i))
			}
			e.inv.set(vms...)
			e.eng.gate = make(chan struct{})
			p := e.policy(Policy{Name: "all", Selection: Selection{All: true}})
			e.start()
			id := e.run(p.ID, TriggerManual)
			wait(t, "backups to start", func() bool { return e.eng.running() == tt.want })
			time.Sleep(50 * time.Millisecond) // nothing else may start
			if n := e.eng.running(); n != tt.want {
				t.Fatalf("%d backups running, want %d", n, tt.want)
			}
			if n := countVMs(e.job(id), VMRunning); n != tt.want {
				t.Fatalf("%d VMs running in the job, want %d", n, tt.want)
			}
			close(e.eng.gate)
			if j := e.waitJob(id); j.State != JobSucceeded || countVMs(j, VMSucceeded) != 12 {
				t.Fatalf("job %s: %d succeeded", j.State, countVMs(j, VMSucceeded))
			}
		})
	}
}

func TestLimitsStress(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) { o.DiskStreams = 3 })
	var a, b []vsphere.VM
	for i := range 30 {
		vm := vmOn(fmt.Sprintf("vm%02d", i), fmt.Sprintf("host%d", i%5), fmt.Sprintf("ds%d", i%7))
		if i%4 == 0 {
			vm.Datastores = append(vm.Datastores, fmt.Sprintf("ds%d", (i+3)%7))
		}
		if i%2 == 0 {
			vm.Folder = "A"
			a = append(a, vm)
		} else {
			vm.Folder = "B"
			b = append(b, vm)
		}
	}
	// Many hosts and datastores for the global cap.
	for i := range 12 {
		vm := vmOn(fmt.Sprintf("wide%02d", i), fmt.Sprintf("wh%d", i), fmt.Sprintf("wds%d", i))
		vm.Folder = "A"
		a = append(a, vm)
	}
	e.inv.set(append(a, b...)...)
	e.eng.delay = 3 * time.Millisecond
	e.eng.disks = 3
	pa := e.policy(Policy{Name: "a", Selection: Selection{Folders: []string{"A"}}})
	pb := e.policy(Policy{Name: "b", Selection: Selection{Folders: []string{"B"}}})
	e.start()
	ja, jb := e.run(pa.ID, TriggerManual), e.run(pb.ID, TriggerManual)
	for _, id := range []string{ja, jb} {
		if j := e.waitJob(id); j.State != JobSucceeded {
			t.Fatalf("job %s: %s", id, j.State)
		}
	}
	f := e.eng
	f.mu.Lock()
	defer f.mu.Unlock()
	t.Logf("max per host %d, per datastore %d, global %d, streams %d", f.maxHost, f.maxDS, f.maxGlobal, f.maxStreams)
	if f.maxHost > 2 || f.maxDS > 2 || f.maxGlobal > 8 || f.maxStreams > 3 {
		t.Fatalf("limits exceeded: host %d ds %d global %d streams %d", f.maxHost, f.maxDS, f.maxGlobal, f.maxStreams)
	}
	if f.maxGlobal < 2 || f.maxStreams < 2 {
		t.Errorf("no concurrency at all: global %d streams %d", f.maxGlobal, f.maxStreams)
	}
	if len(f.reqs) != 42 {
		t.Errorf("%d backups, want 42", len(f.reqs))
	}
}

func TestAcquireHonorsContext(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) { o.DiskStreams = 1 })
	rel, err := e.m.acquireStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := e.m.acquireStream(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second acquire: %v", err)
	}
	rel()
	rel() // idempotent
	rel2, err := e.m.acquireStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rel2()
}

func TestWindowEndSkipsQueuedVMs(t *testing.T) {
	clock := newFakeClock(time.Date(2026, 3, 3, 5, 58, 0, 0, time.UTC))
	e := newEnv(t, clock, nil)
	e.inv.set(vmOn("a", "h1", "ds1"), vmOn("b", "h1", "ds2"), vmOn("c", "h1", "ds3"), vmOn("d", "h1", "ds4"))
	e.eng.gate = make(chan struct{})
	p := e.policy(Policy{Name: "night", Selection: Selection{All: true}, Window: mustWindow("22:00-06:00")})
	e.start()
	id := e.run(p.ID, TriggerSchedule)
	wait(t, "two backups", func() bool { return e.eng.running() == 2 })
	clock.Advance(3 * time.Minute) // 06:01: the window has closed
	wait(t, "queued VMs skipped", func() bool { return countVMs(e.job(id), VMSkipped) == 2 })
	close(e.eng.gate)
	j := e.waitJob(id)
	if j.State != JobWarning || countVMs(j, VMSucceeded) != 2 {
		t.Fatalf("job %s, %d succeeded", j.State, countVMs(j, VMSucceeded))
	}
	for _, r := range j.VMs {
		if r.State == VMSkipped && !strings.Contains(r.Reason, "backup window ended") {
			t.Errorf("skip reason %q", r.Reason)
		}
	}
	if e.eng.started() != 2 {
		t.Errorf("%d backups started after the window", e.eng.started())
	}

	// A scheduled job that starts outside the window runs nothing; a
	// manual one ignores the window.
	e.eng.setGate(nil)
	j = e.waitJob(e.run(p.ID, TriggerMissed))
	if countVMs(j, VMSkipped) != 4 || !strings.Contains(j.VMs[0].Reason, "outside the backup window") {
		t.Errorf("outside the window: %+v", j.VMs)
	}
	if j = e.waitJob(e.run(p.ID, TriggerManual)); j.State != JobSucceeded {
		t.Errorf("manual run outside the window: %s", j.State)
	}
}

func TestVMBusyInAnotherJobIsSkipped(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.inv.set(vmOn("a", "h1", "ds1"), vmOn("b", "h2", "ds2"))
	e.eng.gate = make(chan struct{})
	p1 := e.policy(Policy{Name: "one", Selection: Selection{Names: []string{"a"}}})
	p2 := e.policy(Policy{Name: "two", Selection: Selection{All: true}})
	e.start()
	j1 := e.run(p1.ID, TriggerManual)
	wait(t, "first backup", func() bool { return e.eng.running() == 1 })
	j2 := e.run(p2.ID, TriggerManual)
	wait(t, "a skipped in the second job", func() bool { return countVMs(e.job(j2), VMSkipped) == 1 })
	close(e.eng.gate)
	j := e.waitJob(j2)
	if j.VMs[0].Name != "a" || j.VMs[0].State != VMSkipped || !strings.Contains(j.VMs[0].Reason, "already being backed up by job "+j1) {
		t.Fatalf("VM a in job 2: %+v", j.VMs[0])
	}
	if j.VMs[1].State != VMSucceeded || j.State != JobWarning {
		t.Fatalf("job 2: %s %+v", j.State, j.VMs[1])
	}
	if e.waitJob(j1).State != JobSucceeded {
		t.Fatal("job 1 failed")
	}
}

func TestRetentionAfterSuccessOnly(t *testing.T) {
	e := newEnv(t, nil, nil)
	good, bad := vmOn("good", "h1", "ds1"), vmOn("bad", "h2", "ds2")
	e.inv.set(good, bad)
	e.eng.fail[bad.InstanceUUID] = "disk read failed"
	ret := store.Retention{Last: 3, Daily: 7}
	p := e.policy(Policy{Name: "p", Selection: Selection{All: true}, Retention: ret, TimeZone: "Europe/Berlin"})
	e.start()
	j := e.waitJob(e.run(p.ID, TriggerManual))
	if j.State != JobFailed {
		t.Fatalf("state %s", j.State)
	}
	calls := e.store.calls()
	if len(calls) != 1 {
		t.Fatalf("%d prunes, want 1: %+v", len(calls), calls)
	}
	c := calls[0]
	if c.source != vsphere.SourceName(good.InstanceUUID) || c.dryRun || c.r.Last != 3 || c.r.Daily != 7 || c.r.Weekly != 0 {
		t.Errorf("prune call %+v", c)
	}
	if c.r.Location == nil || c.r.Location.String() != "Europe/Berlin" {
		t.Errorf("retention periods in %v, want the policy's zone", c.r.Location)
	}

	// Retention errors are job warnings.
	e.eng.setFail(bad.InstanceUUID, "")
	e.store.mu.Lock()
	e.store.pruneErr = errors.New("store is read-only")
	e.store.mu.Unlock()
	j = e.waitJob(e.run(p.ID, TriggerManual))
	if j.State != JobWarning || len(j.Warnings) != 2 || !strings.Contains(j.Warnings[0], "store is read-only") {
		t.Errorf("prune error: %s %q", j.State, j.Warnings)
	}
}

func TestRetentionOfOverlappingPolicies(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.inv.set(vmOn("a", "h1", "ds1"))
	p := e.policy(Policy{Name: "daily", Selection: Selection{All: true}, Retention: store.Retention{Daily: 7}})
	e.policy(Policy{Name: "monthly", Selection: Selection{Names: []string{"a"}}, Retention: store.Retention{Daily: 2, Monthly: 24}})
	e.start()
	e.waitJob(e.run(p.ID, TriggerManual))
	c := e.store.calls()[0]
	if c.r.Daily != 7 || c.r.Monthly != 24 {
		t.Errorf("merged retention %+v", c.r)
	}
}

func TestVerifyEveryNth(t *testing.T) {
	e := newEnv(t, nil, nil)
	vm := vmOn("a", "h1", "ds1")
	e.inv.set(vm)
	p := e.policy(Policy{Name: "p", Selection: Selection{All: true}, VerifyEvery: 3})
	e.start()
	runOnce := func() bool {
		j := e.waitJob(e.run(p.ID, TriggerManual))
		reqs := e.eng.requests()
		if j.VMs[0].VerifyCBT != reqs[len(reqs)-1].VerifyCBT {
			t.Fatalf("job says %v, request %v", j.VMs[0].VerifyCBT, reqs[len(reqs)-1].VerifyCBT)
		}
		return j.VMs[0].VerifyCBT
	}
	var got []bool
	for range 4 {
		got = append(got, runOnce())
	}
	// A failed backup does not count.
	e.eng.setFail(vm.InstanceUUID, "boom")
	got = append(got, runOnce())
	e.eng.setFail(vm.InstanceUUID, "")
	// The count survives a restart: it comes from the history.
	e.reopen()
	e.start()
	got = append(got, runOnce(), runOnce())
	want := []bool{false, false, true, false, false, false, true}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("VerifyCBT sequence %v, want %v", got, want)
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.inv.set(vmOn("a", "h1", "ds1"), vmOn("b", "h1", "ds2"), vmOn("c", "h1", "ds3"))
	p := e.policy(Policy{Name: "p", Selection: Selection{All: true}})

	// Queued (not started): canceled at once.
	id := e.run(p.ID, TriggerManual)
	if _, err := e.m.RunPolicy(context.Background(), p.ID, TriggerManual); !errors.Is(err, ErrPolicyBusy) {
		t.Fatalf("second run while queued: %v", err)
	}
	if err := e.m.Cancel(id); err != nil {
		t.Fatal(err)
	}
	if j := e.job(id); j.State != JobCanceled {
		t.Fatalf("queued job: %s", j.State)
	}
	if err := e.m.Cancel(id); !errors.Is(err, ErrJobFinished) {
		t.Fatalf("cancel twice: %v", err)
	}
	if err := e.m.Cancel("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cancel unknown: %v", err)
	}

	// Running: backups stop, the rest is skipped.
	e.eng.gate = make(chan struct{})
	e.start()
	id = e.run(p.ID, TriggerManual)
	wait(t, "two backups", func() bool { return e.eng.running() == 2 })
	if err := e.m.Cancel(id); err != nil {
		t.Fatal(err)
	}
	j := e.waitJob(id)
	if j.State != JobCanceled || countVMs(j, VMInterrupted) != 2 || countVMs(j, VMSkipped) != 1 {
		t.Fatalf("canceled job: %s %+v", j.State, j.VMs)
	}
	for _, r := range j.VMs {
		if r.State == VMInterrupted && r.Reason != "canceled by an administrator" {
			t.Errorf("reason %q", r.Reason)
		}
	}
}

func TestCloseInterruptsRunningJobs(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.inv.set(vmOn("a", "h1", "ds1"), vmOn("b", "h1", "ds2"), vmOn("c", "h1", "ds3"))
	e.eng.gate = make(chan struct{})
	p := e.policy(Policy{Name: "p", Selection: Selection{All: true}})
	q := e.policy(Policy{Name: "q", Selection: Selection{All: true}})
	e.start()
	id := e.run(p.ID, TriggerManual)
	wait(t, "two backups", func() bool { return e.eng.running() == 2 })
	if err := e.m.Close(); err != nil {
		t.Fatal(err)
	}
	j := e.job(id)
	if j.State != JobInterrupted || countVMs(j, VMInterrupted) != 2 || countVMs(j, VMSkipped) != 1 {
		t.Fatalf("after Close: %s %+v", j.State, j.VMs)
	}
	if _, err := e.m.RunPolicy(context.Background(), q.ID, TriggerManual); !errors.Is(err, ErrClosed) {
		t.Fatalf("run after close: %v", err)
	}
	e.open()
	if j := e.job(id); j.State != JobInterrupted {
		t.Fatalf("after reopen: %s", j.State)
	}
}

func TestSubscribeEvents(t *testing.T) {
	clock := newFakeClock(t0)
	e := newEnv(t, clock, nil)
	e.inv.set(vmOn("a", "h1", "ds1"))
	e.eng.progress = true
	p := e.policy(Policy{Name: "p", Selection: Selection{All: true}})
	ch, cancel := e.m.Subscribe()
	e.start()
	id := e.run(p.ID, TriggerManual)
	e.waitJob(id)
	cancel()
	var jobStates []JobState
	var vmStates []VMState
	var prog []Progress
	for ev := range ch {
		if ev.JobID != id {
			continue
		}
		switch ev.Type {
		case EventJob:
			jobStates = append(jobStates, ev.JobState)
		case EventVM:
			vmStates = append(vmStates, ev.VM.State)
		case EventProgress:
			prog = append(prog, *ev.VM.Progress)
		}
	}
	if fmt.Sprint(jobStates) != "[queued running running succeeded]" {
		t.Errorf("job events %v", jobStates)
	}
	if fmt.Sprint(vmStates) != "[running succeeded]" {
		t.Errorf("VM events %v", vmStates)
	}
	if len(prog) != 2 || prog[1].Read != 500 || prog[1].Percent != 25 {
		t.Errorf("progress events %+v", prog)
	}
}

func TestProgressTracker(t *testing.T) {
	start := t0
	tr := &progressTracker{lastT: start}
	p := tr.update(start.Add(10*time.Second), vsphere.Progress{Disk: "scsi0:0", ToRead: 1000, Read: 100, Disks: 1})
	if p.Percent != 10 || p.Throughput != 10 || p.ETA != 90*time.Second {
		t.Errorf("first update %+v", p)
	}
	p = tr.update(start.Add(20*time.Second), vsphere.Progress{Disk: "scsi0:0", ToRead: 1000, Read: 300, Disks: 1})
	if p.Percent != 30 || p.Throughput <= 10 || p.Throughput >= 20 {
		t.Errorf("second update %+v", p)
	}
	// Two disks, the first half read: the second counts as large.
	tr = &progressTracker{lastT: start}
	p = tr.update(start.Add(time.Second), vsphere.Progress{Disk: "scsi0:0", ToRead: 1000, Read: 500, Disks: 2})
	if p.Percent != 25 {
		t.Errorf("two disks: %+v", p)
	}
	// Never goes back, all done is 100.
	p = tr.update(start.Add(2*time.Second), vsphere.Progress{Disk: "scsi0:1", ToRead: 5000, Read: 1000, Disks: 2, DisksDone: 1})
	if p.Percent != 25 {
		t.Errorf("went back: %+v", p)
	}
	p = tr.update(start.Add(3*time.Second), vsphere.Progress{Disk: "scsi0:1", ToRead: 5000, Read: 5000, Disks: 2, DisksDone: 2})
	if p.Percent != 100 || p.ETA != 0 {
		t.Errorf("done: %+v", p)
	}
}

func TestHooksAndCredentials(t *testing.T) {
	sec := secretsFunc(func(id string) (*vsphere.GuestCredentials, error) {
		if id == "linux" {
			return &vsphere.GuestCredentials{Username: "backup", Password: "pw"}, nil
		}
		return nil, errors.New("no such secret")
	})
	e := newEnv(t, nil, func(o *Options) { o.Secrets = sec })
	e.inv.set(vmOn("a", "h1", "ds1"))
	hooks := vsphere.Hooks{PreFreeze: "sync"}
	p := e.policy(Policy{Name: "p", Selection: Selection{All: true}, Hooks: hooks, GuestCredentials: "linux", Consistency: vsphere.RequireApplication})
	q := e.policy(Policy{Name: "q", Selection: Selection{All: true}, GuestCredentials: "windows"})
	e.start()
	e.waitJob(e.run(p.ID, TriggerManual))
	req := e.eng.requests()[0]
	if req.Guest == nil || req.Guest.Username != "backup" || req.Hooks != hooks || req.Consistency != vsphere.RequireApplication {
		t.Errorf("request %+v", req)
	}
	j := e.waitJob(e.run(q.ID, TriggerManual))
	if j.State != JobWarning || len(j.Warnings) != 1 || !strings.Contains(j.Warnings[0], "guest hooks are skipped") {
		t.Errorf("missing secret: %s %q", j.State, j.Warnings)
	}
}

type secretsFunc func(id string) (*vsphere.GuestCredentials, error)

func (f secretsFunc) GuestCredentials(id string) (*vsphere.GuestCredentials, error) { return f(id) }

func TestQueueOrder(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) { o.MaxJobs = 1 })
	e.inv.set(vmOn("a", "h1", "ds1"))
	low := e.policy(Policy{Name: "low", Selection: Selection{All: true}})
	high := e.policy(Policy{Name: "high", Selection: Selection{All: true}, Priority: 10})
	mid := e.policy(Policy{Name: "mid", Selection: Selection{All: true}, Priority: 5})
	ids := []string{e.run(low.ID, TriggerManual), e.run(high.ID, TriggerManual), e.run(mid.ID, TriggerManual)}
	e.start()
	for _, id := range ids {
		e.waitJob(id)
	}
	started := map[string]time.Time{}
	for _, j := range e.m.Jobs(JobFilter{}) {
		started[j.PolicyName] = j.Started
	}
	if !started["high"].Before(started["mid"]) || !started["mid"].Before(started["low"]) {
		t.Errorf("start order: %v", started)
	}
	if got := e.m.Jobs(JobFilter{PolicyID: mid.ID}); len(got) != 1 || got[0].PolicyID != mid.ID {
		t.Errorf("filter by policy: %+v", got)
	}
	if got := e.m.Jobs(JobFilter{Limit: 2}); len(got) != 2 || got[0].ID != ids[2] {
		t.Errorf("newest first with limit: %+v", got)
	}
	if got := e.m.Jobs(JobFilter{VM: strings.ToLower(vmOn("a", "", "").InstanceUUID), States: []JobState{JobSucceeded}}); len(got) != 3 {
		t.Errorf("filter by VM and state: %d", len(got))
	}
}

func TestScheduleValidInWindowTimeZone(t *testing.T) {
	// Sanity check that a Berlin policy's window is read on Berlin time.
	p := Policy{Schedule: schedule.MustParse("23:30"), Window: mustWindow("23:00-01:00"), TimeZone: "Europe/Berlin", Name: "x", Selection: Selection{All: true}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
}
