package ui

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"coffer.dev/coffer/appliance/jobs"
	"coffer.dev/coffer/appliance/jobs/schedule"
	"coffer.dev/coffer/appliance/setup"
	"coffer.dev/coffer/appliance/vsphere"
)

// manPolicyRow is one line of the policy list.
type manPolicyRow struct {
	P         jobs.Policy
	Selection string
	Exclude   string
	Retention string
	Covered   []string // names of the VMs the selection takes now
	Counted   bool     // the inventory was read
	NextRun   string
	EditHref  string
	Hooks     bool
}

type manPoliciesView struct {
	Rows             []manPolicyRow
	InventoryProblem string
}

func (s *Server) manPolicies(c *gin.Context) { s.manRenderPolicies(c, 0) }

func (s *Server) manRenderPolicies(c *gin.Context, status int) {
	v := manPoliciesView{}
	inv, err := s.be().Inventory(c.Request.Context())
	if err != nil {
		v.InventoryProblem = err.Error()
	}
	now := time.Now()
	policies := slices.Clone(s.be().Policies())
	slices.SortFunc(policies, func(a, b jobs.Policy) int {
		if a.Priority != b.Priority {
			return b.Priority - a.Priority
		}
		return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
	})
	for _, p := range policies {
		r := manPolicyRow{P: p, Selection: manSelectionSummary(p.Selection), Exclude: manCriteriaSummary(p.Selection.Exclude),
			Retention: manRetentionSummary(p), NextRun: manNextRun(p, now), EditHref: "/policies/" + p.ID + "/edit",
			Hooks: p.Hooks.PreFreeze != "" || p.Hooks.PostThaw != "" || p.Hooks.PostBackup != ""}
		if inv != nil {
			r.Counted = true
			for _, vm := range inv.VMs {
				if p.Matches(vm) {
					r.Covered = append(r.Covered, vm.Name)
				}
			}
			slices.Sort(r.Covered)
		}
		v.Rows = append(v.Rows, r)
	}
	s.render(c, status, "man-policies", "Policies", v)
}

func manSelectionSummary(sel jobs.Selection) string {
	if sel.All {
		return "All VMs"
	}
	return manCriteriaSummary(jobs.Criteria{VMs: sel.VMs, Folders: sel.Folders, Tags: sel.Tags, Names: sel.Names})
}

func manCriteriaSummary(c jobs.Criteria) string {
	var parts []string
	if len(c.Names) > 0 {
		parts = append(parts, "names "+strings.Join(c.Names, ", "))
	}
	if len(c.Folders) > 0 {
		parts = append(parts, "folders "+strings.Join(c.Folders, ", "))
	}
	if len(c.Tags) > 0 {
		parts = append(parts, "tags "+strings.Join(c.Tags, ", "))
	}
	if n := len(c.VMs); n > 0 {
		parts = append(parts, fmt.Sprintf("%d chosen VM(s)", n))
	}
	return strings.Join(parts, " · ")
}

func manRetentionSummary(p jobs.Policy) string {
	r := p.Retention
	if r.Empty() {
		r = jobs.DefaultRetention()
	}
	var parts []string
	for _, x := range []struct {
		n    int
		what string
	}{{r.Last, "last"}, {r.Daily, "daily"}, {r.Weekly, "weekly"}, {r.Monthly, "monthly"}, {r.Yearly, "yearly"}} {
		if x.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", x.n, x.what))
		}
	}
	return strings.Join(parts, ", ")
}

// manNextRun says when the scheduler starts the policy next.
func manNextRun(p jobs.Policy, now time.Time) string {
	if p.Schedule.IsZero() {
		return "manual runs only"
	}
	if !p.Enabled {
		return "disabled (manual runs only)"
	}
	loc, err := p.Location()
	if err != nil {
		return "unknown: " + err.Error()
	}
	t := now
	limit := now.AddDate(1, 0, 0)
	for range 10000 {
		t = p.Schedule.Next(t, loc)
		if t.IsZero() || t.After(limit) {
			return "not within a year"
		}
		if p.Window.IsZero() || p.Window.Contains(t.In(loc)) {
			return t.In(loc).Format("2006-01-02 15:04 MST") + " (" + manUntil(t.Sub(now)) + ")"
		}
	}
	return "unknown"
}

