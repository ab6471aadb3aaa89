package container_test

import (
	"crypto/sha256"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
	"time"

	"coffer.dev/coffer/store/chunk"
	"coffer.dev/coffer/store/container"
	"coffer.dev/coffer/store/crypt"
)

// Fixed keys and names: committed seeds were sealed with these, so a fuzz
// input that authenticates was made by these tests.
var (
	testStoreID  = [16]byte{0xc0, 0xff, 0xee, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}
	otherStoreID = [16]byte{0xc0, 0xff, 0xee, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14}
	testCreated  = time.Date(2026, 11, 23, 8, 18, 46, 123456789, time.UTC)
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func newAEAD(tb testing.TB, name string) *crypt.AEAD {
	tb.Helper()
	k := sha256.Sum256([]byte("coffer container test key: " + name))
	a, err := crypt.NewAEAD(k[:])
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func testAEAD(tb testing.TB) *crypt.AEAD  { return newAEAD(tb, "store") }
func otherAEAD(tb testing.TB) *crypt.AEAD { return newAEAD(tb, "other") }

func newComp(tb testing.TB) *container.Compression {
	tb.Helper()
	c, err := container.NewCompression()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

// pseudoRandom returns n incompressible bytes determined by seed.
func pseudoRandom(seed string, n int) []byte {
	b := make([]byte, 0, n+sha256.Size)
	h := sha256.Sum256([]byte(seed))
	for len(b) < n {
		b = append(b, h[:]...)
		h = sha256.Sum256(h[:])
	}
	return b[:n]
}

// textLike returns n compressible bytes determined by seed.
func textLike(seed string, n int) []byte {
	words := []string{"coffer ", "backup ", "region ", "chunk ", "the ", "fox\n", seed, " "}
	b := make([]byte, 0, n+16)
	for i := 0; len(b) < n; i++ {
		b = append(b, words[(i*7+i/3)%len(words)]...)
	}
	return b[:n]
}

// regionPayload is the payload the tests seal as region index: it depends
// on index%4 only, so regionFuzzAEAD can bind its key to all of them.
func regionPayload(index uint32) []byte {
	switch index % 4 {
	case 0:
		return textLike("a", 1500) // zstd
	case 1:
		return pseudoRandom("region", 256) // raw
	case 2:
		return nil // empty, raw
	default:
		return make([]byte, 16<<10) // zeros, zstd
	}
}

// regionFuzzAEAD seals the regions of FuzzOpenRegion, which asserts that
// whatever opens is regionPayload(index). Its key is derived from those
// payloads: if they change, regions sealed before (committed seeds, the
// fuzz cache) stop authenticating instead of opening to other bytes.
func regionFuzzAEAD(tb testing.TB) *crypt.AEAD {
	h := sha256.New()
	h.Write([]byte("coffer container fuzz region key"))
	for i := range uint32(4) {
		p := regionPayload(i)
		h.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(p))))
		h.Write(p)
	}
	a, err := crypt.NewAEAD(h.Sum(nil))
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// chunkID is a stand-in fingerprint.
func chunkID(data []byte) chunk.ID { return chunk.ID(sha256.Sum256(data)) }

// entriesFor cuts payload into chunks of at most size bytes.
func entriesFor(payload []byte, size int) []container.Entry {
	var es []container.Entry
	for off := 0; off < len(payload); off += size {
		end := min(off+size, len(payload))
		es = append(es, container.Entry{ID: chunkID(payload[off:end]), Kind: chunk.Data, Offset: uint32(off), Length: uint32(end - off)})
	}
	return es
}

type builtContainer struct {
	path     string
	data     []byte
	header   container.Header
	payloads [][]byte
	footer   container.Footer // as the writer recorded it
}

// buildContainer writes and seals a container of the given payloads in dir.
func buildContainer(tb testing.TB, dir string, id uint64, kind container.Kind, payloads [][]byte) builtContainer {
	tb.Helper()
	comp := newComp(tb)
	aead := testAEAD(tb)
	hdr := container.Header{StoreID: testStoreID, ID: id, Kind: kind, Created: testCreated}
	path := filepath.Join(dir, "containers", "c"+string(rune('a'+id%26)))
	w, err := container.Create(path, hdr)
	if err != nil {
		tb.Fatal(err)
	}
	var footer container.Footer
	for i, p := range payloads {
		r := container.SealRegion(comp, aead, testStoreID, id, uint32(i), p, nil)
		footer.Regions = append(footer.Regions, container.Region{
			Offset: w.Size(), StoredLen: uint32(len(r.Bytes) - container.RegionHeaderSize), RawLen: r.RawLen, Codec: r.Codec,
		})
		es := entriesFor(p, 4096)
		if err := w.WriteRegion(r, es); err != nil {
			tb.Fatal(err)
		}
		for _, e := range es {
			e.Region = uint32(i)
			footer.Entries = append(footer.Entries, e)
		}
	}
	size, err := w.Seal(aead)
	if err != nil {
		tb.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if int64(len(data)) != size {
		tb.Fatalf("Seal returned size %d, file has %d bytes", size, len(data))
	}
	return builtContainer{path: path, data: data, header: hdr, payloads: payloads, footer: footer}
}

// fixHeaderCRC recomputes a header's checksum after an edit.
func fixHeaderCRC(b []byte) {
	binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
}

// fixTrailerCRC recomputes the checksum of the trailer that ends b.
func fixTrailerCRC(b []byte) {
	t := b[len(b)-container.TrailerSize:]
	binary.LittleEndian.PutUint32(t[24:], crc32.Checksum(t[:24], castagnoli))
}

// fixRegionCRC recomputes the checksum of the sealed region at b[0:].
func fixRegionCRC(b []byte) {
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b[container.RegionHeaderSize:], castagnoli))
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
