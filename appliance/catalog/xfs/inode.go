package xfs

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Inode data fork formats.
const (
	fmtDev     = 0
	fmtLocal   = 1
	fmtExtents = 2
	fmtBtree   = 3
)

const (
	sIFMT   = 0o170000
	sIFSOCK = 0o140000
	sIFLNK  = 0o120000
	sIFREG  = 0o100000
	sIFBLK  = 0o060000
	sIFDIR  = 0o040000
	sIFCHR  = 0o020000
	sIFIFO  = 0o010000

	diflagRealtime = 0x1
	diflag2Bigtime = 1 << 3
	diflag2Nrext64 = 1 << 4

	inodeCRCOffset = 100

	// maxExtents bounds the extent map loaded for one file (24 bytes
	// each in memory).
	maxExtents = 1 << 22
	// maxBtreeLevels bounds the depth of a block map b-tree.
	maxBtreeLevels = 12
)

// inode is the part of an on-disk inode the reader uses.
type inode struct {
	ino      uint64
	mode     uint16
	format   uint8
	nlink    uint32
	uid, gid uint32
	size     uint64
	mtime    time.Time
	flags    uint16
	nextents uint64
	fork     []byte // the data fork's literal area
}

// inodeOffset returns the byte offset of inode ino on the volume.
func (fs *FS) inodeOffset(ino uint64) (int64, error) {
	sb := fs.sb
	agShift := uint(sb.agBlkLog) + uint(sb.inoPBLog)
	agno := ino >> agShift
	agino := ino & (1<<agShift - 1)
	agbno := agino >> sb.inoPBLog
	slot := agino & (1<<sb.inoPBLog - 1)
	if agno >= uint64(sb.agCount) || agbno >= uint64(sb.agBlocks) {
		return 0, fmt.Errorf("inode number %d outside the filesystem", ino)
	}
	blk := agno*uint64(sb.agBlocks) + agbno
	if blk >= sb.dblocks {
		return 0, fmt.Errorf("inode number %d outside the filesystem", ino)
	}
	return int64(blk)<<sb.blockLog + int64(slot)<<sb.inodeLog, nil
}

// readInode reads and checks inode ino.
func (fs *FS) readInode(ino uint64) (*inode, error) {
	off, err := fs.inodeOffset(ino)
	if err != nil {
		return nil, err
	}
	b := make([]byte, fs.sb.inodeSize)
	if err := fs.cache.read(b, off); err != nil {
		return nil, fmt.Errorf("read inode %d: %w", ino, err)
	}
	in, err := fs.parseInode(ino, b)
	if err != nil {
		return nil, fmt.Errorf("inode %d: %w", ino, err)
	}
	return in, nil
}

func (fs *FS) parseInode(ino uint64, b []byte) (*inode, error) {
	if len(b) < fs.inodeCore || string(b[0:2]) != "IN" {
		return nil, fmt.Errorf("bad inode magic")
	}
	version := b[4]
	if fs.crc {
		if version != 3 {
			return nil, fmt.Errorf("inode version %d on a v5 filesystem", version)
		}
		if !crcOK(b, inodeCRCOffset) {
			return nil, fmt.Errorf("inode CRC mismatch")
		}
		if got := be.Uint64(b[152:]); got != ino {
			return nil, fmt.Errorf("inode claims to be number %d", got)
		}
	} else if version != 1 && version != 2 {
		return nil, fmt.Errorf("inode version %d", version)
	}
	in := &inode{
		ino:    ino,
		mode:   be.Uint16(b[2:]),
		format: b[5],
		uid:    be.Uint32(b[8:]),
		gid:    be.Uint32(b[12:]),
		size:   be.Uint64(b[56:]),
		flags:  be.Uint16(b[90:]),
	}
	if version == 1 {
		in.nlink = uint32(be.Uint16(b[6:]))
	} else {
		in.nlink = be.Uint32(b[16:])
	}
	var flags2 uint64
	if version == 3 {
		flags2 = be.Uint64(b[120:])
	}
	in.mtime = fs.timestamp(b[40:48], flags2&diflag2Bigtime != 0)
	if flags2&diflag2Nrext64 != 0 {
		in.nextents = be.Uint64(b[24:])
	} else {
		in.nextents = uint64(be.Uint32(b[76:]))
	}
	if in.size > 1<<63-1 {
		return nil, fmt.Errorf("size %d out of range", in.size)
	}
	lit := b[fs.inodeCore:]
	if forkoff := int(b[82]) * 8; forkoff != 0 {
		if forkoff > len(lit) {
			return nil, fmt.Errorf("attribute fork offset %d beyond the inode", forkoff)
		}
		lit = lit[:forkoff]
	}
	in.fork = lit
	return in, nil
}

