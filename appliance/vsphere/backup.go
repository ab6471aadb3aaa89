package vsphere

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"

	"coffer.dev/coffer/store"
	"coffer.dev/coffer/store/point"
)

// ConsistencyMode is a policy's demand on how consistent a VM's point
// must be.
type ConsistencyMode string

const (
	// RequireApplication fails the backup when the guest cannot be
	// quiesced.
	RequireApplication ConsistencyMode = "application-required"
	// PreferApplication falls back to a crash-consistent snapshot, and
	// says so on the point and in the job, when quiescing fails.
	PreferApplication ConsistencyMode = "application-preferred"
	// CrashOnly never quiesces.
	CrashOnly ConsistencyMode = "crash"
)

// Valid reports whether m is one of the modes.
func (m ConsistencyMode) Valid() bool {
	return m == RequireApplication || m == PreferApplication || m == CrashOnly
}

// Hooks are commands run in the guest around the snapshot.
type Hooks struct {
	// PreFreeze runs before the snapshot (flush a database).
	PreFreeze string `json:"pre_freeze,omitempty"`
	// PostThaw runs right after the snapshot exists.
	PostThaw string `json:"post_thaw,omitempty"`
	// PostBackup runs only after the point is committed (truncate logs,
	// tell the application it was backed up).
	PostBackup string `json:"post_backup,omitempty"`
	// Timeout bounds each command (default 10 minutes).
	Timeout time.Duration `json:"timeout,omitempty"`
}

func (h Hooks) any() bool { return h.PreFreeze != "" || h.PostThaw != "" || h.PostBackup != "" }

// SourceName is the store source of a VM's points: its instance UUID, so
// that a renamed or migrated VM keeps its history.
func SourceName(instanceUUID string) string { return "vm:" + strings.ToLower(instanceUUID) }

// BackupRequest asks for one VM's recovery point.
type BackupRequest struct {
	InstanceUUID string
	Consistency  ConsistencyMode
	Hooks        Hooks
	Guest        *GuestCredentials
	// VerifyCBT reads every disk in full and checks that changed block
	// tracking would have found every change.
	VerifyCBT bool
	// NoCatalog asks the appliance to skip the file catalog and the
	// recoverability check after the backup (the engine itself ignores it).
	NoCatalog   bool
	Labels      map[string]string
	RetainUntil time.Time
	// Progress, when set, is called now and then with the bytes read.
	Progress func(Progress)
	// Acquire, when set, is called before each disk is read and returns
	// a release function: the job engine's cap on parallel disk streams.
	Acquire func(ctx context.Context) (func(), error)
}

// Progress reports a running backup.
type Progress struct {
	VM        string `json:"vm"`
	Disk      string `json:"disk"`
	ToRead    int64  `json:"to_read_bytes"`
	Read      int64  `json:"read_bytes"`
	DisksDone int    `json:"disks_done"`
	Disks     int    `json:"disks"`
}

// DiskResult is what happened to one disk.
type DiskResult struct {
	Name     string `json:"name"` // "scsi0:0"
	Label    string `json:"label"`
	File     string `json:"file"`
	Capacity int64  `json:"capacity_bytes"`
	// Method: incremental, full, or skipped.
	Method string `json:"method"`
	// Reason explains a full read or a skip.
	Reason string `json:"reason,omitempty"`
	// Changed is what changed block tracking reported (incremental) or
	// the allocated bytes (full).
	Changed     int64          `json:"changed_bytes"`
	Read        ReadStats      `json:"read"`
	Stats       point.Stats    `json:"stats"`
	CBTMismatch []store.Extent `json:"cbt_mismatch,omitempty"`
}

