package ui

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"coffer.dev/coffer/appliance/catalog"
	"coffer.dev/coffer/appliance/restore/export"
	"coffer.dev/coffer/store"
	"coffer.dev/coffer/store/point"
)

// manPointRow is one line of the recovery point list.
type manPointRow struct {
	ID          point.ID
	Href        string
	VM, Source  string
	Created     time.Time
	Consistency string
	Verdict     string // verified, warning, failed, or "" (not checked)
	Findings    []string
	Disks       int
	Logical     int64
	Stored      int64
	LockedUntil time.Time
	Locked      bool
}

type manPointsView struct {
	Rows    []manPointRow
	Sources []manLink
	Source  string
	Problem string
}

// manPointName is the name a point's VM is shown with.
func (s *Server) manPointName(names map[string]string, p *point.RecoveryPoint) string {
	if n := names[p.Source]; n != "" {
		return n
	}
	for _, k := range []string{"vm", "name"} {
		if n := p.Labels[k]; n != "" {
			return n
		}
	}
	if h, err := s.be().Catalogs().Header(p.ID); err == nil && h.Name != "" {
		return h.Name
	}
	return p.Source
}

func (s *Server) manPoints(c *gin.Context) {
	v := manPointsView{Source: c.Query("source")}
	pts, err := s.be().Points()
	if err != nil {
		v.Problem = err.Error()
	}
	names := s.manVMNames(c.Request.Context())
	now := time.Now()
	sources := map[string]string{}
	slices.SortFunc(pts, func(a, b *point.RecoveryPoint) int { return b.Created.Compare(a.Created) })
	for _, p := range pts {
		if p == nil {
			continue
		}
		name := s.manPointName(names, p)
		if _, ok := sources[p.Source]; !ok {
			sources[p.Source] = name
		}
		if v.Source != "" && p.Source != v.Source {
			continue
		}
		r := manPointRow{ID: p.ID, Href: "/points/" + string(p.ID), VM: name, Source: p.Source, Created: p.Created,
			Consistency: string(p.Consistency), Disks: len(p.Disks), Logical: p.Stats.Logical, Stored: p.Stats.Stored}
		if h, err := s.be().Catalogs().Header(p.ID); err == nil {
			r.Verdict, r.Findings = string(h.Verdict), h.Findings
		}
		if t, err := s.be().PointLock(p.ID); err == nil && now.Before(t) {
			r.LockedUntil, r.Locked = t, true
		}
		v.Rows = append(v.Rows, r)
	}
	for src, name := range sources {
		label := name
		if name != src {
			label = name + " (" + src + ")"
		}
		v.Sources = append(v.Sources, manLink{Value: src, Label: label, Selected: src == v.Source})
	}
	slices.SortFunc(v.Sources, func(a, b manLink) int { return strings.Compare(strings.ToLower(a.Label), strings.ToLower(b.Label)) })
	title := "Recovery points"
	if v.Source != "" {
		title += " of " + sources[v.Source]
	}
	s.render(c, 0, "man-points", title, v)
}

// manHitRow is one file search result.
type manHitRow struct {
	catalog.Hit
	VM        string
	Href      string
	PointHref string
}

type manSearchView struct {
	Q, Source string
	Sources   []manLink
	Hits      []manHitRow
	Searched  bool
	Truncated bool
	Limit     int
}

const manSearchLimit = 500

