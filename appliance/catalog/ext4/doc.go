// Package ext4 is a read-only reader for ext2, ext3 and ext4 filesystems
// over an io.ReaderAt: it owns the parsing of the superblock, the group
// descriptors, inodes, extent trees and classic block maps (direct,
// indirect, double and triple indirect), linear and htree directories,
// inline data, fast and slow symlinks, and the metadata checks (superblock
// and group descriptor checksums, backup superblock, inode checksums) that
// the catalog's recoverability check runs. It implements fsys.Filesystem
// and fsys.Checker and never writes.
//
// Library evaluation: github.com/masahiro331/go-ext4-filesystem (Apache-2.0)
// offers an fs.FS by path over an io.SectionReader. Its FileInfo keeps the
// inode number private and Sys() returns nil, so inode numbers (hard-link
// Refs), link counts and uid/gid are not reachable; mtimes drop nanoseconds;
// it reads each inode with its own small ReadAt and decodes with
// encoding/binary reflection, and file reads go block by block through a
// Seek on a shared reader (not safe for concurrent Opens). It does handle
// extents, block maps and htree. github.com/diskfs/go-diskfs/filesystem/ext4
// (MIT) needs a backend.Storage (an os.File-like object, not a plain
// io.ReaderAt), reads extent files only, and ReadFile-style access loads
// whole files into memory, which rules out streaming large files. Neither
// exposes Ref/Nlink/UID/GID as fsys.Entry needs, nor checksum checks, so
// this package is written from the on-disk format documentation instead;
// it reads inode tables in 64 KiB chunks and caches metadata in a bounded
// LRU so that a walk issues few, large reads.
package ext4