// Result is the outcome of one VM's backup.
type Result struct {
	VM          VM                `json:"vm"`
	Point       point.ID          `json:"point,omitempty"`
	Consistency point.Consistency `json:"consistency,omitempty"`
	Warnings    []string          `json:"warnings,omitempty"`
	// Notes are informational (change tracking switched on for a VM's
	// first backup).
	Notes    []string     `json:"notes,omitempty"`
	Disks    []DiskResult `json:"disks"`
	Started  time.Time    `json:"started"`
	Finished time.Time    `json:"finished"`
	// SnapshotRemoved is false only when removal failed every retry (the
	// next sweep tries again).
	SnapshotRemoved bool   `json:"snapshot_removed"`
	Snapshot        string `json:"snapshot,omitempty"`
	// CBTEnabled is true when this backup switched change tracking on.
	CBTEnabled bool `json:"cbt_enabled,omitempty"`
	// CBTMismatch is true when a verification read found changes that
	// change tracking missed.
	CBTMismatch bool   `json:"cbt_mismatch,omitempty"`
	PostBackup  string `json:"post_backup,omitempty"` // the post-backup hook's outcome
	Read        int64  `json:"read_bytes"`
	Stored      int64  `json:"stored_bytes"`
	// Recoverability is the verdict of the check that follows the
	// backup (file catalog, filesystem metadata, sample reads):
	// verified, warning or failed; "" when it did not run.
	Recoverability string `json:"recoverability,omitempty"`
	CatalogEntries int    `json:"catalog_entries,omitempty"`
}

func (r *Result) warn(format string, a ...any) {
	r.Warnings = append(r.Warnings, fmt.Sprintf(format, a...))
}

// Engine backs up VMs of one vCenter or ESXi into a store.
type Engine struct {
	Client *Client
	Store  *store.Store
	// Transport reads frozen disks (default: FolderTransport).
	Transport DiskTransport
	// Guest runs hook commands (default: VMware Tools guest operations).
	Guest GuestRunner
	// ApplianceID marks this appliance's snapshots.
	ApplianceID string
	Log         *slog.Logger
	// SnapshotTimeout bounds creating or removing one snapshot (30 min).
	SnapshotTimeout time.Duration
	// RemoveRetries is how often a failed removal is retried (3), waiting
	// RetryDelay × attempt in between (2 s).
	RemoveRetries int
	RetryDelay    time.Duration

	mu     sync.Mutex
	active map[string]bool // snapshots of running backups
}

func (e *Engine) log() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (e *Engine) transport() DiskTransport {
	if e.Transport != nil {
		return e.Transport
	}
	return &FolderTransport{Client: e.Client}
}

func (e *Engine) guest() GuestRunner {
	if e.Guest != nil {
		return e.Guest
	}
	return &ToolsGuestRunner{Client: e.Client}
}

// diskMeta is what a point records of each disk, to base the next
// backup on: the changeId at the snapshot and the device identity.
type diskMeta struct {
	Key       int32  `json:"key"`
	Label     string `json:"label"`
	File      string `json:"file"`
	Datastore string `json:"datastore"`
	Capacity  int64  `json:"capacity_bytes"`
	Thin      bool   `json:"thin"`
	Mode      string `json:"mode"`
	RDM       string `json:"rdm,omitempty"`
	ChangeID  string `json:"change_id"`
	UUID      string `json:"uuid,omitempty"`
	Method    string `json:"method"`
}

// vmMeta is the "vsphere.vm" metadata of a point.
type vmMeta struct {
	Server     string    `json:"server"`
	ServerName string    `json:"server_name"`
	VM         VM        `json:"vm"`
	Snapshot   time.Time `json:"snapshot_time"`
	Skipped    []string  `json:"skipped_disks,omitempty"`
}

// configMeta is the "vsphere.config" metadata: the VM's configuration at
// the snapshot, in the vSphere API's own XML form (restores rebuild the
// VM from it).
type configMeta struct {
	Format string `json:"format"`
	XML    string `json:"xml"`
	// VMXPath and VMX are the VM's .vmx file as the datastore held it at
	// the backup.
	VMXPath string `json:"vmx_path,omitempty"`
	VMX     string `json:"vmx,omitempty"`
}

