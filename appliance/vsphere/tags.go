package vsphere

import (
	"context"
	"fmt"
	"net/url"

	"github.com/vmware/govmomi/vapi/rest"
	"github.com/vmware/govmomi/vapi/tags"
	"github.com/vmware/govmomi/vim25/mo"
)

// addTags fills the tags of inv's VMs ("category/name") through the
// vAPI tagging service, which only vCenter has.
func (c *Client) addTags(ctx context.Context, inv *Inventory, vms []mo.VirtualMachine) error {
	if !c.IsVC() || len(vms) == 0 {
		return nil
	}
	rc := rest.NewClient(c.vim)
	if err := rc.Login(ctx, url.UserPassword(c.ep.Username, c.ep.Password)); err != nil {
		return fmt.Errorf("log in to the vAPI endpoint: %w", err)
	}
	defer rc.Logout(context.WithoutCancel(ctx))
	m := tags.NewManager(rc)
	cats, err := m.GetCategories(ctx)
	if err != nil {
		return fmt.Errorf("list tag categories: %w", err)
	}
	catName := map[string]string{}
	for _, cat := range cats {
		catName[cat.ID] = cat.Name
	}
	all, err := m.GetTags(ctx)
	if err != nil {
		return fmt.Errorf("list tags: %w", err)
	}
	tagName := map[string]string{}
	for _, t := range all {
		tagName[t.ID] = catName[t.CategoryID] + "/" + t.Name
	}
	refs := make([]mo.Reference, len(vms))
	for i := range vms {
		refs[i] = vms[i].Self
	}
	attached, err := m.GetAttachedTagsOnObjects(ctx, refs)
	if err != nil {
		return fmt.Errorf("read attached tags: %w", err)
	}
	byRef := map[string][]string{}
	for _, a := range attached {
		for _, id := range a.TagIDs {
			if n, ok := tagName[id]; ok {
				byRef[a.ObjectID.Reference().Value] = append(byRef[a.ObjectID.Reference().Value], n)
			}
		}
	}
	for i := range inv.VMs {
		inv.VMs[i].Tags = byRef[inv.VMs[i].Ref]
	}
	return nil
}
