// Package catalog owns the file catalog of image backups: what files each
// disk of a recovery point holds, found without mounting anything, and
// the single-file restore that reads them back.
//
// Build walks the disks of a point through the store's random-access
// reader: the volumes on them (partition tables and LVM, package volume),
// the filesystem on each volume (ext4, XFS, NTFS, FAT; package fsys and
// one reader package per type), and every entry of every filesystem. The
// result is a Catalog: a self-describing file (FORMAT below) kept beside
// the store, one per point, derived from the point and rebuildable from it
// at any time (Build again). A disk that cannot be catalogued (damaged
// partition table, corrupt superblock) is noted on the catalog with the
// reason — "cannot catalog disk N: …" — and never fails the backup.
//
// A Library is the directory of catalogs: search across points and VMs
// (a name, a glob such as "*.pst", a path), the listing of one directory
// of a point, and the versions of one file across points. Restore opens
// one file (or a folder as tar or zip) of a point for streaming.
//
// Check is the recoverability check run after a backup: the partition
// tables read, each filesystem's own metadata checks (superblock copies,
// group headers, the MFT mirror) and a sample of the catalogued files read
// back. It marks a catalog verified, warning or failed.
//
// # Catalog file format
//
// A catalog file is "COFFCAT1" (8 bytes), a little-endian uint32 length
// and that many bytes of JSON (the Header: point, source, volumes with
// their filesystem type, label, UUID and errors, entry count, the check's
// verdict, and the SHA-256 of the body), then the body: a zstd stream of
// entries in walk order (a directory before its contents), each encoded
// as uvarints unless noted — volume index; shared prefix length with the
// previous entry's path; suffix length and the suffix bytes; type (1 byte);
// size (varint); mode; uid; gid; mtime in Unix nanoseconds (varint); ref;
// nlink; target length and the target bytes.
package catalog
