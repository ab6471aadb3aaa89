package ui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"coffer.dev/coffer/appliance/jobs"
	"coffer.dev/coffer/appliance/jobs/schedule"
	"coffer.dev/coffer/appliance/setup"
	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/store"
	"coffer.dev/coffer/ui/access"
)

// SetupBackend is what the first-boot wizard needs (*setup.Wizard).
type SetupBackend interface {
	Complete() bool
	Current() setup.Step
	Reachable(setup.Step) bool
	State() setup.State
	AdminDone() error
	SaveNetwork(setup.Network) error
	StorageOffer(ctx context.Context) setup.StorageOffer
	PlanPool(ctx context.Context, level string, disks []string) (setup.PoolPlan, error)
	SaveStorage(ctx context.Context, r setup.StorageRequest) error
	CreateKey(ctx context.Context) (setup.Recovery, error)
	ConfirmRecoveryKey(answers []string) error
	ProbeVCenter(ctx context.Context, url string) (*vsphere.Certificate, error)
	ConnectVCenter(ctx context.Context, r setup.VCenterRequest) (setup.VCenter, error)
	PreviewPolicy(ctx context.Context, p jobs.Policy) ([]vsphere.VM, error)
	SavePolicy(ctx context.Context, p jobs.Policy) (jobs.Policy, error)
	SaveOptions() error
	Finish(ctx context.Context, backupNow bool) (string, error)
}

var _ SetupBackend = (*setup.Wizard)(nil)

// stepView is one entry of the wizard's step bar.
type stepView struct {
	Step    setup.Step
	Title   string
	Href    string
	Done    bool
	Current bool
	Open    bool // reachable: a link
}

// wizardPage is the data of every wizard page.
type wizardPage struct {
	Steps  []stepView
	Step   setup.Step
	Back   string
	State  setup.State
	Errors setup.FieldErrors
	Form   map[string]string
	Extra  any
}

func (s *Server) wizardData(c *gin.Context, step setup.Step, extra any) wizardPage {
	st := s.Setup.State()
	wp := wizardPage{Step: step, State: st, Extra: extra, Form: map[string]string{}}
	for i, x := range setup.Steps {
		_, done := st.Done[x]
		wp.Steps = append(wp.Steps, stepView{Step: x, Title: fmt.Sprintf("%d. %s", i+1, x.Title()), Href: "/setup/" + string(x),
			Done: done, Current: x == step, Open: s.Setup.Reachable(x)})
		if x == step && i > 0 {
			wp.Back = "/setup/" + string(setup.Steps[i-1])
		}
	}
	if v, ok := c.Get(ctxFieldErrors); ok {
		wp.Errors = v.(setup.FieldErrors)
	}
	return wp
}

const ctxFieldErrors = "coffer.field.errors"

// stepFailed re-renders a step with its errors (field errors under
// their fields, anything else in the banner) and the submitted values.
func (s *Server) stepFailed(c *gin.Context, step setup.Step, err error, form map[string]string, extra any) {
	var fe setup.FieldErrors
	if errors.As(err, &fe) {
		c.Set(ctxFieldErrors, fe)
		pageError(c, "Please correct the marked fields.")
	} else {
		pageError(c, "%v", err)
	}
	wp := s.wizardData(c, step, extra)
	for k, v := range form {
		wp.Form[k] = v
	}
	s.render(c, http.StatusUnprocessableEntity, "setup-"+string(step), "Setup: "+step.Title(), wp)
}

func (s *Server) nextStep(c *gin.Context, done setup.Step) {
	i := slices.Index(setup.Steps, done)
	c.Redirect(http.StatusSeeOther, "/setup/"+string(setup.Steps[min(i+1, len(setup.Steps)-1)]))
}

// setupGate sends every page to the wizard until setup is complete.
func (s *Server) setupGate(c *gin.Context) {
	if s.Setup != nil && !s.Setup.Complete() {
		c.Redirect(http.StatusSeeOther, "/setup")
		c.Abort()
		return
	}
	c.Next()
}

// wizardOpen refuses wizard pages after setup and steps not reachable yet.
func (s *Server) wizardOpen(step setup.Step) gin.HandlerFunc {
	return func(c *gin.Context) {
		if s.Setup.Complete() {
			c.Redirect(http.StatusSeeOther, "/")
			c.Abort()
			return
		}
		if !s.Setup.Reachable(step) {
			c.Redirect(http.StatusSeeOther, "/setup/"+string(s.Setup.Current()))
			c.Abort()
			return
		}
		c.Next()
	}
}

