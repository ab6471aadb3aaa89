package ui

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/crypto/bcrypt"
)

// AdminFile holds the administrator's name and bcrypt hash.
const AdminFile = "admin.json"

type adminFile struct {
	Username string    `json:"username"`
	Hash     string    `json:"bcrypt_hash"`
	Updated  time.Time `json:"updated"`
}

// CheckPasswordStrength refuses passwords an attacker guesses quickly.
func CheckPasswordStrength(pw string) error {
	if len(pw) < 12 {
		return errors.New("the password needs at least 12 characters")
	}
	var classes [4]bool
	for _, r := range pw {
		switch {
		case unicode.IsLower(r):
			classes[0] = true
		case unicode.IsUpper(r):
			classes[1] = true
		case unicode.IsDigit(r):
			classes[2] = true
		default:
			classes[3] = true
		}
	}
	n := 0
	for _, c := range classes {
		if c {
			n++
		}
	}
	if n < 3 {
		return errors.New("the password needs three of: lower-case letters, upper-case letters, digits, other characters")
	}
	return nil
}

// SetAdmin writes the administrator account (the password bcrypt-hashed).
func SetAdmin(dir, username, password string) error {
	if strings.TrimSpace(username) == "" {
		return errors.New("administrator: empty user name")
	}
	if err := CheckPasswordStrength(password); err != nil {
		return fmt.Errorf("administrator: %w", err)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(adminFile{Username: username, Hash: string(h), Updated: time.Now().UTC()}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp := filepath.Join(dir, AdminFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, AdminFile))
}

// HasAdmin reports whether an administrator account exists.
func HasAdmin(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, AdminFile))
	return err == nil
}

// authenticator checks logins and issues session tokens.
type authenticator struct {
	dir string
	ttl time.Duration

	mu       sync.Mutex
	sessions map[[32]byte]time.Time // sha256(token) → expiry
	failures map[string][]time.Time // client → recent failures
}

func newAuthenticator(dir string) *authenticator {
	return &authenticator{dir: dir, ttl: 8 * time.Hour, sessions: map[[32]byte]time.Time{}, failures: map[string][]time.Time{}}
}

var errLocked = errors.New("too many failed logins: try again in a minute")

// login checks credentials and returns a new session token.
func (a *authenticator) login(client, user, password string) (string, error) {
	a.mu.Lock()
	recent := a.failures[client][:0]
	for _, t := range a.failures[client] {
		if time.Since(t) < time.Minute {
			recent = append(recent, t)
		}
	}
	a.failures[client] = recent
	locked := len(recent) >= 5
	a.mu.Unlock()
	if locked {
		return "", errLocked
	}
	b, err := os.ReadFile(filepath.Join(a.dir, AdminFile))
	if err != nil {
		return "", errors.New("no administrator account exists yet")
	}
	var f adminFile
	if err := json.Unmarshal(b, &f); err != nil {
		return "", fmt.Errorf("read the administrator account: %w", err)
	}
	okUser := subtle.ConstantTimeCompare([]byte(user), []byte(f.Username)) == 1
	okPass := bcrypt.CompareHashAndPassword([]byte(f.Hash), []byte(password)) == nil
	if !okUser || !okPass {
		a.mu.Lock()
		a.failures[client] = append(a.failures[client], time.Now())
		a.mu.Unlock()
		return "", errors.New("wrong user name or password")
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	tok := base64.RawURLEncoding.EncodeToString(raw[:])
	a.mu.Lock()
	a.sessions[sha256.Sum256([]byte(tok))] = time.Now().Add(a.ttl)
	a.mu.Unlock()
	return tok, nil
}

// valid reports whether tok is a live session, extending it.
func (a *authenticator) valid(tok string) bool {
	if tok == "" {
		return false
	}
	k := sha256.Sum256([]byte(tok))
	a.mu.Lock()
	defer a.mu.Unlock()
	exp, ok := a.sessions[k]
	if !ok || time.Now().After(exp) {
		delete(a.sessions, k)
		return false
	}
	a.sessions[k] = time.Now().Add(a.ttl)
	return true
}

func (a *authenticator) logout(tok string) {
	a.mu.Lock()
	delete(a.sessions, sha256.Sum256([]byte(tok)))
	a.mu.Unlock()
}
