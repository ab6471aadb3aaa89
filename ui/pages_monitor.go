package ui

import (
	"cmp"
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"coffer.dev/coffer/appliance/app"
	"coffer.dev/coffer/appliance/audit"
	"coffer.dev/coffer/appliance/jobs"
	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/store"
	"coffer.dev/coffer/store/point"
	"coffer.dev/coffer/ui/access"
	"coffer.dev/coffer/ui/chart"
)

// monitorPages registers the pages that show the appliance's state:
// VMs, jobs, storage, audit log, tape and replication.
//
// Every name of this file starts with "mon" (handlers, views, helpers):
// other files of the package are written alongside.
func (s *Server) monitorPages(g *gin.RouterGroup) {
	s.page(g, "GET", "/vms", access.PermView, "/vms", s.monVMsPage)
	s.page(g, "GET", "/vms/:uuid", access.PermView, "/vms", s.monVMPage)
	s.page(g, "GET", "/jobs", access.PermView, "/jobs", s.monJobsPage)
	s.page(g, "GET", "/jobs/:id", access.PermView, "/jobs", s.monJobPage)
	s.page(g, "POST", "/jobs/:id/cancel", access.PermOperate, "/jobs", s.monCancelJob)
	s.page(g, "GET", "/storage", access.PermView, "/storage", s.monStoragePage)
	s.page(g, "POST", "/storage/verify", access.PermOperate, "/storage", s.monVerifySubmit)
	s.page(g, "POST", "/storage/gc", access.PermOperate, "/storage", s.monGCSubmit)
	s.page(g, "GET", "/audit", access.PermAdmin, "/audit", s.monAuditPage)
	s.page(g, "GET", "/tape", access.PermView, "/tape", func(c *gin.Context) {
		s.render(c, 0, "mon-tape", "Tape", nil)
	})
	s.page(g, "GET", "/replication", access.PermView, "/replication", func(c *gin.Context) {
		s.render(c, 0, "mon-replication", "Replication", nil)
	})
}

// ---- Shared pieces ----

// monOption is one <option> of a filter select.
type monOption struct {
	Value, Label string
	Selected     bool
}

func monOptions(current string, pairs ...string) []monOption {
	var out []monOption
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, monOption{Value: pairs[i], Label: pairs[i+1], Selected: pairs[i] == current})
	}
	return out
}

// monBadge is a label with its CSS class.
type monBadge struct{ Label, Class string }

// monConsistency names a point's consistency for people.
func monConsistency(c point.Consistency) monBadge {
	switch c {
	case "":
		return monBadge{}
	case point.ApplicationConsistent:
		return monBadge{"application-consistent", "cons-application"}
	case point.FileSystemConsistent:
		return monBadge{"file-system-consistent", "cons-filesystem"}
	case point.CrashConsistent:
		return monBadge{"crash-consistent", "cons-crash"}
	case point.PoweredOff:
		return monBadge{"powered off", "cons-powered-off"}
	}
	return monBadge{string(c), "cons-unknown"}
}

// The protection status of a VM, as in ?status=.
const (
	monProtected   = "protected"
	monUnprotected = "unprotected"
	monRPOMiss     = "rpo"
)

func monVMStatus(v jobs.VMProtection) string {
	switch {
	case v.Unprotected:
		return monUnprotected
	case v.RPOMiss:
		return monRPOMiss
	}
	return monProtected
}

// monVMRow is one line of the protection report, ready to show.
type monVMRow struct {
	jobs.VMProtection
	Status string
	Badge  monBadge
	Cons   monBadge
	// NoPoint: covered by a policy but without any recovery point yet.
	NoPoint bool
}

// Power names the VM's power state for people.
func (r monVMRow) Power() string { return monPower(r.PowerState) }

func monPower(s string) string {
	switch s {
	case "poweredOn":
		return "on"
	case "poweredOff":
		return "off"
	}
	return s
}

func monVMRowOf(v jobs.VMProtection) monVMRow {
	r := monVMRow{VMProtection: v, Status: monVMStatus(v), Cons: monConsistency(v.Consistency)}
	r.NoPoint = !v.Unprotected && v.LastPoint == ""
	switch r.Status {
	case monUnprotected:
		r.Badge = monBadge{"unprotected", "unprotected"}
	case monRPOMiss:
		r.Badge = monBadge{"RPO miss", "rpo-miss"}
	default:
		if r.NoPoint {
			r.Badge = monBadge{"protected, no point yet", "no-point"}
		} else {
			r.Badge = monBadge{"protected", "ok"}
		}
	}
	return r
}

