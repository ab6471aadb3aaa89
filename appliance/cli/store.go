package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"coffer.dev/coffer/appliance/blockdev"
	"coffer.dev/coffer/store"
	"coffer.dev/coffer/store/crypt"
	"coffer.dev/coffer/store/point"
)

type storeSub struct {
	name  string
	args  string
	about string
	run   func(ctx context.Context, env *Env, so *storeOpts, fs *flag.FlagSet, args []string) error
}

// storeOpts are the flags every store subcommand takes.
type storeOpts struct {
	dir     string
	keyFile string
	json    bool
}

func storeSubs() []storeSub {
	return []storeSub{
		{name: "init", args: "", about: "create a store and its key file (prints the recovery key once)", run: storeInit},
		{name: "backup-image", args: "[--source NAME] [--changed FILE] [NAME=]IMAGE...", about: "back up raw disk images or block devices as one recovery point", run: storeBackup},
		{name: "restore-image", args: "--point ID|latest [--source NAME] [--disk NAME] OUTPUT", about: "restore one disk of a point to an image file or block device", run: storeRestore},
		{name: "export", args: "--point ID|latest [--source NAME] [--disk NAME] --format raw|vmdk|vhdx|qcow2 OUTPUT|-", about: "stream one disk of a point as an image for another hypervisor", run: storeExport},
		{name: "list", args: "[--source NAME]", about: "list recovery points", run: storeList},
		{name: "verify", args: "[--sample FRACTION]", about: "check every container, chunk and point; name the damaged points", run: storeVerify},
		{name: "gc", args: "[--dry-run] [--compact-below F]", about: "reclaim the space of chunks no point refers to", run: storeGC},
		{name: "stats", args: "", about: "print the store's figures (sizes, dedup and compression ratios)", run: storeStats},
		{name: "lock", args: "--point ID --until DATE|+DURATION", about: "set or extend a point's retention lock", run: storeLock},
		{name: "delete", args: "--point ID...", about: "delete points (refused while a retention lock holds)", run: storeDelete},
		{name: "prune", args: "--keep-last N --keep-daily N ... [--source NAME] [--dry-run]", about: "delete the points a GFS policy does not keep", run: storePrune},
		{name: "recovery-key", args: "", about: "print the store's recovery key from the key file", run: storeRecoveryKey},
		{name: "bench-readat", args: "--point ID [--disk NAME] [--count N]", about: "measure 4 KiB random reads of a disk (benchmarks)", run: storeBenchReadAt},
	}
}

func runStore(ctx context.Context, env *Env, args []string) error {
	subs := storeSubs()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(env.Stderr, "usage: coffer store SUBCOMMAND [--store DIR] [--key-file FILE] [--json] ...\n\nsubcommands:")
		for _, s := range subs {
			fmt.Fprintf(env.Stderr, "  %-14s %s\n", s.name, s.about)
		}
		if len(args) == 0 {
			return usagef("store: missing subcommand")
		}
		return nil
	}
	for _, sub := range subs {
		if sub.name != args[0] {
			continue
		}
		fs := newFlagSet(env, "store "+sub.name, "store "+sub.name+" "+sub.args)
		so := &storeOpts{}
		fs.StringVar(&so.dir, "store", envOr("COFFER_STORE", filepath.Join("var", "store")), "store directory ($COFFER_STORE)")
		fs.StringVar(&so.keyFile, "key-file", os.Getenv("COFFER_KEY_FILE"), "file holding the store's master key ($COFFER_KEY_FILE; default STORE.key)")
		fs.BoolVar(&so.json, "json", false, "print JSON")
		return sub.run(ctx, env, so, fs, args[1:])
	}
	return usagef("store: unknown subcommand %q (see coffer store help)", args[0])
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func (so *storeOpts) keyPath() string {
	if so.keyFile != "" {
		return so.keyFile
	}
	return filepath.Clean(so.dir) + ".key"
}

// parseAndOpen parses the subcommand's flags, then opens the store.
func (so *storeOpts) parseAndOpen(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) (*store.Store, []string, error) {
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, nil, err
	}
	s, err := so.open(ctx, env)
	return s, pos, err
}

