package volume

import (
	"context"
	"errors"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"testing"
)

const mib = 1 << 20

// makeGPT builds a 64 MiB GPT image with sgdisk: ESP, Linux filesystem,
// swap and LVM partitions with names, each partition's sectors tagged.
func makeGPT(t testing.TB) string {
	img := sparse(t, "gpt.img", 64*mib)
	run(t, "", "sgdisk",
		"-n1:2048:+8M", "-t1:ef00", "-c1:EFI System Partition",
		"-n2:0:+16M", "-t2:8300", "-c2:root fs",
		"-n3:0:+8M", "-t3:8200", "-c3:swap",
		"-n5:0:0", "-t5:8e00", "-c5:lvm ünïcode",
		img)
	return img
}

// makeMBR builds a 64 MiB MBR image with sfdisk: two primaries, an
// extended partition and three logicals.
func makeMBR(t testing.TB) string {
	img := sparse(t, "mbr.img", 64*mib)
	run(t, "label: dos\n2048,16384,83\n,16384,82\n,,5\n,8192,83\n,8192,8e\n,,83\n", "sfdisk", "-q", img)
	return img
}

// tagPartitions writes tag sectors at the start of every partition.
func tagPartitions(t testing.TB, img string, parts []sfdiskPart) {
	for _, p := range parts {
		if p.Type == "5" {
			continue // the extended container holds the first EBR
		}
		for s := int64(0); s < 8; s++ {
			patch(t, img, (p.Start+s)*512, tag("part", int64(p.Index)*1000+s))
		}
	}
}

// checkAgainstSfdisk compares volumes with sfdisk's view of the table.
func checkAgainstSfdisk(t *testing.T, vols []Volume, parts []sfdiskPart, scheme string) {
	t.Helper()
	var want []sfdiskPart
	for _, p := range parts {
		if scheme == SchemeMBR && (p.Type == "5" || p.Type == "f" || p.Type == "85") {
			continue // the extended container is not a volume
		}
		want = append(want, p)
	}
	if len(vols) != len(want) {
		t.Fatalf("got volumes %s, want %d partitions %+v", ids(vols), len(want), want)
	}
	for i, p := range want {
		v := vols[i]
		if v.Scheme != scheme || v.Index != p.Index || v.Offset != p.Start*512 || v.Size != p.Size*512 || v.ID != "p"+strconv.Itoa(p.Index) {
			t.Errorf("volume %d = %+v, want partition %+v", i, v, p)
		}
		if scheme == SchemeGPT && (v.TypeGUID != strings.ToLower(p.Type) || v.PartName != p.Name) {
			t.Errorf("volume %d type %s name %q, want %s %q", i, v.TypeGUID, v.PartName, p.Type, p.Name)
		}
		if scheme == SchemeMBR && v.TypeGUID != "0x"+pad2(p.Type) {
			t.Errorf("volume %d type %s, want %s", i, v.TypeGUID, p.Type)
		}
		for s := int64(0); s < 8; s++ {
			buf := make([]byte, 512)
			if _, err := v.R.ReadAt(buf, s*512); err != nil {
				t.Fatalf("volume %s: read sector %d: %v", v.ID, s, err)
			}
			if want := tag("part", int64(p.Index)*1000+s); string(buf) != string(want) {
				t.Fatalf("volume %s sector %d: %.30q, want %.30q", v.ID, s, buf, want)
			}
		}
	}
}

func pad2(s string) string {
	if len(s) == 1 {
		return "0" + s
	}
	return s
}

func TestGPT(t *testing.T) {
	img := makeGPT(t)
	parts := sfdiskParts(t, img)
	tagPartitions(t, img, parts)
	vols, warns := discover(t, openDisk(t, "scsi0:0", img))
	if len(warns) != 0 {
		t.Errorf("warnings: %q", warns)
	}
	checkAgainstSfdisk(t, vols, parts, SchemeGPT)
	wantTypes := []string{TypeEFISystem, TypeLinuxFilesystem, TypeLinuxSwap, TypeLinuxLVM}
	for i, v := range vols {
		if v.TypeName != wantTypes[i] {
			t.Errorf("%s: type name %q, want %q", v.ID, v.TypeName, wantTypes[i])
		}
		if v.Disk != "scsi0:0" {
			t.Errorf("%s: disk %q", v.ID, v.Disk)
		}
	}
	if vols[3].Index != 5 || vols[3].Name != "disk scsi0:0 partition 5" || vols[3].PartName != "lvm ünïcode" {
		t.Errorf("partition 5: %+v", vols[3])
	}
}

