package ui

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"coffer.dev/coffer/appliance/app"
	"coffer.dev/coffer/appliance/jobs"
	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/store"
	"coffer.dev/coffer/store/point"
	"coffer.dev/coffer/ui/access"
)

const (
	monGiB = int64(1) << 30
	monTiB = int64(1) << 40

	monPtNew  = point.ID("20261124T070000.000000Z-0000000a") // web01, newest
	monPtOld  = point.ID("20261123T070000.000000Z-0000000b") // web01, locked
	monPtDB   = point.ID("20261122T070000.000000Z-0000000c") // db01, damaged
	monPtGone = point.ID("20261121T070000.000000Z-0000000d") // a VM deleted from vCenter

	monHostile = `<script>alert("pwned")</script>`
)

// monFake is a backend with a realistic appliance behind the pages.
type monFake struct {
	*fakeBackend
	now time.Time

	mu       sync.Mutex
	protErr  error
	canceled []string
	samples  []float64
	gcDry    []bool
	jobs     []jobs.Job
}

func newMonFake(fb *fakeBackend) *monFake {
	now := time.Now()
	f := &monFake{fakeBackend: fb, now: now}
	running := jobs.Job{ID: "J-RUN-1", PolicyID: "nightly", PolicyName: "Nightly", Trigger: jobs.TriggerSchedule, State: jobs.JobRunning,
		Created: now.Add(-11 * time.Minute), Started: now.Add(-10 * time.Minute),
		VMs: []jobs.VMRun{
			{UUID: "4201-aaaa", Name: "web01", State: jobs.VMRunning, Started: now.Add(-9 * time.Minute),
				Progress: &jobs.Progress{Disk: "scsi0:0", Disks: 2, Read: 3 * monGiB, ToRead: 7 * monGiB, Percent: 42.7, Throughput: 100 << 20, ETA: 5 * time.Minute}},
			{UUID: "4201-bbbb", Name: "db01", State: jobs.VMQueued},
		}}
	failed := jobs.Job{ID: "J-FAIL-1", PolicyID: "nightly", PolicyName: "Nightly", Trigger: jobs.TriggerManual, State: jobs.JobFailed,
		Created: now.Add(-5 * time.Hour), Started: now.Add(-5 * time.Hour), Finished: now.Add(-4 * time.Hour), Duration: time.Hour,
		VMs: []jobs.VMRun{{UUID: "4201-bbbb", Name: "db01", State: jobs.VMFailed, Error: "create snapshot: the disk is locked by another host"}}}
	ok := jobs.Job{ID: "J-OK-1", PolicyID: "nightly", PolicyName: "Nightly", Trigger: jobs.TriggerSchedule, State: jobs.JobSucceeded,
		Created: now.Add(-26 * time.Hour), Started: now.Add(-26 * time.Hour), Finished: now.Add(-25 * time.Hour), Duration: time.Hour,
		BytesRead: 3 * monGiB, BytesStored: 512 << 20, Speed: 50 << 20,
		VMs: []jobs.VMRun{{UUID: "4201-aaaa", Name: "web01", Host: "esx01", State: jobs.VMSucceeded, BytesRead: 3 * monGiB, BytesStored: 512 << 20,
			Duration: time.Hour, Speed: 50 << 20,
			Result: &vsphere.Result{Point: monPtNew, Consistency: point.ApplicationConsistent, Recoverability: "verified", SnapshotRemoved: true, Snapshot: "coffer-123",
				Warnings: []string{"guest hook pre-freeze exited 1"},
				Notes:    []string{"changed block tracking switched on for the first backup"},
				Disks: []vsphere.DiskResult{
					{Name: "scsi0:0", Label: "Hard disk 1", Capacity: 40 * monGiB, Method: "incremental", Changed: 2 * monGiB, Read: vsphere.ReadStats{Bytes: 2 * monGiB, Retries: 1}},
					{Name: "scsi0:1", Label: "Hard disk 2", Capacity: 8 * monGiB, Method: "full", Reason: "no change ID from the previous point", Read: vsphere.ReadStats{Bytes: monGiB}},
				}}}}}
	f.jobs = []jobs.Job{running, failed, ok}
	for i := range 6 {
		st := now.Add(-time.Duration(30+24*i) * time.Hour)
		f.jobs = append(f.jobs, jobs.Job{ID: fmt.Sprintf("J-OLD-%d", i), PolicyName: "Weekly", State: jobs.JobSucceeded,
			Created: st, Started: st, Finished: st.Add(20 * time.Minute), Duration: 20 * time.Minute, Speed: float64(40+i) * (1 << 20)})
	}
	return f
}

