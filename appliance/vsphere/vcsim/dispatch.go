package vcsim

import (
	"reflect"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// interceptPrefix marks a reference that no registry holds: the dispatcher then keeps
// the handler returned by Sim.handle instead of looking the object up again.
const interceptPrefix = "coffer-vcsim:"

// Methods answered by this package's wrappers, per managed object type.
var intercepted = map[string]map[string]bool{
	"VirtualMachine": {
		"QueryChangedDiskAreas":        true,
		"CreateSnapshot_Task":          true,
		"CreateSnapshotEx_Task":        true,
		"RemoveAllSnapshots_Task":      true,
		"RevertToCurrentSnapshot_Task": true,
		"ReconfigVM_Task":              true,
		"PowerOnVM_Task":               true,
		"PowerOffVM_Task":              true,
		"Destroy_Task":                 true,
		"RefreshStorageInfo":           true,
	},
	"Folder": {
		"CreateVM_Task": true,
	},
	"VirtualMachineSnapshot": {
		"RemoveSnapshot_Task":   true,
		"RevertToSnapshot_Task": true,
	},
	"GuestProcessManager": {
		"StartProgramInGuest":     true,
		"ListProcessesInGuest":    true,
		"TerminateProcessInGuest": true,
	},
}

// taskFailures are the _Task methods whose injected failures (FailNext) surface as a
// failed task, like ESXi; any other method fails with a SOAP fault.
var taskFailures = map[string]bool{
	"CreateSnapshot_Task":          true,
	"CreateSnapshotEx_Task":        true,
	"RemoveAllSnapshots_Task":      true,
	"RevertToCurrentSnapshot_Task": true,
	"ReconfigVM_Task":              true,
	"PowerOnVM_Task":               true,
	"PowerOffVM_Task":              true,
	"RemoveSnapshot_Task":          true,
	"RevertToSnapshot_Task":        true,
	"Destroy_Task":                 true,
	"CreateVM_Task":                true,
}

// handle is the simulator Registry.Handler: it runs before every SOAP call of the vim25
// endpoint.
func (s *Sim) handle(ctx *simulator.Context, m *simulator.Method) (mo.Reference, types.BaseMethodFault) {
	if ctx.Session == nil {
		return nil, unauthenticated(m)
	}
	if !taskFailures[m.Name] && s.hasFailures(m.Name) {
		if f := s.takeFailure(m.Name, s.targetVM(ctx, m)); f != nil {
			return nil, f
		}
	}
	if m.This.Type == "GuestFileManager" {
		if !guestFileMethods[m.Name] || ctx.Map.Get(m.This) == nil {
			return nil, s.guestFileFault(ctx, m)
		}
		g := &guestFileHandler{sim: s}
		g.Self = m.This
		m.This.Value = interceptPrefix + m.This.Value
		return g, nil
	}
	if !intercepted[m.This.Type][m.Name] {
		return nil, nil
	}
	var h mo.Reference
	switch m.This.Type {
	case "VirtualMachine":
		vm, ok := ctx.Map.Get(m.This).(*simulator.VirtualMachine)
		if !ok {
			return nil, nil
		}
		h = &vmHandler{VirtualMachine: vm, sim: s}
	case "VirtualMachineSnapshot":
		snap, ok := ctx.Map.Get(m.This).(*simulator.VirtualMachineSnapshot)
		if !ok {
			return nil, nil
		}
		h = &snapshotHandler{VirtualMachineSnapshot: snap, sim: s}
	case "Folder":
		f, ok := ctx.Map.Get(m.This).(*simulator.Folder)
		if !ok {
			return nil, nil
		}
		h = &folderHandler{Folder: f, sim: s}
	case "GuestProcessManager":
		if ctx.Map.Get(m.This) == nil {
			return nil, nil
		}
		g := &guestHandler{sim: s}
		g.Self = m.This
		h = g
	default:
		return nil, nil
	}
	m.This.Value = interceptPrefix + m.This.Value
	return h, nil
}

// unauthenticated makes session-less calls fail like ESXi. The simulator already refuses
// most methods without a session but answers property retrieval; ESXi answers
// NotAuthenticated unless only the SessionManager or ServiceInstance is read (which
// govmomi uses to learn whether it is logged in).
func unauthenticated(m *simulator.Method) types.BaseMethodFault {
	var specs []types.PropertyFilterSpec
	switch req := m.Body.(type) {
	case *types.RetrieveProperties:
		specs = req.SpecSet
	case *types.RetrievePropertiesEx:
		specs = req.SpecSet
	default:
		return nil
	}
	for _, spec := range specs {
		for _, o := range spec.ObjectSet {
			if t := o.Obj.Type; t != "SessionManager" && t != "ServiceInstance" {
				return &types.NotAuthenticated{NoPermission: types.NoPermission{Object: &o.Obj, PrivilegeId: "System.View"}}
			}
		}
	}
	return nil
}

// targetVM is the VM a call acts on: its receiver, a snapshot's VM or a "vm" argument.
func (s *Sim) targetVM(ctx *simulator.Context, m *simulator.Method) *types.ManagedObjectReference {
	switch m.This.Type {
	case "VirtualMachine":
		ref := m.This
		return &ref
	case "VirtualMachineSnapshot":
		if snap, ok := ctx.Map.Get(m.This).(*simulator.VirtualMachineSnapshot); ok {
			ref := snap.Vm // set at creation, never changed
			return &ref
		}
		return nil
	}
	v := reflect.ValueOf(m.Body)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	f := v.FieldByName("Vm")
	if !f.IsValid() {
		return nil
	}
	switch ref := f.Interface().(type) {
	case types.ManagedObjectReference:
		return &ref
	case *types.ManagedObjectReference:
		return ref
	}
	return nil
}

// failRule is one FailNext registration.
type failRule struct {
	method string
	vm     string // as given to FailNext; "" matches any call
	n      int
}

// FailNext makes the next n calls of method (the vim25 method name, e.g.
// "RemoveSnapshot_Task", "QueryChangedDiskAreas", "StartProgramInGuest") that act on the
// VM fail with a SystemError. The VM is the call's receiver, the VM of a snapshot
// receiver, or the call's vm argument; an empty vmUUID matches every call of method.
// Snapshot, power, reconfigure, create and destroy tasks (CreateSnapshot_Task,
// CreateSnapshotEx_Task, RemoveSnapshot_Task, RemoveAllSnapshots_Task,
// RevertToSnapshot_Task, RevertToCurrentSnapshot_Task, ReconfigVM_Task, PowerOnVM_Task,
// PowerOffVM_Task, Destroy_Task, CreateVM_Task) fail as ESXi does, with a task that
// ends in error and changes nothing; other methods fail with a SOAP fault.
// (CreateVM_Task has no VM yet, so only rules with an empty vmUUID match it.)
// n <= 0 removes pending failures of that method and VM.
func (s *Sim) FailNext(method, vmUUID string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.rules[:0]
	for _, r := range s.rules {
		if r.method != method || r.vm != vmUUID {
			kept = append(kept, r)
		}
	}
	s.rules = kept
	if n > 0 {
		s.rules = append(s.rules, &failRule{method: method, vm: vmUUID, n: n})
	}
}

func (s *Sim) hasFailures(method string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rules {
		if r.method == method {
			return true
		}
	}
	return false
}

// takeFailure consumes a matching FailNext rule and returns its fault.
func (s *Sim) takeFailure(method string, vm *types.ManagedObjectReference) types.BaseMethodFault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.rules {
		if r.method != method {
			continue
		}
		if r.vm != "" {
			ref, ok := s.index[r.vm]
			if !ok || vm == nil || ref != *vm {
				continue
			}
		}
		r.n--
		if r.n <= 0 {
			s.rules = append(s.rules[:i], s.rules[i+1:]...)
		}
		return &types.SystemError{Reason: "vcsim: injected failure of " + method}
	}
	return nil
}

