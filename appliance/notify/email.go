package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/smtp"
	"os"
	"slices"
	"strings"
	"time"
)

// emailChannel mails events through an SMTP relay.
type emailChannel struct {
	cfg      EmailConfig
	from     *mail.Address
	to       []*mail.Address
	tls      *tls.Config
	hostname string // shown in subjects and bodies
	helo     string // said in EHLO
	now      func() time.Time
}

// newEmailChannel prepares cfg, which must be valid, for sending.
func newEmailChannel(cfg EmailConfig, hostname string, now func() time.Time) (*emailChannel, error) {
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("sender address %q: %w", cfg.From, err)
	}
	c := &emailChannel{cfg: cfg, from: from, hostname: hostname, helo: heloName(hostname), now: now}
	for _, s := range cfg.To {
		a, err := mail.ParseAddress(s)
		if err != nil {
			return nil, fmt.Errorf("recipient address %q: %w", s, err)
		}
		c.to = append(c.to, a)
	}
	c.tls = &tls.Config{
		ServerName:         cfg.Host,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: cfg.InsecureSkipVerify,
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", cfg.CAFile)
		}
		c.tls.RootCAs = pool
	}
	return c, nil
}

func (c *emailChannel) name() string { return "email" }

func (c *emailChannel) accepts(k Kind) bool {
	switch k {
	case KindTest:
		return true
	case KindDailySummary:
		return c.cfg.DailySummary
	}
	return len(c.cfg.Kinds) == 0 || slices.Contains(c.cfg.Kinds, k)
}

func (c *emailChannel) send(ctx context.Context, e Event) error {
	if err := c.deliver(ctx, e); err != nil {
		return fmt.Errorf("send mail via %s: %w", c.cfg.addr(), err)
	}
	return nil
}

// deliver speaks SMTP with the relay. The connection's deadline follows
// ctx's, and cancelling ctx breaks off whatever is under way.
func (c *emailChannel) deliver(ctx context.Context, e Event) (err error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.cfg.addr())
	if err != nil {
		return err
	}
	defer conn.Close()
	dl, hasDeadline := ctx.Deadline()
	if hasDeadline {
		if err := conn.SetDeadline(dl); err != nil {
			return fmt.Errorf("set deadline: %w", err)
		}
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	defer func() {
		// The connection's deadline may pass a moment before ctx's.
		switch {
		case err == nil:
		case ctx.Err() != nil:
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		case hasDeadline && !time.Now().Before(dl):
			err = fmt.Errorf("%w (%w)", context.DeadlineExceeded, err)
		}
	}()

	security := c.cfg.security()
	if security == SecurityTLS {
		tc := tls.Client(conn, c.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS handshake: %w", err)
		}
		conn = tc
	}
	cl, err := smtp.NewClient(conn, c.cfg.Host)
	if err != nil {
		return fmt.Errorf("read greeting: %w", err)
	}
	defer cl.Close()
	if err := cl.Hello(c.helo); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if security == SecurityStartTLS {
		if ok, _ := cl.Extension("STARTTLS"); !ok {
			return errors.New(`the server does not offer STARTTLS, so nothing was sent (security "tls" may fit, or "none-insecure" in a lab)`)
		}
		if err := cl.StartTLS(c.tls); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	}
	if c.cfg.Username != "" {
		ok, mechs := cl.Extension("AUTH")
		if !ok {
			return errors.New("a username is set but the server does not offer AUTH")
		}
		if !slices.Contains(strings.Fields(strings.ToUpper(mechs)), "PLAIN") {
			return fmt.Errorf("the server does not offer AUTH PLAIN (only %s)", mechs)
		}
		auth := plainAuth{user: c.cfg.Username, pass: c.cfg.Password, clearOK: security == SecurityNoneInsecure}
		if err := cl.Auth(auth); err != nil {
			return fmt.Errorf("log in as %s: %w", c.cfg.Username, err)
		}
	}
	if err := cl.Mail(c.from.Address); err != nil {
		return fmt.Errorf("MAIL FROM:<%s>: %w", c.from.Address, err)
	}
	for _, a := range c.to {
		if err := cl.Rcpt(a.Address); err != nil {
			return fmt.Errorf("RCPT TO:<%s>: %w", a.Address, err)
		}
	}
	w, err := cl.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(mailMessage(e, c.now(), c.from, c.to, c.hostname)); err != nil {
		return fmt.Errorf("send message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("send message: %w", err)
	}
	// The relay has taken the message: a failing QUIT changes nothing.
	_ = cl.Quit()
	return nil
}

// plainAuth is SASL PLAIN (RFC 4616) that refuses to run in clear unless
// told that it may.
type plainAuth struct {
	user, pass string
	clearOK    bool
}

func (a plainAuth) Start(s *smtp.ServerInfo) (string, []byte, error) {
	if !s.TLS && !a.clearOK {
		return "", nil, errors.New("refusing to send the password over an unencrypted connection")
	}
	return "PLAIN", []byte("\x00" + a.user + "\x00" + a.pass), nil
}

func (a plainAuth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return nil, errors.New("unexpected challenge from the server during AUTH PLAIN")
	}
	return nil, nil
}

// heloName is the name said in EHLO: the hostname when it is a plausible
// domain name, otherwise "localhost".
func heloName(hostname string) string {
	if hostname == "" || len(hostname) > 253 {
		return "localhost"
	}
	for _, label := range strings.Split(hostname, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "localhost"
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return "localhost"
			}
		}
	}
	return hostname
}
