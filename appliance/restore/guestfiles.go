package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/vmware/govmomi/vim25/types"

	"coffer.dev/coffer/appliance/catalog"
	"coffer.dev/coffer/appliance/catalog/fsys"
	"coffer.dev/coffer/appliance/vsphere"
)

// PutOptions tune PutFiles.
type PutOptions struct {
	// Overwrite replaces files that exist in the guest. Without it an
	// existing file is an error that names it.
	Overwrite bool
}

// PutResult counts what PutFiles put into the guest.
type PutResult struct {
	Files int   // regular files uploaded (each name of a hard link counts)
	Dirs  int   // directories made or found in place
	Bytes int64 // file bytes uploaded
	// Skipped counts entries guest operations cannot make (symlinks,
	// devices, FIFOs, sockets); Notes says what was skipped and why.
	Skipped int
	Notes   []string
}

// maxPrecheckLists bounds the directory listings of the overwrite check
// done before anything is written; conflicts in further directories are
// found when their files are uploaded.
const maxPrecheckLists = 256

// PutFiles puts the file or folder src of volume vol of catalog c (a
// point opened as pf) back into the running VM vm through VMware Tools
// guest operations, at dest in the guest: dest "" means src's own path
// (right for a Linux guest's root file system; a Windows guest or
// another volume needs dest). For a folder, dest is the folder that
// receives src's contents. Directories are made first, in walk order,
// then the files are streamed from the store, with their permission
// bits, owners and modification times on Linux guests (directories get
// the guest's defaults). Symlinks and special files are skipped with a
// note, hard links are uploaded as separate copies.
//
// Without o.Overwrite, existing files are looked for (ListFilesInGuest)
// before anything is written, and the first one found is an error;
// files appearing meanwhile still fail their upload. A cancelled ctx
// stops between and during uploads; what was put stays in the guest.
func PutFiles(ctx context.Context, gf *vsphere.GuestFiles, vm types.ManagedObjectReference, windows bool, creds vsphere.GuestCredentials,
	pf *catalog.PointFiles, c *catalog.Catalog, vol, src, dest string, o PutOptions) (PutResult, error) {
	var res PutResult
	src = path.Clean("/" + src)
	es, err := c.Subtree(vol, src)
	if err != nil {
		return res, fmt.Errorf("put %s into the guest: %w", src, err)
	}
	var root *catalog.Entry
	for _, e := range es {
		if e.Path == src {
			root = e
			break
		}
	}
	if root == nil {
		return res, fmt.Errorf("put %s into the guest: not in the catalog", src)
	}
	if dest == "" {
		if windows {
			return res, fmt.Errorf("put %s into the guest: give the destination: the drive letter of the volume in a Windows guest is not known", src)
		}
		dest = src
	}
	dest = cleanGuest(dest, windows)
	if root.Type != fsys.TypeDir {
		es = []*catalog.Entry{root}
	}
	target := func(e *catalog.Entry) string { return guestTarget(dest, src, e.Path, windows) }

	if !o.Overwrite {
		if err := checkConflicts(ctx, gf, vm, windows, creds, root, es, target); err != nil {
			return res, err
		}
	}

	// Directories first, in walk order.
	for _, e := range es {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if e.Type != fsys.TypeDir {
			continue
		}
		if err := gf.MakeDir(ctx, vm, creds, target(e)); err != nil {
			return res, err
		}
		res.Dirs++
	}
	if root.Type != fsys.TypeDir {
		if dir, name := vsphere.GuestSplit(dest, windows); name != "" {
			if err := gf.MakeDir(ctx, vm, creds, dir); err != nil {
				return res, err
			}
		}
	}
	// Then the files.
	for _, e := range es {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		switch e.Type {
		case fsys.TypeDir:
			continue
		case fsys.TypeFile:
		case fsys.TypeSymlink:
			res.Skipped++
			res.Notes = append(res.Notes, fmt.Sprintf("symlink %s -> %s skipped: guest operations cannot make symlinks", e.Path, e.Target))
			continue
		default:
			res.Skipped++
			res.Notes = append(res.Notes, fmt.Sprintf("%s %s skipped: guest operations cannot make it", e.Type, e.Path))
			continue
		}
		n, err := putFile(ctx, gf, vm, creds, pf, c, e, target(e), o.Overwrite)
		res.Bytes += n
		if err != nil {
			return res, err
		}
		res.Files++
	}
	return res, nil
}