func (f *monFake) Protection(context.Context) (*jobs.Report, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.protErr != nil {
		return nil, f.protErr
	}
	return &jobs.Report{Generated: f.now, VMs: []jobs.VMProtection{
		{UUID: "4201-cccc", Name: monHostile, Folder: "Lab", Host: "esx02", PowerState: "poweredOff", Policies: []string{}, Unprotected: true},
		{UUID: "4201-bbbb", Name: "db01", Folder: "Production", Host: "esx01", PowerState: "poweredOn", Policies: []string{"Nightly"}, RPO: 24 * time.Hour,
			LastPoint: monPtDB, LastBackup: f.now.Add(-50 * time.Hour), Consistency: point.CrashConsistent, RPOMiss: true},
		{UUID: "4201-aaaa", Name: "web01", Folder: "Production", Host: "esx01", PowerState: "poweredOn", Policies: []string{"Nightly"}, RPO: 24 * time.Hour,
			LastPoint: monPtNew, LastBackup: f.now.Add(-3 * time.Hour), Consistency: point.ApplicationConsistent},
	}, Totals: jobs.ReportTotals{VMs: 3, Protected: 2, Unprotected: 1, RPOMiss: 1}}, nil
}

func (f *monFake) Inventory(context.Context) (*vsphere.Inventory, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.protErr != nil {
		return nil, f.protErr
	}
	return &vsphere.Inventory{VMs: []vsphere.VM{
		{InstanceUUID: "4201-aaaa", Name: "web01", Datacenter: "DC1", Folder: "Production", Host: "esx01", PowerState: "poweredOn", CBT: true,
			Datastores: []string{"ds1"}, Disks: []vsphere.Disk{
				{Controller: "scsi0:0", Label: "Hard disk 1", Capacity: 40 * monGiB, Datastore: "ds1", File: "[ds1] web01/web01.vmdk", Thin: true, Mode: "persistent"},
				{Controller: "scsi0:1", Label: "Hard disk 2", Capacity: 8 * monGiB, Datastore: "ds1", File: "[ds1] web01/web01_1.vmdk", Mode: "independent_persistent"},
				{Controller: "scsi0:2", Label: "Hard disk 3", Capacity: 100 * monGiB, Datastore: "ds1", File: "[ds1] web01/lun.vmdk", Mode: "persistent", RDM: "physical"},
			}},
		{InstanceUUID: "4201-bbbb", Name: "db01", Host: "esx01"},
		{InstanceUUID: "4201-cccc", Name: monHostile, Host: "esx02"},
	}}, nil
}

func (f *monFake) Jobs(jf jobs.JobFilter) []jobs.Job {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []jobs.Job
	for _, j := range f.jobs {
		if len(jf.States) > 0 && !slices.Contains(jf.States, j.State) || !jf.Since.IsZero() && j.Created.Before(jf.Since) ||
			jf.VM != "" && !slices.ContainsFunc(j.VMs, func(r jobs.VMRun) bool { return r.UUID == jf.VM }) {
			continue
		}
		out = append(out, j)
		if jf.Limit > 0 && len(out) == jf.Limit {
			break
		}
	}
	return out
}

func (f *monFake) Job(id string) (jobs.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, j := range f.jobs {
		if j.ID == id {
			return j, nil
		}
	}
	return jobs.Job{}, fmt.Errorf("job %s: %w", id, jobs.ErrNotFound)
}

