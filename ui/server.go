package ui

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"coffer.dev/coffer/appliance/app"
	"coffer.dev/coffer/appliance/audit"
	"coffer.dev/coffer/appliance/catalog"
	"coffer.dev/coffer/appliance/jobs"
	"coffer.dev/coffer/appliance/notify"
	"coffer.dev/coffer/appliance/restore"
	"coffer.dev/coffer/appliance/restore/export"
	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/store"
	"coffer.dev/coffer/store/point"
	"coffer.dev/coffer/ui/access"
)

// Backend is what the API needs of the appliance.
type Backend interface {
	Inventory(ctx context.Context) (*vsphere.Inventory, error)
	Protection(ctx context.Context) (*jobs.Report, error)
	Policies() []jobs.Policy
	Policy(id string) (jobs.Policy, error)
	CreatePolicy(p jobs.Policy) (jobs.Policy, error)
	UpdatePolicy(p jobs.Policy) (jobs.Policy, error)
	DeletePolicy(id string) error
	RunPolicy(ctx context.Context, id string, trigger jobs.Trigger) (string, error)
	Jobs(f jobs.JobFilter) []jobs.Job
	Job(id string) (jobs.Job, error)
	Cancel(id string) error
	Subscribe() (<-chan jobs.Event, func())
	Points() ([]*point.RecoveryPoint, error)
	OpenDisk(id point.ID, disk string) (*store.DiskReader, error)
	RestoreVM(ctx context.Context, req restore.Request) (*restore.Result, error)
	// File catalogs and single-file restore.
	Catalogs() *catalog.Library
	CatalogPoint(ctx context.Context, id point.ID) (*catalog.Catalog, error)
	OpenPointFiles(ctx context.Context, id point.ID) (*catalog.PointFiles, *catalog.Catalog, error)
	PutFilesBack(ctx context.Context, req app.PutBackRequest) (*restore.PutResult, error)
	// The storage pool.
	PoolState() (app.Pool, error)
	CapacityHistory() ([]app.CapacitySample, error)
	VerifyStore(ctx context.Context, sample float64) (*store.VerifyReport, error)
	CollectGarbage(ctx context.Context, dryRun bool) (store.GCStats, error)
	LockPoint(id point.ID, until time.Time) error
	PointLock(id point.ID) (time.Time, error)
	// Notifications: settings shown without secrets; empty secrets on
	// saving keep the stored ones.
	Notifications() (notify.Config, error)
	SetNotifications(notify.Config) error
	TestNotifications(ctx context.Context) error
}

// Server is the appliance's HTTPS server.
type Server struct {
	// Dir holds the certificate, the user accounts, API tokens and (unless
	// Audit is set) the audit log.
	Dir     string
	Addr    string // "127.0.0.1:8443"
	Backend Backend
	Log     *slog.Logger
	// Audit receives every change and login; nil opens Dir/audit.log.
	Audit *audit.Log

	// Setup is the first-boot wizard's backend; nil means the appliance
	// is set up (tests, the demo) and the wizard is not served.
	Setup SetupBackend
	// Hostname is shown in the page footer.
	Hostname string

	users      *access.Directory
	routes     []Route
	pageRoutes []PageRoute
	tmpl       templates
	backend    atomic.Pointer[backendBox]
	lastVerify atomic.Pointer[monVerifyResult]
	srv        *http.Server
	ln         net.Listener
	cert       atomic.Pointer[tls.Certificate]
	closer     []func() error
}

type backendBox struct{ b Backend }

// SetBackend installs the appliance once the setup wizard has made it;
// until then the API answers 503.
func (s *Server) SetBackend(b Backend) { s.backend.Store(&backendBox{b}) }

// be returns the backend; needBackend has checked that there is one.
func (s *Server) be() Backend {
	if bx := s.backend.Load(); bx != nil {
		return bx.b
	}
	return s.Backend
}

// needBackend answers 503 while the appliance is not set up.
func (s *Server) needBackend(c *gin.Context) {
	if s.be() == nil {
		fail(c, http.StatusServiceUnavailable, "the appliance is not set up yet: finish the setup wizard at /setup")
		return
	}
	c.Next()
}

// Route is one API route and the permission it needs.
type Route struct {
	Method, Path string
	Perm         access.Permission // "" for the public ones (health, login)
}

