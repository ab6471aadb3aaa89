package disks

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Disk is a disk of the machine.
type Disk struct {
	Name       string `json:"name"` // "sda", "nvme0n1", "vda"
	Path       string `json:"path"` // "/dev/sda" (under the Host's DevRoot)
	Model      string `json:"model,omitempty"`
	Serial     string `json:"serial,omitempty"`
	Size       int64  `json:"size"` // bytes
	Rotational bool   `json:"rotational"`
	Removable  bool   `json:"removable,omitempty"`
	ReadOnly   bool   `json:"read_only,omitempty"`

	Partitions []Partition `json:"partitions,omitempty"`
	// Holders are the devices built on the disk or its partitions
	// ("md127", "dm-0").
	Holders []string `json:"holders,omitempty"`
	// Mounted are the mount points (and "swap") of the disk or its
	// partitions.
	Mounted []string `json:"mounted,omitempty"`
	// Signatures are what the first and last sectors of the whole disk
	// hold.
	Signatures []Signature `json:"signatures,omitempty"`

	// InUse says why the disk holds data, "" when it looks empty; Reasons
	// are its parts.
	InUse   string   `json:"in_use,omitempty"`
	Reasons []string `json:"reasons,omitempty"`
	// System: the appliance boots from the disk; it is never touched.
	System bool `json:"system,omitempty"`
	// Health is SMART's overall assessment: "passed", "failing", or ""
	// when unknown (no smartctl, no SMART, a disk in standby).
	Health string `json:"health,omitempty"`
}

// Partition is a partition of a disk.
type Partition struct {
	Name       string      `json:"name"` // "sda1", "nvme0n1p1"
	Path       string      `json:"path"`
	Number     int         `json:"number"`
	Size       int64       `json:"size"`
	PartName   string      `json:"part_name,omitempty"` // the GPT partition name
	Signatures []Signature `json:"signatures,omitempty"`
	Holders    []string    `json:"holders,omitempty"`
	Mounted    []string    `json:"mounted,omitempty"`
}

// Labels are the partition's GPT name and file system labels.
func (p Partition) Labels() []string {
	var l []string
	if p.PartName != "" {
		l = append(l, p.PartName)
	}
	for _, s := range p.Signatures {
		if s.Label != "" {
			l = append(l, s.Label)
		}
	}
	return l
}

// skipped are the kernel names of block devices that are not disks:
// loop devices, RAM disks, md arrays, device-mapper, optical drives,
// zram, network block devices, floppies, MTD, eMMC boot areas.
func skipped(name string) bool {
	for _, p := range []string{"loop", "ram", "md", "dm-", "sr", "zram", "nbd", "fd", "mtdblock"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return strings.HasPrefix(name, "mmcblk") && (strings.Contains(name, "boot") || strings.Contains(name, "rpmb"))
}

// Disks is Discover (the setup wizard's DiskSource shape).
func (h *Host) Disks(ctx context.Context) ([]Disk, error) { return h.Discover(ctx) }

// Discover lists the machine's disks, sorted by name.
func (h *Host) Discover(ctx context.Context) ([]Disk, error) {
	entries, err := os.ReadDir(h.sys("block"))
	if err != nil {
		return nil, fmt.Errorf("list disks: %w", err)
	}
	mounts := h.mounts()
	var out []Disk
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		name := e.Name()
		if skipped(name) {
			continue
		}
		d, ok := h.disk(ctx, name, mounts)
		if ok {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b Disk) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// disk reads one disk; false for one without medium (size 0).
func (h *Host) disk(ctx context.Context, name string, mounts map[string][]string) (Disk, bool) {
	dir := h.sys("block", name)
	sectors, _ := readInt(filepath.Join(dir, "size"))
	if sectors <= 0 {
		return Disk{}, false
	}
	d := Disk{Name: name, Path: h.dev(name), Size: sectors * 512}
	d.Rotational = readString(filepath.Join(dir, "queue", "rotational")) == "1"
	d.Removable = readString(filepath.Join(dir, "removable")) == "1"
	d.ReadOnly = readString(filepath.Join(dir, "ro")) == "1"
	d.Model, d.Serial = h.identity(dir)

	d.Holders = holders(dir)
	d.Mounted = mounts[name]
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		pdir := filepath.Join(dir, e.Name())
		if !e.IsDir() {
			continue
		}
		num, ok := readInt(filepath.Join(pdir, "partition"))
		if !ok {
			continue
		}
		p := Partition{Name: e.Name(), Path: h.dev(e.Name()), Number: int(num)}
		if s, ok := readInt(filepath.Join(pdir, "size")); ok {
			p.Size = s * 512
		}
		p.PartName = h.partName(name, e.Name())
		p.Holders = holders(pdir)
		p.Mounted = mounts[e.Name()]
		p.Signatures, _ = probeFile(p.Path) // labels only: the partition itself makes the disk in use
		d.Partitions = append(d.Partitions, p)
		d.Holders = append(d.Holders, p.Holders...)
		d.Mounted = append(d.Mounted, p.Mounted...)
	}
	slices.SortFunc(d.Partitions, func(a, b Partition) int { return a.Number - b.Number })
	slices.Sort(d.Holders)
	d.Holders = slices.Compact(d.Holders)

	sigs, probeErr := probeFile(d.Path)
	d.Signatures = sigs

	if len(d.Partitions) > 0 {
		names := make([]string, len(d.Partitions))
		for i, p := range d.Partitions {
			names[i] = p.Name
		}
		d.Reasons = append(d.Reasons, "has partitions ("+strings.Join(names, ", ")+")")
	}
	for _, hd := range d.Holders {
		switch {
		case strings.HasPrefix(hd, "md"):
			d.Reasons = append(d.Reasons, "is a member of RAID array "+hd)
		case strings.HasPrefix(hd, "dm-"):
			d.Reasons = append(d.Reasons, "is used by device-mapper "+hd+" (LVM or encryption)")
		default:
			d.Reasons = append(d.Reasons, "is used by "+hd)
		}
	}
	if len(d.Mounted) > 0 {
		d.Reasons = append(d.Reasons, "is mounted ("+strings.Join(d.Mounted, ", ")+")")
	}
	if probeErr != nil {
		d.Reasons = append(d.Reasons, "could not be read to check for data ("+probeErr.Error()+")")
	}
	for _, s := range d.Signatures {
		if len(d.Partitions) > 0 && (s.Kind == "gpt" || s.Kind == "mbr") {
			continue // said by "has partitions"
		}
		d.Reasons = append(d.Reasons, "holds "+s.String())
	}
	d.InUse = strings.Join(d.Reasons, "; ")

	if h.IsSystem != nil {
		d.System = h.IsSystem(d)
	} else {
		d.System = h.labelledSystem(d)
	}
	d.Health = h.health(ctx, d.Path)
	return d, true
}

// labelledSystem says whether a partition or the disk's file system
// carries one of the system labels.
func (h *Host) labelledSystem(d Disk) bool {
	labels := h.SystemLabels
	if labels == nil {
		labels = DefaultSystemLabels()
	}
	var found []string
	for _, p := range d.Partitions {
		found = append(found, p.Labels()...)
	}
	for _, s := range d.Signatures {
		if s.Label != "" {
			found = append(found, s.Label)
		}
	}
	for _, f := range found {
		for _, l := range labels {
			if strings.EqualFold(f, l) {
				return true
			}
		}
	}
	return false
}

// identity reads the model and serial number: the device's attributes
// (SCSI/SATA, NVMe controller), the parent of the block device (NVMe
// namespaces under a subsystem), virtio_blk's serial attribute, SCSI VPD
// page 0x80.
func (h *Host) identity(dir string) (model, serial string) {
	parent := ""
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		parent = filepath.Dir(real)
	}
	first := func(paths ...string) string {
		for _, p := range paths {
			if p == "" {
				continue
			}
			if s := readString(p); s != "" {
				return s
			}
		}
		return ""
	}
	pp := func(name string) string {
		if parent == "" {
			return ""
		}
		return filepath.Join(parent, name)
	}
	model = first(filepath.Join(dir, "device", "model"), pp("model"))
	serial = first(filepath.Join(dir, "serial"), filepath.Join(dir, "device", "serial"), pp("serial"))
	if serial == "" {
		serial = vpdSerial(filepath.Join(dir, "device", "vpd_pg80"))
	}
	return model, serial
}

