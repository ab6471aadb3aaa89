package vcsim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// Disk modes for DiskSpec.Mode (the vSphere VirtualDiskMode values).
const (
	ModePersistent               = "persistent"
	ModeNonpersistent            = "nonpersistent"
	ModeIndependentPersistent    = "independent_persistent"
	ModeIndependentNonpersistent = "independent_nonpersistent"
)

// DiskSpec describes a virtual disk for CreateVM and AddDisk.
type DiskSpec struct {
	// Capacity in bytes, rounded up to whole KiB. Required.
	Capacity int64
	// Datastore name; empty means the VM's datastore (its first disk's, else LocalDS_0).
	Datastore string
	// Thin sets the backing's thinProvisioned flag (the flat file is sparse either way).
	Thin bool
	// Mode is the disk mode, ModePersistent when empty. Independent disks are not
	// snapshotted by ESXi and get no change tracking here.
	Mode string
	// RDM makes a raw device mapping instead of a flat disk: "physical" or "virtual".
	// Physical-mode RDMs get no change tracking (as on ESXi). The simulator still keeps
	// the data in a -flat.vmdk file, which DiskFile returns.
	RDM string
	// Content, if set, is written at offset 0 of the flat file; the rest stays a hole.
	Content io.Reader
}

// VMSpec describes a VM for CreateVM. The VM gets 2 vCPUs, 2 GiB, one vmxnet3 NIC on
// "VM Network" and a paravirtual SCSI controller with the disks.
type VMSpec struct {
	// Name of the VM, required and unique.
	Name string
	// Folder is a path below the datacenter's VM folder ("prod/web"); missing folders
	// are created. Empty: the VM folder itself.
	Folder string
	// Host is the host name: "DC0_C0_H0" (default), "DC0_C0_H1" or the standalone
	// "DC0_H0". The VM goes into the host's root resource pool.
	Host string
	// GuestID is the guest OS identifier, e.g. "otherLinux64Guest" or
	// "windows2019srv_64Guest". Tools run on a powered-on VM only if it is set.
	GuestID string
	// PowerState is "poweredOn" (default) or "poweredOff".
	PowerState string
	// ChangeTracking creates the VM with config.changeTrackingEnabled = true.
	ChangeTracking bool
	// Disks, on one paravirtual SCSI controller (at most 15).
	Disks []DiskSpec
	// GuestUsername and GuestPassword override Options.GuestUsername/GuestPassword for
	// this VM's guest operations.
	GuestUsername, GuestPassword string
	// Annotation is the VM's notes field.
	Annotation string
	// Tags are vSphere tags (vAPI tagging service, /rest and /api) attached to the VM,
	// each "category/tag", or "tag" in category DefaultTagCategory. Missing categories
	// and tags are created.
	Tags []string
}

// VM describes a created VM.
type VM struct {
	Name string
	// UUID is the instance UUID (config.instanceUuid), the id the Sim's methods take.
	UUID string
	// BIOSUUID is config.uuid.
	BIOSUUID string
	Ref      types.ManagedObjectReference
	Disks    []Disk
}

// Disk describes a virtual disk of a created VM.
type Disk struct {
	// Key is the device key (deviceKey of QueryChangedDiskAreas).
	Key int32
	// Capacity in bytes.
	Capacity int64
	// Datastore is the datastore name.
	Datastore string
	// Path is the descriptor's datastore path, "[LocalDS_0] vm/vm.vmdk".
	Path string
	// FlatFile is the host path of the data file, ".../vm/vm-flat.vmdk": a sparse file
	// of Capacity bytes that tests may change between backups (with
	// Options.TrackWrites, through Sim.WriteDisk once change tracking has started).
	FlatFile string
}

