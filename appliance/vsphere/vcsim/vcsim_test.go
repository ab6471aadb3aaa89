package vcsim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/guest"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vapi/rest"
	"github.com/vmware/govmomi/vapi/tags"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

const mib = 1 << 20

func startSim(t *testing.T, o Options) (*Sim, *govmomi.Client) {
	t.Helper()
	ctx := context.Background()
	s, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	c, err := s.NewClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Logout(context.Background()) })
	return s, c
}

// blockData is a deterministic, non-zero 64 KiB block.
func blockData(seed int) []byte {
	out := make([]byte, 0, BlockSize)
	h := sha256.Sum256([]byte(fmt.Sprint("seed", seed)))
	for len(out) < BlockSize {
		out = append(out, h[:]...)
		h = sha256.Sum256(h[:])
	}
	return out[:BlockSize]
}

// content returns data with the given blocks filled and every other block zero.
func content(blocks ...int64) []byte {
	var last int64
	for _, b := range blocks {
		last = max(last, b)
	}
	out := make([]byte, (last+1)*BlockSize)
	for _, b := range blocks {
		copy(out[b*BlockSize:], blockData(int(b)))
	}
	return out
}

// extents merges sorted block indexes into byte areas.
func extents(blocks []int64, capacity int64) []types.DiskChangeExtent {
	var out []types.DiskChangeExtent
	for _, b := range blocks {
		start, end := b*BlockSize, min((b+1)*BlockSize, capacity)
		if n := len(out); n > 0 && out[n-1].Start+out[n-1].Length == start {
			out[n-1].Length = end - out[n-1].Start
			continue
		}
		out = append(out, types.DiskChangeExtent{Start: start, Length: end - start})
	}
	return out
}

// queryAll runs the client's QueryChangedDiskAreas loop over the whole disk.
func queryAll(ctx context.Context, c *vim25.Client, vm, snap types.ManagedObjectReference, key int32, changeID string, capacity int64) ([]types.DiskChangeExtent, int, error) {
	var out []types.DiskChangeExtent
	calls := 0
	for start := int64(0); start < capacity; {
		res, err := methods.QueryChangedDiskAreas(ctx, c, &types.QueryChangedDiskAreas{
			This: vm, Snapshot: &snap, DeviceKey: key, StartOffset: start, ChangeId: changeID,
		})
		if err != nil {
			return nil, calls, err
		}
		calls++
		info := res.Returnval
		if info.StartOffset != start || info.Length <= 0 || info.StartOffset+info.Length > capacity {
			return nil, calls, fmt.Errorf("bad answer for start %d: %+v", start, info)
		}
		for _, a := range info.ChangedArea {
			if a.Start < info.StartOffset || a.Start+a.Length > info.StartOffset+info.Length || a.Length <= 0 {
				return nil, calls, fmt.Errorf("area %+v outside answer [%d,+%d)", a, info.StartOffset, info.Length)
			}
			if n := len(out); n > 0 && out[n-1].Start+out[n-1].Length == a.Start {
				out[n-1].Length += a.Length
				continue
			}
			out = append(out, a)
		}
		start = info.StartOffset + info.Length
	}
	return out, calls, nil
}

func snapshot(t *testing.T, ctx context.Context, vm *object.VirtualMachine, name string, quiesce bool) (types.ManagedObjectReference, error) {
	t.Helper()
	task, err := vm.CreateSnapshot(ctx, name, "", false, quiesce)
	if err != nil {
		t.Fatal(err)
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		return types.ManagedObjectReference{}, err
	}
	return info.Result.(types.ManagedObjectReference), nil
}

func removeSnapshot(ctx context.Context, c *vim25.Client, snap types.ManagedObjectReference) error {
	res, err := methods.RemoveSnapshot_Task(ctx, c, &types.RemoveSnapshot_Task{This: snap, RemoveChildren: false})
	if err != nil {
		return err
	}
	return object.NewTask(c, res.Returnval).Wait(ctx)
}

// changeIDs reads the disks' changeIds from a snapshot's config, as backup clients do.
func changeIDs(t *testing.T, ctx context.Context, c *vim25.Client, ref types.ManagedObjectReference) map[int32]string {
	t.Helper()
	var devices []types.BaseVirtualDevice
	switch ref.Type {
	case "VirtualMachineSnapshot":
		var so mo.VirtualMachineSnapshot
		if err := property.DefaultCollector(c).RetrieveOne(ctx, ref, []string{"config"}, &so); err != nil {
			t.Fatal(err)
		}
		devices = so.Config.Hardware.Device
	default:
		var vm mo.VirtualMachine
		if err := property.DefaultCollector(c).RetrieveOne(ctx, ref, []string{"config"}, &vm); err != nil {
			t.Fatal(err)
		}
		devices = vm.Config.Hardware.Device
	}
	out := make(map[int32]string)
	for _, d := range diskList(devices) {
		if b, ok := d.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok && b.ChangeId != "" {
			out[d.Key] = b.ChangeId
		}
	}
	return out
}

func enableCBT(t *testing.T, ctx context.Context, vm *object.VirtualMachine, on bool) {
	t.Helper()
	task, err := vm.Reconfigure(ctx, types.VirtualMachineConfigSpec{ChangeTrackingEnabled: types.NewBool(on)})
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

func writeAt(t *testing.T, path string, off int64, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
}

func wantFault(t *testing.T, err error, target types.BaseMethodFault) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %T", target)
	}
	if !fault.Is(err, target) {
		t.Fatalf("error %v (%T), want %T", err, err, target)
	}
}

