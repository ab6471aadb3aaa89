package vsphere_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"

	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/appliance/vsphere/vcsim"
	"coffer.dev/coffer/appliance/vsphere/vspheretest"
	"coffer.dev/coffer/store"
	"coffer.dev/coffer/store/point"
)

// env is a simulator, a store and a logged-in engine.
type env struct {
	sim *vcsim.Sim
	st  *store.Store
	c   *vsphere.Client
	e   *vsphere.Engine
	dir string
}

func newEnv(t *testing.T, o vcsim.Options) *env {
	t.Helper()
	x := vspheretest.New(t, o)
	return &env{sim: x.Sim, st: x.Store, c: x.Client, e: x.Engine, dir: x.Dir}
}

// ext4Image makes a real ext4 file system image of size bytes holding a
// tree of generated files (mke2fs -d, no mount).
func ext4Image(t *testing.T, size int64, seed uint64, files int) []byte {
	t.Helper()
	if _, err := exec.LookPath("mke2fs"); err != nil {
		t.Fatalf("mke2fs is needed (apt-get install e2fsprogs): %v", err)
	}
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	r := rand.New(rand.NewPCG(seed, 1))
	for i := 0; i < files; i++ {
		p := filepath.Join(tree, fmt.Sprintf("d%d/f%03d.txt", i%7, i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		n := 1000 + r.IntN(200_000)
		for b.Len() < n {
			fmt.Fprintf(&b, "line %d of file %d: %x\n", b.Len(), i, r.Uint64())
		}
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "fs.img")
	out, err := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-d", tree, img, fmt.Sprint(size/1024)+"k").CombinedOutput()
	if err != nil {
		t.Fatalf("mke2fs: %v\n%s", err, out)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// debugfsWrite adds a file to the ext4 image at the start of a flat file.
func debugfsWrite(t *testing.T, flat, name string, content []byte) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(src, content, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("debugfs", "-w", "-R", "write "+src+" "+name, flat).CombinedOutput()
	if err != nil || strings.Contains(string(out), "rror") {
		t.Fatalf("debugfs write: %v\n%s", err, out)
	}
}

// fileHash is the SHA-256 of the first size bytes of a file (zero padded).
func fileHash(t *testing.T, p string, size int64) [32]byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, size))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(h, zeroReader{}, size-n); err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func pointHash(t *testing.T, st *store.Store, id point.ID, disk string) [32]byte {
	return vspheretest.PointHash(t, st, id, disk)
}

// scribble overwrites n random 4 KiB blocks of a file's first size bytes.
func scribble(t *testing.T, p string, size int64, n int, seed uint64) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, 4096)
	for i := 0; i < n; i++ {
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		if _, err := f.WriteAt(b, r.Int64N(size/4096)*4096); err != nil {
			t.Fatal(err)
		}
	}
}

// diskHashes returns the hash of every disk's flat file of a VM.
func (v *env) diskHashes(t *testing.T, uuid string) map[string][32]byte {
	t.Helper()
	disks, err := v.sim.Disks(context.Background(), uuid)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][32]byte{}
	for i, d := range disks {
		p, err := v.sim.DiskFile(uuid, d.Key)
		if err != nil {
			t.Fatal(err)
		}
		out[fmt.Sprintf("scsi0:%d", i)] = fileHash(t, p, d.Capacity)
	}
	return out
}

func (v *env) checkPoint(t *testing.T, res *vsphere.Result, want map[string][32]byte) {
	t.Helper()
	p, err := v.st.Point(res.Point)
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range want {
		if _, ok := p.Disk(name); !ok {
			t.Fatalf("point %s has no disk %s (disks %v)", p.ID, name, p.Disks)
		}
		if got := pointHash(t, v.st, p.ID, name); got != h {
			t.Fatalf("disk %s of point %s differs from the disk at snapshot time", name, p.ID)
		}
	}
}

func (v *env) noSnapshots(t *testing.T, uuid string) {
	t.Helper()
	if s := v.sim.Snapshots(uuid); len(s) != 0 {
		t.Fatalf("snapshots left on the VM: %v", s)
	}
}

