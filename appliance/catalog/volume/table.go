package volume

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"
)

// gptSectorSizes are the logical sector sizes GPT is looked for with.
var gptSectorSizes = []int64{512, 4096}

const (
	maxGPTEntries   = 4096
	maxGPTEntrySize = 1024
	maxLogicals     = 256
	mbrSectorSize   = 512
)

// partitions returns the partitions of disk (or the whole disk as one
// volume), reporting damage as warnings.
func (d *discoverer) partitions(disk Disk) []Volume {
	if disk.R == nil || disk.Size < mbrSectorSize {
		d.warnf("cannot read partition table of disk %s: disk is %d bytes", disk.Name, disk.Size)
		return nil
	}
	headLen := int64(2 * 4096)
	if disk.Size < headLen {
		headLen = disk.Size
	}
	head := make([]byte, headLen)
	if err := readFull(disk.R, head, 0); err != nil {
		d.warnf("cannot read partition table of disk %s: %v", disk.Name, err)
		return nil
	}
	mbrSig := head[510] == 0x55 && head[511] == 0xAA
	entries := parseMBREntries(head[:mbrSectorSize])
	protective := false
	if mbrSig {
		for _, e := range entries {
			if e.typ == 0xEE {
				protective = true
			}
		}
	}

	// Primary GPT.
	var primaryErr error
	primarySS := int64(0)
	var altLBA uint64
	for _, ss := range gptSectorSizes {
		if int64(len(head)) < 2*ss || !bytes.Equal(head[ss:ss+8], gptSignature) {
			continue
		}
		t, err := loadGPT(disk, ss, 1)
		if err == nil {
			return d.gptVolumes(disk, t)
		}
		if primaryErr == nil {
			primaryErr, primarySS = err, ss
			if h, herr := parseGPTHeader(head[ss : 2*ss]); herr == nil {
				altLBA = h.altLBA
			}
		}
	}

	// A plain MBR (no GPT signature, no protective entry) is used as is.
	if primaryErr == nil && !protective && mbrSig {
		if v, ok := d.mbrVolumes(disk, head[:mbrSectorSize], entries); ok {
			return v
		}
		return d.wholeDisk(disk)
	}

	// Backup GPT at the end of the disk (or where the primary says).
	sizes := gptSectorSizes
	if primarySS != 0 {
		sizes = []int64{primarySS}
	}
	var backupErr error
	for _, ss := range sizes {
		lbas := []uint64{uint64(disk.Size/ss) - 1}
		if altLBA != 0 && altLBA != lbas[0] && ss == primarySS {
			lbas = append([]uint64{altLBA}, lbas...)
		}
		for _, lba := range lbas {
			t, err := loadGPT(disk, ss, lba)
			if err != nil {
				if backupErr == nil {
					backupErr = err
				}
				continue
			}
			if primaryErr != nil {
				d.warnf("disk %s: primary GPT unusable (%v); using the backup GPT at sector %d", disk.Name, primaryErr, lba)
			} else {
				d.warnf("disk %s: no primary GPT found; using the backup GPT at sector %d", disk.Name, lba)
			}
			return d.gptVolumes(disk, t)
		}
	}
	if primaryErr != nil || protective {
		if primaryErr == nil {
			primaryErr = errors.New("protective MBR but no GPT header")
		}
		d.warnf("cannot read partition table of disk %s: primary GPT: %v; backup GPT: %v", disk.Name, primaryErr, backupErr)
		return nil
	}
	return d.wholeDisk(disk)
}

func (d *discoverer) wholeDisk(disk Disk) []Volume {
	return []Volume{{
		Disk:   disk.Name,
		Name:   "disk " + disk.Name,
		ID:     "whole",
		Scheme: SchemeNone,
		Offset: 0,
		Size:   disk.Size,
		R:      io.NewSectionReader(disk.R, 0, disk.Size),
	}}
}

