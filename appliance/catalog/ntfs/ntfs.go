package ntfs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf16"

	"coffer.dev/coffer/appliance/catalog/fsys"
)

const (
	recMFT     = 0
	recMFTMirr = 1
	recVolume  = 3
	recRoot    = 5
	firstUser  = 24 // records below are system metadata

	attrStandardInfo = 0x10
	attrList         = 0x20
	attrFileName     = 0x30
	attrVolumeName   = 0x60
	attrData         = 0x80
	attrIndexRoot    = 0x90
	attrIndexAlloc   = 0xA0
	attrReparse      = 0xC0
	attrEnd          = 0xFFFFFFFF

	flagCompressed = 0x0001
	flagEncrypted  = 0x4000

	nsPOSIX = 0
	nsDOS   = 2

	mftChunk      = 256 << 10 // unit of MFT caching
	mftCacheLimit = 64        // chunks (16 MiB)
	maxRead       = 4 << 20
	maxAttrList   = 16 << 20
	maxIndexDepth = 64
)

// FS is an opened NTFS volume. It is safe for concurrent use.
type FS struct {
	r           io.ReaderAt
	size        int64
	bps         int64
	clusterSize int64
	clusters    int64
	recordSize  int64
	indexSize   int64 // default index record size from the boot sector
	mftLCN      int64
	mirrLCN     int64
	serial      uint64
	label       string
	mft         *stream // $MFT's $DATA

	mu    sync.Mutex
	cache map[int64][]byte
}

func le16(b []byte) uint16 { return binary.LittleEndian.Uint16(b) }
func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }
func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

func notNTFS(format string, a ...any) error {
	return fmt.Errorf("ntfs: %s: %w", fmt.Sprintf(format, a...), fsys.ErrNotRecognized)
}

// Open reads the boot sector and the $MFT of the volume in r (size bytes
// long). It returns an error wrapping fsys.ErrNotRecognized when the
// volume does not hold NTFS.
func Open(r io.ReaderAt, size int64) (*FS, error) {
	if size < 512 {
		return nil, notNTFS("volume of %d bytes", size)
	}
	b := make([]byte, 512)
	if _, err := r.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("ntfs: read boot sector: %w", err)
	}
	fs, err := parseBoot(b, size)
	if err != nil {
		return nil, err
	}
	fs.r = r
	fs.cache = map[int64][]byte{}
	// Bootstrap: the first records of the $MFT are contiguous at mftLCN.
	fs.mft = &stream{fs: fs, size: 16 * fs.recordSize, init: 16 * fs.recordSize,
		runs: []extent{{vcn: 0, n: (16*fs.recordSize + fs.clusterSize - 1) / fs.clusterSize, lcn: fs.mftLCN}}}
	rec0, err := fs.readRecordRaw(recMFT)
	if err != nil {
		return nil, fmt.Errorf("ntfs: read $MFT record: %w", err)
	}
	first, err := fs.parseRecord(recMFT, rec0)
	if err != nil {
		return nil, fmt.Errorf("ntfs: $MFT record: %w", err)
	}
	attrs, err := fs.allAttrs(recMFT, first)
	if err != nil {
		return nil, fmt.Errorf("ntfs: $MFT attributes: %w", err)
	}
	mft, err := fs.dataStream(attrs, attrData, "")
	if err != nil {
		return nil, fmt.Errorf("ntfs: $MFT data: %w", err)
	}
	if mft.res != nil {
		return nil, fmt.Errorf("ntfs: $MFT data is resident")
	}
	fs.mft = mft
	fs.cache = map[int64][]byte{}
	// The label is in $Volume's $VOLUME_NAME.
	vol, err := fs.record(recVolume)
	if err != nil {
		return nil, fmt.Errorf("ntfs: read $Volume: %w", err)
	}
	for _, a := range vol.attrs {
		if a.typ == attrVolumeName && !a.nonres {
			fs.label = decodeUTF16(a.value)
		}
	}
	return fs, nil
}

