package vsphere

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// snapshotPrefix starts the name of every snapshot Coffer takes; the
// description names the appliance, so that only its own leftovers are
// ever removed.
const snapshotPrefix = "coffer-backup-"

func (e *Engine) snapshotDescription() string {
	return "Coffer backup in progress (appliance " + e.ApplianceID + "). Removed by the appliance when the backup ends; safe to delete if no Coffer backup of this VM is running."
}

func (e *Engine) ours(t types.VirtualMachineSnapshotTree) bool {
	return strings.HasPrefix(t.Name, snapshotPrefix) && strings.Contains(t.Description, "(appliance "+e.ApplianceID+")")
}

// createSnapshot takes a snapshot without memory, quiesced if asked.
func (e *Engine) createSnapshot(ctx context.Context, vm *object.VirtualMachine, quiesce bool) (types.ManagedObjectReference, error) {
	name := snapshotPrefix + time.Now().UTC().Format("20060102T150405Z")
	task, err := vm.CreateSnapshot(ctx, name, e.snapshotDescription(), false, quiesce)
	if err != nil {
		return types.ManagedObjectReference{}, err
	}
	info, err := task.WaitForResult(ctx)
	if err != nil {
		return types.ManagedObjectReference{}, err
	}
	ref, ok := info.Result.(types.ManagedObjectReference)
	if !ok {
		return types.ManagedObjectReference{}, fmt.Errorf("snapshot task returned %T, not a snapshot", info.Result)
	}
	return ref, nil
}

// removeSnapshot removes a snapshot with its own timeout and retries,
// whatever happened to the caller's context: a snapshot left behind
// grows until the datastore fills.
func (e *Engine) removeSnapshot(ctx context.Context, vmName string, snap types.ManagedObjectReference) error {
	ctx = context.WithoutCancel(ctx)
	var err error
	for attempt := 0; attempt <= e.removeRetries(); attempt++ {
		if attempt > 0 {
			time.Sleep(e.retryDelay(attempt))
		}
		actx, cancel := context.WithTimeout(ctx, e.snapshotTimeout())
		err = e.removeOnce(actx, snap)
		cancel()
		if err == nil || isFault(err, "ManagedObjectNotFound") {
			return nil
		}
		e.log().Warn("removing the backup snapshot failed", "vm", vmName, "snapshot", snap.Value, "attempt", attempt+1, "err", err)
	}
	return fmt.Errorf("remove snapshot %s of %s: %w", snap.Value, vmName, err)
}

func (e *Engine) removeOnce(ctx context.Context, snap types.ManagedObjectReference) error {
	consolidate := true
	res, err := methods.RemoveSnapshot_Task(ctx, e.Client.vim, &types.RemoveSnapshot_Task{This: snap, RemoveChildren: false, Consolidate: &consolidate})
	if err != nil {
		return err
	}
	return object.NewTask(e.Client.vim, res.Returnval).Wait(ctx)
}

func (e *Engine) removeRetries() int {
	if e.RemoveRetries > 0 {
		return e.RemoveRetries
	}
	return 3
}

func (e *Engine) retryDelay(attempt int) time.Duration {
	d := e.RetryDelay
	if d <= 0 {
		d = 2 * time.Second
	}
	return d * time.Duration(attempt)
}

func (e *Engine) snapshotTimeout() time.Duration {
	if e.SnapshotTimeout > 0 {
		return e.SnapshotTimeout
	}
	return 30 * time.Minute
}

// SweptSnapshot is a leftover snapshot found (and removed) by a sweep.
type SweptSnapshot struct {
	VM       string    `json:"vm"`
	VMUUID   string    `json:"vm_uuid"`
	Name     string    `json:"name"`
	Created  time.Time `json:"created"`
	Removed  bool      `json:"removed"`
	Error    string    `json:"error,omitempty"`
	Snapshot string    `json:"snapshot"`
}

// SweepSnapshots finds snapshots this appliance created that no running
// backup uses (left by a crash, a power cut or a failed removal) and
// removes them. With vmUUID set only that VM is searched.
func (e *Engine) SweepSnapshots(ctx context.Context, vmUUID string) ([]SweptSnapshot, error) {
	var vms []mo.VirtualMachine
	if vmUUID != "" {
		o, err := e.Client.findVM(ctx, vmUUID, []string{"name", "snapshot", "config.instanceUuid"})
		if err != nil {
			return nil, err
		}
		vms = []mo.VirtualMachine{*o}
	} else {
		var err error
		vms, err = e.Client.allVMs(ctx, []string{"name", "snapshot", "config.instanceUuid"})
		if err != nil {
			return nil, err
		}
	}
	var out []SweptSnapshot
	for _, vm := range vms {
		if vm.Snapshot == nil {
			continue
		}
		uuid := ""
		if vm.Config != nil {
			uuid = vm.Config.InstanceUuid
		}
		var walk func([]types.VirtualMachineSnapshotTree)
		var found []types.VirtualMachineSnapshotTree
		walk = func(l []types.VirtualMachineSnapshotTree) {
			for _, t := range l {
				if e.ours(t) {
					found = append(found, t)
				}
				walk(t.ChildSnapshotList)
			}
		}
		walk(vm.Snapshot.RootSnapshotList)
		// Newest first: removing in reverse creation order is what
		// vSphere expects of a chain.
		for i := len(found) - 1; i >= 0; i-- {
			t := found[i]
			if e.inUse(t.Snapshot) {
				continue
			}
			s := SweptSnapshot{VM: vm.Name, VMUUID: uuid, Name: t.Name, Created: t.CreateTime, Snapshot: t.Snapshot.Value}
			if err := e.removeSnapshot(ctx, vm.Name, t.Snapshot); err != nil {
				s.Error = err.Error()
			} else {
				s.Removed = true
				e.log().Warn("removed a backup snapshot left behind", "vm", vm.Name, "snapshot", t.Name, "created", t.CreateTime)
			}
			out = append(out, s)
		}
	}
	return out, nil
}

func (e *Engine) inUse(ref types.ManagedObjectReference) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.active[ref.Value]
}

func (e *Engine) setActive(ref types.ManagedObjectReference, on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.active == nil {
		e.active = map[string]bool{}
	}
	if on {
		e.active[ref.Value] = true
	} else {
		delete(e.active, ref.Value)
	}
}
