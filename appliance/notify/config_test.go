package notify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
)

func validEmail() *EmailConfig {
	return &EmailConfig{Host: "smtp.example.com", From: "Coffer <coffer@example.com>", To: []string{"ops@example.com"}}
}

func TestValidate(t *testing.T) {
	email := func(f func(*EmailConfig)) Config {
		c := validEmail()
		f(c)
		return Config{Email: c}
	}
	hook := func(f func(*WebhookConfig)) Config {
		w := WebhookConfig{Name: "ops", URL: "https://hooks.example.com/coffer"}
		f(&w)
		return Config{Webhooks: []WebhookConfig{w}}
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none means valid
	}{
		{"empty", Config{}, nil},
		{"minimal email", email(func(*EmailConfig) {}), nil},
		{"email with everything", email(func(c *EmailConfig) {
			c.Port, c.Security, c.Username, c.Password = 465, SecurityTLS, "u", "p"
			c.Kinds, c.DailySummary, c.CAFile = []Kind{KindJobFailed, KindTest}, true, "/etc/ca.pem"
		}), nil},
		{"IPv6 relay", email(func(c *EmailConfig) { c.Host = "2001:db8::1" }), nil},
		{"none-insecure", email(func(c *EmailConfig) { c.Security = SecurityNoneInsecure }), nil},
		{"missing host", email(func(c *EmailConfig) { c.Host = "" }), []string{"email: the SMTP host is missing"}},
		{"host with port", email(func(c *EmailConfig) { c.Host = "smtp.example.com:587" }), []string{"give the port separately"}},
		{"bad port", email(func(c *EmailConfig) { c.Port = 70000 }), []string{"port 70000 is out of range"}},
		{"bad security", email(func(c *EmailConfig) { c.Security = "ssl" }), []string{`unknown security "ssl"`}},
		{"password without user", email(func(c *EmailConfig) { c.Password = "p" }), []string{"password is set without a username"}},
		{"user without password", email(func(c *EmailConfig) { c.Username = "u" }), []string{`username "u" has no password`}},
		{"bad from", email(func(c *EmailConfig) { c.From = "coffer@" }), []string{`sender address "coffer@"`}},
		{"missing from", email(func(c *EmailConfig) { c.From = "" }), []string{"sender (from) address is missing"}},
		{"no recipients", email(func(c *EmailConfig) { c.To = nil }), []string{"no recipient"}},
		{"bad recipient", email(func(c *EmailConfig) { c.To = []string{"ops@example.com", "not an address"} }),
			[]string{`recipient address "not an address"`}},
		{"unknown kind", email(func(c *EmailConfig) { c.Kinds = []Kind{"disk_full"} }), []string{`unknown kind "disk_full"`}},
		{"summary as kind", email(func(c *EmailConfig) { c.Kinds = []Kind{KindDailySummary} }), []string{"set daily_summary instead"}},
		{"CA and skip", email(func(c *EmailConfig) { c.CAFile, c.InsecureSkipVerify = "/ca.pem", true }), []string{"not both"}},
		{"several email problems", email(func(c *EmailConfig) { c.Host, c.To = "", nil }), []string{"host is missing", "no recipient"}},

		{"http webhook", hook(func(w *WebhookConfig) { w.URL = "http://10.0.0.5:8080/hook" }), nil},
		{"webhook with headers", hook(func(w *WebhookConfig) {
			w.Headers, w.Kinds, w.Secret = map[string]string{"Authorization": "Bearer x"}, []Kind{KindDailySummary}, "s"
		}), nil},
		{"missing URL", hook(func(w *WebhookConfig) { w.URL = "" }), []string{"webhook 1 (ops): the URL is missing"}},
		{"ftp URL", hook(func(w *WebhookConfig) { w.URL = "ftp://example.com/x" }), []string{`scheme must be http or https, not "ftp"`}},
		{"no scheme", hook(func(w *WebhookConfig) { w.URL = "hooks.example.com/x" }), []string{"scheme must be http or https"}},
		{"no host", hook(func(w *WebhookConfig) { w.URL = "https:///path" }), []string{"has no host"}},
		{"unparsable URL", hook(func(w *WebhookConfig) { w.URL = "https://exa mple.com/%zz" }), []string{"does not parse"}},
		{"bad webhook kind", hook(func(w *WebhookConfig) { w.Kinds = []Kind{"jobfailed"} }), []string{`unknown kind "jobfailed"`}},
		{"bad header name", hook(func(w *WebhookConfig) { w.Headers = map[string]string{"X Bad": "v"} }), []string{`header name "X Bad"`}},
		{"reserved header", hook(func(w *WebhookConfig) { w.Headers = map[string]string{"x-coffer-signature": "v"} }),
			[]string{"x-coffer-signature is set by Coffer"}},
		{"header injection", hook(func(w *WebhookConfig) { w.Headers = map[string]string{"X-A": "v\r\nX-B: w"} }),
			[]string{"X-A contains a line break"}},
		{"second webhook named by host", Config{Webhooks: []WebhookConfig{
			{URL: "https://a.example.com"}, {URL: "gopher://b.example.com/x"},
		}}, []string{"webhook 2 (b.example.com)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted %v", tc.cfg)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestDefaultPorts(t *testing.T) {
	for sec, want := range map[Security]int{"": 587, SecurityStartTLS: 587, SecurityTLS: 465, SecurityNoneInsecure: 25} {
		if got := (EmailConfig{Security: sec}).port(); got != want {
			t.Errorf("security %q: port %d, want %d", sec, got, want)
		}
	}
	if got := (EmailConfig{Security: SecurityTLS, Port: 2465}).port(); got != 2465 {
		t.Errorf("explicit port became %d", got)
	}
}

// secretConfig is a config full of things that must never be shown.
func secretConfig() Config {
	email := validEmail()
	email.Username, email.Password = "mailer", "hunter2-smtp-pass"
	return Config{Email: email, Webhooks: []WebhookConfig{{
		Name:    "chat",
		URL:     "https://user:url-pass@hooks.example.com/services/T0/B0/path-token?sig=query-token",
		Secret:  "whsec-hmac-key",
		Headers: map[string]string{"Authorization": "Bearer header-token"},
	}}}
}

var secrets = []string{"hunter2-smtp-pass", "url-pass", "path-token", "query-token", "whsec-hmac-key", "header-token"}

func TestSecretsAreRedacted(t *testing.T) {
	cfg := secretConfig()
	var jsonLog, textLog bytes.Buffer
	slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("settings", "cfg", cfg, "email", cfg.Email, "hook", cfg.Webhooks[0])
	slog.New(slog.NewTextHandler(&textLog, nil)).Info("settings", "cfg", cfg, "email", *cfg.Email, "hooks", cfg.Webhooks)
	shown := map[string]string{
		"Sprint":       fmt.Sprint(cfg),
		"%v":           fmt.Sprintf("%v", cfg),
		"%+v":          fmt.Sprintf("%+v", cfg),
		"%#v":          fmt.Sprintf("%#v", cfg),
		"%+v pointer":  fmt.Sprintf("%+v", &cfg),
		"email":        fmt.Sprint(cfg.Email),
		"email %#v":    fmt.Sprintf("%#v", *cfg.Email),
		"webhooks":     fmt.Sprint(cfg.Webhooks),
		"webhooks %#v": fmt.Sprintf("%#v", cfg.Webhooks),
		"json log":     jsonLog.String(),
		"text log":     textLog.String(),
	}
	for how, s := range shown {
		for _, secret := range secrets {
			if strings.Contains(s, secret) {
				t.Errorf("%s shows %q: %s", how, secret, s)
			}
		}
		// Redaction must not hide everything.
		for _, want := range []string{"smtp.example.com", "mailer", "hooks.example.com", "chat"} {
			if !strings.Contains(s, want) && !strings.HasPrefix(how, "email") && !strings.HasPrefix(how, "webhooks") {
				t.Errorf("%s lacks %q: %s", how, want, s)
			}
		}
	}
	if !strings.Contains(shown["email"], "mailer") || !strings.Contains(shown["webhooks"], "Authorization") {
		t.Errorf("redacted forms lost the user or header name: %s / %s", shown["email"], shown["webhooks"])
	}
}

func TestNotifierLogsNoSecrets(t *testing.T) {
	srv := startHookServer(t, false, func(string, int) int { return 500 })
	cfg := Config{Webhooks: []WebhookConfig{{
		Name: "chat", URL: srv.URL + "/services/path-token?sig=query-token",
		Secret: "whsec-hmac-key", Headers: map[string]string{"Authorization": "Bearer header-token"},
	}}}
	sink := startSMTPSink(t, sinkSTARTTLS)
	cfg.Email = sink.emailConfig(SecurityStartTLS)
	cfg.Email.Password = "hunter2-smtp-pass" // wrong: the mail fails too
	log, logs := testLogger()
	n := mustNew(t, cfg, Options{Log: log, RetryWait: 1})
	err := n.Notify(testContext(t), Event{Kind: KindJobFailed, Subject: "x"})
	if err == nil {
		t.Fatal("Notify succeeded")
	}
	out := logs.String() + err.Error()
	if !strings.Contains(out, "notification failed") {
		t.Errorf("failures were not logged: %s", out)
	}
	for _, secret := range secrets {
		if strings.Contains(out, secret) {
			t.Errorf("logs or error show %q: %s", secret, out)
		}
	}
}

func TestConfigJSON(t *testing.T) {
	cfg := secretConfig()
	cfg.Email.Kinds, cfg.Email.DailySummary, cfg.Email.Security = []Kind{KindJobFailed}, true, SecurityTLS
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var back Config
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, cfg) {
		t.Errorf("JSON round trip changed the config:\n%s", raw)
	}
	for _, key := range []string{`"host"`, `"password"`, `"daily_summary":true`, `"webhooks"`, `"secret"`, `"security":"tls"`} {
		if !bytes.Contains(raw, []byte(key)) {
			t.Errorf("JSON lacks %s: %s", key, raw)
		}
	}
}
