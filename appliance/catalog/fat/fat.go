package fat

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

	"golang.org/x/text/encoding/charmap"

	"coffer.dev/coffer/appliance/catalog/fsys"
)

const (
	dirEntrySize = 32
	// maxDirBytes bounds how much of one directory is read: the
	// specification allows 65536 entries (2 MiB); a little slack is
	// allowed for lenient writers.
	maxDirBytes = 8 << 20
	// fatChunk is the unit in which the FAT is read and cached.
	fatChunk = 64 << 10
	// fatCacheChunks bounds the FAT cache (16 MiB).
	fatCacheChunks = 256
	// maxRead bounds a single ReadAt on the source.
	maxRead = 4 << 20
)

// FS is an opened FAT volume. It is safe for concurrent use.
type FS struct {
	r    io.ReaderAt
	size int64

	boot        []byte // first sector
	bps         int64  // bytes per sector
	clusterSize int64
	numFATs     int64
	fatBytes    int64 // size of one FAT in bytes
	fatOff      int64 // offset of the first FAT
	rootOff     int64 // FAT12/16: offset of the fixed root directory
	rootBytes   int64 // FAT12/16: its size
	dataOff     int64 // offset of cluster 2
	clusters    uint32
	rootClus    uint32 // FAT32
	bits        int    // 12, 16 or 32
	media       byte
	label, uuid string

	mu    sync.Mutex
	cache map[int64][]byte
}

// Open reads the boot sector of the volume in r (size bytes long). It
// returns an error wrapping fsys.ErrNotRecognized when the volume does not
// hold a FAT filesystem.
func Open(r io.ReaderAt, size int64) (*FS, error) {
	if size < 512 {
		return nil, fmt.Errorf("fat: volume of %d bytes: %w", size, fsys.ErrNotRecognized)
	}
	b := make([]byte, 512)
	if _, err := r.ReadAt(b, 0); err != nil && !(errors.Is(err, io.EOF)) {
		return nil, fmt.Errorf("fat: read boot sector: %w", err)
	}
	fs, err := parseBoot(b, size)
	if err != nil {
		return nil, err
	}
	fs.r = r
	fs.cache = map[int64][]byte{}
	if fs.bps > 512 {
		fs.boot = make([]byte, fs.bps)
		if _, err := r.ReadAt(fs.boot, 0); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("fat: read boot sector: %w", err)
		}
	}
	// The volume label lives in the root directory; the boot sector's
	// copy is only a fallback (as blkid does it).
	ents, err := fs.readDir(fs.rootRef(), true)
	if err != nil {
		return nil, fmt.Errorf("fat: read root directory: %w", err)
	}
	for _, e := range ents {
		if e.attr&attrVolumeID != 0 {
			if e.name != "NO NAME" {
				fs.label = e.name
			}
			break
		}
	}
	return fs, nil
}

func le16(b []byte) uint32 { return uint32(binary.LittleEndian.Uint16(b)) }
func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

func notFAT(format string, a ...any) error {
	return fmt.Errorf("fat: %s: %w", fmt.Sprintf(format, a...), fsys.ErrNotRecognized)
}

