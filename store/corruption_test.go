package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"coffer.dev/coffer/store/container"
	"coffer.dev/coffer/store/diskmap"
)

// TestCorruptContainer flips bytes inside one container's region: verify
// must name exactly the points that use it, restoring a damaged range must
// fail, and the other points must restore.
func TestCorruptContainer(t *testing.T) {
	s, dir := newTestStore(t, InitOptions{ContainerSize: 1 << 20})
	ctx := context.Background()
	a := synthDisk(51, 6<<20)
	b := synthDisk(52, 6<<20)
	pa := backupBytes(t, s, "vm-a", map[string][]byte{"d": a}, nil)
	pb := backupBytes(t, s, "vm-b", map[string][]byte{"d": b}, nil)
	pa2 := backupBytes(t, s, "vm-a", map[string][]byte{"d": a}, nil) // same data as pa
	// Find a data container used only by vm-a: the first one written.
	ids, err := s.containerFiles()
	if err != nil {
		t.Fatal(err)
	}
	var victim uint64
	for _, id := range ids {
		r, err := s.openContainer(id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Header.Kind == container.KindData {
			victim = id
			break
		}
	}
	s.Close()
	flip(t, filepath.Join(dir, containersDir), victim, 0.3)

	s = openTestStore(t, dir)
	rep, err := s.Verify(ctx, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	damaged := map[string]bool{}
	for _, id := range rep.Damaged {
		damaged[string(id)] = true
	}
	if !damaged[string(pa.ID)] || !damaged[string(pa2.ID)] || damaged[string(pb.ID)] || len(rep.Damaged) != 2 {
		t.Fatalf("verify named %v; want exactly %s and %s", rep.Damaged, pa.ID, pa2.ID)
	}
	var rng DamagedRange
	for _, p := range rep.Points {
		if p.ID == pa.ID {
			if len(p.Disks) != 1 || len(p.Disks[0].Damaged) == 0 {
				t.Fatalf("no damaged ranges reported: %+v", p)
			}
			rng = p.Disks[0].Damaged[0]
		}
	}
	// Reading the damaged range fails loudly; reading elsewhere works.
	r, err := s.OpenDisk(pa.ID, "d")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, min(rng.Length, 4096))
	if _, err := r.ReadAt(buf, rng.Offset); !errors.Is(err, ErrDamaged) {
		t.Fatalf("read of damaged range at %d: %v, want ErrDamaged", rng.Offset, err)
	}
	if rng.Offset > 0 {
		if _, err := r.ReadAt(buf[:1], 0); err != nil && rng.Offset > 0 && !strings.Contains(err.Error(), "damaged") {
			t.Fatalf("read before the damage: %v", err)
		}
	}
	out := filepath.Join(t.TempDir(), "out")
	f, _ := os.Create(out)
	if _, err := r.Restore(ctx, f, RestoreOptions{}); err == nil {
		t.Fatal("restore of a damaged point succeeded")
	}
	f.Close()
	if got := restoreBytes(t, s, pb.ID, "d"); !bytes.Equal(got, b) {
		t.Fatal("undamaged point differs")
	}
	// GC refuses nothing here (maps are intact) and keeps the damage visible.
	if _, err := s.GC(ctx, GCOptions{}); err != nil {
		t.Fatal(err)
	}
	rep, err = s.Verify(ctx, VerifyOptions{})
	if err != nil || len(rep.Damaged) != 2 {
		t.Fatalf("after GC verify names %v (%v)", rep.Damaged, err)
	}
}

// TestCorruptMapChunk damages a level-1 map: the whole range is reported,
// and GC refuses to run rather than collect what the map referred to.
func TestCorruptMapContainer(t *testing.T) {
	s, dir := newTestStore(t, InitOptions{ContainerSize: 1 << 20})
	ctx := context.Background()
	a := synthDisk(61, 3*diskmap.RangeSize/2)
	pa := backupBytes(t, s, "vm-a", map[string][]byte{"d": a}, nil)
	ids, _ := s.containerFiles()
	var victim uint64
	for _, id := range ids {
		r, err := s.openContainer(id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Header.Kind == container.KindMap {
			victim = id
		}
	}
	s.Close()
	flip(t, filepath.Join(dir, containersDir), victim, 0.2)
	s = openTestStore(t, dir)
	rep, err := s.Verify(ctx, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Damaged) != 1 || rep.Damaged[0] != pa.ID {
		t.Fatalf("verify named %v, want %s", rep.Damaged, pa.ID)
	}
	if _, err := s.GC(ctx, GCOptions{}); !errors.Is(err, ErrGCUnsafe) {
		t.Fatalf("GC with a damaged map: %v, want ErrGCUnsafe", err)
	}
}

// TestCorruptIndex damages the index files: the store detects it, rebuilds
// the index from the containers, and every point restores.
func TestCorruptIndex(t *testing.T) {
	s, dir := newTestStore(t, InitOptions{ContainerSize: 1 << 20})
	ctx := context.Background()
	a := synthDisk(71, 8<<20)
	b := synthDisk(72, 8<<20)
	pa := backupBytes(t, s, "vm-a", map[string][]byte{"d": a}, nil)
	pb := backupBytes(t, s, "vm-b", map[string][]byte{"d": b}, nil)
	s.Close()
	// Damage every index file in its middle.
	entries, err := os.ReadDir(filepath.Join(dir, indexDir))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		p := filepath.Join(dir, indexDir, e.Name())
		st, err := os.Stat(p)
		if err != nil || st.Size() < 64 {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for k := len(data) / 3; k < len(data)/3+32; k++ {
			data[k] ^= 0x5a
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no index files to damage")
	}
	s, err = Open(ctx, dir, testKey, Options{MinFreeBytes: -1})
	if err != nil {
		t.Fatalf("open with a damaged index: %v", err)
	}
	defer s.Close()
	if aside, _ := filepath.Glob(filepath.Join(dir, damagedDir, "index-*")); len(aside) != 1 {
		t.Fatalf("the damaged index was not set aside and rebuilt: %v", aside)
	}
	rep, err := s.Verify(ctx, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("verify after index damage names %v", rep.Damaged)
	}
	for id, want := range map[string][]byte{string(pa.ID): a, string(pb.ID): b} {
		p, _ := s.Point(pointID(id))
		if got := restoreBytes(t, s, p.ID, "d"); !bytes.Equal(got, want) {
			t.Fatalf("point %s differs after index damage", id)
		}
	}
}

// flip damages a container file: frac of the way into its regions.
func flip(t *testing.T, root string, id uint64, frac float64) {
	t.Helper()
	var path string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".ctr") && strings.Contains(p, hex16(id)) {
			path = p
		}
		return nil
	})
	if path == "" {
		t.Fatalf("container %d not found", id)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	off := int64(float64(st.Size()) * frac)
	buf := make([]byte, 16)
	if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] ^= 0xff
	}
	if _, err := f.WriteAt(buf, off); err != nil {
		t.Fatal(err)
	}
}
