// Package fat reads FAT12, FAT16 and FAT32 volumes (with VFAT long file
// names) through an io.ReaderAt, without mounting, for the catalog: it
// implements fsys.Filesystem and fsys.Checker.
//
// The package owns the on-disk parsing of the boot sector (BPB), the file
// allocation table, cluster chains (FAT16's fixed root directory and
// FAT32's root chain included), directory entries with their long-name
// slots, and the streaming of file contents by contiguous cluster runs.
// The FAT type is decided from the cluster count, as the Microsoft
// specification requires, never from the type string in the boot sector.
// FAT sectors are cached in bounded chunks; every chain walk is bounded
// by the volume's cluster count so that cycles are reported, not looped.
//
// Library evaluation: github.com/diskfs/go-diskfs has a FAT32
// implementation only (no FAT12/FAT16), and it works on its own file
// abstraction that reads whole structures eagerly rather than streaming
// from an io.ReaderAt, so it does not fit a reader that sits on a
// deduplicating block store. The reader here is written from the
// specification.
package fat
