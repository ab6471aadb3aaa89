package ui

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"coffer.dev/coffer/appliance/app"
	"coffer.dev/coffer/appliance/catalog"
	"coffer.dev/coffer/appliance/catalog/fsys"
	"coffer.dev/coffer/appliance/jobs"
	"coffer.dev/coffer/appliance/jobs/schedule"
	"coffer.dev/coffer/appliance/restore"
	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/store"
	"coffer.dev/coffer/store/point"
)

// manBackend is fakeBackend with an inventory, points with a catalog,
// and restores, locks and policy changes that are remembered.
type manBackend struct {
	*fakeBackend
	mu       sync.Mutex
	inv      *vsphere.Inventory
	points   []*point.RecoveryPoint
	locks    map[point.ID]time.Time
	restores []restore.Request
	putBacks []app.PutBackRequest
}

const (
	manPoint1      point.ID = "20261123T000000.000000Z-00000001"
	manPoint2      point.ID = "20261124T000000.000000Z-00000002"
	manHostileName          = `<script>alert("x")</script>`
	manHostileFile          = `<img src=x onerror=alert(1)>.conf`
)

func (m *manBackend) Inventory(context.Context) (*vsphere.Inventory, error) { return m.inv, nil }
func (m *manBackend) Points() ([]*point.RecoveryPoint, error)               { return slices.Clone(m.points), nil }
func (m *manBackend) UpdatePolicy(p jobs.Policy) (jobs.Policy, error) {
	for i := range m.policies {
		if m.policies[i].ID == p.ID {
			m.policies[i] = p
			return p, nil
		}
	}
	return p, errors.New("no such policy")
}
func (m *manBackend) DeletePolicy(id string) error {
	n := len(m.policies)
	m.policies = slices.DeleteFunc(m.policies, func(p jobs.Policy) bool { return p.ID == id })
	if len(m.policies) == n {
		return errors.New("no such policy")
	}
	return nil
}
func (m *manBackend) RestoreVM(ctx context.Context, req restore.Request) (*restore.Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if req.Name == "web01" {
		return nil, restore.ErrNameTaken
	}
	m.restores = append(m.restores, req)
	now := time.Now()
	return &restore.Result{VM: req.Name, InstanceUUID: "5001-new", Ref: "vm-77", PoweredOn: req.PowerOn, Started: now.Add(-90 * time.Second), Finished: now,
		Disks:    []restore.Disk{{Name: "scsi0:0", Device: "scsi0:0", File: "[ds1] " + req.Name + "/" + req.Name + ".vmdk", Capacity: 16 << 30, Written: 3 << 30}},
		Warnings: []string{"the CD-ROM was left out"}}, nil
}
func (m *manBackend) PutFilesBack(ctx context.Context, req app.PutBackRequest) (*restore.PutResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.putBacks = append(m.putBacks, req)
	return &restore.PutResult{Files: 1, Bytes: 1234, Notes: []string{"owner kept"}}, nil
}
func (m *manBackend) LockPoint(id point.ID, until time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if until.Before(m.locks[id]) {
		return store.ErrLocked
	}
	m.locks[id] = until
	return nil
}
func (m *manBackend) PointLock(id point.ID) (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.locks[id], nil
}

