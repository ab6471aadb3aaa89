package container

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"coffer.dev/coffer/store/crypt"
)

func crcOf(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// Writer writes one container file. Regions are appended in order; Seal
// writes the fingerprint section and trailer, makes the file durable and
// gives it its final name. Until then the file carries a ".tmp" suffix and
// is removed by the store on its next open.
type Writer struct {
	f      *os.File
	path   string
	tmp    string
	hdr    Header
	off    int64
	footer Footer
}

// TmpSuffix marks a container that was never sealed.
const TmpSuffix = ".tmp"

// Create starts a container at path (written as path+TmpSuffix).
func Create(path string, hdr Header) (*Writer, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create container %d: %w", hdr.ID, err)
	}
	tmp := path + TmpSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create container %d: %w", hdr.ID, err)
	}
	w := &Writer{f: f, path: path, tmp: tmp, hdr: hdr}
	if _, err := f.Write(hdr.MarshalBinary()); err != nil {
		w.Abort()
		return nil, fmt.Errorf("write container %d header: %w", hdr.ID, err)
	}
	w.off = HeaderSize
	return w, nil
}

// ID returns the container's ID.
func (w *Writer) ID() uint64 { return w.hdr.ID }

// Regions returns how many regions have been written.
func (w *Writer) Regions() int { return len(w.footer.Regions) }

// Size returns the bytes written so far.
func (w *Writer) Size() int64 { return w.off }

// Entries returns the entries written so far (owned by the writer).
func (w *Writer) Entries() []Entry { return w.footer.Entries }

// WriteRegion appends a sealed region, which must have been sealed as
// region number Regions(), with the chunks it holds. The entries' Region
// field is set here.
func (w *Writer) WriteRegion(r SealedRegion, entries []Entry) error {
	idx := uint32(len(w.footer.Regions))
	if _, err := w.f.Write(r.Bytes); err != nil {
		return fmt.Errorf("write container %d region %d: %w", w.hdr.ID, idx, err)
	}
	w.footer.Regions = append(w.footer.Regions, Region{
		Offset: w.off, StoredLen: uint32(len(r.Bytes) - RegionHeaderSize), RawLen: r.RawLen, Codec: r.Codec,
	})
	w.off += int64(len(r.Bytes))
	for _, e := range entries {
		e.Region = idx
		w.footer.Entries = append(w.footer.Entries, e)
	}
	return nil
}

// Seal finishes the container: the encrypted fingerprint section, the
// trailer, fsync, rename to the final name and fsync of the directory.
// It returns the final size.
func (w *Writer) Seal(aead *crypt.AEAD) (int64, error) {
	plain := w.footer.MarshalBinary()
	b := make([]byte, 8, 8+len(plain)+crypt.Overhead+TrailerSize)
	binary.LittleEndian.PutUint32(b, footerMagic)
	b = aead.Seal(b, plain, footerAAD(w.hdr.StoreID, w.hdr.ID, w.hdr.Kind))
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)-8))
	flen := uint32(len(b) - 8)
	t := Trailer{FooterOffset: w.off, FooterLen: flen, Entries: uint32(len(w.footer.Entries)), ContainerID: w.hdr.ID}
	b = append(b, t.MarshalBinary()...)
	if _, err := w.f.Write(b); err != nil {
		w.Abort()
		return 0, fmt.Errorf("write container %d footer: %w", w.hdr.ID, err)
	}
	size := w.off + int64(len(b))
	if err := w.f.Sync(); err != nil {
		w.Abort()
		return 0, fmt.Errorf("sync container %d: %w", w.hdr.ID, err)
	}
	if err := w.f.Close(); err != nil {
		w.f = nil
		w.Abort()
		return 0, fmt.Errorf("close container %d: %w", w.hdr.ID, err)
	}
	w.f = nil
	if err := os.Rename(w.tmp, w.path); err != nil {
		w.Abort()
		return 0, fmt.Errorf("seal container %d: %w", w.hdr.ID, err)
	}
	if err := SyncDir(filepath.Dir(w.path)); err != nil {
		return 0, fmt.Errorf("seal container %d: %w", w.hdr.ID, err)
	}
	return size, nil
}

