package catalog

import (
	"context"
	"io"

	"coffer.dev/coffer/appliance/catalog/ext4"
	"coffer.dev/coffer/appliance/catalog/fat"
	"coffer.dev/coffer/appliance/catalog/fsys"
	"coffer.dev/coffer/appliance/catalog/ntfs"
	"coffer.dev/coffer/appliance/catalog/volume"
	"coffer.dev/coffer/appliance/catalog/xfs"
)

// DefaultReaders are the volume finder (partition tables, LVM) and every
// filesystem reader Coffer has.
func DefaultReaders() Readers {
	return Readers{
		Discover: discover,
		Openers: []func(io.ReaderAt, int64) (fsys.Filesystem, error){
			func(r io.ReaderAt, n int64) (fsys.Filesystem, error) { return ext4.Open(r, n) },
			func(r io.ReaderAt, n int64) (fsys.Filesystem, error) { return xfs.Open(r, n) },
			func(r io.ReaderAt, n int64) (fsys.Filesystem, error) { return ntfs.Open(r, n) },
			func(r io.ReaderAt, n int64) (fsys.Filesystem, error) { return fat.Open(r, n) },
		},
	}
}

func discover(ctx context.Context, disks []DiskSource) ([]FoundVolume, []string, error) {
	vd := make([]volume.Disk, len(disks))
	for i, d := range disks {
		vd[i] = volume.Disk{Name: d.Name, R: d.R, Size: d.Size}
	}
	vols, warnings, err := volume.Discover(ctx, vd)
	if err != nil {
		return nil, warnings, err
	}
	out := make([]FoundVolume, len(vols))
	for i, v := range vols {
		out[i] = FoundVolume{Disk: v.Disk, ID: v.ID, Scheme: v.Scheme, TypeName: v.TypeName, Size: v.Size, R: v.R}
	}
	return out, warnings, nil
}