func TestMBR(t *testing.T) {
	img := makeMBR(t)
	parts := sfdiskParts(t, img)
	tagPartitions(t, img, parts)
	vols, warns := discover(t, openDisk(t, "d", img))
	if len(warns) != 0 {
		t.Errorf("warnings: %q", warns)
	}
	checkAgainstSfdisk(t, vols, parts, SchemeMBR)
	if got := ids(vols); got != "d:p1 d:p2 d:p5 d:p6 d:p7" {
		t.Errorf("ids %s", got)
	}
	if vols[1].TypeName != TypeLinuxSwap || vols[3].TypeName != TypeLinuxLVM || vols[0].TypeName != TypeLinuxFilesystem {
		t.Errorf("type names %q %q %q", vols[0].TypeName, vols[1].TypeName, vols[3].TypeName)
	}
}

func TestMBRChainLoop(t *testing.T) {
	img := makeMBR(t)
	parts := sfdiskParts(t, img)
	var ext int64
	for _, p := range parts {
		if p.Type == "5" {
			ext = p.Start
		}
	}
	// The first EBR's link entry points back at the first EBR.
	patch(t, img, ext*512+446+16+8, []byte{0, 0, 0, 0})
	vols, warns := discover(t, openDisk(t, "d", img))
	if got := ids(vols); got != "d:p1 d:p2 d:p5" {
		t.Errorf("ids %s", got)
	}
	if !hasWarning(warns, "loop in the extended partition chain") {
		t.Errorf("warnings %q", warns)
	}
}

func TestGPTDamage(t *testing.T) {
	base := makeGPT(t)
	parts := sfdiskParts(t, base)
	tagPartitions(t, base, parts)
	st, _ := os.Stat(base)
	last := st.Size() - 512
	tests := []struct {
		name    string
		damage  func(img string)
		warning string // expected warning ("" for none)
		ok      bool   // volumes as sfdisk saw them
	}{
		{"primary header zeroed", func(img string) { patch(t, img, 512, make([]byte, 512)) }, "no primary GPT found; using the backup GPT", true},
		{"primary header crc", func(img string) { patch(t, img, 512+40, []byte{9}) }, "header CRC mismatch", true},
		{"entry array crc", func(img string) { patch(t, img, 1024+56, []byte{'X'}) }, "partition entry array CRC mismatch", true},
		{"start zeroed", func(img string) { patch(t, img, 0, make([]byte, 34*512)) }, "using the backup GPT at sector 131071", true},
		{"both headers", func(img string) {
			patch(t, img, 512+40, []byte{9})
			patch(t, img, last+40, []byte{9})
		}, "cannot read partition table of disk d: primary GPT: header CRC mismatch", false},
		{"protective MBR only", func(img string) {
			patch(t, img, 512, make([]byte, 512))
			patch(t, img, last, make([]byte, 512))
		}, "cannot read partition table of disk d", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := copyFile(t, base)
			tc.damage(img)
			vols, warns := discover(t, openDisk(t, "d", img))
			if !hasWarning(warns, tc.warning) {
				t.Errorf("warnings %q, want one containing %q", warns, tc.warning)
			}
			if tc.ok {
				checkAgainstSfdisk(t, vols, parts, SchemeGPT)
			} else if len(vols) != 0 {
				t.Errorf("volumes %s, want none", ids(vols))
			}
		})
	}
}

// shortReader is a disk whose reads fail beyond n bytes although its
// Size says more: a truncated source.
type shortReader struct {
	b []byte
}

func (s shortReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(s.b)) {
		return 0, errors.New("no such block")
	}
	n := copy(p, s.b[off:])
	if n < len(p) {
		return n, errors.New("no such block")
	}
	return n, nil
}