func parseBoot(b []byte, size int64) (*FS, error) {
	if string(b[3:11]) != "NTFS    " {
		return nil, notNTFS("no NTFS signature")
	}
	bps := int64(le16(b[11:]))
	switch bps {
	case 256, 512, 1024, 2048, 4096:
	default:
		return nil, notNTFS("bytes per sector %d", bps)
	}
	spc := int64(b[13])
	if spc > 0x80 {
		if 256-spc > 20 {
			return nil, notNTFS("sectors per cluster %#x", b[13])
		}
		spc = 1 << (256 - spc)
	}
	if spc == 0 || spc&(spc-1) != 0 {
		return nil, notNTFS("sectors per cluster %d", spc)
	}
	cs := bps * spc
	if cs > 2<<20 {
		return nil, notNTFS("cluster size %d", cs)
	}
	recSize := func(v byte) (int64, error) {
		s := int64(int8(v))
		if s < 0 {
			if -s > 24 {
				return 0, notNTFS("record size 2^%d", -s)
			}
			s = 1 << -s
		} else {
			s *= cs
		}
		if s < 256 || s > 1<<20 || s&(s-1) != 0 {
			return 0, notNTFS("record size %d", s)
		}
		return s, nil
	}
	rs, err := recSize(b[64])
	if err != nil {
		return nil, err
	}
	is, err := recSize(b[68])
	if err != nil {
		return nil, err
	}
	total := int64(le64(b[40:]))
	if total <= 0 || total > size/bps+1 {
		return nil, fmt.Errorf("ntfs: volume truncated or damaged: %d sectors of %d bytes, volume has %d bytes", total, bps, size)
	}
	fs := &FS{size: size, bps: bps, clusterSize: cs, clusters: total * bps / cs, recordSize: rs, indexSize: is,
		mftLCN: int64(le64(b[48:])), mirrLCN: int64(le64(b[56:])), serial: le64(b[72:])}
	if fs.mftLCN <= 0 || fs.mftLCN >= fs.clusters || fs.mirrLCN <= 0 || fs.mirrLCN >= fs.clusters {
		return nil, notNTFS("$MFT at cluster %d, $MFTMirr at %d of %d", fs.mftLCN, fs.mirrLCN, fs.clusters)
	}
	return fs, nil
}

// Type returns "ntfs".
func (fs *FS) Type() string { return "ntfs" }

// Label returns the volume label.
func (fs *FS) Label() string { return fs.label }

// UUID returns the volume serial number as blkid prints it.
func (fs *FS) UUID() string { return fmt.Sprintf("%016X", fs.serial) }

// fixup applies the update sequence array of a multi-sector record.
func fixup(b []byte, magic string) error {
	if len(b) < 48 || string(b[:4]) != magic {
		return fmt.Errorf("bad %s magic %q", magic, b[:min(4, len(b))])
	}
	off, n := int(le16(b[4:])), int(le16(b[6:]))
	if n < 1 || off+2*n > len(b) || (n-1)*512 > len(b) {
		return fmt.Errorf("bad update sequence array (offset %d, count %d)", off, n)
	}
	usn := b[off : off+2]
	for i := 1; i < n; i++ {
		p := i*512 - 2
		if b[p] != usn[0] || b[p+1] != usn[1] {
			return fmt.Errorf("update sequence mismatch in sector %d (torn write)", i-1)
		}
		b[p], b[p+1] = b[off+2*i], b[off+2*i+1]
	}
	return nil
}

// readRecordRaw returns MFT record n without fixups applied.
func (fs *FS) readRecordRaw(n uint64) ([]byte, error) {
	off := int64(n) * fs.recordSize
	if n > 1<<40 || off+fs.recordSize > fs.mft.size {
		return nil, fmt.Errorf("MFT record %d beyond the $MFT", n)
	}
	ci := off / mftChunk
	fs.mu.Lock()
	c, ok := fs.cache[ci]
	fs.mu.Unlock()
	if !ok {
		start := ci * mftChunk
		c = make([]byte, min(mftChunk, fs.mft.size-start))
		if _, err := fs.mft.ReadAt(c, start); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read MFT record %d: %w", n, err)
		}
		fs.mu.Lock()
		if len(fs.cache) >= mftCacheLimit {
			for k := range fs.cache {
				delete(fs.cache, k)
				break
			}
		}
		fs.cache[ci] = c
		fs.mu.Unlock()
	}
	k := off - ci*mftChunk
	if k+fs.recordSize > int64(len(c)) {
		return nil, fmt.Errorf("MFT record %d straddles a cache chunk", n)
	}
	return append([]byte(nil), c[k:k+fs.recordSize]...), nil
}

