package jobs

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"coffer.dev/coffer/appliance/jobs/schedule"
	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/store/point"
)

func TestPersistenceAcrossReopen(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) { o.History = 3 })
	e.inv.set(vmOn("a", "h1", "ds1"))
	p := e.policy(Policy{
		Name: "nightly", Enabled: true, Selection: Selection{Folders: []string{"Prod"}, Exclude: Criteria{Names: []string{"tmp-*"}}},
		Schedule: schedule.MustParse("Mon..Fri 22:00"), Window: mustWindow("22:00-06:00"), TimeZone: "Europe/Berlin", Priority: 3,
	})
	q := e.policy(Policy{Name: "manual", Selection: Selection{All: true}})
	e.start()
	var ids []string
	for range 5 {
		id := e.run(q.ID, TriggerManual)
		e.waitJob(id)
		ids = append(ids, id)
	}
	// The in-memory history shrinks first; the files of the dropped jobs
	// go just after, so wait for both.
	wait(t, "history pruning", func() bool {
		if len(e.m.Jobs(JobFilter{})) != 3 {
			return false
		}
		for _, id := range ids[:2] {
			if _, err := os.Stat(filepath.Join(e.dir, "jobs", id+".json")); !errors.Is(err, os.ErrNotExist) {
				return false
			}
		}
		return true
	})
	before := e.m.Jobs(JobFilter{})
	if len(before) != 3 || before[0].ID != ids[4] || before[2].ID != ids[2] {
		t.Fatalf("history not pruned to the newest 3: %d jobs", len(before))
	}
	for _, id := range ids[:2] {
		if _, err := os.Stat(filepath.Join(e.dir, "jobs", id+".json")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pruned job file %s: %v", id, err)
		}
	}
	e.reopen()
	got, err := e.m.Policy(p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, p) {
		t.Errorf("policy after reopen:\n%+v\nwant\n%+v", got, p)
	}
	if len(e.m.Policies()) != 2 {
		t.Errorf("policies after reopen: %+v", e.m.Policies())
	}
	after := e.m.Jobs(JobFilter{})
	if len(after) != 3 {
		t.Fatalf("%d jobs after reopen", len(after))
	}
	for i := range after {
		a, b := after[i], before[i]
		if a.ID != b.ID || a.State != JobSucceeded || len(a.VMs) != 1 || a.VMs[0].Result == nil ||
			a.VMs[0].Result.Point != b.VMs[0].Result.Point || !a.Finished.Equal(b.Finished) || a.BytesRead != b.BytesRead {
			t.Errorf("job %d after reopen:\n%+v\nbefore\n%+v", i, a, b)
		}
	}
	// Deleted policies stay deleted.
	if err := e.m.DeletePolicy(q.ID); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	if _, err := e.m.Policy(q.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted policy after reopen: %v", err)
	}
	// No temporary files are left.
	for _, d := range []string{e.dir, filepath.Join(e.dir, "jobs"), filepath.Join(e.dir, "policies")} {
		entries, _ := os.ReadDir(d)
		for _, en := range entries {
			if strings.Contains(en.Name(), tmpMarker) {
				t.Errorf("temporary file left: %s", en.Name())
			}
		}
	}
}