func (f *monFake) Cancel(id string) error {
	j, err := f.Job(id)
	if err != nil {
		return err
	}
	if j.State.Finished() {
		return fmt.Errorf("cancel job %s: %w (%s)", id, jobs.ErrJobFinished, j.State)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.canceled = append(f.canceled, id)
	return nil
}

func (f *monFake) Points() ([]*point.RecoveryPoint, error) {
	disk := func(name string, inc bool) point.Disk { return point.Disk{Name: name, Incremental: inc} }
	return []*point.RecoveryPoint{
		{ID: monPtOld, Source: "vm:4201-aaaa", Created: f.now.Add(-27 * time.Hour), Consistency: point.CrashConsistent,
			Disks: []point.Disk{disk("scsi0:0", false)}, Stats: point.Stats{Logical: 40 * monGiB, Read: 12 * monGiB, Stored: 5 * monGiB}},
		{ID: monPtNew, Source: "vm:4201-aaaa", Created: f.now.Add(-3 * time.Hour), Consistency: point.ApplicationConsistent,
			Disks: []point.Disk{disk("scsi0:0", true)}, Stats: point.Stats{Logical: 40 * monGiB, Read: 2 * monGiB, Stored: 300 << 20}},
		{ID: monPtDB, Source: "vm:4201-bbbb", Created: f.now.Add(-50 * time.Hour), Consistency: point.CrashConsistent},
		{ID: monPtGone, Source: "vm:4201-dddd", Created: f.now.Add(-80 * time.Hour), Consistency: point.PoweredOff},
	}, nil
}

func (f *monFake) PointLock(id point.ID) (time.Time, error) {
	if id == monPtOld {
		return time.Date(2099, 1, 2, 12, 0, 0, 0, time.Local), nil
	}
	return time.Time{}, nil
}

func (f *monFake) PoolState() (app.Pool, error) {
	return app.Pool{Path: "/srv/coffer-pool", Size: 10 * monTiB, Used: 7 * monTiB, Free: 3 * monTiB,
		Store: store.Stats{Points: 4, Sources: 3, Logical: 12 * monTiB, Data: 9 * monTiB, Unique: 3 * monTiB, Stored: 2 * monTiB,
			Containers: 1234, Chunks: 987654, DedupRatio: 3.2, CompressionRatio: 1.9, TotalRatio: 6}}, nil
}

// CapacityHistory grows 200 GiB a day up to 7 TiB: full in about 15 days.
func (f *monFake) CapacityHistory() ([]app.CapacitySample, error) {
	var out []app.CapacitySample
	for d := 20; d >= 0; d-- {
		out = append(out, app.CapacitySample{Time: f.now.Add(-time.Duration(d) * 24 * time.Hour), Used: 7*monTiB - int64(d)*200*monGiB, Size: 10 * monTiB})
	}
	return out, nil
}

func (f *monFake) VerifyStore(ctx context.Context, sample float64) (*store.VerifyReport, error) {
	f.mu.Lock()
	f.samples = append(f.samples, sample)
	f.mu.Unlock()
	return &store.VerifyReport{Containers: 1234, RegionsChecked: 50, RegionsDamaged: 1, ChunksChecked: 4000, BytesRead: 7 * monGiB,
		Points: []store.PointReport{{ID: monPtNew, Source: "vm:4201-aaaa", OK: true},
			{ID: monPtDB, Source: "vm:4201-bbbb", Disks: []store.DiskReport{{Name: "scsi0:0", Damaged: []store.DamagedRange{{Offset: 1 << 20, Length: 4 << 20, Reason: "chunk hash mismatch"}}}}}},
		Damaged: []point.ID{monPtDB}, Duration: 3 * time.Second}, nil
}

func (f *monFake) CollectGarbage(ctx context.Context, dryRun bool) (store.GCStats, error) {
	f.mu.Lock()
	f.gcDry = append(f.gcDry, dryRun)
	f.mu.Unlock()
	return store.GCStats{Points: 4, Containers: 1234, ContainersDeleted: 7, BytesFreed: 5 * monGiB, Duration: 2 * time.Second}, nil
}

func (f *monFake) calls() (canceled []string, samples []float64, gcDry []bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.canceled), slices.Clone(f.samples), slices.Clone(f.gcDry)
}

// monWorld is a server with the monitor fake and logged-in browsers.
type monWorld struct {
	s      *Server
	f      *monFake
	admin  *browser
	byRole map[access.Role]*browser
}

