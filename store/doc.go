// Package store is Coffer's deduplicating store: recovery points of disks,
// cut into content-defined chunks, deduplicated against everything already
// stored, compressed, encrypted and appended in stream order to containers,
// with a badger index in front. It knows nothing of VMware, tape or HTTP.
//
// The store owns the lifecycle of its data: backup (full or from changed
// extents), random access and restore, retention (delete, GFS prune,
// retention locks), garbage collection that is safe while backups run,
// verification that names damaged points and ranges, and crash recovery.
// The on-disk format is specified in FORMAT.md in this folder.
package store
