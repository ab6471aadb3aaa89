package store

import (
	"errors"
	"fmt"
	"sync/atomic"

	"coffer.dev/coffer/store/chunk"
	"coffer.dev/coffer/store/container"
)

// ErrChunkMissing means a chunk a point refers to is not in the store.
var ErrChunkMissing = errors.New("chunk is missing from the store")

// ErrDamaged means stored data failed its checks; the read is refused
// rather than returning wrong bytes.
var ErrDamaged = errors.New("stored data is damaged")

// footer returns container ctr's fingerprint section through the locality
// cache.
func (s *Store) footer(ctr uint64) (*container.Footer, error) {
	if f, ok := s.footers.get(ctr); ok {
		return f, nil
	}
	of, err := s.acquire(ctr)
	if err != nil {
		return nil, err
	}
	defer s.files.release(of)
	s.footers.add(ctr, of.r.Footer)
	return of.r.Footer, nil
}

// locate finds where chunk id is stored: locality cache, then summary
// vector, then index (which loads the container's section into the cache).
func (s *Store) locate(id chunk.ID) (location, bool, error) {
	s.lookups.total.Add(1)
	if loc, ok := s.footers.find(id); ok {
		s.lookups.cache.Add(1)
		return loc, true, nil
	}
	if !s.idx.MayContain(id) {
		s.lookups.filter.Add(1)
		return location{}, false, nil
	}
	s.lookups.index.Add(1)
	ctr, ok, err := s.idx.Lookup(id)
	if err != nil || !ok {
		return location{}, false, err
	}
	f, err := s.footer(ctr)
	if err != nil {
		return location{}, false, fmt.Errorf("chunk %s: %w", id.Short(), err)
	}
	if loc, ok := s.footers.find(id); ok && loc.ctr == ctr {
		return loc, true, nil
	}
	for _, e := range f.Entries {
		if e.ID == id { // the container is not cached (condemned by GC)
			return location{ctr: ctr, entry: e}, true, nil
		}
	}
	return location{}, false, fmt.Errorf("chunk %s: %w: index names container %d, which does not hold it", id.Short(), ErrDamaged, ctr)
}

// lookupCounters count how chunk lookups were answered.
type lookupCounters struct {
	total, cache, filter, index atomic.Int64
}

// LookupStats tell how chunk lookups were answered since the store was
// opened: from the locality cache, by the summary vector ("certainly new"),
// or by the on-disk index.
type LookupStats struct {
	Total       int64 `json:"total"`
	CacheHits   int64 `json:"locality_cache_hits"`
	FilterNew   int64 `json:"summary_vector_new"`
	IndexLookup int64 `json:"index_lookups"`
}

// LookupStats returns the lookup counters.
func (s *Store) LookupStats() LookupStats {
	return LookupStats{Total: s.lookups.total.Load(), CacheHits: s.lookups.cache.Load(),
		FilterNew: s.lookups.filter.Load(), IndexLookup: s.lookups.index.Load()}
}

// exists reports whether a chunk is stored, for deduplication. An index
// that is inconsistent is logged and treated as "not stored": storing the
// chunk again is always safe.
func (s *Store) exists(id chunk.ID) bool {
	_, ok, err := s.locate(id)
	if err != nil {
		s.log.Warn("chunk lookup failed; storing the chunk again", "chunk", id.Short(), "err", err)
		return false
	}
	return ok
}

// readChunk returns a chunk's bytes (a slice of a cached region: read only).
func (s *Store) readChunk(id chunk.ID) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		loc, ok, err := s.locate(id)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("chunk %s: %w", id.Short(), ErrChunkMissing)
		}
		data, err := s.regions.get(regionKey{loc.ctr, loc.entry.Region}, func() ([]byte, error) {
			of, err := s.acquire(loc.ctr)
			if err != nil {
				return nil, err
			}
			defer s.files.release(of)
			return of.r.ReadRegion(s.comp, int(loc.entry.Region), nil)
		})
		if err != nil {
			if errors.Is(err, errContainerMissing) && attempt == 0 {
				// GC may have compacted the container since it was
				// cached: look the chunk up again.
				s.footers.evict(loc.ctr)
				continue
			}
			return nil, fmt.Errorf("chunk %s in container %d: %w: %v", id.Short(), loc.ctr, ErrDamaged, err)
		}
		end := uint64(loc.entry.Offset) + uint64(loc.entry.Length)
		if end > uint64(len(data)) {
			return nil, fmt.Errorf("chunk %s: %w: entry overruns its region", id.Short(), ErrDamaged)
		}
		return data[loc.entry.Offset:end], nil
	}
}
