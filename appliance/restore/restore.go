package restore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"

	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/store"
	"coffer.dev/coffer/store/point"
)

// Errors a caller can tell apart with errors.Is.
var (
	// ErrPointNotFound: no recovery point has the ID (wraps store.ErrNoPoint).
	ErrPointNotFound = store.ErrNoPoint
	// ErrNotVM: the point was not made by the vSphere engine (no
	// "vsphere.vm"/"vsphere.config" metadata), so there is no VM to rebuild.
	ErrNotVM = errors.New("the point is not a vSphere VM backup")
	// ErrNameTaken: a VM with the requested name exists.
	ErrNameTaken = errors.New("a VM with this name exists")
	// ErrDatastoreNotFound: the target datastore does not exist.
	ErrDatastoreNotFound = errors.New("datastore not found")
	// ErrUpload: writing a disk's contents to the datastore failed (the new
	// VM has been destroyed).
	ErrUpload = errors.New("disk upload failed")
)

// Request asks for a point to be restored as a new VM.
type Request struct {
	Point point.ID
	// Name of the new VM: required, and no VM may have it yet.
	Name string
	// Datacenter name or inventory path; empty: the only datacenter.
	Datacenter string
	// Folder is the VM folder: a path below the datacenter's VM folder
	// ("restores/tests") or an absolute inventory path. Empty: the
	// datacenter's VM folder.
	Folder string
	// Host (name or inventory path) or ResourcePool (inventory path) to
	// run the VM on; with neither, the original VM's host when it still
	// exists, else the datacenter's only resource pool.
	Host         string
	ResourcePool string
	// Datastore receives the .vmx and every disk; empty: the datastore of
	// the original VM's first disk.
	Datastore string
	// Network is the port group every NIC is attached to; empty: each NIC
	// keeps the network it had.
	Network string
	// Isolated leaves every NIC disconnected, also at power on.
	Isolated bool
	// PowerOn starts the VM once its disks are written.
	PowerOn bool
	// Disks restores only these disks of the point ("scsi0:1"); empty:
	// all of them.
	Disks []string
}

// Result describes the new VM.
type Result struct {
	VM           string    `json:"vm"`
	InstanceUUID string    `json:"instance_uuid"`
	Ref          string    `json:"ref"` // managed object id, "vm-42"
	Disks        []Disk    `json:"disks"`
	PoweredOn    bool      `json:"powered_on"`
	Warnings     []string  `json:"warnings,omitempty"`
	Started      time.Time `json:"started"`
	Finished     time.Time `json:"finished"`
}

// Disk is one restored disk.
type Disk struct {
	Name string `json:"name"` // "scsi0:0", as in the point
	// Device is where the disk is on the restored VM ("scsi0:2"): Name,
	// except for RestoreDisks, which adds disks on free units.
	Device   string `json:"device"`
	File     string `json:"file"` // the written descriptor, "[ds] vm/vm.vmdk"
	Capacity int64  `json:"capacity_bytes"`
	Written  int64  `json:"written_bytes"`
}

func (r *Result) warn(format string, a ...any) {
	r.Warnings = append(r.Warnings, fmt.Sprintf(format, a...))
}

// vmMeta and configMeta mirror the metadata the vSphere engine saves
// with a point (only the fields needed here).
type vmMeta struct {
	VM vsphere.VM `json:"vm"`
}

type configMeta struct {
	Format string `json:"format"`
	XML    string `json:"xml"`
}

// source is what a point says about the VM it saved.
type source struct {
	p     *point.RecoveryPoint
	vm    vsphere.VM
	cfg   *types.VirtualMachineConfigInfo
	disks []string // the point's disks to restore, sorted
	keys  map[string]int32
}

