package diskmap_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"coffer.dev/coffer/store/chunk"
	"coffer.dev/coffer/store/chunker"
	"coffer.dev/coffer/store/diskmap"
)

const bs = chunker.BlockSize

func id(s string) chunk.ID { return chunk.ID(sha256.Sum256([]byte(s))) }

func data(n int, name string) diskmap.Extent { return diskmap.Extent{Len: uint32(n), ID: id(name)} }
func zero(n int) diskmap.Extent              { return diskmap.Extent{Len: uint32(n), Zero: true} }

func total(exts []diskmap.Extent) int64 {
	var t int64
	for _, e := range exts {
		t += int64(e.Len)
	}
	return t
}

func TestGeometry(t *testing.T) {
	const R, G = diskmap.RangeSize, diskmap.GroupSize
	for _, tc := range []struct {
		size           int64
		ranges, groups int
		lastRange      int64
		lastGroup      int
	}{
		{1, 1, 1, 1, 1},
		{bs, 1, 1, bs, 1},
		{R, 1, 1, R, 1},
		{R + 1, 2, 1, 1, 2},
		{G, diskmap.GroupRanges, 1, R, diskmap.GroupRanges},
		{G + bs, diskmap.GroupRanges + 1, 2, bs, 1},
		{3*G + 5*R + 7, 3*diskmap.GroupRanges + 6, 4, 7, 6},
	} {
		if got := diskmap.Ranges(tc.size); got != tc.ranges {
			t.Errorf("Ranges(%d) = %d, want %d", tc.size, got, tc.ranges)
		}
		if got := diskmap.Groups(tc.size); got != tc.groups {
			t.Errorf("Groups(%d) = %d, want %d", tc.size, got, tc.groups)
		}
		if got := diskmap.RangeLen(tc.size, tc.ranges-1); got != tc.lastRange {
			t.Errorf("RangeLen(%d, last) = %d, want %d", tc.size, got, tc.lastRange)
		}
		if tc.ranges > 1 {
			if got := diskmap.RangeLen(tc.size, 0); got != R {
				t.Errorf("RangeLen(%d, 0) = %d, want %d", tc.size, got, R)
			}
		}
		if got := diskmap.GroupLen(tc.size, tc.groups-1); got != tc.lastGroup {
			t.Errorf("GroupLen(%d, last) = %d, want %d", tc.size, got, tc.lastGroup)
		}
		var sum int64
		for r := range tc.ranges {
			sum += diskmap.RangeLen(tc.size, r)
		}
		if sum != tc.size {
			t.Errorf("ranges of %d add up to %d", tc.size, sum)
		}
	}
}

func TestRangeRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		exts []diskmap.Extent
	}{
		{"empty", []diskmap.Extent{}},
		{"one zero run", []diskmap.Extent{zero(diskmap.RangeSize)}},
		{"one chunk", []diskmap.Extent{data(16*bs, "a")}},
		{"mixed", []diskmap.Extent{data(bs, "a"), zero(3 * bs), data(2*bs, "b"), data(bs, "c"), zero(bs)}},
		{"short last block", []diskmap.Extent{data(bs, "a"), zero(bs), data(100, "b")}},
		{"short last zero block", []diskmap.Extent{data(2*bs, "a"), zero(bs + 1)}},
		{"one byte", []diskmap.Extent{data(1, "a")}},
		{"whole range of chunks", func() []diskmap.Extent {
			var e []diskmap.Extent
			for i := 0; i < diskmap.RangeSize/bs; i++ {
				e = append(e, data(bs, string(rune(i))))
			}
			return e
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := diskmap.EncodeRange(tc.exts)
			got, err := diskmap.DecodeRange(b, total(tc.exts))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.exts) {
				t.Fatalf("got %+v, want %+v", got, tc.exts)
			}
			if !bytes.Equal(diskmap.EncodeRange(got), b) {
				t.Fatal("re-encoding differs")
			}
		})
	}
}

