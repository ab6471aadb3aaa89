package catalog

import (
	"archive/tar"
	"archive/zip"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"coffer.dev/coffer/appliance/catalog/fsys"
)

// Subtree returns the entries at or below dir on volume vol, in walk
// order (a directory before its contents).
func (c *Catalog) Subtree(vol, dir string) ([]*Entry, error) {
	vol, err := c.ResolveVolume(vol)
	if err != nil {
		return nil, err
	}
	dir = cleanPath(dir)
	var out []*Entry
	prefix := dir + "/"
	if dir == "/" {
		prefix = "/"
	}
	for i := range c.Entries {
		e := &c.Entries[i]
		if c.Volumes[e.Volume].ID == vol && (e.Path == dir || strings.HasPrefix(e.Path, prefix)) {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: not found on %s of point %s", dir, vol, c.Point)
	}
	return out, nil
}

// archiveName is e's name inside an archive of the subtree rooted at dir:
// the root's own name first ("nginx/nginx.conf" for /etc/nginx).
func archiveName(dir, p string) string {
	base := path.Base(dir)
	if dir == "/" {
		base = "root"
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(p, dir), "/")
	if rel == "" {
		return base
	}
	return base + "/" + rel
}

// ArchiveStats counts what an archive holds.
type ArchiveStats struct {
	Files, Dirs, Links int
	Bytes              int64
}

// WriteTar writes the subtree at dir of volume vol as a tar stream:
// directories, files, symlinks, hard links (as tar links to the first
// name), with modes, owners and times. Special files are skipped.
func (pf *PointFiles) WriteTar(ctx context.Context, w io.Writer, c *Catalog, vol, dir string) (ArchiveStats, error) {
	var st ArchiveStats
	es, err := c.Subtree(vol, dir)
	if err != nil {
		return st, err
	}
	dir = cleanPath(dir)
	tw := tar.NewWriter(w)
	first := map[uint64]string{}
	for _, e := range es {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		name := archiveName(dir, e.Path)
		h := &tar.Header{Name: name, Mode: int64(e.Mode & 0o7777), Uid: int(e.UID), Gid: int(e.GID), ModTime: mtimeOr(e.MTime), Format: tar.FormatPAX}
		switch e.Type {
		case fsys.TypeDir:
			h.Typeflag, h.Name = tar.TypeDir, name+"/"
			if h.Mode == 0 {
				h.Mode = 0o755
			}
			st.Dirs++
		case fsys.TypeSymlink:
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.Target
			if h.Mode == 0 {
				h.Mode = 0o777
			}
			st.Links++
		case fsys.TypeFile:
			if h.Mode == 0 {
				h.Mode = 0o644
			}
			if e.Nlink > 1 {
				if to, ok := first[e.Ref]; ok {
					h.Typeflag, h.Linkname = tar.TypeLink, to
					st.Links++
					break
				}
				first[e.Ref] = name
			}
			h.Typeflag, h.Size = tar.TypeReg, e.Size
		default:
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			return st, fmt.Errorf("write tar of %s: %w", dir, err)
		}
		if h.Typeflag == tar.TypeReg {
			n, err := pf.copyFile(ctx, tw, c, e)
			st.Bytes += n
			if err != nil {
				return st, err
			}
			st.Files++
		}
	}
	return st, tw.Close()
}

// WriteZip writes the subtree at dir as a zip archive (files deflated,
// symlinks as zip symlinks, hard links as separate copies).
func (pf *PointFiles) WriteZip(ctx context.Context, w io.Writer, c *Catalog, vol, dir string) (ArchiveStats, error) {
	var st ArchiveStats
	es, err := c.Subtree(vol, dir)
	if err != nil {
		return st, err
	}
	dir = cleanPath(dir)
	zw := zip.NewWriter(w)
	for _, e := range es {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		name := archiveName(dir, e.Path)
		h := &zip.FileHeader{Name: name, Modified: mtimeOr(e.MTime), Method: zip.Deflate}
		switch e.Type {
		case fsys.TypeDir:
			h.Name, h.Method = name+"/", zip.Store
			h.SetMode(os.ModeDir | 0o755)
			st.Dirs++
		case fsys.TypeSymlink:
			h.Method = zip.Store
			h.SetMode(os.ModeSymlink | 0o777)
			st.Links++
		case fsys.TypeFile:
			mode := e.Mode & 0o777
			if mode == 0 {
				mode = 0o644
			}
			h.SetMode(os.FileMode(mode))
			h.UncompressedSize64 = uint64(e.Size)
		default:
			continue
		}
		fw, err := zw.CreateHeader(h)
		if err != nil {
			return st, fmt.Errorf("write zip of %s: %w", dir, err)
		}
		switch e.Type {
		case fsys.TypeSymlink:
			if _, err := io.WriteString(fw, e.Target); err != nil {
				return st, err
			}
		case fsys.TypeFile:
			n, err := pf.copyFile(ctx, fw, c, e)
			st.Bytes += n
			if err != nil {
				return st, err
			}
			st.Files++
		}
	}
	return st, zw.Close()
}

func (pf *PointFiles) copyFile(ctx context.Context, w io.Writer, c *Catalog, e *Entry) (int64, error) {
	f, err := pf.Open(c, e)
	if err != nil {
		return 0, err
	}
	n, err := io.CopyBuffer(w, ContextReader(ctx, io.NewSectionReader(f, 0, e.Size)), make([]byte, 1<<20))
	if err == nil && n != e.Size {
		err = fmt.Errorf("%s: read %d of %d bytes", e.Path, n, e.Size)
	}
	if err != nil {
		return n, fmt.Errorf("read %s: %w", e.Path, err)
	}
	return n, nil
}

// ContextReader returns r that stops reading once ctx is done: for
// streams of file contents that would otherwise run to their end.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return &ctxReader{ctx: ctx, r: r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

func mtimeOr(t time.Time) time.Time {
	if t.IsZero() {
		return time.Unix(0, 0).UTC()
	}
	return t
}
