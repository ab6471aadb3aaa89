package notify

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/textproto"
	"net/url"
	"strings"
)

// Config is where notifications go. It is saved by the caller as JSON; it
// holds the SMTP password and the webhook secrets.
type Config struct {
	Email    *EmailConfig    `json:"email,omitempty"`
	Webhooks []WebhookConfig `json:"webhooks,omitempty"`
}

// Security is how an SMTP connection is protected.
type Security string

// The SMTP security modes.
const (
	// SecurityStartTLS connects in clear and insists on STARTTLS before
	// anything else (usually port 587). It is the default.
	SecurityStartTLS Security = "starttls"
	// SecurityTLS speaks TLS from the start (usually port 465).
	SecurityTLS Security = "tls"
	// SecurityNoneInsecure sends everything in clear, the password
	// included (usually port 25). For a lab only.
	SecurityNoneInsecure Security = "none-insecure"
)

// EmailConfig is the SMTP relay and the recipients.
type EmailConfig struct {
	Host     string   `json:"host"`
	Port     int      `json:"port,omitempty"`     // 0: 587, 465 with "tls", 25 with "none-insecure"
	Security Security `json:"security,omitempty"` // empty means starttls
	Username string   `json:"username,omitempty"` // empty: no AUTH
	Password string   `json:"password,omitempty"`
	From     string   `json:"from"` // "Coffer <coffer@example.com>" or a bare address
	To       []string `json:"to"`
	Kinds    []Kind   `json:"kinds,omitempty"` // empty means every kind
	// CAFile is a PEM file of the certificates that may sign the relay's
	// certificate, for a relay with its own CA. Empty: the system roots.
	CAFile string `json:"ca_file,omitempty"`
	// InsecureSkipVerify accepts any certificate: the connection is
	// encrypted but an attacker in the path can read it.
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`
	// DailySummary mails the daily summary.
	DailySummary bool `json:"daily_summary,omitempty"`
}

// WebhookConfig is one HTTP endpoint that gets events as JSON.
type WebhookConfig struct {
	Name   string `json:"name"` // shown in errors and logs; defaults to the URL's host
	URL    string `json:"url"`  // http or https
	Secret string `json:"secret,omitempty"`
	Kinds  []Kind `json:"kinds,omitempty"` // empty means every kind
	// Headers are added to each request, e.g. an Authorization header.
	Headers map[string]string `json:"headers,omitempty"`
}

// security is c.Security with the default applied.
func (c EmailConfig) security() Security {
	if c.Security == "" {
		return SecurityStartTLS
	}
	return c.Security
}

// port is c.Port with the default applied.
func (c EmailConfig) port() int {
	switch {
	case c.Port != 0:
		return c.Port
	case c.security() == SecurityTLS:
		return 465
	case c.security() == SecurityNoneInsecure:
		return 25
	}
	return 587
}

// addr is the relay's host:port.
func (c EmailConfig) addr() string { return net.JoinHostPort(c.Host, fmt.Sprint(c.port())) }

// label names the webhook in errors and logs.
func (w WebhookConfig) label() string {
	if w.Name != "" {
		return w.Name
	}
	if u, err := url.Parse(w.URL); err == nil && u.Host != "" {
		return u.Host
	}
	return "unnamed"
}

// Validate tells what is wrong with c, every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Email != nil {
		if err := c.Email.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("email: %w", err))
		}
	}
	for i, w := range c.Webhooks {
		if err := w.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("webhook %d (%s): %w", i+1, w.label(), err))
		}
	}
	return errors.Join(errs...)
}

// Validate tells what is wrong with c, every problem at once.
func (c EmailConfig) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	switch h := c.Host; {
	case h == "":
		bad("the SMTP host is missing")
	case strings.ContainsAny(h, " \t\r\n/@") || (strings.Contains(h, ":") && net.ParseIP(h) == nil):
		bad("SMTP host %q is not a host name or IP address (give the port separately)", h)
	}
	if c.Port < 0 || c.Port > 65535 {
		bad("SMTP port %d is out of range", c.Port)
	}
	switch c.security() {
	case SecurityStartTLS, SecurityTLS, SecurityNoneInsecure:
	default:
		bad("unknown security %q: use starttls, tls or none-insecure", c.Security)
	}
	if c.Username == "" && c.Password != "" {
		bad("a password is set without a username")
	}
	if c.Username != "" && c.Password == "" {
		bad("username %q has no password", c.Username)
	}
	if strings.ContainsAny(c.Username, "\x00\r\n") {
		bad("the username contains control characters")
	}
	if strings.ContainsAny(c.Password, "\x00\r\n") {
		bad("the password contains control characters")
	}
	if c.From == "" {
		bad("the sender (from) address is missing")
	} else if _, err := mail.ParseAddress(c.From); err != nil {
		bad("sender address %q: %w", c.From, err)
	}
	if len(c.To) == 0 {
		bad("no recipient (to) address")
	}
	for _, to := range c.To {
		if _, err := mail.ParseAddress(to); err != nil {
			bad("recipient address %q: %w", to, err)
		}
	}
	for _, k := range c.Kinds {
		switch {
		case k == KindDailySummary:
			bad("daily_summary is not a kind for email: set daily_summary instead")
		case !k.Valid():
			bad("unknown kind %q", k)
		}
	}
	if c.CAFile != "" && c.InsecureSkipVerify {
		bad("set either a CA file or insecure_skip_verify, not both")
	}
	return errors.Join(errs...)
}

// reservedHeader tells whether the webhook sender sets the header name
// itself, so that it cannot be configured.
func reservedHeader(name string) bool {
	switch textproto.CanonicalMIMEHeaderKey(name) {
	case "Host", "Content-Type", "Content-Length", "Transfer-Encoding", "Connection",
		"User-Agent", headerEvent, headerDelivery, headerTimestamp, headerSignature:
		return true
	}
	return false
}

// Validate tells what is wrong with w, every problem at once.
func (w WebhookConfig) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if w.URL == "" {
		bad("the URL is missing")
	} else if u, err := url.Parse(w.URL); err != nil {
		bad("URL %q does not parse", redactURL(w.URL))
	} else {
		if u.Scheme != "http" && u.Scheme != "https" {
			bad("URL %s: the scheme must be http or https, not %q", redactURL(w.URL), u.Scheme)
		}
		if u.Hostname() == "" {
			bad("URL %s has no host", redactURL(w.URL))
		}
	}
	for _, k := range w.Kinds {
		if !k.Valid() {
			bad("unknown kind %q", k)
		}
	}
	for name, value := range w.Headers {
		if !validHeaderName(name) {
			bad("header name %q is not valid", name)
			continue
		}
		if reservedHeader(name) {
			bad("header %s is set by Coffer and cannot be configured", name)
		}
		if strings.ContainsAny(value, "\x00\r\n") {
			bad("the value of header %s contains a line break", name)
		}
	}
	return errors.Join(errs...)
}

// validHeaderName tells whether s is an HTTP token (RFC 9110 section 5.6.2).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!#$%&'*+-.^_`|~", r):
		default:
			return false
		}
	}
	return true
}

