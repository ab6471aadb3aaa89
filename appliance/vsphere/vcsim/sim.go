package vcsim

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// Defaults used by [Start] for zero [Options] fields.
const (
	DefaultUsername      = "administrator@vsphere.local"
	DefaultGuestUsername = "root"
	DefaultGuestPassword = "vmware"
	// DefaultMaxChangedBytes caps the changed area of one QueryChangedDiskAreas answer.
	DefaultMaxChangedBytes = 64 << 20
	// DefaultCBTHistory is how many generations (snapshots) per disk stay queryable as a
	// changeId base.
	DefaultCBTHistory = 32
	// BlockSize is the granularity of the CBT double: areas are runs of 64 KiB blocks.
	BlockSize = 64 << 10
)

// Options configures [Start]. The zero value is valid.
type Options struct {
	// Dir holds the datastores (one sub-directory per datastore). Empty: a temporary
	// directory that Close removes. A given Dir is left in place by Close.
	Dir string
	// Datastores is the number of datastores, named LocalDS_0, LocalDS_1, ... and
	// mounted on every host. Zero means 2.
	Datastores int
	// Username and Password are the only credentials Login accepts. Empty Username:
	// DefaultUsername; empty Password: a random one (see Sim.Credentials).
	Username, Password string
	// GuestUsername and GuestPassword are the guest OS credentials guest operations
	// accept, unless a VMSpec sets its own. Defaults: DefaultGuestUsername and
	// DefaultGuestPassword.
	GuestUsername, GuestPassword string
	// MaxChangedBytes caps the sum of the area lengths in one QueryChangedDiskAreas
	// answer (rounded up to whole 64 KiB blocks); the answer's length then stops at the
	// last area so the client continues with a larger startOffset, as with ESXi.
	// Zero means DefaultMaxChangedBytes; negative means no cap.
	MaxChangedBytes int64
	// MaxAreas caps the number of areas in one QueryChangedDiskAreas answer. Zero: no cap.
	MaxAreas int
	// CBTHistory is the number of generations kept per disk as changeId bases (older
	// changeIds get a FileFault). Zero means DefaultCBTHistory.
	CBTHistory int
	// TrackWrites makes the CBT double track writes, as ESXi does, instead of hashing
	// every data block of every tracked disk at every snapshot (seconds per GiB of data
	// that ESXi does not spend, on the CPUs a backup needs). Disks must then be written
	// through Sim.WriteDisk, which records the written 64 KiB blocks as changed; a
	// snapshot reads no data; QueryChangedDiskAreas answers an incremental query with
	// the union of the blocks written between the two generations (a block rewritten
	// with the same data counts as changed, as on ESXi) and "*" with the allocated
	// blocks (SEEK_DATA/SEEK_HOLE rounded out to 64 KiB: allocated, not necessarily
	// non-zero, like a thin disk on ESXi). Writing the flat file directly is fine until
	// a VM's first snapshot with change tracking on (disk content from CreateVM and
	// AddDisk, or a fill before the first backup). After that, a change to a flat file
	// outside WriteDisk (noticed by its size and mtime at the next WriteDisk, growth,
	// snapshot or query) resets the disk's change tracking like an ESXi CBT reset:
	// older changeIds get a FileFault, so a backup falls back to a full read, and
	// Logger gets a warning. Growing a disk (ResizeDisk, AddDisk) works as in hashing
	// mode. False (the default): every snapshot hashes the disks, and tests may change
	// flat files by any means between backups.
	TrackWrites bool
	// GuestFSLimit caps the file bytes each VM's simulated guest file system holds
	// (uploads beyond it fail with NoDiskSpace). Zero means DefaultGuestFSLimit.
	GuestFSLimit int64
	// Logger gets the simulator's warnings. Nil: slog.Default().
	Logger *slog.Logger
}

// Sim is a running, extended vCenter simulator. Its methods are safe for concurrent use.
// Methods that take a vmUUID accept the VM's instance UUID (config.instanceUuid), its
// BIOS UUID (config.uuid) or its managed object id ("vm-42").
type Sim struct {
	// uploads is held shared by every datastore upload in flight and
	// taken exclusively by DestroyTask before it unregisters a VM: the
	// simulator's upload handler reads datastore state without its own
	// locks, so a VM destroyed while a cut-off upload is still being
	// drained would race with it.
	uploads sync.RWMutex
	opts    Options
	model   *simulator.Model
	reg     *simulator.Registry
	server  *simulator.Server
	url     *url.URL
	cert    *x509.Certificate
	dir     string
	ownDir  bool
	dsDirs  map[string]string // datastore name -> host directory
	admin   *govmomi.Client   // the Sim's own session, used by helpers
	inproc  *vim25.Client     // in-process client (the simulator's internal session)
	adminMu sync.Mutex
	tagsMu  sync.Mutex
	log     *slog.Logger
	// io is held by WriteDisk (shared) and by snapshot tasks (exclusive): a write lies
	// wholly before or after a snapshot. Taken after a VM lock, before mu.
	io sync.RWMutex

	mu        sync.Mutex
	index     map[string]types.ManagedObjectReference // uuid or moref value -> VM
	cbt       map[string]*vmCBT                       // VM moref value -> CBT state
	guests    map[string]*guestState                  // VM moref value -> guest state
	transfers map[string]*guestTransfer               // guest file transfer token -> transfer
	rules     []*failRule
	quiesce   map[string]int // VM moref value -> pending quiesce failures
	pageMax   int64
	pageArea  int
	drops     int
	dropAt    int64

	reads atomic.Int64
}