// monSpeed writes a rate in bytes per second.
func monSpeed(bps float64) string {
	if !(bps > 0) || math.IsInf(bps, 0) {
		return "–"
	}
	return humanBytes(int64(bps)) + "/s"
}

// monRatio writes a store ratio ("3.2:1"); 0 is unknown.
func monRatio(f float64) string {
	if !(f > 0) || math.IsInf(f, 0) {
		return "–"
	}
	return fmt.Sprintf("%.1f:1", f)
}

// monRatios writes the store's deduplication, compression and total
// ratios; the total falls back to logical over stored bytes.
func monRatios(st store.Stats) (dedup, compression, total string) {
	dedup, compression, total = monRatio(st.DedupRatio), monRatio(st.CompressionRatio), monRatio(st.TotalRatio)
	if st.TotalRatio == 0 && st.Stored > 0 && st.Logical > 0 {
		total = monRatio(float64(st.Logical) / float64(st.Stored))
	}
	return dedup, compression, total
}

// monFailedState reports whether a finished job did not protect its VMs.
func monFailedState(st jobs.JobState) bool {
	return st == jobs.JobFailed || st == jobs.JobInterrupted
}

// monLiveVM is a VM of a running job with its latest progress; the
// field names follow what app.js updates.
type monLiveVM struct {
	Key, Name string
	State     jobs.VMState
	Percent   float64
	PctText   string
	Speed     string
	ETA       string
	Disk      string
	Read      int64
}

func monLiveVMOf(r jobs.VMRun) monLiveVM {
	v := monLiveVM{Key: cmp.Or(r.UUID, r.Name), Name: r.Name, State: r.State, Speed: "–", ETA: "–", Read: r.BytesRead}
	if r.State.Finished() {
		v.Percent = 100
	}
	if p := r.Progress; p != nil {
		v.Percent = math.Max(0, math.Min(100, p.Percent))
		v.Speed = monSpeed(p.Throughput)
		if p.ETA > 0 {
			v.ETA = humanDuration(p.ETA)
		}
		if p.Disks > 0 {
			v.Disk = fmt.Sprintf("%s (disk %d of %d)", p.Disk, min(p.DisksDone+1, p.Disks), p.Disks)
		}
		v.Read = max(v.Read, p.Read)
	}
	if r.State.Finished() && r.Speed > 0 {
		v.Speed = monSpeed(r.Speed)
	}
	v.PctText = fmt.Sprintf("%.0f %%", math.Floor(v.Percent))
	return v
}

// monJob is a job with the figures its rows show.
type monJob struct {
	jobs.Job
	Unfinished bool
	Elapsed    time.Duration // Duration, or the time since it started
	SpeedText  string
	Done       int // VMs finished
	Failed     int // VMs failed or interrupted
	Live       []monLiveVM
}

func monJobOf(j jobs.Job, now time.Time) monJob {
	m := monJob{Job: j, Unfinished: !j.State.Finished(), Elapsed: j.Duration, SpeedText: monSpeed(j.Speed)}
	if m.Unfinished && !j.Started.IsZero() {
		m.Elapsed = now.Sub(j.Started)
	}
	for _, r := range j.VMs {
		if r.State.Finished() {
			m.Done++
		}
		if r.State == jobs.VMFailed || r.State == jobs.VMInterrupted {
			m.Failed++
		}
		if m.Unfinished {
			m.Live = append(m.Live, monLiveVMOf(r))
		}
	}
	return m
}

// monCapacity is the pool's usage chart with its forecast.
type monCapacity struct {
	Chart    template.HTML
	Forecast string // "full in 10 days (30 Dec 2024)", "not filling up"
	// Soon: full within 30 days (or now).
	Soon    bool
	Samples int
	// GrowthPerDay is the fitted growth, "" when not growing.
	GrowthPerDay string
}

