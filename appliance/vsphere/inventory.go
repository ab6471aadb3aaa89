package vsphere

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// Inventory is what a vCenter or ESXi holds, as the appliance shows it.
type Inventory struct {
	Server        string         `json:"server"` // the vCenter's instance UUID
	Datacenters   []Datacenter   `json:"datacenters"`
	Clusters      []Cluster      `json:"clusters"`
	Hosts         []Host         `json:"hosts"`
	Folders       []Folder       `json:"folders"`
	ResourcePools []ResourcePool `json:"resource_pools"`
	Datastores    []Datastore    `json:"datastores"`
	VMs           []VM           `json:"vms"`
	// Notes says what could not be read (tags on a standalone ESXi).
	Notes []string `json:"notes,omitempty"`
}

// Datacenter is a vSphere datacenter.
type Datacenter struct {
	Ref  string `json:"ref"`
	Name string `json:"name"`
	Path string `json:"path"` // inventory path, "/DC"
}

// Cluster is a compute cluster.
type Cluster struct {
	Ref        string `json:"ref"`
	Name       string `json:"name"`
	Datacenter string `json:"datacenter"`
}

// Host is an ESXi host.
type Host struct {
	Ref             string `json:"ref"`
	Name            string `json:"name"`
	Cluster         string `json:"cluster,omitempty"`
	Datacenter      string `json:"datacenter"`
	ConnectionState string `json:"connection_state"`
	PowerState      string `json:"power_state"`
	Maintenance     bool   `json:"maintenance"`
}

// Folder is a VM folder, by its path below the datacenter's VM folder.
type Folder struct {
	Ref        string `json:"ref"`
	Name       string `json:"name"`
	Path       string `json:"path"` // "Production/Web"; "" is the datacenter's VM folder
	Datacenter string `json:"datacenter"`
}

// ResourcePool is a resource pool (or vApp).
type ResourcePool struct {
	Ref        string `json:"ref"`
	Name       string `json:"name"`
	Path       string `json:"path"`
	Datacenter string `json:"datacenter"`
}

