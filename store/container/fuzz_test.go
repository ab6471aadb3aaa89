package container_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"reflect"
	"testing"
	"testing/cryptotest"
	"time"

	"coffer.dev/coffer/store/chunk"
	"coffer.dev/coffer/store/container"
	"coffer.dev/coffer/store/crypt"
)

// Seeds: real encoder output plus a few damaged copies.

func headerSeeds() []fuzzSeed {
	h := container.Header{StoreID: testStoreID, ID: 42, Kind: container.KindData, Created: testCreated}
	m := container.Header{StoreID: otherStoreID, ID: 1<<63 + 5, Kind: container.KindMap, Created: time.Unix(0, -1).UTC()}
	edit := func(b []byte, fn func([]byte)) []byte { b = clone(b); fn(b); return b }
	return []fuzzSeed{
		seed("data", h.MarshalBinary(), false),
		seed("map", m.MarshalBinary(), false),
		seed("zero-time", container.Header{Kind: container.KindMap, Created: time.Unix(0, 0)}.MarshalBinary(), false),
		seed("long-input", append(h.MarshalBinary(), "trailing"...), false),
		seed("bad-magic", edit(h.MarshalBinary(), func(b []byte) { b[3] = 'x' }), true),
		seed("bad-crc", edit(h.MarshalBinary(), func(b []byte) { b[40] ^= 0x10 }), false),
		seed("version-2", edit(h.MarshalBinary(), func(b []byte) { b[8] = 2 }), true),
		seed("kind-0", edit(h.MarshalBinary(), func(b []byte) { b[10] = 0 }), true),
		seed("reserved-set", edit(h.MarshalBinary(), func(b []byte) { b[11], b[55] = 1, 2 }), true),
		seed("short", h.MarshalBinary()[:40], true),
	}
}

func trailerSeeds(tb testing.TB) []fuzzSeed {
	c := buildContainer(tb, tb.TempDir(), 42, container.KindData, [][]byte{regionPayload(0), regionPayload(1)})
	real := c.data[len(c.data)-container.TrailerSize:]
	size := int64(len(c.data))
	t := container.Trailer{FooterOffset: container.HeaderSize, FooterLen: 100, Entries: 1, ContainerID: 2}
	big := container.Trailer{FooterOffset: 1 << 40, FooterLen: 1 << 31, Entries: 1 << 20, ContainerID: 1 << 62}
	edit := func(b []byte, fn func([]byte)) []byte { b = clone(b); fn(b); return b }
	return []fuzzSeed{
		seed("real", clone(real), size, false),
		seed("minimal", t.MarshalBinary(), int64(container.HeaderSize+8+100+container.TrailerSize), false),
		seed("big", big.MarshalBinary(), int64(1<<40+8+1<<31+container.TrailerSize), false),
		seed("size-off-by-one", clone(real), size+1, false),
		seed("bad-crc", edit(real, func(b []byte) { b[9] ^= 1 }), size, false),
		seed("bad-magic", edit(real, func(b []byte) { b[30] ^= 1 }), size, false),
		seed("offset-in-header", edit(t.MarshalBinary(), func(b []byte) { b[0] = 8 }), int64(8+8+100+container.TrailerSize), true),
		seed("offset-overflows", edit(t.MarshalBinary(), func(b []byte) { b[7] = 0x7f }), int64(1<<20), true),
		seed("unsealed", make([]byte, container.TrailerSize), size, false),
	}
}

func footerSeeds(tb testing.TB) []fuzzSeed {
	c := buildContainer(tb, tb.TempDir(), 42, container.KindData, [][]byte{regionPayload(0), regionPayload(1), regionPayload(2), regionPayload(3)})
	r, err := openBytes(tb, c.data, testAEAD(tb), testStoreID)
	if err != nil {
		tb.Fatal(err)
	}
	real := r.Footer.MarshalBinary()
	overlap := testFooter()
	overlap.Regions[1].Offset -= 2
	overrun := testFooter()
	overrun.Entries[1].Length = 1000
	badKind := testFooter()
	badKind.Entries[0].Kind = chunk.Map2 + 1
	return []fuzzSeed{
		seed("real", real),
		seed("fixture", testFooter().MarshalBinary()),
		seed("empty", (&container.Footer{}).MarshalBinary()),
		seed("overlap", overlap.MarshalBinary()),
		seed("overrun", overrun.MarshalBinary()),
		seed("bad-kind", badKind.MarshalBinary()),
		seed("truncated", real[:len(real)-3]),
		seed("trailing", append(clone(real), 0)),
	}
}

