package point

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"coffer.dev/coffer/store/chunk"
	"coffer.dev/coffer/store/crypt"
	"coffer.dev/coffer/store/diskmap"
)

// ID names a recovery point. IDs sort by creation time (to the
// microsecond): 20261123T081846.123456Z-3fa9c2e1.
type ID string

var idPattern = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}\.[0-9]{6}Z-[0-9a-f]{8}$`)

// NewID returns a fresh ID for a point created at t.
func NewID(t time.Time) ID {
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return ID(t.UTC().Format("20060102T150405.000000Z") + "-" + hex.EncodeToString(r[:]))
}

// Valid reports whether id has the form NewID makes.
func (id ID) Valid() bool { return idPattern.MatchString(string(id)) }

// Consistency records how consistent the data of a point is.
type Consistency string

const (
	// ApplicationConsistent: applications were quiesced (VSS, freeze hooks).
	ApplicationConsistent Consistency = "application"
	// FileSystemConsistent: the file systems were frozen, not applications.
	FileSystemConsistent Consistency = "filesystem"
	// CrashConsistent: as if the power had been cut at the snapshot.
	CrashConsistent Consistency = "crash"
	// PoweredOff: the machine was not running; its disks are as the
	// guest left them when it stopped.
	PoweredOff Consistency = "powered-off"
	// Unknown: the source could not say (an image file, a block device).
	Unknown Consistency = "unknown"
)

// Stats are the figures of one disk or of a whole point.
type Stats struct {
	// Logical is the disk size: what a restore returns.
	Logical int64 `json:"logical_bytes"`
	// Data is the non-zero part of Logical.
	Data int64 `json:"data_bytes"`
	// Read is what the backup read from the source.
	Read int64 `json:"read_bytes"`
	// New is the raw size of the chunks this backup added to the store.
	New int64 `json:"new_bytes"`
	// Stored is what those new chunks take in containers (compressed,
	// encrypted, with their share of container overhead).
	Stored int64 `json:"stored_bytes"`
	// Chunks and NewChunks count the data chunks referenced and added.
	Chunks    int64 `json:"chunks"`
	NewChunks int64 `json:"new_chunks"`
}

// Add accumulates o into s.
func (s *Stats) Add(o Stats) {
	s.Logical += o.Logical
	s.Data += o.Data
	s.Read += o.Read
	s.New += o.New
	s.Stored += o.Stored
	s.Chunks += o.Chunks
	s.NewChunks += o.NewChunks
}

// Disk is one disk of a point.
type Disk struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	// Groups lists the level-2 map of each 16 GiB group; the zero ID for a
	// group that is all zeros.
	Groups []chunk.ID `json:"-"`
	// Incremental is true when the disk was based on the previous point's
	// disk and only changed extents were read.
	Incremental bool            `json:"incremental"`
	Stats       Stats           `json:"stats"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
}

// RecoveryPoint is one point in time of one source: a logical full of all
// its disks.
type RecoveryPoint struct {
	ID          ID                         `json:"id"`
	Source      string                     `json:"source"`
	Created     time.Time                  `json:"created"`
	Finished    time.Time                  `json:"finished"`
	Base        ID                         `json:"base,omitempty"`
	Consistency Consistency                `json:"consistency"`
	Labels      map[string]string          `json:"labels,omitempty"`
	Metadata    map[string]json.RawMessage `json:"metadata,omitempty"`
	Disks       []Disk                     `json:"disks"`
	Stats       Stats                      `json:"stats"`
}

// Disk returns the disk named name.
func (p *RecoveryPoint) Disk(name string) (*Disk, bool) {
	for i := range p.Disks {
		if p.Disks[i].Name == name {
			return &p.Disks[i], true
		}
	}
	return nil, false
}