func writeJob(t *testing.T, dir string, j Job) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "jobs"), 0o700); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "jobs", j.ID+".json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCrashRecovery(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.inv.set(vmOn("a", "h1", "ds1"), vmOn("b", "h2", "ds2"))
	p := e.policy(Policy{Name: "p", Selection: Selection{All: true}})
	q := e.policy(Policy{Name: "q", Selection: Selection{All: true}})
	if err := e.m.Close(); err != nil {
		t.Fatal(err)
	}
	// What a crash leaves: a running job (a running, b queued) and a
	// queued one.
	started := time.Now().Add(-time.Hour).UTC()
	running := Job{
		ID: newJobID(started), PolicyID: p.ID, PolicyName: "p", Trigger: TriggerSchedule, State: JobRunning,
		Created: started, Started: started,
		VMs: []VMRun{
			{UUID: vmOn("a", "", "").InstanceUUID, Name: "a", State: VMRunning, Started: started.Add(time.Minute)},
			{UUID: vmOn("b", "", "").InstanceUUID, Name: "b", State: VMQueued},
		},
	}
	queued := Job{ID: newJobID(started.Add(time.Second)), PolicyID: q.ID, Trigger: TriggerManual, State: JobQueued, Created: started.Add(time.Second), VMs: []VMRun{}}
	writeJob(t, e.dir, running)
	writeJob(t, e.dir, queued)
	e.eng.sweepErr = errors.New("vCenter unreachable")
	e.eng.swept = []vsphere.SweptSnapshot{{VM: "a", VMUUID: strings.ToLower(vmOn("a", "", "").InstanceUUID), Name: "coffer-backup", Removed: true}}

	e.open()
	j := e.job(running.ID)
	if j.State != JobInterrupted || j.VMs[0].State != VMInterrupted || j.VMs[1].State != VMSkipped {
		t.Fatalf("after Open: %s %+v", j.State, j.VMs)
	}
	if !strings.Contains(j.VMs[0].Error, "appliance stopped") || !j.Finished.Equal(started.Add(time.Minute)) {
		t.Errorf("interrupted VM: %+v, job finished %v", j.VMs[0], j.Finished)
	}
	if e.job(queued.ID).State != JobQueued {
		t.Fatal("queued job did not stay queued")
	}
	e.start()
	if j := e.waitJob(queued.ID); j.State != JobSucceeded {
		t.Fatalf("queued job after restart: %s", j.State)
	}
	wait(t, "sweep", func() bool {
		e.eng.mu.Lock()
		defer e.eng.mu.Unlock()
		return len(e.eng.sweeps) == 1
	})
	if e.eng.sweeps[0] != "" {
		t.Errorf("sweep of %q, want all VMs", e.eng.sweeps[0])
	}
	wait(t, "sweep notes", func() bool { return len(e.job(running.ID).Warnings) == 3 })
	w := e.job(running.ID).Warnings
	if !strings.Contains(w[1], "vCenter unreachable") || !strings.Contains(w[2], `"coffer-backup" of VM a removed`) {
		t.Errorf("warnings %q", w)
	}
	// The interrupted job's file says so too.
	if s := readFile(t, filepath.Join(e.dir, "jobs", running.ID+".json")); !strings.Contains(s, `"state": "interrupted"`) {
		t.Errorf("job file: %s", s)
	}
}

func TestCorruptFilesMovedAside(t *testing.T) {
	e := newEnv(t, nil, nil)
	p := e.policy(Policy{Name: "p", Selection: Selection{All: true}})
	if err := e.m.Close(); err != nil {
		t.Fatal(err)
	}
	jobs := filepath.Join(e.dir, "jobs")
	id := newJobID(time.Now())
	bad := filepath.Join(jobs, id+".json")
	must(t, os.WriteFile(bad, []byte(`{"id": "`+id+`", "state": "runn`), 0o600))
	wrongID := filepath.Join(jobs, newJobID(time.Now().Add(time.Second))+".json")
	must(t, os.WriteFile(wrongID, []byte(`{"id": "x", "state": "queued"}`), 0o600))
	badState := newJobID(time.Now().Add(2 * time.Second))
	must(t, os.WriteFile(filepath.Join(jobs, badState+".json"), []byte(`{"id": "`+badState+`", "state": "exploded"}`), 0o600))
	must(t, os.WriteFile(filepath.Join(e.dir, "policies", "broken.json"), []byte("\x00\x01"), 0o600))
	must(t, os.WriteFile(filepath.Join(jobs, ".x.json.tmp-123"), []byte("half"), 0o600))
	must(t, os.WriteFile(filepath.Join(e.dir, "schedule.json"), []byte("{"), 0o600))

	e.open()
	for _, f := range []string{bad, wrongID, filepath.Join(jobs, badState+".json"), filepath.Join(e.dir, "policies", "broken.json"), filepath.Join(e.dir, "schedule.json")} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there: %v", f, err)
		}
		if _, err := os.Stat(f + ".corrupt"); err != nil {
			t.Errorf("%s not moved aside: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(jobs, ".x.json.tmp-123")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file not removed: %v", err)
	}
	if len(e.m.Jobs(JobFilter{})) != 0 {
		t.Errorf("jobs loaded from corrupt files")
	}
	if _, err := e.m.Policy(p.ID); err != nil {
		t.Errorf("good policy lost: %v", err)
	}
	// A second start does not trip over the .corrupt files.
	e.reopen()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestScheduler(t *testing.T) {
	clock := newFakeClock(t0) // Monday 21:00
	e := newEnv(t, clock, nil)
	e.inv.set(vmOn("a", "h1", "ds1"))
	p := e.policy(Policy{Name: "nightly", Enabled: true, Selection: Selection{All: true}, Schedule: schedule.MustParse("22:00")})
	off := e.policy(Policy{Name: "off", Enabled: false, Selection: Selection{All: true}, Schedule: schedule.MustParse("22:00")})
	e.start()
	jobsOf := func(id string) []Job { return e.m.Jobs(JobFilter{PolicyID: id}) }

	time.Sleep(20 * time.Millisecond)
	if n := len(jobsOf(p.ID)); n != 0 {
		t.Fatalf("%d jobs before the first instant", n)
	}
	clock.Set(t0.Add(time.Hour)) // 22:00
	e.m.Wake()
	wait(t, "the scheduled job", func() bool { return len(jobsOf(p.ID)) == 1 })
	j := e.waitJob(jobsOf(p.ID)[0].ID)
	if j.Trigger != TriggerSchedule || j.State != JobSucceeded || !j.Created.Equal(t0.Add(time.Hour)) {
		t.Fatalf("scheduled job: %+v", j)
	}
	if len(jobsOf(off.ID)) != 0 {
		t.Fatal("disabled policy was scheduled")
	}

	// A job still running at the next instant is not queued again.
	gate := make(chan struct{})
	e.eng.setGate(gate)
	clock.Set(t0.Add(25 * time.Hour)) // Tuesday 22:00
	e.m.Wake()
	wait(t, "Tuesday's job", func() bool { return len(jobsOf(p.ID)) == 2 && e.eng.running() == 1 })
	clock.Set(t0.Add(49 * time.Hour)) // Wednesday 22:00, Tuesday's job still runs
	e.m.Wake()
	time.Sleep(50 * time.Millisecond)
	e.m.Wake()
	time.Sleep(50 * time.Millisecond)
	if n := len(jobsOf(p.ID)); n != 2 {
		t.Fatalf("%d jobs: queued twice while running", n)
	}
	close(gate)
	e.eng.setGate(nil)
	e.waitJob(jobsOf(p.ID)[0].ID)

	// Downtime from Wednesday 22:30 to Friday 12:00: one missed run.
	clock.Set(t0.Add(49*time.Hour + 30*time.Minute))
	e.reopen()
	clock.Set(t0.Add(87 * time.Hour)) // Friday 12:00
	e.start()
	wait(t, "the missed run", func() bool { return len(jobsOf(p.ID)) == 3 })
	e.waitJob(jobsOf(p.ID)[0].ID)
	for range 3 {
		e.m.Wake()
		time.Sleep(20 * time.Millisecond)
	}
	js := jobsOf(p.ID)
	if len(js) != 3 || js[0].Trigger != TriggerMissed {
		t.Fatalf("after downtime: %d jobs, newest %s", len(js), js[0].Trigger)
	}
	// A restart right after does not queue it again.
	e.reopen()
	e.start()
	e.m.Wake()
	time.Sleep(50 * time.Millisecond)
	if n := len(jobsOf(p.ID)); n != 3 {
		t.Fatalf("missed run queued again after a restart: %d jobs", n)
	}
	// And the schedule goes on.
	clock.Set(t0.Add(97 * time.Hour)) // Friday 22:00
	e.m.Wake()
	wait(t, "Friday's job", func() bool { return len(jobsOf(p.ID)) == 4 })
	if j := jobsOf(p.ID)[0]; j.Trigger != TriggerSchedule {
		t.Errorf("Friday's job trigger %s", j.Trigger)
	}
}

