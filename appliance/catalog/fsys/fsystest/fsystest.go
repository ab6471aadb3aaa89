// Package fsystest builds the test tree that every filesystem reader is
// checked against, and compares what a reader walks and reads with it.
//
// The tree holds a few hundred files: large and sparse files, hard links,
// short and long symlinks, Unicode names, a deep directory chain, empty
// files and directories, odd permission bits and fixed modification
// times. Features a filesystem lacks (symlinks on FAT, say) are switched
// off with Features.
package fsystest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"coffer.dev/coffer/appliance/catalog/fsys"
)

// Features says what the filesystem under test can hold.
type Features struct {
	Symlinks  bool
	HardLinks bool
	Sparse    bool // holes in files (only affects how the tree is written)
	UnixModes bool // permission bits, uid and gid survive
	// ShortNamesOnly restricts names to characters FAT and NTFS accept
	// (no ':', '\\', '*', '?', '"', '<', '>', '|') — always applied on
	// those; Unicode stays.
	WindowsNames bool
	// LargeSize is the size of the one large file (default 24 MiB).
	LargeSize int64
	// Files is the number of ordinary small files (default 300).
	Files int
}

// Expected is one entry of the tree as the reader must report it.
type Expected struct {
	Path   string // absolute inside the filesystem, "/a/b"
	Type   fsys.EntryType
	Size   int64
	SHA256 [32]byte // regular files
	Target string   // symlinks
	Mode   uint32   // permission bits
	MTime  time.Time
	Group  string // hard-link group: entries with the same non-empty Group share a Ref
}

// Tree is a generated tree on the host filesystem.
type Tree struct {
	Dir      string
	Features Features
	Entries  map[string]*Expected
}