// timestamp decodes an inode timestamp: seconds and nanoseconds, or with
// bigtime nanoseconds since 1901-12-13T20:45:52Z.
func (fs *FS) timestamp(b []byte, big bool) time.Time {
	if big && fs.bigtime {
		ns := binary.BigEndian.Uint64(b)
		return time.Unix(int64(ns/1e9)-1<<31, int64(ns%1e9)).UTC()
	}
	sec := int32(be.Uint32(b))
	nsec := be.Uint32(b[4:])
	if nsec >= 1e9 {
		nsec = 0
	}
	return time.Unix(int64(sec), int64(nsec)).UTC()
}

// extent maps count filesystem blocks at file block off to fsb.
type extent struct {
	off, fsb, count uint64
	unwritten       bool
}

func parseExtent(b []byte) extent {
	l0 := be.Uint64(b)
	l1 := be.Uint64(b[8:])
	return extent{
		unwritten: l0>>63 != 0,
		off:       (l0 & (1<<63 - 1)) >> 9,
		fsb:       (l0&0x1ff)<<43 | l1>>21,
		count:     l1 & (1<<21 - 1),
	}
}

// extents returns the data fork's extent map, in file order.
func (fs *FS) extents(in *inode) ([]extent, error) {
	if in.nextents > maxExtents {
		return nil, fmt.Errorf("inode %d: %d extents, more than %d", in.ino, in.nextents, maxExtents)
	}
	var exts []extent
	switch in.format {
	case fmtExtents:
		if in.nextents*16 > uint64(len(in.fork)) {
			return nil, fmt.Errorf("inode %d: %d extents do not fit the inode", in.ino, in.nextents)
		}
		exts = make([]extent, 0, in.nextents)
		for i := uint64(0); i < in.nextents; i++ {
			exts = append(exts, parseExtent(in.fork[i*16:]))
		}
	case fmtBtree:
		var err error
		if exts, err = fs.btreeExtents(in); err != nil {
			return nil, fmt.Errorf("inode %d: block map b-tree: %w", in.ino, err)
		}
	default:
		return nil, fmt.Errorf("inode %d: data fork format %d has no extents", in.ino, in.format)
	}
	var next uint64
	for i, e := range exts {
		if e.count == 0 || e.off < next || e.off+e.count > (1<<63-1)>>fs.sb.blockLog {
			return nil, fmt.Errorf("inode %d: extent %d (file block %d, %d blocks) out of order", in.ino, i, e.off, e.count)
		}
		if _, err := fs.extentOffset(e.fsb, e.count); err != nil {
			return nil, fmt.Errorf("inode %d: extent %d: %w", in.ino, i, err)
		}
		next = e.off + e.count
	}
	return exts, nil
}

