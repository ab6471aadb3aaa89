package notify

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// kindsReceived lists the kinds of the events that reached path, in order.
func kindsReceived(t *testing.T, srv *hookServer, path string) []Kind {
	t.Helper()
	var kinds []Kind
	for _, r := range srv.requests(path) {
		var p WebhookPayload
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, p.Kind)
	}
	return kinds
}

func TestKindFiltering(t *testing.T) {
	srv := startHookServer(t, false, nil)
	cfg := Config{Webhooks: []WebhookConfig{
		{Name: "all", URL: srv.URL + "/all"},
		{Name: "jobs", URL: srv.URL + "/jobs", Kinds: []Kind{KindJobFailed}},
		{Name: "storage", URL: srv.URL + "/storage", Kinds: []Kind{KindPoolDegraded, KindVerifyDamage, KindDailySummary}},
	}}
	n := mustNew(t, cfg, Options{})
	for _, k := range []Kind{KindJobFailed, KindRPOMiss, KindPoolDegraded, KindVerifyDamage, KindTapeNeeded, KindDailySummary} {
		if err := n.Notify(testContext(t), Event{Kind: k, Subject: "about " + string(k)}); err != nil {
			t.Fatalf("Notify %s: %v", k, err)
		}
	}
	if err := n.Test(testContext(t)); err != nil {
		t.Fatalf("Test: %v", err)
	}
	for path, want := range map[string][]Kind{
		"/all":     {KindJobFailed, KindRPOMiss, KindPoolDegraded, KindVerifyDamage, KindTapeNeeded, KindDailySummary, KindTest},
		"/jobs":    {KindJobFailed, KindTest},
		"/storage": {KindPoolDegraded, KindVerifyDamage, KindDailySummary, KindTest},
	} {
		if got := kindsReceived(t, srv, path); !slices.Equal(got, want) {
			t.Errorf("%s got %v, want %v", path, got, want)
		}
	}
}

func TestRepeatSuppression(t *testing.T) {
	srv := startHookServer(t, false, nil)
	clock := newFakeClock()
	log, logs := testLogger()
	n := mustNew(t, Config{Webhooks: []WebhookConfig{{Name: "ops", URL: srv.URL}}},
		Options{Now: clock.Now, Log: log}) // Repeat defaults to an hour
	degraded := Event{Kind: KindPoolDegraded, Severity: SeverityWarning, Subject: "Pool tank is degraded"}

	steps := []struct {
		advance time.Duration
		event   Event
		sent    bool
	}{
		{0, degraded, true},
		{10 * time.Minute, degraded, false},
		{49 * time.Minute, degraded, false}, // 59 min after the first
		{0, Event{Kind: KindPoolDegraded, Subject: "Pool other is degraded"}, true},
		{0, Event{Kind: KindVerifyDamage, Subject: "Pool tank is degraded"}, true}, // another kind
		{0, SummaryEvent(Summary{}), true},
		{0, SummaryEvent(Summary{}), true}, // summaries are never held back
		{0, Event{Kind: KindTest, Subject: "t"}, true},
		{0, Event{Kind: KindTest, Subject: "t"}, true},
		{time.Minute, degraded, true}, // an hour after the first
		{30 * time.Minute, degraded, false},
	}
	want := 0
	for i, st := range steps {
		clock.Advance(st.advance)
		if err := n.Notify(testContext(t), st.event); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if st.sent {
			want++
		}
		if got := len(srv.requests("")); got != want {
			t.Fatalf("step %d (%s %q at +%v): %d requests so far, want %d", i, st.event.Kind, st.event.Subject,
				clock.Now().Sub(newFakeClock().Now()), got, want)
		}
	}
	if !strings.Contains(logs.String(), "notification held back") {
		t.Errorf("held-back notifications were not logged:\n%s", logs)
	}
}

