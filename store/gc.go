package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"coffer.dev/coffer/store/chunk"
	"coffer.dev/coffer/store/container"
	"coffer.dev/coffer/store/diskmap"
	"coffer.dev/coffer/store/index"
	"coffer.dev/coffer/store/point"
)

// GCOptions tune garbage collection.
type GCOptions struct {
	// CompactBelow: a container whose live share of raw bytes falls under
	// this fraction is compacted (its live chunks copied to a new
	// container, the old one deleted). Default 0.5.
	CompactBelow float64
	// DryRun computes what would be freed without changing anything.
	DryRun bool
}

// GCStats report what a GC did.
type GCStats struct {
	Points              int           `json:"points"`
	MapChunks           int           `json:"map_chunks"`
	Containers          int           `json:"containers_examined"`
	ContainersDeleted   int           `json:"containers_deleted"`
	ContainersCompacted int           `json:"containers_compacted"`
	ChunksDeleted       int64         `json:"chunks_deleted"`
	ChunksMoved         int64         `json:"chunks_moved"`
	BytesFreed          int64         `json:"bytes_freed"`
	BytesWritten        int64         `json:"bytes_written"`
	Skipped             int           `json:"containers_skipped"`
	Duration            time.Duration `json:"duration_ns"`
}

// ErrGCUnsafe means GC refused to run because it could not read everything
// that might refer to a chunk (a damaged point or map): deleting anything
// then could destroy data. Run verify.
var ErrGCUnsafe = errors.New("garbage collection refused: some points or maps are unreadable (run verify)")

// marker accumulates the live set: a Bloom filter over every chunk a
// point refers to (a false positive only keeps garbage a little longer),
// and an exact set of the maps already walked.
type marker struct {
	s       *Store
	live    *index.Filter
	visited map[chunk.ID]struct{}
	points  map[point.ID]bool
}

func (m *marker) markPoint(ctx context.Context, p *point.RecoveryPoint) error {
	if m.points[p.ID] {
		return nil
	}
	for di := range p.Disks {
		d := &p.Disks[di]
		for g, gid := range d.Groups {
			if gid.IsZero() {
				continue
			}
			m.live.Add(gid)
			if _, ok := m.visited[gid]; ok {
				continue
			}
			refs, err := m.s.loadGroup(d, g)
			if err != nil {
				return fmt.Errorf("point %s: %w", p.ID, err)
			}
			for r, ref := range refs {
				if ref.ID.IsZero() {
					continue
				}
				m.live.Add(ref.ID)
				if _, ok := m.visited[ref.ID]; ok {
					continue
				}
				if err := ctx.Err(); err != nil {
					return err
				}
				raw, err := m.s.readChunk(ref.ID)
				if err != nil {
					return fmt.Errorf("point %s disk %s range %d: %w", p.ID, d.Name, g*diskmap.GroupRanges+r, err)
				}
				exts, err := diskmap.DecodeRange(raw, diskmap.RangeLen(d.Size, g*diskmap.GroupRanges+r))
				if err != nil {
					return fmt.Errorf("point %s disk %s range %d: %w", p.ID, d.Name, g*diskmap.GroupRanges+r, err)
				}
				for _, e := range exts {
					if !e.Zero {
						m.live.Add(e.ID)
					}
				}
				m.visited[ref.ID] = struct{}{}
			}
			m.visited[gid] = struct{}{}
		}
	}
	m.points[p.ID] = true
	return nil
}

// markAll marks every committed and every pinned point.
func (m *marker) markAll(ctx context.Context) error {
	pts, err := m.s.Points()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrGCUnsafe, err)
	}
	m.s.mu.Lock()
	for _, pn := range m.s.pins {
		pts = append(pts, pn.p)
	}
	m.s.mu.Unlock()
	for _, p := range pts {
		if err := m.markPoint(ctx, p); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: %v", ErrGCUnsafe, err)
		}
	}
	return nil
}

// referencedByBackups reports whether a running backup refers to id.
// s.mu is held.
func (s *Store) referencedByBackupsLocked(id chunk.ID) bool {
	for b := range s.backups {
		if b.refs.MayContain(id) {
			return true
		}
	}
	return false
}

