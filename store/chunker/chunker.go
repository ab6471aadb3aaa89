package chunker

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"
)

// BlockSize is the granularity of every cut: filesystems place file data on
// 4 KiB boundaries, so chunks made of whole blocks line up with files.
const BlockSize = 4096

// Params are the chunker's tunables. They are fixed when a store is created
// and recorded in its configuration: changing them changes every chunk.
type Params struct {
	// AvgBlocks is the size (in blocks) at which normalisation switches from
	// the strict to the loose cut probability. Power of two.
	AvgBlocks int `json:"avg_blocks"`
	// MaxBlocks forces a cut when a chunk reaches this many blocks.
	MaxBlocks int `json:"max_blocks"`
	// ZeroTail: a block whose last ZeroTail bytes are all zero ends a chunk.
	// Files end in zero padding, so this cuts at file ends and lets the next
	// file start a fresh chunk wherever it lies on the disk. 0 disables.
	ZeroTail int `json:"zero_tail"`
	// Window is how many bytes at the end of each block feed the gear hash.
	Window int `json:"window"`
}

// DefaultParams are the parameters chosen from the benchmark corpus (see
// store/FORMAT.md): chunks of 4–64 KiB, about 17 KiB on average on Debian
// root filesystems.
var DefaultParams = Params{AvgBlocks: 8, MaxBlocks: 16, ZeroTail: 64, Window: 64}

// Validate checks that p describes a usable chunker.
func (p Params) Validate() error {
	switch {
	case p.AvgBlocks < 1 || p.AvgBlocks&(p.AvgBlocks-1) != 0:
		return fmt.Errorf("chunker: avg_blocks %d is not a power of two", p.AvgBlocks)
	case p.MaxBlocks < p.AvgBlocks || p.MaxBlocks > 256:
		return fmt.Errorf("chunker: max_blocks %d out of range [%d, 256]", p.MaxBlocks, p.AvgBlocks)
	case p.ZeroTail < 0 || p.ZeroTail > BlockSize:
		return fmt.Errorf("chunker: zero_tail %d out of range", p.ZeroTail)
	case p.Window < 8 || p.Window > BlockSize:
		return fmt.Errorf("chunker: window %d out of range [8, %d]", p.Window, BlockSize)
	}
	return nil
}

// Chunker makes cut decisions. It holds no per-stream state and is safe for
// concurrent use.
type Chunker struct {
	p          Params
	gear       [256]uint64
	hard, easy uint64
}

// New returns a chunker whose gear table is derived from key, so that chunk
// boundaries (and thus chunk lengths) cannot be predicted without the
// store's key.
func New(key []byte, p Params) (*Chunker, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	c := &Chunker{p: p}
	mac := hmac.New(sha256.New, key)
	var ctr [4]byte
	var sum []byte
	for i := 0; i < 256; i += 4 {
		binary.LittleEndian.PutUint32(ctr[:], uint32(i))
		mac.Reset()
		mac.Write([]byte("coffer chunker gear"))
		mac.Write(ctr[:])
		sum = mac.Sum(sum[:0])
		for j := 0; j < 4; j++ {
			c.gear[i+j] = binary.LittleEndian.Uint64(sum[j*8:])
		}
	}
	lg := bits.Len(uint(p.AvgBlocks)) - 1
	c.hard = 1<<(lg+1) - 1
	if lg >= 1 {
		c.easy = 1<<(lg-1) - 1
	}
	return c, nil
}

// Params returns the chunker's parameters.
func (c *Chunker) Params() Params { return c.p }

