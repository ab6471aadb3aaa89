package xfs

import (
	"bytes"
	"fmt"
)

// leafOffset is where the leaf and free-index blocks of a directory
// begin (32 GiB into the directory): entries live below it.
const leafOffset = 32 << 30

// dirent is one name in a directory.
type dirent struct {
	name string
	ino  uint64
}

// readDir calls fn for each entry of directory in ("." and ".." left
// out), in the order the directory stores them, a data block at a time.
func (fs *FS) readDir(in *inode, fn func(d dirent) error) error {
	switch in.format {
	case fmtLocal:
		ents, err := fs.shortformDir(in)
		if err != nil {
			return err
		}
		for _, d := range ents {
			if err := fn(d); err != nil {
				return err
			}
		}
		return nil
	case fmtExtents, fmtBtree:
		return fs.blockDir(in, fn)
	}
	return fmt.Errorf("directory inode %d: data fork format %d", in.ino, in.format)
}

func (fs *FS) shortformDir(in *inode) ([]dirent, error) {
	if in.size > uint64(len(in.fork)) || in.size < 6 {
		return nil, fmt.Errorf("directory inode %d: short form size %d, fork %d bytes", in.ino, in.size, len(in.fork))
	}
	b := in.fork[:in.size]
	count, i8 := int(b[0]), b[1]
	inoSize, pos := 4, 6
	if i8 != 0 { // then every inode number takes 8 bytes
		inoSize, pos = 8, 10
	}
	if pos > len(b) {
		return nil, fmt.Errorf("directory inode %d: short form header truncated", in.ino)
	}
	ft := 0
	if fs.ftype {
		ft = 1
	}
	ents := make([]dirent, 0, count)
	for i := 0; i < count; i++ {
		if pos+3 > len(b) {
			return nil, fmt.Errorf("directory inode %d: short form entry %d truncated", in.ino, i)
		}
		n := int(b[pos])
		next := pos + 3 + n + ft + inoSize
		if n == 0 || next > len(b) {
			return nil, fmt.Errorf("directory inode %d: short form entry %d truncated", in.ino, i)
		}
		name := b[pos+3 : pos+3+n]
		ib := b[pos+3+n+ft : next]
		var ino uint64
		if inoSize == 8 {
			ino = be.Uint64(ib)
		} else {
			ino = uint64(be.Uint32(ib))
		}
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("directory inode %d: entry %d: %w", in.ino, i, err)
		}
		ents = append(ents, dirent{string(name), ino})
		pos = next
	}
	return ents, nil
}

func checkName(name []byte) error {
	if len(name) == 0 || bytes.IndexByte(name, '/') >= 0 || bytes.IndexByte(name, 0) >= 0 {
		return fmt.Errorf("invalid name %q", name)
	}
	return nil
}

// dirReadRun is how many bytes of consecutive directory blocks are read
// at once.
const dirReadRun = 64 << 10

func (fs *FS) blockDir(in *inode, fn func(d dirent) error) error {
	exts, err := fs.extents(in)
	if err != nil {
		return err
	}
	bs := uint64(fs.sb.blockSize)
	dblks := uint64(1) << fs.sb.dirBlkLog // fs blocks per directory block
	// The inode's size covers the data blocks only; the leaf and free
	// index blocks live above leafOffset.
	if in.size > leafOffset {
		return fmt.Errorf("directory inode %d: size %d beyond the data section", in.ino, in.size)
	}
	limit := (in.size + bs - 1) / bs
	perRun := max(uint64(dirReadRun)/uint64(fs.dirBlk), 1)
	buf := make([]byte, perRun*uint64(fs.dirBlk))
	var next uint64 // first directory block not yet read
	for _, e := range exts {
		if e.off >= limit {
			break
		}
		first := max(e.off/dblks, next)
		last := (min(e.off+e.count, limit) + dblks - 1) / dblks // exclusive
		for db := first; db < last; {
			n := min(last-db, perRun)
			p := buf[:n*uint64(fs.dirBlk)]
			if err := fs.readMapped(exts, p, db*dblks); err != nil {
				return fmt.Errorf("directory inode %d: read block %d: %w", in.ino, db, err)
			}
			for k := uint64(0); k < n; k++ {
				blk := p[k*uint64(fs.dirBlk) : (k+1)*uint64(fs.dirBlk)]
				if err := fs.dataBlock(in, db+k, blk, fn); err != nil {
					return err
				}
			}
			db += n
			next = db
		}
	}
	return nil
}

// dataBlock parses one directory data block (or the single block of a
// block-form directory).
func (fs *FS) dataBlock(in *inode, db uint64, b []byte, fn func(d dirent) error) error {
	hdr := 16
	blockMagic, dataMagic := "XD2B", "XD2D"
	if fs.crc {
		hdr, blockMagic, dataMagic = 64, "XDB3", "XDD3"
	}
	end := len(b)
	switch string(b[:4]) {
	case dataMagic:
	case blockMagic:
		// The leaf entries and a tail of (count, stale) end the block.
		count := uint64(be.Uint32(b[len(b)-8:]))
		if count*8+8 > uint64(len(b)-hdr) {
			return fmt.Errorf("directory inode %d: block %d: leaf count %d too large", in.ino, db, count)
		}
		end = len(b) - 8 - int(count)*8
	default:
		if db == 0 || string(b[:4]) != "\x00\x00\x00\x00" {
			return fmt.Errorf("directory inode %d: block %d: bad magic %q", in.ino, db, b[:4])
		}
		return nil // an unused (zeroed) data block
	}
	if fs.crc {
		if !crcOK(b, 4) {
			return fmt.Errorf("directory inode %d: block %d: CRC mismatch", in.ino, db)
		}
		if owner := be.Uint64(b[40:]); owner != in.ino {
			return fmt.Errorf("directory inode %d: block %d: owned by inode %d", in.ino, db, owner)
		}
	}
	ft := 0
	if fs.ftype {
		ft = 1
	}
	for pos := hdr; pos < end; {
		if pos+8 > end {
			return fmt.Errorf("directory inode %d: block %d: entry at %d truncated", in.ino, db, pos)
		}
		if be.Uint16(b[pos:]) == 0xffff { // unused space
			l := int(be.Uint16(b[pos+2:]))
			if l < 8 || l%8 != 0 || pos+l > end {
				return fmt.Errorf("directory inode %d: block %d: free space of %d bytes at %d", in.ino, db, l, pos)
			}
			pos += l
			continue
		}
		if pos+16 > end { // the smallest entry
			return fmt.Errorf("directory inode %d: block %d: entry at %d truncated", in.ino, db, pos)
		}
		ino := be.Uint64(b[pos:])
		n := int(b[pos+8])
		size := (8 + 1 + n + ft + 2 + 7) &^ 7
		if n == 0 || pos+size > end {
			return fmt.Errorf("directory inode %d: block %d: entry at %d overruns the block", in.ino, db, pos)
		}
		name := b[pos+9 : pos+9+n]
		pos += size
		if (n == 1 && name[0] == '.') || (n == 2 && name[0] == '.' && name[1] == '.') {
			continue
		}
		if err := checkName(name); err != nil {
			return fmt.Errorf("directory inode %d: block %d: %w", in.ino, db, err)
		}
		if err := fn(dirent{string(name), ino}); err != nil {
			return err
		}
	}
	return nil
}
