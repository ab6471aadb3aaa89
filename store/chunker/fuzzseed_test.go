package chunker_test

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
//	COFFER_WRITE_SEEDS=1 go test -run '^TestWriteFuzzSeeds$' ./store/chunker
//
// Generated files are named "seed-*"; any other file in those folders is a
// regression input found by fuzzing and is left alone.
const writeSeedsEnv = "COFFER_WRITE_SEEDS"

// fuzzSeed is one input of a fuzz target: a name for its corpus file and the
// arguments, of exactly the types the target's function takes.
type fuzzSeed struct {
	name string
	args []any
}

func seed(name string, args ...any) fuzzSeed { return fuzzSeed{name: name, args: args} }

// addSeeds registers seeds with f.Add.
func addSeeds(f *testing.F, seeds []fuzzSeed) {
	for _, s := range seeds {
		f.Add(s.args...)
	}
}

// skipUnlessWritingSeeds skips the seed generator unless asked for.
func skipUnlessWritingSeeds(t *testing.T) {
	if os.Getenv(writeSeedsEnv) != "1" {
		t.Skipf("set %s=1 to regenerate testdata/fuzz", writeSeedsEnv)
	}
}

// writeFuzzSeeds replaces the generated seed files of target.
func writeFuzzSeeds(t *testing.T, target string, seeds []fuzzSeed) {
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
		if err := os.WriteFile(filepath.Join(dir, "seed-"+s.name), marshalFuzzSeed(s.args...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%s: wrote %d seeds", target, len(seeds))
}

// marshalFuzzSeed encodes values in the "go test fuzz v1" corpus format, as
// the go command writes them.
func marshalFuzzSeed(vals ...any) []byte {
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
