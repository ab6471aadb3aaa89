package catalog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"coffer.dev/coffer/appliance/catalog/fsys"
	"coffer.dev/coffer/store/point"
)

func pointName(p *point.RecoveryPoint) string {
	if n := p.Labels["vm"]; n != "" {
		return n
	}
	return p.Labels["name"]
}

// Library is the directory of catalogs, one file per point.
type Library struct {
	Dir string
	// Live, if set, hides the catalogs of points that no longer exist
	// (deleted or pruned and not yet swept by Prune).
	Live func(point.ID) bool
}

func (l *Library) path(id point.ID) string { return filepath.Join(l.Dir, string(id)+".cat") }

// Save writes c as the catalog of its point, replacing an older one.
func (l *Library) Save(c *Catalog) error {
	if !c.Point.Valid() {
		return fmt.Errorf("save catalog: invalid point ID %q", c.Point)
	}
	return c.WriteFile(l.path(c.Point))
}

// ErrNoCatalog is returned (wrapped) for a point without a catalog.
var ErrNoCatalog = errors.New("no catalog")

// Load reads the catalog of point id.
func (l *Library) Load(id point.ID) (*Catalog, error) {
	if !id.Valid() {
		return nil, fmt.Errorf("invalid point ID %q", id)
	}
	c, err := ReadFile(l.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("point %s: %w", id, ErrNoCatalog)
	}
	return c, err
}

// Header reads only the header of the catalog of point id.
func (l *Library) Header(id point.ID) (*Header, error) {
	if !id.Valid() {
		return nil, fmt.Errorf("invalid point ID %q", id)
	}
	h, err := ReadHeader(l.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("point %s: %w", id, ErrNoCatalog)
	}
	return h, err
}

