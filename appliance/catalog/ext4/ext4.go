package ext4

import (
	"container/list"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"coffer.dev/coffer/appliance/catalog/fsys"
)

const (
	superblockOffset = 1024
	superblockSize   = 1024
	magic            = 0xEF53

	compatHasJournal   = 0x4
	compatSparseSuper2 = 0x200

	incompatCompression = 0x1
	incompatFiletype    = 0x2
	incompatJournalDev  = 0x8
	incompatMetaBG      = 0x10
	incompat64Bit       = 0x80
	incompatCsumSeed    = 0x2000
	incompatLargeDir    = 0x4000
	incompatInlineData  = 0x8000

	roCompatSparseSuper  = 0x1
	roCompatHugeFile     = 0x8
	roCompatGdtCsum      = 0x10
	roCompatMetadataCsum = 0x400

	rootIno = 2

	// inodeChunk is how much of an inode table one read fetches.
	inodeChunk = 64 << 10
	// cacheBudget bounds the metadata cache.
	cacheBudget = 32 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc32c is the raw CRC32-C update ext4 uses (no pre or post inversion).
func crc32c(crc uint32, p []byte) uint32 { return ^crc32.Update(^crc, castagnoli, p) }

// superblock holds the fields of the superblock this reader uses.
type superblock struct {
	raw             []byte
	inodesCount     uint32
	blocksCount     uint64
	firstDataBlock  uint32
	logBlockSize    uint32
	blocksPerGroup  uint32
	inodesPerGroup  uint32
	state           uint16
	revLevel        uint32
	inodeSize       uint16
	featureCompat   uint32
	featureIncompat uint32
	featureRoCompat uint32
	uuid            [16]byte
	label           string
	descSize        uint16
	firstMetaBG     uint32
	backupBGs       [2]uint32
	checksumSeed    uint32
	checksum        uint32
}

func parseSuperblock(b []byte) (*superblock, error) {
	le := binary.LittleEndian
	if len(b) < superblockSize || le.Uint16(b[0x38:]) != magic {
		return nil, fmt.Errorf("ext superblock magic absent: %w", fsys.ErrNotRecognized)
	}
	sb := &superblock{
		raw:             b,
		inodesCount:     le.Uint32(b[0x00:]),
		blocksCount:     uint64(le.Uint32(b[0x04:])),
		firstDataBlock:  le.Uint32(b[0x14:]),
		logBlockSize:    le.Uint32(b[0x18:]),
		blocksPerGroup:  le.Uint32(b[0x20:]),
		inodesPerGroup:  le.Uint32(b[0x28:]),
		state:           le.Uint16(b[0x3A:]),
		revLevel:        le.Uint32(b[0x4C:]),
		inodeSize:       128,
		featureCompat:   le.Uint32(b[0x5C:]),
		featureIncompat: le.Uint32(b[0x60:]),
		featureRoCompat: le.Uint32(b[0x64:]),
		descSize:        32,
		firstMetaBG:     le.Uint32(b[0x104:]),
		backupBGs:       [2]uint32{le.Uint32(b[0x24C:]), le.Uint32(b[0x250:])},
		checksumSeed:    le.Uint32(b[0x270:]),
		checksum:        le.Uint32(b[0x3FC:]),
	}
	if sb.revLevel == 0 {
		// Revision 0 has no feature fields.
		sb.featureCompat, sb.featureIncompat, sb.featureRoCompat = 0, 0, 0
	} else {
		sb.inodeSize = le.Uint16(b[0x58:])
	}
	copy(sb.uuid[:], b[0x68:0x78])
	label := b[0x78:0x88]
	for i, c := range label {
		if c == 0 {
			label = label[:i]
			break
		}
	}
	sb.label = string(label)
	if sb.featureIncompat&incompat64Bit != 0 {
		sb.blocksCount |= uint64(le.Uint32(b[0x150:])) << 32
		sb.descSize = le.Uint16(b[0xFE:])
	}
	if sb.featureIncompat&incompatJournalDev != 0 {
		return nil, fmt.Errorf("ext external journal device, not a filesystem: %w", fsys.ErrNotRecognized)
	}
	if sb.featureIncompat&incompatCompression != 0 {
		return nil, errors.New("ext superblock: compression feature is not supported")
	}
	if sb.logBlockSize > 6 {
		return nil, fmt.Errorf("ext superblock: block size 2^(10+%d) out of range", sb.logBlockSize)
	}
	bs := uint32(1024) << sb.logBlockSize
	switch {
	case sb.blocksPerGroup == 0 || sb.blocksPerGroup > 8*bs:
		return nil, fmt.Errorf("ext superblock: %d blocks per group with %d-byte blocks", sb.blocksPerGroup, bs)
	case sb.inodesPerGroup == 0 || sb.inodesPerGroup > 8*bs:
		return nil, fmt.Errorf("ext superblock: %d inodes per group with %d-byte blocks", sb.inodesPerGroup, bs)
	case sb.inodeSize < 128 || sb.inodeSize&(sb.inodeSize-1) != 0 || uint32(sb.inodeSize) > bs:
		return nil, fmt.Errorf("ext superblock: inode size %d", sb.inodeSize)
	case sb.descSize < 32 || sb.descSize&(sb.descSize-1) != 0 || uint32(sb.descSize) > bs ||
		(sb.featureIncompat&incompat64Bit != 0 && sb.descSize < 64):
		return nil, fmt.Errorf("ext superblock: group descriptor size %d", sb.descSize)
	case uint64(sb.firstDataBlock) >= sb.blocksCount:
		return nil, fmt.Errorf("ext superblock: first data block %d of %d", sb.firstDataBlock, sb.blocksCount)
	case sb.firstDataBlock != 0 && bs != 1024:
		return nil, fmt.Errorf("ext superblock: first data block %d with %d-byte blocks", sb.firstDataBlock, bs)
	}
	groups := (sb.blocksCount - uint64(sb.firstDataBlock) + uint64(sb.blocksPerGroup) - 1) / uint64(sb.blocksPerGroup)
	if uint64(sb.inodesCount) > groups*uint64(sb.inodesPerGroup) || sb.inodesCount < rootIno {
		return nil, fmt.Errorf("ext superblock: %d inodes in %d groups of %d", sb.inodesCount, groups, sb.inodesPerGroup)
	}
	return sb, nil
}

func (sb *superblock) blockSize() uint64 { return 1024 << sb.logBlockSize }

func (sb *superblock) groupCount() uint64 {
	return (sb.blocksCount - uint64(sb.firstDataBlock) + uint64(sb.blocksPerGroup) - 1) / uint64(sb.blocksPerGroup)
}

func (sb *superblock) has(roCompat uint32) bool { return sb.featureRoCompat&roCompat != 0 }

// groupHasSuper says whether group g holds a superblock copy.
func (sb *superblock) groupHasSuper(g uint64) bool {
	if g == 0 {
		return true
	}
	if sb.featureCompat&compatSparseSuper2 != 0 {
		return g == uint64(sb.backupBGs[0]) || g == uint64(sb.backupBGs[1])
	}
	if !sb.has(roCompatSparseSuper) || g == 1 {
		return true
	}
	for _, base := range []uint64{3, 5, 7} {
		n := base
		for n < g {
			n *= base
		}
		if n == g {
			return true
		}
	}
	return false
}

// groupDesc is one block group descriptor.
type groupDesc struct {
	raw        []byte
	inodeTable uint64
	flags      uint16
	itUnused   uint32
	checksum   uint16
}

const (
	bgInodeUninit = 0x1
)

// FS is an open ext2/ext3/ext4 filesystem. It is safe for concurrent use.
type FS struct {
	r     io.ReaderAt
	size  int64
	sb    *superblock
	bs    uint64
	gds   []groupDesc
	seed  uint32 // metadata checksum seed
	cache *lru
}

// Open reads the superblock and group descriptors of the filesystem on r.
// It returns an error wrapping fsys.ErrNotRecognized when r holds no ext
// filesystem.
func Open(r io.ReaderAt, size int64) (*FS, error) {
	if size < superblockOffset+superblockSize {
		return nil, fmt.Errorf("volume of %d bytes too small for ext: %w", size, fsys.ErrNotRecognized)
	}
	b := make([]byte, superblockSize)
	if _, err := r.ReadAt(b, superblockOffset); err != nil {
		return nil, fmt.Errorf("read ext superblock: %w", err)
	}
	sb, err := parseSuperblock(b)
	if err != nil {
		return nil, err
	}
	fs := &FS{r: r, size: size, sb: sb, bs: sb.blockSize(), cache: newLRU(cacheBudget)}
	if fsBytes := sb.blocksCount * fs.bs; fsBytes/fs.bs != sb.blocksCount || fsBytes > uint64(size) {
		return nil, fmt.Errorf("ext filesystem of %d %d-byte blocks does not fit in a %d-byte volume (truncated image?)",
			sb.blocksCount, fs.bs, size)
	}
	if sb.featureIncompat&incompatCsumSeed != 0 {
		fs.seed = sb.checksumSeed
	} else {
		fs.seed = crc32c(^uint32(0), sb.uuid[:])
	}
	if err := fs.readGroupDescriptors(); err != nil {
		return nil, err
	}
	return fs, nil
}

// readGroupDescriptors loads the descriptor table: in one read when it is
// contiguous, block by block with meta_bg.
func (fs *FS) readGroupDescriptors() error {
	sb := fs.sb
	groups := sb.groupCount()
	ds := uint64(sb.descSize)
	perBlock := fs.bs / ds
	nblocks := (groups + perBlock - 1) / perBlock
	if nblocks > sb.blocksCount {
		return fmt.Errorf("ext group descriptors: %d groups need %d blocks of %d", groups, nblocks, sb.blocksCount)
	}
	first := uint64(sb.firstDataBlock) + 1
	contiguous := nblocks
	if sb.featureIncompat&incompatMetaBG != 0 && uint64(sb.firstMetaBG) < nblocks {
		contiguous = uint64(sb.firstMetaBG)
	}
	buf, err := fs.readAt(first*fs.bs, int(contiguous*fs.bs))
	if err != nil {
		return fmt.Errorf("read ext group descriptor table at block %d: %w", first, err)
	}
	for i := contiguous; i < nblocks; i++ {
		g := i * perBlock
		blk := uint64(sb.firstDataBlock) + g*uint64(sb.blocksPerGroup)
		if sb.groupHasSuper(g) {
			blk++
		}
		b, err := fs.readAt(blk*fs.bs, int(fs.bs))
		if err != nil {
			return fmt.Errorf("read ext group descriptor block %d (meta_bg): %w", blk, err)
		}
		buf = append(buf, b...)
	}
	le := binary.LittleEndian
	fs.gds = make([]groupDesc, groups)
	for g := range fs.gds {
		raw := buf[uint64(g)*ds : uint64(g+1)*ds]
		gd := groupDesc{
			raw:        raw,
			inodeTable: uint64(le.Uint32(raw[0x08:])),
			flags:      le.Uint16(raw[0x12:]),
			itUnused:   uint32(le.Uint16(raw[0x1C:])),
			checksum:   le.Uint16(raw[0x1E:]),
		}
		if ds >= 64 {
			gd.inodeTable |= uint64(le.Uint32(raw[0x28:])) << 32
			gd.itUnused |= uint32(le.Uint16(raw[0x32:])) << 16
		}
		fs.gds[g] = gd
	}
	return nil
}

// readAt reads n bytes at off, checking the range against the volume.
func (fs *FS) readAt(off uint64, n int) ([]byte, error) {
	if n < 0 || off > uint64(fs.size) || uint64(n) > uint64(fs.size)-off {
		return nil, fmt.Errorf("read %d bytes at %d: beyond the %d-byte volume: %w", n, off, fs.size, io.ErrUnexpectedEOF)
	}
	b := make([]byte, n)
	if _, err := fs.r.ReadAt(b, int64(off)); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read %d bytes at %d: %w", n, off, err)
	}
	return b, nil
}

