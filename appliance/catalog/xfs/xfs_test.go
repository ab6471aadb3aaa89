package xfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"coffer.dev/coffer/appliance/catalog/fsys"
	"coffer.dev/coffer/appliance/catalog/fsys/fsystest"
)

// owner is the uid/gid the protofile gives each path, so that the test
// can check them.
func owner(rel string) (uid, gid uint32) {
	return 1000 + uint32(len(rel)%7), 100 + uint32(len(rel)%5)
}

// writeProto writes a mkfs.xfs protofile describing the host tree dir.
func writeProto(t testing.TB, dir, proto string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("coffer-test\n0 0\n")
	modeStr := func(kind byte, m os.FileMode) string {
		u, g := byte('-'), byte('-')
		if m&os.ModeSetuid != 0 {
			u = 'u'
		}
		if m&os.ModeSetgid != 0 {
			g = 'g'
		}
		return fmt.Sprintf("%c%c%c%03o", kind, u, g, m.Perm())
	}
	var walk func(rel string, depth int)
	walk = func(rel string, depth int) {
		names, err := os.ReadDir(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		sort.Slice(names, func(i, j int) bool { return names[i].Name() < names[j].Name() })
		for _, n := range names {
			crel := filepath.Join(rel, n.Name())
			p := filepath.Join(dir, crel)
			if strings.ContainsAny(n.Name(), " \t\n:$") {
				t.Fatalf("protofile cannot hold the name %q", n.Name())
			}
			st, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			uid, gid := owner("/" + crel)
			ind := strings.Repeat(" ", depth)
			switch {
			case st.IsDir():
				fmt.Fprintf(&b, "%s%s %s %d %d\n", ind, n.Name(), modeStr('d', st.Mode()), uid, gid)
				walk(crel, depth+1)
				fmt.Fprintf(&b, "%s$\n", ind)
			case st.Mode()&os.ModeSymlink != 0:
				target, err := os.Readlink(p)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&b, "%s%s l--777 %d %d %s\n", ind, n.Name(), uid, gid, target)
			default:
				fmt.Fprintf(&b, "%s%s %s %d %d %s\n", ind, n.Name(), modeStr('-', st.Mode()), uid, gid, p)
			}
		}
	}
	b.WriteString("d--755 0 0\n")
	walk("", 1)
	b.WriteString("$\n")
	if err := os.WriteFile(proto, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// mkfs builds an XFS image of size bytes from the host tree dir.
func mkfs(t testing.TB, dir string, size int64, args ...string) string {
	t.Helper()
	tmp := t.TempDir()
	proto := filepath.Join(tmp, "proto")
	writeProto(t, dir, proto)
	img := filepath.Join(tmp, "xfs.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cmd := exec.Command("mkfs.xfs", append(append([]string{"-q", "-f", "-p", proto}, args...), img)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs %v: %v\n%s", args, err, out)
	}
	return img
}

// renameUnprotoable renames the names a protofile cannot hold (spaces)
// on the host and in the expected tree.
func renameUnprotoable(t *testing.T, tr *fsystest.Tree) {
	t.Helper()
	var bad []string
	for p := range tr.Entries {
		if strings.Contains(filepath.Base(p), " ") {
			bad = append(bad, p)
		}
	}
	sort.Slice(bad, func(i, j int) bool { return len(bad[i]) > len(bad[j]) }) // children first
	for _, p := range bad {
		np := filepath.Join(filepath.Dir(p), strings.ReplaceAll(filepath.Base(p), " ", "_"))
		if err := os.Rename(filepath.Join(tr.Dir, p), filepath.Join(tr.Dir, np)); err != nil {
			t.Fatal(err)
		}
		e := tr.Entries[p]
		delete(tr.Entries, p)
		e.Path = np
		tr.Entries[np] = e
	}
	if len(bad) == 0 {
		t.Fatal("expected names with spaces in the tree")
	}
}

func xfsDB(t testing.TB, img string, write bool, cmds ...string) string {
	t.Helper()
	args := []string{"-r"}
	if write {
		args = []string{"-x"}
	}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.Command("xfs_db", append(args, img)...).CombinedOutput()
	if err != nil {
		t.Fatalf("xfs_db %v: %v\n%s", cmds, err, out)
	}
	return string(out)
}

// dbField returns the value of "name = value" in xfs_db output.
func dbField(t testing.TB, out, name string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, " = "); ok && k == name {
			return strings.Fields(v)[0]
		}
	}
	t.Fatalf("no %s in xfs_db output:\n%s", name, out)
	return ""
}

