// Package container owns the container file: the unit in which chunks are
// stored, in stream order, packed into compressed and encrypted regions,
// followed by an encrypted fingerprint section that lists every chunk. A
// sealed container is immutable and self-describing: the index can be rebuilt
// from containers alone, and a container can be copied to tape or to another
// appliance as it is. The byte layout is specified in store/FORMAT.md.
package container
