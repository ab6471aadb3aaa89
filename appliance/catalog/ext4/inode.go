package ext4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"coffer.dev/coffer/appliance/catalog/fsys"
)

const (
	inodeFlagIndex      = 0x1000
	inodeFlagHugeFile   = 0x40000
	inodeFlagExtents    = 0x80000
	inodeFlagInlineData = 0x10000000

	extentMagic    = 0xF30A
	maxExtentDepth = 5
	inlineSize     = 60 // bytes of i_block
)

// inode is a decoded on-disk inode.
type inode struct {
	ino        uint32
	raw        []byte // the whole on-disk inode (inode size bytes)
	mode       uint16
	uid, gid   uint32
	size       uint64
	mtime      time.Time
	links      uint16
	blocks     uint64 // i_blocks, in 512-byte sectors unless huge
	flags      uint32
	fileACL    uint64
	extraIsize uint16
	iblock     []byte // i_block, 60 bytes
}

func (in *inode) typ() fsys.EntryType {
	switch in.mode & 0xF000 {
	case 0x8000:
		return fsys.TypeFile
	case 0x4000:
		return fsys.TypeDir
	case 0xA000:
		return fsys.TypeSymlink
	case 0x2000:
		return fsys.TypeCharDevice
	case 0x6000:
		return fsys.TypeBlockDevice
	case 0x1000:
		return fsys.TypeFIFO
	case 0xC000:
		return fsys.TypeSocket
	}
	return 0
}

// inodeLoc returns the byte offset of inode ino and the inode-table chunk
// (offset, length) that holds it.
func (fs *FS) inodeLoc(ino uint32) (off, chunkOff uint64, chunkLen int, err error) {
	if ino == 0 || ino > fs.sb.inodesCount {
		return 0, 0, 0, fmt.Errorf("inode number %d out of range 1..%d", ino, fs.sb.inodesCount)
	}
	g := uint64(ino-1) / uint64(fs.sb.inodesPerGroup)
	idx := uint64(ino-1) % uint64(fs.sb.inodesPerGroup)
	if g >= uint64(len(fs.gds)) {
		return 0, 0, 0, fmt.Errorf("inode %d in group %d of %d", ino, g, len(fs.gds))
	}
	isz := uint64(fs.sb.inodeSize)
	tableLen := uint64(fs.sb.inodesPerGroup) * isz
	it := fs.gds[g].inodeTable
	if it >= fs.sb.blocksCount || (fs.sb.blocksCount-it)*fs.bs < tableLen {
		return 0, 0, 0, fmt.Errorf("inode table of group %d at block %d lies outside the filesystem", g, it)
	}
	base := it * fs.bs
	rel := idx * isz
	crel := rel / inodeChunk * inodeChunk
	clen := min(uint64(inodeChunk), tableLen-crel)
	return base + rel, base + crel, int(clen), nil
}

// rawInode returns the on-disk bytes of inode ino.
func (fs *FS) rawInode(ino uint32) ([]byte, error) {
	off, coff, clen, err := fs.inodeLoc(ino)
	if err != nil {
		return nil, err
	}
	chunk, err := fs.cachedAt(coff, clen)
	if err != nil {
		return nil, err
	}
	rel := off - coff
	return chunk[rel : rel+uint64(fs.sb.inodeSize)], nil
}

