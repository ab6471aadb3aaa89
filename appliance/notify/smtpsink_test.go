package notify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// sinkTLS is how a test SMTP server offers TLS.
type sinkTLS int

const (
	sinkSTARTTLS sinkTLS = iota // advertises STARTTLS; AUTH only after it
	sinkImplicit                // TLS from the first byte
	sinkClear                   // no TLS at all; AUTH allowed in clear
)

// sunkMail is one message a sink accepted.
type sunkMail struct {
	from string
	to   []string
	data []byte
	tls  bool // the session was encrypted
}

// authAttempt is one AUTH PLAIN a sink received.
type authAttempt struct {
	user, pass string
	tls        bool
}

// smtpSink is a local SMTP server for tests that keeps what it receives.
type smtpSink struct {
	host   string
	port   int
	caFile string // PEM of the self-signed certificate it presents
	user   string
	pass   string

	mu    sync.Mutex
	mails []sunkMail
	auths []authAttempt
}

func (s *smtpSink) received() ([]sunkMail, []authAttempt) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sunkMail(nil), s.mails...), append([]authAttempt(nil), s.auths...)
}

// emailConfig is an EmailConfig for this sink with its credentials.
func (s *smtpSink) emailConfig(sec Security) *EmailConfig {
	return &EmailConfig{
		Host: s.host, Port: s.port, Security: sec,
		Username: s.user, Password: s.pass,
		From: "Coffer <coffer@example.com>", To: []string{"ops@example.com", "Jörg Admin <joerg@example.org>"},
		CAFile: s.caFile,
	}
}

// startSMTPSink starts a server on 127.0.0.1 that wants user "backup"
// with password "correct horse".
func startSMTPSink(t *testing.T, mode sinkTLS) *smtpSink {
	t.Helper()
	cert, caFile := selfSignedCert(t)
	sink := &smtpSink{caFile: caFile, user: "backup", pass: "correct horse"}

	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &sinkSession{sink: sink, conn: c}, nil
	}))
	srv.Domain = "sink.test"
	srv.ReadTimeout = 5 * time.Second
	srv.WriteTimeout = 5 * time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	switch mode {
	case sinkSTARTTLS:
		srv.TLSConfig = tlsCfg
	case sinkImplicit:
		l = tls.NewListener(l, tlsCfg)
	case sinkClear:
		srv.AllowInsecureAuth = true
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	host, port, _ := net.SplitHostPort(l.Addr().String())
	sink.host = host
	sink.port, _ = strconv.Atoi(port)
	return sink
}

// sinkSession is one SMTP session with a sink.
type sinkSession struct {
	sink   *smtpSink
	conn   *smtp.Conn
	authed bool
	from   string
	to     []string
}

var _ smtp.AuthSession = (*sinkSession)(nil)

func (s *sinkSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *sinkSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		_, isTLS := s.conn.TLSConnectionState()
		s.sink.mu.Lock()
		s.sink.auths = append(s.sink.auths, authAttempt{user: user, pass: pass, tls: isTLS})
		s.sink.mu.Unlock()
		if user != s.sink.user || pass != s.sink.pass {
			return smtp.ErrAuthFailed
		}
		s.authed = true
		return nil
	}), nil
}

func (s *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *sinkSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.from == "" {
		return errors.New("DATA before MAIL")
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.sink.mu.Lock()
	s.sink.mails = append(s.sink.mails, sunkMail{from: s.from, to: s.to, data: data, tls: isTLS})
	s.sink.mu.Unlock()
	return nil
}

func (s *sinkSession) Reset()        { s.from, s.to = "", nil }
func (s *sinkSession) Logout() error { return nil }

// selfSignedCert makes a certificate for 127.0.0.1 and localhost, and
// writes it as PEM to a file for EmailConfig.CAFile.
func selfSignedCert(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "coffer test relay"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "relay-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, caFile
}
