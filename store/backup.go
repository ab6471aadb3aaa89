package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"coffer.dev/coffer/store/chunk"
	"coffer.dev/coffer/store/chunker"
	"coffer.dev/coffer/store/container"
	"coffer.dev/coffer/store/diskmap"
	"coffer.dev/coffer/store/index"
	"coffer.dev/coffer/store/point"
)

var errAborted = errors.New("backup aborted")

// BackupSpec describes a recovery point to be written.
type BackupSpec struct {
	// Source names what is backed up (a VM's instance UUID, a host, an
	// image name). Incremental disks are based on the latest point of the
	// same source.
	Source      string
	Consistency point.Consistency
	Labels      map[string]string
	Metadata    map[string]json.RawMessage
	// RetainUntil locks the new point against deletion until then.
	RetainUntil time.Time
	// Base overrides the point incremental disks are based on.
	Base point.ID
}

// DiskSource is one disk to back up.
type DiskSource struct {
	Name   string
	Size   int64
	Reader io.ReaderAt
	// Changed lists the extents changed since the base point's disk of the
	// same name (vSphere's changed areas). nil reads the disk in full. When
	// the base has no such disk, or its size differs, the disk is read in
	// full.
	Changed []Extent
	// Allocated, for a full read, lists where data may be; the rest is
	// known to be zero and is not read (holes of a sparse image, the "*"
	// areas of changed block tracking). nil means the whole disk.
	Allocated []Extent
	Metadata  json.RawMessage
}

// Backup writes one recovery point. Disks are added one after another;
// Commit makes the point durable. A Backup that is neither committed nor
// aborted holds the store open.
type Backup struct {
	s       *Store
	spec    BackupSpec
	id      point.ID
	created time.Time
	base    *point.RecoveryPoint

	data, maps *appender
	// refs records every chunk this backup refers to (besides the base
	// point's), so that a concurrent GC keeps them.
	refs *index.Filter

	pendMu  sync.Mutex
	pending map[chunk.ID]struct{}

	mu     sync.Mutex
	disks  []point.Disk
	closed bool
}

// NewBackup starts a recovery point of spec.Source.
func (s *Store) NewBackup(ctx context.Context, spec BackupSpec) (*Backup, error) {
	if !point.ValidSource(spec.Source) {
		return nil, fmt.Errorf("backup: source name %q is not valid (letters, digits and ._:@/+=- only)", spec.Source)
	}
	if spec.Consistency == "" {
		spec.Consistency = point.Unknown
	}
	if err := s.checkSpace(); err != nil {
		return nil, fmt.Errorf("backup of %s: %w", spec.Source, err)
	}
	now := time.Now().UTC()
	b := &Backup{
		s: s, spec: spec, id: point.NewID(now), created: now,
		refs:    index.NewFilter(1 << 16),
		pending: map[chunk.ID]struct{}{},
	}
	var err error
	if spec.Base != "" {
		b.base, err = s.Point(spec.Base)
	} else {
		b.base, err = s.Latest(spec.Source)
	}
	if err != nil && !errors.Is(err, ErrNoPoint) {
		return nil, fmt.Errorf("backup of %s: find base point: %w", spec.Source, err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("backup: store is closed")
	}
	s.backups[b] = struct{}{}
	if b.base != nil {
		s.pinLocked(b.base)
	}
	s.mu.Unlock()
	b.data = s.newAppender(container.KindData, true, b.sealed)
	b.maps = s.newAppender(container.KindMap, true, b.sealed)
	return b, nil
}

// SetMetadata adds (or replaces) one metadata document of the point; it
// is written at Commit.
func (b *Backup) SetMetadata(key string, doc json.RawMessage) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("set metadata: backup is finished")
	}
	if !json.Valid(doc) {
		return fmt.Errorf("set metadata %q: not valid JSON", key)
	}
	m := make(map[string]json.RawMessage, len(b.spec.Metadata)+1)
	for k, v := range b.spec.Metadata {
		m[k] = v
	}
	m[key] = append(json.RawMessage(nil), doc...)
	b.spec.Metadata = m
	return nil
}