// CreateVM creates a VM through the vSphere API (CreateVM_Task, then PowerOnVM_Task),
// sizes its flat files to capacity and writes the disks' content.
func (s *Sim) CreateVM(ctx context.Context, spec VMSpec) (VM, error) {
	if spec.Name == "" {
		return VM{}, errors.New("vcsim: VMSpec.Name is empty")
	}
	if len(spec.Disks) > 15 {
		return VM{}, errors.New("vcsim: at most 15 disks")
	}
	switch types.VirtualMachinePowerState(spec.PowerState) {
	case "", types.VirtualMachinePowerStatePoweredOn, types.VirtualMachinePowerStatePoweredOff:
	default:
		return VM{}, fmt.Errorf("vcsim: unsupported PowerState %q", spec.PowerState)
	}
	c, err := s.adminClient(ctx)
	if err != nil {
		return VM{}, err
	}
	finder := find.NewFinder(c.Client, false)
	dc, err := finder.Datacenter(ctx, "DC0")
	if err != nil {
		return VM{}, err
	}
	finder.SetDatacenter(dc)
	if s.vmNameExists(spec.Name) {
		return VM{}, fmt.Errorf("vcsim: VM %q exists", spec.Name)
	}
	folders, err := dc.Folders(ctx)
	if err != nil {
		return VM{}, err
	}
	folder := folders.VmFolder
	if spec.Folder != "" {
		if folder, err = ensureFolder(ctx, finder, folder, strings.Trim(spec.Folder, "/")); err != nil {
			return VM{}, err
		}
	}
	hostName := spec.Host
	if hostName == "" {
		hostName = "DC0_C0_H0"
	}
	host, err := finder.HostSystem(ctx, hostName)
	if err != nil {
		return VM{}, err
	}
	pool, err := host.ResourcePool(ctx)
	if err != nil {
		return VM{}, err
	}

	vmDS := "LocalDS_0"
	if len(spec.Disks) > 0 && spec.Disks[0].Datastore != "" {
		vmDS = spec.Disks[0].Datastore
	}
	if _, ok := s.dsDirs[vmDS]; !ok {
		return VM{}, fmt.Errorf("vcsim: no datastore %q", vmDS)
	}

	var devices object.VirtualDeviceList
	scsi, err := devices.CreateSCSIController("pvscsi")
	if err != nil {
		return VM{}, err
	}
	nic, err := devices.CreateEthernetCard("vmxnet3", &types.VirtualEthernetCardNetworkBackingInfo{
		VirtualDeviceDeviceBackingInfo: types.VirtualDeviceDeviceBackingInfo{DeviceName: "VM Network"},
	})
	if err != nil {
		return VM{}, err
	}
	devices = append(devices, scsi, nic)
	changes := []types.BaseVirtualDeviceConfigSpec{
		&types.VirtualDeviceConfigSpec{Operation: types.VirtualDeviceConfigSpecOperationAdd, Device: scsi},
		&types.VirtualDeviceConfigSpec{Operation: types.VirtualDeviceConfigSpecOperationAdd, Device: nic},
	}
	for i, d := range spec.Disks {
		disk, err := s.newDisk(d, vmDS)
		if err != nil {
			return VM{}, fmt.Errorf("vcsim: disk %d: %w", i, err)
		}
		devices.AssignController(disk, scsi.(types.BaseVirtualController))
		devices = append(devices, disk)
		changes = append(changes, &types.VirtualDeviceConfigSpec{
			Operation:     types.VirtualDeviceConfigSpecOperationAdd,
			FileOperation: types.VirtualDeviceConfigSpecFileOperationCreate,
			Device:        disk,
		})
	}

	config := types.VirtualMachineConfigSpec{
		Name:         spec.Name,
		GuestId:      spec.GuestID,
		Annotation:   spec.Annotation,
		NumCPUs:      2,
		MemoryMB:     2048,
		Files:        &types.VirtualMachineFileInfo{VmPathName: "[" + vmDS + "]"},
		DeviceChange: changes,
	}
	if spec.ChangeTracking {
		config.ChangeTrackingEnabled = types.NewBool(true)
	}
	task, err := folder.CreateVM(ctx, config, pool, host)
	if err != nil {
		return VM{}, err
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		return VM{}, fmt.Errorf("vcsim: CreateVM %s: %w", spec.Name, err)
	}
	vmo := object.NewVirtualMachine(c.Client, info.Result.(types.ManagedObjectReference))

	var mvm mo.VirtualMachine
	if err := vmo.Properties(ctx, vmo.Reference(), []string{"config"}, &mvm); err != nil {
		return VM{}, err
	}
	out := VM{Name: spec.Name, UUID: mvm.Config.InstanceUuid, BIOSUUID: mvm.Config.Uuid, Ref: vmo.Reference()}
	s.noteIDs(out.Ref, mvm.Config.InstanceUuid, mvm.Config.Uuid)
	if spec.GuestUsername != "" || spec.GuestPassword != "" {
		s.setGuestCredentials(out.Ref, spec.GuestUsername, spec.GuestPassword)
	}

	disks := diskList(mvm.Config.Hardware.Device)
	if len(disks) != len(spec.Disks) {
		return VM{}, fmt.Errorf("vcsim: VM %s has %d disks, want %d", spec.Name, len(disks), len(spec.Disks))
	}
	for i, d := range disks {
		disk, err := s.prepareDisk(out.Ref, d, spec.Disks[i].Content)
		if err != nil {
			return VM{}, err
		}
		out.Disks = append(out.Disks, disk)
	}

	if spec.PowerState != string(types.VirtualMachinePowerStatePoweredOff) {
		task, err := vmo.PowerOn(ctx)
		if err != nil {
			return VM{}, err
		}
		if err := task.Wait(ctx); err != nil {
			return VM{}, fmt.Errorf("vcsim: power on %s: %w", spec.Name, err)
		}
	}
	if len(spec.Tags) > 0 {
		if err := s.AttachTags(ctx, out.UUID, spec.Tags...); err != nil {
			return VM{}, err
		}
	}
	return out, nil
}