func newMonWorld(t *testing.T, roles ...access.Role) *monWorld {
	t.Helper()
	s, fb, c := startServer(t)
	w := &monWorld{s: s, f: newMonFake(fb), byRole: map[access.Role]*browser{}}
	s.SetBackend(w.f)
	w.admin = monBrowserLogin(t, s, "admin", "Correct-Horse-7-battery")
	if len(roles) > 0 {
		tok := login(t, s, c)
		for i, r := range roles {
			name := fmt.Sprintf("mon%d", i)
			if code, body := do(t, c, "POST", s.URL()+"/api/v1/users", tok, `{"name":"`+name+`","role":"`+string(r)+`","password":"Correct-Horse-8-battery"}`); code != 201 {
				t.Fatalf("create %s: %d %s", r, code, body)
			}
			w.byRole[r] = monBrowserLogin(t, s, name, "Correct-Horse-8-battery")
		}
	}
	return w
}

func monBrowserLogin(t *testing.T, s *Server, user, pw string) *browser {
	t.Helper()
	b := newBrowser(t, s.URL())
	code, loc, body := b.post("/login", url.Values{"username": {user}, "password": {pw}, "next": {"/tape"}})
	expect(t, "login "+user, code, loc, body, 303, "/tape", "")
	code, _, body = b.get("/tape") // every role but restore-only may; the CSRF token comes along
	if code != 200 && code != 403 || b.csrf == "" {
		t.Fatalf("after login %s: %d, csrf %q", user, code, b.csrf)
	}
	_ = body
	return b
}

// monPage fetches a page, wants the status and checks the CSP rules:
// no style attribute, no script but the layout's.
func monPage(t *testing.T, b *browser, path string, want int, contains ...string) string {
	t.Helper()
	code, loc, body := b.get(path)
	if code != want {
		t.Fatalf("GET %s: %d (→ %s), want %d\n%.3000s", path, code, loc, want, body)
	}
	monCSPClean(t, path, body)
	for _, s := range contains {
		if !strings.Contains(body, s) {
			t.Errorf("GET %s lacks %q", path, s)
		}
	}
	return body
}

var monStyleAttr = regexp.MustCompile(`(?i)\sstyle\s*=`)

func monCSPClean(t *testing.T, what, body string) {
	t.Helper()
	if monStyleAttr.MatchString(body) {
		t.Errorf("%s has a style attribute", what)
	}
	low := strings.ToLower(body)
	if n := strings.Count(low, "<script"); n != 1 || !strings.Contains(body, `<script src="/static/app.js" defer></script>`) {
		t.Errorf("%s has %d script tags, want only the layout's app.js", what, n)
	}
	if strings.Contains(low, " onclick=") || strings.Contains(low, " onload=") || strings.Contains(low, "javascript:") {
		t.Errorf("%s has inline script", what)
	}
}

// monMain is the page's own content, without the layout's header.
func monMain(body string) string {
	i, j := strings.Index(body, `<main id="main"`), strings.Index(body, "</main>")
	if i < 0 || j < i {
		return body
	}
	return body[i:j]
}

func monBefore(t *testing.T, body, a, b string) {
	t.Helper()
	i, j := strings.Index(body, a), strings.Index(body, b)
	if i < 0 || j < 0 || i > j {
		t.Errorf("%q (at %d) should come before %q (at %d)", a, i, b, j)
	}
}

