package scsi

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Operation codes used by this package (SPC-4, SSC-3/4, SMC-3).
const (
	OpTestUnitReady          = 0x00 // SPC-4
	OpRewind                 = 0x01 // SSC
	OpRequestSense           = 0x03 // SPC-4
	OpInitializeElementStat  = 0x07 // SMC-3
	OpRead6                  = 0x08 // SSC
	OpWrite6                 = 0x0A // SSC
	OpWriteFilemarks6        = 0x10 // SSC
	OpInquiry                = 0x12 // SPC-4
	OpLoadUnload             = 0x1B // SSC
	OpReadPosition           = 0x34 // SSC
	OpReportDensitySupport   = 0x44 // SSC
	OpLogSense               = 0x4D // SPC-4
	OpModeSelect10           = 0x55 // SPC-4
	OpModeSense10            = 0x5A // SPC-4
	OpReadAttribute          = 0x8C // SPC-4
	OpWriteAttribute         = 0x8D // SPC-4
	OpSpace16                = 0x91 // SSC
	OpLocate16               = 0x92 // SSC
	OpMoveMedium             = 0xA5 // SMC-3
	OpReadElementStatus      = 0xB8 // SMC-3
	max24                    = 0xFFFFFF
	readPositionLongForm     = 0x06
	LogPageTapeAlert         = 0x2E // SSC TapeAlert log page
	VPDSupportedPages        = 0x00
	VPDUnitSerialNumber      = 0x80
	VPDDeviceIdentification  = 0x83
	ReadPositionLongDataSize = 32 // bytes returned by READ POSITION long form
)

// ErrField is wrapped by builders when an argument does not fit its CDB field.
var ErrField = errors.New("scsi: CDB field out of range")

func fieldErr(cmd, field string, v any, limit any) error {
	return fmt.Errorf("%w: %s %s = %v exceeds %v", ErrField, cmd, field, v, limit)
}

func put24(b []byte, v uint32) {
	b[0] = byte(v >> 16)
	b[1] = byte(v >> 8)
	b[2] = byte(v)
}

// TestUnitReady builds TEST UNIT READY (00h, 6 bytes). No fields.
func TestUnitReady() []byte { return []byte{OpTestUnitReady, 0, 0, 0, 0, 0} }

