package volume

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
)

// synthPV builds a small PV image by hand, for metadata cases the LVM
// tools cannot produce here (segment types needing device-mapper, damage,
// a wrapped circular buffer) and for fuzz seeds. Layout: label in sector
// 1, metadata area at 4 KiB, extents of extSectors from peStart sectors.
type synthPV struct {
	size       int
	uuid       string // 32 characters
	text       string // metadata; "" for an orphan PV
	wrap       bool   // place the text across the end of the ring
	mdaSize    int
	peStart    int // sectors
	extSectors int
}

const synthUUID = "abcdefABCDEF0123456789ghijklmnop"

func dashed(u string) string {
	return u[:6] + "-" + u[6:10] + "-" + u[10:14] + "-" + u[14:18] + "-" + u[18:22] + "-" + u[22:26] + "-" + u[26:]
}

func defaultPV(text string) synthPV {
	return synthPV{size: 64 << 10, uuid: synthUUID, text: text, mdaSize: 8 << 10, peStart: 32, extSectors: 8}
}

func (s synthPV) build() []byte {
	le := binary.LittleEndian
	b := make([]byte, s.size)
	l := b[512:1024]
	copy(l, "LABELONE")
	le.PutUint64(l[8:], 1)
	le.PutUint32(l[20:], 32)
	copy(l[24:], "LVM2 001")
	ph := l[32:]
	copy(ph, s.uuid)
	le.PutUint64(ph[32:], uint64(s.size))
	le.PutUint64(ph[40:], uint64(s.peStart*512)) // data area, then terminator
	le.PutUint64(ph[72:], 4096)                  // metadata area, then terminator
	le.PutUint64(ph[80:], uint64(s.mdaSize))
	le.PutUint32(l[16:], lvmCRC(l[20:]))

	m := b[4096 : 4096+s.mdaSize]
	copy(m[4:], mdaMagic)
	le.PutUint32(m[20:], 1)
	le.PutUint64(m[24:], 4096)
	le.PutUint64(m[32:], uint64(s.mdaSize))
	if s.text != "" {
		text := []byte(s.text + "\x00")
		loc := 512
		if s.wrap {
			loc = s.mdaSize - len(text)/2
		}
		for i, c := range text { // into the ring, wrapping after its end
			p := loc + i
			if p >= s.mdaSize {
				p = p - s.mdaSize + 512
			}
			m[p] = c
		}
		le.PutUint64(m[40:], uint64(loc))
		le.PutUint64(m[48:], uint64(len(text)))
		le.PutUint32(m[56:], lvmCRC(text))
	}
	le.PutUint32(m, lvmCRC(m[4:512]))
	return b
}

// vgText returns VG metadata with one PV and the given LV sections.
func vgText(vg string, s synthPV, lvs ...string) string {
	peCount := (s.size/512 - s.peStart) / s.extSectors
	return fmt.Sprintf(`# test metadata
%s {
	id = "VGVGVG-aaaa-bbbb-cccc-dddd-eeee-ffffff"
	seqno = 7
	format = "lvm2"
	status = ["RESIZEABLE", "READ", "WRITE"]
	flags = []
	extent_size = %d	# sectors
	physical_volumes {
		pv0 {
			id = "%s"
			device = "/dev/sdb\"x\""
			status = ["ALLOCATABLE"]
			dev_size = %d
			pe_start = %d
			pe_count = %d
		}
	}
	logical_volumes {
%s
	}
}
contents = "Text Format Volume Group"
version = 1
description = ""
creation_time = 1700000000
`, vg, s.extSectors, dashed(s.uuid), s.size/512, s.peStart, peCount, strings.Join(lvs, "\n"))
}

func linearLV(name string, status string, pvExtent, count int) string {
	return fmt.Sprintf(`		%s {
			id = "LVLVLV-aaaa-bbbb-cccc-dddd-eeee-ffffff"
			status = [%s]
			segment_count = 1
			segment1 {
				start_extent = 0
				extent_count = %d
				type = "striped"
				stripe_count = 1	# linear
				stripes = [
					"pv0", %d
				]
			}
		}`, name, status, count, pvExtent)
}