// monCapacityOf draws used bytes over time with the pool size as the
// reference line and the forecast dashed.
func monCapacityOf(id string, hist []app.CapacitySample, size int64, now time.Time) monCapacity {
	pts := make([]chart.Point, 0, len(hist))
	for _, x := range hist {
		pts = append(pts, chart.Point{X: x.Time, Y: float64(x.Used)})
		if size <= 0 && x.Size > 0 {
			size = x.Size
		}
	}
	f := chart.Forecast(pts, float64(size), now)
	series := []chart.Series{{Name: "used", Points: pts}}
	if len(f.Projection.Points) > 0 {
		series = append(series, f.Projection)
	}
	opts := chart.LineOptions{
		ID:       id,
		Title:    "Pool capacity: used space over time",
		Series:   series,
		Y:        chart.Axis{Label: "Used", Unit: chart.Bytes},
		Now:      now,
		Location: time.Local,
	}
	if size > 0 {
		opts.Reference = &chart.Reference{Label: "pool size", Value: float64(size)}
	}
	out := monCapacity{Chart: chart.TimeLine(opts), Forecast: f.String(), Samples: len(pts)}
	if len(pts) < 2 {
		out.Forecast = "not enough history for a forecast yet"
	}
	out.Soon = !f.Never && f.DaysLeft < 30
	if f.Slope > 0 {
		out.GrowthPerDay = humanBytes(int64(f.Slope))
	}
	return out
}

// monVerifyResult is a store verification for the page (and the
// dashboard's alerts).
type monVerifyResult struct {
	*store.VerifyReport
	Sample float64
	Full   bool
	At     time.Time
	// Bad are the points with damage, with their disks and ranges.
	Bad []store.PointReport
}

// monLastVerifyResult is the server's latest verify run since it
// started (the dashboard names its damaged points), or nil.
func (s *Server) monLastVerifyResult() *monVerifyResult { return s.lastVerify.Load() }

// ---- VMs ----

type monVMsView struct {
	Problem   string
	Notes     []string
	Rows      []monVMRow
	Total     int
	Status, Q string
	Options   []monOption
	Generated time.Time
}

func (s *Server) monVMsPage(c *gin.Context) {
	v := monVMsView{Status: c.Query("status"), Q: strings.TrimSpace(c.Query("q"))}
	code := 0
	switch v.Status {
	case "", monProtected, monUnprotected, monRPOMiss:
	default:
		pageError(c, "Unknown status %q: choose protected, unprotected or rpo.", v.Status)
		v.Status, code = "", http.StatusBadRequest
	}
	v.Options = monOptions(v.Status, "", "All VMs", monProtected, "Protected, RPO met", monUnprotected, "Unprotected", monRPOMiss, "RPO missed")
	rep, err := s.be().Protection(c.Request.Context())
	if err != nil {
		v.Problem = "The protection report is not available: " + err.Error()
		s.render(c, http.StatusBadGateway, "mon-vms", "VMs", v)
		return
	}
	v.Notes, v.Total, v.Generated = rep.Notes, len(rep.VMs), rep.Generated
	q := strings.ToLower(v.Q)
	for _, vm := range rep.VMs {
		if v.Status != "" && monVMStatus(vm) != v.Status {
			continue
		}
		if q != "" && !strings.Contains(strings.ToLower(vm.Name), q) {
			continue
		}
		v.Rows = append(v.Rows, monVMRowOf(vm))
	}
	s.render(c, code, "mon-vms", "VMs", v)
}

type monDiskRow struct {
	vsphere.Disk
	Independent bool
	Skip        string
}

type monPointRow struct {
	ID          point.ID
	Created     time.Time
	Cons        monBadge
	Disks       []string
	Stats       point.Stats
	Verdict     string
	Findings    []string
	LockedUntil time.Time
}

type monVMView struct {
	UUID          string
	Name          string
	Power         string
	VM            *vsphere.VM
	InvProblem    string
	Line          *monVMRow
	Disks         []monDiskRow
	Points        []monPointRow
	PointsProblem string
	Jobs          []monJob
}

