package xfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"

	"coffer.dev/coffer/appliance/catalog/fsys"
)

// maxDepth bounds directory nesting (PATH_MAX allows about 2048 levels).
const maxDepth = 2048

// maxSymlink is the longest symlink target XFS stores.
const maxSymlink = 1024

// Walk visits every entry below "/" depth-first, a directory before its
// contents, children in directory order.
func (fs *FS) Walk(ctx context.Context, fn fsys.WalkFunc) error {
	root, err := fs.readInode(fs.sb.rootIno)
	if err != nil {
		return fmt.Errorf("xfs: walk /: %w", err)
	}
	if root.mode&sIFMT != sIFDIR {
		return fmt.Errorf("xfs: walk /: root inode %d is not a directory", root.ino)
	}
	w := &walker{fs: fs, ctx: ctx, fn: fn, dirs: map[uint64]bool{}}
	err = w.visit("/", root, 0)
	if errors.Is(err, fsys.SkipDir) {
		return nil
	}
	return err
}

type walker struct {
	fs    *FS
	ctx   context.Context
	fn    fsys.WalkFunc
	dirs  map[uint64]bool // directories seen: a second sighting is a cycle
	count int
}

func (w *walker) visit(p string, in *inode, depth int) error {
	if w.count++; w.count%256 == 0 {
		if err := w.ctx.Err(); err != nil {
			return err
		}
	}
	e, err := w.fs.entry(p, in)
	if err != nil {
		return fmt.Errorf("xfs: %s: %w", p, err)
	}
	if err := w.fn(e); err != nil {
		if errors.Is(err, fsys.SkipDir) && e.Type == fsys.TypeDir {
			return nil
		}
		return err
	}
	if e.Type != fsys.TypeDir {
		return nil
	}
	if w.dirs[in.ino] {
		return fmt.Errorf("xfs: %s: directory inode %d seen twice (cycle)", p, in.ino)
	}
	w.dirs[in.ino] = true
	if depth >= maxDepth {
		return fmt.Errorf("xfs: %s: directories nested deeper than %d", p, maxDepth)
	}
	var childErr error // from a child's visit: already carries its path
	err = w.fs.readDir(in, func(d dirent) error {
		cp := path.Join(p, d.name)
		child, err := w.fs.readInode(d.ino)
		if err != nil {
			childErr = fmt.Errorf("xfs: %s: %w", cp, err)
		} else {
			childErr = w.visit(cp, child, depth+1)
		}
		return childErr
	})
	if err != nil && err != childErr {
		return fmt.Errorf("xfs: %s: %w", p, err)
	}
	return err
}

// entry builds the fsys.Entry for inode in at path p.
func (fs *FS) entry(p string, in *inode) (*fsys.Entry, error) {
	e := &fsys.Entry{
		Path:  p,
		Size:  int64(in.size),
		Mode:  uint32(in.mode) & 0o7777,
		UID:   in.uid,
		GID:   in.gid,
		MTime: in.mtime,
		Ref:   in.ino,
		Nlink: in.nlink,
	}
	switch in.mode & sIFMT {
	case sIFREG:
		e.Type = fsys.TypeFile
	case sIFDIR:
		e.Type = fsys.TypeDir
	case sIFLNK:
		e.Type = fsys.TypeSymlink
		t, err := fs.symlink(in)
		if err != nil {
			return nil, err
		}
		e.Target = t
	case sIFCHR:
		e.Type = fsys.TypeCharDevice
	case sIFBLK:
		e.Type = fsys.TypeBlockDevice
	case sIFIFO:
		e.Type = fsys.TypeFIFO
	case sIFSOCK:
		e.Type = fsys.TypeSocket
	default:
		return nil, fmt.Errorf("inode %d: unknown file type in mode %#o", in.ino, in.mode)
	}
	return e, nil
}