// ID returns the ID the point will have.
func (b *Backup) ID() point.ID { return b.id }

// Base returns the point incremental disks are based on (nil for none).
func (b *Backup) Base() *point.RecoveryPoint { return b.base }

// sealed forgets pending chunks once their container is indexed.
func (b *Backup) sealed(c sealedContainer) {
	b.pendMu.Lock()
	for _, e := range c.entries {
		delete(b.pending, e.ID)
	}
	b.pendMu.Unlock()
}

// put stores a chunk unless the store (or this backup) has it already.
func (b *Backup) put(a *appender, id chunk.ID, kind chunk.Kind, data []byte) (bool, error) {
	b.pendMu.Lock()
	_, pending := b.pending[id]
	b.pendMu.Unlock()
	if pending {
		return false, nil
	}
	b.s.gcMu.RLock()
	found := b.s.exists(id)
	b.refs.Add(id)
	b.s.gcMu.RUnlock()
	if found {
		return false, nil
	}
	b.pendMu.Lock()
	b.pending[id] = struct{}{}
	b.pendMu.Unlock()
	return true, a.add(id, kind, data)
}

// rangeJob is the work for one map range of a disk.
type rangeJob struct {
	r     int
	start int64
	len   int64
	// copyRef: the range is unchanged since the base (no work).
	copyRef *diskmap.RangeRef
	// full read: the allocated extents of the range (relative); empty
	// means the range is known to be zero.
	alloc []Extent
	// incremental: the base's level-1 map and the dirty areas (relative).
	incremental bool
	oldMap      chunk.ID
	dirty       []Extent

	done chan struct{}
	res  rangeResult
}

type rangeResult struct {
	pieces []piece
	read   int64
	buf    []byte
	err    error
}

// AddDisk backs up one disk into the point.
func (b *Backup) AddDisk(ctx context.Context, src DiskSource) (*point.Disk, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("add disk: backup is finished")
	}
	if src.Name == "" || src.Size <= 0 || src.Reader == nil {
		return nil, fmt.Errorf("add disk %q: name, size and reader are required", src.Name)
	}
	for _, d := range b.disks {
		if d.Name == src.Name {
			return nil, fmt.Errorf("add disk %q: the point already has a disk of that name", src.Name)
		}
	}
	var baseDisk *point.Disk
	if src.Changed != nil && b.base != nil {
		if d, ok := b.base.Disk(src.Name); ok && d.Size == src.Size {
			baseDisk = d
		} else {
			b.s.log.Info("no matching disk in the base point: reading the whole disk", "disk", src.Name, "base", b.base.ID)
		}
	}
	disk := point.Disk{Name: src.Name, Size: src.Size, Incremental: baseDisk != nil, Metadata: src.Metadata}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	w := b.s.opt.Workers
	work := make(chan *rangeJob, w)
	ordered := make(chan *rangeJob, 2*w)
	bufs := make(chan []byte, 3*w+2)
	for i := 0; i < cap(bufs); i++ {
		bufs <- nil
	}
	var prodErr error
	go func() {
		defer close(ordered)
		defer close(work)
		prodErr = b.produce(ctx, src, baseDisk, work, ordered)
	}()
	var wg sync.WaitGroup
	for i := 0; i < w; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := chunk.NewHasher(b.s.keys.Fingerprint[:])
			for j := range work {
				b.process(ctx, src, j, h, bufs)
				close(j.done)
			}
		}()
	}
	err := b.consume(ctx, &disk, ordered, bufs)
	if err != nil {
		cancel()
	}
	for j := range ordered { // drain after an error
		<-j.done
	}
	wg.Wait()
	if err == nil {
		err = prodErr
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("back up disk %s of %s: %w", src.Name, b.spec.Source, err)
	}
	b.disks = append(b.disks, disk)
	return &b.disks[len(b.disks)-1], nil
}

