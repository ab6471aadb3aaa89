package restore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"coffer.dev/coffer/appliance/restore"
	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/appliance/vsphere/vcsim"
	"coffer.dev/coffer/appliance/vsphere/vspheretest"
	"coffer.dev/coffer/store"
	"coffer.dev/coffer/store/point"
)

const mib = 1 << 20

type env struct {
	sim *vcsim.Sim
	st  *store.Store
	c   *vsphere.Client
	e   *vsphere.Engine
}

func newEnv(t *testing.T) *env {
	t.Helper()
	x := vspheretest.New(t, vcsim.Options{})
	return &env{sim: x.Sim, st: x.Store, c: x.Client, e: x.Engine}
}

// content is size bytes of test data: random blocks, text, and zero runs
// (holes in the source's flat file).
func content(seed uint64, size int) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, size)
	for off := 0; off < size; off += 64 << 10 {
		end := min(off+64<<10, size)
		switch r.IntN(3) {
		case 0: // zeros
		case 1:
			for i := off; i < end; i++ {
				b[i] = byte(r.Uint32())
			}
		default:
			copy(b[off:end], bytes.Repeat([]byte("coffer restore test line\n"), (end-off)/25+1))
		}
	}
	return b
}

// backedUpVM creates a 2-disk VM with content, backs it up and returns
// the VM and point.
func (v *env) backedUpVM(t *testing.T) (vcsim.VM, point.ID) {
	t.Helper()
	ctx := context.Background()
	vm, err := v.sim.CreateVM(ctx, vcsim.VMSpec{Name: "app01", GuestID: "otherLinux64Guest", Disks: []vcsim.DiskSpec{
		{Capacity: 8 * mib, Thin: true, Content: bytes.NewReader(content(1, 6*mib))},
		{Capacity: 4 * mib, Datastore: "LocalDS_1", Content: bytes.NewReader(content(2, 4*mib))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := v.e.BackupVM(ctx, vsphere.BackupRequest{InstanceUUID: vm.UUID})
	if err != nil {
		t.Fatal(err)
	}
	return vm, res.Point
}

func fileHash(t *testing.T, p string, size int64) [32]byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != size {
		t.Fatalf("%s has %d bytes, want %d", p, st.Size(), size)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

func pointHash(t *testing.T, st *store.Store, id point.ID, disk string) [32]byte {
	return vspheretest.PointHash(t, st, id, disk)
}

// vmByName reads a VM's configuration, or returns nil.
func (v *env) vmByName(t *testing.T, name string) *mo.VirtualMachine {
	t.Helper()
	ctx := context.Background()
	f := find.NewFinder(v.c.Vim(), false)
	dc, err := f.DefaultDatacenter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.SetDatacenter(dc)
	vms, err := f.VirtualMachineList(ctx, "/...")
	if err != nil {
		return nil
	}
	for _, o := range vms {
		if o.Name() != name {
			continue
		}
		var m mo.VirtualMachine
		if err := o.Properties(ctx, o.Reference(), []string{"name", "config", "runtime"}, &m); err != nil {
			t.Fatal(err)
		}
		return &m
	}
	return nil
}

type hw struct {
	disks       []int64 // capacities by controller/unit order
	controllers int
	nics        []*types.VirtualEthernetCard
}

func hardware(m *mo.VirtualMachine) hw {
	var h hw
	for _, d := range m.Config.Hardware.Device {
		switch dev := d.(type) {
		case *types.VirtualDisk:
			h.disks = append(h.disks, dev.CapacityInBytes)
		case types.BaseVirtualSCSIController, types.BaseVirtualSATAController, *types.VirtualNVMEController:
			h.controllers++
		case types.BaseVirtualEthernetCard:
			h.nics = append(h.nics, dev.GetVirtualEthernetCard())
		}
	}
	return h
}

func TestRestoreIsolatedCopy(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	vm, pid := v.backedUpVM(t)

	res, err := restore.RestoreVM(ctx, v.c, v.st, restore.Request{Point: pid, Name: "copy01", Datastore: "LocalDS_1", Isolated: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("result: %+v", res)
	if res.VM != "copy01" || res.InstanceUUID == "" || res.Ref == "" || len(res.Disks) != 2 {
		t.Fatalf("result: %+v", res)
	}
	for _, d := range res.Disks {
		if d.Written != d.Capacity || !strings.HasPrefix(d.File, "[LocalDS_1]") {
			t.Fatalf("disk result: %+v", d)
		}
	}
	orig := v.vmByName(t, "app01")
	cp := v.vmByName(t, "copy01")
	if cp == nil {
		t.Fatal("copy01 does not exist")
	}
	if cp.Config.InstanceUuid != res.InstanceUUID || cp.Config.InstanceUuid == vm.UUID {
		t.Fatalf("instance UUID %s (result %s, original %s)", cp.Config.InstanceUuid, res.InstanceUUID, vm.UUID)
	}
	if cp.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOff {
		t.Fatalf("copy is %s", cp.Runtime.PowerState)
	}
	if cp.Config.GuestId != orig.Config.GuestId || cp.Config.Hardware.NumCPU != orig.Config.Hardware.NumCPU ||
		cp.Config.Hardware.MemoryMB != orig.Config.Hardware.MemoryMB {
		t.Fatalf("copy hardware %s/%d/%d, original %s/%d/%d", cp.Config.GuestId, cp.Config.Hardware.NumCPU, cp.Config.Hardware.MemoryMB,
			orig.Config.GuestId, orig.Config.Hardware.NumCPU, orig.Config.Hardware.MemoryMB)
	}
	ho, hc := hardware(orig), hardware(cp)
	if len(hc.disks) != 2 || hc.controllers != ho.controllers || len(hc.nics) != len(ho.nics) || len(hc.nics) == 0 {
		t.Fatalf("devices: copy %d disks %d controllers %d NICs, original %d/%d/%d",
			len(hc.disks), hc.controllers, len(hc.nics), len(ho.disks), ho.controllers, len(ho.nics))
	}
	for i := range ho.disks {
		if hc.disks[i] != ho.disks[i] {
			t.Fatalf("disk %d capacity %d, original %d", i, hc.disks[i], ho.disks[i])
		}
	}
	for i, n := range hc.nics {
		if n.Connectable == nil || n.Connectable.Connected || n.Connectable.StartConnected {
			t.Fatalf("NIC %d of the isolated copy is connected: %+v", i, n.Connectable)
		}
		if n.MacAddress == ho.nics[i].MacAddress || n.AddressType == string(types.VirtualEthernetCardMacTypeManual) {
			t.Fatalf("NIC %d keeps the MAC %s (%s)", i, n.MacAddress, n.AddressType)
		}
	}
	// The new flat files hold exactly the backed-up bytes.
	disks, err := v.sim.Disks(ctx, res.InstanceUUID)
	if err != nil || len(disks) != 2 {
		t.Fatalf("disks of the copy: %v %v", disks, err)
	}
	for i, name := range []string{"scsi0:0", "scsi0:1"} {
		p, err := v.sim.DiskFile(res.InstanceUUID, disks[i].Key)
		if err != nil {
			t.Fatal(err)
		}
		if disks[i].Datastore != "LocalDS_1" {
			t.Fatalf("disk %s on %s", name, disks[i].Datastore)
		}
		if fileHash(t, p, disks[i].Capacity) != pointHash(t, v.st, pid, name) {
			t.Fatalf("restored disk %s differs from the point", name)
		}
		orig, _ := v.sim.DiskFile(vm.UUID, vm.Disks[i].Key)
		if orig == p {
			t.Fatalf("disk %s restored onto the original's file", name)
		}
	}

	// The same name again: refused, nothing created.
	_, err = restore.RestoreVM(ctx, v.c, v.st, restore.Request{Point: pid, Name: "copy01", Datastore: "LocalDS_0"})
	if !errors.Is(err, restore.ErrNameTaken) {
		t.Fatalf("name collision: %v", err)
	}
	_, err = restore.RestoreVM(ctx, v.c, v.st, restore.Request{Point: pid, Name: "app01"})
	if !errors.Is(err, restore.ErrNameTaken) {
		t.Fatalf("collision with the original: %v", err)
	}
	if n := v.countVMs(t); n != 2 {
		t.Fatalf("%d VMs after refused restores, want 2", n)
	}
}

func (v *env) countVMs(t *testing.T) int {
	t.Helper()
	f := find.NewFinder(v.c.Vim(), false)
	dc, err := f.DefaultDatacenter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.SetDatacenter(dc)
	vms, err := f.VirtualMachineList(context.Background(), "/...")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, o := range vms {
		if strings.HasPrefix(o.Name(), "app") || strings.HasPrefix(o.Name(), "copy") {
			n++
		}
	}
	return n
}

func TestRestoreDiskSubsetAndNetwork(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	_, pid := v.backedUpVM(t)
	res, err := restore.RestoreVM(ctx, v.c, v.st, restore.Request{Point: pid, Name: "copy02", Disks: []string{"scsi0:1"},
		Host: "DC0_H0", Network: "VM Network", PowerOn: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Disks) != 1 || res.Disks[0].Name != "scsi0:1" || res.Disks[0].Capacity != 4*mib || !res.PoweredOn {
		t.Fatalf("result: %+v", res)
	}
	cp := v.vmByName(t, "copy02")
	if cp == nil || cp.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
		t.Fatalf("copy02: %+v", cp)
	}
	h := hardware(cp)
	if len(h.disks) != 1 || h.disks[0] != 4*mib || len(h.nics) != 1 || !h.nics[0].Connectable.StartConnected {
		t.Fatalf("copy02 devices: %+v", h)
	}
	var unit int32 = -1
	for _, d := range cp.Config.Hardware.Device {
		if vd, ok := d.(*types.VirtualDisk); ok && vd.UnitNumber != nil {
			unit = *vd.UnitNumber
		}
	}
	if unit != 1 {
		t.Fatalf("disk scsi0:1 restored at unit %d", unit)
	}
	disks, err := v.sim.Disks(ctx, res.InstanceUUID)
	if err != nil || len(disks) != 1 {
		t.Fatal(disks, err)
	}
	p, _ := v.sim.DiskFile(res.InstanceUUID, disks[0].Key)
	if fileHash(t, p, 4*mib) != pointHash(t, v.st, pid, "scsi0:1") {
		t.Fatal("restored disk differs from the point")
	}
	// The default datastore is the original's first one.
	if disks[0].Datastore != "LocalDS_0" {
		t.Fatalf("restored to %s", disks[0].Datastore)
	}

	_, err = restore.RestoreVM(ctx, v.c, v.st, restore.Request{Point: pid, Name: "copy03", Disks: []string{"scsi0:7"}})
	if err == nil || !strings.Contains(err.Error(), "no disk") {
		t.Fatalf("unknown disk: %v", err)
	}
}

func TestRestoreErrors(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	_, pid := v.backedUpVM(t)

	// A point of something else than a VM.
	b, err := v.st.NewBackup(ctx, store.BackupSpec{Source: "file:/srv/image.raw"})
	if err != nil {
		t.Fatal(err)
	}
	data := content(3, mib)
	if _, err := b.AddDisk(ctx, store.DiskSource{Name: "disk0", Size: int64(len(data)), Reader: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	other, err := b.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = restore.RestoreVM(ctx, v.c, v.st, restore.Request{Point: other.ID, Name: "x1", Datastore: "LocalDS_0"})
	if !errors.Is(err, restore.ErrNotVM) || !strings.Contains(err.Error(), "file:/srv/image.raw") {
		t.Fatalf("non-VM point: %v", err)
	}
	_, err = restore.RestoreVM(ctx, v.c, v.st, restore.Request{Point: "20200101T000000Z-nope", Name: "x2"})
	if !errors.Is(err, restore.ErrPointNotFound) {
		t.Fatalf("missing point: %v", err)
	}
	_, err = restore.RestoreVM(ctx, v.c, v.st, restore.Request{Point: pid, Name: "x3", Datastore: "NoSuchDS"})
	if !errors.Is(err, restore.ErrDatastoreNotFound) || !strings.Contains(err.Error(), "NoSuchDS") {
		t.Fatalf("missing datastore: %v", err)
	}
	_, err = restore.RestoreVM(ctx, v.c, v.st, restore.Request{Point: pid})
	if err == nil || !strings.Contains(err.Error(), "name") {
		t.Fatalf("no name: %v", err)
	}

	// An upload failure (the connection breaks in the second disk)
	// removes the half-created VM.
	restore.SetUploadWrapper(func(disk string, r io.Reader) io.Reader {
		if disk == "scsi0:1" {
			return io.MultiReader(io.LimitReader(r, mib), iotest.ErrReader(errors.New("link down")))
		}
		return r
	})
	defer restore.SetUploadWrapper(nil)
	res, err := restore.RestoreVM(ctx, v.c, v.st, restore.Request{Point: pid, Name: "x4", Datastore: "LocalDS_1"})
	if !errors.Is(err, restore.ErrUpload) || !strings.Contains(err.Error(), "scsi0:1") {
		t.Fatalf("upload failure: %v", err)
	}
	if res.Ref != "" || v.vmByName(t, "x4") != nil {
		t.Fatalf("half-restored VM left behind: %+v", res)
	}
	if ents, err := os.ReadDir(filepath.Join(v.sim.DatastoreDir("LocalDS_1"), "x4")); err == nil && len(ents) > 0 {
		t.Fatalf("files of the half-restored VM left behind: %v", ents)
	}
	if n := v.countVMs(t); n != 1 {
		t.Fatalf("%d VMs after failed restores, want 1", n)
	}
}
