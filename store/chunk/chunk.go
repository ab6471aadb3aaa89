package chunk

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/zeebo/blake3"
)

// IDSize is the length of a chunk fingerprint in bytes.
const IDSize = 32

// ID is a chunk's keyed fingerprint.
type ID [IDSize]byte

// IsZero reports whether id is the all-zero ID, which never names a chunk
// (it marks "no chunk" in maps).
func (id ID) IsZero() bool { return id == ID{} }

// String returns the full hex form.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 8 bytes in hex, for logs and messages.
func (id ID) Short() string { return hex.EncodeToString(id[:8]) }

// ParseID parses the hex form of an ID.
func ParseID(s string) (ID, error) {
	var id ID
	b, err := hex.DecodeString(s)
	if err != nil {
		return id, fmt.Errorf("parse chunk id %q: %w", s, err)
	}
	if len(b) != IDSize {
		return id, fmt.Errorf("parse chunk id %q: %d bytes, want %d", s, len(b), IDSize)
	}
	copy(id[:], b)
	return id, nil
}

// Kind tells what a chunk holds. The kind is recorded in the container's
// fingerprint section so that the index can be rebuilt and the store walked
// without reading the chunks themselves.
type Kind uint8

const (
	// Data is disk content.
	Data Kind = 0
	// Map1 is a level-1 disk map: the extents of one map range of a disk.
	Map1 Kind = 1
	// Map2 is a level-2 disk map: the level-1 maps of one group of ranges.
	Map2 Kind = 2
)

// ErrBadKind is returned for a kind value this version does not know.
var ErrBadKind = errors.New("unknown chunk kind")

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return k <= Map2 }

func (k Kind) String() string {
	switch k {
	case Data:
		return "data"
	case Map1:
		return "map1"
	case Map2:
		return "map2"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Hasher computes keyed fingerprints: BLAKE3 in keyed-hash mode with the
// store's 32-byte fingerprint key, 32 bytes of output. It is not safe for
// concurrent use; make one per goroutine with NewHasher.
type Hasher struct {
	h   *blake3.Hasher
	sum []byte
}

// NewHasher returns a Hasher keyed with the store's fingerprint key, which
// must be 32 bytes.
func NewHasher(key []byte) *Hasher {
	h, err := blake3.NewKeyed(key)
	if err != nil {
		// Only a key of the wrong length fails; the keyring guarantees 32.
		panic(fmt.Sprintf("chunk hasher: %v", err))
	}
	return &Hasher{h: h, sum: make([]byte, 0, IDSize)}
}

// Sum returns the fingerprint of data.
func (h *Hasher) Sum(data []byte) ID {
	h.h.Reset()
	h.h.Write(data)
	var id ID
	copy(id[:], h.h.Sum(h.sum[:0]))
	return id
}
