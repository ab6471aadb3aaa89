package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The headers of a webhook request.
const (
	headerEvent     = "X-Coffer-Event"
	headerDelivery  = "X-Coffer-Delivery"
	headerTimestamp = "X-Coffer-Timestamp"
	headerSignature = "X-Coffer-Signature"
)

const (
	webhookAttempts = 3                // tries per delivery
	maxRetryAfter   = 30 * time.Second // the longest Retry-After honoured
	errorBodyLimit  = 200              // bytes of an error answer quoted
)

// WebhookPayload is the JSON body of a webhook request.
type WebhookPayload struct {
	Kind      Kind              `json:"kind"`
	Severity  Severity          `json:"severity"`
	Time      time.Time         `json:"time"`
	Subject   string            `json:"subject"`
	Text      string            `json:"text"`
	Fields    map[string]string `json:"fields"`
	Link      string            `json:"link"`
	Appliance string            `json:"appliance"`
}

// webhookChannel posts events to one URL.
type webhookChannel struct {
	cfg      WebhookConfig
	client   *http.Client
	hostname string
	now      func() time.Time
	wait     time.Duration // before the second attempt; doubled after
}

// newWebhookChannel prepares cfg, which must be valid. The client is a
// copy of client that does not follow redirects.
func newWebhookChannel(cfg WebhookConfig, client *http.Client, hostname string, now func() time.Time, wait time.Duration) *webhookChannel {
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &webhookChannel{cfg: cfg, client: &c, hostname: hostname, now: now, wait: wait}
}

func (w *webhookChannel) name() string { return "webhook " + w.cfg.label() }

func (w *webhookChannel) accepts(k Kind) bool {
	return k == KindTest || len(w.cfg.Kinds) == 0 || slices.Contains(w.cfg.Kinds, k)
}

func (w *webhookChannel) send(ctx context.Context, e Event) error {
	fields := e.Fields
	if fields == nil {
		fields = map[string]string{}
	}
	body, err := json.Marshal(WebhookPayload{
		Kind: e.Kind, Severity: e.Severity, Time: e.Time.UTC(), Subject: e.Subject,
		Text: e.Text, Fields: fields, Link: e.Link, Appliance: w.hostname,
	})
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	delivery := rand.Text()
	wait := w.wait
	for attempt := 1; ; attempt++ {
		retry, after, err := w.post(ctx, e.Kind, delivery, body)
		if err == nil {
			return nil
		}
		err = fmt.Errorf("post to %s: %w", redactURL(w.cfg.URL), err)
		if !retry || ctx.Err() != nil {
			return err
		}
		if attempt == webhookAttempts {
			return fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		d := wait
		if after > 0 {
			d = min(after, maxRetryAfter)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (retry abandoned: %w)", err, ctx.Err())
		case <-t.C:
		}
		wait *= 2
	}
}

// post makes one attempt. It tells whether a failure is worth retrying
// and how long the server asked to wait before that.
func (w *webhookChannel) post(ctx context.Context, kind Kind, delivery string, body []byte) (retry bool, after time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return false, 0, fmt.Errorf("make request: %w", err)
	}
	for name, value := range w.cfg.Headers {
		req.Header.Set(name, value)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "coffer")
	req.Header.Set(headerEvent, string(kind))
	req.Header.Set(headerDelivery, delivery)
	if w.cfg.Secret != "" {
		ts := strconv.FormatInt(w.now().Unix(), 10)
		req.Header.Set(headerTimestamp, ts)
		req.Header.Set(headerSignature, Signature(w.cfg.Secret, ts, body))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		// A *url.Error repeats the URL, whose path may be a token.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		var cv *tls.CertificateVerificationError
		return !errors.As(err, &cv), 0, err
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyLimit))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, 0, nil
	}
	err = fmt.Errorf("HTTP %s", resp.Status)
	if s := oneLine(string(snippet)); s != "" {
		err = fmt.Errorf("HTTP %s: %s", resp.Status, cut(s, errorBodyLimit))
	}
	retry = resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
	return retry, retryAfter(resp.Header.Get("Retry-After"), w.now()), err
}

// retryAfter reads a Retry-After value: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
