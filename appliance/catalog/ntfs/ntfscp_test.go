package ntfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"coffer.dev/coffer/appliance/catalog/fsys"
	"coffer.dev/coffer/appliance/catalog/fsys/fsystest"
)

// TestNtfscpImage reads an image made only with mkntfs and ntfscp (no
// mount): a few hundred files in the root directory — empty, small,
// around cluster boundaries, one large, Unicode names — every one found
// once and read back byte for byte.
func TestNtfscpImage(t *testing.T) {
	img := mkntfs(t, 96<<20)
	src := filepath.Join(t.TempDir(), "src")
	rng := rand.New(rand.NewPCG(3, 4))
	want := map[string][32]byte{}
	sizes := []int{0, 1, 700, 4095, 4096, 4097, 65536, 100000}
	for i := 0; i < 300; i++ {
		n := sizes[i%len(sizes)]
		name := fmt.Sprintf("file-%03d.dat", i)
		switch i % 50 {
		case 7:
			name = fmt.Sprintf("отчёт-%03d.txt", i)
		case 8:
			name = fmt.Sprintf("日本語-%03d.txt", i)
		case 9:
			name = fmt.Sprintf("Café crème %03d.doc", i)
		}
		if i == 123 {
			n = 12 << 20 // a large file
		}
		data := make([]byte, n)
		for k := range data {
			data[k] = byte(rng.Uint32())
		}
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		runTool(t, "ntfscp", "-f", "-q", img, src, name)
		want["/"+name] = sha256.Sum256(data)
	}
	r, size := fsystest.OpenImage(t, img)
	fs, err := Open(r, size)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	err = fs.Walk(context.Background(), func(e *fsys.Entry) error {
		if e.Path == "/" {
			return nil
		}
		if seen[e.Path] {
			return fmt.Errorf("%s twice", e.Path)
		}
		seen[e.Path] = true
		sum, ok := want[e.Path]
		if !ok {
			return fmt.Errorf("unexpected %s", e.Path)
		}
		f, err := fs.Open(e)
		if err != nil {
			return err
		}
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, f.Size())); err != nil {
			return fmt.Errorf("read %s: %w", e.Path, err)
		}
		if !bytes.Equal(h.Sum(nil), sum[:]) {
			return fmt.Errorf("%s differs", e.Path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(want) {
		t.Fatalf("walk found %d of %d files", len(seen), len(want))
	}
}