func (s *Server) monVMPage(c *gin.Context) {
	uuid := c.Param("uuid")
	v := monVMView{UUID: uuid}
	ctx := c.Request.Context()
	inv, invErr := s.be().Inventory(ctx)
	if invErr != nil {
		v.InvProblem = "vCenter could not be read: " + invErr.Error()
	} else if inv != nil {
		for i := range inv.VMs {
			if strings.EqualFold(inv.VMs[i].InstanceUUID, uuid) {
				v.VM = &inv.VMs[i]
				break
			}
		}
		if v.VM == nil {
			v.InvProblem = "This VM is not in the vCenter inventory (any more): only its recovery points are left."
		}
	}
	if v.VM != nil {
		v.Name, v.Power = v.VM.Name, monPower(v.VM.PowerState)
		for _, d := range v.VM.Disks {
			v.Disks = append(v.Disks, monDiskRow{Disk: d, Independent: strings.HasPrefix(d.Mode, "independent"), Skip: d.SkipReason()})
		}
		if rep, err := s.be().Protection(ctx); err == nil {
			for _, line := range rep.VMs {
				if strings.EqualFold(line.UUID, uuid) {
					r := monVMRowOf(line)
					v.Line = &r
					break
				}
			}
		}
	}
	pts, err := s.be().Points()
	if err != nil {
		v.PointsProblem = "The recovery points could not be listed: " + err.Error()
	}
	now := time.Now()
	for _, p := range pts {
		if p == nil || !strings.EqualFold(p.Source, "vm:"+uuid) {
			continue
		}
		row := monPointRow{ID: p.ID, Created: p.Created, Cons: monConsistency(p.Consistency), Stats: p.Stats}
		for _, d := range p.Disks {
			kind := "full"
			if d.Incremental {
				kind = "incremental"
			}
			row.Disks = append(row.Disks, d.Name+" ("+kind+")")
		}
		if h, err := s.be().Catalogs().Header(p.ID); err == nil {
			row.Verdict, row.Findings = string(h.Verdict), h.Findings
			if v.Name == "" {
				v.Name = h.Name
			}
		}
		if t, err := s.be().PointLock(p.ID); err == nil && t.After(now) {
			row.LockedUntil = t
		}
		v.Points = append(v.Points, row)
	}
	slices.SortFunc(v.Points, func(a, b monPointRow) int { return b.Created.Compare(a.Created) })
	for _, j := range s.be().Jobs(jobs.JobFilter{VM: uuid, Limit: 10}) {
		v.Jobs = append(v.Jobs, monJobOf(j, now))
	}
	if v.VM == nil && len(v.Points) == 0 && len(v.Jobs) == 0 {
		if invErr != nil {
			// vCenter is down: the VM may well exist.
			s.render(c, http.StatusBadGateway, "error", "VM unavailable", v.InvProblem)
			return
		}
		s.render(c, http.StatusNotFound, "error", "Not found", strings.TrimSpace("There is no VM with the instance UUID "+uuid+", and no recovery point of one. "+v.PointsProblem))
		return
	}
	v.Name = cmp.Or(v.Name, uuid)
	s.render(c, 0, "mon-vm", "VM "+v.Name, v)
}

// ---- Jobs ----

type monJobsView struct {
	Running []monJob
	History []monJob
	State   string
	Options []monOption
}

func (s *Server) monJobsPage(c *gin.Context) {
	v := monJobsView{State: c.Query("state")}
	code := 0
	states := []jobs.JobState{jobs.JobSucceeded, jobs.JobWarning, jobs.JobFailed, jobs.JobInterrupted, jobs.JobCanceled, jobs.JobRunning, jobs.JobQueued}
	if v.State != "" && !slices.Contains(states, jobs.JobState(v.State)) {
		pageError(c, "Unknown job state %q.", v.State)
		v.State, code = "", http.StatusBadRequest
	}
	pairs := []string{"", "All finished jobs"}
	for _, st := range states {
		pairs = append(pairs, string(st), string(st))
	}
	v.Options = monOptions(v.State, pairs...)
	now := time.Now()
	for _, j := range s.be().Jobs(jobs.JobFilter{States: []jobs.JobState{jobs.JobRunning, jobs.JobQueued}}) {
		v.Running = append(v.Running, monJobOf(j, now))
	}
	// Running first, then the queue by its order (oldest first).
	slices.SortStableFunc(v.Running, func(a, b monJob) int {
		if (a.State == jobs.JobRunning) != (b.State == jobs.JobRunning) {
			if a.State == jobs.JobRunning {
				return -1
			}
			return 1
		}
		return a.Created.Compare(b.Created)
	})
	f := jobs.JobFilter{Limit: 100}
	if v.State != "" {
		f.States = []jobs.JobState{jobs.JobState(v.State)}
	}
	for _, j := range s.be().Jobs(f) {
		if v.State == "" && !j.State.Finished() {
			continue // shown above
		}
		v.History = append(v.History, monJobOf(j, now))
	}
	s.render(c, code, "mon-jobs", "Jobs", v)
}

// monVMResult is one VM's part of a job: its log for the administrator.
type monVMResult struct {
	jobs.VMRun
	Live  monLiveVM
	Cons  monBadge
	Speed string
	// Disks, Warnings and Notes come from the backup's result.
	Disks    []vsphere.DiskResult
	Warnings []string
	Notes    []string
}

type monJobView struct {
	monJob
	VMs []monVMResult
}