// BackupVM backs up one VM: change tracking on, guest hooks, a
// (quiesced) snapshot, the changed extents of every disk read into a new
// point, the configuration saved, the snapshot removed — always.
func (e *Engine) BackupVM(ctx context.Context, req BackupRequest) (res *Result, err error) {
	res = &Result{Started: time.Now().UTC()}
	defer func() { res.Finished = time.Now().UTC() }()
	if req.Consistency == "" {
		req.Consistency = PreferApplication
	}
	if !req.Consistency.Valid() {
		return res, fmt.Errorf("backup: consistency %q is not one of %s, %s, %s", req.Consistency, RequireApplication, PreferApplication, CrashOnly)
	}
	o, err := e.Client.findVM(ctx, req.InstanceUUID, vmProps)
	if err != nil {
		return res, err
	}
	vm := describeVM(o, e.datastoreNames(ctx, o))
	if h := o.Runtime.Host; h != nil {
		var ho mo.HostSystem
		if err := object.NewCommon(e.Client.vim, *h).Properties(ctx, *h, []string{"name"}, &ho); err == nil {
			vm.Host = ho.Name
		}
	}
	var hostRef types.ManagedObjectReference
	if o.Runtime.Host != nil {
		hostRef = *o.Runtime.Host
	}
	res.VM = vm
	log := e.log().With("vm", vm.Name, "uuid", vm.InstanceUUID)
	if vm.Template {
		return res, fmt.Errorf("back up %s: it is a template", vm.Name)
	}
	vmo := object.NewVirtualMachine(e.Client.vim, o.Self)
	dc, err := e.Client.DatacenterPath(ctx, o.Self)
	if err != nil {
		return res, err
	}
	if _, err := e.SweepSnapshots(ctx, vm.InstanceUUID); err != nil {
		log.Warn("could not check for leftover snapshots", "err", err)
	}

	// 1. Changed block tracking.
	if !vm.CBT {
		if err := e.enableCBT(ctx, vmo); err != nil {
			res.warn("could not enable changed block tracking (%v): every backup reads whole disks", err)
		} else {
			res.CBTEnabled = true
			msg := "changed block tracking was off and has been enabled: this backup reads the whole disks"
			if last, _ := e.Store.Latest(SourceName(vm.InstanceUUID)); last != nil {
				res.warn("%s", msg) // someone switched it off since the last backup
			} else {
				res.Notes = append(res.Notes, msg)
			}
			log.Info("enabled changed block tracking")
		}
	}

	// 2. Hooks and the snapshot.
	running := vm.PowerState == string(types.VirtualMachinePowerStatePoweredOn)
	windows := strings.HasPrefix(strings.ToLower(vm.GuestID), "win")
	hooksOK := running && vm.ToolsRunning() && req.Guest != nil
	if req.Hooks.any() && !hooksOK {
		switch {
		case !running:
			res.warn("guest hooks skipped: the VM is %s", vm.PowerState)
		case !vm.ToolsRunning():
			res.warn("guest hooks skipped: VMware Tools are not running in the guest")
		default:
			res.warn("guest hooks skipped: no guest credentials are set for this VM")
		}
	}
	preFailed := false
	if hooksOK && req.Hooks.PreFreeze != "" {
		if err := e.runHook(ctx, o.Self, windows, *req.Guest, req.Hooks, "pre-freeze", req.Hooks.PreFreeze); err != nil {
			preFailed = true
			if req.Consistency == RequireApplication {
				return res, fmt.Errorf("back up %s: %w (the policy requires application consistency)", vm.Name, err)
			}
			res.warn("%v: the point is crash-consistent", err)
		}
	}
	quiesce := running && vm.ToolsRunning() && req.Consistency != CrashOnly && !preFailed
	if running && !vm.ToolsRunning() && req.Consistency == RequireApplication {
		return res, fmt.Errorf("back up %s: VMware Tools are not running, so the guest cannot be quiesced (the policy requires application consistency)", vm.Name)
	}
	if running && !vm.ToolsRunning() && req.Consistency == PreferApplication {
		res.warn("VMware Tools are not running: the snapshot is crash-consistent")
	}
	snapCtx, cancel := context.WithTimeout(ctx, e.snapshotTimeout())
	snap, err := e.createSnapshot(snapCtx, vmo, quiesce)
	cancel()
	switch {
	case err == nil && quiesce:
		res.Consistency = point.FileSystemConsistent
		if windows || req.Hooks.PreFreeze != "" {
			res.Consistency = point.ApplicationConsistent
		}
	case err == nil && vm.PowerState == string(types.VirtualMachinePowerStatePoweredOff):
		res.Consistency = point.PoweredOff
	case err == nil && !running:
		// Suspended: the disks are as at a power cut (the memory image
		// that would make them consistent is not backed up).
		res.Consistency = point.CrashConsistent
		if req.Consistency != CrashOnly {
			res.warn("the VM is suspended: it cannot be quiesced, the point is crash-consistent")
		}
	case err == nil:
		res.Consistency = point.CrashConsistent
	case quiesce && req.Consistency == PreferApplication && ctx.Err() == nil:
		res.warn("quiescing the guest failed (%s): the point is crash-consistent", faultText(err))
		log.Warn("quiesced snapshot failed, taking a crash-consistent one", "err", err)
		snapCtx, cancel := context.WithTimeout(ctx, e.snapshotTimeout())
		snap, err = e.createSnapshot(snapCtx, vmo, false)
		cancel()
		res.Consistency = point.CrashConsistent
	}
	if err == nil {
		e.setActive(snap, true)
		res.Snapshot = snap.Value
	}
	if hooksOK && req.Hooks.PostThaw != "" { // also after a failed pre-freeze: the guest must thaw
		if herr := e.runHook(ctx, o.Self, windows, *req.Guest, req.Hooks, "post-thaw", req.Hooks.PostThaw); herr != nil {
			res.warn("%v", herr)
		}
	}
	if err != nil {
		res.Consistency = ""
		if quiesce && req.Consistency == RequireApplication {
			return res, fmt.Errorf("back up %s: quiesced snapshot failed: %s (the policy requires application consistency)", vm.Name, faultText(err))
		}
		return res, fmt.Errorf("back up %s: snapshot: %s", vm.Name, faultText(err))
	}
	defer func() {
		rerr := e.removeSnapshot(ctx, vm.Name, snap)
		e.setActive(snap, false)
		res.SnapshotRemoved = rerr == nil
		if rerr != nil {
			res.warn("%v: it will be removed by the next sweep", rerr)
			log.Error("backup snapshot left behind", "snapshot", snap.Value, "err", rerr)
		}
	}()

	// 3. The disks as the snapshot froze them.
	var so mo.VirtualMachineSnapshot
	if err := object.NewCommon(e.Client.vim, snap).Properties(ctx, snap, []string{"config"}, &so); err != nil {
		return res, fmt.Errorf("back up %s: read the snapshot's configuration: %w", vm.Name, err)
	}
	snapTime := time.Now().UTC()
	disks := disksOf(so.Config.Hardware.Device, e.datastoreNames(ctx, o))
	cfgXML, err := xml.Marshal(so.Config)
	if err != nil {
		return res, fmt.Errorf("back up %s: encode its configuration: %w", vm.Name, err)
	}

	source := SourceName(vm.InstanceUUID)
	base, err := e.Store.Latest(source)
	if err != nil && !errors.Is(err, store.ErrNoPoint) {
		return res, fmt.Errorf("back up %s: find the previous point: %w", vm.Name, err)
	}
	meta := vmMeta{Server: e.Client.InstanceUUID(), ServerName: e.Client.u.Hostname(), VM: vm, Snapshot: snapTime}
	meta.VM.Disks = disks
	labels := map[string]string{"vm": vm.Name, "power_state": vm.PowerState}
	for k, v := range req.Labels {
		labels[k] = v
	}
	spec := store.BackupSpec{
		Source: source, Consistency: res.Consistency, Labels: labels,
		Metadata: map[string]json.RawMessage{}, RetainUntil: req.RetainUntil,
	}
	if base != nil {
		spec.Base = base.ID
	}
	b, err := e.Store.NewBackup(ctx, spec)
	if err != nil {
		return res, fmt.Errorf("back up %s: %w", vm.Name, err)
	}
	committed := false
	defer func() {
		if !committed {
			b.Abort()
		}
	}()
	prog := &progress{fn: req.Progress, p: Progress{VM: vm.Name, Disks: len(disks)}}
	cbtAreas := map[string][]store.Extent{}
	for _, d := range disks {
		dr := DiskResult{Name: d.Controller, Label: d.Label, File: d.File, Capacity: d.Capacity}
		if why := d.SkipReason(); why != "" {
			dr.Method, dr.Reason = "skipped", why
			res.warn("disk %s (%s) not backed up: %s", d.Label, d.File, why)
			meta.Skipped = append(meta.Skipped, d.Controller+": "+why)
			res.Disks = append(res.Disks, dr)
			prog.diskDone()
			continue
		}
		if err := e.backupDisk(ctx, b, base, vmo, snap, dc, hostRef, d, req, &dr, prog, cbtAreas, log); err != nil {
			return res, fmt.Errorf("back up %s: %w", vm.Name, err)
		}
		res.Read += dr.Read.Bytes
		res.Disks = append(res.Disks, dr)
		prog.diskDone()
	}
	mj, err := json.Marshal(meta)
	if err != nil {
		return res, err
	}
	cm := configMeta{Format: "vim25-xml", XML: string(cfgXML)}
	if so.Config.Files.VmPathName != "" {
		cm.VMXPath = so.Config.Files.VmPathName
		vmx, err := e.Client.datastoreFile(ctx, dc, cm.VMXPath, 4<<20)
		if err != nil {
			res.warn("the .vmx file was not saved (%v): the configuration above is", err)
		} else {
			cm.VMX = string(vmx)
		}
	}
	cj, err := json.Marshal(cm)
	if err != nil {
		return res, err
	}
	if err := errors.Join(b.SetMetadata("vsphere.vm", mj), b.SetMetadata("vsphere.config", cj)); err != nil {
		return res, fmt.Errorf("back up %s: %w", vm.Name, err)
	}
	backedUp := 0
	for _, d := range res.Disks {
		if d.Method != "skipped" {
			backedUp++
		}
	}
	if backedUp == 0 {
		return res, fmt.Errorf("back up %s: none of its %d disks can be backed up through a snapshot", vm.Name, len(disks))
	}
	p, err := b.Commit(ctx)
	if err != nil {
		return res, fmt.Errorf("back up %s: %w", vm.Name, err)
	}
	committed = true
	res.Point = p.ID
	res.Stored = p.Stats.Stored
	for i := range res.Disks {
		if d, ok := p.Disk(res.Disks[i].Name); ok {
			res.Disks[i].Stats = d.Stats
		}
	}
	log.Info("point committed", "point", p.ID, "consistency", res.Consistency, "read", res.Read, "stored", res.Stored)

	// 7. The verification read: compare with what CBT reported.
	if req.VerifyCBT && base != nil {
		for i := range res.Disks {
			dr := &res.Disks[i]
			areas, ok := cbtAreas[dr.Name]
			if !ok || dr.Method != "full" {
				continue
			}
			diff, err := e.Store.DifferingRanges(ctx, base, p, dr.Name)
			if err != nil {
				res.warn("change tracking check of %s: %v", dr.Name, err)
				continue
			}
			dr.CBTMismatch = missed(diff, areas)
			if len(dr.CBTMismatch) > 0 {
				res.CBTMismatch = true
				res.warn("changed block tracking missed changes on disk %s (%d bytes in %d areas): this point comes from a full read and is correct; check the VM for known CBT issues (reset CBT)",
					dr.Label, extentBytes(dr.CBTMismatch), len(dr.CBTMismatch))
				log.Error("CBT mismatch", "disk", dr.Name, "areas", dr.CBTMismatch)
			}
		}
	}

	// 6. The post-backup hook, only once the point is durable.
	if hooksOK && req.Hooks.PostBackup != "" {
		if err := e.runHook(ctx, o.Self, windows, *req.Guest, req.Hooks, "post-backup", req.Hooks.PostBackup); err != nil {
			res.PostBackup = err.Error()
			res.warn("%v", err)
		} else {
			res.PostBackup = "ok"
		}
	}
	return res, nil
}