func TestDashboardMonitor(t *testing.T) {
	w := newMonWorld(t)
	body := monPage(t, w.admin, "/", 200,
		"protected VMs", `href="/vms?status=unprotected"`, `href="/vms?status=rpo"`,
		"jobs in the last 24 h", "0 succeeded", "1 failed", "1 running or queued",
		"70 %", "7.0 TiB used, 3.0 TiB free of 10.0 TiB", "3.2:1", "1.9:1", "6.0:1",
		"Forecast: full in 15 days", "growing by 200.0 GiB a day",
		// Alerts, each with the page that explains it.
		`href="/jobs/J-FAIL-1"`, "1 of 1 VMs not backed up (db01: create snapshot: the disk is locked by another host)",
		"db01 misses its RPO of 24.0 h", `href="/vms/4201-bbbb"`,
		"is not protected: no enabled policy selects it", `href="/vms/4201-cccc"`,
		"The storage pool is full in 15 days",
		"has not been verified since the appliance started",
		// Recent jobs with live state.
		`data-live-job="J-RUN-1"`, `href="/jobs/J-OK-1"`)
	// The unprotected tile is red.
	if !regexp.MustCompile(`<div class="tile bad">\s*<div class="value">1</div>\s*<a href="/vms\?status=unprotected">`).MatchString(body) {
		t.Error("the unprotected tile does not stand out")
	}
	if strings.Contains(body, monHostile) || !strings.Contains(body, "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;") {
		t.Error("the hostile VM name is not escaped on the dashboard")
	}

	// The charts: capacity with the pool size and the dashed forecast,
	// job durations with the failed one marked, throughput, sparkline.
	svgs := regexp.MustCompile(`(?s)<svg\b.*?</svg>`).FindAllString(body, -1)
	if len(svgs) != 4 {
		t.Fatalf("%d charts on the dashboard, want 4", len(svgs))
	}
	for i, svg := range svgs {
		dec := xml.NewDecoder(strings.NewReader(svg))
		for {
			_, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("chart %d is not well-formed XML: %v\n%s", i, err, svg)
			}
		}
		if !strings.Contains(svg, `role="img"`) {
			t.Errorf("chart %d has no role", i)
		}
	}
	all := strings.Join(svgs, "\n")
	for _, want := range []string{"Pool capacity", "pool size 10 TiB", "stroke-dasharray", "Duration of the last 8 jobs", "state-failed", "✗ ", "Backup throughput"} {
		if !strings.Contains(all, want) {
			t.Errorf("dashboard charts lack %q", want)
		}
	}

	// After a verify that found damage, the dashboard names the point.
	code, _, _ := w.admin.post("/storage/verify", url.Values{"sample": {"0.05"}})
	if code != 200 {
		t.Fatalf("verify: %d", code)
	}
	monPage(t, w.admin, "/", 200, "Recovery point "+string(monPtDB)+" of vm:4201-bbbb is damaged", `href="/points/`+string(monPtDB)+`"`, "Store last verified")

	// vCenter down: the reason is shown, the rest of the page stays.
	w.f.mu.Lock()
	w.f.protErr = errors.New("vcenter.example.com: connection refused")
	w.f.mu.Unlock()
	body = monPage(t, w.admin, "/", 200, "connection refused", "VM protection unknown", "Forecast: full in 15 days", `href="/jobs/J-FAIL-1"`, "3.2:1")
	if strings.Contains(body, "Nothing needs attention") {
		t.Error("all clear while vCenter is down")
	}
	monPage(t, w.admin, "/vms", 502, "connection refused")
}

