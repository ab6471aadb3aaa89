package diskmap_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"coffer.dev/coffer/store/chunk"
	"coffer.dev/coffer/store/diskmap"
)

func rangeSeeds() []fuzzSeed {
	mixed := []diskmap.Extent{data(bs, "a"), zero(3 * bs), data(2*bs, "b"), data(bs, "c"), zero(bs), data(700, "d")}
	many := make([]diskmap.Extent, 0, 12)
	for i := range 12 {
		if i%5 == 4 {
			many = append(many, zero(bs*(1+i%3)))
		} else {
			many = append(many, data(bs*(1+i%16), string(rune('a'+i))))
		}
	}
	enc := diskmap.EncodeRange
	twoZeros := append(enc([]diskmap.Extent{data(bs, "a"), zero(bs)}), 3)
	twoZeros[3] = 3 // three extents: the last zero run is repeated
	return []fuzzSeed{
		seed("empty", enc(nil), int64(0)),
		seed("zero-range", enc([]diskmap.Extent{zero(diskmap.RangeSize)}), int64(diskmap.RangeSize)),
		seed("one-chunk", enc([]diskmap.Extent{data(16*bs, "a")}), int64(16*bs)),
		seed("mixed", enc(mixed), total(mixed)),
		seed("many", enc(many), total(many)),
		seed("wrong-length", enc(mixed), total(mixed)+1),
		seed("two-zeros", twoZeros, int64(3*bs)),
		seed("unaligned", enc([]diskmap.Extent{data(100, "a"), data(bs, "b")}), int64(bs+100)),
		seed("non-minimal", []byte{'M', 1, 1, 0x81, 0x00, 0x81, 0xc0, 0x00}, int64(bs)),
		seed("truncated", enc(mixed)[:40], total(mixed)),
	}
}

func groupSeeds() []fuzzSeed {
	mixed := []diskmap.RangeRef{{ID: id("a"), Data: 4096}, {}, {ID: id("b"), Data: 0}, {ID: id("c"), Data: diskmap.RangeSize}}
	// Seeds stay small (the fuzzer minimizes what it finds in time
	// quadratic in the input); TestGroupRoundTrip covers a full group.
	large := make([]diskmap.RangeRef, 16)
	for i := range large {
		if i%3 != 0 {
			large[i] = diskmap.RangeRef{ID: id(string(rune(i))), Data: uint32(i * 4096)}
		}
	}
	enc := diskmap.EncodeGroup
	zeroID := enc([]diskmap.RangeRef{{ID: id("a"), Data: 5}})
	clear(zeroID[5 : 5+chunk.IDSize])
	return []fuzzSeed{
		seed("empty", enc(nil), uint16(0)),
		seed("one-zero", enc([]diskmap.RangeRef{{}}), uint16(1)),
		seed("mixed", enc(mixed), uint16(len(mixed))),
		seed("large", enc(large), uint16(len(large))),
		seed("wrong-count", enc(mixed), uint16(len(mixed)+1)),
		seed("zero-id-present", zeroID, uint16(1)),
		seed("bad-flag", []byte{'M', 2, 1, 1, 7}, uint16(1)),
		seed("non-minimal", []byte{'M', 2, 1, 0x81, 0x00, 0}, uint16(1)),
		seed("truncated", enc(mixed)[:50], uint16(len(mixed))),
	}
}

func TestWriteFuzzSeeds(t *testing.T) {
	skipUnlessWritingSeeds(t)
	writeFuzzSeeds(t, "FuzzDecodeRange", rangeSeeds())
	writeFuzzSeeds(t, "FuzzDecodeGroup", groupSeeds())
}

