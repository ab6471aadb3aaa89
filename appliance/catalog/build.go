package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"coffer.dev/coffer/appliance/catalog/fsys"
	"coffer.dev/coffer/store"
	"coffer.dev/coffer/store/point"
)

// DiskSource is one disk of a point as the volume finder reads it.
type DiskSource struct {
	Name string
	R    io.ReaderAt
	Size int64
}

// FoundVolume is a volume the finder found on a point's disks.
type FoundVolume struct {
	Disk     string
	ID       string // unique within its disk
	Scheme   string
	TypeName string
	Size     int64
	R        io.ReaderAt
}

// Readers are the volume finder and the filesystem readers a catalog is
// built with. DefaultReaders holds every reader Coffer has.
type Readers struct {
	Discover func(ctx context.Context, disks []DiskSource) ([]FoundVolume, []string, error)
	// Openers are tried in order; one that does not recognise the volume
	// returns an error wrapping fsys.ErrNotRecognized.
	Openers []func(r io.ReaderAt, size int64) (fsys.Filesystem, error)
}

// Options tune Build.
type Options struct {
	// Check runs the recoverability check in the same pass.
	Check bool
	// SampleFiles is how many catalogued files the check reads back
	// (default 64); each is read whole up to 1 MiB, otherwise its first
	// and last MiB.
	SampleFiles int
	Log         *slog.Logger
}

// PointFiles opens the filesystems of one point for reading: the disks
// through the store, the volumes on them, each filesystem on first use.
type PointFiles struct {
	Point    *point.RecoveryPoint
	Volumes  []FoundVolume
	Problems []string
	readers  Readers
	disks    []*store.DiskReader
	fs       map[string]fsys.Filesystem
	fsErr    map[string]error
}

// OpenPoint opens the disks of p and finds their volumes.
func OpenPoint(ctx context.Context, st *store.Store, p *point.RecoveryPoint, rd Readers) (*PointFiles, error) {
	pf := &PointFiles{Point: p, readers: rd, fs: map[string]fsys.Filesystem{}, fsErr: map[string]error{}}
	var srcs []DiskSource
	for _, d := range p.Disks {
		dr, err := st.OpenDisk(p.ID, d.Name)
		if err != nil {
			pf.Close()
			return nil, fmt.Errorf("open disk %s of point %s: %w", d.Name, p.ID, err)
		}
		pf.disks = append(pf.disks, dr)
		srcs = append(srcs, DiskSource{Name: d.Name, R: dr, Size: dr.Size()})
	}
	vols, warnings, err := rd.Discover(ctx, srcs)
	if err != nil {
		pf.Close()
		return nil, fmt.Errorf("find the volumes of point %s: %w", p.ID, err)
	}
	pf.Volumes, pf.Problems = vols, warnings
	return pf, nil
}

// Close releases the disks.
func (pf *PointFiles) Close() error {
	var errs []error
	for _, d := range pf.disks {
		errs = append(errs, d.Close())
	}
	pf.disks = nil
	return errors.Join(errs...)
}

// VolumeID is the ID of v inside the point: "disk/volume".
func VolumeID(v *FoundVolume) string { return v.Disk + "/" + v.ID }

// FS returns the filesystem of the volume with ID id (VolumeID), opened
// on first use. It returns (nil, nil) for a volume that holds no
// filesystem Coffer reads (swap, raw data).
func (pf *PointFiles) FS(id string) (fsys.Filesystem, error) {
	if fs, ok := pf.fs[id]; ok {
		return fs, nil
	}
	if err, ok := pf.fsErr[id]; ok {
		return nil, err
	}
	for i := range pf.Volumes {
		v := &pf.Volumes[i]
		if VolumeID(v) != id {
			continue
		}
		fs, err := openFS(pf.readers, v)
		if err != nil {
			pf.fsErr[id] = err
			return nil, err
		}
		pf.fs[id] = fs
		return fs, nil
	}
	return nil, fmt.Errorf("point %s has no volume %s", pf.Point.ID, id)
}

