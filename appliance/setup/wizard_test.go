package setup

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"coffer.dev/coffer/appliance/app"
	"coffer.dev/coffer/appliance/jobs"
	"coffer.dev/coffer/appliance/vsphere/vcsim"
	"coffer.dev/coffer/store/crypt"
)

func TestNetworkValidation(t *testing.T) {
	good := Network{Hostname: "coffer01.example.com", Mode: "static", Address: "192.168.10.20/24", Gateway: "192.168.10.1",
		DNS: []string{"192.168.10.2"}, NTP: []string{"pool.ntp.org", "10.0.0.1"}, TimeZone: "Europe/Berlin"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mut   func(*Network)
		field string
	}{
		{func(n *Network) { n.Hostname = "" }, "hostname"},
		{func(n *Network) { n.Hostname = "bad_name" }, "hostname"},
		{func(n *Network) { n.Mode = "" }, "mode"},
		{func(n *Network) { n.Address = "192.168.10.20" }, "address"},
		{func(n *Network) { n.Gateway = "10.0.0.1" }, "gateway"},
		{func(n *Network) { n.Gateway = "192.168.10.20" }, "gateway"},
		{func(n *Network) { n.DNS = nil }, "dns"},
		{func(n *Network) { n.DNS = []string{"dns.example"} }, "dns"},
		{func(n *Network) { n.NTP = []string{"not a host"} }, "ntp"},
		{func(n *Network) { n.TimeZone = "Mars/Olympus" }, "time_zone"},
		{func(n *Network) { n.TimeZone = "" }, "time_zone"},
	} {
		n := good
		n.DNS = append([]string(nil), good.DNS...)
		tc.mut(&n)
		var fe FieldErrors
		if err := n.Validate(); !errors.As(err, &fe) || fe[tc.field] == "" {
			t.Errorf("%s: %v", tc.field, err)
		}
	}
	dhcp := Network{Hostname: "coffer", Mode: "dhcp", TimeZone: "UTC"}
	if err := dhcp.Validate(); err != nil {
		t.Errorf("DHCP: %v", err)
	}
}

func TestPoolPlans(t *testing.T) {
	var disks []Disk
	for _, n := range []string{"sda", "sdb", "sdc", "sdd", "sde"} {
		disks = append(disks, Disk{Name: n, Size: 4 << 40})
	}
	disks = append(disks, Disk{Name: "nvme0n1", Size: 256 << 30, System: true})
	member := int64(4<<40) - (4<<40)>>16
	for _, tc := range []struct {
		level     string
		n         int
		usable    int64
		tolerates int
		rec       bool
		err       string
	}{
		{"raid1", 2, member, 1, true, ""},
		{"raid1", 1, 0, 0, false, "at least 2"},
		{"raid5", 3, 2 * member, 1, true, ""},
		{"raid5", 4, 3 * member, 1, false, ""},
		{"raid6", 4, 2 * member, 2, true, ""},
		{"raid6", 5, 3 * member, 2, true, ""},
		{"raid6", 3, 0, 0, false, "at least 4"},
		{"raid10", 4, 2 * member, 1, false, ""},
		{"raid10", 5, 0, 0, false, "even number"},
		{"raid0", 2, 0, 0, false, "unknown RAID level"},
	} {
		var names []string
		for _, d := range disks[:tc.n] {
			names = append(names, d.Name)
		}
		p, err := Plan(tc.level, names, disks)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s×%d: %v, want %q", tc.level, tc.n, err, tc.err)
			}
			continue
		}
		if err != nil || p.Usable != tc.usable || p.Tolerates != tc.tolerates || p.Recommended != tc.rec {
			t.Errorf("%s×%d: %+v %v", tc.level, tc.n, p, err)
		}
	}
	if _, err := Plan("raid1", []string{"sda", "nvme0n1"}, disks); err == nil {
		t.Error("the system disk was accepted")
	}
	if _, err := Plan("raid1", []string{"sda", "sda"}, disks); err == nil {
		t.Error("a disk chosen twice was accepted")
	}
	if _, err := Plan("raid1", []string{"sda", "sdz"}, disks); err == nil {
		t.Error("an unknown disk was accepted")
	}
}

