package vcsim

import (
	"cmp"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// Write-tracked change tracking (Options.TrackWrites).
//
// ESXi learns which blocks changed from the guest's writes, not by reading the disk. In
// this mode the disks are written through WriteDisk, which marks the written 64 KiB
// blocks in the disk's open generation (a bitmap); a snapshot turns that bitmap into the
// new generation's change set and opens an empty one. Nothing is read or hashed: a
// snapshot costs a stat and a utimensat per disk. An incremental query unions the change
// sets of the generations after the base, "*" lists the allocated blocks (SEEK_DATA).
//
// A write that bypasses WriteDisk would go unreported, so the flat file's size and
// mtime are recorded after every tracked change (a tracked write, a snapshot, a growth
// of the disk) and compared before the next one. To make any later write visible even
// on file systems whose timestamps only advance with the kernel's tick, the recorded
// mtime is one the simulator sets itself, a second in the past: a write through the file
// system sets the current time, which differs. A mismatch resets the disk's tracking
// like an ESXi CBT reset (older changeIds get a FileFault, so a backup falls back to a
// full read) and is logged.

// blockRun is the 64 KiB blocks [first, end).
type blockRun struct{ first, end int64 }

// blocksOf is the number of blocks, the last maybe partial, of size bytes.
func blocksOf(size int64) int64 { return (size + BlockSize - 1) / BlockSize }

// unionRuns merges run lists into one sorted list of disjoint, non-adjacent runs, cut at
// limit blocks. The inputs are not changed.
func unionRuns(limit int64, sets ...[]blockRun) []blockRun {
	var all []blockRun
	for _, s := range sets {
		all = append(all, s...)
	}
	slices.SortFunc(all, func(a, b blockRun) int { return cmp.Compare(a.first, b.first) })
	var out []blockRun
	for _, r := range all {
		r.end = min(r.end, limit)
		if r.first >= r.end {
			continue
		}
		if n := len(out); n > 0 && r.first <= out[n-1].end {
			out[n-1].end = max(out[n-1].end, r.end)
			continue
		}
		out = append(out, r)
	}
	return out
}

// runsOf merges sorted block indexes into runs.
func runsOf(blocks []int64) []blockRun {
	var out []blockRun
	for _, b := range blocks {
		if n := len(out); n > 0 && out[n-1].end == b {
			out[n-1].end++
			continue
		}
		out = append(out, blockRun{b, b + 1})
	}
	return out
}

// bitset is a set of block indexes.
type bitset []uint64

// add puts the blocks [first, end) into the set.
func (b *bitset) add(first, end int64) {
	if need := int((end + 63) / 64); need > len(*b) {
		*b = append(*b, make([]uint64, need-len(*b))...)
	}
	s := *b
	for i := first; i < end; i++ {
		s[i/64] |= 1 << (i % 64)
	}
}

// runs lists the set as sorted, merged runs.
func (b bitset) runs() []blockRun {
	var out []blockRun
	for w, x := range b {
		for x != 0 {
			i := int64(w*64 + bits.TrailingZeros64(x))
			if n := len(out); n > 0 && out[n-1].end == i {
				out[n-1].end++
			} else {
				out = append(out, blockRun{i, i + 1})
			}
			x &= x - 1
		}
	}
	return out
}

// dataRuns lists the blocks of [from*BlockSize, size) of the file that hold data
// (SEEK_DATA/SEEK_HOLE), rounded out to whole blocks; all of them when the file system
// cannot tell.
func dataRuns(f *os.File, from, size int64) ([]blockRun, error) {
	var out []blockRun
	fd := int(f.Fd())
	limit := blocksOf(size)
	for next := from; next < limit; {
		data, err := unix.Seek(fd, next*BlockSize, unix.SEEK_DATA)
		hole := size
		switch {
		case errors.Is(err, unix.ENXIO):
			return out, nil // only a hole remains
		case err != nil: // no SEEK_DATA: everything counts as data
			data = next * BlockSize
		default:
			if h, err := unix.Seek(fd, data, unix.SEEK_HOLE); err == nil && h < size {
				hole = h
			}
		}
		if data >= size {
			break
		}
		first, end := max(data/BlockSize, next), min(blocksOf(hole), limit)
		if n := len(out); n > 0 && out[n-1].end >= first {
			out[n-1].end = end
		} else {
			out = append(out, blockRun{first, end})
		}
		next = end
	}
	return out, nil
}

// allocRuns is dataRuns of the file at path.
func allocRuns(path string, from, size int64) ([]blockRun, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return dataRuns(f, from, size)
}

// fileStamp is what the simulator last saw of a flat file it tracks.
type fileStamp struct {
	size  int64
	mtime int64 // ns since the epoch
}

func stampOf(fi os.FileInfo) fileStamp {
	return fileStamp{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
}

func statStamp(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return stampOf(fi), nil
}

// restamp sets the file's mtime to a second ago and returns its new stamp. A later
// write through the file system sets the mtime to the current time, however coarse the
// file system's clock, and so changes the stamp.
func restamp(path string) (fileStamp, error) {
	if err := os.Chtimes(path, time.Time{}, time.Now().Add(-time.Second)); err != nil {
		return fileStamp{}, err
	}
	return statStamp(path)
}

// trackedLocked returns the write-tracking state of a VM's disk backed by file, or nil
// when writes to it are not tracked: not in TrackWrites mode, before the first snapshot
// with change tracking on, after a reset, or when the disk is not tracked at all. The
// caller holds s.mu.
func (s *Sim) trackedLocked(vm string, key int32, file string) *diskCBT {
	if !s.opts.TrackWrites {
		return nil
	}
	st := s.cbt[vm]
	if st == nil {
		return nil
	}
	d := st.disks[key]
	if d == nil || d.file != file {
		return nil
	}
	return d
}

// untrackedChangeLocked resets the change tracking of a disk whose flat file was changed
// outside WriteDisk, as ESXi resets CBT: every changeId of the disk becomes unknown and
// the next snapshot starts a new epoch. The caller holds s.mu.
func (s *Sim) untrackedChangeLocked(vm string, key int32, path, when string) {
	if st := s.cbt[vm]; st != nil {
		delete(st.disks, key)
	}
	s.log.Warn("vcsim: a tracked disk's flat file was changed outside WriteDisk; its change tracking is reset "+
		"(older changeIds get a FileFault, backups fall back to full reads)",
		"vm", vm, "disk", key, "file", path, "noticed", when)
}

// checkStampLocked resets the disk's tracking if its flat file changed since the last
// tracked change and reports whether the tracking survived. Only meaningful while no
// WriteDisk of the disk is in progress. The caller holds s.mu.
func (s *Sim) checkStampLocked(vm string, key int32, d *diskCBT, path string, cur fileStamp, err error, when string) bool {
	if err == nil && cur == d.stamp {
		return true
	}
	s.untrackedChangeLocked(vm, key, path, when)
	return false
}

// growDiskFile extends the flat file of a VM's disk to size (sparse; it never shrinks).
// In TrackWrites mode the growth is a tracked change: it keeps the file's stamp current
// (after checking it), so that growing a disk does not reset its tracking.
func (s *Sim) growDiskFile(vm string, key int32, file, path string, size int64) error {
	if !s.opts.TrackWrites {
		return growFlat(path, size)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() >= size {
		return nil
	}
	d := s.trackedLocked(vm, key, file)
	if d != nil && d.writing == 0 && !s.checkStampLocked(vm, key, d, path, stampOf(fi), nil, "growing the disk") {
		d = nil
	}
	if err := os.Truncate(path, size); err != nil {
		return err
	}
	if d != nil && d.writing == 0 { // else the last write in progress stamps the file
		stamp, err := restamp(path)
		if err != nil {
			return err
		}
		d.stamp = stamp
	}
	return nil
}

// WriteDisk writes p at offset off of the VM's disk with the given device key, as the
// guest would. The data goes to the disk's flat file; in TrackWrites mode the written
// 64 KiB blocks are recorded as changed for the next snapshot (Options.TrackWrites).
// The write must lie within the disk's capacity. Snapshots wait for writes in progress
// and writes for a snapshot in progress, so every write lies wholly before or after a
// snapshot. WriteDisk works in hashing mode too, where it is a plain write.
func (s *Sim) WriteDisk(vmUUID string, diskKey int32, off int64, p []byte) error {
	ref, ok := s.lookupVM(vmUUID)
	if !ok {
		return fmt.Errorf("vcsim: no VM %q", vmUUID)
	}
	var (
		file     string
		capacity int64
	)
	s.withVM(ref, func(vm *simulator.VirtualMachine) {
		if d := findDisk(vm.Config.Hardware.Device, diskKey); d != nil {
			file, _ = diskBacking(d)
			capacity = diskCapacity(d)
		}
	})
	if file == "" {
		return fmt.Errorf("vcsim: VM %q has no disk %d", vmUUID, diskKey)
	}
	if off < 0 || off > capacity || int64(len(p)) > capacity-off {
		return fmt.Errorf("vcsim: write of %d bytes at %d lies outside disk %d (%d bytes)", len(p), off, diskKey, capacity)
	}
	path, ok := s.flatPath(file)
	if !ok {
		return fmt.Errorf("vcsim: disk %d of VM %q is on an unknown datastore: %s", diskKey, vmUUID, file)
	}
	if len(p) == 0 {
		return nil
	}

	s.io.RLock()
	defer s.io.RUnlock()
	s.mu.Lock()
	d := s.trackedLocked(ref.Value, diskKey, file)
	if d != nil && d.writing == 0 {
		cur, err := statStamp(path)
		if !s.checkStampLocked(ref.Value, diskKey, d, path, cur, err, "writing through WriteDisk") {
			d = nil
		}
	}
	if d != nil {
		d.writing++
		d.dirty.add(off/BlockSize, blocksOf(off+int64(len(p))))
	}
	s.mu.Unlock()

	err := writeFileAt(path, p, off)

	if d != nil {
		s.mu.Lock()
		d.writing--
		if d.writing == 0 {
			stamp, serr := restamp(path)
			if serr != nil {
				// The next check fails and resets the tracking: nothing is missed.
				err = errors.Join(err, serr)
			}
			d.stamp = stamp
		}
		s.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("vcsim: write disk %d of VM %q: %w", diskKey, vmUUID, err)
	}
	return nil
}

func writeFileAt(path string, p []byte, off int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(p, off); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// trackDisk makes a disk's generation for a snapshot in TrackWrites mode, without
// reading the disk: its change set is what WriteDisk recorded since the previous
// snapshot, plus the allocated blocks of an area the disk grew by. The caller holds the
// VM lock and s.io exclusively (no WriteDisk is in progress).
func (s *Sim) trackDisk(vm string, key int32, file string, size int64) (*generation, types.BaseMethodFault) {
	path, ok := s.flatPath(file)
	if !ok {
		return nil, &types.FileNotFound{FileFault: types.FileFault{File: file}}
	}
	if err := s.growDiskFile(vm, key, file, path, size); err != nil {
		return nil, &types.FileFault{File: file}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := &generation{file: file, size: size, tracked: true, path: path}
	d := s.trackedLocked(vm, key, file)
	if d != nil {
		cur, err := statStamp(path)
		if !s.checkStampLocked(vm, key, d, path, cur, err, "taking a snapshot") {
			d = nil
		}
	}
	if d != nil {
		sets := [][]blockRun{d.dirty.runs()}
		if size > d.size {
			grown, err := allocRuns(path, d.size/BlockSize, size)
			if err != nil {
				return nil, &types.FileFault{File: file}
			}
			sets = append(sets, grown)
		}
		g.changed = unionRuns(blocksOf(size), sets...)
	}
	stamp, err := restamp(path)
	if err != nil {
		return nil, &types.FileFault{File: file}
	}
	g.stamp = stamp
	if d != nil {
		d.stamp = stamp
	}
	return g, nil
}

// currentTracked is the unnamed generation of a disk's present state in TrackWrites
// mode (QueryChangedDiskAreas without a snapshot): the writes since the last snapshot.
func (s *Sim) currentTracked(vm string, key int32, file string, size int64) (*generation, string, types.BaseMethodFault) {
	path, ok := s.flatPath(file)
	if !ok {
		return nil, "cannot read the disk", &types.FileNotFound{FileFault: types.FileFault{File: file}}
	}
	if err := s.growDiskFile(vm, key, file, path, size); err != nil {
		return nil, "cannot read the disk", &types.FileFault{File: file}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.trackedLocked(vm, key, file)
	if d != nil && d.writing == 0 {
		cur, err := statStamp(path)
		if !s.checkStampLocked(vm, key, d, path, cur, err, "answering QueryChangedDiskAreas") {
			return nil, "change tracking was reset: the disk changed outside tracked writes: " + ctkFile(file),
				&types.FileFault{File: ctkFile(file)}
		}
	}
	if d == nil {
		return nil, "change tracking is not active for the disk: " + ctkFile(file), &types.FileFault{File: ctkFile(file)}
	}
	sets := [][]blockRun{d.dirty.runs()}
	if size > d.size {
		grown, err := allocRuns(path, d.size/BlockSize, size)
		if err != nil {
			return nil, "cannot read the disk", &types.FileFault{File: file}
		}
		sets = append(sets, grown)
	}
	return &generation{
		epoch: d.epoch, seq: d.seq + 1, file: file, size: size, tracked: true, path: path,
		changed: unionRuns(blocksOf(size), sets...),
	}, "", nil
}

// allocOf answers "*" for a generation in TrackWrites mode: the allocated blocks of the
// flat file, found once per generation (allocation only grows through WriteDisk, so a
// later look reports a superset, as a thin disk on ESXi may).
func (s *Sim) allocOf(g *generation) ([]blockRun, error) {
	s.mu.Lock()
	a, ok := g.alloc, g.allocOK
	s.mu.Unlock()
	if ok {
		return a, nil
	}
	a, err := allocRuns(g.path, 0, g.size)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	g.alloc, g.allocOK = a, true
	s.mu.Unlock()
	return a, nil
}

// trackedChanges unions the change sets of the generations after the older of base and
// target up to the newer (sets: the epoch's kept change sets by generation number). It
// reports false when one of them is no longer kept.
func trackedChanges(sets map[int][]blockRun, base, target *generation) ([]blockRun, bool) {
	sets[target.seq] = target.changed
	lo, hi := min(base.seq, target.seq), max(base.seq, target.seq)
	parts := make([][]blockRun, 0, hi-lo)
	for q := lo + 1; q <= hi; q++ {
		c, ok := sets[q]
		if !ok {
			return nil, false
		}
		parts = append(parts, c)
	}
	return unionRuns(blocksOf(target.size), parts...), true
}
