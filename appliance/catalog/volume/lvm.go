package volume

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
	"strings"
)

const (
	lvmSector      = 512
	lvmLabelScan   = 4 // the label is in one of sectors 0-3
	lvmInitialCRC  = 0xf597a6cf
	mdaHeaderSize  = 512
	maxMetadataLen = 32 << 20
	maxMDAs        = 8
	maxStripes     = 128
	maxSegments    = 1 << 16
)

var (
	lvmLabelID   = []byte("LABELONE")
	lvmLabelType = []byte("LVM2 001")
	mdaMagic     = []byte(" LVM2 x[5A%r0N*>")
)

// lvmCRC is LVM2's checksum: the reflected CRC-32 polynomial with LVM's
// initial value and no final inversion.
func lvmCRC(p []byte) uint32 {
	return ^crc32.Update(^uint32(lvmInitialCRC), crc32.IEEETable, p)
}

// pvInfo is an LVM2 physical volume found on a partition or whole disk.
type pvInfo struct {
	disk  string
	where string // for messages: "disk X partition N"
	r     io.ReaderAt
	size  int64
	uuid  string // 32 characters, no dashes
	mdas  []diskArea
	metas []*vgMeta // valid metadata found in this PV's areas
}

type diskArea struct{ offset, size uint64 }

// probePV reads the LVM2 label of v, if any, and the VG metadata in the
// PV's metadata areas. It returns nil when v is not a PV.
func (d *discoverer) probePV(disk string, v Volume) *pvInfo {
	n := int64(lvmLabelScan * lvmSector)
	if v.Size < n {
		n = v.Size - v.Size%lvmSector
	}
	if n <= 0 {
		return nil
	}
	buf := make([]byte, n)
	if err := readFull(v.R, buf, 0); err != nil {
		if v.TypeName == TypeLinuxLVM {
			d.warnf("%s: read LVM label: %v", v.Name, err)
		}
		return nil
	}
	for i := int64(0); i < n/lvmSector; i++ {
		sec := buf[i*lvmSector : (i+1)*lvmSector]
		if !bytes.Equal(sec[:8], lvmLabelID) {
			continue
		}
		pv, err := parsePVLabel(sec, uint64(i))
		if err != nil {
			d.warnf("%s: LVM label in sector %d ignored: %v", v.Name, i, err)
			return nil
		}
		pv.disk, pv.where, pv.r, pv.size = disk, v.Name, v.R, v.Size
		d.readMetadata(pv)
		return pv
	}
	return nil
}

// parsePVLabel decodes the label header and PV header in sector sec.
func parsePVLabel(sec []byte, sector uint64) (*pvInfo, error) {
	le := binary.LittleEndian
	if got := le.Uint64(sec[8:]); got != sector {
		return nil, fmt.Errorf("label says it is in sector %d", got)
	}
	if want, got := le.Uint32(sec[16:]), lvmCRC(sec[20:]); want != got {
		return nil, fmt.Errorf("label checksum mismatch (stored %#08x, computed %#08x)", want, got)
	}
	if !bytes.Equal(sec[24:32], lvmLabelType) {
		return nil, fmt.Errorf("label type %q not supported", sec[24:32])
	}
	off := int(le.Uint32(sec[20:]))
	if off < 32 || off+32+8 > len(sec) {
		return nil, fmt.Errorf("PV header offset %d invalid", off)
	}
	ph := sec[off:]
	pv := &pvInfo{uuid: string(ph[:32])}
	p := ph[40:]
	// Two zero-terminated lists: data areas, then metadata areas.
	for list := 0; list < 2; list++ {
		for {
			if len(p) < 16 {
				return nil, errors.New("PV header area lists run past the label sector")
			}
			a := diskArea{le.Uint64(p), le.Uint64(p[8:])}
			p = p[16:]
			if a.offset == 0 && a.size == 0 {
				break
			}
			if list == 1 && len(pv.mdas) < maxMDAs {
				pv.mdas = append(pv.mdas, a)
			}
		}
	}
	return pv, nil
}