func TestVMsMonitor(t *testing.T) {
	w := newMonWorld(t)
	body := monPage(t, w.admin, "/vms", 200, "web01", "db01", "Production", "esx01", "3 of 3 VMs",
		`<label for="vms-q">`, `<label for="vms-status">`, `<th scope="col">Name</th>`,
		"RPO miss", "unprotected", "application-consistent", "crash-consistent", "3 h ago", `href="/points/`+string(monPtNew)+`"`, `href="/vms/4201-aaaa"`)
	if strings.Contains(body, monHostile) || !strings.Contains(body, "&lt;script&gt;") {
		t.Fatal("the hostile VM name is not escaped")
	}
	for _, tc := range []struct {
		query      string
		want, not  []string
		wantStatus int
	}{
		{"?status=unprotected", []string{"&lt;script&gt;", "1 of 3 VMs"}, []string{">web01<", ">db01<"}, 200},
		{"?status=rpo", []string{">db01<"}, []string{">web01<", "&lt;script&gt;alert"}, 200},
		{"?status=protected", []string{">web01<"}, []string{">db01<", "&lt;script&gt;alert"}, 200},
		{"?q=WEB", []string{">web01<", `value="WEB"`}, []string{">db01<"}, 200},
		{"?q=nothing-like-it", []string{"No VM matches the filter"}, []string{">web01<"}, 200},
		{"?status=bogus", []string{"Unknown status", ">web01<"}, nil, 400},
	} {
		body := monMain(monPage(t, w.admin, "/vms"+tc.query, tc.wantStatus))
		for _, s := range tc.want {
			if !strings.Contains(body, s) {
				t.Errorf("/vms%s lacks %q", tc.query, s)
			}
		}
		for _, s := range tc.not {
			if strings.Contains(body, s) {
				t.Errorf("/vms%s shows %q", tc.query, s)
			}
		}
	}
	if body := monPage(t, w.admin, "/vms?status=rpo", 200); !strings.Contains(body, `<option value="rpo" selected>`) {
		t.Error("the status select does not keep the filter")
	}

	// One VM: disks from the inventory, its points newest first.
	body = monPage(t, w.admin, "/vms/4201-aaaa", 200, "web01", "Hard disk 1", "40.0 GiB", "thin", "independent", "physical RDM",
		"physical-mode RDM: vSphere cannot snapshot it", "[ds1] web01/web01.vmdk", `href="/points/`+string(monPtNew)+`"`, "scsi0:0 (incremental)",
		"until 2099-01-02", `href="/jobs/J-OK-1"`, "Nightly")
	monBefore(t, body, string(monPtNew), string(monPtOld))
	if strings.Contains(body, string(monPtDB)) {
		t.Error("another VM's point is listed")
	}
	monPage(t, w.admin, "/vms/4201-dddd", 200, "not in the vCenter inventory", string(monPtGone), "powered off")
	monPage(t, w.admin, "/vms/4201-cccc", 200, "&lt;script&gt;", "No recovery point of this VM yet")
	monPage(t, w.admin, "/vms/no-such-uuid", 404, "no-such-uuid")
}

func TestJobsMonitor(t *testing.T) {
	w := newMonWorld(t)
	body := monPage(t, w.admin, "/jobs", 200,
		`data-live-job="J-RUN-1"`, `data-reload-on-end`, `data-vm="4201-aaaa"`, `data-vm="4201-bbbb"`, `data-field="state"`, `data-field="vm-state"`,
		`<progress class="progress" max="100" value="42.7"`, `<td data-field="pct">42 %</td>`, `<td data-field="speed">100.0 MiB/s</td>`, `<td data-field="eta">5 min</td>`,
		"Cancel job", `<label for="jobs-state">`, "J-FAIL-1", "J-OK-1", "3.0 GiB", "512.0 MiB", "50.0 MiB/s", "1 VMs failed")
	monBefore(t, body, `data-live-job="J-RUN-1"`, "J-OK-1")
	if strings.Count(body, "J-RUN-1") > 6 {
		t.Error("the running job is listed again in the history")
	}
	body = monMain(monPage(t, w.admin, "/jobs?state=failed", 200, "J-FAIL-1", `<option value="failed" selected>`))
	if strings.Contains(body, "J-OK-1") {
		t.Error("the state filter lets a succeeded job through")
	}
	monPage(t, w.admin, "/jobs?state=nonsense", 400, "Unknown job state")

	// The job log of a finished job.
	body = monPage(t, w.admin, "/jobs/J-OK-1", 200, "web01", "succeeded", "application-consistent", "incremental", "full",
		"no change ID from the previous point", "guest hook pre-freeze exited 1", "changed block tracking switched on",
		"40.0 GiB", "3.0 GiB", "512.0 MiB", "50.0 MiB/s", `href="/points/`+string(monPtNew)+`"`, `href="/policies/nightly"`, "verified")
	if strings.Contains(body, "Cancel job") || strings.Contains(body, "data-live-job") {
		t.Error("a finished job offers a cancel or live progress")
	}
	monPage(t, w.admin, "/jobs/J-FAIL-1", 200, "the disk is locked by another host", "failed")
	monPage(t, w.admin, "/jobs/J-RUN-1", 200, `data-live-job="J-RUN-1"`, `data-vm="4201-aaaa"`, "Cancel job", `data-confirm="Cancel job J-RUN-1?`)
	monPage(t, w.admin, "/jobs/no-such-job", 404, "Not found")

	// Cancel: needs the CSRF token, then asks the backend and comes back.
	code, _, _ := w.admin.post("/jobs/J-RUN-1/cancel", url.Values{"csrf_token": {"-"}})
	if canceled, _, _ := w.f.calls(); code != 403 || len(canceled) != 0 {
		t.Fatalf("cancel without CSRF: %d, canceled %v", code, canceled)
	}
	code, loc, body := w.admin.post("/jobs/J-RUN-1/cancel", url.Values{})
	expect(t, "cancel", code, loc, body, 303, "/jobs/J-RUN-1?ok=", "")
	if canceled, _, _ := w.f.calls(); !slices.Equal(canceled, []string{"J-RUN-1"}) {
		t.Fatalf("canceled %v", canceled)
	}
	monPage(t, w.admin, loc, 200, "Cancel requested")
	code, _, body = w.admin.post("/jobs/J-OK-1/cancel", url.Values{})
	expect(t, "cancel a finished job", code, "", body, 409, "", "could not be canceled")
	code, _, _ = w.admin.post("/jobs/no-such-job/cancel", url.Values{})
	if code != 404 {
		t.Errorf("cancel an unknown job: %d", code)
	}
}