func manUntil(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "in less than a minute"
	case d < time.Hour:
		return fmt.Sprintf("in %d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("in %d h", int(d.Hours()))
	}
	return fmt.Sprintf("in %d days", int(d.Hours()/24))
}

// manPolicyForm is the policy form as typed.
type manPolicyForm struct {
	Name, Mode                                   string // Mode: all or choose
	Enabled                                      bool
	VMs, ExclVMs                                 []string // instance UUIDs
	Names, Folders, Tags                         string
	ExclNames, ExclFolders, ExclTags             string
	Schedule, Window, TimeZone                   string
	Last, Daily, Weekly, Monthly, Yearly         string
	Consistency, Priority, RPO, VerifyEvery      string
	SkipCheck                                    bool
	PreFreeze, PostThaw, PostBackup, HookTimeout string
	GuestCredentials                             string
}

func manFormFromPolicy(p jobs.Policy) manPolicyForm {
	f := manPolicyForm{Name: p.Name, Enabled: p.Enabled, Mode: "choose",
		VMs: p.Selection.VMs, Names: strings.Join(p.Selection.Names, ", "), Folders: strings.Join(p.Selection.Folders, ", "),
		Tags: strings.Join(p.Selection.Tags, ", "), ExclVMs: p.Selection.Exclude.VMs, ExclNames: strings.Join(p.Selection.Exclude.Names, ", "),
		ExclFolders: strings.Join(p.Selection.Exclude.Folders, ", "), ExclTags: strings.Join(p.Selection.Exclude.Tags, ", "),
		Schedule: p.Schedule.String(), Window: p.Window.String(), TimeZone: p.TimeZone,
		Last: strconv.Itoa(p.Retention.Last), Daily: strconv.Itoa(p.Retention.Daily), Weekly: strconv.Itoa(p.Retention.Weekly),
		Monthly: strconv.Itoa(p.Retention.Monthly), Yearly: strconv.Itoa(p.Retention.Yearly),
		Consistency: string(p.Consistency), Priority: strconv.Itoa(p.Priority), RPO: manDuration(p.RPO),
		VerifyEvery: strconv.Itoa(p.VerifyEvery), SkipCheck: p.SkipRecoverabilityCheck,
		PreFreeze: p.Hooks.PreFreeze, PostThaw: p.Hooks.PostThaw, PostBackup: p.Hooks.PostBackup,
		HookTimeout: manDuration(p.Hooks.Timeout), GuestCredentials: p.GuestCredentials}
	if p.Selection.All {
		f.Mode = "all"
	}
	if p.Consistency == "" {
		f.Consistency = string(jobs.DefaultConsistency)
	}
	if p.VerifyEvery == 0 {
		f.VerifyEvery = ""
	}
	return f
}

func manFormFromRequest(c *gin.Context) manPolicyForm {
	t := func(k string) string { return strings.TrimSpace(c.PostForm(k)) }
	return manPolicyForm{Name: t("name"), Enabled: c.PostForm("enabled") == "yes", Mode: c.PostForm("selection"),
		VMs: c.PostFormArray("vm"), ExclVMs: c.PostFormArray("exclude_vm"),
		Names: t("names"), Folders: t("folders"), Tags: t("tags"),
		ExclNames: t("exclude_names"), ExclFolders: t("exclude_folders"), ExclTags: t("exclude_tags"),
		Schedule: t("schedule"), Window: t("window"), TimeZone: t("time_zone"),
		Last: t("last"), Daily: t("daily"), Weekly: t("weekly"), Monthly: t("monthly"), Yearly: t("yearly"),
		Consistency: t("consistency"), Priority: t("priority"), RPO: t("rpo"), VerifyEvery: t("verify_every"),
		SkipCheck: c.PostForm("skip_check") == "yes",
		PreFreeze: t("pre_freeze"), PostThaw: t("post_thaw"), PostBackup: t("post_backup"), HookTimeout: t("hook_timeout"),
		GuestCredentials: t("guest_credentials")}
}

