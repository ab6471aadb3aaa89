package ui

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"coffer.dev/coffer/appliance/app"
	"coffer.dev/coffer/appliance/setup"
	"coffer.dev/coffer/appliance/vsphere/vcsim"
)

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	t    *testing.T
	c    *http.Client
	base string
	csrf string
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 60 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // the test's own server
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfAttr = regexp.MustCompile(`data-csrf="([^"]*)"`)

func (b *browser) get(path string) (int, string, string) {
	b.t.Helper()
	res, err := b.c.Get(b.base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if m := csrfAttr.FindSubmatch(body); m != nil && len(m[1]) > 0 {
		b.csrf = string(m[1])
	}
	return res.StatusCode, res.Header.Get("Location"), string(body)
}

func (b *browser) post(path string, form url.Values) (int, string, string) {
	b.t.Helper()
	if form.Get("csrf_token") == "" && b.csrf != "" {
		form.Set("csrf_token", b.csrf)
	}
	if form.Get("csrf_token") == "-" {
		form.Del("csrf_token")
	}
	res, err := b.c.PostForm(b.base+path, form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if m := csrfAttr.FindSubmatch(body); m != nil && len(m[1]) > 0 {
		b.csrf = string(m[1])
	}
	return res.StatusCode, res.Header.Get("Location"), string(body)
}

func expect(t *testing.T, what string, code int, loc, body string, wantCode int, wantLoc, wantBody string) {
	t.Helper()
	if code != wantCode || (wantLoc != "" && !strings.HasPrefix(loc, wantLoc)) || (wantBody != "" && !strings.Contains(body, wantBody)) {
		if len(body) > 3000 {
			body = body[:3000]
		}
		t.Fatalf("%s: %d → %q, want %d → %q containing %q\n%s", what, code, loc, wantCode, wantLoc, wantBody, body)
	}
}

// TestWizardInTheBrowserForms runs the whole wizard through its HTML
// forms against the simulator, with the mistakes an administrator makes.
func TestWizardInTheBrowserForms(t *testing.T) {
	ctx := context.Background()
	sim, err := vcsim.Start(ctx, vcsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	if _, err := sim.CreateVM(ctx, vcsim.VMSpec{Name: "web01", Folder: "Production", Disks: []vcsim.DiskSpec{{Capacity: 16 << 20}}}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "state")
	s := &Server{Dir: dir, Addr: "127.0.0.1:0", Hostname: "coffer-test"}
	w, err := setup.Open(ctx, setup.Options{Dir: dir, PoolDir: filepath.Join(t.TempDir(), "pool"),
		OnComplete: func(_ *app.App, svc *app.Services) { s.SetBackend(svc) }})
	if err != nil {
		t.Fatal(err)
	}
	s.Setup = w
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Shutdown(context.Background())
		if a, svc := w.Appliance(); svc != nil {
			svc.Close()
			a.Close()
		}
		w.Close()
	})
	b := newBrowser(t, s.URL())

	code, loc, _ := b.get("/")
	expect(t, "fresh appliance", code, loc, "", 303, "/setup", "")
	code, loc, _ = b.get("/setup")
	expect(t, "setup", code, loc, "", 303, "/setup/admin", "")
	code, _, body := b.get("/setup/admin")
	expect(t, "admin form", code, "", body, 200, "", "Create the administrator account")
	code, loc, _ = b.get("/setup/network")
	expect(t, "skipping ahead", code, loc, "", 303, "/login", "")
	if code, _, _ := b.get("/api/v1/jobs"); code != 401 {
		t.Fatalf("API before setup: %d", code)
	}
	code, _, body = b.post("/setup/admin", url.Values{"username": {"admin"}, "password": {"short"}, "password2": {"short"}})
	expect(t, "weak password", code, "", body, 422, "", "at least 12 characters")
	code, _, body = b.post("/setup/admin", url.Values{"username": {"admin"}, "password": {"Correct-Horse-7-battery"}, "password2": {"Correct-Horse-7-batterx"}})
	expect(t, "passwords differ", code, "", body, 422, "", "the two passwords differ")
	code, loc, _ = b.post("/setup/admin", url.Values{"username": {"admin"}, "password": {"Correct-Horse-7-battery"}, "password2": {"Correct-Horse-7-battery"}})
	expect(t, "account", code, loc, "", 303, "/setup/network", "")
	// Once the account exists nobody else can claim the appliance.
	other := newBrowser(t, s.URL())
	code, loc, _ = other.post("/setup/admin", url.Values{"username": {"evil"}, "password": {"Correct-Horse-7-battery"}, "password2": {"Correct-Horse-7-battery"}})
	expect(t, "second account", code, loc, "", 303, "/login", "")
	code, loc, _ = other.get("/setup/network")
	expect(t, "wizard without a session", code, loc, "", 303, "/login", "")

	code, _, body = b.get("/setup/network")
	expect(t, "network form", code, "", body, 200, "", `value="coffer-test"`)
	code, _, body = b.post("/setup/network", url.Values{"csrf_token": {"-"}, "hostname": {"coffer"}, "mode": {"dhcp"}, "time_zone": {"UTC"}})
	expect(t, "no CSRF token", code, "", body, 403, "", "")
	code, _, body = b.post("/setup/network", url.Values{"hostname": {"coffer"}, "mode": {"static"}, "address": {"10.0.0.5"}, "time_zone": {"Mars/Base"}})
	expect(t, "bad network", code, "", body, 422, "", "unknown time zone")
	if !strings.Contains(body, "prefix length") || !strings.Contains(body, `aria-invalid="true"`) {
		t.Fatalf("field errors not shown:\n%s", body)
	}
	code, loc, _ = b.post("/setup/network", url.Values{"hostname": {"coffer"}, "mode": {"dhcp"}, "ntp": {"pool.ntp.org"}, "time_zone": {"Europe/Berlin"}})
	expect(t, "network", code, loc, "", 303, "/setup/storage", "")

	code, _, body = b.get("/setup/storage")
	expect(t, "storage form", code, "", body, 200, "", "A directory stands in for the pool")
	code, _, body = b.post("/setup/storage", url.Values{"kind": {"directory"}, "path": {"not/absolute"}})
	expect(t, "relative directory", code, "", body, 422, "", "absolute path")
	code, loc, _ = b.post("/setup/storage", url.Values{"kind": {"directory"}, "path": {filepath.Join(t.TempDir(), "pool2")}})
	expect(t, "storage", code, loc, "", 303, "/setup/encryption", "")

	code, _, body = b.get("/setup/encryption")
	expect(t, "recovery key", code, "", body, 200, "", "recovery key is the only way")
	key := regexp.MustCompile(`id="recovery-key"[^>]*>([0-9A-Z-]+)<`).FindStringSubmatch(body)
	groups := regexp.MustCompile(`for="answer[01]">Group (\d+)<`).FindAllStringSubmatch(body, -1)
	if key == nil || len(groups) != 2 {
		t.Fatalf("recovery page:\n%s", body)
	}
	parts := strings.Split(key[1], "-")
	pick := func(i int) string {
		var n int
		for _, ch := range groups[i][1] {
			n = n*10 + int(ch-'0')
		}
		return parts[n-1]
	}
	code, _, body = b.post("/setup/encryption", url.Values{"answer0": {"XXXXX"}, "answer1": {pick(1)}})
	expect(t, "wrong group", code, "", body, 422, "", "does not match")
	code, loc, _ = b.post("/setup/encryption", url.Values{"answer0": {strings.ToLower(pick(0))}, "answer1": {pick(1)}})
	expect(t, "recovery confirmed", code, loc, "", 303, "/setup/vcenter", "")
	code, _, body = b.get("/setup/encryption")
	if code != 200 || strings.Contains(body, key[1]) {
		t.Fatalf("the recovery key is shown again after confirmation")
	}

	user, pass := sim.Credentials()
	vc := url.Values{"url": {sim.URL().String()}, "username": {user}, "password": {pass}}
	code, _, body = b.post("/setup/vcenter", url.Values{"url": {sim.URL().String()}, "action": {"probe"}})
	expect(t, "probe", code, "", body, 200, "", sim.SHA256Thumbprint())
	code, _, body = b.post("/setup/vcenter", vc)
	expect(t, "not trusted", code, "", body, 422, "", "confirm that you trust")
	vc.Set("thumbprint", sim.SHA256Thumbprint())
	vc.Set("trust", "yes")
	vc.Set("password", "wrong")
	code, _, body = b.post("/setup/vcenter", vc)
	expect(t, "wrong vCenter password", code, "", body, 422, "", "test connection")
	if strings.Contains(body, pass) {
		t.Fatal("the page echoes the vCenter password")
	}
	vc.Set("password", pass)
	code, loc, _ = b.post("/setup/vcenter", vc)
	expect(t, "vCenter", code, loc, "", 303, "/setup/policy", "")

	code, _, body = b.get("/setup/policy")
	expect(t, "policy form", code, "", body, 200, "", "web01")
	pol := url.Values{"name": {"Nightly"}, "selection": {"all"}, "schedule": {"22:00"}, "window": {"22:00-06:00"},
		"daily": {"14"}, "weekly": {"8"}, "monthly": {"12"}, "consistency": {"application-preferred"}}
	bad := url.Values{}
	for k, v := range pol {
		bad[k] = v
	}
	bad.Set("window", "late")
	bad.Set("daily", "-1")
	code, _, body = b.post("/setup/policy", bad)
	expect(t, "bad policy", code, "", body, 422, "", "a number from 0 to 1000")
	preview := url.Values{"action": {"preview"}}
	for k, v := range pol {
		preview[k] = v
	}
	preview.Set("selection", "names")
	preview.Set("names", "nomatch*")
	code, _, body = b.post("/setup/policy", preview)
	expect(t, "preview", code, "", body, 200, "", "No VM matches")
	code, loc, _ = b.post("/setup/policy", pol)
	expect(t, "policy", code, loc, "", 303, "/setup/options", "")
	code, _, body = b.get("/setup/options")
	expect(t, "options", code, "", body, 200, "", "does not drive tape libraries yet")
	code, loc, _ = b.post("/setup/options", url.Values{})
	expect(t, "options", code, loc, "", 303, "/setup/summary", "")
	code, _, body = b.get("/setup/summary")
	expect(t, "summary", code, "", body, 200, "", "Europe/Berlin")
	code, loc, _ = b.post("/setup/summary", url.Values{"backup_now": {"yes"}})
	expect(t, "finish", code, loc, "", 303, "/jobs/", "")

	code, loc, _ = b.get("/setup/admin")
	expect(t, "wizard after setup", code, loc, "", 303, "/", "")
	code, _, body = b.get("/")
	expect(t, "dashboard", code, "", body, 200, "", "protected VMs")
	if code, _, _ := b.get("/api/v1/jobs"); code != 200 {
		t.Fatalf("API after setup: %d", code)
	}
	// Restarting the wizard backend finds setup complete.
	if !w.Complete() {
		t.Fatal("wizard not complete")
	}
}

// fakeDisks stands in for the appliance image's disk discovery and pool
// building (appliance/disks), to test the storage step's RAID path.
type fakeDisks struct {
	mount string
	built []setup.PoolPlan
}

func (f *fakeDisks) Disks(context.Context) ([]setup.Disk, error) {
	return []setup.Disk{
		{Name: "nvme0n1", Path: "/dev/nvme0n1", Model: "Boot SSD", Serial: "BOOT1", Size: 240 << 30, System: true},
		{Name: "sda", Path: "/dev/sda", Model: "WDC WD40EFRX", Serial: "WD-A1", Size: 4 << 40, Rotational: true},
		{Name: "sdb", Path: "/dev/sdb", Model: "WDC WD40EFRX", Serial: "WD-B2", Size: 4 << 40, Rotational: true, InUse: "2 partitions, ext4"},
		{Name: "sdc", Path: "/dev/sdc", Model: "WDC WD40EFRX", Serial: "WD-C3", Size: 4 << 40, Rotational: true},
		{Name: "sdd", Path: "/dev/sdd", Model: "WDC WD40EFRX", Serial: "WD-D4", Size: 4 << 40, Rotational: true},
	}, nil
}

func (f *fakeDisks) CreatePool(_ context.Context, p setup.PoolPlan) (string, error) {
	f.built = append(f.built, p)
	return f.mount, nil
}

// TestWizardStorageRAID: the disks found are listed (the system disk is
// not), a RAID level's capacity and fault tolerance are shown before
// anything is written, and nothing is built without the confirmation.
func TestWizardStorageRAID(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "state")
	fd := &fakeDisks{mount: t.TempDir()}
	s := &Server{Dir: dir, Addr: "127.0.0.1:0"}
	w, err := setup.Open(ctx, setup.Options{Dir: dir, Disks: fd, Pools: fd})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s.Setup = w
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	b := newBrowser(t, s.URL())
	b.post("/setup/admin", url.Values{"username": {"admin"}, "password": {"Correct-Horse-7-battery"}, "password2": {"Correct-Horse-7-battery"}})
	b.get("/setup/network")
	if code, loc, _ := b.post("/setup/network", url.Values{"hostname": {"coffer"}, "mode": {"dhcp"}, "time_zone": {"UTC"}}); code != 303 || loc != "/setup/storage" {
		t.Fatalf("network: %d %s", code, loc)
	}
	code, _, body := b.get("/setup/storage")
	expect(t, "storage", code, "", body, 200, "", "WD-C3")
	if strings.Contains(body, "BOOT1") || strings.Contains(body, "A directory stands in") || !strings.Contains(body, "2 partitions, ext4") || !strings.Contains(body, "recommended: raid6") {
		t.Fatalf("disk list:\n%s", body)
	}
	all := url.Values{"kind": {"raid"}, "level": {"raid6"}, "disk": {"sda", "sdb", "sdc", "sdd"}, "action": {"plan"}}
	code, _, body = b.post("/setup/storage", all)
	expect(t, "plan", code, "", body, 200, "", "survives 2 failed disk(s)")
	if !strings.Contains(body, "8.0 TiB") || strings.Count(body, `name="disk" value="sd`) != 4 || strings.Count(body, " checked>") < 4 {
		t.Fatalf("plan shown without the capacity or the ticked disks:\n%s", body)
	}
	if len(fd.built) != 0 {
		t.Fatal("a plan built the pool")
	}
	all.Set("action", "next")
	code, _, body = b.post("/setup/storage", all)
	expect(t, "no confirmation", code, "", body, 422, "", "confirm that every chosen disk is erased")
	bad := url.Values{"kind": {"raid"}, "level": {"raid6"}, "disk": {"sda", "sdb", "sdc"}, "confirm_erase": {"yes"}}
	code, _, body = b.post("/setup/storage", bad)
	expect(t, "too few disks", code, "", body, 422, "", "at least 4 disks")
	if len(fd.built) != 0 {
		t.Fatal("a refused request built the pool")
	}
	all.Set("confirm_erase", "yes")
	code, loc, _ := b.post("/setup/storage", all)
	expect(t, "build", code, loc, "", 303, "/setup/encryption", "")
	if len(fd.built) != 1 || fd.built[0].Level != "raid6" || fd.built[0].Tolerates != 2 || len(fd.built[0].Disks) != 4 {
		t.Fatalf("built %+v", fd.built)
	}
	code, _, body = b.get("/setup/encryption")
	expect(t, "encryption", code, "", body, 200, "", "recovery key")
	if _, err := os.Stat(filepath.Join(fd.mount, "store")); err != nil {
		t.Fatalf("the store is not on the new pool: %v", err)
	}
}