func (s *Server) manSearch(c *gin.Context) {
	v := manSearchView{Q: strings.TrimSpace(c.Query("q")), Source: c.Query("source"), Limit: manSearchLimit}
	ctx := c.Request.Context()
	names := s.manVMNames(ctx)
	if pts, err := s.be().Points(); err == nil {
		seen := map[string]bool{}
		for _, p := range pts {
			if p == nil || seen[p.Source] {
				continue
			}
			seen[p.Source] = true
			v.Sources = append(v.Sources, manLink{Value: p.Source, Label: s.manPointName(names, p), Selected: p.Source == v.Source})
		}
		slices.SortFunc(v.Sources, func(a, b manLink) int { return strings.Compare(strings.ToLower(a.Label), strings.ToLower(b.Label)) })
	}
	status := 0
	if v.Q != "" {
		v.Searched = true
		hits, err := s.be().Catalogs().Search(ctx, catalog.Query{Pattern: v.Q, Source: v.Source, Limit: manSearchLimit})
		if err != nil {
			pageError(c, "The search failed: %v", err)
			status = http.StatusBadRequest
		}
		for _, h := range hits {
			vm := names[h.Source]
			if vm == "" {
				vm = h.Name
			}
			if vm == "" {
				vm = h.Source
			}
			v.Hits = append(v.Hits, manHitRow{Hit: h, VM: vm, PointHref: "/points/" + string(h.Point),
				Href: manHref("/points/"+string(h.Point)+"/browse", "volume", h.Volume, "path", h.Path)})
		}
		v.Truncated = len(hits) >= manSearchLimit
	}
	s.render(c, status, "man-search", "Find files", v)
}

// manPointParam reads :id; a malformed one answers an error page.
func (s *Server) manPointParam(c *gin.Context) (*point.RecoveryPoint, bool) {
	id := point.ID(c.Param("id"))
	if !id.Valid() {
		s.render(c, http.StatusBadRequest, "error", "No such recovery point", fmt.Sprintf("%q is not a recovery point ID.", string(id)))
		return nil, false
	}
	pts, err := s.be().Points()
	if err != nil && len(pts) == 0 {
		s.render(c, http.StatusInternalServerError, "error", "Recovery points unavailable", "The recovery points could not be read: "+err.Error())
		return nil, false
	}
	for _, p := range pts {
		if p != nil && p.ID == id {
			return p, true
		}
	}
	s.render(c, http.StatusNotFound, "error", "No such recovery point", fmt.Sprintf("There is no recovery point %s (it may have been pruned).", id))
	return nil, false
}

// manDiskRow is one disk of a point with its export links.
type manDiskRow struct {
	point.Disk
	Exports []manLink
}

type manVolumeRow struct {
	catalog.VolumeInfo
	BrowseHref string
}

type manPointView struct {
	P              *point.RecoveryPoint
	VM             string
	Disks          []manDiskRow
	Header         *catalog.Header
	CatalogProblem string
	Volumes        []manVolumeRow
	BrowseHref     string
	RestoreHref    string
	ListHref       string
	LockedUntil    time.Time
	Locked         bool
	LockProblem    string
	LockMin        string
	LockValue      string
}

func (s *Server) manPoint(c *gin.Context) {
	p, ok := s.manPointParam(c)
	if !ok {
		return
	}
	s.manRenderPoint(c, 0, p, "")
}

func (s *Server) manRenderPoint(c *gin.Context, status int, p *point.RecoveryPoint, lockValue string) {
	names := s.manVMNames(c.Request.Context())
	v := manPointView{P: p, VM: s.manPointName(names, p), RestoreHref: "/points/" + string(p.ID) + "/restore",
		ListHref: manHref("/points", "source", p.Source), LockValue: lockValue}
	for _, d := range p.Disks {
		row := manDiskRow{Disk: d}
		for _, f := range []export.Format{export.Raw, export.VMDK, export.VHDX, export.QCOW2} {
			row.Exports = append(row.Exports, manLink{Label: manFormatLabel(f),
				Href: "/api/v1/points/" + string(p.ID) + "/disks/" + url.PathEscape(d.Name) + "/export?format=" + string(f)})
		}
		v.Disks = append(v.Disks, row)
	}
	h, err := s.be().Catalogs().Header(p.ID)
	switch {
	case errors.Is(err, catalog.ErrNoCatalog):
		v.CatalogProblem = "This point has no file catalog (the recoverability check was skipped or has not run yet)."
	case err != nil:
		v.CatalogProblem = "The catalog cannot be read: " + err.Error()
	default:
		v.Header = h
		withFS := 0
		for _, vol := range h.Volumes {
			row := manVolumeRow{VolumeInfo: vol}
			if vol.FS != "" {
				withFS++
				row.BrowseHref = manHref("/points/"+string(p.ID)+"/browse", "volume", vol.ID, "path", "/")
			}
			v.Volumes = append(v.Volumes, row)
		}
		if withFS > 0 {
			v.BrowseHref = "/points/" + string(p.ID) + "/browse"
		}
	}
	now := time.Now()
	if t, err := s.be().PointLock(p.ID); err != nil {
		v.LockProblem = err.Error()
	} else if now.Before(t) {
		v.LockedUntil, v.Locked = t, true
	}
	minDay := now.UTC().AddDate(0, 0, 1)
	if v.Locked && v.LockedUntil.After(minDay) {
		minDay = v.LockedUntil.UTC().AddDate(0, 0, 1)
	}
	v.LockMin = minDay.Format(time.DateOnly)
	if v.LockValue == "" {
		v.LockValue = v.LockMin
		if !v.Locked {
			v.LockValue = now.UTC().AddDate(0, 1, 0).Format(time.DateOnly)
		}
	}
	s.render(c, status, "man-point", "Recovery point of "+v.VM, v)
}