// manList splits a comma- or newline-separated list; unlike
// setup.SplitList it keeps spaces inside an item (folder paths and tag
// names have them).
func manList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func manUUIDs(in []string) []string {
	var out []string
	for _, u := range in {
		if u = strings.TrimSpace(u); u != "" && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// policy applies the form to base (the stored policy, or a new one).
func (f manPolicyForm) policy(base jobs.Policy) (jobs.Policy, manFieldErrors) {
	fe := manFieldErrors{}
	p := base
	p.Name, p.Enabled = f.Name, f.Enabled
	sel := jobs.Selection{All: f.Mode == "all"}
	if !sel.All {
		sel.VMs, sel.Names, sel.Folders, sel.Tags = manUUIDs(f.VMs), manList(f.Names), manList(f.Folders), manList(f.Tags)
	}
	sel.Exclude = jobs.Criteria{VMs: manUUIDs(f.ExclVMs), Names: manList(f.ExclNames), Folders: manList(f.ExclFolders), Tags: manList(f.ExclTags)}
	p.Selection = sel
	p.Schedule, p.Window = schedule.Event{}, schedule.Window{}
	if f.Schedule != "" {
		e, err := schedule.Parse(f.Schedule)
		if err != nil {
			fe.add("schedule", err.Error())
		}
		p.Schedule = e
	}
	if f.Window != "" {
		w, err := schedule.ParseWindow(f.Window)
		if err != nil {
			fe.add("window", err.Error())
		}
		p.Window = w
	}
	p.TimeZone = f.TimeZone
	num := func(field, v string, lo, hi int, dst *int) {
		if v == "" {
			*dst = 0
			return
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			fe.add(field, fmt.Sprintf("a whole number from %d to %d", lo, hi))
			return
		}
		*dst = n
	}
	num("last", f.Last, 0, 1000, &p.Retention.Last)
	num("daily", f.Daily, 0, 1000, &p.Retention.Daily)
	num("weekly", f.Weekly, 0, 1000, &p.Retention.Weekly)
	num("monthly", f.Monthly, 0, 1000, &p.Retention.Monthly)
	num("yearly", f.Yearly, 0, 1000, &p.Retention.Yearly)
	p.Consistency = vsphere.ConsistencyMode(f.Consistency)
	num("priority", f.Priority, -1000, 1000, &p.Priority)
	num("verify_every", f.VerifyEvery, -1, 10000, &p.VerifyEvery)
	if d, err := manParseDuration(f.RPO); err != nil {
		fe.add("rpo", err.Error())
	} else {
		p.RPO = d
	}
	p.SkipRecoverabilityCheck = f.SkipCheck
	p.Hooks.PreFreeze, p.Hooks.PostThaw, p.Hooks.PostBackup = f.PreFreeze, f.PostThaw, f.PostBackup
	if d, err := manParseDuration(f.HookTimeout); err != nil {
		fe.add("hook_timeout", err.Error())
	} else {
		p.Hooks.Timeout = d
	}
	p.GuestCredentials = f.GuestCredentials
	if (p.Hooks.PreFreeze != "" || p.Hooks.PostThaw != "" || p.Hooks.PostBackup != "") && p.GuestCredentials == "" {
		fe.add("guest_credentials", "guest hooks need the ID of the guest credentials that run them")
	}
	return p, fe
}

// manValidationFields files the problems of a jobs.ValidationError under
// the form's fields; what fits none goes to the banner ("").
func manValidationFields(err error, fe manFieldErrors) {
	var ve *jobs.ValidationError
	if !errors.As(err, &ve) {
		fe.add("", err.Error())
		return
	}
	for _, prob := range ve.Problems {
		field := ""
		for _, m := range []struct{ prefix, field string }{
			{"name", "name"}, {"selection.exclude", "exclude"}, {"selection", "selection"}, {"time_zone", "time_zone"},
			{"window", "window"}, {"schedule", "schedule"}, {"retention", "retention"}, {"consistency", "consistency"},
			{"hooks", "hook_timeout"}, {"rpo", "rpo"},
		} {
			if strings.HasPrefix(prob, m.prefix) {
				field = m.field
				break
			}
		}
		fe.add(field, prob)
	}
}

// manVMChoice is one VM of the inventory in the policy form.
type manVMChoice struct {
	N                int
	UUID, Name       string
	Folder, Tags     string
	Include, Exclude bool
	Missing          bool // chosen by the policy, not in the inventory
}

type manPolicyFormView struct {
	New              bool
	ID               string
	Action           string
	F                manPolicyForm
	Errors           manFieldErrors
	VMs              []manVMChoice
	TimeZones        []string
	Consistencies    []manLink
	Preview          []vsphere.VM
	Previewed        bool
	InventoryProblem string
	RetentionKeys    []string
}

func (s *Server) manPolicyFormView(c *gin.Context, isNew bool, id string, f manPolicyForm, fe manFieldErrors) (manPolicyFormView, *vsphere.Inventory) {
	v := manPolicyFormView{New: isNew, ID: id, F: f, Errors: fe, Action: "/policies/new",
		RetentionKeys: []string{"retention", "last", "daily", "weekly", "monthly", "yearly"}}
	if !isNew {
		v.Action = "/policies/" + id + "/edit"
	}
	if v.Errors == nil {
		v.Errors = manFieldErrors{}
	}
	inv, err := s.be().Inventory(c.Request.Context())
	if err != nil {
		v.InventoryProblem = err.Error()
	}
	seen := map[string]bool{}
	if inv != nil {
		for _, vm := range inv.VMs {
			if vm.Template {
				continue
			}
			u := strings.ToLower(vm.InstanceUUID)
			seen[u] = true
			v.VMs = append(v.VMs, manVMChoice{UUID: vm.InstanceUUID, Name: vm.Name, Folder: vm.Folder, Tags: strings.Join(vm.Tags, ", "),
				Include: manHasFold(f.VMs, u), Exclude: manHasFold(f.ExclVMs, u)})
		}
		slices.SortFunc(v.VMs, func(a, b manVMChoice) int { return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) })
	}
	for _, u := range append(slices.Clone(f.VMs), f.ExclVMs...) {
		if lu := strings.ToLower(strings.TrimSpace(u)); lu != "" && !seen[lu] {
			seen[lu] = true
			v.VMs = append(v.VMs, manVMChoice{UUID: u, Name: "(not in the inventory)", Missing: true,
				Include: manHasFold(f.VMs, lu), Exclude: manHasFold(f.ExclVMs, lu)})
		}
	}
	for i := range v.VMs {
		v.VMs[i].N = i
	}
	v.TimeZones = timeZones()
	if f.TimeZone != "" && !slices.Contains(v.TimeZones, f.TimeZone) {
		v.TimeZones = append([]string{f.TimeZone}, v.TimeZones...)
	}
	for _, m := range []struct {
		mode  vsphere.ConsistencyMode
		label string
	}{
		{vsphere.PreferApplication, "Application-consistent, falling back to crash-consistent"},
		{vsphere.RequireApplication, "Application-consistent required (the backup fails without it)"},
		{vsphere.CrashOnly, "Crash-consistent only (never quiesce)"},
	} {
		v.Consistencies = append(v.Consistencies, manLink{Value: string(m.mode), Label: m.label, Selected: f.Consistency == string(m.mode)})
	}
	return v, inv
}

func manHasFold(list []string, lowerUUID string) bool {
	for _, x := range list {
		if strings.EqualFold(strings.TrimSpace(x), lowerUUID) {
			return true
		}
	}
	return false
}

// manDefaultPolicy is what a new policy starts from: the wizard's
// defaults in the zone the existing policies use, without a name.
func (s *Server) manDefaultPolicy() jobs.Policy {
	tz := jobs.DefaultTimeZone
	for _, p := range s.be().Policies() {
		if p.TimeZone != "" {
			tz = p.TimeZone
			break
		}
	}
	p := setup.DefaultPolicy(tz)
	p.Name = ""
	return p
}

func (s *Server) manPolicyNew(c *gin.Context) {
	v, _ := s.manPolicyFormView(c, true, "", manFormFromPolicy(s.manDefaultPolicy()), nil)
	s.render(c, 0, "man-policy-form", "New policy", v)
}

func (s *Server) manPolicyEdit(c *gin.Context) {
	p, err := s.be().Policy(c.Param("id"))
	if err != nil {
		s.render(c, http.StatusNotFound, "error", "No such policy", err.Error())
		return
	}
	v, _ := s.manPolicyFormView(c, false, p.ID, manFormFromPolicy(p), nil)
	s.render(c, 0, "man-policy-form", "Edit policy "+p.Name, v)
}

func (s *Server) manPolicyCreate(c *gin.Context) {
	base := s.manDefaultPolicy()
	base.Hooks, base.GuestCredentials = vsphere.Hooks{}, ""
	s.manPolicySubmit(c, true, base)
}

func (s *Server) manPolicyUpdate(c *gin.Context) {
	p, err := s.be().Policy(c.Param("id"))
	if err != nil {
		s.render(c, http.StatusNotFound, "error", "No such policy", err.Error())
		return
	}
	s.manPolicySubmit(c, false, p)
}

func (s *Server) manPolicySubmit(c *gin.Context, isNew bool, base jobs.Policy) {
	f := manFormFromRequest(c)
	p, fe := f.policy(base)
	if len(fe) == 0 {
		if err := p.Validate(); err != nil {
			manValidationFields(err, fe)
		}
	}
	title := "New policy"
	if !isNew {
		title = "Edit policy " + base.Name
	}
	v, inv := s.manPolicyFormView(c, isNew, base.ID, f, fe)
	if c.PostForm("action") == "preview" || len(fe) > 0 {
		if inv != nil {
			v.Previewed = true
			for _, vm := range inv.VMs {
				if p.Matches(vm) {
					v.Preview = append(v.Preview, vm)
				}
			}
			slices.SortFunc(v.Preview, func(a, b vsphere.VM) int { return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) })
		}
	}
	if len(fe) > 0 {
		manBannerFromFields(c, fe)
		s.render(c, http.StatusUnprocessableEntity, "man-policy-form", title, v)
		return
	}
	if c.PostForm("action") == "preview" {
		s.render(c, 0, "man-policy-form", title, v)
		return
	}
	var saved jobs.Policy
	var err error
	if isNew {
		saved, err = s.be().CreatePolicy(p)
	} else {
		p.ID = base.ID
		saved, err = s.be().UpdatePolicy(p)
	}
	if err != nil {
		manValidationFields(err, v.Errors)
		manBannerFromFields(c, v.Errors)
		s.render(c, http.StatusUnprocessableEntity, "man-policy-form", title, v)
		return
	}
	c.Set(ctxTarget, saved.ID)
	if isNew {
		c.Set(ctxDetail, "policy created: "+saved.Name)
		redirectOK(c, "/policies", fmt.Sprintf("Policy %s created.", saved.Name))
		return
	}
	c.Set(ctxDetail, "policy updated: "+saved.Name)
	redirectOK(c, "/policies", fmt.Sprintf("Policy %s saved.", saved.Name))
}