// putFile streams the file e to p in the guest.
func putFile(ctx context.Context, gf *vsphere.GuestFiles, vm types.ManagedObjectReference, creds vsphere.GuestCredentials,
	pf *catalog.PointFiles, c *catalog.Catalog, e *catalog.Entry, p string, overwrite bool) (int64, error) {
	f, err := pf.Open(c, e)
	if err != nil {
		return 0, fmt.Errorf("put %s into the guest: %w", e.Path, err)
	}
	cr := &countReader{r: catalog.ContextReader(ctx, io.NewSectionReader(f, 0, e.Size))}
	attrs := vsphere.GuestFileAttrs{Mode: e.Mode & 0o7777, UID: e.UID, GID: e.GID, MTime: e.MTime}
	if err := gf.Upload(ctx, vm, creds, p, cr, e.Size, attrs, overwrite); err != nil {
		if errors.Is(err, vsphere.ErrGuestFileExists) {
			return cr.n, fmt.Errorf("put %s at %s: %w (restore with overwrite to replace it)", e.Path, p, err)
		}
		return cr.n, fmt.Errorf("put %s at %s: %w", e.Path, p, err)
	}
	return cr.n, nil
}

// checkConflicts looks for files in the guest that the put would
// replace: the target itself for a file; for a folder, the names in
// every target directory that exists (up to maxPrecheckLists listings).
func checkConflicts(ctx context.Context, gf *vsphere.GuestFiles, vm types.ManagedObjectReference, windows bool, creds vsphere.GuestCredentials,
	root *catalog.Entry, es []*catalog.Entry, target func(*catalog.Entry) string) error {
	dest := target(root)
	st, err := gf.Stat(ctx, vm, creds, dest)
	switch {
	case errors.Is(err, vsphere.ErrGuestFileNotFound):
		return nil // nothing there: nothing to replace
	case err != nil:
		return fmt.Errorf("check %s in the guest: %w", dest, err)
	}
	if root.Type != fsys.TypeDir {
		if st.IsDir() {
			return fmt.Errorf("put %s at %s: it is a directory in the guest", root.Path, dest)
		}
		return fmt.Errorf("put %s at %s: %w (restore with overwrite to replace it)", root.Path, dest, vsphere.ErrGuestFileExists)
	}
	if !st.IsDir() {
		return fmt.Errorf("put %s at %s: it is a %s in the guest, not a folder", root.Path, dest, st.Type)
	}
	children := make(map[string][]*catalog.Entry)
	for _, e := range es[1:] {
		children[path.Dir(e.Path)] = append(children[path.Dir(e.Path)], e)
	}
	var conflicts []string
	queue := []*catalog.Entry{root}
	for lists := 0; len(queue) > 0 && lists < maxPrecheckLists; lists++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := queue[0]
		queue = queue[1:]
		in, err := gf.List(ctx, vm, creds, target(d))
		if err != nil {
			return fmt.Errorf("check %s in the guest: %w", target(d), err)
		}
		have := make(map[string]vsphere.GuestFileInfo, len(in))
		for _, g := range in {
			have[guestKey(g.Name, windows)] = g
		}
		for _, e := range children[d.Path] {
			g, ok := have[guestKey(path.Base(e.Path), windows)]
			if !ok {
				continue
			}
			switch {
			case e.Type == fsys.TypeDir && g.IsDir():
				queue = append(queue, e)
			case e.Type == fsys.TypeDir:
				return fmt.Errorf("put %s at %s: it is a %s in the guest, not a folder", e.Path, target(e), g.Type)
			case e.Type == fsys.TypeFile && g.IsDir():
				return fmt.Errorf("put %s at %s: it is a directory in the guest", e.Path, target(e))
			case e.Type == fsys.TypeFile:
				conflicts = append(conflicts, target(e))
			}
		}
	}
	switch len(conflicts) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("put %s: %s: %w (restore with overwrite to replace it)", root.Path, conflicts[0], vsphere.ErrGuestFileExists)
	}
	return fmt.Errorf("put %s: %s and %d more files: %w (restore with overwrite to replace them)", root.Path, conflicts[0], len(conflicts)-1, vsphere.ErrGuestFileExists)
}

// guestKey compares names as the guest does (Windows: case-insensitive).
func guestKey(name string, windows bool) string {
	if windows {
		return strings.ToLower(name)
	}
	return name
}

// cleanGuest normalises dest: Windows separators, no trailing separator
// except on a root.
func cleanGuest(p string, windows bool) string {
	if !windows {
		return path.Clean(p)
	}
	p = strings.ReplaceAll(p, "/", `\`)
	for len(p) > 3 && strings.HasSuffix(p, `\`) {
		p = p[:len(p)-1]
	}
	if len(p) == 2 && p[1] == ':' {
		p += `\`
	}
	return p
}

// guestTarget is where the catalogued path p (at or below src) goes in
// the guest when src is put at dest.
func guestTarget(dest, src, p string, windows bool) string {
	rel := strings.TrimPrefix(strings.TrimPrefix(p, src), "/")
	if src == "/" {
		rel = strings.TrimPrefix(p, "/")
	}
	if rel == "" {
		return dest
	}
	sep := "/"
	if windows {
		sep = `\`
		rel = strings.ReplaceAll(rel, "/", `\`)
	}
	if strings.HasSuffix(dest, sep) {
		return dest + rel
	}
	return dest + sep + rel
}