// produce emits the range jobs of a disk in order.
func (b *Backup) produce(ctx context.Context, src DiskSource, base *point.Disk, work, ordered chan<- *rangeJob) error {
	n := diskmap.Ranges(src.Size)
	var changed, alloc []Extent
	if base != nil {
		changed = normalizeExtents(src.Changed, src.Size)
	} else if src.Allocated != nil {
		alloc = normalizeExtents(src.Allocated, src.Size)
	} else {
		alloc = []Extent{{0, src.Size}}
	}
	var group []diskmap.RangeRef
	for r := 0; r < n; r++ {
		start := int64(r) * diskmap.RangeSize
		j := &rangeJob{r: r, start: start, len: diskmap.RangeLen(src.Size, r), done: make(chan struct{})}
		if base != nil {
			g := r / diskmap.GroupRanges
			if r%diskmap.GroupRanges == 0 {
				var err error
				if group, err = b.s.loadGroup(base, g); err != nil {
					return err
				}
			}
			ref := group[r%diskmap.GroupRanges]
			j.dirty, changed = clip(changed, start, j.len)
			switch {
			case len(j.dirty) == 0:
				j.copyRef = &ref
			case ref.ID.IsZero():
				j.alloc = j.dirty // was all zero: read only what changed
			default:
				j.incremental, j.oldMap = true, ref.ID
			}
		} else {
			j.alloc, alloc = clip(alloc, start, j.len)
		}
		select {
		case ordered <- j:
		case <-ctx.Done():
			return ctx.Err()
		}
		if j.copyRef != nil || (!j.incremental && len(j.alloc) == 0) {
			close(j.done)
			continue
		}
		select {
		case work <- j:
		case <-ctx.Done():
			close(j.done)
			return ctx.Err()
		}
	}
	return nil
}

// normalizeExtents sorts, clips to size, aligns to blocks and merges.
func normalizeExtents(in []Extent, size int64) []Extent {
	out := make([]Extent, 0, len(in))
	for _, e := range in {
		s := max(e.Offset, 0) / chunker.BlockSize * chunker.BlockSize
		end := min(e.End(), size)
		end = min((end+chunker.BlockSize-1)/chunker.BlockSize*chunker.BlockSize, size)
		if e.Length <= 0 || end <= s {
			continue
		}
		out = append(out, Extent{s, end - s})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Offset < out[j].Offset })
	merged := out[:0]
	for _, e := range out {
		if n := len(merged); n > 0 && merged[n-1].End() >= e.Offset {
			merged[n-1].Length = max(merged[n-1].End(), e.End()) - merged[n-1].Offset
			continue
		}
		merged = append(merged, e)
	}
	return merged
}

// clip returns the parts of exts inside [start, start+n), relative to
// start, and the extents that remain for later ranges.
func clip(exts []Extent, start, n int64) (in []Extent, rest []Extent) {
	end := start + n
	for len(exts) > 0 && exts[0].Offset < end {
		e := exts[0]
		s, t := max(e.Offset, start), min(e.End(), end)
		if t > s {
			in = append(in, Extent{s - start, t - s})
		}
		if e.End() > end {
			break
		}
		exts = exts[1:]
	}
	return in, exts
}