// backupDisk reads one disk into b.
func (e *Engine) backupDisk(ctx context.Context, b *store.Backup, base *point.RecoveryPoint, vmo *object.VirtualMachine,
	snap types.ManagedObjectReference, dc string, host types.ManagedObjectReference, d Disk, req BackupRequest, dr *DiskResult, prog *progress,
	cbtAreas map[string][]store.Extent, log *slog.Logger) error {
	var prev *diskMeta
	if base != nil {
		if bd, ok := base.Disk(d.Controller); ok && len(bd.Metadata) > 0 {
			var m diskMeta
			if err := json.Unmarshal(bd.Metadata, &m); err == nil {
				prev = &m
			}
		}
	}
	var changed, alloc []store.Extent
	switch {
	case prev == nil:
		dr.Method, dr.Reason = "full", "first backup of this disk"
	case prev.Capacity != d.Capacity:
		dr.Method, dr.Reason = "full", fmt.Sprintf("disk resized from %d to %d bytes", prev.Capacity, d.Capacity)
	case prev.ChangeID == "":
		dr.Method, dr.Reason = "full", "the previous point has no change tracking ID"
	case d.ChangeID == "":
		dr.Method, dr.Reason = "full", "change tracking is not active on this disk"
	default:
		areas, err := e.queryChanged(ctx, vmo, snap, d, prev.ChangeID)
		switch {
		case err == nil && !req.VerifyCBT:
			dr.Method, changed = "incremental", areas
		case err == nil:
			dr.Method, dr.Reason = "full", "periodic full read to verify change tracking"
			cbtAreas[d.Controller] = areas
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			dr.Method, dr.Reason = "full", "change tracking ID rejected ("+faultText(err)+"): CBT was reset or the VM restored"
			log.Warn("changeId rejected, reading the whole disk", "disk", d.Controller, "err", err)
		}
	}
	if dr.Method == "full" {
		areas, err := e.queryChanged(ctx, vmo, snap, d, "*")
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			log.Info("allocated areas unavailable, reading every byte", "disk", d.Controller, "err", err)
			areas = []store.Extent{{Offset: 0, Length: d.Capacity}}
		}
		alloc = areas
	}
	reads := changed
	if dr.Method == "full" {
		reads = alloc
	}
	dr.Changed = extentBytes(reads)
	if dr.Method == "incremental" {
		// The store re-chunks from the chunk boundary before each change
		// to where the cuts meet again: fetch that context with the change.
		reads = padExtents(changed, 64<<10, 128<<10, d.Capacity)
	}
	prog.startDisk(d.Controller, dr.Changed)
	if req.Acquire != nil {
		release, err := req.Acquire(ctx)
		if err != nil {
			return err
		}
		defer release()
	}
	r, err := e.transport().OpenDisk(ctx, SnapshotDisk{VM: vmo.Reference(), Snapshot: snap, Datacenter: dc, Host: host, Disk: d, Reads: reads})
	if err != nil {
		return fmt.Errorf("open disk %s: %w", d.Controller, err)
	}
	defer r.Close()
	m := diskMeta{Key: d.Key, Label: d.Label, File: d.File, Datastore: d.Datastore, Capacity: d.Capacity, Thin: d.Thin,
		Mode: d.Mode, RDM: d.RDM, ChangeID: d.ChangeID, UUID: d.UUID, Method: dr.Method}
	mj, err := json.Marshal(m)
	if err != nil {
		return err
	}
	src := store.DiskSource{Name: d.Controller, Size: d.Capacity, Reader: &countingReader{r: r, p: prog}, Metadata: mj}
	if dr.Method == "incremental" {
		src.Changed = append([]store.Extent{}, changed...) // non-nil: incremental even when nothing changed
	} else {
		src.Allocated = alloc
	}
	if _, err := b.AddDisk(ctx, src); err != nil {
		return err
	}
	dr.Read = r.Stats()
	log.Info("disk read", "disk", d.Controller, "method", dr.Method, "changed", dr.Changed, "requests", dr.Read.Requests, "bytes", dr.Read.Bytes)
	return nil
}

