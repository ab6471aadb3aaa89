package fsys

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestMappedFile(t *testing.T) {
	vol := make([]byte, 100)
	for i := range vol {
		vol[i] = byte(i)
	}
	// File of 30 bytes: [0,5) at 50, hole [5,10), [10,20) at 10, hole to the end.
	f := &MappedFile{R: bytes.NewReader(vol), Length: 30, FS: "test",
		Extents: []Extent{{0, 50, 5}, {10, 10, 10}}}
	want := make([]byte, 30)
	copy(want[0:5], vol[50:55])
	copy(want[10:20], vol[10:20])
	for _, tc := range []struct {
		off, n int64
		err    error
	}{{0, 30, nil}, {3, 10, nil}, {7, 2, nil}, {15, 100, io.EOF}, {29, 1, nil}, {30, 1, io.EOF}} {
		p := bytes.Repeat([]byte{0xEE}, int(tc.n))
		n, err := f.ReadAt(p, tc.off)
		wn := min(tc.n, max(0, 30-tc.off))
		if int64(n) != wn || !errors.Is(err, tc.err) && err != tc.err {
			t.Fatalf("ReadAt(%d, %d) = %d, %v; want %d, %v", tc.n, tc.off, n, err, wn, tc.err)
		}
		if !bytes.Equal(p[:n], want[tc.off:tc.off+int64(n)]) {
			t.Fatalf("ReadAt(%d, %d) = %v", tc.n, tc.off, p[:n])
		}
	}
	if _, err := f.ReadAt(make([]byte, 1), -1); err == nil {
		t.Fatal("negative offset accepted")
	}
	// An extent beyond the volume's end is an error, never zeros.
	bad := &MappedFile{R: bytes.NewReader(vol), Length: 10, Extents: []Extent{{0, 95, 10}}}
	if _, err := bad.ReadAt(make([]byte, 10), 0); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short volume read: %v", err)
	}
}