// manStart starts a server with manBackend: two VMs (web01 and a hostile
// name), two points of web01, the newer one catalogued, and policies.
func manStart(t *testing.T) (*Server, *manBackend, string) {
	t.Helper()
	s, fb, _ := startServer(t)
	m := &manBackend{fakeBackend: fb, locks: map[point.ID]time.Time{}}
	m.inv = &vsphere.Inventory{
		Datacenters:   []vsphere.Datacenter{{Name: "DC1", Path: "/DC1"}},
		Hosts:         []vsphere.Host{{Name: "esx01.lab", Cluster: "Gold", Datacenter: "DC1", ConnectionState: "connected"}},
		ResourcePools: []vsphere.ResourcePool{{Name: "Resources", Path: "/DC1/host/Gold/Resources", Datacenter: "DC1"}},
		Datastores:    []vsphere.Datastore{{Name: "ds-fast", Capacity: 1 << 40, Free: 1 << 39, Accessible: true, Datacenter: "DC1"}},
		Folders:       []vsphere.Folder{{Name: "Production", Path: "Production", Datacenter: "DC1"}, {Name: "Restores", Path: "Restores", Datacenter: "DC1"}},
		VMs: []vsphere.VM{
			{InstanceUUID: "u1", Name: "web01", Datacenter: "DC1", Folder: "Production", PowerState: "poweredOn", Tags: []string{"Backup/Gold"}},
			{InstanceUUID: "u2", Name: "db01", Datacenter: "DC1", Folder: "Production/DB", PowerState: "poweredOn"},
			{InstanceUUID: "u3", Name: manHostileName, Datacenter: "DC1", Folder: "Lab", PowerState: "poweredOff"},
			{InstanceUUID: "u9", Name: "template-linux", Template: true},
		},
	}
	now := time.Now()
	m.points = []*point.RecoveryPoint{
		{ID: manPoint1, Source: "vm:u1", Created: now.Add(-48 * time.Hour), Consistency: point.CrashConsistent,
			Disks: []point.Disk{{Name: "scsi0:0", Size: 16 << 30}}, Stats: point.Stats{Logical: 16 << 30, Stored: 2 << 30}},
		{ID: manPoint2, Source: "vm:u1", Created: now.Add(-24 * time.Hour), Consistency: point.ApplicationConsistent,
			Disks: []point.Disk{{Name: "scsi0:0", Size: 16 << 30, Incremental: true}, {Name: "scsi0:1", Size: 8 << 30}}, Stats: point.Stats{Logical: 24 << 30, Stored: 1 << 30}},
	}
	mtime := now.Add(-72 * time.Hour).Truncate(time.Second)
	for i, id := range []point.ID{manPoint1, manPoint2} {
		cat := &catalog.Catalog{Header: catalog.Header{Point: id, Source: "vm:u1", Name: "web01", Created: m.points[i].Created, Built: now,
			Volumes: []catalog.VolumeInfo{{ID: "scsi0:0/p1", Disk: "scsi0:0", Scheme: "gpt", FS: "ext4", Label: "root", Size: 16 << 30, Entries: 5}},
			Verdict: catalog.Verified, Entries: 5}}
		if i == 1 {
			cat.Verdict, cat.Findings = catalog.Warning, []string{"/var/log/big.log could not be read back"}
		}
		for _, e := range []fsys.Entry{
			{Path: "/", Type: fsys.TypeDir},
			{Path: "/etc", Type: fsys.TypeDir, Mode: 0o755},
			{Path: "/etc/nginx", Type: fsys.TypeDir, Mode: 0o755},
			{Path: "/etc/nginx/nginx.conf", Type: fsys.TypeFile, Size: int64(100 + i), Mode: 0o644, MTime: mtime.Add(time.Duration(i) * time.Hour)},
			{Path: "/etc/" + manHostileFile, Type: fsys.TypeFile, Size: 1, Mode: 0o600},
		} {
			cat.Entries = append(cat.Entries, catalog.Entry{Entry: e})
		}
		if err := fb.Catalogs().Save(cat); err != nil {
			t.Fatal(err)
		}
	}
	fb.policies = []jobs.Policy{
		{ID: "gold", Name: "Gold", Enabled: true, Selection: jobs.Selection{Tags: []string{"Backup/Gold"}}, Schedule: schedule.MustParse("22:00"),
			TimeZone: "Europe/Berlin", Retention: store.Retention{Daily: 7, Weekly: 4}, Consistency: vsphere.PreferApplication, Priority: 5},
		{ID: "lab", Name: manHostileName, Enabled: false, Schedule: schedule.MustParse("Sat 03:00"), Selection: jobs.Selection{All: true, Exclude: jobs.Criteria{Names: []string{"web*"}}}},
	}
	s.SetBackend(m)
	return s, m, s.URL()
}

// manLogin opens a browser session as user.
func manLogin(t *testing.T, base, user, pw string) *browser {
	t.Helper()
	b := newBrowser(t, base)
	code, loc, body := b.post("/login", url.Values{"username": {user}, "password": {pw}, "next": {"/me"}})
	expect(t, "login "+user, code, loc, body, http.StatusSeeOther, "/me", "")
	if code, _, body := b.get("/me"); code != 200 || b.csrf == "" {
		t.Fatalf("me after login: %d %s", code, body)
	}
	return b
}

func manAdmin(t *testing.T, base string) *browser {
	return manLogin(t, base, "admin", "Correct-Horse-7-battery")
}

// manAddUser creates a user through the API with an admin token.
func manAddUser(t *testing.T, s *Server, name, role string) *browser {
	t.Helper()
	c := newBrowser(t, s.URL()).c
	tok := login(t, s, c)
	if code, body := do(t, c, "POST", s.URL()+"/api/v1/users", tok, `{"name":"`+name+`","role":"`+role+`","password":"Correct-Horse-8-battery"}`); code != 201 {
		t.Fatalf("create %s: %d %s", name, code, body)
	}
	return manLogin(t, s.URL(), name, "Correct-Horse-8-battery")
}

var (
	manScriptTag   = regexp.MustCompile(`(?i)<script\b[^>]*>`)
	manControl     = regexp.MustCompile(`(?is)<(input|select|textarea)\b([^>]*)>`)
	manAttrID      = regexp.MustCompile(`\bid="([^"]+)"`)
	manAttrType    = regexp.MustCompile(`\btype="([^"]+)"`)
	manLabelFor    = regexp.MustCompile(`<label\b[^>]*\bfor="([^"]+)"`)
	manAnyID       = regexp.MustCompile(`<[a-zA-Z][^>]*?\sid="([^"]+)"`)
	manDescribedBy = regexp.MustCompile(`aria-describedby="([^"]+)"`)
)

