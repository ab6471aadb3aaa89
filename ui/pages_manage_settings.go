package ui

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"coffer.dev/coffer/ui/access"
)

// manUserRow is one account in the settings.
type manUserRow struct {
	access.User
	N      int
	Self   bool
	Locked bool
	Roles  []manLink
}

// manCertInfo describes a certificate.
type manCertInfo struct {
	Fingerprint string
	Subject     string
	Issuer      string
	Names       []string
	NotBefore   time.Time
	NotAfter    time.Time
	SelfSigned  bool
	Expired     bool
}

type manSettingsView struct {
	Users       []manUserRow
	Tokens      []access.Token
	Roles       []manLink
	NewUser     struct{ Name, Role string }
	NewToken    struct{ Name, Role, ValidDays string }
	Errors      manFieldErrors
	Cert        *manCertInfo
	Pending     *manCertInfo // saved in Dir, served after the next restart
	CertPath    string
	KeyPath     string
	Now         string
	UTC         string
	Zone        string
	PolicyZones []string
}

func manCertInfoOf(c tls.Certificate) *manCertInfo {
	if len(c.Certificate) == 0 {
		return nil
	}
	ci := &manCertInfo{Fingerprint: Fingerprint(c)}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return ci
	}
	ci.Subject, ci.Issuer = leaf.Subject.String(), leaf.Issuer.String()
	ci.NotBefore, ci.NotAfter = leaf.NotBefore, leaf.NotAfter
	ci.SelfSigned = leaf.Subject.String() == leaf.Issuer.String()
	ci.Expired = time.Now().After(leaf.NotAfter)
	ci.Names = append(ci.Names, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		ci.Names = append(ci.Names, ip.String())
	}
	return ci
}

// manZoneName names the appliance's time zone.
func manZoneName(now time.Time) string {
	name := now.Location().String()
	if name == "Local" {
		if tz := os.Getenv("TZ"); tz != "" {
			name = strings.TrimPrefix(tz, ":")
		} else if l, err := os.Readlink("/etc/localtime"); err == nil {
			if _, z, ok := strings.Cut(l, "zoneinfo/"); ok {
				name = z
			}
		}
	}
	abbr, off := now.Zone()
	return fmt.Sprintf("%s (%s, UTC%+03d:%02d)", name, abbr, off/3600, (manAbs(off)%3600)/60)
}

func manAbs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func (s *Server) manSettingsView(c *gin.Context, fe manFieldErrors) manSettingsView {
	me := principal(c).User
	v := manSettingsView{Errors: fe, Tokens: s.users.Tokens(), CertPath: filepath.Join(s.Dir, CertFile), KeyPath: filepath.Join(s.Dir, KeyFile)}
	if v.Errors == nil {
		v.Errors = manFieldErrors{}
	}
	now := time.Now()
	for i, u := range s.users.Users() {
		row := manUserRow{User: u, N: i, Self: u.Name == me, Locked: now.Before(u.LockedUntil)}
		for _, r := range access.Roles {
			row.Roles = append(row.Roles, manLink{Value: string(r), Label: string(r), Selected: r == u.Role})
		}
		v.Users = append(v.Users, row)
	}
	for _, r := range access.Roles {
		v.Roles = append(v.Roles, manLink{Value: string(r), Label: string(r)})
	}
	v.NewUser.Role, v.NewToken.Role, v.NewToken.ValidDays = string(access.Viewer), string(access.Viewer), "90"
	v.Cert = manCertInfoOf(s.currentCert())
	if pair, err := tls.LoadX509KeyPair(v.CertPath, v.KeyPath); err == nil {
		if p := manCertInfoOf(pair); p != nil && (v.Cert == nil || p.Fingerprint != v.Cert.Fingerprint) {
			v.Pending = p
		}
	}
	v.Now = now.Format("2006-01-02 15:04:05 MST")
	v.UTC = now.UTC().Format("2006-01-02 15:04:05 UTC")
	v.Zone = manZoneName(now)
	if be := s.be(); be != nil {
		for _, p := range be.Policies() {
			tz := p.TimeZone
			if tz == "" {
				tz = "UTC"
			}
			if !slices.Contains(v.PolicyZones, tz) {
				v.PolicyZones = append(v.PolicyZones, tz)
			}
		}
	}
	slices.Sort(v.PolicyZones)
	return v
}

