package ext4

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"coffer.dev/coffer/appliance/catalog/fsys"
)

// smallImage builds a small ext4 image with a few files and returns its bytes.
func smallImage(t testing.TB, size, fstype string, args ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	for _, p := range []string{"a/b/c", "d"} {
		if err := os.MkdirAll(filepath.Join(tree, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{"a/one": "1", "a/b/two": strings.Repeat("two ", 3000), "d/three": "333"}
	for p, c := range files {
		if err := os.WriteFile(filepath.Join(tree, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a/one", filepath.Join(tree, "ln")); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "s.img")
	mkfs(t, img, tree, size, append([]string{"-t", fstype, "-b", "1024", "-N", "32"}, args...)...)
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// walkAll walks fs and reads the start of every file, as a catalog would.
func walkAll(fs *FS) error {
	return fs.Walk(context.Background(), func(e *fsys.Entry) error {
		if e.Type != fsys.TypeFile {
			return nil
		}
		f, err := fs.Open(e)
		if err != nil {
			return err
		}
		buf := make([]byte, min(f.Size(), 1<<16))
		if _, err := f.ReadAt(buf, 0); err != nil && err != io.EOF {
			return err
		}
		return nil
	})
}

func TestCorruption(t *testing.T) {
	pristine := smallImage(t, "1M", "ext4", "-g", "256", "-O", "^has_journal")
	le := binary.LittleEndian
	sb := func(b []byte) []byte { return b[1024:2048] }
	// Locate structures in the pristine image.
	fs0, err := Open(bytes.NewReader(pristine), int64(len(pristine)))
	if err != nil {
		t.Fatal(err)
	}
	if f, err := fs0.Check(context.Background()); err != nil || len(f) != 0 {
		t.Fatalf("pristine image: %v %q", err, f)
	}
	rootOff, _, _, err := fs0.inodeLoc(rootIno)
	if err != nil {
		t.Fatal(err)
	}
	gdtOff := int((fs0.sb.firstDataBlock + 1)) * int(fs0.bs)
	backupOff := int(fs0.sb.firstDataBlock+fs0.sb.blocksPerGroup) * int(fs0.bs)
	if len(fs0.gds) < 2 {
		t.Fatalf("small image has %d groups, want 2+", len(fs0.gds))
	}

	tests := []struct {
		name     string
		damage   func(b []byte) []byte
		openErr  string // substring of Open's error; "" if Open succeeds
		notRecog bool
		walkErr  bool
		finding  string // substring of a Check finding
	}{
		{name: "zero magic", damage: func(b []byte) []byte { le.PutUint16(sb(b)[0x38:], 0); return b },
			openErr: "magic", notRecog: true},
		{name: "too small", damage: func(b []byte) []byte { return b[:1500] }, openErr: "too small", notRecog: true},
		{name: "truncated", damage: func(b []byte) []byte { return b[:len(b)/2] }, openErr: "truncated"},
		{name: "block size", damage: func(b []byte) []byte { le.PutUint32(sb(b)[0x18:], 20); return b }, openErr: "block size"},
		{name: "blocks per group", damage: func(b []byte) []byte { le.PutUint32(sb(b)[0x20:], 0); return b }, openErr: "blocks per group"},
		{name: "inode size", damage: func(b []byte) []byte { le.PutUint16(sb(b)[0x58:], 100); return b }, openErr: "inode size"},
		{name: "inode count", damage: func(b []byte) []byte { le.PutUint32(sb(b)[0x00:], 1<<30); return b }, openErr: "inodes"},
		{name: "superblock checksum", damage: func(b []byte) []byte { sb(b)[0x3FC] ^= 1; return b },
			finding: "primary superblock checksum"},
		{name: "descriptor checksum", damage: func(b []byte) []byte { b[gdtOff+0x0C] ^= 0x40; return b },
			finding: "group 0 descriptor checksum"},
		{name: "inode table outside", damage: func(b []byte) []byte { le.PutUint32(b[gdtOff+0x08:], 1<<30); return b },
			finding: "inode table", walkErr: true},
		{name: "backup superblock", damage: func(b []byte) []byte { le.PutUint32(b[backupOff+0x04:], 12345); return b },
			finding: "backup superblock in group 1"},
		{name: "root inode checksum", damage: func(b []byte) []byte { b[int(rootOff)+0x10] ^= 0xFF; return b },
			finding: "inode 2 checksum"},
		{name: "root extent header", damage: func(b []byte) []byte { b[int(rootOff)+0x28] = 0; return b },
			finding: "inode 2 checksum", walkErr: true},
		{name: "root not a directory", damage: func(b []byte) []byte { le.PutUint16(b[int(rootOff):], 0o100644); return b },
			finding: "inode 2 checksum", walkErr: true},
		{name: "root extent depth", damage: func(b []byte) []byte { le.PutUint16(b[int(rootOff)+0x28+6:], 9); return b },
			finding: "inode 2 checksum", walkErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := tc.damage(bytes.Clone(pristine))
			fs, err := Open(bytes.NewReader(img), int64(len(img)))
			if tc.openErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.openErr) {
					t.Fatalf("open: %v, want error with %q", err, tc.openErr)
				}
				if errors.Is(err, fsys.ErrNotRecognized) != tc.notRecog {
					t.Errorf("open: %v: ErrNotRecognized %v, want %v", err, !tc.notRecog, tc.notRecog)
				}
				return
			}
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			findings, err := fs.Check(context.Background())
			if err != nil {
				t.Fatalf("check: %v", err)
			}
			found := false
			for _, f := range findings {
				found = found || strings.Contains(f, tc.finding)
			}
			if !found {
				t.Errorf("findings %q, want one with %q", findings, tc.finding)
			}
			if err := walkAll(fs); (err != nil) != tc.walkErr {
				t.Errorf("walk: %v, want error %v", err, tc.walkErr)
			}
		})
	}
}

// TestRandomDamage flips bytes all over the metadata of a small image: no
// panic, whatever the outcome.
func TestRandomDamage(t *testing.T) {
	pristine := smallImage(t, "1M", "ext4", "-g", "256", "-O", "^has_journal")
	for i := 0; i < 1000; i++ {
		img := bytes.Clone(pristine)
		x := uint32(i)*2654435761 + 12345
		for k := 0; k < 8; k++ {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			img[1024+int(x%uint32(len(img)/4))] ^= byte(x >> 24)
		}
		fs, err := Open(bytes.NewReader(img), int64(len(img)))
		if err != nil {
			continue
		}
		fs.Check(context.Background())
		walkAll(fs)
	}
}

func FuzzOpen(f *testing.F) {
	f.Add(smallImage(f, "128K", "ext4", "-O", "^has_journal,^resize_inode"))
	f.Add(smallImage(f, "128K", "ext4", "-O", "^has_journal,^resize_inode,inline_data,^metadata_csum,^64bit", "-I", "256"))
	f.Add(smallImage(f, "128K", "ext2", "-O", "^resize_inode"))
	f.Fuzz(func(t *testing.T, img []byte) {
		fs, err := Open(bytes.NewReader(img), int64(len(img)))
		if err != nil {
			return
		}
		fs.Check(context.Background())
		walkAll(fs)
	})
}

func FuzzSuperblock(f *testing.F) {
	img := smallImage(f, "128K", "ext4", "-O", "^has_journal,^resize_inode")
	f.Add(img[1024:2048])
	f.Fuzz(func(t *testing.T, b []byte) {
		if sb, err := parseSuperblock(b); err == nil {
			sb.groupCount()
			sb.groupHasSuper(27)
		}
	})
}
