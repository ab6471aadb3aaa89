package fat

import (
	"bytes"
	"context"
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
)

var _ fsys.Filesystem = (*FS)(nil)
var _ fsys.Checker = (*FS)(nil)

func runTool(t testing.TB, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "TZ=UTC", "LANG=C.UTF-8", "LC_ALL=C.UTF-8")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// mkfs creates an empty FAT image of sizeKB KiB.
func mkfs(t testing.TB, bits, sizeKB int, label string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "fat.img")
	runTool(t, "mkfs.vfat", "-F", fmt.Sprint(bits), "-n", label, "-i", "1234ABCD", "-C", img, fmt.Sprint(sizeKB))
	return img
}

// copyTree copies the host directory's contents into the image's root.
func copyTree(t testing.TB, img, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-s", "-m", "-i", img}
	for _, e := range ents {
		args = append(args, filepath.Join(dir, e.Name()))
	}
	runTool(t, "mcopy", append(args, "::/")...)
}

func TestTree(t *testing.T) {
	tests := []struct {
		bits     int
		sizeKB   int
		files    int
		large    int64
		noSparse bool
	}{
		{bits: 12, sizeKB: 6 << 10, files: 30, large: 256 << 10, noSparse: true},
		{bits: 16, sizeKB: 128 << 10, large: 4 << 20},
		{bits: 32, sizeKB: 128 << 10, large: 4 << 20},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("FAT%d", tc.bits), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "tree")
			tr := fsystest.Make(t, dir, fsystest.Features{WindowsNames: true, LargeSize: tc.large, Files: tc.files}, uint64(tc.bits))
			if tc.noSparse {
				// The 64 MiB sparse file does not fit a small FAT12 volume.
				if err := os.Remove(filepath.Join(dir, "var/lib/db/sparse.img")); err != nil {
					t.Fatal(err)
				}
				delete(tr.Entries, "/var/lib/db/sparse.img")
				mt := tr.Entries["/var/lib/db"].MTime
				if err := os.Chtimes(filepath.Join(dir, "var/lib/db"), mt, mt); err != nil {
					t.Fatal(err)
				}
			}
			// mtools (4.0.32) truncates characters outside the BMP to 16
			// bits in long names (U+1F600 becomes U+F600); surrogate pairs
			// are covered by TestParseDir.
			if e := tr.Entries["/home/user/emoji-😀.txt"]; e != nil {
				delete(tr.Entries, e.Path)
				e.Path = "/home/user/emoji-\uf600.txt"
				tr.Entries[e.Path] = e
			}
			img := mkfs(t, tc.bits, tc.sizeKB, "COFFER")
			copyTree(t, img, dir)
			r, size := fsystest.OpenImage(t, img)
			fs, err := Open(r, size)
			if err != nil {
				t.Fatal(err)
			}
			if fs.Bits() != tc.bits {
				t.Fatalf("FAT type %d, want %d", fs.Bits(), tc.bits)
			}
			if fs.Type() != "vfat" || fs.Label() != "COFFER" || fs.UUID() != "1234-ABCD" {
				t.Errorf("type %q label %q uuid %q", fs.Type(), fs.Label(), fs.UUID())
			}
			start := time.Now()
			n := 0
			if err := fs.Walk(context.Background(), func(e *fsys.Entry) error { n++; return nil }); err != nil {
				t.Fatal(err)
			}
			t.Logf("walk of %d entries: %v", n, time.Since(start))
			fsystest.Compare(t, fs, tr, fsystest.CompareOptions{MTimeSlack: 2 * time.Second})
			findings, err := fs.Check(context.Background())
			if err != nil || len(findings) != 0 {
				t.Errorf("check: %v %v", findings, err)
			}
		})
	}
}