// queryChanged asks vSphere for the areas of a disk changed since
// changeID ("*": all allocated areas), page by page.
func (e *Engine) queryChanged(ctx context.Context, vmo *object.VirtualMachine, snap types.ManagedObjectReference, d Disk, changeID string) ([]store.Extent, error) {
	var out []store.Extent
	var off int64
	for off < d.Capacity {
		res, err := methods.QueryChangedDiskAreas(ctx, e.Client.vim, &types.QueryChangedDiskAreas{
			This: vmo.Reference(), Snapshot: &snap, DeviceKey: d.Key, StartOffset: off, ChangeId: changeID,
		})
		if err != nil {
			return nil, err
		}
		info := res.Returnval
		for _, a := range info.ChangedArea {
			if a.Length <= 0 {
				continue
			}
			if a.Start < 0 || a.Start+a.Length > d.Capacity {
				return nil, fmt.Errorf("changed area %d+%d lies outside the disk (%d bytes)", a.Start, a.Length, d.Capacity)
			}
			out = append(out, store.Extent{Offset: a.Start, Length: a.Length})
		}
		next := info.StartOffset + info.Length
		if info.Length <= 0 || next <= off {
			break
		}
		off = next
	}
	return out, nil
}

func (e *Engine) enableCBT(ctx context.Context, vmo *object.VirtualMachine) error {
	t := true
	task, err := vmo.Reconfigure(ctx, types.VirtualMachineConfigSpec{ChangeTrackingEnabled: &t})
	if err != nil {
		return err
	}
	return task.Wait(ctx)
}

