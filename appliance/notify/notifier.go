package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"
)

// Options are a Notifier's surroundings. Every field may be left zero.
type Options struct {
	Log *slog.Logger // nil: no logging
	// HTTPClient posts the webhooks; nil: a client with a 30 s timeout.
	// Redirects are never followed, whatever the client says.
	HTTPClient *http.Client
	Now        func() time.Time // nil: time.Now
	// Hostname is the appliance's name, shown in subjects, mail bodies
	// and webhook payloads. Empty: the machine's host name.
	Hostname string
	// Repeat is how long the same alert (kind and subject) is not sent to
	// a channel again. 0: one hour; negative: alerts are never held back.
	Repeat time.Duration
	// Timeout bounds the delivery of one event to one channel, webhook
	// retries included. 0: two minutes.
	Timeout time.Duration
	// RetryWait is the wait before a webhook's second attempt, doubled
	// before the third. 0: one second.
	RetryWait time.Duration
}

// Notifier delivers events to the configured channels. Safe for
// concurrent use.
type Notifier struct {
	channels []channel
	repeats  *repeats
	log      *slog.Logger
	now      func() time.Time
	hostname string
	timeout  time.Duration
}

// channel is one destination: the email recipients or one webhook.
type channel interface {
	name() string // for errors and logs, e.g. "email" or "webhook ops"
	accepts(Kind) bool
	send(context.Context, Event) error
}

// New checks cfg and makes a Notifier for it.
func New(cfg Config, opts Options) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("notification settings: %w", err)
	}
	n := &Notifier{log: opts.Log, now: opts.Now, hostname: oneLine(opts.Hostname), timeout: opts.Timeout}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if n.now == nil {
		n.now = time.Now
	}
	if n.hostname == "" {
		if h, err := os.Hostname(); err == nil {
			n.hostname = oneLine(h)
		}
	}
	if n.timeout <= 0 {
		n.timeout = 2 * time.Minute
	}
	repeat := opts.Repeat
	if repeat == 0 {
		repeat = time.Hour
	}
	n.repeats = newRepeats(repeat)
	wait := opts.RetryWait
	if wait <= 0 {
		wait = time.Second
	}
	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}

	if cfg.Email != nil {
		c, err := newEmailChannel(*cfg.Email, n.hostname, n.now)
		if err != nil {
			return nil, fmt.Errorf("notification settings: email: %w", err)
		}
		n.channels = append(n.channels, c)
	}
	for _, w := range cfg.Webhooks {
		n.channels = append(n.channels, newWebhookChannel(w, client, n.hostname, n.now, wait))
	}
	return n, nil
}

// Notify delivers e to every channel whose kinds accept it, all at once,
// and waits for them. An alert that a channel was sent less than
// Options.Repeat ago is not sent to it again. The error, if any, joins one
// error per channel that failed, each naming the channel.
func (n *Notifier) Notify(ctx context.Context, e Event) error {
	now := n.now()
	e, err := e.normalise(now)
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	errs := make([]error, len(n.channels))
	var wg sync.WaitGroup
	for i, ch := range n.channels {
		if !ch.accepts(e.Kind) {
			continue
		}
		undo := func() {}
		if e.Kind.repeatable() {
			var ok bool
			undo, ok = n.repeats.claim(repeatKey{channel: i, kind: e.Kind, subject: e.Subject}, now)
			if !ok {
				n.log.DebugContext(ctx, "notification held back: sent recently",
					"channel", ch.name(), "kind", e.Kind, "subject", e.Subject)
				continue
			}
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, n.timeout)
			defer cancel()
			if err := ch.send(ctx, e); err != nil {
				undo()
				n.log.WarnContext(ctx, "notification failed",
					"channel", ch.name(), "kind", e.Kind, "subject", e.Subject, "err", err)
				errs[i] = fmt.Errorf("%s: %w", ch.name(), err)
				return
			}
			n.log.InfoContext(ctx, "notification sent", "channel", ch.name(), "kind", e.Kind, "subject", e.Subject)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Test sends a test event to every channel, whatever their kinds, for the
// user interface's "send test notification" button.
func (n *Notifier) Test(ctx context.Context) error {
	if len(n.channels) == 0 {
		return errors.New("test notification: no email or webhook is configured")
	}
	text := "This is a test notification from the Coffer appliance."
	if n.hostname != "" {
		text = "This is a test notification from the Coffer appliance " + n.hostname + "."
	}
	return n.Notify(ctx, Event{
		Kind:     KindTest,
		Severity: SeverityInfo,
		Subject:  "Test notification",
		Text:     text + "\nIf you can read it, notifications work.",
	})
}
