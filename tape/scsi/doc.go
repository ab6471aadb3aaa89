// Package scsi owns Coffer's SCSI vocabulary for LTO tape drives (SSC) and
// media changers (SMC): command descriptor block (CDB) builders, sense data
// decoding and classification, and parsers for the data-in buffers the tape
// layer needs (standard INQUIRY, VPD pages 80h and 83h, READ POSITION long
// form, READ ELEMENT STATUS).
//
// Everything here is a pure function over byte slices, written from SPC-4,
// SSC-3/SSC-4 and SMC-3, so it is tested without hardware. The transport
// that actually issues the commands — the Linux SCSI generic SG_IO ioctl on
// /dev/sg* — lands later in this same package; higher layers (drive, changer,
// on-tape format, pools) live elsewhere under coffer.dev/coffer/tape.
//
// Conventions: every multi-byte field is big-endian as the standards
// require; the CONTROL byte of every CDB is zero (no NACA, no linking);
// builders that take a value with a narrower wire field than its Go type
// return an error instead of truncating silently. Parsers never panic on
// short or malformed input: they return an error wrapping ErrShort or
// ErrInvalid.
package scsi
