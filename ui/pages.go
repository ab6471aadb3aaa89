package ui

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"coffer.dev/coffer/appliance/setup"
	"coffer.dev/coffer/ui/access"
	"coffer.dev/coffer/ui/web"
)

// Version is shown in the page footer; the build sets it.
var Version = "dev"

// navItem is one entry of the main menu.
type navItem struct {
	Href, Label string
	Perm        access.Permission
	Active      bool
}

var mainNav = []navItem{
	{Href: "/", Label: "Dashboard", Perm: access.PermView},
	{Href: "/vms", Label: "VMs", Perm: access.PermView},
	{Href: "/policies", Label: "Policies", Perm: access.PermView},
	{Href: "/jobs", Label: "Jobs", Perm: access.PermView},
	{Href: "/points", Label: "Recovery points", Perm: access.PermBrowse},
	{Href: "/storage", Label: "Storage", Perm: access.PermView},
	{Href: "/tape", Label: "Tape", Perm: access.PermView},
	{Href: "/replication", Label: "Replication", Perm: access.PermView},
	{Href: "/settings", Label: "Settings", Perm: access.PermAdmin},
	{Href: "/audit", Label: "Audit log", Perm: access.PermAdmin},
}

// pageData is what every template gets.
type pageData struct {
	Title    string
	User     access.Principal
	CSRF     string
	Nav      []navItem
	Flash    string
	Error    string
	Version  string
	Hostname string
	Data     any
}

// Can reports whether the viewer may do perm (templates hide what they cannot).
func (p pageData) Can(perm string) bool { return p.User.Role.Can(access.Permission(perm)) }

// PageRoute is one HTML page route and the permission it needs.
type PageRoute struct {
	Method, Path string
	Perm         access.Permission
}

// templates parses the layout with each page once.
type templates struct {
	once  sync.Once
	err   error
	pages map[string]*template.Template
}

var funcs = template.FuncMap{
	"bytes":    humanBytes,
	"duration": humanDuration,
	"time":     func(t time.Time) string { return humanTime(t) },
	"ago":      func(t time.Time) string { return ago(t, time.Now()) },
	"pct":      func(f float64) string { return fmt.Sprintf("%.0f %%", f) },
	"join":     strings.Join,
	"levels":   func() []string { return setup.Levels },
	"query":    url.QueryEscape,
	"ratio": func(a, b int64) string {
		if b <= 0 {
			return "–"
		}
		return fmt.Sprintf("%.1f:1", float64(a)/float64(b))
	},
}

func (t *templates) load() error {
	t.once.Do(func() {
		t.pages = map[string]*template.Template{}
		layout, err := web.Templates.ReadFile("templates/layout.html")
		if err != nil {
			t.err = err
			return
		}
		names, err := fs.Glob(web.Templates, "templates/*.html")
		if err != nil {
			t.err = err
			return
		}
		for _, n := range names {
			name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
			if name == "layout" {
				continue
			}
			b, err := web.Templates.ReadFile(n)
			if err != nil {
				t.err = err
				return
			}
			tp, err := template.New(name).Funcs(funcs).Parse(string(layout))
			if err == nil {
				_, err = tp.Parse(string(b))
			}
			if err != nil {
				t.err = fmt.Errorf("page template %s: %w", name, err)
				return
			}
			t.pages[name] = tp
		}
	})
	return t.err
}

// render writes a page; status 0 means 200.
func (s *Server) render(c *gin.Context, status int, page, title string, data any) {
	if status == 0 {
		status = http.StatusOK
	}
	if err := s.tmpl.load(); err != nil {
		s.Log.Error("page templates", "err", err)
		c.String(http.StatusInternalServerError, "page templates are broken: %v", err)
		return
	}
	tp, ok := s.tmpl.pages[page]
	if !ok {
		c.String(http.StatusInternalServerError, "no page template %q", page)
		return
	}
	p := principal(c)
	pd := pageData{Title: title, User: p, Version: Version, Hostname: s.Hostname, Data: data,
		Flash: c.Query("ok"), Error: c.GetString(ctxPageError)}
	if sv, ok := c.Get(ctxSession); ok {
		pd.CSRF = sv.(*access.Session).CSRF
	}
	for _, n := range mainNav {
		if strings.HasPrefix(page, "setup-") {
			break // the wizard has its own step bar; the menu would only lead back to it
		}
		if p.Role.Can(n.Perm) {
			n.Active = n.Href == c.GetString(ctxNav)
			pd.Nav = append(pd.Nav, n)
		}
	}
	var buf bytes.Buffer
	if err := tp.ExecuteTemplate(&buf, "layout", pd); err != nil {
		s.Log.Error("render page", "page", page, "err", err)
		c.String(http.StatusInternalServerError, "could not render the page: %v", err)
		return
	}
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

const (
	ctxNav       = "coffer.nav"
	ctxPageError = "coffer.page.error"
)

// pageError re-renders with an error banner.
func pageError(c *gin.Context, format string, a ...any) {
	c.Set(ctxPageError, fmt.Sprintf(format, a...))
}

// redirectOK sends the browser to path with a success banner (PRG).
func redirectOK(c *gin.Context, path, msg string) {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	if msg != "" {
		path += sep + "ok=" + url.QueryEscape(msg)
	}
	c.Redirect(http.StatusSeeOther, path)
}

// pageAuth resolves the session cookie for pages; without one the
// browser goes to the login page, and back afterwards.
func (s *Server) pageAuth(c *gin.Context) {
	tok, _ := c.Cookie(SessionCookie)
	p, sess, ok := s.users.Authenticate(tok)
	if !ok || sess == nil {
		next := c.Request.URL.RequestURI()
		c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(next))
		c.Abort()
		return
	}
	c.Set(ctxPrincipal, p)
	c.Set(ctxSession, sess)
	c.Set(ctxToken, tok)
	c.Set(ctxCookie, true)
	c.Next()
}

