package disks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Errors of the checks before a disk is written.
var (
	// ErrSystemDisk: the disk holds the appliance's system.
	ErrSystemDisk = errors.New("disk holds the appliance's system")
	// ErrInUse: the disk holds data and its name was not confirmed.
	ErrInUse = errors.New("disk holds data")
	// ErrBusy: the disk is mounted or part of a running device.
	ErrBusy = errors.New("disk is busy")
	// ErrNoPool: no disk carries the pool's RAID superblock.
	ErrNoPool = errors.New("no pool found")
)

// Plan is a pool to create.
type Plan struct {
	// Name is the array's name (/dev/md/<name>); "coffer" when empty.
	Name string `json:"name,omitempty"`
	// Level is "raid1", "raid5", "raid6" or "raid10".
	Level string   `json:"level"`
	Disks []string `json:"disks"` // kernel names: "sdb", "nvme0n1"
	// MountPoint is where the pool is mounted; the Host's MountPoint
	// when empty.
	MountPoint string `json:"mount_point,omitempty"`
	// FS is "ext4" (the default) or "xfs".
	FS string `json:"fs,omitempty"`
	// Confirmed names the disks that hold data and may be erased.
	Confirmed []string `json:"confirmed,omitempty"`
}

// Label is the pool's file system label.
const Label = "coffer-pool"

// PoolInfo is written to the pool's root (.coffer-pool.json) when it is
// created: what the pool is, for the administrator and support; the
// appliance finds the pool at boot by the RAID superblocks' name.
type PoolInfo struct {
	Name    string    `json:"name"`
	UUID    string    `json:"uuid,omitempty"`
	Level   string    `json:"level"`
	FS      string    `json:"fs"`
	Members []string  `json:"members"` // "sdb (serial WD-123)"
	Created time.Time `json:"created"`
}

// InfoFile is PoolInfo's file name in the pool's root.
const InfoFile = ".coffer-pool.json"

// Recommend is the level for n disks: RAID 6 from 4 disks, RAID 5 for 3,
// RAID 1 for 2.
func Recommend(n int) string {
	switch {
	case n >= 4:
		return "raid6"
	case n == 3:
		return "raid5"
	default:
		return "raid1"
	}
}

// ValidateLevel checks that level can be built from n disks.
func ValidateLevel(level string, n int) error {
	switch level {
	case "raid1":
		if n < 2 {
			return errors.New("RAID 1 needs at least 2 disks")
		}
	case "raid5":
		if n < 3 {
			return errors.New("RAID 5 needs at least 3 disks")
		}
	case "raid6":
		if n < 4 {
			return errors.New("RAID 6 needs at least 4 disks")
		}
	case "raid10":
		if n < 4 || n%2 != 0 {
			return errors.New("RAID 10 needs an even number of disks, at least 4")
		}
	default:
		return fmt.Errorf("unknown RAID level %q (raid1, raid5, raid6, raid10)", level)
	}
	return nil
}

