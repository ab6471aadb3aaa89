package disks

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

func names(ds []Disk) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Name)
	}
	return out
}

func find(t *testing.T, ds []Disk, name string) Disk {
	t.Helper()
	for _, d := range ds {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("no disk %s in %v", name, names(ds))
	return Disk{}
}

// A virtio, a SCSI and an NVMe disk, and the block devices that are not
// disks.
func TestDiscoverShapes(t *testing.T) {
	f := newFake(t)
	// virtio_blk: the serial attribute of the block device, no model.
	f.disk("vda", 64<<20, map[string]string{"serial": "COFFER-VDA\n", "queue/rotational": "1\n"})
	// SCSI/SATA: device/model and the unit serial number VPD page.
	pg80 := append([]byte{0, 0x80, 0, 10}, []byte("  WD-12345\x00\x00")...)
	f.disk("sda", 128<<20, map[string]string{"device/model": "WDC WD40EFRX-68N\n", "device/vpd_pg80": string(pg80), "removable": "1\n"})
	// NVMe: /sys/block/nvme0n1 links into the controller's directory,
	// which holds model and serial.
	f.write("sys/devices/pci0000:00/0000:00:04.0/nvme/nvme0/model", "Samsung SSD 980 PRO 1TB                 \n")
	f.write("sys/devices/pci0000:00/0000:00:04.0/nvme/nvme0/serial", "S5GXNF0R123456A     \n")
	dir := "sys/devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1/"
	f.write(dir+"size", "2097152\n")
	f.write(dir+"queue/rotational", "0\n")
	if err := os.Symlink("../devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1", f.path("sys/block/nvme0n1")); err != nil {
		t.Fatal(err)
	}
	f.image("nvme0n1", 1<<30)
	// Not disks, and a card reader without a card.
	for _, n := range []string{"loop0", "ram0", "md127", "dm-0", "sr0", "zram0", "nbd0", "mmcblk0boot0"} {
		f.disk(n, 64<<20, nil)
	}
	f.disk("sdz", 0, nil)

	f.run.missing = map[string]bool{}
	f.run.hook = func(name string, args []string) ([]byte, error) {
		switch args[len(args)-1] {
		case f.dev("sda"):
			return []byte(`{"smart_status":{"passed":true}}`), nil
		case f.dev("vda"):
			// smartctl's exit status has bit 3 set for a failing disk.
			return []byte(`{"smart_status":{"passed":false}}`), errors.New("exit status 8")
		}
		return []byte(`{"smartctl":{"exit_status":4}}`), errors.New("exit status 4")
	}

	ds, err := f.h.Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := names(ds); !slices.Equal(got, []string{"nvme0n1", "sda", "vda"}) {
		t.Fatalf("disks %v", got)
	}
	vda := find(t, ds, "vda")
	if vda.Serial != "COFFER-VDA" || vda.Model != "" || vda.Size != 64<<20 || !vda.Rotational || vda.Path != f.dev("vda") || vda.Health != "failing" {
		t.Errorf("vda %+v", vda)
	}
	sda := find(t, ds, "sda")
	if sda.Serial != "WD-12345" || sda.Model != "WDC WD40EFRX-68N" || sda.Rotational || !sda.Removable || sda.Health != "passed" {
		t.Errorf("sda %+v", sda)
	}
	nv := find(t, ds, "nvme0n1")
	if nv.Model != "Samsung SSD 980 PRO 1TB" || nv.Serial != "S5GXNF0R123456A" || nv.Size != 1<<30 || nv.Health != "" {
		t.Errorf("nvme0n1 %+v", nv)
	}
	for _, d := range ds {
		if d.InUse != "" || d.System {
			t.Errorf("%s: in use %q system %v", d.Name, d.InUse, d.System)
		}
	}
	want := "smartctl -H -j -n standby " + f.dev("nvme0n1")
	if c := f.run.commands(); len(c) != 3 || c[0] != want {
		t.Errorf("commands %q", c)
	}
}

func TestDiscoverWithoutSmartctl(t *testing.T) {
	f := newFake(t)
	f.disk("vda", 64<<20, nil)
	ds, err := f.h.Discover(context.Background())
	if err != nil || len(ds) != 1 || ds[0].Health != "" {
		t.Fatalf("%+v %v", ds, err)
	}
	if c := f.run.commands(); len(c) != 0 {
		t.Errorf("commands %q", c)
	}
}

func TestInUse(t *testing.T) {
	f := newFake(t)
	// Partitions, one of them an md member.
	f.disk("vdb", 64<<20, nil)
	f.part("vdb", "vdb1", 1, 32<<20, "data")
	f.holder("vdb/vdb1", "md127")
	// A mounted partition.
	f.disk("vdc", 64<<20, nil)
	f.part("vdc", "vdc1", 1, 32<<20, "")
	f.write("proc/self/mounts", "proc /proc proc rw 0 0\n/dev/vdc1 /mnt/old\\040data ext4 rw,relatime 0 0\n")
	// A whole-disk member of a running array.
	f.disk("vdd", 64<<20, nil)
	f.holder("vdd", "md126")
	// Signatures only.
	f.disk("vde", 64<<20, nil)
	f.at("vde", 1024, extSuper("backup"))
	f.disk("vdf", 64<<20, nil)
	f.at("vdf", 510, []byte{0x55, 0xaa, 'E', 'F', 'I', ' ', 'P', 'A', 'R', 'T'})
	f.disk("vdg", 64<<20, nil)
	f.at("vdg", 0, []byte("XFSB"))
	f.disk("vdh", 64<<20, nil)
	f.at("vdh", 4096, md12("oldhost:data", 7, 4))
	f.disk("vdi", 64<<20, nil)
	// md 1.0: the superblock 8 KiB before the end.
	f.at("vdi", 64<<20-8192, md12("any:tail", 9, 2))
	// swap in use, and an empty disk.
	f.disk("vdj", 64<<20, nil)
	f.write("proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n/dev/vdj partition 65532 0 -2\n")
	f.disk("vdk", 64<<20, nil)
	// A disk that cannot be read is not taken for empty.
	f.disk("vdl", 64<<20, nil)
	os.Remove(f.dev("vdl"))

	ds, err := f.h.Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"vdb": {"has partitions (vdb1)", "is a member of RAID array md127"},
		"vdc": {"has partitions (vdc1)", "is mounted (/mnt/old data)"},
		"vdd": {"is a member of RAID array md126"},
		"vde": {`holds an ext2/3/4 file system labelled "backup"`},
		"vdf": {"holds a GPT partition table"},
		"vdg": {"holds an XFS file system"},
		"vdh": {`holds a RAID (md) superblock of array "oldhost:data"`},
		"vdi": {`holds a RAID (md) superblock of array "any:tail"`},
		"vdj": {"is mounted (swap)"},
		"vdk": nil,
		"vdl": {"could not be read to check for data"},
	}
	for name, reasons := range want {
		d := find(t, ds, name)
		if len(d.Reasons) != len(reasons) {
			t.Errorf("%s: reasons %q, want %q", name, d.Reasons, reasons)
			continue
		}
		for i, r := range reasons {
			if !strings.HasPrefix(d.Reasons[i], r) {
				t.Errorf("%s: reason %q, want %q", name, d.Reasons[i], r)
			}
		}
		if (d.InUse == "") != (len(reasons) == 0) {
			t.Errorf("%s: in use %q", name, d.InUse)
		}
	}
	if d := find(t, ds, "vdb"); len(d.Partitions) != 1 || d.Partitions[0].PartName != "data" || d.Partitions[0].Size != 32<<20 || d.Partitions[0].Path != f.dev("vdb1") {
		t.Errorf("vdb partitions %+v", d.Partitions)
	}
	if d := find(t, ds, "vdh"); d.Signatures[0].MD.ArrayName() != "data" || d.Signatures[0].MD.RaidDisks != 4 || d.Signatures[0].MD.Version != "1.2" {
		t.Errorf("vdh superblock %+v", d.Signatures[0].MD)
	}
	if d := find(t, ds, "vdi"); d.Signatures[0].MD.Version != "1.0" {
		t.Errorf("vdi superblock %+v", d.Signatures[0].MD)
	}
}

