package diskmap

import (
	"encoding/binary"
	"errors"
	"fmt"

	"coffer.dev/coffer/store/chunk"
	"coffer.dev/coffer/store/chunker"
)

const (
	// RangeSize is the logical size of a level-1 map range. A chunk never
	// crosses a range boundary.
	RangeSize = 16 << 20
	// GroupRanges is the number of ranges one level-2 map lists.
	GroupRanges = 1024
	// GroupSize is the logical size covered by one level-2 map.
	GroupSize = RangeSize * GroupRanges

	magic    = 'M'
	version  = 1
	maxCount = RangeSize / chunker.BlockSize * 2
)

// ErrFormat marks a map that cannot be decoded.
var ErrFormat = errors.New("disk map format error")

func formatErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, a...))
}

// Extent is one entry of a level-1 map: Len bytes of zeros, or the chunk ID.
type Extent struct {
	Len  uint32
	Zero bool
	ID   chunk.ID
}

// RangeLen returns the logical length of range r of a disk of size bytes.
func RangeLen(size int64, r int) int64 {
	start := int64(r) * RangeSize
	return min(RangeSize, size-start)
}

// Ranges returns the number of map ranges of a disk of size bytes.
func Ranges(size int64) int { return int((size + RangeSize - 1) / RangeSize) }

// Groups returns the number of level-2 maps of a disk of size bytes.
func Groups(size int64) int { return (Ranges(size) + GroupRanges - 1) / GroupRanges }

// uvarint is binary.Uvarint that also fails (k == 0) on a non-minimal
// encoding, so that a map, a content-addressed chunk, has one encoding.
func uvarint(b []byte) (uint64, int) {
	v, k := binary.Uvarint(b)
	if k > 1 && b[k-1] == 0 {
		return 0, 0
	}
	return v, k
}

// EncodeRange encodes a level-1 map. Extents must be canonical: no empty
// extent, no two zero extents in a row.
func EncodeRange(exts []Extent) []byte {
	b := make([]byte, 0, 8+len(exts)*34)
	b = append(b, magic, 1, version)
	b = binary.AppendUvarint(b, uint64(len(exts)))
	for _, e := range exts {
		v := uint64(e.Len) << 1
		if e.Zero {
			b = binary.AppendUvarint(b, v|1)
			continue
		}
		b = binary.AppendUvarint(b, v)
		b = append(b, e.ID[:]...)
	}
	return b
}

// DecodeRange decodes a level-1 map and checks that it covers exactly
// length bytes, in whole blocks except for the disk's last block.
func DecodeRange(b []byte, length int64) ([]Extent, error) {
	if len(b) < 4 || b[0] != magic || b[1] != 1 {
		return nil, formatErr("not a level-1 map")
	}
	if b[2] != version {
		return nil, formatErr("level-1 map version %d not supported", b[2])
	}
	b = b[3:]
	n, k := uvarint(b)
	if k <= 0 || n > maxCount {
		return nil, formatErr("level-1 map: bad count")
	}
	b = b[k:]
	exts := make([]Extent, 0, n)
	var total int64
	prevZero := false
	for i := uint64(0); i < n; i++ {
		v, k := uvarint(b)
		if k <= 0 || v>>1 == 0 || v>>1 > RangeSize {
			return nil, formatErr("level-1 map: extent %d: bad length", i)
		}
		b = b[k:]
		e := Extent{Len: uint32(v >> 1), Zero: v&1 == 1}
		if e.Zero && prevZero {
			return nil, formatErr("level-1 map: extent %d: two zero runs in a row", i)
		}
		prevZero = e.Zero
		if !e.Zero {
			if len(b) < chunk.IDSize {
				return nil, formatErr("level-1 map: extent %d: truncated id", i)
			}
			copy(e.ID[:], b)
			if e.ID.IsZero() {
				return nil, formatErr("level-1 map: extent %d: zero chunk id", i)
			}
			b = b[chunk.IDSize:]
		}
		if total%chunker.BlockSize != 0 {
			return nil, formatErr("level-1 map: extent %d starts inside a block", i)
		}
		total += int64(e.Len)
		exts = append(exts, e)
	}
	if len(b) != 0 {
		return nil, formatErr("level-1 map: %d trailing bytes", len(b))
	}
	if total != length {
		return nil, formatErr("level-1 map covers %d bytes, want %d", total, length)
	}
	return exts, nil
}

// RangeRef is one entry of a level-2 map: the level-1 map of a range (the
// zero ID for a range that is all zeros) and how many of its bytes are not
// zero, so that a point's figures need no level-1 map.
type RangeRef struct {
	ID   chunk.ID
	Data uint32
}

// EncodeGroup encodes a level-2 map.
func EncodeGroup(ranges []RangeRef) []byte {
	b := make([]byte, 0, 8+len(ranges)*38)
	b = append(b, magic, 2, version)
	b = binary.AppendUvarint(b, uint64(len(ranges)))
	for _, r := range ranges {
		if r.ID.IsZero() {
			b = append(b, 0)
			continue
		}
		b = append(b, 1)
		b = append(b, r.ID[:]...)
		b = binary.AppendUvarint(b, uint64(r.Data))
	}
	return b
}

// DecodeGroup decodes a level-2 map that must list want ranges.
func DecodeGroup(b []byte, want int) ([]RangeRef, error) {
	if len(b) < 4 || b[0] != magic || b[1] != 2 {
		return nil, formatErr("not a level-2 map")
	}
	if b[2] != version {
		return nil, formatErr("level-2 map version %d not supported", b[2])
	}
	b = b[3:]
	n, k := uvarint(b)
	if k <= 0 || n != uint64(want) || n > GroupRanges {
		return nil, formatErr("level-2 map lists %d ranges, want %d", n, want)
	}
	b = b[k:]
	refs := make([]RangeRef, n)
	for i := range refs {
		if len(b) < 1 {
			return nil, formatErr("level-2 map: truncated at range %d", i)
		}
		flag := b[0]
		b = b[1:]
		switch flag {
		case 0:
		case 1:
			if len(b) < chunk.IDSize {
				return nil, formatErr("level-2 map: truncated id at range %d", i)
			}
			copy(refs[i].ID[:], b)
			if refs[i].ID.IsZero() {
				return nil, formatErr("level-2 map: zero id flagged present at range %d", i)
			}
			b = b[chunk.IDSize:]
			d, k := uvarint(b)
			if k <= 0 || d > RangeSize {
				return nil, formatErr("level-2 map: bad data count at range %d", i)
			}
			refs[i].Data = uint32(d)
			b = b[k:]
		default:
			return nil, formatErr("level-2 map: bad flag %d at range %d", flag, i)
		}
	}
	if len(b) != 0 {
		return nil, formatErr("level-2 map: %d trailing bytes", len(b))
	}
	return refs, nil
}

// GroupLen returns how many ranges group g of a disk of size bytes lists.
func GroupLen(size int64, g int) int {
	return min(GroupRanges, Ranges(size)-g*GroupRanges)
}

// Canonical merges adjacent zero extents and drops empty ones, in place.
func Canonical(exts []Extent) []Extent {
	out := exts[:0]
	for _, e := range exts {
		if e.Len == 0 {
			continue
		}
		if e.Zero && len(out) > 0 && out[len(out)-1].Zero {
			out[len(out)-1].Len += e.Len
			continue
		}
		out = append(out, e)
	}
	return out
}