func TestRepeatIgnoresFailedDelivery(t *testing.T) {
	srv := startHookServer(t, false, func(path string, n int) int {
		if path == "/flaky" && n == 1 {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	clock := newFakeClock()
	cfg := Config{Webhooks: []WebhookConfig{
		{Name: "flaky", URL: srv.URL + "/flaky"},
		{Name: "good", URL: srv.URL + "/good"},
	}}
	n := mustNew(t, cfg, Options{Now: clock.Now})
	e := Event{Kind: KindJobFailed, Subject: "Job 7 failed"}
	if err := n.Notify(testContext(t), e); err == nil || !strings.Contains(err.Error(), "webhook flaky") {
		t.Fatalf("first Notify = %v, want the flaky webhook's error", err)
	}
	clock.Advance(time.Minute)
	if err := n.Notify(testContext(t), e); err != nil {
		t.Fatalf("second Notify: %v", err)
	}
	if f, g := len(srv.requests("/flaky")), len(srv.requests("/good")); f != 2 || g != 1 {
		t.Errorf("flaky got %d, good %d; want 2 (the failure did not count) and 1", f, g)
	}
}

func TestRepeatDisabled(t *testing.T) {
	srv := startHookServer(t, false, nil)
	n := mustNew(t, Config{Webhooks: []WebhookConfig{{URL: srv.URL}}}, Options{Repeat: -1})
	for range 3 {
		if err := n.Notify(testContext(t), Event{Kind: KindRPOMiss, Subject: "same"}); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(srv.requests("")); got != 3 {
		t.Errorf("%d requests, want 3", got)
	}
}

func TestNotifyJoinsChannelErrors(t *testing.T) {
	srv := startHookServer(t, false, func(path string, _ int) int {
		switch path {
		case "/a":
			return http.StatusForbidden
		case "/b":
			return http.StatusGone
		}
		return http.StatusOK
	})
	sink := startSMTPSink(t, sinkClear) // email with starttls fails here
	cfg := Config{
		Email: sink.emailConfig(SecurityStartTLS),
		Webhooks: []WebhookConfig{
			{Name: "alpha", URL: srv.URL + "/a"},
			{Name: "beta", URL: srv.URL + "/b"},
			{Name: "gamma", URL: srv.URL + "/c"},
		},
	}
	err := mustNew(t, cfg, Options{}).Notify(testContext(t), Event{Kind: KindJobFailed, Subject: "x"})
	if err == nil {
		t.Fatal("Notify succeeded")
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 3 {
		t.Fatalf("error %q does not join 3 errors", err)
	}
	lines := strings.Split(err.Error(), "\n")
	for i, want := range []string{"email: ", "webhook alpha: ", "webhook beta: "} {
		if i >= len(lines) || !strings.HasPrefix(lines[i], want) {
			t.Errorf("error line %d should start with %q:\n%s", i+1, want, err)
		}
	}
	for _, want := range []string{"HTTP 403 Forbidden", "HTTP 410 Gone", "STARTTLS"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%s", want, err)
		}
	}
	if strings.Contains(err.Error(), "gamma") || len(srv.requests("/c")) != 1 {
		t.Errorf("gamma should have succeeded:\n%s", err)
	}
}

func TestNotifyRejectsBadEvents(t *testing.T) {
	srv := startHookServer(t, false, nil)
	n := mustNew(t, Config{Webhooks: []WebhookConfig{{URL: srv.URL}}}, Options{})
	for _, e := range []Event{{Kind: "disk_full"}, {Kind: KindJobFailed, Severity: "fatal"}} {
		if err := n.Notify(testContext(t), e); err == nil {
			t.Errorf("Notify(%+v) succeeded", e)
		}
	}
	if got := len(srv.requests("")); got != 0 {
		t.Errorf("%d requests for bad events", got)
	}
}

func TestTestWithoutChannels(t *testing.T) {
	n := mustNew(t, Config{}, Options{})
	if err := n.Test(testContext(t)); err == nil || !strings.Contains(err.Error(), "no email or webhook") {
		t.Errorf("Test = %v", err)
	}
	if err := n.Notify(testContext(t), Event{Kind: KindJobFailed}); err != nil {
		t.Errorf("Notify without channels = %v, want nil", err)
	}
}

func TestNewRejects(t *testing.T) {
	for name, cfg := range map[string]Config{
		"invalid config":    {Webhooks: []WebhookConfig{{URL: "ftp://x"}}},
		"missing CA file":   {Email: &EmailConfig{Host: "h", From: "a@b.c", To: []string{"d@e.f"}, CAFile: "/nonexistent/ca.pem"}},
		"CA file is no PEM": {Email: &EmailConfig{Host: "h", From: "a@b.c", To: []string{"d@e.f"}, CAFile: "notifier_test.go"}},
	} {
		if _, err := New(cfg, Options{}); err == nil {
			t.Errorf("%s: New succeeded", name)
		} else if !strings.HasPrefix(err.Error(), "notification settings: ") {
			t.Errorf("%s: error %q", name, err)
		}
	}
}