// failTask consumes a matching FailNext rule for a _Task method and starts the failed
// task on entity.
func (s *Sim) failTask(ctx *simulator.Context, method string, vm *types.ManagedObjectReference, entity types.ManagedObjectReference) (types.ManagedObjectReference, bool) {
	if f := s.takeFailure(method, vm); f != nil {
		return failedTask(ctx, entity, method, f), true
	}
	return types.ManagedObjectReference{}, false
}

// failedTask starts a task on entity that ends with fault.
func failedTask(ctx *simulator.Context, entity types.ManagedObjectReference, method string, fault types.BaseMethodFault) types.ManagedObjectReference {
	return simulator.CreateTask(entity, taskName(method), func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		return nil, fault
	}).Run(ctx)
}

// taskName turns "RemoveSnapshot_Task" into the simulator's "removeSnapshotTask", which
// it reports as info.name "RemoveSnapshot_Task", info.descriptionId
// "VirtualMachine.removeSnapshot", as vCenter does.
func taskName(method string) string {
	name := strings.TrimSuffix(method, "_Task")
	return strings.ToLower(name[:1]) + name[1:] + "Task"
}

// waitTask waits for a task started by the simulator and returns its outcome.
func waitTask(ctx *simulator.Context, ref types.ManagedObjectReference) (types.AnyType, types.BaseMethodFault) {
	t, ok := ctx.Map.Get(ref).(*simulator.Task)
	if !ok {
		return nil, &types.ManagedObjectNotFound{Obj: ref}
	}
	t.Wait()
	if t.Info.Error != nil {
		return nil, t.Info.Error.Fault
	}
	return t.Info.Result, nil
}