func manFormatLabel(f export.Format) string {
	switch f {
	case export.Raw:
		return "raw"
	case export.VMDK:
		return "VMDK"
	case export.VHDX:
		return "VHDX"
	case export.QCOW2:
		return "qcow2"
	}
	return string(f)
}

// manPointLock extends the retention lock of a point (POST until=YYYY-MM-DD).
func (s *Server) manPointLock(c *gin.Context) {
	p, ok := s.manPointParam(c)
	if !ok {
		return
	}
	raw := strings.TrimSpace(c.PostForm("until"))
	until, err := time.Parse(time.DateOnly, raw)
	if err != nil {
		pageError(c, "Give the date the lock ends as YYYY-MM-DD.")
		s.manRenderPoint(c, http.StatusUnprocessableEntity, p, raw)
		return
	}
	if !until.After(time.Now()) {
		pageError(c, "The lock must end in the future.")
		s.manRenderPoint(c, http.StatusUnprocessableEntity, p, raw)
		return
	}
	if cur, err := s.be().PointLock(p.ID); err == nil && !until.After(cur) {
		pageError(c, "The point is locked until %s: a lock can only be extended, never shortened or removed.", cur.UTC().Format(time.DateOnly))
		s.manRenderPoint(c, http.StatusConflict, p, raw)
		return
	}
	if err := s.be().LockPoint(p.ID, until); err != nil {
		pageError(c, "The lock was not set: %v", err)
		code := http.StatusUnprocessableEntity
		if errors.Is(err, store.ErrLocked) {
			code = http.StatusConflict
		}
		s.manRenderPoint(c, code, p, raw)
		return
	}
	c.Set(ctxTarget, string(p.ID))
	c.Set(ctxDetail, "retention lock until "+until.UTC().Format(time.RFC3339))
	redirectOK(c, "/points/"+string(p.ID), "The point cannot be deleted or pruned before "+until.Format(time.DateOnly)+" (00:00 UTC).")
}

// manEntryRow is one entry of a directory listing.
type manEntryRow struct {
	catalog.FileInfo
	Name         string
	Href         string
	Mode         string
	DownloadHref string // a file as it is
	TarHref      string // a folder
	ZipHref      string
	PutBackHref  string
	Current      bool
}

type manVersionRow struct {
	catalog.Version
	Href    string
	Current bool
}

type manBrowseView struct {
	P         *point.RecoveryPoint
	VM        string
	PointHref string
	Volume    string
	Volumes   []manLink
	Path      string
	Crumbs    []manLink
	IsDir     bool
	Entries   []manEntryRow
	File      *manEntryRow
	Versions  []manVersionRow
	Problem   string
	VerProb   string
}

func (s *Server) manEntry(id point.ID, vol string, fi catalog.FileInfo) manEntryRow {
	r := manEntryRow{FileInfo: fi, Name: path.Base(fi.Path), Href: manHref("/points/"+string(id)+"/browse", "volume", vol, "path", fi.Path)}
	if fi.Path == "/" {
		r.Name = "/"
	}
	if fi.Mode != 0 {
		r.Mode = fmt.Sprintf("%04o", fi.Mode&0o7777)
	}
	dl := "/api/v1/points/" + string(id) + "/files/download"
	switch fi.Type {
	case "file":
		r.DownloadHref = manHref(dl, "volume", vol, "path", fi.Path)
	case "dir":
		r.TarHref = manHref(dl, "volume", vol, "path", fi.Path, "format", "tar")
		r.ZipHref = manHref(dl, "volume", vol, "path", fi.Path, "format", "zip")
	}
	if fi.Type == "file" || fi.Type == "dir" {
		r.PutBackHref = manHref("/points/"+string(id)+"/put-back", "volume", vol, "path", fi.Path)
	}
	return r
}