// cachedAt is readAt through the metadata cache.
func (fs *FS) cachedAt(off uint64, n int) ([]byte, error) {
	if b := fs.cache.get(off, n); b != nil {
		return b, nil
	}
	b, err := fs.readAt(off, n)
	if err != nil {
		return nil, err
	}
	fs.cache.put(off, b)
	return b, nil
}

// block returns filesystem block blk through the cache.
func (fs *FS) block(blk uint64) ([]byte, error) {
	if blk >= fs.sb.blocksCount {
		return nil, fmt.Errorf("block %d beyond the filesystem's %d", blk, fs.sb.blocksCount)
	}
	return fs.cachedAt(blk*fs.bs, int(fs.bs))
}

// Type implements fsys.Filesystem.
func (fs *FS) Type() string { return "ext4" }

// Label implements fsys.Filesystem.
func (fs *FS) Label() string { return fs.sb.label }

// UUID implements fsys.Filesystem, formatted as blkid prints it.
func (fs *FS) UUID() string {
	u := fs.sb.uuid
	if u == [16]byte{} {
		return ""
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// lru is a byte-bounded least-recently-used cache of metadata reads,
// keyed by byte offset.
type lru struct {
	mu     sync.Mutex
	budget int
	used   int
	ll     *list.List
	m      map[uint64]*list.Element
}

type lruItem struct {
	key uint64
	val []byte
}

func newLRU(budget int) *lru {
	return &lru{budget: budget, ll: list.New(), m: map[uint64]*list.Element{}}
}

func (c *lru) get(key uint64, n int) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok {
		return nil
	}
	it := e.Value.(*lruItem)
	if len(it.val) != n {
		return nil
	}
	c.ll.MoveToFront(e)
	return it.val
}

func (c *lru) put(key uint64, val []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key]; ok {
		c.used -= len(e.Value.(*lruItem).val)
		c.ll.Remove(e)
		delete(c.m, key)
	}
	if len(val) > c.budget {
		return
	}
	c.m[key] = c.ll.PushFront(&lruItem{key, val})
	c.used += len(val)
	for c.used > c.budget {
		e := c.ll.Back()
		it := e.Value.(*lruItem)
		c.ll.Remove(e)
		delete(c.m, it.key)
		c.used -= len(it.val)
	}
}
