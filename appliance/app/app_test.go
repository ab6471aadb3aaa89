package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/appliance/vsphere/vcsim"
)

func TestStateDirectory(t *testing.T) {
	ctx := context.Background()
	sim, err := vcsim.Start(ctx, vcsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	dir := filepath.Join(t.TempDir(), "state")
	if _, err := Open(ctx, dir, nil); err == nil {
		t.Fatal("opened a directory that was never set up")
	}
	if err := Init(dir); err != nil {
		t.Fatal(err)
	}
	if err := Init(dir); err != nil {
		t.Fatalf("Init is not idempotent: %v", err)
	}
	a, err := Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == "" {
		t.Fatal("no appliance ID")
	}
	if _, err := a.VCenter(); err != ErrNoVCenter {
		t.Fatalf("no vCenter yet: %v", err)
	}
	user, pass := sim.Credentials()
	bad := vsphere.Endpoint{URL: sim.URL().String(), Username: user, Password: pass}
	if err := a.SetVCenter(ctx, bad); err == nil {
		t.Fatal("an untrusted vCenter was saved")
	}
	ep := vsphere.Endpoint{URL: sim.URL().String(), Username: user, Password: pass,
		Trust: vsphere.Trust{Thumbprints: map[string]string{sim.URL().Hostname(): sim.SHA256Thumbprint()}}}
	if err := a.SetVCenter(ctx, ep); err != nil {
		t.Fatal(err)
	}
	if err := a.SetGuestCredentials("linux", vsphere.GuestCredentials{Username: "root", Password: "guest-secret"}); err != nil {
		t.Fatal(err)
	}
	a.Close()

	a, err = Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	got, err := a.VCenter()
	if err != nil || got.Password != pass || got.Username != user || got.Trust.Thumbprints[sim.URL().Hostname()] == "" {
		t.Fatalf("vCenter after reopen: %+v %v", got.Trust, err)
	}
	c, err := a.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Logout(ctx)
	g, err := a.GuestCredentials("linux")
	if err != nil || g.Password != "guest-secret" {
		t.Fatalf("guest credentials: %+v %v", g, err)
	}
	for _, f := range []string{VCenterFile, SecretsFile} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		if bytes.Contains(b, []byte(pass)) || bytes.Contains(b, []byte("guest-secret")) {
			t.Fatalf("%s holds a password in the clear", f)
		}
	}
}