// parseBoot validates the BPB in the first sector b and computes the
// layout.
func parseBoot(b []byte, size int64) (*FS, error) {
	if len(b) < 512 {
		return nil, notFAT("short boot sector")
	}
	if b[0] != 0xEB && b[0] != 0xE9 {
		return nil, notFAT("no jump instruction in boot sector")
	}
	bps := int64(le16(b[11:]))
	switch bps {
	case 512, 1024, 2048, 4096:
	default:
		return nil, notFAT("bytes per sector %d", bps)
	}
	spc := int64(b[13])
	if spc == 0 || spc&(spc-1) != 0 {
		return nil, notFAT("sectors per cluster %d", spc)
	}
	rsvd := int64(le16(b[14:]))
	if rsvd == 0 {
		return nil, notFAT("no reserved sectors")
	}
	numFATs := int64(b[16])
	if numFATs == 0 || numFATs > 4 {
		return nil, notFAT("%d FATs", numFATs)
	}
	rootEnt := int64(le16(b[17:]))
	totSec := int64(le16(b[19:]))
	if totSec == 0 {
		totSec = int64(le32(b[32:]))
	}
	media := b[21]
	if media != 0xF0 && media < 0xF8 {
		return nil, notFAT("media descriptor %#x", media)
	}
	fatSz := int64(le16(b[22:]))
	if fatSz == 0 {
		fatSz = int64(le32(b[36:]))
	}
	if totSec == 0 || fatSz == 0 {
		return nil, notFAT("zero total sectors or FAT size")
	}
	rootSecs := (rootEnt*dirEntrySize + bps - 1) / bps
	meta := rsvd + numFATs*fatSz + rootSecs
	if meta >= totSec {
		return nil, notFAT("metadata (%d sectors) larger than volume (%d sectors)", meta, totSec)
	}
	nclus := (totSec - meta) / spc
	if nclus == 0 || nclus > 0x0FFFFFF5 {
		return nil, notFAT("%d clusters", nclus)
	}
	fs := &FS{
		size: size, boot: b[:512], bps: bps, clusterSize: bps * spc, numFATs: numFATs,
		fatBytes: fatSz * bps, fatOff: rsvd * bps, rootOff: (rsvd + numFATs*fatSz) * bps,
		rootBytes: rootSecs * bps, dataOff: meta * bps, clusters: uint32(nclus), media: media,
	}
	switch {
	case nclus < 4085:
		fs.bits = 12
	case nclus < 65525:
		fs.bits = 16
	default:
		fs.bits = 32
	}
	sigOff := 38
	if fs.bits == 32 {
		if rootEnt != 0 {
			return nil, notFAT("FAT32 cluster count with %d fixed root entries", rootEnt)
		}
		fs.rootClus = le32(b[44:])
		if !fs.validCluster(fs.rootClus) {
			return nil, notFAT("FAT32 root cluster %d out of range", fs.rootClus)
		}
		sigOff = 66
	} else if rootEnt == 0 {
		return nil, notFAT("FAT%d without a root directory", fs.bits)
	}
	if sig := b[sigOff]; sig == 0x28 || sig == 0x29 {
		id := le32(b[sigOff+1:])
		fs.uuid = fmt.Sprintf("%04X-%04X", id>>16, id&0xFFFF)
		if sig == 0x29 {
			l := strings.TrimRight(decodeOEM(b[sigOff+5:sigOff+16]), " ")
			if l != "NO NAME" {
				fs.label = l
			}
		}
	}
	// The FAT must be able to describe every cluster.
	if need := (int64(nclus+2)*int64(fs.bits) + 7) / 8; need > fs.fatBytes {
		return nil, notFAT("FAT of %d bytes too small for %d clusters", fs.fatBytes, nclus)
	}
	end := fs.dataOff + int64(nclus)*fs.clusterSize
	if end > size {
		return nil, fmt.Errorf("fat: volume truncated: data area ends at %d, volume has %d bytes", end, size)
	}
	return fs, nil
}

// Type returns "vfat".
func (fs *FS) Type() string { return "vfat" }

// Label returns the volume label.
func (fs *FS) Label() string { return fs.label }

// UUID returns the volume serial number as "XXXX-XXXX".
func (fs *FS) UUID() string { return fs.uuid }

// Bits returns 12, 16 or 32: the FAT type.
func (fs *FS) Bits() int { return fs.bits }

func (fs *FS) validCluster(c uint32) bool { return c >= 2 && uint64(c) < uint64(fs.clusters)+2 }

func (fs *FS) clusterOff(c uint32) int64 { return fs.dataOff + int64(c-2)*fs.clusterSize }

// rootRef is the Ref of the root directory: its first cluster on FAT32,
// 0 (the fixed root area) otherwise.
func (fs *FS) rootRef() uint32 {
	if fs.bits == 32 {
		return fs.rootClus
	}
	return 0
}

// fatChunkAt returns the cached chunk of the first FAT with index i.
func (fs *FS) fatChunkAt(i int64) ([]byte, error) {
	fs.mu.Lock()
	c, ok := fs.cache[i]
	fs.mu.Unlock()
	if ok {
		return c, nil
	}
	start := i * fatChunk
	n := min(int64(fatChunk), fs.fatBytes-start)
	if n <= 0 {
		return nil, fmt.Errorf("FAT offset %d beyond the FAT", start)
	}
	c = make([]byte, n)
	if _, err := fs.r.ReadAt(c, fs.fatOff+start); err != nil {
		return nil, fmt.Errorf("read FAT at %d: %w", fs.fatOff+start, err)
	}
	fs.mu.Lock()
	if len(fs.cache) >= fatCacheChunks {
		for k := range fs.cache {
			delete(fs.cache, k)
			break
		}
	}
	fs.cache[i] = c
	fs.mu.Unlock()
	return c, nil
}

