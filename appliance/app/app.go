package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"coffer.dev/coffer/appliance/secrets"
	"coffer.dev/coffer/appliance/statefile"
	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/store"
	"coffer.dev/coffer/store/crypt"
)

// Layout of the state directory.
const (
	StoreDir    = "store"
	KeyFile     = "store.key"
	SecretsFile = "secrets"
	VCenterFile = "vcenter.json"
	IDFile      = "appliance-id"
	JobsDir     = "jobs"
	// PoolFile names the directory of the storage pool the store lives
	// in, when it is not the state directory itself (the setup wizard's
	// storage step writes it).
	PoolFile = "pool.json"
)

// poolFile records where the store is.
type poolFile struct {
	Path string `json:"path"`
}

// StorePath is where dir's store lives: DIR/store, or POOL/store when
// the setup wizard put the store on a pool.
func StorePath(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, PoolFile))
	if errors.Is(err, os.ErrNotExist) {
		return filepath.Join(dir, StoreDir), nil
	}
	if err != nil {
		return "", fmt.Errorf("read the pool location: %w", err)
	}
	var pf poolFile
	if err := json.Unmarshal(b, &pf); err != nil || !filepath.IsAbs(pf.Path) {
		return "", fmt.Errorf("read the pool location %s: not a JSON object with an absolute path", PoolFile)
	}
	return filepath.Join(pf.Path, StoreDir), nil
}

// SetPool records that the store lives in the pool mounted at path.
func SetPool(dir, path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("pool %q: the path must be absolute", path)
	}
	b, _ := json.Marshal(poolFile{Path: filepath.Clean(path)})
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, PoolFile), b)
}

// App is an opened appliance state directory.
type App struct {
	Dir   string
	ID    string
	Store *store.Store
	Vault *secrets.Vault
	Log   *slog.Logger

	capacity capacityLog
}

// Init prepares dir: a new store with a fresh master key (in a key file
// until the TPM seals it) and an appliance ID. An existing store is kept.
func Init(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("init appliance: %w", err)
	}
	kp := filepath.Join(dir, KeyFile)
	key, err := crypt.ReadKeyFile(kp)
	if errors.Is(err, os.ErrNotExist) {
		if key, err = crypt.NewMasterKey(); err != nil {
			return err
		}
		if err := crypt.WriteKeyFile(kp, key); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	sp, err := StorePath(dir)
	if err != nil {
		return err
	}
	if err := store.Init(sp, key, store.InitOptions{}); err != nil && !errors.Is(err, store.ErrExists) {
		return err
	}
	idp := filepath.Join(dir, IDFile)
	if _, err := os.Stat(idp); errors.Is(err, os.ErrNotExist) {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		if err := os.WriteFile(idp, []byte(hex.EncodeToString(b[:])+"\n"), 0o600); err != nil {
			return fmt.Errorf("init appliance: %w", err)
		}
	}
	return nil
}

// Open opens an initialised state directory.
func Open(ctx context.Context, dir string, log *slog.Logger) (*App, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	id, err := os.ReadFile(filepath.Join(dir, IDFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s is not an appliance state directory (run `coffer setup --state %s` first)", dir, dir)
		}
		return nil, err
	}
	key, err := crypt.ReadKeyFile(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, err
	}
	sp, err := StorePath(dir)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, sp, key, store.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	v, err := secrets.Open(filepath.Join(dir, SecretsFile), st.DerivedKey(secrets.Purpose))
	if err != nil {
		st.Close()
		return nil, err
	}
	return &App{Dir: dir, ID: strings.TrimSpace(string(id)), Store: st, Vault: v, Log: log}, nil
}

// Close closes the store.
func (a *App) Close() error { return a.Store.Close() }

// vcenterFile is the vCenter connection without its password (which is
// in the vault under SecretID).
type vcenterFile struct {
	URL      string        `json:"url"`
	Username string        `json:"username"`
	Trust    vsphere.Trust `json:"trust"`
	SecretID string        `json:"secret_id"`
}