func (s *Server) manSettings(c *gin.Context) {
	s.render(c, 0, "man-settings", "Settings", s.manSettingsView(c, nil))
}

// manSettingsFailed re-renders the settings with the error in the banner.
func (s *Server) manSettingsFailed(c *gin.Context, err error, fe manFieldErrors, format string, a ...any) (manSettingsView, int) {
	msg := fmt.Sprintf(format, a...)
	if err != nil {
		msg += ": " + err.Error()
	}
	pageError(c, "%s.", msg)
	code := http.StatusUnprocessableEntity
	switch {
	case errors.Is(err, access.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, access.ErrExists), errors.Is(err, access.ErrLastAdmin):
		code = http.StatusConflict
	}
	return s.manSettingsView(c, fe), code
}

func (s *Server) manSettingsError(c *gin.Context, err error, format string, a ...any) {
	v, code := s.manSettingsFailed(c, err, nil, format, a...)
	s.render(c, code, "man-settings", "Settings", v)
}

func (s *Server) manUserAdd(c *gin.Context) {
	name, role, pw, pw2 := strings.TrimSpace(c.PostForm("name")), c.PostForm("role"), c.PostForm("password"), c.PostForm("password2")
	c.Set(ctxTarget, name)
	fe := manFieldErrors{}
	var err error
	if pw != pw2 {
		fe.add("user_password2", "the two passwords differ")
		err = errors.New("the two passwords differ")
	} else if _, err = s.users.AddUser(name, access.Role(role), pw); err != nil {
		switch msg := err.Error(); {
		case strings.Contains(msg, "password"):
			fe.add("user_password", msg)
		case strings.Contains(msg, "role"):
			fe.add("user_role", msg)
		default:
			fe.add("user_name", msg)
		}
	}
	if err != nil {
		v, code := s.manSettingsFailed(c, err, fe, "The user %s was not created", name)
		v.NewUser.Name, v.NewUser.Role = name, role
		s.render(c, code, "man-settings", "Settings", v)
		return
	}
	c.Set(ctxDetail, "user created with role "+role)
	redirectOK(c, "/settings", fmt.Sprintf("User %s created with the role %s.", name, role))
}

func (s *Server) manUserRole(c *gin.Context) {
	name, role := c.Param("name"), access.Role(c.PostForm("role"))
	if err := s.users.SetRole(name, role); err != nil {
		s.manSettingsError(c, err, "The role of %s was not changed", name)
		return
	}
	c.Set(ctxDetail, "role "+string(role))
	if name == principal(c).User && !role.Can(access.PermAdmin) {
		redirectOK(c, "/me", fmt.Sprintf("Your role is now %s.", role))
		return
	}
	redirectOK(c, "/settings", fmt.Sprintf("%s now has the role %s.", name, role))
}

func (s *Server) manUserPassword(c *gin.Context) {
	name, pw, pw2 := c.Param("name"), c.PostForm("password"), c.PostForm("password2")
	if pw != pw2 {
		s.manSettingsError(c, errors.New("the two passwords differ"), "The password of %s was not reset", name)
		return
	}
	keep := ""
	if name == principal(c).User {
		keep = c.GetString(ctxToken)
	}
	if err := s.users.SetPassword(name, pw, keep); err != nil {
		s.manSettingsError(c, err, "The password of %s was not reset", name)
		return
	}
	c.Set(ctxDetail, "password reset")
	redirectOK(c, "/settings", fmt.Sprintf("The password of %s is reset; their sessions have ended.", name))
}

