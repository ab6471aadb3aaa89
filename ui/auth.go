package ui

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"coffer.dev/coffer/appliance/audit"
	"coffer.dev/coffer/ui/access"
)

// SessionCookie carries the session token of a browser. The __Host-
// prefix makes browsers insist on Secure, Path=/ and no Domain.
const SessionCookie = "__Host-coffer_session"

// CSRFHeader carries the session's CSRF token on state-changing API
// calls authenticated by the cookie; HTML forms send it as the field
// csrf_token.
const CSRFHeader = "X-CSRF-Token"

// CheckPasswordStrength refuses passwords an attacker guesses quickly.
func CheckPasswordStrength(pw string) error { return access.CheckPasswordStrength("", pw) }

// SetAdmin creates the administrator account user, or sets its password
// (and the administrator role) if it exists. The CLI uses it before the
// wizard exists on a machine (tests, `coffer admin`).
func SetAdmin(dir, user, password string) error {
	d, err := access.Open(dir, access.Options{})
	if err != nil {
		return err
	}
	if _, err := d.User(user); errors.Is(err, access.ErrNotFound) {
		_, err = d.AddUser(user, access.Administrator, password)
		return err
	}
	if err := d.SetPassword(user, password, ""); err != nil {
		return err
	}
	return d.SetRole(user, access.Administrator)
}

// HasAdmin reports whether a user account exists.
func HasAdmin(dir string) bool {
	d, err := access.Open(dir, access.Options{})
	return err == nil && d.HasUsers()
}

// Context keys set by authenticate.
const (
	ctxPrincipal = "coffer.principal"
	ctxSession   = "coffer.session"
	ctxToken     = "coffer.token"
	ctxCookie    = "coffer.cookie" // authenticated by the session cookie
	ctxTarget    = "coffer.audit.target"
	ctxDetail    = "coffer.audit.detail"
)

// credentials returns the token of a request and whether it came from
// the cookie.
func credentials(c *gin.Context) (string, bool) {
	if h := c.GetHeader("Authorization"); strings.HasPrefix(h, "Bearer ") {
		return strings.TrimPrefix(h, "Bearer "), false
	}
	if ck, err := c.Cookie(SessionCookie); err == nil {
		return ck, true
	}
	return "", false
}

func principal(c *gin.Context) access.Principal {
	p, _ := c.Get(ctxPrincipal)
	pr, _ := p.(access.Principal)
	return pr
}

// authenticate resolves the caller or answers 401.
func (s *Server) authenticate(c *gin.Context) {
	tok, cookie := credentials(c)
	p, sess, ok := s.users.Authenticate(tok)
	if !ok {
		c.Header("WWW-Authenticate", `Bearer realm="coffer"`)
		fail(c, http.StatusUnauthorized, "log in first (POST /api/v1/login) or send an API token")
		return
	}
	c.Set(ctxPrincipal, p)
	c.Set(ctxToken, tok)
	c.Set(ctxCookie, cookie)
	if sess != nil {
		c.Set(ctxSession, sess)
	}
	c.Next()
}

func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// checkCSRF protects cookie-authenticated changes: the request must echo
// the session's CSRF token, and its Origin (when sent) must be this
// server. Bearer-token calls carry no ambient credentials and pass.
func (s *Server) checkCSRF(c *gin.Context) {
	if cookie, _ := c.Get(ctxCookie); cookie != true || !unsafeMethod(c.Request.Method) {
		c.Next()
		return
	}
	if o := c.GetHeader("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != c.Request.Host {
			s.recordDenied(c, "cross-origin request")
			fail(c, http.StatusForbidden, "cross-origin request refused")
			return
		}
	}
	got := c.GetHeader(CSRFHeader)
	if got == "" {
		got = c.PostForm("csrf_token")
	}
	sv, _ := c.Get(ctxSession)
	sess, _ := sv.(*access.Session)
	if !access.CheckCSRF(sess, got) {
		s.recordDenied(c, "missing or wrong CSRF token")
		fail(c, http.StatusForbidden, "missing or wrong CSRF token (send the %s header from GET /api/v1/me)", CSRFHeader)
		return
	}
	c.Next()
}

// require checks the route's permission.
func (s *Server) require(perm access.Permission) gin.HandlerFunc {
	return func(c *gin.Context) {
		p := principal(c)
		if !p.Role.Can(perm) {
			s.recordDenied(c, "role "+string(p.Role)+" lacks "+string(perm))
			fail(c, http.StatusForbidden, "your role (%s) does not allow this (needs %s)", p.Role, perm)
			return
		}
		c.Next()
	}
}