func (s *Server) monJobPage(c *gin.Context) {
	j, err := s.be().Job(c.Param("id"))
	if err != nil {
		s.render(c, http.StatusNotFound, "error", "Not found", "There is no job "+c.Param("id")+": "+err.Error())
		return
	}
	s.monRenderJob(c, 0, j)
}

func (s *Server) monRenderJob(c *gin.Context, code int, j jobs.Job) {
	v := monJobView{monJob: monJobOf(j, time.Now())}
	for _, r := range j.VMs {
		x := monVMResult{VMRun: r, Live: monLiveVMOf(r), Speed: monSpeed(r.Speed)}
		if res := r.Result; res != nil {
			x.Cons = monConsistency(res.Consistency)
			x.Disks, x.Warnings, x.Notes = res.Disks, res.Warnings, res.Notes
		}
		v.VMs = append(v.VMs, x)
	}
	s.render(c, code, "mon-job", "Job "+j.ID, v)
}

func (s *Server) monCancelJob(c *gin.Context) {
	id := c.Param("id")
	if _, err := s.be().Job(id); err != nil {
		s.render(c, http.StatusNotFound, "error", "Not found", "There is no job "+id+": "+err.Error())
		return
	}
	if err := s.be().Cancel(id); err != nil {
		j, jerr := s.be().Job(id)
		if jerr != nil {
			s.render(c, http.StatusNotFound, "error", "Not found", "There is no job "+id+".")
			return
		}
		_ = c.Error(err)
		pageError(c, "The job could not be canceled: %v", err)
		s.monRenderJob(c, http.StatusConflict, j)
		return
	}
	redirectOK(c, "/jobs/"+url.PathEscape(id), "Cancel requested: the job stops its running VM backups and removes their snapshots.")
}

// ---- Storage ----

type monLock struct {
	ID      point.ID
	Source  string
	Created time.Time
	Until   time.Time
}

type monStorageView struct {
	Pool           app.Pool
	PoolProblem    string
	HavePool       bool
	UsedPct        string
	MeterHigh      int64
	Dedup          string
	Compression    string
	Total          string
	Capacity       monCapacity
	HistoryProblem string
	Locks          []monLock
	LockProblem    string
	Sample         string
	Verify         *monVerifyResult
	GC             *store.GCStats
	GCDryRun       bool
}

// monDefaultSample is the share of the data a sampled verify re-reads.
const monDefaultSample = "0.05"

func (s *Server) monStorageView() monStorageView {
	v := monStorageView{Sample: monDefaultSample}
	p, err := s.be().PoolState()
	v.Pool = p
	v.HavePool = p.Path != "" || p.Size > 0 || p.Store.Points > 0
	if err != nil {
		v.PoolProblem = "The pool's state could not be read completely: " + err.Error()
	}
	if p.Size > 0 {
		v.UsedPct = fmt.Sprintf("%.0f %%", float64(p.Used)/float64(p.Size)*100)
		v.MeterHigh = p.Size / 100 * 85
	}
	v.Dedup, v.Compression, v.Total = monRatios(p.Store)
	hist, err := s.be().CapacityHistory()
	if err != nil {
		v.HistoryProblem = "The usage history could not be read: " + err.Error()
	}
	v.Capacity = monCapacityOf("storage-capacity", hist, p.Size, time.Now())
	pts, err := s.be().Points()
	if err != nil {
		v.LockProblem = "The recovery points could not be listed: " + err.Error()
	}
	now := time.Now()
	var lockErrs int
	for _, pt := range pts {
		if pt == nil {
			continue
		}
		until, err := s.be().PointLock(pt.ID)
		if err != nil {
			lockErrs++
			continue
		}
		if until.After(now) {
			v.Locks = append(v.Locks, monLock{ID: pt.ID, Source: pt.Source, Created: pt.Created, Until: until})
		}
	}
	if lockErrs > 0 && v.LockProblem == "" {
		v.LockProblem = fmt.Sprintf("The retention lock of %d points could not be read.", lockErrs)
	}
	slices.SortFunc(v.Locks, func(a, b monLock) int {
		return cmp.Or(a.Until.Compare(b.Until), strings.Compare(string(a.ID), string(b.ID)))
	})
	return v
}

func (s *Server) monStoragePage(c *gin.Context) {
	s.render(c, 0, "mon-storage", "Storage", s.monStorageView())
}

