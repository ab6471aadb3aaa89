package store

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"coffer.dev/coffer/store/chunk"
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
	// Progress, if set, is called with the bytes restored so far.
	Progress func(done int64)
}

// RestoreStats are the figures of a restore.
type RestoreStats struct {
	Logical int64 `json:"logical_bytes"`
	Written int64 `json:"written_bytes"`
}

// Restore writes the whole disk to w in order, decoding regions ahead in
// parallel. w must read as zeros where nothing is written (a new or
// truncated file) unless WriteZeros is set.
func (r *DiskReader) Restore(ctx context.Context, w io.WriterAt, o RestoreOptions) (RestoreStats, error) {
	st := RestoreStats{Logical: r.disk.Size}
	type fetch struct {
		id    chunk.ID
		off   int64
		len   int64
		zero  bool
		ready chan struct{}
		data  []byte
		err   error
	}
	workers := r.s.opt.Workers + 1
	jobs := make(chan *fetch, 256)
	queue := make(chan *fetch, 256)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range jobs {
				if ctx.Err() == nil {
					f.data, f.err = r.s.readChunk(f.id)
				} else {
					f.err = ctx.Err()
				}
				close(f.ready)
			}
		}()
	}
	var prodErr error
	go func() {
		defer close(queue)
		defer close(jobs)
		for n := 0; n < diskmap.Ranges(r.disk.Size); n++ {
			rm, err := r.rangeMap(n)
			if err != nil {
				prodErr = err
				return
			}
			base := int64(n) * diskmap.RangeSize
			for i, e := range rm.exts {
				f := &fetch{id: e.ID, off: base + rm.starts[i], len: int64(e.Len), zero: e.Zero, ready: make(chan struct{})}
				if e.Zero {
					close(f.ready)
				} else {
					select {
					case jobs <- f:
					case <-ctx.Done():
						return
					}
				}
				select {
				case queue <- f:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	// Coalesce consecutive chunks into large writes.
	buf := make([]byte, 0, 4<<20)
	bufOff := int64(0)
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if _, err := w.WriteAt(buf, bufOff); err != nil {
			return fmt.Errorf("write restored data at %d: %w", bufOff, err)
		}
		st.Written += int64(len(buf))
		buf = buf[:0]
		return nil
	}
	var zeros []byte
	var err error
	var done int64
	for f := range queue {
		<-f.ready
		if err != nil {
			continue
		}
		if f.err != nil {
			err = fmt.Errorf("restore disk %s of point %s at %d: %w", r.disk.Name, r.p.ID, f.off, f.err)
			cancel()
			continue
		}
		if f.zero && !o.WriteZeros {
			if err = flush(); err != nil {
				cancel()
			}
			done += f.len
			continue
		}
		data := f.data
		if f.zero {
			if int64(len(zeros)) < min(f.len, 1<<20) {
				zeros = make([]byte, 1<<20)
			}
		} else if int64(len(data)) != f.len {
			err = fmt.Errorf("restore disk %s of point %s at %d: %w: chunk %s has the wrong length", r.disk.Name, r.p.ID, f.off, ErrDamaged, f.id.Short())
			cancel()
			continue
		}
		for rem, pos := f.len, f.off; rem > 0; {
			k := rem
			var part []byte
			if f.zero {
				k = min(rem, int64(len(zeros)))
				part = zeros[:k]
			} else {
				part = data[f.len-rem:]
			}
			if len(buf) > 0 && bufOff+int64(len(buf)) != pos || len(buf)+len(part) > cap(buf) {
				if err = flush(); err != nil {
					cancel()
					break
				}
			}
			if len(buf) == 0 {
				bufOff = pos
			}
			if len(part) > cap(buf) {
				if _, err = w.WriteAt(part, pos); err != nil {
					err = fmt.Errorf("write restored data at %d: %w", pos, err)
					cancel()
					break
				}
				st.Written += int64(len(part))
			} else {
				buf = append(buf, part...)
			}
			rem -= k
			pos += k
		}
		done += f.len
		if o.Progress != nil {
			o.Progress(done)
		}
	}
	wg.Wait()
	if err == nil {
		err = prodErr
	}
	if err == nil {
		err = flush()
	}
	if err == nil {
		err = ctx.Err()
	}
	return st, err
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
