package scsi

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
)

// DeviceType is the INQUIRY PERIPHERAL DEVICE TYPE.
type DeviceType uint8

// Peripheral device types this package cares about.
const (
	DeviceDisk    DeviceType = 0x00
	DeviceTape    DeviceType = 0x01 // sequential-access (SSC)
	DeviceChanger DeviceType = 0x08 // medium changer (SMC)
	DeviceUnknown DeviceType = 0x1F
)

func (t DeviceType) String() string {
	switch t {
	case DeviceDisk:
		return "disk"
	case DeviceTape:
		return "tape"
	case DeviceChanger:
		return "medium changer"
	}
	return fmt.Sprintf("device type %02Xh", uint8(t))
}

// InquiryData is the decoded standard INQUIRY data.
type InquiryData struct {
	Qualifier  uint8 // PERIPHERAL QUALIFIER: 0 connected, 1 not connected, 3 no LU
	DeviceType DeviceType
	Removable  bool  // RMB
	Version    uint8 // VERSION (6 = SPC-4)
	Vendor     string
	Product    string
	Revision   string
}

func trimASCII(b []byte) string { return strings.Trim(string(b), " \x00") }

// ParseInquiry decodes standard INQUIRY data; it needs the 36-byte
// standard part (T10 VENDOR IDENTIFICATION bytes 8-15, PRODUCT
// IDENTIFICATION 16-31, PRODUCT REVISION LEVEL 32-35).
func ParseInquiry(b []byte) (InquiryData, error) {
	if len(b) < 36 {
		return InquiryData{}, fmt.Errorf("%w: INQUIRY data is %d bytes, need 36", ErrShort, len(b))
	}
	return InquiryData{
		Qualifier:  b[0] >> 5,
		DeviceType: DeviceType(b[0] & 0x1F),
		Removable:  b[1]&0x80 != 0,
		Version:    b[2],
		Vendor:     trimASCII(b[8:16]),
		Product:    trimASCII(b[16:32]),
		Revision:   trimASCII(b[32:36]),
	}, nil
}

// vpdPage checks a VPD page header and returns its payload (clipped to the
// buffer when the page was truncated by the allocation length).
func vpdPage(b []byte, page byte) ([]byte, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: VPD page is %d bytes, need 4", ErrShort, len(b))
	}
	if b[1] != page {
		return nil, fmt.Errorf("%w: VPD page code %02Xh, want %02Xh", ErrInvalid, b[1], page)
	}
	n := min(len(b), 4+int(binary.BigEndian.Uint16(b[2:4])))
	return b[4:n], nil
}

// ParseUnitSerialNumber decodes VPD page 80h (UNIT SERIAL NUMBER), trimmed.
func ParseUnitSerialNumber(b []byte) (string, error) {
	p, err := vpdPage(b, VPDUnitSerialNumber)
	if err != nil {
		return "", err
	}
	return trimASCII(p), nil
}

// CodeSet says how a designator's value is encoded.
type CodeSet uint8

// Code sets.
const (
	CodeSetBinary CodeSet = 1
	CodeSetASCII  CodeSet = 2
	CodeSetUTF8   CodeSet = 3
)

// DesignatorType is the DESIGNATOR TYPE of a VPD 83h descriptor.
type DesignatorType uint8

// Designator types (SPC-4).
const (
	DesigVendorSpecific DesignatorType = 0
	DesigT10VendorID    DesignatorType = 1
	DesigEUI64          DesignatorType = 2
	DesigNAA            DesignatorType = 3
	DesigRelTargetPort  DesignatorType = 4
	DesigTargetPortGrp  DesignatorType = 5
	DesigLUGroup        DesignatorType = 6
	DesigMD5            DesignatorType = 7
	DesigSCSIName       DesignatorType = 8
)

// Association of a designator: the logical unit, the target port, or the
// target device.
type Association uint8

// Associations.
const (
	AssocLU         Association = 0
	AssocTargetPort Association = 1
	AssocTarget     Association = 2
)

// Designator is one designation descriptor of VPD page 83h (also used for
// the DVCID identifier of READ ELEMENT STATUS).
type Designator struct {
	ProtocolID  uint8 // valid only when PIV is set
	CodeSet     CodeSet
	PIV         bool
	Association Association
	Type        DesignatorType
	Value       []byte
}

// String renders the value: ASCII/UTF-8 values trimmed, binary ones in hex.
func (d Designator) String() string {
	if d.CodeSet == CodeSetASCII || d.CodeSet == CodeSetUTF8 {
		return trimASCII(d.Value)
	}
	return hex.EncodeToString(d.Value)
}

