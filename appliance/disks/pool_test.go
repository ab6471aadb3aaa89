package disks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// mdadmMakesNode answers mdadm --create and --assemble as mdadm does
// without udev: it makes /dev/md/<name> → ../md127.
func (f *fake) mdadmMakesNode(off int64, fsSig []byte) {
	f.run.hook = func(name string, args []string) ([]byte, error) {
		if name == "mdadm" && (args[0] == "--create" || args[0] == "--assemble") {
			f.mdNode(filepath.Base(args[1]), "md127", 64<<20)
			if fsSig != nil {
				f.at("md127", off, fsSig)
			}
		}
		return nil, nil
	}
}

func TestCreatePoolCommands(t *testing.T) {
	for _, c := range []struct {
		level, fs string
		disks     []string
		mdadm     string // after "mdadm --create <node> --run "
		mkfs      string // with <node> at the end
	}{
		{"raid1", "", []string{"vdb", "vdc"}, "--level=1 --raid-devices=2", "mkfs.ext4 -F -L coffer-pool -E lazy_itable_init=1,lazy_journal_init=1"},
		{"raid5", "ext4", []string{"vdb", "vdc", "vdd"}, "--level=5 --raid-devices=3", "mkfs.ext4 -F -L coffer-pool -E lazy_itable_init=1,lazy_journal_init=1"},
		{"raid6", "", []string{"vdb", "vdc", "vdd", "vde"}, "--level=6 --raid-devices=4", "mkfs.ext4 -F -L coffer-pool -E lazy_itable_init=1,lazy_journal_init=1"},
		{"raid10", "xfs", []string{"vdb", "vdc", "vdd", "vde"}, "--level=10 --layout=n2 --raid-devices=4", "mkfs.xfs -f -L coffer-pool"},
	} {
		t.Run(c.level, func(t *testing.T) {
			f := newFake(t)
			for _, n := range []string{"vda", "vdb", "vdc", "vdd", "vde"} {
				f.disk(n, 64<<20, map[string]string{"serial": "S-" + n})
			}
			// vdc held an old file system on a partition: erased once confirmed.
			f.part("vdc", "vdc1", 1, 32<<20, "")
			f.mdadmMakesNode(0, nil)
			mp := filepath.Join(f.root, "mnt", "pool")
			got, err := f.h.CreatePool(context.Background(), Plan{Level: c.level, Disks: c.disks, FS: c.fs, MountPoint: mp, Confirmed: []string{"vdc"}})
			if err != nil {
				t.Fatal(err)
			}
			if got != mp {
				t.Errorf("mount point %s", got)
			}
			node := f.dev("md/coffer")
			var want []string
			for _, d := range c.disks {
				if d == "vdc" {
					want = append(want, "wipefs -a "+f.dev("vdc1"))
				}
				want = append(want, "wipefs -a "+f.dev(d))
			}
			mdadm := "mdadm --create " + node + " --run " + c.mdadm + " --metadata=1.2 --bitmap=internal --name=coffer --homehost=any"
			for _, d := range c.disks {
				mdadm += " " + f.dev(d)
			}
			want = append(want, mdadm, c.mkfs+" "+node)
			if cmds := f.run.commands(); !slices.Equal(cmds, want) {
				t.Errorf("commands\n%s\nwant\n%s", strings.Join(cmds, "\n"), strings.Join(want, "\n"))
			}
			fs := c.fs
			if fs == "" {
				fs = "ext4"
			}
			if want := []mountCall{{node, mp, fs, syscall.MS_NOATIME}}; !slices.Equal(f.mounts, want) {
				t.Errorf("mounts %+v, want %+v", f.mounts, want)
			}
			b, err := os.ReadFile(filepath.Join(mp, InfoFile))
			if err != nil {
				t.Fatal(err)
			}
			var info PoolInfo
			if err := json.Unmarshal(b, &info); err != nil || info.Name != "coffer" || info.Level != c.level || info.FS != fs || len(info.Members) != len(c.disks) || info.Members[0] != "vdb (serial S-vdb)" {
				t.Errorf("pool info %s (%v)", b, err)
			}
		})
	}
}