// vmHandler answers the intercepted VirtualMachine methods; everything else is the
// simulator's VirtualMachine.
type vmHandler struct {
	*simulator.VirtualMachine // first field: the PropertyCollector and locking look here
	sim                       *Sim
}

func (h *vmHandler) fail(ctx *simulator.Context, method string) (types.ManagedObjectReference, bool) {
	ref := h.Self
	return h.sim.failTask(ctx, method, &ref, ref)
}

// CreateSnapshotTask creates a snapshot and, with change tracking on, a CBT generation.
func (h *vmHandler) CreateSnapshotTask(ctx *simulator.Context, req *types.CreateSnapshot_Task) soap.HasFault {
	ex := &types.CreateSnapshotEx_Task{This: req.This, Name: req.Name, Description: req.Description, Memory: req.Memory}
	if req.Quiesce {
		ex.QuiesceSpec = &types.VirtualMachineGuestQuiesceSpec{}
	}
	return &methods.CreateSnapshot_TaskBody{
		Res: &types.CreateSnapshot_TaskResponse{Returnval: h.snapshot(ctx, "CreateSnapshot_Task", ex)},
	}
}

// CreateSnapshotExTask is CreateSnapshotTask with a quiesce spec.
func (h *vmHandler) CreateSnapshotExTask(ctx *simulator.Context, req *types.CreateSnapshotEx_Task) soap.HasFault {
	return &methods.CreateSnapshotEx_TaskBody{
		Res: &types.CreateSnapshotEx_TaskResponse{Returnval: h.snapshot(ctx, "CreateSnapshotEx_Task", req)},
	}
}

