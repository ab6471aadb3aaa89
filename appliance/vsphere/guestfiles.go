package vsphere

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/guest"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// Errors of guest file operations, for errors.Is.
var (
	// ErrGuestLogin: the guest OS refused the credentials.
	ErrGuestLogin = errors.New("guest login refused")
	// ErrGuestFileExists: the target exists and overwriting was not asked for.
	ErrGuestFileExists = errors.New("the file exists in the guest")
	// ErrGuestFileNotFound: the path (or a parent directory) does not exist.
	ErrGuestFileNotFound = errors.New("no such file or directory in the guest")
	// ErrGuestToolsNotRunning: VMware Tools do not run in the guest.
	ErrGuestToolsNotRunning = errors.New("VMware Tools are not running in the guest")
	// ErrVMNotRunning: the VM is powered off or suspended.
	ErrVMNotRunning = errors.New("the VM is not running")
)

// GuestFileAttrs are the attributes a file gets in the guest. Linux
// guests get Mode (permission bits; 0 keeps the guest's default), UID,
// GID and MTime; Windows guests only MTime. A zero MTime means the time
// of the upload.
type GuestFileAttrs struct {
	Mode, UID, GID uint32
	MTime          time.Time
}

// GuestFileInfo is one entry of a guest directory listing.
type GuestFileInfo struct {
	Name  string // the entry's name, without its directory
	Type  string // "file", "directory" or "symlink"
	Size  int64
	Mode  uint32 // permission bits (Linux guests)
	MTime time.Time
}

// IsDir reports whether the entry is a directory.
func (i GuestFileInfo) IsDir() bool { return i.Type == string(types.GuestFileTypeDirectory) }

// GuestFiles puts files into running VMs through VMware Tools guest
// operations (the GuestFileManager): directories are made with
// MakeDirectoryInGuest and file contents are streamed with one HTTPS PUT
// each to the URL InitiateFileTransferToGuest hands out. Paths are the
// guest's own: "/srv/x" in Linux guests, `C:\Data\x` in Windows guests.
// Safe for concurrent use.
type GuestFiles struct {
	Client *Client

	mu  sync.Mutex
	vms map[types.ManagedObjectReference]*guestVM
}

// guestVM is what GuestFiles keeps per VM.
type guestVM struct {
	fm      *guest.FileManager
	windows bool
}

// vm returns the file manager bound to vm and the VM's guest family,
// looked up once.
func (g *GuestFiles) vm(ctx context.Context, vm types.ManagedObjectReference) (*guestVM, error) {
	g.mu.Lock()
	v := g.vms[vm]
	g.mu.Unlock()
	if v != nil {
		return v, nil
	}
	fm, err := guest.NewOperationsManager(g.Client.vim, vm).FileManager(ctx)
	if err != nil {
		return nil, fmt.Errorf("guest operations of %s: %w", vm.Value, err)
	}
	var mvm mo.VirtualMachine
	if err := property.DefaultCollector(g.Client.vim).RetrieveOne(ctx, vm, []string{"config.guestId", "guest.guestFamily"}, &mvm); err != nil {
		return nil, fmt.Errorf("guest OS of %s: %w", vm.Value, err)
	}
	v = &guestVM{fm: fm}
	if mvm.Guest != nil && mvm.Guest.GuestFamily != "" {
		v.windows = mvm.Guest.GuestFamily == string(types.VirtualMachineGuestOsFamilyWindowsGuest)
	} else if mvm.Config != nil {
		v.windows = strings.HasPrefix(strings.ToLower(mvm.Config.GuestId), "win")
	}
	g.mu.Lock()
	if g.vms == nil {
		g.vms = make(map[types.ManagedObjectReference]*guestVM)
	}
	g.vms[vm] = v
	g.mu.Unlock()
	return v, nil
}

func guestAuth(creds GuestCredentials) types.BaseGuestAuthentication {
	return &types.NamePasswordAuthentication{Username: creds.Username, Password: creds.Password}
}