// partVolume builds a partition volume of disk at [off, off+size) bytes,
// clipping it to the disk's end; ok is false when nothing is left.
func (d *discoverer) partVolume(disk Disk, scheme string, index int, off, size int64) (Volume, bool) {
	if off >= disk.Size {
		d.warnf("disk %s: partition %d starts at byte %d, beyond the disk's end (%d bytes); skipped", disk.Name, index, off, disk.Size)
		return Volume{}, false
	}
	if size > disk.Size-off {
		d.warnf("disk %s: partition %d ends at byte %d, beyond the disk's end (%d bytes); clipped", disk.Name, index, off+size, disk.Size)
		size = disk.Size - off
	}
	return Volume{
		Disk:   disk.Name,
		Name:   fmt.Sprintf("disk %s partition %d", disk.Name, index),
		ID:     fmt.Sprintf("p%d", index),
		Scheme: scheme,
		Index:  index,
		Offset: off,
		Size:   size,
		R:      io.NewSectionReader(disk.R, off, size),
	}, true
}

// ---- GPT ----

var gptSignature = []byte("EFI PART")

type gptHeader struct {
	myLBA, altLBA           uint64
	firstUsable, lastUsable uint64
	entriesLBA              uint64
	numEntries, entrySize   uint32
	entriesCRC              uint32
}

type gptTable struct {
	ss      int64
	entries []byte // numEntries*entrySize bytes, CRC checked
	hdr     gptHeader
}

// parseGPTHeader checks and decodes one GPT header sector.
func parseGPTHeader(sec []byte) (gptHeader, error) {
	var h gptHeader
	if len(sec) < 92 || !bytes.Equal(sec[:8], gptSignature) {
		return h, errors.New("no GPT signature")
	}
	le := binary.LittleEndian
	hsize := le.Uint32(sec[12:])
	if hsize < 92 || int(hsize) > len(sec) {
		return h, fmt.Errorf("header size %d invalid", hsize)
	}
	buf := make([]byte, hsize)
	copy(buf, sec[:hsize])
	want := le.Uint32(buf[16:])
	clear(buf[16:20])
	if got := crc32.ChecksumIEEE(buf); got != want {
		return h, fmt.Errorf("header CRC mismatch (stored %#08x, computed %#08x)", want, got)
	}
	h = gptHeader{
		myLBA:       le.Uint64(sec[24:]),
		altLBA:      le.Uint64(sec[32:]),
		firstUsable: le.Uint64(sec[40:]),
		lastUsable:  le.Uint64(sec[48:]),
		entriesLBA:  le.Uint64(sec[72:]),
		numEntries:  le.Uint32(sec[80:]),
		entrySize:   le.Uint32(sec[84:]),
		entriesCRC:  le.Uint32(sec[88:]),
	}
	if h.numEntries > maxGPTEntries {
		return h, fmt.Errorf("%d partition entries (at most %d supported)", h.numEntries, maxGPTEntries)
	}
	if h.entrySize < 128 || h.entrySize > maxGPTEntrySize || h.entrySize%8 != 0 {
		return h, fmt.Errorf("partition entry size %d invalid", h.entrySize)
	}
	return h, nil
}