func (fs *FS) fatByte(off int64) (byte, error) {
	c, err := fs.fatChunkAt(off / fatChunk)
	if err != nil {
		return 0, err
	}
	k := off % fatChunk
	if k >= int64(len(c)) {
		return 0, fmt.Errorf("FAT offset %d beyond the FAT", off)
	}
	return c[k], nil
}

// entry returns the FAT entry of cluster c.
func (fs *FS) entry(c uint32) (uint32, error) {
	var off int64
	var n int
	switch fs.bits {
	case 12:
		off, n = int64(c)+int64(c)/2, 2
	case 16:
		off, n = int64(c)*2, 2
	default:
		off, n = int64(c)*4, 4
	}
	var v uint32
	for k := 0; k < n; k++ {
		b, err := fs.fatByte(off + int64(k))
		if err != nil {
			return 0, err
		}
		v |= uint32(b) << (8 * k)
	}
	switch fs.bits {
	case 12:
		if c&1 != 0 {
			v >>= 4
		}
		v &= 0xFFF
	case 32:
		v &= 0x0FFFFFFF
	}
	return v, nil
}

func (fs *FS) isEOC(v uint32) bool {
	switch fs.bits {
	case 12:
		return v >= 0xFF8
	case 16:
		return v >= 0xFFF8
	}
	return v >= 0x0FFFFFF8
}

// run is a stretch of contiguous clusters.
type run struct {
	first uint32 // first cluster
	n     uint32 // number of clusters
	index uint64 // index of the first cluster in the chain
}

// chain follows the cluster chain from first and returns it as runs of
// contiguous clusters. It stops after limit clusters (the chain may go
// on); it fails on a chain that leaves the volume, hits a free or bad
// cluster, or is longer than the volume (a cycle).
func (fs *FS) chain(first uint32, limit uint64) ([]run, uint64, error) {
	if !fs.validCluster(first) {
		return nil, 0, fmt.Errorf("first cluster %d out of range", first)
	}
	var runs []run
	var count uint64
	c := first
	for {
		if len(runs) > 0 && runs[len(runs)-1].first+runs[len(runs)-1].n == c {
			runs[len(runs)-1].n++
		} else {
			runs = append(runs, run{first: c, n: 1, index: count})
		}
		count++
		if count >= limit {
			return runs, count, checkOverlap(first, runs)
		}
		if count > uint64(fs.clusters) {
			return nil, 0, fmt.Errorf("cluster chain from %d is longer than the volume (cycle)", first)
		}
		next, err := fs.entry(c)
		if err != nil {
			return nil, 0, err
		}
		switch {
		case fs.isEOC(next):
			return runs, count, checkOverlap(first, runs)
		case next == 0:
			return nil, 0, fmt.Errorf("cluster chain from %d reaches free cluster after %d", first, c)
		case !fs.validCluster(next):
			return nil, 0, fmt.Errorf("cluster chain from %d: cluster %d points to %#x", first, c, next)
		}
		c = next
	}
}

// checkOverlap reports a chain that visits a cluster twice (a cycle
// cut short by the length limit).
func checkOverlap(first uint32, runs []run) error {
	if len(runs) < 2 {
		return nil
	}
	s := append([]run(nil), runs...)
	sort.Slice(s, func(i, j int) bool { return s[i].first < s[j].first })
	for i := 1; i < len(s); i++ {
		if uint64(s[i-1].first)+uint64(s[i-1].n) > uint64(s[i].first) {
			return fmt.Errorf("cluster chain from %d visits cluster %d twice (cycle)", first, s[i].first)
		}
	}
	return nil
}

// readRuns reads n bytes of the given runs into one buffer.
func (fs *FS) readRuns(runs []run, n int64) ([]byte, error) {
	buf := make([]byte, n)
	var done int64
	for _, r := range runs {
		if done >= n {
			break
		}
		l := min(int64(r.n)*fs.clusterSize, n-done)
		off := fs.clusterOff(r.first)
		for l > 0 {
			k := min(l, maxRead)
			if _, err := fs.r.ReadAt(buf[done:done+k], off); err != nil {
				return nil, fmt.Errorf("read clusters at %d: %w", off, err)
			}
			done, off, l = done+k, off+k, l-k
		}
	}
	return buf[:done], nil
}

const (
	attrReadOnly  = 0x01
	attrHidden    = 0x02
	attrSystem    = 0x04
	attrVolumeID  = 0x08
	attrDirectory = 0x10
	attrLongName  = 0x0F
)