// regionSeeds seals regionPayload(index) as region index of container 1.
func regionSeeds(tb testing.TB) []fuzzSeed {
	comp := newComp(tb)
	aead := regionFuzzAEAD(tb)
	var seeds []fuzzSeed
	sealed := map[uint32]container.SealedRegion{}
	for i := range uint32(4) {
		r := container.SealRegion(comp, aead, testStoreID, 1, i, regionPayload(i), nil)
		sealed[i] = r
		seeds = append(seeds, seed("region-"+string(rune('0'+i)), r.Bytes, i, r.RawLen, uint8(r.Codec), false, []byte(nil)))
	}
	r0, r1 := sealed[0], sealed[1]
	flip := clone(r1.Bytes)
	flip[container.RegionHeaderSize+crypt.NonceSize+3] ^= 1
	moved := clone(r0.Bytes)
	binary.LittleEndian.PutUint32(moved[12:], 4)
	return append(seeds,
		seed("prefix", r0.Bytes, uint32(0), r0.RawLen, uint8(r0.Codec), false, []byte("dst")),
		seed("flipped", flip, uint32(1), r1.RawLen, uint8(r1.Codec), false, []byte(nil)),
		seed("flipped-crc-fixed", flip, uint32(1), r1.RawLen, uint8(r1.Codec), true, []byte(nil)),
		seed("moved", moved, uint32(4), r0.RawLen, uint8(r0.Codec), true, []byte(nil)),
		seed("wrong-codec", r0.Bytes, uint32(0), r0.RawLen, uint8(container.CodecRaw), false, []byte(nil)),
		seed("truncated", r1.Bytes[:len(r1.Bytes)-1], uint32(1), r1.RawLen, uint8(r1.Codec), true, []byte(nil)),
	)
}

// An edit script for FuzzOpenContainer: a flag byte, a 16-bit length, then
// (16-bit position, xor mask) triples. A position with its top bit set
// counts back from the end of the file.
const (
	editFixHeader  = 1 << iota // recompute the header checksum
	editFixTrailer             // rewrite the trailer's magic and checksum
	editFixRegions             // recompute the checksum of every region
	editTruncate               // cut the file to length % (size+1)
	editAppend                 // append length % 512 bytes of the file
)

func editScript(flags byte, n uint16, flips ...[2]int) []byte {
	b := []byte{flags, byte(n), byte(n >> 8)}
	for _, f := range flips {
		b = binary.LittleEndian.AppendUint16(b, uint16(f[0]))
		b = append(b, byte(f[1]))
	}
	return b
}

func fromEnd(n int) int { return 0x8000 | n }

func applyEdits(orig []byte, regions []container.Region, script []byte) []byte {
	d := clone(orig)
	var flags byte
	var n int
	if len(script) > 0 {
		flags = script[0]
	}
	if len(script) >= 3 {
		n = int(binary.LittleEndian.Uint16(script[1:]))
	}
	for s := script[min(len(script), 3):]; len(s) >= 3 && len(d) > 0; s = s[3:] {
		pos := int(binary.LittleEndian.Uint16(s))
		if pos&0x8000 != 0 {
			pos = len(d) - 1 - (pos&0x7fff)%len(d)
		} else {
			pos %= len(d)
		}
		d[pos] ^= s[2]
	}
	if flags&editTruncate != 0 {
		d = d[:n%(len(d)+1)]
	}
	if flags&editAppend != 0 {
		for i := range n % 512 {
			d = append(d, orig[i%len(orig)])
		}
	}
	if flags&editFixHeader != 0 && len(d) >= container.HeaderSize {
		fixHeaderCRC(d)
	}
	if flags&editFixTrailer != 0 && len(d) >= container.TrailerSize {
		binary.LittleEndian.PutUint32(d[len(d)-4:], 0x444e4543) // "CEND"
		fixTrailerCRC(d)
	}
	if flags&editFixRegions != 0 {
		for _, r := range regions {
			end := r.Offset + container.RegionHeaderSize + int64(r.StoredLen)
			if end <= int64(len(d)) {
				fixRegionCRC(d[r.Offset:end])
			}
		}
	}
	return d
}