// pageRequire checks a page's permission and, for forms, the CSRF token.
func (s *Server) pageRequire(perm access.Permission, nav string) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Set(ctxNav, nav)
		p := principal(c)
		if !p.Role.Can(perm) {
			s.recordDenied(c, "role "+string(p.Role)+" lacks "+string(perm))
			s.render(c, http.StatusForbidden, "error", "Not allowed", fmt.Sprintf("Your role (%s) does not allow this page or action.", p.Role))
			c.Abort()
			return
		}
		c.Next()
	}
}

// page registers an HTML route.
func (s *Server) page(g *gin.RouterGroup, method, path string, perm access.Permission, nav string, h gin.HandlerFunc) {
	s.pageRoutes = append(s.pageRoutes, PageRoute{Method: method, Path: path, Perm: perm})
	g.Handle(method, path, s.pageRequire(perm, nav), h)
}

// PageRoutes lists the HTML routes with the permission each needs.
func (s *Server) PageRoutes() []PageRoute { return append([]PageRoute(nil), s.pageRoutes...) }

// safeNext keeps post-login redirects on this site.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

type loginPage struct{ Next, Username string }

func (s *Server) loginForm(c *gin.Context) {
	if s.Setup != nil && !s.Setup.Complete() && !s.users.HasUsers() {
		c.Redirect(http.StatusSeeOther, "/setup")
		return
	}
	s.render(c, 0, "login", "Log in", loginPage{Next: safeNext(c.Query("next"))})
}

func (s *Server) loginSubmit(c *gin.Context) {
	user, pw, next := c.PostForm("username"), c.PostForm("password"), safeNext(c.PostForm("next"))
	tok, _, err := s.users.Login(c.ClientIP(), user, pw)
	s.auditLogin(c, user, err)
	if err != nil {
		pageError(c, "%v", err)
		s.render(c, http.StatusUnauthorized, "login", "Log in", loginPage{Next: next, Username: user})
		return
	}
	s.setSessionCookie(c, tok)
	c.Redirect(http.StatusSeeOther, next)
}

func (s *Server) logoutSubmit(c *gin.Context) {
	s.users.Logout(c.GetString(ctxToken))
	http.SetCookie(c.Writer, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	c.Redirect(http.StatusSeeOther, "/login?ok="+url.QueryEscape("You are logged out."))
}

// staticHandler serves the embedded assets (cacheable: they change only
// with the binary).
func staticHandler() gin.HandlerFunc {
	sub, _ := fs.Sub(web.Static, "static")
	fsrv := http.StripPrefix("/static/", http.FileServer(http.FS(sub)))
	return func(c *gin.Context) {
		c.Header("Cache-Control", "public, max-age=3600")
		fsrv.ServeHTTP(c.Writer, c.Request)
	}
}

func humanBytes(n int64) string {
	const u = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n)/1024, 0
	for f >= 1024 && i < len(u)-1 {
		f /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, u[i])
}

func humanDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < 90*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < 90*time.Minute:
		return fmt.Sprintf("%.0f min", d.Minutes())
	case d < 72*time.Hour:
		return fmt.Sprintf("%.1f h", d.Hours())
	default:
		return fmt.Sprintf("%.0f days", d.Hours()/24)
	}
}

func humanTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Local().Format("2006-01-02 15:04")
}

func ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	default:
		return fmt.Sprintf("%d days ago", int(d.Hours()/24))
	}
}

// pageRoutesOn registers the HTML side: assets, login, the wizard and
// the pages (each with its permission; changes need the CSRF field).
func (s *Server) pageRoutesOn(r *gin.Engine) {
	s.pageRoutes = nil
	r.GET("/static/*filepath", staticHandler())
	r.GET("/login", s.loginForm)
	r.POST("/login", s.loginSubmit)
	s.setupRoutes(r)
	g := r.Group("", s.setupGate, s.pageAuth, s.checkCSRF, s.auditChange)
	s.page(g, "POST", "/logout", access.PermSelf, "", s.logoutSubmit)
	pages := g.Group("", s.pageBackend)
	s.appPages(pages)
	s.notificationsPages(pages)
}

// pageBackend shows an error page while the appliance has no backend.
func (s *Server) pageBackend(c *gin.Context) {
	if s.be() == nil {
		s.render(c, http.StatusServiceUnavailable, "error", "Not ready", "The appliance is starting or not set up yet.")
		c.Abort()
		return
	}
	c.Next()
}