func TestSystemDisk(t *testing.T) {
	f := newFake(t)
	// The image's layout: GPT names coffer-esp and coffer-config.
	f.disk("vda", 256<<20, nil)
	f.part("vda", "vda1", 1, 120<<20, "coffer-esp")
	f.part("vda", "vda2", 2, 64<<20, "coffer-config")
	// A stick whose only mark is the configuration file system's label.
	f.disk("sdb", 128<<20, map[string]string{"removable": "1\n"})
	f.part("sdb", "sdb1", 1, 64<<20, "")
	f.at("sdb1", 1024, extSuper("COFFER-CFG"))
	// A FAT32 ESP labelled by mkfs.vfat -n.
	f.disk("sdc", 128<<20, nil)
	f.part("sdc", "sdc1", 1, 64<<20, "")
	boot := make([]byte, 512)
	copy(boot[71:], "COFFER-ESP ")
	copy(boot[82:], "FAT32   ")
	boot[510], boot[511] = 0x55, 0xaa
	f.at("sdc1", 0, boot)
	f.disk("vdb", 256<<20, nil)

	ds, err := f.h.Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for name, sys := range map[string]bool{"vda": true, "sdb": true, "sdc": true, "vdb": false} {
		if d := find(t, ds, name); d.System != sys {
			t.Errorf("%s: system %v, want %v (%+v)", name, d.System, sys, d.Partitions)
		}
	}
	// A predicate decides instead of the labels.
	f.h.IsSystem = func(d Disk) bool { return d.Name == "vdb" }
	ds, _ = f.h.Discover(context.Background())
	for _, d := range ds {
		if d.System != (d.Name == "vdb") {
			t.Errorf("%s: system %v with the predicate", d.Name, d.System)
		}
	}
	// Own labels.
	f.h.IsSystem = nil
	f.h.SystemLabels = []string{"data-only"}
	ds, _ = f.h.Discover(context.Background())
	for _, d := range ds {
		if d.System {
			t.Errorf("%s: system with other labels", d.Name)
		}
	}
}

