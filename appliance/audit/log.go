package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Entry is one audited action.
type Entry struct {
	Time    time.Time `json:"time"`
	User    string    `json:"user"`             // "" for an anonymous attempt
	Role    string    `json:"role,omitempty"`   // the role the user acted in
	Via     string    `json:"via"`              // "ui", "api", "api-token:<name>", "cli", "system"
	Client  string    `json:"client,omitempty"` // remote address
	Action  string    `json:"action"`           // e.g. "POST /api/v1/policies/:id/run", "login"
	Target  string    `json:"target,omitempty"` // the object: policy ID, point ID, user name
	Outcome string    `json:"outcome"`          // "ok", "denied", "failed: <reason>"
	Status  int       `json:"status,omitempty"` // HTTP status where there is one
	Detail  string    `json:"detail,omitempty"` // a short summary, never a secret
}

// Options tune a Log.
type Options struct {
	// MaxBytes closes the current file at this size; 0 means 8 MiB.
	MaxBytes int64
	// Keep is the number of rotated files kept; 0 means 7.
	Keep int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Log is an append-only audit log. It is safe for concurrent use.
type Log struct {
	path string
	opt  Options

	mu   sync.Mutex
	f    *os.File
	size int64
}

// Open opens (creating if needed) the audit log at path.
func Open(path string, o Options) (*Log, error) {
	if o.MaxBytes <= 0 {
		o.MaxBytes = 8 << 20
	}
	if o.Keep <= 0 {
		o.Keep = 7
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	l := &Log{path: path, opt: o}
	if err := l.openLocked(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Log) openLocked() error {
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open audit log: %w", err)
	}
	size := st.Size()
	if size > 0 {
		// A torn last entry (power cut mid-write, never acknowledged) is
		// cut off so that the next entry starts on its own line.
		var last [1]byte
		if _, err := f.ReadAt(last[:], size-1); err == nil && last[0] != '\n' {
			if size, err = cutTornTail(l.path, size); err != nil {
				f.Close()
				return err
			}
		}
	}
	l.f, l.size = f, size
	return nil
}

// cutTornTail truncates the file after its last complete line.
func cutTornTail(path string, size int64) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("open audit log: %w", err)
	}
	keep := int64(bytes.LastIndexByte(b[:min(int64(len(b)), size)], '\n') + 1)
	if err := os.Truncate(path, keep); err != nil {
		return 0, fmt.Errorf("open audit log: cut a torn entry: %w", err)
	}
	return keep, nil
}

// Close closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Record appends e (its Time set now when zero) and syncs it to disk.
func (l *Log) Record(e Entry) error {
	if e.Outcome == "" {
		e.Outcome = "ok"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// The time is taken under the lock so that the file is in time order.
	if e.Time.IsZero() {
		e.Time = l.opt.Now()
	}
	e.Time = e.Time.UTC()
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit: encode entry: %w", err)
	}
	b = append(b, '\n')
	if l.f == nil {
		return errors.New("audit: log is closed")
	}
	if l.size > 0 && l.size+int64(len(b)) > l.opt.MaxBytes {
		if err := l.rotateLocked(); err != nil {
			return err
		}
	}
	n, err := l.f.Write(b)
	l.size += int64(n)
	if err == nil {
		err = l.f.Sync()
	}
	if err != nil {
		return fmt.Errorf("audit: write entry: %w", err)
	}
	return nil
}

// rotateLocked shifts audit.log.N up by one, dropping the oldest.
func (l *Log) rotateLocked() error {
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("audit: rotate: %w", err)
	}
	l.f = nil
	_ = os.Remove(l.rotated(l.opt.Keep))
	for i := l.opt.Keep - 1; i >= 1; i-- {
		if err := os.Rename(l.rotated(i), l.rotated(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("audit: rotate: %w", err)
		}
	}
	if err := os.Rename(l.path, l.rotated(1)); err != nil {
		return fmt.Errorf("audit: rotate: %w", err)
	}
	return l.openLocked()
}

func (l *Log) rotated(i int) string { return l.path + "." + strconv.Itoa(i) }

// Filter selects entries; zero fields match everything.
type Filter struct {
	User   string
	Since  time.Time
	Until  time.Time
	Search string // substring of action, target or detail (case-insensitive)
	Limit  int    // newest first; 0 means 500
}

func (f Filter) match(e Entry) bool {
	if f.User != "" && e.User != f.User {
		return false
	}
	if !f.Since.IsZero() && e.Time.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !e.Time.Before(f.Until) {
		return false
	}
	if f.Search != "" {
		q := strings.ToLower(f.Search)
		if !strings.Contains(strings.ToLower(e.Action+" "+e.Target+" "+e.Detail+" "+e.Outcome), q) {
			return false
		}
	}
	return true
}

// Entries returns the newest entries matching f, newest first, from the
// current and the rotated files. A damaged line (a torn write from a power
// cut) is skipped.
func (l *Log) Entries(f Filter) ([]Entry, error) {
	if f.Limit <= 0 {
		f.Limit = 500
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Entry
	for i := 0; i <= l.opt.Keep && len(out) < f.Limit; i++ {
		p := l.path
		if i > 0 {
			p = l.rotated(i)
		}
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("audit: read %s: %w", filepath.Base(p), err)
		}
		var file []Entry
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var e Entry
			if json.Unmarshal(sc.Bytes(), &e) == nil && f.match(e) {
				file = append(file, e)
			}
		}
		slices.Reverse(file)
		out = append(out, file...)
	}
	if len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}
