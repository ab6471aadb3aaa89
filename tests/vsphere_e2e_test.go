package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"coffer.dev/coffer/appliance/vsphere/vcsim"
)

// textDisk generates n bytes of compressible, mostly unique text.
func textDisk(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 42))
	words := []string{"backup", "coffer", "vsphere", "restore", "chunk", "index", "tape", "vault", "disk", "node", "query", "table"}
	var b bytes.Buffer
	b.Grow(n)
	for b.Len() < n {
		fmt.Fprintf(&b, "%08x %s %s %d\n", r.Uint32(), words[r.IntN(len(words))], words[r.IntN(len(words))], r.IntN(1e6))
	}
	return b.Bytes()[:n]
}

// TestVSphereKill9DuringBackup kills the appliance (a `coffer vsphere
// backup` child process) at random moments of a VM backup and checks
// that nothing half-done survives: leftover snapshots are swept, the
// store holds only complete points, verify passes, and the next backup
// restores bit for bit.
func TestVSphereKill9DuringBackup(t *testing.T) {
	ctx := context.Background()
	sim, err := vcsim.Start(ctx, vcsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	const size = 96 << 20
	vm, err := sim.CreateVM(ctx, vcsim.VMSpec{Name: "kill01", GuestID: "otherLinux64Guest", ChangeTracking: true,
		Disks: []vcsim.DiskSpec{{Capacity: size, Content: bytes.NewReader(textDisk(80<<20, 1))}, {Capacity: size, Content: bytes.NewReader(textDisk(64<<20, 2))}}})
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "appliance")
	run(t, cofferBin, "setup", "--state", state)
	user, pass := sim.Credentials()
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, cofferBin, "vsphere", "add", "--state", state, "--url", sim.URL().String(), "--user", user,
		"--password-file", pwFile, "--thumbprint", sim.SHA256Thumbprint())
	if raw, _ := os.ReadFile(filepath.Join(state, "secrets")); bytes.Contains(raw, []byte(pass)) {
		t.Fatal("the vCenter password is stored in the clear")
	}
	inv := run(t, cofferBin, "vsphere", "inventory", "--state", state)
	if !strings.Contains(inv, "kill01") || !strings.Contains(inv, vm.UUID) {
		t.Fatalf("inventory:\n%s", inv)
	}

	r := rand.New(rand.NewPCG(7, 7))
	killedWithSnapshot := 0
	for i := 0; i < 6; i++ {
		cmd := exec.Command(cofferBin, "vsphere", "backup", "--state", state, "--vm", "kill01")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(50+r.IntN(900)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		if len(sim.Snapshots(vm.UUID)) > 0 {
			killedWithSnapshot++
		}
		// Whatever the moment, the store opens and verifies.
		ver := run(t, cofferBin, "store", "verify", "--store", filepath.Join(state, "store"), "--key-file", filepath.Join(state, "store.key"))
		if !strings.Contains(ver, "intact") && !strings.Contains(ver, "no points") {
			t.Fatalf("verify after kill %d:\n%s", i, ver)
		}
	}
	t.Logf("%d of 6 kills left a snapshot behind", killedWithSnapshot)
	sw := run(t, cofferBin, "vsphere", "sweep", "--state", state)
	if len(sim.Snapshots(vm.UUID)) != 0 {
		t.Fatalf("sweep left snapshots: %v\n%s", sim.Snapshots(vm.UUID), sw)
	}

	// The next backup completes and is exact.
	out := run(t, cofferBin, "vsphere", "backup", "--state", state, "--vm", vm.UUID, "--json")
	if !strings.Contains(out, `"snapshot_removed": true`) {
		t.Fatalf("backup after the kills:\n%s", out)
	}
	var br struct {
		Point string `json:"point"`
	}
	if err := json.Unmarshal([]byte(out), &br); err != nil || br.Point == "" {
		t.Fatalf("backup --json: %v\n%s", err, out)
	}
	// The point comes back as an isolated copy with the same disk bytes.
	rout := run(t, cofferBin, "vsphere", "restore", "--state", state, "--point", br.Point, "--name", "kill01-copy", "--isolated", "--json")
	var rr struct {
		InstanceUUID string `json:"instance_uuid"`
	}
	json.Unmarshal([]byte(rout), &rr)
	if rr.InstanceUUID == "" {
		t.Fatalf("restore:\n%s", rout)
	}
	copyDisks, err := sim.Disks(ctx, rr.InstanceUUID)
	if err != nil || len(copyDisks) != len(vm.Disks) {
		t.Fatalf("restored VM disks: %v %v", copyDisks, err)
	}
	for i := range vm.Disks {
		orig, _ := sim.DiskFile(vm.UUID, vm.Disks[i].Key)
		cp, _ := sim.DiskFile(rr.InstanceUUID, copyDisks[i].Key)
		if fileSHA(t, orig) != fileSHA(t, cp) {
			t.Fatalf("disk %d of the restored VM differs from the original", i)
		}
	}
	// Over the original: refused without the VM's name typed, done with it.
	if out, err := exec.Command(cofferBin, "vsphere", "restore", "--state", state, "--point", br.Point, "--over-original", "--confirm", "kill0").CombinedOutput(); err == nil {
		t.Fatalf("restore over the original without the right confirmation succeeded:\n%s", out)
	}
	before, _ := sim.DiskFile(vm.UUID, vm.Disks[1].Key)
	want := fileSHA(t, before)
	scribbleFile(t, before)
	run(t, cofferBin, "vsphere", "restore", "--state", state, "--point", br.Point, "--over-original", "--confirm", "kill01")
	if fileSHA(t, before) != want {
		t.Fatal("restore over the original did not bring the disk back")
	}
	list := run(t, cofferBin, "store", "list", "--store", filepath.Join(state, "store"), "--key-file", filepath.Join(state, "store.key"))
	if !strings.Contains(list, "vm:"+strings.ToLower(vm.UUID)) {
		t.Fatalf("store list:\n%s", list)
	}
	for i, d := range vm.Disks {
		flat, err := sim.DiskFile(vm.UUID, d.Key)
		if err != nil {
			t.Fatal(err)
		}
		restored := filepath.Join(t.TempDir(), "restored.img")
		run(t, cofferBin, "store", "restore-image", "--store", filepath.Join(state, "store"), "--key-file", filepath.Join(state, "store.key"),
			"--point", "latest", "--source", "vm:"+strings.ToLower(vm.UUID), "--disk", fmt.Sprintf("scsi0:%d", i), restored)
		if fileSHA(t, restored) != fileSHA(t, flat) {
			t.Fatalf("disk %d restored from the point differs from the VM's disk", i)
		}
	}
}

// scribbleFile overwrites a few blocks in the first MiB of a file.
func scribbleFile(t *testing.T, p string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(bytes.Repeat([]byte("damaged!"), 8192), 1<<19); err != nil {
		t.Fatal(err)
	}
}
