package store

import (
	"bytes"
	"context"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"coffer.dev/coffer/store/crypt"
	"coffer.dev/coffer/store/point"
)

var testKey = crypt.MasterKey{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}

func newTestStore(t testing.TB, o InitOptions) (*Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if o.ContainerSize == 0 {
		o.ContainerSize = 4 << 20
	}
	if err := Init(dir, testKey, o); err != nil {
		t.Fatal(err)
	}
	s := openTestStore(t, dir)
	return s, dir
}

func openTestStore(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, testKey, Options{MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// synthDisk makes disk content that looks like a file system: runs of
// zeros, text-like compressible data, random data, and repeated blocks.
func synthDisk(seed uint64, size int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, size)
	words := []string{"coffer ", "backup ", "the ", "quick ", "brown ", "fox\n", "lorem ", "ipsum ", "/usr/lib/", "0123456789 "}
	for off := 0; off < size; {
		n := (1 + r.IntN(64)) * 4096
		n = min(n, size-off)
		switch r.IntN(4) {
		case 0: // zeros
		case 1:
			var w bytes.Buffer
			for w.Len() < n {
				w.WriteString(words[r.IntN(len(words))])
			}
			copy(b[off:off+n], w.Bytes())
			// file-like tail padding
			if n > 4096 {
				clear(b[off+n-r.IntN(4000)-64 : off+n])
			}
		case 2:
			for i := off; i < off+n; i += 8 {
				v := r.Uint64()
				for k := 0; k < 8 && i+k < off+n; k++ {
					b[i+k] = byte(v >> (8 * k))
				}
			}
		case 3: // copy of an earlier region (duplicates)
			if off > n {
				src := r.IntN(off-n) / 4096 * 4096
				copy(b[off:off+n], b[src:src+n])
			}
		}
		off += n
	}
	return b
}

func backupBytes(t testing.TB, s *Store, source string, disks map[string][]byte, changed map[string][]Extent) *point.RecoveryPoint {
	t.Helper()
	ctx := context.Background()
	b, err := s.NewBackup(ctx, BackupSpec{Source: source})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range slices.Sorted(maps.Keys(disks)) {
		data := disks[name]
		var ch []Extent
		if changed != nil {
			ch = changed[name]
		}
		if _, err := b.AddDisk(ctx, DiskSource{Name: name, Size: int64(len(data)), Reader: bytes.NewReader(data), Changed: ch}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := b.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// restoreBytes restores a disk through Restore into a temp file.
func restoreBytes(t testing.TB, s *Store, id point.ID, disk string) []byte {
	t.Helper()
	r, err := s.OpenDisk(id, disk)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := filepath.Join(t.TempDir(), "out.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(r.Size()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Restore(context.Background(), f, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func readAllAt(t testing.TB, s *Store, id point.ID, disk string) []byte {
	t.Helper()
	r, err := s.OpenDisk(id, disk)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
	if err != nil {
		t.Fatal(err)
	}
	return out
}
