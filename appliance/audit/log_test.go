package audit

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRecordAndRead(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	l, err := Open(filepath.Join(dir, "audit.log"), Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range []Entry{
		{User: "admin", Via: "ui", Action: "login"},
		{User: "admin", Via: "api", Action: "POST /api/v1/policies", Target: "nightly", Status: 201},
		{User: "olga", Via: "ui", Action: "POST /api/v1/policies/:id/run", Target: "nightly", Outcome: "denied", Status: 403},
	} {
		e.Time = now.Add(time.Duration(i) * time.Minute)
		if err := l.Record(e); err != nil {
			t.Fatal(err)
		}
	}
	// A torn last line (power cut mid-write) is skipped, not fatal.
	l.Close()
	f, _ := os.OpenFile(filepath.Join(dir, "audit.log"), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"time":"2026-12-02T10:`)
	f.Close()
	if l, err = Open(filepath.Join(dir, "audit.log"), Options{}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Record(Entry{User: "admin", Action: "logout"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		f    Filter
		want []string
	}{
		{Filter{}, []string{"logout", "POST /api/v1/policies/:id/run", "POST /api/v1/policies", "login"}},
		{Filter{User: "olga"}, []string{"POST /api/v1/policies/:id/run"}},
		{Filter{Search: "NIGHTLY"}, []string{"POST /api/v1/policies/:id/run", "POST /api/v1/policies"}},
		{Filter{Search: "denied"}, []string{"POST /api/v1/policies/:id/run"}},
		{Filter{Since: now.Add(time.Minute), Until: now.Add(2 * time.Minute)}, []string{"POST /api/v1/policies"}},
		{Filter{Limit: 1}, []string{"logout"}},
	} {
		got, err := l.Entries(tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var acts []string
		for _, e := range got {
			acts = append(acts, e.Action)
		}
		if strings.Join(acts, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%+v: %q, want %q", tc.f, acts, tc.want)
		}
	}
	st, _ := os.Stat(filepath.Join(dir, "audit.log"))
	if st.Mode().Perm() != 0o600 {
		t.Errorf("audit log mode %v", st.Mode().Perm())
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "audit.log")
	l, err := Open(p, Options{MaxBytes: 1000, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				if err := l.Record(Entry{User: "u", Action: "act", Target: strings.Repeat("x", w+i)}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	for _, name := range []string{"audit.log", "audit.log.1", "audit.log.2"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Size() > 1000 {
			t.Errorf("%s: %v %v", name, st, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "audit.log.3")); err == nil {
		t.Error("more rotated files than Keep")
	}
	got, err := l.Entries(Filter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || len(got) >= 100 {
		t.Errorf("%d entries after rotation (oldest dropped, the rest kept)", len(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i].Time.After(got[i-1].Time) {
			t.Fatalf("entries not newest first at %d", i)
		}
	}
}