// MarshalJSON writes map IDs in hex.
func (d Disk) MarshalJSON() ([]byte, error) {
	type plain Disk
	j := struct {
		plain
		Groups []string `json:"groups"`
	}{plain: plain(d), Groups: make([]string, len(d.Groups))}
	for i, id := range d.Groups {
		if !id.IsZero() {
			j.Groups[i] = id.String()
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads map IDs in hex.
func (d *Disk) UnmarshalJSON(b []byte) error {
	type plain Disk
	var j struct {
		plain
		Groups []string `json:"groups"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*d = Disk(j.plain)
	d.Groups = make([]chunk.ID, len(j.Groups))
	for i, s := range j.Groups {
		if s == "" {
			continue
		}
		id, err := chunk.ParseID(s)
		if err != nil {
			return err
		}
		d.Groups[i] = id
	}
	return nil
}

var sourcePattern = regexp.MustCompile(`^[A-Za-z0-9._:@/+=-]{1,200}$`)

// ValidSource reports whether s can name a source (a VM instance UUID, a
// host name, a path-like name).
func ValidSource(s string) bool { return sourcePattern.MatchString(s) && !strings.Contains(s, "..") }

// Validate checks a decoded point for internal consistency.
func (p *RecoveryPoint) Validate() error {
	if !p.ID.Valid() {
		return fmt.Errorf("point id %q is malformed", p.ID)
	}
	if p.Base != "" && !p.Base.Valid() {
		return fmt.Errorf("point %s: base id %q is malformed", p.ID, p.Base)
	}
	if !ValidSource(p.Source) {
		return fmt.Errorf("point %s: source %q is malformed", p.ID, p.Source)
	}
	if len(p.Disks) == 0 {
		return fmt.Errorf("point %s has no disks", p.ID)
	}
	seen := map[string]bool{}
	for _, d := range p.Disks {
		if d.Name == "" || seen[d.Name] {
			return fmt.Errorf("point %s: disk name %q empty or repeated", p.ID, d.Name)
		}
		seen[d.Name] = true
		if d.Size <= 0 || d.Size > 1<<50 {
			return fmt.Errorf("point %s: disk %s: size %d out of range", p.ID, d.Name, d.Size)
		}
		if len(d.Groups) != diskmap.Groups(d.Size) {
			return fmt.Errorf("point %s: disk %s: %d map groups for %d bytes", p.ID, d.Name, len(d.Groups), d.Size)
		}
	}
	return nil
}

const fileMagic = "CFRPOINT1\n"

// ErrFormat marks a point file that cannot be decoded.
var ErrFormat = errors.New("recovery point format error")

// Encode seals p for storage: a magic line, then the JSON record encrypted
// and authenticated with the point ID as associated data.
func Encode(p *RecoveryPoint, aead *crypt.AEAD) ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	plain, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode point %s: %w", p.ID, err)
	}
	b := append([]byte(fileMagic), []byte(p.ID)...)
	b = append(b, '\n')
	return aead.Seal(b, plain, []byte(p.ID)), nil
}

// Decode opens a point file.
func Decode(b []byte, aead *crypt.AEAD) (*RecoveryPoint, error) {
	if len(b) < len(fileMagic) || string(b[:len(fileMagic)]) != fileMagic {
		return nil, fmt.Errorf("%w: bad magic", ErrFormat)
	}
	b = b[len(fileMagic):]
	nl := strings.IndexByte(string(b[:min(len(b), 64)]), '\n')
	if nl < 0 {
		return nil, fmt.Errorf("%w: no id line", ErrFormat)
	}
	id := ID(b[:nl])
	if !id.Valid() {
		return nil, fmt.Errorf("%w: bad id %q", ErrFormat, id)
	}
	plain, err := aead.Open(nil, b[nl+1:], []byte(id))
	if err != nil {
		return nil, fmt.Errorf("point %s: %w", id, err)
	}
	var p RecoveryPoint
	if err := json.Unmarshal(plain, &p); err != nil {
		return nil, fmt.Errorf("%w: point %s: %v", ErrFormat, id, err)
	}
	if p.ID != id {
		return nil, fmt.Errorf("%w: file names point %s, record %s", ErrFormat, id, p.ID)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	return &p, nil
}