func (s *Server) manUserUnlock(c *gin.Context) {
	name := c.Param("name")
	if err := s.users.Unlock(name); err != nil {
		s.manSettingsError(c, err, "%s was not unlocked", name)
		return
	}
	c.Set(ctxDetail, "unlocked")
	redirectOK(c, "/settings", fmt.Sprintf("%s is unlocked and may log in again.", name))
}

func (s *Server) manUserDelete(c *gin.Context) {
	name := c.Param("name")
	if name == principal(c).User {
		err := errors.New("you cannot delete your own account; another administrator can")
		admins := 0
		for _, u := range s.users.Users() {
			if u.Role == access.Administrator {
				admins++
			}
		}
		if u, uerr := s.users.User(name); uerr == nil && u.Role == access.Administrator && admins == 1 {
			err = access.ErrLastAdmin
		}
		s.manSettingsError(c, err, "The user %s was not deleted", name)
		return
	}
	if err := s.users.DeleteUser(name); err != nil {
		s.manSettingsError(c, err, "The user %s was not deleted", name)
		return
	}
	c.Set(ctxDetail, "user deleted with their sessions and API tokens")
	redirectOK(c, "/settings", fmt.Sprintf("User %s deleted, with their sessions and API tokens.", name))
}

type manTokenView struct {
	Token  access.Token
	Secret string
}

func (s *Server) manTokenCreate(c *gin.Context) {
	name, role, days := strings.TrimSpace(c.PostForm("name")), c.PostForm("role"), strings.TrimSpace(c.PostForm("valid_days"))
	c.Set(ctxTarget, name)
	fail := func(err error, field string) {
		fe := manFieldErrors{}
		fe.add(field, err.Error())
		v, code := s.manSettingsFailed(c, err, fe, "The API token %s was not created", name)
		v.NewToken.Name, v.NewToken.Role, v.NewToken.ValidDays = name, role, days
		s.render(c, code, "man-settings", "Settings", v)
	}
	n := 0
	if days != "" {
		var err error
		if n, err = strconv.Atoi(days); err != nil || n < 0 || n > 3650 {
			fail(errors.New("the validity is 0 (no expiry) to 3650 days"), "token_days")
			return
		}
	}
	secret, t, err := s.users.CreateToken(principal(c).User, name, access.Role(role), time.Duration(n)*24*time.Hour)
	if err != nil {
		field := "token_name"
		if strings.Contains(err.Error(), "role") {
			field = "token_role"
		}
		fail(err, field)
		return
	}
	c.Set(ctxDetail, "API token created with role "+string(t.Role))
	s.render(c, 0, "man-token", "API token created", manTokenView{Token: t, Secret: secret})
}

func (s *Server) manTokenRevoke(c *gin.Context) {
	id := c.Param("id")
	name := id
	for _, t := range s.users.Tokens() {
		if t.ID == id {
			name = t.Name
		}
	}
	c.Set(ctxTarget, name)
	if err := s.users.RevokeToken(id); err != nil {
		s.manSettingsError(c, err, "The API token %s was not revoked", name)
		return
	}
	c.Set(ctxDetail, "API token revoked")
	redirectOK(c, "/settings", fmt.Sprintf("The API token %s is revoked: it no longer works.", name))
}

// manMaxPEM bounds an uploaded certificate chain or key.
const manMaxPEM = 1 << 20

// manUpload reads a file field, or the text field of the same purpose.
func manUpload(c *gin.Context, fileField, textField string) ([]byte, error) {
	if fh, err := c.FormFile(fileField); err == nil && fh.Size > 0 {
		if fh.Size > manMaxPEM {
			return nil, fmt.Errorf("%s is larger than 1 MiB", fh.Filename)
		}
		f, err := fh.Open()
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return io.ReadAll(io.LimitReader(f, manMaxPEM))
	}
	if t := strings.TrimSpace(c.PostForm(textField)); t != "" {
		if len(t) > manMaxPEM {
			return nil, errors.New("the pasted text is larger than 1 MiB")
		}
		return []byte(t + "\n"), nil
	}
	return nil, nil
}

