package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The measured steps, in the order they run.
const (
	stepFullA   = "full-A"
	stepFullB   = "full-B"
	stepDay2A   = "day2-A"
	stepRestore = "restore-A2"
)

var stepTitles = map[string]string{
	stepFullA:   "full backup A",
	stepFullB:   "full backup B",
	stepDay2A:   "day-2 backup A",
	stepRestore: "restore day-2 A",
}

// backupJob says what one backup step backs up. Image is always the staged
// copy stage/SOURCE/disk.img, so that restic and borg see one file whose
// content changes from day 1 to day 2.
type backupJob struct {
	Step    string
	Source  string // "A" or "B"
	Image   string // absolute path of the staged image
	Changed string // changed-extent list (day 2 only; only coffer uses it)
}

// tool is one backup program under test. Every method runs its program as
// a child process through the runner and returns what that cost; extra
// carries tool-specific facts worth keeping in result.json.
type tool interface {
	Name() string
	Repo() string // directory whose files count as stored bytes
	Init() error
	Backup(j backupJob) (p proc, extra map[string]any, err error)
	// Restore restores the day-2 backup of A below dir and returns the
	// path of the restored image.
	Restore(dir string) (p proc, image string, extra map[string]any, err error)
}

// ---- coffer ---------------------------------------------------------------

type coffer struct {
	r      *runner
	bin    string
	dir    string // run/coffer
	points map[string]string
	runs   []rssRecord // every coffer invocation, for the RSS target
}

type rssRecord struct {
	What   string `json:"what"`
	MaxRSS int64  `json:"peak_rss_bytes"`
}

func (c *coffer) Name() string { return "coffer" }
func (c *coffer) Repo() string { return filepath.Join(c.dir, "store") }
func (c *coffer) key() string  { return filepath.Join(c.dir, "key") }

// Reserves names Coffer's free-space reserve: 64 MiB fallocated so that a
// full pool can still flush its index and run GC. It holds no data.
func (c *coffer) Reserves() []string { return []string{"reserve"} }

func (c *coffer) run(what string, args ...string) (proc, error) {
	p, err := c.r.run("coffer-"+what, c.dir, nil, c.bin, args...)
	if p.MaxRSS > 0 {
		c.runs = append(c.runs, rssRecord{what, p.MaxRSS})
	}
	return p, err
}

func (c *coffer) Init() error {
	_, err := c.run("init", "store", "init", "--store", c.Repo(), "--key-file", c.key())
	return err
}

// cofferBackup is the JSON that backup-image prints.
type cofferBackup struct {
	Point string           `json:"point"`
	Stats map[string]int64 `json:"stats"`
	Secs  float64          `json:"seconds"`
}

func (c *coffer) Backup(j backupJob) (proc, map[string]any, error) {
	args := []string{"store", "backup-image", "--store", c.Repo(), "--key-file", c.key(), "--source", j.Source}
	if j.Changed != "" {
		args = append(args, "--changed", j.Changed)
	}
	args = append(args, "--json", j.Image)
	p, err := c.run(j.Step, args...)
	if err != nil {
		return p, nil, err
	}
	var out cofferBackup
	if err := decodeLastJSON(p.Stdout, &out); err != nil {
		return p, nil, fmt.Errorf("coffer backup-image output: %w", err)
	}
	if out.Point == "" {
		return p, nil, fmt.Errorf("coffer backup-image printed no point ID")
	}
	c.points[j.Step] = out.Point
	return p, map[string]any{"point": out.Point, "stats": out.Stats, "seconds": out.Secs}, nil
}

func (c *coffer) Restore(dir string) (proc, string, map[string]any, error) {
	point := c.points[stepDay2A]
	img := filepath.Join(dir, "disk.img")
	// --no-sync: restic and borg leave their output in the page cache too.
	p, err := c.run(stepRestore, "store", "restore-image", "--store", c.Repo(), "--key-file", c.key(),
		"--no-sync", "--point", point, img)
	return p, img, map[string]any{"point": point}, err
}

// Stats runs `coffer store stats` and returns its JSON object.
func (c *coffer) Stats() (map[string]any, error) {
	p, err := c.run("stats", "store", "stats", "--store", c.Repo(), "--key-file", c.key(), "--json")
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := decodeLastJSON(p.Stdout, &out); err != nil {
		return nil, fmt.Errorf("coffer stats output: %w", err)
	}
	return out, nil
}

// ReadAt runs `coffer store bench-readat` on the day-2 point of A.
func (c *coffer) ReadAt(count int) (map[string]any, error) {
	p, err := c.run("bench-readat", "store", "bench-readat", "--store", c.Repo(), "--key-file", c.key(),
		"--point", c.points[stepDay2A], "--count", fmt.Sprint(count), "--json")
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := decodeLastJSON(p.Stdout, &out); err != nil {
		return nil, fmt.Errorf("coffer bench-readat output: %w", err)
	}
	return out, nil
}

