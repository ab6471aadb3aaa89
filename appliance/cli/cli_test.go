package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"coffer.dev/coffer/store"
)

func TestParseExtentList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []store.Extent
		err  string
	}{
		{in: "0 4096\n# comment\n\n65536 131072\n", want: []store.Extent{{Offset: 0, Length: 4096}, {Offset: 65536, Length: 131072}}},
		{in: "", want: nil},
		{in: "12 abc\n", err: "line 1"},
		{in: "1 2 3\n", err: "want"},
		{in: "-5 10\n", err: "non-negative"},
	} {
		got, err := ParseExtentList(strings.NewReader(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Fatalf("%q: %v %v", tc.in, got, err)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%q: extent %d = %v", tc.in, i, got[i])
			}
		}
	}
}

func TestParseUntil(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2027-01-31":           time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC),
		"2027-01-31T10:00:00Z": time.Date(2027, 1, 31, 10, 0, 0, 0, time.UTC),
		"+30d":                 now.AddDate(0, 0, 30),
		"2w":                   now.AddDate(0, 0, 14),
		"+36h":                 now.Add(36 * time.Hour),
	} {
		got, err := parseUntil(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseUntil(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"tomorrow", "+0d", "-3d", ""} {
		if _, err := parseUntil(bad, now); err == nil {
			t.Errorf("parseUntil(%q) accepted", bad)
		}
	}
}

func TestMainUsageAndErrors(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(context.Background(), nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "usage") {
		t.Fatalf("no arguments: code %d, %q", code, errb.String())
	}
	errb.Reset()
	if code := Main(context.Background(), []string{"frobnicate"}, &out, &errb); code != 2 {
		t.Fatalf("unknown command: code %d", code)
	}
	errb.Reset()
	dir := t.TempDir()
	code := Main(context.Background(), []string{"store", "list", "--store", filepath.Join(dir, "none")}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "key file") {
		t.Fatalf("store without key: code %d, %q", code, errb.String())
	}
}