// loadPoint reads a point's VM description and configuration; disks
// chooses the point's disks to restore (empty: all of them).
func loadPoint(st *store.Store, id point.ID, disks []string) (*source, error) {
	p, err := st.Point(id)
	if err != nil {
		return nil, fmt.Errorf("restore point %s: %w", id, err)
	}
	rawVM, ok1 := p.Metadata["vsphere.vm"]
	rawCfg, ok2 := p.Metadata["vsphere.config"]
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("restore point %s (source %q): %w: it has no vSphere VM description and configuration", p.ID, p.Source, ErrNotVM)
	}
	var vm vmMeta
	if err := json.Unmarshal(rawVM, &vm); err != nil {
		return nil, fmt.Errorf("restore point %s: its VM description is unreadable: %w", p.ID, err)
	}
	var cm configMeta
	if err := json.Unmarshal(rawCfg, &cm); err != nil {
		return nil, fmt.Errorf("restore point %s: its configuration is unreadable: %w", p.ID, err)
	}
	if cm.Format != "vim25-xml" || cm.XML == "" {
		return nil, fmt.Errorf("restore point %s: configuration format %q is not supported", p.ID, cm.Format)
	}
	cfg, err := DecodeConfig(cm.XML)
	if err != nil {
		return nil, fmt.Errorf("restore point %s: %w", p.ID, err)
	}
	s := &source{p: p, vm: vm.VM, cfg: cfg, keys: map[string]int32{}}
	for _, d := range vm.VM.Disks {
		s.keys[d.Controller] = d.Key
	}
	names := disks
	if len(names) == 0 {
		for _, d := range p.Disks {
			names = append(names, d.Name)
		}
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		if _, ok := p.Disk(n); !ok {
			var have []string
			for _, d := range p.Disks {
				have = append(have, d.Name)
			}
			return nil, fmt.Errorf("restore point %s: it has no disk %q (it has %s)", p.ID, n, strings.Join(have, ", "))
		}
		if _, ok := s.keys[n]; !ok {
			if pd, _ := p.Disk(n); len(pd.Metadata) > 0 {
				var dm struct {
					Key int32 `json:"key"`
				}
				if json.Unmarshal(pd.Metadata, &dm) == nil && dm.Key != 0 {
					s.keys[n] = dm.Key
				}
			}
		}
		if _, ok := s.keys[n]; !ok {
			return nil, fmt.Errorf("restore point %s: disk %s is not in the saved VM description", p.ID, n)
		}
		s.disks = append(s.disks, n)
	}
	sort.Strings(s.disks)
	return s, nil
}

// DecodeConfig parses a VirtualMachineConfigInfo saved in the vSphere
// API's XML form.
func DecodeConfig(s string) (*types.VirtualMachineConfigInfo, error) {
	dec := xml.NewDecoder(strings.NewReader(s))
	dec.TypeFunc = types.TypeFunc()
	var cfg types.VirtualMachineConfigInfo
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("decode the saved VM configuration: %w", err)
	}
	return &cfg, nil
}

// target is where the new VM goes.
type target struct {
	dc     *object.Datacenter
	folder *object.Folder
	pool   *object.ResourcePool
	host   *object.HostSystem
	ds     *object.Datastore
	net    types.BaseVirtualDeviceBackingInfo // nil: keep each NIC's
}