func TestProbeSignatures(t *testing.T) {
	img := func(fill func(b []byte)) []byte {
		b := make([]byte, 1<<20)
		fill(b)
		return b
	}
	for _, c := range []struct {
		name string
		img  []byte
		kind string
	}{
		{"empty", img(func([]byte) {}), ""},
		{"mbr", img(func(b []byte) { b[510], b[511] = 0x55, 0xaa }), "mbr"},
		{"gpt-4k", img(func(b []byte) { copy(b[4096:], "EFI PART") }), "gpt"},
		{"lvm", img(func(b []byte) { copy(b[512:], "LABELONE"); copy(b[536:], "LVM2 001") }), "lvm"},
		{"luks", img(func(b []byte) { copy(b, "LUKS\xba\xbe") }), "luks"},
		{"swap", img(func(b []byte) { copy(b[4086:], "SWAPSPACE2") }), "swap"},
		{"btrfs", img(func(b []byte) { copy(b[65600:], "_BHRfS_M") }), "btrfs"},
		{"ntfs", img(func(b []byte) { copy(b[3:], "NTFS    "); b[510], b[511] = 0x55, 0xaa }), "ntfs"},
		{"md-0.90", img(func(b []byte) {
			off := (1<<20)/512&^127 - 128
			binary.LittleEndian.PutUint32(b[off*512:], mdMagic)
		}), "md"},
	} {
		sigs, err := probe(bytesReaderAt(c.img), int64(len(c.img)))
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if len(sigs) > 0 {
			got = sigs[0].Kind
		}
		if got != c.kind || len(sigs) > 1 {
			t.Errorf("%s: %+v", c.name, sigs)
		}
	}
}

type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, errors.New("EOF")
	}
	n := copy(p, b[off:])
	return n, nil
}
