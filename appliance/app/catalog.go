package app

import (
	"context"
	"fmt"
	"path/filepath"

	"coffer.dev/coffer/appliance/catalog"
	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/store/point"
)

// CatalogDir holds one file catalog per point (derived from the point,
// rebuilt by `coffer files catalog`).
const CatalogDir = "catalog"

// Catalogs is the library of file catalogs.
func (a *App) Catalogs() *catalog.Library {
	return &catalog.Library{Dir: filepath.Join(a.Dir, CatalogDir)}
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
	if err := a.Catalogs().Save(c); err != nil {
		return nil, err
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
	c, err := s.app.Catalogs().Load(id)
	if err != nil {
		return nil, nil, err
	}
	p, err := s.app.Store.Point(id)
	if err != nil {
		return nil, nil, err
	}
	pf, err := catalog.OpenPoint(ctx, s.app.Store, p, catalog.DefaultReaders())
	if err != nil {
		return nil, nil, err
	}
	return pf, c, nil
}
