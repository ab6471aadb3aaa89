package diskcmp

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

type write struct {
	off int64
	b   []byte
}

// writeSparse creates a sparse file of size bytes with the given writes.
func writeSparse(t *testing.T, path string, size int64, writes []write) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for _, w := range writes {
		if _, err := f.WriteAt(w.b, w.off); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDiffAndEqual(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	const size = 64<<20 + 1000 // not a multiple of the block size
	const blk = 64 << 10
	same := make([]byte, 3*blk)
	for i := range same {
		same[i] = byte(i)
	}
	writeSparse(t, a, size, []write{
		{0, same},
		{20 << 20, []byte("old")},
		{40 << 20, []byte{0}}, // allocated zeros: equal to a hole
	})
	writeSparse(t, b, size, []write{
		{0, same},
		{20 << 20, []byte("new")},
		{20<<20 + 70, make([]byte, blk)}, // zeros over zeros
		{30<<20 + 5, make([]byte, 2*blk)},
		{30<<20 + 10, []byte("x")},  // changes block 30<<20
		{30<<20 + blk, []byte("y")}, // and the next one (merged)
		{size - 10, []byte("tail")}, // the short last block
	})
	got, err := Diff(a, b, blk)
	if err != nil {
		t.Fatal(err)
	}
	want := []Extent{
		{20 << 20, blk},
		{30 << 20, 2 * blk},
		{size - 1000, 1000},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Diff = %v, want %v", got, want)
	}
	if eq, off, err := Equal(a, b); err != nil || eq || off != 20<<20 {
		t.Fatalf("Equal(a, b) = %v, %d, %v", eq, off, err)
	}
	if eq, _, err := Equal(a, a); err != nil || !eq {
		t.Fatalf("Equal(a, a) = %v, %v", eq, err)
	}
	n, err := DataBytes(a)
	if err != nil || n == 0 || n >= size {
		t.Fatalf("DataBytes = %d, %v", n, err)
	}
}
