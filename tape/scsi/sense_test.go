package scsi

import (
	"errors"
	"strings"
	"testing"
)

// fixedSense builds 18-byte fixed-format sense data.
func fixedSense(code, flagsKey byte, valid bool, info uint32, asc, ascq byte) []byte {
	b := make([]byte, 18)
	b[0] = code
	if valid {
		b[0] |= 0x80
	}
	b[2] = flagsKey
	b[3], b[4], b[5], b[6] = byte(info>>24), byte(info>>16), byte(info>>8), byte(info)
	b[7] = 10
	b[12], b[13] = asc, ascq
	return b
}

// descSense builds descriptor-format sense data with the given descriptors.
func descSense(code, key, asc, ascq byte, descs ...[]byte) []byte {
	b := []byte{code, key, asc, ascq, 0, 0, 0, 0}
	for _, d := range descs {
		b = append(b, d...)
	}
	b[7] = byte(len(b) - 8)
	return b
}

func infoDesc(valid bool, v uint64) []byte {
	d := []byte{0x00, 0x0A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if valid {
		d[2] = 0x80
	}
	for i := range 8 {
		d[4+i] = byte(v >> (56 - 8*i))
	}
	return d
}

func streamDesc(bits byte) []byte { return []byte{0x04, 0x02, 0, bits} }

func TestDecodeSense(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want Sense
	}{
		{"fixed medium error", fixedSense(0x70, 0x03, false, 0, 0x11, 0x00),
			Sense{ResponseCode: 0x70, Key: KeyMediumError, ASC: 0x11}},
		{"fixed filemark on read, residue 4096", fixedSense(0x70, 0x80, true, 4096, 0x00, 0x01),
			Sense{ResponseCode: 0x70, FileMark: true, ASCQ: 0x01, Information: 4096, InformationValid: true}},
		{"fixed ILI negative residue", fixedSense(0x70, 0x20, true, 0xFFFFFC00, 0, 0),
			Sense{ResponseCode: 0x70, ILI: true, Information: -1024, InformationValid: true}},
		{"fixed early warning", fixedSense(0x70, 0x40, false, 0, 0x00, 0x02),
			Sense{ResponseCode: 0x70, EOM: true, ASCQ: 0x02}},
		{"fixed deferred hardware", fixedSense(0xF1, 0x04, true, 7, 0x44, 0x00),
			Sense{ResponseCode: 0x71, Key: KeyHardwareError, ASC: 0x44, Information: 7, InformationValid: true, Deferred: true}},
		{"descriptor blank check EOD with info", descSense(0x72, 0x08, 0x00, 0x05, infoDesc(true, 1<<40), streamDesc(0x40)),
			Sense{ResponseCode: 0x72, Key: KeyBlankCheck, ASCQ: 0x05, EOM: true, Information: 1 << 40, InformationValid: true}},
		{"descriptor filemark ILI, unknown desc skipped", descSense(0x72, 0x00, 0x00, 0x01, []byte{0x02, 0x06, 0, 0, 0, 0, 0, 0}, streamDesc(0xA0)),
			Sense{ResponseCode: 0x72, ASCQ: 0x01, FileMark: true, ILI: true}},
		{"descriptor deferred, truncated descriptor ignored", append(descSense(0x73, 0x03, 0x0C, 0x00), 0x00, 0x0A, 0x80),
			Sense{ResponseCode: 0x73, Key: KeyMediumError, ASC: 0x0C, Deferred: true}},
		{"fixed cut by additional length", func() []byte { b := fixedSense(0x70, 0x06, false, 0, 0x29, 0x00); b[7] = 0; return b }(),
			Sense{ResponseCode: 0x70, Key: KeyUnitAttention}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeSense(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeSenseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"nil", nil, ErrShort},
		{"7 bytes", []byte{0x70, 0, 3, 0, 0, 0, 0}, ErrShort},
		{"vendor format", make([]byte, 18), ErrInvalid},
		{"7Fh", append([]byte{0x7F}, make([]byte, 17)...), ErrInvalid},
	}
	for _, tt := range tests {
		if _, err := DecodeSense(tt.in); !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestSenseClassification(t *testing.T) {
	type pred = func(Sense) bool
	preds := map[string]pred{
		"NotReady": Sense.NotReady, "MediumNotPresent": Sense.MediumNotPresent,
		"EndOfPartitionOrMedium": Sense.EndOfPartitionOrMedium, "EarlyWarning": Sense.EarlyWarning,
		"WriteProtected": Sense.WriteProtected, "CleaningRequested": Sense.CleaningRequested,
		"CleaningCartridge": Sense.CleaningCartridge, "HardwareError": Sense.HardwareError,
		"MediumError": Sense.MediumError, "UnitAttention": Sense.UnitAttention,
		"BlankCheck": Sense.BlankCheck, "FilemarkDetected": Sense.FilemarkDetected,
		"Retryable": Sense.Retryable, "VolumeOverflow": Sense.VolumeOverflow,
		"EndOfData": Sense.EndOfData, "ProgrammableEarlyWarning": Sense.ProgrammableEarlyWarning,
		"IllegalRequest": Sense.IllegalRequest,
	}
	tests := []struct {
		name string
		s    Sense
		true []string
	}{
		{"no medium", Sense{Key: KeyNotReady, ASC: 0x3A}, []string{"NotReady", "MediumNotPresent"}},
		{"becoming ready", Sense{Key: KeyNotReady, ASC: 0x04, ASCQ: 0x01}, []string{"NotReady", "Retryable"}},
		{"manual intervention", Sense{Key: KeyNotReady, ASC: 0x04, ASCQ: 0x03}, []string{"NotReady"}},
		{"early warning", Sense{EOM: true, ASCQ: 0x02}, []string{"EndOfPartitionOrMedium", "EarlyWarning"}},
		{"early warning recovered, no ASC", Sense{Key: KeyRecoveredError, EOM: true}, []string{"EndOfPartitionOrMedium", "EarlyWarning"}},
		{"PEW", Sense{ASCQ: 0x07}, []string{"EarlyWarning", "ProgrammableEarlyWarning"}},
		{"volume overflow", Sense{Key: KeyVolumeOverflow, EOM: true, ASCQ: 0x02}, []string{"EndOfPartitionOrMedium", "VolumeOverflow"}},
		{"write protect", Sense{Key: KeyDataProtect, ASC: 0x27}, []string{"WriteProtected"}},
		{"cleaning requested", Sense{Key: KeyNoSense, ASCQ: 0x17}, []string{"CleaningRequested"}},
		{"cleaning failure", Sense{Key: KeyMediumError, ASC: 0x30, ASCQ: 0x07}, []string{"CleaningRequested", "MediumError"}},
		{"cleaner loaded", Sense{Key: KeyNotReady, ASC: 0x30, ASCQ: 0x03}, []string{"NotReady", "CleaningCartridge"}},
		{"hardware", Sense{Key: KeyHardwareError, ASC: 0x44}, []string{"HardwareError"}},
		{"medium", Sense{Key: KeyMediumError, ASC: 0x11}, []string{"MediumError"}},
		{"UA reset", Sense{Key: KeyUnitAttention, ASC: 0x29}, []string{"UnitAttention", "Retryable"}},
		{"EOD", Sense{Key: KeyBlankCheck, ASCQ: 0x05}, []string{"BlankCheck", "EndOfData"}},
		{"filemark bit", Sense{FileMark: true, ILI: true}, []string{"FilemarkDetected"}},
		{"filemark asc", Sense{ASCQ: 0x01}, []string{"FilemarkDetected"}},
		{"illegal", Sense{Key: KeyIllegalRequest, ASC: 0x24}, []string{"IllegalRequest"}},
		{"EOM with medium error is not EW", Sense{Key: KeyMediumError, EOM: true}, []string{"EndOfPartitionOrMedium", "MediumError"}},
	}
	for _, tt := range tests {
		want := map[string]bool{}
		for _, n := range tt.true {
			if preds[n] == nil {
				t.Fatalf("unknown predicate %s", n)
			}
			want[n] = true
		}
		for n, p := range preds {
			if got := p(tt.s); got != want[n] {
				t.Errorf("%s: %s = %v, want %v", tt.name, n, got, want[n])
			}
		}
	}
	ua := Sense{Key: KeyUnitAttention, ASC: 0x28}
	if !ua.RetryableAfter(false) || ua.RetryableAfter(true) {
		t.Error("RetryableAfter must refuse once data was transferred")
	}
}

func TestSenseError(t *testing.T) {
	s := Sense{Key: KeyMediumError, ASC: 0x11, ASCQ: 0x00, FileMark: true, Information: 3, InformationValid: true, Deferred: true}
	got := s.Error()
	for _, w := range []string{"deferred medium error", "unrecovered read error", "11h/00h", "filemark", "information 3"} {
		if !strings.Contains(got, w) {
			t.Errorf("Error() = %q, missing %q", got, w)
		}
	}
	var err error = s
	var target Sense
	if !errors.As(err, &target) || target.ASC != 0x11 {
		t.Error("Sense must work as an error value")
	}
	for _, c := range []struct {
		asc, ascq byte
		want      string
	}{
		{0x3A, 0x00, "medium not present"},
		{0x04, 0x55, "logical unit not ready"},
		{0x85, 0x01, "vendor specific"},
		{0x11, 0x90, "vendor specific qualifier"},
		{0x6F, 0x6F, "unknown ASC/ASCQ 6Fh/6Fh"},
	} {
		if d := ASCDescription(c.asc, c.ascq); !strings.Contains(d, c.want) {
			t.Errorf("ASCDescription(%02X,%02X) = %q, want %q", c.asc, c.ascq, d, c.want)
		}
	}
	if KeyVolumeOverflow.String() != "volume overflow" || SenseKey(0x1C).String() != "reserved (0Ch)" {
		t.Error("SenseKey.String")
	}
}

func FuzzDecodeSense(f *testing.F) {
	f.Add(fixedSense(0x70, 0x03, true, 1, 0x11, 0x00))
	f.Add(fixedSense(0x71, 0xE0, true, 0xFFFFFFFF, 0x00, 0x02))
	f.Add(descSense(0x72, 0x08, 0x00, 0x05, infoDesc(true, 9), streamDesc(0xE0)))
	f.Add(descSense(0x73, 0x06, 0x29, 0x00, []byte{0x04, 0xFF, 0x00}))
	f.Add([]byte{0x72, 0, 0, 0, 0, 0, 0, 0xFF, 0x00})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSense(b)
		if err != nil {
			return
		}
		_ = s.Error()
		_ = s.Retryable()
		_ = s.EarlyWarning()
	})
}