func TestCreatePoolRefuses(t *testing.T) {
	f := newFake(t)
	f.disk("vda", 64<<20, nil)
	f.part("vda", "vda1", 1, 32<<20, "coffer-esp")
	for _, n := range []string{"vdb", "vdc", "vdd", "vde"} {
		f.disk(n, 64<<20, nil)
	}
	f.at("vdd", 1024, extSuper("old"))
	f.disk("vdf", 64<<20, nil)
	f.part("vdf", "vdf1", 1, 32<<20, "")
	f.write("proc/self/mounts", "/dev/vdf1 /mnt ext4 rw 0 0\n")
	f.disk("vdg", 64<<20, nil)
	f.holder("vdg", "md5")
	f.mdadmMakesNode(0, nil)
	ctx := context.Background()

	for _, c := range []struct {
		name string
		plan Plan
		is   error
		msg  string
	}{
		{"in use, not confirmed", Plan{Level: "raid6", Disks: []string{"vdb", "vdc", "vdd", "vde"}}, ErrInUse, `vdd: disk holds data: it holds an ext2/3/4 file system labelled "old"; confirm the disk by name to erase it`},
		{"another disk confirmed", Plan{Level: "raid6", Disks: []string{"vdb", "vdc", "vdd", "vde"}, Confirmed: []string{"vdb"}}, ErrInUse, "vdd: disk holds data"},
		{"system disk", Plan{Level: "raid1", Disks: []string{"vda", "vdb"}, Confirmed: []string{"vda"}}, ErrSystemDisk, "vda: disk holds the appliance's system"},
		{"mounted", Plan{Level: "raid1", Disks: []string{"vdb", "vdf"}, Confirmed: []string{"vdf"}}, ErrBusy, "vdf: disk is busy: it is mounted (/mnt)"},
		{"running array", Plan{Level: "raid1", Disks: []string{"vdb", "vdg"}, Confirmed: []string{"vdg"}}, ErrBusy, "vdg: disk is busy: it is part of md5"},
		{"raid6 of 3", Plan{Level: "raid6", Disks: []string{"vdb", "vdc", "vde"}}, nil, "RAID 6 needs at least 4 disks"},
		{"unknown disk", Plan{Level: "raid1", Disks: []string{"vdb", "sdx"}}, nil, `no disk "sdx"`},
		{"twice", Plan{Level: "raid1", Disks: []string{"vdb", "vdb"}}, nil, "vdb is chosen twice"},
		{"level", Plan{Level: "raid0", Disks: []string{"vdb", "vdc"}}, nil, `unknown RAID level "raid0"`},
		{"fs", Plan{Level: "raid1", Disks: []string{"vdb", "vdc"}, FS: "btrfs"}, nil, `file system "btrfs"`},
		{"name", Plan{Name: "../x", Level: "raid1", Disks: []string{"vdb", "vdc"}}, nil, `pool name "../x"`},
	} {
		_, err := f.h.CreatePool(ctx, c.plan)
		if err == nil || !strings.Contains(err.Error(), c.msg) || (c.is != nil && !errors.Is(err, c.is)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.msg)
		}
	}
	if cmds := f.run.commands(); len(cmds) != 0 {
		t.Errorf("commands ran: %q", cmds)
	}

	// A missing tool is found before anything is written.
	f.run.missing = map[string]bool{"smartctl": true, "mkfs.xfs": true}
	if _, err := f.h.CreatePool(ctx, Plan{Level: "raid1", Disks: []string{"vdb", "vdc"}, FS: "xfs"}); err == nil || !strings.Contains(err.Error(), "mkfs.xfs is not installed") {
		t.Errorf("missing mkfs.xfs: %v", err)
	}
	// An existing array of the name is not overwritten.
	f.mdNode("coffer", "md126", 1<<20)
	if _, err := f.h.CreatePool(ctx, Plan{Level: "raid1", Disks: []string{"vdb", "vdc"}}); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Errorf("existing array: %v", err)
	}
	if cmds := f.run.commands(); len(cmds) != 0 {
		t.Errorf("commands ran: %q", cmds)
	}
}