func TestSchedulerWindowAndTimeZone(t *testing.T) {
	// Berlin is UTC+1 in March 2026 (before the last Sunday).
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	start := time.Date(2026, 3, 2, 12, 0, 0, 0, berlin) // Monday noon
	clock := newFakeClock(start)
	e := newEnv(t, clock, nil)
	e.inv.set(vmOn("a", "h1", "ds1"))
	p := e.policy(Policy{
		Name: "night", Enabled: true, Selection: Selection{All: true}, TimeZone: "Europe/Berlin",
		Schedule: schedule.MustParse("23:00"), Window: mustWindow("22:00-06:00"),
	})
	e.start()
	jobsOf := func() []Job { return e.m.Jobs(JobFilter{PolicyID: p.ID}) }

	// 23:00 Berlin is 22:00 UTC.
	clock.Set(time.Date(2026, 3, 2, 22, 0, 0, 0, time.UTC))
	e.m.Wake()
	wait(t, "the 23:00 job", func() bool { return len(jobsOf()) == 1 })
	e.waitJob(jobsOf()[0].ID)

	// Down from Tuesday 01:00 to Wednesday 12:00 (Tuesday 23:00 missed):
	// the missed run waits for the window.
	clock.Set(time.Date(2026, 3, 3, 1, 0, 0, 0, berlin))
	e.reopen()
	clock.Set(time.Date(2026, 3, 4, 12, 0, 0, 0, berlin))
	e.start()
	e.m.Wake()
	time.Sleep(50 * time.Millisecond)
	if n := len(jobsOf()); n != 1 {
		t.Fatalf("missed run queued outside the window: %d jobs", n)
	}
	clock.Set(time.Date(2026, 3, 4, 22, 0, 0, 0, berlin)) // the window opens
	e.m.Wake()
	wait(t, "the missed run", func() bool { return len(jobsOf()) == 2 })
	if j := e.waitJob(jobsOf()[0].ID); j.Trigger != TriggerMissed || j.State != JobSucceeded {
		t.Fatalf("missed run: %s %s", j.Trigger, j.State)
	}
	clock.Set(time.Date(2026, 3, 4, 23, 0, 0, 0, berlin))
	e.m.Wake()
	wait(t, "the 23:00 job", func() bool { return len(jobsOf()) == 3 })
	if j := jobsOf()[0]; j.Trigger != TriggerSchedule {
		t.Errorf("trigger %s", j.Trigger)
	}
}

