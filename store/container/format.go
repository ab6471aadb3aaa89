package container

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"coffer.dev/coffer/store/chunk"
)

// Kind separates data containers from map containers, so that walking the
// maps of every point (GC, verify) reads dense metadata containers.
type Kind uint8

const (
	KindData Kind = 1
	KindMap  Kind = 2
)

func (k Kind) String() string {
	switch k {
	case KindData:
		return "data"
	case KindMap:
		return "map"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Codec is how a region's payload is stored.
type Codec uint8

const (
	CodecRaw  Codec = 0
	CodecZstd Codec = 1
)

const (
	// HeaderSize is the size of the plaintext container header.
	HeaderSize = 64
	// TrailerSize is the size of the plaintext trailer at the end.
	TrailerSize = 32
	// RegionHeaderSize precedes each sealed region.
	RegionHeaderSize = 16

	headerMagic  = "CFRCTNR1"
	regionMagic  = 0x4e475243 // "CRGN"
	footerMagic  = 0x52544643 // "CFTR"
	trailerMagic = 0x444e4543 // "CEND"
	version      = 1

	// regionPlainHeader is codec (1) + raw length (4) inside the ciphertext.
	regionPlainHeader = 5
	entrySize         = chunk.IDSize + 1 + 4 + 4 + 4
	regionInfoSize    = 8 + 4 + 4 + 1

	// MaxRegionRaw bounds a region's uncompressed size (decoders refuse more).
	MaxRegionRaw = 8 << 20
	// MaxEntries bounds the number of chunks in one container.
	MaxEntries = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrFormat marks structurally invalid container data.
var ErrFormat = errors.New("container format error")

func formatErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, a...))
}

// Header is the plaintext start of a container file.
type Header struct {
	StoreID [16]byte
	ID      uint64
	Kind    Kind
	Created time.Time
}

// MarshalBinary encodes the header in HeaderSize bytes.
func (h Header) MarshalBinary() []byte {
	b := make([]byte, HeaderSize)
	copy(b, headerMagic)
	binary.LittleEndian.PutUint16(b[8:], version)
	b[10] = byte(h.Kind)
	copy(b[16:32], h.StoreID[:])
	binary.LittleEndian.PutUint64(b[32:], h.ID)
	binary.LittleEndian.PutUint64(b[40:], uint64(h.Created.UnixNano()))
	binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
	return b
}

// ParseHeader decodes a container header.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderSize {
		return h, formatErr("header: %d bytes", len(b))
	}
	if string(b[:8]) != headerMagic {
		return h, formatErr("header: bad magic")
	}
	if crc32.Checksum(b[:60], castagnoli) != binary.LittleEndian.Uint32(b[60:]) {
		return h, formatErr("header: checksum mismatch")
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != version {
		return h, formatErr("header: version %d not supported", v)
	}
	h.Kind = Kind(b[10])
	if h.Kind != KindData && h.Kind != KindMap {
		return h, formatErr("header: unknown kind %d", b[10])
	}
	copy(h.StoreID[:], b[16:32])
	h.ID = binary.LittleEndian.Uint64(b[32:])
	h.Created = time.Unix(0, int64(binary.LittleEndian.Uint64(b[40:]))).UTC()
	return h, nil
}

// Region locates one sealed region in the file.
type Region struct {
	Offset    int64  // of the region header
	StoredLen uint32 // sealed bytes after the region header
	RawLen    uint32 // payload bytes once opened and decompressed
	Codec     Codec
}

// Entry locates one chunk: its bytes are RawPayload(Region)[Offset:Offset+Length].
type Entry struct {
	ID     chunk.ID
	Kind   chunk.Kind
	Region uint32
	Offset uint32
	Length uint32
}

// Footer is the fingerprint section: the regions and the chunks they hold.
type Footer struct {
	Regions []Region
	Entries []Entry
}