// loadGPT reads and checks the GPT header at sector lba and its entry
// array.
func loadGPT(disk Disk, ss int64, lba uint64) (*gptTable, error) {
	off, ok := mulBytes(lba, uint64(ss))
	if !ok || off > disk.Size-ss {
		return nil, fmt.Errorf("header sector %d is beyond the disk's end", lba)
	}
	sec := make([]byte, ss)
	if err := readFull(disk.R, sec, off); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	h, err := parseGPTHeader(sec)
	if err != nil {
		return nil, err
	}
	if h.myLBA != lba {
		return nil, fmt.Errorf("header at sector %d says it is at sector %d", lba, h.myLBA)
	}
	arrLen := int64(h.numEntries) * int64(h.entrySize)
	arrOff, ok := mulBytes(h.entriesLBA, uint64(ss))
	if !ok || h.entriesLBA == 0 || arrOff > disk.Size-arrLen {
		return nil, fmt.Errorf("partition entry array at sector %d (%d bytes) is beyond the disk's end", h.entriesLBA, arrLen)
	}
	arr := make([]byte, arrLen)
	if err := readFull(disk.R, arr, arrOff); err != nil {
		return nil, fmt.Errorf("read partition entry array: %w", err)
	}
	if got := crc32.ChecksumIEEE(arr); got != h.entriesCRC {
		return nil, fmt.Errorf("partition entry array CRC mismatch (stored %#08x, computed %#08x)", h.entriesCRC, got)
	}
	return &gptTable{ss: ss, entries: arr, hdr: h}, nil
}