// ---- restic ---------------------------------------------------------------

type restic struct {
	r         *runner
	dir       string // run/restic
	stage     string // working directory of backups
	sparse    bool   // restore knows --sparse (restic >= 0.15)
	snapshots map[string]string
}

func (t *restic) Name() string { return "restic" }
func (t *restic) Repo() string { return filepath.Join(t.dir, "repo") }

func (t *restic) env() []string {
	return []string{
		"RESTIC_REPOSITORY=" + t.Repo(),
		"RESTIC_PASSWORD=coffer-bench",
		"RESTIC_CACHE_DIR=" + filepath.Join(t.dir, "cache"),
	}
}

func (t *restic) Init() error {
	t.sparse = strings.Contains(output("restic", "restore", "--help"), "--sparse")
	_, err := t.r.run("restic-init", t.dir, t.env(), "restic", "init", "--repository-version", "2")
	return err
}

func (t *restic) Backup(j backupJob) (proc, map[string]any, error) {
	rel, err := filepath.Rel(t.stage, j.Image)
	if err != nil {
		return proc{}, nil, err
	}
	p, err := t.r.run("restic-"+j.Step, t.stage, t.env(), "restic", "backup", "--host", "coffer-bench",
		"--json", rel)
	if err != nil {
		return p, nil, err
	}
	var sum map[string]any
	sc := bufio.NewScanner(bytes.NewReader(p.Stdout))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["message_type"] == "summary" {
			sum = m
		}
	}
	id, _ := sum["snapshot_id"].(string)
	if id == "" {
		return p, nil, fmt.Errorf("restic backup printed no snapshot id")
	}
	t.snapshots[j.Step] = id
	return p, map[string]any{"summary": sum}, nil
}

func (t *restic) Restore(dir string) (proc, string, map[string]any, error) {
	args := []string{"restore", t.snapshots[stepDay2A], "--target", dir}
	note := ""
	if t.sparse {
		args = append(args, "--sparse")
	} else {
		note = "this restic has no restore --sparse: zeros are written out"
	}
	p, err := t.r.run("restic-"+stepRestore, t.dir, t.env(), "restic", args...)
	if err != nil {
		return p, "", nil, err
	}
	img, err := findImage(dir)
	extra := map[string]any{"sparse": t.sparse}
	if note != "" {
		extra["note"] = note
	}
	return p, img, extra, err
}

// ---- borg -----------------------------------------------------------------

type borg struct {
	r     *runner
	dir   string // run/borg
	stage string
}

var borgArchives = map[string]string{stepFullA: "A-day1", stepFullB: "B-day1", stepDay2A: "A-day2"}

func (t *borg) Name() string { return "borg" }
func (t *borg) Repo() string { return filepath.Join(t.dir, "repo") }

func (t *borg) env() []string {
	return []string{
		"BORG_REPO=" + t.Repo(),
		"BORG_PASSPHRASE=coffer-bench",
		"BORG_BASE_DIR=" + filepath.Join(t.dir, "base"), // config, cache, keys, security
		"BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes",
		"BORG_RELOCATED_REPO_ACCESS_IS_OK=yes",
		"BORG_DISPLAY_PASSPHRASE=no",
	}
}

func (t *borg) Init() error {
	_, err := t.r.run("borg-init", t.dir, t.env(), "borg", "init", "-e", "repokey")
	return err
}

func (t *borg) Backup(j backupJob) (proc, map[string]any, error) {
	rel, err := filepath.Rel(t.stage, j.Image)
	if err != nil {
		return proc{}, nil, err
	}
	name := borgArchives[j.Step]
	p, err := t.r.run("borg-"+j.Step, t.stage, t.env(), "borg", "create", "::"+name, rel)
	return p, map[string]any{"archive": name}, err
}

func (t *borg) Restore(dir string) (proc, string, map[string]any, error) {
	name := borgArchives[stepDay2A]
	p, err := t.r.run("borg-"+stepRestore, dir, t.env(), "borg", "extract", "--sparse", "::"+name)
	if err != nil {
		return p, "", nil, err
	}
	img, err := findImage(dir)
	return p, img, map[string]any{"archive": name}, err
}

// ---- helpers --------------------------------------------------------------

// findImage returns the one regular file below dir (where restic and borg
// recreate the backed-up path).
func findImage(dir string) (string, error) {
	var found []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			found = append(found, p)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if len(found) != 1 {
		return "", fmt.Errorf("expected one restored file below %s, found %d", dir, len(found))
	}
	return found[0], nil
}

// decodeLastJSON decodes the last line of out that holds a JSON object
// (tools may print progress or warnings before it).
func decodeLastJSON(out []byte, v any) error {
	if json.Unmarshal(bytes.TrimSpace(out), v) == nil {
		return nil
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); strings.HasPrefix(l, "{") {
			return json.Unmarshal([]byte(l), v)
		}
	}
	return fmt.Errorf("no JSON object in %q", truncate(string(out), 200))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
