// Package volume finds the volumes that filesystems live on in the disks
// of one recovery point: GPT and MBR partitions and LVM2 logical volumes.
// It does not read filesystems; the catalog probes each Volume's reader
// with the fsys implementations.
//
// Discover reads, per disk: the GPT (header CRC and entry-array CRC
// checked; when the primary is unusable the backup header at the disk's
// end, with a warning), else the MBR with its primary partitions and the
// chain of extended boot records (logical partitions numbered from 5 as
// Linux does; loops and over-long chains stop the chain with a warning,
// keeping the logicals found so far; the extended container itself is not
// a volume), else the whole disk as one SchemeNone volume. A sector 0 that
// is a FAT/exFAT/NTFS boot sector is a whole-disk filesystem, not an MBR.
// Partitions reaching past the disk's end are clipped with a warning.
// Damage that leaves a disk's partition table unreadable is a warning
// starting "cannot read partition table of disk NAME:" and yields no
// volumes for that disk; Discover's error is only the context's.
//
// Every partition or whole disk with an LVM2 label (LABELONE in sectors
// 0-3, checksum checked) is a physical volume: its metadata areas are
// read (mda header checksum, the committed raw location, the circular
// buffer's wrap-around, the text checksum), the text is parsed and the
// metadata with the highest seqno of each VG is used. PVs are matched by
// UUID across all disks of the point. Visible LVs made only of linear or
// striped segments become volumes (Scheme SchemeLVM, ID "lvm:VG/LV")
// listed in place of the PV holding their first extent; the PV itself is
// not a volume. Other segment types (thin, raid, mirror, snapshot,
// cache...) give the warning "VG/LV: segment type X not supported", an LV
// on a PV absent from the point a warning, and neither a volume. Hidden
// LVs (the internal parts of other LVs) are skipped silently.
//
// Library evaluation: github.com/diskfs/go-diskfs v1.9.4 (MIT) was read.
// Its gpt.Read checks both CRCs and falls back to the backup header, but
// it needs a backend.File (Seek and Stat besides ReadAt, so a wrapper
// around io.ReaderAt), allocates the entry array from the header's
// count*size without a bound (a corrupt header can ask for gigabytes),
// and its MBR reader only knows the four primary entries: no extended
// partitions or logicals. It also pulls in logrus, xz, lz4 and more for
// its filesystem code. The GPT and MBR formats are small, so this package
// reads them itself with every field bounds-checked. No Go library reads
// LVM2 metadata; that is written here too.
package volume
