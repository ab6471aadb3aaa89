package xfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"

	"coffer.dev/coffer/appliance/catalog/fsys"
)

var be = binary.BigEndian

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Superblock feature bits that change how metadata is read.
const (
	versionNumMask = 0x000f
	version2Ftype  = 0x0200 // features2: ftype in dirents on v4

	incompatFtype      = 0x01
	incompatSpinodes   = 0x02
	incompatMetaUUID   = 0x04
	incompatBigtime    = 0x08
	incompatNeedRepair = 0x10
	incompatNrext64    = 0x20
	incompatExchRange  = 0x40
	incompatParent     = 0x80
	incompatKnown      = incompatFtype | incompatSpinodes | incompatMetaUUID | incompatBigtime |
		incompatNeedRepair | incompatNrext64 | incompatExchRange | incompatParent

	sbCRCOffset = 224
	sbSize      = 264 // the v5 superblock's fields
)

// superblock holds the fields of an XFS superblock that the reader uses.
type superblock struct {
	magic      [4]byte
	blockSize  uint32
	dblocks    uint64
	rblocks    uint64
	uuid       [16]byte
	rootIno    uint64
	agBlocks   uint32
	agCount    uint32
	versionNum uint16
	sectSize   uint16
	inodeSize  uint16
	inoPBlock  uint16
	fname      [12]byte
	blockLog   uint8
	sectLog    uint8
	inodeLog   uint8
	inoPBLog   uint8
	agBlkLog   uint8
	dirBlkLog  uint8
	features2  uint32
	incompat   uint32
	crc        uint32
	metaUUID   [16]byte
	inProgress uint8
	logStart   uint64
	logBlocks  uint32
}

func parseSuperblock(b []byte) (*superblock, error) {
	if len(b) < sbSize {
		return nil, fmt.Errorf("superblock: %d bytes, need %d", len(b), sbSize)
	}
	sb := &superblock{}
	copy(sb.magic[:], b[0:4])
	sb.blockSize = be.Uint32(b[4:])
	sb.dblocks = be.Uint64(b[8:])
	sb.rblocks = be.Uint64(b[16:])
	copy(sb.uuid[:], b[32:48])
	sb.logStart = be.Uint64(b[48:])
	sb.rootIno = be.Uint64(b[56:])
	sb.agBlocks = be.Uint32(b[84:])
	sb.agCount = be.Uint32(b[88:])
	sb.logBlocks = be.Uint32(b[96:])
	sb.versionNum = be.Uint16(b[100:])
	sb.sectSize = be.Uint16(b[102:])
	sb.inodeSize = be.Uint16(b[104:])
	sb.inoPBlock = be.Uint16(b[106:])
	copy(sb.fname[:], b[108:120])
	sb.blockLog = b[120]
	sb.sectLog = b[121]
	sb.inodeLog = b[122]
	sb.inoPBLog = b[123]
	sb.agBlkLog = b[124]
	sb.inProgress = b[126]
	sb.dirBlkLog = b[192]
	sb.features2 = be.Uint32(b[200:])
	sb.incompat = be.Uint32(b[216:])
	sb.crc = binary.LittleEndian.Uint32(b[sbCRCOffset:])
	copy(sb.metaUUID[:], b[248:264])
	return sb, nil
}

func (sb *superblock) version() int { return int(sb.versionNum & versionNumMask) }

// validate checks the geometry that every later computation relies on.
func (sb *superblock) validate() error {
	switch {
	case string(sb.magic[:]) != "XFSB":
		return fmt.Errorf("bad magic %q", sb.magic[:])
	case sb.version() != 4 && sb.version() != 5:
		return fmt.Errorf("unsupported version %d", sb.version())
	case sb.blockLog < 9 || sb.blockLog > 16 || sb.blockSize != 1<<sb.blockLog:
		return fmt.Errorf("bad block size %d (log %d)", sb.blockSize, sb.blockLog)
	case sb.sectLog < 9 || sb.sectLog > 15 || uint32(sb.sectSize) != 1<<sb.sectLog || uint32(sb.sectSize) > sb.blockSize:
		return fmt.Errorf("bad sector size %d (log %d)", sb.sectSize, sb.sectLog)
	case sb.inodeLog < 8 || sb.inodeLog > 11 || uint32(sb.inodeSize) != 1<<sb.inodeLog || uint32(sb.inodeSize) > sb.blockSize:
		return fmt.Errorf("bad inode size %d (log %d)", sb.inodeSize, sb.inodeLog)
	case sb.inoPBLog != sb.blockLog-sb.inodeLog || uint32(sb.inoPBlock) != 1<<sb.inoPBLog:
		return fmt.Errorf("bad inodes per block %d (log %d)", sb.inoPBlock, sb.inoPBLog)
	case sb.agBlocks < 16 || sb.agBlkLog > 31 || uint64(sb.agBlocks) > 1<<sb.agBlkLog || uint64(sb.agBlocks) <= 1<<sb.agBlkLog>>1:
		return fmt.Errorf("bad AG size %d blocks (log %d)", sb.agBlocks, sb.agBlkLog)
	case sb.agCount == 0 || sb.dblocks == 0 || sb.dblocks > uint64(sb.agCount)*uint64(sb.agBlocks) ||
		sb.dblocks <= uint64(sb.agCount-1)*uint64(sb.agBlocks):
		return fmt.Errorf("bad geometry: %d blocks in %d AGs of %d", sb.dblocks, sb.agCount, sb.agBlocks)
	case int(sb.blockLog)+int(sb.dirBlkLog) > 16:
		return fmt.Errorf("bad directory block log %d", sb.dirBlkLog)
	case int(sb.agBlkLog)+int(sb.inoPBLog) > 32:
		return fmt.Errorf("inode numbers too wide")
	}
	if sb.version() == 5 && sb.incompat&^incompatKnown != 0 {
		return fmt.Errorf("unsupported incompatible features %#x", sb.incompat&^incompatKnown)
	}
	return nil
}