// parseDesignator decodes one 4-byte-header descriptor at the start of b and
// returns it and its total length.
func parseDesignator(b []byte) (Designator, int, error) {
	if len(b) < 4 {
		return Designator{}, 0, fmt.Errorf("%w: designator header is %d bytes, need 4", ErrShort, len(b))
	}
	n := 4 + int(b[3])
	if n > len(b) {
		return Designator{}, 0, fmt.Errorf("%w: designator of %d bytes, %d present", ErrShort, n, len(b))
	}
	return Designator{
		ProtocolID:  b[0] >> 4,
		CodeSet:     CodeSet(b[0] & 0x0F),
		PIV:         b[1]&0x80 != 0,
		Association: Association(b[1] >> 4 & 0x03),
		Type:        DesignatorType(b[1] & 0x0F),
		Value:       append([]byte(nil), b[4:n]...),
	}, n, nil
}

// DeviceIdentification is the decoded VPD page 83h.
type DeviceIdentification struct {
	Designators []Designator
}

// ParseDeviceIdentification decodes VPD page 83h. A trailing descriptor cut
// off by the allocation length is an error: re-read with a larger one.
func ParseDeviceIdentification(b []byte) (DeviceIdentification, error) {
	p, err := vpdPage(b, VPDDeviceIdentification)
	if err != nil {
		return DeviceIdentification{}, err
	}
	var id DeviceIdentification
	for len(p) > 0 {
		d, n, err := parseDesignator(p)
		if err != nil {
			return id, err
		}
		id.Designators = append(id.Designators, d)
		p = p[n:]
	}
	return id, nil
}

func (id DeviceIdentification) first(t DesignatorType) (Designator, bool) {
	for _, d := range id.Designators {
		if d.Type == t && d.Association == AssocLU {
			return d, true
		}
	}
	return Designator{}, false
}

// NAA returns the logical unit's NAA designator (the WWN) in hex.
func (id DeviceIdentification) NAA() (string, bool) {
	d, ok := id.first(DesigNAA)
	if !ok {
		return "", false
	}
	return hex.EncodeToString(d.Value), true
}

// T10VendorID returns the logical unit's T10 vendor ID designator: the
// 8-byte vendor identification and the vendor-specific rest (for LTO
// drives usually product and serial number), each trimmed.
func (id DeviceIdentification) T10VendorID() (vendor, specific string, ok bool) {
	d, ok := id.first(DesigT10VendorID)
	if !ok {
		return "", "", false
	}
	v := d.Value
	if len(v) <= 8 {
		return trimASCII(v), "", true
	}
	return trimASCII(v[:8]), trimASCII(v[8:]), true
}

// Position is the decoded READ POSITION long form (service action 06h).
type Position struct {
	BOP       bool   // at beginning of partition
	EOP       bool   // between early warning and end of partition
	MPU       bool   // mark position unknown: File is not valid
	LONU      bool   // logical object number unknown: Partition and Block not valid
	BPEW      bool   // beyond programmable early warning
	Partition uint32 // PARTITION NUMBER
	Block     uint64 // LOGICAL OBJECT NUMBER (blocks and filemarks from BOP)
	File      uint64 // LOGICAL FILE IDENTIFIER (filemarks from BOP)
}

// ParseReadPositionLong decodes the 32-byte long form: byte 0 BOP (bit 7),
// EOP (6), MPU (3), LONU (2), BPEW (0); bytes 4-7 partition; 8-15 logical
// object number; 16-23 logical file identifier.
func ParseReadPositionLong(b []byte) (Position, error) {
	if len(b) < ReadPositionLongDataSize {
		return Position{}, fmt.Errorf("%w: READ POSITION long form is %d bytes, need 32", ErrShort, len(b))
	}
	return Position{
		BOP:       b[0]&0x80 != 0,
		EOP:       b[0]&0x40 != 0,
		MPU:       b[0]&0x08 != 0,
		LONU:      b[0]&0x04 != 0,
		BPEW:      b[0]&0x01 != 0,
		Partition: binary.BigEndian.Uint32(b[4:8]),
		Block:     binary.BigEndian.Uint64(b[8:16]),
		File:      binary.BigEndian.Uint64(b[16:24]),
	}, nil
}

