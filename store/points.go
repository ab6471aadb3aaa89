package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"coffer.dev/coffer/store/point"
)

// ErrNoPoint means no such recovery point exists.
var ErrNoPoint = errors.New("no such recovery point")

// ErrLocked means a retention lock forbids the operation.
var ErrLocked = errors.New("recovery point is under a retention lock")

// Point reads one recovery point.
func (s *Store) Point(id point.ID) (*point.RecoveryPoint, error) {
	if !id.Valid() {
		return nil, fmt.Errorf("point %q: %w", id, ErrNoPoint)
	}
	b, err := os.ReadFile(s.pointPath(id))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			s.mu.Lock()
			pn, ok := s.pins[id]
			s.mu.Unlock()
			if ok {
				return pn.p, nil
			}
			return nil, fmt.Errorf("point %s: %w", id, ErrNoPoint)
		}
		return nil, fmt.Errorf("read point %s: %w", id, err)
	}
	p, err := point.Decode(b, s.aead)
	if err != nil {
		return nil, fmt.Errorf("read point %s: %w: %v", id, ErrDamaged, err)
	}
	return p, nil
}

// PointIDs lists the IDs of all committed points, oldest first.
func (s *Store) PointIDs() ([]point.ID, error) {
	entries, err := os.ReadDir(filepath.Join(s.dir, pointsDir))
	if err != nil {
		return nil, fmt.Errorf("list points: %w", err)
	}
	var ids []point.ID
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".point") {
			continue
		}
		id := point.ID(strings.TrimSuffix(name, ".point"))
		if id.Valid() {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, nil
}

// Points reads every committed point, oldest first. Unreadable point files
// are reported in the error but do not hide the others.
func (s *Store) Points() ([]*point.RecoveryPoint, error) {
	ids, err := s.PointIDs()
	if err != nil {
		return nil, err
	}
	var out []*point.RecoveryPoint
	var errs []error
	for _, id := range ids {
		p, err := s.Point(id)
		if err != nil {
			if errors.Is(err, ErrNoPoint) {
				continue // deleted meanwhile
			}
			errs = append(errs, err)
			continue
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

// Latest returns the newest point of source (by creation time; IDs sort
// the same way).
func (s *Store) Latest(source string) (*point.RecoveryPoint, error) {
	ids, err := s.PointIDs()
	if err != nil {
		return nil, err
	}
	var best *point.RecoveryPoint
	for i := len(ids) - 1; i >= 0; i-- {
		p, err := s.Point(ids[i])
		if err != nil {
			if errors.Is(err, ErrNoPoint) {
				continue
			}
			return nil, err
		}
		if p.Source != source {
			continue
		}
		if best == nil || p.Created.After(best.Created) {
			best = p
		}
	}
	if best == nil {
		return nil, fmt.Errorf("source %s: %w", source, ErrNoPoint)
	}
	return best, nil
}

// pinLocked keeps a point's chunks alive while a backup bases on it or a
// reader reads it, even if the point is deleted meanwhile. s.mu is held.
func (s *Store) pinLocked(p *point.RecoveryPoint) {
	pn, ok := s.pins[p.ID]
	if !ok {
		pn = &pin{p: p}
		s.pins[p.ID] = pn
	}
	pn.refs++
}

func (s *Store) unpinLocked(id point.ID) {
	if pn, ok := s.pins[id]; ok {
		pn.refs--
		if pn.refs <= 0 {
			delete(s.pins, id)
		}
	}
}

// lockRecord is the retention lock file beside a point.
type lockRecord struct {
	Until time.Time `json:"until"`
	Set   time.Time `json:"set"`
}

// RetentionLock returns the time until which a point is locked (zero
// when it is not).
func (s *Store) RetentionLock(id point.ID) (time.Time, error) {
	b, err := os.ReadFile(s.lockPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read retention lock of %s: %w", id, err)
	}
	var l lockRecord
	if err := json.Unmarshal(b, &l); err != nil {
		// A damaged lock file must not unlock the point: treat it as
		// locked forever until an administrator looks at it.
		return time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), fmt.Errorf("retention lock of %s is damaged: %w", id, err)
	}
	return l.Until, nil
}

func (s *Store) writeLock(id point.ID, until time.Time) error {
	b, err := json.Marshal(lockRecord{Until: until.UTC(), Set: time.Now().UTC()})
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s.lockPath(id), b); err != nil {
		return fmt.Errorf("write retention lock of %s: %w", id, s.noSpace(err))
	}
	return nil
}

// Lock sets or extends a point's retention lock. A lock can only be
// extended, never shortened or removed.
func (s *Store) Lock(id point.ID, until time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := os.Stat(s.pointPath(id)); err != nil {
		return fmt.Errorf("lock point %s: %w", id, ErrNoPoint)
	}
	cur, err := s.RetentionLock(id)
	if err != nil {
		return fmt.Errorf("lock point %s: %w", id, err)
	}
	if !until.After(cur) {
		if until.Before(cur) {
			return fmt.Errorf("lock point %s until %s: %w until %s; a lock can only be extended", id, until.UTC().Format(time.RFC3339), ErrLocked, cur.Format(time.RFC3339))
		}
		return nil
	}
	return s.writeLock(id, until)
}

// Delete removes a point. A point under a retention lock cannot be
// deleted before the lock expires. The point's chunks are reclaimed by GC.
func (s *Store) Delete(id point.ID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !id.Valid() {
		return fmt.Errorf("delete point %q: %w", id, ErrNoPoint)
	}
	if _, err := os.Stat(s.pointPath(id)); err != nil {
		return fmt.Errorf("delete point %s: %w", id, ErrNoPoint)
	}
	until, err := s.RetentionLock(id)
	if err != nil {
		return fmt.Errorf("delete point %s: %w", id, err)
	}
	if time.Now().Before(until) {
		return fmt.Errorf("delete point %s: %w until %s", id, ErrLocked, until.Format(time.RFC3339))
	}
	if err := os.Remove(s.pointPath(id)); err != nil {
		return fmt.Errorf("delete point %s: %w", id, err)
	}
	os.Remove(s.lockPath(id))
	if err := syncDir(filepath.Join(s.dir, pointsDir)); err != nil {
		return fmt.Errorf("delete point %s: %w", id, err)
	}
	return nil
}