// dirent is one parsed directory entry.
type dirent struct {
	name    string
	attr    byte
	cluster uint32
	size    uint32
	mtime   time.Time
}

// readDir reads the directory whose first cluster is clus (0: the fixed
// FAT12/16 root).
func (fs *FS) readDir(clus uint32, root bool) ([]dirent, error) {
	ents, _, err := fs.readDirRuns(clus, root)
	return ents, err
}

// readDirRuns is readDir that also returns the directory's cluster runs
// (none for the fixed root).
func (fs *FS) readDirRuns(clus uint32, root bool) ([]dirent, []run, error) {
	var data []byte
	var runs []run
	if clus == 0 && fs.bits != 32 {
		data = make([]byte, fs.rootBytes)
		if _, err := fs.r.ReadAt(data, fs.rootOff); err != nil {
			return nil, nil, fmt.Errorf("read root directory at %d: %w", fs.rootOff, err)
		}
	} else {
		limit := uint64(maxDirBytes/fs.clusterSize) + 1
		var n uint64
		var err error
		runs, n, err = fs.chain(clus, limit+1)
		if err != nil {
			return nil, nil, err
		}
		if n > limit {
			return nil, nil, fmt.Errorf("directory at cluster %d longer than %d bytes", clus, maxDirBytes)
		}
		data, err = fs.readRuns(runs, int64(n)*fs.clusterSize)
		if err != nil {
			return nil, nil, err
		}
	}
	ents, err := parseDir(data, root)
	return ents, runs, err
}

// parseDir parses raw directory entries. Long names are used when their
// slots are complete and their checksum matches the short entry; the
// short name (with its case bits) otherwise. Deleted entries, "." and
// ".." are dropped; the volume label entry is returned only for the root.
func parseDir(data []byte, root bool) ([]dirent, error) {
	var out []dirent
	var lfn []uint16
	var lfnNext int // sequence number the next slot must carry; 0: no long name pending
	var lfnSum byte
	for off := 0; off+dirEntrySize <= len(data); off += dirEntrySize {
		b := data[off : off+dirEntrySize]
		if b[0] == 0x00 {
			break
		}
		if b[0] == 0xE5 {
			lfnNext = 0
			continue
		}
		attr := b[11]
		if attr&0x3F == attrLongName {
			ord := int(b[0])
			seq := ord & 0x1F
			switch {
			case ord&0x40 != 0 && seq >= 1 && seq <= 20:
				lfn = make([]uint16, seq*13)
				lfnSum = b[13]
				lfnNext = seq
			case lfnNext > 1 && seq == lfnNext-1 && b[13] == lfnSum && ord&0x40 == 0:
				lfnNext = seq
			default:
				lfnNext = 0
				continue
			}
			p := lfn[(seq-1)*13:]
			for i := 0; i < 5; i++ {
				p[i] = uint16(le16(b[1+2*i:]))
			}
			for i := 0; i < 6; i++ {
				p[5+i] = uint16(le16(b[14+2*i:]))
			}
			for i := 0; i < 2; i++ {
				p[11+i] = uint16(le16(b[28+2*i:]))
			}
			continue
		}
		long := ""
		if lfnNext == 1 && checksum(b[:11]) == lfnSum {
			long = decodeLong(lfn)
		}
		lfnNext = 0
		if attr&attrVolumeID != 0 && attr&attrDirectory == 0 {
			if root {
				out = append(out, dirent{name: strings.TrimRight(decodeOEM(b[:11]), " "), attr: attr})
			}
			continue
		}
		if b[0] == '.' && (b[1] == ' ' || (b[1] == '.' && b[2] == ' ')) {
			continue
		}
		name := long
		if name == "" {
			name = shortName(b)
		}
		if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') || strings.ContainsRune(name, 0) {
			return nil, fmt.Errorf("invalid name %q in directory entry %d", name, off/dirEntrySize)
		}
		out = append(out, dirent{
			name:    name,
			attr:    attr,
			cluster: le16(b[26:]) | le16(b[20:])<<16,
			size:    le32(b[28:]),
			mtime:   dosTime(le16(b[24:]), le16(b[22:])),
		})
	}
	return out, nil
}

func checksum(name []byte) byte {
	var s byte
	for _, c := range name {
		s = (s&1)<<7 + s>>1 + c
	}
	return s
}

func decodeLong(u []uint16) string {
	for i, c := range u {
		if c == 0 {
			u = u[:i]
			break
		}
	}
	for len(u) > 0 && u[len(u)-1] == 0xFFFF {
		u = u[:len(u)-1]
	}
	return string(utf16.Decode(u))
}