// vpdSerial reads the unit serial number page: a 4-byte header (page
// code 0x80 in byte 1, the length in bytes 2-3) and the serial.
func vpdSerial(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 4 || b[1] != 0x80 {
		return ""
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	b = b[4:]
	if n < len(b) {
		b = b[:n]
	}
	return cstring(b)
}

// holders lists the devices in dir/holders.
func holders(dir string) []string {
	entries, err := os.ReadDir(filepath.Join(dir, "holders"))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// partName reads the GPT partition name from the partition's uevent.
func (h *Host) partName(disk, part string) string {
	for _, p := range []string{h.sys("class", "block", part, "uevent"), h.sys("block", disk, part, "uevent")} {
		if v, ok := uevent(p)["PARTNAME"]; ok {
			return v
		}
	}
	return ""
}

func uevent(path string) map[string]string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

// mounts maps kernel device names ("sda1", "md127") to their mount
// points, and swap devices to "swap".
func (h *Host) mounts() map[string][]string {
	m := map[string][]string{}
	f, err := os.Open(h.proc("self", "mounts"))
	if err != nil {
		f, err = os.Open(h.proc("mounts"))
	}
	if err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 2 || !strings.HasPrefix(fields[0], "/dev/") {
				continue
			}
			name := strings.TrimPrefix(fields[0], "/dev/")
			m[name] = append(m[name], unescapeMount(fields[1]))
		}
		f.Close()
	}
	if b, err := os.ReadFile(h.proc("swaps")); err == nil {
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) > 0 && strings.HasPrefix(fields[0], "/dev/") {
				name := strings.TrimPrefix(fields[0], "/dev/")
				m[name] = append(m[name], "swap")
			}
		}
	}
	return m
}

// unescapeMount undoes the octal escapes of /proc/mounts (\040 a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// health asks smartctl for the overall assessment; "" when it cannot
// tell. -n standby leaves a sleeping disk asleep.
func (h *Host) health(ctx context.Context, path string) string {
	if !h.has("smartctl") {
		return ""
	}
	out, _ := h.run(ctx, "smartctl", "-H", "-j", "-n", "standby", path)
	var r struct {
		SmartStatus *struct {
			Passed bool `json:"passed"`
		} `json:"smart_status"`
	}
	if json.Unmarshal(out, &r) != nil || r.SmartStatus == nil {
		return ""
	}
	if r.SmartStatus.Passed {
		return "passed"
	}
	return "failing"
}
