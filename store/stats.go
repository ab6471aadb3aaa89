package store

import (
	"fmt"

	"coffer.dev/coffer/store/index"
)

// Stats are the store's figures.
type Stats struct {
	Points  int `json:"points"`
	Sources int `json:"sources"`
	// Logical is the sum of the disk sizes of all points: what restoring
	// every point would write.
	Logical int64 `json:"logical_bytes"`
	// Data is the non-zero part of Logical.
	Data int64 `json:"data_bytes"`
	// Unique is the raw size of the chunks stored once.
	Unique int64 `json:"unique_bytes"`
	// Stored is the size of the containers on disk.
	Stored     int64 `json:"stored_bytes"`
	Containers int   `json:"containers"`
	Chunks     int64 `json:"chunks"`
	// DedupRatio = Data / Unique; CompressionRatio = Unique / Stored;
	// TotalRatio = Logical / Stored.
	DedupRatio       float64 `json:"dedup_ratio"`
	CompressionRatio float64 `json:"compression_ratio"`
	TotalRatio       float64 `json:"total_ratio"`
	// IndexResident is the index memory that grows with the chunks
	// (summary vector, badger table indexes and filters);
	// IndexFixed the fixed buffers (memtables, block cache).
	IndexResident int64 `json:"index_resident_bytes"`
	IndexFixed    int64 `json:"index_fixed_bytes"`
	// CacheChunks is how many chunk locations the locality cache holds.
	CacheChunks int `json:"cache_chunks"`
}

// Stats computes the store's figures.
func (s *Store) Stats() (Stats, error) {
	var st Stats
	pts, err := s.Points()
	if err != nil {
		return st, err
	}
	sources := map[string]bool{}
	for _, p := range pts {
		st.Points++
		sources[p.Source] = true
		for _, d := range p.Disks {
			st.Logical += d.Size
			st.Data += d.Stats.Data
		}
	}
	st.Sources = len(sources)
	err = s.idx.Containers(func(r index.ContainerRecord) error {
		if r.State != index.Live {
			return nil
		}
		st.Containers++
		st.Stored += r.Size
		st.Unique += r.Raw
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	st.Chunks = s.idx.Chunks()
	st.IndexResident, st.IndexFixed = s.idx.Memory()
	st.CacheChunks = s.footers.entries()
	if st.Unique > 0 {
		st.DedupRatio = float64(st.Data) / float64(st.Unique)
	}
	if st.Stored > 0 {
		st.CompressionRatio = float64(st.Unique) / float64(st.Stored)
		st.TotalRatio = float64(st.Logical) / float64(st.Stored)
	}
	return st, nil
}