// readMetadata reads the committed metadata of each metadata area of pv.
func (d *discoverer) readMetadata(pv *pvInfo) {
	for i, a := range pv.mdas {
		m, err := readMDA(pv, a)
		if err != nil {
			d.warnf("%s: LVM metadata area %d: %v", pv.where, i+1, err)
			continue
		}
		if m != nil {
			pv.metas = append(pv.metas, m)
		}
	}
}

// readMDA returns the VG metadata in the area, or nil if it holds none.
func readMDA(pv *pvInfo, a diskArea) (*vgMeta, error) {
	if a.size < 2*mdaHeaderSize || a.offset > uint64(pv.size) || a.size > uint64(pv.size)-a.offset {
		return nil, fmt.Errorf("area at byte %d (%d bytes) does not fit the PV (%d bytes)", a.offset, a.size, pv.size)
	}
	h := make([]byte, mdaHeaderSize)
	if err := readFull(pv.r, h, int64(a.offset)); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	le := binary.LittleEndian
	if want, got := le.Uint32(h), lvmCRC(h[4:]); want != got {
		return nil, fmt.Errorf("header checksum mismatch (stored %#08x, computed %#08x)", want, got)
	}
	if !bytes.Equal(h[4:20], mdaMagic) {
		return nil, errors.New("bad header magic")
	}
	if v := le.Uint32(h[20:]); v != 1 {
		return nil, fmt.Errorf("header version %d not supported", v)
	}
	if s := le.Uint64(h[24:]); s != a.offset {
		return nil, fmt.Errorf("header says it starts at byte %d, not %d", s, a.offset)
	}
	// The first raw location is the committed metadata.
	off, size := le.Uint64(h[40:]), le.Uint64(h[48:])
	sum, flags := le.Uint32(h[56:]), le.Uint32(h[60:])
	if off == 0 && size == 0 {
		return nil, nil
	}
	if flags&1 != 0 { // RAW_LOCN_IGNORED
		return nil, nil
	}
	ring := a.size - mdaHeaderSize
	if off < mdaHeaderSize || off >= a.size || size > ring || size > maxMetadataLen || size == 0 {
		return nil, fmt.Errorf("metadata location %d (%d bytes) invalid", off, size)
	}
	text := make([]byte, size)
	first := min(size, a.size-off)
	if err := readFull(pv.r, text[:first], int64(a.offset+off)); err != nil {
		return nil, fmt.Errorf("read metadata: %w", err)
	}
	if first < size { // wrapped around the circular buffer
		if err := readFull(pv.r, text[first:], int64(a.offset+mdaHeaderSize)); err != nil {
			return nil, fmt.Errorf("read metadata: %w", err)
		}
	}
	if got := lvmCRC(text); got != sum {
		return nil, fmt.Errorf("metadata checksum mismatch (stored %#08x, computed %#08x)", sum, got)
	}
	text = bytes.TrimRight(text, "\x00")
	return parseVGMetadata(text)
}

// vgMeta is the part of a VG's metadata needed to map its LVs.
type vgMeta struct {
	name, id      string
	seqno         int64
	extentSectors int64
	pvs           map[string]pvMeta // by metadata name ("pv0")
	lvs           []lvMeta
}

type pvMeta struct {
	uuid             string // dashes removed
	peStart, peCount int64  // sectors, extents
}

type lvMeta struct {
	name    string
	visible bool
	segs    []segMeta
	err     error // the LV's description could not be used
}

type segMeta struct {
	start, count int64 // extents
	typ          string
	stripeSize   int64 // sectors
	stripes      []stripeRef
}

type stripeRef struct {
	pv     string
	extent int64
}