// attr is one parsed attribute.
type attr struct {
	typ    uint32
	name   string
	flags  uint16
	nonres bool
	value  []byte // resident
	// non-resident
	startVCN, lastVCN int64
	runs              []extent
	allocSize         int64
	dataSize          int64
	initSize          int64
	compUnit          int
}

// record is a parsed MFT record.
type record struct {
	num   uint64
	seq   uint16
	links uint16
	flags uint16
	base  uint64
	attrs []attr
}

func (fs *FS) parseRecord(n uint64, b []byte) (*record, error) {
	if err := fixup(b, "FILE"); err != nil {
		return nil, fmt.Errorf("MFT record %d: %w", n, err)
	}
	rec := &record{num: n, seq: le16(b[16:]), links: le16(b[18:]), flags: le16(b[22:]), base: le64(b[32:]) & (1<<48 - 1)}
	used := int(le32(b[24:]))
	if used > len(b) || used < 48 {
		used = len(b)
	}
	off := int(le16(b[20:]))
	for off+8 <= used {
		typ := le32(b[off:])
		if typ == attrEnd {
			break
		}
		l := int(le32(b[off+4:]))
		if l < 24 || off+l > used {
			return nil, fmt.Errorf("MFT record %d: attribute %#x at %d has length %d", n, typ, off, l)
		}
		a, err := parseAttr(b[off : off+l])
		if err != nil {
			return nil, fmt.Errorf("MFT record %d: attribute %#x: %w", n, typ, err)
		}
		rec.attrs = append(rec.attrs, a)
		off += l
	}
	return rec, nil
}

func parseAttr(b []byte) (attr, error) {
	a := attr{typ: le32(b), nonres: b[8] != 0, flags: le16(b[12:])}
	if nl, no := int(b[9]), int(le16(b[10:])); nl > 0 {
		if no+2*nl > len(b) {
			return a, fmt.Errorf("name beyond attribute")
		}
		a.name = decodeUTF16(b[no : no+2*nl])
	}
	if !a.nonres {
		vl, vo := int(le32(b[16:])), int(le16(b[20:]))
		if vo+vl > len(b) || vl < 0 {
			return a, fmt.Errorf("resident value (%d bytes at %d) beyond attribute", vl, vo)
		}
		a.value = b[vo : vo+vl]
		return a, nil
	}
	if len(b) < 64 {
		return a, fmt.Errorf("short non-resident header")
	}
	a.startVCN, a.lastVCN = int64(le64(b[16:])), int64(le64(b[24:]))
	ro := int(le16(b[32:]))
	a.compUnit = int(le16(b[34:]))
	a.allocSize, a.dataSize, a.initSize = int64(le64(b[40:])), int64(le64(b[48:])), int64(le64(b[56:]))
	if a.startVCN < 0 || a.dataSize < 0 || a.initSize < 0 || a.allocSize < 0 || a.initSize > a.dataSize && a.startVCN == 0 {
		return a, fmt.Errorf("bad non-resident sizes")
	}
	if ro > len(b) {
		return a, fmt.Errorf("runlist offset %d beyond attribute", ro)
	}
	runs, err := parseRuns(b[ro:], a.startVCN)
	if err != nil {
		return a, err
	}
	a.runs = runs
	return a, nil
}

// extent is a run of clusters; lcn < 0 is a hole.
type extent struct {
	vcn, n, lcn int64
}

// parseRuns decodes a mapping pairs array starting at vcn.
func parseRuns(b []byte, vcn int64) ([]extent, error) {
	var runs []extent
	var lcn int64
	for i := 0; i < len(b) && b[i] != 0; {
		ls, os := int(b[i]&0x0F), int(b[i]>>4)
		i++
		if ls == 0 || ls > 8 || os > 8 || i+ls+os > len(b) {
			return nil, fmt.Errorf("bad runlist header at %d", i-1)
		}
		var n int64
		for k := ls - 1; k >= 0; k-- {
			n = n<<8 | int64(b[i+k])
		}
		i += ls
		if n <= 0 || n > 1<<48 {
			return nil, fmt.Errorf("bad run length %d", n)
		}
		if os == 0 {
			runs = append(runs, extent{vcn: vcn, n: n, lcn: -1})
		} else {
			var d int64
			for k := os - 1; k >= 0; k-- {
				d = d<<8 | int64(b[i+k])
			}
			if b[i+os-1]&0x80 != 0 && os < 8 {
				d -= 1 << (8 * os)
			}
			i += os
			lcn += d
			if lcn < 0 {
				return nil, fmt.Errorf("negative cluster number %d", lcn)
			}
			runs = append(runs, extent{vcn: vcn, n: n, lcn: lcn})
		}
		vcn += n
		if vcn > 1<<48 {
			return nil, fmt.Errorf("runlist too long")
		}
	}
	return runs, nil
}