func (so *storeOpts) open(ctx context.Context, env *Env) (*store.Store, error) {
	key, err := crypt.ReadKeyFile(so.keyPath())
	if err != nil {
		return nil, err
	}
	return store.Open(ctx, so.dir, key, store.Options{Logger: env.Log})
}

func storeInit(ctx context.Context, env *Env, so *storeOpts, fs *flag.FlagSet, args []string) error {
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("store init takes no arguments")
	}
	kp := so.keyPath()
	var key crypt.MasterKey
	created := false
	if _, err := os.Stat(kp); err == nil {
		if key, err = crypt.ReadKeyFile(kp); err != nil {
			return err
		}
	} else {
		if key, err = crypt.NewMasterKey(); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(kp), 0o700); err != nil {
			return err
		}
		if err := crypt.WriteKeyFile(kp, key); err != nil {
			return err
		}
		created = true
	}
	if err := store.Init(so.dir, key, store.InitOptions{}); err != nil {
		if created {
			os.Remove(kp)
		}
		return err
	}
	if so.json {
		return printJSON(env.Stdout, map[string]any{"store": so.dir, "key_file": kp, "key_file_created": created})
	}
	fmt.Fprintf(env.Stdout, "Store created in %s; master key in %s.\n", so.dir, kp)
	if created {
		fmt.Fprintf(env.Stdout, "\nRecovery key (write it down and keep it offline; without it a lost key file means lost data):\n\n    %s\n\n", crypt.EncodeRecoveryKey(key))
	}
	return nil
}

// ParseExtentList reads one "offset length" pair (bytes, decimal) per
// line; blank lines and lines starting with # are skipped.
func ParseExtentList(r io.Reader) ([]store.Extent, error) {
	var out []store.Extent
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		f := strings.Fields(t)
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want \"offset length\", got %q", line, t)
		}
		off, err1 := strconv.ParseInt(f[0], 10, 64)
		n, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil || off < 0 || n < 0 {
			return nil, fmt.Errorf("line %d: offset and length must be non-negative byte counts, got %q", line, t)
		}
		out = append(out, store.Extent{Offset: off, Length: n})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func readExtentFile(path string) ([]store.Extent, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("changed-extent list: %w", err)
	}
	defer f.Close()
	exts, err := ParseExtentList(f)
	if err != nil {
		return nil, fmt.Errorf("changed-extent list %s: %w", path, err)
	}
	return exts, nil
}