func walkAll(t testing.TB, fs *FS) map[string]*fsys.Entry {
	t.Helper()
	m := map[string]*fsys.Entry{}
	if err := fs.Walk(context.Background(), func(e *fsys.Entry) error {
		c := *e
		m[e.Path] = &c
		return nil
	}); err != nil {
		t.Fatalf("walk: %v", err)
	}
	return m
}

func TestTree(t *testing.T) {
	start := time.Now().Add(-2 * time.Second)
	dir := filepath.Join(t.TempDir(), "tree")
	tr := fsystest.Make(t, dir, fsystest.Features{Symlinks: true, Sparse: true, UnixModes: true}, 7)
	renameUnprotoable(t, tr)
	for _, tc := range []struct {
		name       string
		args       []string
		manyFormat string // data fork format of /usr/share/many
		manyNode   bool   // /usr/share/many is a node directory (else leaf)
	}{
		{"v5", []string{"-L", "coffer-v5"}, "2", false},
		{"v5-1k-blocks", []string{"-b", "size=1024", "-L", "k1"}, "2", false},
		{"v5-16k-dirblocks", []string{"-n", "size=16384"}, "2", false},
		{"v4", []string{"-m", "crc=0", "-L", "old"}, "2", false},
		{"v4-1k-blocks", []string{"-m", "crc=0", "-b", "size=1024"}, "2", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := mkfs(t, dir, 320<<20, tc.args...)
			r, size := fsystest.OpenImage(t, img)
			fs, err := Open(r, size)
			if err != nil {
				t.Fatal(err)
			}
			if fs.Type() != "xfs" {
				t.Errorf("type %q", fs.Type())
			}
			blkid := func(tag string) string {
				out, err := exec.Command("blkid", "-p", "-o", "value", "-s", tag, img).Output()
				if err != nil {
					t.Logf("blkid %s: %v", tag, err)
				}
				return strings.TrimSpace(string(out))
			}
			if got, want := fs.UUID(), blkid("UUID"); got != want || got == "" {
				t.Errorf("UUID %q, blkid says %q", got, want)
			}
			if got, want := fs.Label(), blkid("LABEL"); got != want {
				t.Errorf("label %q, blkid says %q", got, want)
			}
			findings, err := fs.Check(context.Background())
			if err != nil || len(findings) > 0 {
				t.Errorf("check of a fresh image: %v, %q", err, findings)
			}

			fsystest.Compare(t, fs, tr, fsystest.CompareOptions{NoMTime: true})

			ents := walkAll(t, fs)
			now := time.Now().Add(2 * time.Second)
			dirChildren := map[string]uint32{}
			for p, e := range ents {
				if e.Type == fsys.TypeDir && p != "/" {
					dirChildren[filepath.Dir(p)]++
				}
			}
			for p, e := range ents {
				if e.MTime.Before(start) || e.MTime.After(now) {
					t.Errorf("%s: mtime %v not while mkfs ran (%v..%v)", p, e.MTime, start, now)
				}
				if p != "/" {
					uid, gid := owner(p)
					if e.UID != uid || e.GID != gid {
						t.Errorf("%s: uid/gid %d/%d, want %d/%d", p, e.UID, e.GID, uid, gid)
					}
				}
				want := uint32(1)
				if e.Type == fsys.TypeDir {
					want = 2 + dirChildren[p]
				}
				if e.Nlink != want {
					t.Errorf("%s: nlink %d, want %d", p, e.Nlink, want)
				}
			}
			// Cross-check inode numbers and link counts with xfs_db.
			for _, p := range []string{"/etc/nginx/nginx.conf", "/usr/share/many", "/home/user/long-link",
				"/var/lib/db/large.bin", "/usr/share/many/entry-with-a-longer-name-0399.dat", "/home/user"} {
				e := ents[p]
				if e == nil {
					t.Errorf("walk has no %s", p)
					continue
				}
				out := xfsDB(t, img, false, "inode "+strconv.FormatUint(e.Ref, 10), "print core.nlinkv2 core.size core.mode core.format")
				if got := dbField(t, out, "core.nlinkv2"); got != strconv.Itoa(int(e.Nlink)) {
					t.Errorf("%s: xfs_db nlink %s, walk %d", p, got, e.Nlink)
				}
				if got := dbField(t, out, "core.size"); got != strconv.FormatInt(e.Size, 10) {
					t.Errorf("%s: xfs_db size %s, walk %d", p, got, e.Size)
				}
				if p == "/usr/share/many" {
					if got := dbField(t, out, "core.format"); got != tc.manyFormat {
						t.Errorf("%s: format %s, want %s", p, got, tc.manyFormat)
					}
					if e.Size <= int64(fs.dirBlk) {
						t.Errorf("%s: directory of %d bytes is not multi-block", p, e.Size)
					}
				}
			}
			// /usr/share/many is a leaf or node directory: blocks above
			// the leaf offset, one leaf block or a node and its leaves.
			if in, err := fs.readInode(ents["/usr/share/many"].Ref); err != nil {
				t.Error(err)
			} else if exts, err := fs.extents(in); err != nil {
				t.Error(err)
			} else {
				lo, hi := uint64(leafOffset)>>fs.sb.blockLog, uint64(2*leafOffset)>>fs.sb.blockLog
				var leafBlocks uint64
				for _, e := range exts {
					if e.off >= lo && e.off < hi {
						leafBlocks += min(e.off+e.count, hi) - e.off
					}
				}
				dirBlocks := leafBlocks >> fs.sb.dirBlkLog
				if node := dirBlocks > 1; dirBlocks == 0 || node != tc.manyNode {
					t.Errorf("/usr/share/many: %d directory blocks in the leaf range, want node form %v", dirBlocks, tc.manyNode)
				}
			}
			if in, err := fs.readInode(ents["/etc/nginx/sites-enabled/default"].Ref); err != nil || in.format != fmtLocal {
				t.Errorf("short link: %v; want an inline symlink", err)
			}
		})
	}
}

