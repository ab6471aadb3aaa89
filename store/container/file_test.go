package container_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"coffer.dev/coffer/store/container"
	"coffer.dev/coffer/store/crypt"
)

func openBytes(tb testing.TB, b []byte, aead *crypt.AEAD, storeID [16]byte) (*container.Reader, error) {
	tb.Helper()
	return container.Open(bytes.NewReader(b), int64(len(b)), aead, storeID)
}

func TestContainerRoundTrip(t *testing.T) {
	dir := t.TempDir()
	payloads := [][]byte{regionPayload(0), regionPayload(1), regionPayload(2), regionPayload(3)}
	c := buildContainer(t, dir, 3, container.KindMap, payloads)
	if _, err := os.Stat(c.path + container.TmpSuffix); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}

	f, err := os.Open(c.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := container.Open(f, int64(len(c.data)), testAEAD(t), testStoreID)
	if err != nil {
		t.Fatal(err)
	}
	if !sameHeader(r.Header, c.header) {
		t.Errorf("header %+v, want %+v", r.Header, c.header)
	}
	if !reflect.DeepEqual(r.Footer, &c.footer) {
		t.Errorf("footer %+v, want %+v", r.Footer, c.footer)
	}
	if r.Size() != int64(len(c.data)) {
		t.Errorf("size %d, want %d", r.Size(), len(c.data))
	}
	comp := newComp(t)
	for i, p := range payloads {
		got, err := r.ReadRegion(comp, i, nil)
		if err != nil {
			t.Fatalf("region %d: %v", i, err)
		}
		if !bytes.Equal(got, p) {
			t.Fatalf("region %d differs", i)
		}
	}
	for _, e := range r.Footer.Entries {
		got, err := r.ReadRegion(comp, int(e.Region), nil)
		if err != nil {
			t.Fatal(err)
		}
		if chunkID(got[e.Offset:e.Offset+e.Length]) != e.ID {
			t.Fatalf("entry %+v does not locate its chunk", e)
		}
	}
	for _, i := range []int{-1, len(payloads)} {
		if _, err := r.ReadRegion(comp, i, nil); !errors.Is(err, container.ErrFormat) {
			t.Errorf("region %d: got %v, want ErrFormat", i, err)
		}
	}
}

func TestWriterBookkeeping(t *testing.T) {
	comp := newComp(t)
	aead := testAEAD(t)
	path := filepath.Join(t.TempDir(), "sub", "c1")
	w, err := container.Create(path, container.Header{StoreID: testStoreID, ID: 1, Kind: container.KindData, Created: testCreated})
	if err != nil {
		t.Fatal(err)
	}
	if w.ID() != 1 || w.Regions() != 0 || w.Size() != container.HeaderSize || len(w.Entries()) != 0 {
		t.Fatalf("fresh writer: id %d regions %d size %d entries %d", w.ID(), w.Regions(), w.Size(), len(w.Entries()))
	}
	r := container.SealRegion(comp, aead, testStoreID, 1, 0, regionPayload(1), nil)
	if err := w.WriteRegion(r, entriesFor(regionPayload(1), 100)); err != nil {
		t.Fatal(err)
	}
	if w.Regions() != 1 || w.Size() != container.HeaderSize+int64(len(r.Bytes)) || len(w.Entries()) != 3 {
		t.Fatalf("after one region: regions %d size %d entries %d", w.Regions(), w.Size(), len(w.Entries()))
	}
	if _, err := os.Stat(path + container.TmpSuffix); err != nil {
		t.Fatalf("unsealed container is not under its temporary name: %v", err)
	}
	// An unsealed container is not a container.
	b, err := os.ReadFile(path + container.TmpSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openBytes(t, b, aead, testStoreID); !errors.Is(err, container.ErrFormat) {
		t.Fatalf("unsealed: got %v, want ErrFormat", err)
	}
	w.Abort()
	if _, err := os.Stat(path + container.TmpSuffix); !os.IsNotExist(err) {
		t.Fatalf("Abort left the temporary file: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("Abort made the container: %v", err)
	}
}

func TestEmptyContainer(t *testing.T) {
	c := buildContainer(t, t.TempDir(), 4, container.KindData, nil)
	r, err := openBytes(t, c.data, testAEAD(t), testStoreID)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Footer.Regions) != 0 || len(r.Footer.Entries) != 0 {
		t.Fatalf("footer %+v", r.Footer)
	}
}

func TestOpenRejects(t *testing.T) {
	c := buildContainer(t, t.TempDir(), 9, container.KindData, [][]byte{regionPayload(0), regionPayload(1)})
	trailerAt := len(c.data) - container.TrailerSize
	footerAt := int(binary.LittleEndian.Uint64(c.data[trailerAt:]))
	for _, tc := range []struct {
		name    string
		edit    func(b []byte) []byte
		aead    *crypt.AEAD
		storeID [16]byte
		want    error
	}{
		{"wrong store id", nil, nil, otherStoreID, container.ErrFormat},
		{"wrong key", nil, otherAEAD(t), testStoreID, crypt.ErrAuth},
		{"too short", func(b []byte) []byte { return b[:container.HeaderSize+container.TrailerSize+7] }, nil, testStoreID, container.ErrFormat},
		{"truncated by a byte", func(b []byte) []byte { return b[:len(b)-1] }, nil, testStoreID, container.ErrFormat},
		{"truncated to the footer", func(b []byte) []byte { return b[:footerAt] }, nil, testStoreID, container.ErrFormat},
		{"extended by a byte", func(b []byte) []byte { return append(b, 0) }, nil, testStoreID, container.ErrFormat},
		{"flipped header", func(b []byte) []byte { b[33] ^= 1; return b }, nil, testStoreID, container.ErrFormat},
		{"flipped trailer", func(b []byte) []byte { b[trailerAt+2] ^= 1; return b }, nil, testStoreID, container.ErrFormat},
		{"trailer names another container", func(b []byte) []byte {
			b[trailerAt+16] ^= 1
			fixTrailerCRC(b)
			return b
		}, nil, testStoreID, container.ErrFormat},
		{"header and trailer name another container", func(b []byte) []byte {
			b[32] ^= 1
			fixHeaderCRC(b)
			b[trailerAt+16] ^= 1
			fixTrailerCRC(b)
			return b
		}, nil, testStoreID, crypt.ErrAuth},
		{"header claims another store", func(b []byte) []byte {
			copy(b[16:32], otherStoreID[:])
			fixHeaderCRC(b)
			return b
		}, nil, otherStoreID, crypt.ErrAuth},
		{"trailer entry count", func(b []byte) []byte {
			b[trailerAt+12]++
			fixTrailerCRC(b)
			return b
		}, nil, testStoreID, container.ErrFormat},
		{"footer magic", func(b []byte) []byte { b[footerAt] ^= 1; return b }, nil, testStoreID, container.ErrFormat},
		{"footer length", func(b []byte) []byte { b[footerAt+4] ^= 1; return b }, nil, testStoreID, container.ErrFormat},
		{"flipped footer", func(b []byte) []byte { b[footerAt+20] ^= 1; return b }, nil, testStoreID, crypt.ErrAuth},
		{"footer moved by the trailer", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[trailerAt:], uint64(footerAt-1))
			binary.LittleEndian.PutUint32(b[trailerAt+8:], binary.LittleEndian.Uint32(b[trailerAt+8:])+1)
			fixTrailerCRC(b)
			return b
		}, nil, testStoreID, container.ErrFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := clone(c.data)
			if tc.edit != nil {
				b = tc.edit(b)
			}
			aead := tc.aead
			if aead == nil {
				aead = testAEAD(t)
			}
			r, err := openBytes(t, b, aead, tc.storeID)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if r != nil {
				t.Fatal("reader returned with an error")
			}
		})
	}
}