// manCheckPage checks what every page must be: no inline style or
// script, and a label for every form control.
func manCheckPage(t *testing.T, what, body string) {
	t.Helper()
	if strings.Contains(body, "style=") || strings.Contains(body, "<style") {
		t.Errorf("%s: inline style", what)
	}
	if tags := manScriptTag.FindAllString(body, -1); len(tags) != 1 || tags[0] != `<script src="/static/app.js" defer>` {
		t.Errorf("%s: scripts %q", what, tags)
	}
	if strings.Contains(body, "<script>alert") {
		t.Errorf("%s: a hostile name is not escaped", what)
	}
	labels := map[string]bool{}
	for _, m := range manLabelFor.FindAllStringSubmatch(body, -1) {
		labels[m[1]] = true
	}
	for _, m := range manControl.FindAllStringSubmatch(body, -1) {
		if tm := manAttrType.FindStringSubmatch(m[2]); tm != nil && tm[1] == "hidden" {
			continue
		}
		id := manAttrID.FindStringSubmatch(m[2])
		if id == nil || !labels[id[1]] {
			t.Errorf("%s: control without a label: %s", what, m[0])
		}
	}
	ids := map[string]int{}
	for _, m := range manAnyID.FindAllStringSubmatch(body, -1) {
		ids[m[1]]++
	}
	for id, n := range ids {
		if n > 1 {
			t.Errorf("%s: id %q is used %d times", what, id, n)
		}
	}
	for id := range labels {
		if ids[id] == 0 {
			t.Errorf("%s: <label for=%q> names no element", what, id)
		}
	}
	for _, m := range manDescribedBy.FindAllStringSubmatch(body, -1) {
		for _, id := range strings.Fields(m[1]) {
			if ids[id] == 0 {
				t.Errorf("%s: aria-describedby names the missing id %q", what, id)
			}
		}
	}
	for _, m := range regexp.MustCompile(`(?is)<form\b[^>]*method="post"[^>]*>.*?</form>`).FindAllString(body, -1) {
		if !strings.Contains(m, `name="csrf_token"`) {
			t.Errorf("%s: a POST form without the CSRF field: %.200s", what, m)
		}
	}
}

func manGet(t *testing.T, b *browser, path string, wantCode int, wants ...string) string {
	t.Helper()
	code, loc, body := b.get(path)
	if code != wantCode {
		t.Fatalf("GET %s: %d → %q, want %d\n%.3000s", path, code, loc, wantCode, body)
	}
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("GET %s lacks %q", path, w)
		}
	}
	if code == 200 {
		manCheckPage(t, path, body)
	}
	return body
}

func TestManagePagesForAdmin(t *testing.T) {
	s, _, base := manStart(t)
	b := manAdmin(t, base)
	hostile := "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"

	body := manGet(t, b, "/policies", 200, "Gold", "tags Backup/Gold", "22:00", "Europe/Berlin", "7 daily, 4 weekly", `/policies/gold/edit`,
		`action="/policies/gold/run"`, `action="/policies/gold/delete"`, "data-confirm", "disabled (manual runs only)", hostile, "names web*")
	// Gold covers web01 (tagged); the hostile policy all but web* and the template.
	if !regexp.MustCompile(`(?s)<td>1\s*<details>.*?<li>web01</li>`).MatchString(body) || !strings.Contains(body, "<li>db01</li>") {
		t.Errorf("VMs covered now are wrong:\n%s", body)
	}
	manGet(t, b, "/policies/new", 200, `name="schedule"`, `name="yearly"`, `name="priority"`, `name="pre_freeze"`, `value="preview"`, "db01", hostile)
	manGet(t, b, "/policies/gold/edit", 200, `value="Gold"`, `value="Backup/Gold"`, `value="5"`, "Europe/Berlin")
	manGet(t, b, "/policies/nope/edit", 404)

	body = manGet(t, b, "/points", 200, "web01", "consistency-application", "consistency-crash", "verified", "warning", "/var/log/big.log could not be read back",
		"16.0 GiB", "24.0 GiB", "/points/"+string(manPoint2)+"/restore", `action="/points/search"`)
	if strings.Index(body, string(manPoint2)) > strings.Index(body, string(manPoint1)) {
		t.Error("points are not newest first")
	}
	manGet(t, b, "/points?source=vm:u2", 200, "No recovery points of this VM")
	manGet(t, b, "/points/search?q=nginx.conf", 200, "2 match(es)", "/etc/nginx/nginx.conf", "browse?path=%2Fetc%2Fnginx%2Fnginx.conf&amp;volume=scsi0%3A0%2Fp1")
	manGet(t, b, "/points/search?q=%5B", 400, "The search failed")
	manGet(t, b, "/points/"+string(manPoint2), 200, "scsi0:1", "/api/v1/points/"+string(manPoint2)+"/disks/scsi0:1/export?format=qcow2", "format=vhdx", "format=vmdk", "format=raw",
		"scsi0:0/p1", "ext4", "Findings", `action="/points/`+string(manPoint2)+`/lock"`, "Not locked")
	manGet(t, b, "/points/20990101T000000.000000Z-00000009", 404)
	manGet(t, b, "/points/not-a-point", 400)
	body = manGet(t, b, "/points/"+string(manPoint2)+"/browse?path=/etc", 200, "nginx/", "0755", "0600", "&lt;img src=x onerror=alert(1)&gt;.conf",
		"/api/v1/points/"+string(manPoint2)+"/files/download?format=zip&amp;path=%2Fetc%2Fnginx&amp;volume=scsi0%3A0%2Fp1")
	if !strings.Contains(body, "format=tar&amp;path=%2Fetc%2Fnginx") {
		t.Error("no tar download of a folder")
	}
	manGet(t, b, "/points/"+string(manPoint2)+"/browse?path=/etc/nginx/nginx.conf", 200, "Versions of this file", "this point",
		"/points/"+string(manPoint1)+"/browse?path=%2Fetc%2Fnginx%2Fnginx.conf", "changed",
		"/api/v1/points/"+string(manPoint2)+"/files/download?path=%2Fetc%2Fnginx%2Fnginx.conf&amp;volume=scsi0%3A0%2Fp1")
	manGet(t, b, "/points/"+string(manPoint2)+"/browse?path=/nope", 404, "/nope is not in this point")

	manGet(t, b, "/points/"+string(manPoint2)+"/restore", 200, "esx01.lab (cluster Gold)", "/DC1/host/Gold/Resources", "ds-fast — 512.0 GiB free of 1.0 TiB",
		`value="Production"`, `value="Restores"`, "Isolated restore", "disconnected", `id="power_on"`, `value="scsi0:1"`, "web01-restore-")
	manGet(t, b, "/points/"+string(manPoint2)+"/put-back?path=/etc/nginx/nginx.conf&volume=scsi0:0/p1", 200, `value="u1" selected`, `name="guest_credentials"`, `name="dest"`)

	body = manGet(t, b, "/settings", 200, "admin", "administrator", "restore-only", `action="/settings/users"`, `action="/settings/tokens"`,
		s.CertificateFingerprint(), `enctype="multipart/form-data"`, "serves the new certificate at once", "Time zone", "UTC", "Europe/Berlin")
	if !regexp.MustCompile(`(?s)<h2[^>]*>Notifications</h2>\s*<p>.*href="/settings/notifications"`).MatchString(body) {
		t.Error("no Notifications section linking to the notification settings")
	}
	manGet(t, b, "/me", 200, "admin", "administrator", `action="/me/password"`, `name="new2"`)
	// Static CSS is served.
	if code, _, css := b.get("/static/manage.css"); code != 200 || !strings.Contains(css, ".man-dl") {
		t.Errorf("manage.css: %d", code)
	}
}