func containerSeeds(c builtContainer) []fuzzSeed {
	r1 := c.footer.Regions[1]
	footerAt := int(binary.LittleEndian.Uint64(c.data[len(c.data)-container.TrailerSize:]))
	mid := int(r1.Offset) + container.RegionHeaderSize + int(r1.StoredLen)/2
	return []fuzzSeed{
		seed("intact", []byte{}),
		seed("intact-fixed", editScript(editFixHeader|editFixTrailer|editFixRegions, 0)),
		seed("header-flip", editScript(0, 0, [2]int{12, 1})),
		seed("header-kind", editScript(editFixHeader, 0, [2]int{10, 3})),
		seed("header-id", editScript(editFixHeader, 0, [2]int{33, 1})),
		seed("region-flip", editScript(0, 0, [2]int{mid, 0x80})),
		seed("region-flip-fixed", editScript(editFixRegions, 0, [2]int{mid, 0x80})),
		seed("region-index", editScript(editFixRegions, 0, [2]int{int(r1.Offset) + 12, 1})),
		seed("footer-flip", editScript(0, 0, [2]int{footerAt + 30, 4})),
		seed("trailer-flip", editScript(0, 0, [2]int{fromEnd(20), 1})),
		seed("trailer-id-fixed", editScript(editFixTrailer, 0, [2]int{fromEnd(15), 1})),
		seed("trailer-entries-fixed", editScript(editFixTrailer, 0, [2]int{fromEnd(19), 1})),
		seed("truncate-one", editScript(editTruncate, uint16(len(c.data)-1))),
		seed("truncate-fixed", editScript(editTruncate|editFixTrailer, uint16(len(c.data)-1))),
		seed("truncate-to-footer", editScript(editTruncate|editFixTrailer, uint16(footerAt))),
		seed("append", editScript(editAppend|editFixTrailer, 100)),
	}
}

// fuzzContainer is the file FuzzOpenContainer edits.
func fuzzContainer(tb testing.TB) builtContainer {
	return buildContainer(tb, tb.TempDir(), 77, container.KindData,
		[][]byte{regionPayload(0), regionPayload(1), regionPayload(2), regionPayload(3)})
}

func TestWriteFuzzSeeds(t *testing.T) {
	skipUnlessWritingSeeds(t)
	cryptotest.SetGlobalRandom(t, 1) // the same seeds every time
	writeFuzzSeeds(t, "FuzzParseHeader", headerSeeds())
	writeFuzzSeeds(t, "FuzzParseTrailer", trailerSeeds(t))
	writeFuzzSeeds(t, "FuzzParseFooter", footerSeeds(t))
	writeFuzzSeeds(t, "FuzzOpenRegion", regionSeeds(t))
	writeFuzzSeeds(t, "FuzzOpenContainer", containerSeeds(fuzzContainer(t)))
}

