package ui

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"coffer.dev/coffer/appliance/notify"
	"coffer.dev/coffer/appliance/setup"
	"coffer.dev/coffer/ui/access"
)

// notificationsPages registers the notification settings page.
func (s *Server) notificationsPages(g *gin.RouterGroup) {
	s.page(g, "GET", "/settings/notifications", access.PermAdmin, "/settings", s.notificationsForm)
	s.page(g, "POST", "/settings/notifications", access.PermAdmin, "/settings", s.notificationsSubmit)
	s.page(g, "POST", "/settings/notifications/test", access.PermAdmin, "/settings", s.notificationsTest)
}

// notificationsView is the page's data.
type notificationsView struct {
	Form   map[string]string
	Kinds  []notify.Kind
	Errors setup.FieldErrors
}

func notificationsForm(cfg notify.Config) map[string]string {
	f := map[string]string{"email_security": "starttls"}
	if e := cfg.Email; e != nil {
		f["email_enabled"] = "yes"
		f["email_host"], f["email_username"], f["email_from"] = e.Host, e.Username, e.From
		if e.Port != 0 {
			f["email_port"] = strconv.Itoa(e.Port)
		}
		if e.Security != "" {
			f["email_security"] = string(e.Security)
		}
		f["email_to"] = strings.Join(e.To, ", ")
		if e.Password != "" {
			f["email_password_set"] = "yes"
		}
		if e.DailySummary {
			f["email_daily"] = "yes"
		}
		for _, k := range e.Kinds {
			f["email_kind_"+string(k)] = "yes"
		}
	}
	if len(cfg.Webhooks) > 0 {
		w := cfg.Webhooks[0]
		f["hook_enabled"], f["hook_name"], f["hook_url"] = "yes", w.Name, w.URL
		if w.Secret != "" {
			f["hook_secret_set"] = "yes"
		}
	}
	return f
}

func (s *Server) notificationsForm(c *gin.Context) {
	cfg, err := s.be().Notifications()
	if err != nil {
		pageError(c, "%v", err)
	}
	s.render(c, 0, "set-notifications", "Notifications", notificationsView{Form: notificationsForm(cfg), Kinds: notify.Kinds()})
}

func (s *Server) notificationsSubmit(c *gin.Context) {
	var cfg notify.Config
	fe := setup.FieldErrors{}
	if c.PostForm("email_enabled") == "yes" {
		e := &notify.EmailConfig{Host: strings.TrimSpace(c.PostForm("email_host")), Security: notify.Security(c.PostForm("email_security")),
			Username: strings.TrimSpace(c.PostForm("email_username")), Password: c.PostForm("email_password"),
			From: strings.TrimSpace(c.PostForm("email_from")), To: setup.SplitList(c.PostForm("email_to")), DailySummary: c.PostForm("email_daily") == "yes"}
		if p := strings.TrimSpace(c.PostForm("email_port")); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 || n > 65535 {
				fe["email_port"] = "a port number from 1 to 65535"
			}
			e.Port = n
		}
		for _, k := range notify.Kinds() {
			if c.PostForm("email_kind_"+string(k)) == "yes" {
				e.Kinds = append(e.Kinds, k)
			}
		}
		cfg.Email = e
	}
	if c.PostForm("hook_enabled") == "yes" {
		cfg.Webhooks = []notify.WebhookConfig{{Name: strings.TrimSpace(c.PostForm("hook_name")), URL: strings.TrimSpace(c.PostForm("hook_url")), Secret: c.PostForm("hook_secret")}}
	}
	if len(fe) == 0 {
		if err := s.be().SetNotifications(cfg); err != nil {
			pageError(c, "%v", err)
		} else {
			c.Set(ctxDetail, "notification settings changed")
			redirectOK(c, "/settings/notifications", "Notification settings saved.")
			return
		}
	} else {
		pageError(c, "Please correct the marked fields.")
	}
	form := notificationsForm(cfg)
	for k, v := range c.Request.PostForm {
		if !strings.Contains(k, "password") && !strings.Contains(k, "secret") && k != "csrf_token" && len(v) > 0 {
			form[k] = v[0]
		}
	}
	s.render(c, http.StatusUnprocessableEntity, "set-notifications", "Notifications", notificationsView{Form: form, Kinds: notify.Kinds(), Errors: fe})
}

func (s *Server) notificationsTest(c *gin.Context) {
	if err := s.be().TestNotifications(c.Request.Context()); err != nil {
		pageError(c, "The test notification failed: %v", err)
		cfg, _ := s.be().Notifications()
		s.render(c, http.StatusBadGateway, "set-notifications", "Notifications", notificationsView{Form: notificationsForm(cfg), Kinds: notify.Kinds()})
		return
	}
	redirectOK(c, "/settings/notifications", "A test notification was sent to every channel.")
}
