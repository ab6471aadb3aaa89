package volume

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Partitioning schemes reported in Volume.Scheme.
const (
	SchemeGPT  = "gpt"
	SchemeMBR  = "mbr"
	SchemeLVM  = "lvm"
	SchemeNone = "none"
)

// Disk is one disk of a recovery point.
type Disk struct {
	// Name identifies the disk within the point ("scsi0:0").
	Name string
	// R reads the disk's bytes; it must be safe for concurrent use.
	R io.ReaderAt
	// Size is the disk's size in bytes.
	Size int64
}

// Volume is one place a filesystem may live: a partition, an LVM logical
// volume, or a whole disk.
type Volume struct {
	// Disk is the name of the disk the volume starts on (for an LV: the
	// disk holding its first extent).
	Disk string
	// Name is for people: "disk scsi0:0 partition 1", "vg0/root",
	// "disk scsi0:0".
	Name string
	// ID is short and stable within the disk (partitions, whole disk) or
	// within the point (LVs): "p1", "p5", "lvm:vg0/root", "whole".
	ID string
	// Scheme is SchemeGPT, SchemeMBR, SchemeLVM or SchemeNone.
	Scheme string
	// Index is the partition number as Linux numbers it (MBR logical
	// partitions from 5); 0 for LVs and whole disks.
	Index int
	// Offset and Size locate the volume on Disk. For an LV, Offset is -1
	// and Size is the LV's size.
	Offset, Size int64
	// TypeGUID is the GPT partition type GUID (lower case, canonical
	// form) or the MBR type as "0x83"; empty for LVs and whole disks.
	TypeGUID string
	// TypeName names TypeGUID for the common types (see the Type*
	// constants); empty when unknown. LVs have TypeLVMLogicalVolume.
	TypeName string
	// PartName is the GPT partition name.
	PartName string
	// R reads the volume's bytes from its offset 0. It is safe for
	// concurrent use.
	R io.ReaderAt
}

// Discover finds the volumes on the disks of one recovery point: per disk
// in order, its partitions (GPT, else MBR, else the whole disk), where a
// partition (or whole disk) that is an LVM2 physical volume is replaced by
// the logical volumes that start on it. Damage is reported per disk as
// warnings; err is only ctx's error.
func Discover(ctx context.Context, disks []Disk) (vols []Volume, warnings []string, err error) {
	d := &discoverer{ctx: ctx}
	type slot struct {
		vol Volume
		pv  *pvInfo
	}
	slots := make([][]slot, len(disks))
	var pvs []*pvInfo
	for i, disk := range disks {
		if err := ctx.Err(); err != nil {
			return nil, d.warnings, err
		}
		for _, v := range d.partitions(disk) {
			if err := ctx.Err(); err != nil {
				return nil, d.warnings, err
			}
			pv := d.probePV(disk.Name, v)
			if pv != nil {
				pvs = append(pvs, pv)
			}
			slots[i] = append(slots[i], slot{vol: v, pv: pv})
		}
	}
	lvsByPV := d.buildLVs(pvs)
	if err := ctx.Err(); err != nil {
		return nil, d.warnings, err
	}
	for _, ds := range slots {
		for _, s := range ds {
			if s.pv == nil {
				vols = append(vols, s.vol)
				continue
			}
			vols = append(vols, lvsByPV[s.pv]...)
		}
	}
	return vols, d.warnings, nil
}

type discoverer struct {
	ctx      context.Context
	warnings []string
}

func (d *discoverer) warnf(format string, args ...any) {
	d.warnings = append(d.warnings, fmt.Sprintf(format, args...))
}

// readFull reads exactly len(p) bytes at off, treating a full read that
// also reports io.EOF as success.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %d bytes at offset %d: %w", len(p), off, err)
}

// maxOffset bounds every byte offset or size computed from on-disk
// values, so that sums of two of them cannot overflow an int64.
const maxOffset = int64(1) << 60

// mulBytes returns a*b, or false when either is negative or the product
// exceeds maxOffset.
func mulBytes(a, b uint64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	if a > uint64(maxOffset) || b > uint64(maxOffset)/a {
		return 0, false
	}
	return int64(a * b), true
}
