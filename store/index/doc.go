// Package index owns the chunk index: a persistent map from chunk ID to the
// container that holds the chunk (badger), the per-container records, and
// the summary vector, an in-memory Bloom filter that answers "certainly not
// stored" for new chunks without touching the disk. The index is derived
// data: every entry can be rebuilt from the containers' fingerprint
// sections.
package index
