package setup

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"coffer.dev/coffer/appliance/app"
	"coffer.dev/coffer/appliance/jobs"
	"coffer.dev/coffer/appliance/jobs/schedule"
	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/store/crypt"
)

// Options configure a Wizard.
type Options struct {
	// Dir is the appliance's state directory.
	Dir string
	// PoolDir, when set, is a directory that stands in for the storage
	// pool (the demo, a development machine); the storage step offers it.
	PoolDir string
	// Disks and Pools find disks and build RAID pools (the appliance
	// image); when nil the storage step offers only a directory.
	Disks DiskSource
	Pools PoolMaker
	// Jobs are the options of the job services the wizard starts.
	Jobs jobs.Options
	Log  *slog.Logger
	// OnComplete receives the running appliance when the wizard
	// finishes (the server starts serving the whole UI with it).
	OnComplete func(*app.App, *app.Services)
}

// Wizard is the setup wizard's backend. Its methods are safe for
// concurrent use.
type Wizard struct {
	opt Options

	mu  sync.Mutex
	st  State
	app *app.App
	svc *app.Services
}

// ErrOrder means a step was attempted before the steps it needs.
var ErrOrder = errors.New("finish the earlier steps first")

// ErrComplete means setup is over; the wizard changes nothing.
var ErrComplete = errors.New("the appliance is already set up")

// Open loads the wizard's state; if the store exists already (a
// restart after the encryption step) it is reopened, and the job
// services too once the vCenter step is done. A finished setup opens
// nothing: the caller opens the appliance itself.
func Open(ctx context.Context, o Options) (*Wizard, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	st, err := loadState(o.Dir)
	if err != nil {
		return nil, err
	}
	w := &Wizard{opt: o, st: st}
	if !st.Completed.IsZero() {
		// A finished setup: the caller opens the appliance itself.
		return w, nil
	}
	if _, ok := st.Done[StepStorage]; ok {
		if _, err := os.Stat(filepath.Join(o.Dir, app.IDFile)); err == nil {
			if err := w.openApp(ctx); err != nil {
				return nil, err
			}
		}
	}
	if _, ok := st.Done[StepVCenter]; ok && w.app != nil {
		if err := w.startServices(ctx); err != nil {
			w.Close()
			return nil, err
		}
	}
	return w, nil
}

func (w *Wizard) openApp(ctx context.Context) error {
	a, err := app.Open(ctx, w.opt.Dir, w.opt.Log)
	if err != nil {
		return fmt.Errorf("open the new store: %w", err)
	}
	w.app = a
	return nil
}

func (w *Wizard) startServices(ctx context.Context) error {
	// The services outlive the request that starts them (the vCenter
	// step's): only Close stops them.
	svc, err := w.app.StartServices(context.WithoutCancel(ctx), w.opt.Jobs)
	if err != nil {
		return fmt.Errorf("start the job services: %w", err)
	}
	w.svc = svc
	return nil
}

// Close releases what the wizard opened, unless Finish handed it over.
func (w *Wizard) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var err error
	if w.svc != nil && w.st.Completed.IsZero() {
		err = w.svc.Close()
		w.svc = nil
	}
	if w.app != nil && w.st.Completed.IsZero() {
		err = errors.Join(err, w.app.Close())
		w.app = nil
	}
	return err
}

// State returns a copy of the wizard's state.
func (w *Wizard) State() State {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.st
	st.Done = make(map[Step]time.Time, len(w.st.Done))
	for k, v := range w.st.Done {
		st.Done[k] = v
	}
	st.Challenge = slices.Clone(w.st.Challenge)
	return st
}

// Complete reports whether setup has finished.
func (w *Wizard) Complete() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.st.Completed.IsZero()
}

// Current is the first step not done yet.
func (w *Wizard) Current() Step {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.currentLocked()
}

func (w *Wizard) currentLocked() Step {
	for _, s := range Steps {
		if _, ok := w.st.Done[s]; !ok {
			return s
		}
	}
	return StepSummary
}

// Reachable reports whether the administrator may open step now: every
// earlier step is done.
func (w *Wizard) Reachable(step Step) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reachableLocked(step)
}