const visible = `"READ", "WRITE", "VISIBLE"`

func typedLV(name, typ string) string {
	return fmt.Sprintf(`		%s {
			status = [%s]
			segment1 {
				start_extent = 0
				extent_count = 2
				type = "%s"
				thin_pool = "pool"
			}
		}`, name, visible, typ)
}

func TestSynthesizedPV(t *testing.T) {
	base := defaultPV("")
	lin := linearLV("lin", visible, 2, 4)
	tests := []struct {
		name     string
		pv       synthPV
		mangle   func(b []byte)
		ids      string
		warnings []string
	}{
		{name: "linear", pv: defaultPV(vgText("vgs", base, lin)), ids: "s:lvm:vgs/lin"},
		{name: "wrapped ring", pv: func() synthPV { p := defaultPV(vgText("vgs", base, lin)); p.wrap = true; return p }(), ids: "s:lvm:vgs/lin"},
		{name: "unsupported types", pv: defaultPV(vgText("vgs", base, typedLV("thinlv", "thin"), lin, typedLV("r1", "raid1"), typedLV("snap", "snapshot"), typedLV("c", "cache"))),
			ids:      "s:lvm:vgs/lin",
			warnings: []string{"vgs/thinlv: segment type thin not supported", "vgs/r1: segment type raid1 not supported", "vgs/snap: segment type snapshot not supported", "vgs/c: segment type cache not supported"}},
		{name: "hidden LV", pv: defaultPV(vgText("vgs", base, lin, linearLV("lin_rimage_0", `"READ", "WRITE"`, 0, 1))), ids: "s:lvm:vgs/lin"},
		{name: "extents beyond PV", pv: defaultPV(vgText("vgs", base, linearLV("big", visible, 2, 400))), warnings: []string{"vgs/big: extents 2+400 beyond"}},
		{name: "orphan", pv: base, warnings: []string{"LVM PV " + synthUUID + " belongs to no volume group"}},
		{name: "label checksum", pv: defaultPV(vgText("vgs", base, lin)), mangle: func(b []byte) { b[600]++ },
			ids: "s:whole", warnings: []string{"LVM label in sector 1 ignored: label checksum mismatch"}},
		{name: "mda header checksum", pv: defaultPV(vgText("vgs", base, lin)), mangle: func(b []byte) { b[4096+100]++ },
			warnings: []string{"LVM metadata area 1: header checksum mismatch", "belongs to no volume group"}},
		{name: "metadata checksum", pv: defaultPV(vgText("vgs", base, lin)), mangle: func(b []byte) { b[4096+600]++ },
			warnings: []string{"LVM metadata area 1: metadata checksum mismatch"}},
		{name: "metadata syntax", pv: defaultPV("vgs { id = \"x\"\n seqno = [ 1 \n"), warnings: []string{"LVM metadata area 1: metadata line 3: value missing"}},
		{name: "no VG section", pv: defaultPV("contents = \"x\"\n"), warnings: []string{"metadata describes no volume group"}},
		{name: "missing PV", pv: defaultPV(strings.Replace(vgText("vgs", base, lin), `"pv0", 2`, `"pv7", 2`, 1)),
			warnings: []string{"vgs/lin: segment refers to unknown PV pv7"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := tc.pv.build()
			if tc.mangle != nil {
				tc.mangle(img)
			}
			if tc.ids == "s:lvm:vgs/lin" { // tag the LV's extents 2..5
				p := tc.pv
				for s := 0; s < 4*p.extSectors; s++ {
					copy(img[(p.peStart+2*p.extSectors+s)*512:], tag("lin", int64(s)))
				}
			}
			vols, warns := discover(t, memDisk("s", img))
			if got := ids(vols); got != tc.ids {
				t.Errorf("ids %q, want %q; warnings %q", got, tc.ids, warns)
			}
			for _, w := range tc.warnings {
				if !hasWarning(warns, w) {
					t.Errorf("warnings %q, want %q", warns, w)
				}
			}
			if len(tc.warnings) == 0 && len(warns) != 0 {
				t.Errorf("warnings %q", warns)
			}
			if v := volumeByID(vols, "lvm:vgs/lin"); v != nil {
				if v.Size != 4*8*512 || v.TypeName != TypeLVMLogicalVolume {
					t.Errorf("lin: %+v", *v)
				}
				checkTags(t, "lin", v.R, v.Size)
			}
		})
	}
}

