// Package statefile writes the appliance's small state files (accounts,
// tokens, the setup wizard's progress, certificates, connection settings)
// so that a power cut leaves either the old or the new content, never a
// torn file: a temporary file in the same directory, fsync, rename over
// the old one, fsync of the directory.
package statefile