// Remove deletes the catalog of point id (missing is fine).
func (l *Library) Remove(id point.ID) error {
	if !id.Valid() {
		return fmt.Errorf("invalid point ID %q", id)
	}
	if err := os.Remove(l.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Points lists the points with a catalog, oldest first.
func (l *Library) Points() ([]point.ID, error) {
	des, err := os.ReadDir(l.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []point.ID
	for _, de := range des {
		id := point.ID(strings.TrimSuffix(de.Name(), ".cat"))
		if strings.HasSuffix(de.Name(), ".cat") && id.Valid() && (l.Live == nil || l.Live(id)) {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, nil
}

// Prune removes the catalogs of points that no longer exist, and the
// temporary files of saves that a crash interrupted.
func (l *Library) Prune(live func(point.ID) bool) (int, error) {
	if des, err := os.ReadDir(l.Dir); err == nil {
		for _, de := range des {
			if strings.HasPrefix(de.Name(), ".catalog-") {
				if info, err := de.Info(); err == nil && time.Since(info.ModTime()) > time.Hour {
					os.Remove(filepath.Join(l.Dir, de.Name()))
				}
			}
		}
	}
	all := Library{Dir: l.Dir}
	ids, err := all.Points()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		if !live(id) {
			if err := l.Remove(id); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// Query is a file search.
type Query struct {
	// Pattern: a name ("nginx.conf", matched case-insensitively as a
	// substring of the file name), a glob on the name ("*.pst"), or,
	// with a "/", a path ("/etc/nginx/nginx.conf", "nginx/*.conf",
	// matched against the end of the path).
	Pattern string
	// Source restricts the search to one source's points.
	Source string
	// Points restricts it to these points.
	Points []point.ID
	// Since and Until bound the points' creation times.
	Since, Until time.Time
	// Types restricts the entry types (none: all).
	Types []fsys.EntryType
	// Limit caps the hits (default 1000).
	Limit int
}

// Hit is one search result.
type Hit struct {
	Point   point.ID  `json:"point"`
	Source  string    `json:"source"`
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created"`
	Volume  string    `json:"volume"`
	FileInfo
}

// FileInfo is an entry as the API and CLI show it.
type FileInfo struct {
	Path   string    `json:"path"`
	Type   string    `json:"type"`
	Size   int64     `json:"size"`
	Mode   uint32    `json:"mode,omitempty"`
	UID    uint32    `json:"uid,omitempty"`
	GID    uint32    `json:"gid,omitempty"`
	MTime  time.Time `json:"mtime"`
	Target string    `json:"target,omitempty"`
}

// Info returns e as FileInfo.
func Info(e *Entry) FileInfo {
	return FileInfo{Path: e.Path, Type: e.Type.String(), Size: e.Size, Mode: e.Mode, UID: e.UID, GID: e.GID, MTime: e.MTime, Target: e.Target}
}

type matcher func(p string) bool

func compile(pattern string) (matcher, error) {
	pat := strings.TrimSpace(pattern)
	if pat == "" {
		return nil, errors.New("empty search pattern")
	}
	wild := strings.ContainsAny(pat, "*?[")
	if wild {
		if _, err := path.Match(strings.ToLower(pat), ""); err != nil {
			return nil, fmt.Errorf("bad pattern %q: %w", pattern, err)
		}
	}
	lp := strings.ToLower(pat)
	if strings.Contains(pat, "/") {
		n := strings.Count(strings.Trim(lp, "/"), "/") + 1
		abs := strings.HasPrefix(lp, "/")
		return func(p string) bool {
			lower := strings.ToLower(p)
			if abs {
				if !wild {
					return lower == lp
				}
				ok, _ := path.Match(lp, lower)
				return ok
			}
			// The last n components of p.
			tail := lower
			for k, i := 0, len(lower); i >= 0; i-- {
				if i == 0 || lower[i-1] == '/' {
					k++
					if k == n {
						tail = lower[i:]
						break
					}
				}
			}
			if !wild {
				return tail == strings.Trim(lp, "/")
			}
			ok, _ := path.Match(strings.Trim(lp, "/"), tail)
			return ok
		}, nil
	}
	return func(p string) bool {
		name := strings.ToLower(path.Base(p))
		if !wild {
			return strings.Contains(name, lp)
		}
		ok, _ := path.Match(lp, name)
		return ok
	}, nil
}

// Search finds entries matching q in the catalogs, newest points first.
func (l *Library) Search(ctx context.Context, q Query) ([]Hit, error) {
	match, err := compile(q.Pattern)
	if err != nil {
		return nil, err
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 1000
	}
	ids := q.Points
	if len(ids) == 0 {
		if ids, err = l.Points(); err != nil {
			return nil, err
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] > ids[j] })
	types := map[fsys.EntryType]bool{}
	for _, t := range q.Types {
		types[t] = true
	}
	var hits []Hit
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return hits, err
		}
		h, err := l.Header(id)
		if err != nil {
			continue
		}
		if (q.Source != "" && h.Source != q.Source) || (!q.Since.IsZero() && h.Created.Before(q.Since)) ||
			(!q.Until.IsZero() && h.Created.After(q.Until)) {
			continue
		}
		c, err := l.Load(id)
		if err != nil {
			return hits, err
		}
		for i := range c.Entries {
			e := &c.Entries[i]
			if (len(types) > 0 && !types[e.Type]) || !match(e.Path) {
				continue
			}
			hits = append(hits, Hit{Point: c.Point, Source: c.Source, Name: c.Name, Created: c.Created,
				Volume: c.Volumes[e.Volume].ID, FileInfo: Info(e)})
			if len(hits) >= limit {
				return hits, nil
			}
		}
	}
	return hits, nil
}

// List returns the entries directly inside directory dir of volume vol
// of the catalog, sorted by name. vol "" takes the only volume with a
// filesystem, or fails when there are several.
func (c *Catalog) List(vol, dir string) ([]FileInfo, error) {
	vol, err := c.ResolveVolume(vol)
	if err != nil {
		return nil, err
	}
	dir = cleanPath(dir)
	d, ok := c.Find(vol, dir)
	if !ok {
		return nil, fmt.Errorf("%s: no such directory on %s", dir, vol)
	}
	if d.Type != fsys.TypeDir {
		return nil, fmt.Errorf("%s is a %s, not a directory", dir, d.Type)
	}
	var out []FileInfo
	for i := range c.Entries {
		e := &c.Entries[i]
		if e.Path != "/" && c.Volumes[e.Volume].ID == vol && path.Dir(e.Path) == dir {
			out = append(out, Info(e))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// ResolveVolume returns vol, or for "" the only volume with a filesystem.
func (c *Catalog) ResolveVolume(vol string) (string, error) {
	if vol != "" {
		for _, v := range c.Volumes {
			if v.ID == vol {
				return vol, nil
			}
		}
		return "", fmt.Errorf("point %s has no volume %s", c.Point, vol)
	}
	var withFS []string
	for _, v := range c.Volumes {
		if v.FS != "" {
			withFS = append(withFS, v.ID)
		}
	}
	switch len(withFS) {
	case 1:
		return withFS[0], nil
	case 0:
		return "", fmt.Errorf("point %s has no catalogued filesystem", c.Point)
	}
	return "", fmt.Errorf("point %s has %d filesystems (%s): choose a volume", c.Point, len(withFS), strings.Join(withFS, ", "))
}

func cleanPath(p string) string {
	p = path.Clean("/" + p)
	return p
}

// Version is one version of a file across points.
type Version struct {
	Point   point.ID  `json:"point"`
	Created time.Time `json:"created"`
	Volume  string    `json:"volume"`
	FileInfo
	// Changed is true when size or modification time differ from the
	// previous (older) version listed.
	Changed bool `json:"changed"`
}

// Versions lists file p of volume vol in every catalogued point of source,
// oldest first.
func (l *Library) Versions(ctx context.Context, source, vol, p string) ([]Version, error) {
	ids, err := l.Points()
	if err != nil {
		return nil, err
	}
	p = cleanPath(p)
	var out []Version
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		h, err := l.Header(id)
		if err != nil || h.Source != source {
			continue
		}
		c, err := l.Load(id)
		if err != nil {
			return out, err
		}
		v := vol
		if v == "" {
			if v, err = c.ResolveVolume(""); err != nil {
				continue
			}
		}
		e, ok := c.Find(v, p)
		if !ok {
			continue
		}
		ver := Version{Point: id, Created: c.Created, Volume: v, FileInfo: Info(e)}
		if n := len(out); n == 0 || out[n-1].Size != ver.Size || !out[n-1].MTime.Equal(ver.MTime) {
			ver.Changed = true
		}
		out = append(out, ver)
	}
	return out, nil
}
