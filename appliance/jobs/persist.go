package jobs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The state directory:
//
//	policies/<id>.json   one file per policy
//	jobs/<id>.json       one file per job (queue and history)
//	schedule.json        the last schedule instant handled per policy
//
// Every file is replaced atomically: written to a temporary file in the
// same directory, synced, renamed over the old one, and the directory
// synced. A file that cannot be read is renamed to <name>.corrupt.
const (
	policiesDir  = "policies"
	jobsDir      = "jobs"
	scheduleFile = "schedule.json"
	tmpMarker    = ".tmp-"
	corruptExt   = ".corrupt"
)

// schedState is what the scheduler remembers of a policy.
type schedState struct {
	// Last is when the scheduler last handled the policy's instants: every
	// instant up to Last has been queued, skipped or noted as missed.
	Last time.Time `json:"last"`
	// MissedPending is set when a missed run waits for the window to open.
	MissedPending bool `json:"missed_pending,omitempty"`
}

// writeFileAtomic replaces dir/name with data.
func writeFileAtomic(dir, name string, data []byte) (err error) {
	f, err := os.CreateTemp(dir, "."+name+tmpMarker+"*")
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
	}
	return nil
}

// writeJSON replaces dir/name with v as indented JSON.
func writeJSON(dir, name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	return writeFileAtomic(dir, name, append(b, '\n'))
}

// removeFile removes dir/name (a missing file is fine) and syncs dir.
func removeFile(dir, name string) error {
	if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", filepath.Join(dir, name), err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("remove %s: %w", filepath.Join(dir, name), err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// moveAside renames a file that cannot be read to <path>.corrupt (or
// .corrupt.N if that exists), so that the next start does not trip over
// it and an administrator can look at it.
func moveAside(log *slog.Logger, path string, why error) {
	dst := path + corruptExt
	for i := 1; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) || i > 100 {
			break
		}
		dst = fmt.Sprintf("%s%s.%d", path, corruptExt, i)
	}
	if err := os.Rename(path, dst); err != nil {
		log.Error("unreadable state file could not be moved aside", "file", path, "problem", why, "err", err)
		return
	}
	_ = syncDir(filepath.Dir(path))
	log.Error("unreadable state file moved aside", "file", path, "moved_to", dst, "problem", why)
}

// readDir reads every <key>.json in dir with decode, removes leftover
// temporary files and moves unreadable files aside.
func readDir(log *slog.Logger, dir string, decode func(key string, b []byte) error) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		full := filepath.Join(dir, name)
		switch {
		case strings.HasPrefix(name, ".") && strings.Contains(name, tmpMarker):
			// A write that a crash interrupted before its rename: the
			// old file (if any) is intact.
			if err := os.Remove(full); err != nil {
				log.Warn("could not remove a leftover temporary file", "file", full, "err", err)
			}
			continue
		case !e.Type().IsRegular() || !strings.HasSuffix(name, ".json"):
			continue
		}
		b, err := os.ReadFile(full)
		if err != nil {
			return fmt.Errorf("read %s: %w", full, err)
		}
		if err := decode(strings.TrimSuffix(name, ".json"), b); err != nil {
			moveAside(log, full, err)
		}
	}
	return nil
}

// decodeStrict unmarshals b into v; an empty file is an error.
func decodeStrict(b []byte, v any) error {
	if len(strings.TrimSpace(string(b))) == 0 {
		return errors.New("empty file")
	}
	return json.Unmarshal(b, v)
}
