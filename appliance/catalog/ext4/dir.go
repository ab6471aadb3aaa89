package ext4

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"coffer.dev/coffer/appliance/catalog/fsys"
)

const (
	maxDirDepth   = 4096
	maxDirEntries = 1 << 24
	dirReadChunk  = 1 << 20
)

// dirent is one live directory entry.
type dirent struct {
	ino  uint32
	name string
}

// parseDirents appends the live entries of a linear directory block (or an
// inline-data area) to out. Entries with inode 0 (deleted entries, htree
// node padding, checksum tails) are skipped.
func (fs *FS) parseDirents(b []byte, out []dirent) ([]dirent, error) {
	le := binary.LittleEndian
	for off := 0; off < len(b); {
		if len(b)-off < 8 {
			return out, fmt.Errorf("directory entry at %d: %d bytes left", off, len(b)-off)
		}
		ino := le.Uint32(b[off:])
		recLen := int(le.Uint16(b[off+4:]))
		if recLen == 0 || recLen == 65535 {
			if fs.bs == 65536 && len(b)-off == 65536 {
				recLen = 65536
			}
		}
		nameLen := int(b[off+6])
		if fs.sb.featureIncompat&incompatFiletype == 0 {
			nameLen = int(le.Uint16(b[off+6:]))
		}
		if recLen < 8 || recLen%4 != 0 || recLen > len(b)-off || 8+nameLen > recLen {
			return out, fmt.Errorf("directory entry at %d: record length %d, name length %d", off, recLen, nameLen)
		}
		if ino != 0 {
			name := string(b[off+8 : off+8+nameLen])
			if name != "." && name != ".." {
				if len(out) >= maxDirEntries {
					return out, fmt.Errorf("more than %d directory entries", maxDirEntries)
				}
				out = append(out, dirent{ino: ino, name: name})
			}
		}
		off += recLen
	}
	return out, nil
}

// readDir returns the live entries of directory inode in, in stored order.
func (fs *FS) readDir(ctx context.Context, in *inode) ([]dirent, error) {
	if in.flags&inodeFlagInlineData != 0 {
		data, err := fs.inlineData(in)
		if err != nil {
			return nil, err
		}
		// The first four bytes are the parent's inode number.
		if len(data) < 4 {
			return nil, fmt.Errorf("inline directory inode %d: %d bytes", in.ino, len(data))
		}
		body := data[4:]
		first := body[:min(len(body), inlineSize-4)]
		out, err := fs.parseDirents(first, nil)
		if err != nil {
			return nil, fmt.Errorf("inline directory inode %d: %w", in.ino, err)
		}
		if len(body) > len(first) {
			if out, err = fs.parseDirents(body[len(first):], out); err != nil {
				return nil, fmt.Errorf("inline directory inode %d (xattr part): %w", in.ino, err)
			}
		}
		return out, nil
	}
	if in.size%fs.bs != 0 {
		return nil, fmt.Errorf("directory inode %d: size %d not a multiple of the block size", in.ino, in.size)
	}
	nblocks := in.size / fs.bs
	var out []dirent
	var buf []byte
	for lblk := uint64(0); lblk < nblocks; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r, err := fs.mapBlock(in, lblk)
		if err != nil {
			return nil, fmt.Errorf("directory inode %d block %d: %w", in.ino, lblk, err)
		}
		n := min(r.count, nblocks-lblk, dirReadChunk/fs.bs)
		if !r.zero {
			if buf == nil {
				buf = make([]byte, min(dirReadChunk, in.size))
			}
			b := buf[:n*fs.bs]
			if _, err := fs.r.ReadAt(b, int64(r.pblk*fs.bs)); err != nil {
				return nil, fmt.Errorf("read directory inode %d block %d: %w", in.ino, lblk, err)
			}
			for k := uint64(0); k < n; k++ {
				out, err = fs.parseDirents(b[k*fs.bs:(k+1)*fs.bs], out)
				if err != nil {
					return nil, fmt.Errorf("directory inode %d block %d: %w", in.ino, lblk+k, err)
				}
			}
		}
		lblk += n
	}
	return out, nil
}