// btreeExtents walks a block map b-tree rooted in the inode.
func (fs *FS) btreeExtents(in *inode) ([]extent, error) {
	f := in.fork
	if len(f) < 4 {
		return nil, fmt.Errorf("root too small")
	}
	level := int(be.Uint16(f))
	numrecs := int(be.Uint16(f[2:]))
	maxrecs := (len(f) - 4) / 16
	if level == 0 || level > maxBtreeLevels || numrecs == 0 || numrecs > maxrecs {
		return nil, fmt.Errorf("bad root (level %d, %d records, room for %d)", level, numrecs, maxrecs)
	}
	exts := make([]extent, 0, min(in.nextents, 1<<16))
	ptrs := f[4+maxrecs*8:]
	for i := 0; i < numrecs; i++ {
		var err error
		if exts, err = fs.bmbtBlock(in, be.Uint64(ptrs[i*8:]), level-1, exts); err != nil {
			return nil, err
		}
	}
	if uint64(len(exts)) != in.nextents {
		return nil, fmt.Errorf("%d records, inode says %d extents", len(exts), in.nextents)
	}
	return exts, nil
}

func (fs *FS) bmbtBlock(in *inode, fsb uint64, level int, exts []extent) ([]extent, error) {
	off, err := fs.blockOffset(fsb)
	if err != nil {
		return nil, err
	}
	b := make([]byte, fs.sb.blockSize)
	if err := fs.cache.read(b, off); err != nil {
		return nil, fmt.Errorf("read block %d: %w", fsb, err)
	}
	hdr := 24
	magic := "BMAP"
	if fs.crc {
		hdr, magic = 72, "BMA3"
	}
	if string(b[:4]) != magic {
		return nil, fmt.Errorf("block %d: bad magic %q", fsb, b[:4])
	}
	if fs.crc {
		if !crcOK(b, 64) {
			return nil, fmt.Errorf("block %d: CRC mismatch", fsb)
		}
		if owner := be.Uint64(b[56:]); owner != in.ino {
			return nil, fmt.Errorf("block %d: owned by inode %d", fsb, owner)
		}
	}
	gotLevel := int(be.Uint16(b[4:]))
	numrecs := int(be.Uint16(b[6:]))
	maxrecs := (len(b) - hdr) / 16
	if gotLevel != level || numrecs == 0 || numrecs > maxrecs {
		return nil, fmt.Errorf("block %d: level %d (want %d), %d records", fsb, gotLevel, level, numrecs)
	}
	if level == 0 {
		if uint64(len(exts)+numrecs) > in.nextents {
			return nil, fmt.Errorf("more records than the inode's %d extents", in.nextents)
		}
		for i := 0; i < numrecs; i++ {
			exts = append(exts, parseExtent(b[hdr+i*16:]))
		}
		return exts, nil
	}
	ptrs := b[hdr+maxrecs*8:]
	for i := 0; i < numrecs; i++ {
		if exts, err = fs.bmbtBlock(in, be.Uint64(ptrs[i*8:]), level-1, exts); err != nil {
			return nil, err
		}
	}
	return exts, nil
}

// readMapped reads file blocks [blk, blk+len(p)/blocksize) of a fork
// with extent map exts into p; holes and unwritten extents read as zeros.
func (fs *FS) readMapped(exts []extent, p []byte, blk uint64) error {
	bs := uint64(fs.sb.blockSize)
	end := blk + uint64(len(p))/bs
	clear(p)
	i := searchExtent(exts, blk)
	for ; i < len(exts) && exts[i].off < end; i++ {
		e := exts[i]
		lo, hi := max(e.off, blk), min(e.off+e.count, end)
		if lo >= hi || e.unwritten {
			continue
		}
		off, err := fs.blockOffset(e.fsb + (lo - e.off))
		if err != nil {
			return err
		}
		if err := readFull(fs.r, p[(lo-blk)*bs:(hi-blk)*bs], off); err != nil {
			return err
		}
	}
	return nil
}

// searchExtent returns the index of the first extent that ends after
// file block blk.
func searchExtent(exts []extent, blk uint64) int {
	lo, hi := 0, len(exts)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if exts[m].off+exts[m].count <= blk {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}
