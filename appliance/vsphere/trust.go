package vsphere

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Certificate describes the certificate a server presented, so that an
// administrator can decide whether to trust it.
type Certificate struct {
	Host     string    `json:"host"`
	SHA256   string    `json:"sha256"`
	SHA1     string    `json:"sha1"`
	Subject  string    `json:"subject"`
	Issuer   string    `json:"issuer"`
	NotAfter time.Time `json:"not_after"`
	// CAValid reports whether the chain verifies against the trusted CAs
	// of the Trust it was checked with (the system's, or the given PEM).
	CAValid bool `json:"ca_valid"`
}

func describe(host string, chain []*x509.Certificate) *Certificate {
	leaf := chain[0]
	s256 := sha256.Sum256(leaf.Raw)
	return &Certificate{
		Host:     host,
		SHA256:   Thumbprint(s256[:]),
		SHA1:     thumbprintSHA1(leaf.Raw),
		Subject:  leaf.Subject.String(),
		Issuer:   leaf.Issuer.String(),
		NotAfter: leaf.NotAfter,
	}
}

func thumbprintSHA1(der []byte) string {
	s := sha1.Sum(der)
	return Thumbprint(s[:])
}

// Thumbprint formats a digest the way vSphere shows thumbprints:
// upper-case hex pairs joined by colons.
func Thumbprint(sum []byte) string {
	var sb strings.Builder
	for i, c := range sum {
		if i > 0 {
			sb.WriteByte(':')
		}
		fmt.Fprintf(&sb, "%02X", c)
	}
	return sb.String()
}

// normalizeThumbprint accepts thumbprints with or without colons, in any
// case.
func normalizeThumbprint(s string) string {
	s = strings.ToUpper(strings.NewReplacer(":", "", " ", "", "-", "").Replace(strings.TrimSpace(s)))
	var sb strings.Builder
	for i := 0; i+1 < len(s); i += 2 {
		if i > 0 {
			sb.WriteByte(':')
		}
		sb.WriteString(s[i : i+2])
	}
	return sb.String()
}

// Trust says which server certificates the appliance accepts. A
// certificate is accepted when its SHA-256 (or SHA-1) thumbprint is
// pinned for the host, or — only when CA trust is chosen — when it
// verifies against the CAs for the host's name. Nothing is accepted by
// default.
type Trust struct {
	// Thumbprints pins certificates: host (without port) → thumbprint.
	Thumbprints map[string]string `json:"thumbprints,omitempty"`
	// UseCA accepts certificates that verify against CAPEM, or against
	// the system's roots when CAPEM is empty.
	UseCA bool   `json:"use_ca,omitempty"`
	CAPEM string `json:"ca_pem,omitempty"`
}

// UntrustedError is returned when a server presents a certificate the
// Trust does not accept. It carries the certificate for the
// administrator to inspect and pin.
type UntrustedError struct {
	Cert *Certificate
	// Pinned is the thumbprint that was expected, if any.
	Pinned string
}

func (e *UntrustedError) Error() string {
	if e.Pinned != "" {
		return fmt.Sprintf("certificate of %s changed: thumbprint %s, pinned %s (trust the new certificate explicitly if this is expected)",
			e.Cert.Host, e.Cert.SHA256, e.Pinned)
	}
	return fmt.Sprintf("certificate of %s is not trusted: SHA-256 thumbprint %s (subject %q, issuer %q); trust it explicitly",
		e.Cert.Host, e.Cert.SHA256, e.Cert.Subject, e.Cert.Issuer)
}

// ErrUntrusted matches every *UntrustedError with errors.Is.
var ErrUntrusted = errors.New("untrusted server certificate")

// Is makes errors.Is(err, ErrUntrusted) true.
func (e *UntrustedError) Is(target error) bool { return target == ErrUntrusted }

// verifier checks peer certificates against a Trust. Thumbprints of ESXi
// hosts learnt from vCenter (service tickets) are added at run time.
type verifier struct {
	mu    sync.Mutex
	trust Trust
	roots *x509.CertPool
}

func newVerifier(t Trust) (*verifier, error) {
	v := &verifier{trust: Trust{Thumbprints: map[string]string{}, UseCA: t.UseCA, CAPEM: t.CAPEM}}
	for h, tp := range t.Thumbprints {
		v.trust.Thumbprints[strings.ToLower(h)] = normalizeThumbprint(tp)
	}
	if t.UseCA && t.CAPEM != "" {
		v.roots = x509.NewCertPool()
		if !v.roots.AppendCertsFromPEM([]byte(t.CAPEM)) {
			return nil, errors.New("trust: the CA bundle holds no PEM certificate")
		}
	}
	return v, nil
}

// pin trusts thumbprint for host from now on (a host thumbprint that an
// already trusted vCenter handed out).
func (v *verifier) pin(host, thumbprint string) {
	v.mu.Lock()
	v.trust.Thumbprints[strings.ToLower(host)] = normalizeThumbprint(thumbprint)
	v.mu.Unlock()
}

// check accepts or rejects the chain a host presented.
func (v *verifier) check(host string, chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return fmt.Errorf("%s presented no certificate", host)
	}
	c := describe(host, chain)
	v.mu.Lock()
	pinned := v.trust.Thumbprints[strings.ToLower(host)]
	useCA := v.trust.UseCA
	v.mu.Unlock()
	if pinned != "" && (pinned == c.SHA256 || pinned == c.SHA1) {
		return nil
	}
	if useCA {
		inter := x509.NewCertPool()
		for _, ic := range chain[1:] {
			inter.AddCert(ic)
		}
		if _, err := chain[0].Verify(x509.VerifyOptions{DNSName: host, Roots: v.roots, Intermediates: inter}); err == nil {
			return nil
		}
	}
	return &UntrustedError{Cert: c, Pinned: pinned}
}

// tlsConfig returns a client configuration for connections to host
// whose only check is v's.
func (v *verifier) tlsConfig(host string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: host,
		// The standard verification is replaced, not skipped:
		// VerifyConnection below accepts only what the Trust allows.
		InsecureSkipVerify: true, //nolint:gosec
		VerifyConnection: func(cs tls.ConnectionState) error {
			return v.check(host, cs.PeerCertificates)
		},
	}
}

// ProbeCertificate connects to the server of rawURL and returns the
// certificate it presents, without trusting it, so that the setup wizard
// can show the thumbprint for the administrator to confirm.
func ProbeCertificate(ctx context.Context, rawURL string, t Trust) (*Certificate, error) {
	u, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 15 * time.Second}, Config: &tls.Config{InsecureSkipVerify: true, ServerName: u.Hostname()}} //nolint:gosec // inspection only
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", u.Host, err)
	}
	defer conn.Close()
	chain := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(chain) == 0 {
		return nil, fmt.Errorf("%s presented no certificate", u.Host)
	}
	c := describe(u.Hostname(), chain)
	v, err := newVerifier(t)
	if err != nil {
		return nil, err
	}
	c.CAValid = t.UseCA && v.check(u.Hostname(), chain) == nil
	return c, nil
}

// ParseURL accepts "vcenter.example.com", "10.0.0.5:443",
// "https://host" or "https://host/sdk" and returns the SDK URL.
func ParseURL(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("vSphere address is empty")
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("vSphere address %q: %w", s, err)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("vSphere address %q: only https is supported", s)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("vSphere address %q has no host", s)
	}
	if u.User != nil {
		return nil, fmt.Errorf("vSphere address %q: give the user name separately, not in the URL", redactURL(u))
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/sdk"
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), "443")
	}
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}
