package blockdev

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Extent is a byte range.
type Extent struct {
	Offset int64
	Length int64
}

// Disk is an open image file or block device.
type Disk struct {
	f       *os.File
	path    string
	size    int64
	isBlock bool
}

// Open opens path for reading.
func Open(path string) (*Disk, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open disk %s: %w", path, err)
	}
	d, err := newDisk(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	return d, nil
}

func newDisk(f *os.File, path string) (*Disk, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat disk %s: %w", path, err)
	}
	d := &Disk{f: f, path: path}
	switch m := st.Mode(); {
	case m.IsRegular():
		d.size = st.Size()
	case m&os.ModeDevice != 0 && m&os.ModeCharDevice == 0:
		d.isBlock = true
		sz, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, fmt.Errorf("size of block device %s: %w", path, err)
		}
		d.size = sz
	default:
		return nil, fmt.Errorf("disk %s is neither a regular file nor a block device", path)
	}
	if d.size == 0 {
		return nil, fmt.Errorf("disk %s is empty", path)
	}
	return d, nil
}

// Size returns the disk's size in bytes.
func (d *Disk) Size() int64 { return d.size }

// Path returns the path the disk was opened from.
func (d *Disk) Path() string { return d.path }

// IsBlockDevice reports whether the disk is a block device.
func (d *Disk) IsBlockDevice() bool { return d.isBlock }

// ReadAt reads from the disk.
func (d *Disk) ReadAt(p []byte, off int64) (int, error) { return d.f.ReadAt(p, off) }

// Close closes the disk.
func (d *Disk) Close() error { return d.f.Close() }

// Allocated returns the extents of a sparse file that hold data (holes
// read as zeros and need not be read). It returns nil (everything) for
// block devices and for file systems that cannot tell.
func (d *Disk) Allocated() ([]Extent, error) {
	if d.isBlock {
		return nil, nil
	}
	fd := int(d.f.Fd())
	var out []Extent
	off := int64(0)
	for off < d.size {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err != nil {
			if errors.Is(err, unix.ENXIO) {
				break // no data after off
			}
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
				return nil, nil
			}
			return nil, fmt.Errorf("find data in %s: %w", d.path, err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("find holes in %s: %w", d.path, err)
		}
		hole = min(hole, d.size)
		if hole > data {
			out = append(out, Extent{data, hole - data})
		}
		off = hole
	}
	if _, err := d.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	if out == nil {
		out = []Extent{}
	}
	return out, nil
}

// Output is a restore target: a new or truncated image file, or a block
// device (which cannot hold holes: zeros must be written).
type Output struct {
	f       *os.File
	isBlock bool
}

// CreateOutput opens path as a restore target of size bytes. A regular
// file is created (refusing to replace an existing one unless force) and
// sized sparse; a block device must be at least size bytes.
func CreateOutput(path string, size int64, force bool) (*Output, error) {
	if st, err := os.Stat(path); err == nil {
		if st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0 {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				return nil, fmt.Errorf("open %s: %w", path, err)
			}
			d, err := newDisk(f, path)
			if err != nil {
				f.Close()
				return nil, err
			}
			if d.size < size {
				f.Close()
				return nil, fmt.Errorf("block device %s holds %d bytes, the disk needs %d", path, d.size, size)
			}
			return &Output{f: f, isBlock: true}, nil
		}
		if !force {
			return nil, fmt.Errorf("%s exists; remove it or pass --force to overwrite", path)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, fmt.Errorf("size %s: %w", path, err)
	}
	return &Output{f: f}, nil
}

// NeedsZeros reports whether zero runs must be written (block devices).
func (o *Output) NeedsZeros() bool { return o.isBlock }

// WriteAt writes to the target.
func (o *Output) WriteAt(p []byte, off int64) (int, error) { return o.f.WriteAt(p, off) }

// WriteVecAt writes bufs one after another at off in as few system calls
// as possible (pwritev), without copying them together first.
func (o *Output) WriteVecAt(bufs [][]byte, off int64) (int, error) {
	total := 0
	for len(bufs) > 0 {
		n, err := unix.Pwritev(int(o.f.Fd()), bufs, off)
		total += n
		off += int64(n)
		if err != nil {
			return total, fmt.Errorf("write %s: %w", o.f.Name(), err)
		}
		// Drop what was written; a short write continues where it stopped.
		for n > 0 && len(bufs) > 0 {
			if n >= len(bufs[0]) {
				n -= len(bufs[0])
				bufs = bufs[1:]
				continue
			}
			bufs[0] = bufs[0][n:]
			n = 0
		}
	}
	return total, nil
}

// Sync flushes what was written to stable storage.
func (o *Output) Sync() error { return o.f.Sync() }

// Close closes the target (call Sync first to make it durable).
func (o *Output) Close() error { return o.f.Close() }
