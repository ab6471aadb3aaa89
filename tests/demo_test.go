package tests

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDemo runs what `make demo` runs, smaller: it must succeed on a fresh
// machine and restore both points bit for bit.
func TestDemo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	out, err := exec.Command(cofferBin, "demo-store", "--dir", dir, "--size", "96").CombinedOutput()
	if err != nil {
		t.Fatalf("coffer demo: %v\n%s", err, out)
	}
	for _, want := range []string{"restored day 1 is identical", "restored day 2 is identical", "all points are intact", "dedup ratio"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

// TestApplianceDemo runs `coffer demo` (smaller disks): the embedded
// vCenter, the first policy and backup, then the API it serves, logged in
// to with the printed password, and a clean stop on SIGINT.
func TestApplianceDemo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	cmd := exec.Command(cofferBin, "demo", "--dir", dir, "--scale", "15", "--listen", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	var out strings.Builder
	var url, password string
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if i := strings.Index(line, "serving its API at "); i >= 0 {
			url = strings.TrimSuffix(strings.TrimSpace(line[i+len("serving its API at "):]), "/api/v1")
		}
		if i := strings.Index(line, "log in as admin with password "); i >= 0 {
			password = strings.TrimSpace(line[i+len("log in as admin with password "):])
		}
		if strings.Contains(line, "Ctrl-C stops the demo") {
			break
		}
	}
	if url == "" || password == "" {
		t.Fatalf("demo did not come up:\n%s\n%s", out.String(), stderr.String())
	}
	for _, want := range []string{"succeeded", "5 VMs, 5 protected, 0 unprotected", "powered-off", "application", "scsi0:0 incremental (0 B changed)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the demo's self-signed certificate
	res, err := c.Post(url+"/api/v1/login", "application/json", strings.NewReader(`{"username":"admin","password":"`+password+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	var lr struct{ Token string }
	json.NewDecoder(res.Body).Decode(&lr)
	res.Body.Close()
	if lr.Token == "" {
		t.Fatalf("login to the demo failed: %s", res.Status)
	}
	req, _ := http.NewRequest("GET", url+"/api/v1/protection", nil)
	req.Header.Set("Authorization", "Bearer "+lr.Token)
	res, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), `"protected":5`) {
		t.Fatalf("protection report: %s %s", res.Status, body)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("demo did not stop cleanly: %v\n%s", err, stderr.String())
	}
}