// RestoreVM restores point req.Point as a new VM named req.Name. On any
// failure after the VM was created, the VM is destroyed again (with its
// disks).
func RestoreVM(ctx context.Context, c *vsphere.Client, st *store.Store, req Request) (res *Result, err error) {
	res = &Result{VM: req.Name, Started: time.Now().UTC()}
	defer func() { res.Finished = time.Now().UTC() }()
	if strings.TrimSpace(req.Name) == "" {
		return res, errors.New("restore: the new VM needs a name")
	}
	src, err := loadPoint(st, req.Point, req.Disks)
	if err != nil {
		return res, err
	}
	if len(src.disks) == 0 {
		return res, fmt.Errorf("restore point %s: it has no disks to restore", src.p.ID)
	}
	vim := c.Vim()
	if taken, err := nameTaken(ctx, c, req.Name); err != nil {
		return res, fmt.Errorf("restore %s: %w", req.Name, err)
	} else if taken {
		return res, fmt.Errorf("restore as %q: %w", req.Name, ErrNameTaken)
	}
	tg, err := resolveTarget(ctx, c, src, req)
	if err != nil {
		return res, fmt.Errorf("restore %s as %s: %w", src.vm.Name, req.Name, err)
	}
	spec, err := buildSpec(src, tg, req, res)
	if err != nil {
		return res, fmt.Errorf("restore %s as %s: %w", src.vm.Name, req.Name, err)
	}

	task, err := tg.folder.CreateVM(ctx, spec, tg.pool, tg.host)
	if err != nil {
		return res, fmt.Errorf("restore %s as %s: create the VM: %w", src.vm.Name, req.Name, err)
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("restore %s as %s: create the VM: %w", src.vm.Name, req.Name, err)
	}
	ref, ok := info.Result.(types.ManagedObjectReference)
	if !ok {
		return res, fmt.Errorf("restore %s as %s: create the VM: unexpected task result %T", src.vm.Name, req.Name, info.Result)
	}
	vmo := object.NewVirtualMachine(vim, ref)
	res.Ref = ref.Value
	defer func() {
		if err == nil {
			return
		}
		if derr := destroy(context.WithoutCancel(ctx), vmo); derr != nil {
			err = fmt.Errorf("%w (and removing the half-restored VM %s failed: %v)", err, req.Name, derr)
			return
		}
		res.Ref, res.InstanceUUID = "", ""
	}()

	var mvm mo.VirtualMachine
	if err = vmo.Properties(ctx, ref, []string{"config"}, &mvm); err != nil {
		return res, fmt.Errorf("restore %s as %s: read the new VM: %w", src.vm.Name, req.Name, err)
	}
	if mvm.Config == nil {
		err = fmt.Errorf("restore %s as %s: the new VM has no configuration", src.vm.Name, req.Name)
		return res, err
	}
	res.InstanceUUID = mvm.Config.InstanceUuid
	slots := diskSlots(mvm.Config.Hardware.Device)
	var writes []diskWrite
	for _, name := range src.disks {
		d, ok := slots[name]
		if !ok || diskFile(d) == "" {
			err = fmt.Errorf("restore %s as %s: the new VM has no disk %s", src.vm.Name, req.Name, name)
			return res, err
		}
		writes = append(writes, diskWrite{name: name, device: name, file: diskFile(d)})
	}
	if err = writeDisks(ctx, c, st, src, tg.dc.InventoryPath, writes, res); err != nil {
		err = fmt.Errorf("restore %s as %s: %w", src.vm.Name, req.Name, err)
		return res, err
	}
	if req.PowerOn {
		var t *object.Task
		if t, err = vmo.PowerOn(ctx); err == nil {
			err = t.Wait(ctx)
		}
		if err != nil {
			err = fmt.Errorf("restore %s as %s: power on: %w", src.vm.Name, req.Name, err)
			return res, err
		}
		res.PoweredOn = true
	}
	return res, nil
}

// nameTaken reports whether any VM (or template) is called name.
func nameTaken(ctx context.Context, c *vsphere.Client, name string) (bool, error) {
	vim := c.Vim()
	v, err := view.NewManager(vim).CreateContainerView(ctx, vim.ServiceContent.RootFolder, []string{"VirtualMachine"}, true)
	if err != nil {
		return false, fmt.Errorf("list VMs: %w", err)
	}
	defer v.Destroy(context.WithoutCancel(ctx))
	refs, err := v.Find(ctx, []string{"VirtualMachine"}, property.Match{"name": name})
	if err != nil {
		return false, fmt.Errorf("list VMs: %w", err)
	}
	return len(refs) > 0, nil
}

