package restore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"

	"coffer.dev/coffer/appliance/restore"
	"coffer.dev/coffer/appliance/vsphere/vcsim"
)

// scribble overwrites part of a flat file.
func scribble(t *testing.T, path string, off int64, p []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(p, off); err != nil {
		t.Fatal(err)
	}
}

func (v *env) flatHashes(t *testing.T, vm vcsim.VM) [][32]byte {
	t.Helper()
	var out [][32]byte
	for _, d := range vm.Disks {
		p, err := v.sim.DiskFile(vm.UUID, d.Key)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fileHash(t, p, d.Capacity))
	}
	return out
}

func TestRestoreOverOriginal(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	vm, pid := v.backedUpVM(t)
	names := []string{"scsi0:0", "scsi0:1"}
	for i, d := range vm.Disks {
		p, _ := v.sim.DiskFile(vm.UUID, d.Key)
		scribble(t, p, int64(i)*mib+4096, bytes.Repeat([]byte("ransomware"), 10000))
		if v.flatHashes(t, vm)[i] == pointHash(t, v.st, pid, names[i]) {
			t.Fatalf("disk %d unchanged by the test", i)
		}
	}
	modified := v.flatHashes(t, vm)

	// A wrong confirmation changes nothing.
	for _, confirm := range []string{"", "APP01", "app01 ", "app0"} {
		_, err := restore.RestoreOverOriginal(ctx, v.c, v.st, restore.OverRequest{Point: pid, Confirm: confirm})
		if !errors.Is(err, restore.ErrConfirm) {
			t.Fatalf("confirmation %q: %v", confirm, err)
		}
	}
	if got := v.flatHashes(t, vm); got[0] != modified[0] || got[1] != modified[1] {
		t.Fatal("a refused restore changed the disks")
	}
	if m := v.vmByName(t, "app01"); m.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
		t.Fatalf("a refused restore left the VM %s", m.Runtime.PowerState)
	}

	res, err := restore.RestoreOverOriginal(ctx, v.c, v.st, restore.OverRequest{Point: pid, Confirm: "app01"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("result: %+v", res)
	if res.VM != "app01" || res.InstanceUUID != vm.UUID || res.PoweredOn || len(res.Disks) != 2 {
		t.Fatalf("result: %+v", res)
	}
	for i, d := range res.Disks {
		if d.Name != names[i] || d.Device != names[i] || d.File != vm.Disks[i].Path || d.Written != vm.Disks[i].Capacity {
			t.Fatalf("disk result %d: %+v (VM disk %+v)", i, d, vm.Disks[i])
		}
	}
	for i, h := range v.flatHashes(t, vm) {
		if h != pointHash(t, v.st, pid, names[i]) {
			t.Fatalf("disk %s differs from the point after the restore", names[i])
		}
	}
	if m := v.vmByName(t, "app01"); m.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOff {
		t.Fatalf("VM is %s after the restore", m.Runtime.PowerState)
	}
	if n := v.countVMs(t); n != 1 {
		t.Fatalf("%d VMs, want 1", n)
	}

	// A resized disk: refused before anything changes, also on the
	// disks that still match.
	p0, _ := v.sim.DiskFile(vm.UUID, vm.Disks[0].Key)
	scribble(t, p0, 0, []byte("changed again"))
	before := v.flatHashes(t, vm)
	if err := v.sim.ResizeDisk(ctx, vm.UUID, vm.Disks[1].Key, 5*mib); err != nil {
		t.Fatal(err)
	}
	_, err = restore.RestoreOverOriginal(ctx, v.c, v.st, restore.OverRequest{Point: pid, Confirm: "app01"})
	if !errors.Is(err, restore.ErrDiskMismatch) || !strings.Contains(err.Error(), "scsi0:1") {
		t.Fatalf("resized disk: %v", err)
	}
	if got := fileHash(t, p0, vm.Disks[0].Capacity); got != before[0] {
		t.Fatal("a refused restore changed disk scsi0:0")
	}
}

func TestRestoreOverOriginalSnapshot(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	vm, pid := v.backedUpVM(t)
	p, _ := v.sim.DiskFile(vm.UUID, vm.Disks[0].Key)
	scribble(t, p, 0, []byte("changed"))
	before := v.flatHashes(t, vm)
	vmo := object.NewVirtualMachine(v.c.Vim(), vm.Ref)
	task, err := vmo.CreateSnapshot(ctx, "manual", "", false, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = restore.RestoreOverOriginal(ctx, v.c, v.st, restore.OverRequest{Point: pid, Confirm: "app01"})
	if !errors.Is(err, restore.ErrHasSnapshot) {
		t.Fatalf("VM with a snapshot: %v", err)
	}
	if got := v.flatHashes(t, vm); got[0] != before[0] {
		t.Fatal("a refused restore changed the disk")
	}
	if m := v.vmByName(t, "app01"); m.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
		t.Fatalf("a refused restore left the VM %s", m.Runtime.PowerState)
	}
}

func TestRestoreDisksIntoOtherVM(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	_, pid := v.backedUpVM(t)
	helper, err := v.sim.CreateVM(ctx, vcsim.VMSpec{Name: "helper", PowerState: "poweredOff", Disks: []vcsim.DiskSpec{
		{Capacity: 2 * mib, Content: bytes.NewReader(content(5, 2*mib))},
		{Capacity: 3 * mib, Content: bytes.NewReader(content(6, 3*mib))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	helperBefore := v.flatHashes(t, helper)

	res, err := restore.RestoreDisks(ctx, v.c, v.st, restore.DisksRequest{Point: pid, TargetVM: helper.UUID, Disks: []string{"scsi0:1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("result: %+v", res)
	if res.VM != "helper" || res.InstanceUUID != helper.UUID || res.PoweredOn || len(res.Disks) != 1 || len(res.Warnings) != 0 {
		t.Fatalf("result: %+v", res)
	}
	if d := res.Disks[0]; d.Name != "scsi0:1" || d.Device != "scsi0:2" || d.Capacity != 4*mib || d.Written != 4*mib {
		t.Fatalf("disk result: %+v", d)
	}
	disks, err := v.sim.Disks(ctx, helper.UUID)
	if err != nil || len(disks) != 3 {
		t.Fatalf("helper's disks: %v %v", disks, err)
	}
	for i, d := range helper.Disks {
		if disks[i].Key != d.Key || disks[i].Path != d.Path {
			t.Fatalf("helper's disk %d replaced: %+v, was %+v", i, disks[i], d)
		}
		if fileHash(t, disks[i].FlatFile, d.Capacity) != helperBefore[i] {
			t.Fatalf("helper's disk %d changed", i)
		}
	}
	added := disks[2]
	if added.Capacity != 4*mib || added.Path != res.Disks[0].File || fileHash(t, added.FlatFile, 4*mib) != pointHash(t, v.st, pid, "scsi0:1") {
		t.Fatalf("added disk %+v (result %+v) differs from the point", added, res.Disks[0])
	}
	m := v.vmByName(t, "helper")
	for _, dev := range m.Config.Hardware.Device {
		if d, ok := dev.(*types.VirtualDisk); ok && d.Key == added.Key {
			b := d.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
			if b.ThinProvisioned == nil || !*b.ThinProvisioned || *d.UnitNumber != 2 {
				t.Fatalf("added disk: thin %v, unit %d", b.ThinProvisioned, *d.UnitNumber)
			}
		}
	}

	// A running target: refused unless it may be powered off first.
	running, err := v.sim.CreateVM(ctx, vcsim.VMSpec{Name: "helper2", Disks: []vcsim.DiskSpec{{Capacity: mib}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = restore.RestoreDisks(ctx, v.c, v.st, restore.DisksRequest{Point: pid, TargetVM: running.UUID, Disks: []string{"scsi0:1"}})
	if !errors.Is(err, restore.ErrPoweredOn) {
		t.Fatalf("powered-on target: %v", err)
	}
	if disks, _ := v.sim.Disks(ctx, running.UUID); len(disks) != 1 {
		t.Fatalf("a refused restore changed the target: %d disks", len(disks))
	}
	if m := v.vmByName(t, "helper2"); m.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
		t.Fatalf("a refused restore left the target %s", m.Runtime.PowerState)
	}
	res, err = restore.RestoreDisks(ctx, v.c, v.st, restore.DisksRequest{Point: pid, TargetVM: running.UUID, Disks: []string{"scsi0:0"},
		Datastore: "LocalDS_1", PowerOffFirst: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.PoweredOn || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "not been powered back on") ||
		!strings.HasPrefix(res.Disks[0].File, "[LocalDS_1]") || res.Disks[0].Device != "scsi0:1" {
		t.Fatalf("result: %+v", res)
	}
	if m := v.vmByName(t, "helper2"); m.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOff {
		t.Fatalf("target is %s", m.Runtime.PowerState)
	}
	disks, _ = v.sim.Disks(ctx, running.UUID)
	if len(disks) != 2 || fileHash(t, disks[1].FlatFile, 8*mib) != pointHash(t, v.st, pid, "scsi0:0") {
		t.Fatalf("helper2's disks: %+v", disks)
	}

	// Errors: unknown disk, unknown VM, unknown datastore; an upload
	// failure removes the added disk again.
	if _, err := restore.RestoreDisks(ctx, v.c, v.st, restore.DisksRequest{Point: pid, TargetVM: helper.UUID, Disks: []string{"scsi0:9"}}); err == nil {
		t.Fatal("unknown disk accepted")
	}
	if _, err := restore.RestoreDisks(ctx, v.c, v.st, restore.DisksRequest{Point: pid, TargetVM: "5000aaaa-0000-0000-0000-000000000000"}); err == nil {
		t.Fatal("unknown VM accepted")
	}
	_, err = restore.RestoreDisks(ctx, v.c, v.st, restore.DisksRequest{Point: pid, TargetVM: helper.UUID, Datastore: "NoSuchDS"})
	if !errors.Is(err, restore.ErrDatastoreNotFound) {
		t.Fatalf("unknown datastore: %v", err)
	}
	restore.SetUploadWrapper(func(disk string, r io.Reader) io.Reader {
		return io.MultiReader(io.LimitReader(r, mib), iotest.ErrReader(errors.New("link down")))
	})
	defer restore.SetUploadWrapper(nil)
	_, err = restore.RestoreDisks(ctx, v.c, v.st, restore.DisksRequest{Point: pid, TargetVM: helper.UUID})
	if !errors.Is(err, restore.ErrUpload) {
		t.Fatalf("upload failure: %v", err)
	}
	if disks, _ := v.sim.Disks(ctx, helper.UUID); len(disks) != 3 {
		t.Fatalf("after a failed upload the helper has %d disks, want 3", len(disks))
	}
}
