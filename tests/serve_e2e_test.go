package tests

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"coffer.dev/coffer/appliance/vsphere/vcsim"
)

// provisionAppliance prepares a state directory with the CLI, as a
// script would: store, the simulator's vCenter trusted by its
// thumbprint, and the administrator (password Appliance-Test-42, also in
// the returned password file).
func provisionAppliance(t *testing.T, sim *vcsim.Sim) (state, adminPasswordFile string) {
	t.Helper()
	state = filepath.Join(t.TempDir(), "appliance")
	run(t, cofferBin, "setup", "--state", state)
	dir := t.TempDir()
	user, pass := sim.Credentials()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte(pass+"\n"), 0o600)
	run(t, cofferBin, "vsphere", "add", "--state", state, "--url", sim.URL().String(), "--user", user, "--password-file", pw, "--thumbprint", sim.SHA256Thumbprint())
	apw := filepath.Join(dir, "apw")
	os.WriteFile(apw, []byte("Appliance-Test-42\n"), 0o600)
	run(t, cofferBin, "admin", "--state", state, "--password-file", apw)
	return state, apw
}

// appliance is a `coffer serve` child process and an API client.
type appliance struct {
	t     *testing.T
	cmd   *exec.Cmd
	url   string
	token string
	c     *http.Client
}

func startAppliance(t *testing.T, state string) *appliance {
	t.Helper()
	cmd := exec.Command(cofferBin, "serve", "--state", state, "--listen", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &appliance{t: t, cmd: cmd, c: &http.Client{Timeout: 20 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}} //nolint:gosec // the appliance's self-signed certificate
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if i := strings.Index(sc.Text(), "serving "); i >= 0 {
			a.url = strings.TrimSuffix(strings.Fields(sc.Text()[i+len("serving "):])[0], "/api/v1")
			break
		}
	}
	if a.url == "" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("coffer serve did not start:\n%s", stderr.String())
	}
	go io.Copy(io.Discard, stdout)
	var lr struct{ Token string }
	a.call("POST", "/api/v1/login", `{"username":"admin","password":"Appliance-Test-42"}`, &lr)
	a.token = lr.Token
	return a
}

func (a *appliance) call(method, path, body string, out any) int {
	a.t.Helper()
	req, _ := http.NewRequest(method, a.url+path, strings.NewReader(body))
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	res, err := a.c.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		a.t.Logf("%s %s: %s %s", method, path, res.Status, b)
	} else if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return res.StatusCode
}

type apiJob struct {
	ID    string `json:"id"`
	State string `json:"state"`
	VMs   []struct {
		Name   string `json:"name"`
		State  string `json:"state"`
		Reason string `json:"reason"`
		Error  string `json:"error"`
	} `json:"vms"`
}

// TestApplianceRestartDuringJob kills `coffer serve` while a policy's
// job runs, starts it again, and checks that the job is marked
// interrupted, the snapshot it left is removed, the store holds no half
// point, and the next run succeeds.
func TestApplianceRestartDuringJob(t *testing.T) {
	ctx := context.Background()
	sim, err := vcsim.Start(ctx, vcsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	var uuids []string
	for i := 0; i < 2; i++ {
		vm, err := sim.CreateVM(ctx, vcsim.VMSpec{Name: fmt.Sprintf("app%02d", i), GuestID: "otherLinux64Guest", ChangeTracking: true,
			Disks: []vcsim.DiskSpec{{Capacity: 128 << 20, Content: bytes.NewReader(textDisk(112<<20, uint64(10+i)))}}})
		if err != nil {
			t.Fatal(err)
		}
		uuids = append(uuids, vm.UUID)
	}
	state, _ := provisionAppliance(t, sim)

	a := startAppliance(t, state)
	var pol struct{ ID string }
	if code := a.call("POST", "/api/v1/policies", `{"name":"Everything","enabled":true,"selection":{"all":true}}`, &pol); code != 201 {
		t.Fatalf("create policy: %d", code)
	}
	var run1 struct {
		JobID string `json:"job_id"`
	}
	if code := a.call("POST", "/api/v1/policies/"+pol.ID+"/run", "", &run1); code != 202 {
		t.Fatalf("run policy: %d", code)
	}
	// Kill the appliance once a VM backup is under way.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var j apiJob
		a.call("GET", "/api/v1/jobs/"+run1.JobID, "", &j)
		running := false
		for _, v := range j.VMs {
			running = running || v.State == "running"
		}
		if running {
			break
		}
		if j.State != "queued" && j.State != "running" || time.Now().After(deadline) {
			t.Fatalf("job never ran a VM: %+v", j)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(150 * time.Millisecond)
	a.cmd.Process.Signal(syscall.SIGKILL)
	a.cmd.Wait()
	left := len(sim.Snapshots(uuids[0])) + len(sim.Snapshots(uuids[1]))
	t.Logf("snapshots left by the kill: %d", left)

	a = startAppliance(t, state)
	defer func() {
		a.cmd.Process.Signal(syscall.SIGINT)
		a.cmd.Wait()
	}()
	var j apiJob
	a.call("GET", "/api/v1/jobs/"+run1.JobID, "", &j)
	if j.State != "interrupted" {
		t.Fatalf("job after the restart: %+v", j)
	}
	// The start-up sweep removes what the killed backup left.
	for time.Now().Before(deadline) && len(sim.Snapshots(uuids[0]))+len(sim.Snapshots(uuids[1])) > 0 {
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(sim.Snapshots(uuids[0])) + len(sim.Snapshots(uuids[1])); n != 0 {
		t.Fatalf("%d snapshots still there after the restart", n)
	}
	var run2 struct {
		JobID string `json:"job_id"`
	}
	if code := a.call("POST", "/api/v1/policies/"+pol.ID+"/run", "", &run2); code != 202 {
		t.Fatalf("second run: %d", code)
	}
	for {
		a.call("GET", "/api/v1/jobs/"+run2.JobID, "", &j)
		if j.State != "queued" && j.State != "running" {
			break
		}
		if time.Now().After(deadline.Add(60 * time.Second)) {
			t.Fatalf("second job did not finish: %+v", j)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if j.State != "succeeded" && j.State != "warning" {
		t.Fatalf("second job: %+v", j)
	}
	var report struct {
		Totals struct {
			Protected int `json:"protected"`
			NoPoint   int `json:"no_point"`
		} `json:"totals"`
	}
	a.call("GET", "/api/v1/protection", "", &report)
	if report.Totals.Protected != 2 || report.Totals.NoPoint != 0 {
		t.Fatalf("protection after the second job: %+v", report)
	}
}