type gcCandidate struct {
	rec     index.ContainerRecord
	footer  *container.Footer
	live    []container.Entry // owned and live (to copy when compacting)
	dead    []container.Entry // owned and dead (index entries to delete)
	compact bool
}

// GC deletes the chunks no point refers to. It runs while backups and
// restores go on: chunks a running backup has referenced (new or
// deduplicated), the points backups base on and the points being read
// all stay. Only one GC runs at a time.
func (s *Store) GC(ctx context.Context, o GCOptions) (GCStats, error) {
	start := time.Now()
	if o.CompactBelow <= 0 {
		o.CompactBelow = 0.5
	}
	s.gcRun.Lock()
	defer s.gcRun.Unlock()
	var st GCStats

	m := &marker{s: s, live: index.NewFilter(s.idx.Chunks() + 1<<16), visited: map[chunk.ID]struct{}{}, points: map[point.ID]bool{}}
	if err := m.markAll(ctx); err != nil {
		return st, err
	}
	st.Points = len(m.points)

	// Sweep: which containers hold nothing live, which mostly garbage.
	var recs []index.ContainerRecord
	if err := s.idx.Containers(func(r index.ContainerRecord) error {
		if r.State == index.Live {
			recs = append(recs, r)
		}
		return nil
	}); err != nil {
		return st, fmt.Errorf("gc: read container records: %w", err)
	}
	var cands []*gcCandidate
	for _, rec := range recs {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		st.Containers++
		f, err := s.footer(rec.ID)
		if err != nil {
			s.log.Warn("gc: skipping an unreadable container (run verify)", "container", rec.ID, "err", err)
			st.Skipped++
			continue
		}
		c := &gcCandidate{rec: rec, footer: f}
		var liveRaw, raw int64
		s.mu.Lock()
		for _, e := range f.Entries {
			raw += int64(e.Length)
			owner, ok, err := s.idx.Lookup(e.ID)
			if err != nil {
				s.mu.Unlock()
				return st, fmt.Errorf("gc: %w", err)
			}
			if !ok || owner != rec.ID {
				continue // a copy elsewhere is the one in use
			}
			if m.live.MayContain(e.ID) || s.referencedByBackupsLocked(e.ID) {
				c.live = append(c.live, e)
				liveRaw += int64(e.Length)
			} else {
				c.dead = append(c.dead, e)
			}
		}
		s.mu.Unlock()
		switch {
		case len(c.live) == 0:
		case float64(liveRaw) < o.CompactBelow*float64(raw):
			c.compact = true
		default:
			continue
		}
		cands = append(cands, c)
	}
	if o.DryRun {
		for _, c := range cands {
			if c.compact {
				st.ContainersCompacted++
				st.ChunksMoved += int64(len(c.live))
			} else {
				st.ContainersDeleted++
			}
			st.ChunksDeleted += int64(len(c.dead))
			st.BytesFreed += c.rec.Size
		}
		st.Duration = time.Since(start)
		return st, nil
	}

	// On a nearly full pool, compaction (which writes before it frees)
	// waits: deleting whole dead containers needs no room.
	var compactBytes int64
	for _, c := range cands {
		if c.compact {
			compactBytes += c.rec.Size
		}
	}
	if free := s.freeBytes(); compactBytes > 0 && free >= 0 && free < compactBytes+indexFloor+max(s.opt.MinFreeBytes, 0) {
		s.log.Warn("gc: too little free space to compact; deleting only containers with nothing live", "free_mib", free>>20)
		kept := cands[:0]
		for _, c := range cands {
			if !c.compact {
				kept = append(kept, c)
			}
		}
		cands = kept
	}

	// Compaction: copy live chunks into new containers. They are not
	// indexed yet; the index is switched over at commit.
	moved := map[chunk.ID]uint64{}
	onSealed := func(sc sealedContainer) {
		for _, e := range sc.entries {
			moved[e.ID] = sc.id
		}
		st.BytesWritten += sc.size
	}
	dataApp := s.newAppender(container.KindData, false, onSealed)
	mapApp := s.newAppender(container.KindMap, false, onSealed)
	copyErr := func() error {
		for _, c := range cands {
			if !c.compact {
				continue
			}
			app := dataApp
			if container.Kind(c.rec.Kind) == container.KindMap {
				app = mapApp
			}
			of, err := s.acquire(c.rec.ID)
			if err != nil {
				return err
			}
			var cur = -1
			var payload []byte
			for _, e := range c.live {
				if err := ctx.Err(); err != nil {
					s.files.release(of)
					return err
				}
				if int(e.Region) != cur {
					payload, err = of.r.ReadRegion(s.comp, int(e.Region), payload[:0])
					if err != nil {
						s.files.release(of)
						return fmt.Errorf("container %d region %d: %w", c.rec.ID, e.Region, err)
					}
					cur = int(e.Region)
				}
				if err := app.add(e.ID, e.Kind, payload[e.Offset:e.Offset+e.Length]); err != nil {
					s.files.release(of)
					return err
				}
			}
			s.files.release(of)
		}
		return nil
	}()
	if copyErr != nil {
		dataApp.abort()
		mapApp.abort()
		return st, fmt.Errorf("gc: compact: %w", copyErr)
	}
	if err := errors.Join(dataApp.finish(), mapApp.finish()); err != nil {
		return st, fmt.Errorf("gc: compact: %w", err)
	}

	// Commit: no backup may look a chunk up or index one meanwhile.
	var changes []index.Change
	var condemned []*gcCandidate
	commit := func() error {
		s.gcMu.Lock()
		defer s.gcMu.Unlock()
		// Points committed since the mark.
		if err := m.markAll(ctx); err != nil {
			return err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range cands {
			ok := true
			for _, e := range c.dead {
				if m.live.MayContain(e.ID) || s.referencedByBackupsLocked(e.ID) {
					ok = false // referenced since the sweep: keep it
					break
				}
			}
			if ok && c.compact {
				for _, e := range c.live {
					if _, done := moved[e.ID]; !done {
						ok = false
						break
					}
				}
			}
			if !ok {
				st.Skipped++
				continue
			}
			// Ownership may have changed since the sweep (a backup stored a
			// chunk again); only entries still owned are touched.
			for _, e := range c.dead {
				owner, found, err := s.idx.Lookup(e.ID)
				if err != nil {
					return err
				}
				if found && owner == c.rec.ID {
					changes = append(changes, index.Change{ID: e.ID, Delete: true})
					st.ChunksDeleted++
				}
			}
			for _, e := range c.live {
				owner, found, err := s.idx.Lookup(e.ID)
				if err != nil {
					return err
				}
				if found && owner == c.rec.ID {
					changes = append(changes, index.Change{ID: e.ID, To: moved[e.ID]})
					st.ChunksMoved++
				}
			}
			condemned = append(condemned, c)
		}
		if err := s.idx.Apply(changes); err != nil {
			return err
		}
		for _, c := range condemned {
			if err := s.idx.SetContainerState(c.rec.ID, index.Condemned); err != nil {
				return err
			}
			s.footers.condemn(c.rec.ID)
			s.regions.dropContainer(c.rec.ID)
		}
		return nil
	}
	if err := commit(); err != nil {
		return st, fmt.Errorf("gc: commit: %w", err)
	}
	// The files go last: a crash before this leaves condemned records that
	// the next open finishes.
	for _, c := range condemned {
		if err := s.removeContainerFile(c.rec.ID); err != nil {
			return st, fmt.Errorf("gc: %w", err)
		}
		if err := s.idx.DropContainer(c.rec.ID); err != nil {
			return st, fmt.Errorf("gc: %w", err)
		}
		if c.compact {
			st.ContainersCompacted++
		} else {
			st.ContainersDeleted++
		}
		st.BytesFreed += c.rec.Size
	}
	s.keepReserve()
	st.Duration = time.Since(start)
	s.log.Info("gc finished", "points", st.Points, "deleted", st.ContainersDeleted, "compacted", st.ContainersCompacted,
		"freed_bytes", st.BytesFreed, "written_bytes", st.BytesWritten, "duration", st.Duration)
	return st, nil
}
