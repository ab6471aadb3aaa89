package ntfs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
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
	// The sparse file really has holes on disk.
	var sparse *fsys.Entry
	_ = fs.Walk(context.Background(), func(e *fsys.Entry) error {
		if e.Path == "/var/lib/db/sparse.img" {
			c := *e
			sparse = &c
		}
		return nil
	})
	f, err := fs.Open(sparse)
	if err != nil {
		t.Fatal(err)
	}
	holes := 0
	for _, r := range f.(*stream).runs {
		if r.lcn < 0 {
			holes++
		}
	}
	if holes == 0 {
		t.Errorf("sparse.img has no sparse runs: %v", f.(*stream).runs)
	}
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
	// SkipDir skips a directory's contents; a cancelled context stops
	// the walk.
	var seen []string
	err = fs.Walk(context.Background(), func(e *fsys.Entry) error {
		seen = append(seen, e.Path)
		if e.Path == "/sub" {
			return fsys.SkipDir
		}
		return nil
	})
	for _, p := range seen {
		if strings.HasPrefix(p, "/sub/") || err != nil {
			t.Fatalf("SkipDir walk visited %s (%v)", p, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := fs.Walk(ctx, func(*fsys.Entry) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled walk: %v", err)
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

// smallImage builds a 4 MiB NTFS image with a few files, a directory
// large enough for an index allocation and a sparse file.
func smallImage(t testing.TB, sizeMB int64) []byte {
	t.Helper()
	img := mkntfs(t, sizeMB<<20)
	dir := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(filepath.Join(dir, "many"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, p), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("small.txt", []byte("resident data\n"))
	write("big.bin", bytes.Repeat([]byte("0123456789abcdef"), 8192))
	for i := 0; i < 60; i++ {
		write(fmt.Sprintf("many/a-long-file-name-to-fill-the-index-%03d.txt", i), []byte{byte(i)})
	}
	fill(t, img, dir)
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNotRecognized(t *testing.T) {
	fat := make([]byte, 4096)
	fat[0], fat[1], fat[2] = 0xEB, 0x3C, 0x90
	copy(fat[3:], "mkfs.fat")
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"zeros", make([]byte, 1<<20)},
		{"fat", fat},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Open(bytes.NewReader(tc.data), int64(len(tc.data))); !errors.Is(err, fsys.ErrNotRecognized) {
				t.Fatalf("got %v, want ErrNotRecognized", err)
			}
		})
	}
}

func TestCorruption(t *testing.T) {
	orig := smallImage(t, 4)
	fs0, err := Open(bytes.NewReader(orig), int64(len(orig)))
	if err != nil {
		t.Fatal(err)
	}
	m, err := fsystest.WalkAll(fs0)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/small.txt", "/big.bin", "/many", "/many/a-long-file-name-to-fill-the-index-059.txt"} {
		if m[p] == nil {
			t.Fatalf("missing %s", p)
		}
	}
	// recOff is the image offset of an MFT record (the $MFT of a fresh
	// small volume is one run).
	recOff := func(ref uint64) int64 {
		r := fs0.mft.runs[0]
		if int64(ref+1)*fs0.recordSize > r.n*fs0.clusterSize {
			t.Fatalf("record %d outside the first $MFT run", ref)
		}
		return r.lcn*fs0.clusterSize + int64(ref)*fs0.recordSize
	}
	// dataAttrOff finds the $DATA attribute header of a record.
	dataAttrOff := func(b []byte, ref uint64) int64 {
		o := recOff(ref)
		off := int64(le16(b[o+20:]))
		for off < fs0.recordSize {
			typ := le32(b[o+off:])
			if typ == attrData {
				return o + off
			}
			if typ == attrEnd {
				break
			}
			off += int64(le32(b[o+off+4:]))
		}
		t.Fatalf("record %d has no $DATA", ref)
		return 0
	}
	manyRec, err := fs0.record(m["/many"].Ref)
	if err != nil {
		t.Fatal(err)
	}
	alloc, err := fs0.dataStream(manyRec.attrs, attrIndexAlloc, "$I30")
	if err != nil {
		t.Fatalf("/many has no index allocation: %v", err)
	}
	tests := []struct {
		name     string
		damage   func(b []byte) []byte
		openErr  bool
		walkErr  string // substring of the walk error
		fileErr  string // substring of the error opening /big.bin
		findings string
	}{
		{name: "truncated", damage: func(b []byte) []byte { return b[:len(b)/2] }, openErr: true},
		{name: "boot sector zeroed", damage: func(b []byte) []byte { clear(b[:512]); return b }, openErr: true},
		{name: "$MFT record damaged", damage: func(b []byte) []byte { copy(b[recOff(0):], "XXXX"); return b }, openErr: true},
		{name: "file record torn", damage: func(b []byte) []byte {
			b[recOff(m["/small.txt"].Ref)+510] ^= 0xFF
			return b
		}, walkErr: "/small.txt"},
		{name: "index block damaged", damage: func(b []byte) []byte {
			copy(b[alloc.runs[0].lcn*fs0.clusterSize:], "XXXX")
			return b
		}, walkErr: "/many"},
		{name: "compressed file", damage: func(b []byte) []byte {
			o := dataAttrOff(b, m["/big.bin"].Ref)
			b[o+12] |= flagCompressed
			return b
		}, fileErr: "compressed"},
		{name: "backup boot sector differs", damage: func(b []byte) []byte {
			b[len(b)-512+3] ^= 0xFF
			return b
		}, findings: "backup boot sector differs"},
		{name: "mirror differs", damage: func(b []byte) []byte {
			b[fs0.mirrLCN*fs0.clusterSize+100] ^= 0xFF
			return b
		}, findings: "$MFTMirr record 0 differs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.damage(append([]byte(nil), orig...))
			fs, err := Open(bytes.NewReader(b), int64(len(b)))
			if tc.openErr {
				if err == nil {
					t.Fatal("Open succeeded on a damaged image")
				}
				t.Logf("open: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = fsystest.WalkAll(fs)
			if (tc.walkErr != "") != (err != nil) || (err != nil && !strings.Contains(err.Error(), tc.walkErr)) {
				t.Fatalf("walk error %v, want %q", err, tc.walkErr)
			}
			_, err = fs.Open(m["/big.bin"])
			if (tc.fileErr != "") != (err != nil) || (err != nil && !strings.Contains(err.Error(), tc.fileErr)) {
				t.Fatalf("open error %v, want %q", err, tc.fileErr)
			}
			findings, err := fs.Check(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(findings, "\n"); (tc.findings == "") != (got == "") || !strings.Contains(got, tc.findings) {
				t.Errorf("findings %q, want %q", findings, tc.findings)
			}
		})
	}
}

func TestParseRuns(t *testing.T) {
	tests := []struct {
		name string
		raw  []byte
		want []extent
		err  bool
	}{
		{"one run", []byte{0x21, 0x10, 0x00, 0x01, 0}, []extent{{0, 16, 256}}, false},
		{"negative delta", []byte{0x21, 0x08, 0x00, 0x01, 0x11, 0x04, 0xF0, 0}, []extent{{0, 8, 256}, {8, 4, 240}}, false},
		{"sparse", []byte{0x11, 0x02, 0x05, 0x01, 0x10, 0x11, 0x02, 0x01, 0}, []extent{{0, 2, 5}, {2, 16, -1}, {18, 2, 6}}, false},
		{"truncated", []byte{0x31, 0x10}, nil, true},
		{"zero length", []byte{0x11, 0x00, 0x05, 0}, nil, true},
		{"before volume", []byte{0x11, 0x01, 0xF0, 0}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseRuns(tc.raw, 0)
			if tc.err != (err != nil) {
				t.Fatalf("err %v, want error %v", err, tc.err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) && !tc.err {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func utf16le(s string) []byte {
	var b []byte
	for _, r := range s {
		b = append(b, byte(r), byte(r>>8))
	}
	return b
}

func TestParseReparse(t *testing.T) {
	symlink := func(tag uint32, hdr int, subst, print string) []byte {
		b := make([]byte, hdr)
		binary.LittleEndian.PutUint32(b, tag)
		s, p := utf16le(subst), utf16le(print)
		binary.LittleEndian.PutUint16(b[8:], 0)
		binary.LittleEndian.PutUint16(b[10:], uint16(len(s)))
		binary.LittleEndian.PutUint16(b[12:], uint16(len(s)))
		binary.LittleEndian.PutUint16(b[14:], uint16(len(p)))
		return append(append(b, s...), p...)
	}
	tests := []struct {
		name   string
		raw    []byte
		target string
		ok     bool
	}{
		{"windows symlink", symlink(0xA000000C, 20, `\??\C:\target`, `C:\target`), `C:\target`, true},
		{"relative symlink", symlink(0xA000000C, 20, `..\x`, ""), `..\x`, true},
		{"junction", symlink(0xA0000003, 16, `\??\D:\j`, `D:\j`), `D:\j`, true},
		{"other tag", symlink(0x80000017, 20, "a", "b"), "", false},
		{"short", []byte{0x0C, 0, 0, 0xA0}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target, ok := parseReparse(tc.raw)
			if target != tc.target || ok != tc.ok {
				t.Errorf("got %q %v, want %q %v", target, ok, tc.target, tc.ok)
			}
		})
	}
}

func TestFiletime(t *testing.T) {
	if got := filetime(0); !got.IsZero() {
		t.Errorf("filetime(0) = %v", got)
	}
	want := time.Date(2024, 3, 14, 15, 9, 26, 500, time.UTC)
	v := uint64(want.Unix()+11644473600)*1e7 + 5
	if got := filetime(v); !got.Equal(want) {
		t.Errorf("filetime = %v, want %v", got, want)
	}
}

// fuzzImage builds a 2 MiB image with a few files copied in by ntfscp
// (no FUSE mount, so fuzz workers start quickly).
func fuzzImage(t testing.TB) []byte {
	t.Helper()
	img := mkntfs(t, 2<<20)
	src := filepath.Join(t.TempDir(), "src")
	for i, data := range [][]byte{[]byte("small\n"), bytes.Repeat([]byte("0123456789abcdef"), 2048)} {
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		runTool(t, "ntfscp", "-f", "-q", img, src, fmt.Sprintf("file-%d.txt", i))
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzOpen overlays the fuzz input on the $MFT of a small image and
// walks and reads it.
func FuzzOpen(f *testing.F) {
	base := fuzzImage(f)
	fs, err := Open(bytes.NewReader(base), int64(len(base)))
	if err != nil {
		f.Fatal(err)
	}
	mftOff := fs.mftLCN * fs.clusterSize
	// Records 0..7 ($MFT, $MFTMirr, $Volume, the root directory, ...)
	// and the first user records.
	f.Add(append([]byte(nil), base[mftOff:mftOff+8<<10]...))
	f.Add(append([]byte(nil), base[mftOff+24<<10:mftOff+32<<10]...))
	img := make([]byte, len(base))
	f.Fuzz(func(t *testing.T, mft []byte) {
		copy(img, base)
		// The first byte chooses where the overlay goes: record 0 or
		// record 24.
		off := mftOff
		if len(mft) >= 4 && mft[0]&1 != 0 && string(mft[:4]) != "FILE" {
			off += 24 << 10
			mft = mft[1:]
		}
		copy(img[off:], mft[:min(len(mft), 64<<10)])
		fs, err := Open(bytes.NewReader(img), int64(len(img)))
		if err != nil {
			return
		}
		_, _ = fs.Check(context.Background())
		buf := make([]byte, 8192)
		_ = fs.Walk(context.Background(), func(e *fsys.Entry) error {
			if e.Type == fsys.TypeFile {
				if f, err := fs.Open(e); err == nil {
					_, _ = f.ReadAt(buf, 0)
				}
			}
			return nil
		})
	})
}

// FuzzRecord parses one MFT record and one index block.
func FuzzRecord(f *testing.F) {
	base := fuzzImage(f)
	fs, err := Open(bytes.NewReader(base), int64(len(base)))
	if err != nil {
		f.Fatal(err)
	}
	for _, n := range []uint64{0, 5, 24} {
		b, err := fs.readRecordRaw(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		b = append([]byte(nil), b...)
		if rec, err := fs.parseRecord(99, append([]byte(nil), b...)); err == nil {
			_, _ = fs.dirIndex(context.Background(), rec)
		}
		if len(b) >= 24 && fixup(b, "INDX") == nil {
			w := &indexWalker{fs: fs, ctx: context.Background(), blockSize: 4096, vcnSize: 4096, seen: map[int64]bool{}}
			_ = w.node(b[24:], 0)
		}
	})
}