func (e *Engine) runHook(ctx context.Context, vm types.ManagedObjectReference, windows bool, creds GuestCredentials, h Hooks, stage, cmd string) error {
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	code, err := e.guest().Run(hctx, vm, windows, creds, cmd)
	if err != nil {
		return fmt.Errorf("%s hook: %w", stage, err)
	}
	if code != 0 {
		return fmt.Errorf("%s hook %q exited with status %d", stage, cmd, code)
	}
	return nil
}

// datastoreNames maps the VM's datastores to their names.
func (e *Engine) datastoreNames(ctx context.Context, o *mo.VirtualMachine) map[types.ManagedObjectReference]string {
	out := map[types.ManagedObjectReference]string{}
	var vm mo.VirtualMachine
	if err := object.NewCommon(e.Client.vim, o.Self).Properties(ctx, o.Self, []string{"datastore"}, &vm); err != nil {
		return out
	}
	for _, ref := range vm.Datastore {
		var ds mo.Datastore
		if err := object.NewCommon(e.Client.vim, ref).Properties(ctx, ref, []string{"name"}, &ds); err == nil {
			out[ref] = ds.Name
		}
	}
	return out
}

// missed returns the parts of diff not covered by areas.
func missed(diff, areas []store.Extent) []store.Extent {
	var out []store.Extent
	for _, d := range diff {
		covered := false
		for _, a := range areas {
			if a.Offset < d.End() && d.Offset < a.End() {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, d)
		}
	}
	return out
}

