package vcsim

import (
	"reflect"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// Raw device mappings.
//
// The simulator's disk layout code (VirtualMachine.updateDiskLayouts, run by every
// reconfiguration, creation, destruction and snapshot removal) type-asserts flat
// backings and panics, in a task goroutine, on a RawDiskMapping backing. The methods
// that reach it run here with each RDM backing replaced by a flat stand-in with the
// same file, and the RDM backings put back afterwards, all under the VM's lock, so
// property reads only ever see the RDM backings (a WaitForUpdates listener on
// config.hardware.device may see the intermediate changes). Not covered:
// CloneVM_Task, RelocateVM_Task and other rarely used paths on VMs with RDMs.

// rdmSwap maps flat stand-ins to the RDM backings they replace.
type rdmSwap map[*types.VirtualDiskFlatVer2BackingInfo]*types.VirtualDiskRawDiskMappingVer1BackingInfo

func standIn(b *types.VirtualDiskRawDiskMappingVer1BackingInfo) *types.VirtualDiskFlatVer2BackingInfo {
	mode := b.DiskMode
	if mode == "" {
		mode = ModePersistent
	}
	return &types.VirtualDiskFlatVer2BackingInfo{
		VirtualDeviceFileBackingInfo: b.VirtualDeviceFileBackingInfo,
		DiskMode:                     mode,
		ThinProvisioned:              types.NewBool(false),
		Uuid:                         b.Uuid,
		ContentId:                    b.ContentId,
		ChangeId:                     b.ChangeId,
	}
}

func hasRDM(devs []types.BaseVirtualDevice) bool {
	for _, d := range diskList(devs) {
		if _, ok := d.Backing.(*types.VirtualDiskRawDiskMappingVer1BackingInfo); ok {
			return true
		}
	}
	return false
}

func specHasRDM(spec *types.VirtualMachineConfigSpec) bool {
	if spec == nil {
		return false
	}
	for _, c := range spec.DeviceChange {
		if d, ok := c.GetVirtualDeviceConfigSpec().Device.(*types.VirtualDisk); ok {
			if _, ok := d.Backing.(*types.VirtualDiskRawDiskMappingVer1BackingInfo); ok {
				return true
			}
		}
	}
	return false
}

// flatten returns a copy of devs with RDM disks replaced by copies with stand-ins.
func (w rdmSwap) flatten(devs []types.BaseVirtualDevice) []types.BaseVirtualDevice {
	out := make([]types.BaseVirtualDevice, len(devs))
	for i, dev := range devs {
		out[i] = dev
		if d, ok := dev.(*types.VirtualDisk); ok {
			if b, ok := d.Backing.(*types.VirtualDiskRawDiskMappingVer1BackingInfo); ok {
				cp := *d
				f := standIn(b)
				w[f] = b
				cp.Backing = f
				out[i] = &cp
			}
		}
	}
	return out
}

// flattenSpec replaces the RDM backings of a request's devices in place (the request
// is the simulator call's own copy).
func (w rdmSwap) flattenSpec(spec *types.VirtualMachineConfigSpec) {
	if spec == nil {
		return
	}
	for _, c := range spec.DeviceChange {
		if d, ok := c.GetVirtualDeviceConfigSpec().Device.(*types.VirtualDisk); ok {
			if b, ok := d.Backing.(*types.VirtualDiskRawDiskMappingVer1BackingInfo); ok {
				f := standIn(b)
				w[f] = b
				d.Backing = f
			}
		}
	}
}

// restore returns a copy of devs with stand-ins turned back into RDM backings that
// keep what the simulator set (file name, datastore, changeId).
func (w rdmSwap) restore(devs []types.BaseVirtualDevice) ([]types.BaseVirtualDevice, bool) {
	changed := false
	out := make([]types.BaseVirtualDevice, len(devs))
	for i, dev := range devs {
		out[i] = dev
		d, ok := dev.(*types.VirtualDisk)
		if !ok {
			continue
		}
		f, ok := d.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		if !ok {
			continue
		}
		orig, ok := w[f]
		if !ok {
			continue
		}
		nb := *orig
		nb.VirtualDeviceFileBackingInfo = f.VirtualDeviceFileBackingInfo
		nb.ChangeId = f.ChangeId
		if nb.Uuid == "" {
			nb.Uuid = f.Uuid
		}
		cp := *d
		cp.Backing = &nb
		out[i] = &cp
		changed = true
	}
	return out, changed
}

func (w rdmSwap) restoreVM(ctx *simulator.Context, vm *simulator.VirtualMachine) {
	if len(w) == 0 || vm.Config == nil {
		return
	}
	if devs, ok := w.restore(vm.Config.Hardware.Device); ok {
		ctx.Update(vm, []types.PropertyChange{{Name: "config.hardware.device", Val: devs}})
	}
}

// taskOf extracts the task reference (Res.Returnval) or fault of a *_TaskBody.
func taskOf(res soap.HasFault) (types.ManagedObjectReference, types.BaseMethodFault) {
	if f := res.Fault(); f != nil {
		if mf, ok := f.VimFault().(types.BaseMethodFault); ok {
			return types.ManagedObjectReference{}, mf
		}
		return types.ManagedObjectReference{}, &types.SystemError{Reason: f.String}
	}
	v := reflect.ValueOf(res).Elem().FieldByName("Res")
	if !v.IsValid() || v.IsNil() {
		return types.ManagedObjectReference{}, &types.SystemError{Reason: "vcsim: no task"}
	}
	ref, ok := v.Elem().FieldByName("Returnval").Interface().(types.ManagedObjectReference)
	if !ok {
		return types.ManagedObjectReference{}, &types.SystemError{Reason: "vcsim: no task"}
	}
	return ref, nil
}

// rdmSafeTask runs call, a simulator method on vm that starts a task, with the VM's RDM
// backings (and those in spec) shown as flat if needed (the caller decides under the
// VM's lock). It returns the task the client sees.
func rdmSafeTask(ctx *simulator.Context, vm *simulator.VirtualMachine, method string, spec *types.VirtualMachineConfigSpec, needed bool, call func() soap.HasFault) (types.ManagedObjectReference, types.BaseMethodFault) {
	if !needed {
		return taskOf(call())
	}
	return simulator.CreateTask(vm, taskName(method), func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		w := rdmSwap{}
		ctx.Update(vm, []types.PropertyChange{{Name: "config.hardware.device", Val: w.flatten(vm.Config.Hardware.Device)}})
		w.flattenSpec(spec)
		ref, fault := taskOf(call())
		var result types.AnyType
		if fault == nil {
			result, fault = waitTask(ctx, ref)
		}
		if ctx.Map.Get(vm.Self) != nil {
			w.restoreVM(ctx, vm)
		}
		return result, fault
	}).Run(ctx), nil
}