// TestHolesAndUnwritten edits extent records with xfs_db to make a file
// with a hole at its start and one whose extent is unwritten.
func TestHolesAndUnwritten(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("0123456789abcdef"), 16*4096/16) // 16 blocks
	for _, n := range []string{"holey", "unwritten", "plain"} {
		if err := os.WriteFile(filepath.Join(dir, n), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := mkfs(t, dir, 300<<20)
	field := "u3.bmx[0]"
	xfsDB(t, img, true, "path /holey", "write "+field+".startoff 3", "write "+field+".blockcount 13")
	xfsDB(t, img, true, "path /unwritten", "write "+field+".extentflag 1")
	r, size := fsystest.OpenImage(t, img)
	fs, err := Open(r, size)
	if err != nil {
		t.Fatal(err)
	}
	ents := walkAll(t, fs)
	holey := make([]byte, len(data))
	copy(holey[3*4096:], data[:13*4096])
	for _, tc := range []struct {
		name string
		want []byte
	}{
		{"/plain", data},
		{"/holey", holey},
		{"/unwritten", make([]byte, len(data))},
	} {
		e := ents[tc.name]
		if e == nil {
			t.Fatalf("no %s", tc.name)
		}
		f, err := fs.Open(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("%s: content differs (%v)", tc.name, err)
		}
		// A read straddling the hole's end.
		p := make([]byte, 100)
		if n, err := f.ReadAt(p, 3*4096-50); n != 100 || err != nil || !bytes.Equal(p, tc.want[3*4096-50:3*4096+50]) {
			t.Errorf("%s: straddling read %d, %v", tc.name, n, err)
		}
		if n, err := f.ReadAt(p, f.Size()-10); n != 10 || err != io.EOF {
			t.Errorf("%s: read at the end: %d, %v", tc.name, n, err)
		}
	}
}

func TestNotXFS(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"zeros", make([]byte, 1<<20)},
		{"ext-like", append(make([]byte, 1080), 0x53, 0xef)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(bytes.NewReader(tc.data), int64(len(tc.data)))
			if !errors.Is(err, fsys.ErrNotRecognized) {
				t.Errorf("Open = %v, want ErrNotRecognized", err)
			}
		})
	}
}

