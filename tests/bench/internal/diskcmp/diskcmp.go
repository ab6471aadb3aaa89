// Package diskcmp compares two disk image files quickly. Regions that are
// holes in both files are skipped without reading them (SEEK_DATA/SEEK_HOLE);
// everything else is read with large positional reads and compared block by
// block.
package diskcmp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

const (
	seekData = 3 // SEEK_DATA on Linux
	seekHole = 4 // SEEK_HOLE on Linux
	bufSize  = 8 << 20
)

// Extent is the byte range [Off, Off+Len).
type Extent struct {
	Off, Len int64
}

// dataRanges returns the allocated ranges of f (size bytes long). When the
// file system cannot tell holes from data, the whole file is one range.
func dataRanges(f *os.File, size int64) ([]Extent, error) {
	var out []Extent
	off := int64(0)
	for off < size {
		start, err := f.Seek(off, seekData)
		if err != nil {
			if errors.Is(err, syscall.ENXIO) {
				break // no data after off
			}
			if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EOPNOTSUPP) {
				return []Extent{{0, size}}, nil
			}
			return nil, fmt.Errorf("seek data %s: %w", f.Name(), err)
		}
		end, err := f.Seek(start, seekHole)
		if err != nil {
			return nil, fmt.Errorf("seek hole %s: %w", f.Name(), err)
		}
		if end > size {
			end = size
		}
		if end > start {
			out = append(out, Extent{start, end - start})
		}
		off = end
	}
	return out, nil
}

// union merges two sorted range lists, widening every range to multiples of
// gran (clipped to size).
func union(a, b []Extent, gran, size int64) []Extent {
	all := make([]Extent, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		var e Extent
		if j >= len(b) || (i < len(a) && a[i].Off <= b[j].Off) {
			e = a[i]
			i++
		} else {
			e = b[j]
			j++
		}
		start := e.Off / gran * gran
		end := (e.Off + e.Len + gran - 1) / gran * gran
		if end > size {
			end = size
		}
		if n := len(all); n > 0 && start <= all[n-1].Off+all[n-1].Len {
			if end > all[n-1].Off+all[n-1].Len {
				all[n-1].Len = end - all[n-1].Off
			}
			continue
		}
		all = append(all, Extent{start, end - start})
	}
	return all
}

type pair struct {
	a, b *os.File
	size int64
}

func open(pathA, pathB string) (*pair, error) {
	a, err := os.Open(pathA)
	if err != nil {
		return nil, err
	}
	b, err := os.Open(pathB)
	if err != nil {
		a.Close()
		return nil, err
	}
	return &pair{a: a, b: b}, nil
}

func (p *pair) close() {
	p.a.Close()
	p.b.Close()
}

func (p *pair) sizes() (int64, int64, error) {
	sa, err := p.a.Stat()
	if err != nil {
		return 0, 0, err
	}
	sb, err := p.b.Stat()
	if err != nil {
		return 0, 0, err
	}
	return sa.Size(), sb.Size(), nil
}

// walk calls fn for every block of gran bytes (the last one may be shorter)
// that may differ between the two files, in order, with both contents. It
// stops early when fn returns false.
func (p *pair) walk(gran int64, fn func(off int64, a, b []byte) bool) error {
	ra, err := dataRanges(p.a, p.size)
	if err != nil {
		return err
	}
	rb, err := dataRanges(p.b, p.size)
	if err != nil {
		return err
	}
	step := bufSize / gran * gran
	if step == 0 {
		step = gran
	}
	bufA := make([]byte, step)
	bufB := make([]byte, step)
	for _, r := range union(ra, rb, gran, p.size) {
		for off := r.Off; off < r.Off+r.Len; off += step {
			n := min(step, r.Off+r.Len-off)
			if err := readFull(p.a, bufA[:n], off); err != nil {
				return err
			}
			if err := readFull(p.b, bufB[:n], off); err != nil {
				return err
			}
			for o := int64(0); o < n; o += gran {
				e := min(o+gran, n)
				if !fn(off+o, bufA[o:e], bufB[o:e]) {
					return nil
				}
			}
		}
	}
	return nil
}

func readFull(f *os.File, buf []byte, off int64) error {
	n, err := f.ReadAt(buf, off)
	if n == len(buf) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %s at %d: %w", f.Name(), off, err)
}

// Diff compares two images of the same size in blocks of gran bytes and
// returns the changed blocks, adjacent ones merged, in ascending order.
func Diff(pathA, pathB string, gran int64) ([]Extent, error) {
	if gran <= 0 {
		return nil, fmt.Errorf("diskcmp: bad block size %d", gran)
	}
	p, err := open(pathA, pathB)
	if err != nil {
		return nil, err
	}
	defer p.close()
	sa, sb, err := p.sizes()
	if err != nil {
		return nil, err
	}
	if sa != sb {
		return nil, fmt.Errorf("diskcmp: %s is %d bytes but %s is %d", pathA, sa, pathB, sb)
	}
	p.size = sa
	var out []Extent
	err = p.walk(gran, func(off int64, a, b []byte) bool {
		if bytes.Equal(a, b) {
			return true
		}
		n := int64(len(a))
		if k := len(out); k > 0 && out[k-1].Off+out[k-1].Len == off {
			out[k-1].Len += n
		} else {
			out = append(out, Extent{off, n})
		}
		return true
	})
	return out, err
}

// Equal reports whether the two files have the same size and content. When
// they differ it also returns the first differing offset (the smaller size
// when only the sizes differ).
func Equal(pathA, pathB string) (bool, int64, error) {
	p, err := open(pathA, pathB)
	if err != nil {
		return false, 0, err
	}
	defer p.close()
	sa, sb, err := p.sizes()
	if err != nil {
		return false, 0, err
	}
	if sa != sb {
		return false, min(sa, sb), nil
	}
	p.size = sa
	diff := int64(-1)
	err = p.walk(bufSize, func(off int64, a, b []byte) bool {
		if bytes.Equal(a, b) {
			return true
		}
		for i := range a {
			if a[i] != b[i] {
				diff = off + int64(i)
				break
			}
		}
		return false
	})
	if err != nil {
		return false, 0, err
	}
	return diff < 0, diff, nil
}

// DataRanges returns the allocated (non-hole) ranges of f, in order.
func DataRanges(f *os.File) ([]Extent, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return dataRanges(f, st.Size())
}

// DataBytes returns how many bytes of the file at path are allocated data
// (not holes), as SEEK_DATA/SEEK_HOLE report it.
func DataBytes(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	rs, err := dataRanges(f, st.Size())
	if err != nil {
		return 0, err
	}
	var n int64
	for _, r := range rs {
		n += r.Len
	}
	return n, nil
}
