package store

import (
	"context"
	"fmt"

	"coffer.dev/coffer/store/diskmap"
	"coffer.dev/coffer/store/point"
)

// DifferingRanges compares disk name of points a and b map range by map
// range and returns the extents (whole 16 MiB map ranges) whose contents
// differ. Range maps are content-addressed and chunking is a function of
// the range's bytes alone, so equal map IDs mean equal bytes; the
// comparison reads only the level-2 maps, never the data. It is how a
// changed-block-tracking backup is checked against a full read.
func (s *Store) DifferingRanges(ctx context.Context, a, b *point.RecoveryPoint, name string) ([]Extent, error) {
	da, ok := a.Disk(name)
	if !ok {
		return nil, fmt.Errorf("compare disk %s: point %s has no such disk", name, a.ID)
	}
	db, ok := b.Disk(name)
	if !ok {
		return nil, fmt.Errorf("compare disk %s: point %s has no such disk", name, b.ID)
	}
	if da.Size != db.Size {
		return []Extent{{0, max(da.Size, db.Size)}}, nil
	}
	var out []Extent
	for g := 0; g < diskmap.Groups(da.Size); g++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if da.Groups[g] == db.Groups[g] {
			continue
		}
		ga, err := s.loadGroup(da, g)
		if err != nil {
			return nil, err
		}
		gb, err := s.loadGroup(db, g)
		if err != nil {
			return nil, err
		}
		for i := range ga {
			if ga[i].ID == gb[i].ID {
				continue
			}
			r := g*diskmap.GroupRanges + i
			off := int64(r) * diskmap.RangeSize
			e := Extent{off, diskmap.RangeLen(da.Size, r)}
			if n := len(out); n > 0 && out[n-1].End() == off {
				out[n-1].Length += e.Length
				continue
			}
			out = append(out, e)
		}
	}
	return out, nil
}