// redacted stands where a secret would be.
const redacted = "<redacted>"

// redactURL keeps a URL's scheme and host: the user, path and query may
// hold a token.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return redacted
	}
	s := u.Scheme + "://" + u.Host
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		s += "/" + redacted
	}
	return s
}

// String describes c without its secrets.
func (c Config) String() string {
	parts := []string{}
	if c.Email != nil {
		parts = append(parts, c.Email.String())
	}
	for _, w := range c.Webhooks {
		parts = append(parts, w.String())
	}
	return "notify.Config{" + strings.Join(parts, ", ") + "}"
}

// GoString is String, so that %#v does not show the secrets either.
func (c Config) GoString() string { return c.String() }

// LogValue describes c without its secrets.
func (c Config) LogValue() slog.Value {
	var attrs []slog.Attr
	if c.Email != nil {
		attrs = append(attrs, slog.Any("email", *c.Email))
	}
	for i, w := range c.Webhooks {
		attrs = append(attrs, slog.Any(fmt.Sprintf("webhook%d", i+1), w))
	}
	return slog.GroupValue(attrs...)
}

// String describes c without its password.
func (c EmailConfig) String() string {
	s := fmt.Sprintf("email{%s %s from %s to %s", c.addr(), c.security(), c.From, strings.Join(c.To, ", "))
	if c.Username != "" {
		s += " user " + c.Username + " password " + redacted
	}
	return s + "}"
}

// GoString is String, so that %#v does not show the password either.
func (c EmailConfig) GoString() string { return c.String() }

// LogValue describes c without its password.
func (c EmailConfig) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("relay", c.addr()),
		slog.String("security", string(c.security())),
		slog.String("from", c.From),
		slog.Any("to", c.To),
	}
	if c.Username != "" {
		attrs = append(attrs, slog.String("user", c.Username), slog.String("password", redacted))
	}
	if len(c.Kinds) > 0 {
		attrs = append(attrs, slog.Any("kinds", c.Kinds))
	}
	return slog.GroupValue(attrs...)
}

// String describes w without its secret, its header values or the path
// and query of its URL.
func (w WebhookConfig) String() string {
	s := fmt.Sprintf("webhook{%s %s", w.label(), redactURL(w.URL))
	if w.Secret != "" {
		s += " secret " + redacted
	}
	for _, name := range sortedKeys(w.Headers) {
		s += " " + name + ": " + redacted
	}
	return s + "}"
}

// GoString is String, so that %#v does not show the secrets either.
func (w WebhookConfig) GoString() string { return w.String() }

// LogValue describes w without its secret, its header values or the path
// and query of its URL.
func (w WebhookConfig) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("name", w.label()), slog.String("url", redactURL(w.URL))}
	if w.Secret != "" {
		attrs = append(attrs, slog.String("secret", redacted))
	}
	if len(w.Headers) > 0 {
		attrs = append(attrs, slog.Any("headers", sortedKeys(w.Headers)))
	}
	if len(w.Kinds) > 0 {
		attrs = append(attrs, slog.Any("kinds", w.Kinds))
	}
	return slog.GroupValue(attrs...)
}
