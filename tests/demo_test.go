package tests

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"os"
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
		if f := strings.Fields(line); len(f) >= 8 && f[0] == "Open" && strings.HasPrefix(f[1], "https://") && strings.Contains(line, "log in as admin with password ") {
			url, password = f[1], f[len(f)-1]
		}
		if strings.Contains(line, "Ctrl-C stops the demo") {
			break
		}
	}
	if url == "" || password == "" {
		t.Fatalf("demo did not come up:\n%s\n%s", out.String(), stderr.String())
	}
	for _, want := range []string{"succeeded", "5 VMs, 5 protected, 0 unprotected", "powered-off", "application", "scsi0:0 incremental (0 B changed)", "verified", `search "day2.log": 2 hits`, "the VM's disk was not restored"} {
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
	// The dashboard page, with the session cookie a browser would keep.
	req, _ = http.NewRequest("GET", url+"/", nil)
	req.AddCookie(&http.Cookie{Name: "__Host-coffer_session", Value: lr.Token})
	if res, err = c.Do(req); err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), "Dashboard") || !strings.Contains(string(body), "<svg") {
		t.Fatalf("dashboard: %s %.500s", res.Status, body)
	}
	// Export a disk of a point over the API: qcow2 streamed, raw with Range.
	req, _ = http.NewRequest("GET", url+"/api/v1/points", nil)
	req.Header.Set("Authorization", "Bearer "+lr.Token)
	res, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var pts []struct {
		ID    string   `json:"id"`
		Disks []string `json:"disks"`
	}
	json.NewDecoder(res.Body).Decode(&pts)
	res.Body.Close()
	if len(pts) == 0 || len(pts[0].Disks) == 0 {
		t.Fatalf("points: %+v", pts)
	}
	// Single files over the API: search across points, the point's
	// recoverability, a directory listing and a download.
	api := func(path string) (int, []byte) {
		req, _ := http.NewRequest("GET", url+"/api/v1"+path, nil)
		req.Header.Set("Authorization", "Bearer "+lr.Token)
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	code, b := api("/files/search?q=day2.log")
	var hits []struct{ Point, Volume, Path, Name string }
	if err := json.Unmarshal(b, &hits); code != 200 || err != nil || len(hits) != 2 || hits[0].Path != "/day2.log" {
		t.Fatalf("search over the API: %d %s", code, b)
	}
	if code, b := api("/points/" + hits[0].Point + "/files?path=/&volume=" + hits[0].Volume); code != 200 || !strings.Contains(string(b), `"/day2.log"`) {
		t.Fatalf("listing over the API: %d %s", code, b)
	}
	code, b = api("/points/" + hits[0].Point + "/files/download?path=/day2.log&volume=" + hits[0].Volume)
	if code != 200 || len(b) < 3<<20 || !strings.Contains(string(b[:200]), "request 0 served") {
		t.Fatalf("download over the API: %d, %d bytes", code, len(b))
	}
	if code, b := api("/points"); code != 200 || !strings.Contains(string(b), `"recoverability":"verified"`) {
		t.Fatalf("points lack the recoverability verdict: %s", b)
	}
	if code, _ := api("/points/" + hits[0].Point + "/files/download?path=/no/such&volume=" + hits[0].Volume); code != 404 {
		t.Fatalf("download of a missing file: %d", code)
	}
	tmp := t.TempDir()
	get := func(format, rangeHdr string) (int, string) {
		req, _ := http.NewRequest("GET", url+"/api/v1/points/"+pts[0].ID+"/disks/"+pts[0].Disks[0]+"/export?format="+format, nil)
		req.Header.Set("Authorization", "Bearer "+lr.Token)
		if rangeHdr != "" {
			req.Header.Set("Range", rangeHdr)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		p := filepath.Join(tmp, "disk."+format+rangeHdr)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, res.Body); err != nil {
			t.Fatal(err)
		}
		f.Close()
		return res.StatusCode, p
	}
	codeQ, qcow := get("qcow2", "")
	codeR, raw := get("raw", "")
	codeP, part := get("raw", "bytes=4096-8191")
	if codeQ != 200 || codeR != 200 || codeP != 206 {
		t.Fatalf("export status: qcow2 %d, raw %d, range %d", codeQ, codeR, codeP)
	}
	if st, _ := os.Stat(part); st.Size() != 4096 {
		t.Fatalf("range export: %d bytes", st.Size())
	}
	run(t, "qemu-img", "check", "-q", "-f", "qcow2", qcow)
	run(t, "qemu-img", "compare", "-q", "-f", "qcow2", "-F", "raw", qcow, raw)

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("demo did not stop cleanly: %v\n%s", err, stderr.String())
	}
}
