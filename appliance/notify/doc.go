// Package notify sends the appliance's alerts to people and to other
// systems: by email through an SMTP relay, and as signed JSON webhooks. It
// owns:
//
//   - the alert vocabulary: Kind, Severity and Event;
//   - the notification settings (Config, EmailConfig, WebhookConfig), their
//     validation, and their redaction in logs: String, GoString and
//     LogValue never show the SMTP password, a webhook's secret or its
//     header values, nor a webhook URL's path and query (services such as
//     chat webhooks carry their token there);
//   - delivery (Notifier): every channel whose Kinds accept an event gets
//     it, and the same alert is not sent again within Options.Repeat;
//   - the daily summary mail (Summary, SummaryEvent).
//
// It knows nothing of jobs, pools or tapes: callers build Events. The
// Config is saved by the caller; it holds the SMTP password and webhook
// secrets in clear, so it belongs in the encrypted secrets store.
//
// # Filtering and repeats
//
// A channel with no Kinds gets every kind; otherwise only those listed.
// Test events go to every channel. The daily summary goes to email only
// when EmailConfig.DailySummary is set, and to the webhooks whose Kinds
// accept daily_summary.
//
// An event with the same Kind and Subject as one a channel was sent less
// than Options.Repeat ago (one hour by default) is not sent to that channel
// again, so that a flapping pool does not flood an inbox. A failed delivery
// does not count as sent. Daily summaries and test events are never held
// back.
//
// Channels are served at once, each within Options.Timeout (two minutes
// by default) and the caller's context; Notify returns when all are done,
// with one error per failed channel.
//
// # Email
//
// Mail goes through net/smtp. Security "starttls" (the default) insists
// that the relay offers STARTTLS and upgrades before anything else is
// said; "tls" speaks TLS from the start (port 465); "none-insecure" sends
// everything, the password included, in clear and is meant for a lab.
// Certificates are verified against the system roots, or CAFile for a
// relay with its own CA; InsecureSkipVerify turns verification off. AUTH
// PLAIN is used when a Username is set, and never over an unencrypted
// connection unless the security is "none-insecure". The message is plain
// text, UTF-8, quoted-printable, with its subject prefixed by
// "[Coffer <hostname>] ".
//
// # Webhooks
//
// A webhook gets an HTTP POST with Content-Type application/json,
// User-Agent coffer and these headers:
//
//	X-Coffer-Event:     the event's kind, e.g. job_failed
//	X-Coffer-Delivery:  an ID that stays the same across retries
//	X-Coffer-Timestamp: Unix time in seconds of this attempt (when signed)
//	X-Coffer-Signature: sha256=<hex> (when the webhook has a Secret)
//
// The body is WebhookPayload as JSON:
//
//	{"kind":"job_failed","severity":"critical","time":"2026-01-02T03:04:05Z",
//	 "subject":"...","text":"...","fields":{"job":"42"},"link":"https://...",
//	 "appliance":"coffer-01"}
//
// The signature is the lowercase hex HMAC-SHA256, keyed with the Secret, of
// the timestamp header's value, a full stop, and the body exactly as
// received:
//
//	hex(HMAC-SHA256(secret, timestamp + "." + body))
//
// A receiver recomputes it (VerifySignature does, in constant time),
// compares, and should also refuse timestamps more than a few minutes
// away from its clock so that a recorded request cannot be replayed.
//
// Each delivery is tried up to three times, waiting Options.RetryWait (one
// second by default), then twice that, or what a Retry-After header asks
// (at most 30 s), between tries. Network errors and answers 429 and 5xx are
// retried; any other answer that is not 2xx (redirects included: they are
// not followed) fails at once, and the error names the status.
package notify