// Start listens and serves in the background; it returns once the
// listener is up. The URL is Server.URL.
func (s *Server) Start() error {
	if err := s.init(); err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(s.Addr)
	cert, err := LoadOrCreateCertificate(s.Dir, []string{host})
	if err != nil {
		return err
	}
	s.setCert(cert)
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.Addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler: s.Handler(),
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cert.Load(), nil
		}},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.Log.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := s.srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.Log.Error("HTTPS server stopped", "err", err)
		}
	}()
	return nil
}

// init opens the user directory and the audit log once.
func (s *Server) init() error {
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	if s.users == nil {
		d, err := access.Open(s.Dir, access.Options{})
		if err != nil {
			return err
		}
		s.users = d
	}
	if s.Audit == nil {
		l, err := audit.Open(filepath.Join(s.Dir, AuditFile), audit.Options{})
		if err != nil {
			return err
		}
		s.Audit = l
		s.closer = append(s.closer, l.Close)
	}
	return nil
}

// AuditFile is the audit log in the state directory.
const AuditFile = "audit.log"

// URL is where the server listens.
func (s *Server) URL() string { return "https://" + s.ln.Addr().String() }

// CertificateFingerprint is the SHA-256 thumbprint of the served certificate.
func (s *Server) CertificateFingerprint() string { return Fingerprint(s.currentCert()) }

// setCert swaps the served certificate (new connections use it at once).
func (s *Server) setCert(c tls.Certificate) { s.cert.Store(&c) }

func (s *Server) currentCert() tls.Certificate {
	if c := s.cert.Load(); c != nil {
		return *c
	}
	return tls.Certificate{}
}

// Shutdown stops the server.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	if s.srv != nil {
		err = s.srv.Shutdown(ctx)
	}
	for _, c := range s.closer {
		err = errors.Join(err, c())
	}
	s.closer = nil
	return err
}

// RedirectHandler sends plain-HTTP visitors to the HTTPS address.
func RedirectHandler(httpsPort string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		http.Redirect(w, r, "https://"+net.JoinHostPort(host, httpsPort)+r.URL.RequestURI(), http.StatusMovedPermanently)
	})
}

// apiError is the JSON shape of every error answer.
type apiError struct {
	Error string `json:"error"`
}

func fail(c *gin.Context, code int, format string, a ...any) {
	c.AbortWithStatusJSON(code, apiError{Error: fmt.Sprintf(format, a...)})
}

// Routes lists the API routes with the permission each needs.
func (s *Server) Routes() []Route { return slices.Clone(s.routes) }

