// Package tape will own LTO tiering: SCSI passthrough (SG_IO), SSC drives,
// SMC changers, the on-tape format (tape/FORMAT.md), media pools and GFS
// rotation with offsite vault tracking. Nothing is implemented yet; it
// lands with its issue.
package tape
