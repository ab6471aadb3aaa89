package store

import (
	"coffer.dev/coffer/store/chunk"
	"coffer.dev/coffer/store/chunker"
	"coffer.dev/coffer/store/diskmap"
	"coffer.dev/coffer/store/point"
	"fmt"
	"strconv"
)

func (s *Store) hashForTest(b []byte) chunk.ID {
	return chunk.NewHasher(s.keys.Fingerprint[:]).Sum(b)
}

func (s *Store) toExtents(ps []chunker.Piece, data []byte) []diskmap.Extent {
	out := make([]diskmap.Extent, len(ps))
	for i, p := range ps {
		out[i] = diskmap.Extent{Len: uint32(p.Len), Zero: p.Zero}
		if !p.Zero {
			out[i].ID = s.hashForTest(data[p.Off : p.Off+p.Len])
		}
	}
	return out
}

func lens(e []diskmap.Extent) []string {
	var out []string
	var off int64
	for _, x := range e {
		z := "d"
		if x.Zero {
			z = "z"
		}
		out = append(out, z+":"+itoa(off)+"+"+itoa(int64(x.Len)))
		off += int64(x.Len)
	}
	return out
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

func hex16(id uint64) string { return fmt.Sprintf("%016x", id) }

func pointID(s string) point.ID { return point.ID(s) }
