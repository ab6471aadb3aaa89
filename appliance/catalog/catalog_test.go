package catalog

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"coffer.dev/coffer/appliance/catalog/fsys"
	"coffer.dev/coffer/appliance/catalog/fsys/fsystest"
	"coffer.dev/coffer/store"
	"coffer.dev/coffer/store/crypt"
	"coffer.dev/coffer/store/point"
)

func sh(t testing.TB, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "TZ=UTC")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

const (
	mib     = 1 << 20
	espOff  = 1 * mib
	espSize = 64 * mib
	rootOff = espOff + espSize
)

// makeDisk builds a GPT disk: an EFI system partition (FAT) with a few
// files and an ext4 root holding the shared test tree.
func makeDisk(t testing.TB, dir string, seed uint64) (string, *fsystest.Tree) {
	t.Helper()
	tree := fsystest.Make(t, filepath.Join(dir, fmt.Sprintf("tree%d", seed)), fsystest.Features{Symlinks: true, HardLinks: true, Sparse: true, UnixModes: true, LargeSize: 4 << 20, Files: 120}, seed)
	img := filepath.Join(dir, fmt.Sprintf("disk%d.img", seed))
	const size = 400 * mib
	sh(t, "truncate", "-s", fmt.Sprint(size), img)
	sh(t, "sgdisk", "-n1:2048:+64M", "-t1:ef00", "-c1:EFI system", "-n2:0:0", "-t2:8300", "-c2:root", img)
	rootSize := int64(size - rootOff - mib) // leave the backup GPT alone
	sh(t, "mke2fs", "-q", "-F", "-t", "ext4", "-d", tree.Dir, "-E", fmt.Sprintf("offset=%d", rootOff), img, fmt.Sprintf("%dk", rootSize/1024))
	esp := filepath.Join(dir, fmt.Sprintf("esp%d.img", seed))
	sh(t, "mkfs.vfat", "-F", "16", "-n", "EFI", "-C", esp, fmt.Sprint(espSize/1024))
	boot := filepath.Join(dir, "BOOTX64.EFI")
	if err := os.WriteFile(boot, bytes.Repeat([]byte("MZ-efi-"), 10000), 0o644); err != nil {
		t.Fatal(err)
	}
	sh(t, "mmd", "-i", esp, "::/EFI", "::/EFI/BOOT")
	sh(t, "mcopy", "-i", esp, boot, "::/EFI/BOOT/BOOTX64.EFI")
	sh(t, "dd", "if="+esp, "of="+img, "bs=1M", fmt.Sprintf("seek=%d", espOff/mib), "conv=notrunc,sparse", "status=none")
	return img, tree
}

