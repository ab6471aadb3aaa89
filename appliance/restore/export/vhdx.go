package export

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
)

// VHDX dynamic disk (no parent), 1 MiB payload blocks, 512-byte logical
// and 4096-byte physical sectors. Layout, every region 1 MiB aligned,
// written in this order:
//
//	0       file identifier; headers at 64 and 128 KiB; region tables at 192 and 256 KiB
//	1 MiB   log (1 MiB, empty: LogGuid is zero so there is nothing to replay)
//	2 MiB   metadata region (1 MiB): table, then the items from 64 KiB
//	3 MiB   BAT (rounded up to 1 MiB)
//	...     payload blocks of the non-zero blocks, disk order, 1 MiB each
//
// Block size: 1 MiB is the smallest VHDX allows and what Microsoft
// recommends for Linux guests; it keeps exports of scattered backups
// sparse (a 32 MiB block is stored whole for one written sector) at the
// cost of a larger BAT (8 bytes per MiB: 16 MiB for 2 TiB).
//
// With 1 MiB blocks and 512-byte logical sectors the chunk ratio is 4096:
// the BAT interleaves one sector bitmap entry after every 4096 payload
// entries. A disk without a parent has no sector bitmap blocks, so those
// entries are SB_BLOCK_NOT_PRESENT (0). Zero blocks are
// PAYLOAD_BLOCK_NOT_PRESENT (they read as zeros), the others FULLY_PRESENT.
const (
	vhdxMiB            = 1 << 20
	vhdxBlockSize      = 1 * vhdxMiB
	vhdxLogicalSector  = 512
	vhdxPhysicalSector = 4096
	vhdxChunkRatio     = (1 << 23) * vhdxLogicalSector / vhdxBlockSize
	vhdxLogOffset      = 1 * vhdxMiB
	vhdxLogLength      = 1 * vhdxMiB
	vhdxMetaOffset     = 2 * vhdxMiB
	vhdxMetaLength     = 1 * vhdxMiB
	vhdxBATOffset      = 3 * vhdxMiB
	vhdxFullyPresent   = 6
)

