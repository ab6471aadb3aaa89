package catalog

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/zstd"

	"coffer.dev/coffer/appliance/catalog/fsys"
	"coffer.dev/coffer/store/point"
)

const magic = "COFFCAT1"

// Verdict is the outcome of the recoverability check of a point.
type Verdict string

const (
	Unchecked Verdict = ""
	Verified  Verdict = "verified"
	Warning   Verdict = "warning"
	Failed    Verdict = "failed"
)

// VolumeInfo describes one volume of a catalogued point.
type VolumeInfo struct {
	// ID is the volume's stable name inside the point: the disk name and
	// the volume's own ID ("scsi0:0/p2", "scsi0:0/lvm:vg0/root").
	ID       string `json:"id"`
	Disk     string `json:"disk"`
	Scheme   string `json:"scheme"`
	TypeName string `json:"type_name,omitempty"`
	Size     int64  `json:"size"`
	// FS is the filesystem type ("ext4", "xfs", "ntfs", "vfat"), or ""
	// when none was recognised (swap, raw data, unknown).
	FS    string `json:"fs,omitempty"`
	Label string `json:"label,omitempty"`
	UUID  string `json:"uuid,omitempty"`
	// Entries is how many entries the volume's walk found.
	Entries int `json:"entries"`
	// Error is why the volume's filesystem could not be catalogued (the
	// entries before the failure are kept).
	Error string `json:"error,omitempty"`
}

// Header is the JSON head of a catalog file.
type Header struct {
	Version int       `json:"version"`
	Point   point.ID  `json:"point"`
	Source  string    `json:"source"`
	Name    string    `json:"name,omitempty"` // the VM's name at backup time
	Created time.Time `json:"created"`        // the point's creation time
	Built   time.Time `json:"built"`
	// Volumes in disk order.
	Volumes []VolumeInfo `json:"volumes"`
	// Problems are disk-level findings ("cannot catalog disk N: …").
	Problems []string `json:"problems,omitempty"`
	// Warnings are findings that did not stop the catalog (a GPT read
	// from its backup copy, an LVM segment type not read).
	Warnings []string `json:"warnings,omitempty"`
	Entries  int      `json:"entries"`
	Verdict  Verdict  `json:"verdict,omitempty"`
	// Findings explain a warning or failed verdict.
	Findings []string `json:"findings,omitempty"`
	Checked  int      `json:"checked_files,omitempty"`
	BodySHA  string   `json:"body_sha256"`
	Duration float64  `json:"build_seconds"`
}

// Entry is one catalogued name: a filesystem entry and the volume it is on.
type Entry struct {
	Volume int // index into Header.Volumes
	fsys.Entry
}

// Catalog is the catalog of one point.
type Catalog struct {
	Header
	Entries []Entry
}

// Volume returns the volume entry e is on.
func (c *Catalog) Volume(e *Entry) *VolumeInfo { return &c.Header.Volumes[e.Volume] }

// Find returns the entry at path on the volume with ID vol.
func (c *Catalog) Find(vol, path string) (*Entry, bool) {
	for i := range c.Entries {
		e := &c.Entries[i]
		if e.Path == path && c.Header.Volumes[e.Volume].ID == vol {
			return e, true
		}
	}
	return nil, false
}

// WriteFile writes c to path atomically (a temporary file, fsync, rename).
func (c *Catalog) WriteFile(path string) error {
	var body bytes.Buffer
	zw, err := zstd.NewWriter(&body, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(zw, 256<<10)
	var prev string
	var tmp [binary.MaxVarintLen64]byte
	uv := func(v uint64) { bw.Write(tmp[:binary.PutUvarint(tmp[:], v)]) }
	sv := func(v int64) { bw.Write(tmp[:binary.PutVarint(tmp[:], v)]) }
	for i := range c.Entries {
		e := &c.Entries[i]
		shared := commonPrefix(prev, e.Path)
		uv(uint64(e.Volume))
		uv(uint64(shared))
		uv(uint64(len(e.Path) - shared))
		bw.WriteString(e.Path[shared:])
		bw.WriteByte(byte(e.Type))
		sv(e.Size)
		uv(uint64(e.Mode))
		uv(uint64(e.UID))
		uv(uint64(e.GID))
		var mt int64
		if !e.MTime.IsZero() {
			mt = e.MTime.UnixNano()
		}
		sv(mt)
		uv(e.Ref)
		uv(uint64(e.Nlink))
		uv(uint64(len(e.Target)))
		bw.WriteString(e.Target)
		prev = e.Path
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	h := c.Header
	h.Version = 1
	h.Entries = len(c.Entries)
	sum := sha256.Sum256(body.Bytes())
	h.BodySHA = hex.EncodeToString(sum[:])
	hj, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".catalog-*")
	if err != nil {
		return fmt.Errorf("write catalog: %w", err)
	}
	defer os.Remove(f.Name())
	var lenb [4]byte
	binary.LittleEndian.PutUint32(lenb[:], uint32(len(hj)))
	_, err = f.Write(append(append(append([]byte(magic), lenb[:]...), hj...), body.Bytes()...))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write catalog %s: %w", path, err)
	}
	c.Header = h
	return nil
}

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// ErrCorrupt is returned (wrapped) for a catalog file that does not decode.
var ErrCorrupt = errors.New("catalog file is damaged")