func TestDamagedRegionFailsOnlyItself(t *testing.T) {
	c := buildContainer(t, t.TempDir(), 9, container.KindData, [][]byte{regionPayload(0), regionPayload(1), regionPayload(3)})
	comp := newComp(t)
	for _, fix := range []bool{false, true} {
		b := clone(c.data)
		reg := c.footer.Regions[1]
		b[reg.Offset+container.RegionHeaderSize+10] ^= 0x40
		if fix {
			fixRegionCRC(b[reg.Offset : reg.Offset+container.RegionHeaderSize+int64(reg.StoredLen)])
		}
		r, err := openBytes(t, b, testAEAD(t), testStoreID)
		if err != nil {
			t.Fatal(err)
		}
		want := container.ErrFormat
		if fix {
			want = crypt.ErrAuth
		}
		if _, err := r.ReadRegion(comp, 1, nil); !errors.Is(err, want) {
			t.Fatalf("damaged region (checksum rewritten %v): got %v, want %v", fix, err, want)
		}
		for _, i := range []int{0, 2} {
			got, err := r.ReadRegion(comp, i, nil)
			if err != nil || !bytes.Equal(got, c.payloads[i]) {
				t.Fatalf("intact region %d: %v", i, err)
			}
		}
	}
}

func TestRegionSwappedFails(t *testing.T) {
	// Two raw regions of the same size, so their bytes can trade places.
	a, b := pseudoRandom("swap a", 5000), pseudoRandom("swap b", 5000)
	c := buildContainer(t, t.TempDir(), 21, container.KindData, [][]byte{a, b})
	r0, r1 := c.footer.Regions[0], c.footer.Regions[1]
	if r0.StoredLen != r1.StoredLen {
		t.Fatal("fixture regions differ in size")
	}
	n := int64(container.RegionHeaderSize) + int64(r0.StoredLen)
	swap := func(fixHeaders bool) []byte {
		d := clone(c.data)
		copy(d[r0.Offset:], c.data[r1.Offset:r1.Offset+n])
		copy(d[r1.Offset:], c.data[r0.Offset:r0.Offset+n])
		if fixHeaders {
			// Make each region header claim its new position.
			binary.LittleEndian.PutUint32(d[r0.Offset+12:], 0)
			binary.LittleEndian.PutUint32(d[r1.Offset+12:], 1)
		}
		return d
	}
	comp := newComp(t)
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"swapped", swap(false), container.ErrFormat},
		{"swapped, headers rewritten", swap(true), crypt.ErrAuth},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := openBytes(t, tc.data, testAEAD(t), testStoreID)
			if err != nil {
				t.Fatal(err) // the footer is intact
			}
			for i := range 2 {
				got, err := r.ReadRegion(comp, i, nil)
				if !errors.Is(err, tc.want) {
					t.Fatalf("region %d: got %v (%d bytes), want %v", i, err, len(got), tc.want)
				}
			}
		})
	}

	t.Run("from another container", func(t *testing.T) {
		// The same region index of another container of the same store.
		o := buildContainer(t, t.TempDir(), 22, container.KindData, [][]byte{b, a})
		d := clone(c.data)
		copy(d[r0.Offset:], o.data[r0.Offset:r0.Offset+n])
		r, err := openBytes(t, d, testAEAD(t), testStoreID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.ReadRegion(comp, 0, nil); !errors.Is(err, crypt.ErrAuth) {
			t.Fatalf("got %v, want ErrAuth", err)
		}
	})
}