// inode reads and decodes inode ino.
func (fs *FS) inode(ino uint32) (*inode, error) {
	b, err := fs.rawInode(ino)
	if err != nil {
		return nil, fmt.Errorf("read inode %d: %w", ino, err)
	}
	le := binary.LittleEndian
	in := &inode{
		ino:     ino,
		raw:     b,
		mode:    le.Uint16(b[0x00:]),
		uid:     uint32(le.Uint16(b[0x02:])) | uint32(le.Uint16(b[0x78:]))<<16,
		gid:     uint32(le.Uint16(b[0x18:])) | uint32(le.Uint16(b[0x7A:]))<<16,
		size:    uint64(le.Uint32(b[0x04:])),
		links:   le.Uint16(b[0x1A:]),
		blocks:  uint64(le.Uint32(b[0x1C:])),
		flags:   le.Uint32(b[0x20:]),
		fileACL: uint64(le.Uint32(b[0x68:])) | uint64(le.Uint16(b[0x76:]))<<32,
		iblock:  b[0x28 : 0x28+inlineSize],
	}
	if len(b) > 128 {
		in.extraIsize = le.Uint16(b[0x80:])
		if int(in.extraIsize) > len(b)-128 {
			return nil, fmt.Errorf("inode %d: extra size %d exceeds inode size %d", ino, in.extraIsize, len(b))
		}
	}
	if fs.sb.has(roCompatHugeFile) {
		in.blocks |= uint64(le.Uint16(b[0x74:])) << 32
	}
	typ := in.typ()
	if typ != fsys.TypeDir || fs.sb.featureIncompat&incompatLargeDir != 0 {
		in.size |= uint64(le.Uint32(b[0x6C:])) << 32
	}
	sec := int64(int32(le.Uint32(b[0x10:])))
	var nsec int64
	if 128+int(in.extraIsize) >= 0x8C {
		extra := le.Uint32(b[0x88:])
		sec += int64(extra&3) << 32
		nsec = int64(extra >> 2)
		if nsec > 999999999 {
			nsec = 0
		}
	}
	in.mtime = time.Unix(sec, nsec).UTC()
	return in, nil
}

// run is a piece of a file's logical-to-physical mapping: count blocks
// starting at logical block lblk, at physical block pblk, or a hole (or
// unwritten extent) reading as zeros when zero is set.
type run struct {
	pblk  uint64
	count uint64
	zero  bool
}

// mapBlock returns the run that starts at logical block lblk (count >= 1).
func (fs *FS) mapBlock(in *inode, lblk uint64) (run, error) {
	if in.flags&inodeFlagExtents != 0 {
		return fs.mapExtent(in, lblk)
	}
	return fs.mapIndirect(in, lblk)
}

const maxRun = 1 << 32

// mapExtent walks the extent tree down to the leaf covering lblk.
func (fs *FS) mapExtent(in *inode, lblk uint64) (run, error) {
	le := binary.LittleEndian
	node := in.iblock
	bound := uint64(maxRun) // first logical block not covered by this subtree
	wantDepth := -1
	for level := 0; ; level++ {
		if len(node) < 12 || le.Uint16(node[0:]) != extentMagic {
			return run{}, fmt.Errorf("inode %d: bad extent header at level %d", in.ino, level)
		}
		entries := int(le.Uint16(node[2:]))
		depth := int(le.Uint16(node[6:]))
		if depth > maxExtentDepth || (wantDepth >= 0 && depth != wantDepth) || 12+12*entries > len(node) {
			return run{}, fmt.Errorf("inode %d: extent node at level %d: depth %d, %d entries in %d bytes",
				in.ino, level, depth, entries, len(node))
		}
		// The last entry whose first block is <= lblk.
		i := -1
		for k := 0; k < entries; k++ {
			if uint64(le.Uint32(node[12+12*k:])) > lblk {
				if k < entries {
					bound = min(bound, uint64(le.Uint32(node[12+12*k:])))
				}
				break
			}
			i = k
		}
		if depth == 0 {
			if i >= 0 {
				e := node[12+12*i:]
				start := uint64(le.Uint32(e[0:]))
				n := uint64(le.Uint16(e[4:]))
				unwritten := false
				if n > 32768 {
					n -= 32768
					unwritten = true
				}
				if lblk < start+n {
					p := (uint64(le.Uint16(e[6:]))<<32 | uint64(le.Uint32(e[8:]))) + (lblk - start)
					r := run{pblk: p, count: start + n - lblk, zero: unwritten}
					if !unwritten && (p >= fs.sb.blocksCount || fs.sb.blocksCount-p < r.count) {
						return run{}, fmt.Errorf("inode %d: extent at block %d+%d outside the filesystem", in.ino, p, r.count)
					}
					return r, nil
				}
			}
			if bound <= lblk {
				bound = lblk + 1
			}
			return run{count: bound - lblk, zero: true}, nil
		}
		if i < 0 {
			return run{count: max(bound, lblk+1) - lblk, zero: true}, nil
		}
		e := node[12+12*i:]
		child := uint64(le.Uint32(e[4:])) | uint64(le.Uint16(e[8:]))<<32
		b, err := fs.block(child)
		if err != nil {
			return run{}, fmt.Errorf("inode %d: extent index block: %w", in.ino, err)
		}
		node = b
		wantDepth = depth - 1
	}
}