// TestCorruption damages a small image in several ways: Open, Walk and
// Check must report clear errors or findings and never panic.
func TestCorruption(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 30; i++ {
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", i%3))
		os.MkdirAll(sub, 0o755)
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("file-%03d", i)), bytes.Repeat([]byte{byte(i)}, i*1000), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := mkfs(t, dir, 300<<20)
	r, size := fsystest.OpenImage(t, img)
	clean, err := Open(r, size)
	if err != nil {
		t.Fatal(err)
	}
	sb := clean.sb
	agBytes := int64(sb.agBlocks) << sb.blockLog
	sect := int64(sb.sectSize)
	rootOff, _ := clean.inodeOffset(sb.rootIno)
	ents := walkAll(t, clean)
	d01, _ := clean.inodeOffset(ents["/d01"].Ref)

	type result struct{ openErr, walkErr, finding string }
	for _, tc := range []struct {
		name   string
		damage func(p *patched)
		want   result
	}{
		{"truncated to 64 KiB", func(p *patched) { p.size = 64 << 10 }, result{walkErr: "beyond the end", finding: "truncated"}},
		{"truncated to 1 MiB", func(p *patched) { p.size = 1 << 20 }, result{walkErr: "beyond the end", finding: "truncated"}},
		{"block size garbage", func(p *patched) { p.set(4, 0x7f); p.set(7, 0x13) }, result{openErr: "block size"}},
		{"AG count zero", func(p *patched) {
			for i := int64(88); i < 92; i++ {
				p.set(i, 0)
			}
		}, result{openErr: "geometry"}},
		{"superblock CRC", func(p *patched) { p.flip(110, 0xff) }, result{openErr: "CRC"}},
		{"AGF magic in AG 1", func(p *patched) { p.set(agBytes+sect, 'Y') }, result{finding: "AG 1: AGF: bad magic"}},
		{"AGI CRC in AG 2", func(p *patched) { p.flip(2*agBytes+2*sect+20, 1) }, result{finding: "AG 2: AGI: CRC mismatch"}},
		{"AGFL CRC in AG 0", func(p *patched) { p.flip(3*sect+40, 1) }, result{finding: "AG 0: AGFL: CRC mismatch"}},
		{"secondary superblock in AG 3", func(p *patched) { p.flip(3*agBytes+8, 1) }, result{finding: "AG 3: secondary superblock: data blocks"}},
		{"root inode magic", func(p *patched) { p.set(rootOff, 'X') }, result{walkErr: "walk /: inode"}},
		{"directory inode CRC", func(p *patched) { p.flip(d01+200, 0x55) }, result{walkErr: "/d01: inode"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &patched{r: r, size: size, bytes: map[int64]byte{}}
			tc.damage(p)
			fs, err := Open(p, p.size)
			if tc.want.openErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want.openErr) {
					t.Fatalf("Open = %v, want error with %q", err, tc.want.openErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			werr := fs.Walk(context.Background(), func(e *fsys.Entry) error { return nil })
			if tc.want.walkErr == "" && werr != nil {
				t.Errorf("walk: %v", werr)
			}
			if tc.want.walkErr != "" && (werr == nil || !strings.Contains(werr.Error(), tc.want.walkErr)) {
				t.Errorf("walk = %v, want error with %q", werr, tc.want.walkErr)
			}
			findings, err := fs.Check(context.Background())
			if err != nil {
				t.Fatalf("check: %v", err)
			}
			found := false
			for _, f := range findings {
				found = found || strings.Contains(f, tc.want.finding)
			}
			if tc.want.finding != "" && !found {
				t.Errorf("findings %q, want one with %q", findings, tc.want.finding)
			}
			if tc.want.finding == "" && len(findings) > 0 {
				t.Errorf("unexpected findings %q", findings)
			}
		})
	}
}

func TestWalkCancelAndSkip(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 600; i++ {
		sub := filepath.Join(dir, fmt.Sprintf("d%d", i%2))
		os.MkdirAll(sub, 0o755)
		os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%04d", i)), nil, 0o644)
	}
	img := mkfs(t, dir, 300<<20)
	r, size := fsystest.OpenImage(t, img)
	fs, err := Open(r, size)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err = fs.Walk(ctx, func(e *fsys.Entry) error {
		if n++; n == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled walk = %v", err)
	}
	var seen []string
	err = fs.Walk(context.Background(), func(e *fsys.Entry) error {
		seen = append(seen, e.Path)
		if e.Path == "/d0" {
			return fsys.SkipDir
		}
		return nil
	})
	if err != nil || len(seen) != 1+1+1+300 {
		t.Errorf("walk with SkipDir: %v, %d entries", err, len(seen))
	}
	stop := errors.New("stop")
	if err := fs.Walk(context.Background(), func(e *fsys.Entry) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("walk returned %v, want the WalkFunc's error", err)
	}
}

// TestWalkSpeed walks 50 000 small files. Creating 50 000 host files is
// slow on a disk-backed temp dir, so the protofile names 100 small
// source files, each for 500 entries: the image holds 50 000 inodes all
// the same.
func TestWalkSpeed(t *testing.T) {
	src := t.TempDir()
	const nfiles, ndirs = 50000, 100
	var b strings.Builder
	b.WriteString("speed\n0 0\nd--755 0 0\n")
	for d := 0; d < ndirs; d++ {
		p := filepath.Join(src, fmt.Sprintf("src-%03d", d))
		if err := os.WriteFile(p, []byte(strings.Repeat("x", d+1)), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, " dir-%03d d--755 0 0\n", d)
		for i := 0; i < nfiles/ndirs; i++ {
			fmt.Fprintf(&b, "  small-file-%05d.txt ---644 0 0 %s\n", i, p)
		}
		b.WriteString(" $\n")
	}
	b.WriteString("$\n")
	proto := filepath.Join(src, "proto")
	if err := os.WriteFile(proto, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(src, "speed.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 1<<30); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if out, err := exec.Command("mkfs.xfs", "-q", "-f", "-p", proto, img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs: %v\n%s", err, out)
	}
	t.Logf("mkfs.xfs of %d files: %v", nfiles, time.Since(t0))
	r, size := fsystest.OpenImage(t, img)
	cr := &countingReader{r: r}
	fs, err := Open(cr, size)
	if err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	n := 0
	if err := fs.Walk(context.Background(), func(e *fsys.Entry) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	el := time.Since(t0)
	t.Logf("walk of %d entries: %v, %d ReadAt calls", n, el, cr.n.Load())
	if n != nfiles+ndirs+1 {
		t.Errorf("walked %d entries, want %d", n, nfiles+ndirs+1)
	}
	if el > 10*time.Second {
		t.Errorf("walk took %v, more than 10 s", el)
	}
}
