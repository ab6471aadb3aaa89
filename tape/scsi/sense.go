package scsi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Parser errors. Every parse failure wraps one of these.
var (
	ErrShort   = errors.New("scsi: buffer too short")
	ErrInvalid = errors.New("scsi: invalid data")
)

// SenseKey is the 4-bit SENSE KEY (SPC-4 table "Sense key descriptions").
type SenseKey uint8

// Sense keys.
const (
	KeyNoSense        SenseKey = 0x0
	KeyRecoveredError SenseKey = 0x1
	KeyNotReady       SenseKey = 0x2
	KeyMediumError    SenseKey = 0x3
	KeyHardwareError  SenseKey = 0x4
	KeyIllegalRequest SenseKey = 0x5
	KeyUnitAttention  SenseKey = 0x6
	KeyDataProtect    SenseKey = 0x7
	KeyBlankCheck     SenseKey = 0x8
	KeyVendorSpecific SenseKey = 0x9
	KeyCopyAborted    SenseKey = 0xA
	KeyAbortedCommand SenseKey = 0xB
	KeyVolumeOverflow SenseKey = 0xD
	KeyMiscompare     SenseKey = 0xE
	KeyCompleted      SenseKey = 0xF
)

var keyNames = [16]string{
	"no sense", "recovered error", "not ready", "medium error",
	"hardware error", "illegal request", "unit attention", "data protect",
	"blank check", "vendor specific", "copy aborted", "aborted command",
	"reserved (0Ch)", "volume overflow", "miscompare", "completed",
}

func (k SenseKey) String() string { return keyNames[k&0x0F] }

// Sense is decoded sense data, whichever format the device used.
type Sense struct {
	ResponseCode byte // 70h/71h fixed, 72h/73h descriptor
	Key          SenseKey
	ASC, ASCQ    byte

	// Stream command bits: fixed format byte 2, or descriptor type 04h.
	FileMark bool // a filemark was encountered
	EOM      bool // end of medium / early warning side of the partition
	ILI      bool // incorrect length: block size differed from request

	// Information: fixed format bytes 3-6 (sign-extended: for READ and
	// SPACE SSC defines it as requested minus actual, which can be
	// negative), or the descriptor type 00h 8-byte field. Only meaningful
	// when InformationValid (the VALID bit) is set.
	Information      int64
	InformationValid bool

	Deferred bool // 71h/73h: error from an earlier (buffered) command
}

// DecodeSense decodes sense data in fixed (70h/71h) or descriptor
// (72h/73h) format. A buffer shorter than the 8-byte header, or with another
// response code (including vendor 7Fh), is an error. Data cut short by the
// ADDITIONAL SENSE LENGTH or by the buffer is decoded as far as it goes; a
// descriptor that does not fit is ignored.
func DecodeSense(b []byte) (Sense, error) {
	if len(b) < 8 {
		return Sense{}, fmt.Errorf("%w: sense data is %d bytes, need 8", ErrShort, len(b))
	}
	var s Sense
	s.ResponseCode = b[0] & 0x7F
	n := min(len(b), 8+int(b[7]))
	switch s.ResponseCode {
	case 0x70, 0x71:
		s.Deferred = s.ResponseCode == 0x71
		s.Key = SenseKey(b[2] & 0x0F)
		s.FileMark = b[2]&0x80 != 0
		s.EOM = b[2]&0x40 != 0
		s.ILI = b[2]&0x20 != 0
		s.InformationValid = b[0]&0x80 != 0
		s.Information = int64(int32(binary.BigEndian.Uint32(b[3:7])))
		if n > 12 {
			s.ASC = b[12]
		}
		if n > 13 {
			s.ASCQ = b[13]
		}
	case 0x72, 0x73:
		s.Deferred = s.ResponseCode == 0x73
		s.Key = SenseKey(b[1] & 0x0F)
		s.ASC, s.ASCQ = b[2], b[3]
		for d := b[8:n]; len(d) >= 2; {
			dl := 2 + int(d[1])
			if dl > len(d) {
				break
			}
			desc := d[:dl]
			switch desc[0] {
			case 0x00: // information
				if len(desc) >= 12 {
					s.InformationValid = desc[2]&0x80 != 0
					s.Information = int64(binary.BigEndian.Uint64(desc[4:12]))
				}
			case 0x04: // stream commands
				if len(desc) >= 4 {
					s.FileMark = desc[3]&0x80 != 0
					s.EOM = desc[3]&0x40 != 0
					s.ILI = desc[3]&0x20 != 0
				}
			}
			d = d[dl:]
		}
	default:
		return Sense{}, fmt.Errorf("%w: sense response code %02Xh", ErrInvalid, s.ResponseCode)
	}
	return s, nil
}