// entry builds the fsys.Entry of inode in at path p.
func (fs *FS) entry(p string, in *inode) (*fsys.Entry, error) {
	e := &fsys.Entry{
		Path:  p,
		Type:  in.typ(),
		Size:  int64(in.size),
		Mode:  uint32(in.mode & 0o7777),
		UID:   in.uid,
		GID:   in.gid,
		MTime: in.mtime,
		Ref:   uint64(in.ino),
		Nlink: uint32(in.links),
	}
	if e.Type == 0 {
		return nil, fmt.Errorf("%s: inode %d has unknown mode %#o", p, in.ino, in.mode)
	}
	if e.Size < 0 {
		return nil, fmt.Errorf("%s: inode %d has size %d", p, in.ino, in.size)
	}
	if e.Type == fsys.TypeSymlink {
		t, err := fs.symlinkTarget(in)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		e.Target = t
	}
	return e, nil
}

// Walk implements fsys.Filesystem.
func (fs *FS) Walk(ctx context.Context, fn fsys.WalkFunc) error {
	root, err := fs.inode(rootIno)
	if err != nil {
		return fmt.Errorf("walk /: %w", err)
	}
	if root.typ() != fsys.TypeDir {
		return fmt.Errorf("walk /: root inode is a %s", root.typ())
	}
	w := &walker{fs: fs, ctx: ctx, fn: fn, seen: map[uint32]struct{}{rootIno: {}}}
	pctx, stop := context.WithCancel(ctx)
	var wait func()
	w.prefetch, wait = startPrefetch(pctx, fs)
	defer func() { stop(); wait() }() // no read of the volume outlives Walk
	err = w.dir("/", root, 0)
	if errors.Is(err, fsys.SkipDir) {
		return nil
	}
	return err
}

type walker struct {
	prefetch chan<- uint32
	fs       *FS
	ctx      context.Context
	fn       fsys.WalkFunc
	seen     map[uint32]struct{} // directory inodes visited (cycle detection)
	count    int
}

func (w *walker) dir(p string, in *inode, depth int) error {
	e, err := w.fs.entry(p, in)
	if err != nil {
		return err
	}
	if err := w.fn(e); err != nil {
		if err == fsys.SkipDir {
			return nil
		}
		return err
	}
	if depth >= maxDirDepth {
		return fmt.Errorf("walk %s: directories nested deeper than %d", p, maxDirDepth)
	}
	ents, err := w.fs.readDir(w.ctx, in)
	if err != nil {
		return fmt.Errorf("walk %s: %w", p, err)
	}
	prefix := p
	if prefix != "/" {
		prefix += "/"
	}
	for _, d := range ents {
		select { // read ahead, never wait for it
		case w.prefetch <- d.ino:
		default:
		}
	}
	for _, d := range ents {
		w.count++
		if w.count%1024 == 0 {
			if err := w.ctx.Err(); err != nil {
				return err
			}
		}
		cp := prefix + d.name
		child, err := w.fs.inode(d.ino)
		if err != nil {
			return fmt.Errorf("walk %s: %w", cp, err)
		}
		if child.typ() == fsys.TypeDir {
			if _, dup := w.seen[d.ino]; dup {
				return fmt.Errorf("walk %s: directory inode %d reached twice (cycle)", cp, d.ino)
			}
			w.seen[d.ino] = struct{}{}
			if err := w.dir(cp, child, depth+1); err != nil {
				return err
			}
			continue
		}
		e, err := w.fs.entry(cp, child)
		if err != nil {
			return fmt.Errorf("walk %w", err)
		}
		if err := w.fn(e); err != nil && err != fsys.SkipDir {
			return err
		}
	}
	return nil
}

// prefetchWorkers read directories ahead of the walk: on a store-backed
// volume each read of a region costs a decompression, and the workers
// spread that over the cores while the walk goes on in order.
const prefetchWorkers = 2

// startPrefetch starts workers that read the inode and, for a directory,
// the blocks of each inode number sent, warming the caches below; they
// stop when ctx ends. Errors are left for the walk to meet.
func startPrefetch(ctx context.Context, fs *FS) (chan<- uint32, func()) {
	ch := make(chan uint32, 4096)
	var wg sync.WaitGroup
	for i := 0; i < prefetchWorkers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case ino := <-ch:
					in, err := fs.inode(ino)
					if err != nil || in.typ() != fsys.TypeDir {
						continue
					}
					_, _ = fs.readDir(ctx, in)
				}
			}
		}()
	}
	return ch, wg.Wait
}
