package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"coffer.dev/coffer/appliance/app"
	"coffer.dev/coffer/appliance/catalog"
	"coffer.dev/coffer/appliance/catalog/fsys"
	"coffer.dev/coffer/store"
	"coffer.dev/coffer/store/point"
)

const filesUsage = "usage: coffer files catalog|search|ls|versions|restore [flags]\n" +
	"  catalog --point ID|latest|all [--vm NAME]   build the file catalog of points (and check their recoverability)\n" +
	"  search PATTERN [--vm NAME] [--limit N]      find files across points: a name, a glob (*.pst) or a path\n" +
	"  ls --point ID|latest [--vm NAME] [--volume V] [DIR]   list a directory of a point\n" +
	"  versions --vm NAME [--volume V] PATH         the versions of one file across points\n" +
	"  restore --point ID|latest [--vm NAME] [--volume V] PATH --out FILE|- [--format tar|zip]\n" +
	"                                               one file as it is, a folder as tar (default) or zip\n" +
	"  restore --point ID|latest [--vm NAME] PATH --to-vm NAME|UUID --guest-credentials ID [--dest PATH] [--overwrite]\n" +
	"                                               put a file or folder back into a running VM (guest operations)"

func runFiles(ctx context.Context, env *Env, args []string) error {
	subs := map[string]func(context.Context, *Env, []string) error{
		"catalog": filesCatalog, "search": filesSearch, "ls": filesLs, "versions": filesVersions, "restore": filesRestore,
	}
	if len(args) == 0 || subs[args[0]] == nil {
		return usagef("%s", filesUsage)
	}
	return subs[args[0]](ctx, env, args[1:])
}

// filesFlags are the flags the files subcommands share.
type filesFlags struct {
	fs     *flag.FlagSet
	state  *string
	point  *string
	vm     *string
	volume *string
	asJSON *bool
}