// shortName decodes an 8.3 name with the NT case bits.
func shortName(b []byte) string {
	base := make([]byte, 8)
	copy(base, b[:8])
	if base[0] == 0x05 {
		base[0] = 0xE5
	}
	ext := b[8:11]
	bs := strings.TrimRight(decodeOEM(base), " ")
	es := strings.TrimRight(decodeOEM(ext), " ")
	if b[12]&0x08 != 0 {
		bs = asciiLower(bs)
	}
	if b[12]&0x10 != 0 {
		es = asciiLower(es)
	}
	if es == "" {
		return bs
	}
	return bs + "." + es
}

func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

// decodeOEM decodes code page 437 bytes.
func decodeOEM(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		if c < 0x80 {
			sb.WriteByte(c)
		} else {
			sb.WriteRune(charmap.CodePage437.DecodeByte(c))
		}
	}
	return sb.String()
}

// dosTime converts a DOS date and time (local time, taken as UTC).
func dosTime(d, t uint32) time.Time {
	if d == 0 {
		return time.Time{}
	}
	year, month, day := 1980+int(d>>9), int(d>>5&15), int(d&31)
	h, m, s := int(t>>11), int(t>>5&63), int(t&31)*2
	if month < 1 || month > 12 || day < 1 || h > 23 || m > 59 || s > 59 {
		return time.Time{}
	}
	return time.Date(year, time.Month(month), day, h, m, s, 0, time.UTC)
}

// Walk visits every entry depth-first, a directory before its contents,
// in directory order.
func (fs *FS) Walk(ctx context.Context, fn fsys.WalkFunc) error {
	root := &fsys.Entry{Path: "/", Type: fsys.TypeDir, Ref: uint64(fs.rootRef()), Nlink: 1}
	if err := fn(root); err != nil {
		if errors.Is(err, fsys.SkipDir) {
			return nil
		}
		return err
	}
	w := &walker{fs: fs, ctx: ctx, fn: fn, seen: map[uint32]struct{}{fs.rootRef(): {}}}
	return w.dir("/", fs.rootRef())
}

type walker struct {
	fs    *FS
	ctx   context.Context
	fn    fsys.WalkFunc
	seen  map[uint32]struct{}
	count int
}

func (w *walker) dir(path string, clus uint32) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	ents, runs, err := w.fs.readDirRuns(clus, path == "/")
	if err != nil {
		return fmt.Errorf("fat: read directory %s: %w", path, err)
	}
	// Directory chains must be disjoint: a cluster seen before means a
	// cycle or cross-linked directories (and would make the walk
	// quadratic on a damaged volume).
	for _, r := range runs {
		for c := r.first; c < r.first+r.n; c++ {
			if _, dup := w.seen[c]; dup && c != clus {
				return fmt.Errorf("fat: directory %s: cluster %d already belongs to another directory (cycle)", path, c)
			}
			w.seen[c] = struct{}{}
		}
	}
	prefix := path
	if prefix != "/" {
		prefix += "/"
	}
	for _, d := range ents {
		if d.attr&attrVolumeID != 0 && d.attr&attrDirectory == 0 {
			continue
		}
		w.count++
		if w.count%256 == 0 {
			if err := w.ctx.Err(); err != nil {
				return err
			}
		}
		e := &fsys.Entry{Path: prefix + d.name, Type: fsys.TypeFile, Size: int64(d.size),
			MTime: d.mtime, Ref: uint64(d.cluster), Nlink: 1}
		isDir := d.attr&attrDirectory != 0
		if isDir {
			e.Type = fsys.TypeDir
			e.Size = 0
		}
		err := w.fn(e)
		if err != nil && !errors.Is(err, fsys.SkipDir) {
			return err
		}
		if !isDir || err != nil {
			continue
		}
		if !w.fs.validCluster(d.cluster) {
			return fmt.Errorf("fat: directory %s: first cluster %d out of range", e.Path, d.cluster)
		}
		if _, dup := w.seen[d.cluster]; dup {
			return fmt.Errorf("fat: directory %s: cluster %d already used by another directory (cycle)", e.Path, d.cluster)
		}
		w.seen[d.cluster] = struct{}{}
		if err := w.dir(e.Path, d.cluster); err != nil {
			return err
		}
	}
	return nil
}

