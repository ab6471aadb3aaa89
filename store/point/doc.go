// Package point owns the recovery point record: what was backed up (source,
// disks and the level-2 maps that describe them), when, how consistently,
// with which labels and caller metadata (a VM's configuration), and what it
// cost. A point file is written once, encrypted and authenticated, and never
// changed; its retention lock lives beside it.
package point
