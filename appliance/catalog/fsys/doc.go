// Package fsys owns the read-only view of one filesystem that the file
// catalog walks and single-file restore reads from: the Filesystem
// interface, the Entry a walk yields, and the File a restore reads.
//
// Every reader (ext4, xfs, ntfs, fat) works on an io.ReaderAt over the
// volume (a partition or logical volume of a disk of a recovery point):
// nothing is mounted, nothing is written. Readers read metadata lazily and
// never hold a whole filesystem in memory.
package fsys