func (s Sense) is(asc, ascq byte) bool { return s.ASC == asc && s.ASCQ == ascq }

// Error describes the condition in words, e.g.
// "scsi: medium error: unrecovered read error (ASC/ASCQ 11h/00h)".
func (s Sense) Error() string {
	var sb strings.Builder
	sb.WriteString("scsi: ")
	if s.Deferred {
		sb.WriteString("deferred ")
	}
	sb.WriteString(s.Key.String())
	sb.WriteString(": ")
	sb.WriteString(ASCDescription(s.ASC, s.ASCQ))
	fmt.Fprintf(&sb, " (ASC/ASCQ %02Xh/%02Xh)", s.ASC, s.ASCQ)
	if s.FileMark {
		sb.WriteString(", filemark")
	}
	if s.EOM {
		sb.WriteString(", end of medium")
	}
	if s.ILI {
		sb.WriteString(", incorrect length")
	}
	if s.InformationValid {
		fmt.Fprintf(&sb, ", information %d", s.Information)
	}
	return sb.String()
}

// NotReady: sense key NOT READY (02h).
func (s Sense) NotReady() bool { return s.Key == KeyNotReady }

// MediumNotPresent: ASC 3Ah (any qualifier: tray open/closed, loadable...).
func (s Sense) MediumNotPresent() bool { return s.ASC == 0x3A }

// EndOfPartitionOrMedium: the EOM bit is set, or ASC/ASCQ 00h/02h
// END-OF-PARTITION/MEDIUM DETECTED. True for early warning as well as for
// the physical end; use EarlyWarning / VolumeOverflow to tell them apart.
func (s Sense) EndOfPartitionOrMedium() bool { return s.EOM || s.is(0x00, 0x02) }

// EarlyWarning reports that a write completed but the tape is past early
// warning: sense key NO SENSE or RECOVERED ERROR with the EOM bit and
// ASC/ASCQ 00h/02h (00h/00h is accepted too: several drives leave the ASC
// empty), or programmable early warning 00h/07h. Data was written; the
// writer should finish the volume.
func (s Sense) EarlyWarning() bool {
	if s.Key != KeyNoSense && s.Key != KeyRecoveredError {
		return false
	}
	return (s.EOM && (s.is(0x00, 0x02) || s.is(0x00, 0x00))) || s.is(0x00, 0x07)
}

// ProgrammableEarlyWarning: ASC/ASCQ 00h/07h.
func (s Sense) ProgrammableEarlyWarning() bool { return s.is(0x00, 0x07) }

// VolumeOverflow: sense key VOLUME OVERFLOW (0Dh), physical end of
// partition reached with data still unwritten.
func (s Sense) VolumeOverflow() bool { return s.Key == KeyVolumeOverflow }

// EndOfData: ASC/ASCQ 00h/05h END-OF-DATA DETECTED (usually with BLANK
// CHECK when reading or spacing past the last written object).
func (s Sense) EndOfData() bool { return s.is(0x00, 0x05) }

// WriteProtected: ASC 27h (write protected; any qualifier), normally with
// sense key DATA PROTECT.
func (s Sense) WriteProtected() bool { return s.ASC == 0x27 }