func TestStorageMonitor(t *testing.T) {
	w := newMonWorld(t)
	body := monPage(t, w.admin, "/storage", 200, "/srv/coffer-pool", "10.0 TiB", "7.0 TiB (70 %)", "3.0 TiB",
		"3.2:1", "1.9:1", "6.0:1", "1234", "987654", "12.0 TiB", "RAID monitoring arrives with the appliance image",
		"Forecast: full in 15 days", "Pool capacity", "pool size 10 TiB",
		`<label for="verify-sample">`, `value="0.05"`, "Verify a sample", "Verify everything", `<label for="gc-dry">`, "Collect garbage",
		string(monPtOld), "2099-01-02 12:00")
	locks := body[strings.Index(body, `id="storage-locks"`):]
	if strings.Contains(locks, string(monPtNew)) {
		t.Error("an unlocked point is listed as locked")
	}
	body = monPage(t, w.admin, "/storage", 200)
	if strings.Count(body, `name="csrf_token"`) < 4 {
		t.Error("a maintenance form lacks the CSRF field")
	}

	code, _, body := w.admin.post("/storage/verify", url.Values{"sample": {"0.1"}})
	expect(t, "sampled verify", code, "", body, 200, "", "Sampled verify (0.1 of the data)")
	monCSPClean(t, "verify result", body)
	for _, want := range []string{"damage found", "Damaged recovery points", string(monPtDB), "4.0 MiB at offset 1048576 (chunk hash mismatch)", "7.0 GiB"} {
		if !strings.Contains(body, want) {
			t.Errorf("verify report lacks %q", want)
		}
	}
	if !regexp.MustCompile(`<h3 class="bad-text">Damaged recovery points</h3>`).MatchString(body) {
		t.Error("the damaged points are not in red")
	}
	code, _, body = w.admin.post("/storage/verify", url.Values{"full": {"1"}})
	expect(t, "full verify", code, "", body, 200, "", "Full verify")
	for _, bad := range []string{"abc", "0", "1.5", "-1", ""} {
		code, _, body = w.admin.post("/storage/verify", url.Values{"sample": {bad}})
		expect(t, "bad sample "+bad, code, "", body, 422, "", "share of the data to re-read")
	}
	if _, samples, _ := w.f.calls(); !slices.Equal(samples, []float64{0.1, 1}) {
		t.Fatalf("verify samples %v", samples)
	}

	code, _, body = w.admin.post("/storage/gc", url.Values{"dry_run": {"1"}})
	expect(t, "gc dry run", code, "", body, 200, "", "dry run: nothing was deleted")
	if !strings.Contains(body, "Would free") || !strings.Contains(body, "5.0 GiB") {
		t.Error("dry run report lacks the bytes")
	}
	code, _, body = w.admin.post("/storage/gc", url.Values{})
	expect(t, "gc", code, "", body, 200, "", "Freed")
	if _, _, dry := w.f.calls(); !slices.Equal(dry, []bool{true, false}) {
		t.Fatalf("gc dry runs %v", dry)
	}
	if code, _, _ := w.admin.post("/storage/gc", url.Values{"csrf_token": {"-"}}); code != 403 {
		t.Errorf("gc without CSRF: %d", code)
	}
	if _, _, dry := w.f.calls(); len(dry) != 2 {
		t.Error("gc ran without the CSRF token")
	}
}