// parseUntil reads an absolute date (RFC 3339 or YYYY-MM-DD) or a
// duration from now (+30d, +12h, 90d).
func parseUntil(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	d := strings.TrimPrefix(s, "+")
	mult := time.Duration(0)
	switch {
	case strings.HasSuffix(d, "d"):
		mult, d = 24*time.Hour, strings.TrimSuffix(d, "d")
	case strings.HasSuffix(d, "w"):
		mult, d = 7*24*time.Hour, strings.TrimSuffix(d, "w")
	case strings.HasSuffix(d, "y"):
		mult, d = 365*24*time.Hour, strings.TrimSuffix(d, "y")
	}
	if mult > 0 {
		n, err := strconv.Atoi(d)
		if err == nil && n > 0 {
			return now.Add(time.Duration(n) * mult), nil
		}
	} else if dur, err := time.ParseDuration(d); err == nil && dur > 0 {
		return now.Add(dur), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither a date (2027-01-31, RFC 3339) nor a duration (+30d, +12w, +1y, +36h)", s)
}

type backupResult struct {
	Point   point.ID          `json:"point"`
	Source  string            `json:"source"`
	Base    point.ID          `json:"base,omitempty"`
	Stats   point.Stats       `json:"stats"`
	Seconds float64           `json:"seconds"`
	Lookups store.LookupStats `json:"lookups"`
}

func storeBackup(ctx context.Context, env *Env, so *storeOpts, fs *flag.FlagSet, args []string) error {
	source := fs.String("source", "", "source name (default: the first image's file name)")
	var changed, labels multiFlag
	fs.Var(&changed, "changed", "changed-extent list (\"offset length\" per line); NAME=FILE for one disk of several")
	fs.Var(&labels, "label", "label KEY=VALUE (repeatable)")
	lockUntil := fs.String("lock-until", "", "retention lock: date or +duration")
	consistency := fs.String("consistency", string(point.Unknown), "consistency level to record (application, filesystem, crash, unknown)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("store backup-image: no image given")
	}
	type diskArg struct{ name, path string }
	var disks []diskArg
	for i, a := range pos {
		name, path := fmt.Sprintf("disk%d", i), a
		if k := strings.Index(a, "="); k > 0 && !strings.Contains(a[:k], "/") {
			name, path = a[:k], a[k+1:]
		}
		disks = append(disks, diskArg{name, path})
	}
	changedBy := map[string]string{}
	for _, c := range changed {
		if k := strings.Index(c, "="); k > 0 && !strings.Contains(c[:k], "/") {
			changedBy[c[:k]] = c[k+1:]
		} else if len(disks) == 1 {
			changedBy[disks[0].name] = c
		} else {
			return usagef("store backup-image: with several images, give --changed NAME=FILE")
		}
	}
	if *source == "" {
		*source = strings.TrimSuffix(filepath.Base(disks[0].path), filepath.Ext(disks[0].path))
	}
	spec := store.BackupSpec{Source: *source, Consistency: point.Consistency(*consistency), Labels: map[string]string{}}
	switch spec.Consistency {
	case point.ApplicationConsistent, point.FileSystemConsistent, point.CrashConsistent, point.Unknown:
	default:
		return usagef("store backup-image: unknown consistency %q", *consistency)
	}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return usagef("store backup-image: label %q is not KEY=VALUE", l)
		}
		spec.Labels[k] = v
	}
	if *lockUntil != "" {
		if spec.RetainUntil, err = parseUntil(*lockUntil, time.Now()); err != nil {
			return usagef("store backup-image: --lock-until: %v", err)
		}
	}
	sources := make([]store.DiskSource, len(disks))
	for i, d := range disks {
		dev, err := blockdev.Open(d.path)
		if err != nil {
			return err
		}
		defer dev.Close()
		ds := store.DiskSource{Name: d.name, Size: dev.Size(), Reader: dev}
		if f, ok := changedBy[d.name]; ok {
			if ds.Changed, err = readExtentFile(f); err != nil {
				return err
			}
			if ds.Changed == nil {
				ds.Changed = []store.Extent{}
			}
		}
		alloc, err := dev.Allocated()
		if err != nil {
			return err
		}
		if alloc != nil {
			ds.Allocated = make([]store.Extent, len(alloc))
			for k, e := range alloc {
				ds.Allocated[k] = store.Extent{Offset: e.Offset, Length: e.Length}
			}
		}
		sources[i] = ds
	}
	for name := range changedBy {
		found := false
		for _, d := range disks {
			found = found || d.name == name
		}
		if !found {
			return usagef("store backup-image: --changed names disk %q, which is not among the images", name)
		}
	}
	s, err := so.open(ctx, env)
	if err != nil {
		return err
	}
	defer s.Close()
	start := time.Now()
	b, err := s.NewBackup(ctx, spec)
	if err != nil {
		return err
	}
	for _, ds := range sources {
		if _, err := b.AddDisk(ctx, ds); err != nil {
			b.Abort()
			return err
		}
	}
	p, err := b.Commit(ctx)
	if err != nil {
		return err
	}
	res := backupResult{Point: p.ID, Source: p.Source, Base: p.Base, Stats: p.Stats, Seconds: time.Since(start).Seconds(), Lookups: s.LookupStats()}
	if so.json {
		return printJSON(env.Stdout, res)
	}
	mode := "full"
	if p.Base != "" {
		mode = "incremental on " + string(p.Base)
	}
	for _, d := range p.Disks {
		if !d.Incremental && p.Base != "" {
			mode = "full read of some disks, base " + string(p.Base)
		}
	}
	fmt.Fprintf(env.Stdout, "point %s of %s (%s)\n", p.ID, p.Source, mode)
	fmt.Fprintf(env.Stdout, "  logical %s, data %s, read %s, new %s, stored %s in %.2fs (%s/s logical)\n",
		human(p.Stats.Logical), human(p.Stats.Data), human(p.Stats.Read), human(p.Stats.New), human(p.Stats.Stored),
		res.Seconds, human(int64(float64(p.Stats.Logical)/max(res.Seconds, 1e-6))))
	if l := res.Lookups; l.Total > 0 {
		fmt.Fprintf(env.Stdout, "  chunk lookups: %d, %.1f%% answered in memory (locality cache %d, summary vector %d), %d from the index\n",
			l.Total, 100*float64(l.CacheHits+l.FilterNew)/float64(l.Total), l.CacheHits, l.FilterNew, l.IndexLookup)
	}
	return nil
}

