package export

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"coffer.dev/coffer/store"
)

// sectorSize is the sector all formats count in; a disk whose size is not
// a multiple of it is exported rounded up with zeros (qcow2, VHDX and VMDK
// hold whole sectors).
const sectorSize = 512

// clusterSize is the allocation unit of qcow2 clusters and VMDK grains,
// and the granularity of the zero scan.
const clusterSize = 64 << 10

// readBatch is the most read from the source in one call.
const readBatch = 1 << 20

// virtualSize is the size an image declares for src: its size rounded up
// to a whole sector.
func virtualSize(src Source) int64 { return roundUp(src.Size(), sectorSize) }

func roundUp(n, m int64) int64 { return (n + m - 1) / m * m }

func ceilDiv(n, m int64) int64 { return (n + m - 1) / m }

// dataExtents returns src's data extents sorted, merged and clipped to its
// size.
func dataExtents(ctx context.Context, src Source) ([]store.Extent, error) {
	exts, err := src.DataExtents(ctx)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, fmt.Errorf("data extents: %w", err)
	}
	size := src.Size()
	exts = append([]store.Extent(nil), exts...)
	sort.Slice(exts, func(i, j int) bool { return exts[i].Offset < exts[j].Offset })
	out := exts[:0]
	for _, e := range exts {
		if e.Offset < 0 {
			e.Length += e.Offset
			e.Offset = 0
		}
		if e.End() > size {
			e.Length = size - e.Offset
		}
		if e.Length <= 0 {
			continue
		}
		if k := len(out); k > 0 && e.Offset <= out[k-1].End() {
			if e.End() > out[k-1].End() {
				out[k-1].Length = e.End() - out[k-1].Offset
			}
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// readFull fills b from src at off (which must lie within src's size).
func readFull(src io.ReaderAt, b []byte, off int64) error {
	n, err := src.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read disk at %d: %w", off+int64(n), err)
}

// run is a run of allocation units [start, start+n).
type run struct{ start, n int64 }

// appendUnit adds unit i (not below the last one) to runs.
func appendUnit(runs []run, i int64) []run {
	if k := len(runs); k > 0 && runs[k-1].start+runs[k-1].n >= i {
		runs[k-1].n = max(runs[k-1].n, i-runs[k-1].start+1)
		return runs
	}
	return append(runs, run{i, 1})
}

// unitsOf returns the runs of units of size unit that overlap exts.
func unitsOf(exts []store.Extent, unit int64) []run {
	var runs []run
	for _, e := range exts {
		s, end := e.Offset/unit, ceilDiv(e.End(), unit)
		if k := len(runs); k > 0 && runs[k-1].start+runs[k-1].n >= s {
			runs[k-1].n = max(runs[k-1].n, end-runs[k-1].start)
			continue
		}
		runs = append(runs, run{s, end - s})
	}
	return runs
}

// coarsen maps runs of units to runs of units ratio times larger.
func coarsen(runs []run, ratio int64) []run {
	var out []run
	for _, r := range runs {
		s, end := r.start/ratio, ceilDiv(r.start+r.n, ratio)
		if k := len(out); k > 0 && out[k-1].start+out[k-1].n >= s {
			out[k-1].n = max(out[k-1].n, end-out[k-1].start)
			continue
		}
		out = append(out, run{s, end - s})
	}
	return out
}

// count returns the number of units in runs.
func count(runs []run) int64 {
	var n int64
	for _, r := range runs {
		n += r.n
	}
	return n
}

// forEachUnit reads the units of runs in order, in batches, and calls fn
// with each unit's bytes (always unit bytes long: zeros past the end of
// the disk). b is only valid during the call.
func forEachUnit(ctx context.Context, src Source, runs []run, unit int64, fn func(i int64, b []byte) error) error {
	size := src.Size()
	per := max(1, readBatch/unit)
	buf := make([]byte, per*unit)
	for _, r := range runs {
		for i := r.start; i < r.start+r.n; {
			if err := ctx.Err(); err != nil {
				return err
			}
			k := min(per, r.start+r.n-i)
			b := buf[:k*unit]
			off := i * unit
			avail := min(int64(len(b)), size-off)
			if avail < int64(len(b)) {
				clear(b[max(avail, 0):])
			}
			if avail > 0 {
				if err := readFull(src, b[:avail], off); err != nil {
					return err
				}
			}
			for j := int64(0); j < k; j++ {
				if err := fn(i+j, b[j*unit:(j+1)*unit]); err != nil {
					return err
				}
			}
			i += k
		}
	}
	return nil
}

// isZero reports whether b is all zeros.
func isZero(b []byte) bool {
	for len(b) > 0 {
		k := min(len(b), len(zeros))
		if !bytes.Equal(b[:k], zeros[:k]) {
			return false
		}
		b = b[k:]
	}
	return true
}

// nonZeroClusters scans src's data extents and returns the runs of
// clusters that hold a non-zero byte.
func nonZeroClusters(ctx context.Context, src Source) ([]run, error) {
	exts, err := dataExtents(ctx, src)
	if err != nil {
		return nil, err
	}
	var out []run
	err = forEachUnit(ctx, src, unitsOf(exts, clusterSize), clusterSize, func(i int64, b []byte) error {
		if !isZero(b) {
			out = appendUnit(out, i)
		}
		return nil
	})
	return out, err
}
