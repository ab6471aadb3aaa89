package store

import (
	"fmt"

	"coffer.dev/coffer/store/chunker"
	"coffer.dev/coffer/store/diskmap"
)

// Extent is a byte range of a disk: the shape of vSphere's changed areas.
type Extent struct {
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
}

// End returns the offset just past the extent.
func (e Extent) End() int64 { return e.Offset + e.Length }

// piece is one extent of a range's new map: copied from the old map, a zero
// run, or new data read from the source (data set, ID computed later).
type piece struct {
	off    int64
	ext    diskmap.Extent
	data   []byte
	copied bool
}

// rechunk re-splits one map range of length rangeLen after the areas dirty
// changed. old is the range's previous map; dirty are block-aligned,
// sorted, non-overlapping extents relative to the range; read fills p from
// the new content at a range-relative offset.
//
// Outside the dirty areas the old extents are copied. Each dirty area is
// re-chunked from a cut point before it until the new cuts meet an old
// boundary in clean data with the chunker reset there: from that point the
// old extents are what a full pass would produce again. The result equals
// a full re-chunk of the new content (the chunker's decisions depend only
// on the block at hand and the blocks since the last cut).
func rechunk(c *chunker.Chunker, old []diskmap.Extent, dirty []Extent, rangeLen int64, read func(p []byte, off int64) error) ([]piece, int64, error) {
	starts := make([]int64, len(old)+1)
	for i, e := range old {
		starts[i+1] = starts[i] + int64(e.Len)
	}
	if starts[len(old)] != rangeLen {
		return nil, 0, fmt.Errorf("old map covers %d bytes, range is %d", starts[len(old)], rangeLen)
	}
	var out []piece
	var readBytes int64
	emitOld := func(i int) {
		out = append(out, piece{off: starts[i], ext: old[i], copied: !old[i].Zero})
	}
	i, d := 0, 0 // next old extent, next dirty area
	pos := int64(0)
	for pos < rangeLen {
		// Copy mode: pos is a cut in both the old and the new chunking.
		for d < len(dirty) && dirty[d].End() <= pos {
			d++
		}
		if d == len(dirty) {
			for ; i < len(old); i++ {
				emitOld(i)
			}
			break
		}
		ds := dirty[d].Offset
		for i < len(old) && starts[i+1] <= ds {
			// An old cut caused by the first block of a zero run that is
			// now dirty may vanish: re-chunk the data before it too.
			if starts[i+1] == ds && i+1 < len(old) && old[i+1].Zero {
				break
			}
			emitOld(i)
			i++
		}
		// Chunk mode from the old cut starts[i]. Piece offsets are
		// range-relative; win holds the bytes read from winOff on.
		p := starts[i]
		var st chunker.State
		st.Reset(int(p))
		var win []byte
		winOff := p
		var pieces []chunker.Piece
		if old[i].Zero && ds > p {
			// The dirty area starts inside a zero run: the blocks before
			// it are still zero, no need to read them.
			st.ResumeZeroRun(int(p))
			p, winOff = ds, ds
		}
		flushPieces := func() {
			for _, pc := range pieces {
				np := piece{off: int64(pc.Off), ext: diskmap.Extent{Len: uint32(pc.Len), Zero: pc.Zero}}
				if !pc.Zero {
					rel := int64(pc.Off) - winOff
					np.data = win[rel : rel+int64(pc.Len)]
				}
				out = append(out, np)
			}
			pieces = pieces[:0]
		}
		j := i // old extent index: starts[j] >= p
		for {
			if p >= winOff+int64(len(win)) {
				// Read ahead: to the end of the dirty area plus a margin.
				want := int64(64 << 10)
				if d < len(dirty) && dirty[d].End() > p {
					want = max(want, dirty[d].End()-p+64<<10)
				}
				n := min(want, rangeLen-p)
				n = (n + chunker.BlockSize - 1) / chunker.BlockSize * chunker.BlockSize
				n = min(n, rangeLen-p)
				grown := append(win, make([]byte, n)...)
				if err := read(grown[len(win):], p); err != nil {
					return nil, 0, err
				}
				readBytes += n
				win = grown
			}
			rel := p - winOff
			blk := win[rel:min(rel+chunker.BlockSize, int64(len(win)))]
			pieces = st.Feed(c, pieces, blk, int(p))
			p += int64(len(blk))
			if p >= rangeLen {
				pieces = st.Flush(pieces, int(p))
				flushPieces()
				pos = rangeLen
				i = len(old)
				break
			}
			for d < len(dirty) && dirty[d].End() <= p {
				d++
			}
			for j < len(old) && starts[j+1] <= p {
				j++
			}
			// j is the old extent that holds p (or len(old) at the end).
			if j >= len(old) || (d < len(dirty) && dirty[d].Offset <= p) {
				continue // dirty data ahead at p
			}
			if starts[j] == p && !st.Pending() {
				flushPieces()
				pos, i = p, j
				break
			}
			if !st.PendingZero() {
				continue // a data chunk is still open
			}
			if starts[j] == p && !old[j].Zero {
				pieces = st.Flush(pieces, int(p))
				flushPieces()
				pos, i = p, j
				break
			}
			if !old[j].Zero {
				continue
			}
			q := starts[j+1]
			if d < len(dirty) && dirty[d].Offset <= q {
				// The zero run may continue into dirty data. Up to it the
				// old zeros are clean: skip them without reading.
				if ds2 := dirty[d].Offset; ds2 > p {
					flushPieces()
					win, winOff, p = nil, ds2, ds2
				}
				continue
			}
			// The pending zero run continues through the old zero run,
			// which is clean: no need to read it.
			pieces = st.Flush(pieces, int(p))
			flushPieces()
			last := &out[len(out)-1]
			last.ext.Len += uint32(q - p)
			pos, i = q, j+1
			break
		}
	}
	// Canonical form: merge zero runs that met at a seam.
	merged := out[:0]
	for _, pc := range out {
		if pc.ext.Zero && len(merged) > 0 && merged[len(merged)-1].ext.Zero {
			merged[len(merged)-1].ext.Len += pc.ext.Len
			continue
		}
		merged = append(merged, pc)
	}
	return merged, readBytes, nil
}