func (w *Wizard) reachableLocked(step Step) bool {
	for _, s := range Steps {
		if s == step {
			return true
		}
		if _, ok := w.st.Done[s]; !ok {
			return false
		}
	}
	return false
}

// begin checks that step may be changed now; it holds w.mu on success.
func (w *Wizard) begin(step Step) error {
	w.mu.Lock()
	if !w.st.Completed.IsZero() {
		w.mu.Unlock()
		return ErrComplete
	}
	if !w.reachableLocked(step) {
		w.mu.Unlock()
		return fmt.Errorf("%s: %w", step.Title(), ErrOrder)
	}
	return nil
}

// doneLocked records step and saves the state.
func (w *Wizard) doneLocked(step Step) error {
	w.st.Done[step] = time.Now().UTC()
	return saveState(w.opt.Dir, w.st)
}

// AdminDone records that the administrator account exists (the UI made it).
func (w *Wizard) AdminDone() error {
	if err := w.begin(StepAdmin); err != nil {
		return err
	}
	defer w.mu.Unlock()
	return w.doneLocked(StepAdmin)
}

// SaveNetwork validates and records the network settings.
func (w *Wizard) SaveNetwork(n Network) error {
	if err := n.Validate(); err != nil {
		return err
	}
	if n.Mode == "dhcp" {
		n.Address, n.Gateway = "", ""
	}
	if err := w.begin(StepNetwork); err != nil {
		return err
	}
	defer w.mu.Unlock()
	old := w.st.Network
	w.st.Network = n
	if err := w.doneLocked(StepNetwork); err != nil {
		w.st.Network = old
		return err
	}
	return nil
}

// StorageOffer is what the storage step can offer on this machine.
type StorageOffer struct {
	Directory string `json:"directory,omitempty"`
	Disks     []Disk `json:"disks"`
	// CanBuildRAID: the appliance can build a RAID pool here.
	CanBuildRAID bool   `json:"can_build_raid"`
	Recommended  string `json:"recommended,omitempty"`
	Problem      string `json:"problem,omitempty"`
}

// StorageOffer lists the choices of the storage step.
func (w *Wizard) StorageOffer(ctx context.Context) StorageOffer {
	o := StorageOffer{Directory: w.opt.PoolDir, CanBuildRAID: w.opt.Disks != nil && w.opt.Pools != nil}
	if w.opt.Disks != nil {
		ds, err := w.opt.Disks.Disks(ctx)
		if err != nil {
			o.Problem = "cannot list the disks: " + err.Error()
		}
		for _, d := range ds {
			if !d.System {
				o.Disks = append(o.Disks, d)
			}
		}
		o.Recommended = Recommend(len(o.Disks))
	}
	return o
}

// PlanPool computes a RAID plan on this machine's disks.
func (w *Wizard) PlanPool(ctx context.Context, level string, disks []string) (PoolPlan, error) {
	if w.opt.Disks == nil {
		return PoolPlan{}, errors.New("this appliance cannot build RAID pools (no disk discovery): use a directory")
	}
	all, err := w.opt.Disks.Disks(ctx)
	if err != nil {
		return PoolPlan{}, fmt.Errorf("list the disks: %w", err)
	}
	return Plan(level, disks, all)
}

// StorageRequest is the storage step's form.
type StorageRequest struct {
	Kind  string   // "directory" or "raid"
	Path  string   // directory
	Level string   // raid
	Disks []string // raid
	// ConfirmErase must list every chosen disk that holds data (and be
	// true for RAID at all): nothing is written without it.
	ConfirmErase bool
}