var createMu sync.Mutex

// Start creates the inventory and serves it on https://127.0.0.1:PORT/sdk. The context
// bounds only the start-up calls. Call Close when done.
func Start(ctx context.Context, o Options) (*Sim, error) {
	return start(ctx, o)
}

func start(ctx context.Context, o Options) (_ *Sim, err error) {
	if o.Datastores <= 0 {
		o.Datastores = 2
	}
	if o.Username == "" {
		o.Username = DefaultUsername
	}
	if o.Password == "" {
		var b [9]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		o.Password = "Sim-" + hex.EncodeToString(b[:])
	}
	if o.GuestUsername == "" {
		o.GuestUsername = DefaultGuestUsername
	}
	if o.GuestPassword == "" {
		o.GuestPassword = DefaultGuestPassword
	}
	if o.MaxChangedBytes == 0 {
		o.MaxChangedBytes = DefaultMaxChangedBytes
	}
	if o.CBTHistory <= 0 {
		o.CBTHistory = DefaultCBTHistory
	}

	s := &Sim{
		opts:      o,
		dsDirs:    make(map[string]string),
		index:     make(map[string]types.ManagedObjectReference),
		cbt:       make(map[string]*vmCBT),
		guests:    make(map[string]*guestState),
		transfers: make(map[string]*guestTransfer),
		quiesce:   make(map[string]int),
		pageMax:   o.MaxChangedBytes,
		pageArea:  o.MaxAreas,
		log:       o.Logger,
	}
	if s.log == nil {
		s.log = slog.Default()
	}

	s.dir = o.Dir
	if s.dir == "" {
		s.dir, err = os.MkdirTemp("", "coffer-vcsim-")
		if err != nil {
			return nil, err
		}
		s.ownDir = true
	} else if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	m := simulator.VPX()
	m.Datacenter = 1
	m.Cluster = 1
	m.ClusterHost = 2
	m.Host = 1
	m.Datastore = 0 // created below, in s.dir
	m.Machine = 0
	m.Autostart = false
	// Model creation changes package-level templates of the simulator (e.g. its
	// evaluation license), so concurrent Starts take turns.
	createMu.Lock()
	err = m.Create()
	createMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("vcsim: create model: %w", err)
	}
	s.model = m
	s.reg = m.Map()

	tlsCert, cert, err := selfSignedCert()
	if err != nil {
		return nil, err
	}
	s.cert = cert

	svc := m.Service
	svc.TLS = &tls.Config{Certificates: []tls.Certificate{tlsCert}, MinVersion: tls.VersionTLS12}
	svc.Listen = &url.URL{Host: "127.0.0.1:0", User: url.UserPassword(o.Username, o.Password)}
	svc.RegisterEndpoints = true // the vAPI endpoints (tags.go)
	svc.ServeMux = http.NewServeMux()
	// More specific than the simulator's "/folder/" pattern: reads go through
	// serveFolder, uploads (PUT/POST) straight to the simulator.
	svc.ServeMux.HandleFunc("GET /folder/", s.serveFolder)
	upload := func(w http.ResponseWriter, r *http.Request) {
		s.uploads.RLock()
		defer s.uploads.RUnlock()
		svc.ServeDatastore(w, r)
	}
	svc.ServeMux.HandleFunc("PUT /folder/", upload)
	svc.ServeMux.HandleFunc("POST /folder/", upload)
	// Guest file transfers (guestfs.go): one-time URLs from InitiateFileTransfer*, in
	// place of the simulator's own /guestFile/ handler (which needs Docker).
	svc.ServeMux.HandleFunc("PUT /guestFile/", s.serveGuestFile)
	svc.ServeMux.HandleFunc("GET /guestFile/", s.serveGuestFile)

	if s.inproc, err = vim25.NewClient(ctx, svc); err != nil {
		return nil, err
	}
	s.reg.Handler = s.handle
	s.reg.AddHandler(&observer{sim: s})

	s.server = svc.NewServer()
	u := *s.server.URL
	u.User = nil
	s.url = &u

	s.admin, err = s.NewClient(ctx)
	if err != nil {
		return nil, fmt.Errorf("vcsim: login: %w", err)
	}
	if err := s.createDatastores(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// createDatastores makes LocalDS_N in s.dir and mounts it on every host, as the
// simulator's model does in a temporary directory.
func (s *Sim) createDatastores(ctx context.Context) error {
	finder := find.NewFinder(s.admin.Client, false)
	hosts, err := finder.HostSystemList(ctx, "/DC0/host/...")
	if err != nil {
		return fmt.Errorf("vcsim: hosts: %w", err)
	}
	for i := 0; i < s.opts.Datastores; i++ {
		name := fmt.Sprintf("LocalDS_%d", i)
		dir := filepath.Join(s.dir, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		for _, h := range hosts {
			dss, err := h.ConfigManager().DatastoreSystem(ctx)
			if err != nil {
				return err
			}
			if _, err := dss.CreateLocalDatastore(ctx, name, dir); err != nil {
				return fmt.Errorf("vcsim: datastore %s on %s: %w", name, h.Name(), err)
			}
		}
		s.dsDirs[name] = dir
	}
	return nil
}

// selfSignedCert makes a P-256 certificate for 127.0.0.1, ::1 and localhost. It is not
// trusted by any root, so govmomi clients must pin its thumbprint.
func selfSignedCert() (tls.Certificate, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "vcsim.coffer.invalid", Organization: []string{"Coffer vSphere simulator"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, cert, nil
}

// URL is the SDK endpoint, https://127.0.0.1:PORT/sdk, without user information.
func (s *Sim) URL() *url.URL {
	u := *s.url
	return &u
}

// Credentials are the vCenter user name and password Login accepts.
func (s *Sim) Credentials() (user, pass string) {
	return s.opts.Username, s.opts.Password
}

// GuestCredentials are the default guest OS credentials for guest operations (a VM
// created with its own VMSpec.GuestUsername/GuestPassword uses those instead).
func (s *Sim) GuestCredentials() (user, pass string) {
	return s.opts.GuestUsername, s.opts.GuestPassword
}

// Thumbprint is the SHA-1 thumbprint of the server certificate in the "AA:BB:..." form
// soap.Client.SetThumbprint expects.
func (s *Sim) Thumbprint() string {
	sum := sha1.Sum(s.cert.Raw)
	return colonHex(sum[:])
}

// SHA256Thumbprint is the SHA-256 thumbprint of the server certificate, "AA:BB:...";
// govmomi accepts it in SetThumbprint too.
func (s *Sim) SHA256Thumbprint() string {
	sum := sha256.Sum256(s.cert.Raw)
	return colonHex(sum[:])
}

// Certificate is the server certificate (DER in Raw), for clients that pin it otherwise.
func (s *Sim) Certificate() *x509.Certificate { return s.cert }

func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(parts, ":")
}

// NewClient returns a new govmomi client logged in to the simulator, verifying the
// server by its pinned thumbprint (not insecure), as a production client would.
func (s *Sim) NewClient(ctx context.Context) (*govmomi.Client, error) {
	sc := soap.NewClient(s.URL(), false)
	sc.SetThumbprint(s.url.Host, s.Thumbprint())
	vc, err := vim25.NewClient(ctx, sc)
	if err != nil {
		return nil, err
	}
	c := &govmomi.Client{Client: vc, SessionManager: session.NewManager(vc)}
	if err := c.Login(ctx, url.UserPassword(s.opts.Username, s.opts.Password)); err != nil {
		return nil, err
	}
	return c, nil
}

// DatastoreDir is the host directory backing the named datastore ("" if unknown).
func (s *Sim) DatastoreDir(name string) string { return s.dsDirs[name] }

// Model is the underlying simulator model, an escape hatch for tests that need more.
// Changing simulator objects directly, outside the simulator's object locks, is racy.
func (s *Sim) Model() *simulator.Model { return s.model }

// Close stops the server, ends every session and removes the datastores if Start
// created their directory.
func (s *Sim) Close() {
	if s.server != nil {
		s.adminMu.Lock()
		if s.admin != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = s.admin.Logout(ctx)
			cancel()
			s.admin = nil
		}
		s.adminMu.Unlock()
		s.server.CloseClientConnections()
		done := make(chan struct{})
		go func() {
			s.server.Close()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			// A handler stuck in a long poll (WaitForUpdates without a timeout) keeps
			// Close waiting; the listener is closed already.
		}
		s.server = nil
	}
	if s.model != nil {
		s.model.Remove()
		s.model = nil
	}
	if s.ownDir && s.dir != "" {
		_ = os.RemoveAll(s.dir)
		s.dir = ""
	}
}

// adminClient returns the Sim's own logged-in client, logging in again if its session
// was lost.
func (s *Sim) adminClient(ctx context.Context) (*govmomi.Client, error) {
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	if s.admin == nil {
		return nil, errors.New("vcsim: closed")
	}
	if us, err := s.admin.SessionManager.UserSession(ctx); err == nil && us != nil {
		return s.admin, nil
	}
	c, err := s.NewClient(ctx)
	if err != nil {
		return nil, err
	}
	s.admin = c
	return c, nil
}