func TestNotRecognized(t *testing.T) {
	ntfsLike := make([]byte, 4096)
	ntfsLike[0] = 0xEB
	copy(ntfsLike[3:], "NTFS    ")
	ntfsLike[11], ntfsLike[12], ntfsLike[13] = 0, 2, 8
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"zeros", make([]byte, 1<<20)},
		{"ntfs", ntfsLike},
		{"text", bytes.Repeat([]byte("hello world "), 1000)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(bytes.NewReader(tc.data), int64(len(tc.data)))
			if !errors.Is(err, fsys.ErrNotRecognized) {
				t.Fatalf("got %v, want ErrNotRecognized", err)
			}
		})
	}
}

// smallImage builds a FAT12 image with a few files and returns its bytes.
func smallImage(t testing.TB) []byte { return smallImageKB(t, 1024) }

func smallImageKB(t testing.TB, sizeKB int) []byte {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(filepath.Join(dir, "Sub Dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"README.TXT":                    "hello\n",
		"a long file name.text":         strings.Repeat("x", 5000),
		"Sub Dir/Ünïcödé name.txt":      "unicode",
		"Sub Dir/lower.txt":             "",
		"Sub Dir/multi-cluster-file.db": strings.Repeat("0123456789abcdef", 1000),
	}
	for p, c := range files {
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := mkfs(t, 12, sizeKB, "SMALL")
	copyTree(t, img, dir)
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSmallImage(t *testing.T) {
	b := smallImage(t)
	fs, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	m, err := fsystest.WalkAll(fs)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/", "/README.TXT", "/a long file name.text", "/Sub Dir", "/Sub Dir/Ünïcödé name.txt",
		"/Sub Dir/lower.txt", "/Sub Dir/multi-cluster-file.db"} {
		if m[p] == nil {
			t.Errorf("missing %s (have %v)", p, keys(m))
		}
	}
	e := m["/Sub Dir/multi-cluster-file.db"]
	f, err := fs.Open(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
	if err != nil || string(got) != strings.Repeat("0123456789abcdef", 1000) {
		t.Fatalf("content mismatch (%v)", err)
	}
	// SkipDir skips a directory's contents.
	var seen []string
	err = fs.Walk(context.Background(), func(e *fsys.Entry) error {
		seen = append(seen, e.Path)
		if e.Path == "/Sub Dir" {
			return fsys.SkipDir
		}
		return nil
	})
	if err != nil || len(seen) != 4 {
		t.Errorf("SkipDir walk: %v %v", seen, err)
	}
	// A cancelled context stops the walk.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := fs.Walk(ctx, func(*fsys.Entry) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled walk: %v", err)
	}
}

func keys(m map[string]*fsys.Entry) []string {
	var s []string
	for k := range m {
		s = append(s, k)
	}
	return s
}

func TestCorruption(t *testing.T) {
	orig := smallImage(t)
	fs0, err := Open(bytes.NewReader(orig), int64(len(orig)))
	if err != nil {
		t.Fatal(err)
	}
	m, err := fsystest.WalkAll(fs0)
	if err != nil {
		t.Fatal(err)
	}
	big := m["/Sub Dir/multi-cluster-file.db"]
	sub := m["/Sub Dir"]
	setFAT := func(b []byte, fatIndex int64, c uint32, v uint32) {
		// FAT12 entry write.
		off := fs0.fatOff + fatIndex*fs0.fatBytes + int64(c) + int64(c)/2
		w := uint32(b[off]) | uint32(b[off+1])<<8
		if c&1 != 0 {
			w = w&0x000F | v<<4
		} else {
			w = w&0xF000 | v&0xFFF
		}
		b[off], b[off+1] = byte(w), byte(w>>8)
	}
	tests := []struct {
		name    string
		damage  func(b []byte) []byte
		openErr bool   // Open must fail
		walkErr bool   // Walk must fail
		fileErr bool   // opening the big file must fail
		finding string // Check must report this
	}{
		{name: "truncated", damage: func(b []byte) []byte { return b[:len(b)/2] }, openErr: true},
		{name: "bad bytes per sector", damage: func(b []byte) []byte { b[11], b[12] = 0, 0; return b }, openErr: true},
		{name: "file chain cycle", damage: func(b []byte) []byte {
			c := uint32(big.Ref)
			for k := int64(0); k < 2; k++ {
				setFAT(b, k, c+1, c)
			}
			return b
		}, fileErr: true},
		{name: "file chain to free", damage: func(b []byte) []byte {
			for k := int64(0); k < 2; k++ {
				setFAT(b, k, uint32(big.Ref), 0)
			}
			return b
		}, fileErr: true},
		{name: "directory chain cycle", damage: func(b []byte) []byte {
			for k := int64(0); k < 2; k++ {
				setFAT(b, k, uint32(sub.Ref), uint32(sub.Ref))
			}
			return b
		}, walkErr: true},
		{name: "FAT copies differ", damage: func(b []byte) []byte {
			setFAT(b, 1, uint32(big.Ref), 0)
			return b
		}, finding: "FAT 2 differs"},
		{name: "directory points to root", damage: func(b []byte) []byte {
			// Make "Sub Dir"'s first cluster point at the data of
			// "README.TXT": not a directory; and a second directory
			// entry at the same cluster forms a cycle via the seen set.
			i := bytes.Index(b[fs0.rootOff:fs0.rootOff+fs0.rootBytes], []byte("SUBDIR~1   "))
			if i < 0 {
				i = bytes.Index(b[fs0.rootOff:fs0.rootOff+fs0.rootBytes], []byte("SUB DIR    "))
			}
			if i < 0 {
				panic("no Sub Dir entry")
			}
			// Point the "." entry of Sub Dir at itself is harmless; instead
			// make a subdirectory of Sub Dir point back at Sub Dir.
			sd := fs0.clusterOff(uint32(sub.Ref))
			// Turn the first real entry (after . and ..) into a directory
			// pointing at Sub Dir's own cluster.
			for off := sd + 64; off < sd+fs0.clusterSize; off += 32 {
				if b[off] != 0 && b[off] != 0xE5 && b[off+11]&0x3F != 0x0F {
					b[off+11] = attrDirectory
					b[off+26], b[off+27] = byte(sub.Ref), byte(sub.Ref>>8)
					break
				}
			}
			return b
		}, walkErr: true},
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
			if tc.walkErr != (err != nil) {
				t.Fatalf("walk error %v, want error %v", err, tc.walkErr)
			}
			if err != nil {
				t.Logf("walk: %v", err)
			}
			_, err = fs.Open(big)
			if tc.fileErr != (err != nil) {
				t.Fatalf("open file error %v, want error %v", err, tc.fileErr)
			}
			if err != nil {
				t.Logf("open file: %v", err)
			}
			findings, err := fs.Check(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if tc.finding != "" && !strings.Contains(strings.Join(findings, "\n"), tc.finding) {
				t.Errorf("findings %q, want %q", findings, tc.finding)
			}
		})
	}
}

func lfnSlot(ord byte, sum byte, chars []uint16) []byte {
	b := make([]byte, 32)
	b[0], b[11], b[13] = ord, attrLongName, sum
	pos := []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30}
	for i, p := range pos {
		c := uint16(0xFFFF)
		if i < len(chars) {
			c = chars[i]
		} else if i == len(chars) {
			c = 0
		}
		b[p], b[p+1] = byte(c), byte(c>>8)
	}
	return b
}

