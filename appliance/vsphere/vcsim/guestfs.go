package vcsim

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// DefaultGuestFSLimit is the number of file bytes one VM's simulated guest file system
// holds when Options.GuestFSLimit is zero.
const DefaultGuestFSLimit = 1 << 30

// transferTTL is how long a file transfer URL stays valid.
const transferTTL = 10 * time.Minute

// guestFileMethods are the GuestFileManager methods the double answers; the others fail
// with NotSupported after the guest checks (guestFileFault).
var guestFileMethods = map[string]bool{
	"MakeDirectoryInGuest":          true,
	"InitiateFileTransferToGuest":   true,
	"InitiateFileTransferFromGuest": true,
	"ListFilesInGuest":              true,
	"DeleteFileInGuest":             true,
}

// guestNode is a file or directory of a simulated guest file system. A file's data is
// never changed in place (an overwrite stores a new slice), so it can be read outside
// the lock.
type guestNode struct {
	dir      bool
	data     []byte
	mode     uint32 // permission bits
	uid, gid int32
	mtime    time.Time
	hidden   bool
	readOnly bool
}

// guestFS is one VM's guest file system: cleaned path -> node. Roots ("/", or "X:\"
// for every drive letter) exist implicitly.
type guestFS struct {
	windows  bool
	nodes    map[string]*guestNode
	used     int64 // bytes of file data stored
	reserved int64 // bytes of uploads initiated but not finished
}

// guestTransfer is a pending upload or download behind a one-time URL.
type guestTransfer struct {
	vm        string // VM moref value
	path      string // cleaned
	upload    bool
	size      int64
	node      guestNode // the upload's attributes
	overwrite bool
	expires   time.Time
}

// GuestEntry describes one file or directory of a VM's simulated guest file system.
type GuestEntry struct {
	Path     string
	Dir      bool
	Size     int64
	Mode     uint32 // permission bits (Linux guests)
	UID, GID int32
	MTime    time.Time
	Hidden   bool // Windows guests
	ReadOnly bool // Windows guests
}

// fsLocked returns the VM's guest file system, made on first use. Call with s.mu held.
func (s *Sim) fsLocked(vm string, windows bool) *guestFS {
	g := s.guestLocked(vm)
	if g.fs == nil {
		g.fs = &guestFS{windows: windows, nodes: make(map[string]*guestNode)}
	}
	return g.fs
}

