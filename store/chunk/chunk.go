package chunk

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
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

// Hasher computes keyed fingerprints. It is not safe for concurrent use;
// make one per goroutine with NewHasher.
type Hasher struct {
	mac hash.Hash
	sum []byte
}

// NewHasher returns a Hasher keyed with the store's fingerprint key.
func NewHasher(key []byte) *Hasher {
	return &Hasher{mac: hmac.New(sha256.New, key), sum: make([]byte, 0, sha256.Size)}
}

// Sum returns the fingerprint of data.
func (h *Hasher) Sum(data []byte) ID {
	h.mac.Reset()
	h.mac.Write(data)
	var id ID
	copy(id[:], h.mac.Sum(h.sum[:0]))
	return id
}
