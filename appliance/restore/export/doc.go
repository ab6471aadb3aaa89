// Package export turns one disk of a recovery point into a portable disk
// image: raw, VMDK (stream-optimized, for vSphere import), VHDX (dynamic,
// for Hyper-V) or qcow2 (version 3, for KVM/Proxmox).
//
// It owns the image writers and nothing else: it reads a Source (a
// store.DiskReader satisfies it) and streams the image to an io.Writer
// strictly sequentially, so the output can be an http.ResponseWriter, a
// pipe or a terminal; nothing is seeked and nothing is staged in a
// temporary file. Callers (the HTTP API and the CLI) choose the format,
// set headers and open/close the disk reader.
//
// Zero areas are never stored: qcow2 clusters, VHDX blocks and VMDK grains
// whose bytes are all zero are left unallocated, so the images are sparse.
// qcow2 and VHDX put their metadata before the data; their layout is
// computed up front from a scan of the disk's data extents (each cluster's
// bytes are checked), which also gives the exact output length (Size) for
// an HTTP Content-Length. VMDK stream-optimized writes its grain tables and
// directory after the compressed grains, so it needs one pass only, but its
// length is not known before compressing.
//
// The on-disk choices (cluster, block and grain sizes, layouts) are listed
// in README.md next to this file.
package export
