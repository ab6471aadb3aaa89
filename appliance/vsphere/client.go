package vsphere

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"reflect"
	"sync"
	"time"

	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/task"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// Endpoint is how the appliance reaches one vCenter or standalone ESXi.
type Endpoint struct {
	URL      string `json:"url"`
	Username string `json:"username"`
	// Password is kept only in memory and in the encrypted secrets file;
	// Endpoint's String and LogValue never show it.
	Password string `json:"-"`
	Trust    Trust  `json:"trust"`
}

// String names the endpoint without its password.
func (e Endpoint) String() string { return e.Username + "@" + e.URL }

// LogValue keeps the password out of structured logs.
func (e Endpoint) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", e.URL), slog.String("user", e.Username))
}

// Client is a logged-in session with a vCenter or ESXi. It logs in again
// by itself when the server expires the session. Safe for concurrent use.
type Client struct {
	ep     Endpoint
	u      *url.URL
	v      *verifier
	soap   *soap.Client
	vim    *vim25.Client
	raw    *vim25.Client // without the re-login wrapper: for logging in
	log    *slog.Logger
	mu     sync.Mutex // serialises logins
	logins int
}

// Connect logs in to ep. A server whose certificate ep.Trust does not
// accept is refused with an *UntrustedError that carries the thumbprint.
func Connect(ctx context.Context, ep Endpoint, log *slog.Logger) (*Client, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u, err := ParseURL(ep.URL)
	if err != nil {
		return nil, err
	}
	if ep.Username == "" {
		return nil, fmt.Errorf("connect to %s: no user name given", u.Host)
	}
	v, err := newVerifier(ep.Trust)
	if err != nil {
		return nil, err
	}
	sc := soap.NewClient(u, true)
	tr := sc.DefaultTransport()
	tr.TLSClientConfig = v.tlsConfig(u.Hostname())
	tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}, Config: v.tlsConfig(host)}
		return d.DialContext(ctx, network, addr)
	}
	tr.MaxIdleConnsPerHost = 16
	tr.ResponseHeaderTimeout = 5 * time.Minute
	c := &Client{ep: ep, u: u, v: v, soap: sc, log: log.With("vcenter", u.Hostname())}
	c.raw, err = vim25.NewClient(ctx, sc)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", u.Host, unwrapTLS(err))
	}
	c.vim = &vim25.Client{
		Client:         sc,
		ServiceContent: c.raw.ServiceContent,
		RoundTripper:   &reloginRoundTripper{c: c, rt: sc},
	}
	if err := c.login(ctx, 0); err != nil {
		return nil, err
	}
	about := c.raw.ServiceContent.About
	c.log.Info("connected to vSphere", "product", about.FullName, "api", about.ApiVersion, "user", ep.Username)
	return c, nil
}

// unwrapTLS surfaces an *UntrustedError from the HTTP client's wrapping.
func unwrapTLS(err error) error {
	var ue *UntrustedError
	if errors.As(err, &ue) {
		return ue
	}
	return err
}

// login logs in again unless someone already did after generation gen.
func (c *Client) login(ctx context.Context, gen int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.logins != gen {
		return nil
	}
	sm := session.NewManager(c.raw)
	if err := sm.Login(ctx, url.UserPassword(c.ep.Username, c.ep.Password)); err != nil {
		if isFault(err, "InvalidLogin") {
			return fmt.Errorf("log in to %s as %s: user name or password is wrong", c.u.Hostname(), c.ep.Username)
		}
		return fmt.Errorf("log in to %s as %s: %w", c.u.Hostname(), c.ep.Username, unwrapTLS(err))
	}
	c.logins++
	if gen > 0 {
		c.log.Info("logged in again after the session expired")
	}
	return nil
}

func (c *Client) generation() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logins
}

// Logout ends the session.
func (c *Client) Logout(ctx context.Context) error {
	err := session.NewManager(c.raw).Logout(ctx)
	c.soap.CloseIdleConnections()
	return err
}

// Vim returns the underlying vSphere API client (with automatic re-login).
func (c *Client) Vim() *vim25.Client { return c.vim }

// IsVC reports whether the server is a vCenter (not a standalone ESXi).
func (c *Client) IsVC() bool { return c.raw.IsVC() }

// About returns the server's product description.
func (c *Client) About() types.AboutInfo { return c.raw.ServiceContent.About }

// InstanceUUID identifies the vCenter or ESXi across address changes.
func (c *Client) InstanceUUID() string { return c.raw.ServiceContent.About.InstanceUuid }

// Now returns the server's clock.
func (c *Client) Now(ctx context.Context) (time.Time, error) {
	res, err := methods.GetCurrentTime(ctx, c.vim)
	if err != nil {
		return time.Time{}, fmt.Errorf("read the clock of %s: %w", c.u.Hostname(), err)
	}
	return *res, nil
}

// reloginRoundTripper logs in again once when a call fails because the
// server no longer knows the session, then repeats the call.
type reloginRoundTripper struct {
	c  *Client
	rt soap.RoundTripper
}

func (r *reloginRoundTripper) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	gen := r.c.generation()
	err := r.rt.RoundTrip(ctx, req, res)
	if err == nil || !isFault(err, "NotAuthenticated") {
		return err
	}
	if lerr := r.c.login(ctx, gen); lerr != nil {
		return fmt.Errorf("%w (and logging in again failed: %v)", err, lerr)
	}
	return r.rt.RoundTrip(ctx, req, res)
}

// isFault reports whether err is a vSphere fault (SOAP or task fault)
// of the given type name ("InvalidLogin", "NotAuthenticated"). Faults
// decode as values or pointers depending on the path; the name covers
// both.
func isFault(err error, name string) bool {
	f := faultOf(err)
	if f == nil {
		return false
	}
	t := reflect.TypeOf(f)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name() == name
}

// faultOf returns the vSphere fault inside err, or nil.
func faultOf(err error) any {
	if err == nil {
		return nil
	}
	switch {
	case soap.IsSoapFault(err):
		return soap.ToSoapFault(err).VimFault()
	case soap.IsVimFault(err):
		return soap.ToVimFault(err)
	}
	var te task.Error
	if errors.As(err, &te) && te.LocalizedMethodFault != nil {
		return te.Fault()
	}
	var tp *task.Error
	if errors.As(err, &tp) && tp.LocalizedMethodFault != nil {
		return tp.Fault()
	}
	return nil
}