// SaveStorage prepares the pool: checks the directory, or builds the
// RAID after the explicit confirmation.
func (w *Wizard) SaveStorage(ctx context.Context, r StorageRequest) error {
	if err := w.begin(StepStorage); err != nil {
		return err
	}
	defer w.mu.Unlock()
	if w.app != nil {
		return errors.New("the store exists already on " + w.st.Storage.Path + ": its location cannot change now")
	}
	var s Storage
	switch r.Kind {
	case "directory":
		if w.opt.PoolDir == "" && w.opt.Pools != nil {
			return FieldErrors{"kind": "this appliance keeps its store on a RAID pool of its disks"}
		}
		path := r.Path
		if path == "" {
			path = w.opt.PoolDir
		}
		free, err := checkDirectory(path)
		if err != nil {
			return FieldErrors{"path": err.Error()}
		}
		s = Storage{Kind: "directory", Path: filepath.Clean(path), Free: free}
	case "raid":
		if w.opt.Disks == nil || w.opt.Pools == nil {
			return FieldErrors{"kind": "this appliance cannot build RAID pools: use a directory"}
		}
		all, err := w.opt.Disks.Disks(ctx)
		if err != nil {
			return fmt.Errorf("list the disks: %w", err)
		}
		plan, err := Plan(r.Level, r.Disks, all)
		if err != nil {
			return FieldErrors{"disks": err.Error()}
		}
		if !r.ConfirmErase {
			return FieldErrors{"confirm": "confirm that every chosen disk is erased"}
		}
		mp, err := w.opt.Pools.CreatePool(ctx, plan)
		if err != nil {
			return fmt.Errorf("build the %s pool: %w", plan.Level, err)
		}
		s = Storage{Kind: "raid", Path: mp, Pool: plan}
	default:
		return FieldErrors{"kind": "choose where the store lives"}
	}
	if err := app.SetPool(w.opt.Dir, s.Path); err != nil {
		return err
	}
	old := w.st.Storage
	w.st.Storage = s
	if err := w.doneLocked(StepStorage); err != nil {
		w.st.Storage = old
		return err
	}
	return nil
}

// Recovery is the encryption step's page: the recovery key (only until
// it is confirmed) and which groups to type back.
type Recovery struct {
	Key       string `json:"key"`
	Challenge []int  `json:"challenge"`
	// Sealing says where the master key is kept.
	Sealing string `json:"sealing"`
}

// keySealing says how the master key is protected at rest.
const keySealing = "a key file on the system disk readable only by the appliance (TPM sealing comes with the appliance image's trust support)"

// CreateKey makes the master key and the store on the pool (once) and
// returns the recovery key with the groups to type back. Until the
// administrator confirms, the same key is shown again (a reload of the
// page does not lose it); afterwards never.
func (w *Wizard) CreateKey(ctx context.Context) (Recovery, error) {
	if err := w.begin(StepEncryption); err != nil {
		return Recovery{}, err
	}
	defer w.mu.Unlock()
	if _, ok := w.st.Done[StepEncryption]; ok {
		return Recovery{}, errors.New("the recovery key was confirmed and is not shown again")
	}
	if w.app == nil {
		if err := app.Init(w.opt.Dir); err != nil {
			return Recovery{}, fmt.Errorf("create the store: %w", err)
		}
		if err := w.openApp(ctx); err != nil {
			return Recovery{}, err
		}
	}
	key, err := crypt.ReadKeyFile(filepath.Join(w.opt.Dir, app.KeyFile))
	if err != nil {
		return Recovery{}, err
	}
	if len(w.st.Challenge) == 0 {
		groups := len(strings.Split(crypt.EncodeRecoveryKey(key), "-"))
		a, err := rand.Int(rand.Reader, big.NewInt(int64(groups)))
		if err != nil {
			return Recovery{}, err
		}
		b, err := rand.Int(rand.Reader, big.NewInt(int64(groups-1)))
		if err != nil {
			return Recovery{}, err
		}
		x, y := int(a.Int64())+1, int(b.Int64())+1
		if y >= x {
			y++
		}
		w.st.Challenge = []int{min(x, y), max(x, y)}
		w.st.KeyShown = time.Now().UTC()
		if err := saveState(w.opt.Dir, w.st); err != nil {
			return Recovery{}, err
		}
	}
	return Recovery{Key: crypt.EncodeRecoveryKey(key), Challenge: slices.Clone(w.st.Challenge), Sealing: keySealing}, nil
}