// Abort closes and removes an unsealed container.
func (w *Writer) Abort() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	os.Remove(w.tmp)
}

// SyncDir makes a directory's entries (a rename, a new file) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Reader reads a sealed container.
type Reader struct {
	ra      io.ReaderAt
	size    int64
	storeID [16]byte
	aead    *crypt.AEAD
	Header  Header
	Footer  *Footer
}

// Open reads and authenticates a container's header, trailer and
// fingerprint section. storeID is the store the container must belong to.
func Open(ra io.ReaderAt, size int64, aead *crypt.AEAD, storeID [16]byte) (*Reader, error) {
	if size < HeaderSize+TrailerSize+8 {
		return nil, formatErr("file of %d bytes is too short for a container", size)
	}
	hb := make([]byte, HeaderSize)
	if _, err := ra.ReadAt(hb, 0); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	hdr, err := ParseHeader(hb)
	if err != nil {
		return nil, err
	}
	if hdr.StoreID != storeID {
		return nil, formatErr("container belongs to another store")
	}
	tb := make([]byte, TrailerSize)
	if _, err := ra.ReadAt(tb, size-TrailerSize); err != nil {
		return nil, fmt.Errorf("read trailer: %w", err)
	}
	t, err := ParseTrailer(tb, size)
	if err != nil {
		return nil, err
	}
	if t.ContainerID != hdr.ID {
		return nil, formatErr("trailer names container %d, header %d", t.ContainerID, hdr.ID)
	}
	fb := make([]byte, 8+int(t.FooterLen))
	if _, err := ra.ReadAt(fb, t.FooterOffset); err != nil {
		return nil, fmt.Errorf("read fingerprint section: %w", err)
	}
	if binary.LittleEndian.Uint32(fb) != footerMagic || binary.LittleEndian.Uint32(fb[4:]) != t.FooterLen {
		return nil, formatErr("fingerprint section: bad magic")
	}
	plain, err := aead.Open(nil, fb[8:], footerAAD(storeID, hdr.ID, hdr.Kind))
	if err != nil {
		return nil, fmt.Errorf("fingerprint section: %w", err)
	}
	f, err := ParseFooter(plain)
	if err != nil {
		return nil, err
	}
	if uint32(len(f.Entries)) != t.Entries {
		return nil, formatErr("trailer counts %d entries, section holds %d", t.Entries, len(f.Entries))
	}
	for i, r := range f.Regions {
		if r.Offset+RegionHeaderSize+int64(r.StoredLen) > t.FooterOffset {
			return nil, formatErr("region %d runs into the fingerprint section", i)
		}
	}
	return &Reader{ra: ra, size: size, storeID: storeID, aead: aead, Header: hdr, Footer: f}, nil
}

// Size returns the container file's size.
func (r *Reader) Size() int64 { return r.size }

// ReadRegionRaw returns the region header and sealed bytes of region i,
// without opening them.
func (r *Reader) ReadRegionRaw(i int, buf []byte) ([]byte, error) {
	if i < 0 || i >= len(r.Footer.Regions) {
		return nil, formatErr("region %d of %d", i, len(r.Footer.Regions))
	}
	reg := r.Footer.Regions[i]
	n := RegionHeaderSize + int(reg.StoredLen)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := r.ra.ReadAt(buf, reg.Offset); err != nil {
		return nil, fmt.Errorf("read region %d: %w", i, err)
	}
	return buf, nil
}

// ReadRegion returns region i's payload, appended to dst.
func (r *Reader) ReadRegion(c *Compression, i int, dst []byte) ([]byte, error) {
	b, err := r.ReadRegionRaw(i, nil)
	if err != nil {
		return nil, err
	}
	return OpenRegion(c, r.aead, r.storeID, r.Header.ID, uint32(i), r.Footer.Regions[i], b, dst)
}