func TestStartAndTLS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, c := startSim(t, Options{Username: "backup@vsphere.local", Password: "secret"})

	u := s.URL()
	if u.Scheme != "https" || u.User != nil || u.Path != "/sdk" || !strings.HasPrefix(u.Host, "127.0.0.1:") {
		t.Fatalf("URL %s", u)
	}
	if user, pass := s.Credentials(); user != "backup@vsphere.local" || pass != "secret" {
		t.Fatalf("credentials %s %s", user, pass)
	}
	if tp := s.Thumbprint(); len(tp) != 59 || strings.ToUpper(tp) != tp {
		t.Fatalf("thumbprint %q", tp)
	}
	if tp := s.SHA256Thumbprint(); len(tp) != 95 {
		t.Fatalf("sha256 thumbprint %q", tp)
	}
	if c.ServiceContent.About.ApiType != "VirtualCenter" {
		t.Fatalf("about %+v", c.ServiceContent.About)
	}

	// Inventory shape.
	finder := find.NewFinder(c.Client, true)
	hosts, err := finder.HostSystemList(ctx, "/DC0/host/...")
	if err != nil || len(hosts) != 3 {
		t.Fatalf("hosts %v %v", hosts, err)
	}
	dss, err := finder.DatastoreList(ctx, "/DC0/datastore/*")
	if err != nil || len(dss) != 2 {
		t.Fatalf("datastores %v %v", dss, err)
	}
	if vms, _ := finder.VirtualMachineList(ctx, "/DC0/vm/*"); len(vms) != 0 {
		t.Fatalf("unexpected VMs %v", vms)
	}

	// Clients must pin the thumbprint: the certificate is self-signed.
	tests := []struct {
		name       string
		thumbprint string
		user, pass string
		wantErr    bool
	}{
		{"sha1", s.Thumbprint(), "backup@vsphere.local", "secret", false},
		{"sha256", s.SHA256Thumbprint(), "backup@vsphere.local", "secret", false},
		{"unpinned", "", "backup@vsphere.local", "secret", true},
		{"wrong thumbprint", strings.Repeat("AB:", 19) + "AB", "backup@vsphere.local", "secret", true},
		{"wrong password", s.Thumbprint(), "backup@vsphere.local", "nope", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := soap.NewClient(s.URL(), false)
			if tt.thumbprint != "" {
				sc.SetThumbprint(s.URL().Host, tt.thumbprint)
			}
			vc, err := vim25.NewClient(ctx, sc)
			if err == nil {
				_, err = methods.Login(ctx, vc, &types.Login{This: *vc.ServiceContent.SessionManager, UserName: tt.user, Password: tt.pass})
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

func TestChangeTracking(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, c := startSim(t, Options{})

	const cap0, cap1 = 8 * mib, 3*mib + 100*1024 // disk 1 ends in a partial block (49)
	blocks0 := []int64{0, 1, 2, 5, 17, 18, 64, 127}
	blocks1 := []int64{3, 4, 45}
	v, err := s.CreateVM(ctx, VMSpec{
		Name:    "db01",
		GuestID: "otherLinux64Guest",
		Disks: []DiskSpec{
			{Capacity: cap0, Thin: true, Content: bytes.NewReader(content(blocks0...))},
			{Capacity: cap1, Datastore: "LocalDS_1", Content: bytes.NewReader(content(blocks1...))},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Disks) != 2 || v.Disks[1].Datastore != "LocalDS_1" || !strings.HasPrefix(v.Disks[1].Path, "[LocalDS_1] db01/") {
		t.Fatalf("disks %+v", v.Disks)
	}
	for i, d := range v.Disks {
		st, err := os.Stat(d.FlatFile)
		if err != nil || st.Size() != []int64{cap0, cap1}[i] {
			t.Fatalf("flat file %s: %v %v", d.FlatFile, st, err)
		}
		if f, err := s.DiskFile(v.UUID, d.Key); err != nil || f != d.FlatFile {
			t.Fatalf("DiskFile = %q, %v", f, err)
		}
	}
	vm := object.NewVirtualMachine(c.Client, v.Ref)

	// Without change tracking, snapshots carry no changeId and queries fail.
	snap0, err := snapshot(t, ctx, vm, "nocbt", false)
	if err != nil {
		t.Fatal(err)
	}
	if ids := changeIDs(t, ctx, c.Client, snap0); len(ids) != 0 {
		t.Fatalf("changeIds without CBT: %v", ids)
	}
	_, _, err = queryAll(ctx, c.Client, v.Ref, snap0, v.Disks[0].Key, "*", cap0)
	wantFault(t, err, &types.FileFault{})
	if err := removeSnapshot(ctx, c.Client, snap0); err != nil {
		t.Fatal(err)
	}

	enableCBT(t, ctx, vm, true)

	// Full backup: "*" returns exactly the non-zero blocks.
	snap1, err := snapshot(t, ctx, vm, "backup-1", true)
	if err != nil {
		t.Fatal(err)
	}
	ids1 := changeIDs(t, ctx, c.Client, snap1)
	if len(ids1) != 2 {
		t.Fatalf("snapshot changeIds %v", ids1)
	}
	for key, id := range ids1 {
		if !strings.HasPrefix(id, "52 ") || !strings.Contains(id, "/") {
			t.Fatalf("changeId %q of disk %d", id, key)
		}
	}
	if got := changeIDs(t, ctx, c.Client, v.Ref); !reflect.DeepEqual(got, ids1) {
		t.Fatalf("VM changeIds %v, snapshot %v", got, ids1)
	}
	if got, err := s.ChangeIDs(v.UUID, "backup-1"); err != nil || !reflect.DeepEqual(got, ids1) {
		t.Fatalf("Sim.ChangeIDs = %v, %v", got, err)
	}
	full := []struct {
		disk   Disk
		blocks []int64
	}{{v.Disks[0], blocks0}, {v.Disks[1], blocks1}}
	for _, tt := range full {
		got, _, err := queryAll(ctx, c.Client, v.Ref, snap1, tt.disk.Key, "*", tt.disk.Capacity)
		if err != nil {
			t.Fatal(err)
		}
		if want := extents(tt.blocks, tt.disk.Capacity); !reflect.DeepEqual(got, want) {
			t.Fatalf("disk %d: * = %v, want %v", tt.disk.Key, got, want)
		}
	}
	if err := removeSnapshot(ctx, c.Client, snap1); err != nil {
		t.Fatal(err)
	}
	if names := s.Snapshots(v.UUID); len(names) != 0 {
		t.Fatalf("snapshots left: %v", names)
	}

	// Change the disks between backups.
	writeAt(t, v.Disks[0].FlatFile, 5*BlockSize+100, []byte("changed"))    // rewrite part of block 5
	writeAt(t, v.Disks[0].FlatFile, 40*BlockSize, blockData(1000))         // new block 40
	writeAt(t, v.Disks[0].FlatFile, 17*BlockSize, make([]byte, BlockSize)) // zero block 17
	writeAt(t, v.Disks[0].FlatFile, 64*BlockSize, blockData(64))           // same data: no change
	writeAt(t, v.Disks[1].FlatFile, cap1-10, []byte("tail"))               // last, partial block 49

	snap2, err := snapshot(t, ctx, vm, "backup-2", true)
	if err != nil {
		t.Fatal(err)
	}
	ids2 := changeIDs(t, ctx, c.Client, snap2)
	incr := []struct {
		disk    Disk
		changed []int64
	}{{v.Disks[0], []int64{5, 17, 40}}, {v.Disks[1], []int64{49}}}
	for _, tt := range incr {
		if ids2[tt.disk.Key] == ids1[tt.disk.Key] {
			t.Fatalf("changeId did not change: %q", ids2[tt.disk.Key])
		}
		got, _, err := queryAll(ctx, c.Client, v.Ref, snap2, tt.disk.Key, ids1[tt.disk.Key], tt.disk.Capacity)
		if err != nil {
			t.Fatal(err)
		}
		if want := extents(tt.changed, tt.disk.Capacity); !reflect.DeepEqual(got, want) {
			t.Fatalf("disk %d: changes = %v, want %v", tt.disk.Key, got, want)
		}
	}

	// Paging: a small cap makes the client loop; the union is the same.
	allBlocks := []int64{0, 1, 2, 5, 18, 40, 64, 127}
	pages := []struct {
		maxBytes  int64
		maxAreas  int
		wantCalls int
	}{
		{-1, 0, 1},
		{BlockSize, 0, 8},
		{2 * BlockSize, 0, 5}, // 0-1 | 2,5 | 18,40 | 64,127 | (rest)
		{-1, 2, 3},            // {0-2,5} {18,40} {64,127}
		{3 * BlockSize, 1, 6},
	}
	for _, p := range pages {
		s.SetCBTPaging(p.maxBytes, p.maxAreas)
		got, calls, err := queryAll(ctx, c.Client, v.Ref, snap2, v.Disks[0].Key, "*", cap0)
		if err != nil {
			t.Fatal(err)
		}
		if want := extents(allBlocks, cap0); !reflect.DeepEqual(got, want) {
			t.Fatalf("paging %+v: %v, want %v", p, got, want)
		}
		if calls < p.wantCalls-1 || calls > p.wantCalls+1 {
			t.Fatalf("paging %+v: %d calls, want about %d", p, calls, p.wantCalls)
		}
	}
	s.SetCBTPaging(DefaultMaxChangedBytes, 0)

	// Invalid arguments.
	bad := []struct {
		name   string
		req    types.QueryChangedDiskAreas
		target types.BaseMethodFault
	}{
		{"unknown changeId", types.QueryChangedDiskAreas{DeviceKey: v.Disks[0].Key, ChangeId: "52 00 00 00 00 00 00 00-00 00 00 00 00 00 00 00/1"}, &types.FileFault{}},
		{"other disk's changeId", types.QueryChangedDiskAreas{DeviceKey: v.Disks[0].Key, ChangeId: ids1[v.Disks[1].Key]}, &types.FileFault{}},
		{"bad device", types.QueryChangedDiskAreas{DeviceKey: 4242, ChangeId: "*"}, &types.InvalidArgument{}},
		{"offset past end", types.QueryChangedDiskAreas{DeviceKey: v.Disks[0].Key, ChangeId: "*", StartOffset: cap0}, &types.InvalidArgument{}},
	}
	for _, tt := range bad {
		req := tt.req
		req.This, req.Snapshot = v.Ref, &snap2
		_, err := methods.QueryChangedDiskAreas(ctx, c.Client, &req)
		if !fault.Is(err, tt.target) {
			t.Fatalf("%s: %v, want %T", tt.name, err, tt.target)
		}
	}

	// ResetCBT invalidates old changeIds; the snapshot's own map stays usable.
	if err := s.ResetCBT(v.UUID); err != nil {
		t.Fatal(err)
	}
	_, _, err = queryAll(ctx, c.Client, v.Ref, snap2, v.Disks[0].Key, ids1[v.Disks[0].Key], cap0)
	wantFault(t, err, &types.FileFault{})
	if _, _, err := queryAll(ctx, c.Client, v.Ref, snap2, v.Disks[0].Key, "*", cap0); err != nil {
		t.Fatal(err)
	}
	if err := removeSnapshot(ctx, c.Client, snap2); err != nil {
		t.Fatal(err)
	}
	snap3, err := snapshot(t, ctx, vm, "backup-3", false)
	if err != nil {
		t.Fatal(err)
	}
	ids3 := changeIDs(t, ctx, c.Client, snap3)
	_, _, err = queryAll(ctx, c.Client, v.Ref, snap3, v.Disks[0].Key, ids2[v.Disks[0].Key], cap0)
	wantFault(t, err, &types.FileFault{})
	if err := removeSnapshot(ctx, c.Client, snap3); err != nil {
		t.Fatal(err)
	}

	// Switching CBT off and on invalidates changeIds too.
	enableCBT(t, ctx, vm, false)
	enableCBT(t, ctx, vm, true)
	snap4, err := snapshot(t, ctx, vm, "backup-4", false)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = queryAll(ctx, c.Client, v.Ref, snap4, v.Disks[0].Key, ids3[v.Disks[0].Key], cap0)
	wantFault(t, err, &types.FileFault{})
	ids4 := changeIDs(t, ctx, c.Client, snap4)
	if err := removeSnapshot(ctx, c.Client, snap4); err != nil {
		t.Fatal(err)
	}

	// A grown disk reports the written blocks of the grown area; an added disk is
	// queried with "*".
	if err := s.ResizeDisk(ctx, v.UUID, v.Disks[1].Key, 6*mib); err != nil {
		t.Fatal(err)
	}
	writeAt(t, v.Disks[1].FlatFile, 5*mib, blockData(7))
	added, err := s.AddDisk(ctx, v.UUID, DiskSpec{Capacity: 2 * mib, Content: bytes.NewReader(content(9))})
	if err != nil {
		t.Fatal(err)
	}
	snap5, err := snapshot(t, ctx, vm, "backup-5", false)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := queryAll(ctx, c.Client, v.Ref, snap5, v.Disks[1].Key, ids4[v.Disks[1].Key], 6*mib)
	if err != nil {
		t.Fatal(err)
	}
	if want := extents([]int64{5 * mib / BlockSize}, 6*mib); !reflect.DeepEqual(got, want) {
		t.Fatalf("grown disk: %v, want %v", got, want)
	}
	got, _, err = queryAll(ctx, c.Client, v.Ref, snap5, added.Key, "*", added.Capacity)
	if err != nil {
		t.Fatal(err)
	}
	if want := extents([]int64{9}, added.Capacity); !reflect.DeepEqual(got, want) {
		t.Fatalf("added disk: %v, want %v", got, want)
	}
	if err := removeSnapshot(ctx, c.Client, snap5); err != nil {
		t.Fatal(err)
	}
}

func TestUntrackedDisks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, c := startSim(t, Options{})
	v, err := s.CreateVM(ctx, VMSpec{
		Name:           "mixed",
		PowerState:     "poweredOff",
		ChangeTracking: true,
		Disks: []DiskSpec{
			{Capacity: mib, Content: bytes.NewReader(content(1))},
			{Capacity: mib, Mode: ModeIndependentPersistent},
			{Capacity: mib, RDM: "physical"},
			{Capacity: mib, RDM: "virtual", Content: bytes.NewReader(content(2))},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	vm := object.NewVirtualMachine(c.Client, v.Ref)
	snap, err := snapshot(t, ctx, vm, "s", false)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		disk   Disk
		want   []int64
		target types.BaseMethodFault
	}{
		{v.Disks[0], []int64{1}, nil},
		{v.Disks[1], nil, &types.FileFault{}},
		{v.Disks[2], nil, &types.FileFault{}},
		{v.Disks[3], []int64{2}, nil},
	}
	var mvm mo.VirtualMachine
	if err := vm.Properties(ctx, v.Ref, []string{"config"}, &mvm); err != nil {
		t.Fatal(err)
	}
	backings := []string{}
	for _, d := range diskList(mvm.Config.Hardware.Device) {
		switch b := d.Backing.(type) {
		case *types.VirtualDiskFlatVer2BackingInfo:
			backings = append(backings, "flat/"+b.DiskMode)
		case *types.VirtualDiskRawDiskMappingVer1BackingInfo:
			backings = append(backings, "rdm/"+b.CompatibilityMode)
		}
	}
	if want := []string{"flat/persistent", "flat/independent_persistent", "rdm/physicalMode", "rdm/virtualMode"}; !reflect.DeepEqual(backings, want) {
		t.Fatalf("backings %v, want %v", backings, want)
	}
	for i, tt := range tests {
		got, _, err := queryAll(ctx, c.Client, v.Ref, snap, tt.disk.Key, "*", tt.disk.Capacity)
		if tt.target != nil {
			if !fault.Is(err, tt.target) {
				t.Fatalf("disk %d: %v, want %T", i, err, tt.target)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if want := extents(tt.want, tt.disk.Capacity); !reflect.DeepEqual(got, want) {
			t.Fatalf("disk %d: %v, want %v", i, got, want)
		}
	}

	// The simulator's layout code cannot handle RDM backings; these calls reach it.
	if err := removeSnapshot(ctx, c.Client, snap); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddDisk(ctx, v.UUID, DiskSpec{Capacity: mib, RDM: "physical"}); err != nil {
		t.Fatal(err)
	}
	enableCBT(t, ctx, vm, false)
	if _, err := methods.RefreshStorageInfo(ctx, c.Client, &types.RefreshStorageInfo{This: v.Ref}); err != nil {
		t.Fatal(err)
	}
	rdms := 0
	if err := vm.Properties(ctx, v.Ref, []string{"config"}, &mvm); err != nil {
		t.Fatal(err)
	}
	for _, d := range diskList(mvm.Config.Hardware.Device) {
		if _, ok := d.Backing.(*types.VirtualDiskRawDiskMappingVer1BackingInfo); ok {
			rdms++
		}
	}
	if rdms != 3 {
		t.Fatalf("%d RDM disks after reconfiguration, want 3", rdms)
	}
	task, err := vm.Destroy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestGuestOperations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, c := startSim(t, Options{})
	v, err := s.CreateVM(ctx, VMSpec{Name: "app01", GuestID: "otherLinux64Guest", GuestUsername: "backup", GuestPassword: "pw",
		Folder: "prod/apps", Tags: []string{"backup-policy/gold", "linux"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := find.NewFinder(c.Client).VirtualMachine(ctx, "/DC0/vm/prod/apps/app01"); err != nil {
		t.Fatal(err)
	}
	rc := rest.NewClient(c.Client)
	user, pass := s.Credentials()
	if err := rc.Login(ctx, url.UserPassword(user, pass)); err != nil {
		t.Fatal(err)
	}
	attached, err := tags.NewManager(rc).GetAttachedTags(ctx, v.Ref)
	if err != nil {
		t.Fatal(err)
	}
	var tagNames []string
	for _, tag := range attached {
		tagNames = append(tagNames, tag.Name)
	}
	sort.Strings(tagNames)
	if !reflect.DeepEqual(tagNames, []string{"gold", "linux"}) {
		t.Fatalf("tags %v", tagNames)
	}
	off, err := s.CreateVM(ctx, VMSpec{Name: "off01", GuestID: "otherLinux64Guest", PowerState: "poweredOff"})
	if err != nil {
		t.Fatal(err)
	}
	notools, err := s.CreateVM(ctx, VMSpec{Name: "appliance01"})
	if err != nil {
		t.Fatal(err)
	}

	toolsOf := func(ref types.ManagedObjectReference) string {
		var vm mo.VirtualMachine
		if err := property.DefaultCollector(c.Client).RetrieveOne(ctx, ref, []string{"guest"}, &vm); err != nil {
			t.Fatal(err)
		}
		return string(vm.Guest.ToolsStatus) + "/" + vm.Guest.ToolsRunningStatus
	}
	for ref, want := range map[types.ManagedObjectReference]string{
		v.Ref:       "toolsOk/guestToolsRunning",
		off.Ref:     "toolsNotRunning/guestToolsNotRunning",
		notools.Ref: "toolsNotInstalled/guestToolsNotRunning",
	} {
		if got := toolsOf(ref); got != want {
			t.Fatalf("%s tools %q, want %q", ref, got, want)
		}
	}
	// Tools follow the power state, whoever changes it.
	offVM := object.NewVirtualMachine(c.Client, off.Ref)
	for _, step := range []struct {
		do   func(context.Context) (*object.Task, error)
		want string
	}{
		{offVM.PowerOn, "toolsOk/guestToolsRunning"},
		{offVM.PowerOff, "toolsNotRunning/guestToolsNotRunning"},
	} {
		task, err := step.do(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := task.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if got := toolsOf(off.Ref); got != step.want {
			t.Fatalf("tools %q, want %q", got, step.want)
		}
	}

	s.SetGuestResult(v.UUID, "", 0)
	s.SetGuestResult(v.UUID, "pre-freeze", 3)
	s.SetGuestDuration(v.UUID, "slow", 300*time.Millisecond)

	pm := func(ref types.ManagedObjectReference) *guest.ProcessManager {
		p, err := guest.NewOperationsManager(c.Client, ref).ProcessManager(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := &types.NamePasswordAuthentication{Username: "backup", Password: "pw"}

	// run starts a program and polls until it ends, as a backup client does.
	run := func(p *guest.ProcessManager, auth types.BaseGuestAuthentication, path, args string) (int32, int, error) {
		pid, err := p.StartProgram(ctx, auth, &types.GuestProgramSpec{ProgramPath: path, Arguments: args})
		if err != nil {
			return 0, 0, err
		}
		for polls := 1; ; polls++ {
			procs, err := p.ListProcesses(ctx, auth, []int64{pid})
			if err != nil {
				return 0, polls, err
			}
			if len(procs) != 1 {
				return 0, polls, fmt.Errorf("pid %d: %v", pid, procs)
			}
			if procs[0].EndTime != nil {
				return procs[0].ExitCode, polls, nil
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	tests := []struct {
		name   string
		vm     types.ManagedObjectReference
		auth   types.BaseGuestAuthentication
		path   string
		args   string
		exit   int32
		target types.BaseMethodFault
	}{
		{"ok", v.Ref, good, "/usr/sbin/fsfreeze", "-f /data", 0, nil},
		{"scripted exit code", v.Ref, good, "/opt/hooks/pre-freeze.sh", "--db main", 3, nil},
		{"slow", v.Ref, good, "/bin/sh", "-c slow-thing", 0, nil},
		{"wrong password", v.Ref, &types.NamePasswordAuthentication{Username: "backup", Password: "bad"}, "/bin/true", "", 0, &types.InvalidGuestLogin{}},
		{"default credentials are not this VM's", v.Ref, &types.NamePasswordAuthentication{Username: DefaultGuestUsername, Password: DefaultGuestPassword}, "/bin/true", "", 0, &types.InvalidGuestLogin{}},
		{"powered off", off.Ref, &types.NamePasswordAuthentication{Username: DefaultGuestUsername, Password: DefaultGuestPassword}, "/bin/true", "", 0, &types.InvalidPowerState{}},
		{"no tools", notools.Ref, &types.NamePasswordAuthentication{Username: DefaultGuestUsername, Password: DefaultGuestPassword}, "/bin/true", "", 0, &types.GuestOperationsUnavailable{}},
	}
	for _, tt := range tests {
		exit, polls, err := run(pm(tt.vm), tt.auth, tt.path, tt.args)
		if tt.target != nil {
			if !fault.Is(err, tt.target) {
				t.Fatalf("%s: %v, want %T", tt.name, err, tt.target)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if exit != tt.exit {
			t.Fatalf("%s: exit %d, want %d", tt.name, exit, tt.exit)
		}
		if tt.name == "slow" && polls < 2 {
			t.Fatalf("slow command ended at once")
		}
	}

	// Guest file operations are not simulated, but check credentials first.
	fm, err := guest.NewOperationsManager(c.Client, v.Ref).FileManager(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = fm.CreateTemporaryFile(ctx, good, "coffer", ".sh", "/tmp")
	wantFault(t, err, &types.NotSupported{})
	_, err = fm.CreateTemporaryFile(ctx, &types.NamePasswordAuthentication{Username: "backup", Password: "x"}, "coffer", ".sh", "/tmp")
	wantFault(t, err, &types.InvalidGuestLogin{})

	cmds := s.GuestCommands(v.UUID)
	if len(cmds) != 3 {
		t.Fatalf("commands %+v", cmds)
	}
	want := []struct{ program, args string }{{"/usr/sbin/fsfreeze", "-f /data"}, {"/opt/hooks/pre-freeze.sh", "--db main"}, {"/bin/sh", "-c slow-thing"}}
	for i, w := range want {
		if c := cmds[i]; c.Program != w.program || c.Arguments != w.args || c.User != "backup" || c.VMUUID != v.UUID || c.PID == 0 {
			t.Fatalf("command %d: %+v", i, c)
		}
	}
	if cmds[1].ExitCode != 3 {
		t.Fatalf("recorded exit %d", cmds[1].ExitCode)
	}

	// Terminating a running command.
	s.SetGuestDuration(v.UUID, "sleep", time.Hour)
	p := pm(v.Ref)
	pid, err := p.StartProgram(ctx, good, &types.GuestProgramSpec{ProgramPath: "/bin/sleep", Arguments: "3600"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.TerminateProcess(ctx, good, pid); err != nil {
		t.Fatal(err)
	}
	procs, err := p.ListProcesses(ctx, good, []int64{pid})
	if err != nil || len(procs) != 1 || procs[0].EndTime == nil || procs[0].ExitCode != 143 {
		t.Fatalf("terminated: %+v %v", procs, err)
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, c := startSim(t, Options{})
	v, err := s.CreateVM(ctx, VMSpec{Name: "web01", GuestID: "otherLinux64Guest", ChangeTracking: true,
		Disks: []DiskSpec{{Capacity: mib, Content: bytes.NewReader(content(0))}}})
	if err != nil {
		t.Fatal(err)
	}
	vm := object.NewVirtualMachine(c.Client, v.Ref)

	t.Run("quiesce", func(t *testing.T) {
		s.FailQuiesce(v.UUID, 2)
		for i := 0; i < 2; i++ {
			_, err := snapshot(t, ctx, vm, "q", true)
			wantFault(t, err, &types.ApplicationQuiesceFault{})
		}
		if names := s.Snapshots(v.UUID); len(names) != 0 {
			t.Fatalf("failed snapshot left %v", names)
		}
		snap, err := snapshot(t, ctx, vm, "q", true)
		if err != nil {
			t.Fatal(err)
		}
		var mvm mo.VirtualMachine
		if err := vm.Properties(ctx, v.Ref, []string{"snapshot"}, &mvm); err != nil {
			t.Fatal(err)
		}
		if tree := mvm.Snapshot.RootSnapshotList; len(tree) != 1 || !tree[0].Quiesced || tree[0].Name != "q" {
			t.Fatalf("tree %+v", tree)
		}
		if err := removeSnapshot(ctx, c.Client, snap); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("remove snapshot", func(t *testing.T) {
		snap, err := snapshot(t, ctx, vm, "r", false)
		if err != nil {
			t.Fatal(err)
		}
		s.FailNext("RemoveSnapshot_Task", v.UUID, 1)
		wantFault(t, removeSnapshot(ctx, c.Client, snap), &types.SystemError{})
		if names := s.Snapshots(v.UUID); !reflect.DeepEqual(names, []string{"r"}) {
			t.Fatalf("snapshots after failed removal: %v", names)
		}
		if err := removeSnapshot(ctx, c.Client, snap); err != nil {
			t.Fatal(err)
		}
		if names := s.Snapshots(v.UUID); len(names) != 0 {
			t.Fatalf("snapshots %v", names)
		}
	})

	t.Run("soap methods", func(t *testing.T) {
		snap, err := snapshot(t, ctx, vm, "m", false)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = removeSnapshot(ctx, c.Client, snap) }()
		s.FailNext("QueryChangedDiskAreas", v.UUID, 1)
		_, _, err = queryAll(ctx, c.Client, v.Ref, snap, v.Disks[0].Key, "*", mib)
		wantFault(t, err, &types.SystemError{})
		if _, _, err := queryAll(ctx, c.Client, v.Ref, snap, v.Disks[0].Key, "*", mib); err != nil {
			t.Fatal(err)
		}
		s.FailNext("ReconfigVM_Task", "", 1)
		task, err := vm.Reconfigure(ctx, types.VirtualMachineConfigSpec{Annotation: "x"})
		if err != nil {
			t.Fatal(err)
		}
		wantFault(t, task.Wait(ctx), &types.SystemError{})
	})

	t.Run("sessions", func(t *testing.T) {
		c2, err := s.NewClient(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.ExpireSessions(); err != nil {
			t.Fatal(err)
		}
		for _, cl := range []*govmomi.Client{c, c2} {
			var mvm mo.VirtualMachine
			err := property.DefaultCollector(cl.Client).RetrieveOne(ctx, v.Ref, []string{"name"}, &mvm)
			wantFault(t, err, &types.NotAuthenticated{})
			_, err = object.NewVirtualMachine(cl.Client, v.Ref).CreateSnapshot(ctx, "x", "", false, false)
			wantFault(t, err, &types.NotAuthenticated{})
			if us, err := cl.SessionManager.UserSession(ctx); err != nil || us != nil {
				t.Fatalf("UserSession after expiry: %v %v", us, err)
			}
			user, pass := s.Credentials()
			if err := cl.SessionManager.Login(ctx, url.UserPassword(user, pass)); err != nil {
				t.Fatal(err)
			}
			if err := property.DefaultCollector(cl.Client).RetrieveOne(ctx, v.Ref, []string{"name"}, &mvm); err != nil || mvm.Name != "web01" {
				t.Fatalf("after login: %v %q", err, mvm.Name)
			}
		}
		// The Sim's own helpers log in again.
		if _, err := s.Disks(ctx, v.UUID); err != nil {
			t.Fatal(err)
		}
		_ = c2.Logout(ctx)
	})
}

func TestDatastoreReads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, c := startSim(t, Options{})
	data := make([]byte, 4*mib)
	copy(data, content(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 40))
	v, err := s.CreateVM(ctx, VMSpec{Name: "files01", Disks: []DiskSpec{{Capacity: 4 * mib, Content: bytes.NewReader(data[:3*mib])}}})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := find.NewFinder(c.Client, true).Datastore(ctx, "/DC0/datastore/"+v.Disks[0].Datastore)
	if err != nil {
		t.Fatal(err)
	}
	var p = strings.TrimPrefix(v.Disks[0].Path, "["+v.Disks[0].Datastore+"] ")
	u := ds.NewURL(strings.TrimSuffix(p, ".vmdk") + "-flat.vmdk")

	read := func(from, to int64) ([]byte, error) {
		res, err := c.Client.DownloadRequest(ctx, u, &soap.Download{Method: http.MethodGet, Headers: map[string]string{
			"Range": fmt.Sprintf("bytes=%d-%d", from, to-1),
		}})
		if err != nil {
			return nil, err
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusPartialContent {
			return nil, fmt.Errorf("status %s", res.Status)
		}
		return io.ReadAll(res.Body)
	}

	s.ResetReadRequests()
	got, err := read(0, 2*mib)
	if err != nil || !bytes.Equal(got, data[:2*mib]) {
		t.Fatalf("read: %d bytes, %v", len(got), err)
	}

	tests := []struct {
		name       string
		drops      int
		after      int64
		from, to   int64
		wantErr    bool
		wantPrefix int64
	}{
		{"cut after 100000 bytes", 1, 100000, 0, mib, true, 100000},
		{"cut before the body", 1, 0, mib, 2 * mib, true, 0},
		{"short response is whole", 1, mib, 0, BlockSize, false, BlockSize},
	}
	for _, tt := range tests {
		s.DropReads(tt.drops, tt.after)
		got, err := read(tt.from, tt.to)
		if (err != nil) != tt.wantErr {
			t.Fatalf("%s: err %v", tt.name, err)
		}
		if tt.wantErr && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%s: %v, want unexpected EOF", tt.name, err)
		}
		if int64(len(got)) != tt.wantPrefix || !bytes.Equal(got, data[tt.from:tt.from+int64(len(got))]) {
			t.Fatalf("%s: got %d bytes", tt.name, len(got))
		}
	}
	s.DropReads(0, 0)
	if got, err := read(mib, 4*mib); err != nil || !bytes.Equal(got, data[mib:]) {
		t.Fatalf("read after drops: %v", err)
	}
	if n := s.ReadRequests(); n != 5 {
		t.Fatalf("ReadRequests = %d, want 5", n)
	}
}

// seekDataAreas lists the allocated areas of a file (SEEK_DATA/SEEK_HOLE), rounded out
// to whole blocks and cut at size.
func seekDataAreas(t *testing.T, path string, size int64) []types.DiskChangeExtent {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	var blocks []int64
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) || (err == nil && data >= size) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			t.Fatal(err)
		}
		hole = min(hole, size)
		for b := data / BlockSize; b*BlockSize < hole; b++ {
			if n := len(blocks); n == 0 || blocks[n-1] < b {
				blocks = append(blocks, b)
			}
		}
		off = hole
	}
	return extents(blocks, size)
}

// syncBuffer is a bytes.Buffer for a logger that the simulator's goroutines write.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestTrackWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, c := startSim(t, Options{TrackWrites: true})

	const capacity = 8*mib + 3*1024 // ends in a partial block (128)
	v, err := s.CreateVM(ctx, VMSpec{
		Name: "tw01", ChangeTracking: true,
		Disks: []DiskSpec{
			{Capacity: capacity, Thin: true, Content: bytes.NewReader(content(0, 1, 5, 64))},
			{Capacity: 2 * mib, Content: bytes.NewReader(content(3))},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	vm := object.NewVirtualMachine(c.Client, v.Ref)
	key, flat := v.Disks[0].Key, v.Disks[0].FlatFile
	write := func(off int64, p []byte) {
		t.Helper()
		if err := s.WriteDisk(v.UUID, key, off, p); err != nil {
			t.Fatal(err)
		}
	}
	query := func(snap types.ManagedObjectReference, k int32, id string, capacity int64) []types.DiskChangeExtent {
		t.Helper()
		got, _, err := queryAll(ctx, c.Client, v.Ref, snap, k, id, capacity)
		if err != nil {
			t.Fatalf("query %s since %q: %v", snap.Value, id, err)
		}
		return got
	}

	// Before the first snapshot, writes are just content.
	write(20*BlockSize, blockData(20))
	snap1, err := snapshot(t, ctx, vm, "backup-1", true)
	if err != nil {
		t.Fatal(err)
	}
	ids1 := changeIDs(t, ctx, c.Client, snap1)
	if len(ids1) != 2 {
		t.Fatalf("changeIds %v", ids1)
	}
	// "*" is the allocated blocks.
	if got, want := query(snap1, key, "*", capacity), seekDataAreas(t, flat, capacity); !reflect.DeepEqual(got, want) ||
		!reflect.DeepEqual(want, extents([]int64{0, 1, 5, 20, 64}, capacity)) {
		t.Fatalf("* = %v, SEEK_DATA %v", got, want)
	}
	if err := removeSnapshot(ctx, c.Client, snap1); err != nil {
		t.Fatal(err)
	}

	// Every written block counts, whatever was written: part of a block, across block
	// boundaries, zeros, the same data again.
	write(5*BlockSize+10, []byte("changed"))
	write(30*BlockSize-10, make([]byte, 2*BlockSize+20)) // blocks 29-32, zeros
	write(90*BlockSize, make([]byte, 100))               // zeros, allocates block 90
	write(64*BlockSize, blockData(64))                   // the same data
	snap2, err := snapshot(t, ctx, vm, "backup-2", true)
	if err != nil {
		t.Fatal(err)
	}
	ids2 := changeIDs(t, ctx, c.Client, snap2)
	changes2 := []int64{5, 29, 30, 31, 32, 64, 90}
	if got, want := query(snap2, key, ids1[key], capacity), extents(changes2, capacity); !reflect.DeepEqual(got, want) {
		t.Fatalf("changes since 1 = %v, want %v", got, want)
	}

	write(capacity-10, []byte("tail"))  // the partial last block
	write(31*BlockSize, blockData(31))  // written in the previous generation too
	write(127*BlockSize+4, []byte("x")) // next to the last block
	snap3, err := snapshot(t, ctx, vm, "backup-3", true)
	if err != nil {
		t.Fatal(err)
	}
	ids3 := changeIDs(t, ctx, c.Client, snap3)
	if ids3[key] == ids2[key] || !strings.HasPrefix(ids3[key], strings.Split(ids1[key], "/")[0]+"/") {
		t.Fatalf("changeIds %q, %q, %q", ids1[key], ids2[key], ids3[key])
	}
	union := []int64{5, 29, 30, 31, 32, 64, 90, 127, 128}
	for _, tt := range []struct {
		snap types.ManagedObjectReference
		id   string
		want []int64
	}{
		{snap3, ids2[key], []int64{31, 127, 128}},
		{snap3, ids1[key], union},    // the union of the generations since
		{snap2, ids1[key], changes2}, // an older snapshot still answers for itself
		{snap3, ids3[key], nil},
	} {
		if got, want := query(tt.snap, key, tt.id, capacity), extents(tt.want, capacity); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s since %q = %v, want %v", tt.snap.Value, tt.id, got, want)
		}
	}
	if got := query(snap3, v.Disks[1].Key, ids1[v.Disks[1].Key], 2*mib); len(got) != 0 {
		t.Fatalf("untouched disk: %v", got)
	}
	if got, want := query(snap3, key, "*", capacity), seekDataAreas(t, flat, capacity); !reflect.DeepEqual(got, want) {
		t.Fatalf("* = %v, SEEK_DATA %v", got, want)
	}

	// Paging, as in hashing mode.
	pages := []struct {
		maxBytes  int64
		maxAreas  int
		wantCalls int
	}{
		{-1, 0, 1},
		{BlockSize, 0, 9},     // one block per answer
		{3 * BlockSize, 0, 4}, // 5,29-30 | 31-32,64 | 90,127 | 128
		{-1, 2, 3},            // {5,29-32} {64,90} {127-128}
		{2 * BlockSize, 1, 7},
	}
	for _, p := range pages {
		s.SetCBTPaging(p.maxBytes, p.maxAreas)
		got, calls, err := queryAll(ctx, c.Client, v.Ref, snap3, key, ids1[key], capacity)
		if err != nil {
			t.Fatal(err)
		}
		if want := extents(union, capacity); !reflect.DeepEqual(got, want) {
			t.Fatalf("paging %+v: %v, want %v", p, got, want)
		}
		if calls < p.wantCalls-1 || calls > p.wantCalls+1 {
			t.Fatalf("paging %+v: %d calls, want about %d", p, calls, p.wantCalls)
		}
	}
	s.SetCBTPaging(DefaultMaxChangedBytes, 0)

	// Without a snapshot: the present state, i.e. the writes since the last snapshot too.
	write(100*BlockSize, []byte("now"))
	res, err := methods.QueryChangedDiskAreas(ctx, c.Client, &types.QueryChangedDiskAreas{This: v.Ref, DeviceKey: key, ChangeId: ids3[key]})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Returnval.ChangedArea, extents([]int64{100}, capacity); !reflect.DeepEqual(got, want) {
		t.Fatalf("present changes = %v, want %v", got, want)
	}

	// Writes outside the disk fail.
	for _, off := range []int64{-1, capacity - 3, capacity + BlockSize} {
		if err := s.WriteDisk(v.UUID, key, off, []byte("abcd")); err == nil {
			t.Fatalf("write at %d succeeded", off)
		}
	}
	if err := s.WriteDisk(v.UUID, 4242, 0, []byte("x")); err == nil {
		t.Fatal("write to a missing disk succeeded")
	}
	for _, snap := range []types.ManagedObjectReference{snap2, snap3} {
		if err := removeSnapshot(ctx, c.Client, snap); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTrackWritesUntracked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var logs syncBuffer
	s, c := startSim(t, Options{TrackWrites: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	const capacity = 4 * mib
	v, err := s.CreateVM(ctx, VMSpec{Name: "tw02", ChangeTracking: true,
		Disks: []DiskSpec{{Capacity: capacity, Content: bytes.NewReader(content(0, 1))}}})
	if err != nil {
		t.Fatal(err)
	}
	vm := object.NewVirtualMachine(c.Client, v.Ref)
	key, flat := v.Disks[0].Key, v.Disks[0].FlatFile

	// backup takes a snapshot, checks what changed since the previous changeId (nil
	// wants a FileFault), removes the snapshot and returns the new changeId.
	var prev string
	size := int64(capacity)
	backup := func(want []int64) {
		t.Helper()
		snap, err := snapshot(t, ctx, vm, "b", false)
		if err != nil {
			t.Fatal(err)
		}
		if prev != "" {
			got, _, err := queryAll(ctx, c.Client, v.Ref, snap, key, prev, size)
			switch {
			case want == nil:
				wantFault(t, err, &types.FileFault{})
				if _, _, err := queryAll(ctx, c.Client, v.Ref, snap, key, "*", size); err != nil {
					t.Fatal(err)
				}
			case err != nil:
				t.Fatal(err)
			case !reflect.DeepEqual(got, extents(want, size)):
				t.Fatalf("changes %v, want blocks %v", got, want)
			}
		}
		prev = changeIDs(t, ctx, c.Client, snap)[key]
		if err := removeSnapshot(ctx, c.Client, snap); err != nil {
			t.Fatal(err)
		}
	}
	write := func(block int64) {
		t.Helper()
		if err := s.WriteDisk(v.UUID, key, block*BlockSize, blockData(int(block))); err != nil {
			t.Fatal(err)
		}
	}

	// Filling the flat file before the first snapshot is fine.
	writeAt(t, flat, 10*BlockSize, blockData(10))
	backup(nil)
	write(2)
	backup([]int64{2})

	// A write that bypasses WriteDisk, right after a tracked one (within the file
	// system's timestamp granularity), resets the tracking at the next snapshot.
	write(3)
	writeAt(t, flat, 7*BlockSize, []byte("out of band"))
	backup(nil)
	if !strings.Contains(logs.String(), "outside WriteDisk") {
		t.Fatalf("no warning logged: %q", logs.String())
	}
	// Tracking starts over.
	write(4)
	backup([]int64{4})

	// A later tracked write does not hide an earlier untracked one.
	writeAt(t, flat, 9*BlockSize, blockData(99))
	write(5)
	backup(nil)
	backup([]int64{})

	// Nor does growing the disk; and os.WriteFile (which truncates) is noticed too.
	if err := os.WriteFile(flat, blockData(1), 0o600); err != nil {
		t.Fatal(err)
	}
	size = capacity + mib
	if err := s.ResizeDisk(ctx, v.UUID, key, size); err != nil {
		t.Fatal(err)
	}
	backup(nil)
	if st, err := os.Stat(flat); err != nil || st.Size() != capacity+mib {
		t.Fatalf("flat file after the reset: %v %v", st, err)
	}

	// A grown disk reports the written blocks of the grown area, and growing it keeps
	// the changeIds valid; an added disk is queried with "*".
	if err := s.ResizeDisk(ctx, v.UUID, key, capacity+2*mib); err != nil {
		t.Fatal(err)
	}
	grown := int64(capacity+mib) / BlockSize
	write(grown + 1)
	added, err := s.AddDisk(ctx, v.UUID, DiskSpec{Capacity: 2 * mib, Content: bytes.NewReader(content(9))})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot(t, ctx, vm, "grown", false)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := queryAll(ctx, c.Client, v.Ref, snap, key, prev, capacity+2*mib)
	if err != nil {
		t.Fatal(err)
	}
	if want := extents([]int64{grown + 1}, capacity+2*mib); !reflect.DeepEqual(got, want) {
		t.Fatalf("grown disk: %v, want %v", got, want)
	}
	got, _, err = queryAll(ctx, c.Client, v.Ref, snap, added.Key, "*", added.Capacity)
	if err != nil {
		t.Fatal(err)
	}
	if want := extents([]int64{9}, added.Capacity); !reflect.DeepEqual(got, want) {
		t.Fatalf("added disk: %v, want %v", got, want)
	}
	if n := strings.Count(logs.String(), "outside WriteDisk"); n != 3 {
		t.Fatalf("%d warnings, want 3:\n%s", n, logs.String())
	}
}

// TestTrackWritesConcurrent writes from several goroutines while snapshots are taken:
// every write shows up in the changes, and none is taken for an untracked change.
func TestTrackWritesConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, c := startSim(t, Options{TrackWrites: true})
	const capacity = 16 * mib
	v, err := s.CreateVM(ctx, VMSpec{Name: "tw03", ChangeTracking: true, Disks: []DiskSpec{{Capacity: capacity}}})
	if err != nil {
		t.Fatal(err)
	}
	vm := object.NewVirtualMachine(c.Client, v.Ref)
	key := v.Disks[0].Key
	snap0, err := snapshot(t, ctx, vm, "base", false)
	if err != nil {
		t.Fatal(err)
	}
	base := changeIDs(t, ctx, c.Client, snap0)[key]

	const writers, each = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				b := int64(w + writers*i*2) // every other block of the disk's first part
				if err := s.WriteDisk(v.UUID, key, b*BlockSize+int64(i), []byte("concurrent")); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var snaps []types.ManagedObjectReference
	for i := range 3 {
		snap, err := snapshot(t, ctx, vm, fmt.Sprint("during-", i), false)
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, snap)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	last, err := snapshot(t, ctx, vm, "after", false)
	if err != nil {
		t.Fatal(err)
	}
	var want []int64
	for w := range writers {
		for i := range each {
			want = append(want, int64(w+writers*i*2))
		}
	}
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	got, _, err := queryAll(ctx, c.Client, v.Ref, last, key, base, capacity)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, extents(want, capacity)) {
		t.Fatalf("changes %v, want blocks %v", got, want)
	}
	for _, snap := range append(snaps, snap0, last) {
		if err := removeSnapshot(ctx, c.Client, snap); err != nil {
			t.Fatal(err)
		}
	}
}

// benchFile is a sparse file of 64 MiB runs of text-like data with 64 MiB holes
// between them, 512 MiB of data in all, in the page cache.
func benchFile(b *testing.B) (string, int64) {
	b.Helper()
	path := b.TempDir() + "/flat"
	const run, runs = 64 * mib, 8
	size := int64(2 * run * runs)
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, run)
	words := strings.Fields("the quick brown fox jumps over a lazy dog while seven zebras quietly graze")
	x := uint64(1)
	for i := 0; i < len(buf); {
		x = x*6364136223846793005 + 1442695040888963407
		i += copy(buf[i:], words[x>>60%uint64(len(words))]+" ")
	}
	for r := int64(0); r < runs; r++ {
		binary.LittleEndian.PutUint64(buf, uint64(r)) // no two runs alike
		if _, err := f.WriteAt(buf, 2*r*run); err != nil {
			b.Fatal(err)
		}
	}
	return path, size
}

func benchHash(b *testing.B, hash func(string, int64) ([]int64, [][16]byte, error)) {
	path, size := benchFile(b)
	b.SetBytes(size / 2)
	b.ResetTimer()
	for range b.N {
		blocks, _, err := hash(path, size)
		if err != nil || int64(len(blocks)) != size/2/BlockSize {
			b.Fatalf("%d blocks, %v", len(blocks), err)
		}
	}
}

// BenchmarkHashBlocks is the cost of a snapshot in hashing mode per byte of data.
func BenchmarkHashBlocks(b *testing.B) { benchHash(b, hashBlocks) }
