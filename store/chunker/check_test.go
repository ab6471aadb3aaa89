package chunker_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"coffer.dev/coffer/store/chunker"
)

const bs = chunker.BlockSize

var testKey = []byte("coffer chunker test key")

func newChunker(tb testing.TB, key []byte, p chunker.Params) *chunker.Chunker {
	tb.Helper()
	c, err := chunker.New(key, p)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// randomBlock returns a block of random bytes (never all zero).
func randomBlock(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	b[0] |= 1
	return b
}

// blocksOf cuts b into blocks; only the last may be short.
func blocksOf(b []byte) [][]byte {
	var out [][]byte
	for off := 0; off < len(b); off += bs {
		out = append(out, b[off:min(off+bs, len(b))])
	}
	return out
}

// checkSplit checks everything the chunker promises about pieces, the
// result of c.Split(nil, buf): they tile buf in order from cut points on
// block boundaries; zero runs are all zero, whole and never adjacent; data
// chunks hold no zero block, are at most MaxBlocks long, and end exactly
// where CutAfter says, before a zero block, or at the end of buf.
func checkSplit(c *chunker.Chunker, buf []byte, pieces []chunker.Piece) error {
	p := c.Params()
	off := 0
	for i, pc := range pieces {
		switch {
		case pc.Off != off:
			return fmt.Errorf("piece %d at %d, want %d", i, pc.Off, off)
		case pc.Len <= 0:
			return fmt.Errorf("piece %d is empty (%d)", i, pc.Len)
		case pc.Off%bs != 0:
			return fmt.Errorf("piece %d starts inside a block (%d)", i, pc.Off)
		case pc.Off+pc.Len > len(buf):
			return fmt.Errorf("piece %d ends at %d, past %d", i, pc.Off+pc.Len, len(buf))
		case pc.Off+pc.Len != len(buf) && pc.Len%bs != 0:
			return fmt.Errorf("piece %d ends inside a block (%d+%d)", i, pc.Off, pc.Len)
		}
		off += pc.Len
		data := buf[pc.Off : pc.Off+pc.Len]
		if pc.Zero {
			if !chunker.IsZero(data) {
				return fmt.Errorf("zero piece %d (%d+%d) holds data", i, pc.Off, pc.Len)
			}
			if i > 0 && pieces[i-1].Zero {
				return fmt.Errorf("zero pieces %d and %d are adjacent", i-1, i)
			}
			continue
		}
		if pc.Len > p.MaxBlocks*bs {
			return fmt.Errorf("data piece %d is %d bytes, more than %d blocks", i, pc.Len, p.MaxBlocks)
		}
		blks := blocksOf(data)
		for j, blk := range blks {
			if chunker.IsZero(blk) {
				return fmt.Errorf("data piece %d (%d+%d) holds a zero block at %d", i, pc.Off, pc.Len, pc.Off+j*bs)
			}
			last := j == len(blks)-1
			cut := c.CutAfter(blk, j+1)
			if !last && cut {
				return fmt.Errorf("data piece %d (%d+%d) runs past a cut after block %d", i, pc.Off, pc.Len, j)
			}
			if !last && p.ZeroTail > 0 && len(blk) == bs && chunker.IsZero(blk[bs-p.ZeroTail:]) {
				return fmt.Errorf("data piece %d runs past a block with a zero tail", i)
			}
			if last && !cut && pc.Off+pc.Len != len(buf) && !pieces[i+1].Zero {
				return fmt.Errorf("data piece %d (%d+%d) ends where nothing cuts", i, pc.Off, pc.Len)
			}
		}
	}
	if off != len(buf) {
		return fmt.Errorf("pieces cover %d of %d bytes", off, len(buf))
	}
	return nil
}

// checkResume checks that splitting from any cut point gives the tail of
// the same pieces: what lets an incremental backup re-chunk from a cut.
func checkResume(c *chunker.Chunker, buf []byte, pieces []chunker.Piece) error {
	for k, pc := range pieces {
		tail := c.Split(nil, buf[pc.Off:])
		want := make([]chunker.Piece, 0, len(pieces)-k)
		for _, q := range pieces[k:] {
			q.Off -= pc.Off
			want = append(want, q)
		}
		if !slices.Equal(tail, want) {
			return fmt.Errorf("split from the cut at %d:\n%v\nwant\n%v", pc.Off, tail, want)
		}
	}
	return nil
}

// feedAt splits buf block by block with a State, in a frame where buf
// starts at base.
func feedAt(c *chunker.Chunker, buf []byte, base int) []chunker.Piece {
	var s chunker.State
	s.Reset(base)
	var out []chunker.Piece
	for off := 0; off < len(buf); off += bs {
		out = s.Feed(c, out, buf[off:min(off+bs, len(buf))], base+off)
	}
	return s.Flush(out, base+len(buf))
}