func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		f /= unit
		if f < unit {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return fmt.Sprintf("%.1f EiB", f/unit)
}

// resolvePoint accepts an ID or "latest" (with a source).
func resolvePoint(s *store.Store, id, source string) (*point.RecoveryPoint, error) {
	if id == "" {
		return nil, usagef("--point is required (an ID from 'coffer store list', or latest with --source)")
	}
	if id == "latest" {
		if source == "" {
			pts, err := s.Points()
			if err != nil {
				return nil, err
			}
			if len(pts) == 0 {
				return nil, store.ErrNoPoint
			}
			return pts[len(pts)-1], nil
		}
		return s.Latest(source)
	}
	return s.Point(point.ID(id))
}

// openPointDisk opens the store and one disk of a point (the only disk
// when name is empty). The caller closes both.
func (so *storeOpts) openPointDisk(ctx context.Context, env *Env, pid, source, name string) (*store.Store, *point.RecoveryPoint, string, *store.DiskReader, error) {
	s, err := so.open(ctx, env)
	if err != nil {
		return nil, nil, "", nil, err
	}
	p, err := resolvePoint(s, pid, source)
	if err != nil {
		s.Close()
		return nil, nil, "", nil, err
	}
	if name == "" {
		if len(p.Disks) != 1 {
			var names []string
			for _, d := range p.Disks {
				names = append(names, d.Name)
			}
			s.Close()
			return nil, nil, "", nil, usagef("point %s has %d disks (%s): choose one with --disk", p.ID, len(p.Disks), strings.Join(names, ", "))
		}
		name = p.Disks[0].Name
	}
	r, err := s.OpenDisk(p.ID, name)
	if err != nil {
		s.Close()
		return nil, nil, "", nil, err
	}
	return s, p, name, r, nil
}

func storeRestore(ctx context.Context, env *Env, so *storeOpts, fs *flag.FlagSet, args []string) error {
	pid := fs.String("point", "", "point ID, or latest")
	source := fs.String("source", "", "with --point latest: the source")
	disk := fs.String("disk", "", "disk name (default: the point's only disk)")
	force := fs.Bool("force", false, "overwrite an existing output file")
	noSync := fs.Bool("no-sync", false, "do not flush the output to stable storage at the end (block devices are always flushed)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("store restore-image: give exactly one OUTPUT")
	}
	s, p, name, r, err := so.openPointDisk(ctx, env, *pid, *source, *disk)
	if err != nil {
		return err
	}
	defer s.Close()
	defer r.Close()
	out, err := blockdev.CreateOutput(pos[0], r.Size(), *force)
	if err != nil {
		return err
	}
	start := time.Now()
	st, err := r.Restore(ctx, out, store.RestoreOptions{WriteZeros: out.NeedsZeros()})
	if err == nil && (!*noSync || out.NeedsZeros()) {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("restore to %s (incomplete; do not use it): %w", pos[0], err)
	}
	secs := time.Since(start).Seconds()
	if so.json {
		return printJSON(env.Stdout, map[string]any{"point": p.ID, "disk": name, "output": pos[0], "logical_bytes": st.Logical, "written_bytes": st.Written, "seconds": secs})
	}
	fmt.Fprintf(env.Stdout, "restored disk %s of point %s to %s: %s (%s written) in %.2fs\n", name, p.ID, pos[0], human(st.Logical), human(st.Written), secs)
	return nil
}

type pointRow struct {
	*point.RecoveryPoint
	LockedUntil *time.Time `json:"locked_until,omitempty"`
	// DedupRatio is the point's non-zero data over what it added;
	// CompressionRatio what it added over what that takes stored.
	DedupRatio       float64 `json:"dedup_ratio"`
	CompressionRatio float64 `json:"compression_ratio"`
}