// manBannerFromFields puts the errors without a field in the banner, or
// asks to correct the marked fields.
func manBannerFromFields(c *gin.Context, fe manFieldErrors) {
	if msg := fe[""]; msg != "" {
		if len(fe) > 1 {
			msg += " Please also correct the marked fields."
		}
		pageError(c, "%s", msg)
		return
	}
	pageError(c, "Please correct the marked fields.")
}

func (s *Server) manPolicyDelete(c *gin.Context) {
	id := c.Param("id")
	p, err := s.be().Policy(id)
	if err != nil {
		pageError(c, "%v", err)
		s.manRenderPolicies(c, http.StatusNotFound)
		return
	}
	if err := s.be().DeletePolicy(id); err != nil {
		pageError(c, "The policy %s was not deleted: %v", p.Name, err)
		s.manRenderPolicies(c, http.StatusConflict)
		return
	}
	c.Set(ctxDetail, "policy deleted: "+p.Name)
	redirectOK(c, "/policies", fmt.Sprintf("Policy %s deleted. Its recovery points are kept until their retention ends.", p.Name))
}

func (s *Server) manPolicyRun(c *gin.Context) {
	id := c.Param("id")
	job, err := s.be().RunPolicy(c.Request.Context(), id, jobs.TriggerManual)
	if err != nil {
		pageError(c, "The policy was not started: %v", err)
		s.manRenderPolicies(c, http.StatusConflict)
		return
	}
	c.Set(ctxDetail, "manual run: job "+job)
	redirectOK(c, "/jobs/"+url.PathEscape(job), "The policy is running.")
}