// Without wipefs the first and last MiB are zeroed through the device.
func TestCreatePoolZeroesWithoutWipefs(t *testing.T) {
	f := newFake(t)
	const size = 8 << 20
	for _, n := range []string{"vdb", "vdc"} {
		f.disk(n, size, nil)
		f.at(n, 512, []byte("EFI PART"))
		f.at(n, 4096, md12("x:old", 1, 2))
		f.at(n, size-8192, md12("x:old", 1, 2))
		f.at(n, size-512, []byte("EFI PART"))
		f.at(n, 4<<20, []byte("middle"))
	}
	f.run.missing = map[string]bool{"smartctl": true, "wipefs": true}
	f.mdadmMakesNode(0, nil)
	if _, err := f.h.CreatePool(context.Background(), Plan{Level: "raid1", Disks: []string{"vdb", "vdc"}, Confirmed: []string{"vdb", "vdc"}}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"vdb", "vdc"} {
		b, err := os.ReadFile(f.dev(n))
		if err != nil {
			t.Fatal(err)
		}
		if !allZero(b[:1<<20]) || !allZero(b[size-1<<20:]) {
			t.Errorf("%s: the ends are not zeroed", n)
		}
		if !bytes.Equal(b[4<<20:4<<20+6], []byte("middle")) {
			t.Errorf("%s: the middle was written", n)
		}
	}
	if cmds := f.run.commandsOf("wipefs"); len(cmds) != 0 {
		t.Errorf("wipefs ran: %q", cmds)
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func TestValidateLevel(t *testing.T) {
	for _, c := range []struct {
		level string
		n     int
		ok    bool
	}{
		{"raid1", 1, false}, {"raid1", 2, true}, {"raid1", 3, true},
		{"raid5", 2, false}, {"raid5", 3, true},
		{"raid6", 3, false}, {"raid6", 4, true}, {"raid6", 5, true},
		{"raid10", 2, false}, {"raid10", 4, true}, {"raid10", 5, false}, {"raid10", 6, true},
		{"raid0", 4, false}, {"", 4, false},
	} {
		if err := ValidateLevel(c.level, c.n); (err == nil) != c.ok {
			t.Errorf("%s of %d: %v", c.level, c.n, err)
		}
	}
	for n, want := range map[int]string{1: "raid1", 2: "raid1", 3: "raid5", 4: "raid6", 8: "raid6"} {
		if got := Recommend(n); got != want {
			t.Errorf("Recommend(%d) = %s", n, got)
		}
	}
}

func TestAssemblePool(t *testing.T) {
	f := newFake(t)
	f.disk("vda", 64<<20, nil)
	f.part("vda", "vda1", 1, 32<<20, "coffer-esp")
	for _, n := range []string{"vdb", "vdc", "vdd", "vde"} {
		f.disk(n, 64<<20, nil)
		f.at(n, 4096, md12("any:coffer", 0xc0, 4))
	}
	// Another array's member on a partition.
	f.disk("vdf", 64<<20, nil)
	f.part("vdf", "vdf1", 1, 32<<20, "")
	f.at("vdf1", 4096, md12("any:other", 0x11, 2))
	f.mdadmMakesNode(1024, extSuper(Label))
	mp, err := f.h.AssemblePool(context.Background(), "coffer")
	if err != nil {
		t.Fatal(err)
	}
	node := f.dev("md/coffer")
	want := []string{"mdadm --assemble " + node + " --run " + f.dev("vdb") + " " + f.dev("vdc") + " " + f.dev("vdd") + " " + f.dev("vde")}
	if cmds := f.run.commands(); !slices.Equal(cmds, want) {
		t.Errorf("commands %q, want %q", cmds, want)
	}
	if mp != f.h.MountPoint || !slices.Equal(f.mounts, []mountCall{{node, mp, "ext4", syscall.MS_NOATIME}}) {
		t.Errorf("mount point %s, mounts %+v", mp, f.mounts)
	}

	// Running and mounted: nothing to do.
	f.write("proc/self/mounts", "/dev/md127 "+mp+" ext4 rw 0 0\n")
	f.write("proc/mdstat", mdstatClean6)
	if _, err := f.h.AssemblePool(context.Background(), "coffer"); err != nil || len(f.run.commands()) != 1 || len(f.mounts) != 1 {
		t.Errorf("again: %v %q %+v", err, f.run.commands(), f.mounts)
	}
}

func TestAssemblePoolDegraded(t *testing.T) {
	f := newFake(t)
	for _, n := range []string{"vdb", "vdc", "vde"} {
		f.disk(n, 64<<20, nil)
		f.at(n, 4096, md12("any:coffer", 0xc0, 4))
	}
	f.h.WaitTimeout = 50e6
	f.mdadmMakesNode(0, []byte("XFSB"))
	if _, err := f.h.AssemblePool(context.Background(), "coffer"); err != nil {
		t.Fatal(err)
	}
	want := "mdadm --assemble " + f.dev("md/coffer") + " --run " + f.dev("vdb") + " " + f.dev("vdc") + " " + f.dev("vde")
	if cmds := f.run.commands(); len(cmds) != 1 || cmds[0] != want {
		t.Errorf("commands %q", cmds)
	}
	if len(f.mounts) != 1 || f.mounts[0].fstype != "xfs" {
		t.Errorf("mounts %+v", f.mounts)
	}
}

func TestAssemblePoolNotFound(t *testing.T) {
	f := newFake(t)
	f.h.WaitTimeout = 20e6
	f.disk("vdb", 64<<20, nil)
	if _, err := f.h.AssemblePool(context.Background(), "coffer"); !errors.Is(err, ErrNoPool) {
		t.Errorf("no members: %v", err)
	}
	// Two arrays of the same name: the appliance does not guess.
	f.at("vdb", 4096, md12("any:coffer", 1, 2))
	f.disk("vdc", 64<<20, nil)
	f.at("vdc", 4096, md12("otherhost:coffer", 2, 2))
	if _, err := f.h.AssemblePool(context.Background(), "coffer"); err == nil || !strings.Contains(err.Error(), "2 different arrays") {
		t.Errorf("two arrays: %v", err)
	}
	if cmds := f.run.commands(); len(cmds) != 0 {
		t.Errorf("commands %q", cmds)
	}
}

func TestDiskOperations(t *testing.T) {
	f := newFake(t)
	f.write("proc/mdstat", mdstatDegraded6)
	f.mdNode("coffer", "md127", 1<<20)
	f.write("sys/block/md127/md/sync_action", "idle\n")
	f.write("sys/block/md127/md/mismatch_cnt", "0\n")
	f.disk("vda", 64<<20, nil)
	f.part("vda", "vda1", 1, 32<<20, "coffer-esp")
	f.disk("sdf", 64<<20, nil)
	f.disk("sdg", 64<<20, nil)
	f.at("sdg", 0, []byte("XFSB"))
	ctx := context.Background()
	md := f.dev("md127")

	if err := f.h.AddDisk(ctx, "coffer", "sdg", false); !errors.Is(err, ErrInUse) {
		t.Errorf("in use, unconfirmed: %v", err)
	}
	if err := f.h.AddDisk(ctx, "coffer", "vda", true); !errors.Is(err, ErrSystemDisk) {
		t.Errorf("system disk: %v", err)
	}
	if len(f.run.commands()) != 0 {
		t.Fatalf("commands %q", f.run.commands())
	}
	if err := f.h.AddDisk(ctx, "coffer", "sdf", false); err != nil {
		t.Fatal(err)
	}
	if err := f.h.AddDisk(ctx, "/dev/md127", "sdg", true); err != nil {
		t.Fatal(err)
	}
	if err := f.h.FailDisk(ctx, "md127", "sdb"); err != nil {
		t.Fatal(err)
	}
	if err := f.h.RemoveFailed(ctx, "coffer"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"wipefs -a " + f.dev("sdf"),
		"mdadm --manage " + md + " --add " + f.dev("sdf"),
		"wipefs -a " + f.dev("sdg"),
		"mdadm --manage " + md + " --add " + f.dev("sdg"),
		"mdadm --manage " + md + " --fail " + f.dev("sdb"),
		"mdadm --manage " + md + " --remove failed",
	}
	if cmds := f.run.commands(); !slices.Equal(cmds, want) {
		t.Errorf("commands\n%s\nwant\n%s", strings.Join(cmds, "\n"), strings.Join(want, "\n"))
	}
	if err := f.h.FailDisk(ctx, "nothere", "sdb"); !errors.Is(err, ErrNoArray) {
		t.Errorf("unknown array: %v", err)
	}

	// Scrub: check written to sync_action, refused while busy, the
	// result once idle.
	action := f.path("sys/block/md127/md/sync_action")
	if err := f.h.StartScrub(ctx, "coffer"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(action); string(b) != "check\n" {
		t.Errorf("sync_action %q", b)
	}
	if err := f.h.StartScrub(ctx, "coffer"); err == nil || !strings.Contains(err.Error(), "busy (check)") {
		t.Errorf("second scrub: %v", err)
	}
	if _, running, err := f.h.ScrubResult(ctx, "coffer"); !running || err != nil {
		t.Errorf("running %v %v", running, err)
	}
	f.write("sys/block/md127/md/sync_action", "idle\n")
	f.write("sys/block/md127/md/mismatch_cnt", "256\n")
	if n, running, err := f.h.ScrubResult(ctx, "coffer"); n != 256 || running || err != nil {
		t.Errorf("result %d %v %v", n, running, err)
	}
}