// Element is one element status descriptor of READ ELEMENT STATUS.
type Element struct {
	Type        ElementType
	Address     uint16
	Full        bool // holds a medium
	ImpExp      bool // import/export only: medium was imported by an operator
	Except      bool // abnormal state; ASC/ASCQ say why
	Access      bool // the medium transport can reach it
	ASC, ASCQ   byte
	SourceValid bool   // SVALID: Source is meaningful
	Invert      bool   // medium was inverted when moved here
	Source      uint16 // SOURCE STORAGE ELEMENT ADDRESS (where it came from)
	VolumeTag   string // primary volume tag identifier (barcode), trimmed
	AltTag      string // alternate volume tag identifier, trimmed
	DeviceID    *Designator
}

// ElementStatus is the decoded READ ELEMENT STATUS data.
type ElementStatus struct {
	FirstAddress uint16 // FIRST ELEMENT ADDRESS REPORTED
	Available    uint16 // NUMBER OF ELEMENTS AVAILABLE
	Elements     []Element
	// Truncated is set when the device had more data than the buffer
	// holds (the allocation length was too small); Elements holds the
	// complete descriptors that fit.
	Truncated bool
}

const volTagLen = 36 // 32-byte identifier, 2 reserved, 2-byte sequence number

// ParseElementStatus decodes READ ELEMENT STATUS data (SMC-3): an 8-byte
// header (first address, number available, 24-bit byte count), then element
// status pages, each an 8-byte page header (type, PVOLTAG/AVOLTAG, descriptor
// length, 24-bit byte count) followed by fixed-length descriptors: address
// (0-1), flags (2: FULL bit 0, IMPEXP 1, EXCEPT 2, ACCESS 3), ASC/ASCQ (4-5),
// SVALID/INVERT (9), source address (10-11), volume tags, then the DVCID
// identification descriptor if the descriptor is long enough.
func ParseElementStatus(b []byte) (ElementStatus, error) {
	if len(b) < 8 {
		return ElementStatus{}, fmt.Errorf("%w: element status is %d bytes, need 8", ErrShort, len(b))
	}
	es := ElementStatus{
		FirstAddress: binary.BigEndian.Uint16(b[0:2]),
		Available:    binary.BigEndian.Uint16(b[2:4]),
	}
	total := 8 + int(uint32(b[5])<<16|uint32(b[6])<<8|uint32(b[7]))
	if total > len(b) {
		es.Truncated = true
		total = len(b)
	}
	p := b[8:total]
	for len(p) > 0 {
		if len(p) < 8 {
			es.Truncated = true
			break
		}
		typ := ElementType(p[0] & 0x0F)
		pvol, avol := p[1]&0x80 != 0, p[1]&0x40 != 0
		dlen := int(binary.BigEndian.Uint16(p[2:4]))
		count := int(uint32(p[5])<<16 | uint32(p[6])<<8 | uint32(p[7]))
		need := 12
		if pvol {
			need += volTagLen
		}
		if avol {
			need += volTagLen
		}
		if dlen < need {
			return es, fmt.Errorf("%w: element descriptor length %d, need %d", ErrInvalid, dlen, need)
		}
		if typ < ElementMediumTransport || typ > ElementDataTransfer {
			return es, fmt.Errorf("%w: element type code %d in status page", ErrInvalid, typ)
		}
		end := 8 + count
		if end > len(p) {
			es.Truncated = true
			end = len(p)
		}
		descs := p[8:end]
		for len(descs) >= dlen {
			es.Elements = append(es.Elements, parseElement(typ, descs[:dlen], pvol, avol))
			descs = descs[dlen:]
		}
		if len(descs) > 0 {
			es.Truncated = true
		}
		p = p[end:]
	}
	return es, nil
}

func parseElement(typ ElementType, d []byte, pvol, avol bool) Element {
	e := Element{
		Type:        typ,
		Address:     binary.BigEndian.Uint16(d[0:2]),
		Full:        d[2]&0x01 != 0,
		Except:      d[2]&0x04 != 0,
		Access:      d[2]&0x08 != 0,
		ASC:         d[4],
		ASCQ:        d[5],
		SourceValid: d[9]&0x80 != 0,
		Invert:      d[9]&0x40 != 0,
		Source:      binary.BigEndian.Uint16(d[10:12]),
	}
	if typ == ElementImportExport {
		e.ImpExp = d[2]&0x02 != 0
	}
	off := 12
	if pvol {
		e.VolumeTag = trimASCII(d[off : off+32])
		off += volTagLen
	}
	if avol {
		e.AltTag = trimASCII(d[off : off+32])
		off += volTagLen
	}
	if len(d) >= off+4 && d[off+3] > 0 {
		if id, _, err := parseDesignator(d[off:]); err == nil {
			e.DeviceID = &id
		}
	}
	return e
}