func shortEnt(name string, ntres byte, attr byte) []byte {
	b := make([]byte, 32)
	copy(b, name)
	b[11], b[12] = attr, ntres
	b[24], b[25] = 0x21, 0x58 // 2024-01-01
	return b
}

func TestParseDir(t *testing.T) {
	short := shortEnt("LONGNA~1TXT", 0, 0)
	sum := checksum(short[:11])
	long := []uint16{'l', 'o', 'n', 'g', 'n', 'a', 'm', 'e', '.', 't', 'x', 't'}
	e5 := shortEnt("\x05BC     TXT", 0, 0)
	tests := []struct {
		name string
		raw  [][]byte
		want []string
	}{
		{"long name", [][]byte{lfnSlot(0x41, sum, long), short}, []string{"longname.txt"}},
		{"bad checksum falls back", [][]byte{lfnSlot(0x41, sum+1, long), short}, []string{"LONGNA~1.TXT"}},
		{"missing slot falls back", [][]byte{lfnSlot(0x42, sum, long), short}, []string{"LONGNA~1.TXT"}},
		{"case bits", [][]byte{shortEnt("README  TXT", 0x08, 0), shortEnt("MAKEFILE   ", 0x18, 0), shortEnt("A       B  ", 0x10, 0)},
			[]string{"readme.TXT", "makefile", "A.b"}},
		{"0x05 lead byte", [][]byte{e5}, []string{"σBC.TXT"}},
		{"deleted and dots", [][]byte{shortEnt(".          ", 0, attrDirectory), shortEnt("..         ", 0, attrDirectory),
			shortEnt("\xe5ONE    TXT", 0, 0), shortEnt("TWO     TXT", 0, 0)}, []string{"TWO.TXT"}},
		{"end marker", [][]byte{shortEnt("ONE     TXT", 0, 0), make([]byte, 32), shortEnt("TWO     TXT", 0, 0)}, []string{"ONE.TXT"}},
		{"surrogate pair", [][]byte{lfnSlot(0x41, sum, []uint16{'e', 0xD83D, 0xDE00, '.', 't'}), short}, []string{"e😀.t"}},
		{"two-slot long name", [][]byte{
			lfnSlot(0x42, checksum([]byte("VERYLO~1DAT")), []uint16{'4', '.', 'd', 'a', 't'}),
			lfnSlot(0x01, checksum([]byte("VERYLO~1DAT")), []uint16{'v', 'e', 'r', 'y', '-', 'l', 'o', 'n', 'g', '-', 'n', 'a', 'm'}),
			shortEnt("VERYLO~1DAT", 0, 0)}, []string{"very-long-nam4.dat"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ents, err := parseDir(bytes.Join(tc.raw, nil), false)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range ents {
				got = append(got, e.name)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDosTime(t *testing.T) {
	tests := []struct {
		d, t uint32
		want time.Time
	}{
		{0, 0, time.Time{}},
		{44<<9 | 3<<5 | 14, 15<<11 | 9<<5 | 13, time.Date(2024, 3, 14, 15, 9, 26, 0, time.UTC)},
		{44<<9 | 13<<5 | 14, 0, time.Time{}}, // month 13
	}
	for _, tc := range tests {
		if got := dosTime(tc.d, tc.t); !got.Equal(tc.want) {
			t.Errorf("dosTime(%#x, %#x) = %v, want %v", tc.d, tc.t, got, tc.want)
		}
	}
}

func FuzzOpen(f *testing.F) {
	f.Add(smallImageKB(f, 128))
	f.Fuzz(func(t *testing.T, data []byte) {
		fs, err := Open(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		_, _ = fs.Check(context.Background())
		buf := make([]byte, 4096)
		_ = fs.Walk(context.Background(), func(e *fsys.Entry) error {
			if e.Type != fsys.TypeFile {
				return nil
			}
			f, err := fs.Open(e)
			if err != nil {
				return nil
			}
			_, _ = f.ReadAt(buf, 0)
			return nil
		})
	})
}

func FuzzParseDir(f *testing.F) {
	short := shortEnt("LONGNA~1TXT", 0, 0)
	f.Add(append(lfnSlot(0x41, checksum(short[:11]), []uint16{'a', 'b'}), short...))
	f.Add(shortEnt("README  TXT", 0x08, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = parseDir(data, true)
	})
}