// snapshot runs the simulator's snapshot task inside an outer task that first applies
// injected failures and makes the disks' CBT generations (hashing them, or from the
// recorded writes), and afterwards records the generations and publishes their
// changeIds. The outer task holds the VM lock throughout (the simulator hands the
// caller's lock to the task), and s.io, so that neither the VM nor (through WriteDisk)
// its disks change in between.
func (h *vmHandler) snapshot(ctx *simulator.Context, method string, req *types.CreateSnapshotEx_Task) types.ManagedObjectReference {
	if ref, failed := h.fail(ctx, method); failed {
		return ref
	}
	vm := h.VirtualMachine
	s := h.sim
	return simulator.CreateTask(vm, taskName(method), func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		if req.QuiesceSpec != nil && vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn && s.takeQuiesce(vm.Self) {
			return nil, &types.ApplicationQuiesceFault{SnapshotFault: types.SnapshotFault{VimFault: types.VimFault{MethodFault: types.MethodFault{
				FaultMessage: []types.LocalizableMessage{{
					Key:     "msg.snapshot.quiesce.vmerr",
					Message: "The guest OS has reported an error during quiescing. Failed to quiesce the virtual machine.",
				}},
			}}}}
		}
		s.io.Lock()
		defer s.io.Unlock()
		gens, fault := s.diskGenerations(vm)
		if fault != nil {
			return nil, fault
		}
		res := vm.CreateSnapshotExTask(ctx, req)
		body, ok := res.(*methods.CreateSnapshotEx_TaskBody)
		if !ok || body.Res == nil {
			if f := res.Fault(); f != nil {
				if mf, ok := f.VimFault().(types.BaseMethodFault); ok {
					return nil, mf
				}
			}
			return nil, &types.SystemError{Reason: "vcsim: snapshot failed"}
		}
		result, fault := waitTask(ctx, body.Res.Returnval)
		if fault != nil {
			return nil, fault
		}
		snapRef, ok := result.(types.ManagedObjectReference)
		if !ok {
			return nil, &types.SystemError{Reason: "vcsim: snapshot task returned no snapshot"}
		}
		s.commitSnapshot(ctx, vm, snapRef, gens)
		return snapRef, nil
	}).Run(ctx)
}

// RemoveAllSnapshotsTask is the simulator's, with injected failures.
func (h *vmHandler) RemoveAllSnapshotsTask(ctx *simulator.Context, req *types.RemoveAllSnapshots_Task) soap.HasFault {
	if ref, failed := h.fail(ctx, "RemoveAllSnapshots_Task"); failed {
		return &methods.RemoveAllSnapshots_TaskBody{Res: &types.RemoveAllSnapshots_TaskResponse{Returnval: ref}}
	}
	needed := hasRDM(h.Config.Hardware.Device) // the dispatcher holds the VM lock
	ref, fault := rdmSafeTask(ctx, h.VirtualMachine, "RemoveAllSnapshots_Task", nil, needed, func() soap.HasFault {
		return h.VirtualMachine.RemoveAllSnapshotsTask(ctx, req)
	})
	return taskBody(new(methods.RemoveAllSnapshots_TaskBody), ref, fault)
}

// RevertToCurrentSnapshotTask is the simulator's, with injected failures.
func (h *vmHandler) RevertToCurrentSnapshotTask(ctx *simulator.Context, req *types.RevertToCurrentSnapshot_Task) soap.HasFault {
	if ref, failed := h.fail(ctx, "RevertToCurrentSnapshot_Task"); failed {
		return &methods.RevertToCurrentSnapshot_TaskBody{Res: &types.RevertToCurrentSnapshot_TaskResponse{Returnval: ref}}
	}
	return h.VirtualMachine.RevertToCurrentSnapshotTask(ctx, req)
}

// ReconfigVMTask is the simulator's, with injected failures. (CBT switching and disk
// size changes are observed by the observer, whoever makes them.)
func (h *vmHandler) ReconfigVMTask(ctx *simulator.Context, req *types.ReconfigVM_Task) soap.HasFault {
	if ref, failed := h.fail(ctx, "ReconfigVM_Task"); failed {
		return &methods.ReconfigVM_TaskBody{Res: &types.ReconfigVM_TaskResponse{Returnval: ref}}
	}
	needed := hasRDM(h.Config.Hardware.Device) || specHasRDM(&req.Spec) // under the VM lock
	ref, fault := rdmSafeTask(ctx, h.VirtualMachine, "ReconfigVM_Task", &req.Spec, needed, func() soap.HasFault {
		return h.VirtualMachine.ReconfigVMTask(ctx, req)
	})
	return taskBody(new(methods.ReconfigVM_TaskBody), ref, fault)
}

// PowerOnVMTask is the simulator's, with injected failures.
func (h *vmHandler) PowerOnVMTask(ctx *simulator.Context, req *types.PowerOnVM_Task) soap.HasFault {
	if ref, failed := h.fail(ctx, "PowerOnVM_Task"); failed {
		return &methods.PowerOnVM_TaskBody{Res: &types.PowerOnVM_TaskResponse{Returnval: ref}}
	}
	return h.VirtualMachine.PowerOnVMTask(ctx, req)
}