// record reads and parses MFT record n with all its attributes
// (attribute lists resolved).
func (fs *FS) record(n uint64) (*record, error) {
	b, err := fs.readRecordRaw(n)
	if err != nil {
		return nil, err
	}
	rec, err := fs.parseRecord(n, b)
	if err != nil {
		return nil, err
	}
	if rec.flags&0x01 == 0 {
		return nil, fmt.Errorf("MFT record %d is not in use", n)
	}
	if rec.base != 0 {
		return nil, fmt.Errorf("MFT record %d is an extension of record %d", n, rec.base)
	}
	rec.attrs, err = fs.allAttrs(n, rec)
	return rec, err
}

// allAttrs returns the attributes of a base record and, through its
// attribute list, of its extension records.
func (fs *FS) allAttrs(n uint64, rec *record) ([]attr, error) {
	var list *attr
	for i := range rec.attrs {
		if rec.attrs[i].typ == attrList {
			list = &rec.attrs[i]
		}
	}
	if list == nil {
		return rec.attrs, nil
	}
	val := list.value
	if list.nonres {
		if list.dataSize > maxAttrList {
			return nil, fmt.Errorf("attribute list of %d bytes", list.dataSize)
		}
		s := &stream{fs: fs, size: list.dataSize, init: list.initSize, runs: list.runs}
		val = make([]byte, list.dataSize)
		if _, err := s.ReadAt(val, 0); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read attribute list: %w", err)
		}
	}
	seen := map[uint64]bool{n: true}
	attrs := rec.attrs
	for off := 0; off+26 <= len(val); {
		l := int(le16(val[off+4:]))
		if l < 26 || off+l > len(val) {
			return nil, fmt.Errorf("attribute list entry at %d has length %d", off, l)
		}
		ref := le64(val[off+16:]) & (1<<48 - 1)
		off += l
		if seen[ref] {
			continue
		}
		seen[ref] = true
		b, err := fs.readRecordRaw(ref)
		if err != nil {
			return nil, err
		}
		ext, err := fs.parseRecord(ref, b)
		if err != nil {
			return nil, err
		}
		if ext.base != n {
			return nil, fmt.Errorf("extension record %d belongs to %d, not %d", ref, ext.base, n)
		}
		attrs = append(attrs, ext.attrs...)
	}
	return attrs, nil
}

// dataStream assembles the (possibly multi-piece) attribute typ/name.
func (fs *FS) dataStream(attrs []attr, typ uint32, name string) (*stream, error) {
	var pieces []*attr
	for i := range attrs {
		if attrs[i].typ == typ && attrs[i].name == name {
			pieces = append(pieces, &attrs[i])
		}
	}
	if len(pieces) == 0 {
		return nil, errNoAttr
	}
	if !pieces[0].nonres {
		return &stream{fs: fs, res: pieces[0].value, size: int64(len(pieces[0].value)), flags: pieces[0].flags}, nil
	}
	sort.Slice(pieces, func(i, j int) bool { return pieces[i].startVCN < pieces[j].startVCN })
	first := pieces[0]
	if first.startVCN != 0 {
		return nil, fmt.Errorf("attribute %#x has no piece at VCN 0", typ)
	}
	s := &stream{fs: fs, size: first.dataSize, init: first.initSize, flags: first.flags, compUnit: first.compUnit}
	var next int64
	for _, p := range pieces {
		if !p.nonres || p.startVCN != next {
			return nil, fmt.Errorf("attribute %#x pieces not contiguous at VCN %d", typ, next)
		}
		for _, r := range p.runs {
			if r.vcn+r.n > maxVCN/fs.clusterSize {
				return nil, fmt.Errorf("attribute %#x: run at VCN %d (+%d) too far", typ, r.vcn, r.n)
			}
			if r.lcn >= 0 && (r.lcn+r.n > fs.clusters || r.lcn+r.n < r.lcn) {
				return nil, fmt.Errorf("run at cluster %d (+%d) beyond the volume", r.lcn, r.n)
			}
			s.runs = append(s.runs, r)
			next = r.vcn + r.n
		}
	}
	if s.size > next*fs.clusterSize {
		return nil, fmt.Errorf("attribute %#x: %d bytes but runs cover %d", typ, s.size, next*fs.clusterSize)
	}
	return s, nil
}