func newFilesFlags(env *Env, name string) *filesFlags {
	fs := flag.NewFlagSet("files "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return &filesFlags{fs: fs, state: stateFlag(fs),
		point:  fs.String("point", "", "recovery point ID, or latest"),
		vm:     fs.String("vm", "", "VM name, instance UUID or source"),
		volume: fs.String("volume", "", "volume ID (disk/partition, as 'files ls' shows); needed when a point has several filesystems"),
		asJSON: fs.Bool("json", false, "print JSON")}
}

// source resolves --vm to a store source: a source name, a VM instance
// UUID, or the name the VM had in its newest point.
func source(st *store.Store, vm string) (string, error) {
	if vm == "" {
		return "", nil
	}
	pts, err := st.Points()
	if err != nil {
		return "", err
	}
	for i := len(pts) - 1; i >= 0; i-- {
		p := pts[i]
		if p.Source == vm || p.Source == "vm:"+strings.ToLower(vm) || p.Labels["vm"] == vm {
			return p.Source, nil
		}
	}
	return "", fmt.Errorf("no recovery point of %q", vm)
}

func (f *filesFlags) open(ctx context.Context, env *Env) (*app.App, string, error) {
	a, err := app.Open(ctx, *f.state, env.Log)
	if err != nil {
		return nil, "", err
	}
	src, err := source(a.Store, *f.vm)
	if err != nil {
		a.Close()
		return nil, "", err
	}
	return a, src, nil
}

func (f *filesFlags) catalog(a *app.App, src string) (*catalog.Catalog, error) {
	p, err := resolvePoint(a.Store, *f.point, src)
	if err != nil {
		return nil, err
	}
	c, err := a.Catalogs().Load(p.ID)
	if errors.Is(err, catalog.ErrNoCatalog) {
		return nil, fmt.Errorf("point %s has no file catalog yet (coffer files catalog --point %s)", p.ID, p.ID)
	}
	return c, err
}

func filesCatalog(ctx context.Context, env *Env, args []string) error {
	f := newFilesFlags(env, "catalog")
	noCheck := f.fs.Bool("no-check", false, "catalog only: skip the recoverability check")
	if _, err := parseInterleaved(f.fs, args); err != nil {
		return err
	}
	a, src, err := f.open(ctx, env)
	if err != nil {
		return err
	}
	defer a.Close()
	var ids []point.ID
	if *f.point == "all" {
		pts, err := a.Store.Points()
		if err != nil {
			return err
		}
		for _, p := range pts {
			if src == "" || p.Source == src {
				ids = append(ids, p.ID)
			}
		}
	} else {
		p, err := resolvePoint(a.Store, *f.point, src)
		if err != nil {
			return err
		}
		ids = append(ids, p.ID)
	}
	// catalogRun is a catalog's header with the time the appliance spent
	// on it: build, check, save.
	type catalogRun struct {
		catalog.Header
		Seconds float64 `json:"seconds"`
	}
	var hs []catalogRun
	for _, id := range ids {
		start := time.Now()
		c, err := a.CatalogPointWith(ctx, id, catalog.Options{Check: !*noCheck})
		if err != nil {
			return err
		}
		hs = append(hs, catalogRun{Header: c.Header, Seconds: time.Since(start).Seconds()})
		if !*f.asJSON {
			printCatalogHeader(env.Stdout, &c.Header)
		}
	}
	if *f.asJSON {
		return printJSON(env.Stdout, hs)
	}
	return nil
}

func printCatalogHeader(w io.Writer, h *catalog.Header) {
	verdict := string(h.Verdict)
	if verdict == "" {
		verdict = "not checked"
	}
	fmt.Fprintf(w, "point %s (%s): %d entries in %.2f s, recoverability %s (%d files read back)\n",
		h.Point, nameOr(h.Name, h.Source), h.Entries, h.Duration, verdict, h.Checked)
	for _, v := range h.Volumes {
		fs := v.FS
		if fs == "" {
			fs = "-"
		}
		line := fmt.Sprintf("  %-28s %-6s %-22s %-5s %10s %7d entries", v.ID, v.Scheme, v.TypeName, fs, human(v.Size), v.Entries)
		if v.Label != "" {
			line += " label " + v.Label
		}
		fmt.Fprintln(w, line)
	}
	for _, p := range h.Findings {
		fmt.Fprintln(w, "  finding:", p)
	}
	if len(h.Findings) == 0 {
		for _, p := range h.Problems {
			fmt.Fprintln(w, "  problem:", p)
		}
	}
}

func nameOr(name, src string) string {
	if name != "" {
		return name
	}
	return src
}

func filesSearch(ctx context.Context, env *Env, args []string) error {
	f := newFilesFlags(env, "search")
	limit := f.fs.Int("limit", 200, "at most this many hits")
	rest, err := parseInterleaved(f.fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("files search needs one PATTERN (a name, a glob such as '*.pst', or a path)")
	}
	a, src, err := f.open(ctx, env)
	if err != nil {
		return err
	}
	defer a.Close()
	hits, err := a.Catalogs().Search(ctx, catalog.Query{Pattern: rest[0], Source: src, Limit: *limit})
	if err != nil {
		return err
	}
	if *f.asJSON {
		return printJSON(env.Stdout, hits)
	}
	tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POINT\tVM\tVOLUME\tPATH\tSIZE\tMODIFIED")
	for _, h := range hits {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.Point, nameOr(h.Name, h.Source), h.Volume, h.Path, sizeOf(h.FileInfo), h.MTime.Format(time.DateTime))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%d hits\n", len(hits))
	return nil
}

func sizeOf(fi catalog.FileInfo) string {
	switch fi.Type {
	case "file":
		return human(fi.Size)
	case "symlink":
		return "-> " + fi.Target
	}
	return fi.Type
}

func filesLs(ctx context.Context, env *Env, args []string) error {
	f := newFilesFlags(env, "ls")
	rest, err := parseInterleaved(f.fs, args)
	if err != nil {
		return err
	}
	dir := "/"
	if len(rest) > 1 {
		return usagef("files ls takes at most one DIR")
	} else if len(rest) == 1 {
		dir = rest[0]
	}
	a, src, err := f.open(ctx, env)
	if err != nil {
		return err
	}
	defer a.Close()
	c, err := f.catalog(a, src)
	if err != nil {
		return err
	}
	if *f.volume == "" && dir == "/" && len(rest) == 0 {
		if _, err := c.ResolveVolume(""); err != nil {
			// Several filesystems: show them.
			if *f.asJSON {
				return printJSON(env.Stdout, c.Volumes)
			}
			printCatalogHeader(env.Stdout, &c.Header)
			return nil
		}
	}
	list, err := c.List(*f.volume, dir)
	if err != nil {
		return err
	}
	if *f.asJSON {
		return printJSON(env.Stdout, list)
	}
	tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
	for _, fi := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", modeString(fi), sizeOf(fi), fi.MTime.Format(time.DateTime), fi.Path)
	}
	return tw.Flush()
}