func ensureFolder(ctx context.Context, finder *find.Finder, root *object.Folder, rel string) (*object.Folder, error) {
	folder := root
	p := root.InventoryPath
	for _, name := range strings.Split(rel, "/") {
		if name == "" {
			continue
		}
		p = path.Join(p, name)
		f, err := finder.Folder(ctx, p)
		if err != nil {
			var nf *find.NotFoundError
			if !errors.As(err, &nf) {
				return nil, err
			}
			if f, err = folder.CreateFolder(ctx, name); err != nil {
				return nil, err
			}
			f.InventoryPath = p
		}
		folder = f
	}
	return folder, nil
}

// newDisk builds the device for a DiskSpec; the simulator names its file.
func (s *Sim) newDisk(d DiskSpec, vmDS string) (*types.VirtualDisk, error) {
	if d.Capacity <= 0 {
		return nil, errors.New("capacity must be positive")
	}
	ds := d.Datastore
	if ds == "" {
		ds = vmDS
	}
	if _, ok := s.dsDirs[ds]; !ok {
		return nil, fmt.Errorf("no datastore %q", ds)
	}
	mode := d.Mode
	if mode == "" {
		mode = ModePersistent
	}
	switch mode {
	case ModePersistent, ModeNonpersistent, ModeIndependentPersistent, ModeIndependentNonpersistent:
	default:
		return nil, fmt.Errorf("unknown disk mode %q", mode)
	}
	kb := (d.Capacity + 1023) / 1024
	file := types.VirtualDeviceFileBackingInfo{FileName: "[" + ds + "]"}
	disk := &types.VirtualDisk{CapacityInKB: kb, CapacityInBytes: kb * 1024}
	switch d.RDM {
	case "":
		disk.Backing = &types.VirtualDiskFlatVer2BackingInfo{
			VirtualDeviceFileBackingInfo: file,
			DiskMode:                     mode,
			ThinProvisioned:              types.NewBool(d.Thin),
		}
	case "physical", "virtual":
		compat := types.VirtualDiskCompatibilityModeVirtualMode
		if d.RDM == "physical" {
			compat = types.VirtualDiskCompatibilityModePhysicalMode
		}
		disk.Backing = &types.VirtualDiskRawDiskMappingVer1BackingInfo{
			VirtualDeviceFileBackingInfo: file,
			CompatibilityMode:            string(compat),
			DiskMode:                     mode,
			DeviceName:                   "/vmfs/devices/disks/naa.600a0b80001111550000" + randomHex(6),
			LunUuid:                      "0200000000600a0b80001111550000" + randomHex(6) + "4d4f44454c",
		}
	default:
		return nil, fmt.Errorf("unknown RDM mode %q", d.RDM)
	}
	return disk, nil
}

