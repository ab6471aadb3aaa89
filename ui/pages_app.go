package ui

import (
	"fmt"
	"html/template"
	"net/url"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"coffer.dev/coffer/appliance/catalog"
	"coffer.dev/coffer/appliance/jobs"
	"coffer.dev/coffer/ui/access"
	"coffer.dev/coffer/ui/chart"
)

// appPages registers the management pages.
func (s *Server) appPages(g *gin.RouterGroup) {
	s.page(g, "GET", "/", access.PermView, "/", s.dashboardPage)
	s.monitorPages(g)
	s.managePages(g)
}

// dashboardJobs counts the jobs of the last 24 hours.
type dashboardJobs struct {
	Total, Succeeded, Warning, Failed, Canceled, Running int
}

// dashboardAlert is one thing that needs a look, with the page that
// explains it. Level is "bad" or "warn".
type dashboardAlert struct {
	Level, Text, Href, Link string
}

// dashboardView is the dashboard's data.
type dashboardView struct {
	// Problem says why the protection report is missing (vCenter down);
	// the rest of the page is shown regardless.
	Problem string
	Report  *jobs.Report
	// Gaps counts covered VMs without any recovery point yet.
	Gaps   int
	Jobs24 dashboardJobs
	// The pool.
	PoolProblem string
	HavePool    bool
	Size, Used  int64
	Free        int64
	MeterHigh   int64 // where the use meter turns amber
	UsedPct     string
	Dedup       string
	Compression string
	Total       string
	Capacity    monCapacity
	Sparkline   template.HTML
	// Charts of the recent jobs; empty without finished jobs.
	Durations  template.HTML
	Throughput template.HTML
	Alerts     []dashboardAlert
	Jobs       []monJob
	// Verified is when the store was last verified by this server
	// (zero: not since it started).
	Verified time.Time
}

// dashboardListed is how many VMs an alert kind names one by one before
// it sums the rest up.
const dashboardListed = 5

func (s *Server) dashboardPage(c *gin.Context) {
	now := time.Now()
	v := dashboardView{}
	rep, err := s.be().Protection(c.Request.Context())
	if err != nil {
		v.Problem = "The protection report is not available, so VM coverage and RPO misses are unknown: " + err.Error()
		v.Alerts = append(v.Alerts, dashboardAlert{Level: "bad", Text: "vCenter could not be read: " + err.Error(), Href: "/vms", Link: "VMs"})
	}
	v.Report = rep

	// Jobs of the last 24 hours.
	for _, j := range s.be().Jobs(jobs.JobFilter{Since: now.Add(-24 * time.Hour)}) {
		v.Jobs24.Total++
		switch {
		case j.State == jobs.JobSucceeded:
			v.Jobs24.Succeeded++
		case j.State == jobs.JobWarning:
			v.Jobs24.Warning++
		case monFailedState(j.State):
			v.Jobs24.Failed++
			what := fmt.Sprintf("Job %s of %s %s", j.ID, j.PolicyName, j.State)
			if !j.Finished.IsZero() {
				what += " at " + humanTime(j.Finished)
			}
			if j.Error != "" {
				what += ": " + j.Error
			} else if m := monJobOf(j, now); m.Failed > 0 {
				what += fmt.Sprintf(": %d of %d VMs not backed up", m.Failed, len(j.VMs))
				for _, r := range j.VMs {
					if r.Error != "" {
						what += " (" + r.Name + ": " + r.Error + ")"
						break
					}
				}
			}
			v.Alerts = append(v.Alerts, dashboardAlert{Level: "bad", Text: what, Href: "/jobs/" + url.PathEscape(j.ID), Link: "job log"})
		case j.State == jobs.JobCanceled:
			v.Jobs24.Canceled++
		default:
			v.Jobs24.Running++
		}
	}

	if rep != nil {
		s.dashboardVMAlerts(&v, rep, now)
	}
	s.dashboardPool(&v, now)
	if vr := s.monLastVerifyResult(); vr != nil {
		v.Verified = vr.At
		for _, pr := range vr.Bad {
			text := fmt.Sprintf("Recovery point %s", pr.ID)
			if pr.Source != "" {
				text += " of " + pr.Source
			}
			text += " is damaged (verify of " + humanTime(vr.At) + ")"
			if pr.Error != "" {
				text += ": " + pr.Error
			}
			v.Alerts = append(v.Alerts, dashboardAlert{Level: "bad", Text: text, Href: "/points/" + url.PathEscape(string(pr.ID)), Link: "point"})
		}
		if n := len(vr.ContainersDamaged); n > 0 {
			v.Alerts = append(v.Alerts, dashboardAlert{Level: "bad", Text: fmt.Sprintf("%d containers of the store are damaged (verify of %s)", n, humanTime(vr.At)), Href: "/storage", Link: "storage"})
		}
	}

	// Recent jobs and their charts.
	recent := s.be().Jobs(jobs.JobFilter{Limit: 100})
	for i, j := range recent {
		if i == 20 {
			break
		}
		v.Jobs = append(v.Jobs, monJobOf(j, now))
	}
	v.Durations, v.Throughput = dashboardJobCharts(recent)
	s.render(c, 0, "dashboard", "Dashboard", v)
}

