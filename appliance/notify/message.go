package notify

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// maxSubject is the longest subject kept, in characters.
const maxSubject = 200

// mailSubject is the subject line of a mail about e.
func mailSubject(hostname, subject string) string {
	if hostname == "" {
		return "[Coffer] " + subject
	}
	return "[Coffer " + hostname + "] " + subject
}

// mailMessage renders e as an RFC 5322 message in UTF-8, quoted-printable.
func mailMessage(e Event, date time.Time, from *mail.Address, to []*mail.Address, hostname string) []byte {
	var b bytes.Buffer
	header := func(name, value string) {
		if !strings.HasPrefix(value, "\r\n") {
			value = " " + value
		}
		b.WriteString(name + ":" + value + "\r\n")
	}
	header("Date", date.Format(time.RFC1123Z))
	header("From", from.String())
	tos := make([]string, len(to))
	for i, a := range to {
		tos[i] = a.String()
	}
	header("To", strings.Join(tos, ",\r\n "))
	header("Subject", encodeHeader(mailSubject(hostname, e.Subject)))
	header("Message-ID", "<"+rand.Text()+"@"+messageIDDomain(from.Address)+">")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	header("Auto-Submitted", "auto-generated")
	header("X-Coffer-Event", string(e.Kind))
	header("X-Coffer-Severity", string(e.Severity))
	b.WriteString("\r\n")

	qp := quotedprintable.NewWriter(&b)
	// Writes to a bytes.Buffer do not fail.
	_, _ = qp.Write([]byte(mailBody(e, hostname)))
	_ = qp.Close()
	return b.Bytes()
}

// mailBody is the plain text of a mail about e, lines ending in "\n".
func mailBody(e Event, hostname string) string {
	var b strings.Builder
	text := strings.TrimRight(strings.ReplaceAll(e.Text, "\r\n", "\n"), "\n \t")
	if text != "" {
		b.WriteString(text + "\n\n")
	}
	// The summary's text has its fields already, for people.
	if len(e.Fields) > 0 && e.Kind != KindDailySummary {
		width := 0
		for k := range e.Fields {
			width = max(width, utf8.RuneCountInString(k))
		}
		for _, k := range sortedKeys(e.Fields) {
			fmt.Fprintf(&b, "%-*s %s\n", width+1, k+":", oneLine(e.Fields[k]))
		}
		b.WriteString("\n")
	}
	if e.Link != "" {
		b.WriteString("Open in Coffer: " + oneLine(e.Link) + "\n\n")
	}
	b.WriteString("-- \n")
	fmt.Fprintf(&b, "%s, %s, %s\n", e.Severity, e.Kind, e.Time.Format("2006-01-02 15:04:05 MST"))
	if hostname != "" {
		b.WriteString("Sent by the Coffer appliance " + hostname + ".\n")
	} else {
		b.WriteString("Sent by a Coffer appliance.\n")
	}
	return b.String()
}

// encodeHeader returns s as it may stand in a header: as is when it is
// printable ASCII, otherwise as RFC 2047 encoded-words, folded.
func encodeHeader(s string) string {
	ascii := true
	for _, r := range s {
		if r < ' ' || r > '~' {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	// Each encoded-word goes on a line of its own, the first one too, so
	// that no line is longer than 78 characters.
	return "\r\n " + strings.ReplaceAll(mime.QEncoding.Encode("utf-8", s), "?= =?", "?=\r\n =?")
}

// messageIDDomain is the part of a Message-ID after the "@": the sender's
// domain.
func messageIDDomain(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 && i+1 < len(addr) {
		d := addr[i+1:]
		if !strings.ContainsAny(d, "<>[] \"") {
			return d
		}
	}
	return "coffer.invalid"
}

// oneLine turns every run of white space and control characters (line
// breaks included) into one space, and trims s.
func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}), " ")
}

// cut shortens s to n characters, marking the cut with an ellipsis.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