// Handler returns the routes. Everything under /api/v1 needs a session
// or an API token and the route's permission, except the health check
// and the login itself.
func (s *Server) Handler() http.Handler {
	if err := s.init(); err != nil {
		s.Log.Error("cannot open the user accounts", "err", err)
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "the appliance cannot read its user accounts: "+err.Error(), http.StatusInternalServerError)
		})
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery(), s.logRequests, securityHeaders)
	r.NoRoute(func(c *gin.Context) {
		fail(c, http.StatusNotFound, "no such route: %s %s", c.Request.Method, c.Request.URL.Path)
	})
	s.routes = nil
	api := r.Group("/api/v1")
	public := func(method, path string, h gin.HandlerFunc) {
		s.routes = append(s.routes, Route{Method: method, Path: "/api/v1" + path})
		api.Handle(method, path, h)
	}
	authed := api.Group("", s.authenticate, s.checkCSRF, s.auditChange)
	appRoutes := authed.Group("", s.needBackend)
	own := func(method, path string, perm access.Permission, h gin.HandlerFunc) {
		s.routes = append(s.routes, Route{Method: method, Path: "/api/v1" + path, Perm: perm})
		authed.Handle(method, path, s.require(perm), h)
	}
	route := func(method, path string, perm access.Permission, h gin.HandlerFunc) {
		s.routes = append(s.routes, Route{Method: method, Path: "/api/v1" + path, Perm: perm})
		appRoutes.Handle(method, path, s.require(perm), h)
	}
	public("GET", "/health", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	public("POST", "/login", s.login)

	own("POST", "/logout", access.PermSelf, s.logout)
	own("GET", "/me", access.PermSelf, s.me)
	own("GET", "/openapi.json", access.PermSelf, s.openAPIDoc)
	own("POST", "/me/password", access.PermSelf, s.changeOwnPassword)
	own("GET", "/users", access.PermAdmin, s.listUsers)
	own("POST", "/users", access.PermAdmin, s.createUser)
	own("PUT", "/users/:name", access.PermAdmin, s.updateUser)
	own("DELETE", "/users/:name", access.PermAdmin, s.deleteUser)
	own("GET", "/tokens", access.PermAdmin, s.listTokens)
	own("POST", "/tokens", access.PermAdmin, s.createToken)
	own("DELETE", "/tokens/:id", access.PermAdmin, s.revokeToken)
	own("GET", "/audit", access.PermAdmin, s.auditEntries)
	own("GET", "/certificate", access.PermView, s.certificateInfo)
	own("POST", "/certificate/csr", access.PermAdmin, s.certificateRequest)
	own("PUT", "/certificate", access.PermAdmin, s.installCertificate)

	route("GET", "/vms", access.PermView, s.vms)
	route("GET", "/protection", access.PermView, s.protection)
	route("GET", "/policies", access.PermView, func(c *gin.Context) { c.JSON(http.StatusOK, s.be().Policies()) })
	route("POST", "/policies", access.PermConfigure, s.createPolicy)
	route("GET", "/policies/:id", access.PermView, func(c *gin.Context) {
		p, err := s.be().Policy(c.Param("id"))
		if err != nil {
			fail(c, http.StatusNotFound, "%v", err)
			return
		}
		c.JSON(http.StatusOK, p)
	})
	route("PUT", "/policies/:id", access.PermConfigure, s.updatePolicy)
	route("DELETE", "/policies/:id", access.PermConfigure, func(c *gin.Context) {
		if err := s.be().DeletePolicy(c.Param("id")); err != nil {
			fail(c, http.StatusConflict, "%v", err)
			return
		}
		c.Status(http.StatusNoContent)
	})
	route("POST", "/policies/:id/run", access.PermOperate, func(c *gin.Context) {
		id, err := s.be().RunPolicy(c.Request.Context(), c.Param("id"), jobs.TriggerManual)
		if err != nil {
			fail(c, http.StatusConflict, "%v", err)
			return
		}
		c.JSON(http.StatusAccepted, gin.H{"job_id": id})
	})
	route("GET", "/jobs", access.PermView, s.jobs)
	route("GET", "/jobs/:id", access.PermView, func(c *gin.Context) {
		j, err := s.be().Job(c.Param("id"))
		if err != nil {
			fail(c, http.StatusNotFound, "%v", err)
			return
		}
		c.JSON(http.StatusOK, j)
	})
	route("POST", "/jobs/:id/cancel", access.PermOperate, func(c *gin.Context) {
		if err := s.be().Cancel(c.Param("id")); err != nil {
			fail(c, http.StatusConflict, "%v", err)
			return
		}
		c.Status(http.StatusAccepted)
	})
	route("GET", "/events", access.PermView, s.events)
	route("GET", "/points", access.PermBrowse, s.points)
	route("GET", "/points/:id/disks/:disk/export", access.PermRestore, s.exportDisk)
	route("POST", "/points/:id/restore", access.PermRestore, s.restoreVM)
	route("GET", "/points/:id/catalog", access.PermBrowse, s.pointCatalog)
	route("POST", "/points/:id/catalog", access.PermOperate, s.rebuildCatalog)
	route("GET", "/points/:id/files", access.PermBrowse, s.listFiles)
	route("GET", "/points/:id/files/download", access.PermRestore, s.downloadFiles)
	route("POST", "/points/:id/files/put-back", access.PermRestore, s.putFilesBack)
	route("GET", "/files/search", access.PermBrowse, s.searchFiles)
	route("GET", "/files/versions", access.PermBrowse, s.fileVersions)
	route("GET", "/notifications", access.PermAdmin, s.notifications)
	route("PUT", "/notifications", access.PermAdmin, s.setNotifications)
	route("POST", "/notifications/test", access.PermAdmin, s.testNotifications)
	route("GET", "/storage", access.PermView, s.storageState)
	route("GET", "/storage/capacity", access.PermView, s.capacity)
	route("POST", "/storage/verify", access.PermOperate, s.verifyStore)
	route("POST", "/storage/gc", access.PermOperate, s.collectGarbage)
	route("GET", "/points/:id/lock", access.PermBrowse, s.pointLock)
	route("PUT", "/points/:id/lock", access.PermConfigure, s.setPointLock)
	s.pageRoutesOn(r)
	return r
}

func securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Strict-Transport-Security", "max-age=31536000")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
	h.Set("Cache-Control", "no-store")
	c.Next()
}

func (s *Server) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	// Paths only: queries and bodies may hold secrets.
	s.Log.Debug("api request", "method", c.Request.Method, "path", c.Request.URL.Path, "status", c.Writer.Status(), "took", time.Since(start))
}

func (s *Server) vms(c *gin.Context) {
	rep, err := s.be().Protection(c.Request.Context())
	if err != nil {
		fail(c, http.StatusBadGateway, "%v", err)
		return
	}
	c.JSON(http.StatusOK, rep.VMs)
}

func (s *Server) protection(c *gin.Context) {
	rep, err := s.be().Protection(c.Request.Context())
	if err != nil {
		fail(c, http.StatusBadGateway, "%v", err)
		return
	}
	c.JSON(http.StatusOK, rep)
}

func decodeStrict(c *gin.Context, v any) bool {
	dec := json.NewDecoder(io.LimitReader(c.Request.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		fail(c, http.StatusBadRequest, "malformed JSON: %v", err)
		return false
	}
	return true
}

func (s *Server) createPolicy(c *gin.Context) {
	var p jobs.Policy
	if !decodeStrict(c, &p) {
		return
	}
	p, err := s.be().CreatePolicy(p)
	if err != nil {
		fail(c, http.StatusUnprocessableEntity, "%v", err)
		return
	}
	c.JSON(http.StatusCreated, p)
}

func (s *Server) updatePolicy(c *gin.Context) {
	var p jobs.Policy
	if !decodeStrict(c, &p) {
		return
	}
	p.ID = c.Param("id")
	p, err := s.be().UpdatePolicy(p)
	if err != nil {
		fail(c, http.StatusUnprocessableEntity, "%v", err)
		return
	}
	c.JSON(http.StatusOK, p)
}

func (s *Server) jobs(c *gin.Context) {
	f := jobs.JobFilter{PolicyID: c.Query("policy"), VM: c.Query("vm"), Limit: 100}
	if st := c.Query("state"); st != "" {
		for _, x := range strings.Split(st, ",") {
			f.States = append(f.States, jobs.JobState(x))
		}
	}
	c.JSON(http.StatusOK, s.be().Jobs(f))
}

// events streams job changes and progress as server-sent events.
func (s *Server) events(c *gin.Context) {
	ch, cancel := s.be().Subscribe()
	defer cancel()
	c.Header("Content-Type", "text/event-stream")
	c.Header("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)
	c.Writer.Flush()
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return
			}
			b, err := json.Marshal(ev)
			if err != nil {
				continue
			}
			fmt.Fprintf(c.Writer, "event: %s\ndata: %s\n\n", ev.Type, b)
			c.Writer.Flush()
		case <-keep.C:
			fmt.Fprint(c.Writer, ": keep-alive\n\n")
			c.Writer.Flush()
		case <-c.Request.Context().Done():
			return
		}
	}
}

// pointSummary is a point without its per-range maps.
type pointSummary struct {
	ID          point.ID          `json:"id"`
	Source      string            `json:"source"`
	Created     time.Time         `json:"created"`
	Consistency point.Consistency `json:"consistency"`
	Labels      map[string]string `json:"labels,omitempty"`
	Disks       []string          `json:"disks"`
	Stats       point.Stats       `json:"stats"`
	// Recoverability is the verdict of the check after the backup:
	// verified, warning, failed, or "" when the point has no catalog.
	Recoverability catalog.Verdict `json:"recoverability"`
	Findings       []string        `json:"findings,omitempty"`
}

