package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"coffer.dev/coffer/appliance/jobs"
	"coffer.dev/coffer/appliance/notify"
)

// TestJobFailureNotifies: a job that fails (here: no vCenter is set up)
// reaches a signed webhook; the settings are kept encrypted, and shown
// without their secrets.
func TestJobFailureNotifies(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if !notify.VerifySignature("hook-secret", r.Header.Get("X-Coffer-Timestamp"), string(b), r.Header.Get("X-Coffer-Signature")) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var m map[string]any
		json.Unmarshal(b, &m)
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	}))
	defer hook.Close()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "state")
	if err := Init(dir); err != nil {
		t.Fatal(err)
	}
	a, err := Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.SetNotifications(notify.Config{Webhooks: []notify.WebhookConfig{{Name: "ops", URL: "ftp://x"}}}); err == nil {
		t.Fatal("a bad webhook URL was accepted")
	}
	if err := a.SetNotifications(notify.Config{Webhooks: []notify.WebhookConfig{{Name: "ops", URL: hook.URL, Secret: "hook-secret"}}}); err != nil {
		t.Fatal(err)
	}
	svc, err := a.StartServices(ctx, jobs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	shown, _ := svc.Notifications()
	if shown.Webhooks[0].Secret != "(set)" {
		t.Fatalf("secret shown: %+v", shown)
	}
	// Saving the shown settings back (secret left empty) keeps the secret.
	shown.Webhooks[0].Secret = ""
	if err := svc.SetNotifications(shown); err != nil {
		t.Fatal(err)
	}
	p, err := svc.CreatePolicy(jobs.Policy{Name: "Nightly", Enabled: true, Selection: jobs.Selection{All: true}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RunPolicy(ctx, p.ID, jobs.TriggerManual); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no notification of the failed job")
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	first := got[0]
	mu.Unlock()
	if first["kind"] != "job_failed" || !strings.Contains(first["subject"].(string), "Nightly") {
		t.Fatalf("notification: %+v", first)
	}
	if err := svc.TestNotifications(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got[len(got)-1]["kind"] != "test" {
		t.Fatalf("test notification: %+v", got[len(got)-1])
	}
}
