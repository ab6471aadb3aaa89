package ntfs

import (
	"fmt"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"coffer.dev/coffer/appliance/catalog/fsys"
	"coffer.dev/coffer/appliance/catalog/fsys/fsystest"
)

var _ fsys.Filesystem = (*FS)(nil)
var _ fsys.Checker = (*FS)(nil)

func runTool(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// mkntfs creates an empty NTFS image of size bytes.
func mkntfs(t testing.TB, size int64) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "ntfs.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	runTool(t, "mkntfs", "-F", "-Q", "-q", "-L", "CofferNTFS", img)
	return img
}

// fill copies the host tree into the image through the ntfs-3g FUSE
// driver (ntfscp cannot create directories or hard links); the image is
// unmounted before it is read.
func fill(t testing.TB, img, dir string) {
	t.Helper()
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	runTool(t, "ntfs-3g", img, mnt)
	mounted := true
	defer func() {
		if mounted {
			exec.Command("umount", mnt).Run()
		}
	}()
	runTool(t, "cp", "-a", "--sparse=always", dir+"/.", mnt+"/")
	runTool(t, "umount", mnt)
	mounted = false
}

func TestTree(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tree")
	tr := fsystest.Make(t, dir, fsystest.Features{WindowsNames: true, HardLinks: true, Symlinks: true, Sparse: true, LargeSize: 8 << 20}, 7)
	img := mkntfs(t, 256<<20)
	fill(t, img, dir)
	r, size := fsystest.OpenImage(t, img)
	fs, err := Open(r, size)
	if err != nil {
		t.Fatal(err)
	}
	if fs.Type() != "ntfs" || fs.Label() != "CofferNTFS" || len(fs.UUID()) != 16 {
		t.Errorf("type %q label %q uuid %q", fs.Type(), fs.Label(), fs.UUID())
	}
	if out, err := exec.Command("blkid", "-o", "value", "-s", "UUID", img).Output(); err == nil {
		if got := strings.TrimSpace(string(out)); got != "" && got != fs.UUID() {
			t.Errorf("uuid %q, blkid says %q", fs.UUID(), got)
		}
	}
	start := time.Now()
	n := 0
	if err := fs.Walk(context.Background(), func(e *fsys.Entry) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	t.Logf("walk of %d entries: %v", n, time.Since(start))
	fsystest.Compare(t, fs, tr, fsystest.CompareOptions{})
	findings, err := fs.Check(context.Background())
	if err != nil || len(findings) != 0 {
		t.Errorf("check: %v %v", findings, err)
	}
}

func TestLinks(t *testing.T) {
	img := mkntfs(t, 32<<20)
	dir := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "target.txt"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const links = 200 // enough $FILE_NAMEs to need an attribute list
	for i := 1; i < links; i++ {
		d := dir
		if i%2 == 0 {
			d = filepath.Join(dir, "sub")
		}
		if err := os.Link(filepath.Join(dir, "target.txt"), filepath.Join(d, fmt.Sprintf("hl-%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range map[string]string{"rel": "target.txt", "abs": "/abs/path/x", "sub/up": "../target.txt"} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	fill(t, img, dir)
	r, size := fsystest.OpenImage(t, img)
	fs, err := Open(r, size)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]fsys.Entry{}
	if err := fs.Walk(context.Background(), func(e *fsys.Entry) error { got[e.Path] = *e; return nil }); err != nil {
		t.Fatal(err)
	}
	for p, target := range map[string]string{"/rel": "target.txt", "/abs": "/abs/path/x", "/sub/up": "../target.txt"} {
		if e := got[p]; e.Type != fsys.TypeSymlink || e.Target != target || e.Size != int64(len(target)) {
			t.Errorf("%s: %+v, want symlink to %q", p, e, target)
		}
	}
	want := got["/target.txt"]
	if want.Nlink != links {
		t.Errorf("target.txt: nlink %d, want %d", want.Nlink, links)
	}
	for i := 1; i < links; i++ {
		p := fmt.Sprintf("/hl-%03d", i)
		if i%2 == 0 {
			p = fmt.Sprintf("/sub/hl-%03d", i)
		}
		if e, ok := got[p]; !ok || e.Ref != want.Ref || e.Nlink != links || e.Size != 6 {
			t.Errorf("%s: %+v, want a link to record %d", p, e, want.Ref)
		}
	}
	// The record really has an attribute list (200 names do not fit one record).
	rec, err := fs.record(want.Ref)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := fs.readRecordRaw(want.Ref)
	base, _ := fs.parseRecord(want.Ref, b)
	hasList := false
	for _, a := range base.attrs {
		hasList = hasList || a.typ == attrList
	}
	if !hasList || len(rec.attrs) <= len(base.attrs) {
		t.Errorf("record %d: attribute list %v, %d attributes (%d in the base record)", want.Ref, hasList, len(rec.attrs), len(base.attrs))
	}
}
