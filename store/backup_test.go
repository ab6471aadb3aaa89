package store

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"

	"coffer.dev/coffer/store/diskmap"
)

func TestRoundTripFullAndIncremental(t *testing.T) {
	s, _ := newTestStore(t, InitOptions{})
	a := synthDisk(1, 40<<20+12345) // not a multiple of the block size
	p1 := backupBytes(t, s, "vm-a", map[string][]byte{"disk0": a}, nil)
	if got := restoreBytes(t, s, p1.ID, "disk0"); !bytes.Equal(got, a) {
		t.Fatal("full restore differs")
	}
	if got := readAllAt(t, s, p1.ID, "disk0"); !bytes.Equal(got, a) {
		t.Fatal("ReadAt differs")
	}
	// Day 2: scattered changes, reported as changed extents.
	a2 := bytes.Clone(a)
	r := rand.New(rand.NewPCG(7, 7))
	var changed []Extent
	for i := 0; i < 40; i++ {
		off := r.Int64N(int64(len(a2) - 70000))
		n := 1 + r.Int64N(65536)
		switch i % 3 {
		case 0:
			clear(a2[off : off+n])
		case 1:
			for k := off; k < off+n; k++ {
				a2[k] = byte(r.Uint32())
			}
		case 2:
			copy(a2[off:off+n], a[r.Int64N(int64(len(a)-int(n))):])
		}
		changed = append(changed, Extent{off, n})
	}
	p2 := backupBytes(t, s, "vm-a", map[string][]byte{"disk0": a2}, map[string][]Extent{"disk0": changed})
	if p2.Base != p1.ID || !p2.Disks[0].Incremental {
		t.Fatalf("point 2 is not incremental on point 1: base %q incremental %v", p2.Base, p2.Disks[0].Incremental)
	}
	// Each changed area is read with at most about a chunk around it and
	// one read-ahead margin.
	var changedBytes int64
	for _, e := range changed {
		changedBytes += e.Length
	}
	if limit := changedBytes + int64(len(changed))*(256<<10); p2.Disks[0].Stats.Read > limit {
		t.Errorf("incremental read %d bytes for %d changed bytes in %d areas (limit %d)", p2.Disks[0].Stats.Read, changedBytes, len(changed), limit)
	}
	if got := restoreBytes(t, s, p2.ID, "disk0"); !bytes.Equal(got, a2) {
		t.Fatal("incremental restore differs")
	}
	if got := restoreBytes(t, s, p1.ID, "disk0"); !bytes.Equal(got, a) {
		t.Fatal("point 1 changed after point 2")
	}
	// A full backup of the same content must give the same maps: the
	// incremental re-chunking agrees with a full pass.
	p3 := backupBytes(t, s, "vm-a-full", map[string][]byte{"disk0": a2}, nil)
	if p3.Disks[0].Groups[0] != p2.Disks[0].Groups[0] {
		t.Fatal("incremental and full backups of the same content have different maps")
	}
	if p3.Stats.New != 0 {
		t.Errorf("full backup of already stored content added %d bytes", p3.Stats.New)
	}
}

func TestRechunkMatchesFullPass(t *testing.T) {
	s, _ := newTestStore(t, InitOptions{})
	c := s.chunker
	for seed := uint64(0); seed < 3000; seed++ {
		r := rand.New(rand.NewPCG(seed, 99))
		size := int64(1+r.IntN(64)) * 4096
		if r.IntN(4) == 0 {
			size -= int64(r.IntN(4000))
		}
		old := synthDisk(seed, int(size))
		if r.IntN(3) == 0 { // sparse blocks of zeros and data
			for i := int64(0); i < size; i += 4096 {
				if r.IntN(3) == 0 {
					clear(old[i:min(i+4096, size)])
				}
			}
		}
		oldMap := s.toExtents(c.Split(nil, old), old)
		nw := bytes.Clone(old)
		var dirty []Extent
		for k := 0; k < 1+r.IntN(4); k++ {
			off := r.Int64N(size)
			n := min(1+r.Int64N(20000), size-off)
			switch r.IntN(3) {
			case 0:
				clear(nw[off : off+n])
			case 1:
				for i := off; i < off+n; i++ {
					nw[i] = byte(r.Uint32())
				}
			case 2:
				for i := off; i < off+n; i++ {
					nw[i] = 0
				}
				if off+n < size {
					nw[off+n-1] = 1
				}
			}
			dirty = append(dirty, Extent{off, n})
		}
		dirty = normalizeExtents(dirty, size)
		want := s.toExtents(c.Split(nil, nw), nw)
		pieces, _, err := rechunk(c, oldMap, dirty, size, func(p []byte, off int64) error {
			copy(p, nw[off:])
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got := make([]diskmap.Extent, len(pieces))
		for i, p := range pieces {
			got[i] = p.ext
			if p.data != nil {
				got[i].ID = s.hashForTest(p.data)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("seed %d: %d extents, full pass %d\nold %v\ndirty %v\ngot %v\nwant %v", seed, len(got), len(want), lens(oldMap), dirty, lens(got), lens(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("seed %d: extent %d = %+v, full pass %+v", seed, i, got[i], want[i])
			}
		}
	}
}

func TestMultiDiskAndMetadata(t *testing.T) {
	s, _ := newTestStore(t, InitOptions{})
	disks := map[string][]byte{"scsi0:0": synthDisk(3, 3<<20), "scsi0:1": synthDisk(4, 5<<20+100)}
	p := backupBytes(t, s, "vm-multi", disks, nil)
	for name, want := range disks {
		if got := restoreBytes(t, s, p.ID, name); !bytes.Equal(got, want) {
			t.Fatalf("disk %s differs", name)
		}
	}
	q, err := s.Point(p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Disks) != 2 || q.Stats.Logical != int64(len(disks["scsi0:0"])+len(disks["scsi0:1"])) {
		t.Fatalf("point read back wrong: %+v", q.Stats)
	}
	if _, err := s.OpenDisk(p.ID, "nope"); err == nil {
		t.Fatal("opening a missing disk succeeded")
	}
	_ = context.Background()
}

// TestLatestWithinOneSecond: points made in quick succession keep their
// order, so an incremental bases on the newest one.
func TestLatestWithinOneSecond(t *testing.T) {
	s, _ := newTestStore(t, InitOptions{})
	var last string
	for i := 0; i < 5; i++ {
		p := backupBytes(t, s, "vm", map[string][]byte{"d": synthDisk(uint64(90+i), 1<<20)}, nil)
		last = string(p.ID)
	}
	b, err := s.NewBackup(context.Background(), BackupSpec{Source: "vm"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Abort()
	if b.Base() == nil || string(b.Base().ID) != last {
		t.Fatalf("base is %v, want the newest point %s", b.Base(), last)
	}
	ids, _ := s.PointIDs()
	if string(ids[len(ids)-1]) != last {
		t.Fatalf("points do not list in creation order: %v", ids)
	}
}