// MarshalBinary encodes the footer plaintext.
func (f *Footer) MarshalBinary() []byte {
	b := make([]byte, 0, 12+len(f.Regions)*regionInfoSize+len(f.Entries)*entrySize)
	b = binary.LittleEndian.AppendUint32(b, version)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(f.Regions)))
	for _, r := range f.Regions {
		b = binary.LittleEndian.AppendUint64(b, uint64(r.Offset))
		b = binary.LittleEndian.AppendUint32(b, r.StoredLen)
		b = binary.LittleEndian.AppendUint32(b, r.RawLen)
		b = append(b, byte(r.Codec))
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(f.Entries)))
	for _, e := range f.Entries {
		b = append(b, e.ID[:]...)
		b = append(b, byte(e.Kind))
		b = binary.LittleEndian.AppendUint32(b, e.Region)
		b = binary.LittleEndian.AppendUint32(b, e.Offset)
		b = binary.LittleEndian.AppendUint32(b, e.Length)
	}
	return b
}

// ParseFooter decodes and validates footer plaintext: every entry must lie
// inside its region, and regions must not overlap.
func ParseFooter(b []byte) (*Footer, error) {
	if len(b) < 8 {
		return nil, formatErr("footer: %d bytes", len(b))
	}
	if v := binary.LittleEndian.Uint32(b); v != version {
		return nil, formatErr("footer: version %d not supported", v)
	}
	nr := binary.LittleEndian.Uint32(b[4:])
	b = b[8:]
	if uint64(nr)*regionInfoSize > uint64(len(b)) {
		return nil, formatErr("footer: %d regions do not fit", nr)
	}
	f := &Footer{Regions: make([]Region, nr)}
	prevEnd := int64(HeaderSize)
	for i := range f.Regions {
		r := Region{
			Offset:    int64(binary.LittleEndian.Uint64(b)),
			StoredLen: binary.LittleEndian.Uint32(b[8:]),
			RawLen:    binary.LittleEndian.Uint32(b[12:]),
			Codec:     Codec(b[16]),
		}
		b = b[regionInfoSize:]
		if r.Codec != CodecRaw && r.Codec != CodecZstd {
			return nil, formatErr("footer: region %d: unknown codec %d", i, r.Codec)
		}
		if r.RawLen > MaxRegionRaw || r.StoredLen > MaxRegionRaw+1024 {
			return nil, formatErr("footer: region %d too large", i)
		}
		if r.Offset < prevEnd || r.Offset > 1<<50 {
			return nil, formatErr("footer: region %d at %d overlaps its predecessor", i, r.Offset)
		}
		prevEnd = r.Offset + RegionHeaderSize + int64(r.StoredLen)
		f.Regions[i] = r
	}
	if len(b) < 4 {
		return nil, formatErr("footer: truncated before entries")
	}
	ne := binary.LittleEndian.Uint32(b)
	b = b[4:]
	if ne > MaxEntries || uint64(ne)*entrySize != uint64(len(b)) {
		return nil, formatErr("footer: %d entries in %d bytes", ne, len(b))
	}
	f.Entries = make([]Entry, ne)
	for i := range f.Entries {
		e := &f.Entries[i]
		copy(e.ID[:], b)
		e.Kind = chunk.Kind(b[32])
		e.Region = binary.LittleEndian.Uint32(b[33:])
		e.Offset = binary.LittleEndian.Uint32(b[37:])
		e.Length = binary.LittleEndian.Uint32(b[41:])
		b = b[entrySize:]
		if !e.Kind.Valid() {
			return nil, formatErr("footer: entry %d: %v", i, chunk.ErrBadKind)
		}
		if e.Region >= nr {
			return nil, formatErr("footer: entry %d: region %d of %d", i, e.Region, nr)
		}
		if uint64(e.Offset)+uint64(e.Length) > uint64(f.Regions[e.Region].RawLen) {
			return nil, formatErr("footer: entry %d overruns region %d", i, e.Region)
		}
	}
	return f, nil
}

