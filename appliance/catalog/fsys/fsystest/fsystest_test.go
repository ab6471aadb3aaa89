package fsystest

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"

	"coffer.dev/coffer/appliance/catalog/fsys"
)

// hostFS reads a host directory through the fsys interface, so that the
// tree and Compare are checked against the host's own view.
type hostFS struct{ dir string }

func (h hostFS) Type() string  { return "host" }
func (h hostFS) Label() string { return "" }
func (h hostFS) UUID() string  { return "" }

func (h hostFS) Walk(ctx context.Context, fn fsys.WalkFunc) error {
	var walk func(rel string) error
	walk = func(rel string) error {
		p := filepath.Join(h.dir, rel)
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		sys := st.Sys().(*syscall.Stat_t)
		e := &fsys.Entry{Path: "/" + rel, Size: st.Size(), Mode: uint32(st.Mode().Perm()), MTime: st.ModTime(),
			Ref: sys.Ino, Nlink: uint32(sys.Nlink), UID: sys.Uid, GID: sys.Gid}
		if rel == "" {
			e.Path = "/"
		}
		switch {
		case st.IsDir():
			e.Type = fsys.TypeDir
		case st.Mode()&os.ModeSymlink != 0:
			e.Type = fsys.TypeSymlink
			e.Target, _ = os.Readlink(p)
		default:
			e.Type = fsys.TypeFile
		}
		if err := fn(e); err != nil {
			return err
		}
		if e.Type != fsys.TypeDir {
			return nil
		}
		names, err := os.ReadDir(p)
		if err != nil {
			return err
		}
		sort.Slice(names, func(i, j int) bool { return names[i].Name() < names[j].Name() })
		for _, n := range names {
			if err := walk(filepath.Join(rel, n.Name())); err != nil {
				return err
			}
		}
		return nil
	}
	return walk("")
}

func (h hostFS) Open(e *fsys.Entry) (fsys.File, error) {
	f, err := os.Open(filepath.Join(h.dir, e.Path))
	if err != nil {
		return nil, err
	}
	return hostFile{f, e.Size}, nil
}

type hostFile struct {
	*os.File
	size int64
}

func (f hostFile) Size() int64 { return f.size }

func TestTreeAgainstHost(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tree")
	tr := Make(t, dir, Features{Symlinks: true, HardLinks: true, Sparse: true, UnixModes: true}, 1)
	if len(tr.Entries) < 700 {
		t.Fatalf("tree has %d entries", len(tr.Entries))
	}
	Compare(t, hostFS{dir}, tr, CompareOptions{})
}