func TestSchedulerUsesAfter(t *testing.T) {
	// Without Wake: the scheduler's own timer (the fake After) fires.
	clock := newFakeClock(t0)
	e := newEnv(t, clock, nil)
	e.inv.set(vmOn("a", "h1", "ds1"))
	p := e.policy(Policy{Name: "hourly", Enabled: true, Selection: Selection{All: true}, Schedule: schedule.MustParse("hourly")})
	e.start()
	wait(t, "the scheduler to wait", func() bool {
		clock.mu.Lock()
		defer clock.mu.Unlock()
		return len(clock.waiters) > 0
	})
	clock.Advance(time.Hour)
	wait(t, "the hourly job", func() bool { return len(e.m.Jobs(JobFilter{PolicyID: p.ID})) == 1 })
}

func TestProtectionReport(t *testing.T) {
	clock := newFakeClock(t0)
	e := newEnv(t, clock, nil)
	vm := func(name, folder string) vsphere.VM {
		v := vmOn(name, "h1", "ds1")
		v.Folder = folder
		return v
	}
	ok, old, none, uncovered, young := vm("ok", "Prod"), vm("old", "Prod"), vm("none", "Prod"), vm("uncovered", "Test"), vm("young", "New")
	tmpl := vm("tmpl", "Prod")
	tmpl.Template = true
	e.inv.set(ok, old, none, uncovered, young, tmpl)
	e.policy(Policy{Name: "prod", Enabled: true, Selection: Selection{Folders: []string{"Prod"}}, RPO: 24 * time.Hour})
	e.policy(Policy{Name: "prod-daily", Enabled: true, Selection: Selection{Folders: []string{"Prod"}}, Schedule: schedule.MustParse("daily")})
	e.policy(Policy{Name: "disabled", Enabled: false, Selection: Selection{Folders: []string{"Test"}}})
	now := t0.Add(72 * time.Hour)
	clock.Set(now.Add(-time.Hour))
	e.policy(Policy{Name: "new", Enabled: true, Selection: Selection{Folders: []string{"New"}}, RPO: 24 * time.Hour})
	clock.Set(now)
	pt := func(v vsphere.VM, at time.Time, c point.Consistency) *point.RecoveryPoint {
		return &point.RecoveryPoint{ID: point.NewID(at), Source: vsphere.SourceName(v.InstanceUUID), Created: at, Consistency: c}
	}
	e.store.points = []*point.RecoveryPoint{
		pt(ok, now.Add(-48*time.Hour), point.CrashConsistent),
		pt(ok, now.Add(-2*time.Hour), point.ApplicationConsistent),
		pt(old, now.Add(-30*time.Hour), point.CrashConsistent),
	}
	rep, err := e.m.Protection(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]VMProtection{}
	for _, l := range rep.VMs {
		lines[l.Name] = l
	}
	if _, ok := lines["tmpl"]; ok || len(rep.VMs) != 5 {
		t.Fatalf("report lines: %+v", rep.VMs)
	}
	l := lines["ok"]
	if l.Unprotected || l.RPOMiss || l.Consistency != point.ApplicationConsistent || !l.LastBackup.Equal(now.Add(-2*time.Hour)) ||
		l.RPO != 24*time.Hour || !reflect.DeepEqual(l.Policies, []string{"prod", "prod-daily"}) {
		t.Errorf("ok: %+v", l)
	}
	if l := lines["old"]; !l.RPOMiss || l.Unprotected {
		t.Errorf("old: %+v", l)
	}
	if l := lines["none"]; !l.RPOMiss || l.LastPoint != "" {
		t.Errorf("none: %+v", l)
	}
	if l := lines["uncovered"]; !l.Unprotected || l.RPOMiss || len(l.Policies) != 0 {
		t.Errorf("uncovered: %+v", l)
	}
	if l := lines["young"]; l.RPOMiss || l.Unprotected {
		t.Errorf("young (policy newer than its RPO): %+v", l)
	}
	want := ReportTotals{VMs: 5, Protected: 4, Unprotected: 1, RPOMiss: 2, NoPoint: 2}
	if rep.Totals != want {
		t.Errorf("totals %+v, want %+v", rep.Totals, want)
	}
}