// ReadHeader reads only the header of the catalog file at path.
func ReadHeader(path string) (*Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h, _, err := readHeader(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("read catalog %s: %w", path, err)
	}
	return h, nil
}

func readHeader(r io.Reader) (*Header, int, error) {
	var head [12]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if string(head[:8]) != magic {
		return nil, 0, fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	n := binary.LittleEndian.Uint32(head[8:])
	if n > 64<<20 {
		return nil, 0, fmt.Errorf("%w: header of %d bytes", ErrCorrupt, n)
	}
	hj := make([]byte, n)
	if _, err := io.ReadFull(r, hj); err != nil {
		return nil, 0, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	var h Header
	if err := json.Unmarshal(hj, &h); err != nil {
		return nil, 0, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	if h.Version != 1 {
		return nil, 0, fmt.Errorf("%w: version %d", ErrCorrupt, h.Version)
	}
	return &h, 12 + int(n), nil
}

// ReadFile reads the whole catalog at path, checking the body's checksum.
func ReadFile(path string) (*Catalog, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("read catalog %s: %w", path, err)
	}
	return c, nil
}

// Decode decodes a catalog file's bytes.
func Decode(data []byte) (*Catalog, error) {
	h, off, err := readHeader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	body := data[off:]
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != h.BodySHA {
		return nil, fmt.Errorf("%w: body checksum mismatch", ErrCorrupt)
	}
	zr, err := zstd.NewReader(bytes.NewReader(body), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(4<<30))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	br := bufio.NewReaderSize(zr, 256<<10)
	c := &Catalog{Header: *h}
	if h.Entries < 0 || h.Entries > 1<<28 {
		return nil, fmt.Errorf("%w: %d entries", ErrCorrupt, h.Entries)
	}
	c.Entries = make([]Entry, 0, min(h.Entries, 1<<20))
	var prev string
	bad := func(what string, err error) error {
		return fmt.Errorf("%w: entry %d: %s: %v", ErrCorrupt, len(c.Entries), what, err)
	}
	buf := make([]byte, 0, 256)
	readStr := func(n uint64) (string, error) {
		if n > 1<<20 {
			return "", fmt.Errorf("string of %d bytes", n)
		}
		buf = buf[:0]
		buf = append(buf, make([]byte, n)...)
		if _, err := io.ReadFull(br, buf); err != nil {
			return "", err
		}
		return string(buf), nil
	}
	for len(c.Entries) < h.Entries {
		var e Entry
		var v [10]uint64
		var err error
		if v[0], err = binary.ReadUvarint(br); err != nil {
			return nil, bad("volume", err)
		}
		if v[0] >= uint64(len(h.Volumes)) {
			return nil, bad("volume", fmt.Errorf("index %d of %d", v[0], len(h.Volumes)))
		}
		e.Volume = int(v[0])
		if v[1], err = binary.ReadUvarint(br); err != nil || v[1] > uint64(len(prev)) {
			return nil, bad("path prefix", err)
		}
		if v[2], err = binary.ReadUvarint(br); err != nil {
			return nil, bad("path", err)
		}
		suffix, err := readStr(v[2])
		if err != nil {
			return nil, bad("path", err)
		}
		e.Path = prev[:v[1]] + suffix
		t, err := br.ReadByte()
		if err != nil {
			return nil, bad("type", err)
		}
		e.Type = fsys.EntryType(t)
		if e.Size, err = binary.ReadVarint(br); err != nil {
			return nil, bad("size", err)
		}
		for i := 3; i < 6; i++ {
			if v[i], err = binary.ReadUvarint(br); err != nil || v[i] > 1<<32-1 {
				return nil, bad("owner", err)
			}
		}
		e.Mode, e.UID, e.GID = uint32(v[3]), uint32(v[4]), uint32(v[5])
		mt, err := binary.ReadVarint(br)
		if err != nil {
			return nil, bad("mtime", err)
		}
		if mt != 0 {
			e.MTime = time.Unix(0, mt).UTC()
		}
		if e.Ref, err = binary.ReadUvarint(br); err != nil {
			return nil, bad("ref", err)
		}
		if v[6], err = binary.ReadUvarint(br); err != nil || v[6] > 1<<32-1 {
			return nil, bad("nlink", err)
		}
		e.Nlink = uint32(v[6])
		if v[7], err = binary.ReadUvarint(br); err != nil {
			return nil, bad("target", err)
		}
		if e.Target, err = readStr(v[7]); err != nil {
			return nil, bad("target", err)
		}
		prev = e.Path
		c.Entries = append(c.Entries, e)
	}
	return c, nil
}
