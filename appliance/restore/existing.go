package restore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/store"
	"coffer.dev/coffer/store/point"
)

// Errors of the restores into existing VMs, for errors.Is. A VM that is
// not found wraps vsphere.ErrVMNotFound.
var (
	// ErrPoweredOn: the target VM runs (or is suspended) and the request
	// does not allow powering it off.
	ErrPoweredOn = errors.New("the VM is powered on")
	// ErrConfirm: the confirmation is not the VM's name.
	ErrConfirm = errors.New("the confirmation does not match the VM's name")
	// ErrHasSnapshot: the VM has snapshots, so its disks are delta disks
	// that a restore over the original cannot write.
	ErrHasSnapshot = errors.New("the VM has snapshots")
	// ErrDiskMismatch: a disk of the point is no longer in the VM as it
	// was (missing, resized, not a flat disk); nothing was changed.
	ErrDiskMismatch = errors.New("the VM's disks do not match the point")
	// ErrNoFreeUnit: the target VM's first SCSI controller has no room for
	// the disks (or the VM has no SCSI controller).
	ErrNoFreeUnit = errors.New("no free unit on the VM's first SCSI controller")
)

// DisksRequest asks for disks of a point to be added to an existing VM.
type DisksRequest struct {
	Point point.ID
	// TargetVM is the instance UUID of the VM receiving the disks.
	TargetVM string
	// Disks of the point to restore ("scsi0:1"); empty: all of them.
	Disks []string
	// Datastore receives the new disks; empty: the datastore of the
	// target VM's .vmx file.
	Datastore string
	// PowerOffFirst powers a running target VM off first; without it a
	// powered-on or suspended target is refused (ErrPoweredOn). The VM is
	// never powered back on automatically.
	PowerOffFirst bool
}

// OverRequest asks for a point to be written over the disks of the VM it
// was taken of.
type OverRequest struct {
	Point point.ID
	// Confirm must be the VM's current name, exactly.
	Confirm string
}

// vmProps are the properties the restores into existing VMs read.
var vmProps = []string{"name", "config", "runtime.powerState", "snapshot"}

