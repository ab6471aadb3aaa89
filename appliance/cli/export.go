package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"coffer.dev/coffer/appliance/blockdev"
	"coffer.dev/coffer/appliance/restore/export"
	"coffer.dev/coffer/store"
	"coffer.dev/coffer/store/point"
)

// storeExport streams one disk of a point in a hypervisor's format to a
// file or to standard output, never staging the whole disk.
func storeExport(ctx context.Context, env *Env, so *storeOpts, fs *flag.FlagSet, args []string) error {
	pid := fs.String("point", "", "point ID, or latest")
	source := fs.String("source", "", "with --point latest: the source")
	disk := fs.String("disk", "", "disk name (default: the point's only disk)")
	format := fs.String("format", "qcow2", "raw, vmdk (stream-optimized), vhdx or qcow2")
	force := fs.Bool("force", false, "overwrite an existing output file")
	noSync := fs.Bool("no-sync", false, "do not flush the output to stable storage at the end (block devices are always flushed)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("store export: give exactly one OUTPUT (- for standard output)")
	}
	f, err := export.ParseFormat(*format)
	if err != nil {
		return usagef("store export: %v", err)
	}
	s, p, name, r, err := so.openPointDisk(ctx, env, *pid, *source, *disk)
	if err != nil {
		return err
	}
	defer s.Close()
	defer r.Close()
	if f == export.Raw && pos[0] != "-" {
		// A raw image into a file or block device: the store's parallel
		// restore, holes left sparse (zeros written on a block device).
		return rawExport(ctx, env, r, p.ID, name, pos[0], *force, *noSync)
	}
	var w io.Writer = env.Stdout
	var file *os.File
	if pos[0] != "-" {
		flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
		if *force {
			flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		}
		file, err = os.OpenFile(pos[0], flags, 0o600)
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("export: %s exists (use --force to overwrite)", pos[0])
		}
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		w = file
	}
	start := time.Now()
	n, err := export.Write(ctx, w, r, f)
	if file != nil {
		if err == nil && !*noSync {
			err = file.Sync()
		}
		if cerr := file.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(pos[0])
		}
	}
	if err != nil {
		return fmt.Errorf("export disk %s of point %s as %s: %w", name, p.ID, f, err)
	}
	if file != nil {
		fmt.Fprintf(env.Stderr, "exported disk %s of point %s as %s to %s: %s in %.2fs\n", name, p.ID, f, pos[0], human(n), time.Since(start).Seconds())
	}
	return nil
}

func rawExport(ctx context.Context, env *Env, r *store.DiskReader, id point.ID, name, path string, force, noSync bool) error {
	out, err := blockdev.CreateOutput(path, r.Size(), force)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	start := time.Now()
	st, err := r.Restore(ctx, out, store.RestoreOptions{WriteZeros: out.NeedsZeros()})
	if err == nil && (!noSync || out.NeedsZeros()) {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if !out.NeedsZeros() { // a file we created, not a device
			os.Remove(path)
		}
		return fmt.Errorf("export disk %s of point %s as raw: %w", name, id, err)
	}
	fmt.Fprintf(env.Stderr, "exported disk %s of point %s as raw to %s: %s (%s written) in %.2fs\n", name, id, path,
		human(st.Logical), human(st.Written), time.Since(start).Seconds())
	return nil
}
