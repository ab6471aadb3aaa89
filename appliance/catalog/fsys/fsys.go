package fsys

import (
	"context"
	"errors"
	"io"
	"time"
)

// EntryType is what kind of object an Entry is.
type EntryType uint8

const (
	TypeFile EntryType = iota + 1
	TypeDir
	TypeSymlink
	TypeCharDevice
	TypeBlockDevice
	TypeFIFO
	TypeSocket
)

func (t EntryType) String() string {
	switch t {
	case TypeFile:
		return "file"
	case TypeDir:
		return "dir"
	case TypeSymlink:
		return "symlink"
	case TypeCharDevice:
		return "chardev"
	case TypeBlockDevice:
		return "blockdev"
	case TypeFIFO:
		return "fifo"
	case TypeSocket:
		return "socket"
	}
	return "unknown"
}

// Entry is one name in a filesystem, as a walk yields it.
type Entry struct {
	// Path is absolute, "/"-separated, without a trailing slash; the root
	// directory is "/". Names are the filesystem's own bytes decoded as
	// UTF-8 (NTFS and FAT long names are UTF-16 on disk and converted).
	Path string
	Type EntryType
	// Size is the logical size in bytes (for a symlink: the target's
	// length; for a directory: what the filesystem reports, informational).
	Size int64
	// Mode holds the Unix permission bits (07777) where the filesystem
	// has them; 0 on NTFS and FAT.
	Mode     uint32
	UID, GID uint32
	MTime    time.Time
	// Ref identifies the object inside this filesystem so that Open can
	// find it again without a path lookup: the inode number on ext4 and
	// XFS, the MFT record number on NTFS, the first cluster on FAT (0 for
	// an empty file). Hard-linked names share one Ref.
	Ref uint64
	// Nlink is the number of names the object has (1 where the
	// filesystem does not track it).
	Nlink uint32
	// Target is a symlink's target, as stored.
	Target string
}

// WalkFunc is called for every entry, a directory before its contents.
// Returning SkipDir from a directory's call skips its contents.
type WalkFunc func(e *Entry) error

// SkipDir is returned by a WalkFunc to skip a directory's contents.
//
//lint:ignore ST1012 named like io/fs.SkipDir, which it mirrors
var SkipDir = errors.New("skip this directory")

// File is the content of one regular file. Holes and unwritten extents
// read as zeros. ReadAt at or beyond Size returns io.EOF.
type File interface {
	io.ReaderAt
	Size() int64
}

// Filesystem is a read-only filesystem on a volume.
type Filesystem interface {
	// Type names the filesystem: "ext4" (also ext2/ext3), "xfs", "ntfs",
	// "vfat".
	Type() string
	// Label is the volume label, "" if none.
	Label() string
	// UUID is the filesystem's identifier as its tools print it (blkid),
	// "" if it has none.
	UUID() string
	// Walk visits every entry below "/" (the root included) depth-first,
	// a directory before its contents, children in the order the
	// directory stores them. "." and ".." are not visited. A damaged
	// directory is an error, returned with the path that failed.
	Walk(ctx context.Context, fn WalkFunc) error
	// Open returns the content of the regular file e (Ref and Size of an
	// Entry from Walk are enough).
	Open(e *Entry) (File, error)
}

// Checker is implemented by filesystems that can check their own
// metadata without a walk (superblock copies, allocation group headers,
// the MFT mirror): the recoverability check calls it. Problems are
// returned as human-readable findings; an error means the check itself
// could not run.
type Checker interface {
	Check(ctx context.Context) (findings []string, err error)
}

// ErrNotRecognized is returned (wrapped) by a reader's Open when the
// volume does not hold its filesystem type.
var ErrNotRecognized = errors.New("filesystem not recognized")
