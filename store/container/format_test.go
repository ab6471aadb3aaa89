package container_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"coffer.dev/coffer/store/chunk"
	"coffer.dev/coffer/store/container"
)

func sameHeader(a, b container.Header) bool {
	return a.StoreID == b.StoreID && a.ID == b.ID && a.Kind == b.Kind &&
		a.Created.Equal(b.Created) && a.Created.UnixNano() == b.Created.UnixNano()
}

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []container.Header{
		{StoreID: testStoreID, ID: 1, Kind: container.KindData, Created: testCreated},
		{StoreID: testStoreID, ID: 2, Kind: container.KindMap, Created: testCreated},
		{ID: math.MaxUint64, Kind: container.KindData, Created: time.Unix(0, 0).UTC()},
		{StoreID: otherStoreID, ID: 0, Kind: container.KindMap, Created: time.Unix(0, math.MinInt64).UTC()},
		{StoreID: otherStoreID, ID: 1 << 40, Kind: container.KindData, Created: time.Unix(0, math.MaxInt64).UTC()},
	} {
		b := h.MarshalBinary()
		if len(b) != container.HeaderSize {
			t.Fatalf("header is %d bytes", len(b))
		}
		got, err := container.ParseHeader(b)
		if err != nil {
			t.Fatalf("%+v: %v", h, err)
		}
		if !sameHeader(got, h) {
			t.Errorf("round trip: got %+v, want %+v", got, h)
		}
		if got.Created.Location() != time.UTC {
			t.Errorf("created time is not UTC: %v", got.Created.Location())
		}
	}
}

func TestParseHeaderRejects(t *testing.T) {
	good := container.Header{StoreID: testStoreID, ID: 7, Kind: container.KindData, Created: testCreated}.MarshalBinary()
	for _, tc := range []struct {
		name string
		edit func([]byte) []byte
	}{
		{"empty", func(b []byte) []byte { return nil }},
		{"short", func(b []byte) []byte { return b[:container.HeaderSize-1] }},
		{"bad magic", func(b []byte) []byte { b[0] = 'X'; fixHeaderCRC(b); return b }},
		{"magic of another file", func(b []byte) []byte { copy(b, "CFRPOINT"); fixHeaderCRC(b); return b }},
		{"flipped store id", func(b []byte) []byte { b[20] ^= 1; return b }},
		{"flipped container id", func(b []byte) []byte { b[32] ^= 0x80; return b }},
		{"flipped created", func(b []byte) []byte { b[47] ^= 4; return b }},
		{"flipped reserved", func(b []byte) []byte { b[50] ^= 4; return b }},
		{"flipped checksum", func(b []byte) []byte { b[63] ^= 1; return b }},
		{"version 0", func(b []byte) []byte { binary.LittleEndian.PutUint16(b[8:], 0); fixHeaderCRC(b); return b }},
		{"version 2", func(b []byte) []byte { binary.LittleEndian.PutUint16(b[8:], 2); fixHeaderCRC(b); return b }},
		{"kind 0", func(b []byte) []byte { b[10] = 0; fixHeaderCRC(b); return b }},
		{"kind 3", func(b []byte) []byte { b[10] = 3; fixHeaderCRC(b); return b }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := container.ParseHeader(tc.edit(clone(good)))
			if !errors.Is(err, container.ErrFormat) {
				t.Fatalf("got %v, want ErrFormat", err)
			}
		})
	}
}

func TestTrailerRoundTrip(t *testing.T) {
	for _, tr := range []container.Trailer{
		{FooterOffset: container.HeaderSize, FooterLen: 40, Entries: 0, ContainerID: 1},
		{FooterOffset: 1 << 30, FooterLen: 1 << 20, Entries: 12345, ContainerID: math.MaxUint64},
		{FooterOffset: 1 << 50, FooterLen: math.MaxUint32, Entries: math.MaxUint32},
	} {
		b := tr.MarshalBinary()
		if len(b) != container.TrailerSize {
			t.Fatalf("trailer is %d bytes", len(b))
		}
		size := tr.FooterOffset + 8 + int64(tr.FooterLen) + container.TrailerSize
		got, err := container.ParseTrailer(b, size)
		if err != nil {
			t.Fatalf("%+v: %v", tr, err)
		}
		if got != tr {
			t.Errorf("round trip: got %+v, want %+v", got, tr)
		}
	}
}