func openFS(rd Readers, v *FoundVolume) (fsys.Filesystem, error) {
	if strings.Contains(strings.ToLower(v.TypeName), "swap") || isSwap(v.R) {
		return nil, nil
	}
	for _, open := range rd.Openers {
		fs, err := open(v.R, v.Size)
		if err == nil {
			return fs, nil
		}
		if !errors.Is(err, fsys.ErrNotRecognized) {
			return nil, err
		}
	}
	return nil, nil
}

// expectsFS reports whether a volume's type says it holds a filesystem,
// so that finding none is damage rather than raw data.
func expectsFS(v *FoundVolume) bool {
	if isZero(v.R, v.Size) {
		return false // never formatted
	}
	if v.Scheme == "lvm" {
		return true
	}
	t := strings.ToLower(v.TypeName)
	for _, no := range []string{"swap", "lvm", "raid", "reserved", "bios boot", "extended", "luks", "crypt"} {
		if strings.Contains(t, no) {
			return false
		}
	}
	for _, yes := range []string{"filesystem", "basic data", "efi", "linux", "ntfs", "fat", "home", "root", "server data", "usr", "var"} {
		if strings.Contains(t, yes) {
			return true
		}
	}
	return false
}

// isZero reports whether the first MiB of a volume is all zeros (a volume
// never written).
func isZero(r io.ReaderAt, size int64) bool {
	b := make([]byte, min(size, 1<<20))
	if _, err := r.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return false
	}
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

func isSwap(r io.ReaderAt) bool {
	var b [10]byte
	_, err := r.ReadAt(b[:], 4086)
	return err == nil && (string(b[:]) == "SWAPSPACE2" || string(b[:]) == "SWAP-SPACE")
}

// Open returns the content of the regular file e of c.
func (pf *PointFiles) Open(c *Catalog, e *Entry) (fsys.File, error) {
	if e.Type != fsys.TypeFile {
		return nil, fmt.Errorf("%s is a %s, not a file", e.Path, e.Type)
	}
	vol := c.Volume(e).ID
	fs, err := pf.FS(vol)
	if err != nil {
		return nil, err
	}
	if fs == nil {
		return nil, fmt.Errorf("volume %s of point %s holds no filesystem", vol, pf.Point.ID)
	}
	f, err := fs.Open(&e.Entry)
	if err != nil {
		return nil, fmt.Errorf("open %s on %s: %w", e.Path, vol, err)
	}
	return f, nil
}

// Build catalogs every filesystem of p. Damage on a disk is recorded on
// the catalog (Problems, VolumeInfo.Error), never returned: the error is
// for a point that cannot be opened at all or a cancelled context.
func Build(ctx context.Context, st *store.Store, p *point.RecoveryPoint, rd Readers, o Options) (*Catalog, error) {
	start := time.Now()
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pf, err := OpenPoint(ctx, st, p, rd)
	if err != nil {
		return nil, err
	}
	defer pf.Close()
	c := &Catalog{Header: Header{Point: p.ID, Source: p.Source, Name: pointName(p), Created: p.Created}}
	for _, w := range pf.Problems {
		const unreadable = "cannot read partition table of disk "
		if rest, ok := strings.CutPrefix(w, unreadable); ok {
			disk, why, _ := strings.Cut(rest, ": ")
			c.Problems = append(c.Problems, fmt.Sprintf("cannot catalog disk %s: its partition table cannot be read: %s", disk, why))
		} else {
			c.Warnings = append(c.Warnings, w)
		}
	}
	for i := range pf.Volumes {
		v := &pf.Volumes[i]
		vi := VolumeInfo{ID: VolumeID(v), Disk: v.Disk, Scheme: v.Scheme, TypeName: v.TypeName, Size: v.Size}
		idx := len(c.Volumes)
		fs, err := pf.FS(vi.ID)
		if err != nil {
			vi.Error = err.Error()
			c.Problems = append(c.Problems, fmt.Sprintf("cannot catalog disk %s: volume %s: %v", v.Disk, v.ID, err))
			c.Volumes = append(c.Volumes, vi)
			continue
		}
		if fs == nil {
			if expectsFS(v) {
				vi.Error = "no filesystem found that Coffer reads (damaged superblock?)"
				c.Problems = append(c.Problems, fmt.Sprintf("cannot catalog disk %s: volume %s (%s): %s", v.Disk, v.ID, v.TypeName, vi.Error))
			}
			c.Volumes = append(c.Volumes, vi)
			continue
		}
		vi.FS, vi.Label, vi.UUID = fs.Type(), fs.Label(), fs.UUID()
		c.Volumes = append(c.Volumes, vi)
		n := len(c.Entries)
		werr := fs.Walk(ctx, func(e *fsys.Entry) error {
			c.Entries = append(c.Entries, Entry{Volume: idx, Entry: *e})
			return nil
		})
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		c.Volumes[idx].Entries = len(c.Entries) - n
		if werr != nil {
			c.Volumes[idx].Error = werr.Error()
			c.Problems = append(c.Problems, fmt.Sprintf("cannot catalog disk %s: %s on volume %s: %v", v.Disk, vi.FS, v.ID, werr))
		}
		log.Info("volume catalogued", "point", p.ID, "volume", vi.ID, "fs", vi.FS, "entries", c.Volumes[idx].Entries)
	}
	if o.Check {
		check(ctx, pf, c, o)
	}
	c.Built = time.Now().UTC()
	c.Duration = time.Since(start).Seconds()
	return c, nil
}

