package ui

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"coffer.dev/coffer/appliance/app"
	"coffer.dev/coffer/appliance/catalog"
	"coffer.dev/coffer/appliance/jobs"
	"coffer.dev/coffer/appliance/notify"
	"coffer.dev/coffer/appliance/restore"
	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/store"
	"coffer.dev/coffer/store/point"
	"coffer.dev/coffer/ui/access"
)

// fakeBackend answers the API from memory.
type fakeBackend struct {
	catalogs   *catalog.Library
	catalogDir string
	policies   []jobs.Policy
	events     chan jobs.Event
	notify     notify.Config
}

func (f *fakeBackend) Inventory(context.Context) (*vsphere.Inventory, error) {
	return &vsphere.Inventory{}, nil
}
func (f *fakeBackend) Protection(context.Context) (*jobs.Report, error) {
	return &jobs.Report{VMs: []jobs.VMProtection{{UUID: "u1", Name: "web01", Unprotected: true}}, Totals: jobs.ReportTotals{VMs: 1, Unprotected: 1}}, nil
}
func (f *fakeBackend) Policies() []jobs.Policy { return f.policies }
func (f *fakeBackend) Policy(id string) (jobs.Policy, error) {
	for _, p := range f.policies {
		if p.ID == id {
			return p, nil
		}
	}
	return jobs.Policy{}, errors.New("no such policy")
}
func (f *fakeBackend) CreatePolicy(p jobs.Policy) (jobs.Policy, error) {
	if p.Name == "" {
		return p, errors.New("policy: name is required")
	}
	p.ID = strings.ToLower(p.Name)
	f.policies = append(f.policies, p)
	return p, nil
}
func (f *fakeBackend) UpdatePolicy(p jobs.Policy) (jobs.Policy, error) { return p, nil }
func (f *fakeBackend) DeletePolicy(id string) error                    { return nil }
func (f *fakeBackend) RunPolicy(ctx context.Context, id string, tr jobs.Trigger) (string, error) {
	if _, err := f.Policy(id); err != nil {
		return "", err
	}
	return "job-1", nil
}
func (f *fakeBackend) Jobs(jobs.JobFilter) []jobs.Job {
	return []jobs.Job{{ID: "job-1", State: jobs.JobRunning}}
}
func (f *fakeBackend) Job(id string) (jobs.Job, error) {
	if id != "job-1" {
		return jobs.Job{}, errors.New("no such job")
	}
	return jobs.Job{ID: id}, nil
}
func (f *fakeBackend) Cancel(string) error { return nil }
func (f *fakeBackend) Subscribe() (<-chan jobs.Event, func()) {
	return f.events, func() {}
}
func (f *fakeBackend) OpenDisk(id point.ID, disk string) (*store.DiskReader, error) {
	return nil, errors.New("point " + string(id) + " has no disk " + disk)
}
func (f *fakeBackend) RestoreVM(ctx context.Context, req restore.Request) (*restore.Result, error) {
	if req.Name == "web01" {
		return nil, restore.ErrNameTaken
	}
	return &restore.Result{VM: req.Name}, nil
}
func (f *fakeBackend) Points() ([]*point.RecoveryPoint, error) {
	return []*point.RecoveryPoint{{ID: "20261123T000000.000000Z-00000001", Source: "vm:u1"}}, nil
}

func (f *fakeBackend) Catalogs() *catalog.Library {
	if f.catalogs == nil {
		f.catalogs = &catalog.Library{Dir: f.catalogDir}
	}
	return f.catalogs
}
func (f *fakeBackend) CatalogPoint(ctx context.Context, id point.ID) (*catalog.Catalog, error) {
	return nil, fmt.Errorf("point %s: no such point", id)
}
func (f *fakeBackend) OpenPointFiles(ctx context.Context, id point.ID) (*catalog.PointFiles, *catalog.Catalog, error) {
	return nil, nil, fmt.Errorf("point %s: %w", id, catalog.ErrNoCatalog)
}