// lookupVM finds a VM by instance UUID.
func lookupVM(ctx context.Context, c *vsphere.Client, instanceUUID string) (*object.VirtualMachine, *mo.VirtualMachine, error) {
	vim := c.Vim()
	t := true
	r, err := methods.FindByUuid(ctx, vim, &types.FindByUuid{
		This: *vim.ServiceContent.SearchIndex, Uuid: instanceUUID, VmSearch: true, InstanceUuid: &t,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("find VM %s: %w", instanceUUID, err)
	}
	if r.Returnval == nil {
		return nil, nil, fmt.Errorf("VM with instance UUID %s: %w", instanceUUID, vsphere.ErrVMNotFound)
	}
	vmo := object.NewVirtualMachine(vim, *r.Returnval)
	var mvm mo.VirtualMachine
	if err := vmo.Properties(ctx, vmo.Reference(), vmProps, &mvm); err != nil {
		return nil, nil, fmt.Errorf("read VM %s: %w", instanceUUID, err)
	}
	if mvm.Config == nil {
		return nil, nil, fmt.Errorf("VM %s (%s) has no configuration (inaccessible?)", mvm.Name, instanceUUID)
	}
	if mvm.Config.Template {
		return nil, nil, fmt.Errorf("%s is a template, not a VM", mvm.Name)
	}
	return vmo, &mvm, nil
}

// diskSlots maps the point-style names of a VM's disks ("scsi0:1") to
// the disks.
func diskSlots(devs []types.BaseVirtualDevice) map[string]*types.VirtualDisk {
	ctrls := map[int32]string{}
	for _, dev := range devs {
		if cc, ok := dev.(types.BaseVirtualController); ok {
			vc := cc.GetVirtualController()
			ctrls[vc.Key] = controllerName(dev, vc.BusNumber)
		}
	}
	out := map[string]*types.VirtualDisk{}
	for _, dev := range devs {
		vd, ok := dev.(*types.VirtualDisk)
		if !ok || vd.UnitNumber == nil || ctrls[vd.ControllerKey] == "" {
			continue
		}
		out[fmt.Sprintf("%s:%d", ctrls[vd.ControllerKey], *vd.UnitNumber)] = vd
	}
	return out
}

// diskFile is a disk's descriptor ("[ds] vm/vm.vmdk"), "" if it has none.
func diskFile(d *types.VirtualDisk) string {
	if fb, ok := d.Backing.(types.BaseVirtualDeviceFileBackingInfo); ok {
		return fb.GetVirtualDeviceFileBackingInfo().FileName
	}
	return ""
}

func diskCapacity(d *types.VirtualDisk) int64 {
	if d.CapacityInBytes > 0 {
		return d.CapacityInBytes
	}
	return d.CapacityInKB * 1024
}

// diskWrite is one disk of a point to write over a descriptor's extent.
type diskWrite struct {
	name   string // in the point
	device string // on the VM
	file   string // descriptor
}

// writeDisks uploads each disk and records it in res; errors wrap
// ErrUpload and name the disk.
func writeDisks(ctx context.Context, c *vsphere.Client, st *store.Store, src *source, dcPath string, ws []diskWrite, res *Result) error {
	for _, w := range ws {
		n, err := uploadDisk(ctx, c, st, src.p.ID, w.name, dcPath, w.file)
		if err != nil {
			return fmt.Errorf("disk %s: %w: %w", w.name, ErrUpload, err)
		}
		pd, _ := src.p.Disk(w.name)
		res.Disks = append(res.Disks, Disk{Name: w.name, Device: w.device, File: w.file, Capacity: pd.Size, Written: n})
	}
	return nil
}

func powerOff(ctx context.Context, vmo *object.VirtualMachine) error {
	t, err := vmo.PowerOff(ctx)
	if err != nil {
		return err
	}
	return t.Wait(ctx)
}

func reconfigure(ctx context.Context, vmo *object.VirtualMachine, spec types.VirtualMachineConfigSpec) error {
	t, err := vmo.Reconfigure(ctx, spec)
	if err != nil {
		return err
	}
	return t.Wait(ctx)
}

// ensureOff powers the VM off when allowed and needed; it reports whether
// it did.
func ensureOff(ctx context.Context, vmo *object.VirtualMachine, mvm *mo.VirtualMachine, allowed bool) (bool, error) {
	state := mvm.Runtime.PowerState
	if state == types.VirtualMachinePowerStatePoweredOff {
		return false, nil
	}
	if !allowed {
		return false, fmt.Errorf("%s is %s: %w (power it off, or ask for it to be powered off first)", mvm.Name, state, ErrPoweredOn)
	}
	if err := powerOff(ctx, vmo); err != nil {
		return false, fmt.Errorf("power off %s: %w", mvm.Name, err)
	}
	return true, nil
}

// RestoreDisks adds disks of point req.Point to the existing VM
// req.TargetVM: each becomes a new thin disk of the saved capacity on a
// free unit of the VM's first SCSI controller (no existing disk is
// touched), and then receives the saved contents. Everything is checked
// before the VM is changed; if an upload fails, the added disks are
// removed again. The VM is left powered off when it was, or had to be,
// powered off.
func RestoreDisks(ctx context.Context, c *vsphere.Client, st *store.Store, req DisksRequest) (res *Result, err error) {
	res = &Result{Started: time.Now().UTC()}
	defer func() { res.Finished = time.Now().UTC() }()
	src, err := loadPoint(st, req.Point, req.Disks)
	if err != nil {
		return res, err
	}
	if len(src.disks) == 0 {
		return res, fmt.Errorf("restore point %s: it has no disks to restore", src.p.ID)
	}
	if strings.TrimSpace(req.TargetVM) == "" {
		return res, errors.New("restore disks: no target VM given")
	}
	vmo, mvm, err := lookupVM(ctx, c, req.TargetVM)
	if err != nil {
		return res, fmt.Errorf("restore disks of %s: %w", src.vm.Name, err)
	}
	res.VM, res.InstanceUUID, res.Ref = mvm.Name, mvm.Config.InstanceUuid, vmo.Reference().Value
	res.PoweredOn = mvm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn
	fail := func(format string, a ...any) error {
		return fmt.Errorf("restore disks of %s into %s: %w", src.vm.Name, mvm.Name, fmt.Errorf(format, a...))
	}

	// Check everything first: controller, free units, datastore.
	devs := mvm.Config.Hardware.Device
	var ctrl *types.VirtualController
	var ctrlDev types.BaseVirtualDevice
	for _, dev := range devs {
		if sc, ok := dev.(types.BaseVirtualSCSIController); ok {
			vc := sc.GetVirtualSCSIController()
			if ctrl == nil || vc.BusNumber < ctrl.BusNumber {
				ctrl, ctrlDev = &vc.VirtualController, dev
			}
		}
	}
	if ctrl == nil {
		return res, fail("%w: the VM has no SCSI controller", ErrNoFreeUnit)
	}
	ctrlName := controllerName(ctrlDev, ctrl.BusNumber)
	own := ctrlDev.(types.BaseVirtualSCSIController).GetVirtualSCSIController().ScsiCtlrUnitNumber
	if own == 0 {
		own = 7
	}
	used := map[int32]bool{own: true} // the controller's own unit
	for _, dev := range devs {
		d := dev.GetVirtualDevice()
		if d.ControllerKey == ctrl.Key && d.UnitNumber != nil {
			used[*d.UnitNumber] = true
		}
	}
	var free []int32
	for u := int32(0); u < 16 && len(free) < len(src.disks); u++ {
		if !used[u] {
			free = append(free, u)
		}
	}
	if len(free) < len(src.disks) {
		return res, fail("%w: %s has room for %d more disks, %d asked for", ErrNoFreeUnit, ctrlName, len(free), len(src.disks))
	}
	dcPath, err := c.DatacenterPath(ctx, vmo.Reference())
	if err != nil {
		return res, fail("%w", err)
	}
	ds := req.Datastore
	if ds == "" {
		var p object.DatastorePath
		if mvm.Config.Files.VmPathName == "" || !p.FromString(mvm.Config.Files.VmPathName) {
			return res, fail("no target datastore given, and the VM's own is unknown")
		}
		ds = p.Datastore
	}
	finder := find.NewFinder(c.Vim(), false)
	dc, err := finder.Datacenter(ctx, dcPath)
	if err != nil {
		return res, fail("datacenter %s: %w", dcPath, err)
	}
	finder.SetDatacenter(dc)
	if _, err := finder.Datastore(ctx, ds); err != nil {
		var nf *find.NotFoundError
		if errors.As(err, &nf) {
			return res, fail("datastore %q in %s: %w", ds, dcPath, ErrDatastoreNotFound)
		}
		return res, fail("datastore %q: %w", ds, err)
	}
	if off, err := ensureOff(ctx, vmo, mvm, req.PowerOffFirst); err != nil {
		return res, fail("%w", err)
	} else if off {
		res.PoweredOn = false
		res.warn("%s was powered off for the restore and has not been powered back on", mvm.Name)
	}

	// Add the disks, empty and thin.
	spec := types.VirtualMachineConfigSpec{}
	slot := map[string]string{} // point disk -> device on the VM
	for i, name := range src.disks {
		pd, _ := src.p.Disk(name)
		unit := free[i]
		slot[name] = fmt.Sprintf("%s:%d", ctrlName, unit)
		spec.DeviceChange = append(spec.DeviceChange, &types.VirtualDeviceConfigSpec{
			Operation:     types.VirtualDeviceConfigSpecOperationAdd,
			FileOperation: types.VirtualDeviceConfigSpecFileOperationCreate,
			Device: &types.VirtualDisk{
				VirtualDevice: types.VirtualDevice{
					Key: int32(-100 - i), ControllerKey: ctrl.Key, UnitNumber: &unit,
					Backing: &types.VirtualDiskFlatVer2BackingInfo{
						VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: "[" + ds + "]"},
						DiskMode:                     string(types.VirtualDiskModePersistent),
						ThinProvisioned:              types.NewBool(true),
					},
				},
				CapacityInKB:    (pd.Size + 1023) / 1024,
				CapacityInBytes: pd.Size,
			},
		})
	}
	if err := reconfigure(ctx, vmo, spec); err != nil {
		return res, fail("add the disks: %w", err)
	}
	var after mo.VirtualMachine
	if err := vmo.Properties(ctx, vmo.Reference(), []string{"config"}, &after); err != nil || after.Config == nil {
		return res, fail("read the VM after adding the disks (the new disks may need removing by hand): %v", err)
	}
	slots := diskSlots(after.Config.Hardware.Device)
	var writes []diskWrite
	var added []*types.VirtualDisk
	for _, name := range src.disks {
		if d, ok := slots[slot[name]]; ok {
			added = append(added, d)
		}
	}
	defer func() {
		if err == nil || len(added) == 0 {
			return
		}
		var rm types.VirtualMachineConfigSpec
		for _, d := range added {
			rm.DeviceChange = append(rm.DeviceChange, &types.VirtualDeviceConfigSpec{
				Operation: types.VirtualDeviceConfigSpecOperationRemove, FileOperation: types.VirtualDeviceConfigSpecFileOperationDestroy, Device: d,
			})
		}
		if rerr := reconfigure(context.WithoutCancel(ctx), vmo, rm); rerr != nil {
			err = fmt.Errorf("%w (and removing the added disks failed: %v)", err, rerr)
		}
	}()
	for _, name := range src.disks {
		d, ok := slots[slot[name]]
		if !ok || diskFile(d) == "" {
			err = fail("the added disk %s is not on the VM", slot[name])
			return res, err
		}
		writes = append(writes, diskWrite{name: name, device: slot[name], file: diskFile(d)})
	}
	if err = writeDisks(ctx, c, st, src, dcPath, writes, res); err != nil {
		res.Disks = nil
		err = fail("%w", err)
		return res, err
	}
	return res, nil
}