// cleanGuestPath normalises an absolute guest path: "/"-separated and cleaned for Linux
// guests; for Windows guests "/" becomes "\", the drive letter is upper-cased and "."
// and ".." components are resolved ("c:/Temp/./x" is "C:\Temp\x"). It reports false
// for a relative or empty path.
func cleanGuestPath(p string, windows bool) (string, bool) {
	if !windows {
		if !strings.HasPrefix(p, "/") {
			return "", false
		}
		return path.Clean(p), true
	}
	p = strings.ReplaceAll(p, "/", `\`)
	if len(p) < 2 || p[1] != ':' || !isLetter(p[0]) || (len(p) > 2 && p[2] != '\\') {
		return "", false
	}
	drive := strings.ToUpper(p[:1]) + ":"
	var parts []string
	for _, c := range strings.Split(p[2:], `\`) {
		switch c {
		case "", ".":
		case "..":
			if len(parts) > 0 {
				parts = parts[:len(parts)-1]
			}
		default:
			parts = append(parts, c)
		}
	}
	return drive + `\` + strings.Join(parts, `\`), true
}

func isLetter(c byte) bool { return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') }

// guestParent returns the directory holding p and p's name; ok is false for a root.
func guestParent(p string, windows bool) (dir, name string, ok bool) {
	if !windows {
		if p == "/" {
			return "", "", false
		}
		return path.Dir(p), path.Base(p), true
	}
	if len(p) <= 3 {
		return "", "", false
	}
	i := strings.LastIndexByte(p, '\\')
	dir = p[:i]
	if i == 2 {
		dir = p[:3]
	}
	return dir, p[i+1:], true
}

func (fs *guestFS) isRoot(p string) bool {
	if fs.windows {
		return len(p) == 3
	}
	return p == "/"
}

// get returns the node at p (a synthetic directory for a root).
func (fs *guestFS) get(p string) (*guestNode, bool) {
	if fs.isRoot(p) {
		return &guestNode{dir: true, mode: 0o755}, true
	}
	n, ok := fs.nodes[p]
	return n, ok
}

// children returns the names of the entries directly in directory p, sorted.
func (fs *guestFS) children(p string) []string {
	var out []string
	for k := range fs.nodes {
		if d, name, ok := guestParent(k, fs.windows); ok && d == p {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func (fs *guestFS) join(dir, name string) string {
	sep := "/"
	if fs.windows {
		sep = `\`
	}
	if strings.HasSuffix(dir, sep) {
		return dir + name
	}
	return dir + sep + name
}

// checkDir reports a fault unless the directory p exists.
func (fs *guestFS) checkDir(p string) types.BaseMethodFault {
	n, ok := fs.get(p)
	if !ok {
		return &types.FileNotFound{FileFault: types.FileFault{File: p}}
	}
	if !n.dir {
		return &types.NotADirectory{FileFault: types.FileFault{File: p}}
	}
	return nil
}

// guestFileHandler answers the simulated GuestFileManager methods.
type guestFileHandler struct {
	mo.GuestFileManager
	sim *Sim
}

// begin checks the VM and credentials like the process methods do, normalises p and
// returns the VM's file system with s.mu held (unlock must be called) or a fault.
func (h *guestFileHandler) begin(ctx *simulator.Context, vm types.ManagedObjectReference, auth types.BaseGuestAuthentication, p, prop string) (fs *guestFS, clean string, unlock func(), fault types.BaseMethodFault) {
	g := &guestHandler{sim: h.sim}
	if _, _, f := g.guestVM(ctx, vm, auth); f != nil {
		return nil, "", nil, f
	}
	windows := h.sim.isWindows(ctx, vm)
	clean, ok := cleanGuestPath(p, windows)
	if !ok {
		return nil, "", nil, &types.InvalidArgument{InvalidProperty: prop}
	}
	s := h.sim
	s.mu.Lock()
	return s.fsLocked(vm.Value, windows), clean, s.mu.Unlock, nil
}

// isWindows reports whether the VM's guest OS id names Windows.
func (s *Sim) isWindows(ctx *simulator.Context, ref types.ManagedObjectReference) bool {
	vm, ok := ctx.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return false
	}
	var id string
	ctx.WithLock(vm, func() {
		if vm.Config != nil {
			id = vm.Config.GuestId
		}
	})
	return strings.HasPrefix(strings.ToLower(id), "win")
}

// MakeDirectoryInGuest makes a directory, with its missing parents if asked. An
// existing directory is a FileAlreadyExists fault, as with VMware Tools (also with
// createParentDirectories).
func (h *guestFileHandler) MakeDirectoryInGuest(ctx *simulator.Context, req *types.MakeDirectoryInGuest) soap.HasFault {
	body := new(methods.MakeDirectoryInGuestBody)
	fs, p, unlock, fault := h.begin(ctx, req.Vm, req.Auth, req.DirectoryPath, "directoryPath")
	if fault != nil {
		body.Fault_ = simulator.Fault("", fault)
		return body
	}
	defer unlock()
	if _, ok := fs.get(p); ok {
		body.Fault_ = simulator.Fault("", &types.FileAlreadyExists{FileFault: types.FileFault{File: p}})
		return body
	}
	// The missing ancestors, nearest last.
	var missing []string
	for cur := p; ; {
		dir, _, ok := guestParent(cur, fs.windows)
		if !ok {
			break
		}
		n, exists := fs.get(dir)
		if exists {
			if !n.dir {
				body.Fault_ = simulator.Fault("", &types.NotADirectory{FileFault: types.FileFault{File: dir}})
				return body
			}
			break
		}
		missing = append(missing, dir)
		cur = dir
	}
	if len(missing) > 0 && !req.CreateParentDirectories {
		body.Fault_ = simulator.Fault("", &types.FileNotFound{FileFault: types.FileFault{File: missing[0]}})
		return body
	}
	now := time.Now()
	for i := len(missing) - 1; i >= 0; i-- {
		fs.nodes[missing[i]] = &guestNode{dir: true, mode: 0o755, mtime: now}
	}
	fs.nodes[p] = &guestNode{dir: true, mode: 0o755, mtime: now}
	body.Res = new(types.MakeDirectoryInGuestResponse)
	return body
}

// InitiateFileTransferToGuest checks the target and reserves the file's size, then
// returns a one-time URL on the simulator's server for the PUT of the content.
func (h *guestFileHandler) InitiateFileTransferToGuest(ctx *simulator.Context, req *types.InitiateFileTransferToGuest) soap.HasFault {
	body := new(methods.InitiateFileTransferToGuestBody)
	fs, p, unlock, fault := h.begin(ctx, req.Vm, req.Auth, req.GuestFilePath, "guestFilePath")
	if fault != nil {
		body.Fault_ = simulator.Fault("", fault)
		return body
	}
	defer unlock()
	fail := func(msg string, f types.BaseMethodFault) soap.HasFault {
		body.Fault_ = simulator.Fault(msg, f)
		return body
	}
	if req.FileSize < 0 {
		return fail("fileSize is negative", &types.InvalidArgument{InvalidProperty: "fileSize"})
	}
	node := guestNode{mode: 0o644, mtime: time.Now()}
	switch a := req.FileAttributes.(type) {
	case nil:
	case *types.GuestFileAttributes:
		setTime(&node, a.ModificationTime)
	case *types.GuestPosixFileAttributes:
		if fs.windows {
			return fail("POSIX attributes for a Windows guest", &types.InvalidArgument{InvalidProperty: "fileAttributes"})
		}
		setTime(&node, a.ModificationTime)
		if a.Permissions != 0 {
			node.mode = uint32(a.Permissions) & 0o7777
		}
		if a.OwnerId != nil {
			node.uid = *a.OwnerId
		}
		if a.GroupId != nil {
			node.gid = *a.GroupId
		}
	case *types.GuestWindowsFileAttributes:
		if !fs.windows {
			return fail("Windows attributes for a non-Windows guest", &types.InvalidArgument{InvalidProperty: "fileAttributes"})
		}
		setTime(&node, a.ModificationTime)
		node.hidden = a.Hidden != nil && *a.Hidden
		node.readOnly = a.ReadOnly != nil && *a.ReadOnly
	default:
		return fail("", &types.InvalidArgument{InvalidProperty: "fileAttributes"})
	}
	dir, _, ok := guestParent(p, fs.windows)
	if !ok {
		return fail("", &types.NotAFile{FileFault: types.FileFault{File: p}})
	}
	if f := fs.checkDir(dir); f != nil {
		return fail("", f)
	}
	var old int64
	if n, ok := fs.nodes[p]; ok {
		if n.dir {
			return fail("", &types.NotAFile{FileFault: types.FileFault{File: p}})
		}
		if !req.Overwrite {
			return fail("", &types.FileAlreadyExists{FileFault: types.FileFault{File: p}})
		}
		old = int64(len(n.data))
	}
	s := h.sim
	s.pruneTransfersLocked(time.Now())
	if fs.used+fs.reserved+req.FileSize-old > s.guestFSLimit() {
		return fail(fmt.Sprintf("the guest file system is full (%d of %d bytes used)", fs.used+fs.reserved, s.guestFSLimit()),
			&types.NoDiskSpace{FileFault: types.FileFault{File: p}, Datastore: "guest"})
	}
	fs.reserved += req.FileSize
	token := s.newTransferLocked(&guestTransfer{vm: req.Vm.Value, path: p, upload: true, size: req.FileSize, node: node, overwrite: req.Overwrite})
	body.Res = &types.InitiateFileTransferToGuestResponse{Returnval: s.transferURL(token)}
	return body
}

func setTime(n *guestNode, t *time.Time) {
	if t != nil && !t.IsZero() {
		n.mtime = *t
	}
}

// InitiateFileTransferFromGuest returns a one-time download URL for a file with its
// size and attributes.
func (h *guestFileHandler) InitiateFileTransferFromGuest(ctx *simulator.Context, req *types.InitiateFileTransferFromGuest) soap.HasFault {
	body := new(methods.InitiateFileTransferFromGuestBody)
	fs, p, n, unlock, fault := h.beginFile(ctx, req.Vm, req.Auth, req.GuestFilePath, "guestFilePath")
	if fault != nil {
		body.Fault_ = simulator.Fault("", fault)
		return body
	}
	defer unlock()
	s := h.sim
	s.pruneTransfersLocked(time.Now())
	token := s.newTransferLocked(&guestTransfer{vm: req.Vm.Value, path: p, size: int64(len(n.data))})
	body.Res = &types.InitiateFileTransferFromGuestResponse{Returnval: types.FileTransferInformation{
		Attributes: fs.attributes(n), Size: int64(len(n.data)), Url: s.transferURL(token),
	}}
	return body
}

// attributes reports n the way the guest family does.
func (fs *guestFS) attributes(n *guestNode) types.BaseGuestFileAttributes {
	mt := n.mtime
	if fs.windows {
		hidden, ro := n.hidden, n.readOnly
		return &types.GuestWindowsFileAttributes{GuestFileAttributes: types.GuestFileAttributes{ModificationTime: &mt},
			Hidden: &hidden, ReadOnly: &ro}
	}
	uid, gid := n.uid, n.gid
	mode := int64(n.mode) | 0o100000 // stat(2) format: S_IFREG
	if n.dir {
		mode = int64(n.mode) | 0o040000
	}
	return &types.GuestPosixFileAttributes{GuestFileAttributes: types.GuestFileAttributes{ModificationTime: &mt},
		OwnerId: &uid, GroupId: &gid, Permissions: mode}
}

// ListFilesInGuest lists a directory's entries sorted by name (without "." and "..",
// like the govmomi toolbox), or a file alone, filtered by matchPattern (a regular
// expression matched against names) and paged by index and maxResults (0: all).
func (h *guestFileHandler) ListFilesInGuest(ctx *simulator.Context, req *types.ListFilesInGuest) soap.HasFault {
	body := new(methods.ListFilesInGuestBody)
	fs, p, unlock, fault := h.begin(ctx, req.Vm, req.Auth, req.FilePath, "filePath")
	if fault != nil {
		body.Fault_ = simulator.Fault("", fault)
		return body
	}
	defer unlock()
	pattern := req.MatchPattern
	if pattern == "" {
		pattern = ".*"
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		body.Fault_ = simulator.Fault(err.Error(), &types.InvalidArgument{InvalidProperty: "matchPattern"})
		return body
	}
	n, ok := fs.get(p)
	if !ok {
		body.Fault_ = simulator.Fault("", &types.FileNotFound{FileFault: types.FileFault{File: p}})
		return body
	}
	var files []types.GuestFileInfo
	add := func(name string, n *guestNode) {
		if !re.MatchString(name) {
			return
		}
		info := types.GuestFileInfo{Path: name, Type: string(types.GuestFileTypeFile), Size: int64(len(n.data)), Attributes: fs.attributes(n)}
		if n.dir {
			info.Type = string(types.GuestFileTypeDirectory)
			info.Size = 4096
		}
		files = append(files, info)
	}
	if n.dir {
		for _, name := range fs.children(p) {
			add(name, fs.nodes[fs.join(p, name)])
		}
	} else {
		_, name, _ := guestParent(p, fs.windows)
		add(name, n)
	}
	res := &types.ListFilesInGuestResponse{}
	if idx := int(req.Index); idx > 0 {
		files = files[min(idx, len(files)):]
	}
	if req.MaxResults > 0 && len(files) > int(req.MaxResults) {
		res.Returnval.Remaining = int32(len(files) - int(req.MaxResults))
		files = files[:req.MaxResults]
	}
	res.Returnval.Files = files
	body.Res = res
	return body
}

// DeleteFileInGuest removes a file (not a directory: NotAFile).
func (h *guestFileHandler) DeleteFileInGuest(ctx *simulator.Context, req *types.DeleteFileInGuest) soap.HasFault {
	body := new(methods.DeleteFileInGuestBody)
	fs, p, n, unlock, fault := h.beginFile(ctx, req.Vm, req.Auth, req.FilePath, "filePath")
	if fault != nil {
		body.Fault_ = simulator.Fault("", fault)
		return body
	}
	defer unlock()
	fs.used -= int64(len(n.data))
	delete(fs.nodes, p)
	body.Res = new(types.DeleteFileInGuestResponse)
	return body
}

// beginFile is begin for a call on an existing regular file: it answers
// FileNotFound or NotAFile otherwise (and then holds no lock).
func (h *guestFileHandler) beginFile(ctx *simulator.Context, vm types.ManagedObjectReference, auth types.BaseGuestAuthentication,
	path, arg string) (*guestFS, string, *guestNode, func(), types.BaseMethodFault) {
	fs, p, unlock, fault := h.begin(ctx, vm, auth, path, arg)
	if fault != nil {
		return nil, "", nil, nil, fault
	}
	n, ok := fs.get(p)
	switch {
	case !ok:
		unlock()
		return nil, "", nil, nil, &types.FileNotFound{FileFault: types.FileFault{File: p}}
	case n.dir:
		unlock()
		return nil, "", nil, nil, &types.NotAFile{FileFault: types.FileFault{File: p}}
	}
	return fs, p, n, unlock, nil
}

func (s *Sim) guestFSLimit() int64 {
	if s.opts.GuestFSLimit > 0 {
		return s.opts.GuestFSLimit
	}
	return DefaultGuestFSLimit
}

// newTransferLocked registers t under a fresh random token. Call with s.mu held.
func (s *Sim) newTransferLocked(t *guestTransfer) string {
	var b [18]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail
	token := hex.EncodeToString(b[:])
	t.expires = time.Now().Add(transferTTL)
	s.transfers[token] = t
	return token
}

// transferURL is the URL of a transfer as ESXi reports it: host "*", which clients
// replace with the host they connected to (govmomi's FileManager.TransferURL), and the
// simulator's port.
func (s *Sim) transferURL(token string) string {
	u := url.URL{Scheme: "https", Host: "*:" + s.url.Port(), Path: "/guestFile/" + token}
	return u.String()
}

// pruneTransfersLocked drops expired transfers and their reservations.
func (s *Sim) pruneTransfersLocked(now time.Time) {
	for tok, t := range s.transfers {
		if now.After(t.expires) {
			delete(s.transfers, tok)
			s.releaseLocked(t)
		}
	}
}

// releaseLocked gives back the space an upload reserved.
func (s *Sim) releaseLocked(t *guestTransfer) {
	if !t.upload {
		return
	}
	if g := s.guests[t.vm]; g != nil && g.fs != nil {
		g.fs.reserved -= t.size
	}
}

// takeTransfer removes and returns the live transfer of token.
func (s *Sim) takeTransfer(token string, upload bool) (*guestTransfer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.transfers[token]
	if !ok || t.upload != upload {
		return nil, false
	}
	delete(s.transfers, token)
	if time.Now().After(t.expires) {
		s.releaseLocked(t)
		return nil, false
	}
	return t, true
}

// serveGuestFile answers PUT (upload) and GET (download) of /guestFile/TOKEN. Each URL
// serves one request. An upload must send exactly the size given to
// InitiateFileTransferToGuest, with that Content-Length.
func (s *Sim) serveGuestFile(w http.ResponseWriter, r *http.Request) {
	token := strings.TrimPrefix(r.URL.Path, "/guestFile/")
	switch r.Method {
	case http.MethodPut:
		s.receiveGuestFile(w, r, token)
	case http.MethodGet:
		s.sendGuestFile(w, token)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (s *Sim) receiveGuestFile(w http.ResponseWriter, r *http.Request, token string) {
	t, ok := s.takeTransfer(token, true)
	if !ok {
		http.Error(w, "unknown or expired transfer", http.StatusNotFound)
		return
	}
	committed := false
	defer func() {
		if !committed {
			s.mu.Lock()
			s.releaseLocked(t)
			s.mu.Unlock()
		}
	}()
	if r.ContentLength != t.size {
		http.Error(w, "Content-Length must be "+strconv.FormatInt(t.size, 10), http.StatusBadRequest)
		return
	}
	var buf bytes.Buffer
	buf.Grow(int(t.size))
	n, err := io.Copy(&buf, io.LimitReader(r.Body, t.size+1))
	if err != nil || n != t.size {
		http.Error(w, fmt.Sprintf("received %d of %d bytes: %v", n, t.size, err), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.guests[t.vm]
	if g == nil || g.fs == nil {
		http.Error(w, "no such VM", http.StatusNotFound)
		return
	}
	fs := g.fs
	dir, _, _ := guestParent(t.path, fs.windows)
	if f := fs.checkDir(dir); f != nil {
		http.Error(w, dir+": no such directory", http.StatusNotFound)
		return
	}
	var old int64
	if cur, ok := fs.nodes[t.path]; ok {
		if cur.dir || !t.overwrite {
			http.Error(w, t.path+" exists", http.StatusConflict)
			return
		}
		old = int64(len(cur.data))
	}
	node := t.node
	node.data = buf.Bytes()
	fs.nodes[t.path] = &node
	fs.reserved -= t.size
	fs.used += t.size - old
	committed = true
	w.WriteHeader(http.StatusOK)
}

func (s *Sim) sendGuestFile(w http.ResponseWriter, token string) {
	t, ok := s.takeTransfer(token, false)
	if !ok {
		http.Error(w, "unknown or expired transfer", http.StatusNotFound)
		return
	}
	s.mu.Lock()
	var data []byte
	found := false
	if g := s.guests[t.vm]; g != nil && g.fs != nil {
		if n, ok := g.fs.nodes[t.path]; ok && !n.dir {
			data, found = n.data, true
		}
	}
	s.mu.Unlock()
	if !found {
		http.Error(w, t.path+": not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	_, _ = w.Write(data)
}

// guestFSOf returns the file system of the VM and normalises p for it. Call with s.mu
// held.
func (s *Sim) guestFSOf(ref types.ManagedObjectReference, p string) (*guestFS, string, bool) {
	g := s.guests[ref.Value]
	if g == nil || g.fs == nil {
		return nil, "", false
	}
	clean, ok := cleanGuestPath(p, g.fs.windows)
	return g.fs, clean, ok
}

// GuestFile returns the content of a file in the VM's simulated guest file system.
// Paths are normalised like the guest operations do (for Windows guests "/" and "\"
// are the same and the drive letter's case does not matter).
func (s *Sim) GuestFile(vmUUID, p string) ([]byte, bool) {
	ref, ok := s.lookupVM(vmUUID)
	if !ok {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fs, clean, ok := s.guestFSOf(ref, p)
	if !ok {
		return nil, false
	}
	n, ok := fs.nodes[clean]
	if !ok || n.dir {
		return nil, false
	}
	return bytes.Clone(n.data), true
}

// GuestFileStat describes a file or directory of the VM's simulated guest file system.
func (s *Sim) GuestFileStat(vmUUID, p string) (GuestEntry, bool) {
	ref, ok := s.lookupVM(vmUUID)
	if !ok {
		return GuestEntry{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fs, clean, ok := s.guestFSOf(ref, p)
	if !ok {
		return GuestEntry{}, false
	}
	n, ok := fs.get(clean)
	if !ok {
		return GuestEntry{}, false
	}
	return GuestEntry{Path: clean, Dir: n.dir, Size: int64(len(n.data)), Mode: n.mode, UID: n.uid, GID: n.gid,
		MTime: n.mtime, Hidden: n.hidden, ReadOnly: n.readOnly}, true
}

// GuestFiles lists every file and directory of the VM's simulated guest file system,
// sorted; directories end with the guest's separator ("/var/log/", "C:\Temp\").
func (s *Sim) GuestFiles(vmUUID string) []string {
	ref, ok := s.lookupVM(vmUUID)
	if !ok {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fs, _, _ := s.guestFSOf(ref, "/")
	if fs == nil {
		return nil
	}
	sep := "/"
	if fs.windows {
		sep = `\`
	}
	var out []string
	for p, n := range fs.nodes {
		if n.dir {
			p += sep
		}
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// WriteGuestFile stores data at p in the VM's simulated guest file system, with its
// missing parent directories, as a test fixture. The VM's guest family (from its guest
// OS id) decides the path syntax. It fails beyond the size limit.
func (s *Sim) WriteGuestFile(vmUUID, p string, data []byte) error {
	ref, ok := s.lookupVM(vmUUID)
	if !ok {
		return fmt.Errorf("vcsim: no VM %s", vmUUID)
	}
	var windows bool
	s.withVM(ref, func(vm *simulator.VirtualMachine) {
		windows = vm.Config != nil && strings.HasPrefix(strings.ToLower(vm.Config.GuestId), "win")
	})
	clean, ok := cleanGuestPath(p, windows)
	if !ok {
		return fmt.Errorf("vcsim: %q is not an absolute guest path", p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fs := s.fsLocked(ref.Value, windows)
	var old int64
	if n, ok := fs.nodes[clean]; ok {
		if n.dir {
			return fmt.Errorf("vcsim: %s is a directory", clean)
		}
		old = int64(len(n.data))
	}
	if fs.used+fs.reserved+int64(len(data))-old > s.guestFSLimit() {
		return fmt.Errorf("vcsim: the guest file system of %s is full", vmUUID)
	}
	now := time.Now()
	var missing []string
	for cur := clean; ; {
		dir, _, ok := guestParent(cur, windows)
		if !ok {
			break
		}
		n, exists := fs.get(dir)
		if exists {
			if !n.dir {
				return fmt.Errorf("vcsim: %s is not a directory", dir)
			}
			break
		}
		missing = append(missing, dir)
		cur = dir
	}
	for _, d := range missing {
		fs.nodes[d] = &guestNode{dir: true, mode: 0o755, mtime: now}
	}
	fs.nodes[clean] = &guestNode{data: bytes.Clone(data), mode: 0o644, mtime: now}
	fs.used += int64(len(data)) - old
	return nil
}
