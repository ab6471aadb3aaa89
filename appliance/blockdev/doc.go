// Package blockdev opens the disks Coffer reads and writes directly: raw
// image files and block devices. It reports a disk's size and, for sparse
// image files, where data is allocated (SEEK_DATA/SEEK_HOLE), so that a
// full backup never reads holes.
package blockdev