func FuzzParseHeader(f *testing.F) {
	addSeeds(f, headerSeeds())
	f.Fuzz(func(t *testing.T, b []byte, fix bool) {
		if fix && len(b) >= container.HeaderSize {
			b = clone(b)
			fixHeaderCRC(b)
		}
		h, err := container.ParseHeader(b)
		if err != nil {
			if !errors.Is(err, container.ErrFormat) {
				t.Fatalf("error is not ErrFormat: %v", err)
			}
			return
		}
		if len(b) < container.HeaderSize {
			t.Fatalf("accepted %d bytes", len(b))
		}
		if h.Kind != container.KindData && h.Kind != container.KindMap {
			t.Fatalf("accepted kind %d", h.Kind)
		}
		m := h.MarshalBinary()
		h2, err := container.ParseHeader(m)
		if err != nil {
			t.Fatalf("re-encoded header rejected: %v", err)
		}
		if !sameHeader(h, h2) {
			t.Fatalf("round trip: %+v became %+v", h, h2)
		}
		// Every field the decoder reads comes back; only the reserved
		// bytes (11-15, 48-59, covered by the checksum) may differ.
		if !bytes.Equal(m[:11], b[:11]) || !bytes.Equal(m[16:48], b[16:48]) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b[:container.HeaderSize], m)
		}
		if isZero(b[11:16]) && isZero(b[48:60]) && !bytes.Equal(m, b[:container.HeaderSize]) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b[:container.HeaderSize], m)
		}
	})
}

func isZero(b []byte) bool { return bytes.Count(b, []byte{0}) == len(b) }

func FuzzParseTrailer(f *testing.F) {
	addSeeds(f, trailerSeeds(f))
	f.Fuzz(func(t *testing.T, b []byte, size int64, fix bool) {
		if size < 0 {
			size = ^size // file sizes are never negative
		}
		if fix && len(b) == container.TrailerSize {
			b = clone(b)
			binary.LittleEndian.PutUint32(b[28:], 0x444e4543)
			binary.LittleEndian.PutUint32(b[24:], crc32.Checksum(b[:24], castagnoli))
		}
		tr, err := container.ParseTrailer(b, size)
		if err != nil {
			if !errors.Is(err, container.ErrFormat) {
				t.Fatalf("error is not ErrFormat: %v", err)
			}
			return
		}
		if !bytes.Equal(tr.MarshalBinary(), b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, tr.MarshalBinary())
		}
		if tr.FooterOffset < container.HeaderSize {
			t.Fatalf("footer at %d, inside the header", tr.FooterOffset)
		}
		// The footer and trailer end the file exactly, without overflow.
		end := uint64(tr.FooterOffset) + 8 + uint64(tr.FooterLen) + container.TrailerSize
		if end != uint64(size) {
			t.Fatalf("footer %d+%d and trailer end at %d, file is %d bytes", tr.FooterOffset, tr.FooterLen, end, size)
		}
	})
}

func FuzzParseFooter(f *testing.F) {
	addSeeds(f, footerSeeds(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		ft, err := container.ParseFooter(b)
		if err != nil {
			if !errors.Is(err, container.ErrFormat) {
				t.Fatalf("error is not ErrFormat: %v", err)
			}
			return
		}
		if m := ft.MarshalBinary(); !bytes.Equal(m, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, m)
		}
		if len(ft.Entries) > container.MaxEntries {
			t.Fatalf("%d entries", len(ft.Entries))
		}
		prevEnd := int64(container.HeaderSize)
		for i, r := range ft.Regions {
			if r.Offset < prevEnd {
				t.Fatalf("region %d at %d overlaps what ends at %d", i, r.Offset, prevEnd)
			}
			if r.RawLen > container.MaxRegionRaw || (r.Codec != container.CodecRaw && r.Codec != container.CodecZstd) {
				t.Fatalf("region %d: %+v", i, r)
			}
			prevEnd = r.Offset + container.RegionHeaderSize + int64(r.StoredLen)
		}
		for i, e := range ft.Entries {
			if !e.Kind.Valid() || int(e.Region) >= len(ft.Regions) ||
				uint64(e.Offset)+uint64(e.Length) > uint64(ft.Regions[e.Region].RawLen) {
				t.Fatalf("entry %d: %+v", i, e)
			}
		}
	})
}