var (
	vhdxBATGuid        = guid("2DC27766-F623-4200-9D64-115E9BFD4A08")
	vhdxMetadataGuid   = guid("8B7CA206-4790-4B9A-B8FE-575F050F886E")
	vhdxFileParamsGuid = guid("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
	vhdxDiskSizeGuid   = guid("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
	vhdxPage83Guid     = guid("BECA12AB-B2E6-4523-93EF-C309E000C746")
	vhdxLogicalGuid    = guid("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
	vhdxPhysicalGuid   = guid("CDA348C7-445D-4471-9CC9-E9885251C556")
	crc32c             = crc32.MakeTable(crc32.Castagnoli)
)

// guid encodes a GUID the Microsoft way: the first three fields little
// endian, the last eight bytes as written.
func guid(s string) [16]byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 {
		panic("bad GUID " + s)
	}
	var g [16]byte
	g[0], g[1], g[2], g[3] = b[3], b[2], b[1], b[0]
	g[4], g[5] = b[5], b[4]
	g[6], g[7] = b[7], b[6]
	copy(g[8:], b[8:])
	return g
}

func randomGuid() [16]byte {
	var g [16]byte
	_, _ = rand.Read(g[:])
	g[7] = g[7]&0x0f | 0x40 // version 4 (Data3 is little endian)
	g[8] = g[8]&0x3f | 0x80
	return g
}

type vhdxLayout struct {
	vsize      int64
	blocks     []run // non-zero payload blocks
	nBlocks    int64 // payload blocks of the disk
	batEntries int64
	batLength  int64
}

func planVHDX(ctx context.Context, src Source) (*vhdxLayout, error) {
	clusters, err := nonZeroClusters(ctx, src)
	if err != nil {
		return nil, err
	}
	l := &vhdxLayout{vsize: virtualSize(src), blocks: coarsen(clusters, vhdxBlockSize/clusterSize)}
	l.nBlocks = ceilDiv(l.vsize, vhdxBlockSize)
	if l.nBlocks > 0 {
		l.batEntries = l.nBlocks + (l.nBlocks-1)/vhdxChunkRatio
	}
	l.batLength = max(vhdxMiB, roundUp(l.batEntries*8, vhdxMiB))
	return l, nil
}

func (l *vhdxLayout) dataOffset() int64 { return vhdxBATOffset + l.batLength }

func (l *vhdxLayout) size() int64 { return l.dataOffset() + count(l.blocks)*vhdxBlockSize }

func (l *vhdxLayout) header(seq uint64, fileWrite, dataWrite [16]byte) []byte {
	h := make([]byte, 4096)
	le := binary.LittleEndian
	copy(h[0:], "head")
	le.PutUint64(h[8:], seq)
	copy(h[16:], fileWrite[:])
	copy(h[32:], dataWrite[:])
	// LogGuid (48) zero: no log entries to replay.
	le.PutUint16(h[64:], 0) // LogVersion
	le.PutUint16(h[66:], 1) // Version
	le.PutUint32(h[68:], vhdxLogLength)
	le.PutUint64(h[72:], vhdxLogOffset)
	le.PutUint32(h[4:], crc32.Checksum(h, crc32c))
	return h
}

func (l *vhdxLayout) regionTable() []byte {
	t := make([]byte, 64<<10)
	le := binary.LittleEndian
	copy(t[0:], "regi")
	le.PutUint32(t[8:], 2) // EntryCount
	entry := func(i int, g [16]byte, off, length int64) {
		e := t[16+32*i:]
		copy(e, g[:])
		le.PutUint64(e[16:], uint64(off))
		le.PutUint32(e[24:], uint32(length))
		le.PutUint32(e[28:], 1) // Required
	}
	entry(0, vhdxBATGuid, vhdxBATOffset, l.batLength)
	entry(1, vhdxMetadataGuid, vhdxMetaOffset, vhdxMetaLength)
	le.PutUint32(t[4:], crc32.Checksum(t, crc32c))
	return t
}

func (l *vhdxLayout) metadata() []byte {
	m := make([]byte, vhdxMetaLength)
	le := binary.LittleEndian
	copy(m[0:], "metadata")
	const (
		isVirtualDisk = 1 << 1
		isRequired    = 1 << 2
	)
	type item struct {
		id    [16]byte
		data  []byte
		flags uint32
	}
	u32 := func(v uint32) []byte { return le.AppendUint32(nil, v) }
	page83 := randomGuid()
	items := []item{
		// BlockSize, then flags (LeaveBlocksAllocated 0, HasParent 0).
		{vhdxFileParamsGuid, append(u32(vhdxBlockSize), 0, 0, 0, 0), isRequired},
		{vhdxDiskSizeGuid, le.AppendUint64(nil, uint64(l.vsize)), isVirtualDisk | isRequired},
		{vhdxPage83Guid, page83[:], isVirtualDisk | isRequired},
		{vhdxLogicalGuid, u32(vhdxLogicalSector), isVirtualDisk | isRequired},
		{vhdxPhysicalGuid, u32(vhdxPhysicalSector), isVirtualDisk | isRequired},
	}
	le.PutUint16(m[10:], uint16(len(items)))
	off := 64 << 10
	for i, it := range items {
		e := m[32+32*i:]
		copy(e, it.id[:])
		le.PutUint32(e[16:], uint32(off))
		le.PutUint32(e[20:], uint32(len(it.data)))
		le.PutUint32(e[24:], it.flags)
		copy(m[off:], it.data)
		off += len(it.data)
	}
	return m
}

func (l *vhdxLayout) write(ctx context.Context, w io.Writer, src Source) error {
	// File identifier: signature and creator (UTF-16LE).
	id := make([]byte, 64<<10)
	copy(id, "vhdxfile")
	for i, c := range utf16.Encode([]rune("Coffer export")) {
		binary.LittleEndian.PutUint16(id[8+2*i:], c)
	}
	fileWrite, dataWrite := randomGuid(), randomGuid()
	rt := l.regionTable()
	pieces := [][]byte{
		id,
		l.header(1, fileWrite, dataWrite), zeros[:60<<10],
		l.header(2, fileWrite, dataWrite), zeros[:60<<10],
		rt, rt,
	}
	for _, p := range pieces {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	if err := writeZeros(w, vhdxLogOffset-5*(64<<10)+vhdxLogLength); err != nil {
		return err
	}
	if _, err := w.Write(l.metadata()); err != nil {
		return err
	}
	// BAT, written 1 MiB at a time.
	le := binary.LittleEndian
	bat := make([]byte, vhdxMiB)
	per := int64(len(bat) / 8)
	next := l.dataOffset()
	ri, rel := 0, int64(0)
	for base := int64(0); base < l.batLength/8; base += per {
		if err := ctx.Err(); err != nil {
			return err
		}
		clear(bat)
		for ri < len(l.blocks) {
			b := l.blocks[ri].start + rel
			e := b + b/vhdxChunkRatio // BAT index of payload block b
			if e >= base+per {
				break
			}
			le.PutUint64(bat[(e-base)*8:], uint64(next)|vhdxFullyPresent)
			next += vhdxBlockSize
			if rel++; rel == l.blocks[ri].n {
				ri, rel = ri+1, 0
			}
		}
		if _, err := w.Write(bat); err != nil {
			return err
		}
	}
	return forEachUnit(ctx, src, l.blocks, vhdxBlockSize, func(_ int64, b []byte) error {
		_, err := w.Write(b)
		return err
	})
}