// dashboardVMAlerts lists unprotected VMs, RPO misses, coverage gaps and
// newest points that failed their recoverability check.
func (s *Server) dashboardVMAlerts(v *dashboardView, rep *jobs.Report, now time.Time) {
	var unprotected, rpo, gaps []jobs.VMProtection
	for _, vm := range rep.VMs {
		switch {
		case vm.Unprotected:
			unprotected = append(unprotected, vm)
		case vm.RPOMiss:
			rpo = append(rpo, vm)
		case vm.LastPoint == "":
			gaps = append(gaps, vm)
		}
		if vm.LastPoint == "" {
			if !vm.Unprotected {
				v.Gaps++
			}
			continue
		}
		if h, err := s.be().Catalogs().Header(vm.LastPoint); err == nil && h.Verdict == catalog.Failed {
			text := "The newest point of " + vm.Name + " failed its recoverability check"
			if len(h.Findings) > 0 {
				text += ": " + h.Findings[0]
			}
			v.Alerts = append(v.Alerts, dashboardAlert{Level: "bad", Text: text, Href: "/points/" + url.PathEscape(string(vm.LastPoint)), Link: "point"})
		}
	}
	add := func(level string, list []jobs.VMProtection, status string, say func(jobs.VMProtection) string, summary string) {
		for i, vm := range list {
			if i == dashboardListed {
				v.Alerts = append(v.Alerts, dashboardAlert{Level: level, Text: fmt.Sprintf(summary, len(list)-i), Href: "/vms?status=" + status, Link: "the full list"})
				break
			}
			v.Alerts = append(v.Alerts, dashboardAlert{Level: level, Text: say(vm), Href: "/vms/" + url.PathEscape(vm.UUID), Link: "VM"})
		}
	}
	add("bad", rpo, monRPOMiss, func(vm jobs.VMProtection) string {
		if vm.LastBackup.IsZero() {
			return fmt.Sprintf("%s misses its RPO of %s: it has no recovery point", vm.Name, humanDuration(vm.RPO))
		}
		return fmt.Sprintf("%s misses its RPO of %s: its newest point is from %s", vm.Name, humanDuration(vm.RPO), ago(vm.LastBackup, now))
	}, "… and %d more VMs miss their RPO")
	add("bad", unprotected, monUnprotected, func(vm jobs.VMProtection) string {
		return vm.Name + " is not protected: no enabled policy selects it"
	}, "… and %d more unprotected VMs")
	add("warn", gaps, monProtected, func(vm jobs.VMProtection) string {
		return vm.Name + " is selected by " + dashboardPolicies(vm.Policies) + " but has no recovery point yet"
	}, "… and %d more protected VMs without a recovery point yet")
}