func TestDecodeRangeRejects(t *testing.T) {
	good := []diskmap.Extent{data(bs, "a"), zero(2 * bs), data(3*bs, "b")}
	goodLen := total(good)
	enc := diskmap.EncodeRange
	// raw builds a level-1 map by hand: count, then (varint, id?) items.
	raw := func(count uint64, items ...[]byte) []byte {
		b := binary.AppendUvarint([]byte{'M', 1, 1}, count)
		for _, it := range items {
			b = append(b, it...)
		}
		return b
	}
	lenZero := func(n uint64) []byte { return binary.AppendUvarint(nil, n<<1|1) }
	lenData := func(n uint64) []byte { a := id("x"); return append(binary.AppendUvarint(nil, n<<1), a[:]...) }
	for _, tc := range []struct {
		name   string
		b      []byte
		length int64
	}{
		{"empty", nil, 0},
		{"too short", []byte{'M', 1, 1}, 0},
		{"bad magic", append([]byte{'N'}, enc(good)[1:]...), goodLen},
		{"level-2 map", append([]byte{'M', 2}, enc(good)[2:]...), goodLen},
		{"version 2", append([]byte{'M', 1, 2}, enc(good)[3:]...), goodLen},
		{"wrong length", enc(good), goodLen + bs},
		{"one byte short", enc(good), goodLen - 1},
		{"truncated", enc(good)[:len(enc(good))-1], goodLen},
		{"trailing byte", append(enc(good), 0), goodLen},
		{"count past the end", raw(4, lenData(bs), lenZero(bs), lenData(bs)), 3 * bs},
		{"count too large", raw(1<<40, lenZero(bs)), bs},
		{"count overflows", append([]byte{'M', 1, 1}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), 0},
		{"empty zero run", raw(2, lenData(bs), lenZero(0)), bs},
		{"empty chunk", raw(2, lenData(0), lenZero(bs)), bs},
		{"extent longer than a range", raw(1, lenZero(diskmap.RangeSize+bs)), diskmap.RangeSize + bs},
		{"two zero runs in a row", raw(3, lenData(bs), lenZero(bs), lenZero(bs)), 3 * bs},
		{"extent starts inside a block", raw(2, lenData(bs+1), lenData(bs)), 2*bs + 1},
		{"zero run starts inside a block", raw(2, lenData(100), lenZero(bs)), bs + 100},
		{"truncated id", raw(1, lenData(bs)[:20]), bs},
		// Maps are content-addressed chunks: a map has one encoding.
		{"non-minimal count", []byte{'M', 1, 1, 0x80, 0x00}, 0},
		{"non-minimal extent length", raw(1, []byte{0x81, 0xc0, 0x00}), bs},
		{"non-minimal extent length, long", raw(1, []byte{0x81, 0xc0, 0x80, 0x80, 0x00}), bs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exts, err := diskmap.DecodeRange(tc.b, tc.length)
			if !errors.Is(err, diskmap.ErrFormat) {
				t.Fatalf("got %v (%+v), want ErrFormat", err, exts)
			}
		})
	}
	// The hand builder agrees with the encoder, and the minimal form of
	// the non-minimal cases above is accepted.
	if b := raw(1, lenZero(bs)); !bytes.Equal(b, enc([]diskmap.Extent{zero(bs)})) || !bytes.Equal(b, raw(1, []byte{0x81, 0x40})) {
		t.Fatalf("test builder is off: %x", b)
	}
	if _, err := diskmap.DecodeRange(raw(1, []byte{0x81, 0x40}), bs); err != nil {
		t.Fatal(err)
	}
}

func TestGroupRoundTrip(t *testing.T) {
	full := make([]diskmap.RangeRef, diskmap.GroupRanges)
	for i := range full {
		if i%3 != 0 {
			full[i] = diskmap.RangeRef{ID: id(string(rune(i))), Data: uint32(i * 4096 % (diskmap.RangeSize + 1))}
		}
	}
	full[1].Data = diskmap.RangeSize
	for _, tc := range []struct {
		name string
		refs []diskmap.RangeRef
	}{
		{"empty", []diskmap.RangeRef{}},
		{"one zero range", []diskmap.RangeRef{{}}},
		{"mixed", []diskmap.RangeRef{{ID: id("a"), Data: 4096}, {}, {ID: id("b"), Data: 0}, {ID: id("c"), Data: diskmap.RangeSize}}},
		{"full group", full},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := diskmap.EncodeGroup(tc.refs)
			got, err := diskmap.DecodeGroup(b, len(tc.refs))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.refs) {
				t.Fatalf("got %+v, want %+v", got, tc.refs)
			}
			if !bytes.Equal(diskmap.EncodeGroup(got), b) {
				t.Fatal("re-encoding differs")
			}
		})
	}
}

