package crypt

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// MasterKey is the key the caller holds (key file, TPM, recovery key). It
// only ever wraps the keyring.
type MasterKey [KeySize]byte

// NewMasterKey returns a fresh random master key.
func NewMasterKey() (MasterKey, error) {
	var k MasterKey
	if _, err := rand.Read(k[:]); err != nil {
		return k, fmt.Errorf("generate master key: %w", err)
	}
	return k, nil
}

// Keyring holds the per-store keys. It is stored wrapped by the master key.
type Keyring struct {
	StoreID [16]byte
	// Data encrypts container regions, fingerprint sections and points.
	Data [KeySize]byte
	// Fingerprint keys chunk IDs. Stores that replicate to each other share it.
	Fingerprint [KeySize]byte
	// Chunker derives the chunker's gear table.
	Chunker [KeySize]byte
}

// NewKeyring returns a keyring with fresh random keys.
func NewKeyring() (*Keyring, error) {
	k := &Keyring{}
	for _, b := range [][]byte{k.StoreID[:], k.Data[:], k.Fingerprint[:], k.Chunker[:]} {
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("generate keyring: %w", err)
		}
	}
	return k, nil
}

// keyringFile is the on-disk form: the keyring sealed under a key derived
// from the master key.
type keyringFile struct {
	Version int       `json:"version"`
	StoreID string    `json:"store_id"`
	Created time.Time `json:"created"`
	// Check lets a wrong master key be told apart from a damaged file:
	// HMAC-SHA-256(master, "coffer key check" || store id), first 8 bytes.
	Check  string `json:"key_check"`
	Sealed []byte `json:"sealed"`
}

type keyringPlain struct {
	Data        []byte `json:"data"`
	Fingerprint []byte `json:"fingerprint"`
	Chunker     []byte `json:"chunker"`
}

// ErrWrongKey means the master key does not open this store.
var ErrWrongKey = errors.New("wrong master key for this store")

func wrapKey(master MasterKey) []byte {
	m := hmac.New(sha256.New, master[:])
	m.Write([]byte("coffer keyring wrap v1"))
	return m.Sum(nil)
}

func keyCheck(master MasterKey, storeID [16]byte) string {
	m := hmac.New(sha256.New, master[:])
	m.Write([]byte("coffer key check"))
	m.Write(storeID[:])
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// Wrap seals the keyring under master for storage.
func (k *Keyring) Wrap(master MasterKey) ([]byte, error) {
	aead, err := NewAEAD(wrapKey(master))
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(keyringPlain{Data: k.Data[:], Fingerprint: k.Fingerprint[:], Chunker: k.Chunker[:]})
	if err != nil {
		return nil, fmt.Errorf("encode keyring: %w", err)
	}
	f := keyringFile{
		Version: 1,
		StoreID: hex.EncodeToString(k.StoreID[:]),
		Created: time.Now().UTC(),
		Check:   keyCheck(master, k.StoreID),
		Sealed:  aead.Seal(nil, plain, k.StoreID[:]),
	}
	return json.MarshalIndent(f, "", "  ")
}

// UnwrapKeyring opens a keyring file with master.
func UnwrapKeyring(data []byte, master MasterKey) (*Keyring, error) {
	var f keyringFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("decode keyring file: %w", err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("keyring file version %d is not supported", f.Version)
	}
	k := &Keyring{}
	id, err := hex.DecodeString(f.StoreID)
	if err != nil || len(id) != len(k.StoreID) {
		return nil, fmt.Errorf("keyring file: bad store id %q", f.StoreID)
	}
	copy(k.StoreID[:], id)
	if f.Check != "" && f.Check != keyCheck(master, k.StoreID) {
		return nil, ErrWrongKey
	}
	aead, err := NewAEAD(wrapKey(master))
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, f.Sealed, k.StoreID[:])
	if err != nil {
		if f.Check == "" {
			return nil, ErrWrongKey
		}
		return nil, fmt.Errorf("keyring file is damaged: %w", err)
	}
	var p keyringPlain
	if err := json.Unmarshal(plain, &p); err != nil {
		return nil, fmt.Errorf("decode keyring: %w", err)
	}
	if len(p.Data) != KeySize || len(p.Fingerprint) != KeySize || len(p.Chunker) != KeySize {
		return nil, errors.New("keyring: key of wrong length")
	}
	copy(k.Data[:], p.Data)
	copy(k.Fingerprint[:], p.Fingerprint)
	copy(k.Chunker[:], p.Chunker)
	return k, nil
}

// WriteKeyFile creates a new key file holding master as a recovery key
// string, readable only by its owner. It refuses to overwrite a file.
func WriteKeyFile(path string, master MasterKey) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	_, err = fmt.Fprintf(f, "# Coffer store master key. Keep a copy offline: without it the store is unreadable.\n%s\n", EncodeRecoveryKey(master))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write key file: %w", err)
	}
	return nil
}

// ReadKeyFile reads a master key written by WriteKeyFile (or a file holding
// a recovery key typed by a person).
func ReadKeyFile(path string) (MasterKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return MasterKey{}, fmt.Errorf("read key file: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := DecodeRecoveryKey(line)
		if err != nil {
			return MasterKey{}, fmt.Errorf("key file %s: %w", path, err)
		}
		return k, nil
	}
	return MasterKey{}, fmt.Errorf("key file %s holds no key", path)
}

// Derive returns a key for purpose (such as "appliance secrets"),
// derived from the data key: HMAC-SHA-256(data key, "coffer derived key
// v1" || 0 || purpose). Keys of different purposes are independent, and
// all of them are recovered with the master key.
func (k *Keyring) Derive(purpose string) [KeySize]byte {
	m := hmac.New(sha256.New, k.Data[:])
	m.Write([]byte("coffer derived key v1\x00"))
	m.Write([]byte(purpose))
	var out [KeySize]byte
	copy(out[:], m.Sum(nil))
	return out
}