// Make writes the tree under dir (created if missing) and returns what a
// reader must find. The content is deterministic for a given seed.
func Make(t testing.TB, dir string, f Features, seed uint64) *Tree {
	t.Helper()
	if f.LargeSize == 0 {
		f.LargeSize = 24 << 20
	}
	if f.Files == 0 {
		f.Files = 300
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	tr := &Tree{Dir: dir, Features: f, Entries: map[string]*Expected{}}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(dir, 0o755))
	base := time.Date(2024, 3, 14, 15, 9, 26, 0, time.UTC)
	mtime := func(i int) time.Time { return base.Add(time.Duration(i) * 97 * time.Minute) }

	mkdir := func(rel string, mode os.FileMode) {
		must(os.MkdirAll(filepath.Join(dir, rel), mode))
		must(os.Chmod(filepath.Join(dir, rel), mode))
		tr.Entries["/"+rel] = &Expected{Path: "/" + rel, Type: fsys.TypeDir, Mode: uint32(mode.Perm())}
	}
	write := func(rel string, data []byte, mode os.FileMode, i int) {
		p := filepath.Join(dir, rel)
		must(os.WriteFile(p, data, mode))
		must(os.Chmod(p, mode))
		mt := mtime(i)
		must(os.Chtimes(p, mt, mt))
		tr.Entries["/"+rel] = &Expected{Path: "/" + rel, Type: fsys.TypeFile, Size: int64(len(data)),
			SHA256: sha256.Sum256(data), Mode: uint32(mode.Perm()), MTime: mt}
	}
	text := func(n int) []byte {
		words := []string{"server", "listen", "443", "root", "/var/www", "index", "proxy_pass", "upstream", "location", "gzip", "on;", "\n"}
		var b bytes.Buffer
		for b.Len() < n {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(' ')
		}
		return b.Bytes()[:n]
	}

	dirs := []string{"etc", "etc/nginx", "etc/nginx/sites-enabled", "var", "var/log", "var/lib",
		"var/lib/db", "home", "home/user", "home/user/Documents", "usr", "usr/share", "usr/share/doc", "empty"}
	for _, d := range dirs {
		mkdir(d, 0o755)
	}
	mkdir("home/user/private", 0o700)

	// Ordinary files of many sizes across the directories: empty, tiny,
	// around block and extent boundaries, a few hundred KiB.
	sizes := []int{0, 1, 60, 511, 512, 1023, 4095, 4096, 4097, 8192, 65535, 65536, 65537, 200000}
	for i := 0; i < f.Files; i++ {
		d := dirs[i%(len(dirs)-1)] // never into "empty"
		n := sizes[i%len(sizes)]
		if i%len(sizes) == 0 && i > 0 {
			n = rng.IntN(300000)
		}
		mode := os.FileMode(0o644)
		if i%17 == 3 {
			mode = 0o600
		} else if i%23 == 5 {
			mode = 0o755
		}
		write(fmt.Sprintf("%s/file%03d.txt", d, i), text(n), mode, i)
	}
	write("etc/nginx/nginx.conf", text(2500), 0o644, 1)

	// A large file of incompressible data.
	large := make([]byte, f.LargeSize)
	for i := 0; i+8 <= len(large); i += 8 {
		v := rng.Uint64()
		for k := 0; k < 8; k++ {
			large[i+k] = byte(v >> (8 * k))
		}
	}
	write("var/lib/db/large.bin", large, 0o640, 7)

	// A sparse file: 64 MiB logical, data at the start, in the middle and
	// at the end.
	{
		rel := "var/lib/db/sparse.img"
		p := filepath.Join(dir, rel)
		const size = 64 << 20
		content := make([]byte, size)
		fh, err := os.Create(p)
		must(err)
		for _, off := range []int64{0, 20 << 20, size - 12345} {
			chunk := text(12345)
			copy(content[off:], chunk)
			_, err := fh.WriteAt(chunk, off)
			must(err)
		}
		must(fh.Truncate(size))
		must(fh.Close())
		must(os.Chmod(p, 0o644))
		mt := mtime(11)
		must(os.Chtimes(p, mt, mt))
		tr.Entries["/"+rel] = &Expected{Path: "/" + rel, Type: fsys.TypeFile, Size: size,
			SHA256: sha256.Sum256(content), Mode: 0o644, MTime: mt}
	}

	// Unicode names.
	mkdir("home/user/Документы", 0o755)
	write("home/user/Документы/отчёт.txt", text(3000), 0o644, 21)
	write("home/user/日本語のファイル.txt", text(777), 0o644, 22)
	write("home/user/Café crème.txt", text(100), 0o644, 23)
	write("home/user/emoji-😀.txt", text(10), 0o644, 24)
	write("home/user/Documents/quarterly report (final) v2.docx", text(40000), 0o644, 25)
	write("home/user/Documents/mail.pst", text(90000), 0o644, 26)

	// A deep chain of directories with a file at the bottom.
	deep := "deep"
	mkdir(deep, 0o755)
	for i := 0; i < 24; i++ {
		deep = fmt.Sprintf("%s/level%02d", deep, i)
		mkdir(deep, 0o755)
	}
	write(deep+"/bottom.txt", text(999), 0o644, 31)

	// A directory with many entries (forces multi-block / b-tree
	// directories on every filesystem).
	mkdir("usr/share/many", 0o755)
	for i := 0; i < 400; i++ {
		write(fmt.Sprintf("usr/share/many/entry-with-a-longer-name-%04d.dat", i), text(i%50), 0o644, i)
	}

	if f.HardLinks {
		write("var/lib/db/linked-a", text(5000), 0o644, 41)
		for _, other := range []string{"var/lib/db/linked-b", "home/user/linked-c"} {
			must(os.Link(filepath.Join(dir, "var/lib/db/linked-a"), filepath.Join(dir, other)))
			e := *tr.Entries["/var/lib/db/linked-a"]
			e.Path = "/" + other
			tr.Entries[e.Path] = &e
		}
		for _, p := range []string{"/var/lib/db/linked-a", "/var/lib/db/linked-b", "/home/user/linked-c"} {
			tr.Entries[p].Group = "linked"
		}
	}
	if f.Symlinks {
		link := func(rel, target string) {
			must(os.Symlink(target, filepath.Join(dir, rel)))
			tr.Entries["/"+rel] = &Expected{Path: "/" + rel, Type: fsys.TypeSymlink, Size: int64(len(target)), Target: target}
		}
		link("etc/nginx/sites-enabled/default", "../sites-available/default")
		link("home/user/long-link", "/usr/share/doc/"+strings.Repeat("a-very-long-symlink-target-component/", 4)+"end")
		link("home/user/dangling", "does-not-exist")
	}
	if !f.UnixModes {
		for _, e := range tr.Entries {
			e.Mode = 0
		}
	}
	// Directory times are set last: creating entries changed them.
	i := 0
	for _, e := range tr.Entries {
		if e.Type == fsys.TypeDir {
			mt := mtime(100 + i)
			i++
			must(os.Chtimes(filepath.Join(dir, e.Path[1:]), mt, mt))
			e.MTime = mt
		}
	}
	tr.Entries["/"] = &Expected{Path: "/", Type: fsys.TypeDir}
	return tr
}

