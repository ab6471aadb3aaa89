package store

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestDiskFull backs up into a small tmpfs that fills up: the backup fails
// with ErrNoSpace, nothing committed is lost, the store reopens and
// verifies clean, and once space is freed backups work again.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test mounts a tmpfs and must run as root (CI does)")
	}
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=160m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	dir := filepath.Join(mnt, "store")
	if err := Init(dir, testKey, InitOptions{ContainerSize: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The free-space guard is disabled so that the file system really fills.
	s, err := Open(ctx, dir, testKey, Options{MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	small := synthDisk(81, 8<<20)
	p1 := backupBytes(t, s, "small", map[string][]byte{"d": small}, nil)

	big := make([]byte, 192<<20) // incompressible: cannot fit
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < len(big); i += 8 {
		v := r.Uint64()
		for k := 0; k < 8; k++ {
			big[i+k] = byte(v >> (8 * k))
		}
	}
	b, err := s.NewBackup(ctx, BackupSpec{Source: "big"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.AddDisk(ctx, DiskSource{Name: "d", Size: int64(len(big)), Reader: bytes.NewReader(big)})
	if err == nil {
		_, err = b.Commit(ctx)
	} else {
		b.Abort()
	}
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("backup into a full file system: %v, want ErrNoSpace", err)
	}
	t.Logf("full disk reported as: %v", err)
	if _, err := os.Stat(filepath.Join(dir, reserveFile)); err == nil {
		t.Fatal("the space reserve was not released when the disk filled")
	}
	if err := s.Close(); err != nil {
		t.Logf("close on a full disk: %v", err)
	}

	s, err = Open(ctx, dir, testKey, Options{MinFreeBytes: -1})
	if err != nil {
		t.Fatalf("reopen after the disk filled: %v", err)
	}
	defer s.Close()
	pts, err := s.Points()
	if err != nil || len(pts) != 1 || pts[0].ID != p1.ID {
		t.Fatalf("points after the failure: %v %v", pts, err)
	}
	if got := restoreBytes(t, s, p1.ID, "d"); !bytes.Equal(got, small) {
		t.Fatal("committed point differs after the disk filled")
	}
	rep, err := s.Verify(ctx, VerifyOptions{})
	if err != nil || !rep.OK() {
		t.Fatalf("verify after the disk filled: %v %+v", err, rep)
	}
	// GC reclaims the aborted backup's sealed containers; then a backup fits.
	if _, err := s.GC(ctx, GCOptions{}); err != nil {
		t.Fatal(err)
	}
	p2 := backupBytes(t, s, "small2", map[string][]byte{"d": synthDisk(82, 4<<20)}, nil)
	if p2 == nil {
		t.Fatal("no backup after GC")
	}
	// The free-space guard refuses a backup before the disk is full.
	s2 := s
	s2.opt.MinFreeBytes = 1 << 40
	if _, err := s2.NewBackup(ctx, BackupSpec{Source: "x"}); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("backup with less free space than reserved: %v, want ErrNoSpace", err)
	}
}