// FS is a read-only XFS filesystem on a volume.
type FS struct {
	r     io.ReaderAt
	size  int64
	sb    *superblock
	cache *blockCache

	crc       bool // v5 metadata with CRCs and self-describing headers
	ftype     bool // dirents carry a file type byte
	bigtime   bool
	nrext64   bool
	dirBlk    int // directory block size in bytes
	inodeCore int // size of the inode core: 176 on v5, 100 on v4
}

var (
	_ fsys.Filesystem = (*FS)(nil)
	_ fsys.Checker    = (*FS)(nil)
)

// Open reads the primary superblock of the XFS filesystem on r (size
// bytes). It returns an error wrapping fsys.ErrNotRecognized when the
// volume does not start with an XFS superblock.
func Open(r io.ReaderAt, size int64) (*FS, error) {
	if size < 512 {
		return nil, fmt.Errorf("xfs: volume of %d bytes: %w", size, fsys.ErrNotRecognized)
	}
	hdr := make([]byte, min(size, 64<<10))
	if err := readFull(r, hdr[:512], 0); err != nil {
		return nil, fmt.Errorf("xfs: read superblock: %w", err)
	}
	if string(hdr[:4]) != "XFSB" {
		return nil, fmt.Errorf("xfs: no superblock magic: %w", fsys.ErrNotRecognized)
	}
	sb, err := parseSuperblock(hdr[:512])
	if err != nil {
		return nil, fmt.Errorf("xfs: %w", err)
	}
	if err := sb.validate(); err != nil {
		return nil, fmt.Errorf("xfs: primary superblock: %w", err)
	}
	if int64(sb.sectSize) > size {
		return nil, fmt.Errorf("xfs: volume of %d bytes is smaller than a sector", size)
	}
	sect := hdr[:sb.sectSize]
	if err := readFull(r, sect, 0); err != nil {
		return nil, fmt.Errorf("xfs: read superblock sector: %w", err)
	}
	fs := &FS{r: r, size: size, sb: sb, crc: sb.version() == 5}
	if fs.crc && !crcOK(sect, sbCRCOffset) {
		return nil, fmt.Errorf("xfs: primary superblock CRC mismatch")
	}
	if sb.rootIno == 0 {
		return nil, fmt.Errorf("xfs: superblock has no root inode")
	}
	// A volume cut short stays readable where the data lies inside it;
	// reads beyond its end fail with a clear error (Check reports it).
	fs.ftype = (fs.crc && sb.incompat&incompatFtype != 0) || (!fs.crc && sb.features2&version2Ftype != 0)
	fs.bigtime = fs.crc && sb.incompat&incompatBigtime != 0
	fs.nrext64 = fs.crc && sb.incompat&incompatNrext64 != 0
	fs.dirBlk = int(sb.blockSize) << sb.dirBlkLog
	fs.inodeCore = 100
	if fs.crc {
		fs.inodeCore = 176
	}
	fs.cache = newBlockCache(r, size, 1024) // 32 MiB
	return fs, nil
}

// crcOK verifies the CRC32c stored little-endian at off in b, computed
// over b with the field taken as zero.
func crcOK(b []byte, off int) bool {
	if off+4 > len(b) {
		return false
	}
	return binary.LittleEndian.Uint32(b[off:]) == crcOf(b, off)
}

func crcOf(b []byte, off int) uint32 {
	var zero [4]byte
	c := crc32.Update(0, castagnoli, b[:off])
	c = crc32.Update(c, castagnoli, zero[:])
	return crc32.Update(c, castagnoli, b[off+4:])
}

// Type returns "xfs".
func (fs *FS) Type() string { return "xfs" }

// Label returns the volume label (up to 12 bytes).
func (fs *FS) Label() string {
	l := fs.sb.fname[:]
	if i := bytes.IndexByte(l, 0); i >= 0 {
		l = l[:i]
	}
	return string(l)
}

// UUID returns the filesystem UUID as blkid prints it.
func (fs *FS) UUID() string { return formatUUID(fs.sb.uuid) }

func formatUUID(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// blockOffset is the byte offset on the volume of filesystem block fsb
// (AG number in the high bits, block in AG in the low agblklog bits).
func (fs *FS) blockOffset(fsb uint64) (int64, error) {
	agno := fsb >> fs.sb.agBlkLog
	agbno := fsb & (1<<fs.sb.agBlkLog - 1)
	if agno >= uint64(fs.sb.agCount) || agbno >= uint64(fs.sb.agBlocks) {
		return 0, fmt.Errorf("block %d (AG %d block %d) outside the filesystem", fsb, agno, agbno)
	}
	return int64(agno*uint64(fs.sb.agBlocks)+agbno) << fs.sb.blockLog, nil
}

// extentOffset checks that count blocks from fsb stay inside one AG and
// returns the byte offset of fsb.
func (fs *FS) extentOffset(fsb, count uint64) (int64, error) {
	off, err := fs.blockOffset(fsb)
	if err != nil {
		return 0, err
	}
	agbno := fsb & (1<<fs.sb.agBlkLog - 1)
	if count > uint64(fs.sb.agBlocks)-agbno {
		return 0, fmt.Errorf("extent of %d blocks at %d runs past its AG", count, fsb)
	}
	return off, nil
}