func TestParseTrailerRejects(t *testing.T) {
	tr := container.Trailer{FooterOffset: 4096, FooterLen: 100, Entries: 3, ContainerID: 9}
	size := int64(4096 + 8 + 100 + container.TrailerSize)
	for _, tc := range []struct {
		name string
		b    []byte
		size int64
	}{
		{"short", tr.MarshalBinary()[1:], size},
		{"long", append(tr.MarshalBinary(), 0), size},
		{"bad magic", func() []byte { b := tr.MarshalBinary(); b[31] ^= 1; return b }(), size},
		{"unsealed zeros", make([]byte, container.TrailerSize), size},
		{"flipped offset", func() []byte { b := tr.MarshalBinary(); b[1] ^= 1; return b }(), size},
		{"flipped id", func() []byte { b := tr.MarshalBinary(); b[16] ^= 1; return b }(), size},
		{"flipped checksum", func() []byte { b := tr.MarshalBinary(); b[24] ^= 1; return b }(), size},
		{"file one byte longer", tr.MarshalBinary(), size + 1},
		{"file one byte shorter", tr.MarshalBinary(), size - 1},
		{"file of zero bytes", tr.MarshalBinary(), 0},
		{"footer inside the header", container.Trailer{FooterOffset: container.HeaderSize - 1, FooterLen: 1}.MarshalBinary(), container.HeaderSize - 1 + 8 + 1 + container.TrailerSize},
		{"negative footer offset", container.Trailer{FooterOffset: -8, FooterLen: 8}.MarshalBinary(), container.TrailerSize},
		{"footer offset that overflows", container.Trailer{FooterOffset: math.MaxInt64 - 10, FooterLen: 100}.MarshalBinary(), 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := container.ParseTrailer(tc.b, tc.size)
			if !errors.Is(err, container.ErrFormat) {
				t.Fatalf("got %v, want ErrFormat", err)
			}
		})
	}
}

func testFooter() *container.Footer {
	id := func(s string) chunk.ID { return chunkID([]byte(s)) }
	return &container.Footer{
		Regions: []container.Region{
			{Offset: container.HeaderSize, StoredLen: 1000, RawLen: 4096, Codec: container.CodecZstd},
			{Offset: container.HeaderSize + container.RegionHeaderSize + 1000, StoredLen: 533, RawLen: 500, Codec: container.CodecRaw},
			{Offset: 1 << 20, StoredLen: 0, RawLen: 0, Codec: container.CodecRaw},
		},
		Entries: []container.Entry{
			{ID: id("a"), Kind: chunk.Data, Region: 0, Offset: 0, Length: 4096},
			{ID: id("b"), Kind: chunk.Map1, Region: 1, Offset: 0, Length: 100},
			{ID: id("c"), Kind: chunk.Map2, Region: 1, Offset: 100, Length: 400},
			{ID: id("d"), Kind: chunk.Data, Region: 2, Offset: 0, Length: 0},
		},
	}
}

func TestFooterRoundTrip(t *testing.T) {
	for _, f := range []*container.Footer{
		{Regions: []container.Region{}, Entries: []container.Entry{}},
		testFooter(),
	} {
		b := f.MarshalBinary()
		got, err := container.ParseFooter(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, f) {
			t.Errorf("round trip: got %+v, want %+v", got, f)
		}
		if !bytes.Equal(got.MarshalBinary(), b) {
			t.Error("re-encoding differs")
		}
	}
}

func TestParseFooterRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(f *container.Footer) []byte
	}{
		{"empty", func(f *container.Footer) []byte { return nil }},
		{"short", func(f *container.Footer) []byte { return f.MarshalBinary()[:7] }},
		{"version 2", func(f *container.Footer) []byte {
			b := f.MarshalBinary()
			b[0] = 2
			return b
		}},
		{"region count too large", func(f *container.Footer) []byte {
			b := f.MarshalBinary()
			binary.LittleEndian.PutUint32(b[4:], math.MaxUint32)
			return b
		}},
		{"region count one too many", func(f *container.Footer) []byte {
			b := f.MarshalBinary()
			binary.LittleEndian.PutUint32(b[4:], uint32(len(f.Regions)+1))
			return b
		}},
		{"unknown codec", func(f *container.Footer) []byte { f.Regions[1].Codec = 2; return f.MarshalBinary() }},
		{"region raw length too large", func(f *container.Footer) []byte {
			f.Regions[0].RawLen = container.MaxRegionRaw + 1
			return f.MarshalBinary()
		}},
		{"region stored length too large", func(f *container.Footer) []byte {
			f.Regions[0].StoredLen = container.MaxRegionRaw + 1025
			return f.MarshalBinary()
		}},
		{"region inside the header", func(f *container.Footer) []byte {
			f.Regions[0].Offset = container.HeaderSize - 1
			return f.MarshalBinary()
		}},
		{"negative region offset", func(f *container.Footer) []byte { f.Regions[0].Offset = -1; return f.MarshalBinary() }},
		{"overlapping regions", func(f *container.Footer) []byte { f.Regions[1].Offset--; return f.MarshalBinary() }},
		{"regions out of order", func(f *container.Footer) []byte {
			f.Regions[0], f.Regions[2] = f.Regions[2], f.Regions[0]
			return f.MarshalBinary()
		}},
		{"same region twice", func(f *container.Footer) []byte { f.Regions[1] = f.Regions[0]; return f.MarshalBinary() }},
		{"region offset beyond 2^50", func(f *container.Footer) []byte { f.Regions[2].Offset = 1<<50 + 1; return f.MarshalBinary() }},
		{"truncated before entry count", func(f *container.Footer) []byte {
			f.Entries = nil
			b := f.MarshalBinary()
			return b[:len(b)-4]
		}},
		{"truncated entry", func(f *container.Footer) []byte {
			b := f.MarshalBinary()
			return b[:len(b)-1]
		}},
		{"trailing byte", func(f *container.Footer) []byte { return append(f.MarshalBinary(), 0) }},
		{"entry count too large", func(f *container.Footer) []byte {
			b := f.MarshalBinary()
			off := 8 + len(f.Regions)*17
			binary.LittleEndian.PutUint32(b[off:], math.MaxUint32)
			return b
		}},
		{"unknown chunk kind", func(f *container.Footer) []byte { f.Entries[2].Kind = 3; return f.MarshalBinary() }},
		{"entry in a missing region", func(f *container.Footer) []byte { f.Entries[0].Region = 3; return f.MarshalBinary() }},
		{"entry overruns its region", func(f *container.Footer) []byte { f.Entries[2].Length++; return f.MarshalBinary() }},
		{"entry starts past its region", func(f *container.Footer) []byte { f.Entries[3].Offset = 1; return f.MarshalBinary() }},
		{"entry end overflows 32 bits", func(f *container.Footer) []byte {
			f.Entries[0].Offset, f.Entries[0].Length = math.MaxUint32, 2
			return f.MarshalBinary()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := container.ParseFooter(tc.edit(testFooter()))
			if !errors.Is(err, container.ErrFormat) {
				t.Fatalf("got %v, want ErrFormat", err)
			}
		})
	}
}

func TestParseFooterAcceptsTouchingRegions(t *testing.T) {
	f := testFooter()
	// Region 1 starts exactly where region 0 ends; the reverse order and
	// any overlap are rejected above.
	if f.Regions[1].Offset != f.Regions[0].Offset+container.RegionHeaderSize+int64(f.Regions[0].StoredLen) {
		t.Fatal("fixture regions do not touch")
	}
	if _, err := container.ParseFooter(f.MarshalBinary()); err != nil {
		t.Fatal(err)
	}
}

func TestParseRegionHeader(t *testing.T) {
	comp := newComp(t)
	r := container.SealRegion(comp, testAEAD(t), testStoreID, 5, 2, regionPayload(1), nil)
	want := container.Region{StoredLen: uint32(len(r.Bytes) - container.RegionHeaderSize), RawLen: r.RawLen, Codec: r.Codec}
	crc, err := container.ParseRegionHeader(r.Bytes, want, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint32(r.Bytes[8:]); crc != got {
		t.Errorf("crc %x, header holds %x", crc, got)
	}
	for _, tc := range []struct {
		name  string
		b     []byte
		want  container.Region
		index uint32
	}{
		{"short", r.Bytes[:container.RegionHeaderSize-1], want, 2},
		{"bad magic", func() []byte { b := clone(r.Bytes); b[0] ^= 1; return b }(), want, 2},
		{"length disagrees", func() []byte { b := clone(r.Bytes); b[4] ^= 1; return b }(), want, 2},
		{"footer length disagrees", r.Bytes, container.Region{StoredLen: want.StoredLen + 1}, 2},
		{"wrong index", r.Bytes, want, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := container.ParseRegionHeader(tc.b, tc.want, tc.index)
			if !errors.Is(err, container.ErrFormat) {
				t.Fatalf("got %v, want ErrFormat", err)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[container.Kind]string{container.KindData: "data", container.KindMap: "map", 7: "kind(7)"} {
		if got := k.String(); got != want {
			t.Errorf("%d: %q, want %q", k, got, want)
		}
	}
}