func newStore(t testing.TB) *store.Store {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	key, err := crypt.NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Init(dir, key, store.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), dir, key, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func backup(t testing.TB, st *store.Store, src string, imgs ...string) *point.RecoveryPoint {
	t.Helper()
	ctx := context.Background()
	b, err := st.NewBackup(ctx, store.BackupSpec{Source: src, Labels: map[string]string{"vm": "web01"}})
	if err != nil {
		t.Fatal(err)
	}
	for i, img := range imgs {
		f, err := os.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		if _, err := b.AddDisk(ctx, store.DiskSource{Name: fmt.Sprintf("scsi0:%d", i), Size: fi.Size(), Reader: f}); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	p, err := b.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBuildSearchRestore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	img, tree := makeDisk(t, dir, 1)
	st := newStore(t)
	p := backup(t, st, "vm:test", img)

	c, err := Build(ctx, st, p, DefaultReaders(), Options{Check: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Problems) > 0 || c.Verdict != Verified {
		t.Fatalf("verdict %s, problems %v, findings %v", c.Verdict, c.Problems, c.Findings)
	}
	if len(c.Volumes) != 2 || c.Volumes[0].FS != "vfat" || c.Volumes[1].FS != "ext4" {
		t.Fatalf("volumes: %+v", c.Volumes)
	}
	root := c.Volumes[1].ID
	// Every file of the tree is catalogued with its size.
	for _, pth := range tree.Paths() {
		want := tree.Entries[pth]
		e, ok := c.Find(root, pth)
		if !ok {
			t.Fatalf("%s not catalogued", pth)
		}
		if e.Type != want.Type || (want.Type == fsys.TypeFile && e.Size != want.Size) {
			t.Fatalf("%s: %s %d, want %s %d", pth, e.Type, e.Size, want.Type, want.Size)
		}
	}

	lib := &Library{Dir: filepath.Join(dir, "catalogs")}
	if err := lib.Save(c); err != nil {
		t.Fatal(err)
	}
	c2, err := lib.Load(p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(c2.Entries) != len(c.Entries) || c2.Verdict != Verified {
		t.Fatalf("reloaded %d entries (%s), had %d", len(c2.Entries), c2.Verdict, len(c.Entries))
	}
	for i := range c.Entries {
		a, b := c.Entries[i], c2.Entries[i]
		if a.Path != b.Path || a.Size != b.Size || !a.MTime.Equal(b.MTime) || a.Ref != b.Ref || a.Target != b.Target || a.Mode != b.Mode {
			t.Fatalf("entry %d: %+v, reloaded %+v", i, a, b)
		}
	}

	// Search: a name, a glob, a path, a relative path, and nothing.
	for _, tc := range []struct {
		pattern string
		want    []string
	}{
		{"nginx.conf", []string{"/etc/nginx/nginx.conf"}},
		{"*.PST", []string{"/home/user/Documents/mail.pst"}},
		{"/etc/nginx/nginx.conf", []string{"/etc/nginx/nginx.conf"}},
		{"nginx/nginx.conf", []string{"/etc/nginx/nginx.conf"}},
		{"отчёт", []string{"/home/user/Документы/отчёт.txt"}},
		{"BOOTX64.EFI", []string{"/EFI/BOOT/BOOTX64.EFI"}},
		{"no-such-file-anywhere", nil},
	} {
		hits, err := lib.Search(ctx, Query{Pattern: tc.pattern})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, h := range hits {
			got = append(got, h.Path)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("search %q: %v, want %v", tc.pattern, got, tc.want)
		}
	}
	if _, err := lib.Search(ctx, Query{Pattern: "[bad"}); err == nil {
		t.Error("a bad glob was accepted")
	}

	// Listing a directory.
	ls, err := c.List(root, "/etc/nginx")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, fi := range ls {
		names[fi.Path] = true
	}
	if !names["/etc/nginx/nginx.conf"] || !names["/etc/nginx/sites-enabled"] {
		t.Fatalf("ls /etc/nginx: %v", ls)
	}
	if _, err := c.List("", "/"); err == nil {
		t.Error("ambiguous volume accepted")
	}

	// Restore: one file, a folder as tar and as zip.
	pf, err := OpenPoint(ctx, st, p, DefaultReaders())
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	e, _ := c.Find(root, "/var/lib/db/sparse.img")
	f, err := pf.Open(c, e)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, f.Size())); err != nil {
		t.Fatal(err)
	}
	if [32]byte(h.Sum(nil)) != tree.Entries["/var/lib/db/sparse.img"].SHA256 {
		t.Fatal("restored sparse file differs")
	}

	var tb bytes.Buffer
	stt, err := pf.WriteTar(ctx, &tb, c, root, "/var/lib/db")
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&tb)
	seen := 0
	for {
		hd, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pth := "/var/lib/" + hd.Name
		want := tree.Entries[strings.TrimSuffix(pth, "/")]
		if want == nil {
			t.Fatalf("tar holds %s", hd.Name)
		}
		if hd.Typeflag == tar.TypeReg {
			sum := sha256.New()
			io.Copy(sum, tr)
			if [32]byte(sum.Sum(nil)) != want.SHA256 {
				t.Fatalf("tar: %s differs", hd.Name)
			}
			seen++
		}
		if hd.Typeflag == tar.TypeLink && !strings.HasPrefix(hd.Linkname, "db/linked-") {
			t.Fatalf("tar: hard link %s -> %s", hd.Name, hd.Linkname)
		}
	}
	if seen == 0 || stt.Links != 1 {
		t.Fatalf("tar: %d files, stats %+v", seen, stt)
	}
	var zb bytes.Buffer
	if _, err := pf.WriteZip(ctx, &zb, c, root, "/home/user"); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(zb.Bytes()), int64(zb.Len()))
	if err != nil {
		t.Fatal(err)
	}
	zfiles := 0
	for _, zf := range zr.File {
		want := tree.Entries["/home/"+strings.TrimSuffix(zf.Name, "/")]
		if want == nil {
			t.Fatalf("zip holds %s", zf.Name)
		}
		if want.Type == fsys.TypeFile {
			rc, err := zf.Open()
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.New()
			io.Copy(sum, rc)
			rc.Close()
			if [32]byte(sum.Sum(nil)) != want.SHA256 {
				t.Fatalf("zip: %s differs", zf.Name)
			}
			zfiles++
		}
	}
	if zfiles < 5 {
		t.Fatalf("zip: %d files", zfiles)
	}

	// A second point with a changed file: versions across points.
	p2 := backup(t, st, "vm:test", img) // same content
	c3, err := Build(ctx, st, p2, DefaultReaders(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := lib.Save(c3); err != nil {
		t.Fatal(err)
	}
	vs, err := lib.Versions(ctx, "vm:test", root, "/etc/nginx/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || !vs[0].Changed || vs[1].Changed {
		t.Fatalf("versions: %+v", vs)
	}
	if n, err := lib.Prune(func(id point.ID) bool { return id == p2.ID }); err != nil || n != 1 {
		t.Fatalf("prune: %d, %v", n, err)
	}
	if _, err := lib.Load(p.ID); !errors.Is(err, ErrNoCatalog) {
		t.Fatalf("pruned catalog: %v", err)
	}
}

// TestDamagedDisks: a corrupt superblock and a destroyed partition table
// give "cannot catalog disk" problems and a failed verdict; the point and
// the other disk stay catalogued.
func TestDamagedDisks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	img, _ := makeDisk(t, dir, 2)
	bad := filepath.Join(dir, "bad-sb.img")
	sh(t, "cp", "--sparse=always", img, bad)
	// Zero the ext4 superblock (1024 bytes at offset 1024 of the partition).
	fh, err := os.OpenFile(bad, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteAt(make([]byte, 1024), rootOff+1024); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	// A disk whose partition table is cut off: the first 34 sectors of a
	// GPT disk and nothing else.
	trunc := filepath.Join(dir, "trunc.img")
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(trunc, data[:34*512-100], 0o644); err != nil {
		t.Fatal(err)
	}
	st := newStore(t)
	p := backup(t, st, "vm:damaged", img, bad, trunc)
	c, err := Build(ctx, st, p, DefaultReaders(), Options{Check: true})
	if err != nil {
		t.Fatal(err)
	}
	if c.Verdict != Failed {
		t.Fatalf("verdict %s", c.Verdict)
	}
	joined := strings.Join(c.Problems, "\n")
	t.Logf("problems:\n%s", joined)
	if !strings.Contains(joined, "cannot catalog disk scsi0:1: ") {
		t.Errorf("no problem for the corrupt superblock: %s", joined)
	}
	if !strings.Contains(joined, "cannot catalog disk scsi0:2: its partition table cannot be read") {
		t.Errorf("no problem for the truncated disk: %s", joined)
	}
	if strings.Contains(joined, "scsi0:0") {
		t.Errorf("the good disk has problems: %s", joined)
	}
	good := 0
	for _, v := range c.Volumes {
		if v.Disk == "scsi0:0" && v.FS != "" && v.Entries > 0 {
			good++
		}
	}
	if good != 2 {
		t.Fatalf("good disk: %d catalogued volumes, %+v", good, c.Volumes)
	}
}

func TestDecodeDamaged(t *testing.T) {
	dir := t.TempDir()
	c := &Catalog{Header: Header{Point: point.NewID(timeZero()), Volumes: []VolumeInfo{{ID: "d/p1", FS: "ext4"}}}}
	for i := 0; i < 100; i++ {
		c.Entries = append(c.Entries, Entry{Entry: fsys.Entry{Path: fmt.Sprintf("/dir/file%03d", i), Type: fsys.TypeFile, Size: int64(i)}})
	}
	p := filepath.Join(dir, "c.cat")
	if err := c.WriteFile(p); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	for _, cut := range []int{0, 5, 12, 40, len(data) - 1} {
		if _, err := Decode(data[:cut]); !errors.Is(err, ErrCorrupt) {
			t.Errorf("cut at %d: %v", cut, err)
		}
	}
	flipped := bytes.Clone(data)
	flipped[len(flipped)-3] ^= 0xff
	if _, err := Decode(flipped); !errors.Is(err, ErrCorrupt) {
		t.Errorf("flipped body: %v", err)
	}
	if got, err := Decode(data); err != nil || len(got.Entries) != 100 || got.Entries[99].Path != "/dir/file099" {
		t.Fatalf("decode: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	c := &Catalog{Header: Header{Point: point.NewID(timeZero()), Volumes: []VolumeInfo{{ID: "d/p1"}}}}
	c.Entries = []Entry{{Entry: fsys.Entry{Path: "/", Type: fsys.TypeDir}}, {Entry: fsys.Entry{Path: "/a", Type: fsys.TypeSymlink, Target: "b"}}}
	p := filepath.Join(f.TempDir(), "c.cat")
	if err := c.WriteFile(p); err != nil {
		f.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	f.Add(data)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Decode(b)
	})
}

func timeZero() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

// TestMBRWithXFSAndNTFS: an MBR disk with an XFS and an NTFS partition
// (mkfs.xfs -p protofile, mkntfs + ntfscp; nothing mounted) is catalogued
// with the right reader for each, and a file of each reads back.
func TestMBRWithXFSAndNTFS(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	conf := bytes.Repeat([]byte("listen 443;\n"), 500)
	report := bytes.Repeat([]byte("quarterly figures\r\n"), 4000)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.docx"), report, 0o644); err != nil {
		t.Fatal(err)
	}
	proto := filepath.Join(dir, "proto")
	if err := os.WriteFile(proto, []byte("/dummy\n0 0\nd--755 0 0\netc d--755 0 0\nnginx.conf ---644 0 0 "+filepath.Join(dir, "nginx.conf")+"\n$\n$\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	xfsImg, ntfsImg := filepath.Join(dir, "xfs.img"), filepath.Join(dir, "ntfs.img")
	sh(t, "truncate", "-s", "320M", xfsImg)
	sh(t, "mkfs.xfs", "-q", "-f", "-p", proto, xfsImg)
	sh(t, "truncate", "-s", "64M", ntfsImg)
	sh(t, "mkntfs", "-F", "-Q", "-q", "-L", "DATA", ntfsImg)
	sh(t, "ntfscp", "-f", "-q", ntfsImg, filepath.Join(dir, "report.docx"), "report.docx")

	img := filepath.Join(dir, "mbr.img")
	sh(t, "truncate", "-s", "400M", img)
	layout := "label: dos\nstart=2048, size=655360, type=83\nstart=657408, size=131072, type=7\n"
	cmd := exec.Command("sfdisk", "-q", img)
	cmd.Stdin = strings.NewReader(layout)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	sh(t, "dd", "if="+xfsImg, "of="+img, "bs=512", "seek=2048", "conv=notrunc,sparse", "status=none")
	sh(t, "dd", "if="+ntfsImg, "of="+img, "bs=512", "seek=657408", "conv=notrunc,sparse", "status=none")

	st := newStore(t)
	p := backup(t, st, "vm:win", img)
	c, err := Build(ctx, st, p, DefaultReaders(), Options{Check: true})
	if err != nil {
		t.Fatal(err)
	}
	if c.Verdict != Verified || len(c.Volumes) != 2 || c.Volumes[0].FS != "xfs" || c.Volumes[1].FS != "ntfs" || c.Volumes[1].Label != "DATA" {
		t.Fatalf("verdict %s, volumes %+v, findings %v", c.Verdict, c.Volumes, c.Findings)
	}
	pf, err := OpenPoint(ctx, st, p, DefaultReaders())
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	for _, tc := range []struct {
		vol, path string
		want      []byte
	}{{c.Volumes[0].ID, "/etc/nginx.conf", conf}, {c.Volumes[1].ID, "/report.docx", report}} {
		e, ok := c.Find(tc.vol, tc.path)
		if !ok {
			t.Fatalf("%s not catalogued on %s", tc.path, tc.vol)
		}
		f, err := pf.Open(c, e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Fatalf("%s: %v, equal %v", tc.path, err, bytes.Equal(got, tc.want))
		}
	}
}

// TestSaveFailureKeepsOld: a save that cannot complete (as on a full or
// failing disk) returns an error
// and leaves the previous catalog of the point readable (the directory
// path runs through a file, which fails for root too); the leftovers of
// an interrupted save are swept by Prune.
func TestSaveFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	lib := &Library{Dir: filepath.Join(dir, "cat")}
	c := &Catalog{Header: Header{Point: point.NewID(timeZero()), Volumes: []VolumeInfo{{ID: "d/p1", FS: "ext4"}}},
		Entries: []Entry{{Entry: fsys.Entry{Path: "/", Type: fsys.TypeDir}}}}
	if err := lib.Save(c); err != nil {
		t.Fatal(err)
	}
	bad := &Library{Dir: filepath.Join(dir, "cat", string(c.Point)+".cat", "sub")} // below a file
	if err := bad.Save(c); err == nil {
		t.Fatal("save below a file succeeded")
	}
	if got, err := lib.Load(c.Point); err != nil || len(got.Entries) != 1 {
		t.Fatalf("the earlier catalog after a failed save: %v", err)
	}
	stale := filepath.Join(lib.Dir, ".catalog-123")
	if err := os.WriteFile(stale, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(stale, old, old)
	if _, err := lib.Prune(func(point.ID) bool { return true }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("leftover of an interrupted save not swept: %v", err)
	}
}