func TestMonitorRoles(t *testing.T) {
	w := newMonWorld(t, access.Viewer, access.RestoreOnly, access.Operator)
	viewer, restorer, operator := w.byRole[access.Viewer], w.byRole[access.RestoreOnly], w.byRole[access.Operator]

	// A viewer sees everything but no button that changes anything.
	for _, path := range []string{"/", "/vms", "/vms/4201-aaaa", "/jobs", "/jobs/J-RUN-1", "/storage", "/tape", "/replication"} {
		body := monMain(monPage(t, viewer, path, 200))
		for _, btn := range []string{"Cancel job", "Verify a sample", "Verify everything", "Collect garbage", `method="post"`} {
			if strings.Contains(body, btn) {
				t.Errorf("viewer sees %q on %s", btn, path)
			}
		}
	}
	for _, path := range []string{"/jobs/J-RUN-1/cancel", "/storage/verify", "/storage/gc"} {
		code, _, body := viewer.post(path, url.Values{"sample": {"0.05"}})
		expect(t, "viewer POST "+path, code, "", body, 403, "", "does not allow")
	}
	if canceled, samples, dry := w.f.calls(); len(canceled)+len(samples)+len(dry) != 0 {
		t.Fatalf("a viewer changed something: %v %v %v", canceled, samples, dry)
	}
	monPage(t, viewer, "/audit", 403)

	// Restore-only users do not see the monitoring.
	for _, path := range []string{"/", "/vms", "/jobs", "/jobs/J-RUN-1", "/storage", "/audit"} {
		monPage(t, restorer, path, 403, "does not allow")
	}

	// An operator may cancel and maintain, but not read the audit log.
	monPage(t, operator, "/jobs/J-RUN-1", 200, "Cancel job")
	monPage(t, operator, "/storage", 200, "Verify a sample", "Collect garbage")
	monPage(t, operator, "/audit", 403)
	code, loc, body := operator.post("/jobs/J-RUN-1/cancel", url.Values{})
	expect(t, "operator cancel", code, loc, body, 303, "/jobs/J-RUN-1", "")

	// The administrator reads the audit log with its filters.
	body = monPage(t, w.admin, "/audit", 200, `<label for="audit-user">`, `<label for="audit-q">`, `<label for="audit-since">`, `type="date"`,
		"POST /jobs/:id/cancel", "J-RUN-1", "mon2", "operator", "ui")
	if !strings.Contains(body, `class="audit-bad"`) || !strings.Contains(body, "denied: role viewer lacks operate") {
		t.Error("the viewer's denials are not highlighted")
	}
	body = monMain(monPage(t, w.admin, "/audit?user=mon0", 200, "denied"))
	if strings.Contains(body, ">mon2<") {
		t.Error("the user filter lets another user through")
	}
	body = monMain(monPage(t, w.admin, "/audit?q=cancel", 200, "POST /jobs/:id/cancel"))
	if strings.Contains(body, "POST /storage/gc") {
		t.Error("the text filter lets another action through")
	}
	monPage(t, w.admin, "/audit?since="+time.Now().Add(48*time.Hour).Format("2006-01-02"), 200, "No entry matches")
	monPage(t, w.admin, "/audit?since="+time.Now().Add(-48*time.Hour).Format("2006-01-02"), 200, "POST /jobs/:id/cancel")
	monPage(t, w.admin, "/audit?since=yesterday", 400, "not a date")
}

func TestTapeAndReplicationMonitor(t *testing.T) {
	w := newMonWorld(t)
	for _, path := range []string{"/tape", "/replication"} {
		body := monMain(monPage(t, w.admin, path, 200, "Not in this release", "It will:"))
		for _, fake := range []string{"<button", "<input", "<form", "<progress", "<meter"} {
			if strings.Contains(body, fake) {
				t.Errorf("%s has a %s", path, fake)
			}
		}
	}
}