// process reads, chunks and fingerprints one range.
func (b *Backup) process(ctx context.Context, src DiskSource, j *rangeJob, h *chunk.Hasher, bufs chan []byte) {
	res := &j.res
	if ctx.Err() != nil {
		res.err = ctx.Err()
		return
	}
	readAt := func(p []byte, off int64) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := src.Reader.ReadAt(p, j.start+off)
		if n == len(p) {
			return nil
		}
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("read at offset %d: %w", j.start+off, err)
	}
	if j.incremental {
		raw, err := b.s.readChunk(j.oldMap)
		if err != nil {
			res.err = fmt.Errorf("base map of range %d: %w", j.r, err)
			return
		}
		old, err := diskmap.DecodeRange(raw, j.len)
		if err != nil {
			res.err = fmt.Errorf("base map of range %d: %w", j.r, err)
			return
		}
		res.pieces, res.read, res.err = rechunk(b.s.chunker, old, j.dirty, j.len, readAt)
	} else {
		buf := <-bufs
		if int64(cap(buf)) < j.len {
			buf = make([]byte, diskmap.RangeSize)
		}
		buf = buf[:j.len]
		res.buf = buf
		// Only the gaps between allocated extents need zeroing.
		var at int64
		for _, e := range j.alloc {
			clear(buf[at:e.Offset])
			if err := readAt(buf[e.Offset:e.End()], e.Offset); err != nil {
				res.err = err
				return
			}
			res.read += e.Length
			at = e.End()
		}
		clear(buf[at:])
		cps := b.s.chunker.Split(nil, buf)
		res.pieces = make([]piece, len(cps))
		for i, c := range cps {
			res.pieces[i] = piece{off: int64(c.Off), ext: diskmap.Extent{Len: uint32(c.Len), Zero: c.Zero}}
			if !c.Zero {
				res.pieces[i].data = buf[c.Off : c.Off+c.Len]
			}
		}
	}
	if res.err != nil {
		return
	}
	for i := range res.pieces {
		p := &res.pieces[i]
		if p.data != nil {
			p.ext.ID = h.Sum(p.data)
		}
	}
}