// CleaningRequested reports that the drive asks for a cleaning cartridge.
// Table used (SPC-4/SSC):
//
//	00h/17h CLEANING REQUESTED     → true
//	30h/03h CLEANING CARTRIDGE INSTALLED → false (see CleaningCartridge)
//	30h/07h CLEANING FAILURE       → true (cleaning still needed)
//
// The TapeAlert log page (flags 14h/15h) is the other channel; it is read
// separately.
func (s Sense) CleaningRequested() bool { return s.is(0x00, 0x17) || s.is(0x30, 0x07) }

// CleaningCartridge: ASC/ASCQ 30h/03h, a cleaning cartridge is loaded
// (the drive refuses data commands until it is unloaded).
func (s Sense) CleaningCartridge() bool { return s.is(0x30, 0x03) }

// HardwareError: sense key HARDWARE ERROR (04h).
func (s Sense) HardwareError() bool { return s.Key == KeyHardwareError }

// MediumError: sense key MEDIUM ERROR (03h).
func (s Sense) MediumError() bool { return s.Key == KeyMediumError }

// UnitAttention: sense key UNIT ATTENTION (06h).
func (s Sense) UnitAttention() bool { return s.Key == KeyUnitAttention }

// BlankCheck: sense key BLANK CHECK (08h).
func (s Sense) BlankCheck() bool { return s.Key == KeyBlankCheck }

// IllegalRequest: sense key ILLEGAL REQUEST (05h).
func (s Sense) IllegalRequest() bool { return s.Key == KeyIllegalRequest }

// FilemarkDetected: the FILEMARK bit, or ASC/ASCQ 00h/01h.
func (s Sense) FilemarkDetected() bool { return s.FileMark || s.is(0x00, 0x01) }

// Retryable reports whether the same command may simply be issued again:
//
//   - UNIT ATTENTION: the device reported a state change (reset, medium
//     change, mode change) instead of executing the command, so nothing was
//     transferred. The caller must still act on what the attention means —
//     after 28h/00h or 29h/xx the logical position is lost and must be
//     re-established before positional I/O continues.
//   - NOT READY with 04h/01h (becoming ready), 04h/07h (operation in
//     progress) or a positioning operation in progress (00h/16h, 00h/19h,
//     00h/1Ah): wait and retry.
//
// It is never true for MEDIUM ERROR or HARDWARE ERROR (the drive has
// already run its own retry algorithm; repeating a read or write would at
// best duplicate or skip a block), nor for anything else. It cannot know
// the command: never retry a READ or WRITE (or WRITE FILEMARKS / SPACE)
// after data was transferred or the tape moved, whatever the sense — use
// RetryableAfter for that.
func (s Sense) Retryable() bool {
	switch s.Key {
	case KeyUnitAttention:
		return true
	case KeyNotReady:
		return s.is(0x04, 0x01) || s.is(0x04, 0x07) ||
			s.is(0x00, 0x16) || s.is(0x00, 0x19) || s.is(0x00, 0x1A)
	}
	return false
}

// RetryableAfter is Retryable for a command that may have moved the medium:
// false whenever data was transferred (or the residue shows partial
// transfer), because a plain retry on a sequential device would repeat or
// skip records.
func (s Sense) RetryableAfter(transferred bool) bool {
	return !transferred && s.Retryable()
}

type ascKey struct{ asc, ascq byte }

