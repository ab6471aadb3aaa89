package vcsim

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	// The vAPI simulator (tagging, content library) registers its /rest and /api
	// endpoints with the simulator.
	_ "github.com/vmware/govmomi/vapi/simulator"

	"github.com/vmware/govmomi/vapi/rest"
	"github.com/vmware/govmomi/vapi/tags"
)

// DefaultTagCategory is the category of tags given without one.
const DefaultTagCategory = "coffer"

// AttachTags attaches vSphere tags to the VM through the vAPI tagging service, as an
// administrator would; each tag is "category/tag" or "tag" (in DefaultTagCategory).
// Missing categories (cardinality MULTIPLE, for VirtualMachine) and tags are created.
func (s *Sim) AttachTags(ctx context.Context, vmUUID string, names ...string) error {
	ref, ok := s.lookupVM(vmUUID)
	if !ok {
		return fmt.Errorf("vcsim: no VM %q", vmUUID)
	}
	c, err := s.adminClient(ctx)
	if err != nil {
		return err
	}
	s.tagsMu.Lock()
	defer s.tagsMu.Unlock()
	rc := rest.NewClient(c.Client)
	if err := rc.Login(ctx, url.UserPassword(s.opts.Username, s.opts.Password)); err != nil {
		return fmt.Errorf("vcsim: vAPI login: %w", err)
	}
	defer func() { _ = rc.Logout(context.WithoutCancel(ctx)) }()
	m := tags.NewManager(rc)
	for _, name := range names {
		cat, tag := DefaultTagCategory, name
		if i := strings.LastIndex(name, "/"); i >= 0 {
			cat, tag = name[:i], name[i+1:]
		}
		if cat == "" || tag == "" {
			return fmt.Errorf("vcsim: bad tag %q", name)
		}
		catID := ""
		if c, err := m.GetCategory(ctx, cat); err == nil {
			catID = c.ID
		} else if catID, err = m.CreateCategory(ctx, &tags.Category{
			Name: cat, Cardinality: "MULTIPLE", AssociableTypes: []string{"VirtualMachine"},
		}); err != nil {
			return fmt.Errorf("vcsim: create tag category %q: %w", cat, err)
		}
		tagID := ""
		if t, err := m.GetTagForCategory(ctx, tag, catID); err == nil {
			tagID = t.ID
		} else if tagID, err = m.CreateTag(ctx, &tags.Tag{Name: tag, CategoryID: catID}); err != nil {
			return fmt.Errorf("vcsim: create tag %q: %w", name, err)
		}
		if err := m.AttachTag(ctx, tagID, ref); err != nil {
			return fmt.Errorf("vcsim: attach tag %q: %w", name, err)
		}
	}
	return nil
}
