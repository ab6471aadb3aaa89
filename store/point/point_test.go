package point_test

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"coffer.dev/coffer/store/chunk"
	"coffer.dev/coffer/store/crypt"
	"coffer.dev/coffer/store/diskmap"
	"coffer.dev/coffer/store/point"
)

const (
	testID  point.ID = "20261123T081846.000000Z-3fa9c2e1"
	otherID point.ID = "20261123T081846.000000Z-3fa9c2e2"
	magic            = "CFRPOINT1\n"
)

func newAEAD(tb testing.TB, name string) *crypt.AEAD {
	tb.Helper()
	k := sha256.Sum256([]byte("coffer point test key: " + name))
	a, err := crypt.NewAEAD(k[:])
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func testAEAD(tb testing.TB) *crypt.AEAD  { return newAEAD(tb, "store") }
func otherAEAD(tb testing.TB) *crypt.AEAD { return newAEAD(tb, "other") }

func cid(s string) chunk.ID { return chunk.ID(sha256.Sum256([]byte(s))) }

// testPoint returns a point that uses every field.
func testPoint() *point.RecoveryPoint {
	created := time.Date(2026, 11, 23, 8, 18, 46, 0, time.UTC)
	return &point.RecoveryPoint{
		ID:          testID,
		Source:      "vm/4f1c2a9e-7d3b-4c55-9a0e-2b6f1d8c3e10",
		Created:     created,
		Finished:    created.Add(95 * time.Second),
		Base:        "20261122T081801.000000Z-00ff00ff",
		Consistency: point.ApplicationConsistent,
		Labels:      map[string]string{"policy": "daily", "tier": "gold"},
		Metadata:    map[string]json.RawMessage{"vm": json.RawMessage(`{"cpus":4,"memory_mb":8192}`)},
		Disks: []point.Disk{
			{
				Name:        "sda",
				Size:        diskmap.GroupSize + 5*diskmap.RangeSize,
				Groups:      []chunk.ID{cid("g0"), {}},
				Incremental: true,
				Stats:       point.Stats{Logical: diskmap.GroupSize + 5*diskmap.RangeSize, Data: 1 << 30, Read: 1 << 28, New: 1 << 26, Stored: 1 << 25, Chunks: 60000, NewChunks: 4000},
				Metadata:    json.RawMessage(`{"bus":"virtio","boot":true}`),
			},
			{
				Name:   "sdb",
				Size:   1 << 20,
				Groups: []chunk.ID{cid("g1")},
				Stats:  point.Stats{Logical: 1 << 20, Data: 4096, Read: 4096, New: 4096, Stored: 3000, Chunks: 1, NewChunks: 1},
			},
		},
		Stats: point.Stats{Logical: diskmap.GroupSize + 5*diskmap.RangeSize + 1<<20},
	}
}

// minimalPoint returns the smallest valid point.
func minimalPoint() *point.RecoveryPoint {
	return &point.RecoveryPoint{
		ID: testID, Source: "h", Consistency: point.Unknown,
		Disks: []point.Disk{{Name: "d", Size: 1, Groups: []chunk.ID{{}}}},
	}
}

// sealPoint makes a point file holding plain under the id line id.
func sealPoint(aead *crypt.AEAD, id point.ID, plain []byte) []byte {
	b := append([]byte(magic), id...)
	b = append(b, '\n')
	return aead.Seal(b, plain, []byte(id))
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestNewID(t *testing.T) {
	at := time.Date(2026, 11, 23, 8, 18, 46, 999, time.FixedZone("CET", 3600))
	a, b := point.NewID(at), point.NewID(at)
	for _, id := range []point.ID{a, b} {
		if !id.Valid() {
			t.Fatalf("%q is not valid", id)
		}
		if !strings.HasPrefix(string(id), "20261123T071846.000000Z-") && !strings.HasPrefix(string(id), "20261123T071846.000001Z-") {
			t.Fatalf("%q does not carry the UTC time", id)
		}
	}
	if a == b {
		t.Fatal("two IDs for the same time are equal")
	}
	if later := point.NewID(at.Add(time.Second)); later <= a {
		t.Fatalf("%q does not sort after %q", later, a)
	}
}

func TestIDValid(t *testing.T) {
	for id, want := range map[point.ID]bool{
		testID:                                true,
		"00000000T000000.000000Z-00000000":    true,
		"":                                    false,
		"20261123T081846Z":                    false,
		"20261123T081846.000000Z-3fa9c2e":     false,
		"20261123T081846.000000Z-3fa9c2e1a":   false,
		"20261123T081846.000000Z-3FA9C2E1":    false,
		"20261123t081846Z-3fa9c2e1":           false,
		"2026-11-23T081846Z-3fa9c2e1":         false,
		"20261123T081846.000000Z-3fa9c2e1\n":  false,
		" 20261123T081846.000000Z-3fa9c2e1":   false,
		"20261123T081846.000000Z-3fa9c2e1/..": false,
	} {
		if got := id.Valid(); got != want {
			t.Errorf("%q: Valid() = %v, want %v", id, got, want)
		}
	}
}

func TestValidSource(t *testing.T) {
	for s, want := range map[string]bool{
		"vm-1":                        true,
		"host.example.com":            true,
		"user@host:/dev/sda":          true,
		"a+b=c_d":                     true,
		strings.Repeat("x", 200):      true,
		"":                            false,
		strings.Repeat("x", 201):      false,
		"a b":                         false,
		"../etc":                      false,
		"a/../b":                      false,
		"a..b":                        false,
		"tab\there":                   false,
		"new\nline":                   false,
		"caf\u00e9":                   false,
		"semi;colon":                  false,
		"4f1c2a9e-7d3b-4c55-9a0e-2b6": true,
	} {
		if got := point.ValidSource(s); got != want {
			t.Errorf("%q: ValidSource = %v, want %v", s, got, want)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	if err := testPoint().Validate(); err != nil {
		t.Fatalf("fixture: %v", err)
	}
	if err := minimalPoint().Validate(); err != nil {
		t.Fatalf("minimal fixture: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(p *point.RecoveryPoint)
	}{
		{"empty id", func(p *point.RecoveryPoint) { p.ID = "" }},
		{"malformed id", func(p *point.RecoveryPoint) { p.ID = "20261123T081846.000000Z-XYZ" }},
		{"malformed base", func(p *point.RecoveryPoint) { p.Base = "yesterday" }},
		{"empty source", func(p *point.RecoveryPoint) { p.Source = "" }},
		{"source with dot-dot", func(p *point.RecoveryPoint) { p.Source = "vm/../x" }},
		{"source with a space", func(p *point.RecoveryPoint) { p.Source = "my vm" }},
		{"no disks", func(p *point.RecoveryPoint) { p.Disks = nil }},
		{"empty disk name", func(p *point.RecoveryPoint) { p.Disks[1].Name = "" }},
		{"repeated disk name", func(p *point.RecoveryPoint) { p.Disks[1].Name = p.Disks[0].Name }},
		{"zero size", func(p *point.RecoveryPoint) { p.Disks[1].Size, p.Disks[1].Groups = 0, nil }},
		{"negative size", func(p *point.RecoveryPoint) { p.Disks[1].Size = -4096 }},
		{"size beyond 2^50", func(p *point.RecoveryPoint) {
			p.Disks[1].Size = 1<<50 + 1
			p.Disks[1].Groups = make([]chunk.ID, diskmap.Groups(1<<50+1))
		}},
		{"too few groups", func(p *point.RecoveryPoint) { p.Disks[0].Groups = p.Disks[0].Groups[:1] }},
		{"too many groups", func(p *point.RecoveryPoint) { p.Disks[1].Groups = append(p.Disks[1].Groups, chunk.ID{}) }},
		{"no groups", func(p *point.RecoveryPoint) { p.Disks[1].Groups = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPoint()
			tc.edit(p)
			if err := p.Validate(); err == nil {
				t.Fatal("accepted")
			}
			if _, err := point.Encode(p, testAEAD(t)); err == nil {
				t.Fatal("Encode accepted an invalid point")
			}
		})
	}
}

func TestLargestDisk(t *testing.T) {
	p := minimalPoint()
	p.Disks[0].Size = 1 << 50
	p.Disks[0].Groups = make([]chunk.ID, diskmap.Groups(1<<50))
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	aead := testAEAD(t)
	for _, p := range []*point.RecoveryPoint{testPoint(), minimalPoint()} {
		b, err := point.Encode(p, aead)
		if err != nil {
			t.Fatal(err)
		}
		if want := magic + string(p.ID) + "\n"; !strings.HasPrefix(string(b), want) {
			t.Fatalf("file starts %q, want %q", b[:min(len(b), len(want))], want)
		}
		if len(p.Source) > 8 && strings.Contains(string(b), p.Source) {
			t.Fatal("the record is not encrypted")
		}
		got, err := point.Decode(b, aead)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Fatalf("round trip:\n%+v\n%+v", got, p)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	aead := testAEAD(t)
	good, err := point.Encode(testPoint(), aead)
	if err != nil {
		t.Fatal(err)
	}
	body := len(magic) + len(testID) + 1
	withID := func(id point.ID) []byte {
		p := testPoint()
		p.ID = id
		return mustJSON(t, p)
	}
	invalid := testPoint()
	invalid.Disks[1].Name = "sda"
	for _, tc := range []struct {
		name string
		b    []byte
		aead *crypt.AEAD
		want error
	}{
		{"empty", nil, aead, point.ErrFormat},
		{"bad magic", append([]byte("CFRPOINT2\n"), good[len(magic):]...), aead, point.ErrFormat},
		{"container file", append([]byte("CFRCTNR1"), good[8:]...), aead, point.ErrFormat},
		{"magic only", []byte(magic), aead, point.ErrFormat},
		{"no id line", append([]byte(magic), strings.Repeat("0", 80)...), aead, point.ErrFormat},
		{"malformed id", append([]byte(magic+"20261123T081846.000000Z-3fa9\n"), good[body:]...), aead, point.ErrFormat},
		{"wrong key", good, otherAEAD(t), crypt.ErrAuth},
		{"renamed in the id line", append([]byte(magic+string(otherID)+"\n"), good[body:]...), aead, crypt.ErrAuth},
		{"flipped byte", func() []byte { b := slices.Clone(good); b[len(b)-20] ^= 1; return b }(), aead, crypt.ErrAuth},
		{"truncated", good[:len(good)-1], aead, crypt.ErrAuth},
		{"id line only", good[:body], aead, crypt.ErrAuth},
		{"extended", append(slices.Clone(good), 0), aead, crypt.ErrAuth},
		{"record names another point", sealPoint(aead, testID, withID(otherID)), aead, point.ErrFormat},
		{"not JSON", sealPoint(aead, testID, []byte("not json")), aead, point.ErrFormat},
		{"JSON of the wrong shape", sealPoint(aead, testID, []byte(`[1,2,3]`)), aead, point.ErrFormat},
		{"bad group id", sealPoint(aead, testID, []byte(`{"id":"`+string(testID)+`","source":"h","disks":[{"name":"d","size":1,"groups":["zz"]}]}`)), aead, point.ErrFormat},
		{"short group id", sealPoint(aead, testID, []byte(`{"id":"`+string(testID)+`","source":"h","disks":[{"name":"d","size":1,"groups":["00ff"]}]}`)), aead, point.ErrFormat},
		{"record fails validation", sealPoint(aead, testID, mustJSON(t, invalid)), aead, point.ErrFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := point.Decode(tc.b, tc.aead)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if p != nil {
				t.Fatal("point returned with an error")
			}
		})
	}
	// A record sealed by hand the way Encode seals it is accepted: the
	// cases above differ from a good file only where they say.
	if _, err := point.Decode(sealPoint(aead, testID, mustJSON(t, testPoint())), aead); err != nil {
		t.Fatal(err)
	}
}

func TestDiskJSON(t *testing.T) {
	d := point.Disk{Name: "sda", Size: 2 * diskmap.GroupSize, Groups: []chunk.ID{{}, cid("g")}}
	b := mustJSON(t, d)
	var j map[string]any
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	groups, ok := j["groups"].([]any)
	if !ok || len(groups) != 2 || groups[0] != "" || groups[1] != cid("g").String() {
		t.Fatalf("groups encoded as %v", j["groups"])
	}
	if _, ok := j["metadata"]; ok {
		t.Fatal("empty metadata is written")
	}
	var back point.Disk
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, d) {
		t.Fatalf("round trip: %+v, want %+v", back, d)
	}
	for _, bad := range []string{`{"groups":["xyz"]}`, `{"groups":[1]}`, `{"size":"big"}`, `[]`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func TestDiskLookupAndStats(t *testing.T) {
	p := testPoint()
	d, ok := p.Disk("sdb")
	if !ok || d != &p.Disks[1] {
		t.Fatal("sdb not found")
	}
	if _, ok := p.Disk("sdc"); ok {
		t.Fatal("sdc found")
	}
	var s point.Stats
	for _, d := range p.Disks {
		s.Add(d.Stats)
	}
	a, b := p.Disks[0].Stats, p.Disks[1].Stats
	want := point.Stats{
		Logical: a.Logical + b.Logical, Data: a.Data + b.Data, Read: a.Read + b.Read, New: a.New + b.New,
		Stored: a.Stored + b.Stored, Chunks: a.Chunks + b.Chunks, NewChunks: a.NewChunks + b.NewChunks,
	}
	if s != want {
		t.Fatalf("sum %+v, want %+v", s, want)
	}
}
