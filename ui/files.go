package ui

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"coffer.dev/coffer/appliance/app"
	"coffer.dev/coffer/appliance/catalog"
	"coffer.dev/coffer/appliance/catalog/fsys"
	"coffer.dev/coffer/store/point"
)

func pointParam(c *gin.Context) (point.ID, bool) {
	id := point.ID(c.Param("id"))
	if !id.Valid() {
		fail(c, http.StatusBadRequest, "malformed point ID %q", id)
		return "", false
	}
	return id, true
}

func catalogStatus(err error) int {
	if errors.Is(err, catalog.ErrNoCatalog) {
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

// pointCatalog answers the catalog header of a point: volumes,
// filesystems, problems and the recoverability verdict.
func (s *Server) pointCatalog(c *gin.Context) {
	id, ok := pointParam(c)
	if !ok {
		return
	}
	h, err := s.be().Catalogs().Header(id)
	if err != nil {
		fail(c, catalogStatus(err), "%v", err)
		return
	}
	c.JSON(http.StatusOK, h)
}

func (s *Server) rebuildCatalog(c *gin.Context) {
	id, ok := pointParam(c)
	if !ok {
		return
	}
	cat, err := s.be().CatalogPoint(c.Request.Context(), id)
	if err != nil {
		fail(c, http.StatusInternalServerError, "%v", err)
		return
	}
	c.JSON(http.StatusOK, cat.Header)
}

// listFiles lists one directory of a point (?volume=&path=).
func (s *Server) listFiles(c *gin.Context) {
	id, ok := pointParam(c)
	if !ok {
		return
	}
	cat, err := s.be().Catalogs().Load(id)
	if err != nil {
		fail(c, catalogStatus(err), "%v", err)
		return
	}
	vol, err := cat.ResolveVolume(c.Query("volume"))
	if err != nil {
		fail(c, http.StatusBadRequest, "%v", err)
		return
	}
	list, err := cat.List(vol, c.DefaultQuery("path", "/"))
	if err != nil {
		fail(c, http.StatusNotFound, "%v", err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"point": id, "volume": vol, "path": path.Clean("/" + c.DefaultQuery("path", "/")), "entries": list})
}

// downloadFiles streams one file as it is, or a folder as tar or zip
// (?format=), straight from the store.
func (s *Server) downloadFiles(c *gin.Context) {
	id, ok := pointParam(c)
	if !ok {
		return
	}
	format := c.DefaultQuery("format", "tar")
	if format != "tar" && format != "zip" {
		fail(c, http.StatusBadRequest, "format must be tar or zip")
		return
	}
	p := c.Query("path")
	if p == "" {
		fail(c, http.StatusBadRequest, "path is required")
		return
	}
	p = path.Clean("/" + p)
	pf, cat, err := s.be().OpenPointFiles(c.Request.Context(), id)
	if err != nil {
		fail(c, catalogStatus(err), "%v", err)
		return
	}
	defer pf.Close()
	vol, err := cat.ResolveVolume(c.Query("volume"))
	if err != nil {
		fail(c, http.StatusBadRequest, "%v", err)
		return
	}
	e, ok := cat.Find(vol, p)
	if !ok {
		fail(c, http.StatusNotFound, "%s is not in the catalog of point %s (volume %s)", p, id, vol)
		return
	}
	name := path.Base(p)
	if p == "/" {
		name = "root"
	}
	switch e.Type {
	case fsys.TypeFile:
		f, err := pf.Open(cat, e)
		if err != nil {
			fail(c, http.StatusInternalServerError, "%v", err)
			return
		}
		c.Header("Content-Disposition", disposition(name))
		http.ServeContent(c.Writer, c.Request, name, e.MTime, io.NewSectionReader(f, 0, e.Size))
	case fsys.TypeDir:
		c.Header("Content-Disposition", disposition(name+"."+format))
		c.Header("Content-Type", map[string]string{"tar": "application/x-tar", "zip": "application/zip"}[format])
		c.Status(http.StatusOK)
		if format == "zip" {
			_, err = pf.WriteZip(c.Request.Context(), c.Writer, cat, vol, p)
		} else {
			_, err = pf.WriteTar(c.Request.Context(), c.Writer, cat, vol, p)
		}
		if err != nil {
			// The status is sent: cut the connection so that the client
			// sees a broken download, never a short archive.
			s.Log.Error("file restore failed mid-stream", "point", id, "path", p, "err", err)
			if conn, _, herr := http.NewResponseController(c.Writer).Hijack(); herr == nil {
				conn.Close()
			}
		}
	default:
		fail(c, http.StatusBadRequest, "%s is a %s: only files and folders can be downloaded", p, e.Type)
	}
}

func disposition(name string) string {
	return fmt.Sprintf("attachment; filename=%q; filename*=UTF-8''%s", strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '_'
		}
		return r
	}, name), urlEscape(name))
}

func urlEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// searchFiles searches the catalogs (?q=&source=&limit=).
func (s *Server) searchFiles(c *gin.Context) {
	q := catalog.Query{Pattern: c.Query("q"), Source: c.Query("source")}
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n <= 0 || n > 100000 {
			fail(c, http.StatusBadRequest, "limit must be a number from 1 to 100000")
			return
		}
		q.Limit = n
	}
	hits, err := s.be().Catalogs().Search(c.Request.Context(), q)
	if err != nil {
		fail(c, http.StatusBadRequest, "%v", err)
		return
	}
	if hits == nil {
		hits = []catalog.Hit{}
	}
	c.JSON(http.StatusOK, hits)
}

// fileVersions lists one file across the points of a source
// (?source=&volume=&path=).
func (s *Server) fileVersions(c *gin.Context) {
	src, p := c.Query("source"), c.Query("path")
	if src == "" || p == "" {
		fail(c, http.StatusBadRequest, "source and path are required")
		return
	}
	vs, err := s.be().Catalogs().Versions(c.Request.Context(), src, c.Query("volume"), p)
	if err != nil {
		fail(c, http.StatusInternalServerError, "%v", err)
		return
	}
	if vs == nil {
		vs = []catalog.Version{}
	}
	c.JSON(http.StatusOK, vs)
}

// putFilesBack puts a file or folder of a point into a running VM
// (body: app.PutBackRequest).
func (s *Server) putFilesBack(c *gin.Context) {
	id, ok := pointParam(c)
	if !ok {
		return
	}
	var req app.PutBackRequest
	if err := c.ShouldBindJSON(&req); err != nil {
		fail(c, http.StatusBadRequest, "malformed request: %v", err)
		return
	}
	req.Point = id
	res, err := s.be().PutFilesBack(c.Request.Context(), req)
	if err != nil {
		code := http.StatusBadGateway
		if errors.Is(err, catalog.ErrNoCatalog) {
			code = http.StatusNotFound
		}
		c.AbortWithStatusJSON(code, gin.H{"error": err.Error(), "result": res})
		return
	}
	c.JSON(http.StatusOK, res)
}
