package point_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"testing/cryptotest"

	"coffer.dev/coffer/store/chunk"
	"coffer.dev/coffer/store/crypt"
	"coffer.dev/coffer/store/point"
)

// seedPoint is a point that uses every field, kept short: the fuzzer
// minimizes the inputs it finds in time quadratic in their size.
func seedPoint() *point.RecoveryPoint {
	p := minimalPoint()
	p.Base = otherID
	p.Consistency = point.CrashConsistent
	p.Labels = map[string]string{"k": "v"}
	p.Metadata = map[string]json.RawMessage{"m": json.RawMessage(`[1]`)}
	p.Disks = append(p.Disks, point.Disk{Name: "e", Size: 9, Groups: []chunk.ID{cid("g")}, Incremental: true,
		Stats: point.Stats{Logical: 9, Data: 1}, Metadata: json.RawMessage(`{}`)})
	return p
}

// Seeds of FuzzDecode: with seal false the input is a point file; with seal
// true it is a point file whose record is in clear, sealed by the target,
// so that the fuzzer reaches the JSON and the validation.
func pointSeeds(tb testing.TB) []fuzzSeed {
	aead := testAEAD(tb)
	enc := func(p *point.RecoveryPoint) []byte {
		b, err := point.Encode(p, aead)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	inClear := func(id point.ID, plain []byte) []byte {
		return append([]byte(magic+string(id)+"\n"), plain...)
	}
	full := enc(seedPoint())
	flipped := bytes.Clone(full)
	flipped[len(flipped)-30] ^= 2
	renamed := seedPoint()
	renamed.ID = otherID
	invalid := seedPoint()
	invalid.Disks[0].Groups = nil
	return []fuzzSeed{
		seed("full", full, false),
		seed("minimal", enc(minimalPoint()), false),
		seed("flipped", flipped, false),
		seed("truncated", full[:len(full)-1], false),
		seed("other-key", func() []byte { b, _ := point.Encode(minimalPoint(), otherAEAD(tb)); return b }(), false),
		seed("clear-full", inClear(testID, mustJSON(tb, seedPoint())), true),
		seed("clear-minimal", inClear(testID, mustJSON(tb, minimalPoint())), true),
		seed("clear-renamed", inClear(testID, mustJSON(tb, renamed)), true),
		seed("clear-invalid", inClear(testID, mustJSON(tb, invalid)), true),
		seed("clear-null-fields", inClear(testID, []byte(`{"id":"`+string(testID)+`","source":"h","labels":null,"metadata":{"a":null},"disks":[{"name":"d","size":4096,"groups":[""],"metadata":null}]}`)), true),
		seed("clear-not-json", inClear(testID, []byte("{")), true),
		seed("no-id-line", []byte(magic+"20261123T081846.000000Z-3fa9c2e1"), true),
	}
}

func TestWriteFuzzSeeds(t *testing.T) {
	skipUnlessWritingSeeds(t)
	cryptotest.SetGlobalRandom(t, 1) // the same seeds every time
	writeFuzzSeeds(t, "FuzzDecode", pointSeeds(t))
}

// sealRecord seals the clear record of b, a point file, under aead.
func sealRecord(aead *crypt.AEAD, b []byte) []byte {
	if !bytes.HasPrefix(b, []byte(magic)) {
		return b
	}
	rest := b[len(magic):]
	nl := bytes.IndexByte(rest, '\n')
	if nl < 0 {
		return b
	}
	return sealPoint(aead, point.ID(rest[:nl]), rest[nl+1:])
}

func FuzzDecode(f *testing.F) {
	aead := testAEAD(f)
	other := otherAEAD(f)
	addSeeds(f, pointSeeds(f))
	f.Fuzz(func(t *testing.T, b []byte, seal bool) {
		if seal {
			b = sealRecord(aead, b)
		}
		p, err := point.Decode(b, aead)
		if err != nil {
			if !errors.Is(err, point.ErrFormat) && !errors.Is(err, crypt.ErrAuth) {
				t.Fatalf("error is neither ErrFormat nor ErrAuth: %v", err)
			}
			if p != nil {
				t.Fatal("point returned with an error")
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("decoded point is invalid: %v", err)
		}
		if !bytes.HasPrefix(b, []byte(magic+string(p.ID)+"\n")) {
			t.Fatalf("point %s decoded from a file named otherwise", p.ID)
		}
		// Whatever is accepted re-encodes, and decodes to the same record.
		enc, err := point.Encode(p, aead)
		if err != nil {
			t.Fatalf("accepted point does not re-encode: %v", err)
		}
		p2, err := point.Decode(enc, aead)
		if err != nil {
			t.Fatalf("re-encoded point rejected: %v", err)
		}
		j1, err1 := json.Marshal(p)
		j2, err2 := json.Marshal(p2)
		if err1 != nil || err2 != nil || !bytes.Equal(j1, j2) {
			t.Fatalf("round trip changed the record:\n%s\n%s", j1, j2)
		}
		if _, err := point.Decode(b, other); !errors.Is(err, crypt.ErrAuth) {
			t.Fatalf("another key: got %v, want ErrAuth", err)
		}
	})
}
