package notify

import (
	"bytes"
	"mime"
	"net/mail"
	"strings"
	"testing"
	"time"
)

func TestEncodeHeader(t *testing.T) {
	for _, s := range []string{
		"Plain ASCII subject",
		"Pool „tank“ degraded",
		"日本語のテスト " + strings.Repeat("長い件名 ", 20),
	} {
		enc := encodeHeader(s)
		ascii := strings.IndexFunc(s, func(r rune) bool { return r > '~' }) < 0
		if ascii && enc != s {
			t.Errorf("encodeHeader(%q) = %q, want it unchanged", s, enc)
		}
		for _, line := range strings.Split(enc, "\r\n") {
			if len(line) > 76 {
				t.Errorf("encoded line %q is %d long", line, len(line))
			}
			if strings.IndexFunc(line, func(r rune) bool { return r > '~' }) >= 0 {
				t.Errorf("encoded line %q is not ASCII", line)
			}
		}
		// Unfold as a mail reader would, then decode.
		var dec mime.WordDecoder
		got, err := dec.DecodeHeader(strings.TrimSpace(strings.ReplaceAll(enc, "\r\n ", " ")))
		if err != nil || got != s {
			t.Errorf("decoding %q = %q, %v; want %q", enc, got, err, s)
		}
	}
}

func TestMailMessageHeaderInjection(t *testing.T) {
	e, err := Event{Kind: KindJobFailed, Subject: "bad\r\nBcc: victim@example.net\nX: y"}.normalise(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	from := &mail.Address{Address: "c@example.com"}
	n := mustNew(t, Config{}, Options{Hostname: "host\r\nBcc: x@example.net"})
	raw := mailMessage(e, time.Now(), from, []*mail.Address{{Address: "o@example.com"}}, n.hostname)
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get("Bcc") != "" || msg.Header.Get("X") != "" {
		t.Errorf("a header was injected:\n%s", raw)
	}
	if got, want := msg.Header.Get("Subject"), "[Coffer host Bcc: x@example.net] bad Bcc: victim@example.net X: y"; got != want {
		t.Errorf("Subject = %q, want %q", got, want)
	}
}

func TestHeloName(t *testing.T) {
	for in, want := range map[string]string{
		"":                                       "localhost",
		"coffer-01":                              "coffer-01",
		"backup.example.com":                     "backup.example.com",
		"Coffer Appliance":                       "localhost",
		"-bad":                                   "localhost",
		"a..b":                                   "localhost",
		"ünï":                                    "localhost",
		strings.Repeat("a", 64) + ".example.com": "localhost",
	} {
		if got := heloName(in); got != want {
			t.Errorf("heloName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEventNormalise(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e, err := Event{Kind: KindTapeNeeded, Subject: " Load\ttape\nA00001 "}.normalise(now)
	if err != nil {
		t.Fatal(err)
	}
	if e.Severity != SeverityInfo || !e.Time.Equal(now) || e.Subject != "Load tape A00001" {
		t.Errorf("normalised = %+v", e)
	}
	e, _ = Event{Kind: KindTapeNeeded, Subject: strings.Repeat("x", 300)}.normalise(now)
	if n := len([]rune(e.Subject)); n != maxSubject || !strings.HasSuffix(e.Subject, "…") {
		t.Errorf("a long subject became %d characters: %q", n, e.Subject)
	}
	if e, _ := (Event{Kind: KindPoolDegraded}).normalise(now); e.Subject != "pool_degraded" {
		t.Errorf("empty subject became %q", e.Subject)
	}
	for _, bad := range []Event{{Kind: "job_failure"}, {}, {Kind: KindJobFailed, Severity: "urgent"}} {
		if _, err := bad.normalise(now); err == nil {
			t.Errorf("%+v was accepted", bad)
		}
	}
}