// setupRoutes registers the wizard. The account step is open to anyone
// while no account exists (the appliance is fresh); every later step
// needs the administrator's session.
func (s *Server) setupRoutes(r *gin.Engine) {
	if s.Setup == nil {
		return
	}
	r.GET("/setup", func(c *gin.Context) {
		if s.Setup.Complete() {
			c.Redirect(http.StatusSeeOther, "/")
			return
		}
		c.Redirect(http.StatusSeeOther, "/setup/"+string(s.Setup.Current()))
	})
	s.pageRoutes = append(s.pageRoutes, PageRoute{Method: "GET", Path: "/setup/admin"}, PageRoute{Method: "POST", Path: "/setup/admin"})
	r.GET("/setup/admin", s.wizardOpen(setup.StepAdmin), s.setupAdminForm)
	r.POST("/setup/admin", s.wizardOpen(setup.StepAdmin), s.setupAdminSubmit)
	g := r.Group("/setup", s.pageAuth, s.checkCSRF, s.auditChange)
	step := func(st setup.Step, get, post gin.HandlerFunc) {
		s.page(g, "GET", "/"+string(st), access.PermAdmin, "", gin.HandlerFunc(func(c *gin.Context) {
			s.wizardOpen(st)(c)
			if !c.IsAborted() {
				get(c)
			}
		}))
		s.page(g, "POST", "/"+string(st), access.PermAdmin, "", gin.HandlerFunc(func(c *gin.Context) {
			s.wizardOpen(st)(c)
			if !c.IsAborted() {
				post(c)
			}
		}))
	}
	step(setup.StepNetwork, s.setupNetworkForm, s.setupNetworkSubmit)
	step(setup.StepStorage, s.setupStorageForm, s.setupStorageSubmit)
	step(setup.StepEncryption, s.setupEncryptionForm, s.setupEncryptionSubmit)
	step(setup.StepVCenter, s.setupVCenterForm, s.setupVCenterSubmit)
	step(setup.StepPolicy, s.setupPolicyForm, s.setupPolicySubmit)
	step(setup.StepOptions, s.setupOptionsForm, s.setupOptionsSubmit)
	step(setup.StepSummary, s.setupSummaryForm, s.setupSummarySubmit)
}

func (s *Server) renderStep(c *gin.Context, step setup.Step, form map[string]string, extra any) {
	wp := s.wizardData(c, step, extra)
	for k, v := range form {
		wp.Form[k] = v
	}
	s.render(c, 0, "setup-"+string(step), "Setup: "+step.Title(), wp)
}

func (s *Server) setupAdminForm(c *gin.Context) {
	if s.users.HasUsers() {
		// The account exists: the rest needs its session.
		if err := s.Setup.AdminDone(); err != nil && !errors.Is(err, setup.ErrComplete) {
			s.Log.Warn("setup: record the account step", "err", err)
		}
		c.Redirect(http.StatusSeeOther, "/login?next=/setup")
		return
	}
	s.renderStep(c, setup.StepAdmin, map[string]string{"username": "admin"}, nil)
}

func (s *Server) setupAdminSubmit(c *gin.Context) {
	if s.users.HasUsers() {
		c.Redirect(http.StatusSeeOther, "/login?next=/setup")
		return
	}
	user, pw, pw2 := strings.TrimSpace(c.PostForm("username")), c.PostForm("password"), c.PostForm("password2")
	form := map[string]string{"username": user}
	if pw != pw2 {
		s.stepFailed(c, setup.StepAdmin, setup.FieldErrors{"password2": "the two passwords differ"}, form, nil)
		return
	}
	if _, err := s.users.AddUser(user, access.Administrator, pw); err != nil {
		field := "password"
		if !strings.Contains(err.Error(), "password") {
			field = "username"
		}
		s.stepFailed(c, setup.StepAdmin, setup.FieldErrors{field: err.Error()}, form, nil)
		return
	}
	if err := s.Setup.AdminDone(); err != nil {
		s.stepFailed(c, setup.StepAdmin, err, form, nil)
		return
	}
	tok, sess, err := s.users.Login(c.ClientIP(), user, pw)
	if err != nil {
		c.Redirect(http.StatusSeeOther, "/login?next=/setup")
		return
	}
	c.Set(ctxPrincipal, access.Principal{User: user, Role: access.Administrator})
	c.Set(ctxSession, sess)
	c.Set(ctxTarget, user)
	c.Set(ctxDetail, "setup: administrator account created")
	s.record(c, "ok")
	s.setSessionCookie(c, tok)
	c.Redirect(http.StatusSeeOther, "/setup/network")
}