// ConfirmRecoveryKey checks the groups the administrator typed back
// (answers[i] for Challenge[i]); case, spaces and the letters people mix
// up with digits are forgiven.
func (w *Wizard) ConfirmRecoveryKey(answers []string) error {
	if err := w.begin(StepEncryption); err != nil {
		return err
	}
	defer w.mu.Unlock()
	if w.app == nil || len(w.st.Challenge) == 0 {
		return fmt.Errorf("show the recovery key first: %w", ErrOrder)
	}
	key, err := crypt.ReadKeyFile(filepath.Join(w.opt.Dir, app.KeyFile))
	if err != nil {
		return err
	}
	groups := strings.Split(crypt.EncodeRecoveryKey(key), "-")
	if len(answers) != len(w.st.Challenge) {
		return FieldErrors{"answer": fmt.Sprintf("type groups %d and %d of the recovery key", w.st.Challenge[0], w.st.Challenge[1])}
	}
	fe := FieldErrors{}
	for i, g := range w.st.Challenge {
		if normaliseGroup(answers[i]) != groups[g-1] {
			fe[fmt.Sprintf("answer%d", i)] = fmt.Sprintf("group %d does not match the recovery key", g)
		}
	}
	if len(fe) > 0 {
		return fe
	}
	return w.doneLocked(StepEncryption)
}

func normaliseGroup(s string) string {
	s = strings.ToUpper(strings.Join(strings.Fields(s), ""))
	return strings.NewReplacer("I", "1", "L", "1", "O", "0", "-", "").Replace(s)
}

// ProbeVCenter shows the certificate a vCenter presents, to be trusted
// explicitly.
func (w *Wizard) ProbeVCenter(ctx context.Context, url string) (*vsphere.Certificate, error) {
	if url == "" {
		return nil, FieldErrors{"url": "give the vCenter or ESXi address"}
	}
	return vsphere.ProbeCertificate(ctx, url, vsphere.Trust{})
}

// VCenterRequest is the vCenter step's form.
type VCenterRequest struct {
	URL, Username, Password string
	// Thumbprint is the SHA-256 thumbprint the administrator trusted
	// (from ProbeVCenter); UseCA trusts the system's CAs instead.
	Thumbprint string
	UseCA      bool
}

// ConnectVCenter tests the connection with the trusted certificate,
// reads the inventory and stores the connection (the password in the
// encrypted vault).
func (w *Wizard) ConnectVCenter(ctx context.Context, r VCenterRequest) (VCenter, error) {
	fe := FieldErrors{}
	if r.URL == "" {
		fe["url"] = "give the vCenter or ESXi address"
	}
	if r.Username == "" {
		fe["username"] = "give a user name"
	}
	if r.Password == "" {
		fe["password"] = "give the password"
	}
	if r.Thumbprint == "" && !r.UseCA {
		fe["thumbprint"] = "trust the certificate's thumbprint (or a CA) first"
	}
	if len(fe) > 0 {
		return VCenter{}, fe
	}
	u, err := vsphere.ParseURL(r.URL)
	if err != nil {
		return VCenter{}, FieldErrors{"url": err.Error()}
	}
	if err := w.begin(StepVCenter); err != nil {
		return VCenter{}, err
	}
	defer w.mu.Unlock()
	trust := vsphere.Trust{UseCA: r.UseCA}
	if r.Thumbprint != "" {
		trust.Thumbprints = map[string]string{u.Hostname(): strings.TrimSpace(r.Thumbprint)}
	}
	ep := vsphere.Endpoint{URL: r.URL, Username: r.Username, Password: r.Password, Trust: trust}
	c, err := vsphere.Connect(ctx, ep, w.opt.Log)
	if err != nil {
		return VCenter{}, fmt.Errorf("test connection: %w", err)
	}
	inv, err := c.Inventory(ctx)
	_ = c.Logout(ctx)
	if err != nil {
		return VCenter{}, fmt.Errorf("test connection: read the inventory: %w", err)
	}
	if err := w.app.SetVCenter(ctx, ep); err != nil {
		return VCenter{}, err
	}
	vc := VCenter{URL: r.URL, Username: r.Username, Thumbprint: r.Thumbprint, VMs: len(inv.VMs), Hosts: len(inv.Hosts)}
	if w.svc == nil {
		if err := w.startServices(ctx); err != nil {
			return VCenter{}, err
		}
	}
	old := w.st.VCenter
	w.st.VCenter = vc
	if err := w.doneLocked(StepVCenter); err != nil {
		w.st.VCenter = old
		return VCenter{}, err
	}
	return vc, nil
}