// Open returns the content of the regular file e (its Ref and Size).
func (fs *FS) Open(e *fsys.Entry) (fsys.File, error) {
	if e.Type != fsys.TypeFile {
		return nil, fmt.Errorf("fat: open %s: not a regular file", e.Path)
	}
	if e.Size < 0 || e.Size > 0xFFFFFFFF {
		return nil, fmt.Errorf("fat: open %s: size %d out of range", e.Path, e.Size)
	}
	f := &fsys.MappedFile{R: fs.r, Length: e.Size, FS: "fat"}
	if e.Size == 0 {
		return f, nil
	}
	if e.Ref > 0xFFFFFFFF || !fs.validCluster(uint32(e.Ref)) {
		return nil, fmt.Errorf("fat: open %s: first cluster %d out of range", e.Path, e.Ref)
	}
	need := uint64((e.Size + fs.clusterSize - 1) / fs.clusterSize)
	runs, n, err := fs.chain(uint32(e.Ref), need)
	if err != nil {
		return nil, fmt.Errorf("fat: open %s: %w", e.Path, err)
	}
	if n < need {
		return nil, fmt.Errorf("fat: open %s: cluster chain of %d clusters too short for %d bytes", e.Path, n, e.Size)
	}
	for _, r := range runs {
		f.Extents = append(f.Extents, fsys.Extent{Logical: int64(r.index) * fs.clusterSize, Physical: fs.clusterOff(r.first),
			Length: int64(r.n) * fs.clusterSize})
	}
	return f, nil
}

// Check compares the FAT copies with each other and checks the boot
// sector (and on FAT32 its backup and the FSInfo sector).
func (fs *FS) Check(ctx context.Context) ([]string, error) {
	var findings []string
	if fs.boot[510] != 0x55 || fs.boot[511] != 0xAA {
		findings = append(findings, "boot sector signature 0x55AA missing")
	}
	if fs.bits == 32 {
		bk := int64(le16(fs.boot[50:]))
		if bk != 0 && bk != 0xFFFF {
			b := make([]byte, 512)
			if _, err := fs.r.ReadAt(b, bk*fs.bps); err != nil {
				return nil, fmt.Errorf("fat: read backup boot sector %d: %w", bk, err)
			}
			if string(b[:90]) != string(fs.boot[:90]) {
				findings = append(findings, fmt.Sprintf("backup boot sector %d differs from the boot sector", bk))
			}
		}
		fsi := int64(le16(fs.boot[48:]))
		if fsi != 0 && fsi != 0xFFFF {
			b := make([]byte, 512)
			if _, err := fs.r.ReadAt(b, fsi*fs.bps); err != nil {
				return nil, fmt.Errorf("fat: read FSInfo sector %d: %w", fsi, err)
			}
			if le32(b) != 0x41615252 || le32(b[484:]) != 0x61417272 || le32(b[508:]) != 0xAA550000 {
				findings = append(findings, fmt.Sprintf("FSInfo sector %d has bad signatures", fsi))
			}
		}
	}
	first, err := fs.fatByte(0)
	if err != nil {
		return nil, fmt.Errorf("fat: %w", err)
	}
	if first != fs.media {
		findings = append(findings, fmt.Sprintf("FAT[0] media byte %#x differs from the boot sector's %#x", first, fs.media))
	}
	a := make([]byte, fatChunk)
	b := make([]byte, fatChunk)
	for k := int64(1); k < fs.numFATs; k++ {
		var differ int64
		firstDiff := int64(-1)
		for off := int64(0); off < fs.fatBytes; off += fatChunk {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			n := min(int64(fatChunk), fs.fatBytes-off)
			if _, err := fs.r.ReadAt(a[:n], fs.fatOff+off); err != nil {
				return nil, fmt.Errorf("fat: read FAT 1 at %d: %w", off, err)
			}
			if _, err := fs.r.ReadAt(b[:n], fs.fatOff+k*fs.fatBytes+off); err != nil {
				return nil, fmt.Errorf("fat: read FAT %d at %d: %w", k+1, off, err)
			}
			if string(a[:n]) != string(b[:n]) {
				differ++
				if firstDiff < 0 {
					for i := int64(0); i < n; i++ {
						if a[i] != b[i] {
							firstDiff = off + i
							break
						}
					}
				}
			}
		}
		if differ > 0 {
			findings = append(findings, fmt.Sprintf("FAT %d differs from FAT 1 in %d chunk(s) of %d KiB, first at byte %d",
				k+1, differ, fatChunk>>10, firstDiff))
		}
	}
	return findings, nil
}