func (s *Server) points(c *gin.Context) {
	pts, err := s.be().Points()
	if err != nil {
		fail(c, http.StatusInternalServerError, "%v", err)
		return
	}
	src := c.Query("source")
	out := []pointSummary{}
	for _, p := range pts {
		if src != "" && p.Source != src {
			continue
		}
		ps := pointSummary{ID: p.ID, Source: p.Source, Created: p.Created, Consistency: p.Consistency, Labels: p.Labels, Stats: p.Stats}
		for _, d := range p.Disks {
			ps.Disks = append(ps.Disks, d.Name)
		}
		if h, err := s.be().Catalogs().Header(p.ID); err == nil {
			ps.Recoverability, ps.Findings = h.Verdict, h.Findings
		}
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	c.JSON(http.StatusOK, out)
}

// exportDisk streams one disk of a point as an image: raw with Range
// support, VMDK/VHDX/qcow2 generated on the fly (never staged).
func (s *Server) exportDisk(c *gin.Context) {
	f, err := export.ParseFormat(c.DefaultQuery("format", "raw"))
	if err != nil {
		fail(c, http.StatusBadRequest, "%v", err)
		return
	}
	id := point.ID(c.Param("id"))
	if !id.Valid() {
		fail(c, http.StatusBadRequest, "malformed point ID %q", id)
		return
	}
	disk := c.Param("disk")
	r, err := s.be().OpenDisk(id, disk)
	if err != nil {
		fail(c, http.StatusNotFound, "%v", err)
		return
	}
	defer r.Close()
	name := strings.NewReplacer(":", "_", "/", "_").Replace(string(id)+"-"+disk) + f.Ext()
	c.Header("Content-Disposition", `attachment; filename="`+name+`"`)
	if f == export.Raw {
		http.ServeContent(c.Writer, c.Request, name, time.Time{}, export.RawReadSeeker(r))
		return
	}
	ctx := c.Request.Context()
	if n, ok, err := export.Size(ctx, r, f); err != nil {
		fail(c, http.StatusInternalServerError, "%v", err)
		return
	} else if ok {
		c.Header("Content-Length", fmt.Sprint(n))
	}
	c.Header("Content-Type", f.ContentType())
	c.Status(http.StatusOK)
	if _, err := export.Write(ctx, c.Writer, r, f); err != nil {
		// The status is sent: all that is left is to cut the stream,
		// which a client sees as a short body.
		s.Log.Error("export stream failed", "point", id, "disk", disk, "format", f, "err", err)
		if conn, _, herr := http.NewResponseController(c.Writer).Hijack(); herr == nil {
			conn.Close()
		}
	}
}

// restoreRequest is the body of POST /points/{id}/restore: a new VM.
type restoreRequest struct {
	Name         string   `json:"name"`
	Datacenter   string   `json:"datacenter"`
	Folder       string   `json:"folder"`
	Host         string   `json:"host"`
	ResourcePool string   `json:"resource_pool"`
	Datastore    string   `json:"datastore"`
	Network      string   `json:"network"`
	Isolated     bool     `json:"isolated"`
	PowerOn      bool     `json:"power_on"`
	Disks        []string `json:"disks"`
}

func (s *Server) restoreVM(c *gin.Context) {
	id := point.ID(c.Param("id"))
	if !id.Valid() {
		fail(c, http.StatusBadRequest, "malformed point ID %q", id)
		return
	}
	var req restoreRequest
	if !decodeStrict(c, &req) {
		return
	}
	if req.Name == "" {
		fail(c, http.StatusBadRequest, "a restore needs the new VM's name")
		return
	}
	res, err := s.be().RestoreVM(c.Request.Context(), restore.Request{
		Point: id, Name: req.Name, Datacenter: req.Datacenter, Folder: req.Folder, Host: req.Host,
		ResourcePool: req.ResourcePool, Datastore: req.Datastore, Network: req.Network,
		Isolated: req.Isolated, PowerOn: req.PowerOn, Disks: req.Disks,
	})
	switch {
	case errors.Is(err, restore.ErrPointNotFound):
		fail(c, http.StatusNotFound, "%v", err)
	case errors.Is(err, restore.ErrNameTaken), errors.Is(err, restore.ErrNotVM):
		fail(c, http.StatusConflict, "%v", err)
	case err != nil:
		fail(c, http.StatusBadGateway, "%v", err)
	default:
		c.JSON(http.StatusCreated, res)
	}
}