const vcenterSecret = "vcenter"

// ErrNoVCenter means no vCenter has been set up yet.
var ErrNoVCenter = errors.New("no vCenter or ESXi is configured (coffer vsphere add)")

// SetVCenter checks that ep logs in, then saves it: the password goes to
// the encrypted vault, the rest to vcenter.json.
func (a *App) SetVCenter(ctx context.Context, ep vsphere.Endpoint) error {
	c, err := vsphere.Connect(ctx, ep, a.Log)
	if err != nil {
		return err
	}
	_ = c.Logout(ctx)
	// Pin what was trusted, also under CA trust, so that a changed
	// certificate is noticed (and accepted then only if a CA signs it).
	if cert, err := vsphere.ProbeCertificate(ctx, ep.URL, ep.Trust); err == nil {
		pins := map[string]string{}
		for h, tp := range ep.Trust.Thumbprints {
			pins[h] = tp
		}
		if _, ok := pins[cert.Host]; !ok {
			pins[cert.Host] = cert.SHA256
		}
		ep.Trust.Thumbprints = pins
	}
	if err := a.Vault.Put(vcenterSecret, secrets.Secret{Kind: "vcenter", Username: ep.Username, Password: ep.Password}); err != nil {
		return err
	}
	b, err := json.MarshalIndent(vcenterFile{URL: ep.URL, Username: ep.Username, Trust: ep.Trust, SecretID: vcenterSecret}, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(a.Dir, VCenterFile), b)
}

// VCenter returns the configured endpoint, password included.
func (a *App) VCenter() (vsphere.Endpoint, error) {
	b, err := os.ReadFile(filepath.Join(a.Dir, VCenterFile))
	if errors.Is(err, os.ErrNotExist) {
		return vsphere.Endpoint{}, ErrNoVCenter
	}
	if err != nil {
		return vsphere.Endpoint{}, err
	}
	var f vcenterFile
	if err := json.Unmarshal(b, &f); err != nil {
		return vsphere.Endpoint{}, fmt.Errorf("read %s: %w", VCenterFile, err)
	}
	s, err := a.Vault.Get(f.SecretID)
	if err != nil {
		return vsphere.Endpoint{}, fmt.Errorf("vCenter password: %w", err)
	}
	return vsphere.Endpoint{URL: f.URL, Username: f.Username, Password: s.Password, Trust: f.Trust}, nil
}

// Connect logs in to the configured vCenter.
func (a *App) Connect(ctx context.Context) (*vsphere.Client, error) {
	ep, err := a.VCenter()
	if err != nil {
		return nil, err
	}
	return vsphere.Connect(ctx, ep, a.Log)
}

// Engine returns the ingest engine for c.
func (a *App) Engine(c *vsphere.Client) *vsphere.Engine {
	return &vsphere.Engine{Client: c, Store: a.Store, ApplianceID: a.ID, Log: a.Log}
}

// GuestCredentials returns the guest login stored under id (nil for "").
func (a *App) GuestCredentials(id string) (*vsphere.GuestCredentials, error) {
	if id == "" {
		return nil, nil
	}
	s, err := a.Vault.Get("guest:" + id)
	if err != nil {
		return nil, err
	}
	return &vsphere.GuestCredentials{Username: s.Username, Password: s.Password}, nil
}

// SetGuestCredentials stores a guest login under id.
func (a *App) SetGuestCredentials(id string, c vsphere.GuestCredentials) error {
	if id == "" || c.Username == "" {
		return errors.New("guest credentials need an ID and a user name")
	}
	return a.Vault.Put("guest:"+id, secrets.Secret{Kind: "guest", Username: c.Username, Password: c.Password})
}

func writeFile(path string, b []byte) error { return statefile.Write(path, b, 0o600) }
