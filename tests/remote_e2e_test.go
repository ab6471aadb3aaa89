package tests

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"coffer.dev/coffer/appliance/vsphere/vcsim"
	"coffer.dev/coffer/ui/client"
)

// TestRemoteCLI drives a running appliance with `coffer remote`: log in
// with the certificate pinned, run a policy and wait for it, list jobs
// and points, make an API token and use it; a wrong pin is refused with
// the fingerprint to compare.
func TestRemoteCLI(t *testing.T) {
	ctx := context.Background()
	sim, err := vcsim.Start(ctx, vcsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	if _, err := sim.CreateVM(ctx, vcsim.VMSpec{Name: "rem01", GuestID: "otherLinux64Guest", ChangeTracking: true,
		Disks: []vcsim.DiskSpec{{Capacity: 32 << 20, Content: bytes.NewReader(textDisk(24<<20, 77))}}}); err != nil {
		t.Fatal(err)
	}
	state, apw := provisionAppliance(t, sim)
	dir := t.TempDir()
	a := startAppliance(t, state)
	defer func() {
		a.cmd.Process.Signal(os.Interrupt)
		a.cmd.Wait()
	}()
	var pol struct{ ID string }
	if code := a.call("POST", "/api/v1/policies", `{"name":"Everything","enabled":true,"selection":{"all":true}}`, &pol); code != 201 {
		t.Fatalf("create policy: %d", code)
	}
	fp, err := client.Fingerprint(ctx, a.url)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "remote.json")
	remote := func(wantOK bool, args ...string) string {
		t.Helper()
		cmd := exec.Command(cofferBin, append([]string{"remote"}, args...)...)
		cmd.Env = append(os.Environ(), "COFFER_REMOTE_CONFIG="+cfg)
		out, err := cmd.CombinedOutput()
		if (err == nil) != wantOK {
			t.Fatalf("coffer remote %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// Without a pin the self-signed certificate is refused, with its fingerprint shown.
	out := remote(false, "--appliance", a.url, "login", "--user", "admin", "--password-file", apw)
	if !strings.Contains(out, fp) || !strings.Contains(out, "--fingerprint") {
		t.Fatalf("untrusted certificate: %s", out)
	}
	out = remote(false, "--appliance", a.url, "--fingerprint", strings.Repeat("AB", 32), "login", "--user", "admin", "--password-file", apw)
	if !strings.Contains(out, "not the pinned one") {
		t.Fatalf("wrong pin: %s", out)
	}
	remote(true, "--appliance", a.url, "--fingerprint", fp, "login", "--user", "admin", "--password-file", apw, "--save")
	if st, err := os.Stat(cfg); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("saved session: %v", err)
	}
	out = remote(true, "run", pol.ID, "--wait")
	if !strings.Contains(out, "succeeded") {
		t.Fatalf("run --wait: %s", out)
	}
	if out := remote(true, "jobs"); !strings.Contains(out, "Everything") {
		t.Fatalf("jobs: %s", out)
	}
	if out := remote(true, "points"); !strings.Contains(out, "rem01") && !strings.Contains(out, "vm:") {
		t.Fatalf("points: %s", out)
	}
	if out := remote(true, "status"); !strings.Contains(out, "protection: 1 VMs, 1 protected") {
		t.Fatalf("status: %s", out)
	}
	tok := strings.TrimSpace(remote(true, "token-create", "monitoring", "--role", "viewer"))
	tok = strings.Split(tok, "\n")[0]
	if !strings.HasPrefix(tok, "coffer_") {
		t.Fatalf("token: %q", tok)
	}
	os.Remove(cfg)
	out = remote(true, "--appliance", a.url, "--fingerprint", fp, "--token", tok, "--json", "vms")
	if !strings.Contains(out, `"name": "rem01"`) {
		t.Fatalf("vms with the token: %s", out)
	}
	out = remote(false, "--appliance", a.url, "--fingerprint", fp, "--token", tok, "run", pol.ID)
	if !strings.Contains(out, "403") {
		t.Fatalf("a viewer token ran a policy: %s", out)
	}
}