func (s *Server) setupNetworkForm(c *gin.Context) {
	n := s.Setup.State().Network
	if n.Mode == "" {
		n = setup.Network{Hostname: s.Hostname, Mode: "dhcp", NTP: []string{"pool.ntp.org"}, TimeZone: "UTC"}
	}
	s.renderStep(c, setup.StepNetwork, networkForm(n), timeZones())
}

func networkForm(n setup.Network) map[string]string {
	return map[string]string{"hostname": n.Hostname, "mode": n.Mode, "address": n.Address, "gateway": n.Gateway,
		"dns": strings.Join(n.DNS, ", "), "ntp": strings.Join(n.NTP, ", "), "time_zone": n.TimeZone}
}

func (s *Server) setupNetworkSubmit(c *gin.Context) {
	n := setup.Network{Hostname: strings.TrimSpace(c.PostForm("hostname")), Mode: c.PostForm("mode"),
		Address: strings.TrimSpace(c.PostForm("address")), Gateway: strings.TrimSpace(c.PostForm("gateway")),
		DNS: setup.SplitList(c.PostForm("dns")), NTP: setup.SplitList(c.PostForm("ntp")), TimeZone: strings.TrimSpace(c.PostForm("time_zone"))}
	if err := s.Setup.SaveNetwork(n); err != nil {
		s.stepFailed(c, setup.StepNetwork, err, networkForm(n), timeZones())
		return
	}
	s.nextStep(c, setup.StepNetwork)
}

// storageView is the storage step's extra data.
type storageView struct {
	Offer    setup.StorageOffer
	Plan     *setup.PoolPlan
	Done     bool
	Selected map[string]bool // disks ticked in the form
}

func (s *Server) setupStorageForm(c *gin.Context) {
	st := s.Setup.State()
	_, done := st.Done[setup.StepStorage]
	_, keyed := st.Done[setup.StepEncryption]
	v := storageView{Offer: s.Setup.StorageOffer(c.Request.Context()), Done: done && (keyed || len(st.Challenge) > 0)}
	form := map[string]string{"kind": st.Storage.Kind, "path": st.Storage.Path, "level": v.Offer.Recommended}
	if form["kind"] == "" {
		form["kind"] = "directory"
		if v.Offer.CanBuildRAID && v.Offer.Directory == "" {
			form["kind"] = "raid"
		}
	}
	if form["path"] == "" {
		form["path"] = v.Offer.Directory
	}
	s.renderStep(c, setup.StepStorage, form, v)
}

func (s *Server) setupStorageSubmit(c *gin.Context) {
	ctx := c.Request.Context()
	req := setup.StorageRequest{Kind: c.PostForm("kind"), Path: strings.TrimSpace(c.PostForm("path")), Level: c.PostForm("level"),
		Disks: c.PostFormArray("disk"), ConfirmErase: c.PostForm("confirm_erase") == "yes"}
	form := map[string]string{"kind": req.Kind, "path": req.Path, "level": req.Level}
	v := storageView{Offer: s.Setup.StorageOffer(ctx), Selected: map[string]bool{}}
	for _, d := range req.Disks {
		v.Selected[d] = true
	}
	if req.Kind == "raid" {
		if p, err := s.Setup.PlanPool(ctx, req.Level, req.Disks); err == nil {
			v.Plan = &p
		}
		if c.PostForm("action") == "plan" {
			// Show the capacity and fault tolerance before anything is written.
			s.renderStep(c, setup.StepStorage, form, v)
			return
		}
	}
	if err := s.Setup.SaveStorage(ctx, req); err != nil {
		s.stepFailed(c, setup.StepStorage, err, form, v)
		return
	}
	s.nextStep(c, setup.StepStorage)
}

func (s *Server) setupEncryptionForm(c *gin.Context) {
	st := s.Setup.State()
	if _, done := st.Done[setup.StepEncryption]; done {
		s.renderStep(c, setup.StepEncryption, nil, setup.Recovery{})
		return
	}
	rec, err := s.Setup.CreateKey(c.Request.Context())
	if err != nil {
		s.stepFailed(c, setup.StepEncryption, err, nil, setup.Recovery{})
		return
	}
	s.renderStep(c, setup.StepEncryption, nil, rec)
}

func (s *Server) setupEncryptionSubmit(c *gin.Context) {
	answers := []string{c.PostForm("answer0"), c.PostForm("answer1")}
	if err := s.Setup.ConfirmRecoveryKey(answers); err != nil {
		rec, kerr := s.Setup.CreateKey(c.Request.Context())
		if kerr != nil {
			err = errors.Join(err, kerr)
		}
		s.stepFailed(c, setup.StepEncryption, err, map[string]string{"answer0": answers[0], "answer1": answers[1]}, rec)
		return
	}
	c.Set(ctxDetail, "setup: store created, recovery key confirmed")
	s.nextStep(c, setup.StepEncryption)
}