func resolveTarget(ctx context.Context, c *vsphere.Client, src *source, req Request) (*target, error) {
	finder := find.NewFinder(c.Vim(), false)
	tg := &target{}
	var err error
	if req.Datacenter != "" {
		tg.dc, err = finder.Datacenter(ctx, req.Datacenter)
	} else {
		tg.dc, err = finder.DefaultDatacenter(ctx)
		if err != nil && src.vm.Datacenter != "" {
			tg.dc, err = finder.Datacenter(ctx, src.vm.Datacenter)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("datacenter: %w", err)
	}
	finder.SetDatacenter(tg.dc)
	folders, err := tg.dc.Folders(ctx)
	if err != nil {
		return nil, fmt.Errorf("datacenter %s: %w", tg.dc.InventoryPath, err)
	}
	tg.folder = folders.VmFolder
	if f := strings.TrimSuffix(req.Folder, "/"); f != "" {
		p := f
		if !strings.HasPrefix(f, "/") {
			p = path.Join(folders.VmFolder.InventoryPath, f)
		}
		if tg.folder, err = finder.Folder(ctx, p); err != nil {
			return nil, fmt.Errorf("folder %q: %w", req.Folder, err)
		}
	}
	switch {
	case req.ResourcePool != "":
		if tg.pool, err = finder.ResourcePool(ctx, req.ResourcePool); err != nil {
			return nil, fmt.Errorf("resource pool %q: %w", req.ResourcePool, err)
		}
		if req.Host != "" {
			if tg.host, err = finder.HostSystem(ctx, req.Host); err != nil {
				return nil, fmt.Errorf("host %q: %w", req.Host, err)
			}
		}
	case req.Host != "":
		if tg.host, err = finder.HostSystem(ctx, req.Host); err != nil {
			return nil, fmt.Errorf("host %q: %w", req.Host, err)
		}
		if tg.pool, err = tg.host.ResourcePool(ctx); err != nil {
			return nil, fmt.Errorf("host %q: %w", req.Host, err)
		}
	default:
		if src.vm.Host != "" {
			if h, herr := finder.HostSystem(ctx, src.vm.Host); herr == nil {
				if p, perr := h.ResourcePool(ctx); perr == nil {
					tg.host, tg.pool = h, p
				}
			}
		}
		if tg.pool == nil {
			if tg.pool, err = finder.DefaultResourcePool(ctx); err != nil {
				return nil, fmt.Errorf("no host or resource pool given, and none is the obvious choice: %w", err)
			}
		}
	}
	ds := req.Datastore
	if ds == "" && len(src.vm.Datastores) > 0 {
		ds = src.vm.Datastores[0]
	}
	if ds == "" {
		return nil, errors.New("no target datastore given")
	}
	if tg.ds, err = finder.Datastore(ctx, ds); err != nil {
		var nf *find.NotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("datastore %q in %s: %w", ds, tg.dc.InventoryPath, ErrDatastoreNotFound)
		}
		return nil, fmt.Errorf("datastore %q: %w", ds, err)
	}
	if req.Network != "" {
		n, err := finder.Network(ctx, req.Network)
		if err != nil {
			return nil, fmt.Errorf("network %q: %w", req.Network, err)
		}
		if tg.net, err = n.EthernetCardBackingInfo(ctx); err != nil {
			return nil, fmt.Errorf("network %q: %w", req.Network, err)
		}
	}
	return tg, nil
}

// controllerName is the point's name prefix of a disk controller ("scsi0"),
// as the vSphere engine names disks; "" for other devices.
func controllerName(dev types.BaseVirtualDevice, bus int32) string {
	switch dev.(type) {
	case types.BaseVirtualSCSIController:
		return fmt.Sprintf("scsi%d", bus)
	case types.BaseVirtualSATAController:
		return fmt.Sprintf("sata%d", bus)
	case *types.VirtualIDEController:
		return fmt.Sprintf("ide%d", bus)
	case *types.VirtualNVMEController:
		return fmt.Sprintf("nvme%d", bus)
	}
	return ""
}