func TestTruncatedAndGarbage(t *testing.T) {
	gpt := makeGPT(t)
	full, err := os.ReadFile(gpt)
	if err != nil {
		t.Fatal(err)
	}
	mbr, err := os.ReadFile(makeMBR(t))
	if err != nil {
		t.Fatal(err)
	}
	rnd := make([]byte, 1*mib)
	rand.New(rand.NewSource(1)).Read(rnd)
	protGarbage := append([]byte(nil), rnd...)
	copy(protGarbage[446:], []byte{0, 0, 2, 0, 0xEE, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	protGarbage[510], protGarbage[511] = 0x55, 0xAA
	copy(protGarbage[512:], "EFI PART")

	tests := []struct {
		name    string
		disk    Disk
		ids     string
		warning string
	}{
		{"gpt truncated to 20MiB", memDisk("d", full[:20*mib]), "d:p1 d:p2",
			"partition 2 ends at byte 26214400, beyond the disk's end (20971520 bytes); clipped"},
		{"gpt truncated to 4KiB", memDisk("d", full[:4096]), "",
			"cannot read partition table of disk d: primary GPT: partition entry array at sector 2 (16384 bytes) is beyond the disk's end"},
		{"gpt source short", Disk{Name: "d", R: shortReader{full[:8192]}, Size: 64 * mib}, "",
			"cannot read partition table of disk d: primary GPT: read partition entry array"},
		{"mbr truncated to 20MiB", memDisk("d", mbr[:20*mib]), "d:p1 d:p2 d:p5",
			"partition 5 ends at byte 23068672, beyond the disk's end (20971520 bytes); clipped"},
		{"garbage", memDisk("d", rnd), "d:whole", ""},
		{"garbage with protective MBR", memDisk("d", protGarbage), "",
			"cannot read partition table of disk d: primary GPT: header"},
		{"tiny", memDisk("d", []byte{1, 2, 3}), "", "cannot read partition table of disk d: disk is 3 bytes"},
		{"empty", memDisk("d", nil), "", "cannot read partition table of disk d"},
		{"zeros", memDisk("d", make([]byte, 64*1024)), "d:whole", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vols, warns := discover(t, tc.disk)
			if got := ids(vols); got != tc.ids {
				t.Errorf("ids %q, want %q (warnings %q)", got, tc.ids, warns)
			}
			if tc.warning == "" && len(warns) != 0 || tc.warning != "" && !hasWarning(warns, tc.warning) {
				t.Errorf("warnings %q, want %q", warns, tc.warning)
			}
			for _, v := range vols {
				if v.Offset+v.Size > tc.disk.Size {
					t.Errorf("%s reaches past the disk", v.ID)
				}
			}
		})
	}
}

func TestWholeDiskFilesystem(t *testing.T) {
	ext := sparse(t, "ext.img", 8*mib)
	run(t, "", "mke2fs", "-q", "-F", ext, "8M")
	fat := sparse(t, "fat.img", 8*mib)
	run(t, "", "mkfs.vfat", fat)
	for _, img := range []string{ext, fat} {
		vols, warns := discover(t, openDisk(t, "w", img))
		if len(vols) != 1 || len(warns) != 0 {
			t.Fatalf("%s: volumes %s warnings %q", img, ids(vols), warns)
		}
		v := vols[0]
		if v.Scheme != SchemeNone || v.ID != "whole" || v.Offset != 0 || v.Size != 8*mib || v.Name != "disk w" {
			t.Errorf("%s: %+v", img, v)
		}
	}
}

func TestSeveralDisksAndCancel(t *testing.T) {
	g, m := openDisk(t, "a", makeGPT(t)), openDisk(t, "b", makeMBR(t))
	vols, _ := discover(t, g, m)
	if got := ids(vols); got != "a:p1 a:p2 a:p3 a:p5 b:p1 b:p2 b:p5 b:p6 b:p7" {
		t.Errorf("ids %s", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := Discover(ctx, []Disk{g, m}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Discover: %v", err)
	}
}