// consume stores the chunks and maps of each range in disk order.
func (b *Backup) consume(ctx context.Context, disk *point.Disk, ordered <-chan *rangeJob, bufs chan []byte) error {
	var group []diskmap.RangeRef
	var exts []diskmap.Extent
	h := chunk.NewHasher(b.s.keys.Fingerprint[:])
	flushGroup := func() error {
		if len(group) == 0 {
			return nil
		}
		var id chunk.ID
		allZero := true
		for _, r := range group {
			if !r.ID.IsZero() {
				allZero = false
				break
			}
		}
		if !allZero {
			enc := diskmap.EncodeGroup(group)
			id = h.Sum(enc)
			if _, err := b.put(b.maps, id, chunk.Map2, enc); err != nil {
				return err
			}
		}
		disk.Groups = append(disk.Groups, id)
		group = group[:0]
		return nil
	}
	for j := range ordered {
		<-j.done
		res := &j.res
		if res.err != nil {
			return fmt.Errorf("range %d: %w", j.r, res.err)
		}
		var ref diskmap.RangeRef
		if j.copyRef != nil {
			ref = *j.copyRef
			disk.Stats.Data += int64(ref.Data)
		} else if len(res.pieces) > 0 {
			exts = exts[:0]
			var data int64
			for _, p := range res.pieces {
				exts = append(exts, p.ext)
				if p.ext.Zero {
					continue
				}
				data += int64(p.ext.Len)
				disk.Stats.Chunks++
				if p.copied {
					continue
				}
				isNew, err := b.put(b.data, p.ext.ID, chunk.Data, p.data)
				if err != nil {
					return err
				}
				if isNew {
					disk.Stats.New += int64(p.ext.Len)
					disk.Stats.NewChunks++
				}
			}
			disk.Stats.Data += data
			if data > 0 {
				enc := diskmap.EncodeRange(exts)
				ref = diskmap.RangeRef{ID: h.Sum(enc), Data: uint32(data)}
				if _, err := b.put(b.maps, ref.ID, chunk.Map1, enc); err != nil {
					return err
				}
			}
		}
		disk.Stats.Read += res.read
		if res.buf != nil {
			bufs <- res.buf[:0]
			res.buf = nil
		}
		res.pieces = nil
		group = append(group, ref)
		if len(group) == diskmap.GroupRanges {
			if err := flushGroup(); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if err := flushGroup(); err != nil {
		return err
	}
	disk.Stats.Logical = disk.Size
	if len(disk.Groups) != diskmap.Groups(disk.Size) {
		return fmt.Errorf("internal error: %d map groups for %d ranges", len(disk.Groups), diskmap.Ranges(disk.Size))
	}
	return nil
}

// loadGroup reads the level-2 map of group g of a disk.
func (s *Store) loadGroup(d *point.Disk, g int) ([]diskmap.RangeRef, error) {
	n := diskmap.GroupLen(d.Size, g)
	if d.Groups[g].IsZero() {
		return make([]diskmap.RangeRef, n), nil
	}
	raw, err := s.readChunk(d.Groups[g])
	if err != nil {
		return nil, fmt.Errorf("map group %d of disk %s: %w", g, d.Name, err)
	}
	refs, err := diskmap.DecodeGroup(raw, n)
	if err != nil {
		return nil, fmt.Errorf("map group %d of disk %s: %w", g, d.Name, err)
	}
	return refs, nil
}

// Commit makes the point durable: every container sealed and indexed,
// then the point file written. It returns the point.
func (b *Backup) Commit(ctx context.Context) (*point.RecoveryPoint, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("commit: backup is finished")
	}
	if len(b.disks) == 0 {
		b.abortLocked()
		return nil, fmt.Errorf("commit point of %s: no disks were added", b.spec.Source)
	}
	b.closed = true
	errData := b.data.finish()
	errMaps := b.maps.finish()
	if err := errors.Join(errData, errMaps); err != nil {
		b.release()
		return nil, fmt.Errorf("commit point of %s: %w", b.spec.Source, err)
	}
	p := &point.RecoveryPoint{
		ID: b.id, Source: b.spec.Source, Created: b.created, Finished: time.Now().UTC(),
		Consistency: b.spec.Consistency, Labels: b.spec.Labels, Metadata: b.spec.Metadata,
		Disks: b.disks,
	}
	if b.base != nil {
		p.Base = b.base.ID
	}
	stored := b.data.stored.Load() + b.maps.stored.Load()
	var newRaw int64
	for i := range p.Disks {
		p.Stats.Add(p.Disks[i].Stats)
		newRaw += p.Disks[i].Stats.New
	}
	p.Stats.Stored = stored
	for i := range p.Disks {
		if newRaw > 0 {
			p.Disks[i].Stats.Stored = stored * p.Disks[i].Stats.New / newRaw
		}
	}
	if err := ctx.Err(); err != nil {
		b.release()
		return nil, fmt.Errorf("commit point of %s: %w", b.spec.Source, err)
	}
	if !b.spec.RetainUntil.IsZero() {
		if err := b.s.writeLock(p.ID, b.spec.RetainUntil); err != nil {
			b.release()
			return nil, fmt.Errorf("commit point of %s: %w", b.spec.Source, err)
		}
	}
	enc, err := point.Encode(p, b.s.aead)
	if err != nil {
		b.release()
		return nil, fmt.Errorf("commit point of %s: %w", b.spec.Source, err)
	}
	// Publishing the point and dropping this backup's references happen
	// together with respect to GC.
	b.s.gcMu.RLock()
	err = writeFileAtomic(b.s.pointPath(p.ID), enc)
	b.s.gcMu.RUnlock()
	b.release()
	if err != nil {
		os.Remove(b.s.lockPath(p.ID))
		return nil, fmt.Errorf("commit point of %s: write point file: %w", b.spec.Source, b.s.noSpace(err))
	}
	return p, nil
}

// Abort abandons the point. Chunks already sealed stay until GC.
func (b *Backup) Abort() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.abortLocked()
}

func (b *Backup) abortLocked() {
	b.closed = true
	b.data.abort()
	b.maps.abort()
	b.release()
}

func (b *Backup) release() {
	b.s.mu.Lock()
	delete(b.s.backups, b)
	if b.base != nil {
		b.s.unpinLocked(b.base.ID)
	}
	b.s.mu.Unlock()
}

func (s *Store) pointPath(id point.ID) string {
	return filepath.Join(s.dir, pointsDir, string(id)+".point")
}

func (s *Store) lockPath(id point.ID) string {
	return filepath.Join(s.dir, pointsDir, string(id)+".lock")
}
