package ui

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestCertificateSigningRequestFlow: a CSR made on the appliance, signed
// by the customer's CA, installed without the key leaving the appliance,
// served at once; a certificate for another key is refused.
func TestCertificateSigningRequestFlow(t *testing.T) {
	s, _, c := startServer(t)
	tok := login(t, s, c)
	code, body := do(t, c, "GET", s.URL()+"/api/v1/certificate", tok, "")
	if code != 200 || !strings.Contains(body, `"self_signed":true`) {
		t.Fatalf("certificate: %d %s", code, body)
	}
	if code, _ := do(t, c, "PUT", s.URL()+"/api/v1/certificate", tok, `{"certificate_pem":"junk"}`); code != 422 {
		t.Fatalf("junk certificate without a pending request: %d", code)
	}
	code, body = do(t, c, "POST", s.URL()+"/api/v1/certificate/csr", tok, `{"common_name":"coffer.example.com","names":["10.0.0.5","backup.example.com"]}`)
	var cr struct {
		CSR string `json:"csr_pem"`
	}
	json.Unmarshal([]byte(body), &cr)
	blk, _ := pem.Decode([]byte(cr.CSR))
	if code != 201 || blk == nil {
		t.Fatalf("csr: %d %s", code, body)
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil || csr.CheckSignature() != nil || csr.Subject.CommonName != "coffer.example.com" || len(csr.IPAddresses) != 1 || len(csr.DNSNames) != 2 {
		t.Fatalf("csr content: %+v %v", csr, err)
	}
	// The customer's CA signs it.
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Example CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: csr.Subject, DNSNames: csr.DNSNames, IPAddresses: csr.IPAddresses,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, csr.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	chain := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})) + string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	// A certificate for another key is refused.
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherDER, _ := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &otherKey.PublicKey, caKey)
	otherPEM, _ := json.Marshal(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: otherDER})))
	if code, body := do(t, c, "PUT", s.URL()+"/api/v1/certificate", tok, `{"certificate_pem":`+string(otherPEM)+`}`); code != 422 || !strings.Contains(body, "do not belong together") {
		t.Fatalf("certificate for another key: %d %s", code, body)
	}
	chainJSON, _ := json.Marshal(chain)
	if code, body := do(t, c, "PUT", s.URL()+"/api/v1/certificate", tok, `{"certificate_pem":`+string(chainJSON)+`}`); code != 200 || !strings.Contains(body, "Example CA") {
		t.Fatalf("install: %d %s", code, body)
	}
	// New connections get the new certificate, without a restart.
	conn, err := tls.Dial("tcp", strings.TrimPrefix(s.URL(), "https://"), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // checking what is served
	if err != nil {
		t.Fatal(err)
	}
	got := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	if sum := sha256.Sum256(got.Raw); fmt.Sprintf("%X", sum[:4]) != strings.ReplaceAll(s.CertificateFingerprint()[:11], ":", "") || got.Issuer.CommonName != "Example CA" {
		t.Fatalf("served certificate issued by %q", got.Issuer.CommonName)
	}
	// And the appliance trusts its CA chain: a client with the CA verifies it.
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	vc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "coffer.example.com"}}}
	res, err := vc.Get(s.URL() + "/api/v1/health")
	if err != nil {
		t.Fatalf("a client trusting the CA: %v", err)
	}
	res.Body.Close()
	// Viewers may look but not change it.
	if code, _ := do(t, c, "POST", s.URL()+"/api/v1/users", tok, `{"name":"vera","role":"viewer","password":"Correct-Horse-8-battery"}`); code != 201 {
		t.Fatal("create viewer")
	}
	vera := loginAs(t, s, c, "vera", "Correct-Horse-8-battery")
	if code, _ := do(t, c, "POST", s.URL()+"/api/v1/certificate/csr", vera, `{"common_name":"x"}`); code != 403 {
		t.Fatalf("viewer made a CSR: %d", code)
	}
}