// parseVGMetadata extracts the VG description from metadata text.
func parseVGMetadata(text []byte) (*vgMeta, error) {
	root, err := parseConfig(text)
	if err != nil {
		return nil, err
	}
	var vg *cfgSection
	for _, s := range root.sections {
		if s.section("physical_volumes") != nil {
			vg = s
			break
		}
	}
	if vg == nil {
		return nil, errors.New("metadata describes no volume group")
	}
	m := &vgMeta{name: vg.name, pvs: map[string]pvMeta{}}
	if m.id, err = vg.str("id"); err != nil {
		return nil, err
	}
	if m.seqno, err = vg.num("seqno"); err != nil {
		return nil, err
	}
	if m.extentSectors, err = vg.num("extent_size"); err != nil {
		return nil, err
	}
	if m.extentSectors <= 0 || m.extentSectors > 1<<32 {
		return nil, fmt.Errorf("%s: extent size %d invalid", m.name, m.extentSectors)
	}
	for _, s := range vg.section("physical_volumes").sections {
		id, err := s.str("id")
		if err != nil {
			return nil, err
		}
		pm := pvMeta{uuid: strings.ReplaceAll(id, "-", "")}
		if pm.peStart, err = s.num("pe_start"); err != nil {
			return nil, err
		}
		if pm.peCount, err = s.num("pe_count"); err != nil {
			return nil, err
		}
		if pm.peStart < 0 || pm.peStart > maxOffset/lvmSector || pm.peCount < 0 || pm.peCount > maxOffset/lvmSector/m.extentSectors {
			return nil, fmt.Errorf("%s: %s: pe_start %d / pe_count %d invalid", m.name, s.name, pm.peStart, pm.peCount)
		}
		m.pvs[s.name] = pm
	}
	if lvs := vg.section("logical_volumes"); lvs != nil {
		for _, s := range lvs.sections {
			m.lvs = append(m.lvs, parseLVMeta(s))
		}
	}
	return m, nil
}

func parseLVMeta(s *cfgSection) lvMeta {
	lv := lvMeta{name: s.name}
	status, err := s.strings("status")
	if err != nil {
		lv.err = err
		return lv
	}
	for _, st := range status {
		if st == "VISIBLE" {
			lv.visible = true
		}
	}
	for _, ss := range s.sections {
		if !strings.HasPrefix(ss.name, "segment") {
			continue
		}
		if len(lv.segs) >= maxSegments {
			lv.err = fmt.Errorf("more than %d segments", maxSegments)
			return lv
		}
		seg, err := parseSegMeta(ss)
		if err != nil {
			lv.err = err
			return lv
		}
		lv.segs = append(lv.segs, seg)
	}
	return lv
}

func parseSegMeta(s *cfgSection) (segMeta, error) {
	var seg segMeta
	var err error
	if seg.start, err = s.num("start_extent"); err != nil {
		return seg, err
	}
	if seg.count, err = s.num("extent_count"); err != nil {
		return seg, err
	}
	if seg.typ, err = s.str("type"); err != nil {
		return seg, err
	}
	if seg.start < 0 || seg.count <= 0 || seg.start > maxOffset || seg.count > maxOffset {
		return seg, fmt.Errorf("%s: extents %d+%d invalid", s.name, seg.start, seg.count)
	}
	if seg.typ != "striped" && seg.typ != "linear" {
		return seg, nil // reported by the caller
	}
	n, err := s.num("stripe_count")
	if err != nil {
		return seg, err
	}
	if n < 1 || n > maxStripes || seg.count%n != 0 {
		return seg, fmt.Errorf("%s: stripe count %d invalid for %d extents", s.name, n, seg.count)
	}
	if n > 1 {
		if seg.stripeSize, err = s.num("stripe_size"); err != nil {
			return seg, err
		}
		if seg.stripeSize <= 0 || seg.stripeSize > 1<<32 {
			return seg, fmt.Errorf("%s: stripe size %d invalid", s.name, seg.stripeSize)
		}
	}
	v, ok := s.values["stripes"]
	if !ok || v.kind != cfgList || int64(len(v.list)) != 2*n {
		return seg, fmt.Errorf("%s: stripes list does not hold %d (PV, extent) pairs", s.name, n)
	}
	for i := 0; i < len(v.list); i += 2 {
		name, ext := v.list[i], v.list[i+1]
		if name.kind != cfgString || ext.kind != cfgNumber || ext.num < 0 || ext.num > maxOffset {
			return seg, fmt.Errorf("%s: stripe %d is not a (PV, extent) pair", s.name, i/2)
		}
		seg.stripes = append(seg.stripes, stripeRef{pv: name.str, extent: ext.num})
	}
	return seg, nil
}

