package notify

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"slices"
	"strings"
	"testing"
	"time"
)

// readMail parses a sunk message and returns it with its decoded body.
func readMail(t *testing.T, m sunkMail) (*mail.Message, string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(m.data))
	if err != nil {
		t.Fatalf("message does not parse: %v\n%s", err, m.data)
	}
	if cte := msg.Header.Get("Content-Transfer-Encoding"); cte != "quoted-printable" {
		t.Fatalf("Content-Transfer-Encoding = %q", cte)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatalf("body is not quoted-printable: %v", err)
	}
	return msg, strings.ReplaceAll(string(body), "\r\n", "\n")
}

func TestEmailSTARTTLSDelivers(t *testing.T) {
	sink := startSMTPSink(t, sinkSTARTTLS)
	clock := newFakeClock()
	n := mustNew(t, Config{Email: sink.emailConfig(SecurityStartTLS)},
		Options{Hostname: "coffer-01", Now: clock.Now})

	long := strings.Repeat("ünïcode and = signs ", 8) // longer than a quoted-printable line
	err := n.Notify(testContext(t), Event{
		Kind:     KindJobFailed,
		Severity: SeverityCritical,
		Subject:  "Job „Nightly“ failed on VM Köln",
		Text:     "The backup failed.\n.\nA line with only a dot, and then:\n" + long,
		Fields:   map[string]string{"job": "42", "vm": "köln-db"},
		Link:     "https://coffer-01/jobs/42",
	})
	if err != nil {
		t.Fatalf("Notify: %v", err)
	}

	mails, auths := sink.received()
	if len(auths) != 1 || auths[0] != (authAttempt{user: "backup", pass: "correct horse", tls: true}) {
		t.Fatalf("auth attempts = %+v, want one correct one over TLS", auths)
	}
	if len(mails) != 1 {
		t.Fatalf("got %d mails, want 1", len(mails))
	}
	m := mails[0]
	if !m.tls {
		t.Error("the message was not sent over TLS")
	}
	if m.from != "coffer@example.com" {
		t.Errorf("envelope from = %q", m.from)
	}
	if want := []string{"ops@example.com", "joerg@example.org"}; !slices.Equal(m.to, want) {
		t.Errorf("envelope to = %q, want %q", m.to, want)
	}

	msg, body := readMail(t, m)
	if raw := msg.Header.Get("Subject"); !strings.HasPrefix(raw, "=?utf-8?q?") ||
		strings.IndexFunc(raw, func(r rune) bool { return r > '~' }) >= 0 {
		t.Errorf("raw subject %q is not RFC 2047 encoded", raw)
	}
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("subject: %v", err)
	}
	if want := "[Coffer coffer-01] Job „Nightly“ failed on VM Köln"; subject != want {
		t.Errorf("subject = %q, want %q", subject, want)
	}
	from, err := msg.Header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Address != "coffer@example.com" || from[0].Name != "Coffer" {
		t.Errorf("From = %v (%v)", from, err)
	}
	to, err := msg.Header.AddressList("To")
	if err != nil || len(to) != 2 || to[0].Address != "ops@example.com" ||
		to[1].Address != "joerg@example.org" || to[1].Name != "Jörg Admin" {
		t.Errorf("To = %v (%v)", to, err)
	}
	if date, err := msg.Header.Date(); err != nil || !date.Equal(clock.Now()) {
		t.Errorf("Date = %v (%v), want %v", date, err, clock.Now())
	}
	if id := msg.Header.Get("Message-ID"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@example.com>") {
		t.Errorf("Message-ID = %q", id)
	}
	if v := msg.Header.Get("MIME-Version"); v != "1.0" {
		t.Errorf("MIME-Version = %q", v)
	}
	if ct := msg.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	for _, want := range []string{
		"The backup failed.\n.\nA line with only a dot, and then:\n" + strings.TrimSpace(long) + "\n",
		"job: 42\n", "vm:  köln-db\n",
		"Open in Coffer: https://coffer-01/jobs/42\n",
		"critical, job_failed, 2026-03-04 05:06:07 UTC\n",
		"Sent by the Coffer appliance coffer-01.",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	for i, line := range strings.Split(string(m.data), "\r\n") {
		if len(line) > 78 {
			t.Errorf("line %d of the message is %d bytes long: %q", i+1, len(line), line)
		}
	}
}

func TestEmailWrongPassword(t *testing.T) {
	sink := startSMTPSink(t, sinkSTARTTLS)
	cfg := sink.emailConfig(SecurityStartTLS)
	cfg.Password = "wrong horse"
	err := mustNew(t, Config{Email: cfg}, Options{}).Notify(testContext(t), Event{Kind: KindJobFailed, Subject: "x"})
	if err == nil {
		t.Fatal("Notify with a wrong password succeeded")
	}
	for _, want := range []string{"email: send mail via 127.0.0.1:", "log in as backup", "535"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "wrong horse") {
		t.Errorf("error shows the password: %v", err)
	}
	mails, auths := sink.received()
	if len(mails) != 0 || len(auths) != 1 || auths[0].pass != "wrong horse" {
		t.Errorf("mails %d, auths %+v; want no mail and the one wrong attempt", len(mails), auths)
	}
}

func TestEmailRefusesServerWithoutSTARTTLS(t *testing.T) {
	sink := startSMTPSink(t, sinkClear) // would accept AUTH in clear
	err := mustNew(t, Config{Email: sink.emailConfig(SecurityStartTLS)}, Options{}).
		Notify(testContext(t), Event{Kind: KindJobFailed, Subject: "x"})
	if err == nil || !strings.Contains(err.Error(), "does not offer STARTTLS") {
		t.Fatalf("Notify = %v, want a refusal for want of STARTTLS", err)
	}
	if mails, auths := sink.received(); len(mails) != 0 || len(auths) != 0 {
		t.Errorf("the server got %d mails and %+v; want nothing, the password least of all", len(mails), auths)
	}
}