var errNoAttr = errors.New("attribute not found")

// maxVCN bounds the byte size a runlist may map (2^62), so that VCN
// arithmetic cannot overflow.
const maxVCN = 1 << 62

// stream reads a resident or non-resident attribute value.
type stream struct {
	fs       *FS
	res      []byte
	runs     []extent
	size     int64
	init     int64
	flags    uint16
	compUnit int
}

func (s *stream) Size() int64 { return s.size }

func (s *stream) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("ntfs: read at negative offset %d", off)
	}
	if off >= s.size {
		return 0, io.EOF
	}
	if s.res != nil {
		n := copy(p, s.res[off:])
		if n < len(p) {
			return n, io.EOF
		}
		return n, nil
	}
	cs := s.fs.clusterSize
	n := 0
	for n < len(p) && off < s.size {
		want := min(int64(len(p)-n), s.size-off)
		if off >= s.init {
			clear(p[n : n+int(want)])
			n += int(want)
			off += want
			continue
		}
		want = min(want, s.init-off)
		vcn := off / cs
		i := sort.Search(len(s.runs), func(i int) bool { return s.runs[i].vcn+s.runs[i].n > vcn })
		if i == len(s.runs) || s.runs[i].vcn > vcn {
			return n, fmt.Errorf("ntfs: read at %d: no run maps cluster %d", off, vcn)
		}
		r := s.runs[i]
		inRun := off - r.vcn*cs
		k := min(r.n*cs-inRun, want, maxRead)
		if k <= 0 {
			return n, fmt.Errorf("ntfs: read at %d: bad run at VCN %d", off, r.vcn)
		}
		if r.lcn < 0 {
			clear(p[n : n+int(k)])
		} else if _, err := s.fs.r.ReadAt(p[n:n+int(k)], r.lcn*cs+inRun); err != nil {
			return n, fmt.Errorf("ntfs: read cluster %d: %w", r.lcn+inRun/cs, err)
		}
		n += int(k)
		off += k
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func decodeUTF16(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = le16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

// filetime converts a Windows FILETIME (100 ns since 1601) to UTC.
func filetime(v uint64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	const epochDiff = 116444736000000000 // 1601 → 1970 in 100 ns
	t := int64(v) - epochDiff
	return time.Unix(t/1e7, t%1e7*100).UTC()
}

// info is what a walk needs of a record.
type info struct {
	rec      *record
	dir      bool
	size     int64
	mtime    time.Time
	nlink    uint32
	fileAttr uint32
	target   string
	symlink  bool
}

func (fs *FS) info(n uint64) (*info, error) {
	rec, err := fs.record(n)
	if err != nil {
		return nil, err
	}
	in := &info{rec: rec, dir: rec.flags&0x02 != 0}
	names := 0
	for _, a := range rec.attrs {
		switch a.typ {
		case attrStandardInfo:
			if !a.nonres && len(a.value) >= 36 {
				in.mtime = filetime(le64(a.value[8:]))
				in.fileAttr = le32(a.value[32:])
			}
		case attrFileName:
			if !a.nonres && len(a.value) >= 66 && a.value[65] != nsDOS {
				names++
			}
		case attrData:
			if a.name == "" {
				if !a.nonres {
					in.size = int64(len(a.value))
				} else if a.startVCN == 0 {
					in.size = a.dataSize
				}
			}
		case attrReparse:
			if !a.nonres {
				in.target, in.symlink = parseReparse(a.value)
			}
		}
	}
	in.nlink = uint32(names)
	if in.nlink == 0 {
		in.nlink = uint32(rec.links)
	}
	// ntfs-3g (and Services for Unix) store symlinks as Interix system
	// files: "IntxLNK\x01" and the UTF-16 target.
	if !in.dir && !in.symlink && in.fileAttr&fileAttrSystem != 0 && in.size >= 10 && in.size <= maxInterix {
		if s, err := fs.dataStream(rec.attrs, attrData, ""); err == nil && s.flags&(flagCompressed|flagEncrypted) == 0 {
			b := make([]byte, in.size)
			if _, err := s.ReadAt(b, 0); err == nil && string(b[:8]) == interixLink && len(b)%2 == 0 {
				in.target, in.symlink = decodeUTF16(b[8:]), true
			}
		}
	}
	return in, nil
}

const (
	fileAttrSystem = 0x04
	interixLink    = "IntxLNK\x01"
	maxInterix     = 8 + 2*4096
)

// parseReparse decodes symbolic-link and junction reparse data.
func parseReparse(b []byte) (string, bool) {
	if len(b) < 16 {
		return "", false
	}
	tag := le32(b)
	var base int
	switch tag {
	case 0xA000000C: // symlink
		base = 20
	case 0xA0000003: // mount point
		base = 16
	default:
		return "", false
	}
	so, sl, po, pl := int(le16(b[8:])), int(le16(b[10:])), int(le16(b[12:])), int(le16(b[14:]))
	get := func(o, l int) string {
		if base+o+l > len(b) || l == 0 {
			return ""
		}
		return decodeUTF16(b[base+o : base+o+l])
	}
	t := get(po, pl)
	if t == "" {
		t = get(so, sl)
	}
	if t == "" {
		return "", false
	}
	return t, true
}

// indexEntry is one name in a directory index.
type indexEntry struct {
	ref  uint64 // record number
	seq  uint16
	name string
	ns   byte
}

// dirIndex lists the entries of directory rec in index (B+ tree) order.
func (fs *FS) dirIndex(ctx context.Context, rec *record) ([]indexEntry, error) {
	var root *attr
	for i := range rec.attrs {
		if a := &rec.attrs[i]; a.typ == attrIndexRoot && a.name == "$I30" && !a.nonres {
			root = a
		}
	}
	if root == nil {
		return nil, fmt.Errorf("directory without $I30 index root")
	}
	if len(root.value) < 32 {
		return nil, fmt.Errorf("short index root")
	}
	blockSize := int64(le32(root.value[8:]))
	if blockSize < 512 || blockSize > 1<<20 || blockSize&(blockSize-1) != 0 {
		return nil, fmt.Errorf("index block size %d", blockSize)
	}
	var alloc *stream
	w := &indexWalker{fs: fs, ctx: ctx, blockSize: blockSize, seen: map[int64]bool{}}
	if s, err := fs.dataStream(rec.attrs, attrIndexAlloc, "$I30"); err == nil {
		alloc = s
	} else if !errors.Is(err, errNoAttr) {
		return nil, fmt.Errorf("index allocation: %w", err)
	}
	w.alloc = alloc
	if blockSize >= fs.clusterSize {
		w.vcnSize = fs.clusterSize
	} else {
		w.vcnSize = 512
	}
	if err := w.node(root.value[16:], 0); err != nil {
		return nil, err
	}
	return w.out, nil
}

type indexWalker struct {
	fs        *FS
	ctx       context.Context
	alloc     *stream
	blockSize int64
	vcnSize   int64
	seen      map[int64]bool
	out       []indexEntry
}

// node walks the entries of an index node whose header is at h[0].
func (w *indexWalker) node(h []byte, depth int) error {
	if depth > maxIndexDepth {
		return fmt.Errorf("index deeper than %d levels", maxIndexDepth)
	}
	if len(h) < 16 {
		return fmt.Errorf("short index header")
	}
	start, end := int(le32(h)), int(le32(h[4:]))
	if end > len(h) || start < 16 || start > end {
		return fmt.Errorf("index header entries %d..%d of %d bytes", start, end, len(h))
	}
	for off := start; off+16 <= end; {
		e := h[off:end]
		l, kl, flags := int(le16(e[8:])), int(le16(e[10:])), le16(e[12:])
		if l < 16 || l > len(e) || 16+kl > l {
			return fmt.Errorf("index entry at %d has length %d, key %d", off, l, kl)
		}
		if flags&0x01 != 0 {
			if l < 24 {
				return fmt.Errorf("index entry at %d too short for a subnode", off)
			}
			if err := w.child(int64(le64(e[l-8:])), depth); err != nil {
				return err
			}
		}
		if flags&0x02 != 0 {
			break
		}
		if kl < 66 {
			return fmt.Errorf("index entry at %d: key of %d bytes", off, kl)
		}
		key := e[16 : 16+kl]
		nl := int(key[64])
		if 66+2*nl > kl {
			return fmt.Errorf("index entry at %d: name beyond key", off)
		}
		ref := le64(e)
		w.out = append(w.out, indexEntry{ref: ref & (1<<48 - 1), seq: uint16(ref >> 48),
			name: decodeUTF16(key[66 : 66+2*nl]), ns: key[65]})
		off += l
	}
	return nil
}

func (w *indexWalker) child(vcn int64, depth int) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if w.alloc == nil {
		return fmt.Errorf("index subnode %d without $INDEX_ALLOCATION", vcn)
	}
	if w.seen[vcn] {
		return fmt.Errorf("index block %d visited twice (cycle)", vcn)
	}
	w.seen[vcn] = true
	if vcn < 0 || vcn > w.alloc.size/w.vcnSize {
		return fmt.Errorf("index block %d beyond the index allocation", vcn)
	}
	off := vcn * w.vcnSize
	if off+w.blockSize > w.alloc.size {
		return fmt.Errorf("index block %d beyond the index allocation", vcn)
	}
	b := make([]byte, w.blockSize)
	if _, err := w.alloc.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read index block %d: %w", vcn, err)
	}
	if err := fixup(b, "INDX"); err != nil {
		return fmt.Errorf("index block %d: %w", vcn, err)
	}
	return w.node(b[24:], depth+1)
}

