package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"coffer.dev/coffer/store/chunk"
	"coffer.dev/coffer/store/container"
	"coffer.dev/coffer/store/diskmap"
	"coffer.dev/coffer/store/index"
	"coffer.dev/coffer/store/point"
)

// VerifyOptions tune verification.
type VerifyOptions struct {
	// Sample is the fraction of regions re-read and re-hashed (0 or 1:
	// all). Fingerprint sections, maps and the index are always checked.
	Sample float64
}

// DamagedRange is a byte range of a disk that cannot be restored.
type DamagedRange struct {
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
	Reason string `json:"reason"`
}

// DiskReport lists the damage of one disk of a point.
type DiskReport struct {
	Name    string         `json:"name"`
	Damaged []DamagedRange `json:"damaged"`
}

// PointReport is the verdict on one point.
type PointReport struct {
	ID     point.ID     `json:"id"`
	Source string       `json:"source"`
	OK     bool         `json:"ok"`
	Error  string       `json:"error,omitempty"`
	Disks  []DiskReport `json:"disks,omitempty"`
}

// VerifyReport is the result of Verify.
type VerifyReport struct {
	Containers        int           `json:"containers"`
	ContainersDamaged []uint64      `json:"containers_damaged,omitempty"`
	RegionsChecked    int64         `json:"regions_checked"`
	RegionsDamaged    int64         `json:"regions_damaged"`
	ChunksChecked     int64         `json:"chunks_checked"`
	BytesRead         int64         `json:"bytes_read"`
	IndexRepaired     int64         `json:"index_entries_repaired"`
	IndexRebuilt      bool          `json:"index_rebuilt"`
	Points            []PointReport `json:"points"`
	Damaged           []point.ID    `json:"damaged_points,omitempty"`
	Duration          time.Duration `json:"duration_ns"`
}

// OK reports whether nothing is damaged.
func (r *VerifyReport) OK() bool { return len(r.Damaged) == 0 && len(r.ContainersDamaged) == 0 }

// Verify checks the store: every container's fingerprint section, every
// region (or a sample) re-read, decrypted, decompressed and every chunk
// re-hashed against its ID; the index against the containers (repairing
// entries that are missing or wrong, rebuilding it if it is unreadable);
// and every point's maps and chunks. The report names each damaged point
// and the byte ranges of each disk that cannot be restored.
func (s *Store) Verify(ctx context.Context, o VerifyOptions) (*VerifyReport, error) {
	start := time.Now()
	s.gcRun.Lock() // no GC moves chunks while we look
	defer s.gcRun.Unlock()
	rep := &VerifyReport{}
	bad := map[chunkAt]string{}   // chunks found damaged, by container
	badCtr := map[uint64]string{} // containers whose section is unreadable
	// unindexed: chunks a container holds that the index does not lead
	// to (dead chunks GC already dropped, or entries an index lost); the
	// point pass repairs the entries of those a point needs.
	unindexed := map[chunk.ID]uint64{}

	files, err := s.containerFiles()
	if err != nil {
		return nil, err
	}
	exists := make(map[uint64]bool, len(files))
	for _, id := range files {
		exists[id] = true
	}
	rep.Containers = len(files)
	h := chunk.NewHasher(s.keys.Fingerprint[:])
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	indexBroken := false
	for _, id := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		of, err := s.acquire(id)
		if err != nil {
			badCtr[id] = err.Error()
			continue
		}
		f := of.r.Footer
		byRegion := make([][]container.Entry, len(f.Regions))
		for _, e := range f.Entries {
			byRegion[e.Region] = append(byRegion[e.Region], e)
		}
		var payload []byte
		for ri, entries := range byRegion {
			if o.Sample > 0 && o.Sample < 1 && rnd.Float64() >= o.Sample {
				continue
			}
			rep.RegionsChecked++
			payload, err = of.r.ReadRegion(s.comp, ri, payload[:0])
			rep.BytesRead += int64(f.Regions[ri].StoredLen)
			if err != nil {
				rep.RegionsDamaged++
				for _, e := range entries {
					bad[chunkAt{id, e.ID}] = fmt.Sprintf("container %d region %d: %v", id, ri, err)
				}
				continue
			}
			for _, e := range entries {
				rep.ChunksChecked++
				if h.Sum(payload[e.Offset:e.Offset+e.Length]) != e.ID {
					bad[chunkAt{id, e.ID}] = fmt.Sprintf("container %d region %d: chunk %s does not match its fingerprint", id, ri, e.ID.Short())
				}
			}
		}
		// Index cross-check.
		if !indexBroken {
			for _, e := range f.Entries {
				owner, ok, err := s.idx.Lookup(e.ID)
				if err != nil {
					indexBroken = true
					break
				}
				if !ok || !exists[owner] {
					unindexed[e.ID] = id
				}
			}
		}
		s.files.release(of)
	}
	for id := range badCtr {
		rep.ContainersDamaged = append(rep.ContainersDamaged, id)
	}
	sort.Slice(rep.ContainersDamaged, func(i, j int) bool { return rep.ContainersDamaged[i] < rep.ContainersDamaged[j] })
	if indexBroken {
		s.log.Warn("verify: the index is unreadable; rebuilding it from the containers")
		if err := s.rebuildIndexLocked(ctx); err != nil {
			return nil, fmt.Errorf("verify: rebuild index: %w", err)
		}
		rep.IndexRebuilt = true
		unindexed = nil
	}
	v := &verifier{s: s, bad: bad, badCtr: badCtr, unindexed: unindexed, checked: map[chunk.ID]string{}, rep: rep}

	// Points: every map readable, every chunk present and undamaged.
	ids, err := s.PointIDs()
	if err != nil {
		return nil, err
	}
	for _, pid := range ids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pr := PointReport{ID: pid, OK: true}
		p, err := s.Point(pid)
		if err != nil {
			if errors.Is(err, ErrNoPoint) {
				continue
			}
			pr.OK, pr.Error = false, err.Error()
			rep.Points = append(rep.Points, pr)
			rep.Damaged = append(rep.Damaged, pid)
			continue
		}
		pr.Source = p.Source
		for di := range p.Disks {
			dr := v.disk(&p.Disks[di])
			if len(dr.Damaged) > 0 {
				pr.OK = false
				pr.Disks = append(pr.Disks, dr)
			}
		}
		if !pr.OK {
			rep.Damaged = append(rep.Damaged, pid)
		}
		rep.Points = append(rep.Points, pr)
	}
	if rep.IndexRepaired > 0 {
		s.log.Warn("verify: repaired index entries from the containers", "entries", rep.IndexRepaired)
	}
	rep.Duration = time.Since(start)
	return rep, nil
}

