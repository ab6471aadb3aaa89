package volume

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The sandbox has no device-mapper, so LVs are created without activation
// (--driverloaded n, -an, -Zn). Their contents are written at the PV
// offsets LVM reports (pe_start, extent size, seg_pe_ranges, stripes)
// and read back through Volume.R.

// lvmEnv is a set of loop devices and a private LVM configuration that
// only sees them.
type lvmEnv struct {
	t     testing.TB
	dir   string
	loops map[string]loopDev // by device path
	vg    string
}

type loopDev struct {
	img string
	off int64 // of the loop device's byte 0 in img
}

var vgSeq atomic.Int64

// newLVM attaches one loop device per (image, offset, size) and returns
// the environment and the device paths. Cleanup deactivates the VG and
// detaches the devices even when the test fails.
func newLVM(t *testing.T, imgs []loopDev, sizes []int64) (*lvmEnv, []string) {
	e := &lvmEnv{t: t, dir: t.TempDir(), loops: map[string]loopDev{},
		vg: fmt.Sprintf("cvt%d_%d", os.Getpid(), vgSeq.Add(1))}
	var devs []string
	t.Cleanup(func() {
		e.lvm("vgchange", "-an", e.vg) // nothing is active; errors ignored
		for _, d := range devs {
			if out, err := runErr("", nil, "losetup", "-d", d); err != nil {
				t.Errorf("losetup -d %s: %v %s", d, err, out)
			}
		}
	})
	for i, l := range imgs {
		out := run(t, "", "losetup", "-f", "--show", "-o", strconv.FormatInt(l.off, 10), "--sizelimit", strconv.FormatInt(sizes[i], 10), l.img)
		dev := strings.TrimSpace(out)
		devs = append(devs, dev)
		e.loops[dev] = l
	}
	var accept []string
	for _, d := range devs {
		accept = append(accept, fmt.Sprintf(`"a|^%s$|"`, d))
	}
	conf := fmt.Sprintf(`devices { filter = [ %s, "r|.*|" ] global_filter = [ %s, "r|.*|" ] obtain_device_list_from_udev = 0 use_devicesfile = 0 hints = "none" }
activation { udev_sync = 0 udev_rules = 0 }
backup { backup = 0 archive = 0 }
global { use_lvmlockd = 0 }
`, strings.Join(accept, ", "), strings.Join(accept, ", "))
	if err := os.WriteFile(filepath.Join(e.dir, "lvm.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return e, devs
}

// lvm runs an LVM command and returns its stdout (stderr carries the
// harmless fd-leak and no-activation warnings).
func (e *lvmEnv) lvm(args ...string) (string, error) {
	args = append(args[:1:1], append([]string{"--driverloaded", "n"}, args[1:]...)...)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "LVM_SYSTEM_DIR="+e.dir, "LVM_SUPPRESS_FD_WARNINGS=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), err
}

func (e *lvmEnv) must(args ...string) string {
	e.t.Helper()
	out, err := e.lvm(args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// lvLayout is an LV's layout as the LVM tools report it.
type lvLayout struct {
	name string
	segs []segLayout
}

type segLayout struct {
	startPE, sizePE int64
	stripeSize      int64 // bytes
	ranges          []peRange
}

type peRange struct {
	dev        string
	start, end int64 // extents, inclusive
}

func parseBytes(t testing.TB, s string) int64 {
	n, err := strconv.ParseInt(strings.TrimSuffix(s, "B"), 10, 64)
	if err != nil {
		t.Fatalf("size %q: %v", s, err)
	}
	return n
}

// layout asks lvs, pvs and vgs for the VG's layout.
func (e *lvmEnv) layout() (extent int64, peStart map[string]int64, lvs map[string]*lvLayout) {
	t := e.t
	var rep struct {
		Report []struct {
			VG  []map[string]string `json:"vg"`
			PV  []map[string]string `json:"pv"`
			Seg []map[string]string `json:"seg"`
		}
	}
	dec := func(out string) {
		rep.Report = nil
		if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Report) != 1 {
			t.Fatalf("report %v: %s", err, out)
		}
	}
	dec(e.must("vgs", "--reportformat", "json", "--units", "b", "-o", "vg_extent_size", e.vg))
	extent = parseBytes(t, rep.Report[0].VG[0]["vg_extent_size"])
	dec(e.must("pvs", "--reportformat", "json", "--units", "b", "-o", "pv_name,pe_start"))
	peStart = map[string]int64{}
	for _, p := range rep.Report[0].PV {
		peStart[p["pv_name"]] = parseBytes(t, p["pe_start"])
	}
	dec(e.must("lvs", "--reportformat", "json", "--units", "b", "--segments", "-o", "lv_name,seg_start_pe,seg_size_pe,stripe_size,seg_pe_ranges", e.vg))
	lvs = map[string]*lvLayout{}
	for _, s := range rep.Report[0].Seg {
		lv := lvs[s["lv_name"]]
		if lv == nil {
			lv = &lvLayout{name: s["lv_name"]}
			lvs[lv.name] = lv
		}
		sl := segLayout{stripeSize: parseBytes(t, s["stripe_size"])}
		sl.startPE, _ = strconv.ParseInt(s["seg_start_pe"], 10, 64)
		sl.sizePE, _ = strconv.ParseInt(s["seg_size_pe"], 10, 64)
		for _, r := range strings.Fields(s["seg_pe_ranges"]) {
			i := strings.LastIndexByte(r, ':')
			a, b, _ := strings.Cut(r[i+1:], "-")
			pr := peRange{dev: r[:i]}
			pr.start, _ = strconv.ParseInt(a, 10, 64)
			pr.end, _ = strconv.ParseInt(b, 10, 64)
			sl.ranges = append(sl.ranges, pr)
		}
		lv.segs = append(lv.segs, sl)
	}
	for _, lv := range lvs {
		sort.Slice(lv.segs, func(i, j int) bool { return lv.segs[i].startPE < lv.segs[j].startPE })
	}
	return extent, peStart, lvs
}

// writeLV writes tag sectors over the whole LV at the image offsets that
// the reported layout puts them, and returns the LV's size.
func (e *lvmEnv) writeLV(lv *lvLayout, extent int64, peStart map[string]int64) int64 {
	t := e.t
	files := map[string]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	var lvOff int64
	for _, s := range lv.segs {
		segBytes := s.sizePE * extent
		n := int64(len(s.ranges))
		if s.startPE*extent != lvOff {
			t.Fatalf("%s: segment at extent %d, expected %d", lv.name, s.startPE, lvOff/extent)
		}
		for rel := int64(0); rel < segBytes; rel += 512 {
			var r peRange
			var pvByte int64
			if n == 1 {
				r = s.ranges[0]
				pvByte = r.start*extent + rel
			} else { // stripe chunks go round-robin over the ranges
				chunk := rel / s.stripeSize
				r = s.ranges[chunk%n]
				pvByte = r.start*extent + (chunk/n)*s.stripeSize + rel%s.stripeSize
			}
			if pvByte >= (r.end+1)*extent {
				t.Fatalf("%s: byte %d falls outside range %+v", lv.name, rel, r)
			}
			l, ok := e.loops[r.dev]
			if !ok {
				t.Fatalf("%s: unknown device %s", lv.name, r.dev)
			}
			f := files[l.img]
			if f == nil {
				var err error
				if f, err = os.OpenFile(l.img, os.O_RDWR, 0); err != nil {
					t.Fatal(err)
				}
				files[l.img] = f
			}
			if _, err := f.WriteAt(tag(lv.name, (lvOff+rel)/512), l.off+peStart[r.dev]+pvByte); err != nil {
				t.Fatal(err)
			}
		}
		lvOff += segBytes
	}
	return lvOff
}

func volumeByID(vols []Volume, id string) *Volume {
	for i := range vols {
		if vols[i].ID == id {
			return &vols[i]
		}
	}
	return nil
}

func TestLVMOnGPTPartition(t *testing.T) {
	start := time.Now()
	img := sparse(t, "lvm.img", 64*mib)
	run(t, "", "sgdisk", "-n1:2048:+8M", "-t1:ef00", "-n2:0:0", "-t2:8e00", "-c2:pv", img)
	parts := sfdiskParts(t, img)
	p2 := parts[1]
	e, devs := newLVM(t, []loopDev{{img: img, off: p2.Start * 512}}, []int64{p2.Size * 512})
	e.must("pvcreate", devs[0])
	e.must("vgcreate", e.vg, devs[0])
	e.must("lvcreate", "-an", "-Zn", "-L", "8M", "-n", "root", e.vg)
	e.must("lvcreate", "-an", "-Zn", "-L", "8M", "-n", "home", e.vg)
	e.must("lvextend", "-L", "+8M", e.vg+"/root") // second segment, after home
	extent, peStart, lvs := e.layout()
	if len(lvs["root"].segs) != 2 {
		t.Fatalf("root has %d segments, want 2", len(lvs["root"].segs))
	}
	sizes := map[string]int64{}
	for name, lv := range lvs {
		sizes[name] = e.writeLV(lv, extent, peStart)
	}

	vols, warns := discover(t, openDisk(t, "scsi0:0", img))
	if len(warns) != 0 {
		t.Errorf("warnings %q", warns)
	}
	if len(vols) != 3 || vols[0].ID != "p1" {
		t.Fatalf("volumes %s", ids(vols))
	}
	for _, name := range []string{"root", "home"} {
		v := volumeByID(vols, "lvm:"+e.vg+"/"+name)
		if v == nil {
			t.Fatalf("no LV %s in %s", name, ids(vols))
		}
		if v.Disk != "scsi0:0" || v.Scheme != SchemeLVM || v.Offset != -1 || v.Size != sizes[name] || v.Name != e.vg+"/"+name || v.Index != 0 {
			t.Errorf("LV %s: %+v (size want %d)", name, *v, sizes[name])
		}
		checkTags(t, name, v.R, v.Size)
	}
	if sizes["root"] != 16*mib {
		t.Errorf("root is %d bytes", sizes["root"])
	}
	t.Logf("LVM setup and checks took %v", time.Since(start))
}

func TestLVMStripedTwoDisks(t *testing.T) {
	a, b := sparse(t, "a.img", 64*mib), sparse(t, "b.img", 64*mib)
	e, devs := newLVM(t, []loopDev{{img: a}, {img: b}}, []int64{64 * mib, 64 * mib})
	e.must("pvcreate", devs[0], devs[1])
	e.must("vgcreate", e.vg, devs[0], devs[1])
	e.must("lvcreate", "-an", "-Zn", "-i", "2", "-I", "64k", "-L", "16M", "-n", "str", e.vg)
	e.must("lvcreate", "-an", "-Zn", "-L", "8M", "-n", "lin", e.vg, devs[0])
	e.must("lvextend", "-L", "+8M", e.vg+"/lin", devs[1]) // continues on the other disk
	e.must("lvcreate", "-an", "-Zn", "-L", "4M", "-n", "onb", e.vg, devs[1])
	extent, peStart, lvs := e.layout()
	if n := len(lvs["str"].segs[0].ranges); n != 2 {
		t.Fatalf("str has %d stripes", n)
	}
	diskOf := map[string]string{devs[0]: "a", devs[1]: "b"}
	sizes := map[string]int64{}
	for name, lv := range lvs {
		sizes[name] = e.writeLV(lv, extent, peStart)
	}

	da, db := openDisk(t, "a", a), openDisk(t, "b", b)
	vols, warns := discover(t, da, db)
	if len(warns) != 0 {
		t.Errorf("warnings %q", warns)
	}
	if len(vols) != 3 {
		t.Fatalf("volumes %s", ids(vols))
	}
	for name, lv := range lvs {
		v := volumeByID(vols, "lvm:"+e.vg+"/"+name)
		if v == nil {
			t.Fatalf("no LV %s in %s", name, ids(vols))
		}
		if want := diskOf[lv.segs[0].ranges[0].dev]; v.Disk != want || v.Size != sizes[name] {
			t.Errorf("LV %s on disk %s size %d, want %s %d", name, v.Disk, v.Size, want, sizes[name])
		}
		checkTags(t, name, v.R, v.Size)
	}
	// Volumes follow disk order: the LVs starting on a, then on b.
	for i := 1; i < len(vols); i++ {
		if vols[i-1].Disk > vols[i].Disk {
			t.Errorf("order %s", ids(vols))
		}
	}

	// Disk a missing from the point: only onb survives.
	vols, warns = discover(t, db)
	if got := ids(vols); got != "b:lvm:"+e.vg+"/onb" {
		t.Errorf("with disk a missing: %s", got)
	}
	for _, lv := range []string{"str", "lin"} {
		if !hasWarning(warns, e.vg+"/"+lv+": PV ") || !hasWarning(warns, "missing from the disks of this point") {
			t.Errorf("no missing-PV warning for %s: %q", lv, warns)
		}
	}
}