// buildSpec turns the saved configuration into a CreateVM spec.
func buildSpec(src *source, tg *target, req Request, res *Result) (types.VirtualMachineConfigSpec, error) {
	cfg := src.cfg
	dsName := tg.ds.Name()
	spec := types.VirtualMachineConfigSpec{
		Name:                req.Name,
		GuestId:             cfg.GuestId,
		Version:             cfg.Version,
		NumCPUs:             cfg.Hardware.NumCPU,
		NumCoresPerSocket:   cfg.Hardware.NumCoresPerSocket,
		MemoryMB:            int64(cfg.Hardware.MemoryMB),
		Firmware:            cfg.Firmware,
		CpuHotAddEnabled:    cfg.CpuHotAddEnabled,
		MemoryHotAddEnabled: cfg.MemoryHotAddEnabled,
		Annotation:          fmt.Sprintf("Restored by Coffer from point %s of %s.", src.p.ID, src.vm.Name),
		Files:               &types.VirtualMachineFileInfo{VmPathName: "[" + dsName + "]"},
	}
	if cfg.BootOptions != nil && cfg.BootOptions.EfiSecureBootEnabled != nil {
		spec.BootOptions = &types.VirtualMachineBootOptions{EfiSecureBootEnabled: cfg.BootOptions.EfiSecureBootEnabled}
	}
	byKey := map[int32]types.BaseVirtualDevice{}
	for _, dev := range cfg.Hardware.Device {
		byKey[dev.GetVirtualDevice().Key] = dev
	}
	next := int32(-100)
	newKey := func() int32 { next--; return next }
	ctrlKey := map[int32]int32{} // old controller key -> key in the spec
	add := func(dev types.BaseVirtualDevice, fileOp types.VirtualDeviceConfigSpecFileOperation) {
		spec.DeviceChange = append(spec.DeviceChange, &types.VirtualDeviceConfigSpec{
			Operation: types.VirtualDeviceConfigSpecOperationAdd, FileOperation: fileOp, Device: dev,
		})
	}
	// Controllers that the restored disks need (IDE controllers exist on
	// every VM and keep their fixed keys) and every SCSI/SATA/NVMe one.
	for _, dev := range cfg.Hardware.Device {
		vc, ok := dev.(types.BaseVirtualController)
		if !ok {
			continue
		}
		switch dev.(type) {
		case types.BaseVirtualSCSIController, types.BaseVirtualSATAController, *types.VirtualNVMEController:
		default:
			continue
		}
		c := vc.GetVirtualController()
		old := c.Key
		c.Key = newKey()
		c.Device = nil
		c.ControllerKey = 0
		c.SlotInfo = nil
		ctrlKey[old] = c.Key
		add(dev, "")
	}
	// NICs: new MAC addresses, optionally another network, optionally
	// disconnected.
	for _, dev := range cfg.Hardware.Device {
		nic, ok := dev.(types.BaseVirtualEthernetCard)
		if !ok {
			continue
		}
		e := nic.GetVirtualEthernetCard()
		e.Key = newKey()
		e.ControllerKey = 0
		e.UnitNumber = nil
		e.SlotInfo = nil
		e.MacAddress = ""
		e.AddressType = string(types.VirtualEthernetCardMacTypeGenerated)
		e.ExternalId = ""
		if tg.net != nil {
			e.Backing = tg.net
		} else if b, ok := e.Backing.(*types.VirtualEthernetCardDistributedVirtualPortBackingInfo); ok {
			b.Port.PortKey = "" // let vSphere pick a free port of the group
			b.Port.ConnectionCookie = 0
		}
		connected := !req.Isolated
		e.Connectable = &types.VirtualDeviceConnectInfo{StartConnected: connected, Connected: connected, AllowGuestControl: !req.Isolated}
		add(dev, "")
	}
	// The disks, new and thin, where they were.
	for _, name := range src.disks {
		old, ok := byKey[src.keys[name]].(*types.VirtualDisk)
		if !ok {
			return spec, fmt.Errorf("disk %s (key %d) is not in the saved configuration", name, src.keys[name])
		}
		pd, _ := src.p.Disk(name)
		ck, ok := ctrlKey[old.ControllerKey]
		if !ok {
			c, isIDE := byKey[old.ControllerKey].(*types.VirtualIDEController)
			if !isIDE {
				return spec, fmt.Errorf("disk %s: its controller (key %d) cannot be recreated", name, old.ControllerKey)
			}
			ck = c.Key
		}
		mode := string(types.VirtualDiskModePersistent)
		if b, ok := old.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok && b.DiskMode == string(types.VirtualDiskModeIndependent_persistent) {
			mode = b.DiskMode
		}
		unit := *old.UnitNumber
		disk := &types.VirtualDisk{
			VirtualDevice: types.VirtualDevice{
				Key: newKey(), ControllerKey: ck, UnitNumber: &unit,
				Backing: &types.VirtualDiskFlatVer2BackingInfo{
					VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: "[" + dsName + "]"},
					DiskMode:                     mode,
					ThinProvisioned:              types.NewBool(true),
				},
			},
			CapacityInKB:    (pd.Size + 1023) / 1024,
			CapacityInBytes: pd.Size,
		}
		if old.DeviceInfo != nil {
			disk.DeviceInfo = old.DeviceInfo
		}
		add(disk, types.VirtualDeviceConfigSpecFileOperationCreate)
	}
	for _, dev := range cfg.Hardware.Device {
		switch d := dev.(type) {
		case *types.VirtualCdrom:
			res.warn("CD/DVD drive %q not restored", label(d))
		case *types.VirtualFloppy, *types.VirtualSerialPort, *types.VirtualParallelPort, *types.VirtualPCIPassthrough, *types.VirtualUSB:
			res.warn("device %q not restored", label(dev))
		}
	}
	for _, d := range src.vm.Disks {
		if _, ok := src.p.Disk(d.Controller); !ok {
			res.warn("disk %s (%s) was not in the backup and is not restored", d.Controller, d.Label)
		}
	}
	return spec, nil
}