func randomHex(n int) string {
	return strings.ReplaceAll(newEpoch(), " ", "")[2 : 2+2*n]
}

// diskList returns the VM's virtual disks in device order.
func diskList(devs []types.BaseVirtualDevice) []*types.VirtualDisk {
	var out []*types.VirtualDisk
	for _, dev := range devs {
		if d, ok := dev.(*types.VirtualDisk); ok {
			out = append(out, d)
		}
	}
	return out
}

// prepareDisk sizes the flat file and writes content.
func (s *Sim) prepareDisk(vm types.ManagedObjectReference, d *types.VirtualDisk, content io.Reader) (Disk, error) {
	file, _ := diskBacking(d)
	flat, ok := s.flatPath(file)
	if !ok {
		return Disk{}, fmt.Errorf("vcsim: disk %d: unexpected backing %q", d.Key, file)
	}
	var p object.DatastorePath
	p.FromString(file)
	out := Disk{Key: d.Key, Capacity: diskCapacity(d), Datastore: p.Datastore, Path: file, FlatFile: flat}
	if err := s.growDiskFile(vm.Value, d.Key, file, flat, out.Capacity); err != nil {
		return Disk{}, err
	}
	if content != nil {
		if err := writeSparse(flat, content, out.Capacity); err != nil {
			return Disk{}, fmt.Errorf("vcsim: disk %d: %w", d.Key, err)
		}
	}
	return out, nil
}

// writeSparse copies r to the start of a new (all-hole) file, skipping all-zero 64 KiB
// chunks so that they stay holes.
func writeSparse(path string, r io.Reader, capacity int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, BlockSize)
	zero := make([]byte, BlockSize)
	var off int64
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if off+int64(n) > capacity {
				return fmt.Errorf("content exceeds the capacity of %d bytes", capacity)
			}
			if !bytes.Equal(buf[:n], zero[:n]) {
				if _, err := f.WriteAt(buf[:n], off); err != nil {
					return err
				}
			}
			off += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return f.Close()
		}
		if err != nil {
			return err
		}
	}
}

// Disks lists the VM's current virtual disks.
func (s *Sim) Disks(ctx context.Context, vmUUID string) ([]Disk, error) {
	_, mvm, err := s.vmConfig(ctx, vmUUID)
	if err != nil {
		return nil, err
	}
	var out []Disk
	for _, d := range diskList(mvm.Config.Hardware.Device) {
		file, _ := diskBacking(d)
		flat, _ := s.flatPath(file)
		var p object.DatastorePath
		p.FromString(file)
		out = append(out, Disk{Key: d.Key, Capacity: diskCapacity(d), Datastore: p.Datastore, Path: file, FlatFile: flat})
	}
	return out, nil
}

// DiskFile is the host path of the flat file of the VM's disk with the given device key.
// Tests may write to it between backups (not while a backup reads it: the simulator's
// snapshots keep no delta disk, so writes show through the snapshot). With
// Options.TrackWrites, writes after the VM's first snapshot with change tracking go
// through WriteDisk instead; a direct write then resets the disk's change tracking.
func (s *Sim) DiskFile(vmUUID string, diskKey int32) (string, error) {
	ref, ok := s.lookupVM(vmUUID)
	if !ok {
		return "", fmt.Errorf("vcsim: no VM %q", vmUUID)
	}
	var file string
	s.withVM(ref, func(vm *simulator.VirtualMachine) {
		if d := findDisk(vm.Config.Hardware.Device, diskKey); d != nil {
			file, _ = diskBacking(d)
		}
	})
	if file == "" {
		return "", fmt.Errorf("vcsim: VM %q has no disk %d", vmUUID, diskKey)
	}
	flat, ok := s.flatPath(file)
	if !ok {
		return "", fmt.Errorf("vcsim: disk %d of VM %q is on an unknown datastore: %s", diskKey, vmUUID, file)
	}
	return flat, nil
}

