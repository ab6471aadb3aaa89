// Package crypt owns the store's key hierarchy and its authenticated
// encryption: the caller's master key (from a key file now, sealed in the TPM
// later) wraps a keyring of per-store keys (data, fingerprint, chunker), so
// the master key can be re-sealed or rotated without touching the data. It
// also encodes the master key as a human-typable recovery key.
package crypt
