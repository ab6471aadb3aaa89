package xfs

import (
	"container/list"
	"fmt"
	"io"
	"sync"
)

// unitSize is the granule of the metadata cache: reads of inodes and
// b-tree blocks fetch the aligned 32 KiB around them (one inode chunk of
// 64 inodes of 512 bytes), so that the inodes of one directory's
// children mostly cost a single ReadAt.
const unitSize = 32 << 10

// blockCache is a bounded LRU cache of aligned units of the volume.
type blockCache struct {
	r    io.ReaderAt
	size int64 // volume size

	mu    sync.Mutex
	max   int
	units map[int64]*list.Element
	lru   list.List // of *unit, most recent at the front
}

type unit struct {
	off  int64
	data []byte // may be short at the end of the volume
}

func newBlockCache(r io.ReaderAt, size int64, maxUnits int) *blockCache {
	return &blockCache{r: r, size: size, max: maxUnits, units: map[int64]*list.Element{}}
}

// read copies len(p) bytes at byte offset off of the volume into p, via
// the cache.
func (c *blockCache) read(p []byte, off int64) error {
	if off < 0 || off > c.size || int64(len(p)) > c.size-off {
		return fmt.Errorf("read %d bytes at %d: beyond the end of the volume (%d bytes)", len(p), off, c.size)
	}
	for len(p) > 0 {
		base := off &^ (unitSize - 1)
		u, err := c.get(base)
		if err != nil {
			return err
		}
		in := int(off - base)
		if in >= len(u.data) {
			return fmt.Errorf("read at %d: %w", off, io.ErrUnexpectedEOF)
		}
		n := copy(p, u.data[in:])
		p = p[n:]
		off += int64(n)
	}
	return nil
}

func (c *blockCache) get(base int64) (*unit, error) {
	c.mu.Lock()
	if e, ok := c.units[base]; ok {
		c.lru.MoveToFront(e)
		u := e.Value.(*unit)
		c.mu.Unlock()
		return u, nil
	}
	c.mu.Unlock()
	n := int64(unitSize)
	if c.size-base < n {
		n = c.size - base
	}
	buf := make([]byte, n)
	if err := readFull(c.r, buf, base); err != nil {
		return nil, err
	}
	u := &unit{off: base, data: buf}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.units[base]; ok { // raced with another reader
		return e.Value.(*unit), nil
	}
	c.units[base] = c.lru.PushFront(u)
	for c.lru.Len() > c.max {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.units, old.Value.(*unit).off)
	}
	return u, nil
}

// readFull reads exactly len(p) bytes at off; a short read is an error.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %d bytes at %d: %w", len(p), off, err)
}