func modeString(fi catalog.FileInfo) string {
	t := map[string]byte{"dir": 'd', "symlink": 'l', "file": '-', "chardev": 'c', "blockdev": 'b', "fifo": 'p', "socket": 's'}[fi.Type]
	if t == 0 {
		t = '?'
	}
	b := []byte{t}
	for i := 8; i >= 0; i-- {
		if fi.Mode&(1<<uint(i)) != 0 {
			b = append(b, "rwx"[(8-i)%3])
		} else {
			b = append(b, '-')
		}
	}
	return string(b)
}

func filesVersions(ctx context.Context, env *Env, args []string) error {
	f := newFilesFlags(env, "versions")
	rest, err := parseInterleaved(f.fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 || *f.vm == "" {
		return usagef("files versions needs --vm and one PATH")
	}
	a, src, err := f.open(ctx, env)
	if err != nil {
		return err
	}
	defer a.Close()
	vs, err := a.Catalogs().Versions(ctx, src, *f.volume, rest[0])
	if err != nil {
		return err
	}
	if *f.asJSON {
		return printJSON(env.Stdout, vs)
	}
	if len(vs) == 0 {
		return fmt.Errorf("%s is in no catalogued point of %s", rest[0], *f.vm)
	}
	tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POINT\tCREATED\tSIZE\tMODIFIED\tCHANGED")
	for _, v := range vs {
		ch := ""
		if v.Changed {
			ch = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Point, v.Created.Format(time.DateTime), sizeOf(v.FileInfo), v.MTime.Format(time.DateTime), ch)
	}
	return tw.Flush()
}

func filesRestore(ctx context.Context, env *Env, args []string) error {
	f := newFilesFlags(env, "restore")
	out := f.fs.String("out", "", "output file, or - for standard output")
	format := f.fs.String("format", "tar", "for a folder: tar or zip")
	toVM := f.fs.String("to-vm", "", "put the file or folder back into this running VM (name or instance UUID) instead of --out")
	dest := f.fs.String("dest", "", "with --to-vm: where in the guest (default: the original path)")
	overwrite := f.fs.Bool("overwrite", false, "with --to-vm: replace files that exist in the guest")
	guestCreds := f.fs.String("guest-credentials", "", "with --to-vm: ID of stored guest credentials")
	rest, err := parseInterleaved(f.fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 || (*out == "") == (*toVM == "") {
		return usagef("files restore needs one PATH and either --out FILE|- or --to-vm VM")
	}
	if *toVM != "" {
		return filesToGuest(ctx, env, f, rest[0], *toVM, *dest, *guestCreds, *overwrite)
	}
	if *format != "tar" && *format != "zip" {
		return usagef("--format must be tar or zip")
	}
	a, src, err := f.open(ctx, env)
	if err != nil {
		return err
	}
	defer a.Close()
	c, err := f.catalog(a, src)
	if err != nil {
		return err
	}
	vol, err := c.ResolveVolume(*f.volume)
	if err != nil {
		return err
	}
	e, ok := c.Find(vol, catalogPath(rest[0]))
	if !ok {
		return fmt.Errorf("%s is not in the catalog of point %s (volume %s)", rest[0], c.Point, vol)
	}
	pf, _, err := a.OpenPointFiles(ctx, c.Point)
	if err != nil {
		return err
	}
	defer pf.Close()
	var w io.Writer = env.Stdout
	var fh *os.File
	if *out != "-" {
		if fh, err = os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
			return err
		}
		w = fh
	}
	fail := func(err error) error {
		if fh != nil {
			fh.Close()
			os.Remove(fh.Name())
		}
		return err
	}
	var what string
	switch e.Type {
	case fsys.TypeFile:
		file, err := pf.Open(c, e)
		if err != nil {
			return fail(err)
		}
		n, err := io.CopyBuffer(w, io.NewSectionReader(file, 0, e.Size), make([]byte, 1<<20))
		if err != nil {
			return fail(fmt.Errorf("restore %s: %w", e.Path, err))
		}
		what = fmt.Sprintf("%s (%s)", e.Path, human(n))
	case fsys.TypeDir:
		var st catalog.ArchiveStats
		if *format == "zip" {
			st, err = pf.WriteZip(ctx, w, c, vol, e.Path)
		} else {
			st, err = pf.WriteTar(ctx, w, c, vol, e.Path)
		}
		if err != nil {
			return fail(fmt.Errorf("restore %s: %w", e.Path, err))
		}
		what = fmt.Sprintf("%s as %s: %d files (%s), %d directories, %d links", e.Path, *format, st.Files, human(st.Bytes), st.Dirs, st.Links)
	default:
		return fail(fmt.Errorf("%s is a %s: only files and folders are restored", e.Path, e.Type))
	}
	if fh != nil {
		if err := fh.Sync(); err != nil {
			return fail(err)
		}
		if err := fh.Close(); err != nil {
			return fail(err)
		}
		fmt.Fprintf(env.Stderr, "restored %s from point %s to %s\n", what, c.Point, *out)
	}
	return nil
}

func catalogPath(p string) string {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if len(p) > 1 {
		p = strings.TrimRight(p, "/")
	}
	return p
}

// filesToGuest puts a file or folder of a point back into a running VM.
func filesToGuest(ctx context.Context, env *Env, f *filesFlags, src, toVM, dest, credID string, overwrite bool) error {
	if credID == "" {
		return usagef("--to-vm needs --guest-credentials ID (stored guest credentials)")
	}
	a, c, done, err := openVCenter(ctx, env, *f.state)
	if err != nil {
		return err
	}
	defer done()
	srcName, err := source(a.Store, *f.vm)
	if err != nil {
		return err
	}
	cat, err := f.catalog(a, srcName)
	if err != nil {
		return err
	}
	res, err := a.PutFilesBack(ctx, c, app.PutBackRequest{Point: cat.Point, Volume: *f.volume, Path: catalogPath(src),
		VM: toVM, Dest: dest, Overwrite: overwrite, GuestCredentials: credID})
	if *f.asJSON && res != nil {
		if perr := printJSON(env.Stdout, res); perr != nil {
			return perr
		}
		return err
	}
	if err != nil {
		return err
	}
	to := dest
	if to == "" {
		to = catalogPath(src)
	}
	fmt.Fprintf(env.Stdout, "put %s of point %s into %s at %s: %d files (%s), %d directories, %d skipped\n",
		catalogPath(src), cat.Point, toVM, to, res.Files, human(res.Bytes), res.Dirs, res.Skipped)
	for _, n := range res.Notes {
		fmt.Fprintln(env.Stdout, "  note:", n)
	}
	return nil
}