// TestWizardAgainstTheSimulator goes through every step, with the
// errors an administrator can make, a restart in the middle, and checks
// the appliance it leaves behind.
func TestWizardAgainstTheSimulator(t *testing.T) {
	ctx := context.Background()
	sim, err := vcsim.Start(ctx, vcsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	for _, name := range []string{"web01", "db01"} {
		if _, err := sim.CreateVM(ctx, vcsim.VMSpec{Name: name, Folder: "Production", Disks: []vcsim.DiskSpec{{Capacity: 16 << 20}}}); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "state")
	pool := filepath.Join(t.TempDir(), "pool")
	var handed *app.Services
	opts := Options{Dir: dir, PoolDir: pool, OnComplete: func(_ *app.App, s *app.Services) { handed = s }}
	w, err := Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if w.Current() != StepAdmin || w.Reachable(StepNetwork) || w.Complete() {
		t.Fatalf("fresh wizard at %s", w.Current())
	}
	if err := w.SaveNetwork(Network{Hostname: "coffer", Mode: "dhcp", TimeZone: "UTC"}); !errors.Is(err, ErrOrder) {
		t.Fatalf("network before the account: %v", err)
	}
	if err := w.AdminDone(); err != nil {
		t.Fatal(err)
	}
	if err := w.SaveNetwork(Network{Hostname: "coffer", Mode: "static", TimeZone: "UTC"}); err == nil {
		t.Fatal("static network without an address accepted")
	}
	if err := w.SaveNetwork(Network{Hostname: "coffer", Mode: "dhcp", NTP: []string{"pool.ntp.org"}, TimeZone: "Europe/Berlin"}); err != nil {
		t.Fatal(err)
	}
	if err := w.SaveStorage(ctx, StorageRequest{Kind: "raid", Disks: []string{"sda", "sdb"}, Level: "raid1"}); err == nil {
		t.Fatal("RAID accepted without disk discovery")
	}
	if err := w.SaveStorage(ctx, StorageRequest{Kind: "directory", Path: "relative/dir"}); err == nil {
		t.Fatal("relative pool path accepted")
	}
	if err := w.SaveStorage(ctx, StorageRequest{Kind: "directory"}); err != nil {
		t.Fatal(err)
	}
	rec, err := w.CreateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Challenge) != 2 || rec.Challenge[0] >= rec.Challenge[1] || rec.Challenge[0] < 1 || rec.Challenge[1] > 12 {
		t.Fatalf("challenge %v", rec.Challenge)
	}
	if _, err := os.Stat(filepath.Join(pool, "store")); err != nil {
		t.Fatalf("the store is not on the pool: %v", err)
	}
	// A restart before confirming shows the same key and challenge.
	w.Close()
	if w, err = Open(ctx, opts); err != nil {
		t.Fatal(err)
	}
	again, err := w.CreateKey(ctx)
	if err != nil || again.Key != rec.Key || again.Challenge[0] != rec.Challenge[0] {
		t.Fatalf("after a restart: %+v %v", again, err)
	}
	groups := strings.Split(rec.Key, "-")
	if err := w.ConfirmRecoveryKey([]string{"AAAAA", "BBBBB"}); err == nil {
		t.Fatal("wrong groups accepted")
	}
	if err := w.ConfirmRecoveryKey([]string{strings.ToLower(groups[rec.Challenge[0]-1]), " " + groups[rec.Challenge[1]-1]}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.CreateKey(ctx); err == nil {
		t.Fatal("the recovery key was shown again after confirmation")
	}
	if k, err := crypt.DecodeRecoveryKey(rec.Key); err != nil || k == (crypt.MasterKey{}) {
		t.Fatalf("recovery key does not decode: %v", err)
	}

	cert, err := w.ProbeVCenter(ctx, sim.URL().String())
	if err != nil || cert.SHA256 != sim.SHA256Thumbprint() {
		t.Fatalf("probe: %+v %v", cert, err)
	}
	user, pass := sim.Credentials()
	if _, err := w.ConnectVCenter(ctx, VCenterRequest{URL: sim.URL().String(), Username: user, Password: pass}); err == nil {
		t.Fatal("connected without trusting the certificate")
	}
	if _, err := w.ConnectVCenter(ctx, VCenterRequest{URL: sim.URL().String(), Username: user, Password: pass, Thumbprint: strings.Repeat("AB:", 31) + "AB"}); err == nil {
		t.Fatal("connected with a wrong thumbprint")
	}
	if _, err := w.ConnectVCenter(ctx, VCenterRequest{URL: sim.URL().String(), Username: user, Password: "wrong", Thumbprint: cert.SHA256}); err == nil {
		t.Fatal("connected with a wrong password")
	}
	vc, err := w.ConnectVCenter(ctx, VCenterRequest{URL: sim.URL().String(), Username: user, Password: pass, Thumbprint: cert.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	if vc.VMs < 2 {
		t.Fatalf("inventory: %+v", vc)
	}
	b, _ := os.ReadFile(filepath.Join(dir, StateFile))
	if strings.Contains(string(b), pass) || strings.Contains(string(b), rec.Key) {
		t.Fatal("the setup state holds a secret")
	}
	p := DefaultPolicy("Europe/Berlin")
	if p.Retention.Daily != 14 || p.Retention.Weekly != 8 || p.Retention.Monthly != 12 || !p.Selection.All {
		t.Fatalf("default policy %+v", p)
	}
	vms, err := w.PreviewPolicy(ctx, p)
	if err != nil || len(vms) != vc.VMs {
		t.Fatalf("preview: %d VMs, %v", len(vms), err)
	}
	only := p
	only.Selection = jobs.Selection{Names: []string{"web*"}}
	if vms, _ := w.PreviewPolicy(ctx, only); len(vms) != 1 || vms[0].Name != "web01" {
		t.Fatalf("preview of web*: %+v", vms)
	}
	bad := p
	bad.Name = ""
	if _, err := w.SavePolicy(ctx, bad); err == nil {
		t.Fatal("policy without a name accepted")
	}
	if _, err := w.Finish(ctx, false); !errors.Is(err, ErrOrder) {
		t.Fatalf("finish before the policy: %v", err)
	}
	saved, err := w.SavePolicy(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SaveOptions(); err != nil {
		t.Fatal(err)
	}
	job, err := w.Finish(ctx, true)
	if err != nil || job == "" {
		t.Fatalf("finish: %q %v", job, err)
	}
	if handed == nil || !w.Complete() {
		t.Fatal("the services were not handed over")
	}
	if _, err := handed.Policy(saved.ID); err != nil {
		t.Fatal(err)
	}
	if err := w.AdminDone(); !errors.Is(err, ErrComplete) {
		t.Fatalf("a step after completion: %v", err)
	}
	handed.Close()
	a, _ := w.Appliance()
	a.Close()
	// A later start sees the finished setup.
	w2, err := Open(ctx, Options{Dir: dir})
	if err != nil || !w2.Complete() {
		t.Fatalf("reopened: %v", err)
	}
	w2.Close()
	if s2, _ := w2.Appliance(); s2 != nil {
		s2.Close()
	}
}