// RestoreOverOriginal writes point req.Point over the disks of the VM it
// was taken of, found by its instance UUID. req.Confirm must be the VM's
// name. The VM must have no snapshot, and every disk of the point must
// still be in the VM at the same controller and unit with the same
// capacity: all of this is checked before anything changes. The VM is
// powered off and left powered off. Disks of the VM that the point does
// not hold are left as they are. Change tracking, when on, is reset, so
// that the next backup reads the disks in full.
func RestoreOverOriginal(ctx context.Context, c *vsphere.Client, st *store.Store, req OverRequest) (res *Result, err error) {
	res = &Result{Started: time.Now().UTC()}
	defer func() { res.Finished = time.Now().UTC() }()
	src, err := loadPoint(st, req.Point, nil)
	if err != nil {
		return res, err
	}
	if len(src.disks) == 0 {
		return res, fmt.Errorf("restore point %s: it has no disks to restore", src.p.ID)
	}
	vmo, mvm, err := lookupVM(ctx, c, src.vm.InstanceUUID)
	if err != nil {
		return res, fmt.Errorf("restore %s over the original: %w", src.vm.Name, err)
	}
	res.VM, res.InstanceUUID, res.Ref = mvm.Name, mvm.Config.InstanceUuid, vmo.Reference().Value
	res.PoweredOn = mvm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn
	fail := func(format string, a ...any) error {
		return fmt.Errorf("restore point %s over VM %s: %w", src.p.ID, mvm.Name, fmt.Errorf(format, a...))
	}
	if req.Confirm != mvm.Name {
		return res, fail("%w: type the VM's name to confirm", ErrConfirm)
	}
	if mvm.Snapshot != nil && len(mvm.Snapshot.RootSnapshotList) > 0 {
		return res, fail("%w: its disks are delta disks; delete or consolidate the snapshots first", ErrHasSnapshot)
	}
	slots := diskSlots(mvm.Config.Hardware.Device)
	var problems []string
	var writes []diskWrite
	for _, name := range src.disks {
		pd, _ := src.p.Disk(name)
		d, ok := slots[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("disk %s is no longer in the VM", name))
			continue
		}
		b, ok := d.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("disk %s is no longer a flat disk (%T)", name, d.Backing))
		case b.Parent != nil:
			problems = append(problems, fmt.Sprintf("disk %s is a delta disk (%s)", name, b.FileName))
		case diskCapacity(d) != pd.Size:
			problems = append(problems, fmt.Sprintf("disk %s has %d bytes, the point %d", name, diskCapacity(d), pd.Size))
		default:
			writes = append(writes, diskWrite{name: name, device: name, file: b.FileName})
		}
	}
	if len(problems) > 0 {
		return res, fail("%w: %s; nothing was changed (restore as a new VM, or the disks one by one into the VM, instead)", ErrDiskMismatch, strings.Join(problems, "; "))
	}
	dcPath, err := c.DatacenterPath(ctx, vmo.Reference())
	if err != nil {
		return res, fail("%w", err)
	}
	inPoint := map[string]bool{}
	for _, n := range src.disks {
		inPoint[n] = true
	}
	var others []string
	for n := range slots {
		if !inPoint[n] {
			others = append(others, n)
		}
	}
	sort.Strings(others)
	for _, n := range others {
		res.warn("disk %s of the VM is not in the point and was left as it is", n)
	}

	if _, err := ensureOff(ctx, vmo, mvm, true); err != nil {
		return res, fail("%w", err)
	}
	res.PoweredOn = false
	res.warn("%s is left powered off; power it on when ready", mvm.Name)
	if err := writeDisks(ctx, c, st, src, dcPath, writes, res); err != nil {
		return res, fail("%w (the VM's disks are partly overwritten: repeat the restore before powering it on)", err)
	}
	if cbt := mvm.Config.ChangeTrackingEnabled; cbt != nil && *cbt {
		off, on := false, true
		if err := reconfigure(ctx, vmo, types.VirtualMachineConfigSpec{ChangeTrackingEnabled: &off}); err != nil {
			res.warn("resetting change tracking failed (%v): disable and re-enable it before the next backup", err)
		} else if err := reconfigure(ctx, vmo, types.VirtualMachineConfigSpec{ChangeTrackingEnabled: &on}); err != nil {
			res.warn("re-enabling change tracking failed (%v): enable it before the next backup", err)
		}
	}
	return res, nil
}