// vcenterView is the vCenter step's extra data.
type vcenterView struct {
	Cert *vsphere.Certificate
	Done *setup.VCenter
}

func (s *Server) setupVCenterForm(c *gin.Context) {
	st := s.Setup.State()
	form := map[string]string{"url": st.VCenter.URL, "username": st.VCenter.Username, "thumbprint": st.VCenter.Thumbprint}
	v := vcenterView{}
	if _, ok := st.Done[setup.StepVCenter]; ok {
		v.Done = &st.VCenter
	}
	s.renderStep(c, setup.StepVCenter, form, v)
}

func (s *Server) setupVCenterSubmit(c *gin.Context) {
	ctx := c.Request.Context()
	req := setup.VCenterRequest{URL: strings.TrimSpace(c.PostForm("url")), Username: strings.TrimSpace(c.PostForm("username")),
		Password: c.PostForm("password"), Thumbprint: strings.TrimSpace(c.PostForm("thumbprint")), UseCA: c.PostForm("use_ca") == "yes"}
	form := map[string]string{"url": req.URL, "username": req.Username}
	if c.PostForm("action") == "probe" {
		cert, err := s.Setup.ProbeVCenter(ctx, req.URL)
		if err != nil {
			s.stepFailed(c, setup.StepVCenter, setup.FieldErrors{"url": err.Error()}, form, vcenterView{})
			return
		}
		s.renderStep(c, setup.StepVCenter, form, vcenterView{Cert: cert})
		return
	}
	if c.PostForm("trust") != "yes" && !req.UseCA {
		cert, _ := s.Setup.ProbeVCenter(ctx, req.URL)
		s.stepFailed(c, setup.StepVCenter, setup.FieldErrors{"trust": "confirm that you trust this certificate (compare its thumbprint with the one vCenter shows)"}, form, vcenterView{Cert: cert})
		return
	}
	vc, err := s.Setup.ConnectVCenter(ctx, req)
	if err != nil {
		cert, _ := s.Setup.ProbeVCenter(ctx, req.URL)
		s.stepFailed(c, setup.StepVCenter, err, form, vcenterView{Cert: cert})
		return
	}
	c.Set(ctxTarget, vc.URL)
	c.Set(ctxDetail, fmt.Sprintf("setup: vCenter connected (%d VMs, %d hosts)", vc.VMs, vc.Hosts))
	s.nextStep(c, setup.StepVCenter)
}

// policyView is the policy step's extra data.
type policyView struct {
	Preview  []vsphere.VM
	Previewd bool
	Problem  string
}

func policyForm(p jobs.Policy) map[string]string {
	sel := "all"
	names := ""
	if !p.Selection.All {
		sel = "names"
		names = strings.Join(p.Selection.Names, ", ")
	}
	return map[string]string{"name": p.Name, "selection": sel, "names": names, "exclude": strings.Join(p.Selection.Exclude.Names, ", "),
		"schedule": p.Schedule.String(), "window": p.Window.String(), "time_zone": p.TimeZone,
		"daily": fmt.Sprint(p.Retention.Daily), "weekly": fmt.Sprint(p.Retention.Weekly), "monthly": fmt.Sprint(p.Retention.Monthly),
		"consistency": string(p.Consistency)}
}

func (s *Server) setupPolicyForm(c *gin.Context) {
	tz := s.Setup.State().Network.TimeZone
	p := setup.DefaultPolicy(tz)
	v := policyView{Previewd: true}
	vms, err := s.Setup.PreviewPolicy(c.Request.Context(), p)
	if err != nil {
		v.Problem = err.Error()
	}
	v.Preview = vms
	s.renderStep(c, setup.StepPolicy, policyForm(p), v)
}

