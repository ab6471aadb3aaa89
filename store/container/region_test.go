package container_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"coffer.dev/coffer/store/container"
	"coffer.dev/coffer/store/crypt"
)

func regionRecord(r container.SealedRegion) container.Region {
	return container.Region{StoredLen: uint32(len(r.Bytes) - container.RegionHeaderSize), RawLen: r.RawLen, Codec: r.Codec}
}

func TestSealOpenRegion(t *testing.T) {
	comp := newComp(t)
	aead := testAEAD(t)
	for _, tc := range []struct {
		name    string
		payload []byte
		codec   container.Codec
	}{
		{"empty", nil, container.CodecRaw},
		{"one byte", []byte{42}, container.CodecRaw},
		{"text", textLike("x", 100_000), container.CodecZstd},
		{"random", pseudoRandom("r", 70_000), container.CodecRaw},
		{"zeros", make([]byte, 1<<20), container.CodecZstd},
		{"largest", make([]byte, container.MaxRegionRaw), container.CodecZstd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := container.SealRegion(comp, aead, testStoreID, 11, 4, tc.payload, nil)
			if r.Codec != tc.codec {
				t.Errorf("codec %d, want %d", r.Codec, tc.codec)
			}
			if r.RawLen != uint32(len(tc.payload)) {
				t.Errorf("raw length %d, want %d", r.RawLen, len(tc.payload))
			}
			if r.Codec == container.CodecRaw && len(r.Bytes) != container.RegionHeaderSize+5+crypt.Overhead+len(tc.payload) {
				t.Errorf("raw region of %d bytes holds %d", len(tc.payload), len(r.Bytes))
			}
			got, err := container.OpenRegion(comp, aead, testStoreID, 11, 4, regionRecord(r), r.Bytes, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.payload) {
				t.Fatal("payload differs")
			}
			// OpenRegion appends to dst. (Not for the largest region: the
			// zstd decoder counts what dst already holds against its
			// MaxRegionRaw limit; the store always passes an empty dst.)
			if len(tc.payload) > container.MaxRegionRaw/2 {
				return
			}
			prefix := []byte("prefix")
			got, err = container.OpenRegion(comp, aead, testStoreID, 11, 4, regionRecord(r), r.Bytes, clone(prefix))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, append(clone(prefix), tc.payload...)) {
				t.Fatal("payload appended to dst differs")
			}
		})
	}
}

func TestSealRegionReusesBuffer(t *testing.T) {
	comp := newComp(t)
	aead := testAEAD(t)
	buf := make([]byte, 0, 1<<16)
	r := container.SealRegion(comp, aead, testStoreID, 1, 0, regionPayload(1), buf)
	if &r.Bytes[0] != &buf[:1][0] {
		t.Error("a large enough buffer was not reused")
	}
	got, err := container.OpenRegion(comp, aead, testStoreID, 1, 0, regionRecord(r), r.Bytes, nil)
	if err != nil || !bytes.Equal(got, regionPayload(1)) {
		t.Fatalf("open: %v", err)
	}
}

func TestOpenRegionRejects(t *testing.T) {
	comp := newComp(t)
	aead := testAEAD(t)
	for _, payload := range [][]byte{regionPayload(0), regionPayload(1)} {
		r := container.SealRegion(comp, aead, testStoreID, 11, 4, payload, nil)
		rec := regionRecord(r)
		for _, tc := range []struct {
			name    string
			aead    *crypt.AEAD
			storeID [16]byte
			id      uint64
			index   uint32
			rec     container.Region
			b       []byte
			want    error
		}{
			{"wrong key", otherAEAD(t), testStoreID, 11, 4, rec, r.Bytes, crypt.ErrAuth},
			{"wrong store", aead, otherStoreID, 11, 4, rec, r.Bytes, crypt.ErrAuth},
			{"wrong container", aead, testStoreID, 12, 4, rec, r.Bytes, crypt.ErrAuth},
			{"wrong position", aead, testStoreID, 11, 5, rec, r.Bytes, container.ErrFormat},
			{"moved to another position, header rewritten", aead, testStoreID, 11, 5, rec, func() []byte {
				b := clone(r.Bytes)
				binary.LittleEndian.PutUint32(b[12:], 5)
				return b
			}(), crypt.ErrAuth},
			{"flipped sealed byte", aead, testStoreID, 11, 4, rec, func() []byte {
				b := clone(r.Bytes)
				b[len(b)/2] ^= 1
				return b
			}(), container.ErrFormat},
			{"flipped sealed byte, checksum rewritten", aead, testStoreID, 11, 4, rec, func() []byte {
				b := clone(r.Bytes)
				b[len(b)/2] ^= 1
				fixRegionCRC(b)
				return b
			}(), crypt.ErrAuth},
			{"truncated", aead, testStoreID, 11, 4, rec, r.Bytes[:len(r.Bytes)-1], container.ErrFormat},
			{"truncated, header and footer agree", aead, testStoreID, 11, 4,
				container.Region{StoredLen: rec.StoredLen - 1, RawLen: rec.RawLen, Codec: rec.Codec},
				func() []byte {
					b := clone(r.Bytes[:len(r.Bytes)-1])
					binary.LittleEndian.PutUint32(b[4:], rec.StoredLen-1)
					fixRegionCRC(b)
					return b
				}(), crypt.ErrAuth},
			{"extended", aead, testStoreID, 11, 4, rec, append(clone(r.Bytes), 0), container.ErrFormat},
			{"header only", aead, testStoreID, 11, 4, rec, r.Bytes[:container.RegionHeaderSize], container.ErrFormat},
			{"footer raw length disagrees", aead, testStoreID, 11, 4,
				container.Region{StoredLen: rec.StoredLen, RawLen: rec.RawLen + 1, Codec: rec.Codec}, r.Bytes, container.ErrFormat},
			{"footer codec disagrees", aead, testStoreID, 11, 4,
				container.Region{StoredLen: rec.StoredLen, RawLen: rec.RawLen, Codec: 1 - rec.Codec}, r.Bytes, container.ErrFormat},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := container.OpenRegion(comp, tc.aead, tc.storeID, tc.id, tc.index, tc.rec, tc.b, nil)
				if !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
				if got != nil {
					t.Fatal("bytes returned with an error")
				}
			})
		}
	}
}