// Paths returns the tree's paths in sorted order, "/" first.
func (tr *Tree) Paths() []string {
	var ps []string
	for p := range tr.Entries {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// CompareOptions relaxes Compare for what a filesystem cannot keep.
type CompareOptions struct {
	// Extra lets the reader report entries the tree does not hold (lost+found,
	// $-files are never reported by readers, but a tool may add some).
	Extra func(path string) bool
	// MTimeSlack is how far a reported mtime may be from the tree's
	// (FAT keeps 2-second local times). Zero means exact to the second.
	MTimeSlack time.Duration
	// NoMTime skips the mtime comparison (images built by tools that do
	// not keep times).
	NoMTime bool
	// NoDirMTime skips the mtime comparison of directories.
	NoDirMTime bool
}

// Compare walks fs and checks it against the tree: every expected entry
// is present once with its type, size, permission bits, time and symlink
// target; every regular file reads back byte for byte (through Open, at
// several offsets); hard-linked names share a Ref; nothing unexpected
// appears.
func Compare(t testing.TB, fs fsys.Filesystem, tr *Tree, o CompareOptions) {
	t.Helper()
	seen := map[string]*fsys.Entry{}
	var order []string
	err := fs.Walk(context.Background(), func(e *fsys.Entry) error {
		if _, dup := seen[e.Path]; dup {
			return fmt.Errorf("walk yielded %s twice", e.Path)
		}
		c := *e
		seen[e.Path] = &c
		order = append(order, e.Path)
		return nil
	})
	if err != nil {
		t.Fatalf("walk: %v", err)
	}
	if len(order) == 0 || order[0] != "/" {
		t.Fatalf("walk must start at /, got %v", order[:min(3, len(order))])
	}
	// Parents before children.
	pos := map[string]int{}
	for i, p := range order {
		pos[p] = i
		if p == "/" {
			continue
		}
		parent := filepath.Dir(p)
		if j, ok := pos[parent]; !ok || j > i {
			t.Errorf("%s visited before its directory %s", p, parent)
		}
	}
	groups := map[string]uint64{}
	for _, p := range tr.Paths() {
		want := tr.Entries[p]
		got, ok := seen[p]
		if !ok {
			t.Errorf("missing %s (%s)", p, want.Type)
			continue
		}
		if got.Type != want.Type {
			t.Errorf("%s: type %s, want %s", p, got.Type, want.Type)
			continue
		}
		if want.Mode != 0 && got.Mode&0o7777 != want.Mode {
			t.Errorf("%s: mode %o, want %o", p, got.Mode, want.Mode)
		}
		if !o.NoMTime && !want.MTime.IsZero() && !(o.NoDirMTime && want.Type == fsys.TypeDir) {
			d := got.MTime.Sub(want.MTime)
			if d < 0 {
				d = -d
			}
			if d > o.MTimeSlack && d >= time.Second {
				t.Errorf("%s: mtime %v, want %v", p, got.MTime.UTC(), want.MTime)
			}
		}
		switch want.Type {
		case fsys.TypeSymlink:
			if got.Target != want.Target {
				t.Errorf("%s: target %q, want %q", p, got.Target, want.Target)
			}
		case fsys.TypeFile:
			if got.Size != want.Size {
				t.Errorf("%s: size %d, want %d", p, got.Size, want.Size)
				continue
			}
			checkContent(t, fs, got, want)
		}
		if want.Group != "" {
			if ref, ok := groups[want.Group]; ok && ref != got.Ref {
				t.Errorf("%s: hard link with ref %d, others have %d", p, got.Ref, ref)
			}
			groups[want.Group] = got.Ref
			if got.Nlink != 3 {
				t.Errorf("%s: nlink %d, want 3", p, got.Nlink)
			}
		}
	}
	for _, p := range order {
		if _, ok := tr.Entries[p]; !ok && (o.Extra == nil || !o.Extra(p)) {
			t.Errorf("unexpected entry %s (%s)", p, seen[p].Type)
		}
	}
}

func checkContent(t testing.TB, fs fsys.Filesystem, got *fsys.Entry, want *Expected) {
	t.Helper()
	f, err := fs.Open(got)
	if err != nil {
		t.Errorf("open %s: %v", got.Path, err)
		return
	}
	if f.Size() != want.Size {
		t.Errorf("open %s: size %d, want %d", got.Path, f.Size(), want.Size)
		return
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, f.Size())); err != nil {
		t.Errorf("read %s: %v", got.Path, err)
		return
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	if sum != want.SHA256 {
		t.Errorf("%s: content differs", got.Path)
	}
	// Reads at end and past the end.
	var b [1]byte
	if n, err := f.ReadAt(b[:], want.Size); n != 0 || err != io.EOF {
		t.Errorf("%s: ReadAt(size) = %d, %v; want 0, EOF", got.Path, n, err)
	}
}

// OpenImage opens an image file for readers (an *os.File is an
// io.ReaderAt) and closes it when the test ends.
func OpenImage(t testing.TB, path string) (*os.File, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return f, st.Size()
}

// WalkAll walks fs and returns every entry by path.
func WalkAll(fs fsys.Filesystem) (map[string]*fsys.Entry, error) {
	m := map[string]*fsys.Entry{}
	err := fs.Walk(context.Background(), func(e *fsys.Entry) error {
		c := *e
		m[e.Path] = &c
		return nil
	})
	return m, err
}
