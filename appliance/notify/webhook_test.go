package notify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// hookRequest is one request a hookServer received.
type hookRequest struct {
	method string
	path   string
	header http.Header
	body   []byte
}

// hookServer is a webhook receiver that answers each request with the
// status respond gives for it (1 for the first request to that path).
type hookServer struct {
	*httptest.Server
	respond func(path string, n int) int

	mu   sync.Mutex
	reqs []hookRequest
	hit  chan struct{} // gets a value per request, if someone listens
}

func startHookServer(t *testing.T, secure bool, respond func(path string, n int) int) *hookServer {
	t.Helper()
	h := &hookServer{respond: respond, hit: make(chan struct{}, 100)}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.reqs = append(h.reqs, hookRequest{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: body})
		n := 0
		for _, q := range h.reqs {
			if q.path == r.URL.Path {
				n++
			}
		}
		h.mu.Unlock()
		h.hit <- struct{}{}
		status := http.StatusNoContent
		if h.respond != nil {
			status = h.respond(r.URL.Path, n)
		}
		if status >= 300 && status < 400 {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(status)
		if status >= 400 {
			_, _ = io.WriteString(w, "receiver says no\n")
		}
	})
	if secure {
		h.Server = httptest.NewTLSServer(handler)
	} else {
		h.Server = httptest.NewServer(handler)
	}
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) requests(path string) []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hookRequest
	for _, r := range h.reqs {
		if path == "" || r.path == path {
			out = append(out, r)
		}
	}
	return out
}