// Inquiry builds a standard INQUIRY (12h, 6 bytes): EVPD=0, PAGE CODE=0,
// ALLOCATION LENGTH in bytes 3-4.
func Inquiry(alloc uint16) []byte {
	c := []byte{OpInquiry, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(c[3:], alloc)
	return c
}

// InquiryVPD builds INQUIRY (12h, 6 bytes) for a vital product data page:
// byte 1 bit 0 EVPD=1, byte 2 PAGE CODE, bytes 3-4 ALLOCATION LENGTH.
func InquiryVPD(page byte, alloc uint16) []byte {
	c := Inquiry(alloc)
	c[1] = 0x01
	c[2] = page
	return c
}

// RequestSense builds REQUEST SENSE (03h, 6 bytes): byte 1 bit 0 DESC
// (ask for descriptor-format sense), byte 4 ALLOCATION LENGTH.
func RequestSense(alloc uint8, descriptor bool) []byte {
	c := []byte{OpRequestSense, 0, 0, 0, alloc, 0}
	if descriptor {
		c[1] = 0x01
	}
	return c
}

// PageControl is the 2-bit PC field of MODE SENSE and LOG SENSE.
type PageControl uint8

// MODE SENSE: current, changeable, default, saved.
// LOG SENSE: threshold, cumulative, default threshold, default cumulative.
const (
	PCCurrent    PageControl = 0 // mode: current values; log: current threshold
	PCChangeable PageControl = 1 // mode: changeable mask; log: current cumulative
	PCDefault    PageControl = 2
	PCSaved      PageControl = 3 // mode: saved; log: default cumulative

	PCLogThreshold  PageControl = 0 // LOG SENSE: current threshold values
	PCLogCumulative PageControl = 1 // LOG SENSE: current cumulative values
)

// ModeSense10 builds MODE SENSE(10) (5Ah, 10 bytes): byte 1 bit 3 DBD
// (disable block descriptors), byte 2 PC (bits 7-6) and PAGE CODE (bits 5-0),
// byte 3 SUBPAGE CODE, bytes 7-8 ALLOCATION LENGTH.
func ModeSense10(pc PageControl, page, subpage byte, dbd bool, alloc uint16) ([]byte, error) {
	if pc > 3 {
		return nil, fieldErr("MODE SENSE(10)", "PC", pc, 3)
	}
	if page > 0x3F {
		return nil, fieldErr("MODE SENSE(10)", "PAGE CODE", page, 0x3F)
	}
	c := make([]byte, 10)
	c[0] = OpModeSense10
	if dbd {
		c[1] = 0x08
	}
	c[2] = byte(pc)<<6 | page
	c[3] = subpage
	binary.BigEndian.PutUint16(c[7:], alloc)
	return c, nil
}

// ModeSelect10 builds MODE SELECT(10) (55h, 10 bytes): byte 1 bit 4 PF
// (page format; set it for standard pages), bit 0 SP (save pages),
// bytes 7-8 PARAMETER LIST LENGTH.
func ModeSelect10(pf, sp bool, paramLen uint16) []byte {
	c := make([]byte, 10)
	c[0] = OpModeSelect10
	if pf {
		c[1] |= 0x10
	}
	if sp {
		c[1] |= 0x01
	}
	binary.BigEndian.PutUint16(c[7:], paramLen)
	return c
}

// ReadPositionLong builds READ POSITION (34h, 10 bytes) with SERVICE ACTION
// 06h (long form) in byte 1 bits 4-0. SSC requires ALLOCATION LENGTH
// (bytes 7-8) to be zero for this service action; the device returns
// ReadPositionLongDataSize bytes.
func ReadPositionLong() []byte {
	c := make([]byte, 10)
	c[0] = OpReadPosition
	c[1] = readPositionLongForm
	return c
}

// DestType is the LOCATE(16) DEST_TYPE field.
type DestType uint8

// LOCATE(16) destination types (SSC-3/4).
const (
	DestLogicalObject DestType = 0 // logical object (block) identifier
	DestLogicalFile   DestType = 1 // logical file (filemark count) identifier
	DestEndOfData     DestType = 3 // end of data
)

// Locate16Args are the fields of LOCATE(16).
type Locate16Args struct {
	Dest            DestType // DEST_TYPE, 0..7
	ChangePartition bool     // CP: move to Partition first
	Partition       uint8
	Identifier      uint64 // LOGICAL IDENTIFIER
	Immed           bool
}

// Locate16 builds LOCATE(16) (92h, 16 bytes): byte 1 DEST_TYPE (bits 5-3),
// CP (bit 1), IMMED (bit 0); byte 3 PARTITION; bytes 4-11 LOGICAL IDENTIFIER.
func Locate16(a Locate16Args) ([]byte, error) {
	if a.Dest > 7 {
		return nil, fieldErr("LOCATE(16)", "DEST_TYPE", a.Dest, 7)
	}
	c := make([]byte, 16)
	c[0] = OpLocate16
	c[1] = byte(a.Dest) << 3
	if a.ChangePartition {
		c[1] |= 0x02
	}
	if a.Immed {
		c[1] |= 0x01
	}
	c[3] = a.Partition
	binary.BigEndian.PutUint64(c[4:], a.Identifier)
	return c, nil
}

// SpaceCode is the SPACE CODE field.
type SpaceCode uint8

// SPACE(16) codes (SSC-3/4).
const (
	SpaceBlocks              SpaceCode = 0 // logical blocks
	SpaceFilemarks           SpaceCode = 1
	SpaceSequentialFilemarks SpaceCode = 2
	SpaceEndOfData           SpaceCode = 3 // COUNT is ignored by the device
)

// Space16 builds SPACE(16) (91h, 16 bytes): byte 1 CODE (bits 3-0),
// bytes 4-11 COUNT as a signed two's complement value (negative spaces
// toward beginning of partition), bytes 12-13 PARAMETER LENGTH zero.
func Space16(code SpaceCode, count int64) ([]byte, error) {
	if code > SpaceEndOfData {
		return nil, fieldErr("SPACE(16)", "CODE", code, SpaceEndOfData)
	}
	c := make([]byte, 16)
	c[0] = OpSpace16
	c[1] = byte(code)
	binary.BigEndian.PutUint64(c[4:], uint64(count))
	return c, nil
}

// Rewind builds REWIND (01h, 6 bytes): byte 1 bit 0 IMMED.
func Rewind(immed bool) []byte {
	c := []byte{OpRewind, 0, 0, 0, 0, 0}
	if immed {
		c[1] = 0x01
	}
	return c
}

// LoadUnloadArgs are the fields of LOAD UNLOAD.
type LoadUnloadArgs struct {
	Load      bool // LOAD=1 load and position at BOP; LOAD=0 unload
	Retension bool // RETEN: wind to end and back before completing
	EOT       bool // EOT: unload at end of tape (only with LOAD=0)
	Hold      bool // HOLD: keep the medium in the drive (no eject)
	Immed     bool
}

// LoadUnload builds LOAD UNLOAD (1Bh, 6 bytes): byte 1 bit 0 IMMED; byte 4
// HOLD (bit 3), EOT (bit 2), RETEN (bit 1), LOAD (bit 0). SSC makes EOT with
// LOAD set an illegal request, so that combination is refused here.
func LoadUnload(a LoadUnloadArgs) ([]byte, error) {
	if a.EOT && a.Load {
		return nil, fmt.Errorf("%w: LOAD UNLOAD with both EOT and LOAD", ErrField)
	}
	c := []byte{OpLoadUnload, 0, 0, 0, 0, 0}
	if a.Immed {
		c[1] = 0x01
	}
	if a.Hold {
		c[4] |= 0x08
	}
	if a.EOT {
		c[4] |= 0x04
	}
	if a.Retension {
		c[4] |= 0x02
	}
	if a.Load {
		c[4] |= 0x01
	}
	return c, nil
}

// WriteFilemarks6 builds WRITE FILEMARKS(6) (10h, 6 bytes): byte 1 bit 0
// IMMED (WSMK, bit 1, is left zero: no setmarks), bytes 2-4 count.
// A count of zero flushes buffered data to the medium.
func WriteFilemarks6(count uint32, immed bool) ([]byte, error) {
	if count > max24 {
		return nil, fieldErr("WRITE FILEMARKS(6)", "COUNT", count, max24)
	}
	c := []byte{OpWriteFilemarks6, 0, 0, 0, 0, 0}
	if immed {
		c[1] = 0x01
	}
	put24(c[2:5], count)
	return c, nil
}

// Read6 builds a variable-block READ(6) (08h, 6 bytes): byte 1 SILI (bit 1,
// suppress incorrect-length indication) and FIXED=0 (bit 0), bytes 2-4
// TRANSFER LENGTH in bytes (at most FFFFFFh).
func Read6(length uint32, sili bool) ([]byte, error) {
	if length > max24 {
		return nil, fieldErr("READ(6)", "TRANSFER LENGTH", length, max24)
	}
	c := []byte{OpRead6, 0, 0, 0, 0, 0}
	if sili {
		c[1] = 0x02
	}
	put24(c[2:5], length)
	return c, nil
}

// Write6 builds a variable-block WRITE(6) (0Ah, 6 bytes): byte 1 FIXED=0,
// bytes 2-4 TRANSFER LENGTH in bytes (at most FFFFFFh).
func Write6(length uint32) ([]byte, error) {
	if length > max24 {
		return nil, fieldErr("WRITE(6)", "TRANSFER LENGTH", length, max24)
	}
	c := []byte{OpWrite6, 0, 0, 0, 0, 0}
	put24(c[2:5], length)
	return c, nil
}

// ReportDensitySupport builds REPORT DENSITY SUPPORT (44h, 10 bytes): byte 1
// MEDIUM TYPE (bit 1: report medium types instead of densities) and MEDIA
// (bit 0: only the mounted medium), bytes 7-8 ALLOCATION LENGTH.
func ReportDensitySupport(media, mediumType bool, alloc uint16) []byte {
	c := make([]byte, 10)
	c[0] = OpReportDensitySupport
	if mediumType {
		c[1] |= 0x02
	}
	if media {
		c[1] |= 0x01
	}
	binary.BigEndian.PutUint16(c[7:], alloc)
	return c
}

// LogSense builds LOG SENSE (4Dh, 10 bytes): byte 2 PC (bits 7-6) and PAGE
// CODE (bits 5-0), byte 3 SUBPAGE CODE, bytes 5-6 PARAMETER POINTER,
// bytes 7-8 ALLOCATION LENGTH. PPC and SP (byte 1) are zero.
func LogSense(pc PageControl, page, subpage byte, paramPointer, alloc uint16) ([]byte, error) {
	if pc > 3 {
		return nil, fieldErr("LOG SENSE", "PC", pc, 3)
	}
	if page > 0x3F {
		return nil, fieldErr("LOG SENSE", "PAGE CODE", page, 0x3F)
	}
	c := make([]byte, 10)
	c[0] = OpLogSense
	c[2] = byte(pc)<<6 | page
	c[3] = subpage
	binary.BigEndian.PutUint16(c[5:], paramPointer)
	binary.BigEndian.PutUint16(c[7:], alloc)
	return c, nil
}

// LogSenseTapeAlert builds LOG SENSE for the TapeAlert page (2Eh) with
// PC=01b (cumulative values), which is how SSC drives report the 64
// TapeAlert flags. Reading the page clears the flags on most drives.
func LogSenseTapeAlert(alloc uint16) []byte {
	c, _ := LogSense(PCLogCumulative, LogPageTapeAlert, 0, 0, alloc)
	return c
}

// AttributeAction is the READ ATTRIBUTE SERVICE ACTION field.
type AttributeAction uint8

// READ ATTRIBUTE service actions (SPC-4).
const (
	AttrValues         AttributeAction = 0x00
	AttrList           AttributeAction = 0x01
	AttrVolumeList     AttributeAction = 0x02
	AttrPartitionList  AttributeAction = 0x03
	AttrSupportedAttrs AttributeAction = 0x05
)

// ReadAttribute builds READ ATTRIBUTE (8Ch, 16 bytes) for medium auxiliary
// memory: byte 1 SERVICE ACTION (bits 4-0), byte 5 LOGICAL VOLUME NUMBER,
// byte 7 PARTITION NUMBER, bytes 8-9 FIRST ATTRIBUTE IDENTIFIER, bytes 10-13
// ALLOCATION LENGTH. CACHE (byte 14) is zero.
func ReadAttribute(sa AttributeAction, volume, partition uint8, first uint16, alloc uint32) ([]byte, error) {
	if sa > 0x1F {
		return nil, fieldErr("READ ATTRIBUTE", "SERVICE ACTION", sa, 0x1F)
	}
	c := make([]byte, 16)
	c[0] = OpReadAttribute
	c[1] = byte(sa)
	c[5] = volume
	c[7] = partition
	binary.BigEndian.PutUint16(c[8:], first)
	binary.BigEndian.PutUint32(c[10:], alloc)
	return c, nil
}

// WriteAttribute builds WRITE ATTRIBUTE (8Dh, 16 bytes): byte 1 bit 0 WTC
// (write through cache), byte 5 LOGICAL VOLUME NUMBER, byte 7 PARTITION
// NUMBER, bytes 10-13 PARAMETER LIST LENGTH.
func WriteAttribute(writeThrough bool, volume, partition uint8, paramLen uint32) []byte {
	c := make([]byte, 16)
	c[0] = OpWriteAttribute
	if writeThrough {
		c[1] = 0x01
	}
	c[5] = volume
	c[7] = partition
	binary.BigEndian.PutUint32(c[10:], paramLen)
	return c
}

// ElementType is the SMC element type code.
type ElementType uint8

// SMC-3 element types.
const (
	ElementAll             ElementType = 0 // READ ELEMENT STATUS only
	ElementMediumTransport ElementType = 1 // picker / robot arm
	ElementStorage         ElementType = 2 // slot
	ElementImportExport    ElementType = 3 // mail slot
	ElementDataTransfer    ElementType = 4 // tape drive
)

func (t ElementType) String() string {
	switch t {
	case ElementAll:
		return "all"
	case ElementMediumTransport:
		return "medium transport"
	case ElementStorage:
		return "storage"
	case ElementImportExport:
		return "import/export"
	case ElementDataTransfer:
		return "data transfer"
	}
	return fmt.Sprintf("element type %d", uint8(t))
}

// ReadElementStatusArgs are the fields of READ ELEMENT STATUS.
type ReadElementStatusArgs struct {
	Type    ElementType
	Start   uint16 // STARTING ELEMENT ADDRESS
	Count   uint16 // NUMBER OF ELEMENTS
	VolTag  bool   // report primary/alternate volume tags (barcodes)
	CurData bool   // do not move the robot to refresh data
	DVCID   bool   // report device identifiers of data transfer elements
	Alloc   uint32 // ALLOCATION LENGTH, at most FFFFFFh
}

// ReadElementStatus builds READ ELEMENT STATUS (B8h, 12 bytes): byte 1 VOLTAG
// (bit 4) and ELEMENT TYPE CODE (bits 3-0), bytes 2-3 STARTING ELEMENT
// ADDRESS, bytes 4-5 NUMBER OF ELEMENTS, byte 6 CURDATA (bit 1) and DVCID
// (bit 0), bytes 7-9 ALLOCATION LENGTH.
func ReadElementStatus(a ReadElementStatusArgs) ([]byte, error) {
	if a.Type > ElementDataTransfer {
		return nil, fieldErr("READ ELEMENT STATUS", "ELEMENT TYPE CODE", a.Type, ElementDataTransfer)
	}
	if a.Alloc > max24 {
		return nil, fieldErr("READ ELEMENT STATUS", "ALLOCATION LENGTH", a.Alloc, max24)
	}
	c := make([]byte, 12)
	c[0] = OpReadElementStatus
	c[1] = byte(a.Type)
	if a.VolTag {
		c[1] |= 0x10
	}
	binary.BigEndian.PutUint16(c[2:], a.Start)
	binary.BigEndian.PutUint16(c[4:], a.Count)
	if a.CurData {
		c[6] |= 0x02
	}
	if a.DVCID {
		c[6] |= 0x01
	}
	put24(c[7:10], a.Alloc)
	return c, nil
}

// MoveMedium builds MOVE MEDIUM (A5h, 12 bytes): bytes 2-3 MEDIUM TRANSPORT
// ADDRESS, bytes 4-5 SOURCE ADDRESS, bytes 6-7 DESTINATION ADDRESS, byte 10
// bit 0 INVERT.
func MoveMedium(transport, source, dest uint16, invert bool) []byte {
	c := make([]byte, 12)
	c[0] = OpMoveMedium
	binary.BigEndian.PutUint16(c[2:], transport)
	binary.BigEndian.PutUint16(c[4:], source)
	binary.BigEndian.PutUint16(c[6:], dest)
	if invert {
		c[10] = 0x01
	}
	return c
}

// InitializeElementStatus builds INITIALIZE ELEMENT STATUS (07h, 6 bytes),
// which makes the changer inventory every element (may take minutes).
func InitializeElementStatus() []byte {
	return []byte{OpInitializeElementStat, 0, 0, 0, 0, 0}
}