// DefaultPolicy is the policy the wizard proposes: all VMs, nightly at
// 22:00 in the window 22:00–06:00, 14 daily / 8 weekly / 12 monthly.
func DefaultPolicy(tz string) jobs.Policy {
	p := jobs.Policy{Name: "Nightly", Enabled: true, Selection: jobs.Selection{All: true}, TimeZone: tz,
		Retention: jobs.DefaultRetention(), Consistency: jobs.DefaultConsistency}
	p.Schedule = schedule.MustParse("22:00")
	if w, err := schedule.ParseWindow("22:00-06:00"); err == nil {
		p.Window = w
	}
	return p
}

// Services is the running job services (after the vCenter step).
func (w *Wizard) Services() *app.Services {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.svc
}

// PreviewPolicy lists the VMs p would protect now.
func (w *Wizard) PreviewPolicy(ctx context.Context, p jobs.Policy) ([]vsphere.VM, error) {
	svc := w.Services()
	if svc == nil {
		return nil, fmt.Errorf("connect the vCenter first: %w", ErrOrder)
	}
	inv, err := svc.Inventory(ctx)
	if err != nil {
		return nil, err
	}
	var out []vsphere.VM
	for _, vm := range inv.VMs {
		if !vm.Template && p.Matches(vm) {
			out = append(out, vm)
		}
	}
	slices.SortFunc(out, func(a, b vsphere.VM) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// SavePolicy creates (or, going back, replaces) the first policy.
func (w *Wizard) SavePolicy(ctx context.Context, p jobs.Policy) (jobs.Policy, error) {
	if err := w.begin(StepPolicy); err != nil {
		return jobs.Policy{}, err
	}
	defer w.mu.Unlock()
	if w.svc == nil {
		return jobs.Policy{}, fmt.Errorf("connect the vCenter first: %w", ErrOrder)
	}
	var saved jobs.Policy
	var err error
	if w.st.PolicyID != "" {
		p.ID = w.st.PolicyID
		saved, err = w.svc.UpdatePolicy(p)
	} else {
		saved, err = w.svc.CreatePolicy(p)
	}
	if err != nil {
		return jobs.Policy{}, err
	}
	w.st.PolicyID = saved.ID
	return saved, w.doneLocked(StepPolicy)
}

// SaveOptions records the optional step (tape, replication). Neither is
// available in this release; the step says so and records nothing else.
func (w *Wizard) SaveOptions() error {
	if err := w.begin(StepOptions); err != nil {
		return err
	}
	defer w.mu.Unlock()
	return w.doneLocked(StepOptions)
}

// Finish completes setup and hands the running appliance over. With
// backupNow the first policy runs at once; its job ID is returned.
func (w *Wizard) Finish(ctx context.Context, backupNow bool) (string, error) {
	if err := w.begin(StepSummary); err != nil {
		return "", err
	}
	for _, s := range Steps[:len(Steps)-1] {
		if _, ok := w.st.Done[s]; !ok {
			w.mu.Unlock()
			return "", fmt.Errorf("%s: %w", s.Title(), ErrOrder)
		}
	}
	w.st.Done[StepSummary] = time.Now().UTC()
	w.st.Completed = time.Now().UTC()
	var job string
	if backupNow && w.st.PolicyID != "" {
		id, err := w.svc.RunPolicy(ctx, w.st.PolicyID, jobs.TriggerManual)
		if err != nil {
			w.opt.Log.Warn("first backup could not start", "err", err)
		}
		job = id
		w.st.FirstJob = id
	}
	err := saveState(w.opt.Dir, w.st)
	a, svc := w.app, w.svc
	w.mu.Unlock()
	if err != nil {
		return job, err
	}
	if w.opt.OnComplete != nil {
		w.opt.OnComplete(a, svc)
	}
	return job, nil
}

// Appliance returns the app and services after Finish (for the server).
func (w *Wizard) Appliance() (*app.App, *app.Services) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.app, w.svc
}