// manCertificateUpload checks a PEM certificate (chain) and key and saves
// them as tls.crt and tls.key; the server loads them when it starts.
func (s *Server) manCertificateUpload(c *gin.Context) {
	fe := manFieldErrors{}
	certPEM, err := manUpload(c, "cert", "cert_pem")
	if err != nil {
		fe.add("cert", err.Error())
	} else if len(certPEM) == 0 {
		fe.add("cert", "choose the certificate file (PEM) or paste it")
	}
	keyPEM, err := manUpload(c, "key", "key_pem")
	if err != nil {
		fe.add("key", err.Error())
	} else if len(keyPEM) == 0 {
		fe.add("key", "choose the private key file (PEM) or paste it")
	}
	var pair tls.Certificate
	if len(fe) == 0 {
		// The same checks and atomic write as PUT /api/v1/certificate.
		if pair, err = InstallCertificate(s.Dir, certPEM, keyPEM, time.Now()); err != nil {
			fe.add("cert", err.Error())
		}
	}
	if len(fe) > 0 {
		v, _ := s.manSettingsFailed(c, nil, fe, "The certificate was not saved; nothing was changed")
		s.render(c, http.StatusUnprocessableEntity, "man-settings", "Settings", v)
		return
	}
	s.setCert(pair)
	fp := Fingerprint(pair)
	c.Set(ctxTarget, CertFile)
	c.Set(ctxDetail, "UI certificate replaced, SHA-256 "+fp)
	redirectOK(c, "/settings", "The certificate is installed and served from now on (SHA-256 "+fp+").")
}

type manMeView struct {
	User        access.User
	Permissions []access.Permission
	Errors      manFieldErrors
}

func (s *Server) manMeView(c *gin.Context, fe manFieldErrors) manMeView {
	p := principal(c)
	v := manMeView{Errors: fe}
	if v.Errors == nil {
		v.Errors = manFieldErrors{}
	}
	if u, err := s.users.User(p.User); err == nil {
		v.User = u
	} else {
		v.User = access.User{Name: p.User, Role: p.Role}
	}
	for _, perm := range []access.Permission{access.PermView, access.PermBrowse, access.PermRestore, access.PermOperate, access.PermConfigure, access.PermAdmin} {
		if p.Role.Can(perm) {
			v.Permissions = append(v.Permissions, perm)
		}
	}
	return v
}

func (s *Server) manMe(c *gin.Context) {
	s.render(c, 0, "man-me", "My account", s.manMeView(c, nil))
}

func (s *Server) manMePassword(c *gin.Context) {
	p := principal(c)
	cur, pw, pw2 := c.PostForm("current"), c.PostForm("new"), c.PostForm("new2")
	c.Set(ctxTarget, p.User)
	fe := manFieldErrors{}
	switch {
	case p.Token != "":
		fe.add("", "an API token cannot change a password: log in")
	case pw == "":
		fe.add("new", "choose a new password")
	case pw != pw2:
		fe.add("new2", "the two new passwords differ")
	default:
		if err := s.users.Verify(c.ClientIP(), p.User, cur); err != nil {
			msg := "the current password is wrong"
			if errors.Is(err, access.ErrThrottled) || errors.Is(err, access.ErrAccountLock) {
				msg = err.Error()
			}
			fe.add("current", msg)
		} else if err := s.users.SetPassword(p.User, pw, c.GetString(ctxToken)); err != nil {
			fe.add("new", err.Error())
		}
	}
	if len(fe) > 0 {
		manBannerFromFields(c, fe)
		s.render(c, http.StatusUnprocessableEntity, "man-me", "My account", s.manMeView(c, fe))
		return
	}
	c.Set(ctxDetail, "password changed; other sessions ended")
	redirectOK(c, "/me", "Your password is changed. Your other sessions are logged out.")
}