func TestEmailRefusesUntrustedCertificate(t *testing.T) {
	sink := startSMTPSink(t, sinkSTARTTLS)
	cfg := sink.emailConfig(SecurityStartTLS)
	cfg.CAFile = "" // the system roots do not know the sink's certificate
	err := mustNew(t, Config{Email: cfg}, Options{}).Notify(testContext(t), Event{Kind: KindJobFailed, Subject: "x"})
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Notify = %v, want a certificate error", err)
	}
	if mails, auths := sink.received(); len(mails) != 0 || len(auths) != 0 {
		t.Errorf("the server got %d mails and %+v; want nothing", len(mails), auths)
	}
}

func TestEmailOtherSecurityModes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mode     sinkTLS
		security Security
		skip     bool // InsecureSkipVerify instead of the CA file
		wantTLS  bool
	}{
		{"implicit TLS with CA file", sinkImplicit, SecurityTLS, false, true},
		{"implicit TLS without verification", sinkImplicit, SecurityTLS, true, true},
		{"none-insecure sends in clear", sinkClear, SecurityNoneInsecure, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := startSMTPSink(t, tc.mode)
			cfg := sink.emailConfig(tc.security)
			if tc.skip {
				cfg.CAFile, cfg.InsecureSkipVerify = "", true
			}
			if err := mustNew(t, Config{Email: cfg}, Options{Hostname: "c"}).Test(testContext(t)); err != nil {
				t.Fatalf("Test: %v", err)
			}
			mails, auths := sink.received()
			if len(mails) != 1 || len(auths) != 1 {
				t.Fatalf("got %d mails, %d auths; want 1 and 1", len(mails), len(auths))
			}
			if mails[0].tls != tc.wantTLS || auths[0].tls != tc.wantTLS {
				t.Errorf("TLS: mail %v, auth %v; want %v", mails[0].tls, auths[0].tls, tc.wantTLS)
			}
			msg, body := readMail(t, mails[0])
			if s := msg.Header.Get("Subject"); s != "[Coffer c] Test notification" {
				t.Errorf("subject = %q", s)
			}
			if !strings.Contains(body, "If you can read it, notifications work.") {
				t.Errorf("body = %q", body)
			}
		})
	}
}

func TestEmailImplicitTLSAgainstPlainServer(t *testing.T) {
	sink := startSMTPSink(t, sinkClear)
	err := mustNew(t, Config{Email: sink.emailConfig(SecurityTLS)}, Options{}).Test(testContext(t))
	if err == nil || !strings.Contains(err.Error(), "TLS handshake") {
		t.Fatalf("Test = %v, want a TLS handshake error", err)
	}
	if _, auths := sink.received(); len(auths) != 0 {
		t.Errorf("auths = %+v, want none", auths)
	}
}

func TestEmailHonoursContext(t *testing.T) {
	// A server that accepts connections and never greets.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	addr := l.Addr().(*net.TCPAddr)
	cfg := &EmailConfig{Host: "127.0.0.1", Port: addr.Port, Security: SecurityNoneInsecure,
		From: "c@example.com", To: []string{"o@example.com"}}
	n := mustNew(t, Config{Email: cfg}, Options{})

	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(t.Context(), 100*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cancel", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(100*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- n.Notify(ctx, Event{Kind: KindJobFailed, Subject: tc.name}) }()
			select {
			case err := <-done:
				if !errors.Is(err, tc.want) {
					t.Errorf("Notify = %v, want %v", err, tc.want)
				}
			case <-time.After(3 * time.Second):
				t.Fatal("Notify goes on waiting for the server after the context ended")
			}
		})
	}
}

func TestPlainAuthRefusesClearText(t *testing.T) {
	a := plainAuth{user: "u", pass: "p"}
	if _, _, err := a.Start(&smtp.ServerInfo{Name: "relay", TLS: false}); err == nil {
		t.Error("PLAIN started over an unencrypted connection")
	}
	mech, resp, err := a.Start(&smtp.ServerInfo{Name: "relay", TLS: true})
	if err != nil || mech != "PLAIN" || string(resp) != "\x00u\x00p" {
		t.Errorf("Start over TLS = %q, %q, %v", mech, resp, err)
	}
	a.clearOK = true
	if _, _, err := a.Start(&smtp.ServerInfo{Name: "relay", TLS: false}); err != nil {
		t.Errorf("Start in clear with none-insecure: %v", err)
	}
}

func TestEmailAccepts(t *testing.T) {
	for _, tc := range []struct {
		kinds   []Kind
		summary bool
		kind    Kind
		want    bool
	}{
		{nil, false, KindJobFailed, true},
		{nil, false, KindDailySummary, false},
		{nil, true, KindDailySummary, true},
		{[]Kind{KindPoolDegraded}, true, KindDailySummary, true},
		{[]Kind{KindPoolDegraded}, false, KindPoolDegraded, true},
		{[]Kind{KindPoolDegraded}, false, KindJobFailed, false},
		{[]Kind{KindPoolDegraded}, false, KindTest, true},
	} {
		c := &emailChannel{cfg: EmailConfig{Kinds: tc.kinds, DailySummary: tc.summary}}
		if got := c.accepts(tc.kind); got != tc.want {
			t.Errorf("kinds %v, daily summary %v: accepts(%s) = %v, want %v", tc.kinds, tc.summary, tc.kind, got, tc.want)
		}
	}
}