// Walk visits every entry depth-first, a directory before its contents,
// in index order. NTFS metadata files ($MFT, ..., $Extend) are not
// reported; DOS 8.3 aliases are dropped.
func (fs *FS) Walk(ctx context.Context, fn fsys.WalkFunc) error {
	in, err := fs.info(recRoot)
	if err != nil {
		return fmt.Errorf("ntfs: read root directory: %w", err)
	}
	root := &fsys.Entry{Path: "/", Type: fsys.TypeDir, MTime: in.mtime, Ref: recRoot, Nlink: 1}
	if err := fn(root); err != nil {
		if errors.Is(err, fsys.SkipDir) {
			return nil
		}
		return err
	}
	w := &walker{fs: fs, ctx: ctx, fn: fn, seen: map[uint64]bool{recRoot: true}, links: map[uint64]*info{}}
	return w.dir("/", in.rec)
}

type walker struct {
	fs    *FS
	ctx   context.Context
	fn    fsys.WalkFunc
	seen  map[uint64]bool
	links map[uint64]*info
}

const maxLinkCache = 4096

func (w *walker) dir(path string, rec *record) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	ents, err := w.fs.dirIndex(w.ctx, rec)
	if err != nil {
		return fmt.Errorf("ntfs: read directory %s: %w", path, err)
	}
	prefix := path
	if prefix != "/" {
		prefix += "/"
	}
	for i, ie := range ents {
		if ie.ns == nsDOS || ie.ref == rec.num || (rec.num == recRoot && ie.ref < firstUser) {
			continue
		}
		if i%256 == 255 {
			if err := w.ctx.Err(); err != nil {
				return err
			}
		}
		p := prefix + ie.name
		if ie.name == "" || ie.name == "." || ie.name == ".." || strings.ContainsAny(ie.name, "/\x00") {
			return fmt.Errorf("ntfs: directory %s: invalid name %q", path, ie.name)
		}
		in := w.links[ie.ref]
		if in == nil {
			if in, err = w.fs.info(ie.ref); err != nil {
				return fmt.Errorf("ntfs: %s: %w", p, err)
			}
			// Hard-linked records come back once per name; keep a
			// bounded number of them parsed.
			if in.nlink > 1 && !in.dir {
				if len(w.links) >= maxLinkCache {
					clear(w.links)
				}
				w.links[ie.ref] = in
			}
		}
		if ie.seq != 0 && in.rec.seq != ie.seq {
			return fmt.Errorf("ntfs: %s: index entry has sequence %d, record %d has %d (stale entry)", p, ie.seq, ie.ref, in.rec.seq)
		}
		e := &fsys.Entry{Path: p, Type: fsys.TypeFile, Size: in.size, MTime: in.mtime, Ref: ie.ref, Nlink: in.nlink}
		switch {
		case in.symlink:
			e.Type, e.Target, e.Size = fsys.TypeSymlink, in.target, int64(len(in.target))
		case in.dir:
			e.Type, e.Size = fsys.TypeDir, 0
		}
		err = w.fn(e)
		if err != nil && !errors.Is(err, fsys.SkipDir) {
			return err
		}
		if e.Type != fsys.TypeDir || err != nil {
			continue
		}
		if w.seen[ie.ref] {
			return fmt.Errorf("ntfs: directory %s: record %d already visited (cycle)", p, ie.ref)
		}
		w.seen[ie.ref] = true
		if err := w.dir(p, in.rec); err != nil {
			return err
		}
	}
	return nil
}