// explain turns the faults of guest file operations into clear errors;
// doing says what was being done ("put /etc/x into the guest").
func (g *GuestFiles) explain(ctx context.Context, vm types.ManagedObjectReference, doing, path string, err error) error {
	switch {
	case isFault(err, "InvalidGuestLogin"):
		return fmt.Errorf("%s: %w: check the VM's guest credentials", doing, ErrGuestLogin)
	case isFault(err, "FileAlreadyExists"):
		return fmt.Errorf("%s: %s: %w", doing, path, ErrGuestFileExists)
	case isFault(err, "FileNotFound"):
		return fmt.Errorf("%s: %w", doing, ErrGuestFileNotFound)
	case isFault(err, "NotAFile"):
		return fmt.Errorf("%s: %s is a directory in the guest", doing, path)
	case isFault(err, "NotADirectory"):
		return fmt.Errorf("%s: a parent of %s is not a directory in the guest", doing, path)
	case isFault(err, "NoDiskSpace"):
		return fmt.Errorf("%s: not enough space in the guest: %w", doing, err)
	case isFault(err, "InvalidPowerState"):
		name, state := g.vmState(ctx, vm)
		return fmt.Errorf("%s: VM %s is %s: files can only be put back into a running VM: %w", doing, name, state, ErrVMNotRunning)
	case isFault(err, "GuestOperationsUnavailable"), isFault(err, "ToolsUnavailable"):
		name, _ := g.vmState(ctx, vm)
		return fmt.Errorf("%s: VMware Tools are not running in VM %s (start them, or restore another way): %w", doing, name, ErrGuestToolsNotRunning)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// vmState returns the VM's name and power state for messages (its
// reference and "powered off" if they cannot be read).
func (g *GuestFiles) vmState(ctx context.Context, vm types.ManagedObjectReference) (string, string) {
	var mvm mo.VirtualMachine
	if err := property.DefaultCollector(g.Client.vim).RetrieveOne(ctx, vm, []string{"name", "runtime.powerState"}, &mvm); err != nil {
		return vm.Value, "powered off"
	}
	if mvm.Runtime.PowerState == types.VirtualMachinePowerStateSuspended {
		return mvm.Name, "suspended"
	}
	return mvm.Name, "powered off"
}

// MakeDir makes the directory path in the guest with its missing
// parents. An existing directory is fine; an existing file is an error.
func (g *GuestFiles) MakeDir(ctx context.Context, vm types.ManagedObjectReference, creds GuestCredentials, path string) error {
	v, err := g.vm(ctx, vm)
	if err != nil {
		return err
	}
	err = v.fm.MakeDirectory(ctx, guestAuth(creds), path, true)
	if err == nil {
		return nil
	}
	doing := "make directory " + path + " in the guest"
	if isFault(err, "FileAlreadyExists") {
		info, serr := g.Stat(ctx, vm, creds, path)
		if serr != nil {
			return fmt.Errorf("%s: it exists, and checking what it is failed: %w", doing, serr)
		}
		if info.IsDir() {
			return nil
		}
		return fmt.Errorf("%s: %s exists and is a %s: %w", doing, path, info.Type, ErrGuestFileExists)
	}
	return g.explain(ctx, vm, doing, path, err)
}

// Upload streams exactly size bytes of r into the file path in the guest,
// whose directory must exist. Without overwrite an existing file is an
// error wrapping ErrGuestFileExists. The content goes out in one HTTPS
// PUT with that Content-Length to the transfer URL, through the
// client's pinned TLS trust; nothing is buffered.
func (g *GuestFiles) Upload(ctx context.Context, vm types.ManagedObjectReference, creds GuestCredentials, path string, r io.Reader, size int64, attrs GuestFileAttrs, overwrite bool) error {
	if size < 0 {
		return fmt.Errorf("put %s into the guest: negative size %d", path, size)
	}
	v, err := g.vm(ctx, vm)
	if err != nil {
		return err
	}
	doing := "put " + path + " into the guest"
	raw, err := v.fm.InitiateFileTransferToGuest(ctx, guestAuth(creds), path, fileAttributes(attrs, v.windows), size, overwrite)
	if err != nil {
		return g.explain(ctx, vm, doing, path, err)
	}
	u, err := g.transferURL(ctx, vm, raw)
	if err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	cr := &countReader{r: io.LimitReader(r, size)}
	var body io.Reader = cr
	if size == 0 {
		body = http.NoBody
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), body)
	if err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	res, err := g.Client.soap.Client.Do(req)
	if err != nil {
		if cr.n < size && ctx.Err() == nil {
			return fmt.Errorf("%s: sent %d of %d bytes: %w", doing, cr.n, size, unwrapTLS(err))
		}
		return fmt.Errorf("%s: %w", doing, unwrapTLS(err))
	}
	defer res.Body.Close()
	switch res.StatusCode {
	case http.StatusOK, http.StatusCreated, http.StatusNoContent:
	default:
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return fmt.Errorf("%s: the guest file transfer answered %s: %s", doing, res.Status, strings.TrimSpace(string(msg)))
	}
	if cr.n != size {
		return fmt.Errorf("%s: the source ended after %d of %d bytes", doing, cr.n, size)
	}
	return nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// fileAttributes maps attrs for the guest family.
func fileAttributes(a GuestFileAttrs, windows bool) types.BaseGuestFileAttributes {
	base := types.GuestFileAttributes{}
	if !a.MTime.IsZero() {
		mt := a.MTime
		base.ModificationTime = &mt
	}
	if windows {
		return &types.GuestWindowsFileAttributes{GuestFileAttributes: base}
	}
	uid, gid := int32(a.UID), int32(a.GID)
	return &types.GuestPosixFileAttributes{GuestFileAttributes: base, OwnerId: &uid, GroupId: &gid, Permissions: int64(a.Mode & 0o7777)}
}

// transferURL makes the URL InitiateFileTransfer*Guest returned usable,
// as govmomi's FileManager.TransferURL does: ESXi answers host "*",
// meaning the host the client is connected to; vCenter names the VM's
// ESXi host, whose certificate thumbprint (as vCenter reports it) is then
// trusted for that address, and whose single management IP is used when
// the name is not an address.
func (g *GuestFiles) transferURL(ctx context.Context, vm types.ManagedObjectReference, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse the transfer URL: %w", err)
	}
	if u.Hostname() == "*" {
		u.Host = g.Client.soap.URL().Host
		return u, nil
	}
	if !g.Client.IsVC() || strings.EqualFold(u.Hostname(), g.Client.soap.URL().Hostname()) {
		return u, nil
	}
	var mvm mo.VirtualMachine
	pc := property.DefaultCollector(g.Client.vim)
	if err := pc.RetrieveOne(ctx, vm, []string{"runtime.host"}, &mvm); err != nil {
		return nil, fmt.Errorf("host of the VM: %w", err)
	}
	if mvm.Runtime.Host == nil {
		return u, nil
	}
	var host mo.HostSystem
	if err := pc.RetrieveOne(ctx, *mvm.Runtime.Host, []string{"summary.config.sslThumbprint"}, &host); err != nil {
		return nil, fmt.Errorf("certificate of the VM's host: %w", err)
	}
	if net.ParseIP(u.Hostname()) == nil {
		if ips, err := object.NewHostSystem(g.Client.vim, *mvm.Runtime.Host).ManagementIPs(ctx); err == nil && len(ips) == 1 {
			port := u.Port()
			if port == "" {
				port = "443"
			}
			u.Host = net.JoinHostPort(ips[0].String(), port)
		}
	}
	if host.Summary.Config.SslThumbprint != "" {
		g.Client.v.pin(u.Hostname(), host.Summary.Config.SslThumbprint)
	}
	return u, nil
}

// List returns the entries of the directory dir in the guest ("." and
// ".." left out), or the file dir alone.
func (g *GuestFiles) List(ctx context.Context, vm types.ManagedObjectReference, creds GuestCredentials, dir string) ([]GuestFileInfo, error) {
	return g.list(ctx, vm, creds, dir, "")
}

func (g *GuestFiles) list(ctx context.Context, vm types.ManagedObjectReference, creds GuestCredentials, dir, pattern string) ([]GuestFileInfo, error) {
	v, err := g.vm(ctx, vm)
	if err != nil {
		return nil, err
	}
	var out []GuestFileInfo
	for index := int32(0); ; {
		res, err := v.fm.ListFiles(ctx, guestAuth(creds), dir, index, 0, pattern)
		if err != nil {
			return nil, g.explain(ctx, vm, "list "+dir+" in the guest", dir, err)
		}
		for _, f := range res.Files {
			index++
			if f.Path == "." || f.Path == ".." {
				continue
			}
			info := GuestFileInfo{Name: f.Path, Type: f.Type, Size: f.Size}
			switch a := f.Attributes.(type) {
			case *types.GuestPosixFileAttributes:
				info.Mode = uint32(a.Permissions) & 0o7777
				if a.ModificationTime != nil {
					info.MTime = *a.ModificationTime
				}
			case *types.GuestWindowsFileAttributes:
				if a.ModificationTime != nil {
					info.MTime = *a.ModificationTime
				}
			}
			out = append(out, info)
		}
		if res.Remaining <= 0 || len(res.Files) == 0 {
			return out, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// Stat describes the file or directory path in the guest; a missing one
// is an error wrapping ErrGuestFileNotFound.
func (g *GuestFiles) Stat(ctx context.Context, vm types.ManagedObjectReference, creds GuestCredentials, path string) (GuestFileInfo, error) {
	v, err := g.vm(ctx, vm)
	if err != nil {
		return GuestFileInfo{}, err
	}
	dir, name := GuestSplit(path, v.windows)
	if name == "" {
		return GuestFileInfo{Name: path, Type: string(types.GuestFileTypeDirectory)}, nil // a root
	}
	es, err := g.list(ctx, vm, creds, dir, "^"+regexp.QuoteMeta(name)+"$")
	if err != nil {
		return GuestFileInfo{}, err
	}
	for _, e := range es {
		if e.Name == name {
			return e, nil
		}
	}
	return GuestFileInfo{}, fmt.Errorf("%s: %w", path, ErrGuestFileNotFound)
}

// GuestSplit splits a guest path into its directory and name: "/a/b" is
// "/a" and "b", `C:\a\b` is `C:\a` and "b" (Windows guests take either
// separator). A root ("/", `C:\`) has an empty name.
func GuestSplit(path string, windows bool) (dir, name string) {
	sep := "/"
	if windows {
		path = strings.ReplaceAll(path, "/", `\`)
		sep = `\`
	}
	for len(path) > 1 && strings.HasSuffix(path, sep) && !(windows && len(path) == 3) {
		path = path[:len(path)-1]
	}
	i := strings.LastIndex(path, sep)
	if i < 0 {
		return "", path
	}
	dir, name = path[:i], path[i+1:]
	if dir == "" || (windows && len(dir) == 2 && dir[1] == ':') {
		dir += sep
	}
	return dir, name
}
