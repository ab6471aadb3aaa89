// Package vcsim runs govmomi's vCenter simulator (github.com/vmware/govmomi/simulator)
// with the pieces a VM backup needs and the plain simulator lacks, so that Coffer's
// VMware ingest engine can be tested, and `coffer demo` can run, against a server that
// answers the calls of a backup like vCenter/ESXi.
//
// # What the package owns
//
//   - Starting the simulator ([Start]): a vCenter model with datacenter "DC0", cluster
//     "DC0_C0" of hosts "DC0_C0_H0" and "DC0_C0_H1", standalone host "DC0_H0", network
//     "VM Network" and datastores "LocalDS_0" and "LocalDS_1" (directories under
//     Options.Dir) mounted on every host, and no VMs. It is served on
//     https://127.0.0.1:PORT/sdk with a fresh self-signed certificate that clients pin
//     by thumbprint ([Sim.Thumbprint], [Sim.NewClient]), and only the configured
//     credentials can log in ([Sim.Credentials]).
//   - Test fixtures: VMs with disks of a chosen size, mode, datastore, raw device
//     mapping mode, content and vSphere tags, whose -flat.vmdk files are real sparse
//     files on the host ([Sim.CreateVM], [Sim.AddDisk], [Sim.ResizeDisk],
//     [Sim.DiskFile], [Sim.WriteDisk], [Sim.AttachTags]).
//   - A changed block tracking double (cbt.go, track.go): each snapshot of a VM with
//     config.changeTrackingEnabled makes a generation of each of its disks with a
//     VMware-style changeId, shown in the disk backings of the snapshot's and the VM's
//     config; VirtualMachine.QueryChangedDiskAreas answers "*" and incremental queries,
//     pages like ESXi, and fails with FileFault for changeIds it does not know or that
//     switching CBT off/on or [Sim.ResetCBT] invalidated. By default a snapshot hashes
//     the 64 KiB blocks of the disks, so tests may change flat files by any means; with
//     Options.TrackWrites the disks are written through [Sim.WriteDisk], which records
//     the written blocks as ESXi does, and a snapshot reads nothing (a direct change of
//     a tracked flat file is noticed and resets the disk's tracking).
//   - A guest operations double (guest.go): StartProgramInGuest, ListProcessesInGuest
//     and TerminateProcessInGuest check power, tools and guest credentials
//     (InvalidGuestLogin), record every command ([Sim.GuestCommands]) and end with
//     scripted exit codes and durations ([Sim.SetGuestResult], [Sim.SetGuestDuration]).
//     VMware Tools are reported running on powered-on VMs with a guest OS id.
//   - A guest file system double (guestfs.go): an in-memory file system per VM, capped
//     at Options.GuestFSLimit file bytes (DefaultGuestFSLimit, 1 GiB; beyond it
//     NoDiskSpace), answering MakeDirectoryInGuest (FileAlreadyExists for an existing
//     directory, as VMware Tools do, also with createParentDirectories),
//     InitiateFileTransferToGuest (POSIX or Windows attributes per guest family;
//     FileAlreadyExists when overwrite is false), InitiateFileTransferFromGuest,
//     ListFilesInGuest (sorted, no "." and "..", matchPattern as a regular expression,
//     index/maxResults paging; a file lists itself) and DeleteFileInGuest, after the
//     same power, tools and credential checks as the process calls. Transfers use
//     one-time URLs https://*:PORT/guestFile/TOKEN on the simulator's server (PUT with
//     exactly the announced Content-Length, or GET), host "*" as ESXi answers; clients
//     put in the host they connected to. (In vCenter mode govmomi's
//     FileManager.TransferURL also pins the simulated ESXi host's thumbprint for that
//     address, which breaks a thumbprint-pinned session: replace "*" yourself.) Linux
//     guests take "/" paths; guests whose guest OS id starts with "win" take
//     `C:\...` paths, either separator, drive letters case-insensitive, names
//     otherwise case-sensitive. Tests read the result with [Sim.GuestFile],
//     [Sim.GuestFileStat] and [Sim.GuestFiles] and seed files with
//     [Sim.WriteGuestFile].
//   - Fault injection: quiesce failures ([Sim.FailQuiesce]), failures of the next calls
//     of any method ([Sim.FailNext]), session expiry ([Sim.ExpireSessions]), datastore
//     reads cut mid-body ([Sim.DropReads]) and a count of datastore reads
//     ([Sim.ReadRequests]).
//
// # How the simulator is extended
//
// The simulator dispatches a SOAP call by reflection to the object registered under the
// call's managed object reference, after consulting an optional Registry.Handler hook.
// Putting a wrapper into the registry in place of a VirtualMachine breaks the
// simulator's own code, which type-asserts *simulator.VirtualMachine. Instead, the hook
// installed here answers the methods this package overrides with a short-lived wrapper
// (a struct embedding the simulator's object, so it is locked and read like it) and
// points the call at a reference that no registry holds, so the dispatcher keeps the
// wrapper; every other call reaches the simulator untouched. Wrappers that change what
// a simulator task does run the simulator's task inside an outer task that holds the
// VM's lock throughout. State changes made by anyone (power, devices, the CBT flag) are
// followed through a Registry handler, the mechanism the simulator's
// PropertyCollector uses.
//
// # What the doubles do not do
//
//   - Snapshots keep no delta disk (the simulator's): the base flat file keeps
//     changing, so tests change disks only while no backup reads them. In hashing mode
//     the CBT double compares content (a block rewritten with the same bytes is not
//     reported).
//   - "*" reports the non-zero blocks of every disk, thin or thick, in hashing mode and
//     the allocated blocks with Options.TrackWrites; ESXi may report the whole of a
//     thick disk on VMFS.
//   - Memory snapshots, consolidation (runtime.consolidationNeeded), VDDK/NBD transports
//     and ExportVm are not simulated. Of the GuestFileManager, temporary files, moves,
//     attribute changes and directory removal fail with NotSupported after the
//     credential check; guest files are not kept across Close and not tied to disks.
//   - Physical-mode RDMs and independent disks are never tracked (as on ESXi). The
//     simulator cannot lay out RDM disks; the methods that would make it try run with
//     flat stand-ins (rdm.go), except CloneVM_Task and RelocateVM_Task.
//
// Everything is in-process and loopback-only: no Docker, no network beyond 127.0.0.1.
package vcsim