// ResizeDisk grows a disk through ReconfigVM_Task (as a vSphere client would) and
// extends its flat file.
func (s *Sim) ResizeDisk(ctx context.Context, vmUUID string, diskKey int32, capacity int64) error {
	vmo, mvm, err := s.vmConfig(ctx, vmUUID)
	if err != nil {
		return err
	}
	d := findDisk(mvm.Config.Hardware.Device, diskKey)
	if d == nil {
		return fmt.Errorf("vcsim: VM %q has no disk %d", vmUUID, diskKey)
	}
	kb := (capacity + 1023) / 1024
	if kb*1024 < diskCapacity(d) {
		return fmt.Errorf("vcsim: cannot shrink disk %d", diskKey)
	}
	d.CapacityInKB, d.CapacityInBytes = kb, kb*1024
	if err := reconfigure(ctx, vmo, types.VirtualMachineConfigSpec{DeviceChange: []types.BaseVirtualDeviceConfigSpec{
		&types.VirtualDeviceConfigSpec{Operation: types.VirtualDeviceConfigSpecOperationEdit, Device: d},
	}}); err != nil {
		return err
	}
	file, _ := diskBacking(d)
	flat, ok := s.flatPath(file)
	if !ok {
		return fmt.Errorf("vcsim: unexpected backing %q", file)
	}
	return s.growDiskFile(vmo.Reference().Value, diskKey, file, flat, kb*1024)
}

// AddDisk adds a disk to the VM's first SCSI controller through ReconfigVM_Task and
// returns it with its flat file sized and filled.
func (s *Sim) AddDisk(ctx context.Context, vmUUID string, spec DiskSpec) (Disk, error) {
	vmo, mvm, err := s.vmConfig(ctx, vmUUID)
	if err != nil {
		return Disk{}, err
	}
	devices := object.VirtualDeviceList(mvm.Config.Hardware.Device)
	ctrl, err := devices.FindSCSIController("")
	if err != nil {
		return Disk{}, err
	}
	vmDS := "LocalDS_0"
	var p object.DatastorePath
	if p.FromString(mvm.Config.Files.VmPathName) {
		vmDS = p.Datastore
	}
	disk, err := s.newDisk(spec, vmDS)
	if err != nil {
		return Disk{}, err
	}
	devices.AssignController(disk, ctrl)
	old := make(map[int32]bool)
	for _, d := range diskList(devices) {
		old[d.Key] = true
	}
	if err := reconfigure(ctx, vmo, types.VirtualMachineConfigSpec{DeviceChange: []types.BaseVirtualDeviceConfigSpec{
		&types.VirtualDeviceConfigSpec{
			Operation:     types.VirtualDeviceConfigSpecOperationAdd,
			FileOperation: types.VirtualDeviceConfigSpecFileOperationCreate,
			Device:        disk,
		},
	}}); err != nil {
		return Disk{}, err
	}
	if err := vmo.Properties(ctx, vmo.Reference(), []string{"config"}, mvm); err != nil {
		return Disk{}, err
	}
	for _, d := range diskList(mvm.Config.Hardware.Device) {
		if !old[d.Key] {
			return s.prepareDisk(vmo.Reference(), d, spec.Content)
		}
	}
	return Disk{}, errors.New("vcsim: added disk not found")
}

func reconfigure(ctx context.Context, vmo *object.VirtualMachine, spec types.VirtualMachineConfigSpec) error {
	task, err := vmo.Reconfigure(ctx, spec)
	if err != nil {
		return err
	}
	return task.Wait(ctx)
}