// IsZero reports whether b holds only zero bytes.
func IsZero(b []byte) bool {
	for len(b) >= 8*8 {
		v := binary.LittleEndian.Uint64(b) | binary.LittleEndian.Uint64(b[8:]) |
			binary.LittleEndian.Uint64(b[16:]) | binary.LittleEndian.Uint64(b[24:]) |
			binary.LittleEndian.Uint64(b[32:]) | binary.LittleEndian.Uint64(b[40:]) |
			binary.LittleEndian.Uint64(b[48:]) | binary.LittleEndian.Uint64(b[56:])
		if v != 0 {
			return false
		}
		b = b[64:]
	}
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// CutAfter reports whether a data chunk that holds n blocks, the last of
// which is blk, ends after blk. blk must not be all zero (zero blocks are
// never part of a data chunk).
func (c *Chunker) CutAfter(blk []byte, n int) bool {
	if n >= c.p.MaxBlocks || len(blk) < BlockSize {
		return true
	}
	if c.p.ZeroTail > 0 && IsZero(blk[BlockSize-c.p.ZeroTail:]) {
		return true
	}
	var h uint64
	for _, b := range blk[BlockSize-c.p.Window:] {
		h = h<<1 + c.gear[b]
	}
	h = mix(h)
	if n < c.p.AvgBlocks {
		return h&c.hard == 0
	}
	return h&c.easy == 0
}

// mix is a 64-bit finaliser: the gear hash's low bits depend only on the
// last few bytes, so all bits are mixed before masking.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// Piece is one chunk or zero run of a split buffer, relative to the buffer.
type Piece struct {
	Off  int
	Len  int
	Zero bool
}

// Split cuts buf, which starts at a cut point, into pieces: data chunks and
// runs of zero blocks. The end of buf is a cut. buf's length need not be a
// multiple of BlockSize (only the last block may be short). Pieces are
// appended to dst.
func (c *Chunker) Split(dst []Piece, buf []byte) []Piece {
	var s State
	for off := 0; off < len(buf); off += BlockSize {
		end := min(off+BlockSize, len(buf))
		dst = s.Feed(c, dst, buf[off:end], off)
	}
	return s.Flush(dst, len(buf))
}

// State is the position of an incremental split: the start and block count
// of the piece being built. The zero value starts at a cut at offset 0.
type State struct {
	start int
	n     int
	zero  bool
}

// Reset restarts the split at a cut at offset off.
func (s *State) Reset(off int) { *s = State{start: off} }

// Start returns the offset where the pending piece began.
func (s *State) Start() int { return s.start }

// Pending reports whether a piece is being built.
func (s *State) Pending() bool { return s.n > 0 }

// ResumeZeroRun sets the state to a zero run that began at off and is
// still open (the caller knows the blocks since off are zero).
func (s *State) ResumeZeroRun(off int) { *s = State{start: off, n: 1, zero: true} }

// PendingZero reports whether the piece being built is a zero run.
func (s *State) PendingZero() bool { return s.n > 0 && s.zero }

// Feed adds the block blk that starts at offset off (offsets are in the
// caller's frame and must follow each other) and appends any finished pieces
// to dst.
func (s *State) Feed(c *Chunker, dst []Piece, blk []byte, off int) []Piece {
	if IsZero(blk) {
		if s.n > 0 && !s.zero {
			dst = append(dst, Piece{Off: s.start, Len: off - s.start})
			s.n = 0
		}
		if s.n == 0 {
			s.start, s.zero = off, true
		}
		s.n++
		return dst
	}
	if s.n > 0 && s.zero {
		dst = append(dst, Piece{Off: s.start, Len: off - s.start, Zero: true})
		s.n = 0
	}
	if s.n == 0 {
		s.start, s.zero = off, false
	}
	s.n++
	if c.CutAfter(blk, s.n) {
		dst = append(dst, Piece{Off: s.start, Len: off + len(blk) - s.start})
		s.n = 0
		s.start = off + len(blk)
	}
	return dst
}

// Flush ends the pending piece at end (a forced cut) and appends it.
func (s *State) Flush(dst []Piece, end int) []Piece {
	if s.n > 0 && end > s.start {
		dst = append(dst, Piece{Off: s.start, Len: end - s.start, Zero: s.zero})
	}
	s.n = 0
	s.start = end
	s.zero = false
	return dst
}