// Datastore is a datastore with its capacity.
type Datastore struct {
	Ref        string `json:"ref"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Capacity   int64  `json:"capacity_bytes"`
	Free       int64  `json:"free_bytes"`
	Datacenter string `json:"datacenter"`
	Accessible bool   `json:"accessible"`
}

// VM is a virtual machine. InstanceUUID identifies it: it survives
// vMotion, renames and moves between folders.
type VM struct {
	InstanceUUID string `json:"instance_uuid"`
	BIOSUUID     string `json:"bios_uuid"`
	Ref          string `json:"ref"`
	Name         string `json:"name"`
	Datacenter   string `json:"datacenter"`
	Folder       string `json:"folder"` // path below the datacenter's VM folder
	Host         string `json:"host"`
	Cluster      string `json:"cluster,omitempty"`
	ResourcePool string `json:"resource_pool"`
	PowerState   string `json:"power_state"` // poweredOn, poweredOff, suspended
	ToolsStatus  string `json:"tools_status"`
	GuestID      string `json:"guest_id"`
	GuestName    string `json:"guest_name"`
	Template     bool   `json:"template"`
	CBT          bool   `json:"cbt"`
	Disks        []Disk `json:"disks"`
	// Datastores are the names of the datastores the VM's disks are on.
	Datastores []string `json:"datastores"`
	Tags       []string `json:"tags,omitempty"` // "category/name"
	// Snapshots counts the VM's snapshots (all, not only Coffer's).
	Snapshots int `json:"snapshots"`
}

// ToolsRunning reports whether VMware Tools run in the guest (needed for
// quiescing and guest hooks).
func (v VM) ToolsRunning() bool {
	return v.ToolsStatus == string(types.VirtualMachineToolsRunningStatusGuestToolsRunning)
}

// Disk is one virtual disk of a VM.
type Disk struct {
	Key        int32  `json:"key"`
	Label      string `json:"label"`
	Controller string `json:"controller"` // "scsi0:1": the disk's name in recovery points
	Capacity   int64  `json:"capacity_bytes"`
	Datastore  string `json:"datastore"`
	File       string `json:"file"` // "[ds] vm/vm.vmdk"
	Thin       bool   `json:"thin"`
	// Mode is the disk mode: persistent, independent_persistent,
	// independent_nonpersistent, nonpersistent, undoable, append.
	Mode string `json:"mode"`
	// RDM is "physical" or "virtual" for raw device mappings.
	RDM      string `json:"rdm,omitempty"`
	ChangeID string `json:"change_id,omitempty"`
	UUID     string `json:"uuid,omitempty"`
	// Delta is true when the backing is a snapshot delta (the VM has
	// snapshots of its own).
	Delta bool `json:"delta,omitempty"`
}

// SkipReason says why the disk cannot be backed up through a snapshot,
// or "" when it can.
func (d Disk) SkipReason() string {
	switch {
	case d.RDM == "physical":
		return "physical-mode RDM: vSphere cannot snapshot it"
	case strings.HasPrefix(d.Mode, "independent"):
		return "independent disk (" + d.Mode + "): vSphere does not include it in snapshots"
	}
	return ""
}

// Inventory reads the whole inventory in a few property-collector calls.
func (c *Client) Inventory(ctx context.Context) (*Inventory, error) {
	m := view.NewManager(c.vim)
	v, err := m.CreateContainerView(ctx, c.vim.ServiceContent.RootFolder, nil, true)
	if err != nil {
		return nil, fmt.Errorf("inventory: create view: %w", err)
	}
	defer v.Destroy(context.WithoutCancel(ctx))

	var (
		dcs      []mo.Datacenter
		folders  []mo.Folder
		clusters []mo.ClusterComputeResource
		computes []mo.ComputeResource
		hosts    []mo.HostSystem
		pools    []mo.ResourcePool
		dss      []mo.Datastore
		vms      []mo.VirtualMachine
	)
	for _, q := range []struct {
		kind  string
		props []string
		dst   any
	}{
		{"Datacenter", []string{"name", "parent", "vmFolder"}, &dcs},
		{"Folder", []string{"name", "parent", "childType"}, &folders},
		{"ClusterComputeResource", []string{"name", "parent"}, &clusters},
		{"ComputeResource", []string{"name", "parent"}, &computes},
		{"HostSystem", []string{"name", "parent", "runtime.connectionState", "runtime.powerState", "runtime.inMaintenanceMode"}, &hosts},
		{"ResourcePool", []string{"name", "parent"}, &pools},
		{"Datastore", []string{"name", "parent", "summary"}, &dss},
		{"VirtualMachine", vmProps, &vms},
	} {
		if err := v.Retrieve(ctx, []string{q.kind}, q.props, q.dst); err != nil {
			return nil, fmt.Errorf("inventory: read %s objects: %w", q.kind, err)
		}
	}

	// Parent links, to place everything below its datacenter.
	parent := map[types.ManagedObjectReference]types.ManagedObjectReference{}
	name := map[types.ManagedObjectReference]string{}
	note := func(self types.ManagedObjectReference, p *types.ManagedObjectReference, n string) {
		name[self] = n
		if p != nil {
			parent[self] = *p
		}
	}
	for _, o := range dcs {
		note(o.Self, o.Parent, o.Name)
	}
	for _, o := range folders {
		note(o.Self, o.Parent, o.Name)
	}
	for _, o := range clusters {
		note(o.Self, o.Parent, o.Name)
	}
	for _, o := range computes {
		note(o.Self, o.Parent, o.Name)
	}
	for _, o := range hosts {
		note(o.Self, o.Parent, o.Name)
	}
	for _, o := range pools {
		note(o.Self, o.Parent, o.Name)
	}
	for _, o := range dss {
		note(o.Self, o.Parent, o.Name)
	}
	vmFolders := map[types.ManagedObjectReference]bool{}
	for _, dc := range dcs {
		vmFolders[dc.VmFolder] = true
	}
	// chain returns the ancestors of r, nearest first.
	chain := func(r types.ManagedObjectReference) []types.ManagedObjectReference {
		var out []types.ManagedObjectReference
		for i := 0; i < 64; i++ {
			p, ok := parent[r]
			if !ok {
				break
			}
			out = append(out, p)
			r = p
		}
		return out
	}
	dcOf := func(r types.ManagedObjectReference) string {
		for _, a := range chain(r) {
			if a.Type == "Datacenter" {
				return name[a]
			}
		}
		return ""
	}
	dcPath := func(r types.ManagedObjectReference) string {
		parts := []string{name[r]}
		for _, a := range chain(r) {
			if _, ok := parent[a]; !ok {
				break // the root folder
			}
			parts = append(parts, name[a])
		}
		for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
			parts[i], parts[j] = parts[j], parts[i]
		}
		return "/" + strings.Join(parts, "/")
	}
	// folderPath is the path of a VM folder below its datacenter's VM folder.
	folderPath := func(r types.ManagedObjectReference) string {
		var parts []string
		for a := r; !vmFolders[a]; {
			if a.Type != "Folder" {
				return ""
			}
			parts = append([]string{name[a]}, parts...)
			p, ok := parent[a]
			if !ok {
				return ""
			}
			a = p
		}
		return strings.Join(parts, "/")
	}
	poolPath := func(r types.ManagedObjectReference) string {
		var parts []string
		for a := r; a.Type == "ResourcePool" || a.Type == "VirtualApp"; {
			parts = append([]string{name[a]}, parts...)
			p, ok := parent[a]
			if !ok {
				break
			}
			a = p
		}
		return strings.Join(parts, "/")
	}
	clusterOf := func(host types.ManagedObjectReference) string {
		if p, ok := parent[host]; ok && p.Type == "ClusterComputeResource" {
			return name[p]
		}
		return ""
	}

	inv := &Inventory{Server: c.InstanceUUID()}
	for _, o := range dcs {
		inv.Datacenters = append(inv.Datacenters, Datacenter{Ref: o.Self.Value, Name: o.Name, Path: dcPath(o.Self)})
	}
	for _, o := range clusters {
		inv.Clusters = append(inv.Clusters, Cluster{Ref: o.Self.Value, Name: o.Name, Datacenter: dcOf(o.Self)})
	}
	for _, o := range hosts {
		inv.Hosts = append(inv.Hosts, Host{
			Ref: o.Self.Value, Name: o.Name, Cluster: clusterOf(o.Self), Datacenter: dcOf(o.Self),
			ConnectionState: string(o.Runtime.ConnectionState), PowerState: string(o.Runtime.PowerState),
			Maintenance: o.Runtime.InMaintenanceMode,
		})
	}
	for _, o := range folders {
		if !vmFolders[o.Self] && folderPath(o.Self) == "" {
			continue // host, datastore and network folders
		}
		inv.Folders = append(inv.Folders, Folder{Ref: o.Self.Value, Name: o.Name, Path: folderPath(o.Self), Datacenter: dcOf(o.Self)})
	}
	for _, o := range pools {
		inv.ResourcePools = append(inv.ResourcePools, ResourcePool{Ref: o.Self.Value, Name: o.Name, Path: poolPath(o.Self), Datacenter: dcOf(o.Self)})
	}
	dsName := map[types.ManagedObjectReference]string{}
	for _, o := range dss {
		dsName[o.Self] = o.Name
		inv.Datastores = append(inv.Datastores, Datastore{
			Ref: o.Self.Value, Name: o.Name, Type: o.Summary.Type, Capacity: o.Summary.Capacity,
			Free: o.Summary.FreeSpace, Datacenter: dcOf(o.Self), Accessible: o.Summary.Accessible,
		})
	}
	hostName := map[types.ManagedObjectReference]string{}
	for _, o := range hosts {
		hostName[o.Self] = o.Name
	}
	for i := range vms {
		vm := describeVM(&vms[i], dsName)
		vm.Datacenter = dcOf(vms[i].Self)
		if vms[i].Parent != nil {
			vm.Folder = folderPath(*vms[i].Parent)
		}
		if h := vms[i].Runtime.Host; h != nil {
			vm.Host = hostName[*h]
			vm.Cluster = clusterOf(*h)
		}
		if rp := vms[i].ResourcePool; rp != nil {
			vm.ResourcePool = poolPath(*rp)
		}
		inv.VMs = append(inv.VMs, vm)
	}
	if err := c.addTags(ctx, inv, vms); err != nil {
		inv.Notes = append(inv.Notes, "tags not read: "+err.Error())
	}
	sort.Slice(inv.VMs, func(i, j int) bool { return inv.VMs[i].Name < inv.VMs[j].Name })
	return inv, nil
}

// vmProps are the VM properties the engine reads.
var vmProps = []string{
	"name", "parent", "resourcePool", "config.instanceUuid", "config.uuid", "config.template",
	"config.changeTrackingEnabled", "config.guestId", "config.guestFullName", "config.hardware.device",
	"runtime.powerState", "runtime.host", "guest.toolsRunningStatus", "snapshot",
}

// describeVM turns the properties of a VM into the engine's view.
func describeVM(o *mo.VirtualMachine, dsName map[types.ManagedObjectReference]string) VM {
	vm := VM{Ref: o.Self.Value, Name: o.Name, PowerState: string(o.Runtime.PowerState)}
	if o.Guest != nil {
		vm.ToolsStatus = o.Guest.ToolsRunningStatus
	}
	if cfg := o.Config; cfg != nil {
		vm.InstanceUUID = cfg.InstanceUuid
		vm.BIOSUUID = cfg.Uuid
		vm.Template = cfg.Template
		vm.GuestID = cfg.GuestId
		vm.GuestName = cfg.GuestFullName
		if cfg.ChangeTrackingEnabled != nil {
			vm.CBT = *cfg.ChangeTrackingEnabled
		}
		vm.Disks = disksOf(cfg.Hardware.Device, dsName)
	}
	seen := map[string]bool{}
	for _, d := range vm.Disks {
		if d.Datastore != "" && !seen[d.Datastore] {
			seen[d.Datastore] = true
			vm.Datastores = append(vm.Datastores, d.Datastore)
		}
	}
	if o.Snapshot != nil {
		vm.Snapshots = countSnapshots(o.Snapshot.RootSnapshotList)
	}
	return vm
}

func countSnapshots(l []types.VirtualMachineSnapshotTree) int {
	n := 0
	for _, t := range l {
		n += 1 + countSnapshots(t.ChildSnapshotList)
	}
	return n
}

// disksOf lists the virtual disks among devices, named by controller
// and unit ("scsi0:1").
func disksOf(devices []types.BaseVirtualDevice, dsName map[types.ManagedObjectReference]string) []Disk {
	ctrl := map[int32]string{}
	for _, d := range devices {
		c, ok := d.(types.BaseVirtualController)
		if !ok {
			continue
		}
		vc := c.GetVirtualController()
		kind := ""
		switch d.(type) {
		case types.BaseVirtualSCSIController:
			kind = "scsi"
		case types.BaseVirtualSATAController:
			kind = "sata"
		case *types.VirtualIDEController:
			kind = "ide"
		case *types.VirtualNVMEController:
			kind = "nvme"
		default:
			continue
		}
		ctrl[vc.Key] = fmt.Sprintf("%s%d", kind, vc.BusNumber)
	}
	var out []Disk
	for _, dev := range devices {
		vd, ok := dev.(*types.VirtualDisk)
		if !ok {
			continue
		}
		d := Disk{Key: vd.Key, Capacity: vd.CapacityInBytes}
		if d.Capacity == 0 {
			d.Capacity = vd.CapacityInKB * 1024
		}
		if info := vd.DeviceInfo.GetDescription(); info != nil {
			d.Label = info.Label
		}
		unit := int32(-1)
		if vd.UnitNumber != nil {
			unit = *vd.UnitNumber
		}
		d.Controller = fmt.Sprintf("%s:%d", ctrl[vd.ControllerKey], unit)
		if ctrl[vd.ControllerKey] == "" {
			d.Controller = fmt.Sprintf("disk%d", vd.Key)
		}
		switch b := vd.Backing.(type) {
		case *types.VirtualDiskFlatVer2BackingInfo:
			d.File, d.Mode, d.ChangeID, d.UUID = b.FileName, b.DiskMode, b.ChangeId, b.Uuid
			d.Thin = b.ThinProvisioned != nil && *b.ThinProvisioned
			d.Delta = b.Parent != nil
			d.Datastore = backingDatastore(b.Datastore, b.FileName, dsName)
		case *types.VirtualDiskRawDiskMappingVer1BackingInfo:
			d.File, d.Mode, d.ChangeID, d.UUID = b.FileName, b.DiskMode, b.ChangeId, b.Uuid
			d.RDM = "virtual"
			if b.CompatibilityMode == string(types.VirtualDiskCompatibilityModePhysicalMode) {
				d.RDM = "physical"
			}
			d.Delta = b.Parent != nil
			d.Datastore = backingDatastore(b.Datastore, b.FileName, dsName)
		case *types.VirtualDiskSeSparseBackingInfo:
			d.File, d.Mode, d.ChangeID, d.UUID = b.FileName, b.DiskMode, b.ChangeId, b.Uuid
			d.Thin, d.Delta = true, b.Parent != nil
			d.Datastore = backingDatastore(b.Datastore, b.FileName, dsName)
		case *types.VirtualDiskSparseVer2BackingInfo:
			d.File, d.Mode, d.ChangeID, d.UUID = b.FileName, b.DiskMode, b.ChangeId, b.Uuid
			d.Thin, d.Delta = true, b.Parent != nil
			d.Datastore = backingDatastore(b.Datastore, b.FileName, dsName)
		default:
			if fb, ok := vd.Backing.(types.BaseVirtualDeviceFileBackingInfo); ok {
				fi := fb.GetVirtualDeviceFileBackingInfo()
				d.File = fi.FileName
				d.Datastore = backingDatastore(fi.Datastore, fi.FileName, dsName)
			}
			d.Mode = "unsupported backing " + fmt.Sprintf("%T", vd.Backing)
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Controller < out[j].Controller })
	return out
}

func backingDatastore(ref *types.ManagedObjectReference, file string, dsName map[types.ManagedObjectReference]string) string {
	if ref != nil {
		if n, ok := dsName[*ref]; ok {
			return n
		}
	}
	if ds, _, ok := splitDatastorePath(file); ok {
		return ds
	}
	return ""
}

// splitDatastorePath splits "[ds] dir/file.vmdk".
func splitDatastorePath(p string) (ds, rel string, ok bool) {
	p = strings.TrimSpace(p)
	if !strings.HasPrefix(p, "[") {
		return "", "", false
	}
	i := strings.Index(p, "]")
	if i < 0 {
		return "", "", false
	}
	return p[1:i], strings.TrimSpace(p[i+1:]), true
}

// flatExtentPath returns the datastore-relative path of the data file of
// a flat disk descriptor: "vm/vm.vmdk" → "vm/vm-flat.vmdk".
func flatExtentPath(rel string) string {
	dir, file := path.Split(rel)
	base := strings.TrimSuffix(file, ".vmdk")
	return dir + base + "-flat.vmdk"
}