// buildLVs picks the latest metadata of each VG found on pvs, maps its
// visible LVs onto the PVs and returns them keyed by the PV holding the
// LV's first extent.
func (d *discoverer) buildLVs(pvs []*pvInfo) map[*pvInfo][]Volume {
	out := map[*pvInfo][]Volume{}
	byUUID := map[string]*pvInfo{}
	dups := map[*pvInfo]bool{}
	for _, pv := range pvs {
		if other, dup := byUUID[pv.uuid]; dup {
			d.warnf("%s: LVM PV %s is a duplicate of %s; ignored", pv.where, pv.uuid, other.where)
			dups[pv] = true
			continue
		}
		byUUID[pv.uuid] = pv
	}
	var order []string
	best := map[string]*vgMeta{}
	for _, pv := range pvs {
		for _, m := range pv.metas {
			b, seen := best[m.id]
			if !seen {
				order = append(order, m.id)
			}
			if !seen || m.seqno > b.seqno {
				best[m.id] = m
			}
		}
	}
	claimed := map[*pvInfo]bool{}
	names := map[string]string{} // VG name -> id
	for _, id := range order {
		vg := best[id]
		if d.ctx.Err() != nil {
			return out
		}
		prefix := vg.name
		if other, dup := names[vg.name]; dup && other != id {
			prefix = vg.name + "@" + id
			d.warnf("two volume groups are named %s; the one with ID %s is reported as %s", vg.name, id, prefix)
		}
		names[vg.name] = id
		for _, pm := range vg.pvs {
			if pv := byUUID[pm.uuid]; pv != nil {
				claimed[pv] = true
			}
		}
		for _, lv := range vg.lvs {
			v, pv, warn, err := mapLV(vg, lv, byUUID)
			if warn != "" {
				d.warnf("%s/%s: %s", prefix, lv.name, warn)
			}
			if err != nil {
				d.warnf("%s/%s: %v", prefix, lv.name, err)
				continue
			}
			if pv == nil { // not visible
				continue
			}
			v.Name = prefix + "/" + lv.name
			v.ID = "lvm:" + v.Name
			out[pv] = append(out[pv], v)
		}
	}
	for _, pv := range pvs {
		if !claimed[pv] && !dups[pv] {
			d.warnf("%s: LVM PV %s belongs to no volume group found on the disks; skipped", pv.where, pv.uuid)
		}
	}
	return out
}