// PowerOffVMTask is the simulator's, with injected failures.
func (h *vmHandler) PowerOffVMTask(ctx *simulator.Context, req *types.PowerOffVM_Task) soap.HasFault {
	if ref, failed := h.fail(ctx, "PowerOffVM_Task"); failed {
		return &methods.PowerOffVM_TaskBody{Res: &types.PowerOffVM_TaskResponse{Returnval: ref}}
	}
	return h.VirtualMachine.PowerOffVMTask(ctx, req)
}

// QueryChangedDiskAreas is the CBT double (see cbt.go).
func (h *vmHandler) QueryChangedDiskAreas(ctx *simulator.Context, req *types.QueryChangedDiskAreas) soap.HasFault {
	body := new(methods.QueryChangedDiskAreasBody)
	info, msg, fault := h.sim.queryChangedDiskAreas(ctx, h.VirtualMachine, req)
	if fault != nil {
		body.Fault_ = simulator.Fault(msg, fault)
		return body
	}
	body.Res = &types.QueryChangedDiskAreasResponse{Returnval: info}
	return body
}

// snapshotHandler answers the intercepted VirtualMachineSnapshot methods.
type snapshotHandler struct {
	*simulator.VirtualMachineSnapshot
	sim *Sim
}

// RemoveSnapshotTask is the simulator's, with injected failures; a failed removal
// leaves the snapshot in place.
func (h *snapshotHandler) RemoveSnapshotTask(ctx *simulator.Context, req *types.RemoveSnapshot_Task) soap.HasFault {
	vmRef := h.Vm
	if ref, failed := h.sim.failTask(ctx, "RemoveSnapshot_Task", &vmRef, vmRef); failed {
		return &methods.RemoveSnapshot_TaskBody{Res: &types.RemoveSnapshot_TaskResponse{Returnval: ref}}
	}
	vm, ok := ctx.Map.Get(vmRef).(*simulator.VirtualMachine)
	rdm := false
	if ok {
		ctx.WithLock(vm, func() { rdm = hasRDM(vm.Config.Hardware.Device) })
	}
	if !rdm {
		return h.VirtualMachineSnapshot.RemoveSnapshotTask(ctx, req)
	}
	ref, fault := rdmSafeTask(ctx, vm, "RemoveSnapshot_Task", nil, true, func() soap.HasFault {
		return h.VirtualMachineSnapshot.RemoveSnapshotTask(ctx, req)
	})
	return taskBody(new(methods.RemoveSnapshot_TaskBody), ref, fault)
}

// RevertToSnapshotTask is the simulator's, with injected failures.
func (h *snapshotHandler) RevertToSnapshotTask(ctx *simulator.Context, req *types.RevertToSnapshot_Task) soap.HasFault {
	vmRef := h.Vm
	if ref, failed := h.sim.failTask(ctx, "RevertToSnapshot_Task", &vmRef, vmRef); failed {
		return &methods.RevertToSnapshot_TaskBody{Res: &types.RevertToSnapshot_TaskResponse{Returnval: ref}}
	}
	return h.VirtualMachineSnapshot.RevertToSnapshotTask(ctx, req)
}

// FailQuiesce makes the next n quiesced snapshots (CreateSnapshot_Task with
// quiesce=true, or CreateSnapshotEx_Task with a quiesce spec) of the powered-on VM fail
// the way ESXi reports a guest quiescing error: the task ends with an
// ApplicationQuiesceFault and no snapshot is created. n <= 0 clears pending failures.
func (s *Sim) FailQuiesce(vmUUID string, n int) {
	ref, ok := s.lookupVM(vmUUID)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		delete(s.quiesce, ref.Value)
		return
	}
	s.quiesce[ref.Value] = n
}

func (s *Sim) takeQuiesce(vm types.ManagedObjectReference) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.quiesce[vm.Value] <= 0 {
		return false
	}
	s.quiesce[vm.Value]--
	return true
}
