// Package restore rebuilds a VM of a recovery point as a new VM in
// vSphere: the hardware comes from the configuration saved with the point
// (the vSphere API's VirtualMachineConfigInfo), the disks are created
// empty and thin on a target datastore, and their contents are streamed
// from the store straight into the new flat extents over the datastore's
// HTTPS file service (/folder). Nothing is staged on the appliance.
//
// The original VM is never touched: the copy gets a new name, new UUIDs
// and new MAC addresses, and an isolated copy (Request.Isolated) has every
// network card disconnected, so a recovery test never clashes with
// production.
package restore