// check is the recoverability check: the volumes' own metadata checks and
// a sample of files read back.
func check(ctx context.Context, pf *PointFiles, c *Catalog, o Options) {
	failed := len(c.Problems) > 0
	c.Findings = append(c.Findings, c.Problems...)
	warn := len(c.Warnings) > 0
	c.Findings = append(c.Findings, c.Warnings...)
	for _, vi := range c.Volumes {
		if vi.FS == "" || vi.Error != "" {
			continue
		}
		fs, err := pf.FS(vi.ID)
		if err != nil || fs == nil {
			continue
		}
		if ck, ok := fs.(fsys.Checker); ok {
			findings, err := ck.Check(ctx)
			if err != nil {
				failed = true
				c.Findings = append(c.Findings, fmt.Sprintf("%s (%s): check failed: %v", vi.ID, vi.FS, err))
			}
			for _, f := range findings {
				warn = true
				c.Findings = append(c.Findings, fmt.Sprintf("%s (%s): %s", vi.ID, vi.FS, f))
			}
		}
	}
	n := o.SampleFiles
	if n <= 0 {
		n = 64
	}
	var files []int
	for i := range c.Entries {
		if c.Entries[i].Type == fsys.TypeFile && c.Entries[i].Size > 0 && c.Volumes[c.Entries[i].Volume].Error == "" {
			files = append(files, i)
		}
	}
	sample := files
	if len(files) > n {
		// Spread over the walk order, the largest file always included.
		sample = nil
		step := float64(len(files)) / float64(n-1)
		for k := 0; k < n-1; k++ {
			sample = append(sample, files[int(float64(k)*step)])
		}
		sort.Slice(files, func(a, b int) bool { return c.Entries[files[a]].Size > c.Entries[files[b]].Size })
		sample = append(sample, files[0])
	}
	buf := make([]byte, 1<<20)
	for _, i := range sample {
		if ctx.Err() != nil {
			return
		}
		e := &c.Entries[i]
		if err := readSample(pf, c, e, buf); err != nil {
			failed = true
			c.Findings = append(c.Findings, fmt.Sprintf("%s: %s: %v", c.Volumes[e.Volume].ID, e.Path, err))
		}
		c.Checked++
	}
	switch {
	case failed:
		c.Verdict = Failed
	case warn:
		c.Verdict = Warning
	default:
		c.Verdict = Verified
	}
}

func readSample(pf *PointFiles, c *Catalog, e *Entry, buf []byte) error {
	f, err := pf.Open(c, e)
	if err != nil {
		return err
	}
	if f.Size() != e.Size {
		return fmt.Errorf("size %d, catalogued %d", f.Size(), e.Size)
	}
	read := func(off int64) error {
		n := min(int64(len(buf)), e.Size-off)
		if _, err := f.ReadAt(buf[:n], off); err != nil && !(errors.Is(err, io.EOF) && off+n == e.Size) {
			return fmt.Errorf("read at %d: %w", off, err)
		}
		return nil
	}
	if err := read(0); err != nil {
		return err
	}
	if e.Size > int64(len(buf)) {
		return read(e.Size - min(int64(len(buf)), e.Size))
	}
	return nil
}