func storeList(ctx context.Context, env *Env, so *storeOpts, fs *flag.FlagSet, args []string) error {
	source := fs.String("source", "", "only points of this source")
	s, _, err := so.parseAndOpen(ctx, env, fs, args)
	if err != nil {
		return err
	}
	defer s.Close()
	pts, listErr := s.Points()
	var rows []pointRow
	for _, p := range pts {
		if *source != "" && p.Source != *source {
			continue
		}
		row := pointRow{RecoveryPoint: p}
		if p.Stats.New > 0 {
			row.DedupRatio = float64(p.Stats.Data) / float64(p.Stats.New)
		}
		if p.Stats.Stored > 0 {
			row.CompressionRatio = float64(p.Stats.New) / float64(p.Stats.Stored)
		}
		if t, err := s.RetentionLock(p.ID); err == nil && !t.IsZero() {
			row.LockedUntil = &t
		}
		rows = append(rows, row)
	}
	if so.json {
		if rows == nil {
			rows = []pointRow{}
		}
		if err := printJSON(env.Stdout, rows); err != nil {
			return err
		}
		return listErr
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POINT\tSOURCE\tCREATED\tDISKS\tLOGICAL\tNEW STORED\tDEDUP\tCOMPR\tCONSISTENCY\tLOCKED UNTIL")
	for _, r := range rows {
		lock := "-"
		if r.LockedUntil != nil {
			lock = r.LockedUntil.Format("2006-01-02 15:04")
		}
		ratio := func(v float64) string {
			if v == 0 {
				return "-"
			}
			return fmt.Sprintf("%.1fx", v)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Source, r.Created.Local().Format("2006-01-02 15:04:05"),
			len(r.Disks), human(r.Stats.Logical), human(r.Stats.Stored), ratio(r.DedupRatio), ratio(r.CompressionRatio), r.Consistency, lock)
	}
	tw.Flush()
	return listErr
}

func storeVerify(ctx context.Context, env *Env, so *storeOpts, fs *flag.FlagSet, args []string) error {
	sample := fs.Float64("sample", 1, "fraction of regions to re-read (1 = all)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *sample <= 0 || *sample > 1 {
		return usagef("--sample must be in (0, 1]")
	}
	s, err := so.open(ctx, env)
	if err != nil {
		return err
	}
	defer s.Close()
	rep, err := s.Verify(ctx, store.VerifyOptions{Sample: *sample})
	if err != nil {
		return err
	}
	if so.json {
		if err := printJSON(env.Stdout, rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(env.Stdout, "verified %d containers (%d regions, %d chunks, %s) and %d points in %s\n",
			rep.Containers, rep.RegionsChecked, rep.ChunksChecked, human(rep.BytesRead), len(rep.Points), rep.Duration.Round(time.Millisecond))
		if rep.IndexRebuilt {
			fmt.Fprintln(env.Stdout, "index was unreadable and has been rebuilt from the containers")
		}
		if rep.IndexRepaired > 0 {
			fmt.Fprintf(env.Stdout, "index: %d entries repaired from the containers\n", rep.IndexRepaired)
		}
		for _, c := range rep.ContainersDamaged {
			fmt.Fprintf(env.Stdout, "DAMAGED container %d\n", c)
		}
		for _, p := range rep.Points {
			if p.OK {
				continue
			}
			fmt.Fprintf(env.Stdout, "DAMAGED point %s (%s)\n", p.ID, p.Source)
			if p.Error != "" {
				fmt.Fprintf(env.Stdout, "  %s\n", p.Error)
			}
			for _, d := range p.Disks {
				for _, r := range d.Damaged {
					fmt.Fprintf(env.Stdout, "  disk %s bytes %d-%d: %s\n", d.Name, r.Offset, r.Offset+r.Length-1, r.Reason)
				}
			}
		}
		if rep.OK() {
			fmt.Fprintln(env.Stdout, "all points are intact")
		}
	}
	if !rep.OK() {
		return &exitError{code: 1, err: fmt.Errorf("%d damaged points", len(rep.Damaged))}
	}
	return nil
}

func storeGC(ctx context.Context, env *Env, so *storeOpts, fs *flag.FlagSet, args []string) error {
	dry := fs.Bool("dry-run", false, "only report what would be freed")
	below := fs.Float64("compact-below", 0.5, "compact containers whose live share is under this fraction")
	s, _, err := so.parseAndOpen(ctx, env, fs, args)
	if err != nil {
		return err
	}
	defer s.Close()
	st, err := s.GC(ctx, store.GCOptions{DryRun: *dry, CompactBelow: *below})
	if err != nil {
		return err
	}
	if so.json {
		return printJSON(env.Stdout, st)
	}
	verb := "freed"
	if *dry {
		verb = "would free"
	}
	fmt.Fprintf(env.Stdout, "gc %s %s: %d containers deleted, %d compacted (%d chunks moved, %s written), %d chunks dropped, %d points kept, in %s\n",
		verb, human(st.BytesFreed), st.ContainersDeleted, st.ContainersCompacted, st.ChunksMoved, human(st.BytesWritten), st.ChunksDeleted, st.Points, st.Duration.Round(time.Millisecond))
	return nil
}

func storeStats(ctx context.Context, env *Env, so *storeOpts, fs *flag.FlagSet, args []string) error {
	s, _, err := so.parseAndOpen(ctx, env, fs, args)
	if err != nil {
		return err
	}
	defer s.Close()
	st, err := s.Stats()
	if err != nil {
		return err
	}
	if so.json {
		return printJSON(env.Stdout, st)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "points\t%d (%d sources)\n", st.Points, st.Sources)
	fmt.Fprintf(tw, "logical\t%s (%s non-zero)\n", human(st.Logical), human(st.Data))
	fmt.Fprintf(tw, "unique\t%s in %d chunks\n", human(st.Unique), st.Chunks)
	fmt.Fprintf(tw, "stored\t%s in %d containers\n", human(st.Stored), st.Containers)
	fmt.Fprintf(tw, "dedup ratio\t%.2f\n", st.DedupRatio)
	fmt.Fprintf(tw, "compression ratio\t%.2f\n", st.CompressionRatio)
	fmt.Fprintf(tw, "logical / stored\t%.2f\n", st.TotalRatio)
	per := 0.0
	if st.Chunks > 0 {
		per = float64(st.IndexResident) / float64(st.Chunks)
	}
	fmt.Fprintf(tw, "index memory\t%s (%.1f bytes per chunk) + %s fixed buffers\n", human(st.IndexResident), per, human(st.IndexFixed))
	return tw.Flush()
}

func storeLock(ctx context.Context, env *Env, so *storeOpts, fs *flag.FlagSet, args []string) error {
	pid := fs.String("point", "", "point ID")
	until := fs.String("until", "", "lock until: date or +duration")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *pid == "" || *until == "" {
		return usagef("store lock: --point and --until are required")
	}
	t, err := parseUntil(*until, time.Now())
	if err != nil {
		return usagef("store lock: --until: %v", err)
	}
	s, err := so.open(ctx, env)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Lock(point.ID(*pid), t); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "point %s is locked until %s\n", *pid, t.UTC().Format(time.RFC3339))
	return nil
}

func storeDelete(ctx context.Context, env *Env, so *storeOpts, fs *flag.FlagSet, args []string) error {
	var ids multiFlag
	fs.Var(&ids, "point", "point ID (repeatable)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	ids = append(ids, pos...)
	if len(ids) == 0 {
		return usagef("store delete: give --point ID")
	}
	s, err := so.open(ctx, env)
	if err != nil {
		return err
	}
	defer s.Close()
	var errs []error
	for _, id := range ids {
		if err := s.Delete(point.ID(id)); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(env.Stdout, "deleted point %s (run gc to reclaim its space)\n", id)
	}
	return errors.Join(errs...)
}

func storePrune(ctx context.Context, env *Env, so *storeOpts, fs *flag.FlagSet, args []string) error {
	var r store.Retention
	fs.IntVar(&r.Last, "keep-last", 0, "keep the newest N points of each source")
	fs.IntVar(&r.Daily, "keep-daily", 0, "keep one point a day for the last N days with points")
	fs.IntVar(&r.Weekly, "keep-weekly", 0, "keep one point a week for N weeks")
	fs.IntVar(&r.Monthly, "keep-monthly", 0, "keep one point a month for N months")
	fs.IntVar(&r.Yearly, "keep-yearly", 0, "keep one point a year for N years")
	source := fs.String("source", "", "only this source")
	dry := fs.Bool("dry-run", false, "only show what would be deleted")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if r.Empty() {
		return usagef("store prune: give at least one --keep-* rule (a policy that keeps nothing is refused)")
	}
	r.Location = time.Local
	s, err := so.open(ctx, env)
	if err != nil {
		return err
	}
	defer s.Close()
	plan, err := s.Prune(r, *source, *dry)
	if err != nil {
		return err
	}
	if so.json {
		return printJSON(env.Stdout, plan)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POINT\tSOURCE\tCREATED\tDECISION\tWHY")
	var errs []error
	for _, d := range plan {
		dec := "delete"
		switch {
		case d.Keep:
			dec = "keep"
		case d.Deleted:
			dec = "deleted"
		case *dry:
			dec = "would delete"
		}
		why := strings.Join(d.Reasons, ", ")
		if d.Error != "" {
			why = d.Error
			errs = append(errs, errors.New(d.Error))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.ID, d.Source, d.Created, dec, why)
	}
	tw.Flush()
	return errors.Join(errs...)
}

func storeRecoveryKey(ctx context.Context, env *Env, so *storeOpts, fs *flag.FlagSet, args []string) error {
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	key, err := crypt.ReadKeyFile(so.keyPath())
	if err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, crypt.EncodeRecoveryKey(key))
	return nil
}

func storeBenchReadAt(ctx context.Context, env *Env, so *storeOpts, fs *flag.FlagSet, args []string) error {
	pid := fs.String("point", "", "point ID or latest")
	disk := fs.String("disk", "", "disk name (default: the first)")
	count := fs.Int("count", 20000, "number of reads measured (after as many warm-up reads)")
	size := fs.Int("size", 4096, "bytes per read")
	s, _, err := so.parseAndOpen(ctx, env, fs, args)
	if err != nil {
		return err
	}
	defer s.Close()
	p, err := resolvePoint(s, *pid, "")
	if err != nil {
		return err
	}
	name := *disk
	if name == "" {
		name = p.Disks[0].Name
	}
	r, err := s.OpenDisk(p.ID, name)
	if err != nil {
		return err
	}
	defer r.Close()
	data, err := r.DataExtents(ctx)
	if err != nil {
		return err
	}
	var total int64
	for _, e := range data {
		total += e.Length
	}
	if total < int64(*size) {
		return fmt.Errorf("disk %s of point %s holds no data to read", name, p.ID)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	pick := func() int64 {
		// Uniform over the non-zero bytes, aligned to the read size.
		x := rnd.Int64N(total)
		for _, e := range data {
			if x < e.Length {
				off := (e.Offset + x) / int64(*size) * int64(*size)
				return min(off, r.Size()-int64(*size))
			}
			x -= e.Length
		}
		return 0
	}
	buf := make([]byte, *size)
	for i := 0; i < *count; i++ { // warm-up: maps loaded, containers in the page cache
		if _, err := r.ReadAt(buf, pick()); err != nil {
			return err
		}
	}
	lat := make([]time.Duration, *count)
	for i := range lat {
		off := pick()
		t := time.Now()
		if _, err := r.ReadAt(buf, off); err != nil {
			return err
		}
		lat[i] = time.Since(t)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	res := map[string]any{"reads": *count, "size": *size, "p50_us": us(lat[len(lat)/2]), "p99_us": us(lat[len(lat)*99/100]), "max_us": us(lat[len(lat)-1])}
	if so.json {
		return printJSON(env.Stdout, res)
	}
	fmt.Fprintf(env.Stdout, "%d random %d-byte reads: p50 %.0f µs, p99 %.0f µs, max %.0f µs\n", *count, *size, res["p50_us"], res["p99_us"], res["max_us"])
	return nil
}