func TestLatestMetadataWins(t *testing.T) {
	// Two PVs of one VG whose metadata copies differ in seqno: the newer
	// one (on the second disk) describes an LV the older lacks.
	u2 := "ZYXWVUzyxwvu9876543210qrstuvwxyz"
	p1, p2 := defaultPV(""), defaultPV("")
	p2.uuid = u2
	two := func(seq int, lvs ...string) string {
		s := vgText("vgm", p1, lvs...)
		s = strings.Replace(s, "seqno = 7", fmt.Sprintf("seqno = %d", seq), 1)
		return strings.Replace(s, "\t\t}\n\t}\n\tlogical_volumes", fmt.Sprintf("\t\t}\n\t\tpv1 {\n id = %q\n pe_start = 32\n pe_count = 124\n }\n\t}\n\tlogical_volumes", dashed(u2)), 1)
	}
	p1.text = two(3, linearLV("old", visible, 0, 1))
	p2.text = two(4, linearLV("old", visible, 0, 1), strings.Replace(linearLV("new", visible, 0, 2), `"pv0"`, `"pv1"`, 1))
	vols, warns := discover(t, memDisk("a", p1.build()), memDisk("b", p2.build()))
	if got := ids(vols); got != "a:lvm:vgm/old b:lvm:vgm/new" {
		t.Errorf("ids %q warnings %q", got, warns)
	}
	// The same PV twice (a cloned disk): a warning, and the LVs once.
	vols, warns = discover(t, memDisk("a", p1.build()), memDisk("c", p1.build()))
	if got := ids(vols); got != "a:lvm:vgm/old" || !hasWarning(warns, "is a duplicate of disk a") {
		t.Errorf("duplicate PV: ids %q warnings %q", got, warns)
	}
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		text string
		err  string
	}{
		{`a = 1 b = "x\"y" c = [1, "two", 3,] s { t { u = -5 } }`, ""},
		{`a = [ ]`, ""},
		{`a = 1.5 w = word`, ""},
		{`a = `, "value missing"},
		{`a {`, "not closed"},
		{`}`, "unexpected }"},
		{`a = "unterminated`, "unterminated string"},
		{`a = [ [1] ]`, "unexpected"},
		{`= 3`, "expected a name"},
		{`a b`, "expected = or {"},
		{strings.Repeat("a {", 40) + strings.Repeat("}", 40), "nested too deep"},
	}
	for _, tc := range tests {
		root, err := parseConfig([]byte(tc.text))
		if tc.err == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.text, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: error %v, want %q (root %v)", tc.text, err, tc.err, root)
		}
	}
	root, err := parseConfig([]byte(`a = 1 b = "x\"y" c = [1, "two"] s { t { u = -5 } }`))
	if err != nil {
		t.Fatal(err)
	}
	if v := root.values["b"]; v.kind != cfgString || v.str != `x"y` {
		t.Errorf("b = %+v", v)
	}
	if v := root.values["c"]; v.kind != cfgList || len(v.list) != 2 || v.list[1].str != "two" {
		t.Errorf("c = %+v", v)
	}
	if n, err := root.section("s").section("t").num("u"); n != -5 || err != nil {
		t.Errorf("u = %d, %v", n, err)
	}
}