func (d *discoverer) gptVolumes(disk Disk, t *gptTable) []Volume {
	var vols []Volume
	le := binary.LittleEndian
	es := int(t.hdr.entrySize)
	for i := 0; i < int(t.hdr.numEntries); i++ {
		e := t.entries[i*es : (i+1)*es]
		if allZero(e[:16]) {
			continue
		}
		index := i + 1
		first, last := le.Uint64(e[32:]), le.Uint64(e[40:])
		if last < first {
			d.warnf("disk %s: GPT partition %d ends (sector %d) before it starts (sector %d); skipped", disk.Name, index, last, first)
			continue
		}
		off, ok1 := mulBytes(first, uint64(t.ss))
		size, ok2 := mulBytes(last-first+1, uint64(t.ss))
		if !ok1 || !ok2 {
			d.warnf("disk %s: GPT partition %d at sectors %d-%d is out of range; skipped", disk.Name, index, first, last)
			continue
		}
		v, ok := d.partVolume(disk, SchemeGPT, index, off, size)
		if !ok {
			continue
		}
		v.TypeGUID = formatGUID(e[:16])
		v.TypeName = gptTypeNames[v.TypeGUID]
		v.PartName = decodeUTF16Name(e[56:min(len(e), 128)])
		vols = append(vols, v)
	}
	return vols
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// formatGUID formats a GUID stored in the mixed-endian GPT layout.
func formatGUID(b []byte) string {
	le := binary.LittleEndian
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", le.Uint32(b[0:]), le.Uint16(b[4:]), le.Uint16(b[6:]), b[8:10], b[10:16])
}

func decodeUTF16Name(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// ---- MBR ----

type mbrEntry struct {
	boot, typ    byte
	start, count uint32
}

func (e mbrEntry) empty() bool { return e.typ == 0 || e.count == 0 }

func isExtended(t byte) bool { return t == 0x05 || t == 0x0F || t == 0x85 }

func parseMBREntries(sec []byte) [4]mbrEntry {
	var es [4]mbrEntry
	for i := range es {
		b := sec[446+16*i : 446+16*(i+1)]
		es[i] = mbrEntry{
			boot:  b[0],
			typ:   b[4],
			start: binary.LittleEndian.Uint32(b[8:]),
			count: binary.LittleEndian.Uint32(b[12:]),
		}
	}
	return es
}

// looksLikeBootSector reports whether sec is the boot sector of a FAT,
// exFAT or NTFS filesystem (which also ends in 55 AA) rather than an MBR.
func looksLikeBootSector(sec []byte) bool {
	switch string(sec[3:11]) {
	case "NTFS    ", "EXFAT   ":
		return true
	}
	if sec[0] != 0xEB && sec[0] != 0xE9 {
		return false
	}
	switch binary.LittleEndian.Uint16(sec[11:]) {
	case 512, 1024, 2048, 4096:
	default:
		return false
	}
	s54, s82 := string(sec[54:59]), string(sec[82:87])
	return s54 == "FAT12" || s54 == "FAT16" || s54 == "FAT  " || s82 == "FAT32"
}

// mbrVolumes returns the partitions of an MBR; ok is false when sector 0
// is not an MBR after all (a filesystem boot sector, invalid entries, or
// no partitions), and the caller treats the disk as a whole.
func (d *discoverer) mbrVolumes(disk Disk, sec []byte, entries [4]mbrEntry) ([]Volume, bool) {
	if looksLikeBootSector(sec) {
		return nil, false
	}
	used := 0
	for i, e := range entries {
		if e.boot != 0 && e.boot != 0x80 {
			d.warnf("disk %s: sector 0 has an MBR signature but entry %d has boot flag %#02x; treating the disk as unpartitioned", disk.Name, i+1, e.boot)
			return nil, false
		}
		if !e.empty() {
			if e.start == 0 {
				d.warnf("disk %s: sector 0 has an MBR signature but entry %d starts at sector 0; treating the disk as unpartitioned", disk.Name, i+1)
				return nil, false
			}
			used++
		}
	}
	if used == 0 {
		return nil, false
	}
	var vols []Volume
	next := 5
	for i, e := range entries {
		if e.empty() {
			continue
		}
		if isExtended(e.typ) {
			vols = append(vols, d.logicals(disk, uint64(e.start), &next)...)
			continue
		}
		if v, ok := d.mbrVolume(disk, i+1, uint64(e.start), e); ok {
			vols = append(vols, v)
		}
	}
	return vols, true
}

func (d *discoverer) mbrVolume(disk Disk, index int, startLBA uint64, e mbrEntry) (Volume, bool) {
	off, _ := mulBytes(startLBA, mbrSectorSize) // startLBA < 2^33: never overflows
	size, _ := mulBytes(uint64(e.count), mbrSectorSize)
	v, ok := d.partVolume(disk, SchemeMBR, index, off, size)
	if !ok {
		return v, false
	}
	v.TypeGUID = fmt.Sprintf("0x%02x", e.typ)
	v.TypeName = mbrTypeNames[e.typ]
	return v, true
}

// logicals follows the chain of extended boot records starting at sector
// ext, numbering the logical partitions from *next.
func (d *discoverer) logicals(disk Disk, ext uint64, next *int) []Volume {
	var vols []Volume
	seen := map[uint64]bool{}
	ebr := ext
	sec := make([]byte, mbrSectorSize)
	for step := 0; ; step++ {
		if step >= maxLogicals {
			d.warnf("disk %s: extended partition chain longer than %d records; stopped", disk.Name, maxLogicals)
			return vols
		}
		if seen[ebr] {
			d.warnf("disk %s: loop in the extended partition chain (sector %d seen twice); stopped", disk.Name, ebr)
			return vols
		}
		seen[ebr] = true
		off, _ := mulBytes(ebr, mbrSectorSize)
		if off > disk.Size-mbrSectorSize {
			d.warnf("disk %s: extended boot record at sector %d is beyond the disk's end; chain stopped", disk.Name, ebr)
			return vols
		}
		if err := readFull(disk.R, sec, off); err != nil {
			d.warnf("disk %s: read extended boot record at sector %d: %v; chain stopped", disk.Name, ebr, err)
			return vols
		}
		if sec[510] != 0x55 || sec[511] != 0xAA {
			d.warnf("disk %s: extended boot record at sector %d has no signature; chain stopped", disk.Name, ebr)
			return vols
		}
		var link *mbrEntry
		for _, e := range parseMBREntries(sec) {
			if e.empty() {
				continue
			}
			if isExtended(e.typ) {
				if link == nil {
					link = &e
				}
				continue
			}
			if v, ok := d.mbrVolume(disk, *next, ebr+uint64(e.start), e); ok {
				vols = append(vols, v)
			}
			*next++
		}
		if link == nil {
			return vols
		}
		ebr = ext + uint64(link.start)
	}
}
