package ui

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"coffer.dev/coffer/appliance/statefile"
)

// PendingKeyFile holds the private key of a certificate signing request
// until the signed certificate is installed.
const PendingKeyFile = "tls-pending.key"

// CertificateInfo describes the served certificate.
type CertificateInfo struct {
	Subject     string    `json:"subject"`
	Issuer      string    `json:"issuer"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	DNSNames    []string  `json:"dns_names"`
	IPAddresses []string  `json:"ip_addresses"`
	SHA256      string    `json:"sha256"`
	SelfSigned  bool      `json:"self_signed"`
	// PendingRequest: a signing request was made and its key waits for
	// the signed certificate.
	PendingRequest bool `json:"pending_request"`
}

// DescribeCertificate summarises a certificate.
func DescribeCertificate(c tls.Certificate) (CertificateInfo, error) {
	if len(c.Certificate) == 0 {
		return CertificateInfo{}, errors.New("no certificate")
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return CertificateInfo{}, err
	}
	ci := CertificateInfo{Subject: leaf.Subject.String(), Issuer: leaf.Issuer.String(), NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter,
		DNSNames: leaf.DNSNames, SHA256: Fingerprint(c), SelfSigned: bytes.Equal(leaf.RawIssuer, leaf.RawSubject) && leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil}
	for _, ip := range leaf.IPAddresses {
		ci.IPAddresses = append(ci.IPAddresses, ip.String())
	}
	return ci, nil
}

// CreateSigningRequest makes a new key (kept in PendingKeyFile) and a
// PEM certificate signing request for it, for the administrator's CA.
func CreateSigningRequest(dir, commonName string, names []string) ([]byte, error) {
	commonName = strings.TrimSpace(commonName)
	if commonName == "" {
		return nil, errors.New("a signing request needs the appliance's name (common name)")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: commonName, Organization: []string{"Coffer"}}}
	for _, n := range append([]string{commonName}, names...) {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if !slices.Contains(tmpl.DNSNames, n) {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("create the signing request: %w", err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := statefile.Write(filepath.Join(dir, PendingKeyFile), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return nil, fmt.Errorf("keep the signing request's key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// InstallCertificate checks a PEM certificate (chain) against its key —
// keyPEM, or the pending key of a signing request when keyPEM is empty —
// and writes both as the served certificate. The old pair is kept as
// tls.crt.prev / tls.key.prev.
func InstallCertificate(dir string, certPEM, keyPEM []byte, now time.Time) (tls.Certificate, error) {
	pending := len(bytes.TrimSpace(keyPEM)) == 0
	if pending {
		b, err := os.ReadFile(filepath.Join(dir, PendingKeyFile))
		if err != nil {
			return tls.Certificate{}, errors.New("no private key given and no signing request is pending: upload the key with the certificate, or make a signing request first")
		}
		keyPEM = b
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("the certificate and the key do not belong together or cannot be read: %w", err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("read the certificate: %w", err)
	}
	if now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		return tls.Certificate{}, fmt.Errorf("the certificate is valid only from %s to %s", leaf.NotBefore.Format(time.DateOnly), leaf.NotAfter.Format(time.DateOnly))
	}
	if len(leaf.ExtKeyUsage) > 0 && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return tls.Certificate{}, errors.New("the certificate is not for TLS servers (its extended key usage lacks serverAuth)")
	}
	cp, kp := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	for _, p := range []string{cp, kp} {
		if b, err := os.ReadFile(p); err == nil {
			_ = statefile.Write(p+".prev", b, 0o600)
		}
	}
	if err := statefile.Write(kp, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, fmt.Errorf("write the key: %w", err)
	}
	if err := statefile.Write(cp, certPEM, 0o644); err != nil {
		return tls.Certificate{}, fmt.Errorf("write the certificate: %w", err)
	}
	if pending {
		os.Remove(filepath.Join(dir, PendingKeyFile))
	}
	return c, nil
}

func (s *Server) certificateInfo(c *gin.Context) {
	ci, err := DescribeCertificate(s.currentCert())
	if err != nil {
		fail(c, http.StatusInternalServerError, "%v", err)
		return
	}
	_, perr := os.Stat(filepath.Join(s.Dir, PendingKeyFile))
	ci.PendingRequest = perr == nil
	c.JSON(http.StatusOK, ci)
}

func (s *Server) certificateRequest(c *gin.Context) {
	var req struct {
		CommonName string   `json:"common_name"`
		Names      []string `json:"names"`
	}
	if !decodeStrict(c, &req) {
		return
	}
	csr, err := CreateSigningRequest(s.Dir, req.CommonName, req.Names)
	if err != nil {
		fail(c, http.StatusUnprocessableEntity, "%v", err)
		return
	}
	c.Set(ctxDetail, "certificate signing request for "+req.CommonName)
	c.JSON(http.StatusCreated, gin.H{"csr_pem": string(csr)})
}

func (s *Server) installCertificate(c *gin.Context) {
	var req struct {
		CertificatePEM string `json:"certificate_pem"`
		KeyPEM         string `json:"key_pem"`
	}
	if !decodeStrict(c, &req) {
		return
	}
	cert, err := InstallCertificate(s.Dir, []byte(req.CertificatePEM), []byte(req.KeyPEM), time.Now())
	if err != nil {
		fail(c, http.StatusUnprocessableEntity, "%v", err)
		return
	}
	s.setCert(cert)
	ci, _ := DescribeCertificate(cert)
	c.Set(ctxDetail, "certificate installed: "+ci.Subject+" "+ci.SHA256)
	c.JSON(http.StatusOK, ci)
}
