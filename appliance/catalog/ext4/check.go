package ext4

import (
	"context"
	"encoding/binary"
	"fmt"
)

const (
	stateErrors       = 0x2
	maxSampleGroups   = 16
	sampleInodesGroup = 64
	maxFindings       = 100
)

// crc16 is the CRC-16 (polynomial 0x8005, reflected) of the gdt_csum
// feature, without final inversion.
func crc16(crc uint16, p []byte) uint16 {
	for _, b := range p {
		crc ^= uint16(b)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

// superblockChecksum computes the metadata_csum checksum of a superblock.
func superblockChecksum(raw []byte) uint32 { return crc32c(^uint32(0), raw[:0x3FC]) }

// groupDescChecksum computes the checksum a descriptor should hold, and
// whether the filesystem has descriptor checksums at all.
func (fs *FS) groupDescChecksum(g uint32, raw []byte) (uint16, bool) {
	var le [4]byte
	binary.LittleEndian.PutUint32(le[:], g)
	switch {
	case fs.sb.has(roCompatMetadataCsum):
		c := crc32c(fs.seed, le[:])
		c = crc32c(c, raw[:0x1E])
		c = crc32c(c, []byte{0, 0})
		c = crc32c(c, raw[0x20:])
		return uint16(c), true
	case fs.sb.has(roCompatGdtCsum):
		c := crc16(0xFFFF, fs.sb.uuid[:])
		c = crc16(c, le[:])
		c = crc16(c, raw[:0x1E])
		if len(raw) > 0x20 {
			c = crc16(c, raw[0x20:])
		}
		return c, true
	}
	return 0, false
}

// inodeChecksum computes the metadata_csum checksum of an on-disk inode.
func (fs *FS) inodeChecksum(ino uint32, raw []byte) (want, got uint32) {
	le := binary.LittleEndian
	var hdr [8]byte
	le.PutUint32(hdr[0:], ino)
	le.PutUint32(hdr[4:], le.Uint32(raw[0x64:]))
	b := append([]byte(nil), raw...)
	got = uint32(le.Uint16(raw[0x7C:]))
	b[0x7C], b[0x7D] = 0, 0
	hasHi := len(raw) > 128 && le.Uint16(raw[0x80:]) >= 4
	if hasHi {
		got |= uint32(le.Uint16(raw[0x82:])) << 16
		b[0x82], b[0x83] = 0, 0
	}
	c := crc32c(fs.seed, hdr[:])
	c = crc32c(c, b)
	if !hasHi {
		c &= 0xFFFF
	}
	return c, got
}

// Check implements fsys.Checker: superblock sanity and checksum, group
// descriptor checksums and locations, the first backup superblock against
// the primary, and the checksums of a sample of in-use inodes.
func (fs *FS) Check(ctx context.Context) ([]string, error) {
	var findings []string
	add := func(format string, args ...any) {
		if len(findings) < maxFindings {
			findings = append(findings, fmt.Sprintf(format, args...))
		}
	}
	sb := fs.sb
	csum := sb.has(roCompatMetadataCsum)
	if csum {
		if c := superblockChecksum(sb.raw); c != sb.checksum {
			add("primary superblock checksum %#08x, computed %#08x", sb.checksum, c)
		}
	}
	if sb.state&stateErrors != 0 {
		add("superblock records filesystem errors (fsck needed)")
	}
	if sb.inodesCount != uint32(min(uint64(^uint32(0)), uint64(len(fs.gds))*uint64(sb.inodesPerGroup))) {
		add("superblock inode count %d, %d groups of %d inodes", sb.inodesCount, len(fs.gds), sb.inodesPerGroup)
	}

	// Group descriptors.
	tableBlocks := (uint64(sb.inodesPerGroup)*uint64(sb.inodeSize) + fs.bs - 1) / fs.bs
	for g, gd := range fs.gds {
		if g%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return findings, err
			}
		}
		if want, ok := fs.groupDescChecksum(uint32(g), gd.raw); ok && want != gd.checksum {
			add("group %d descriptor checksum %#04x, computed %#04x", g, gd.checksum, want)
		}
		if gd.inodeTable < uint64(sb.firstDataBlock) || gd.inodeTable >= sb.blocksCount || sb.blocksCount-gd.inodeTable < tableBlocks {
			add("group %d inode table at block %d lies outside the filesystem", g, gd.inodeTable)
		}
	}

	// The first backup superblock.
	if g, ok := fs.firstBackup(); ok {
		fs.checkBackup(g, add)
	}
	// A sample of in-use inodes.
	if csum {
		ngroups := uint64(len(fs.gds))
		step := max(1, ngroups/maxSampleGroups)
		bad := 0
		for g := uint64(0); g < ngroups; g += step {
			if err := ctx.Err(); err != nil {
				return findings, err
			}
			gd := fs.gds[g]
			if gd.flags&bgInodeUninit != 0 {
				continue
			}
			used := uint64(sb.inodesPerGroup)
			if uint64(gd.itUnused) < used {
				used -= uint64(gd.itUnused)
			}
			for i := uint64(0); i < min(used, sampleInodesGroup); i++ {
				ino := uint32(g*uint64(sb.inodesPerGroup) + i + 1)
				if ino > sb.inodesCount {
					break
				}
				raw, err := fs.rawInode(ino)
				if err != nil {
					add("inode %d unreadable: %v", ino, err)
					break
				}
				le := binary.LittleEndian
				if le.Uint16(raw[0x00:]) == 0 && le.Uint16(raw[0x1A:]) == 0 {
					continue // never used or freed
				}
				if want, got := fs.inodeChecksum(ino, raw); want != got {
					bad++
					if bad <= 10 {
						add("inode %d checksum %#08x, computed %#08x", ino, got, want)
					}
				}
			}
		}
		if bad > 10 {
			add("%d sampled inodes have bad checksums in all", bad)
		}
	}
	return findings, nil
}