// mapIndirect resolves lblk through the classic direct/indirect block map.
func (fs *FS) mapIndirect(in *inode, lblk uint64) (run, error) {
	le := binary.LittleEndian
	per := fs.bs / 4
	ptrs := func(b []byte, from, limit uint64) (run, error) {
		// A run of contiguous (or zero) pointers in b starting at from.
		p := uint64(le.Uint32(b[4*from:]))
		n := uint64(1)
		for from+n < limit {
			q := uint64(le.Uint32(b[4*(from+n):]))
			if (p == 0 && q != 0) || (p != 0 && q != p+n) {
				break
			}
			n++
		}
		if p == 0 {
			return run{count: n, zero: true}, nil
		}
		if p >= fs.sb.blocksCount || fs.sb.blocksCount-p < n {
			return run{}, fmt.Errorf("inode %d: block pointer %d outside the filesystem", in.ino, p)
		}
		return run{pblk: p, count: n}, nil
	}
	if lblk < 12 {
		return ptrs(in.iblock, lblk, 12)
	}
	lblk -= 12
	// span[d] is how many blocks one pointer at depth d covers.
	span := uint64(1)
	for level := 1; level <= 3; level++ {
		total := span * per
		if lblk < total {
			ptr := uint64(le.Uint32(in.iblock[4*(11+level):]))
			for d := level; ; d-- {
				if ptr == 0 {
					// Hole to the end of what this pointer covers.
					cover := span * per
					return run{count: cover - lblk%cover, zero: true}, nil
				}
				b, err := fs.block(ptr)
				if err != nil {
					return run{}, fmt.Errorf("inode %d: indirect block: %w", in.ino, err)
				}
				idx := lblk / span
				if d == 1 {
					return ptrs(b, idx, per)
				}
				ptr = uint64(le.Uint32(b[4*idx:]))
				lblk %= span
				span /= per
			}
		}
		lblk -= total
		span = total
	}
	return run{}, fmt.Errorf("inode %d: logical block beyond the triple-indirect map", in.ino)
}

// inlineData returns the content of an inline-data inode: i_block followed
// by the "system.data" extended attribute in the inode body.
func (fs *FS) inlineData(in *inode) ([]byte, error) {
	data := append([]byte(nil), in.iblock...)
	if v, ok := inodeXattr(in, 7, "data"); ok {
		data = append(data, v...)
	}
	if in.size > uint64(len(data)) {
		return nil, fmt.Errorf("inode %d: inline data of %d bytes, size %d", in.ino, len(data), in.size)
	}
	return data[:in.size], nil
}

// inodeXattr finds an extended attribute stored in the inode body.
func inodeXattr(in *inode, index byte, name string) ([]byte, bool) {
	le := binary.LittleEndian
	start := 128 + int(in.extraIsize)
	if len(in.raw) < start+4 || le.Uint32(in.raw[start:]) != 0xEA020000 {
		return nil, false
	}
	area := in.raw[start+4:]
	for off := 0; off+16 <= len(area); {
		e := area[off:]
		nameLen := int(e[0])
		if nameLen == 0 && e[1] == 0 && le.Uint32(e[0:]) == 0 {
			break
		}
		if off+16+nameLen > len(area) {
			break
		}
		if e[1] == index && string(e[16:16+nameLen]) == name {
			voff := int(le.Uint16(e[2:]))
			vsize := int(le.Uint32(e[8:]))
			if le.Uint32(e[4:]) != 0 || voff+vsize > len(area) || vsize < 0 {
				return nil, false
			}
			return area[voff : voff+vsize], true
		}
		off += (16 + nameLen + 3) &^ 3
	}
	return nil, false
}

