package store

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"

	"coffer.dev/coffer/store/diskmap"
	"coffer.dev/coffer/store/point"
)

// DiskReader gives random access to one disk of a recovery point. It pins
// the point: its chunks survive GC (and even the point's deletion) until
// Close. Safe for concurrent use.
type DiskReader struct {
	s    *Store
	p    *point.RecoveryPoint
	disk *point.Disk

	mu     sync.Mutex
	groups map[int][]diskmap.RangeRef
	ranges map[int]*list.Element
	lru    *list.List
	closed bool
}

type rangeMap struct {
	r      int
	exts   []diskmap.Extent
	starts []int64 // relative start of each extent
}

// maxCachedRanges bounds the decoded level-1 maps a reader keeps.
const maxCachedRanges = 256

// OpenDisk opens disk name of point id for reading.
func (s *Store) OpenDisk(id point.ID, name string) (*DiskReader, error) {
	p, err := s.Point(id)
	if err != nil {
		return nil, err
	}
	d, ok := p.Disk(name)
	if !ok {
		var names []string
		for _, d := range p.Disks {
			names = append(names, d.Name)
		}
		return nil, fmt.Errorf("point %s has no disk %q (it has %v)", id, name, names)
	}
	s.mu.Lock()
	s.pinLocked(p)
	s.mu.Unlock()
	return &DiskReader{s: s, p: p, disk: d, groups: map[int][]diskmap.RangeRef{}, ranges: map[int]*list.Element{}, lru: list.New()}, nil
}

// Size returns the disk's size.
func (r *DiskReader) Size() int64 { return r.disk.Size }

// Point returns the point being read.
func (r *DiskReader) Point() *point.RecoveryPoint { return r.p }

// Disk returns the disk being read.
func (r *DiskReader) Disk() *point.Disk { return r.disk }

// Close unpins the point.
func (r *DiskReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		r.s.mu.Lock()
		r.s.unpinLocked(r.p.ID)
		r.s.mu.Unlock()
	}
	return nil
}

// rangeMap returns the decoded level-1 map of range n (nil: all zero).
func (r *DiskReader) rangeMap(n int) (*rangeMap, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errors.New("disk reader is closed")
	}
	if e, ok := r.ranges[n]; ok {
		r.lru.MoveToFront(e)
		rm := e.Value.(*rangeMap)
		r.mu.Unlock()
		return rm, nil
	}
	g := n / diskmap.GroupRanges
	refs, ok := r.groups[g]
	r.mu.Unlock()
	if !ok {
		var err error
		if refs, err = r.s.loadGroup(r.disk, g); err != nil {
			return nil, err
		}
		r.mu.Lock()
		r.groups[g] = refs
		r.mu.Unlock()
	}
	ref := refs[n%diskmap.GroupRanges]
	rl := diskmap.RangeLen(r.disk.Size, n)
	rm := &rangeMap{r: n}
	if ref.ID.IsZero() {
		rm.exts = []diskmap.Extent{{Len: uint32(rl), Zero: true}}
	} else {
		raw, err := r.s.readChunk(ref.ID)
		if err != nil {
			return nil, fmt.Errorf("map of range %d: %w", n, err)
		}
		if rm.exts, err = diskmap.DecodeRange(raw, rl); err != nil {
			return nil, fmt.Errorf("map of range %d: %w: %v", n, ErrDamaged, err)
		}
	}
	rm.starts = make([]int64, len(rm.exts))
	var o int64
	for i, e := range rm.exts {
		rm.starts[i] = o
		o += int64(e.Len)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.ranges[n]; ok {
		return e.Value.(*rangeMap), nil
	}
	r.ranges[n] = r.lru.PushFront(rm)
	for r.lru.Len() > maxCachedRanges {
		old := r.lru.Remove(r.lru.Back()).(*rangeMap)
		delete(r.ranges, old.r)
	}
	return rm, nil
}

