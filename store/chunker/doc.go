// Package chunker splits disk content into content-defined chunks whose
// boundaries fall only on 4 KiB block boundaries (an aligned, FastCDC-style
// gear-hash chunker with normalised chunk sizes). Every decision depends only
// on the block at hand and the number of blocks already in the chunk, and the
// chunker's state resets at every cut, so a disk can be re-chunked from any
// earlier cut point and the result agrees with a full pass: that property is
// what lets an incremental backup re-read only changed extents.
//
// The reasoning behind the parameters, with the measurements, is in
// store/FORMAT.md ("Chunking").
package chunker
