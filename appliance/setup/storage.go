package setup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// Disk is a disk the storage step can offer.
type Disk struct {
	Name       string `json:"name"` // "sda", "nvme0n1"
	Path       string `json:"path"` // "/dev/sda"
	Model      string `json:"model"`
	Serial     string `json:"serial"`
	Size       int64  `json:"size"`
	Rotational bool   `json:"rotational"`
	// InUse says why the disk holds data (partitions, a file system, a
	// RAID member, mounted); such a disk is erased only after an explicit
	// confirmation naming it.
	InUse string `json:"in_use,omitempty"`
	// System: the appliance boots from it; it is never offered.
	System bool `json:"system,omitempty"`
}

// DiskSource finds the disks of the machine (appliance/disks on the
// appliance image).
type DiskSource interface {
	Disks(ctx context.Context) ([]Disk, error)
}

// PoolMaker creates a RAID pool with a file system on disks and mounts
// it; it returns the mount point.
type PoolMaker interface {
	CreatePool(ctx context.Context, p PoolPlan) (string, error)
}

// RAID levels offered.
var Levels = []string{"raid1", "raid5", "raid6", "raid10"}

// PoolPlan is what a RAID level makes of a set of disks, shown before
// anything is written.
type PoolPlan struct {
	Level  string   `json:"level"`
	Disks  []string `json:"disks"`
	Usable int64    `json:"usable"` // bytes of the array (before the file system)
	// Tolerates is how many disks may fail without losing data (the
	// worst case; RAID 10 survives more when they are in different pairs).
	Tolerates   int    `json:"tolerates"`
	Recommended bool   `json:"recommended"`
	Note        string `json:"note,omitempty"`
}

// Plan computes a pool of level over disks (by name) from all.
func Plan(level string, names []string, all []Disk) (PoolPlan, error) {
	p := PoolPlan{Level: level, Disks: slices.Clone(names)}
	if len(names) == 0 {
		return p, errors.New("choose the disks of the pool")
	}
	byName := map[string]Disk{}
	for _, d := range all {
		byName[d.Name] = d
	}
	var smallest int64
	seen := map[string]bool{}
	for _, n := range names {
		d, ok := byName[n]
		if !ok {
			return p, fmt.Errorf("no disk %q on this machine", n)
		}
		if d.System {
			return p, fmt.Errorf("%s holds the appliance's system and cannot be in the pool", n)
		}
		if seen[n] {
			return p, fmt.Errorf("disk %s is chosen twice", n)
		}
		seen[n] = true
		if smallest == 0 || d.Size < smallest {
			smallest = d.Size
		}
	}
	// md keeps a superblock and alignment reserve at the start of each
	// member; 1 MiB per 64 GiB, at least 8 MiB, is what mdadm uses at most.
	member := smallest - max(8<<20, smallest>>16)
	n := int64(len(names))
	switch level {
	case "raid1":
		if n < 2 {
			return p, errors.New("RAID 1 needs at least 2 disks")
		}
		p.Usable, p.Tolerates = member, int(n-1)
		p.Note = "every disk holds a full copy"
	case "raid5":
		if n < 3 {
			return p, errors.New("RAID 5 needs at least 3 disks")
		}
		p.Usable, p.Tolerates = member*(n-1), 1
		p.Note = "survives one failed disk; a second failure during the rebuild loses the pool"
	case "raid6":
		if n < 4 {
			return p, errors.New("RAID 6 needs at least 4 disks")
		}
		p.Usable, p.Tolerates = member*(n-2), 2
		p.Note = "survives any two failed disks"
	case "raid10":
		if n < 4 || n%2 != 0 {
			return p, errors.New("RAID 10 needs an even number of disks, at least 4")
		}
		p.Usable, p.Tolerates = member*n/2, 1
		p.Note = "mirrored pairs: survives one failure per pair"
	default:
		return p, fmt.Errorf("unknown RAID level %q (raid1, raid5, raid6, raid10)", level)
	}
	p.Recommended = Recommend(len(names)) == level
	return p, nil
}

// Recommend is the level the wizard suggests for n disks: RAID 6 from
// 4 disks, RAID 5 for 3, RAID 1 for 2.
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

// Storage is the storage step's choice.
type Storage struct {
	// Kind is "directory" (a directory stands in for the pool: the demo,
	// or a pool the administrator made) or "raid".
	Kind string   `json:"kind"`
	Path string   `json:"path"` // the directory or the pool's mount point
	Pool PoolPlan `json:"pool,omitzero"`
	Free int64    `json:"free,omitempty"`
}

// checkDirectory checks that path can hold the store.
func checkDirectory(path string) (free int64, err error) {
	if !filepath.IsAbs(path) {
		return 0, fmt.Errorf("%q: give an absolute path", path)
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return 0, fmt.Errorf("create %s: %w", path, err)
	}
	probe := filepath.Join(path, ".coffer-write-test")
	if err := os.WriteFile(probe, []byte("ok"), 0o600); err != nil {
		return 0, fmt.Errorf("%s is not writable: %w", path, err)
	}
	os.Remove(probe)
	if entries, err := os.ReadDir(filepath.Join(path, "store")); err == nil && len(entries) > 0 {
		return 0, fmt.Errorf("%s already holds a store: choose an empty directory (an existing store is imported with `coffer store` instead)", path)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("read the free space of %s: %w", path, err)
	}
	free = int64(st.Bavail) * int64(st.Bsize)
	if free < 1<<30 {
		return free, fmt.Errorf("%s has only %d MiB free: the store needs at least 1 GiB", path, free>>20)
	}
	return free, nil
}
