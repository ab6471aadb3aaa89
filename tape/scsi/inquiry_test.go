package scsi

import (
	"encoding/binary"
	"errors"
	"testing"
)

func pad(s string, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = ' '
	}
	copy(b, s)
	return b
}

func TestParseInquiry(t *testing.T) {
	b := make([]byte, 36)
	b[0] = 0x01
	b[1] = 0x80
	b[2] = 0x06
	copy(b[8:], pad("IBM", 8))
	copy(b[16:], pad("ULT3580-TD8", 16))
	copy(b[32:], "Q3F0")
	got, err := ParseInquiry(b)
	if err != nil {
		t.Fatal(err)
	}
	want := InquiryData{DeviceType: DeviceTape, Removable: true, Version: 6, Vendor: "IBM", Product: "ULT3580-TD8", Revision: "Q3F0"}
	if got != want {
		t.Errorf("got %+v want %+v", got, want)
	}
	b[0] = 0x68 // qualifier 3, changer
	got, _ = ParseInquiry(b)
	if got.DeviceType != DeviceChanger || got.Qualifier != 3 || got.DeviceType.String() != "medium changer" {
		t.Errorf("changer: %+v", got)
	}
	if _, err := ParseInquiry(b[:35]); !errors.Is(err, ErrShort) {
		t.Errorf("short: %v", err)
	}
}

func TestParseUnitSerialNumber(t *testing.T) {
	b := append([]byte{0x01, 0x80, 0x00, 0x0C}, pad("  10WT012345", 12)...)
	s, err := ParseUnitSerialNumber(b)
	if err != nil || s != "10WT012345" {
		t.Errorf("got %q, %v", s, err)
	}
	// Truncated by allocation length: take what is there.
	s, err = ParseUnitSerialNumber(b[:8])
	if err != nil || s != "10" {
		t.Errorf("truncated: got %q, %v", s, err)
	}
	if _, err := ParseUnitSerialNumber([]byte{0x01, 0x83, 0, 0}); !errors.Is(err, ErrInvalid) {
		t.Errorf("wrong page: %v", err)
	}
	if _, err := ParseUnitSerialNumber([]byte{0x01, 0x80}); !errors.Is(err, ErrShort) {
		t.Errorf("short: %v", err)
	}
}