// ReadAt reads len(p) bytes at off. Damaged data fails the read with
// ErrDamaged or ErrChunkMissing; wrong bytes are never returned.
func (r *DiskReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at %d: negative offset", off)
	}
	if off >= r.disk.Size {
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > r.disk.Size-off {
		p = p[:r.disk.Size-off]
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		rn := int(pos / diskmap.RangeSize)
		rel := pos - int64(rn)*diskmap.RangeSize
		rm, err := r.rangeMap(rn)
		if err != nil {
			return n, fmt.Errorf("read disk %s of point %s at %d: %w", r.disk.Name, r.p.ID, pos, err)
		}
		i := sort.Search(len(rm.starts), func(i int) bool { return rm.starts[i] > rel }) - 1
		for ; i < len(rm.exts) && n < len(p); i++ {
			e := rm.exts[i]
			in := rel - rm.starts[i]
			k := min(int64(e.Len)-in, int64(len(p)-n))
			dst := p[n : n+int(k)]
			if e.Zero {
				clear(dst)
			} else {
				data, err := r.s.readChunk(e.ID)
				if err != nil {
					return n, fmt.Errorf("read disk %s of point %s at %d: %w", r.disk.Name, r.p.ID, pos, err)
				}
				if len(data) != int(e.Len) {
					return n, fmt.Errorf("read disk %s of point %s at %d: %w: chunk %s is %d bytes, map says %d", r.disk.Name, r.p.ID, pos, ErrDamaged, e.ID.Short(), len(data), e.Len)
				}
				copy(dst, data[in:in+k])
			}
			n += int(k)
			rel += k
			pos += k
		}
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// RestoreOptions tune Restore.
type RestoreOptions struct {
	// WriteZeros writes zero runs instead of leaving holes (block devices,
	// outputs that were not empty).
	WriteZeros bool
	// Progress, if set, is called with the bytes restored so far (from
	// several goroutines).
	Progress func(done int64)
}

// RestoreStats are the figures of a restore.
type RestoreStats struct {
	Logical int64 `json:"logical_bytes"`
	Written int64 `json:"written_bytes"`
}

// VectorWriterAt is implemented by outputs that can write several buffers
// at one offset in one call (pwritev); Restore then writes chunks straight
// from the decoded regions without copying them.
type VectorWriterAt interface {
	WriteVecAt(bufs [][]byte, off int64) (int, error)
}

// Restore writes the whole disk to w. Map ranges are restored in parallel,
// each by one worker that decodes the regions it needs (shared through the
// region cache) and writes runs of consecutive chunks in one call. w must
// read as zeros where nothing is written (a new or truncated file) unless
// WriteZeros is set, and must accept concurrent writes at distinct offsets.
func (r *DiskReader) Restore(ctx context.Context, w io.WriterAt, o RestoreOptions) (RestoreStats, error) {
	st := RestoreStats{Logical: r.disk.Size}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := diskmap.Ranges(r.disk.Size)
	next := make(chan int)
	var written, done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	var wg sync.WaitGroup
	for i := 0; i < r.s.opt.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rw := rangeWriter{w: w, zeros: o.WriteZeros}
			if vw, ok := w.(VectorWriterAt); ok {
				rw.vw = vw
			}
			for rn := range next {
				if err := r.restoreRange(ctx, &rw, rn); err != nil {
					fail(err)
					continue
				}
				if o.Progress != nil {
					o.Progress(done.Add(diskmap.RangeLen(r.disk.Size, rn)))
				}
			}
			written.Add(rw.written)
		}()
	}
	for rn := 0; rn < n; rn++ {
		select {
		case next <- rn:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	st.Written = written.Load()
	if firstErr != nil {
		return st, firstErr
	}
	return st, ctx.Err()
}

// rangeWriter gathers consecutive pieces and writes them in one call.
type rangeWriter struct {
	w       io.WriterAt
	vw      VectorWriterAt
	zeros   bool
	off     int64
	bufs    [][]byte
	size    int
	copyBuf []byte
	zeroBuf []byte
	written int64
}

const maxVec = 512

func (rw *rangeWriter) add(off int64, b []byte) error {
	if len(rw.bufs) > 0 && (rw.off+int64(rw.size) != off || len(rw.bufs) == maxVec || rw.size >= 8<<20) {
		if err := rw.flush(); err != nil {
			return err
		}
	}
	if len(rw.bufs) == 0 {
		rw.off = off
	}
	rw.bufs = append(rw.bufs, b)
	rw.size += len(b)
	return nil
}

func (rw *rangeWriter) flush() error {
	if len(rw.bufs) == 0 {
		return nil
	}
	var err error
	if rw.vw != nil {
		_, err = rw.vw.WriteVecAt(rw.bufs, rw.off)
	} else {
		rw.copyBuf = rw.copyBuf[:0]
		for _, b := range rw.bufs {
			rw.copyBuf = append(rw.copyBuf, b...)
		}
		_, err = rw.w.WriteAt(rw.copyBuf, rw.off)
	}
	if err != nil {
		err = fmt.Errorf("write restored data at %d: %w", rw.off, err)
	}
	rw.written += int64(rw.size)
	clear(rw.bufs)
	rw.bufs, rw.size = rw.bufs[:0], 0
	return err
}

func (r *DiskReader) restoreRange(ctx context.Context, rw *rangeWriter, rn int) error {
	rm, err := r.rangeMap(rn)
	if err != nil {
		return fmt.Errorf("restore disk %s of point %s: %w", r.disk.Name, r.p.ID, err)
	}
	base := int64(rn) * diskmap.RangeSize
	for i, e := range rm.exts {
		if err := ctx.Err(); err != nil {
			return err
		}
		off := base + rm.starts[i]
		if e.Zero {
			if !rw.zeros {
				continue
			}
			if rw.zeroBuf == nil {
				rw.zeroBuf = make([]byte, 1<<20)
			}
			for rem := int64(e.Len); rem > 0; {
				k := min(rem, int64(len(rw.zeroBuf)))
				if err := rw.add(off+int64(e.Len)-rem, rw.zeroBuf[:k]); err != nil {
					return err
				}
				rem -= k
			}
			continue
		}
		data, err := r.s.readChunk(e.ID)
		if err != nil {
			return fmt.Errorf("restore disk %s of point %s at %d: %w", r.disk.Name, r.p.ID, off, err)
		}
		if len(data) != int(e.Len) {
			return fmt.Errorf("restore disk %s of point %s at %d: %w: chunk %s has the wrong length", r.disk.Name, r.p.ID, off, ErrDamaged, e.ID.Short())
		}
		if err := rw.add(off, data); err != nil {
			return err
		}
	}
	return rw.flush()
}

// DataExtents returns the extents of the disk that are not zero, merged
// (the allocation map a sparse export or a file-level reader uses).
func (r *DiskReader) DataExtents(ctx context.Context) ([]Extent, error) {
	var out []Extent
	for n := 0; n < diskmap.Ranges(r.disk.Size); n++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rm, err := r.rangeMap(n)
		if err != nil {
			return nil, err
		}
		base := int64(n) * diskmap.RangeSize
		for i, e := range rm.exts {
			if e.Zero {
				continue
			}
			off := base + rm.starts[i]
			if k := len(out); k > 0 && out[k-1].End() == off {
				out[k-1].Length += int64(e.Len)
				continue
			}
			out = append(out, Extent{Offset: off, Length: int64(e.Len)})
		}
	}
	return out, nil
}