func diskResult(t *testing.T, res *vsphere.Result, name string) vsphere.DiskResult {
	t.Helper()
	for _, d := range res.Disks {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("no result for disk %s in %+v", name, res.Disks)
	return vsphere.DiskResult{}
}

const mib = 1 << 20

func TestTrustIsExplicit(t *testing.T) {
	ctx := context.Background()
	sim, err := vcsim.Start(ctx, vcsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	user, pass := sim.Credentials()
	cert, err := vsphere.ProbeCertificate(ctx, sim.URL().String(), vsphere.Trust{})
	if err != nil {
		t.Fatal(err)
	}
	if cert.SHA256 != sim.SHA256Thumbprint() || cert.CAValid {
		t.Fatalf("probe: %+v, want thumbprint %s, not CA-valid", cert, sim.SHA256Thumbprint())
	}
	_, err = vsphere.Connect(ctx, vsphere.Endpoint{URL: sim.URL().String(), Username: user, Password: pass}, nil)
	var ue *vsphere.UntrustedError
	if !errors.As(err, &ue) || ue.Cert.SHA256 != sim.SHA256Thumbprint() {
		t.Fatalf("connect without trust: %v, want an UntrustedError naming the thumbprint", err)
	}
	_, err = vsphere.Connect(ctx, vsphere.Endpoint{URL: sim.URL().String(), Username: user, Password: pass,
		Trust: vsphere.Trust{Thumbprints: map[string]string{sim.URL().Hostname(): strings.Repeat("AB:", 31) + "AB"}}}, nil)
	if !errors.As(err, &ue) || ue.Pinned == "" || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("connect with another pinned thumbprint: %v", err)
	}
	_, err = vsphere.Connect(ctx, vsphere.Endpoint{URL: sim.URL().String(), Username: user, Password: "wrong",
		Trust: vsphere.Trust{Thumbprints: map[string]string{sim.URL().Hostname(): strings.ToLower(strings.ReplaceAll(sim.SHA256Thumbprint(), ":", ""))}}}, nil)
	if err == nil || !strings.Contains(err.Error(), "password is wrong") || strings.Contains(err.Error(), "wrong\"") {
		t.Fatalf("wrong password: %v", err)
	}
	if s := fmt.Sprint(vsphere.Endpoint{URL: "x", Username: "u", Password: "hunter2"}); strings.Contains(s, "hunter2") {
		t.Fatalf("endpoint prints its password: %s", s)
	}
	if _, err := vsphere.ParseURL("http://vc.example.com"); err == nil {
		t.Fatal("plain http accepted")
	}
	if u, err := vsphere.ParseURL("vc.example.com"); err != nil || u.String() != (&url.URL{Scheme: "https", Host: "vc.example.com:443", Path: "/sdk"}).String() {
		t.Fatalf("ParseURL: %v %v", u, err)
	}
}

func TestInventory(t *testing.T) {
	v := newEnv(t, vcsim.Options{})
	ctx := context.Background()
	web, err := v.sim.CreateVM(ctx, vcsim.VMSpec{Name: "web01", Folder: "prod/web", GuestID: "otherLinux64Guest",
		Disks: []vcsim.DiskSpec{{Capacity: 8 * mib, Thin: true}, {Capacity: 4 * mib, Mode: "independent_persistent"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.sim.CreateVM(ctx, vcsim.VMSpec{Name: "db01", Host: "DC0_H0", PowerState: "poweredOff",
		Disks: []vcsim.DiskSpec{{Capacity: 8 * mib, RDM: "physical"}}}); err != nil {
		t.Fatal(err)
	}
	inv, err := v.c.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Datacenters) == 0 || len(inv.Hosts) < 3 || len(inv.Datastores) < 2 || len(inv.Clusters) == 0 {
		t.Fatalf("inventory too small: %d DCs, %d hosts, %d datastores, %d clusters", len(inv.Datacenters), len(inv.Hosts), len(inv.Datastores), len(inv.Clusters))
	}
	byName := map[string]vsphere.VM{}
	for _, vm := range inv.VMs {
		byName[vm.Name] = vm
	}
	w, ok := byName["web01"]
	if !ok || w.InstanceUUID != web.UUID || w.Folder != "prod/web" || w.PowerState != "poweredOn" || !w.ToolsRunning() {
		t.Fatalf("web01: %+v", w)
	}
	if len(w.Disks) != 2 || !w.Disks[0].Thin || w.Disks[0].Capacity != 8*mib || w.Disks[0].SkipReason() != "" ||
		w.Disks[1].SkipReason() == "" || w.Disks[0].Controller != "scsi0:0" {
		t.Fatalf("web01 disks: %+v", w.Disks)
	}
	d, ok := byName["db01"]
	if !ok || d.PowerState != "poweredOff" || len(d.Disks) != 1 || d.Disks[0].RDM != "physical" || d.Cluster != "" || d.Host != "DC0_H0" {
		t.Fatalf("db01: %+v", d)
	}
	found := false
	for _, f := range inv.Folders {
		found = found || f.Path == "prod/web"
	}
	if !found {
		t.Fatalf("folder prod/web missing: %+v", inv.Folders)
	}
}

func TestBackupFullThenIncremental(t *testing.T) {
	v := newEnv(t, vcsim.Options{MaxChangedBytes: 8 * mib})
	ctx := context.Background()
	const size0, size1 = 48 * mib, 24 * mib
	fs := ext4Image(t, size0, 1, 60)
	noise := make([]byte, 6*mib)
	rng := rand.New(rand.NewPCG(3, 3))
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	vm, err := v.sim.CreateVM(ctx, vcsim.VMSpec{Name: "app01", GuestID: "otherLinux64Guest",
		Disks: []vcsim.DiskSpec{{Capacity: size0, Content: bytes.NewReader(fs)}, {Capacity: size1, Datastore: "LocalDS_1", Content: bytes.NewReader(noise)}}})
	if err != nil {
		t.Fatal(err)
	}
	want1 := v.diskHashes(t, vm.UUID)
	var progress []vsphere.Progress
	res, err := v.e.BackupVM(ctx, vsphere.BackupRequest{InstanceUUID: vm.UUID, Labels: map[string]string{"policy": "p1"},
		Progress: func(p vsphere.Progress) { progress = append(progress, p) }})
	if err != nil {
		t.Fatal(err)
	}
	v.noSnapshots(t, vm.UUID)
	if !res.CBTEnabled || len(res.Notes) == 0 || len(res.Warnings) != 0 || res.Consistency != point.FileSystemConsistent || !res.SnapshotRemoved {
		t.Fatalf("first backup: %+v", res)
	}
	if d := diskResult(t, res, "scsi0:0"); d.Method != "full" || d.Read.Bytes >= size0 {
		t.Fatalf("first backup of disk 0 should be a full read of the allocated areas only: %+v", d)
	}
	v.checkPoint(t, res, want1)
	if len(progress) == 0 || progress[len(progress)-1].DisksDone != 2 {
		t.Fatalf("progress: %+v", progress)
	}
	p1, err := v.st.Point(res.Point)
	if err != nil {
		t.Fatal(err)
	}
	if p1.Source != vsphere.SourceName(vm.UUID) || p1.Labels["policy"] != "p1" || p1.Labels["vm"] != "app01" {
		t.Fatalf("point identity: %s %v", p1.Source, p1.Labels)
	}
	var cfg struct {
		Format, XML string
		VMXPath     string `json:"vmx_path"`
	}
	if err := json.Unmarshal(p1.Metadata["vsphere.config"], &cfg); err != nil || cfg.Format != "vim25-xml" || !strings.Contains(cfg.XML, "VirtualDisk") {
		t.Fatalf("configuration not saved: %v %.200s", err, cfg.XML)
	}
	if !strings.HasSuffix(cfg.VMXPath, "app01.vmx") || len(res.Warnings) != 0 {
		t.Fatalf(".vmx not saved: %q %v", cfg.VMXPath, res.Warnings)
	}

	// A day of change: a new file in the file system, scattered blocks on
	// the second disk.
	f0, _ := v.sim.DiskFile(vm.UUID, vm.Disks[0].Key)
	f1, _ := v.sim.DiskFile(vm.UUID, vm.Disks[1].Key)
	debugfsWrite(t, f0, "/new-log.txt", bytes.Repeat([]byte("log entry\n"), 300_000))
	scribble(t, f1, size1, 40, 9)
	want2 := v.diskHashes(t, vm.UUID)
	v.sim.ResetReadRequests()
	res2, err := v.e.BackupVM(ctx, vsphere.BackupRequest{InstanceUUID: vm.UUID})
	if err != nil {
		t.Fatal(err)
	}
	v.noSnapshots(t, vm.UUID)
	for _, name := range []string{"scsi0:0", "scsi0:1"} {
		d := diskResult(t, res2, name)
		if d.Method != "incremental" || d.Changed == 0 || d.Changed > 8*mib {
			t.Fatalf("second backup of %s: %+v", name, d)
		}
	}
	var changed int64
	for _, d := range res2.Disks {
		t.Logf("disk %s: changed %d read %+v", d.Name, d.Changed, d.Read)
		changed += d.Changed
	}
	// Re-chunking reads some context around each change, no more.
	if res2.Read > 4*changed {
		t.Fatalf("incremental read %d bytes for %d changed", res2.Read, changed)
	}
	v.checkPoint(t, res2, want2)
	v.checkPoint(t, res, want1) // the first point is unchanged
	if n := v.sim.ReadRequests(); n > 80 {
		t.Fatalf("%d HTTP requests for ~40 changed areas + a file: extents not merged", n)
	}

	// Nothing changed: the point costs no read at all.
	res3, err := v.e.BackupVM(ctx, vsphere.BackupRequest{InstanceUUID: vm.UUID})
	if err != nil {
		t.Fatal(err)
	}
	if res3.Read != 0 {
		t.Fatalf("unchanged VM: read %d bytes", res3.Read)
	}
	v.checkPoint(t, res3, want2)
}

func TestBackupFullReadWhenCBTCannotBeUsed(t *testing.T) {
	v := newEnv(t, vcsim.Options{})
	ctx := context.Background()
	vm, err := v.sim.CreateVM(ctx, vcsim.VMSpec{Name: "cbt01", GuestID: "otherLinux64Guest", ChangeTracking: true,
		Disks: []vcsim.DiskSpec{{Capacity: 16 * mib, Content: bytes.NewReader(ext4Image(t, 16*mib, 4, 10))}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.e.BackupVM(ctx, vsphere.BackupRequest{InstanceUUID: vm.UUID}); err != nil {
		t.Fatal(err)
	}
	f0, _ := v.sim.DiskFile(vm.UUID, vm.Disks[0].Key)

	// CBT reset: the old changeId is refused, the disk is read in full.
	scribble(t, f0, 16*mib, 5, 1)
	if err := v.sim.ResetCBT(vm.UUID); err != nil {
		t.Fatal(err)
	}
	want := v.diskHashes(t, vm.UUID)
	res, err := v.e.BackupVM(ctx, vsphere.BackupRequest{InstanceUUID: vm.UUID})
	if err != nil {
		t.Fatal(err)
	}
	if d := diskResult(t, res, "scsi0:0"); d.Method != "full" || !strings.Contains(d.Reason, "rejected") {
		t.Fatalf("after a CBT reset: %+v", d)
	}
	v.checkPoint(t, res, want)

	// Disk resized.
	if err := v.sim.ResizeDisk(ctx, vm.UUID, vm.Disks[0].Key, 20*mib); err != nil {
		t.Fatal(err)
	}
	// A disk added.
	if _, err := v.sim.AddDisk(ctx, vm.UUID, vcsim.DiskSpec{Capacity: 8 * mib, Content: strings.NewReader(strings.Repeat("added disk ", 50000))}); err != nil {
		t.Fatal(err)
	}
	want = v.diskHashes(t, vm.UUID)
	res, err = v.e.BackupVM(ctx, vsphere.BackupRequest{InstanceUUID: vm.UUID})
	if err != nil {
		t.Fatal(err)
	}
	if d := diskResult(t, res, "scsi0:0"); d.Method != "full" || !strings.Contains(d.Reason, "resized") || d.Capacity != 20*mib {
		t.Fatalf("after a resize: %+v", d)
	}
	if d := diskResult(t, res, "scsi0:1"); d.Method != "full" || !strings.Contains(d.Reason, "first") {
		t.Fatalf("added disk: %+v", d)
	}
	v.checkPoint(t, res, want)

	// Next time both are incremental again.
	res, err = v.e.BackupVM(ctx, vsphere.BackupRequest{InstanceUUID: vm.UUID})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range res.Disks {
		if d.Method != "incremental" {
			t.Fatalf("disk %s: %s (%s)", d.Name, d.Method, d.Reason)
		}
	}
	v.checkPoint(t, res, want)

	// A periodic verification read: a full read, checked against CBT.
	res, err = v.e.BackupVM(ctx, vsphere.BackupRequest{InstanceUUID: vm.UUID, VerifyCBT: true})
	if err != nil {
		t.Fatal(err)
	}
	if d := diskResult(t, res, "scsi0:0"); d.Method != "full" || !strings.Contains(d.Reason, "verify") || res.CBTMismatch {
		t.Fatalf("verification read: %+v (mismatch %v)", d, res.CBTMismatch)
	}
	v.checkPoint(t, res, want)
	v.noSnapshots(t, vm.UUID)
}

func TestSkippedDisksAndPowerStates(t *testing.T) {
	v := newEnv(t, vcsim.Options{})
	ctx := context.Background()
	vm, err := v.sim.CreateVM(ctx, vcsim.VMSpec{Name: "mixed", GuestID: "otherLinux64Guest", Disks: []vcsim.DiskSpec{
		{Capacity: 8 * mib, Content: strings.NewReader("boot")},
		{Capacity: 8 * mib, Mode: "independent_persistent"},
		{Capacity: 8 * mib, RDM: "physical"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := v.e.BackupVM(ctx, vsphere.BackupRequest{InstanceUUID: vm.UUID})
	if err != nil {
		t.Fatal(err)
	}
	if d := diskResult(t, res, "scsi0:1"); d.Method != "skipped" || !strings.Contains(d.Reason, "independent") {
		t.Fatalf("independent disk: %+v", d)
	}
	if d := diskResult(t, res, "scsi0:2"); d.Method != "skipped" || !strings.Contains(d.Reason, "RDM") {
		t.Fatalf("physical RDM: %+v", d)
	}
	if len(res.Warnings) < 2 {
		t.Fatalf("skipped disks must be visible: %v", res.Warnings)
	}
	p, _ := v.st.Point(res.Point)
	if len(p.Disks) != 1 {
		t.Fatalf("point disks: %+v", p.Disks)
	}

	off, err := v.sim.CreateVM(ctx, vcsim.VMSpec{Name: "off01", GuestID: "otherLinux64Guest", PowerState: "poweredOff",
		Disks: []vcsim.DiskSpec{{Capacity: 8 * mib, Content: strings.NewReader("data")}}})
	if err != nil {
		t.Fatal(err)
	}
	res, err = v.e.BackupVM(ctx, vsphere.BackupRequest{InstanceUUID: off.UUID, Consistency: vsphere.RequireApplication,
		Hooks: vsphere.Hooks{PreFreeze: "/bin/true"}, Guest: &vsphere.GuestCredentials{Username: "root", Password: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Consistency != point.PoweredOff || len(v.sim.GuestCommands(off.UUID)) != 0 {
		t.Fatalf("powered-off VM: %+v, guest commands %v", res, v.sim.GuestCommands(off.UUID))
	}
	v.noSnapshots(t, off.UUID)

	// A suspended VM is backed up too, crash-consistent.
	sus, err := v.sim.CreateVM(ctx, vcsim.VMSpec{Name: "sus01", GuestID: "otherLinux64Guest",
		Disks: []vcsim.DiskSpec{{Capacity: 8 * mib, Content: strings.NewReader("suspended")}}})
	if err != nil {
		t.Fatal(err)
	}
	gc, err := v.sim.NewClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	task, err := object.NewVirtualMachine(gc.Client, sus.Ref).Suspend(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	res, err = v.e.BackupVM(ctx, vsphere.BackupRequest{InstanceUUID: sus.UUID, Consistency: vsphere.RequireApplication})
	if err != nil {
		t.Fatal(err)
	}
	if res.Consistency != point.CrashConsistent || res.VM.PowerState != "suspended" {
		t.Fatalf("suspended VM: %+v", res)
	}
	v.noSnapshots(t, sus.UUID)
}

func TestQuiesceFailureFollowsPolicy(t *testing.T) {
	v := newEnv(t, vcsim.Options{})
	ctx := context.Background()
	vm, err := v.sim.CreateVM(ctx, vcsim.VMSpec{Name: "q01", GuestID: "otherLinux64Guest",
		Disks: []vcsim.DiskSpec{{Capacity: 8 * mib, Content: strings.NewReader("quiesce me")}}})
	if err != nil {
		t.Fatal(err)
	}
	v.sim.FailQuiesce(vm.UUID, 1)
	_, err = v.e.BackupVM(ctx, vsphere.BackupRequest{InstanceUUID: vm.UUID, Consistency: vsphere.RequireApplication})
	if err == nil || !strings.Contains(err.Error(), "requires application consistency") {
		t.Fatalf("required consistency, quiesce failed: %v", err)
	}
	if pts, _ := v.st.Points(); len(pts) != 0 {
		t.Fatalf("a failed backup left %d points", len(pts))
	}
	v.noSnapshots(t, vm.UUID)

	v.sim.FailQuiesce(vm.UUID, 1)
	res, err := v.e.BackupVM(ctx, vsphere.BackupRequest{InstanceUUID: vm.UUID, Consistency: vsphere.PreferApplication})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := v.st.Point(res.Point)
	if res.Consistency != point.CrashConsistent || p.Consistency != point.CrashConsistent || len(res.Warnings) == 0 {
		t.Fatalf("preferred consistency, quiesce failed: %+v", res)
	}
	v.noSnapshots(t, vm.UUID)
}

func TestGuestHooks(t *testing.T) {
	v := newEnv(t, vcsim.Options{})
	ctx := context.Background()
	vm, err := v.sim.CreateVM(ctx, vcsim.VMSpec{Name: "db02", GuestID: "otherLinux64Guest",
		Disks: []vcsim.DiskSpec{{Capacity: 8 * mib, Content: strings.NewReader("database")}}})
	if err != nil {
		t.Fatal(err)
	}
	gu, gp := v.sim.GuestCredentials()
	hooks := vsphere.Hooks{PreFreeze: "pg_backup_start", PostThaw: "pg_backup_stop", PostBackup: "truncate-wal --older-than 1d"}
	res, err := v.e.BackupVM(ctx, vsphere.BackupRequest{InstanceUUID: vm.UUID, Hooks: hooks, Guest: &vsphere.GuestCredentials{Username: gu, Password: gp}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Consistency != point.ApplicationConsistent || res.PostBackup != "ok" {
		t.Fatalf("hooks: %+v", res)
	}
	cmds := v.sim.GuestCommands(vm.UUID)
	var got []string
	for _, c := range cmds {
		got = append(got, c.Arguments)
	}
	if len(got) != 3 || !strings.Contains(got[0], "pg_backup_start") || !strings.Contains(got[1], "pg_backup_stop") || !strings.Contains(got[2], "truncate-wal") {
		t.Fatalf("hook commands in order: %q", got)
	}

	// A failing pre-freeze hook under "required": no point, no snapshot,
	// the guest is thawed, and the post-backup hook never runs.
	v.sim.SetGuestResult(vm.UUID, "pg_backup_start", 3)
	_, err = v.e.BackupVM(ctx, vsphere.BackupRequest{InstanceUUID: vm.UUID, Consistency: vsphere.RequireApplication, Hooks: hooks,
		Guest: &vsphere.GuestCredentials{Username: gu, Password: gp}})
	if err == nil || !strings.Contains(err.Error(), "status 3") {
		t.Fatalf("failing pre-freeze: %v", err)
	}
	for _, c := range v.sim.GuestCommands(vm.UUID)[3:] {
		if strings.Contains(c.Arguments, "truncate-wal") {
			t.Fatal("post-backup hook ran after a failed backup")
		}
	}
	v.noSnapshots(t, vm.UUID)

	// Wrong guest credentials: a clear warning, the backup still happens
	// (crash-consistent under "preferred").
	v.sim.SetGuestResult(vm.UUID, "pg_backup_start", 0)
	res, err = v.e.BackupVM(ctx, vsphere.BackupRequest{InstanceUUID: vm.UUID, Hooks: hooks, Guest: &vsphere.GuestCredentials{Username: gu, Password: "bad"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(res.Warnings, "\n"), "guest login refused") {
		t.Fatalf("wrong guest password: %v", res.Warnings)
	}
}

func TestFaultsLeaveNoSnapshotAndNoHalfPoint(t *testing.T) {
	v := newEnv(t, vcsim.Options{})
	ctx := context.Background()
	data := ext4Image(t, 24*mib, 7, 20)
	vm, err := v.sim.CreateVM(ctx, vcsim.VMSpec{Name: "f01", GuestID: "otherLinux64Guest", ChangeTracking: true,
		Disks: []vcsim.DiskSpec{{Capacity: 24 * mib, Content: bytes.NewReader(data)}}})
	if err != nil {
		t.Fatal(err)
	}
	want := v.diskHashes(t, vm.UUID)

	// RemoveSnapshot fails once: retried, removed.
	v.sim.FailNext("RemoveSnapshot_Task", vm.UUID, 1)
	res, err := v.e.BackupVM(ctx, vsphere.BackupRequest{InstanceUUID: vm.UUID})
	if err != nil || !res.SnapshotRemoved {
		t.Fatalf("remove failing once: %v %+v", err, res)
	}
	v.noSnapshots(t, vm.UUID)
	v.checkPoint(t, res, want)

	// A connection dropped during a read: the read is retried.
	v.sim.DropReads(1, 64<<10)
	f0, _ := v.sim.DiskFile(vm.UUID, vm.Disks[0].Key)
	scribble(t, f0, 24*mib, 20, 5)
	want = v.diskHashes(t, vm.UUID)
	res, err = v.e.BackupVM(ctx, vsphere.BackupRequest{InstanceUUID: vm.UUID})
	if err != nil {
		t.Fatalf("one dropped read: %v", err)
	}
	v.checkPoint(t, res, want)

	// The connection keeps dropping: the job fails cleanly.
	before, _ := v.st.PointIDs()
	scribble(t, f0, 24*mib, 20, 6)
	v.sim.DropReads(100, 1024)
	_, err = v.e.BackupVM(ctx, vsphere.BackupRequest{InstanceUUID: vm.UUID})
	v.sim.DropReads(0, 0)
	if err == nil {
		t.Fatal("backup succeeded although every read dropped")
	}
	after, _ := v.st.PointIDs()
	if len(after) != len(before) {
		t.Fatalf("a failed backup added a point: %v → %v", before, after)
	}
	v.noSnapshots(t, vm.UUID)

	// The session expires in the middle: the engine logs in again.
	want = v.diskHashes(t, vm.UUID)
	expired := false
	res, err = v.e.BackupVM(ctx, vsphere.BackupRequest{InstanceUUID: vm.UUID, Progress: func(vsphere.Progress) {
		if !expired {
			expired = true
			if err := v.sim.ExpireSessions(); err != nil {
				t.Error(err)
			}
		}
	}})
	if err != nil {
		t.Fatalf("session expired mid-backup: %v", err)
	}
	v.checkPoint(t, res, want)
	v.noSnapshots(t, vm.UUID)

	// RemoveSnapshot keeps failing: the backup is kept, the snapshot is
	// reported, and the next sweep removes it.
	v.sim.FailNext("RemoveSnapshot_Task", vm.UUID, 10)
	res, err = v.e.BackupVM(ctx, vsphere.BackupRequest{InstanceUUID: vm.UUID})
	if err != nil || res.SnapshotRemoved || len(v.sim.Snapshots(vm.UUID)) != 1 {
		t.Fatalf("remove failing always: %v %+v %v", err, res, v.sim.Snapshots(vm.UUID))
	}
	v.sim.FailNext("RemoveSnapshot_Task", vm.UUID, 0)
	swept, err := v.e.SweepSnapshots(ctx, "")
	if err != nil || len(swept) != 1 || !swept[0].Removed {
		t.Fatalf("sweep: %v %+v", err, swept)
	}
	v.noSnapshots(t, vm.UUID)

	// A VM that vanished.
	if _, err := v.e.BackupVM(ctx, vsphere.BackupRequest{InstanceUUID: "50000000-0000-0000-0000-000000000000"}); !errors.Is(err, vsphere.ErrVMNotFound) {
		t.Fatalf("missing VM: %v", err)
	}
}

// TestMovedAndRenamedVMKeepsItsHistory: a VM that is renamed and
// migrated to another host is still the same source (instance UUID), so
// its next backup is incremental.
func TestMovedAndRenamedVMKeepsItsHistory(t *testing.T) {
	v := newEnv(t, vcsim.Options{})
	ctx := context.Background()
	vm, err := v.sim.CreateVM(ctx, vcsim.VMSpec{Name: "mover", GuestID: "otherLinux64Guest", ChangeTracking: true, Host: "DC0_C0_H0",
		Tags: []string{"Backup/Gold"}, Disks: []vcsim.DiskSpec{{Capacity: 8 * mib, Content: strings.NewReader("stay with me")}}})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := v.c.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	for _, x := range inv.VMs {
		if x.InstanceUUID == vm.UUID {
			tags = x.Tags
		}
	}
	if len(tags) != 1 || tags[0] != "Backup/Gold" {
		t.Fatalf("tags of the VM: %v (notes %v)", tags, inv.Notes)
	}
	if _, err := v.e.BackupVM(ctx, vsphere.BackupRequest{InstanceUUID: vm.UUID}); err != nil {
		t.Fatal(err)
	}
	gc, err := v.sim.NewClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ovm := object.NewVirtualMachine(gc.Client, vm.Ref)
	task, err := ovm.Rename(ctx, "mover-renamed")
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	host, err := find.NewFinder(gc.Client).HostSystem(ctx, "DC0_C0_H1")
	if err != nil {
		t.Fatal(err)
	}
	hr := host.Reference()
	task, err = ovm.Relocate(ctx, types.VirtualMachineRelocateSpec{Host: &hr}, types.VirtualMachineMovePriorityDefaultPriority)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := v.e.BackupVM(ctx, vsphere.BackupRequest{InstanceUUID: vm.UUID})
	if err != nil {
		t.Fatal(err)
	}
	if res.VM.Name != "mover-renamed" || res.VM.Host != "DC0_C0_H1" {
		t.Fatalf("moved VM: %+v", res.VM)
	}
	if d := diskResult(t, res, "scsi0:0"); d.Method != "incremental" {
		t.Fatalf("after rename and vMotion the backup should stay incremental: %+v", d)
	}
}

// TestDirectHostReads reads through the ESXi host with service tickets
// (the simulator's hosts answer on its own address).
func TestDirectHostReads(t *testing.T) {
	v := newEnv(t, vcsim.Options{})
	ctx := context.Background()
	vm, err := v.sim.CreateVM(ctx, vcsim.VMSpec{Name: "direct01", GuestID: "otherLinux64Guest", ChangeTracking: true,
		Disks: []vcsim.DiskSpec{{Capacity: 16 * mib, Content: bytes.NewReader(ext4Image(t, 16*mib, 11, 10))}}})
	if err != nil {
		t.Fatal(err)
	}
	v.e.Transport = &vsphere.FolderTransport{Client: v.c, Direct: true, HostPort: v.sim.URL().Port()}
	want := v.diskHashes(t, vm.UUID)
	v.sim.ResetReadRequests()
	res, err := v.e.BackupVM(ctx, vsphere.BackupRequest{InstanceUUID: vm.UUID})
	if err != nil {
		t.Fatal(err)
	}
	if v.sim.ReadRequests() == 0 {
		t.Fatal("no datastore reads")
	}
	v.checkPoint(t, res, want)
}