// auditChange records every state-changing call once it is answered.
func (s *Server) auditChange(c *gin.Context) {
	c.Next()
	if !unsafeMethod(c.Request.Method) || c.Writer.Status() == http.StatusForbidden {
		return // reads are not audited; denials are recorded where they happen
	}
	outcome := "ok"
	if st := c.Writer.Status(); st >= 400 {
		outcome = "failed: " + strconv.Itoa(st)
		if errs := c.Errors.Last(); errs != nil {
			outcome += " " + errs.Error()
		}
	}
	s.record(c, outcome)
}

func (s *Server) recordDenied(c *gin.Context, why string) {
	s.record(c, "denied: "+why)
}

func (s *Server) record(c *gin.Context, outcome string) {
	p := principal(c)
	target := c.GetString(ctxTarget)
	if target == "" {
		for _, k := range []string{"id", "name"} {
			if v := c.Param(k); v != "" {
				target = v
			}
		}
	}
	action := c.Request.Method + " " + c.FullPath()
	if c.FullPath() == "" {
		action = c.Request.Method + " " + c.Request.URL.Path
	}
	via := "api"
	if cookie, _ := c.Get(ctxCookie); cookie == true {
		via = "ui"
	}
	if p.Token != "" {
		via = p.Via()
	}
	if err := s.Audit.Record(audit.Entry{User: p.User, Role: string(p.Role), Via: via, Client: c.ClientIP(),
		Action: action, Target: target, Outcome: outcome, Status: c.Writer.Status(), Detail: c.GetString(ctxDetail)}); err != nil {
		s.Log.Error("could not write the audit log", "err", err)
	}
}

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// loginAnswer is what a login returns.
type loginAnswer struct {
	Token     string      `json:"token"`
	CSRFToken string      `json:"csrf_token"`
	User      string      `json:"user"`
	Role      access.Role `json:"role"`
}

func (s *Server) login(c *gin.Context) {
	var req loginRequest
	if err := json.NewDecoder(io.LimitReader(c.Request.Body, 64<<10)).Decode(&req); err != nil || req.Username == "" {
		fail(c, http.StatusBadRequest, "send {\"username\": ..., \"password\": ...}")
		return
	}
	tok, sess, err := s.users.Login(c.ClientIP(), req.Username, req.Password)
	s.auditLogin(c, req.Username, err)
	if err != nil {
		code := http.StatusUnauthorized
		switch {
		case errors.Is(err, access.ErrThrottled), errors.Is(err, access.ErrAccountLock):
			code = http.StatusTooManyRequests
		case errors.Is(err, access.ErrNoAccountYet):
			code = http.StatusServiceUnavailable
		}
		fail(c, code, "%v", err)
		return
	}
	s.setSessionCookie(c, tok)
	u, _ := s.users.User(req.Username)
	c.JSON(http.StatusOK, loginAnswer{Token: tok, CSRFToken: sess.CSRF, User: u.Name, Role: u.Role})
}

func (s *Server) auditLogin(c *gin.Context, user string, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "failed: " + err.Error()
		s.Log.Warn("failed login", "user", user, "client", c.ClientIP())
	}
	if aerr := s.Audit.Record(audit.Entry{User: user, Via: "login", Client: c.ClientIP(), Action: "login", Outcome: outcome}); aerr != nil {
		s.Log.Error("could not write the audit log", "err", aerr)
	}
}