func (s *Server) monVerifySubmit(c *gin.Context) {
	full := c.PostForm("full") != ""
	sample := 1.0
	raw := strings.TrimSpace(c.PostForm("sample"))
	if !full {
		f, err := strconv.ParseFloat(strings.TrimSuffix(raw, "%"), 64)
		if err == nil && strings.HasSuffix(raw, "%") {
			f /= 100
		}
		if err != nil || !(f > 0 && f <= 1) {
			v := s.monStorageView()
			v.Sample = raw
			pageError(c, "The sample is the share of the data to re-read: a number above 0 and at most 1 (0.05 re-reads 5 %%). %q is not.", raw)
			s.render(c, http.StatusUnprocessableEntity, "mon-storage", "Storage", v)
			return
		}
		sample = f
	}
	if full {
		c.Set(ctxDetail, "full verify")
	} else {
		c.Set(ctxDetail, fmt.Sprintf("sampled verify (%g)", sample))
	}
	rep, err := s.be().VerifyStore(c.Request.Context(), sample)
	if err != nil || rep == nil {
		if err == nil {
			err = errors.New("no report")
		}
		_ = c.Error(err)
		v := s.monStorageView()
		pageError(c, "The verification did not complete: %v", err)
		s.render(c, http.StatusInternalServerError, "mon-storage", "Storage", v)
		return
	}
	res := &monVerifyResult{VerifyReport: rep, Sample: sample, Full: full || sample >= 1, At: time.Now()}
	for _, pr := range rep.Points {
		if !pr.OK {
			res.Bad = append(res.Bad, pr)
		}
	}
	// Damaged points named only in Damaged (no per-point report).
	for _, id := range rep.Damaged {
		if !slices.ContainsFunc(res.Bad, func(pr store.PointReport) bool { return pr.ID == id }) {
			res.Bad = append(res.Bad, store.PointReport{ID: id})
		}
	}
	s.lastVerify.Store(res)
	v := s.monStorageView()
	v.Verify = res
	if !full {
		v.Sample = raw
	}
	s.render(c, 0, "mon-storage", "Storage", v)
}

func (s *Server) monGCSubmit(c *gin.Context) {
	dry := c.PostForm("dry_run") != ""
	if dry {
		c.Set(ctxDetail, "dry run")
	}
	st, err := s.be().CollectGarbage(c.Request.Context(), dry)
	if err != nil {
		_ = c.Error(err)
		v := s.monStorageView()
		code := http.StatusInternalServerError
		if errors.Is(err, store.ErrGCUnsafe) {
			code = http.StatusConflict
			pageError(c, "Garbage collection refused to run: some points or maps are unreadable, and deleting anything could destroy data. Run a full verify first. (%v)", err)
		} else {
			pageError(c, "Garbage collection failed: %v", err)
		}
		s.render(c, code, "mon-storage", "Storage", v)
		return
	}
	v := s.monStorageView()
	v.GC, v.GCDryRun = &st, dry
	s.render(c, 0, "mon-storage", "Storage", v)
}

// ---- Audit log ----

type monAuditRow struct {
	audit.Entry
	Bad bool
}

type monAuditView struct {
	User, Q, Since string
	Rows           []monAuditRow
	Limit          int
	Truncated      bool
}

// monAuditLimit is how many entries the page shows at most.
const monAuditLimit = 500

func (s *Server) monAuditPage(c *gin.Context) {
	v := monAuditView{User: strings.TrimSpace(c.Query("user")), Q: strings.TrimSpace(c.Query("q")), Since: strings.TrimSpace(c.Query("since")), Limit: monAuditLimit}
	f := audit.Filter{User: v.User, Search: v.Q, Limit: monAuditLimit}
	code := 0
	if v.Since != "" {
		t, err := time.ParseInLocation("2006-01-02", v.Since, time.Local)
		if err != nil {
			pageError(c, "The date %q is not a date like 2026-11-23.", v.Since)
			code = http.StatusBadRequest
		} else {
			f.Since = t
		}
	}
	if code == 0 {
		es, err := s.Audit.Entries(f)
		if err != nil {
			pageError(c, "The audit log could not be read: %v", err)
			code = http.StatusInternalServerError
		}
		for _, e := range es {
			o := strings.ToLower(e.Outcome)
			v.Rows = append(v.Rows, monAuditRow{Entry: e, Bad: strings.HasPrefix(o, "denied") || strings.HasPrefix(o, "failed")})
		}
		v.Truncated = len(es) >= monAuditLimit
	}
	s.render(c, code, "mon-audit", "Audit log", v)
}