func TestDecodeGroupRejects(t *testing.T) {
	good := []diskmap.RangeRef{{ID: id("a"), Data: 4096}, {}, {ID: id("b"), Data: 100}}
	enc := diskmap.EncodeGroup(good)
	a := id("a")
	present := func(i chunk.ID, data []byte) []byte { return append(append([]byte{1}, i[:]...), data...) }
	raw := func(count []byte, items ...[]byte) []byte {
		b := append([]byte{'M', 2, 1}, count...)
		for _, it := range items {
			b = append(b, it...)
		}
		return b
	}
	tooMany := make([]diskmap.RangeRef, diskmap.GroupRanges+1)
	for _, tc := range []struct {
		name string
		b    []byte
		want int
	}{
		{"empty", nil, 0},
		{"bad magic", append([]byte{'m'}, enc[1:]...), 3},
		{"level-1 map", append([]byte{'M', 1}, enc[2:]...), 3},
		{"version 0", append([]byte{'M', 2, 0}, enc[3:]...), 3},
		{"fewer ranges than wanted", enc, 4},
		{"more ranges than wanted", enc, 2},
		{"negative want", enc, -1},
		{"more than a group", diskmap.EncodeGroup(tooMany), diskmap.GroupRanges + 1},
		{"truncated", enc[:len(enc)-1], 3},
		{"truncated at a flag", raw([]byte{2}, []byte{0}), 2},
		{"truncated id", raw([]byte{1}, present(a, nil)[:20]), 1},
		{"missing data count", raw([]byte{1}, present(a, nil)), 1},
		{"trailing byte", append(enc, 0), 3},
		{"bad flag", raw([]byte{1}, []byte{2}), 1},
		{"zero id flagged present", raw([]byte{1}, present(chunk.ID{}, []byte{0})), 1},
		{"data count beyond a range", raw([]byte{1}, present(a, binary.AppendUvarint(nil, diskmap.RangeSize+1))), 1},
		{"non-minimal count", raw([]byte{0x81, 0x00}, []byte{0}), 1},
		{"non-minimal data count", raw([]byte{1}, present(a, []byte{0x80, 0x00})), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refs, err := diskmap.DecodeGroup(tc.b, tc.want)
			if !errors.Is(err, diskmap.ErrFormat) {
				t.Fatalf("got %v (%+v), want ErrFormat", err, refs)
			}
		})
	}
}

func TestCanonical(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in, out []diskmap.Extent
	}{
		{"nil", nil, []diskmap.Extent{}},
		{"already canonical", []diskmap.Extent{data(bs, "a"), zero(bs), data(bs, "b")}, []diskmap.Extent{data(bs, "a"), zero(bs), data(bs, "b")}},
		{"adjacent zero runs merge", []diskmap.Extent{zero(bs), zero(2 * bs), zero(bs), data(bs, "a")}, []diskmap.Extent{zero(4 * bs), data(bs, "a")}},
		{"empty extents dropped", []diskmap.Extent{zero(0), data(bs, "a"), data(0, "b"), zero(0)}, []diskmap.Extent{data(bs, "a")}},
		{"zero runs merge across an empty extent", []diskmap.Extent{zero(bs), data(0, "a"), zero(bs)}, []diskmap.Extent{zero(2 * bs)}},
		{"adjacent chunks stay", []diskmap.Extent{data(bs, "a"), data(bs, "a")}, []diskmap.Extent{data(bs, "a"), data(bs, "a")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := diskmap.Canonical(tc.in)
			if len(got) == 0 && len(tc.out) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tc.out) {
				t.Fatalf("got %+v, want %+v", got, tc.out)
			}
			// Canonical output is what the decoder accepts.
			if _, err := diskmap.DecodeRange(diskmap.EncodeRange(got), total(got)); err != nil {
				t.Fatalf("canonical extents rejected: %v", err)
			}
		})
	}
}

func TestNonCanonicalRangeRejected(t *testing.T) {
	// What Canonical would fix is what the decoder refuses.
	for _, exts := range [][]diskmap.Extent{
		{zero(bs), zero(bs)},
		{data(bs, "a"), zero(0), data(bs, "b")},
	} {
		if _, err := diskmap.DecodeRange(diskmap.EncodeRange(exts), total(exts)); !errors.Is(err, diskmap.ErrFormat) {
			t.Errorf("%+v: got %v, want ErrFormat", exts, err)
		}
	}
}
