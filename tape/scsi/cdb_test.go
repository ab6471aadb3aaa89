package scsi

import (
	"bytes"
	"errors"
	"testing"
)

func must(t *testing.T, c []byte, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCDBBuilders(t *testing.T) {
	mb := func(c []byte, err error) []byte { return must(t, c, err) }
	tests := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"TEST UNIT READY", TestUnitReady(), []byte{0x00, 0, 0, 0, 0, 0}},
		{"INQUIRY", Inquiry(0x60), []byte{0x12, 0, 0, 0x00, 0x60, 0}},
		{"INQUIRY VPD 80h", InquiryVPD(0x80, 0x0102), []byte{0x12, 0x01, 0x80, 0x01, 0x02, 0}},
		{"REQUEST SENSE fixed", RequestSense(96, false), []byte{0x03, 0, 0, 0, 96, 0}},
		{"REQUEST SENSE desc", RequestSense(252, true), []byte{0x03, 0x01, 0, 0, 252, 0}},
		{"MODE SENSE(10)", mb(ModeSense10(PCChangeable, 0x10, 0x00, true, 0x1234)),
			[]byte{0x5A, 0x08, 0x50, 0x00, 0, 0, 0, 0x12, 0x34, 0}},
		{"MODE SENSE(10) all pages saved", mb(ModeSense10(PCSaved, 0x3F, 0xFF, false, 0xFFFF)),
			[]byte{0x5A, 0x00, 0xFF, 0xFF, 0, 0, 0, 0xFF, 0xFF, 0}},
		{"MODE SELECT(10)", ModeSelect10(true, false, 0x20), []byte{0x55, 0x10, 0, 0, 0, 0, 0, 0x00, 0x20, 0}},
		{"MODE SELECT(10) SP", ModeSelect10(true, true, 0x0102), []byte{0x55, 0x11, 0, 0, 0, 0, 0, 0x01, 0x02, 0}},
		{"READ POSITION long", ReadPositionLong(), []byte{0x34, 0x06, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"LOCATE(16) block", mb(Locate16(Locate16Args{Identifier: 0x0102030405060708})),
			[]byte{0x92, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0}},
		{"LOCATE(16) file CP immed", mb(Locate16(Locate16Args{Dest: DestLogicalFile, ChangePartition: true, Partition: 1, Identifier: 5, Immed: true})),
			[]byte{0x92, 0x0B, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0}},
		{"LOCATE(16) EOD", mb(Locate16(Locate16Args{Dest: DestEndOfData})),
			[]byte{0x92, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"SPACE(16) blocks +3", mb(Space16(SpaceBlocks, 3)),
			[]byte{0x91, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0}},
		{"SPACE(16) filemarks -1", mb(Space16(SpaceFilemarks, -1)),
			[]byte{0x91, 0x01, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0}},
		{"SPACE(16) filemarks -2", mb(Space16(SpaceFilemarks, -2)),
			[]byte{0x91, 0x01, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0, 0, 0, 0}},
		{"SPACE(16) EOD", mb(Space16(SpaceEndOfData, 0)),
			[]byte{0x91, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"REWIND", Rewind(false), []byte{0x01, 0, 0, 0, 0, 0}},
		{"REWIND immed", Rewind(true), []byte{0x01, 1, 0, 0, 0, 0}},
		{"LOAD", mb(LoadUnload(LoadUnloadArgs{Load: true})), []byte{0x1B, 0, 0, 0, 0x01, 0}},
		{"UNLOAD immed", mb(LoadUnload(LoadUnloadArgs{Immed: true})), []byte{0x1B, 1, 0, 0, 0x00, 0}},
		{"LOAD reten hold", mb(LoadUnload(LoadUnloadArgs{Load: true, Retension: true, Hold: true})), []byte{0x1B, 0, 0, 0, 0x0B, 0}},
		{"UNLOAD EOT", mb(LoadUnload(LoadUnloadArgs{EOT: true})), []byte{0x1B, 0, 0, 0, 0x04, 0}},
		{"WRITE FILEMARKS 1", mb(WriteFilemarks6(1, false)), []byte{0x10, 0, 0, 0, 1, 0}},
		{"WRITE FILEMARKS flush immed", mb(WriteFilemarks6(0, true)), []byte{0x10, 1, 0, 0, 0, 0}},
		{"WRITE FILEMARKS max", mb(WriteFilemarks6(0xFFFFFF, false)), []byte{0x10, 0, 0xFF, 0xFF, 0xFF, 0}},
		{"READ(6) 256KiB SILI", mb(Read6(0x040000, true)), []byte{0x08, 0x02, 0x04, 0x00, 0x00, 0}},
		{"READ(6) no SILI", mb(Read6(0x123456, false)), []byte{0x08, 0x00, 0x12, 0x34, 0x56, 0}},
		{"WRITE(6)", mb(Write6(0x080000)), []byte{0x0A, 0x00, 0x08, 0x00, 0x00, 0}},
		{"REPORT DENSITY SUPPORT", ReportDensitySupport(false, false, 0x200), []byte{0x44, 0, 0, 0, 0, 0, 0, 0x02, 0x00, 0}},
		{"REPORT DENSITY SUPPORT media+type", ReportDensitySupport(true, true, 0x10), []byte{0x44, 0x03, 0, 0, 0, 0, 0, 0x00, 0x10, 0}},
		{"LOG SENSE", mb(LogSense(PCChangeable, 0x0C, 0, 0x0001, 0x4000)), []byte{0x4D, 0, 0x4C, 0, 0, 0x00, 0x01, 0x40, 0x00, 0}},
		{"LOG SENSE TapeAlert", LogSenseTapeAlert(0x0144), []byte{0x4D, 0, 0x6E, 0, 0, 0, 0, 0x01, 0x44, 0}},
		{"READ ATTRIBUTE values", mb(ReadAttribute(AttrValues, 0, 1, 0x0400, 0x00010000)),
			[]byte{0x8C, 0x00, 0, 0, 0, 0, 0, 1, 0x04, 0x00, 0x00, 0x01, 0x00, 0x00, 0, 0}},
		{"READ ATTRIBUTE supported", mb(ReadAttribute(AttrSupportedAttrs, 2, 3, 0, 0x1000)),
			[]byte{0x8C, 0x05, 0, 0, 0, 2, 0, 3, 0, 0, 0, 0, 0x10, 0x00, 0, 0}},
		{"WRITE ATTRIBUTE", WriteAttribute(true, 0, 0, 0x0000_0123),
			[]byte{0x8D, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x23, 0, 0}},
		{"READ ELEMENT STATUS storage voltag", mb(ReadElementStatus(ReadElementStatusArgs{Type: ElementStorage, Start: 0x1000, Count: 0x0020, VolTag: true, Alloc: 0x010203})),
			[]byte{0xB8, 0x12, 0x10, 0x00, 0x00, 0x20, 0x00, 0x01, 0x02, 0x03, 0, 0}},
		{"READ ELEMENT STATUS drives dvcid curdata", mb(ReadElementStatus(ReadElementStatusArgs{Type: ElementDataTransfer, Start: 1, Count: 4, CurData: true, DVCID: true, Alloc: 0xFFFFFF})),
			[]byte{0xB8, 0x04, 0x00, 0x01, 0x00, 0x04, 0x03, 0xFF, 0xFF, 0xFF, 0, 0}},
		{"MOVE MEDIUM", MoveMedium(0x0001, 0x1002, 0x0101, false),
			[]byte{0xA5, 0, 0x00, 0x01, 0x10, 0x02, 0x01, 0x01, 0, 0, 0, 0}},
		{"MOVE MEDIUM invert", MoveMedium(0, 0x20, 0x21, true),
			[]byte{0xA5, 0, 0, 0, 0x00, 0x20, 0x00, 0x21, 0, 0, 0x01, 0}},
		{"INITIALIZE ELEMENT STATUS", InitializeElementStatus(), []byte{0x07, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !bytes.Equal(tt.got, tt.want) {
				t.Errorf("got  % X\nwant % X", tt.got, tt.want)
			}
		})
	}
}

func TestCDBRangeErrors(t *testing.T) {
	errs := map[string]error{}
	_, errs["READ(6) > 24 bits"] = Read6(0x1000000, false)
	_, errs["WRITE(6) > 24 bits"] = Write6(0x1000000)
	_, errs["WRITE FILEMARKS > 24 bits"] = WriteFilemarks6(0x1000000, false)
	_, errs["MODE SENSE page"] = ModeSense10(PCCurrent, 0x40, 0, false, 0)
	_, errs["MODE SENSE pc"] = ModeSense10(4, 0, 0, false, 0)
	_, errs["LOG SENSE page"] = LogSense(PCCurrent, 0x40, 0, 0, 0)
	_, errs["LOG SENSE pc"] = LogSense(9, 0, 0, 0, 0)
	_, errs["LOCATE dest"] = Locate16(Locate16Args{Dest: 8})
	_, errs["SPACE code"] = Space16(4, 1)
	_, errs["LOAD+EOT"] = LoadUnload(LoadUnloadArgs{Load: true, EOT: true})
	_, errs["READ ATTRIBUTE sa"] = ReadAttribute(0x20, 0, 0, 0, 0)
	_, errs["RES type"] = ReadElementStatus(ReadElementStatusArgs{Type: 5})
	_, errs["RES alloc"] = ReadElementStatus(ReadElementStatusArgs{Alloc: 0x1000000})
	for name, err := range errs {
		if !errors.Is(err, ErrField) {
			t.Errorf("%s: err = %v, want ErrField", name, err)
		}
	}
}