// taskBody builds the response body of method with the given task or fault.
func taskBody(body soap.HasFault, ref types.ManagedObjectReference, fault types.BaseMethodFault) soap.HasFault {
	v := reflect.ValueOf(body).Elem()
	if fault != nil {
		v.FieldByName("Fault_").Set(reflect.ValueOf(simulator.Fault("", fault)))
		return body
	}
	res := v.FieldByName("Res")
	r := reflect.New(res.Type().Elem())
	r.Elem().FieldByName("Returnval").Set(reflect.ValueOf(ref))
	res.Set(r)
	return body
}

// DestroyTask is the simulator's, with injected failures, safe for VMs with RDMs.
func (h *vmHandler) DestroyTask(ctx *simulator.Context, req *types.Destroy_Task) soap.HasFault {
	if ref, failed := h.fail(ctx, "Destroy_Task"); failed {
		return &methods.Destroy_TaskBody{Res: &types.Destroy_TaskResponse{Returnval: ref}}
	}
	needed := hasRDM(h.Config.Hardware.Device) // the dispatcher holds the VM lock
	// Let uploads still in flight (a client that gave up on one) finish.
	h.sim.uploads.Lock()
	//lint:ignore SA2001 a barrier, not a critical section
	h.sim.uploads.Unlock()
	ref, fault := rdmSafeTask(ctx, h.VirtualMachine, "Destroy_Task", nil, needed, func() soap.HasFault {
		return h.VirtualMachine.DestroyTask(ctx, req)
	})
	return taskBody(new(methods.Destroy_TaskBody), ref, fault)
}

// RefreshStorageInfo is the simulator's, safe for VMs with RDMs.
func (h *vmHandler) RefreshStorageInfo(ctx *simulator.Context, req *types.RefreshStorageInfo) soap.HasFault {
	vm := h.VirtualMachine
	if !hasRDM(vm.Config.Hardware.Device) {
		return vm.RefreshStorageInfo(ctx, req)
	}
	w := rdmSwap{}
	ctx.Update(vm, []types.PropertyChange{{Name: "config.hardware.device", Val: w.flatten(vm.Config.Hardware.Device)}})
	res := vm.RefreshStorageInfo(ctx, req)
	w.restoreVM(ctx, vm)
	return res
}

// folderHandler answers CreateVM_Task so that VMs can be created with RDMs.
type folderHandler struct {
	*simulator.Folder
	sim *Sim
}

// CreateVMTask is the simulator's, with RDM backings shown as flat while the VM is
// created.
func (h *folderHandler) CreateVMTask(ctx *simulator.Context, req *types.CreateVM_Task) soap.HasFault {
	if ref, failed := h.sim.failTask(ctx, "CreateVM_Task", nil, h.Self); failed {
		return &methods.CreateVM_TaskBody{Res: &types.CreateVM_TaskResponse{Returnval: ref}}
	}
	if !specHasRDM(&req.Config) {
		return h.Folder.CreateVMTask(ctx, req)
	}
	folder := h.Folder
	ref := simulator.CreateTask(folder, taskName("CreateVM_Task"), func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		w := rdmSwap{}
		w.flattenSpec(&req.Config)
		inner, fault := taskOf(folder.CreateVMTask(ctx, req))
		if fault != nil {
			return nil, fault
		}
		result, fault := waitTask(ctx, inner)
		if fault != nil {
			return nil, fault
		}
		if vmRef, ok := result.(types.ManagedObjectReference); ok {
			if vm, ok := ctx.Map.Get(vmRef).(*simulator.VirtualMachine); ok {
				ctx.WithLock(vm, func() { w.restoreVM(ctx, vm) })
			}
		}
		return result, nil
	}).Run(ctx)
	return &methods.CreateVM_TaskBody{Res: &types.CreateVM_TaskResponse{Returnval: ref}}
}