func FuzzOpenRegion(f *testing.F) {
	comp := newComp(f)
	aead := regionFuzzAEAD(f)
	addSeeds(f, regionSeeds(f))
	f.Fuzz(func(t *testing.T, b []byte, index uint32, rawLen uint32, codec uint8, fix bool, prefix []byte) {
		if len(prefix) > 64 {
			prefix = prefix[:64]
		}
		var stored uint32
		if len(b) >= container.RegionHeaderSize {
			stored = uint32(len(b) - container.RegionHeaderSize)
			if fix {
				// Make the plaintext header agree, so that only the
				// ciphertext stands between the input and the payload.
				b = clone(b)
				binary.LittleEndian.PutUint32(b, 0x4e475243) // "CRGN"
				binary.LittleEndian.PutUint32(b[4:], stored)
				binary.LittleEndian.PutUint32(b[12:], index)
				fixRegionCRC(b)
			}
		}
		want := container.Region{StoredLen: stored, RawLen: rawLen, Codec: container.Codec(codec)}
		orig := clone(b)
		got, err := container.OpenRegion(comp, aead, testStoreID, 1, index, want, b, clone(prefix))
		if !bytes.Equal(b, orig) {
			t.Fatal("OpenRegion changed its input")
		}
		if err != nil {
			if !errors.Is(err, container.ErrFormat) && !errors.Is(err, crypt.ErrAuth) {
				t.Fatalf("error is neither ErrFormat nor ErrAuth: %v", err)
			}
			if got != nil {
				t.Fatal("bytes returned with an error")
			}
			return
		}
		if w := append(clone(prefix), regionPayload(index)...); !bytes.Equal(got, w) {
			t.Fatalf("opened %d bytes that are not region %d's payload (%d bytes)", len(got), index, len(w))
		}
	})
}

func FuzzOpenContainer(f *testing.F) {
	c := fuzzContainer(f)
	comp := newComp(f)
	aead := testAEAD(f)
	addSeeds(f, containerSeeds(c))
	f.Fuzz(func(t *testing.T, script []byte) {
		data := applyEdits(c.data, c.footer.Regions, script)
		intact := bytes.Equal(data, c.data)
		r, err := openBytes(t, data, aead, testStoreID)
		if err != nil {
			if intact {
				t.Fatalf("intact container rejected: %v", err)
			}
			if !errors.Is(err, container.ErrFormat) && !errors.Is(err, crypt.ErrAuth) {
				t.Fatalf("error is neither ErrFormat nor ErrAuth: %v", err)
			}
			return
		}
		// The footer is authenticated: it must be the one written.
		if !reflect.DeepEqual(r.Footer, &c.footer) {
			t.Fatalf("footer differs:\n%+v\n%+v", r.Footer, c.footer)
		}
		if r.Header.ID != c.header.ID || r.Header.StoreID != c.header.StoreID {
			t.Fatalf("header %+v, want %+v", r.Header, c.header)
		}
		// Kind and time are covered by the header checksum only.
		if len(script) == 0 || script[0]&editFixHeader == 0 {
			if !sameHeader(r.Header, c.header) {
				t.Fatalf("header %+v, want %+v", r.Header, c.header)
			}
		}
		for i, reg := range c.footer.Regions {
			got, err := r.ReadRegion(comp, i, nil)
			end := reg.Offset + container.RegionHeaderSize + int64(reg.StoredLen)
			untouched := end <= int64(len(data)) && bytes.Equal(data[reg.Offset:end], c.data[reg.Offset:end])
			if err != nil {
				if untouched {
					t.Fatalf("untouched region %d rejected: %v", i, err)
				}
				if !errors.Is(err, container.ErrFormat) && !errors.Is(err, crypt.ErrAuth) {
					t.Fatalf("region %d: error is neither ErrFormat nor ErrAuth: %v", i, err)
				}
				continue
			}
			if !bytes.Equal(got, c.payloads[i]) {
				t.Fatalf("region %d: %d bytes that are not its payload", i, len(got))
			}
		}
		if _, err := r.ReadRegion(comp, len(c.footer.Regions), nil); err == nil {
			t.Fatal("region past the footer's list read")
		}
	})
}