func TestWebhookPayloadAndSignature(t *testing.T) {
	srv := startHookServer(t, true, nil)
	clock := newFakeClock()
	cfg := Config{Webhooks: []WebhookConfig{{
		Name: "ops", URL: srv.URL + "/hook", Secret: "s3cret",
		Headers: map[string]string{"Authorization": "Bearer tok"},
	}}}
	n := mustNew(t, cfg, Options{HTTPClient: srv.Client(), Now: clock.Now, Hostname: "coffer-01"})
	at := time.Date(2026, 3, 4, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	err := n.Notify(testContext(t), Event{
		Kind: KindVerifyDamage, Severity: SeverityCritical, Time: at,
		Subject: "Damaged chunks in pool tank", Text: "3 chunks are damaged.\nRun a repair.",
		Fields: map[string]string{"pool": "tank", "chunks": "3"}, Link: "https://coffer-01/pools/tank",
	})
	if err != nil {
		t.Fatalf("Notify: %v", err)
	}
	reqs := srv.requests("/hook")
	if len(reqs) != 1 {
		t.Fatalf("got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost {
		t.Errorf("method = %s", r.method)
	}
	for name, want := range map[string]string{
		"Content-Type":   "application/json",
		"User-Agent":     "coffer",
		"X-Coffer-Event": "verify_damage",
		"Authorization":  "Bearer tok",
		headerTimestamp:  strconv.FormatInt(clock.Now().Unix(), 10),
	} {
		if got := r.header.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	if r.header.Get(headerDelivery) == "" {
		t.Error("no delivery ID")
	}

	var got map[string]any
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, r.body)
	}
	want := map[string]any{
		"kind": "verify_damage", "severity": "critical", "time": "2026-03-04T11:00:00Z",
		"subject": "Damaged chunks in pool tank", "text": "3 chunks are damaged.\nRun a repair.",
		"fields": map[string]any{"pool": "tank", "chunks": "3"}, "link": "https://coffer-01/pools/tank",
		"appliance": "coffer-01",
	}
	if len(got) != len(want) {
		t.Errorf("body has keys %v, want those of %v", got, want)
	}
	for k, v := range want {
		if gv, _ := json.Marshal(got[k]); string(gv) != mustJSON(t, v) {
			t.Errorf("body %s = %s, want %s", k, gv, mustJSON(t, v))
		}
	}

	ts, sig := r.header.Get(headerTimestamp), r.header.Get(headerSignature)
	if !strings.HasPrefix(sig, "sha256=") || !VerifySignature("s3cret", ts, string(r.body), sig) {
		t.Errorf("signature %q does not verify", sig)
	}
	if VerifySignature("other", ts, string(r.body), sig) {
		t.Error("the signature verifies with a wrong secret")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWebhookWithoutSecretIsUnsigned(t *testing.T) {
	srv := startHookServer(t, false, nil)
	n := mustNew(t, Config{Webhooks: []WebhookConfig{{URL: srv.URL}}}, Options{})
	if err := n.Notify(testContext(t), Event{Kind: KindTapeNeeded, Subject: "Load A00001"}); err != nil {
		t.Fatal(err)
	}
	reqs := srv.requests("")
	if len(reqs) != 1 {
		t.Fatalf("got %d requests", len(reqs))
	}
	if h := reqs[0].header; h.Get(headerSignature) != "" || h.Get(headerTimestamp) != "" {
		t.Errorf("unsigned webhook got signature headers %v", h)
	}
	var p WebhookPayload
	if err := json.Unmarshal(reqs[0].body, &p); err != nil || p.Fields == nil || p.Severity != SeverityInfo {
		t.Errorf("payload %+v (%v): want empty fields object and info severity", p, err)
	}
}

func TestWebhookRetries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		statuses []int // answers in order; the last repeats
		wantHits int
		wantErr  []string // substrings; none means success
	}{
		{"503 then success", []int{503, 200}, 2, nil},
		{"429 twice then success", []int{429, 429, 202}, 3, nil},
		{"500 every time", []int{500}, 3, []string{"webhook ops", "HTTP 500 Internal Server Error", "receiver says no", "gave up after 3 attempts"}},
		{"400 is not retried", []int{400, 200}, 1, []string{"webhook ops", "HTTP 400 Bad Request"}},
		{"404 is not retried", []int{404, 200}, 1, []string{"HTTP 404 Not Found"}},
		{"redirects are not followed", []int{302, 200}, 1, []string{"HTTP 302 Found"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startHookServer(t, false, func(path string, n int) int {
				return tc.statuses[min(n, len(tc.statuses))-1]
			})
			cfg := Config{Webhooks: []WebhookConfig{{Name: "ops", URL: srv.URL + "/hook"}}}
			n := mustNew(t, cfg, Options{RetryWait: 5 * time.Millisecond})
			err := n.Notify(testContext(t), Event{Kind: KindJobFailed, Subject: tc.name})
			if hits := len(srv.requests("")); hits != tc.wantHits {
				t.Errorf("%d requests, want %d", hits, tc.wantHits)
			}
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Errorf("Notify: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Notify succeeded")
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestWebhookRetryDelivery(t *testing.T) {
	srv := startHookServer(t, false, func(_ string, n int) int {
		if n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	clock := newFakeClock()
	n := mustNew(t, Config{Webhooks: []WebhookConfig{{URL: srv.URL, Secret: "k"}}},
		Options{RetryWait: 5 * time.Millisecond, Now: clock.Now})
	if err := n.Notify(testContext(t), Event{Kind: KindRPOMiss, Subject: "vm1"}); err != nil {
		t.Fatal(err)
	}
	reqs := srv.requests("")
	if len(reqs) != 2 {
		t.Fatalf("got %d requests, want 2", len(reqs))
	}
	if a, b := reqs[0].header.Get(headerDelivery), reqs[1].header.Get(headerDelivery); a == "" || a != b {
		t.Errorf("delivery IDs %q and %q differ across a retry", a, b)
	}
	for i, r := range reqs {
		if !VerifySignature("k", r.header.Get(headerTimestamp), string(r.body), r.header.Get(headerSignature)) {
			t.Errorf("attempt %d is not signed correctly", i+1)
		}
	}
}

func TestWebhookCancelStopsRetries(t *testing.T) {
	srv := startHookServer(t, false, func(string, int) int { return 503 })
	n := mustNew(t, Config{Webhooks: []WebhookConfig{{Name: "ops", URL: srv.URL}}},
		Options{RetryWait: time.Hour})
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	go func() {
		<-srv.hit
		// Long enough for the 503 to arrive: the cancel comes during the
		// wait before the second attempt.
		time.Sleep(100 * time.Millisecond)
		cancel()
	}()
	done := make(chan error, 1)
	go func() { done <- n.Notify(ctx, Event{Kind: KindJobFailed, Subject: "x"}) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Notify goes on waiting after the cancel")
	}
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "HTTP 503") {
		t.Errorf("Notify = %v, want the 503 and context.Canceled", err)
	}
	if hits := len(srv.requests("")); hits != 1 {
		t.Errorf("%d requests, want 1", hits)
	}
}

func TestWebhookErrorHidesURLPath(t *testing.T) {
	srv := startHookServer(t, false, nil)
	url := srv.URL + "/services/T000/B000/pathtoken?key=querytoken"
	srv.Close() // connection refused from now on
	n := mustNew(t, Config{Webhooks: []WebhookConfig{{Name: "chat", URL: url}}}, Options{RetryWait: time.Millisecond})
	err := n.Notify(testContext(t), Event{Kind: KindJobFailed, Subject: "x"})
	if err == nil {
		t.Fatal("Notify to a closed server succeeded")
	}
	if s := err.Error(); strings.Contains(s, "pathtoken") || strings.Contains(s, "querytoken") ||
		!strings.Contains(s, "webhook chat") || !strings.Contains(s, "gave up after 3 attempts") {
		t.Errorf("error = %q: want the webhook named, retried, and no token", s)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		"-1":                            0,
		"soon":                          0,
		"Thu, 01 Jan 2026 00:00:10 GMT": 10 * time.Second,
		"Wed, 31 Dec 2025 00:00:10 GMT": 0,
	} {
		if got := retryAfter(in, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestVerifySignature(t *testing.T) {
	body := `{"kind":"test"}`
	good := Signature("key", "1700000000", []byte(body))
	for _, tc := range []struct {
		name                          string
		secret, timestamp, body, head string
		want                          bool
	}{
		{"good", "key", "1700000000", body, good, true},
		{"wrong secret", "other", "1700000000", body, good, false},
		{"wrong timestamp", "key", "1700000001", body, good, false},
		{"changed body", "key", "1700000000", body + " ", good, false},
		{"no prefix", "key", "1700000000", body, strings.TrimPrefix(good, "sha256="), false},
		{"upper case hex", "key", "1700000000", body, "sha256=" + strings.ToUpper(strings.TrimPrefix(good, "sha256=")), false},
		{"empty header", "key", "1700000000", body, "", false},
		{"empty secret", "", "1700000000", body, Signature("", "1700000000", []byte(body)), false},
	} {
		if got := VerifySignature(tc.secret, tc.timestamp, tc.body, tc.head); got != tc.want {
			t.Errorf("%s: VerifySignature = %v, want %v", tc.name, got, tc.want)
		}
	}
	// The documented scheme, computed with another HMAC implementation:
	// hex(HMAC-SHA256("key", "1700000000." + body)).
	if want := "sha256=2029af378ac5bb34a3bc322d3bf9579c676c2c45727385aa1e4f59e5cc26bde7"; good != want {
		t.Errorf("Signature = %q, want %q", good, want)
	}
}
