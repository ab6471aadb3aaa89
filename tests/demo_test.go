package tests

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemo runs what `make demo` runs, smaller: it must succeed on a fresh
// machine and restore both points bit for bit.
func TestDemo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	out, err := exec.Command(cofferBin, "demo", "--dir", dir, "--size", "96").CombinedOutput()
	if err != nil {
		t.Fatalf("coffer demo: %v\n%s", err, out)
	}
	for _, want := range []string{"restored day 1 is identical", "restored day 2 is identical", "all points are intact", "dedup ratio"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}
