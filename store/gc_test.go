package store

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"coffer.dev/coffer/store/point"
)

func TestGCReclaimsDeletedPoints(t *testing.T) {
	s, _ := newTestStore(t, InitOptions{ContainerSize: 1 << 20})
	ctx := context.Background()
	a := synthDisk(11, 24<<20)
	b := synthDisk(12, 24<<20)
	pa := backupBytes(t, s, "vm-a", map[string][]byte{"d": a}, nil)
	pb := backupBytes(t, s, "vm-b", map[string][]byte{"d": b}, nil)
	before, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	dry, err := s.GC(ctx, GCOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if dry.BytesFreed != 0 {
		t.Fatalf("GC with every point alive would free %d bytes", dry.BytesFreed)
	}
	if err := s.Delete(pa.ID); err != nil {
		t.Fatal(err)
	}
	dry, err = s.GC(ctx, GCOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.GC(ctx, GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.BytesFreed == 0 || after.Stored >= before.Stored {
		t.Fatalf("GC freed %d bytes; stored %d -> %d", st.BytesFreed, before.Stored, after.Stored)
	}
	if dry.BytesFreed != st.BytesFreed {
		t.Errorf("dry run predicted %d bytes, GC freed %d", dry.BytesFreed, st.BytesFreed)
	}
	if got := restoreBytes(t, s, pb.ID, "d"); !bytes.Equal(got, b) {
		t.Fatal("surviving point differs after GC")
	}
	rep, err := s.Verify(ctx, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("verify after GC: %+v", rep.Damaged)
	}
	// A second GC finds nothing more, and the store reopens cleanly.
	st2, err := s.GC(ctx, GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st2.BytesFreed != 0 {
		t.Errorf("second GC freed %d bytes", st2.BytesFreed)
	}
	// Backing up A again after its chunks are gone stores them anew.
	pa2 := backupBytes(t, s, "vm-a", map[string][]byte{"d": a}, nil)
	if pa2.Stats.New == 0 {
		t.Error("re-backup of collected data stored nothing")
	}
	if got := restoreBytes(t, s, pa2.ID, "d"); !bytes.Equal(got, a) {
		t.Fatal("re-backup differs")
	}
}

func TestGCCompactsPartlyLiveContainers(t *testing.T) {
	s, _ := newTestStore(t, InitOptions{ContainerSize: 8 << 20})
	ctx := context.Background()
	// One stream holding two disks: after deleting the first point, the
	// containers that mix both are partly live and get compacted.
	a := synthDisk(21, 20<<20)
	b := synthDisk(22, 4<<20)
	p1 := backupBytes(t, s, "vm", map[string][]byte{"a": a, "b": b}, nil)
	p2 := backupBytes(t, s, "vm2", map[string][]byte{"b": b}, nil)
	if err := s.Delete(p1.ID); err != nil {
		t.Fatal(err)
	}
	st, err := s.GC(ctx, GCOptions{CompactBelow: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	if st.ContainersCompacted == 0 || st.ChunksMoved == 0 {
		t.Fatalf("nothing compacted: %+v", st)
	}
	if got := restoreBytes(t, s, p2.ID, "b"); !bytes.Equal(got, b) {
		t.Fatal("point differs after compaction")
	}
	rep, err := s.Verify(ctx, VerifyOptions{})
	if err != nil || !rep.OK() {
		t.Fatalf("verify after compaction: %v %+v", err, rep)
	}
}

// TestConcurrentBackupsAndGC runs two backups, a reader and GC at the same
// time (run it under -race): every committed point must restore exactly,
// including points whose chunks GC looked at while they were deduplicated.
func TestConcurrentBackupsAndGC(t *testing.T) {
	s, _ := newTestStore(t, InitOptions{ContainerSize: 1 << 20})
	ctx := context.Background()
	base := synthDisk(31, 12<<20)
	// Garbage for GC to chew on: a point that shares data with what the
	// backups will write, deleted before they start.
	old := backupBytes(t, s, "old", map[string][]byte{"d": base}, nil)
	keep := backupBytes(t, s, "keep", map[string][]byte{"d": synthDisk(32, 6<<20)}, nil)
	if err := s.Delete(old.ID); err != nil {
		t.Fatal(err)
	}
	disks := [][]byte{bytes.Clone(base), synthDisk(33, 12<<20)}
	copy(disks[1][4<<20:], base[:4<<20]) // shared with the garbage too
	var wg sync.WaitGroup
	points := make([]*point.RecoveryPoint, len(disks))
	errs := make(chan error, 8)
	for i := range disks {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			b, err := s.NewBackup(ctx, BackupSpec{Source: []string{"x", "y"}[i]})
			if err != nil {
				errs <- err
				return
			}
			if _, err := b.AddDisk(ctx, DiskSource{Name: "d", Size: int64(len(disks[i])), Reader: &slowReader{bytes.NewReader(disks[i])}}); err != nil {
				errs <- err
				return
			}
			p, err := b.Commit(ctx)
			if err != nil {
				errs <- err
				return
			}
			points[i] = p
		}(i)
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		for k := 0; k < 4; k++ {
			if _, err := s.GC(ctx, GCOptions{CompactBelow: 0.9}); err != nil {
				errs <- err
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	go func() {
		defer wg.Done()
		r, err := s.OpenDisk(keep.ID, "d")
		if err != nil {
			errs <- err
			return
		}
		defer r.Close()
		buf := make([]byte, 64<<10)
		for off := int64(0); off < r.Size(); off += int64(len(buf)) {
			if _, err := r.ReadAt(buf, off); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := s.GC(ctx, GCOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, p := range points {
		if got := restoreBytes(t, s, p.ID, "d"); !bytes.Equal(got, disks[i]) {
			t.Fatalf("backup %d differs after concurrent GC", i)
		}
	}
	rep, err := s.Verify(ctx, VerifyOptions{})
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

// slowReader yields the CPU between reads so that backups and GC interleave.
type slowReader struct{ r *bytes.Reader }

func (s *slowReader) ReadAt(p []byte, off int64) (int, error) {
	time.Sleep(200 * time.Microsecond)
	return s.r.ReadAt(p, off)
}
