package xfs

import (
	"io"
	"sync/atomic"
)

type countingReader struct {
	r io.ReaderAt
	n atomic.Int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.n.Add(1)
	return c.r.ReadAt(p, off)
}

// patched is a volume read through r with some bytes replaced and
// possibly cut short.
type patched struct {
	r     io.ReaderAt
	size  int64
	bytes map[int64]byte
}

func (p *patched) set(off int64, b byte) { p.bytes[off] = b }

func (p *patched) flip(off int64, mask byte) {
	var b [1]byte
	if _, err := p.r.ReadAt(b[:], off); err != nil {
		panic(err)
	}
	p.bytes[off] = b[0] ^ mask
}

func (p *patched) ReadAt(b []byte, off int64) (int, error) {
	if off >= p.size {
		return 0, io.EOF
	}
	var err error
	if int64(len(b)) > p.size-off {
		b, err = b[:p.size-off], io.EOF
	}
	n, rerr := p.r.ReadAt(b, off)
	if n < len(b) {
		return n, rerr
	}
	for o, v := range p.bytes {
		if o >= off && o < off+int64(len(b)) {
			b[o-off] = v
		}
	}
	return n, err
}
