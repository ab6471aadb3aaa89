package secrets

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"coffer.dev/coffer/store/crypt"
)

// Purpose is the key-derivation purpose of the vault key.
const Purpose = "appliance secrets"

// Secret is one stored credential.
type Secret struct {
	Kind     string    `json:"kind"` // "vcenter", "guest", ...
	Username string    `json:"username"`
	Password string    `json:"password"`
	Updated  time.Time `json:"updated"`
}

// String never shows the password.
func (s Secret) String() string { return s.Kind + ":" + s.Username + ":<redacted>" }

// LogValue never shows the password.
func (s Secret) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kind", s.Kind), slog.String("user", s.Username))
}

// ErrNotFound means no secret has the ID asked for.
var ErrNotFound = errors.New("secret not found")

// Vault is the encrypted secrets file. Safe for concurrent use.
type Vault struct {
	path string
	aead *crypt.AEAD
	mu   sync.Mutex
	data map[string]Secret
}

type vaultFile struct {
	Version int    `json:"version"`
	Sealed  []byte `json:"sealed"`
}

var aad = []byte("coffer appliance secrets v1")

// Open reads (or starts) the vault at path with key.
func Open(path string, key [crypt.KeySize]byte) (*Vault, error) {
	a, err := crypt.NewAEAD(key[:])
	if err != nil {
		return nil, err
	}
	v := &Vault{path: path, aead: a, data: map[string]Secret{}}
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return v, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open secrets: %w", err)
	}
	var f vaultFile
	if err := json.Unmarshal(raw, &f); err != nil || f.Version != 1 {
		return nil, fmt.Errorf("open secrets %s: not a secrets file of version 1", path)
	}
	plain, err := a.Open(nil, f.Sealed, aad)
	if err != nil {
		return nil, fmt.Errorf("open secrets %s: cannot decrypt (wrong store key, or the file is damaged)", path)
	}
	if err := json.Unmarshal(plain, &v.data); err != nil {
		return nil, fmt.Errorf("open secrets %s: %w", path, err)
	}
	return v, nil
}

// Put stores (or replaces) secret id and writes the file.
func (v *Vault) Put(id string, s Secret) error {
	if id == "" {
		return errors.New("secret: empty ID")
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	s.Updated = time.Now().UTC()
	old, had := v.data[id]
	v.data[id] = s
	if err := v.saveLocked(); err != nil {
		if had {
			v.data[id] = old
		} else {
			delete(v.data, id)
		}
		return err
	}
	return nil
}

// Get returns secret id.
func (v *Vault) Get(id string) (Secret, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	s, ok := v.data[id]
	if !ok {
		return Secret{}, fmt.Errorf("secret %q: %w", id, ErrNotFound)
	}
	return s, nil
}

// Delete removes secret id.
func (v *Vault) Delete(id string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	s, ok := v.data[id]
	if !ok {
		return nil
	}
	delete(v.data, id)
	if err := v.saveLocked(); err != nil {
		v.data[id] = s
		return err
	}
	return nil
}

// IDs lists the stored secrets' IDs.
func (v *Vault) IDs() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]string, 0, len(v.data))
	for id := range v.data {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

func (v *Vault) saveLocked() error {
	plain, err := json.Marshal(v.data)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(vaultFile{Version: 1, Sealed: v.aead.Seal(nil, plain, aad)})
	if err != nil {
		return err
	}
	clear(plain)
	return writeFileAtomic(v.path, raw)
}

func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save secrets: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".secrets-*")
	if err != nil {
		return fmt.Errorf("save secrets: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save secrets: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save secrets: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save secrets: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save secrets: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer d.Close()
	_ = d.Sync()
	return nil
}
