// Package diskmap owns the maps that describe a disk of a recovery point as a
// two-level tree of chunks, in the manner of Data Domain's segment trees: a
// level-1 map lists the extents (data chunks and zero runs) of one 16 MiB map
// range, a level-2 map lists the level-1 maps of a group of 1024 ranges
// (16 GiB). Maps are stored as chunks themselves, so the maps of an
// unchanged region are identical from one point to the next and deduplicate:
// an incremental point costs only the maps of the ranges that changed.
package diskmap
