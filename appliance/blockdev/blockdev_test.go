package blockdev

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAllocatedSkipsHoles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sparse.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(64 << 20); err != nil {
		t.Fatal(err)
	}
	f.WriteAt(bytes.Repeat([]byte{1}, 8192), 1<<20)
	f.WriteAt(bytes.Repeat([]byte{2}, 4096), 40<<20)
	f.Close()
	d, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Size() != 64<<20 || d.IsBlockDevice() {
		t.Fatalf("size %d block %v", d.Size(), d.IsBlockDevice())
	}
	exts, err := d.Allocated()
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, e := range exts {
		total += e.Length
	}
	if len(exts) != 2 || total > 1<<20 {
		t.Fatalf("allocated extents %v", exts)
	}
	if exts[0].Offset > 1<<20 || exts[0].Offset+exts[0].Length < 1<<20+8192 {
		t.Fatalf("first extent %v does not cover the data", exts[0])
	}
}

func TestOutputRefusesToOverwriteAndWritesVectors(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.img")
	os.WriteFile(p, []byte("precious"), 0o600)
	if _, err := CreateOutput(p, 1<<20, false); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("overwrite without force: %v", err)
	}
	o, err := CreateOutput(p, 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	bufs := [][]byte{[]byte("abc"), bytes.Repeat([]byte{'x'}, 70000), []byte("z")}
	if n, err := o.WriteVecAt(bufs, 4096); err != nil || n != 70004 {
		t.Fatalf("WriteVecAt: %d %v", n, err)
	}
	if err := o.Sync(); err != nil {
		t.Fatal(err)
	}
	o.Close()
	got, _ := os.ReadFile(p)
	if len(got) != 1<<20 || string(got[4096:4099]) != "abc" || got[4099] != 'x' || got[4096+70003] != 'z' || got[0] != 0 {
		t.Fatal("vector write landed wrong")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("opened a missing disk")
	}
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o600)
	if _, err := Open(empty); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty disk: %v", err)
	}
}