func TestManagePolicyForms(t *testing.T) {
	_, m, base := manStart(t)
	b := manAdmin(t, base)
	form := func(kv ...string) url.Values {
		v := url.Values{"name": {"Silver"}, "enabled": {"yes"}, "selection": {"choose"}, "names": {"db*"}, "schedule": {"Mon..Fri 21:00"},
			"window": {"20:00-06:00"}, "time_zone": {"Europe/Paris"}, "daily": {"10"}, "weekly": {"4"}, "monthly": {"6"}, "yearly": {"2"},
			"consistency": {"crash"}, "priority": {"3"}, "rpo": {"2d"}, "action": {"save"}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	// Mistakes are shown next to their fields, and nothing is saved.
	code, _, body := b.post("/policies/new", form("name", "", "schedule", "every full moon", "daily", "-3", "time_zone", "Mars/Olympus"))
	expect(t, "bad policy", code, "", body, http.StatusUnprocessableEntity, "", "Please correct the marked fields.")
	for _, want := range []string{`id="schedule-error"`, "a whole number from 0 to 1000", `value="every full moon"`, `value="Mars/Olympus"`} {
		if !strings.Contains(body, want) {
			t.Errorf("bad policy page lacks %q", want)
		}
	}
	code, _, body = b.post("/policies/new", form("name", "", "time_zone", "Mars/Olympus", "tags", "nocategory"))
	expect(t, "invalid policy", code, "", body, 422, "", "name: must not be empty")
	for _, want := range []string{`id="name-error"`, `id="tz-error"`, "not an IANA time zone", "nocategory"} {
		if !strings.Contains(body, want) {
			t.Errorf("invalid policy page lacks %q", want)
		}
	}
	manCheckPage(t, "invalid policy", body)
	if len(m.policies) != 2 {
		t.Fatalf("an invalid policy was saved: %+v", m.policies)
	}
	// Preview: db* and the chosen VM, without the excluded one.
	code, _, body = b.post("/policies/new", form("action", "preview", "vm", "u3", "exclude_vm", "u2"))
	expect(t, "preview", code, "", body, 200, "", "This policy covers 1 VM(s) now")
	if !strings.Contains(body, "<li>&lt;script&gt;") || strings.Contains(body, "<li>db01 ") || len(m.policies) != 2 {
		t.Errorf("preview lists the wrong VMs:\n%s", body)
	}
	manCheckPage(t, "preview", body)
	code, _, body = b.post("/policies/new", form("action", "preview"))
	expect(t, "preview by pattern", code, "", body, 200, "", "This policy covers 1 VM(s) now")
	if !strings.Contains(body, "<li>db01 <small>Production/DB") {
		t.Errorf("preview lacks db01:\n%s", body)
	}
	// A good policy is created and listed.
	code, loc, body := b.post("/policies/new", form("pre_freeze", "/usr/local/bin/freeze", "guest_credentials", "linux-root"))
	expect(t, "create", code, loc, body, http.StatusSeeOther, "/policies?ok=", "")
	p, err := m.Policy("silver")
	if err != nil {
		t.Fatal(err)
	}
	if !p.Enabled || p.Selection.All || !slices.Equal(p.Selection.Names, []string{"db*"}) || p.Schedule.String() != "Mon..Fri *-*-* 21:00" ||
		p.Window.String() != "20:00-06:00" || p.TimeZone != "Europe/Paris" || p.Retention.Yearly != 2 || p.Retention.Daily != 10 ||
		p.Consistency != vsphere.CrashOnly || p.Priority != 3 || p.RPO != 48*time.Hour || p.Hooks.PreFreeze != "/usr/local/bin/freeze" || p.GuestCredentials != "linux-root" {
		t.Errorf("created policy %+v", p)
	}
	_, _, body = b.get(loc)
	if !strings.Contains(body, "Policy Silver created.") || !strings.Contains(body, `href="/policies/silver/edit"`) {
		t.Errorf("the new policy is not listed:\n%s", body)
	}
	// Hooks need guest credentials.
	code, _, body = b.post("/policies/new", form("name", "Hooks", "post_backup", "truncate"))
	expect(t, "hooks without credentials", code, "", body, 422, "", `id="creds-error"`)

	// Edit keeps the ID and changes fields.
	manGet(t, b, "/policies/silver/edit", 200, `value="db*"`, `value="2d"`, `value="/usr/local/bin/freeze"`, `value="crash" selected`)
	code, loc, body = b.post("/policies/silver/edit", form("name", "Silver 2", "enabled", "", "selection", "all", "folders", "Production"))
	expect(t, "update", code, loc, body, http.StatusSeeOther, "/policies?ok=", "")
	if p, _ := m.Policy("silver"); p.Name != "Silver 2" || p.Enabled || !p.Selection.All || len(p.Selection.Folders) != 0 {
		t.Errorf("updated policy %+v", p)
	}
	code, _, _ = b.post("/policies/nope/edit", form())
	if code != 404 {
		t.Errorf("edit of a missing policy: %d", code)
	}

	// Run now goes to the job; delete removes the policy.
	code, loc, body = b.post("/policies/gold/run", url.Values{})
	expect(t, "run", code, loc, body, http.StatusSeeOther, "/jobs/job-1?ok=", "")
	code, _, body = b.post("/policies/nope/run", url.Values{})
	expect(t, "run a missing policy", code, "", body, http.StatusConflict, "", "The policy was not started")
	code, loc, body = b.post("/policies/silver/delete", url.Values{})
	expect(t, "delete", code, loc, body, http.StatusSeeOther, "/policies?ok=", "")
	if _, err := m.Policy("silver"); err == nil {
		t.Error("the policy was not deleted")
	}
}

func TestManageRolesAndCSRF(t *testing.T) {
	s, m, base := manStart(t)
	viewer := manAddUser(t, s, "vera", "viewer")
	body := manGet(t, viewer, "/policies", 200, "Gold")
	for _, bad := range []string{"/policies/new", "/policies/gold/edit", "/run", "/delete", "data-confirm"} {
		if strings.Contains(body, bad) {
			t.Errorf("a viewer sees %q on /policies", bad)
		}
	}
	body = manGet(t, viewer, "/points/"+string(manPoint2), 200, "scsi0:1")
	for _, bad := range []string{"/export?", "/restore", "/lock"} {
		if strings.Contains(body, bad) {
			t.Errorf("a viewer sees %q on a point", bad)
		}
	}
	body = manGet(t, viewer, "/points/"+string(manPoint2)+"/browse?path=/etc", 200, "nginx/")
	if strings.Contains(body, "/files/download") || strings.Contains(body, "put-back") {
		t.Error("a viewer sees download or put-back links")
	}
	for _, p := range []string{"/policies/gold/run", "/policies/gold/delete", "/policies/new", "/points/" + string(manPoint2) + "/lock",
		"/points/" + string(manPoint2) + "/restore", "/settings/users", "/settings/tokens"} {
		if code, _, _ := viewer.post(p, url.Values{"name": {"x"}, "until": {"2099-01-01"}}); code != http.StatusForbidden {
			t.Errorf("viewer POST %s: %d", p, code)
		}
	}
	manGet(t, viewer, "/settings", http.StatusForbidden)
	manGet(t, viewer, "/points/"+string(manPoint2)+"/restore", http.StatusForbidden)
	if len(m.policies) != 2 || len(m.restores) != 0 || len(m.locks) != 0 {
		t.Error("a viewer changed something")
	}

	ro := manAddUser(t, s, "rita", "restore-only")
	manGet(t, ro, "/points", 200, "web01")
	manGet(t, ro, "/points/"+string(manPoint2)+"/restore", 200, "Restore web01 as a new VM")
	body = manGet(t, ro, "/points/"+string(manPoint2), 200, "/export?format=raw")
	if strings.Contains(body, `/lock"`) {
		t.Error("restore-only sees the lock form")
	}
	manGet(t, ro, "/policies/new", http.StatusForbidden)
	manGet(t, ro, "/policies", http.StatusForbidden)
	manGet(t, ro, "/settings", http.StatusForbidden)
	manGet(t, ro, "/me", 200, "restore-only")

	// Without the CSRF field every POST is refused, even the admin's.
	admin := manAdmin(t, base)
	for _, p := range []string{"/policies/gold/run", "/policies/gold/delete", "/settings/tokens", "/me/password", "/points/" + string(manPoint2) + "/restore"} {
		if code, _, _ := admin.post(p, url.Values{"csrf_token": {"-"}, "name": {"x"}}); code != http.StatusForbidden {
			t.Errorf("POST %s without CSRF: %d", p, code)
		}
		if code, _, _ := admin.post(p, url.Values{"csrf_token": {"forged"}, "name": {"x"}}); code != http.StatusForbidden {
			t.Errorf("POST %s with a forged CSRF token: %d", p, code)
		}
	}
	if len(m.policies) != 2 || len(m.restores) != 0 {
		t.Error("a POST without CSRF changed something")
	}
}

func TestManageRestoreAndPutBack(t *testing.T) {
	_, m, base := manStart(t)
	b := manLogin(t, base, "admin", "Correct-Horse-7-battery")
	path := "/points/" + string(manPoint2) + "/restore"
	code, _, body := b.post(path, url.Values{"name": {"web01"}, "disk": {"scsi0:0"}})
	expect(t, "name taken", code, "", body, http.StatusConflict, "", "a VM with this name exists already")
	code, _, body = b.post(path, url.Values{"name": {"copy"}})
	expect(t, "no disk", code, "", body, 422, "", "choose at least one disk")
	code, _, body = b.post(path, url.Values{"name": {"copy"}, "disk": {"scsi0:0"}, "placement": {"elsewhere"}})
	expect(t, "bad placement", code, "", body, 422, "", "choose a host or a resource pool")
	if len(m.restores) != 0 {
		t.Fatal("a bad restore request reached the backend")
	}
	code, _, body = b.post(path, url.Values{"name": {"web01-test"}, "placement": {"pool:/DC1/host/Gold/Resources"}, "datastore": {"ds-fast"},
		"folder": {"Restores"}, "isolated": {"yes"}, "power_on": {"yes"}, "disk": {"scsi0:1"}})
	expect(t, "restore", code, "", body, 200, "", "Restored as the new VM web01-test")
	for _, want := range []string{"[ds1] web01-test/web01-test.vmdk", "3.0 GiB", "powered on", "every network adapter is disconnected", "the CD-ROM was left out", "<dt>Took</dt><dd>2 min</dd>"} {
		if !strings.Contains(body, want) {
			t.Errorf("restore result lacks %q", want)
		}
	}
	manCheckPage(t, "restore result", body)
	want := restore.Request{Point: manPoint2, Name: "web01-test", ResourcePool: "/DC1/host/Gold/Resources", Datastore: "ds-fast", Folder: "Restores",
		Isolated: true, PowerOn: true, Disks: []string{"scsi0:1"}}
	if len(m.restores) != 1 || !manSameRequest(m.restores[0], want) {
		t.Errorf("restore request %+v, want %+v", m.restores, want)
	}
	// All disks: the request names none (all of them).
	b.post(path, url.Values{"name": {"full"}, "placement": {"host:esx01.lab"}, "disk": {"scsi0:0", "scsi0:1"}})
	if len(m.restores) != 2 || m.restores[1].Disks != nil || m.restores[1].Host != "esx01.lab" {
		t.Errorf("full restore %+v", m.restores)
	}

	pb := "/points/" + string(manPoint2) + "/put-back"
	code, _, body = b.post(pb, url.Values{"path": {"/etc/nginx/nginx.conf"}, "vm": {"u1"}})
	expect(t, "put back without credentials", code, "", body, 422, "", `id="creds-error"`)
	code, _, body = b.post(pb, url.Values{"path": {"/etc/nope"}, "vm": {"u1"}, "guest_credentials": {"root"}})
	expect(t, "put back a missing file", code, "", body, 404, "", "/etc/nope is not in this point")
	code, _, body = b.post(pb, url.Values{"path": {"/etc/nginx"}, "volume": {"scsi0:0/p1"}, "vm": {"u1"}, "guest_credentials": {"linux-root"},
		"dest": {"/tmp/restore"}, "overwrite": {"yes"}})
	expect(t, "put back", code, "", body, 200, "", "Files written")
	if !strings.Contains(body, "owner kept") || len(m.putBacks) != 1 {
		t.Fatalf("put back result:\n%s", body)
	}
	if got := m.putBacks[0]; got != (app.PutBackRequest{Point: manPoint2, Volume: "scsi0:0/p1", Path: "/etc/nginx", VM: "u1", Dest: "/tmp/restore", Overwrite: true, GuestCredentials: "linux-root"}) {
		t.Errorf("put back request %+v", got)
	}
	manCheckPage(t, "put back", body)
}

func manSameRequest(a, b restore.Request) bool {
	return a.Point == b.Point && a.Name == b.Name && a.Datacenter == b.Datacenter && a.Folder == b.Folder && a.Host == b.Host &&
		a.ResourcePool == b.ResourcePool && a.Datastore == b.Datastore && a.Network == b.Network && a.Isolated == b.Isolated &&
		a.PowerOn == b.PowerOn && slices.Equal(a.Disks, b.Disks)
}

func TestManageRetentionLock(t *testing.T) {
	_, m, base := manStart(t)
	b := manAdmin(t, base)
	path := "/points/" + string(manPoint1) + "/lock"
	code, _, body := b.post(path, url.Values{"until": {"2001-01-01"}})
	expect(t, "lock in the past", code, "", body, 422, "", "The lock must end in the future.")
	code, _, body = b.post(path, url.Values{"until": {"soon"}})
	expect(t, "malformed lock", code, "", body, 422, "", "YYYY-MM-DD")
	code, loc, body := b.post(path, url.Values{"until": {"2098-06-30"}})
	expect(t, "lock", code, loc, body, http.StatusSeeOther, "/points/"+string(manPoint1)+"?ok=", "")
	if got := m.locks[manPoint1]; !got.Equal(time.Date(2098, 6, 30, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("lock %v", got)
	}
	manGet(t, b, "/points/"+string(manPoint1), 200, "Extend the lock until", `min="2098-07-01"`)
	manGet(t, b, "/points", 200, "locked</span> until")
	code, _, body = b.post(path, url.Values{"until": {"2097-01-01"}})
	expect(t, "shorter lock", code, "", body, http.StatusConflict, "", "can only be extended")
}

func TestManageUsersTokensAndMe(t *testing.T) {
	s, _, base := manStart(t)
	b := manAdmin(t, base)
	// Users.
	code, _, body := b.post("/settings/users", url.Values{"name": {"olga"}, "role": {"operator"}, "password": {"weak"}, "password2": {"weak"}})
	expect(t, "weak password", code, "", body, 422, "", `id="user_password-error"`)
	code, _, body = b.post("/settings/users", url.Values{"name": {"olga"}, "role": {"operator"}, "password": {"Correct-Horse-8-battery"}, "password2": {"other"}})
	expect(t, "passwords differ", code, "", body, 422, "", "the two passwords differ")
	code, loc, body := b.post("/settings/users", url.Values{"name": {"olga"}, "role": {"operator"}, "password": {"Correct-Horse-8-battery"}, "password2": {"Correct-Horse-8-battery"}})
	expect(t, "add user", code, loc, body, http.StatusSeeOther, "/settings?ok=", "")
	code, _, body = b.post("/settings/users", url.Values{"name": {"olga"}, "role": {"viewer"}, "password": {"Correct-Horse-8-battery"}, "password2": {"Correct-Horse-8-battery"}})
	expect(t, "duplicate user", code, "", body, http.StatusConflict, "", "already exists")
	code, loc, body = b.post("/settings/users/olga/role", url.Values{"role": {"viewer"}})
	expect(t, "change role", code, loc, body, http.StatusSeeOther, "/settings?ok=", "")
	if u, _ := s.users.User("olga"); u.Role != "viewer" {
		t.Errorf("role %s", u.Role)
	}
	code, _, body = b.post("/settings/users/admin/role", url.Values{"role": {"viewer"}})
	expect(t, "demote the last admin", code, "", body, http.StatusConflict, "", "the last administrator cannot be removed or demoted")
	code, _, body = b.post("/settings/users/admin/delete", url.Values{})
	expect(t, "delete the last admin", code, "", body, http.StatusConflict, "", "the last administrator cannot be removed or demoted")
	manCheckPage(t, "settings with an error", body)
	code, loc, body = b.post("/settings/users/olga/password", url.Values{"password": {"Brand-New-Horse-9"}, "password2": {"Brand-New-Horse-9"}})
	expect(t, "reset password", code, loc, body, http.StatusSeeOther, "/settings?ok=", "")
	manLogin(t, base, "olga", "Brand-New-Horse-9")
	code, loc, body = b.post("/settings/users/olga/unlock", url.Values{})
	expect(t, "unlock", code, loc, body, http.StatusSeeOther, "/settings?ok=", "")
	code, loc, body = b.post("/settings/users/olga/delete", url.Values{})
	expect(t, "delete", code, loc, body, http.StatusSeeOther, "/settings?ok=", "")
	code, _, body = b.post("/settings/users/olga/delete", url.Values{})
	expect(t, "delete twice", code, "", body, http.StatusNotFound, "", "no such user")

	// Tokens: the secret once, never in the list.
	code, _, body = b.post("/settings/tokens", url.Values{"name": {"nagios"}, "role": {"viewer"}, "valid_days": {"99999"}})
	expect(t, "token validity", code, "", body, 422, "", "0 (no expiry) to 3650 days")
	code, _, body = b.post("/settings/tokens", url.Values{"name": {"nagios"}, "role": {"viewer"}, "valid_days": {"30"}})
	expect(t, "create token", code, "", body, 200, "", "shown only this once")
	manCheckPage(t, "token", body)
	secret := regexp.MustCompile(`value="(coffer_[^"]+)"`).FindStringSubmatch(body)
	if secret == nil {
		t.Fatalf("no secret on the token page:\n%s", body)
	}
	list := manGet(t, b, "/settings", 200, "nagios", "viewer")
	if strings.Contains(list, secret[1]) || strings.Contains(list, "coffer_") {
		t.Error("the token list shows the secret")
	}
	c := newBrowser(t, base).c
	if code, _ := do(t, c, "GET", base+"/api/v1/jobs", secret[1], ""); code != 200 {
		t.Errorf("the new token does not work: %d", code)
	}
	id := s.users.Tokens()[0].ID
	code, loc, body = b.post("/settings/tokens/"+id+"/revoke", url.Values{})
	expect(t, "revoke", code, loc, body, http.StatusSeeOther, "/settings?ok=", "")
	if code, _ := do(t, c, "GET", base+"/api/v1/jobs", secret[1], ""); code != 401 {
		t.Errorf("the revoked token works: %d", code)
	}

	// Own password.
	code, _, body = b.post("/me/password", url.Values{"current": {"wrong-Horse-1-battery"}, "new": {"Brand-New-Horse-9"}, "new2": {"Brand-New-Horse-9"}})
	expect(t, "wrong current password", code, "", body, 422, "", "the current password is wrong")
	code, _, body = b.post("/me/password", url.Values{"current": {"Correct-Horse-7-battery"}, "new": {"Brand-New-Horse-9"}, "new2": {"Brand-New-Horse-0"}})
	expect(t, "new passwords differ", code, "", body, 422, "", "the two new passwords differ")
	other := manAdmin(t, base)
	code, loc, body = b.post("/me/password", url.Values{"current": {"Correct-Horse-7-battery"}, "new": {"Brand-New-Horse-9"}, "new2": {"Brand-New-Horse-9"}})
	expect(t, "change password", code, loc, body, http.StatusSeeOther, "/me?ok=", "")
	manGet(t, b, loc, 200, "Your password is changed.")
	if code, loc, _ := other.get("/me"); code != http.StatusSeeOther || !strings.HasPrefix(loc, "/login") {
		t.Errorf("the other session survived the password change: %d %s", code, loc)
	}
}

// manCertPair makes a self-signed certificate and its key in PEM.
func manCertPair(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		DNSNames: []string{cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func manUploadCert(t *testing.T, b *browser, certPEM, keyPEM []byte, csrf string) (int, string, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	w.WriteField("csrf_token", csrf)
	for name, data := range map[string][]byte{"cert": certPEM, "key": keyPEM} {
		fw, err := w.CreateFormFile(name, name+".pem")
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(data)
	}
	w.Close()
	res, err := b.c.Post(b.base+"/settings/certificate", w.FormDataContentType(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body bytes.Buffer
	body.ReadFrom(res.Body)
	return res.StatusCode, res.Header.Get("Location"), body.String()
}

func TestManageCertificateUpload(t *testing.T) {
	s, _, base := manStart(t)
	b := manAdmin(t, base)
	manGet(t, b, "/settings", 200)
	old, err := os.ReadFile(filepath.Join(s.Dir, CertFile))
	if err != nil {
		t.Fatal(err)
	}
	certA, keyA := manCertPair(t, "coffer-a.example")
	_, keyB := manCertPair(t, "coffer-b.example")
	code, _, body := manUploadCert(t, b, certA, keyB, b.csrf)
	expect(t, "mismatched pair", code, "", body, 422, "", "do not belong together")
	if now, _ := os.ReadFile(filepath.Join(s.Dir, CertFile)); !bytes.Equal(now, old) {
		t.Fatal("a mismatched pair replaced the certificate")
	}
	code, _, body = manUploadCert(t, b, []byte("not a certificate"), keyA, b.csrf)
	expect(t, "garbage", code, "", body, 422, "", "cannot be read")
	if code, _, _ := manUploadCert(t, b, certA, keyA, ""); code != http.StatusForbidden {
		t.Errorf("upload without CSRF: %d", code)
	}
	code, loc, body := manUploadCert(t, b, certA, keyA, b.csrf)
	expect(t, "good pair", code, loc, body, http.StatusSeeOther, "/settings?ok=", "")
	gotCert, _ := os.ReadFile(filepath.Join(s.Dir, CertFile))
	gotKey, _ := os.ReadFile(filepath.Join(s.Dir, KeyFile))
	if !bytes.Equal(gotCert, certA) || !bytes.Equal(gotKey, keyA) {
		t.Fatal("the pair was not written")
	}
	if st, err := os.Stat(filepath.Join(s.Dir, KeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode: %v %v", st.Mode(), err)
	}
	if m, _ := filepath.Glob(filepath.Join(s.Dir, ".tls.*.tmp")); len(m) > 0 {
		t.Errorf("temporary files left: %v", m)
	}
	body = manGet(t, b, loc, 200, "served from now on", s.CertificateFingerprint())
	pair, _ := tls.X509KeyPair(certA, keyA)
	if !strings.Contains(body, Fingerprint(pair)) {
		t.Error("the new certificate's fingerprint is not shown")
	}
}

func TestManageHostileNames(t *testing.T) {
	_, m, base := manStart(t)
	b := manAdmin(t, base)
	m.points = append(m.points, &point.RecoveryPoint{ID: "20261125T000000.000000Z-00000003", Source: "vm:u3", Created: time.Now(),
		Labels: map[string]string{"vm": manHostileName}, Disks: []point.Disk{{Name: `scsi0:"><b>`, Size: 1}}})
	for _, p := range []string{"/policies", "/policies/lab/edit", "/policies/new", "/points", "/points/search?q=" + url.QueryEscape(manHostileName),
		"/points/20261125T000000.000000Z-00000003", "/points/20261125T000000.000000Z-00000003/restore",
		"/points/" + string(manPoint2) + "/browse?path=/etc", "/points/" + string(manPoint2) + "/browse?path=" + url.QueryEscape("/etc/"+manHostileFile)} {
		body := manGet(t, b, p, 200, "&lt;")
		if strings.Contains(body, `"><b>`) || strings.Contains(body, "<img src=x") {
			t.Errorf("%s: markup from a name", p)
		}
	}
	code, _, body := b.post("/policies/new", url.Values{"name": {manHostileName + "2"}, "selection": {"all"}, "action": {"preview"}})
	expect(t, "hostile preview", code, "", body, 200, "", "&lt;script&gt;")
	manCheckPage(t, "hostile preview", body)
}