// symlinkTarget reads the target of a symlink inode.
func (fs *FS) symlinkTarget(in *inode) (string, error) {
	if in.size > 65536 {
		return "", fmt.Errorf("symlink inode %d: target of %d bytes", in.ino, in.size)
	}
	if in.flags&inodeFlagInlineData != 0 {
		b, err := fs.inlineData(in)
		return string(b), err
	}
	eaBlocks := uint64(0)
	if in.fileACL != 0 {
		eaBlocks = fs.bs / 512
		if in.flags&inodeFlagHugeFile != 0 {
			eaBlocks = 1
		}
	}
	if in.size < inlineSize && in.flags&inodeFlagExtents == 0 && in.blocks <= eaBlocks {
		return string(in.iblock[:in.size]), nil
	}
	b := make([]byte, in.size)
	f := &file{fs: fs, in: in}
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("symlink inode %d: %w", in.ino, err)
	}
	return string(b), nil
}

// file is the content of a regular file (or a slow symlink or a
// directory, internally).
type file struct {
	fs     *FS
	in     *inode
	inline []byte // content of an inline-data inode
}

func (fs *FS) openInode(in *inode) (*file, error) {
	f := &file{fs: fs, in: in}
	if in.flags&inodeFlagInlineData != 0 {
		b, err := fs.inlineData(in)
		if err != nil {
			return nil, err
		}
		f.inline = b
	} else if in.flags&inodeFlagExtents == 0 && in.size > 0 && (in.size+fs.bs-1)/fs.bs > 12+fs.bs/4*(1+fs.bs/4*(1+fs.bs/4)) {
		return nil, fmt.Errorf("inode %d: size %d beyond what a block map can address", in.ino, in.size)
	}
	return f, nil
}

// Size implements fsys.File.
func (f *file) Size() int64 { return int64(f.in.size) }

// ReadAt implements io.ReaderAt; holes and unwritten extents read as zeros.
func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read inode %d: negative offset %d", f.in.ino, off)
	}
	size := f.in.size
	if uint64(off) >= size {
		return 0, io.EOF
	}
	want := len(p)
	if uint64(len(p)) > size-uint64(off) {
		p = p[:size-uint64(off)]
	}
	if f.inline != nil || f.in.flags&inodeFlagInlineData != 0 {
		n := copy(p, f.inline[off:])
		if n < want {
			return n, io.EOF
		}
		return n, nil
	}
	bs := f.fs.bs
	done := 0
	for done < len(p) {
		pos := uint64(off) + uint64(done)
		lblk := pos / bs
		r, err := f.fs.mapBlock(f.in, lblk)
		if err != nil {
			return done, fmt.Errorf("read inode %d at %d: %w", f.in.ino, pos, err)
		}
		inBlk := pos % bs
		avail := r.count*bs - inBlk
		if r.count > (1<<63)/bs {
			avail = 1 << 62
		}
		n := min(uint64(len(p)-done), avail)
		chunk := p[done : done+int(n)]
		if r.zero {
			clear(chunk)
		} else if _, err := f.fs.r.ReadAt(chunk, int64(r.pblk*bs+inBlk)); err != nil {
			return done, fmt.Errorf("read inode %d at %d: %w", f.in.ino, pos, err)
		}
		done += int(n)
	}
	if done < want {
		return done, io.EOF
	}
	return done, nil
}

// Open implements fsys.Filesystem: e.Ref is the inode number.
func (fs *FS) Open(e *fsys.Entry) (fsys.File, error) {
	if e.Ref == 0 || e.Ref > uint64(fs.sb.inodesCount) {
		return nil, fmt.Errorf("open %s: inode %d out of range", e.Path, e.Ref)
	}
	in, err := fs.inode(uint32(e.Ref))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", e.Path, err)
	}
	if in.typ() != fsys.TypeFile {
		return nil, fmt.Errorf("open %s: inode %d is a %s, not a regular file", e.Path, e.Ref, in.typ())
	}
	f, err := fs.openInode(in)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", e.Path, err)
	}
	return f, nil
}
