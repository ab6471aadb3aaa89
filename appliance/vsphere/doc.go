// Package vsphere is Coffer's VMware ingest engine: it connects to a
// vCenter or standalone ESXi (with explicit certificate trust), reads the
// inventory, and backs up one VM at a time into the store — quiesced
// snapshot, changed block tracking, ranged reads of the frozen disk
// through a DiskTransport, the VM's configuration saved with the point,
// guest hooks, and a snapshot that is always removed.
//
// It knows nothing of policies, schedules or queues (appliance/jobs
// decides what to back up and when) and nothing of HTTP serving.
package vsphere
