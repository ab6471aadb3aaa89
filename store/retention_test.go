package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"coffer.dev/coffer/store/point"
)

func TestRetentionLock(t *testing.T) {
	s, _ := newTestStore(t, InitOptions{ContainerSize: 1 << 20})
	ctx := context.Background()
	data := synthDisk(41, 8<<20)
	b, err := s.NewBackup(ctx, BackupSpec{Source: "vm", RetainUntil: time.Now().Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddDisk(ctx, DiskSource{Name: "d", Size: int64(len(data)), Reader: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	locked, err := b.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	free := backupBytes(t, s, "vm", map[string][]byte{"d": synthDisk(42, 4<<20)}, nil)

	if err := s.Delete(locked.ID); !errors.Is(err, ErrLocked) {
		t.Fatalf("delete of a locked point: %v, want ErrLocked", err)
	}
	// Locks extend, never shorten.
	if err := s.Lock(locked.ID, time.Now().Add(time.Hour)); !errors.Is(err, ErrLocked) {
		t.Fatalf("shortening a lock: %v, want ErrLocked", err)
	}
	if err := s.Lock(locked.ID, time.Now().Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	until, err := s.RetentionLock(locked.ID)
	if err != nil || until.Before(time.Now().Add(47*time.Hour)) {
		t.Fatalf("lock not extended: %v %v", until, err)
	}
	// Prune with a policy that keeps only the newest point still keeps it.
	plan, err := s.Prune(Retention{Last: 1}, "", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range plan {
		if d.ID == locked.ID && (!d.Keep || d.Deleted) {
			t.Fatalf("prune did not keep the locked point: %+v", d)
		}
	}
	if _, err := s.Point(locked.ID); err != nil {
		t.Fatalf("locked point gone after prune: %v", err)
	}
	// GC keeps its chunks.
	if _, err := s.GC(ctx, GCOptions{CompactBelow: 1}); err != nil {
		t.Fatal(err)
	}
	if got := restoreBytes(t, s, locked.ID, "d"); !bytes.Equal(got, data) {
		t.Fatal("locked point differs after prune and GC")
	}
	// A damaged lock file keeps the point locked.
	if err := os.WriteFile(s.lockPath(locked.ID), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(locked.ID); err == nil {
		t.Fatal("delete succeeded with a damaged lock file")
	}
	// An expired lock no longer protects.
	if err := s.writeLock(free.ID, time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(free.ID); err != nil {
		t.Fatalf("delete after the lock expired: %v", err)
	}
}

func TestPrunePlanGFS(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2026, 1, 1, 22, 0, 0, 0, time.UTC).AddDate(0, 0, d) }
	var pts []*point.RecoveryPoint
	for d := 0; d < 120; d++ {
		pts = append(pts, &point.RecoveryPoint{ID: point.NewID(day(d)), Source: "vm", Created: day(d)})
		if d%10 == 0 { // a second point on some days
			pts = append(pts, &point.RecoveryPoint{ID: point.NewID(day(d).Add(time.Hour)), Source: "vm", Created: day(d).Add(time.Hour)})
		}
	}
	plan := Retention{Daily: 7, Weekly: 4, Monthly: 3}.Plan(pts, func(point.ID) time.Time { return time.Time{} }, day(200))
	kept := 0
	for _, d := range plan {
		if d.Keep {
			kept++
		}
	}
	// 7 days + 4 weeks (the newest already counted once per week, but
	// rules overlap) + 3 months: between 7 and 14 points.
	if kept < 7 || kept > 14 {
		t.Fatalf("GFS kept %d points", kept)
	}
	if !plan[0].Keep || plan[len(plan)-1].Keep {
		t.Fatal("GFS must keep the newest point and drop the oldest")
	}
	if (Retention{}).Empty() != true {
		t.Fatal("empty policy not detected")
	}
}