// Open returns the content (the unnamed $DATA stream) of the regular
// file e. Compressed and encrypted files are reported as errors.
func (fs *FS) Open(e *fsys.Entry) (fsys.File, error) {
	if e.Type != fsys.TypeFile {
		return nil, fmt.Errorf("ntfs: open %s: not a regular file", e.Path)
	}
	rec, err := fs.record(e.Ref)
	if err != nil {
		return nil, fmt.Errorf("ntfs: open %s: %w", e.Path, err)
	}
	s, err := fs.dataStream(rec.attrs, attrData, "")
	if err != nil {
		return nil, fmt.Errorf("ntfs: open %s: $DATA: %w", e.Path, err)
	}
	if s.flags&flagCompressed != 0 {
		return nil, fmt.Errorf("ntfs: open %s: NTFS-compressed file: %w", e.Path, errors.ErrUnsupported)
	}
	if s.flags&flagEncrypted != 0 {
		return nil, fmt.Errorf("ntfs: open %s: EFS-encrypted file: %w", e.Path, errors.ErrUnsupported)
	}
	return s, nil
}

// Check compares the $MFTMirr with the first records of the $MFT and
// the boot sector with its backup at the end of the volume.
func (fs *FS) Check(ctx context.Context) ([]string, error) {
	var findings []string
	mirr, err := fs.record(recMFTMirr)
	if err != nil {
		return nil, fmt.Errorf("ntfs: read $MFTMirr record: %w", err)
	}
	ms, err := fs.dataStream(mirr.attrs, attrData, "")
	if err != nil {
		return nil, fmt.Errorf("ntfs: $MFTMirr data: %w", err)
	}
	n := min(ms.size/fs.recordSize, 64)
	if n < 4 {
		findings = append(findings, fmt.Sprintf("$MFTMirr holds %d records, want at least 4", n))
	}
	if len(ms.runs) > 0 && ms.runs[0].lcn != fs.mirrLCN {
		findings = append(findings, fmt.Sprintf("$MFTMirr at cluster %d, boot sector says %d", ms.runs[0].lcn, fs.mirrLCN))
	}
	b := make([]byte, fs.recordSize)
	for i := int64(0); i < n; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if _, err := ms.ReadAt(b, i*fs.recordSize); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("ntfs: read $MFTMirr record %d: %w", i, err)
		}
		a, err := fs.readRecordRaw(uint64(i))
		if err != nil {
			return nil, fmt.Errorf("ntfs: %w", err)
		}
		if string(a) != string(b) {
			findings = append(findings, fmt.Sprintf("$MFTMirr record %d differs from $MFT", i))
		}
	}
	boot := make([]byte, fs.bps)
	backup := make([]byte, fs.bps)
	if _, err := fs.r.ReadAt(boot, 0); err != nil {
		return nil, fmt.Errorf("ntfs: read boot sector: %w", err)
	}
	// The backup boot sector is the last sector of the partition, just
	// after the sectors the boot sector counts.
	if bo := int64(le64(boot[40:])) * fs.bps; bo > 0 && bo+fs.bps <= fs.size {
		if _, err := fs.r.ReadAt(backup, bo); err != nil {
			return nil, fmt.Errorf("ntfs: read backup boot sector: %w", err)
		}
		if string(boot) != string(backup) {
			findings = append(findings, "backup boot sector differs from the boot sector")
		}
	}
	if boot[510] != 0x55 || boot[511] != 0xAA {
		findings = append(findings, "boot sector signature 0x55AA missing")
	}
	return findings, nil
}
