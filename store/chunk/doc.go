// Package chunk owns the identity of a stored chunk: its keyed fingerprint
// (keyed BLAKE3 under the store's fingerprint key, so that an ID reveals
// nothing about the content to anyone without the key) and its kind (file
// data or one of the map levels that describe a disk).
package chunk
