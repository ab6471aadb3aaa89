package tests

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"coffer.dev/coffer/appliance/vsphere/vcsim"
)

// TestFilesBackIntoVM: a VM whose disk holds GPT + ext4 is backed up with
// `coffer vsphere backup` (catalogued and checked in the same run), then a
// folder of the point is put back into the running VM through guest
// operations with `coffer files restore --to-vm`; an existing file is
// refused without --overwrite.
func TestFilesBackIntoVM(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	makeTree(t, tree, 9, 120)
	disk := makeGPTDisk(t, dir, "app", 128, 16, tree)
	img, err := os.ReadFile(disk.path)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := vcsim.Start(ctx, vcsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	vm, err := sim.CreateVM(ctx, vcsim.VMSpec{Name: "app01", GuestID: "otherLinux64Guest", ChangeTracking: true,
		Disks: []vcsim.DiskSpec{{Capacity: int64(len(img)), Content: bytes.NewReader(img)}}})
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "appliance")
	run(t, cofferBin, "setup", "--state", state)
	user, pass := sim.Credentials()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte(pass+"\n"), 0o600)
	run(t, cofferBin, "vsphere", "add", "--state", state, "--url", sim.URL().String(), "--user", user,
		"--password-file", pw, "--thumbprint", sim.SHA256Thumbprint())
	guser, gpass := sim.GuestCredentials()
	gpw := filepath.Join(dir, "gpw")
	os.WriteFile(gpw, []byte(gpass+"\n"), 0o600)
	run(t, cofferBin, "vsphere", "guest-credentials", "--state", state, "--id", "linux-root", "--user", guser, "--password-file", gpw)

	out := run(t, cofferBin, "vsphere", "backup", "--state", state, "--vm", "app01")
	if !strings.Contains(out, "recoverability: verified") {
		t.Fatalf("backup:\n%s", out)
	}
	out = run(t, cofferBin, "files", "restore", "--state", state, "--vm", "app01", "--point", "latest", "/d02",
		"--to-vm", "app01", "--guest-credentials", "linux-root", "--dest", "/restore/d02")
	if !strings.Contains(out, "put /d02 of point") {
		t.Fatalf("put back:\n%s", out)
	}
	files := 0
	err = filepath.Walk(filepath.Join(tree, "d02"), func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join(tree, "d02"), p)
		got, ok := sim.GuestFile(vm.UUID, "/restore/d02/"+rel)
		want, _ := os.ReadFile(p)
		if !ok || !bytes.Equal(got, want) {
			t.Errorf("%s in the guest: present %v, equal %v", rel, ok, bytes.Equal(got, want))
		}
		files++
		return nil
	})
	if err != nil || files < 5 {
		t.Fatalf("walk: %v, %d files", err, files)
	}
	// The same again without --overwrite: refused, naming a file.
	out, err = execOut(cofferBin, "files", "restore", "--state", state, "--vm", "app01", "--point", "latest", "/d02",
		"--to-vm", "app01", "--guest-credentials", "linux-root", "--dest", "/restore/d02")
	if err == nil || !strings.Contains(out, "/restore/d02/") {
		t.Fatalf("second put back without --overwrite: %v\n%s", err, out)
	}
}
