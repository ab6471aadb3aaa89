package index

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"coffer.dev/coffer/store/chunk"
)

func id(b byte) chunk.ID {
	var x chunk.ID
	for i := range x {
		x[i] = b ^ byte(i*7)
	}
	return x
}

func TestIndexLifecycle(t *testing.T) {
	dir := t.TempDir()
	x, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ids := []chunk.ID{id(1), id(2), id(3)}
	if err := x.AddContainer(ContainerRecord{ID: 7, Kind: 1, Size: 100, Raw: 300, Entries: 3}, ids); err != nil {
		t.Fatal(err)
	}
	for _, c := range ids {
		if !x.MayContain(c) {
			t.Fatal("summary vector lost an added chunk")
		}
		ctr, ok, err := x.Lookup(c)
		if err != nil || !ok || ctr != 7 {
			t.Fatalf("lookup: %d %v %v", ctr, ok, err)
		}
	}
	if _, ok, _ := x.Lookup(id(9)); ok {
		t.Fatal("lookup of an unknown chunk succeeded")
	}
	if err := x.Apply([]Change{{ID: id(1), Delete: true}, {ID: id(2), To: 8}}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := x.Lookup(id(1)); ok {
		t.Fatal("deleted entry still there")
	}
	if ctr, _, _ := x.Lookup(id(2)); ctr != 8 {
		t.Fatalf("moved entry points at %d", ctr)
	}
	if err := x.SetContainerState(7, Condemned); err != nil {
		t.Fatal(err)
	}
	rec, ok, err := x.Container(7)
	if err != nil || !ok || rec.State != Condemned || rec.Raw != 300 {
		t.Fatalf("record: %+v %v %v", rec, ok, err)
	}
	first, err := x.ReserveContainerIDs(64, 1)
	if err != nil || first != 1 {
		t.Fatalf("reserve: %d %v", first, err)
	}
	second, _ := x.ReserveContainerIDs(64, 1)
	if second != 65 {
		t.Fatalf("second reservation starts at %d, want 65", second)
	}
	if x.Chunks() != 2 {
		t.Fatalf("%d chunks counted, want 2", x.Chunks())
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopen: everything persisted, the summary vector rebuilt.
	x, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if x.Chunks() != 2 || !x.MayContain(id(2)) {
		t.Fatalf("after reopen: %d chunks", x.Chunks())
	}
	if third, _ := x.ReserveContainerIDs(1, 1); third != 129 {
		t.Fatalf("after reopen the next container ID is %d, want 129", third)
	}
	n := 0
	x.Containers(func(ContainerRecord) error { n++; return nil })
	if n != 1 {
		t.Fatalf("%d container records", n)
	}
}

func TestDamagedTableIsDetected(t *testing.T) {
	dir := t.TempDir()
	x, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []chunk.ID
	for i := 0; i < 20000; i++ {
		var c chunk.ID
		c[0], c[1], c[2] = byte(i), byte(i>>8), byte(i>>16)
		ids = append(ids, c)
	}
	if err := x.AddContainer(ContainerRecord{ID: 1, Entries: uint32(len(ids))}, ids); err != nil {
		t.Fatal(err)
	}
	x.Close()
	tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(tables) == 0 {
		t.Fatal("no table written on close")
	}
	data, _ := os.ReadFile(tables[0])
	copy(data[len(data)/2:], bytes.Repeat([]byte{0xee}, 64))
	os.WriteFile(tables[0], data, 0o600)
	if _, err := Open(dir, Options{}); err == nil {
		t.Fatal("a damaged table was not detected")
	}
}

func TestFilterFalsePositiveRate(t *testing.T) {
	f := NewFilter(1 << 16)
	for i := 0; i < 200000; i++ { // grows past its first capacity
		f.Add(uid(i))
	}
	for i := 0; i < 200000; i++ {
		if !f.MayContain(uid(i)) {
			t.Fatal("false negative")
		}
	}
	fp := 0
	for i := 1 << 24; i < 1<<24+100000; i++ {
		if f.MayContain(uid(i)) {
			fp++
		}
	}
	if rate := float64(fp) / 100000; rate > 0.05 {
		t.Fatalf("false positive rate %.3f", rate)
	}
	if per := float64(f.Bytes()) / 200000; per > 4 {
		t.Fatalf("%.1f bytes per chunk", per)
	}
}

// uid derives distinct, uniformly distributed IDs (like real keyed hashes).
func uid(i int) chunk.ID {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(i))
	return chunk.ID(sha256.Sum256(b[:]))
}

// FuzzContainerRecord checks the decoder of container records.
func FuzzContainerRecord(f *testing.F) {
	f.Add(ContainerRecord{ID: 3, State: Live, Kind: 1, Size: 1 << 20, Raw: 3 << 20, Entries: 99}.marshal())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := unmarshalRecord(5, b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.marshal(), b) || r.ID != 5 {
			t.Fatalf("record does not round-trip: %+v", r)
		}
	})
}
