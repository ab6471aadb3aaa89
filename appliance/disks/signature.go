package disks

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
)

// Signature is a partition table, file system or RAID superblock found on
// a disk or partition.
type Signature struct {
	// Kind is "gpt", "mbr", "md", "ext", "xfs", "btrfs", "vfat", "ntfs",
	// "lvm", "luks" or "swap".
	Kind  string `json:"kind"`
	Label string `json:"label,omitempty"` // the file system's label
	// MD is the RAID superblock when Kind is "md".
	MD *MDSuperblock `json:"md,omitempty"`
}

// MDSuperblock is what the package reads of an md member's superblock.
type MDSuperblock struct {
	Version   string `json:"version"` // "0.90", "1.0", "1.1", "1.2"
	UUID      string `json:"uuid"`    // the array's UUID
	Name      string `json:"name"`    // "any:coffer" (1.x only)
	Level     int    `json:"level"`
	RaidDisks int    `json:"raid_disks"`
	Events    uint64 `json:"events"`
}

// ArrayName is the name without the home host ("coffer" of "any:coffer").
func (m *MDSuperblock) ArrayName() string {
	if i := strings.IndexByte(m.Name, ':'); i >= 0 {
		return m.Name[i+1:]
	}
	return m.Name
}

// String says what the signature is, for an in-use reason.
func (s Signature) String() string {
	var d string
	switch s.Kind {
	case "gpt":
		d = "a GPT partition table"
	case "mbr":
		d = "an MBR partition table"
	case "md":
		d = "a RAID (md) superblock"
		if s.MD != nil && s.MD.Name != "" {
			d += fmt.Sprintf(" of array %q", s.MD.Name)
		}
	case "ext":
		d = "an ext2/3/4 file system"
	case "xfs":
		d = "an XFS file system"
	case "btrfs":
		d = "a btrfs file system"
	case "vfat":
		d = "a FAT file system"
	case "ntfs":
		d = "an NTFS file system"
	case "lvm":
		d = "an LVM physical volume"
	case "luks":
		d = "a LUKS encrypted volume"
	case "swap":
		d = "swap space"
	default:
		d = s.Kind
	}
	if s.Label != "" {
		d += fmt.Sprintf(" labelled %q", s.Label)
	}
	return d
}

const (
	mdMagic    = 0xa92b4efc
	headLength = 68 << 10 // covers btrfs's superblock at 64 KiB
)

// probeFile reads the signatures of the device (or image) at path.
func probeFile(path string) ([]Signature, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	return probe(f, size)
}

// probe finds the signatures at the places the kernel and the tools
// look: the first 68 KiB and, for md 0.90 and 1.0, the end.
func probe(r io.ReaderAt, size int64) ([]Signature, error) {
	head := make([]byte, min(size, headLength))
	if _, err := r.ReadAt(head, 0); err != nil && err != io.EOF {
		return nil, err
	}
	at := func(off int, n int) []byte {
		if off < 0 || off+n > len(head) {
			return nil
		}
		return head[off : off+n]
	}
	is := func(off int, magic string) bool { return bytes.Equal(at(off, len(magic)), []byte(magic)) }
	var sigs []Signature
	add := func(kind, label string) { sigs = append(sigs, Signature{Kind: kind, Label: label}) }

	switch {
	case is(512, "EFI PART") || is(4096, "EFI PART"):
		add("gpt", "")
	case is(3, "NTFS    "):
		add("ntfs", "")
	case is(82, "FAT32   "):
		add("vfat", cstring(at(71, 11)))
	case is(54, "FAT16   ") || is(54, "FAT12   ") || is(54, "FAT     "):
		add("vfat", cstring(at(43, 11)))
	case is(510, "\x55\xaa"):
		add("mbr", "")
	}
	if is(0, "XFSB") {
		add("xfs", cstring(at(108, 12)))
	}
	if is(1080, "\x53\xef") {
		add("ext", cstring(at(1024+120, 16)))
	}
	if is(65536+64, "_BHRfS_M") {
		add("btrfs", cstring(at(65536+299, 256)))
	}
	if is(0, "LUKS\xba\xbe") {
		add("luks", "")
	}
	for s := 0; s < 4; s++ {
		if is(s*512, "LABELONE") && is(s*512+24, "LVM2 001") {
			add("lvm", "")
			break
		}
	}
	if is(4096-10, "SWAPSPACE2") || is(4096-10, "SWAP-SPACE") {
		add("swap", "")
	}

	// md: 1.1 at 0, 1.2 at 4 KiB, 1.0 8 KiB before the end (4 KiB
	// aligned), 0.90 in the last 64 KiB-aligned 64 KiB.
	if sb := parseMD(at(0, 256), "1.1"); sb != nil {
		sigs = append(sigs, Signature{Kind: "md", MD: sb})
	} else if sb := parseMD(at(4096, 256), "1.2"); sb != nil {
		sigs = append(sigs, Signature{Kind: "md", MD: sb})
	} else if sectors := size / 512; sectors > 256 {
		buf := make([]byte, 256)
		off10 := ((sectors - 16) &^ 7) * 512
		off09 := ((sectors &^ 127) - 128) * 512
		if _, err := r.ReadAt(buf, off10); err == nil {
			if sb := parseMD(buf, "1.0"); sb != nil {
				sigs = append(sigs, Signature{Kind: "md", MD: sb})
				return sigs, nil
			}
		}
		if _, err := r.ReadAt(buf, off09); err == nil {
			if sb := parseMD(buf, "0.90"); sb != nil {
				sigs = append(sigs, Signature{Kind: "md", MD: sb})
			}
		}
	}
	return sigs, nil
}

// parseMD reads an md superblock of version v from b (256 bytes).
func parseMD(b []byte, v string) *MDSuperblock {
	if len(b) < 256 || binary.LittleEndian.Uint32(b) != mdMagic {
		return nil
	}
	le := binary.LittleEndian
	major := le.Uint32(b[4:])
	if v == "0.90" {
		if major != 0 {
			return nil
		}
		// mdp_super_t, in 32-bit words: set_uuid0 5, level 7,
		// raid_disks 10, set_uuid1..3 13..15.
		uuid := make([]byte, 0, 16)
		uuid = append(uuid, b[20:24]...)
		uuid = append(uuid, b[52:64]...)
		return &MDSuperblock{
			Version:   v,
			UUID:      hexUUID(uuid),
			Level:     int(int32(le.Uint32(b[28:]))),
			RaidDisks: int(le.Uint32(b[40:])),
		}
	}
	if major != 1 {
		return nil
	}
	return &MDSuperblock{
		Version:   v,
		UUID:      hexUUID(b[16:32]),
		Name:      cstring(b[32:64]),
		Level:     int(int32(le.Uint32(b[72:]))),
		RaidDisks: int(le.Uint32(b[92:])),
		Events:    le.Uint64(b[200:]),
	}
}

func hexUUID(b []byte) string {
	h := hex.EncodeToString(b)
	if len(h) != 32 {
		return h
	}
	// mdadm's notation: four groups of eight.
	return h[0:8] + ":" + h[8:16] + ":" + h[16:24] + ":" + h[24:32]
}

// cstring is b up to its first NUL, trimmed of spaces.
func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.TrimSpace(string(b))
}