// padExtents widens each extent by before and after bytes, within size.
func padExtents(exts []store.Extent, before, after, size int64) []store.Extent {
	out := make([]store.Extent, 0, len(exts))
	for _, e := range exts {
		s, t := max(e.Offset-before, 0), min(e.End()+after, size)
		if t > s {
			out = append(out, store.Extent{Offset: s, Length: t - s})
		}
	}
	return out
}

func extentBytes(exts []store.Extent) int64 {
	var n int64
	for _, e := range exts {
		n += e.Length
	}
	return n
}

// faultText describes a vSphere error the way an administrator reads it.
func faultText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// progress aggregates read progress of a VM's disks.
type progress struct {
	fn   func(Progress)
	mu   sync.Mutex
	p    Progress
	last time.Time
	read atomic.Int64
}

func (p *progress) startDisk(name string, toRead int64) {
	p.mu.Lock()
	p.p.Disk, p.p.ToRead = name, p.p.ToRead+toRead
	p.mu.Unlock()
	p.emit(true)
}

func (p *progress) diskDone() {
	p.mu.Lock()
	p.p.DisksDone++
	p.mu.Unlock()
	p.emit(true)
}

func (p *progress) add(n int64) {
	p.read.Add(n)
	p.emit(false)
}

func (p *progress) emit(force bool) {
	if p.fn == nil {
		return
	}
	p.mu.Lock()
	if !force && time.Since(p.last) < 500*time.Millisecond {
		p.mu.Unlock()
		return
	}
	p.last = time.Now()
	p.p.Read = p.read.Load()
	cp := p.p
	p.mu.Unlock()
	p.fn(cp)
}

type countingReader struct {
	r DiskReader
	p *progress
}

func (c *countingReader) ReadAt(b []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(b, off)
	c.p.add(int64(n))
	return n, err
}
