package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client is a connection to one appliance.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// Options configure a Client.
type Options struct {
	// Fingerprint pins the appliance's certificate (SHA-256, hex with or
	// without colons); empty verifies against the system's CAs.
	Fingerprint string
	Token       string
	Timeout     time.Duration // per request without a body stream; 0 means 2 min
}

// ErrUntrusted means the certificate could not be verified; the error
// text carries the fingerprint seen, to compare and pin.
var ErrUntrusted = errors.New("the appliance's certificate is not trusted")

// New makes a client for the appliance at rawURL (https://host[:port]).
func New(rawURL string, o Options) (*Client, error) {
	if !strings.Contains(rawURL, "://") {
		rawURL = "https://" + rawURL
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("appliance address %q: use https://host[:port]", rawURL)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("appliance address %q: only https is served", rawURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if fp := normalise(o.Fingerprint); fp != "" {
		if len(fp) != 64 {
			return nil, fmt.Errorf("fingerprint %q: give the 64 hex digits of the SHA-256 fingerprint", o.Fingerprint)
		}
		// The pin replaces the CA check: only this certificate is accepted.
		tc.InsecureSkipVerify = true //nolint:gosec // verified by VerifyPeerCertificate against the pin
		tc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return ErrUntrusted
			}
			sum := sha256.Sum256(raw[0])
			if hex.EncodeToString(sum[:]) != fp {
				return fmt.Errorf("%w: it has the fingerprint %s, not the pinned one", ErrUntrusted, Colons(sum[:]))
			}
			return nil
		}
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Minute
	}
	return &Client{base: u, token: o.Token, http: &http.Client{Timeout: o.Timeout, Transport: &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment}}}, nil
}

// Colons renders a digest as colon-separated upper-case hex.
func Colons(sum []byte) string {
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

func normalise(fp string) string {
	return strings.ToLower(strings.NewReplacer(":", "", " ", "", "-", "").Replace(strings.TrimSpace(fp)))
}

// Fingerprint connects and returns the certificate fingerprint the
// appliance presents (to show a user who has not pinned it yet).
func Fingerprint(ctx context.Context, rawURL string) (string, error) {
	if !strings.Contains(rawURL, "://") {
		rawURL = "https://" + rawURL
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	host := u.Host
	if u.Port() == "" {
		host += ":443"
	}
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // inspection only
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", host, err)
	}
	defer conn.Close()
	cs := conn.(*tls.Conn).ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		return "", errors.New("no certificate")
	}
	sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
	return Colons(sum[:]), nil
}

// SetToken sets the token sent with every request.
func (c *Client) SetToken(t string) { c.token = t }

// Error is an error answer of the API.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("appliance answered %d: %s", e.Status, e.Message) }

// Do sends a request; body is JSON-encoded unless nil, and the answer is
// decoded into out unless out is nil.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	res, err := c.send(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, res.Body)
		return nil
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	return nil
}

// Stream sends a GET and returns the open body of a successful answer
// (downloads, exports) with its headers.
func (c *Client) Stream(ctx context.Context, path string, query url.Values, header http.Header) (*http.Response, error) {
	req, err := c.request(ctx, http.MethodGet, path, query, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	hc := *c.http
	hc.Timeout = 0 // streams take as long as they take; ctx bounds them
	res, err := hc.Do(req)
	if err != nil {
		return nil, c.wrap(path, err)
	}
	if res.StatusCode >= 300 {
		defer res.Body.Close()
		return nil, decodeError(res)
	}
	return res, nil
}

func (c *Client) request(ctx context.Context, method, path string, query url.Values, body any) (*http.Request, error) {
	u := *c.base
	u.Path += "/api/v1" + path
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "coffer-cli")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

func (c *Client) send(ctx context.Context, method, path string, query url.Values, body any) (*http.Response, error) {
	req, err := c.request(ctx, method, path, query, body)
	if err != nil {
		return nil, err
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, c.wrap(path, err)
	}
	if res.StatusCode >= 300 {
		defer res.Body.Close()
		return nil, decodeError(res)
	}
	return res, nil
}

func (c *Client) wrap(path string, err error) error {
	var uerr x509.UnknownAuthorityError
	if errors.As(err, &uerr) || strings.Contains(err.Error(), "certificate") {
		if fp, ferr := Fingerprint(context.Background(), c.base.String()); ferr == nil {
			return fmt.Errorf("%w (%v): the appliance presents SHA-256 %s; compare it with the appliance console and pass it with --fingerprint", ErrUntrusted, err, fp)
		}
	}
	return fmt.Errorf("%s: %w", path, err)
}

func decodeError(res *http.Response) error {
	var e struct {
		Error string `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(b))
	}
	return &Error{Status: res.StatusCode, Message: e.Error}
}

// Login opens a session with a user's password; the client then uses
// its token.
func (c *Client) Login(ctx context.Context, user, password string) (string, error) {
	var a struct {
		Token string `json:"token"`
	}
	if err := c.Do(ctx, http.MethodPost, "/login", nil, map[string]string{"username": user, "password": password}, &a); err != nil {
		return "", err
	}
	c.token = a.Token
	return a.Token, nil
}
