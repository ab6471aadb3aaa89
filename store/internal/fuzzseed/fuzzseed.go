// Package fuzzseed writes the committed seed corpora of the store's fuzz
// targets from real encoder output, in the "go test fuzz v1" format.
package fuzzseed

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The committed seed corpus under testdata/fuzz/<Target>/ is written by
// TestWriteFuzzSeeds from real encoder output. Regenerate it with
//
//	COFFER_WRITE_SEEDS=1 go test -run '^TestWriteFuzzSeeds$' ./store/PACKAGE
//
// Generated files are named "seed-*"; any other file in those folders is a
// regression input found by fuzzing and is left alone.
const env = "COFFER_WRITE_SEEDS"

// Seed is one input of a fuzz target: a name for its corpus file and the
// arguments, of exactly the types the target's function takes.
type Seed struct {
	name string
	args []any
}

// New returns a seed.
func New(name string, args ...any) Seed { return Seed{name: name, args: args} }

// Add registers seeds with f.Add.
func Add(f *testing.F, seeds []Seed) {
	for _, s := range seeds {
		f.Add(s.args...)
	}
}

// SkipUnlessWriting skips the seed generator unless asked for.
func SkipUnlessWriting(t *testing.T) {
	if os.Getenv(env) != "1" {
		t.Skipf("set %s=1 to regenerate testdata/fuzz", env)
	}
}

// Write replaces the generated seed files of target.
func Write(t *testing.T, target string, seeds []Seed) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	old, err := filepath.Glob(filepath.Join(dir, "seed-*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range old {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for _, s := range seeds {
		if seen[s.name] || strings.ContainsAny(s.name, `/\ `) {
			t.Fatalf("%s: bad or repeated seed name %q", target, s.name)
		}
		seen[s.name] = true
		if err := os.WriteFile(filepath.Join(dir, "seed-"+s.name), Marshal(s.args...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%s: wrote %d seeds", target, len(seeds))
}

// Marshal encodes values in the "go test fuzz v1" corpus format, as
// the go command writes them.
func Marshal(vals ...any) []byte {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, v := range vals {
		switch t := v.(type) {
		case int, int8, int16, int64, uint, uint16, uint32, uint64, bool:
			fmt.Fprintf(&b, "%T(%v)\n", t, t)
		case string:
			fmt.Fprintf(&b, "string(%q)\n", t)
		case byte:
			fmt.Fprintf(&b, "byte(%q)\n", t)
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", t)
		default:
			panic(fmt.Sprintf("fuzz seed: unsupported type %T", v))
		}
	}
	return b.Bytes()
}
