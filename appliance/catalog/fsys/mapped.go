package fsys

import (
	"fmt"
	"io"
	"sort"
)

// Extent maps Length bytes of a file, from Logical on, to the volume at
// Physical.
type Extent struct {
	Logical, Physical, Length int64
}

// MappedFile is a File whose content lies on the volume R in extents;
// what no extent covers (holes, unwritten extents) reads as zeros. The
// readers whose files map to a list known at open (FAT cluster runs, XFS
// extent lists) use it.
type MappedFile struct {
	R io.ReaderAt
	// Length is the file's size.
	Length int64
	// Extents are sorted by Logical and do not overlap.
	Extents []Extent
	// FS names the filesystem in errors ("xfs").
	FS string
}

// Size implements File.
func (f *MappedFile) Size() int64 { return f.Length }

// maxPiece bounds one read of the volume.
const maxPiece = 4 << 20

// ReadAt implements File: one read of the volume per extent piece.
func (f *MappedFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: read at negative offset %d", f.FS, off)
	}
	if off >= f.Length {
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > f.Length-off {
		p, eof = p[:f.Length-off], io.EOF
	}
	clear(p)
	end := off + int64(len(p))
	i := sort.Search(len(f.Extents), func(i int) bool { return f.Extents[i].Logical+f.Extents[i].Length > off })
	for ; i < len(f.Extents) && f.Extents[i].Logical < end; i++ {
		e := f.Extents[i]
		lo, hi := max(e.Logical, off), min(e.Logical+e.Length, end)
		for lo < hi {
			k := min(hi-lo, maxPiece)
			n, err := f.R.ReadAt(p[lo-off:lo-off+k], e.Physical+(lo-e.Logical))
			if int64(n) < k {
				if err == nil || err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return 0, fmt.Errorf("%s: read %d bytes at %d of the volume: %w", f.FS, k, e.Physical+(lo-e.Logical), err)
			}
			lo += k
		}
	}
	return len(p), eof
}