// verifier judges the chunks the points refer to.
type verifier struct {
	s         *Store
	bad       map[chunkAt]string
	badCtr    map[uint64]string
	unindexed map[chunk.ID]uint64
	checked   map[chunk.ID]string // chunks already judged ("" = fine)
	rep       *VerifyReport
}

// chunkAt names a chunk in one container.
type chunkAt struct {
	ctr uint64
	id  chunk.ID
}

// judge returns why chunk id cannot be read ("" if it can). A chunk the
// index has lost but a container holds gets its entry back.
func (v *verifier) judge(id chunk.ID) string {
	if why, ok := v.checked[id]; ok {
		return why
	}
	loc, ok, err := v.s.locate(id)
	if ctr, held := v.unindexed[id]; held && (err != nil || !ok) {
		v.s.gcMu.RLock()
		err = v.s.idx.Apply([]index.Change{{ID: id, To: ctr}})
		v.s.gcMu.RUnlock()
		if err == nil {
			v.rep.IndexRepaired++
			loc, ok, err = v.s.locate(id)
		}
	}
	why := ""
	switch {
	case err != nil:
		why = err.Error()
	case !ok:
		why = fmt.Sprintf("chunk %s is missing", id.Short())
	default:
		if w, isBad := v.bad[chunkAt{loc.ctr, id}]; isBad {
			why = w
		} else if w, isBad := v.badCtr[loc.ctr]; isBad {
			why = w
		}
	}
	v.checked[id] = why
	return why
}

func (v *verifier) disk(d *point.Disk) DiskReport {
	s := v.s
	dr := DiskReport{Name: d.Name}
	add := func(off, n int64, why string) {
		if k := len(dr.Damaged); k > 0 && dr.Damaged[k-1].Offset+dr.Damaged[k-1].Length == off && dr.Damaged[k-1].Reason == why {
			dr.Damaged[k-1].Length += n
			return
		}
		dr.Damaged = append(dr.Damaged, DamagedRange{Offset: off, Length: n, Reason: why})
	}
	for g, gid := range d.Groups {
		gstart := int64(g) * diskmap.GroupSize
		glen := min(diskmap.GroupSize, d.Size-gstart)
		if gid.IsZero() {
			continue
		}
		if why := v.judge(gid); why != "" {
			add(gstart, glen, "level-2 map: "+why)
			continue
		}
		refs, err := s.loadGroup(d, g)
		if err != nil {
			add(gstart, glen, "level-2 map: "+err.Error())
			continue
		}
		for ri, ref := range refs {
			r := g*diskmap.GroupRanges + ri
			rstart := int64(r) * diskmap.RangeSize
			rlen := diskmap.RangeLen(d.Size, r)
			if ref.ID.IsZero() {
				continue
			}
			if why := v.judge(ref.ID); why != "" {
				add(rstart, rlen, "level-1 map: "+why)
				continue
			}
			raw, err := s.readChunk(ref.ID)
			if err != nil {
				add(rstart, rlen, "level-1 map: "+err.Error())
				continue
			}
			exts, err := diskmap.DecodeRange(raw, rlen)
			if err != nil {
				add(rstart, rlen, "level-1 map: "+err.Error())
				continue
			}
			off := rstart
			for _, e := range exts {
				if !e.Zero {
					if why := v.judge(e.ID); why != "" {
						add(off, int64(e.Len), why)
					}
				}
				off += int64(e.Len)
			}
		}
	}
	return dr
}

// rebuildIndexLocked rebuilds the index; gcRun is held.
func (s *Store) rebuildIndexLocked(ctx context.Context) error {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	s.footers.reset()
	s.regions.reset()
	return s.rebuildIndex(ctx)
}