// ascTable holds descriptions (SPC-4 Annex, sequential-access and
// medium-changer rows) of the codes this package classifies plus the ones
// commonly met on LTO drives and libraries.
var ascTable = map[ascKey]string{
	{0x00, 0x00}: "no additional sense information",
	{0x00, 0x01}: "filemark detected",
	{0x00, 0x02}: "end-of-partition/medium detected",
	{0x00, 0x03}: "setmark detected",
	{0x00, 0x04}: "beginning-of-partition/medium detected",
	{0x00, 0x05}: "end-of-data detected",
	{0x00, 0x07}: "programmable early warning detected",
	{0x00, 0x16}: "operation in progress",
	{0x00, 0x17}: "cleaning requested",
	{0x00, 0x18}: "erase operation in progress",
	{0x00, 0x19}: "locate operation in progress",
	{0x00, 0x1A}: "rewind operation in progress",
	{0x03, 0x02}: "excessive write errors",
	{0x04, 0x00}: "logical unit not ready, cause not reportable",
	{0x04, 0x01}: "logical unit is in process of becoming ready",
	{0x04, 0x02}: "logical unit not ready, initializing command required",
	{0x04, 0x03}: "logical unit not ready, manual intervention required",
	{0x04, 0x07}: "logical unit not ready, operation in progress",
	{0x04, 0x12}: "logical unit not ready, offline",
	{0x0C, 0x00}: "write error",
	{0x11, 0x00}: "unrecovered read error",
	{0x11, 0x01}: "read retries exhausted",
	{0x14, 0x00}: "recorded entity not found",
	{0x14, 0x01}: "record not found",
	{0x14, 0x02}: "filemark or setmark not found",
	{0x14, 0x03}: "end-of-data not found",
	{0x15, 0x01}: "mechanical positioning error",
	{0x1A, 0x00}: "parameter list length error",
	{0x20, 0x00}: "invalid command operation code",
	{0x21, 0x01}: "invalid element address",
	{0x24, 0x00}: "invalid field in CDB",
	{0x25, 0x00}: "logical unit not supported",
	{0x26, 0x00}: "invalid field in parameter list",
	{0x27, 0x00}: "write protected",
	{0x28, 0x00}: "not ready to ready change, medium may have changed",
	{0x28, 0x01}: "import or export element accessed",
	{0x29, 0x00}: "power on, reset, or bus device reset occurred",
	{0x29, 0x01}: "power on occurred",
	{0x2A, 0x01}: "mode parameters changed",
	{0x2C, 0x00}: "command sequence error",
	{0x30, 0x00}: "incompatible medium installed",
	{0x30, 0x01}: "cannot read medium - unknown format",
	{0x30, 0x02}: "cannot read medium - incompatible format",
	{0x30, 0x03}: "cleaning cartridge installed",
	{0x30, 0x07}: "cleaning failure",
	{0x31, 0x00}: "medium format corrupted",
	{0x33, 0x00}: "tape length error",
	{0x37, 0x00}: "rounded parameter",
	{0x3A, 0x00}: "medium not present",
	{0x3A, 0x01}: "medium not present - tray closed",
	{0x3A, 0x02}: "medium not present - tray open",
	{0x3B, 0x00}: "sequential positioning error",
	{0x3B, 0x01}: "tape position error at beginning-of-medium",
	{0x3B, 0x02}: "tape position error at end-of-medium",
	{0x3B, 0x08}: "reposition error",
	{0x3B, 0x0D}: "medium destination element full",
	{0x3B, 0x0E}: "medium source element empty",
	{0x3B, 0x11}: "medium magazine not accessible",
	{0x3F, 0x01}: "microcode has been changed",
	{0x44, 0x00}: "internal target failure",
	{0x50, 0x00}: "write append error",
	{0x50, 0x01}: "write append position error",
	{0x51, 0x00}: "erase failure",
	{0x52, 0x00}: "cartridge fault",
	{0x53, 0x00}: "media load or eject failed",
	{0x53, 0x01}: "unload tape failure",
	{0x53, 0x02}: "medium removal prevented",
	{0x5D, 0x00}: "failure prediction threshold exceeded",
}

// ASCDescription names an ASC/ASCQ pair. Unknown pairs get a generic text
// (vendor-specific ranges are called out).
func ASCDescription(asc, ascq byte) string {
	if d, ok := ascTable[ascKey{asc, ascq}]; ok {
		return d
	}
	switch {
	case asc >= 0x80:
		return fmt.Sprintf("vendor specific ASC %02Xh/%02Xh", asc, ascq)
	case ascq >= 0x80:
		return fmt.Sprintf("ASC %02Xh with vendor specific qualifier %02Xh", asc, ascq)
	case asc == 0x04:
		return "logical unit not ready"
	}
	return fmt.Sprintf("unknown ASC/ASCQ %02Xh/%02Xh", asc, ascq)
}