// Trailer is the fixed-size end of a container file.
type Trailer struct {
	FooterOffset int64
	FooterLen    uint32
	Entries      uint32
	ContainerID  uint64
}

// MarshalBinary encodes the trailer in TrailerSize bytes.
func (t Trailer) MarshalBinary() []byte {
	b := make([]byte, TrailerSize)
	binary.LittleEndian.PutUint64(b, uint64(t.FooterOffset))
	binary.LittleEndian.PutUint32(b[8:], t.FooterLen)
	binary.LittleEndian.PutUint32(b[12:], t.Entries)
	binary.LittleEndian.PutUint64(b[16:], t.ContainerID)
	binary.LittleEndian.PutUint32(b[24:], crc32.Checksum(b[:24], castagnoli))
	binary.LittleEndian.PutUint32(b[28:], trailerMagic)
	return b
}

// ParseTrailer decodes a trailer; size is the container file's size.
func ParseTrailer(b []byte, size int64) (Trailer, error) {
	var t Trailer
	if len(b) != TrailerSize {
		return t, formatErr("trailer: %d bytes", len(b))
	}
	if binary.LittleEndian.Uint32(b[28:]) != trailerMagic {
		return t, formatErr("trailer: bad magic (container not sealed)")
	}
	if crc32.Checksum(b[:24], castagnoli) != binary.LittleEndian.Uint32(b[24:]) {
		return t, formatErr("trailer: checksum mismatch")
	}
	t.FooterOffset = int64(binary.LittleEndian.Uint64(b))
	t.FooterLen = binary.LittleEndian.Uint32(b[8:])
	t.Entries = binary.LittleEndian.Uint32(b[12:])
	t.ContainerID = binary.LittleEndian.Uint64(b[16:])
	if t.FooterOffset < HeaderSize || t.FooterOffset+8+int64(t.FooterLen)+TrailerSize != size {
		return t, formatErr("trailer: footer at %d+%d does not end at the trailer (file %d bytes)", t.FooterOffset, t.FooterLen, size)
	}
	return t, nil
}

// regionHeader is magic, sealed length, CRC-32C of the sealed bytes, and the
// region's index in the container.
func regionHeader(sealed []byte, index uint32) []byte {
	b := make([]byte, RegionHeaderSize)
	binary.LittleEndian.PutUint32(b, regionMagic)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(sealed)))
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(sealed, castagnoli))
	binary.LittleEndian.PutUint32(b[12:], index)
	return b
}

// ParseRegionHeader checks a region header against the footer's record and
// returns the CRC-32C the sealed bytes must have.
func ParseRegionHeader(b []byte, want Region, index uint32) (crc uint32, err error) {
	if len(b) < RegionHeaderSize {
		return 0, formatErr("region %d header: %d bytes", index, len(b))
	}
	if binary.LittleEndian.Uint32(b) != regionMagic {
		return 0, formatErr("region %d header: bad magic", index)
	}
	if n := binary.LittleEndian.Uint32(b[4:]); n != want.StoredLen {
		return 0, formatErr("region %d header: length %d, footer says %d", index, n, want.StoredLen)
	}
	if i := binary.LittleEndian.Uint32(b[12:]); i != index {
		return 0, formatErr("region header says index %d, want %d", i, index)
	}
	return binary.LittleEndian.Uint32(b[8:]), nil
}

// footerAAD and regionAAD bind ciphertexts to their container and position,
// so regions cannot be swapped or moved undetected.
func footerAAD(storeID [16]byte, id uint64, kind Kind) []byte {
	b := append([]byte("footer"), storeID[:]...)
	b = binary.LittleEndian.AppendUint64(b, id)
	return append(b, byte(kind))
}

func regionAAD(storeID [16]byte, id uint64, index uint32) []byte {
	b := append([]byte("region"), storeID[:]...)
	b = binary.LittleEndian.AppendUint64(b, id)
	return binary.LittleEndian.AppendUint32(b, index)
}
