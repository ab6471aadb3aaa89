package export

import (
	"bytes"
	"compress/zlib"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// VMDK stream-optimized: a monolithic sparse extent (version 3) with the
// compressed-grains and markers flags and the descriptor embedded, which
// vSphere imports (OVF deploy, Content Library). Layout:
//
//	header (grain directory offset = GD_AT_END) | descriptor | padding to overhead
//	grain markers + zlib-compressed 64 KiB grains, non-zero grains only, disk order
//	per grain table holding a grain: GT marker + grain table (512 entries)
//	GD marker + grain directory (entry 0 for a grain table without grains)
//	footer marker + footer (the header with the real GD offset) | end-of-stream marker
//
// Grains are compressed whole (the last one padded with zeros).
const (
	vmdkSector       = 512
	vmdkGrainSectors = clusterSize / vmdkSector
	vmdkGTEntries    = 512
	vmdkDescSectors  = 2 // room reserved for the descriptor
	vmdkOverhead     = vmdkGrainSectors
	vmdkGDAtEnd      = math.MaxUint64
	vmdkMarkerEOS    = 0
	vmdkMarkerGT     = 1
	vmdkMarkerGD     = 2
	vmdkMarkerFooter = 3
	// vmdkLevel trades ratio for speed: exports are streamed while the
	// client waits and zlib's fastest level already shrinks typical disk
	// data well.
	vmdkLevel = zlib.BestSpeed
)

type vmdkWriter struct {
	w   io.Writer
	pos int64 // bytes written, a multiple of the sector once aligned
}

func (v *vmdkWriter) write(b []byte) error {
	n, err := v.w.Write(b)
	v.pos += int64(n)
	return err
}

// pad writes zeros up to the next sector boundary.
func (v *vmdkWriter) pad() error {
	if r := v.pos % vmdkSector; r != 0 {
		return v.write(zeros[:vmdkSector-r])
	}
	return nil
}

func (v *vmdkWriter) sector() int64 { return v.pos / vmdkSector }

// marker writes a metadata marker (val, size 0, type) padded to a sector.
func (v *vmdkWriter) marker(val uint64, typ uint32) error {
	m := make([]byte, vmdkSector)
	binary.LittleEndian.PutUint64(m[0:], val)
	binary.LittleEndian.PutUint32(m[12:], typ)
	return v.write(m)
}

func vmdkHeader(capacity uint64, gdOffset uint64) []byte {
	h := make([]byte, vmdkSector)
	le := binary.LittleEndian
	le.PutUint32(h[0:], 0x564d444b) // "KDMV"
	le.PutUint32(h[4:], 3)          // version
	// valid newline test | compressed grains | markers
	le.PutUint32(h[8:], 1|1<<16|1<<17)
	le.PutUint64(h[12:], capacity)
	le.PutUint64(h[20:], vmdkGrainSectors)
	le.PutUint64(h[28:], 1) // descriptorOffset
	le.PutUint64(h[36:], vmdkDescSectors)
	le.PutUint32(h[44:], vmdkGTEntries)
	le.PutUint64(h[48:], 0) // rgdOffset: no redundant directory
	le.PutUint64(h[56:], gdOffset)
	le.PutUint64(h[64:], vmdkOverhead)
	h[72] = 0 // uncleanShutdown
	h[73], h[74], h[75], h[76] = '\n', ' ', '\r', '\n'
	le.PutUint16(h[77:], 1) // compressAlgorithm: deflate
	return h
}

func vmdkDescriptor(capacity uint64) ([]byte, error) {
	var cid [4]byte
	_, _ = rand.Read(cid[:])
	cyl := min(capacity/(255*63), 65535)
	d := fmt.Sprintf(`# Disk DescriptorFile
version=1
CID=%08x
parentCID=ffffffff
createType="streamOptimized"

# Extent description
RW %d SPARSE "disk.vmdk"

# The Disk Data Base
#DDB

ddb.adapterType = "lsilogic"
ddb.geometry.cylinders = "%d"
ddb.geometry.heads = "255"
ddb.geometry.sectors = "63"
ddb.virtualHWVersion = "4"
`, binary.BigEndian.Uint32(cid[:]), capacity, cyl)
	if len(d) > vmdkDescSectors*vmdkSector {
		return nil, fmt.Errorf("vmdk descriptor is %d bytes, room for %d", len(d), vmdkDescSectors*vmdkSector)
	}
	b := make([]byte, vmdkDescSectors*vmdkSector)
	copy(b, d)
	return b, nil
}

func writeVMDK(ctx context.Context, w io.Writer, src Source) error {
	capacity := uint64(virtualSize(src) / vmdkSector)
	grains := ceilDiv(int64(capacity), vmdkGrainSectors)
	nGT := ceilDiv(grains, vmdkGTEntries)
	exts, err := dataExtents(ctx, src)
	if err != nil {
		return err
	}
	v := &vmdkWriter{w: w}
	desc, err := vmdkDescriptor(capacity)
	if err != nil {
		return err
	}
	if err := v.write(vmdkHeader(capacity, vmdkGDAtEnd)); err != nil {
		return err
	}
	if err := v.write(desc); err != nil {
		return err
	}
	if err := v.write(zeros[:(vmdkOverhead-1-vmdkDescSectors)*vmdkSector]); err != nil {
		return err
	}

	// Grains. gts holds the grain tables that have a grain.
	gts := map[int64][]uint32{}
	var cbuf bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&cbuf, vmdkLevel)
	hdr := make([]byte, 12)
	err = forEachUnit(ctx, src, unitsOf(exts, clusterSize), clusterSize, func(g int64, b []byte) error {
		if isZero(b) {
			return nil
		}
		cbuf.Reset()
		zw.Reset(&cbuf)
		if _, err := zw.Write(b); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		at := v.sector()
		if at > math.MaxUint32 {
			return fmt.Errorf("vmdk: image over 2 TiB of compressed data, grain offsets overflow")
		}
		binary.LittleEndian.PutUint64(hdr[0:], uint64(g*vmdkGrainSectors))
		binary.LittleEndian.PutUint32(hdr[8:], uint32(cbuf.Len()))
		if err := v.write(hdr); err != nil {
			return err
		}
		if err := v.write(cbuf.Bytes()); err != nil {
			return err
		}
		if err := v.pad(); err != nil {
			return err
		}
		t := gts[g/vmdkGTEntries]
		if t == nil {
			t = make([]uint32, vmdkGTEntries)
			gts[g/vmdkGTEntries] = t
		}
		t[g%vmdkGTEntries] = uint32(at)
		return nil
	})
	if err != nil {
		return err
	}

	// Grain tables, then the directory.
	le := binary.LittleEndian
	gd := make([]byte, roundUp(nGT*4, vmdkSector))
	gtBytes := make([]byte, vmdkGTEntries*4)
	for i := int64(0); i < nGT; i++ {
		t := gts[i]
		if t == nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := v.marker(uint64(len(gtBytes)/vmdkSector), vmdkMarkerGT); err != nil {
			return err
		}
		if v.sector() > math.MaxUint32 {
			return fmt.Errorf("vmdk: grain table offset overflows")
		}
		le.PutUint32(gd[i*4:], uint32(v.sector()))
		for j, e := range t {
			le.PutUint32(gtBytes[j*4:], e)
		}
		if err := v.write(gtBytes); err != nil {
			return err
		}
	}
	if err := v.marker(uint64(len(gd)/vmdkSector), vmdkMarkerGD); err != nil {
		return err
	}
	gdAt := uint64(v.sector())
	if err := v.write(gd); err != nil {
		return err
	}
	// Footer and end of stream.
	if err := v.marker(1, vmdkMarkerFooter); err != nil {
		return err
	}
	if err := v.write(vmdkHeader(capacity, gdAt)); err != nil {
		return err
	}
	return v.marker(0, vmdkMarkerEOS)
}