func (f *fakeBackend) PutFilesBack(ctx context.Context, req app.PutBackRequest) (*restore.PutResult, error) {
	return nil, fmt.Errorf("point %s: %w", req.Point, catalog.ErrNoCatalog)
}

func (f *fakeBackend) PoolState() (app.Pool, error) {
	return app.Pool{Path: "/pool", Size: 10 << 30, Used: 2 << 30, Free: 8 << 30, Store: store.Stats{Points: 1, Logical: 4 << 30, Stored: 1 << 30}}, nil
}
func (f *fakeBackend) CapacityHistory() ([]app.CapacitySample, error) {
	now := time.Now()
	return []app.CapacitySample{{Time: now.Add(-48 * time.Hour), Used: 0, Size: 10 << 30}, {Time: now.Add(-24 * time.Hour), Used: 1 << 30, Size: 10 << 30}, {Time: now, Used: 2 << 30, Size: 10 << 30}}, nil
}
func (f *fakeBackend) VerifyStore(ctx context.Context, sample float64) (*store.VerifyReport, error) {
	return &store.VerifyReport{Containers: 3}, nil
}
func (f *fakeBackend) CollectGarbage(ctx context.Context, dryRun bool) (store.GCStats, error) {
	return store.GCStats{Points: 1}, nil
}
func (f *fakeBackend) LockPoint(id point.ID, until time.Time) error {
	if id != "20261123T000000.000000Z-00000001" {
		return store.ErrNoPoint
	}
	return nil
}
func (f *fakeBackend) PointLock(id point.ID) (time.Time, error) {
	if id != "20261123T000000.000000Z-00000001" {
		return time.Time{}, store.ErrNoPoint
	}
	return time.Time{}, nil
}

func (f *fakeBackend) Notifications() (notify.Config, error) { return app.Redact(f.notify), nil }
func (f *fakeBackend) SetNotifications(c notify.Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	f.notify = c
	return nil
}
func (f *fakeBackend) TestNotifications(ctx context.Context) error {
	if f.notify.Email == nil && len(f.notify.Webhooks) == 0 {
		return errors.New("no notification channel is configured")
	}
	return nil
}

func startServer(t *testing.T) (*Server, *fakeBackend, *http.Client) {
	t.Helper()
	dir := t.TempDir()
	if err := SetAdmin(dir, "admin", "Correct-Horse-7-battery"); err != nil {
		t.Fatal(err)
	}
	fb := &fakeBackend{events: make(chan jobs.Event, 4), catalogDir: t.TempDir()}
	s := &Server{Dir: dir, Addr: "127.0.0.1:0", Backend: fb}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the test's own self-signed server
	return s, fb, c
}