// firstBackup returns the first group after 0 holding a superblock copy.
func (fs *FS) firstBackup() (uint64, bool) {
	for g := uint64(1); g < uint64(len(fs.gds)); g++ {
		if fs.sb.groupHasSuper(g) {
			return g, true
		}
		if fs.sb.featureCompat&compatSparseSuper2 == 0 && g > 1 {
			break // without sparse_super2, group 1 always has one
		}
	}
	return 0, false
}

// checkBackup compares the backup superblock of group g with the primary.
func (fs *FS) checkBackup(g uint64, add func(string, ...any)) {
	sb := fs.sb
	csum := sb.has(roCompatMetadataCsum)
	off := (uint64(sb.firstDataBlock) + g*uint64(sb.blocksPerGroup)) * fs.bs
	b, err := fs.readAt(off, superblockSize)
	if err != nil {
		add("backup superblock in group %d unreadable: %v", g, err)
		return
	}
	add2 := func(what string) { add("backup superblock in group %d: %s differs from the primary", g, what) }
	bk, err := parseSuperblock(b)
	if err != nil {
		add("backup superblock in group %d: %v", g, err)
		return
	}
	switch {
	case bk.blocksCount != sb.blocksCount:
		add2("block count")
	case bk.inodesCount != sb.inodesCount:
		add2("inode count")
	case bk.logBlockSize != sb.logBlockSize:
		add2("block size")
	case bk.blocksPerGroup != sb.blocksPerGroup || bk.inodesPerGroup != sb.inodesPerGroup:
		add2("group geometry")
	case bk.uuid != sb.uuid:
		add2("UUID")
	case bk.inodeSize != sb.inodeSize || bk.descSize != sb.descSize:
		add2("inode or descriptor size")
	case bk.featureIncompat&^0x4 != sb.featureIncompat&^0x4:
		add2("incompatible feature set")
	}
	if csum && bk.has(roCompatMetadataCsum) {
		if c := superblockChecksum(b); c != bk.checksum {
			add("backup superblock in group %d checksum %#08x, computed %#08x", g, bk.checksum, c)
		}
	}
}
