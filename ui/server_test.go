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
	"coffer.dev/coffer/appliance/restore"
	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/store"
	"coffer.dev/coffer/store/point"
)

// fakeBackend answers the API from memory.
type fakeBackend struct {
	catalogs   *catalog.Library
	catalogDir string
	policies   []jobs.Policy
	events     chan jobs.Event
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
	for _, rt := range []struct{ method, path string }{
		{"GET", "/api/v1/vms"}, {"GET", "/api/v1/protection"}, {"GET", "/api/v1/policies"}, {"POST", "/api/v1/policies"},
		{"GET", "/api/v1/policies/x"}, {"PUT", "/api/v1/policies/x"}, {"DELETE", "/api/v1/policies/x"}, {"POST", "/api/v1/policies/x/run"},
		{"GET", "/api/v1/jobs"}, {"GET", "/api/v1/jobs/x"}, {"POST", "/api/v1/jobs/x/cancel"}, {"GET", "/api/v1/events"},
		{"GET", "/api/v1/points"}, {"POST", "/api/v1/logout"},
		{"GET", "/api/v1/points/x/catalog"}, {"POST", "/api/v1/points/x/catalog"}, {"GET", "/api/v1/points/x/files"},
		{"GET", "/api/v1/points/x/files/download"}, {"GET", "/api/v1/files/search"}, {"GET", "/api/v1/files/versions"}, {"POST", "/api/v1/points/x/files/put-back"},
	} {
		if code, body := do(t, c, rt.method, s.URL()+rt.path, "", ""); code != http.StatusUnauthorized {
			t.Errorf("%s %s without a session: %d %s", rt.method, rt.path, code, body)
		}
		if code, _ := do(t, c, rt.method, s.URL()+rt.path, "forged-token", ""); code != http.StatusUnauthorized {
			t.Errorf("%s %s with a forged token: %d", rt.method, rt.path, code)
		}
	}
	if code, _ := do(t, c, "GET", s.URL()+"/api/v1/health", "", ""); code != 200 {
		t.Errorf("health: %d", code)
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
