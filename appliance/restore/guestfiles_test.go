package restore_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"coffer.dev/coffer/appliance/catalog"
	"coffer.dev/coffer/appliance/catalog/fsys"
	"coffer.dev/coffer/appliance/catalog/fsys/fsystest"
	"coffer.dev/coffer/appliance/restore"
	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/appliance/vsphere/vcsim"
	"coffer.dev/coffer/store"
)

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// catalogedPoint makes a GPT disk with an ext4 root holding the shared
// test tree, backs it up into st and catalogs the point.
func catalogedPoint(t *testing.T, st *store.Store) (*catalog.PointFiles, *catalog.Catalog, string, *fsystest.Tree) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	tree := fsystest.Make(t, filepath.Join(dir, "tree"), fsystest.Features{Symlinks: true, HardLinks: true, Sparse: true, UnixModes: true, LargeSize: 1 * mib, Files: 40}, 3)
	img := filepath.Join(dir, "disk.img")
	const size, off = 128 * mib, 1 * mib
	run(t, "truncate", "-s", fmt.Sprint(size), img)
	run(t, "sgdisk", "-n1:2048:0", "-t1:8300", "-c1:root", img)
	run(t, "mke2fs", "-q", "-F", "-t", "ext4", "-d", tree.Dir, "-E", fmt.Sprintf("offset=%d", off), img, fmt.Sprintf("%dk", (size-off-mib)/1024))

	b, err := st.NewBackup(ctx, store.BackupSpec{Source: "vm:files"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := b.AddDisk(ctx, store.DiskSource{Name: "scsi0:0", Size: size, Reader: f}); err != nil {
		t.Fatal(err)
	}
	p, err := b.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Build(ctx, st, p, catalog.DefaultReaders(), catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	vol := ""
	for _, v := range c.Volumes {
		if v.FS == "ext4" {
			vol = v.ID
		}
	}
	if vol == "" {
		t.Fatalf("no ext4 volume catalogued: %+v %v", c.Volumes, c.Problems)
	}
	pf, err := catalog.OpenPoint(ctx, st, p, catalog.DefaultReaders())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pf.Close() })
	return pf, c, vol, tree
}

