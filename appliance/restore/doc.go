// Package restore rebuilds a VM of a recovery point as a new VM in
// vSphere: the hardware comes from the configuration saved with the point
// (the vSphere API's VirtualMachineConfigInfo), the disks are created
// empty and thin on a target datastore, and their contents are streamed
// from the store straight into the new flat extents over the datastore's
// HTTPS file service (/folder). Nothing is staged on the appliance.
//
// RestoreVM never touches the original VM: the copy gets a new name, new
// UUIDs and new MAC addresses, and an isolated copy (Request.Isolated) has
// every network card disconnected, so a recovery test never clashes with
// production.
//
// Two modes write into existing VMs instead: RestoreDisks adds disks of a
// point as new disks of another VM, and RestoreOverOriginal (confirmed by
// typing the VM's name) overwrites the original VM's disks in place. Both
// check everything before changing anything and never power a VM on.
package restore