// mapLV builds the volume of one LV. It returns a nil PV and no error
// for LVs that are not visible (internal parts of other LVs).
func mapLV(vg *vgMeta, lv lvMeta, byUUID map[string]*pvInfo) (v Volume, firstPV *pvInfo, warn string, err error) {
	if lv.err != nil {
		return Volume{}, nil, "", lv.err
	}
	if !lv.visible {
		return Volume{}, nil, "", nil
	}
	for _, s := range lv.segs {
		if s.typ != "striped" && s.typ != "linear" {
			return Volume{}, nil, "", fmt.Errorf("segment type %s not supported", s.typ)
		}
	}
	if len(lv.segs) == 0 {
		return Volume{}, nil, "", errors.New("no segments")
	}
	segs := append([]segMeta(nil), lv.segs...)
	sort.Slice(segs, func(i, j int) bool { return segs[i].start < segs[j].start })
	extBytes := vg.extentSectors * lvmSector
	r := &lvReader{}
	var first *pvInfo
	next := int64(0)
	for _, s := range segs {
		if s.start != next {
			return Volume{}, nil, "", fmt.Errorf("segments do not cover extent %d", next)
		}
		length, ok := mulBytes(uint64(s.count), uint64(extBytes))
		if !ok || r.size > maxOffset-length {
			return Volume{}, nil, "", errors.New("size out of range")
		}
		ls := lvSeg{start: r.size, length: length, stripeSize: s.stripeSize * lvmSector}
		perStripe := s.count / int64(len(s.stripes))
		for _, st := range s.stripes {
			pm, ok := vg.pvs[st.pv]
			if !ok {
				return Volume{}, nil, "", fmt.Errorf("segment refers to unknown PV %s", st.pv)
			}
			pv := byUUID[pm.uuid]
			if pv == nil {
				return Volume{}, nil, "", fmt.Errorf("PV %s (%s) is missing from the disks of this point; skipped", st.pv, pm.uuid)
			}
			if st.extent > pm.peCount || perStripe > pm.peCount-st.extent {
				return Volume{}, nil, "", fmt.Errorf("extents %d+%d beyond the %d extents of PV %s", st.extent, perStripe, pm.peCount, st.pv)
			}
			off := pm.peStart*lvmSector + st.extent*extBytes // bounded by the peCount checks
			if end := off + perStripe*extBytes; end > pv.size && warn == "" {
				warn = fmt.Sprintf("extends to byte %d of %s, which has only %d bytes; reads beyond fail", end, pv.where, pv.size)
			}
			if first == nil {
				first = pv
			}
			ls.stripes = append(ls.stripes, lvStripe{r: pv.r, off: off})
		}
		r.segs = append(r.segs, ls)
		r.size += length
		next = s.start + s.count
	}
	return Volume{
		Disk:     first.disk,
		Scheme:   SchemeLVM,
		Offset:   -1,
		Size:     r.size,
		TypeName: TypeLVMLogicalVolume,
		R:        r,
	}, first, warn, nil
}

// lvReader reads an LV through its segments.
type lvReader struct {
	segs []lvSeg
	size int64
}

type lvSeg struct {
	start, length int64 // in the LV, bytes
	stripeSize    int64 // bytes; 0 for one stripe
	stripes       []lvStripe
}

type lvStripe struct {
	r   io.ReaderAt
	off int64 // of the segment's first byte on this stripe's PV
}

func (l *lvReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("lvm: negative offset")
	}
	if off >= l.size {
		return 0, io.EOF
	}
	var atEnd error
	if int64(len(p)) > l.size-off {
		p = p[:l.size-off]
		atEnd = io.EOF
	}
	n := 0
	for len(p) > 0 {
		i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].start+l.segs[i].length > off })
		s := &l.segs[i]
		rel := off - s.start
		var st lvStripe
		var pvOff, left int64
		if len(s.stripes) == 1 {
			st, pvOff, left = s.stripes[0], s.stripes[0].off+rel, s.length-rel
		} else {
			ns := int64(len(s.stripes))
			chunk, within := rel/s.stripeSize, rel%s.stripeSize
			st = s.stripes[chunk%ns]
			pvOff = st.off + (chunk/ns)*s.stripeSize + within
			left = min(s.stripeSize-within, s.length-rel)
		}
		k := int(min(int64(len(p)), left))
		m, err := st.r.ReadAt(p[:k], pvOff)
		n += m
		if m < k {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return n, fmt.Errorf("lvm: read %d bytes at PV offset %d: %w", k, pvOff, err)
		}
		p = p[k:]
		off += int64(k)
	}
	return n, atEnd
}