// dashboardPolicies names the policies that select a VM.
func dashboardPolicies(p []string) string {
	switch len(p) {
	case 0:
		return "a policy"
	case 1:
		return "policy " + p[0]
	case 2:
		return "policies " + p[0] + " and " + p[1]
	}
	return fmt.Sprintf("policies %s, %s and %d more", p[0], p[1], len(p)-2)
}

// dashboardPool fills the storage tiles and the capacity chart.
func (s *Server) dashboardPool(v *dashboardView, now time.Time) {
	p, err := s.be().PoolState()
	if err != nil {
		v.PoolProblem = "The pool's state could not be read: " + err.Error()
		v.Alerts = append(v.Alerts, dashboardAlert{Level: "bad", Text: v.PoolProblem, Href: "/storage", Link: "storage"})
	}
	v.HavePool = p.Size > 0 || p.Path != ""
	v.Size, v.Used, v.Free, v.MeterHigh = p.Size, p.Used, p.Free, p.Size/100*85
	if p.Size > 0 {
		v.UsedPct = fmt.Sprintf("%.0f %%", float64(p.Used)/float64(p.Size)*100)
	}
	v.Dedup, v.Compression, v.Total = monRatios(p.Store)
	hist, err := s.be().CapacityHistory()
	if err != nil {
		v.Alerts = append(v.Alerts, dashboardAlert{Level: "warn", Text: "The pool's usage history could not be read: " + err.Error(), Href: "/storage", Link: "storage"})
	}
	v.Capacity = monCapacityOf("dash-capacity", hist, p.Size, now)
	if v.Capacity.Soon {
		v.Alerts = append(v.Alerts, dashboardAlert{Level: "bad", Text: "The storage pool is " + v.Capacity.Forecast + " at the current growth", Href: "/storage", Link: "storage"})
	}
	var used []float64
	for _, h := range hist[max(0, len(hist)-60):] {
		used = append(used, float64(h.Used))
	}
	if len(used) > 1 {
		v.Sparkline = chart.Sparkline(used, 120, 32)
	}
}

// dashboardJobCharts draws the durations of the last 20 finished jobs
// (failed ones marked) and the throughput of the recent ones over time.
func dashboardJobCharts(recent []jobs.Job) (durations, throughput template.HTML) {
	var done []jobs.Job
	for _, j := range recent {
		if j.State.Finished() && !j.Started.IsZero() {
			done = append(done, j)
		}
	}
	if len(done) == 0 {
		return "", ""
	}
	var bars []chart.Bar
	for _, j := range done[:min(20, len(done))] {
		label := j.Started.Local().Format("2 Jan 15:04") + " " + j.PolicyName
		state := "ok"
		switch {
		case monFailedState(j.State):
			state, label = "failed", "✗ "+label
		case j.State == jobs.JobWarning:
			state = "warning"
		case j.State == jobs.JobCanceled:
			state = "canceled"
		}
		bars = append(bars, chart.Bar{Label: label, Value: j.Duration.Seconds(), State: state})
	}
	slices.Reverse(bars) // oldest first
	durations = chart.Bars(chart.BarOptions{ID: "dash-durations", Title: fmt.Sprintf("Duration of the last %d jobs", len(bars)), Bars: bars,
		Value: chart.Axis{Label: "Duration", Unit: chart.Duration}})
	var pts []chart.Point
	for _, j := range done {
		if j.Speed > 0 {
			pts = append(pts, chart.Point{X: j.Started, Y: j.Speed})
		}
	}
	if len(pts) > 0 {
		throughput = chart.TimeLine(chart.LineOptions{ID: "dash-throughput", Title: "Backup throughput per job",
			Series: []chart.Series{{Name: "throughput", Points: pts}}, Y: chart.Axis{Label: "Read speed", Unit: chart.BytesPerSecond},
			Location: time.Local, Height: 200})
	}
	return durations, throughput
}