func (s *Server) setSessionCookie(c *gin.Context, tok string) {
	http.SetCookie(c.Writer, &http.Cookie{Name: SessionCookie, Value: tok, Path: "/", MaxAge: int((12 * time.Hour).Seconds()),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

func (s *Server) logout(c *gin.Context) {
	s.users.Logout(c.GetString(ctxToken))
	http.SetCookie(c.Writer, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	c.Status(http.StatusNoContent)
}

// meAnswer describes the caller.
type meAnswer struct {
	User        string              `json:"user"`
	Role        access.Role         `json:"role"`
	Via         string              `json:"via"`
	CSRFToken   string              `json:"csrf_token,omitempty"`
	Permissions []access.Permission `json:"permissions"`
}

func (s *Server) me(c *gin.Context) {
	p := principal(c)
	a := meAnswer{User: p.User, Role: p.Role, Via: p.Via()}
	if sv, ok := c.Get(ctxSession); ok {
		a.CSRFToken = sv.(*access.Session).CSRF
	}
	for _, perm := range []access.Permission{access.PermView, access.PermBrowse, access.PermRestore, access.PermOperate, access.PermConfigure, access.PermAdmin} {
		if p.Role.Can(perm) {
			a.Permissions = append(a.Permissions, perm)
		}
	}
	c.JSON(http.StatusOK, a)
}

func (s *Server) changeOwnPassword(c *gin.Context) {
	var req struct {
		Current string `json:"current"`
		New     string `json:"new"`
	}
	if !decodeStrict(c, &req) {
		return
	}
	p := principal(c)
	if p.Token != "" {
		fail(c, http.StatusForbidden, "an API token cannot change a password: log in")
		return
	}
	if err := s.users.Verify(c.ClientIP(), p.User, req.Current); err != nil {
		fail(c, http.StatusUnprocessableEntity, "the current password is wrong")
		return
	}
	if err := s.users.SetPassword(p.User, req.New, c.GetString(ctxToken)); err != nil {
		fail(c, http.StatusUnprocessableEntity, "%v", err)
		return
	}
	c.Set(ctxTarget, p.User)
	c.Set(ctxDetail, "password changed; other sessions ended")
	c.Status(http.StatusNoContent)
}

func (s *Server) listUsers(c *gin.Context) { c.JSON(http.StatusOK, s.users.Users()) }

type userRequest struct {
	Name     string      `json:"name"`
	Role     access.Role `json:"role"`
	Password string      `json:"password"`
	Unlock   bool        `json:"unlock"`
}

func userStatus(err error) int {
	switch {
	case errors.Is(err, access.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, access.ErrExists), errors.Is(err, access.ErrLastAdmin):
		return http.StatusConflict
	default:
		return http.StatusUnprocessableEntity
	}
}

func (s *Server) createUser(c *gin.Context) {
	var req userRequest
	if !decodeStrict(c, &req) {
		return
	}
	c.Set(ctxTarget, req.Name)
	u, err := s.users.AddUser(req.Name, req.Role, req.Password)
	if err != nil {
		fail(c, userStatus(err), "%v", err)
		return
	}
	c.Set(ctxDetail, "user created with role "+string(u.Role))
	c.JSON(http.StatusCreated, u)
}

func (s *Server) updateUser(c *gin.Context) {
	var req userRequest
	if !decodeStrict(c, &req) {
		return
	}
	name := c.Param("name")
	if req.Name != "" && req.Name != name {
		fail(c, http.StatusBadRequest, "a user cannot be renamed")
		return
	}
	var did []string
	if req.Role != "" {
		if err := s.users.SetRole(name, req.Role); err != nil {
			fail(c, userStatus(err), "%v", err)
			return
		}
		did = append(did, "role "+string(req.Role))
	}
	if req.Password != "" {
		if err := s.users.SetPassword(name, req.Password, ""); err != nil {
			fail(c, userStatus(err), "%v", err)
			return
		}
		did = append(did, "password reset")
	}
	if req.Unlock {
		if err := s.users.Unlock(name); err != nil {
			fail(c, userStatus(err), "%v", err)
			return
		}
		did = append(did, "unlocked")
	}
	u, err := s.users.User(name)
	if err != nil {
		fail(c, userStatus(err), "%v", err)
		return
	}
	c.Set(ctxDetail, strings.Join(did, ", "))
	c.JSON(http.StatusOK, u)
}

func (s *Server) deleteUser(c *gin.Context) {
	name := c.Param("name")
	if name == principal(c).User {
		fail(c, http.StatusConflict, "you cannot delete your own account")
		return
	}
	if err := s.users.DeleteUser(name); err != nil {
		fail(c, userStatus(err), "%v", err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) listTokens(c *gin.Context) { c.JSON(http.StatusOK, s.users.Tokens()) }

func (s *Server) createToken(c *gin.Context) {
	var req struct {
		Name      string      `json:"name"`
		Role      access.Role `json:"role"`
		ValidDays int         `json:"valid_days"`
	}
	if !decodeStrict(c, &req) {
		return
	}
	if req.ValidDays < 0 || req.ValidDays > 3650 {
		fail(c, http.StatusUnprocessableEntity, "valid_days is 0 (no expiry) to 3650")
		return
	}
	c.Set(ctxTarget, req.Name)
	secret, t, err := s.users.CreateToken(principal(c).User, req.Name, req.Role, time.Duration(req.ValidDays)*24*time.Hour)
	if err != nil {
		fail(c, userStatus(err), "%v", err)
		return
	}
	c.Set(ctxDetail, "API token created with role "+string(t.Role))
	c.JSON(http.StatusCreated, gin.H{"token": t, "secret": secret, "note": "the secret is shown once; store it now"})
}

func (s *Server) revokeToken(c *gin.Context) {
	if err := s.users.RevokeToken(c.Param("id")); err != nil {
		fail(c, userStatus(err), "%v", err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) auditEntries(c *gin.Context) {
	f := audit.Filter{User: c.Query("user"), Search: c.Query("q")}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			fail(c, http.StatusBadRequest, "limit is 1 to 10000")
			return
		}
		f.Limit = n
	}
	for k, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := c.Query(k); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				fail(c, http.StatusBadRequest, "%s: use RFC 3339 time (2026-12-02T10:00:00Z)", k)
				return
			}
			*dst = t
		}
	}
	es, err := s.Audit.Entries(f)
	if err != nil {
		fail(c, http.StatusInternalServerError, "%v", err)
		return
	}
	c.JSON(http.StatusOK, es)
}