// symlink returns a symlink's target: inline in the inode, or in blocks
// (each with a header on v5).
func (fs *FS) symlink(in *inode) (string, error) {
	if in.size == 0 || in.size > maxSymlink {
		return "", fmt.Errorf("symlink inode %d: target length %d", in.ino, in.size)
	}
	n := int(in.size)
	switch in.format {
	case fmtLocal:
		if n > len(in.fork) {
			return "", fmt.Errorf("symlink inode %d: target length %d beyond the inode", in.ino, n)
		}
		return string(in.fork[:n]), nil
	case fmtExtents, fmtBtree:
	default:
		return "", fmt.Errorf("symlink inode %d: data fork format %d", in.ino, in.format)
	}
	exts, err := fs.extents(in)
	if err != nil {
		return "", err
	}
	hdr := 0
	if fs.crc {
		hdr = symlinkHeader
	}
	t, err := fs.remoteSymlink(in, exts, hdr)
	if errors.Is(err, errNoSymlinkMagic) {
		// mkfs.xfs 6.1 populating from a protofile writes v5 remote
		// symlinks without their header; read the target raw then.
		t, err = fs.remoteSymlink(in, exts, 0)
	}
	return t, err
}

const symlinkHeader = 56

var errNoSymlinkMagic = errors.New("no symlink block magic")

func (fs *FS) remoteSymlink(in *inode, exts []extent, hdr int) (string, error) {
	n := int(in.size)
	bs := int(fs.sb.blockSize)
	nblk := (n + bs - hdr - 1) / (bs - hdr)
	buf := make([]byte, nblk*bs)
	if err := fs.readMapped(exts, buf, 0); err != nil {
		return "", fmt.Errorf("symlink inode %d: %w", in.ino, err)
	}
	out := make([]byte, 0, n)
	for i := 0; i < nblk; i++ {
		b := buf[i*bs : (i+1)*bs]
		want := min(n-len(out), bs-hdr)
		if hdr > 0 {
			if string(b[:4]) != "XSLM" {
				if i == 0 {
					return "", errNoSymlinkMagic
				}
				return "", fmt.Errorf("symlink inode %d: block %d: bad magic %q", in.ino, i, b[:4])
			}
			if !crcOK(b[:hdr+want], 12) {
				return "", fmt.Errorf("symlink inode %d: block %d: CRC mismatch", in.ino, i)
			}
			off, cnt := be.Uint32(b[4:]), be.Uint32(b[8:])
			if int(off) != len(out) || int(cnt) != want || be.Uint64(b[32:]) != in.ino {
				return "", fmt.Errorf("symlink inode %d: block %d: header does not match", in.ino, i)
			}
		}
		out = append(out, b[hdr:hdr+want]...)
	}
	if bytes.IndexByte(out, 0) >= 0 {
		return "", fmt.Errorf("symlink inode %d: target holds a NUL byte", in.ino)
	}
	return string(out), nil
}

// Open returns the content of the regular file e.
func (fs *FS) Open(e *fsys.Entry) (fsys.File, error) {
	in, err := fs.readInode(e.Ref)
	if err != nil {
		return nil, fmt.Errorf("xfs: open %s: %w", e.Path, err)
	}
	if in.mode&sIFMT != sIFREG {
		return nil, fmt.Errorf("xfs: open %s: inode %d is not a regular file", e.Path, in.ino)
	}
	if in.flags&diflagRealtime != 0 {
		return nil, fmt.Errorf("xfs: open %s: realtime files are not supported", e.Path)
	}
	var exts []extent
	if in.nextents > 0 || in.format == fmtBtree {
		if exts, err = fs.extents(in); err != nil {
			return nil, fmt.Errorf("xfs: open %s: %w", e.Path, err)
		}
	} else if in.format != fmtExtents {
		return nil, fmt.Errorf("xfs: open %s: data fork format %d", e.Path, in.format)
	}
	f, err := fs.mappedFile(int64(in.size), exts)
	if err != nil {
		return nil, fmt.Errorf("xfs: open %s: %w", e.Path, err)
	}
	return f, nil
}

// mappedFile is a file of size bytes over the written extents of exts;
// holes and unwritten extents read as zeros.
func (fs *FS) mappedFile(size int64, exts []extent) (*fsys.MappedFile, error) {
	bs := int64(fs.sb.blockSize)
	f := &fsys.MappedFile{R: fs.r, Length: size, FS: "xfs", Extents: make([]fsys.Extent, 0, len(exts))}
	for _, e := range exts {
		if e.unwritten || e.count == 0 {
			continue
		}
		base, err := fs.blockOffset(e.fsb)
		if err != nil {
			return nil, err
		}
		f.Extents = append(f.Extents, fsys.Extent{Logical: int64(e.off) * bs, Physical: base, Length: int64(e.count) * bs})
	}
	return f, nil
}