// policyFromForm reads the policy form; problems are field errors.
func policyFromForm(c *gin.Context, tz string) (jobs.Policy, setup.FieldErrors) {
	fe := setup.FieldErrors{}
	p := setup.DefaultPolicy(tz)
	p.Name = strings.TrimSpace(c.PostForm("name"))
	if c.PostForm("selection") == "names" {
		p.Selection = jobs.Selection{Names: setup.SplitList(c.PostForm("names"))}
		if len(p.Selection.Names) == 0 {
			fe["names"] = "give at least one name or pattern (web*, db??)"
		}
	}
	p.Selection.Exclude.Names = setup.SplitList(c.PostForm("exclude"))
	if v := strings.TrimSpace(c.PostForm("schedule")); v != "" {
		e, err := schedule.Parse(v)
		if err != nil {
			fe["schedule"] = err.Error()
		}
		p.Schedule = e
	}
	if v := strings.TrimSpace(c.PostForm("window")); v != "" {
		w, err := schedule.ParseWindow(v)
		if err != nil {
			fe["window"] = err.Error()
		}
		p.Window = w
	}
	var r store.Retention
	for k, dst := range map[string]*int{"daily": &r.Daily, "weekly": &r.Weekly, "monthly": &r.Monthly} {
		var n int
		if _, err := fmt.Sscan(c.PostForm(k), &n); err != nil || n < 0 || n > 1000 {
			fe[k] = "a number from 0 to 1000"
		}
		*dst = n
	}
	p.Retention.Daily, p.Retention.Weekly, p.Retention.Monthly = r.Daily, r.Weekly, r.Monthly
	if v := c.PostForm("consistency"); v != "" {
		p.Consistency = vsphere.ConsistencyMode(v)
	}
	return p, fe
}

func (s *Server) setupPolicySubmit(c *gin.Context) {
	ctx := c.Request.Context()
	p, fe := policyFromForm(c, s.Setup.State().Network.TimeZone)
	form := policyForm(p)
	for k := range fe {
		form[k] = c.PostForm(k)
	}
	v := policyView{}
	if len(fe) == 0 {
		vms, err := s.Setup.PreviewPolicy(ctx, p)
		v.Preview, v.Previewd = vms, err == nil
		if err != nil {
			v.Problem = err.Error()
		}
	}
	if len(fe) > 0 {
		s.stepFailed(c, setup.StepPolicy, fe, form, v)
		return
	}
	if c.PostForm("action") == "preview" {
		s.renderStep(c, setup.StepPolicy, form, v)
		return
	}
	saved, err := s.Setup.SavePolicy(ctx, p)
	if err != nil {
		s.stepFailed(c, setup.StepPolicy, err, form, v)
		return
	}
	c.Set(ctxTarget, saved.ID)
	c.Set(ctxDetail, "setup: first policy "+saved.Name)
	s.nextStep(c, setup.StepPolicy)
}

func (s *Server) setupOptionsForm(c *gin.Context) {
	s.renderStep(c, setup.StepOptions, nil, nil)
}

func (s *Server) setupOptionsSubmit(c *gin.Context) {
	if err := s.Setup.SaveOptions(); err != nil {
		s.stepFailed(c, setup.StepOptions, err, nil, nil)
		return
	}
	s.nextStep(c, setup.StepOptions)
}

func (s *Server) setupSummaryForm(c *gin.Context) {
	s.renderStep(c, setup.StepSummary, nil, nil)
}

func (s *Server) setupSummarySubmit(c *gin.Context) {
	job, err := s.Setup.Finish(c.Request.Context(), c.PostForm("backup_now") == "yes")
	if err != nil {
		s.stepFailed(c, setup.StepSummary, err, nil, nil)
		return
	}
	c.Set(ctxDetail, "setup completed")
	if job != "" {
		redirectOK(c, "/jobs/"+job, "Setup is complete. The first backup is running.")
		return
	}
	redirectOK(c, "/", "Setup is complete: the appliance protects your VMs from tonight.")
}

// timeZones is the wizard's choice of zones (any IANA name is accepted).
func timeZones() []string {
	return []string{"UTC", "Europe/London", "Europe/Dublin", "Europe/Lisbon", "Europe/Paris", "Europe/Berlin", "Europe/Amsterdam",
		"Europe/Brussels", "Europe/Zurich", "Europe/Vienna", "Europe/Rome", "Europe/Madrid", "Europe/Stockholm", "Europe/Oslo",
		"Europe/Copenhagen", "Europe/Helsinki", "Europe/Warsaw", "Europe/Prague", "Europe/Athens", "Europe/Istanbul", "Europe/Moscow",
		"America/New_York", "America/Chicago", "America/Denver", "America/Phoenix", "America/Los_Angeles", "America/Anchorage",
		"America/Toronto", "America/Vancouver", "America/Mexico_City", "America/Sao_Paulo", "America/Buenos_Aires",
		"Africa/Johannesburg", "Africa/Lagos", "Africa/Cairo", "Asia/Dubai", "Asia/Kolkata", "Asia/Singapore", "Asia/Hong_Kong",
		"Asia/Shanghai", "Asia/Tokyo", "Asia/Seoul", "Australia/Perth", "Australia/Sydney", "Pacific/Auckland"}
}