var reName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,27}$`)

// CheckUsable says whether d may be written: never a system disk, never
// a mounted disk or one under a running device, a disk that holds data
// only when confirmed.
func CheckUsable(d Disk, confirmed bool) error {
	switch {
	case d.System:
		return fmt.Errorf("%s: %w and is never used", d.Name, ErrSystemDisk)
	case d.ReadOnly:
		return fmt.Errorf("%s is read-only", d.Name)
	case len(d.Mounted) > 0:
		return fmt.Errorf("%s: %w: it is mounted (%s); unmount it first", d.Name, ErrBusy, strings.Join(d.Mounted, ", "))
	case len(d.Holders) > 0:
		return fmt.Errorf("%s: %w: it is part of %s, which is running; stop it first (mdadm --stop, dmsetup remove)", d.Name, ErrBusy, strings.Join(d.Holders, ", "))
	case d.InUse != "" && !confirmed:
		return fmt.Errorf("%s: %w: it %s; confirm the disk by name to erase it", d.Name, ErrInUse, d.InUse)
	}
	return nil
}

// choose finds names among the machine's disks and checks each.
func (h *Host) choose(ctx context.Context, names, confirmed []string) ([]Disk, error) {
	all, err := h.Discover(ctx)
	if err != nil {
		return nil, err
	}
	var out []Disk
	for _, n := range names {
		i := slices.IndexFunc(all, func(d Disk) bool { return d.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("no disk %q on this machine", n)
		}
		if slices.ContainsFunc(out, func(d Disk) bool { return d.Name == n }) {
			return nil, fmt.Errorf("disk %s is chosen twice", n)
		}
		if err := CheckUsable(all[i], slices.Contains(confirmed, n)); err != nil {
			return nil, err
		}
		out = append(out, all[i])
	}
	return out, nil
}

// mdLevel is mdadm's --level for a level name.
func mdLevel(level string) string { return strings.TrimPrefix(level, "raid") }

// CreatePool erases the plan's disks, builds the array, makes the file
// system and mounts it; it returns the mount point. Nothing is written
// before every disk has passed CheckUsable.
func (h *Host) CreatePool(ctx context.Context, p Plan) (string, error) {
	if p.Name == "" {
		p.Name = "coffer"
	}
	if p.FS == "" {
		p.FS = "ext4"
	}
	if p.MountPoint == "" {
		p.MountPoint = h.mountPoint()
	}
	if !reName.MatchString(p.Name) {
		return "", fmt.Errorf("pool name %q: use up to 28 letters, digits, - and _", p.Name)
	}
	if p.FS != "ext4" && p.FS != "xfs" {
		return "", fmt.Errorf("file system %q: ext4 or xfs", p.FS)
	}
	if !filepath.IsAbs(p.MountPoint) {
		return "", fmt.Errorf("mount point %q is not an absolute path", p.MountPoint)
	}
	if err := ValidateLevel(p.Level, len(p.Disks)); err != nil {
		return "", err
	}
	node := h.dev("md", p.Name)
	if _, err := os.Lstat(node); err == nil {
		return "", fmt.Errorf("an array %s exists already", node)
	}
	mkfs := "mkfs." + p.FS
	for _, tool := range []string{"mdadm", mkfs} {
		if !h.has(tool) {
			return "", fmt.Errorf("%s is not installed", tool)
		}
	}
	disks, err := h.choose(ctx, p.Disks, p.Confirmed)
	if err != nil {
		return "", err
	}

	for _, d := range disks {
		if err := h.wipe(ctx, d); err != nil {
			return "", err
		}
	}
	args := []string{"--create", node, "--run", "--level=" + mdLevel(p.Level)}
	if p.Level == "raid10" {
		args = append(args, "--layout=n2")
	}
	args = append(args, "--raid-devices="+strconv.Itoa(len(disks)), "--metadata=1.2",
		"--bitmap=internal", "--name="+p.Name, "--homehost=any")
	for _, d := range disks {
		args = append(args, d.Path)
	}
	if _, err := h.run(ctx, "mdadm", args...); err != nil {
		return "", fmt.Errorf("create the array: %w", err)
	}
	if err := h.waitNode(ctx, node); err != nil {
		return "", err
	}
	var mkfsArgs []string
	if p.FS == "xfs" {
		mkfsArgs = []string{"-f", "-L", Label, node}
	} else {
		mkfsArgs = []string{"-F", "-L", Label, "-E", "lazy_itable_init=1,lazy_journal_init=1", node}
	}
	if _, err := h.run(ctx, mkfs, mkfsArgs...); err != nil {
		return "", fmt.Errorf("make the file system: %w", err)
	}
	if err := h.mountPool(node, p.MountPoint, p.FS); err != nil {
		return "", err
	}
	info := PoolInfo{Name: p.Name, Level: p.Level, FS: p.FS, Created: time.Now().UTC()}
	for _, d := range disks {
		m := d.Name
		if d.Serial != "" {
			m += " (serial " + d.Serial + ")"
		}
		info.Members = append(info.Members, m)
	}
	if sigs, err := probeFile(disks[0].Path); err == nil {
		for _, s := range sigs {
			if s.MD != nil {
				info.UUID = s.MD.UUID
			}
		}
	}
	b, _ := json.MarshalIndent(info, "", "  ")
	if err := os.WriteFile(filepath.Join(p.MountPoint, InfoFile), append(b, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("write the pool's description: %w", err)
	}
	return p.MountPoint, nil
}

// wipe erases the signatures of d and its partitions: wipefs when it is
// installed, else the first and last MiB are zeroed. The kernel then
// rereads the (now empty) partition table.
func (h *Host) wipe(ctx context.Context, d Disk) error {
	if h.has("wipefs") {
		for _, p := range d.Partitions {
			if _, err := h.run(ctx, "wipefs", "-a", p.Path); err != nil {
				return fmt.Errorf("erase %s: %w", p.Name, err)
			}
		}
		if _, err := h.run(ctx, "wipefs", "-a", d.Path); err != nil {
			return fmt.Errorf("erase %s: %w", d.Name, err)
		}
	} else if err := zeroEnds(d.Path); err != nil {
		return fmt.Errorf("erase %s: %w", d.Name, err)
	}
	rereadPartitions(d.Path)
	return nil
}

// zeroEnds zeroes the first and last MiB of the device at path: the
// partition tables (GPT keeps a copy at the end), md superblocks of every
// version and the file systems' superblocks.
func zeroEnds(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	zero := make([]byte, min(size, 1<<20))
	if _, err := f.WriteAt(zero, 0); err != nil {
		return err
	}
	if size > 1<<20 {
		if _, err := f.WriteAt(zero[:min(size-int64(len(zero)), 1<<20)], max(size-1<<20, 1<<20)); err != nil {
			return err
		}
	}
	return f.Sync()
}

// blkrrpart is BLKRRPART, _IO(0x12, 95).
const blkrrpart = 0x125f

// rereadPartitions asks the kernel to reread a block device's partition
// table, so that erased partitions disappear; nothing for a file.
func rereadPartitions(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0 {
		return
	}
	syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), blkrrpart, 0)
}

// waitNode waits for an array's device node (mdadm makes it, or udev).
func (h *Host) waitNode(ctx context.Context, node string) error {
	deadline := time.Now().Add(h.waitTimeout())
	for {
		if _, err := os.Stat(node); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within %s", node, h.waitTimeout())
		}
		if err := sleep(ctx, h.pollInterval()); err != nil {
			return err
		}
	}
}

// mountPool mounts the pool's file system at mp.
func (h *Host) mountPool(node, mp, fs string) error {
	if err := os.MkdirAll(mp, 0o755); err != nil {
		return fmt.Errorf("create the mount point: %w", err)
	}
	if err := h.mount(node, mp, fs, syscall.MS_NOATIME, ""); err != nil {
		return fmt.Errorf("mount %s on %s: %w", node, mp, err)
	}
	return nil
}

// mountedAt says whether something is mounted at mp.
func (h *Host) mountedAt(mp string) bool {
	for _, mps := range h.mounts() {
		if slices.Contains(mps, mp) {
			return true
		}
	}
	return false
}

// member is a device carrying a pool's superblock.
type member struct {
	path string
	sb   *MDSuperblock
}

// findMembers reads the md superblock of every disk and partition and
// keeps those of the array name, grouped by the array's UUID.
func (h *Host) findMembers(name string) map[string][]member {
	out := map[string][]member{}
	entries, err := os.ReadDir(h.sys("block"))
	if err != nil {
		return out
	}
	var devs []string
	for _, e := range entries {
		if skipped(e.Name()) {
			continue
		}
		devs = append(devs, e.Name())
		parts, _ := os.ReadDir(h.sys("block", e.Name()))
		for _, p := range parts {
			if _, err := os.Stat(h.sys("block", e.Name(), p.Name(), "partition")); err == nil {
				devs = append(devs, p.Name())
			}
		}
	}
	for _, d := range devs {
		sigs, err := probeFile(h.dev(d))
		if err != nil {
			continue
		}
		for _, s := range sigs {
			if s.MD != nil && s.MD.ArrayName() == name {
				out[s.MD.UUID] = append(out[s.MD.UUID], member{path: h.dev(d), sb: s.MD})
			}
		}
	}
	return out
}

// AssemblePool starts the pool name from the disks that carry its
// superblock (degraded if some are missing, after waiting WaitTimeout for
// them) and mounts it at the Host's MountPoint; it returns the mount
// point. A pool that is running already is only mounted.
func (h *Host) AssemblePool(ctx context.Context, name string) (string, error) {
	if name == "" {
		name = "coffer"
	}
	node := h.dev("md", name)
	mp := h.mountPoint()
	if _, err := os.Stat(node); err != nil {
		members, err := h.waitMembers(ctx, name)
		if err != nil {
			return "", err
		}
		args := []string{"--assemble", node, "--run"}
		for _, m := range members {
			args = append(args, m.path)
		}
		if _, err := h.run(ctx, "mdadm", args...); err != nil {
			return "", fmt.Errorf("assemble pool %s: %w", name, err)
		}
		if err := h.waitNode(ctx, node); err != nil {
			return "", err
		}
	} else if a, err := h.Array(ctx, name); err == nil && a.State == StateInactive {
		if _, err := h.run(ctx, "mdadm", "--run", node); err != nil {
			return "", fmt.Errorf("start pool %s: %w", name, err)
		}
	}
	if h.mountedAt(mp) {
		return mp, nil
	}
	sigs, err := probeFile(node)
	if err != nil {
		return "", fmt.Errorf("read pool %s: %w", name, err)
	}
	fs := ""
	for _, s := range sigs {
		switch s.Kind {
		case "ext":
			fs = "ext4"
		case "xfs":
			fs = "xfs"
		}
	}
	if fs == "" {
		return "", fmt.Errorf("pool %s holds no ext4 or XFS file system", name)
	}
	if err := h.mountPool(node, mp, fs); err != nil {
		return "", err
	}
	return mp, nil
}

// waitMembers waits until every member of the pool is present (the
// superblock says how many there are) or WaitTimeout passes.
func (h *Host) waitMembers(ctx context.Context, name string) ([]member, error) {
	deadline := time.Now().Add(h.waitTimeout())
	for {
		found := h.findMembers(name)
		if len(found) > 1 {
			var ids []string
			for id := range found {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			return nil, fmt.Errorf("disks of %d different arrays are named %q (%s): remove the disks of the old one", len(found), name, strings.Join(ids, ", "))
		}
		for _, ms := range found {
			if len(ms) >= ms[0].sb.RaidDisks || time.Now().After(deadline) {
				return ms, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("pool %s: %w on the disks of this machine", name, ErrNoPool)
		}
		if err := sleep(ctx, h.pollInterval()); err != nil {
			return nil, err
		}
	}
}
