package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"coffer.dev/coffer/store"
	"coffer.dev/coffer/store/point"
)

// CapacityFile keeps the pool's usage over time (JSON lines).
const CapacityFile = "capacity.jsonl"

// Pool is the storage pool's state: the store's figures and the file
// system it lives on.
type Pool struct {
	Store store.Stats `json:"store"`
	Path  string      `json:"path"`
	Size  int64       `json:"size_bytes"`
	Used  int64       `json:"used_bytes"`
	Free  int64       `json:"free_bytes"`
}

// CapacitySample is one point of the pool's usage history.
type CapacitySample struct {
	Time     time.Time `json:"time"`
	Used     int64     `json:"used_bytes"`   // of the file system
	Size     int64     `json:"size_bytes"`   // of the file system
	Stored   int64     `json:"stored_bytes"` // the store's containers
	Logical  int64     `json:"logical_bytes"`
	Points   int       `json:"points"`
	Verified bool      `json:"-"`
}

// PoolState reads the store's figures and the pool's free space.
func (a *App) PoolState() (Pool, error) {
	st, err := a.Store.Stats()
	if err != nil {
		return Pool{}, err
	}
	p := Pool{Store: st, Path: a.Store.Dir()}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(a.Store.Dir(), &fs); err != nil {
		return p, fmt.Errorf("read the pool's free space: %w", err)
	}
	p.Size = int64(fs.Blocks) * int64(fs.Bsize)
	p.Free = int64(fs.Bavail) * int64(fs.Bsize)
	p.Used = p.Size - int64(fs.Bfree)*int64(fs.Bsize)
	return p, nil
}

// capacityLog appends samples at most once per interval.
type capacityLog struct {
	mu   sync.Mutex
	last time.Time
}

// SampleCapacity records the pool's usage now, unless a sample is
// younger than minGap.
func (a *App) SampleCapacity(minGap time.Duration) error {
	a.capacity.mu.Lock()
	defer a.capacity.mu.Unlock()
	now := time.Now().UTC()
	if !a.capacity.last.IsZero() && now.Sub(a.capacity.last) < minGap {
		return nil
	}
	p, err := a.PoolState()
	if err != nil {
		return err
	}
	b, _ := json.Marshal(CapacitySample{Time: now, Used: p.Used, Size: p.Size, Stored: p.Store.Stored, Logical: p.Store.Logical, Points: p.Store.Points})
	f, err := os.OpenFile(filepath.Join(a.Dir, CapacityFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("record the pool's usage: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("record the pool's usage: %w", err)
	}
	a.capacity.last = now
	return nil
}

// CapacityHistory returns the recorded samples, oldest first (at most
// the newest 5000). A torn last line is skipped.
func (a *App) CapacityHistory() ([]CapacitySample, error) {
	b, err := os.ReadFile(filepath.Join(a.Dir, CapacityFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the pool's usage history: %w", err)
	}
	var out []CapacitySample
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var s CapacitySample
		if json.Unmarshal(sc.Bytes(), &s) == nil && !s.Time.IsZero() {
			out = append(out, s)
		}
	}
	if len(out) > 5000 {
		out = out[len(out)-5000:]
	}
	return out, nil
}

// PoolState reads the pool's state.
func (s *Services) PoolState() (Pool, error) { return s.app.PoolState() }

// CapacityHistory is the pool's usage over time.
func (s *Services) CapacityHistory() ([]CapacitySample, error) { return s.app.CapacityHistory() }

// VerifyStore checks the store (sample: fraction of the data re-read;
// 0 or 1 reads all).
func (s *Services) VerifyStore(ctx context.Context, sample float64) (*store.VerifyReport, error) {
	rep, err := s.app.Store.Verify(ctx, store.VerifyOptions{Sample: sample})
	if e, bad := VerifyDamageEvent(rep); bad && s.alerts != nil {
		s.alerts.send(ctx, e)
	}
	return rep, err
}

// CollectGarbage frees the chunks no point uses any more.
func (s *Services) CollectGarbage(ctx context.Context, dryRun bool) (store.GCStats, error) {
	st, err := s.app.Store.GC(ctx, store.GCOptions{DryRun: dryRun})
	if err == nil && !dryRun {
		_ = s.app.SampleCapacity(0)
	}
	return st, err
}

// LockPoint sets a point's retention lock (it cannot be deleted before).
func (s *Services) LockPoint(id point.ID, until time.Time) error { return s.app.Store.Lock(id, until) }

// PointLock returns a point's retention lock (zero: none).
func (s *Services) PointLock(id point.ID) (time.Time, error) { return s.app.Store.RetentionLock(id) }