// walkRange reads a level-1 map as simply as possible, judging nothing but
// its shape: the extents it lists (by the same bytes) and whether it could
// be walked to its end. It is the fuzz targets' reference.
func walkRange(b []byte) (exts []diskmap.Extent, ok bool) {
	if len(b) < 3 || b[0] != 'M' || b[1] != 1 || b[2] != 1 {
		return nil, false
	}
	b = b[3:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, false
	}
	b = b[k:]
	for range n {
		v, k := binary.Uvarint(b)
		if k <= 0 || v>>1 > 1<<32-1 {
			return nil, false
		}
		b = b[k:]
		e := diskmap.Extent{Len: uint32(v >> 1), Zero: v&1 == 1}
		if !e.Zero {
			if len(b) < chunk.IDSize {
				return nil, false
			}
			copy(e.ID[:], b)
			b = b[chunk.IDSize:]
		}
		exts = append(exts, e)
	}
	return exts, len(b) == 0
}

// canonicalRange reports whether exts is a map the encoder may write: no
// empty extent, none longer than a range, no two zero runs in a row, every
// extent but the last a whole number of blocks.
func canonicalRange(exts []diskmap.Extent) bool {
	if len(exts) > diskmap.RangeSize/bs*2 {
		return false
	}
	for i, e := range exts {
		if e.Len == 0 || e.Len > diskmap.RangeSize {
			return false
		}
		if i > 0 && e.Zero && exts[i-1].Zero {
			return false
		}
		if i < len(exts)-1 && e.Len%bs != 0 {
			return false
		}
	}
	return true
}

func FuzzDecodeRange(f *testing.F) {
	addSeeds(f, rangeSeeds())
	f.Fuzz(func(t *testing.T, b []byte, length int64) {
		check := func(length int64) bool {
			exts, err := diskmap.DecodeRange(b, length)
			if err != nil {
				if !errors.Is(err, diskmap.ErrFormat) {
					t.Fatalf("error is not ErrFormat: %v", err)
				}
				if exts != nil {
					t.Fatal("extents returned with an error")
				}
				return false
			}
			if got := diskmap.EncodeRange(exts); !bytes.Equal(got, b) {
				t.Fatalf("re-encoding differs:\n%x\n%x", b, got)
			}
			if got := total(exts); got != length {
				t.Fatalf("extents cover %d bytes, asked for %d", got, length)
			}
			if !canonicalRange(exts) {
				t.Fatalf("accepted a non-canonical map: %+v", exts)
			}
			// Canonical is the identity on what the decoder accepts.
			if c := diskmap.Canonical(append([]diskmap.Extent(nil), exts...)); len(c) != len(exts) {
				t.Fatalf("Canonical changed an accepted map: %d -> %d extents", len(exts), len(c))
			}
			return true
		}
		check(length)
		// The length the map covers, so that accepted inputs are common;
		// and every well-formed canonical encoding must be accepted.
		if exts, ok := walkRange(b); ok {
			want := canonicalRange(exts) && bytes.Equal(diskmap.EncodeRange(exts), b)
			if got := check(total(exts)); got != want {
				t.Fatalf("decoder says %v, reference says %v, for %+v", got, want, exts)
			}
		}
	})
}

func FuzzDecodeGroup(f *testing.F) {
	addSeeds(f, groupSeeds())
	f.Fuzz(func(t *testing.T, b []byte, want uint16) {
		check := func(want int) {
			refs, err := diskmap.DecodeGroup(b, want)
			if err != nil {
				if !errors.Is(err, diskmap.ErrFormat) {
					t.Fatalf("error is not ErrFormat: %v", err)
				}
				if refs != nil {
					t.Fatal("ranges returned with an error")
				}
				return
			}
			if len(refs) != want || want > diskmap.GroupRanges {
				t.Fatalf("%d ranges, asked for %d", len(refs), want)
			}
			if got := diskmap.EncodeGroup(refs); !bytes.Equal(got, b) {
				t.Fatalf("re-encoding differs:\n%x\n%x", b, got)
			}
			for i, r := range refs {
				if r.Data > diskmap.RangeSize || (r.ID.IsZero() && r.Data != 0) {
					t.Fatalf("range %d: %+v", i, r)
				}
			}
		}
		check(int(want))
		// The count the map claims, so that accepted inputs are common.
		if len(b) > 3 {
			if n, k := binary.Uvarint(b[3:]); k > 0 && n != uint64(want) && n <= diskmap.GroupRanges {
				check(int(n))
			}
		}
	})
}
