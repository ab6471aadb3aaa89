package statefile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "dir")
	p := filepath.Join(dir, "state.json")
	if err := WriteJSON(p, map[string]int{"a": 1}, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("second\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "second\n" {
		t.Fatalf("%q %v", b, err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
	// A failed write leaves the old content and no temporary file.
	if err := WriteJSON(p, func() {}, 0o600); err == nil {
		t.Fatal("unencodable value written")
	}
	if err := os.Chmod(dir, 0o500); err == nil && os.Geteuid() != 0 {
		if err := Write(p, []byte("third"), 0o600); err == nil {
			t.Error("write into a read-only directory succeeded")
		}
		os.Chmod(dir, 0o700)
	}
	if b, _ := os.ReadFile(p); string(b) != "second\n" {
		t.Errorf("old content lost: %q", b)
	}
}
