// Package disks owns the appliance's disks and its md RAID pool: finding
// the machine's disks in sysfs (model, serial, size, partitions, SMART
// health) and why one holds data (partitions, a file system or RAID
// superblock, mounted, part of an array), creating the pool (wiping the
// chosen disks, mdadm, mkfs, mount) and assembling it at boot, reading
// /proc/mdstat and the arrays' sysfs, replacing failed disks, scrubs, and
// the monitor that turns array state changes into events and starts the
// monthly scrub.
//
// Everything goes through a Host: the roots of sysfs, /dev and /proc and a
// Runner for the commands (mdadm, wipefs, mkfs, smartctl), so that tests
// build a fake tree in a temporary directory and record the commands. The
// package never touches a disk that holds the appliance's system, and
// erases one that holds data only when its name is confirmed.
package disks