func (s *Server) manBrowse(c *gin.Context) {
	p, ok := s.manPointParam(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	v := manBrowseView{P: p, VM: s.manPointName(s.manVMNames(ctx), p), PointHref: "/points/" + string(p.ID),
		Path: path.Clean("/" + c.DefaultQuery("path", "/"))}
	cat, err := s.be().Catalogs().Load(p.ID)
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, catalog.ErrNoCatalog) {
			code = http.StatusNotFound
			err = errors.New("this point has no file catalog, so its files cannot be browsed; export a disk instead")
		}
		v.Problem = err.Error()
		s.render(c, code, "man-browse", "Files of "+v.VM, v)
		return
	}
	vol, err := cat.ResolveVolume(c.Query("volume"))
	for _, vi := range cat.Volumes {
		if vi.FS != "" {
			label := vi.ID + " (" + vi.FS
			if vi.Label != "" {
				label += ", " + vi.Label
			}
			label += ")"
			v.Volumes = append(v.Volumes, manLink{Label: label, Value: vi.ID, Selected: vi.ID == vol,
				Href: manHref("/points/"+string(p.ID)+"/browse", "volume", vi.ID, "path", "/")})
		}
	}
	if err != nil {
		v.Problem = err.Error()
		status := http.StatusOK
		if c.Query("volume") != "" || len(v.Volumes) == 0 {
			status = http.StatusNotFound
		}
		s.render(c, status, "man-browse", "Files of "+v.VM, v)
		return
	}
	v.Volume = vol
	// Breadcrumbs: / etc nginx.
	v.Crumbs = append(v.Crumbs, manLink{Label: vol + ":/", Href: manHref("/points/"+string(p.ID)+"/browse", "volume", vol, "path", "/")})
	if v.Path != "/" {
		acc := ""
		for _, part := range strings.Split(strings.Trim(v.Path, "/"), "/") {
			acc += "/" + part
			v.Crumbs = append(v.Crumbs, manLink{Label: part, Href: manHref("/points/"+string(p.ID)+"/browse", "volume", vol, "path", acc)})
		}
	}
	e, found := cat.Find(vol, v.Path)
	if !found {
		v.Problem = fmt.Sprintf("%s is not in this point (volume %s).", v.Path, vol)
		s.render(c, http.StatusNotFound, "man-browse", "Files of "+v.VM, v)
		return
	}
	self := s.manEntry(p.ID, vol, catalog.Info(e))
	if e.Type.String() == "dir" {
		v.IsDir = true
		v.File = &self
		list, err := cat.List(vol, v.Path)
		if err != nil {
			v.Problem = err.Error()
		}
		for _, fi := range list {
			v.Entries = append(v.Entries, s.manEntry(p.ID, vol, fi))
		}
		slices.SortStableFunc(v.Entries, func(a, b manEntryRow) int {
			if (a.Type == "dir") != (b.Type == "dir") {
				if a.Type == "dir" {
					return -1
				}
				return 1
			}
			return strings.Compare(a.Name, b.Name)
		})
		s.render(c, 0, "man-browse", "Files of "+v.VM, v)
		return
	}
	v.File = &self
	vs, err := s.be().Catalogs().Versions(ctx, cat.Source, vol, v.Path)
	if err != nil {
		v.VerProb = err.Error()
	}
	for i := len(vs) - 1; i >= 0; i-- { // newest first
		x := vs[i]
		v.Versions = append(v.Versions, manVersionRow{Version: x, Current: x.Point == p.ID,
			Href: manHref("/points/"+string(x.Point)+"/browse", "volume", x.Volume, "path", x.Path)})
	}
	s.render(c, 0, "man-browse", v.Path+" in "+v.VM, v)
}