func TestPutFilesIntoGuest(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	pf, c, vol, tree := catalogedPoint(t, v.st)
	vm, err := v.sim.CreateVM(ctx, vcsim.VMSpec{Name: "web01", GuestID: "otherLinux64Guest"})
	if err != nil {
		t.Fatal(err)
	}
	gu, gp := v.sim.GuestCredentials()
	creds := vsphere.GuestCredentials{Username: gu, Password: gp}
	gf := &vsphere.GuestFiles{Client: v.c}

	// A file that the folder would replace: refused before anything is
	// written, naming the file.
	if err := v.sim.WriteGuestFile(vm.UUID, "/restore/user/Café crème.txt", []byte("old")); err != nil {
		t.Fatal(err)
	}
	before := v.sim.GuestFiles(vm.UUID)
	_, err = restore.PutFiles(ctx, gf, vm.Ref, false, creds, pf, c, vol, "/home/user", "/restore/user", restore.PutOptions{})
	if !errors.Is(err, vsphere.ErrGuestFileExists) || !strings.Contains(err.Error(), "/restore/user/Café crème.txt") {
		t.Fatalf("existing file: %v", err)
	}
	if after := v.sim.GuestFiles(vm.UUID); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatalf("a refused put wrote: %q", after)
	}

	// With overwrite, the whole folder goes in.
	res, err := restore.PutFiles(ctx, gf, vm.Ref, false, creds, pf, c, vol, "/home/user", "/restore/user", restore.PutOptions{Overwrite: true})
	if err != nil {
		t.Fatal(err)
	}
	var files, dirs, links int
	var bytes int64
	for p, e := range tree.Entries {
		if p != "/home/user" && !strings.HasPrefix(p, "/home/user/") {
			continue
		}
		gp := "/restore/user" + strings.TrimPrefix(p, "/home/user")
		switch e.Type {
		case fsys.TypeDir:
			dirs++
			if st, ok := v.sim.GuestFileStat(vm.UUID, gp); !ok || !st.Dir {
				t.Errorf("%s: directory %s missing", p, gp)
			}
		case fsys.TypeFile:
			files++
			bytes += e.Size
			got, ok := v.sim.GuestFile(vm.UUID, gp)
			if !ok {
				t.Errorf("%s: %s missing", p, gp)
				continue
			}
			if sha256.Sum256(got) != e.SHA256 {
				t.Errorf("%s: content differs (%d bytes, want %d)", gp, len(got), e.Size)
			}
			st, _ := v.sim.GuestFileStat(vm.UUID, gp)
			if st.Mode != e.Mode || !st.MTime.Equal(e.MTime) {
				t.Errorf("%s: mode %o mtime %v, want %o %v", gp, st.Mode, st.MTime, e.Mode, e.MTime)
			}
		case fsys.TypeSymlink:
			links++
			if _, ok := v.sim.GuestFileStat(vm.UUID, gp); ok {
				t.Errorf("symlink %s was put", gp)
			}
		}
	}
	if files == 0 || links == 0 {
		t.Fatalf("test tree has %d files and %d links under /home/user", files, links)
	}
	if res.Files != files || res.Dirs != dirs || res.Bytes != bytes || res.Skipped != links || len(res.Notes) != links {
		t.Fatalf("result %+v, want %d files, %d dirs, %d bytes, %d skipped", res, files, dirs, bytes, links)
	}
	if !strings.Contains(strings.Join(res.Notes, "\n"), "symlink /home/user/dangling -> does-not-exist skipped") {
		t.Fatalf("notes %q", res.Notes)
	}
	// Nothing else was written.
	for _, p := range v.sim.GuestFiles(vm.UUID) {
		if !strings.HasPrefix(p, "/restore/") {
			t.Errorf("unexpected guest path %s", p)
		}
	}

	// A single file to its original path (dest ""), parents made.
	res, err = restore.PutFiles(ctx, gf, vm.Ref, false, creds, pf, c, vol, "/etc/nginx/nginx.conf", "", restore.PutOptions{})
	if err != nil || res.Files != 1 || res.Bytes != tree.Entries["/etc/nginx/nginx.conf"].Size {
		t.Fatalf("single file: %+v %v", res, err)
	}
	if got, ok := v.sim.GuestFile(vm.UUID, "/etc/nginx/nginx.conf"); !ok || sha256.Sum256(got) != tree.Entries["/etc/nginx/nginx.conf"].SHA256 {
		t.Fatal("single file content differs")
	}
	// Again without overwrite: refused, naming it.
	_, err = restore.PutFiles(ctx, gf, vm.Ref, false, creds, pf, c, vol, "/etc/nginx/nginx.conf", "", restore.PutOptions{})
	if !errors.Is(err, vsphere.ErrGuestFileExists) || !strings.Contains(err.Error(), "/etc/nginx/nginx.conf") {
		t.Fatalf("single file again: %v", err)
	}

	// Wrong credentials, a missing source, a cancelled context.
	_, err = restore.PutFiles(ctx, gf, vm.Ref, false, vsphere.GuestCredentials{Username: gu, Password: "bad"}, pf, c, vol, "/etc", "/x", restore.PutOptions{})
	if !errors.Is(err, vsphere.ErrGuestLogin) {
		t.Fatalf("wrong credentials: %v", err)
	}
	if _, err := restore.PutFiles(ctx, gf, vm.Ref, false, creds, pf, c, vol, "/no/such", "/x", restore.PutOptions{}); err == nil {
		t.Fatal("missing source accepted")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := restore.PutFiles(cctx, gf, vm.Ref, false, creds, pf, c, vol, "/var", "/cancelled", restore.PutOptions{Overwrite: true}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if _, ok := v.sim.GuestFileStat(vm.UUID, "/cancelled/lib/db/large.bin"); ok {
		t.Fatal("a cancelled put uploaded")
	}
	// A Windows guest needs a destination.
	if _, err := restore.PutFiles(ctx, gf, vm.Ref, true, creds, pf, c, vol, "/etc", "", restore.PutOptions{}); err == nil {
		t.Fatal("Windows put without a destination accepted")
	}
}
