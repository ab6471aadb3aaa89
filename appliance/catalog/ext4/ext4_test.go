package ext4

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"coffer.dev/coffer/appliance/catalog/fsys"
	"coffer.dev/coffer/appliance/catalog/fsys/fsystest"
)

// mkfs builds an ext image of size from tree with mke2fs.
func mkfs(t testing.TB, img, tree, size string, args ...string) {
	t.Helper()
	all := append([]string{"-q", "-F", "-E", "lazy_itable_init=0"}, args...)
	if tree != "" {
		all = append(all, "-d", tree)
	}
	all = append(all, img, size)
	cmd := exec.Command("mke2fs", all...)
	cmd.Env = append(os.Environ(), "E2FSPROGS_FAKE_TIME=1700000000")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mke2fs %v: %v\n%s", all, err, out)
	}
}

// dumpe2fsField reads one field of `dumpe2fs -h`.
func dumpe2fsField(t testing.TB, img, field string) string {
	t.Helper()
	out, err := exec.Command("dumpe2fs", "-h", img).Output()
	if err != nil {
		t.Fatalf("dumpe2fs %s: %v", img, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == field {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func isLostFound(p string) bool { return p == "/lost+found" }

// countingReader counts ReadAt calls, as the deduplicating store would.
type countingReader struct {
	r interface {
		ReadAt([]byte, int64) (int, error)
	}
	n atomic.Int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.n.Add(1)
	return c.r.ReadAt(p, off)
}

func TestCompare(t *testing.T) {
	base := t.TempDir()
	tree := filepath.Join(base, "tree")
	tr := fsystest.Make(t, tree, fsystest.Features{Symlinks: true, HardLinks: true, Sparse: true, UnixModes: true}, 42)
	// High uid/gid bits survive mke2fs -d.
	owned := filepath.Join(tree, "etc/nginx/nginx.conf")
	if err := os.Lchown(owned, 70000, 80001); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		args  []string
		index bool // e2fsck -D afterwards: htree directories
	}{
		{"ext4", []string{"-t", "ext4", "-L", "rootfs"}, false},
		{"ext2", []string{"-t", "ext2"}, false},
		{"ext3", []string{"-t", "ext3"}, false},
		{"ext4-nocsum-32bit", []string{"-t", "ext4", "-O", "^metadata_csum,^64bit"}, false},
		{"ext4-gdtcsum", []string{"-t", "ext4", "-O", "^metadata_csum,uninit_bg"}, false},
		{"ext4-1k", []string{"-t", "ext4", "-b", "1024"}, false},
		{"ext4-inline", []string{"-t", "ext4", "-O", "inline_data", "-I", "512"}, false},
		{"ext4-metabg", []string{"-t", "ext4", "-O", "meta_bg,^resize_inode"}, false},
		{"ext4-htree", []string{"-t", "ext4"}, true},
		{"ext4-128-byte-inodes", []string{"-t", "ext4", "-I", "128"}, false},
		{"ext3-htree", []string{"-t", "ext3", "-b", "1024"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			img := filepath.Join(base, c.name+".img")
			mkfs(t, img, tree, "256M", c.args...)
			defer os.Remove(img)
			if c.index {
				out, err := exec.Command("e2fsck", "-fyD", img).CombinedOutput()
				if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() > 1) {
					t.Fatalf("e2fsck -D: %v\n%s", err, out)
				}
				out, err = exec.Command("debugfs", "-R", "htree /usr/share/many", img).CombinedOutput()
				if err != nil || !strings.Contains(string(out), "Root node dump") {
					t.Fatalf("/usr/share/many is not an htree directory: %v\n%s", err, out)
				}
			}
			r, size := fsystest.OpenImage(t, img)
			cr := &countingReader{r: r}
			fs, err := Open(cr, size)
			if err != nil {
				t.Fatal(err)
			}
			if fs.Type() != "ext4" {
				t.Errorf("type %q", fs.Type())
			}
			if want := dumpe2fsField(t, img, "Filesystem UUID"); fs.UUID() != want {
				t.Errorf("uuid %q, want %q", fs.UUID(), want)
			}
			if want := dumpe2fsField(t, img, "Filesystem volume name"); want != "<none>" && fs.Label() != want {
				t.Errorf("label %q, want %q", fs.Label(), want)
			}
			findings, err := fs.Check(context.Background())
			if err != nil || len(findings) != 0 {
				t.Errorf("check: %v %q", err, findings)
			}
			start := time.Now()
			fsystest.Compare(t, fs, tr, fsystest.CompareOptions{Extra: isLostFound})
			t.Logf("%s: compare in %v, %d reads", c.name, time.Since(start), cr.n.Load())

			var got *fsys.Entry
			err = fs.Walk(context.Background(), func(e *fsys.Entry) error {
				if e.Path == "/etc/nginx/nginx.conf" {
					c := *e
					got = &c
				}
				return nil
			})
			if err != nil || got == nil {
				t.Fatalf("walk: %v, found %v", err, got != nil)
			}
			if got.UID != 70000 || got.GID != 80001 {
				t.Errorf("uid/gid %d/%d, want 70000/80001", got.UID, got.GID)
			}
		})
	}
}

// TestDebugfsFeatures covers what mke2fs -d does not write: a file with an
// uninitialized extent, an inline-data file written by debugfs, nanosecond
// times and dates past 2038.
func TestDebugfsFeatures(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "x.img")
	mkfs(t, img, "", "64M", "-t", "ext4", "-O", "inline_data")
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte("hello inline world\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src2 := filepath.Join(dir, "src2")
	if err := os.WriteFile(src2, []byte(strings.Repeat("x", 4096)), 0o644); err != nil {
		t.Fatal(err)
	}
	script := strings.Join([]string{
		"write " + src + " small",
		"write " + src2 + " prealloc",
		"fallocate /prealloc 1 9",
		"sif /prealloc size 40960",
		"set_inode_field /small mtime 20410102030405",
		"set_inode_field /small mtime_extra 0x1dcd6501", // 125000000 ns << 2 | epoch 1
		"mkdir d",
		"symlink d/l /small",
	}, "\n") + "\n"
	cmd := exec.Command("debugfs", "-w", "-f", "-", img)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("debugfs: %v\n%s", err, out)
	}
	// Fill the unwritten extent's blocks with garbage: they must still
	// read as zeros.
	out, err := exec.Command("debugfs", "-R", "stat /prealloc", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`\[u\]\):(\d+)-(\d+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no unwritten extent in:\n%s", out)
	}
	first, _ := strconv.Atoi(m[1])
	last, _ := strconv.Atoi(m[2])
	wf, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wf.WriteAt(bytes.Repeat([]byte{0xFF}, (last-first+1)*4096), int64(first)*4096); err != nil {
		t.Fatal(err)
	}
	wf.Close()
	r, size := fsystest.OpenImage(t, img)
	fs, err := Open(r, size)
	if err != nil {
		t.Fatal(err)
	}
	ents := map[string]*fsys.Entry{}
	if err := fs.Walk(context.Background(), func(e *fsys.Entry) error {
		c := *e
		ents[e.Path] = &c
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path    string
		size    int64
		content string // "" with size: all zeros
		mtime   time.Time
		target  string
	}{
		{path: "/small", size: 19, content: "hello inline world\n",
			mtime: time.Date(2041, 1, 2, 3, 4, 5, 125000000, time.UTC)},
		{path: "/prealloc", size: 40960, content: strings.Repeat("x", 4096) + string(make([]byte, 40960-4096))},
		{path: "/d/l", target: "/small"},
	}
	for _, tc := range tests {
		e := ents[tc.path]
		if e == nil {
			t.Errorf("%s missing", tc.path)
			continue
		}
		if tc.target != "" {
			if e.Type != fsys.TypeSymlink || e.Target != tc.target {
				t.Errorf("%s: %s -> %q", tc.path, e.Type, e.Target)
			}
			continue
		}
		if !tc.mtime.IsZero() && !e.MTime.Equal(tc.mtime) {
			t.Errorf("%s: mtime %v, want %v", tc.path, e.MTime, tc.mtime)
		}
		f, err := fs.Open(e)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, tc.size)
		if n, err := f.ReadAt(buf, 0); n != int(tc.size) || (err != nil && n != int(tc.size)) {
			t.Fatalf("%s: read %d, %v", tc.path, n, err)
		}
		want := tc.content
		if want == "" {
			want = string(make([]byte, tc.size))
		}
		if string(buf) != want {
			t.Errorf("%s: content %q", tc.path, buf[:min(len(buf), 40)])
		}
	}
}

func TestPerformance(t *testing.T) {
	base := t.TempDir()
	// Creating 50 000 files is far faster on tmpfs than on a disk.
	tree := filepath.Join(base, "tree")
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "ext4perf"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			tree = d
		}
	}
	const dirs, per = 100, 500
	payload := []byte("a small file's content\n")
	for d := 0; d < dirs; d++ {
		dp := filepath.Join(tree, fmt.Sprintf("dir%03d", d))
		if err := os.MkdirAll(dp, 0o755); err != nil {
			t.Fatal(err)
		}
		for f := 0; f < per; f++ {
			if err := os.WriteFile(filepath.Join(dp, fmt.Sprintf("file-%05d.txt", f)), payload, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	img := filepath.Join(base, "perf.img")
	mkfs(t, img, tree, "400M", "-t", "ext4", "-N", "60000")
	os.RemoveAll(tree)
	r, size := fsystest.OpenImage(t, img)
	cr := &countingReader{r: r}
	fs, err := Open(cr, size)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n := 0
	if err := fs.Walk(context.Background(), func(e *fsys.Entry) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	t.Logf("walk of %d entries: %v, %d ReadAt calls", n, el, cr.n.Load())
	if n != dirs*per+dirs+2 {
		t.Errorf("walked %d entries, want %d", n, dirs*per+dirs+2)
	}
	if el > 10*time.Second {
		t.Errorf("walk took %v, limit 10s", el)
	}
}

func TestWalkCancel(t *testing.T) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	for i := 0; i < 3000; i++ {
		p := filepath.Join(tree, fmt.Sprintf("d%d", i%3), fmt.Sprintf("f%d", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "c.img")
	mkfs(t, img, tree, "32M", "-t", "ext4")
	r, size := fsystest.OpenImage(t, img)
	fs, err := Open(r, size)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err = fs.Walk(ctx, func(e *fsys.Entry) error {
		n++
		if n == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("walk after cancel: %v (%d entries)", err, n)
	}
	// SkipDir skips a directory's contents.
	n = 0
	err = fs.Walk(context.Background(), func(e *fsys.Entry) error {
		n++
		if e.Type == fsys.TypeDir && e.Path != "/" {
			return fsys.SkipDir
		}
		return nil
	})
	if err != nil || n != 5 { // /, d0, d1, d2, lost+found
		t.Errorf("walk with SkipDir: %v, %d entries", err, n)
	}
}

// TestSparseLarge reads sparse files through the triple-indirect range of
// an ext2 block map (1 KiB blocks: beyond 12+256+65536 blocks) and past
// 4 GiB on ext4 (i_size_high, extents far apart).
func TestSparseLarge(t *testing.T) {
	cases := []struct {
		name string
		size int64
		offs []int64
		args []string
	}{
		{"ext2-triple-indirect", 100 << 20, []int64{5000, 300 << 10, 70 << 20, 90<<20 + 777}, []string{"-t", "ext2", "-b", "1024"}},
		{"ext3-triple-indirect", 80 << 20, []int64{12 << 10, 67<<20 - 10}, []string{"-t", "ext3", "-b", "1024"}},
		{"ext4-over-4GiB", 6 << 30, []int64{0, 4<<30 + 12345, 6<<30 - 3100}, []string{"-t", "ext4"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			tree := filepath.Join(dir, "tree")
			if err := os.MkdirAll(tree, 0o755); err != nil {
				t.Fatal(err)
			}
			f, err := os.Create(filepath.Join(tree, "big"))
			if err != nil {
				t.Fatal(err)
			}
			chunks := map[int64][]byte{}
			for i, off := range c.offs {
				b := []byte(fmt.Sprintf("chunk-%d-", i) + strings.Repeat("z", 3000))
				chunks[off] = b
				if _, err := f.WriteAt(b, off); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.Truncate(c.size); err != nil {
				t.Fatal(err)
			}
			f.Close()
			// expect returns the file's bytes in [off, off+n).
			expect := func(off, n int64) []byte {
				out := make([]byte, n)
				for co, b := range chunks {
					for i := range b {
						if p := co + int64(i); p >= off && p < off+n {
							out[p-off] = b[i]
						}
					}
				}
				return out
			}
			img := filepath.Join(dir, "e.img")
			mkfs(t, img, tree, "64M", c.args...)
			r, isz := fsystest.OpenImage(t, img)
			fs, err := Open(r, isz)
			if err != nil {
				t.Fatal(err)
			}
			var ent *fsys.Entry
			if err := fs.Walk(context.Background(), func(e *fsys.Entry) error {
				if e.Path == "/big" {
					c := *e
					ent = &c
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if ent == nil || ent.Size != c.size {
				t.Fatalf("entry %+v", ent)
			}
			fh, err := fs.Open(ent)
			if err != nil {
				t.Fatal(err)
			}
			// Unaligned reads across block, indirect and extent boundaries.
			probes := []int64{0, 1023, 12*1024 - 5, 268*1024 - 3, c.size - 1}
			for _, off := range c.offs {
				probes = append(probes, off-1, off+1000)
			}
			for _, off := range probes {
				if off < 0 || off >= c.size {
					continue
				}
				b := make([]byte, 70000)
				n, err := fh.ReadAt(b, off)
				want := expect(off, min(int64(len(b)), c.size-off))
				if n != len(want) || !bytes.Equal(b[:n], want) || (n < len(b) && err != io.EOF) {
					t.Errorf("ReadAt(%d): %d, %v", off, n, err)
				}
			}
			if c.size <= 100<<20 {
				all := make([]byte, c.size)
				if n, err := fh.ReadAt(all, 0); n != len(all) || err != nil {
					t.Fatalf("read all: %d, %v", n, err)
				}
				if !bytes.Equal(all, expect(0, c.size)) {
					t.Error("content differs")
				}
			}
		})
	}
}
