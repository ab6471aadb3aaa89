package xfs

import (
	"bytes"
	"context"
	"fmt"
)

const (
	agfCRCOffset  = 216
	agfUUIDOffset = 64
	agiCRCOffset  = 312
	agiUUIDOffset = 296
	aglCRCOffset  = 32
	aglUUIDOffset = 8
)

// Check verifies the primary superblock (sanity and, on v5, its CRC),
// each allocation group's AGF, AGI and AGFL headers (magic, sequence
// number, length, UUID, CRC) and each secondary superblock against the
// primary's geometry. Unreadable headers are findings; only a cancelled
// context is an error.
func (fs *FS) Check(ctx context.Context) ([]string, error) {
	var findings []string
	const maxFindings = 1000
	add := func(format string, a ...any) {
		switch {
		case len(findings) < maxFindings:
			findings = append(findings, fmt.Sprintf(format, a...))
		case len(findings) == maxFindings:
			findings = append(findings, "more findings left out")
		}
	}
	sb := fs.sb
	sect := int(sb.sectSize)
	// The primary was validated by Open; check it against the volume.
	if need := int64(sb.dblocks) << sb.blockLog; need > fs.size {
		add("superblock: filesystem of %d bytes on a volume of %d bytes (truncated)", need, fs.size)
	}
	if sb.inProgress != 0 {
		add("superblock: mkfs did not finish (sb_inprogress set)")
	}
	if fs.crc && sb.incompat&incompatNeedRepair != 0 {
		add("superblock: filesystem is marked as needing repair")
	}
	if sb.rootIno != 0 {
		if _, err := fs.inodeOffset(sb.rootIno); err != nil {
			add("superblock: root %v", err)
		}
	}
	wantUUID := sb.uuid
	if fs.crc && sb.incompat&incompatMetaUUID != 0 {
		wantUUID = sb.metaUUID
	}
	buf := make([]byte, 4*sect)
	for agno := uint32(0); agno < sb.agCount; agno++ {
		if err := ctx.Err(); err != nil {
			return findings, err
		}
		length := sb.agBlocks
		if agno == sb.agCount-1 {
			length = uint32(sb.dblocks - uint64(agno)*uint64(sb.agBlocks))
		}
		base := int64(agno) * int64(sb.agBlocks) << sb.blockLog
		if base >= fs.size {
			add("AG %d and later (%d AGs): beyond the end of the volume", agno, sb.agCount-agno)
			break
		}
		if err := readFull(fs.r, buf, base); err != nil {
			add("AG %d: cannot read headers: %v", agno, err)
			continue
		}
		if agno > 0 {
			for _, f := range fs.checkSecondary(buf[:sect]) {
				add("AG %d: secondary superblock: %s", agno, f)
			}
		}
		agf, agi, agfl := buf[sect:2*sect], buf[2*sect:3*sect], buf[3*sect:]
		for _, h := range []struct {
			name, magic       string
			b                 []byte
			crcOff, uuidOff   int
			seqOff, lengthOff int
		}{
			{"AGF", "XAGF", agf, agfCRCOffset, agfUUIDOffset, 8, 12},
			{"AGI", "XAGI", agi, agiCRCOffset, agiUUIDOffset, 8, 12},
		} {
			if string(h.b[:4]) != h.magic {
				add("AG %d: %s: bad magic %q", agno, h.name, h.b[:4])
				continue
			}
			if v := be.Uint32(h.b[4:]); v != 1 {
				add("AG %d: %s: version %d", agno, h.name, v)
			}
			if seq := be.Uint32(h.b[h.seqOff:]); seq != agno {
				add("AG %d: %s: sequence number %d", agno, h.name, seq)
			}
			if l := be.Uint32(h.b[h.lengthOff:]); l != length {
				add("AG %d: %s: length %d blocks, want %d", agno, h.name, l, length)
			}
			if fs.crc {
				if !crcOK(h.b, h.crcOff) {
					add("AG %d: %s: CRC mismatch", agno, h.name)
				}
				if !bytes.Equal(h.b[h.uuidOff:h.uuidOff+16], wantUUID[:]) {
					add("AG %d: %s: UUID %s differs from the superblock's", agno, h.name, uuidAt(h.b, h.uuidOff))
				}
			}
		}
		if fs.crc {
			switch {
			case string(agfl[:4]) != "XAFL":
				add("AG %d: AGFL: bad magic %q", agno, agfl[:4])
			case be.Uint32(agfl[4:]) != agno:
				add("AG %d: AGFL: sequence number %d", agno, be.Uint32(agfl[4:]))
			case !crcOK(agfl, aglCRCOffset):
				add("AG %d: AGFL: CRC mismatch", agno)
			case !bytes.Equal(agfl[aglUUIDOffset:aglUUIDOffset+16], wantUUID[:]):
				add("AG %d: AGFL: UUID %s differs from the superblock's", agno, uuidAt(agfl, aglUUIDOffset))
			}
		}
	}
	return findings, nil
}

func uuidAt(b []byte, off int) string {
	var u [16]byte
	copy(u[:], b[off:])
	return formatUUID(u)
}

// checkSecondary compares a secondary superblock with the primary.
func (fs *FS) checkSecondary(b []byte) []string {
	s, err := parseSuperblock(b)
	if err != nil {
		return []string{err.Error()}
	}
	p := fs.sb
	if string(s.magic[:]) != "XFSB" {
		return []string{fmt.Sprintf("bad magic %q", s.magic[:])}
	}
	var out []string
	diff := func(what string, got, want any) {
		if got != want {
			out = append(out, fmt.Sprintf("%s %v, primary has %v", what, got, want))
		}
	}
	diff("block size", s.blockSize, p.blockSize)
	diff("data blocks", s.dblocks, p.dblocks)
	diff("AG blocks", s.agBlocks, p.agBlocks)
	diff("AG count", s.agCount, p.agCount)
	diff("sector size", s.sectSize, p.sectSize)
	diff("inode size", s.inodeSize, p.inodeSize)
	diff("version", s.versionNum, p.versionNum)
	diff("directory block log", s.dirBlkLog, p.dirBlkLog)
	diff("incompatible features", s.incompat, p.incompat)
	if s.uuid != p.uuid {
		out = append(out, fmt.Sprintf("UUID %s, primary has %s", formatUUID(s.uuid), formatUUID(p.uuid)))
	}
	if fs.crc && !crcOK(b, sbCRCOffset) {
		out = append(out, "CRC mismatch")
	}
	return out
}