func TestParseDeviceIdentification(t *testing.T) {
	naa := []byte{0x01, 0x03, 0x00, 0x08, 0x50, 0x05, 0x07, 0x63, 0x12, 0x34, 0x56, 0x78}
	t10 := append([]byte{0x02, 0x01, 0x00, 0x1C}, append(pad("IBM", 8), pad("ULT3580-TD8 10WT0123", 20)...)...)
	port := []byte{0x61, 0x93, 0x00, 0x08, 0x50, 0x05, 0x07, 0x63, 0, 0, 0, 1} // NAA, target port, PIV
	body := append(append(append([]byte{}, port...), naa...), t10...)
	b := append([]byte{0x01, 0x83, 0, byte(len(body))}, body...)
	id, err := ParseDeviceIdentification(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(id.Designators) != 3 {
		t.Fatalf("designators: %+v", id.Designators)
	}
	if p := id.Designators[0]; p.Association != AssocTargetPort || !p.PIV || p.ProtocolID != 6 || p.Type != DesigNAA {
		t.Errorf("port designator: %+v", p)
	}
	if s, ok := id.NAA(); !ok || s != "5005076312345678" {
		t.Errorf("NAA = %q %v", s, ok)
	}
	v, rest, ok := id.T10VendorID()
	if !ok || v != "IBM" || rest != "ULT3580-TD8 10WT0123" {
		t.Errorf("T10 = %q %q %v", v, rest, ok)
	}
	if id.Designators[2].String() != "IBM     ULT3580-TD8 10WT0123" || id.Designators[1].String() != "5005076312345678" {
		t.Errorf("String: %q / %q", id.Designators[2].String(), id.Designators[1].String())
	}
	if _, err := ParseDeviceIdentification(b[:len(b)-3]); !errors.Is(err, ErrShort) {
		t.Errorf("truncated designator: %v", err)
	}
	empty, err := ParseDeviceIdentification([]byte{0x01, 0x83, 0, 0})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := empty.NAA(); ok {
		t.Error("NAA on empty page")
	}
	if _, _, ok := empty.T10VendorID(); ok {
		t.Error("T10 on empty page")
	}
}

func TestParseReadPositionLong(t *testing.T) {
	b := make([]byte, 32)
	b[0] = 0x80 | 0x08 | 0x01
	binary.BigEndian.PutUint32(b[4:], 1)
	binary.BigEndian.PutUint64(b[8:], 0x0102030405)
	binary.BigEndian.PutUint64(b[16:], 42)
	got, err := ParseReadPositionLong(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Position{BOP: true, MPU: true, BPEW: true, Partition: 1, Block: 0x0102030405, File: 42}
	if got != want {
		t.Errorf("got %+v want %+v", got, want)
	}
	b[0] = 0x44
	got, _ = ParseReadPositionLong(b)
	if !got.EOP || !got.LONU || got.BOP || got.MPU || got.BPEW {
		t.Errorf("flags: %+v", got)
	}
	if _, err := ParseReadPositionLong(b[:20]); !errors.Is(err, ErrShort) {
		t.Errorf("short: %v", err)
	}
}

// elemDesc builds an element descriptor of length dlen.
func elemDesc(dlen int, addr uint16, flags byte, svalid bool, src uint16, tag string) []byte {
	d := make([]byte, dlen)
	binary.BigEndian.PutUint16(d[0:], addr)
	d[2] = flags
	if svalid {
		d[9] = 0x80
	}
	binary.BigEndian.PutUint16(d[10:], src)
	if tag != "" || dlen >= 48 {
		copy(d[12:], pad(tag, 32))
	}
	return d
}

func elemPage(typ ElementType, pvol bool, dlen int, descs ...[]byte) []byte {
	var body []byte
	for _, d := range descs {
		body = append(body, d...)
	}
	p := make([]byte, 8)
	p[0] = byte(typ)
	if pvol {
		p[1] = 0x80
	}
	binary.BigEndian.PutUint16(p[2:], uint16(dlen))
	n := len(body)
	p[5], p[6], p[7] = byte(n>>16), byte(n>>8), byte(n)
	return append(p, body...)
}

func elemReport(first, avail uint16, pages ...[]byte) []byte {
	var body []byte
	for _, p := range pages {
		body = append(body, p...)
	}
	h := make([]byte, 8)
	binary.BigEndian.PutUint16(h[0:], first)
	binary.BigEndian.PutUint16(h[2:], avail)
	n := len(body)
	h[5], h[6], h[7] = byte(n>>16), byte(n>>8), byte(n)
	return append(h, body...)
}

func sampleElementStatus() []byte {
	drive := elemDesc(52+4+10, 0x0100, 0x09, true, 0x1001, "A00001L8")
	copy(drive[48:], []byte{0x02, 0x00, 0x00, 0x0A})
	copy(drive[52:], "10WT012345")
	return elemReport(0x0001, 5,
		elemPage(ElementMediumTransport, false, 12, elemDesc(12, 0x0001, 0x00, false, 0, "")),
		elemPage(ElementStorage, true, 48,
			elemDesc(48, 0x1000, 0x09, false, 0, "A00000L8\x00\x00"),
			elemDesc(48, 0x1001, 0x08, false, 0, "")),
		elemPage(ElementImportExport, true, 48, elemDesc(48, 0x0010, 0x0B, true, 0x1002, "CLN001L1")),
		elemPage(ElementDataTransfer, true, len(drive), drive),
	)
}

func TestParseElementStatus(t *testing.T) {
	es, err := ParseElementStatus(sampleElementStatus())
	if err != nil {
		t.Fatal(err)
	}
	if es.FirstAddress != 1 || es.Available != 5 || es.Truncated || len(es.Elements) != 5 {
		t.Fatalf("header: %+v", es)
	}
	e := es.Elements
	if e[0].Type != ElementMediumTransport || e[0].Address != 1 || e[0].Full || e[0].VolumeTag != "" {
		t.Errorf("transport: %+v", e[0])
	}
	if e[1].Type != ElementStorage || e[1].Address != 0x1000 || !e[1].Full || !e[1].Access || e[1].VolumeTag != "A00000L8" {
		t.Errorf("slot 1: %+v", e[1])
	}
	if e[2].Full || e[2].VolumeTag != "" || e[2].ImpExp {
		t.Errorf("slot 2: %+v", e[2])
	}
	if e[3].Type != ElementImportExport || !e[3].ImpExp || !e[3].SourceValid || e[3].Source != 0x1002 || e[3].VolumeTag != "CLN001L1" {
		t.Errorf("mail slot: %+v", e[3])
	}
	d := e[4]
	if d.Type != ElementDataTransfer || d.Address != 0x0100 || !d.Full || !d.SourceValid || d.Source != 0x1001 || d.VolumeTag != "A00001L8" {
		t.Errorf("drive: %+v", d)
	}
	if d.DeviceID == nil || d.DeviceID.String() != "10WT012345" {
		t.Errorf("drive id: %+v", d.DeviceID)
	}
}

func TestParseElementStatusTruncated(t *testing.T) {
	full := sampleElementStatus()
	for n := 0; n < len(full); n++ {
		es, err := ParseElementStatus(full[:n])
		if n < 8 {
			if !errors.Is(err, ErrShort) {
				t.Fatalf("len %d: err %v", n, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("len %d: %v", n, err)
		}
		if !es.Truncated && n > 8 {
			t.Fatalf("len %d: not marked truncated", n)
		}
	}
	es, _ := ParseElementStatus(full[:8+8+12+8+48+10])
	if len(es.Elements) != 2 || !es.Truncated {
		t.Errorf("partial: %d elements, truncated %v", len(es.Elements), es.Truncated)
	}
}

func TestParseElementStatusInvalid(t *testing.T) {
	zeroLen := elemReport(1, 1, elemPage(ElementStorage, false, 0, make([]byte, 12)))
	if _, err := ParseElementStatus(zeroLen); !errors.Is(err, ErrInvalid) {
		t.Errorf("zero descriptor length: %v", err)
	}
	tagTooShort := elemReport(1, 1, elemPage(ElementStorage, true, 12, make([]byte, 12)))
	if _, err := ParseElementStatus(tagTooShort); !errors.Is(err, ErrInvalid) {
		t.Errorf("voltag in 12-byte descriptor: %v", err)
	}
	badType := elemReport(1, 1, elemPage(7, false, 12, make([]byte, 12)))
	if _, err := ParseElementStatus(badType); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad type: %v", err)
	}
}

func FuzzParseElementStatus(f *testing.F) {
	f.Add(sampleElementStatus())
	f.Add(elemReport(0, 0))
	f.Add(elemReport(1, 1, elemPage(ElementStorage, true, 48, elemDesc(48, 1, 1, false, 0, "X"))))
	f.Add([]byte{0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 4, 0xC0, 0, 0x60, 0, 0xFF, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := ParseElementStatus(b)
		if err != nil {
			return
		}
		for _, e := range es.Elements {
			if e.DeviceID != nil {
				_ = e.DeviceID.String()
			}
		}
	})
}