// vmConfig fetches the VM's config through the API.
func (s *Sim) vmConfig(ctx context.Context, vmUUID string) (*object.VirtualMachine, *mo.VirtualMachine, error) {
	ref, ok := s.lookupVM(vmUUID)
	if !ok {
		return nil, nil, fmt.Errorf("vcsim: no VM %q", vmUUID)
	}
	c, err := s.adminClient(ctx)
	if err != nil {
		return nil, nil, err
	}
	vmo := object.NewVirtualMachine(c.Client, ref)
	var mvm mo.VirtualMachine
	if err := property.DefaultCollector(c.Client).RetrieveOne(ctx, ref, []string{"config"}, &mvm); err != nil {
		return nil, nil, err
	}
	return vmo, &mvm, nil
}

// Snapshots lists the names of the VM's current snapshots, depth first, so tests can
// check that no snapshot is left behind.
func (s *Sim) Snapshots(vmUUID string) []string {
	ref, ok := s.lookupVM(vmUUID)
	if !ok {
		return nil
	}
	var names []string
	var walk func([]types.VirtualMachineSnapshotTree)
	walk = func(tree []types.VirtualMachineSnapshotTree) {
		for _, t := range tree {
			names = append(names, t.Name)
			walk(t.ChildSnapshotList)
		}
	}
	s.withVM(ref, func(vm *simulator.VirtualMachine) {
		if vm.Snapshot != nil {
			walk(vm.Snapshot.RootSnapshotList)
		}
	})
	return names
}

func (s *Sim) snapshotByName(vm types.ManagedObjectReference, name string) (types.ManagedObjectReference, bool) {
	var (
		found types.ManagedObjectReference
		ok    bool
		walk  func([]types.VirtualMachineSnapshotTree)
	)
	walk = func(tree []types.VirtualMachineSnapshotTree) {
		for _, t := range tree {
			if t.Name == name && !ok {
				found, ok = t.Snapshot, true
			}
			walk(t.ChildSnapshotList)
		}
	}
	s.withVM(vm, func(v *simulator.VirtualMachine) {
		if v.Snapshot != nil {
			walk(v.Snapshot.RootSnapshotList)
		}
	})
	return found, ok
}

// withVM runs f on the simulator's VM object under its lock.
func (s *Sim) withVM(ref types.ManagedObjectReference, f func(*simulator.VirtualMachine)) bool {
	vm, ok := s.reg.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return false
	}
	s.reg.WithLock(&simulator.Context{}, vm, func() { f(vm) })
	return true
}

// vmNameExists reports whether any VM has the name (its datastore directory would
// clash).
func (s *Sim) vmNameExists(name string) bool {
	for _, e := range s.reg.All("VirtualMachine") {
		vm, ok := e.(*simulator.VirtualMachine)
		if !ok {
			continue
		}
		found := false
		s.withVM(vm.Self, func(vm *simulator.VirtualMachine) { found = vm.Name == name })
		if found {
			return true
		}
	}
	return false
}

// lookupVM resolves an instance UUID, BIOS UUID or moref value.
func (s *Sim) lookupVM(id string) (types.ManagedObjectReference, bool) {
	s.mu.Lock()
	ref, ok := s.index[id]
	s.mu.Unlock()
	if ok && s.reg.Get(ref) != nil {
		return ref, true
	}
	for _, e := range s.reg.All("VirtualMachine") {
		vm, ok := e.(*simulator.VirtualMachine)
		if !ok {
			continue
		}
		var inst, bios string
		s.withVM(vm.Self, func(vm *simulator.VirtualMachine) {
			if vm.Config != nil {
				inst, bios = vm.Config.InstanceUuid, vm.Config.Uuid
			}
		})
		s.noteIDs(vm.Self, inst, bios)
		if id == inst || id == bios || id == vm.Self.Value {
			return vm.Self, true
		}
	}
	return types.ManagedObjectReference{}, false
}

func (s *Sim) noteIDs(ref types.ManagedObjectReference, ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.index[ref.Value] = ref
	for _, id := range ids {
		if id != "" {
			s.index[id] = ref
		}
	}
}