func do(t *testing.T, c *http.Client, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func login(t *testing.T, s *Server, c *http.Client) string {
	t.Helper()
	code, body := do(t, c, "POST", s.URL()+"/api/v1/login", "", `{"username":"admin","password":"Correct-Horse-7-battery"}`)
	if code != 200 {
		t.Fatalf("login: %d %s", code, body)
	}
	var r struct{ Token string }
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Token == "" {
		t.Fatalf("login answer: %s", body)
	}
	return r.Token
}

func TestEveryRouteNeedsASession(t *testing.T) {
	s, _, c := startServer(t)
	if len(s.Routes()) < 30 {
		t.Fatalf("route table: %d routes", len(s.Routes()))
	}
	for _, rt := range s.Routes() {
		path := strings.NewReplacer(":id", "x", ":disk", "d", ":name", "n").Replace(rt.Path)
		if rt.Perm == "" {
			if rt.Path != "/api/v1/health" && rt.Path != "/api/v1/login" {
				t.Errorf("%s %s has no permission", rt.Method, rt.Path)
			}
			continue
		}
		code, body := do(t, c, rt.Method, s.URL()+path, "", "")
		var shape struct {
			Error string `json:"error"`
		}
		if code != http.StatusUnauthorized || json.Unmarshal([]byte(body), &shape) != nil || shape.Error == "" {
			t.Errorf("%s %s without a session: %d %s (want 401 with {\"error\": ...})", rt.Method, rt.Path, code, body)
		}
		if code, _ := do(t, c, rt.Method, s.URL()+path, "forged-token", ""); code != http.StatusUnauthorized {
			t.Errorf("%s %s with a forged token: %d", rt.Method, rt.Path, code)
		}
	}
	if code, _ := do(t, c, "GET", s.URL()+"/api/v1/health", "", ""); code != 200 {
		t.Errorf("health: %d", code)
	}
}

// TestRolesOnEveryRoute walks the route table with a user of each role:
// a route the role lacks answers 403, and one it has does not.
func TestRolesOnEveryRoute(t *testing.T) {
	s, _, c := startServer(t)
	toks := map[access.Role]string{access.Administrator: login(t, s, c)}
	for i, r := range []access.Role{access.Operator, access.Viewer, access.RestoreOnly} {
		name := fmt.Sprintf("user%d", i)
		if code, body := do(t, c, "POST", s.URL()+"/api/v1/users", toks[access.Administrator],
			`{"name":"`+name+`","role":"`+string(r)+`","password":"Correct-Horse-8-battery"}`); code != 201 {
			t.Fatalf("create %s: %d %s", r, code, body)
		}
		toks[r] = loginAs(t, s, c, name, "Correct-Horse-8-battery")
	}
	for _, rt := range s.Routes() {
		if rt.Perm == "" || rt.Path == "/api/v1/logout" || rt.Path == "/api/v1/events" {
			continue
		}
		path := strings.NewReplacer(":id", "x", ":disk", "d", ":name", "nobody").Replace(rt.Path)
		for role, tok := range toks {
			code, body := do(t, c, rt.Method, s.URL()+path, tok, "{}")
			if denied := code == http.StatusForbidden; denied == role.Can(rt.Perm) {
				t.Errorf("%s %s as %s: %d %s", rt.Method, rt.Path, role, code, body)
			}
		}
	}
	// A viewer changes nothing, and the attempt is in the audit log.
	if code, _ := do(t, c, "POST", s.URL()+"/api/v1/policies/gold/run", toks[access.Viewer], ""); code != 403 {
		t.Fatalf("viewer ran a policy: %d", code)
	}
	code, body := do(t, c, "GET", s.URL()+"/api/v1/audit?user=user1&q=denied", toks[access.Administrator], "")
	if code != 200 || !strings.Contains(body, `"action":"POST /api/v1/policies/:id/run"`) || !strings.Contains(body, "lacks operate") {
		t.Fatalf("audit of a denial: %d %s", code, body)
	}
}

func loginAs(t *testing.T, s *Server, c *http.Client, user, pw string) string {
	t.Helper()
	code, body := do(t, c, "POST", s.URL()+"/api/v1/login", "", `{"username":"`+user+`","password":"`+pw+`"}`)
	if code != 200 {
		t.Fatalf("login %s: %d %s", user, code, body)
	}
	var r struct{ Token string }
	json.Unmarshal([]byte(body), &r)
	return r.Token
}

// TestCookieSessionsNeedCSRF: a browser session (cookie) must echo its
// CSRF token on changes and may not come from another origin; the cookie
// is HttpOnly, Secure and SameSite=Strict.
func TestCookieSessionsNeedCSRF(t *testing.T) {
	s, _, c := startServer(t)
	res, err := c.Post(s.URL()+"/api/v1/login", "application/json", strings.NewReader(`{"username":"admin","password":"Correct-Horse-7-battery"}`))
	if err != nil {
		t.Fatal(err)
	}
	var la struct {
		CSRFToken string `json:"csrf_token"`
	}
	json.NewDecoder(res.Body).Decode(&la)
	res.Body.Close()
	var cookie *http.Cookie
	for _, ck := range res.Cookies() {
		if ck.Name == SessionCookie {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.HttpOnly || !cookie.Secure || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" || la.CSRFToken == "" {
		t.Fatalf("session cookie %+v, csrf %q", cookie, la.CSRFToken)
	}
	call := func(method, path, csrf, origin string) int {
		req, _ := http.NewRequest(method, s.URL()+path, strings.NewReader(`{"name":"Gold","enabled":true,"selection":{"all":true}}`))
		req.AddCookie(&http.Cookie{Name: SessionCookie, Value: cookie.Value})
		if csrf != "" {
			req.Header.Set(CSRFHeader, csrf)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := call("GET", "/api/v1/policies", "", ""); code != 200 {
		t.Errorf("read with the cookie: %d", code)
	}
	if code := call("POST", "/api/v1/policies", "", ""); code != 403 {
		t.Errorf("change without CSRF token: %d", code)
	}
	if code := call("POST", "/api/v1/policies", "wrong", ""); code != 403 {
		t.Errorf("change with a wrong CSRF token: %d", code)
	}
	if code := call("POST", "/api/v1/policies", la.CSRFToken, "https://evil.example"); code != 403 {
		t.Errorf("change from another origin: %d", code)
	}
	if code := call("POST", "/api/v1/policies", la.CSRFToken, s.URL()); code != 201 {
		t.Errorf("change with the CSRF token: %d", code)
	}
	code, body := do(t, c, "GET", s.URL()+"/api/v1/me", cookie.Value, "")
	if code != 200 || !strings.Contains(body, la.CSRFToken) || !strings.Contains(body, `"role":"administrator"`) {
		t.Errorf("me: %d %s", code, body)
	}
	if res, _ := c.Get(s.URL() + "/api/v1/health"); res != nil {
		csp := res.Header.Get("Content-Security-Policy")
		res.Body.Close()
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("CSP %q", csp)
		}
	}
}

func TestUsersAndTokensAPI(t *testing.T) {
	s, _, c := startServer(t)
	admin := login(t, s, c)
	for _, tc := range []struct {
		body string
		code int
	}{
		{`{"name":"olga","role":"operator","password":"weak"}`, 422},
		{`{"name":"olga","role":"root","password":"Correct-Horse-8-battery"}`, 422},
		{`{"name":"olga","role":"operator","password":"Correct-Horse-8-battery","x":1}`, 400},
		{`{"name":"olga","role":"operator","password":"Correct-Horse-8-battery"}`, 201},
		{`{"name":"olga","role":"viewer","password":"Correct-Horse-8-battery"}`, 409},
	} {
		if code, body := do(t, c, "POST", s.URL()+"/api/v1/users", admin, tc.body); code != tc.code {
			t.Errorf("create %s: %d %s, want %d", tc.body, code, body, tc.code)
		}
	}
	code, body := do(t, c, "GET", s.URL()+"/api/v1/users", admin, "")
	if code != 200 || !strings.Contains(body, `"olga"`) || strings.Contains(body, "$2a$") || strings.Contains(body, "hash") {
		t.Fatalf("users: %d %s", code, body)
	}
	if code, _ := do(t, c, "DELETE", s.URL()+"/api/v1/users/admin", admin, ""); code != 409 {
		t.Errorf("delete self: %d", code)
	}
	if code, _ := do(t, c, "PUT", s.URL()+"/api/v1/users/admin", admin, `{"role":"viewer"}`); code != 409 {
		t.Errorf("demote the last admin: %d", code)
	}
	// A token for automation: shown once, works as a bearer, revocable.
	code, body = do(t, c, "POST", s.URL()+"/api/v1/tokens", admin, `{"name":"nagios","role":"viewer","valid_days":30}`)
	var tr struct {
		Secret string
		Token  struct{ ID string }
	}
	json.Unmarshal([]byte(body), &tr)
	if code != 201 || !strings.HasPrefix(tr.Secret, "coffer_") {
		t.Fatalf("create token: %d %s", code, body)
	}
	if code, _ := do(t, c, "GET", s.URL()+"/api/v1/jobs", tr.Secret, ""); code != 200 {
		t.Errorf("token read: %d", code)
	}
	if code, _ := do(t, c, "POST", s.URL()+"/api/v1/policies/gold/run", tr.Secret, ""); code != 403 {
		t.Errorf("viewer token ran a policy: %d", code)
	}
	code, body = do(t, c, "GET", s.URL()+"/api/v1/tokens", admin, "")
	if code != 200 || strings.Contains(body, tr.Secret) || strings.Contains(body, "sha256") {
		t.Errorf("token list shows a secret: %s", body)
	}
	if code, _ := do(t, c, "DELETE", s.URL()+"/api/v1/tokens/"+tr.Token.ID, admin, ""); code != 204 {
		t.Errorf("revoke: %d", code)
	}
	if code, _ := do(t, c, "GET", s.URL()+"/api/v1/jobs", tr.Secret, ""); code != 401 {
		t.Errorf("revoked token: %d", code)
	}
	// Own password: the current one is required; other sessions end.
	olga := loginAs(t, s, c, "olga", "Correct-Horse-8-battery")
	olga2 := loginAs(t, s, c, "olga", "Correct-Horse-8-battery")
	if code, _ := do(t, c, "POST", s.URL()+"/api/v1/me/password", olga, `{"current":"wrong-Horse-8-battery","new":"Brand-New-Horse-9"}`); code != 422 {
		t.Errorf("password change with a wrong current one: %d", code)
	}
	if code, body := do(t, c, "POST", s.URL()+"/api/v1/me/password", olga, `{"current":"Correct-Horse-8-battery","new":"Brand-New-Horse-9"}`); code != 204 {
		t.Errorf("password change: %d %s", code, body)
	}
	if code, _ := do(t, c, "GET", s.URL()+"/api/v1/me", olga2, ""); code != 401 {
		t.Errorf("other session after a password change: %d", code)
	}
	if code, _ := do(t, c, "GET", s.URL()+"/api/v1/me", olga, ""); code != 200 {
		t.Errorf("own session after a password change: %d", code)
	}
	// The audit log has who did what, and no secret.
	code, body = do(t, c, "GET", s.URL()+"/api/v1/audit?limit=100", admin, "")
	if code != 200 {
		t.Fatalf("audit: %d", code)
	}
	for _, want := range []string{`"action":"POST /api/v1/users","target":"olga"`, `"action":"POST /api/v1/tokens","target":"nagios"`, `"action":"login"`, `password changed`} {
		if !strings.Contains(body, want) {
			t.Errorf("audit lacks %s", want)
		}
	}
	for _, secret := range []string{"Correct-Horse-8-battery", "Brand-New-Horse-9", tr.Secret} {
		if strings.Contains(body, secret) {
			t.Errorf("audit holds a secret")
		}
	}
	if code, _ := do(t, c, "GET", s.URL()+"/api/v1/audit?since=yesterday", admin, ""); code != 400 {
		t.Errorf("bad since: %d", code)
	}
}

func TestLoginAndAPI(t *testing.T) {
	s, _, c := startServer(t)
	if code, body := do(t, c, "POST", s.URL()+"/api/v1/login", "", `{"username":"admin","password":"nope"}`); code != 401 || !strings.Contains(body, "wrong") {
		t.Fatalf("wrong password: %d %s", code, body)
	}
	if code, _ := do(t, c, "POST", s.URL()+"/api/v1/login", "", `{not json`); code != 400 {
		t.Fatalf("malformed login: %d", code)
	}
	tok := login(t, s, c)
	if code, body := do(t, c, "GET", s.URL()+"/api/v1/protection", tok, ""); code != 200 || !strings.Contains(body, `"unprotected":true`) {
		t.Fatalf("protection: %d %s", code, body)
	}
	if code, body := do(t, c, "POST", s.URL()+"/api/v1/policies", tok, `{"name":"Gold","bogus":1}`); code != 400 || !strings.Contains(body, "bogus") {
		t.Fatalf("unknown field: %d %s", code, body)
	}
	if code, body := do(t, c, "POST", s.URL()+"/api/v1/policies", tok, `{"enabled":true}`); code != 422 || !strings.Contains(body, "name is required") {
		t.Fatalf("invalid policy: %d %s", code, body)
	}
	if code, body := do(t, c, "POST", s.URL()+"/api/v1/policies", tok, `{"name":"Gold","enabled":true,"selection":{"all":true}}`); code != 201 {
		t.Fatalf("create policy: %d %s", code, body)
	}
	if code, body := do(t, c, "POST", s.URL()+"/api/v1/policies/gold/run", tok, ""); code != 202 || !strings.Contains(body, "job-1") {
		t.Fatalf("run policy: %d %s", code, body)
	}
	if code, _ := do(t, c, "GET", s.URL()+"/api/v1/jobs/nope", tok, ""); code != 404 {
		t.Fatalf("missing job: %d", code)
	}
	if code, body := do(t, c, "GET", s.URL()+"/api/v1/points", tok, ""); code != 200 || !strings.Contains(body, "vm:u1") {
		t.Fatalf("points: %d %s", code, body)
	}
	if code, _ := do(t, c, "GET", s.URL()+"/api/v1/nowhere", tok, ""); code != 404 {
		t.Fatalf("unknown route: %d", code)
	}
	if code, _ := do(t, c, "POST", s.URL()+"/api/v1/logout", tok, ""); code != 204 {
		t.Fatalf("logout: %d", code)
	}
	if code, _ := do(t, c, "GET", s.URL()+"/api/v1/jobs", tok, ""); code != 401 {
		t.Fatalf("token still valid after logout: %d", code)
	}
}

func TestStorageAPI(t *testing.T) {
	s, _, c := startServer(t)
	tok := login(t, s, c)
	code, body := do(t, c, "GET", s.URL()+"/api/v1/storage/capacity", tok, "")
	if code != 200 || !strings.Contains(body, `"days_left":7.99`) || !strings.Contains(body, `"growth_bytes_per_day":1073741824`) {
		t.Errorf("capacity: %d %s", code, body)
	}
	for _, tc := range []struct {
		method, path, body string
		code               int
	}{
		{"GET", "/api/v1/storage", "", 200},
		{"POST", "/api/v1/storage/verify", `{"sample":0.1}`, 200},
		{"POST", "/api/v1/storage/verify", `{"sample":2}`, 400},
		{"POST", "/api/v1/storage/gc", `{"dry_run":true}`, 200},
		{"POST", "/api/v1/storage/gc", `{"dry":true}`, 400},
		{"PUT", "/api/v1/points/20261123T000000.000000Z-00000001/lock", `{"until":"2099-01-01T00:00:00Z"}`, 200},
		{"PUT", "/api/v1/points/20261123T000000.000000Z-00000001/lock", `{"until":"2001-01-01T00:00:00Z"}`, 400},
		{"PUT", "/api/v1/points/20261123T000000.000000Z-00000002/lock", `{"until":"2099-01-01T00:00:00Z"}`, 404},
		{"GET", "/api/v1/points/bad/lock", "", 400},
	} {
		if code, body := do(t, c, tc.method, s.URL()+tc.path, tok, tc.body); code != tc.code {
			t.Errorf("%s %s %s: %d %s, want %d", tc.method, tc.path, tc.body, code, body, tc.code)
		}
	}
}

func TestNotificationsAPI(t *testing.T) {
	s, _, c := startServer(t)
	tok := login(t, s, c)
	if code, body := do(t, c, "POST", s.URL()+"/api/v1/notifications/test", tok, ""); code != 502 || !strings.Contains(body, "no notification channel") {
		t.Errorf("test without channels: %d %s", code, body)
	}
	if code, _ := do(t, c, "PUT", s.URL()+"/api/v1/notifications", tok, `{"email":{"host":"","from":"x","to":[]}}`); code != 422 {
		t.Errorf("bad settings: %d", code)
	}
	code, body := do(t, c, "PUT", s.URL()+"/api/v1/notifications", tok, `{"email":{"host":"smtp.example.com","username":"coffer","password":"Smtp-Secret-1","from":"coffer@example.com","to":["ops@example.com"]},"webhooks":[{"name":"ops","url":"https://hooks.example.com/x","secret":"Hook-Secret-2"}]}`)
	if code != 200 || strings.Contains(body, "Smtp-Secret-1") || strings.Contains(body, "Hook-Secret-2") || !strings.Contains(body, "(set)") {
		t.Errorf("save: %d %s", code, body)
	}
	code, body = do(t, c, "GET", s.URL()+"/api/v1/notifications", tok, "")
	if code != 200 || strings.Contains(body, "Secret-") {
		t.Errorf("settings show a secret: %s", body)
	}
	if code, _ := do(t, c, "POST", s.URL()+"/api/v1/notifications/test", tok, ""); code != 200 {
		t.Errorf("test: %d", code)
	}
}

func TestLoginLockout(t *testing.T) {
	s, _, c := startServer(t)
	for i := 0; i < 5; i++ {
		do(t, c, "POST", s.URL()+"/api/v1/login", "", `{"username":"admin","password":"guess"}`)
	}
	if code, _ := do(t, c, "POST", s.URL()+"/api/v1/login", "", `{"username":"admin","password":"Correct-Horse-7-battery"}`); code != http.StatusTooManyRequests {
		t.Fatalf("after 5 failures the right password must wait: %d", code)
	}
}

func TestEventsStream(t *testing.T) {
	s, fb, c := startServer(t)
	tok := login(t, s, c)
	req, _ := http.NewRequest("GET", s.URL()+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	fb.events <- jobs.Event{Type: jobs.EventProgress, JobID: "job-1", VM: &jobs.VMRun{Name: "web01"}}
	sc := bufio.NewScanner(res.Body)
	var lines []string
	for sc.Scan() && len(lines) < 2 {
		if sc.Text() != "" {
			lines = append(lines, sc.Text())
		}
	}
	if len(lines) < 2 || lines[0] != "event: progress" || !strings.Contains(lines[1], `"job_id":"job-1"`) {
		t.Fatalf("stream: %q", lines)
	}
}

func TestPasswordStrengthAndStorage(t *testing.T) {
	for _, pw := range []string{"short1A!", "alllowercaseletters", "ALLUPPER12345678"} {
		if CheckPasswordStrength(pw) == nil {
			t.Errorf("%q accepted", pw)
		}
	}
	dir := t.TempDir()
	if err := SetAdmin(dir, "admin", "weak"); err == nil {
		t.Fatal("weak admin password accepted")
	}
	if err := SetAdmin(dir, "admin", "Correct-Horse-7-battery"); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateCertificate(dir, nil); err != nil {
		t.Fatal(err)
	}
}

func TestExportRoute(t *testing.T) {
	s, _, c := startServer(t)
	tok := login(t, s, c)
	for _, tc := range []struct {
		path string
		code int
	}{
		{"/api/v1/points/not-an-id/disks/scsi0:0/export?format=qcow2", 400},
		{"/api/v1/points/20261123T000000.000000Z-00000001/disks/scsi0:0/export?format=vdi", 400},
		{"/api/v1/points/20261123T000000.000000Z-00000001/disks/scsi0:0/export?format=qcow2", 404},
	} {
		if code, body := do(t, c, "GET", s.URL()+tc.path, tok, ""); code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.path, code, body, tc.code)
		}
	}
}

func TestRestoreRoute(t *testing.T) {
	s, _, c := startServer(t)
	tok := login(t, s, c)
	base := s.URL() + "/api/v1/points/20261123T000000.000000Z-00000001/restore"
	for _, tc := range []struct {
		body string
		code int
	}{
		{`{"name":"copy01","isolated":true}`, 201},
		{`{"name":"web01"}`, 409},
		{`{"isolated":true}`, 400},
		{`{"name":"x","bogus":1}`, 400},
	} {
		if code, body := do(t, c, "POST", base, tok, tc.body); code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.body, code, body, tc.code)
		}
	}
	if code, _ := do(t, c, "POST", s.URL()+"/api/v1/points/bad/restore", tok, `{"name":"x"}`); code != 400 {
		t.Errorf("bad point id: %d", code)
	}
}
