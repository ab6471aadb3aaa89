package vsphere

import (
	"context"
	"errors"
	"fmt"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// ErrVMNotFound means no VM has the instance UUID asked for: it was
// deleted, or lives in another vCenter now.
var ErrVMNotFound = errors.New("VM not found")

// findVM looks a VM up by its instance UUID and reads props.
func (c *Client) findVM(ctx context.Context, instanceUUID string, props []string) (*mo.VirtualMachine, error) {
	t := true
	res, err := methods.FindByUuid(ctx, c.vim, &types.FindByUuid{
		This: *c.vim.ServiceContent.SearchIndex, Uuid: instanceUUID, VmSearch: true, InstanceUuid: &t,
	})
	if err != nil {
		return nil, fmt.Errorf("find VM %s: %w", instanceUUID, err)
	}
	if res.Returnval == nil {
		return nil, fmt.Errorf("VM with instance UUID %s: %w", instanceUUID, ErrVMNotFound)
	}
	var o mo.VirtualMachine
	if err := object.NewCommon(c.vim, *res.Returnval).Properties(ctx, *res.Returnval, props, &o); err != nil {
		return nil, fmt.Errorf("read VM %s: %w", instanceUUID, err)
	}
	return &o, nil
}

// allVMs reads props of every VM.
func (c *Client) allVMs(ctx context.Context, props []string) ([]mo.VirtualMachine, error) {
	v, err := view.NewManager(c.vim).CreateContainerView(ctx, c.vim.ServiceContent.RootFolder, []string{"VirtualMachine"}, true)
	if err != nil {
		return nil, fmt.Errorf("list VMs: %w", err)
	}
	defer v.Destroy(context.WithoutCancel(ctx))
	var vms []mo.VirtualMachine
	if err := v.Retrieve(ctx, []string{"VirtualMachine"}, props, &vms); err != nil {
		return nil, fmt.Errorf("list VMs: %w", err)
	}
	return vms, nil
}

// DatacenterPath returns the inventory path of the datacenter holding
// ref ("/DC0"), as the datastore file service wants it.
func (c *Client) DatacenterPath(ctx context.Context, ref types.ManagedObjectReference) (string, error) {
	ents, err := mo.Ancestors(ctx, c.vim, c.vim.ServiceContent.PropertyCollector, ref)
	if err != nil {
		return "", fmt.Errorf("find the datacenter of %s: %w", ref.Value, err)
	}
	p := ""
	for _, e := range ents {
		if e.Parent == nil {
			continue
		}
		p += "/" + e.Name
		if e.Self.Type == "Datacenter" {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not inside a datacenter", ref.Value)
}