func label(dev types.BaseVirtualDevice) string {
	if d := dev.GetVirtualDevice().DeviceInfo; d != nil && d.GetDescription() != nil {
		return d.GetDescription().Label
	}
	return fmt.Sprintf("%T", dev)
}

// uploadDisk streams disk name of point id into the flat extent of the
// new descriptor file ("[ds] vm/vm.vmdk") with one whole-file PUT.
func uploadDisk(ctx context.Context, c *vsphere.Client, st *store.Store, id point.ID, name, dcPath, file string) (int64, error) {
	var dp object.DatastorePath
	if !dp.FromString(file) || dp.Path == "" {
		return 0, fmt.Errorf("cannot parse the new disk's path %q", file)
	}
	flat := strings.TrimSuffix(dp.Path, ".vmdk") + "-flat.vmdk"
	r, err := st.OpenDisk(id, name)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	sc := c.Vim().Client
	u := object.NewDatastoreURL(*sc.URL(), dcPath, dp.Datastore, flat)
	var body io.Reader = io.NewSectionReader(r, 0, r.Size())
	if wrapUpload != nil {
		body = wrapUpload(name, body)
	}
	cr := &countReader{r: body}
	param := soap.DefaultUpload
	param.ContentLength = r.Size()
	if err := sc.Upload(ctx, cr, u, &param); err != nil {
		return cr.n, fmt.Errorf("PUT [%s] %s: %w", dp.Datastore, flat, err)
	}
	if cr.n != r.Size() {
		return cr.n, fmt.Errorf("PUT [%s] %s: sent %d of %d bytes", dp.Datastore, flat, cr.n, r.Size())
	}
	return cr.n, nil
}

// wrapUpload, set by tests only, wraps the body of each disk's PUT.
var wrapUpload func(disk string, r io.Reader) io.Reader

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func destroy(ctx context.Context, vm *object.VirtualMachine) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var mvm mo.VirtualMachine
	if err := vm.Properties(ctx, vm.Reference(), []string{"runtime.powerState"}, &mvm); err == nil &&
		mvm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
		_ = powerOff(ctx, vm)
	}
	t, err := vm.Destroy(ctx)
	if err != nil {
		return err
	}
	return t.Wait(ctx)
}
