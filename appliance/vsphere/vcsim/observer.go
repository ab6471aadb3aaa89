package vcsim

import (
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// observer is registered with the simulator's Registry (like a PropertyCollector) and
// sees every object creation, property change and removal, whoever causes them. The
// simulator calls it with the changed object's lock held.
type observer struct {
	sim *Sim
}

// Reference names the observer; it is not a managed object and nobody can call it.
func (o *observer) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "CofferVcsimObserver", Value: "observer"}
}

// PutObject indexes new VMs.
func (o *observer) PutObject(_ *simulator.Context, obj mo.Reference) {
	if vm, ok := obj.(*simulator.VirtualMachine); ok {
		o.sim.observeVM(nil, &vm.VirtualMachine, nil)
	}
}

// UpdateObject follows VM changes.
func (o *observer) UpdateObject(ctx *simulator.Context, obj mo.Reference, changes []types.PropertyChange) {
	if vm, ok := obj.(*mo.VirtualMachine); ok {
		o.sim.observeVM(ctx, vm, changes)
	}
}

// RemoveObject forgets removed VMs and snapshots.
func (o *observer) RemoveObject(_ *simulator.Context, ref types.ManagedObjectReference) {
	s := o.sim
	s.mu.Lock()
	defer s.mu.Unlock()
	switch ref.Type {
	case "VirtualMachine":
		delete(s.cbt, ref.Value)
		delete(s.guests, ref.Value)
		for id, r := range s.index {
			if r == ref {
				delete(s.index, id)
			}
		}
	case "VirtualMachineSnapshot":
		for _, st := range s.cbt {
			delete(st.snaps, ref.Value)
		}
	}
}

// observeVM keeps the UUID index, notices change tracking being switched (which
// invalidates every changeId, as on ESXi), keeps flat files at least as large as their
// disks (the simulator creates them empty and never resizes them), and reports VMware
// Tools running on powered-on VMs with a guest OS id.
func (s *Sim) observeVM(ctx *simulator.Context, vm *mo.VirtualMachine, changes []types.PropertyChange) {
	if vm.Config == nil {
		return
	}
	on := vm.Config.ChangeTrackingEnabled != nil && *vm.Config.ChangeTrackingEnabled
	s.mu.Lock()
	s.index[vm.Self.Value] = vm.Self
	for _, id := range []string{vm.Config.InstanceUuid, vm.Config.Uuid} {
		if id != "" {
			s.index[id] = vm.Self
		}
	}
	st := s.vmCBTLocked(vm.Self.Value)
	if st.seen && st.on != on {
		st.disks = make(map[int32]*diskCBT)
	}
	st.on, st.seen = on, true
	s.mu.Unlock()

	for _, c := range changes {
		if strings.HasPrefix(c.Name, "config.hardware.device") {
			s.growDisks(vm)
			break
		}
	}
	if ctx != nil {
		if tc := toolsChanges(vm); tc != nil {
			s.reg.Update(ctx, vm, tc) // comes back here once, then finds nothing to do
		}
	}
}

func (s *Sim) growDisks(vm *mo.VirtualMachine) {
	for _, d := range diskList(vm.Config.Hardware.Device) {
		file, _ := diskBacking(d)
		if flat, ok := s.flatPath(file); ok {
			_ = s.growDiskFile(vm.Self.Value, d.Key, file, flat, diskCapacity(d)) // a missing file is the simulator's business
		}
	}
}

// toolsChanges returns the guest properties for the VM's power state if they are not
// set yet: tools running when powered on with a guest OS id, not running when powered
// off with one; nil when the VM has no guest OS id (tools not installed, the
// simulator's default) or nothing needs to change.
func toolsChanges(vm *mo.VirtualMachine) []types.PropertyChange {
	if vm.Config.GuestId == "" || vm.Guest == nil || vm.Summary.Guest == nil {
		return nil
	}
	var (
		status    = types.VirtualMachineToolsStatusToolsNotRunning
		running   = string(types.VirtualMachineToolsRunningStatusGuestToolsNotRunning)
		state     = string(types.VirtualMachineGuestStateNotRunning)
		heartbeat = types.ManagedEntityStatusGray
		hostName  = ""
	)
	if vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
		status = types.VirtualMachineToolsStatusToolsOk
		running = string(types.VirtualMachineToolsRunningStatusGuestToolsRunning)
		state = string(types.VirtualMachineGuestStateRunning)
		heartbeat = types.ManagedEntityStatusGreen
		hostName = strings.ToLower(vm.Name)
	}
	if vm.Guest.ToolsStatus == status && vm.Guest.ToolsRunningStatus == running &&
		vm.Guest.GuestState == state && vm.Guest.GuestId == vm.Config.GuestId {
		return nil
	}
	current := string(types.VirtualMachineToolsVersionStatusGuestToolsCurrent)
	return []types.PropertyChange{
		{Name: "guest.toolsStatus", Val: status},
		{Name: "guest.toolsRunningStatus", Val: running},
		{Name: "guest.toolsVersionStatus", Val: current},
		{Name: "guest.toolsVersionStatus2", Val: current},
		{Name: "guest.toolsVersion", Val: "12416"},
		{Name: "guest.guestState", Val: state},
		{Name: "guest.guestId", Val: vm.Config.GuestId},
		{Name: "guest.guestFullName", Val: vm.Config.GuestFullName},
		{Name: "guest.hostName", Val: hostName},
		{Name: "summary.guest.toolsStatus", Val: status},
		{Name: "summary.guest.toolsRunningStatus", Val: running},
		{Name: "summary.guest.toolsVersionStatus2", Val: current},
		{Name: "summary.guest.guestId", Val: vm.Config.GuestId},
		{Name: "summary.guest.hostName", Val: hostName},
		{Name: "summary.quickStats.guestHeartbeatStatus", Val: heartbeat},
	}
}
