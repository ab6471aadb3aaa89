package app

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/vmware/govmomi/vim25/types"

	"coffer.dev/coffer/appliance/catalog"
	"coffer.dev/coffer/appliance/restore"
	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/store/point"
)

// CatalogDir holds one file catalog per point (derived from the point,
// rebuilt by `coffer files catalog`).
const CatalogDir = "catalog"

// Catalogs is the library of file catalogs.
func (a *App) Catalogs() *catalog.Library {
	return &catalog.Library{Dir: filepath.Join(a.Dir, CatalogDir), Live: a.pointExists}
}

func (a *App) pointExists(id point.ID) bool {
	_, err := a.Store.Point(id)
	return err == nil
}

// CatalogPoint builds (or rebuilds) the file catalog of point id with the
// recoverability check, and saves it.
func (a *App) CatalogPoint(ctx context.Context, id point.ID) (*catalog.Catalog, error) {
	return a.CatalogPointWith(ctx, id, catalog.Options{Check: true})
}

// CatalogPointWith builds and saves the catalog of point id with o.
func (a *App) CatalogPointWith(ctx context.Context, id point.ID, o catalog.Options) (*catalog.Catalog, error) {
	p, err := a.Store.Point(id)
	if err != nil {
		return nil, err
	}
	if o.Log == nil {
		o.Log = a.Log
	}
	c, err := catalog.Build(ctx, a.Store, p, catalog.DefaultReaders(), o)
	if err != nil {
		return nil, fmt.Errorf("catalog point %s: %w", id, err)
	}
	lib := a.Catalogs()
	if err := lib.Save(c); err != nil {
		return nil, err
	}
	if n, err := lib.Prune(a.pointExists); err != nil {
		a.Log.Warn("removing the catalogs of deleted points", "err", err)
	} else if n > 0 {
		a.Log.Info("catalogs of deleted points removed", "count", n)
	}
	a.Log.Info("point catalogued", "point", id, "entries", len(c.Entries), "verdict", c.Verdict,
		"problems", len(c.Problems), "seconds", c.Duration)
	return c, nil
}

// catalogResult catalogs the point of a successful backup and records the
// outcome on res: problems become warnings (the backup itself stands).
func (a *App) catalogResult(ctx context.Context, res *vsphere.Result) {
	if res == nil || res.Point == "" {
		return
	}
	c, err := a.CatalogPoint(ctx, res.Point)
	if err != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("the file catalog was not built: %v", err))
		res.Recoverability = string(catalog.Failed)
		return
	}
	res.Warnings = append(res.Warnings, c.Problems...)
	res.Recoverability = string(c.Verdict)
	res.CatalogEntries = len(c.Entries)
}

// AfterBackup runs what follows a VM's backup: the file catalog and the
// recoverability check.
func (a *App) AfterBackup(ctx context.Context, res *vsphere.Result) { a.catalogResult(ctx, res) }

// Catalogs is the library of file catalogs (for the API).
func (s *Services) Catalogs() *catalog.Library { return s.app.Catalogs() }

// CatalogPoint rebuilds the catalog of a point (for the API).
func (s *Services) CatalogPoint(ctx context.Context, id point.ID) (*catalog.Catalog, error) {
	return s.app.CatalogPoint(ctx, id)
}

// OpenPointFiles opens the filesystems of point id for single-file
// restore, with its catalog.
func (s *Services) OpenPointFiles(ctx context.Context, id point.ID) (*catalog.PointFiles, *catalog.Catalog, error) {
	return s.app.OpenPointFiles(ctx, id)
}

// OpenPointFiles opens the filesystems of point id for single-file
// restore, with its catalog.
func (a *App) OpenPointFiles(ctx context.Context, id point.ID) (*catalog.PointFiles, *catalog.Catalog, error) {
	c, err := a.Catalogs().Load(id)
	if err != nil {
		return nil, nil, err
	}
	p, err := a.Store.Point(id)
	if err != nil {
		return nil, nil, err
	}
	pf, err := catalog.OpenPoint(ctx, a.Store, p, catalog.DefaultReaders())
	if err != nil {
		return nil, nil, err
	}
	return pf, c, nil
}

// PutBackRequest asks for a file or folder of a point to be put back into
// a running VM through guest operations.
type PutBackRequest struct {
	Point  point.ID `json:"-"`
	Volume string   `json:"volume"`
	Path   string   `json:"path"`
	// VM is the target VM's instance UUID (or its name, when unique).
	VM string `json:"vm"`
	// Dest is where in the guest ("" for the original path).
	Dest             string `json:"dest"`
	Overwrite        bool   `json:"overwrite"`
	GuestCredentials string `json:"guest_credentials"`
}

// PutFilesBack puts a file or folder of a point into a running VM.
func (s *Services) PutFilesBack(ctx context.Context, req PutBackRequest) (*restore.PutResult, error) {
	e, err := s.Engine(ctx)
	if err != nil {
		return nil, err
	}
	return s.app.PutFilesBack(ctx, e.Client, req)
}

// PutFilesBack puts a file or folder of a point into a running VM of the
// vCenter c is logged in to (req.VM: instance UUID or name).
func (a *App) PutFilesBack(ctx context.Context, c *vsphere.Client, req PutBackRequest) (*restore.PutResult, error) {
	if req.VM == "" || req.Path == "" || req.GuestCredentials == "" {
		return nil, errors.New("vm, path and guest_credentials are required")
	}
	creds, err := a.GuestCredentials(req.GuestCredentials)
	if err != nil {
		return nil, err
	}
	if creds == nil {
		return nil, fmt.Errorf("no guest credentials %q", req.GuestCredentials)
	}
	inv, err := c.Inventory(ctx)
	if err != nil {
		return nil, err
	}
	var match []vsphere.VM
	for _, vm := range inv.VMs {
		if strings.EqualFold(vm.InstanceUUID, req.VM) || vm.Name == req.VM {
			match = append(match, vm)
		}
	}
	switch {
	case len(match) == 0:
		return nil, fmt.Errorf("no VM is named %q or has that instance UUID", req.VM)
	case len(match) > 1:
		return nil, fmt.Errorf("%d VMs are named %q: give the instance UUID", len(match), req.VM)
	}
	vm := match[0]
	pf, cat, err := a.OpenPointFiles(ctx, req.Point)
	if err != nil {
		return nil, err
	}
	defer pf.Close()
	vol, err := cat.ResolveVolume(req.Volume)
	if err != nil {
		return nil, err
	}
	ref := types.ManagedObjectReference{Type: "VirtualMachine", Value: vm.Ref}
	windows := strings.HasPrefix(strings.ToLower(vm.GuestID), "win")
	res, err := restore.PutFiles(ctx, &vsphere.GuestFiles{Client: c}, ref, windows, *creds, pf, cat, vol, req.Path, req.Dest,
		restore.PutOptions{Overwrite: req.Overwrite})
	if err != nil {
		return &res, err
	}
	a.Log.Info("files put back into a VM", "point", req.Point, "path", req.Path, "vm", vm.Name, "files", res.Files, "bytes", res.Bytes)
	return &res, nil
}
