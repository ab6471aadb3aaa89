package access

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"coffer.dev/coffer/appliance/statefile"
)

// Files in the directory given to Open.
const (
	UsersFile  = "users.json"
	TokensFile = "tokens.json"
	// LegacyAdminFile is the single-administrator file of earlier
	// releases; Open imports it as an administrator account.
	LegacyAdminFile = "admin.json"
)

// Errors callers tell apart.
var (
	ErrNotFound     = errors.New("no such user or token")
	ErrExists       = errors.New("already exists")
	ErrBadLogin     = errors.New("wrong user name or password")
	ErrThrottled    = errors.New("too many failed logins from this address: try again in a minute")
	ErrAccountLock  = errors.New("this account is locked after repeated failed logins: try again later or ask an administrator to unlock it")
	ErrLastAdmin    = errors.New("the last administrator cannot be removed or demoted")
	ErrNoAccountYet = errors.New("no user account exists yet: finish the setup wizard")
)

// User is an account, without its password hash.
type User struct {
	Name        string    `json:"name"`
	Role        Role      `json:"role"`
	Created     time.Time `json:"created"`
	PasswordSet time.Time `json:"password_set"`
	LockedUntil time.Time `json:"locked_until,omitzero"`
}

type userRecord struct {
	User
	Hash     string `json:"bcrypt_hash"`
	failures int    // consecutive failed logins (memory only)
}

// Token is an API token's description; its secret is shown only once.
type Token struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	CreatedBy string    `json:"created_by"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires,omitzero"`
	LastUsed  time.Time `json:"last_used,omitzero"`
}

type tokenRecord struct {
	Token
	Hash string `json:"sha256"`
}

// Options tune a Directory.
type Options struct {
	SessionIdle     time.Duration // idle expiry; 0 means 30 min
	SessionLifetime time.Duration // absolute expiry; 0 means 12 h
	Now             func() time.Time
	// BcryptCost; 0 means bcrypt.DefaultCost (tests lower it).
	BcryptCost int
}

// Directory holds the accounts, API tokens and sessions.
type Directory struct {
	dir string
	opt Options

	mu       sync.Mutex
	users    map[string]*userRecord
	tokens   map[[32]byte]*tokenRecord
	sessions map[[32]byte]*Session
	clients  map[string][]time.Time // client → recent failed logins
}

var userName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,63}$`)

// Open loads the accounts and tokens kept in dir.
func Open(dir string, o Options) (*Directory, error) {
	if o.SessionIdle <= 0 {
		o.SessionIdle = 30 * time.Minute
	}
	if o.SessionLifetime <= 0 {
		o.SessionLifetime = 12 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.BcryptCost == 0 {
		o.BcryptCost = bcrypt.DefaultCost
	}
	d := &Directory{dir: dir, opt: o, users: map[string]*userRecord{}, tokens: map[[32]byte]*tokenRecord{},
		sessions: map[[32]byte]*Session{}, clients: map[string][]time.Time{}}
	var users []*userRecord
	if err := readJSON(filepath.Join(dir, UsersFile), &users); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read the user accounts: %w", err)
	} else if errors.Is(err, os.ErrNotExist) {
		var legacy struct {
			Username string    `json:"username"`
			Hash     string    `json:"bcrypt_hash"`
			Updated  time.Time `json:"updated"`
		}
		if err := readJSON(filepath.Join(dir, LegacyAdminFile), &legacy); err == nil && legacy.Username != "" {
			users = []*userRecord{{User: User{Name: legacy.Username, Role: Administrator, Created: legacy.Updated, PasswordSet: legacy.Updated}, Hash: legacy.Hash}}
		}
	}
	for _, u := range users {
		if !u.Role.Valid() || u.Name == "" {
			return nil, fmt.Errorf("read the user accounts: bad entry %q (role %q)", u.Name, u.Role)
		}
		d.users[u.Name] = u
	}
	var tokens []*tokenRecord
	if err := readJSON(filepath.Join(dir, TokensFile), &tokens); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read the API tokens: %w", err)
	}
	for _, t := range tokens {
		h, err := hex.DecodeString(t.Hash)
		if err != nil || len(h) != 32 {
			return nil, fmt.Errorf("read the API tokens: bad hash of token %s", t.ID)
		}
		d.tokens[[32]byte(h)] = t
	}
	return d, nil
}

// HasUsers reports whether any account exists (the setup wizard creates
// the first).
func (d *Directory) HasUsers() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.users) > 0
}

// Users lists the accounts by name.
func (d *Directory) Users() []User {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]User, 0, len(d.users))
	for _, u := range d.users {
		out = append(out, u.User)
	}
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// User returns one account.
func (d *Directory) User(name string) (User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	u, ok := d.users[name]
	if !ok {
		return User{}, fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	return u.User, nil
}

// AddUser creates an account.
func (d *Directory) AddUser(name string, role Role, password string) (User, error) {
	if !userName.MatchString(name) {
		return User{}, fmt.Errorf("user name %q: use 1–64 letters, digits and . _ @ -, starting with a letter or digit", name)
	}
	if !role.Valid() {
		return User{}, fmt.Errorf("user %s: unknown role %q", name, role)
	}
	if err := CheckPasswordStrength(name, password); err != nil {
		return User{}, err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), d.opt.BcryptCost)
	if err != nil {
		return User{}, fmt.Errorf("hash the password: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.users[name]; ok {
		return User{}, fmt.Errorf("user %q %w", name, ErrExists)
	}
	now := d.opt.Now().UTC()
	u := &userRecord{User: User{Name: name, Role: role, Created: now, PasswordSet: now}, Hash: string(h)}
	d.users[name] = u
	if err := d.saveUsersLocked(); err != nil {
		delete(d.users, name)
		return User{}, err
	}
	return u.User, nil
}

// SetPassword replaces a user's password and ends their other sessions
// (keep, if not empty, is the session token that stays logged in).
func (d *Directory) SetPassword(name, password, keep string) error {
	if err := CheckPasswordStrength(name, password); err != nil {
		return err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), d.opt.BcryptCost)
	if err != nil {
		return fmt.Errorf("hash the password: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	u, ok := d.users[name]
	if !ok {
		return fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	old := *u
	u.Hash, u.PasswordSet, u.LockedUntil, u.failures = string(h), d.opt.Now().UTC(), time.Time{}, 0
	if err := d.saveUsersLocked(); err != nil {
		*u = old
		return err
	}
	keepKey := hashToken(keep)
	for k, s := range d.sessions {
		if s.User == name && (keep == "" || k != keepKey) {
			delete(d.sessions, k)
		}
	}
	return nil
}

// SetRole changes a user's role; it applies to their sessions at once.
func (d *Directory) SetRole(name string, role Role) error {
	if !role.Valid() {
		return fmt.Errorf("user %s: unknown role %q", name, role)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	u, ok := d.users[name]
	if !ok {
		return fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	if u.Role == Administrator && role != Administrator && d.adminsLocked() == 1 {
		return ErrLastAdmin
	}
	old := u.Role
	u.Role = role
	if err := d.saveUsersLocked(); err != nil {
		u.Role = old
		return err
	}
	return nil
}

// Unlock clears a user's lockout.
func (d *Directory) Unlock(name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	u, ok := d.users[name]
	if !ok {
		return fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	u.LockedUntil, u.failures = time.Time{}, 0
	return d.saveUsersLocked()
}

// DeleteUser removes an account, its sessions and its API tokens.
func (d *Directory) DeleteUser(name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	u, ok := d.users[name]
	if !ok {
		return fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	if u.Role == Administrator && d.adminsLocked() == 1 {
		return ErrLastAdmin
	}
	delete(d.users, name)
	if err := d.saveUsersLocked(); err != nil {
		d.users[name] = u
		return err
	}
	for k, s := range d.sessions {
		if s.User == name {
			delete(d.sessions, k)
		}
	}
	changed := false
	for k, t := range d.tokens {
		if t.CreatedBy == name {
			delete(d.tokens, k)
			changed = true
		}
	}
	if changed {
		return d.saveTokensLocked()
	}
	return nil
}

func (d *Directory) adminsLocked() int {
	n := 0
	for _, u := range d.users {
		if u.Role == Administrator {
			n++
		}
	}
	return n
}

// Principal is who is calling.
type Principal struct {
	User  string
	Role  Role
	Token string // the API token's name, when authenticated by one
}

// Via says how the principal authenticated, for the audit log.
func (p Principal) Via() string {
	if p.Token != "" {
		return "api-token:" + p.Token
	}
	return "session"
}

// Session is a logged-in browser or CLI session.
type Session struct {
	User     string
	CSRF     string // the token state-changing requests must echo
	Created  time.Time
	LastSeen time.Time
}

// Login checks a user's password and opens a session; it returns the
// session token (for the cookie or an Authorization header).
func (d *Directory) Login(client, name, password string) (string, *Session, error) {
	if err := d.Verify(client, name, password); err != nil {
		return "", nil, err
	}
	tok, err := randomToken()
	if err != nil {
		return "", nil, err
	}
	csrf, err := randomToken()
	if err != nil {
		return "", nil, err
	}
	now := d.opt.Now()
	s := &Session{User: name, CSRF: csrf, Created: now, LastSeen: now}
	d.mu.Lock()
	d.sessions[hashToken(tok)] = s
	d.mu.Unlock()
	cp := *s
	return tok, &cp, nil
}

// Verify checks a user's password without opening a session (a password
// change asks for the current one). Failures count towards throttling
// and lockout like failed logins.
func (d *Directory) Verify(client, name, password string) error {
	now := d.opt.Now()
	d.mu.Lock()
	recent := d.clients[client][:0]
	for _, t := range d.clients[client] {
		if now.Sub(t) < time.Minute {
			recent = append(recent, t)
		}
	}
	d.clients[client] = recent
	if len(recent) >= 5 {
		d.mu.Unlock()
		return ErrThrottled
	}
	if len(d.users) == 0 {
		d.mu.Unlock()
		return ErrNoAccountYet
	}
	u, ok := d.users[name]
	var hash string
	if ok {
		if now.Before(u.LockedUntil) {
			d.mu.Unlock()
			return ErrAccountLock
		}
		hash = u.Hash
	}
	d.mu.Unlock()
	if !ok {
		// The same work as a real check, so that timing does not tell
		// which user names exist.
		hash = dummyHash()
	}
	okPass := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil && ok
	d.mu.Lock()
	defer d.mu.Unlock()
	if !okPass {
		d.clients[client] = append(d.clients[client], now)
		if u, ok := d.users[name]; ok {
			u.failures++
			if u.failures >= 10 {
				u.LockedUntil = now.Add(15 * time.Minute).UTC()
				u.failures = 0
				_ = d.saveUsersLocked()
			}
		}
		return ErrBadLogin
	}
	if u, ok := d.users[name]; ok {
		u.failures = 0
	}
	return nil
}

// dummyHash is a bcrypt hash of a random password, compared against when
// the user does not exist.
var dummyHash = sync.OnceValue(func() string {
	h, _ := bcrypt.GenerateFromPassword([]byte("no such user, no such password"), bcrypt.DefaultCost)
	return string(h)
})

// Logout ends a session.
func (d *Directory) Logout(tok string) {
	d.mu.Lock()
	delete(d.sessions, hashToken(tok))
	d.mu.Unlock()
}

// Authenticate resolves a session token or an API token to its
// principal. A session's idle time restarts; an API token's last use is
// noted (in memory, saved with the next change).
func (d *Directory) Authenticate(tok string) (Principal, *Session, bool) {
	if tok == "" || len(tok) > 512 {
		return Principal{}, nil, false
	}
	k := hashToken(tok)
	now := d.opt.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.sessions[k]; ok {
		u, uok := d.users[s.User]
		if !uok || now.Sub(s.LastSeen) > d.opt.SessionIdle || now.Sub(s.Created) > d.opt.SessionLifetime {
			delete(d.sessions, k)
			return Principal{}, nil, false
		}
		s.LastSeen = now
		cp := *s
		return Principal{User: s.User, Role: u.Role}, &cp, true
	}
	if t, ok := d.tokens[k]; ok {
		if !t.Expires.IsZero() && now.After(t.Expires) {
			return Principal{}, nil, false
		}
		role := t.Role
		// A token never has more than its creator has now.
		if u, ok := d.users[t.CreatedBy]; !ok || !u.Role.Covers(role) {
			return Principal{}, nil, false
		}
		t.LastUsed = now.UTC()
		return Principal{User: t.CreatedBy, Role: role, Token: t.Name}, nil, true
	}
	return Principal{}, nil, false
}

// CheckCSRF compares a request's CSRF token with the session's.
func CheckCSRF(s *Session, got string) bool {
	return s != nil && got != "" && subtle.ConstantTimeCompare([]byte(s.CSRF), []byte(got)) == 1
}

// CreateToken makes an API token acting as creator with role (at most
// the creator's role); ttl 0 means no expiry. The secret is returned
// once and never stored.
func (d *Directory) CreateToken(creator, name string, role Role, ttl time.Duration) (string, Token, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 64 {
		return "", Token{}, errors.New("an API token needs a name of 1–64 characters")
	}
	if !role.Valid() {
		return "", Token{}, fmt.Errorf("unknown role %q", role)
	}
	if ttl < 0 {
		return "", Token{}, errors.New("a token's lifetime cannot be negative")
	}
	secret, err := randomToken()
	if err != nil {
		return "", Token{}, err
	}
	var idb [6]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return "", Token{}, err
	}
	id := hex.EncodeToString(idb[:])
	secret = "coffer_" + id + "_" + secret
	d.mu.Lock()
	defer d.mu.Unlock()
	u, ok := d.users[creator]
	if !ok {
		return "", Token{}, fmt.Errorf("user %q: %w", creator, ErrNotFound)
	}
	if !u.Role.Covers(role) {
		return "", Token{}, fmt.Errorf("a %s cannot create a token with the role %s", u.Role, role)
	}
	for _, t := range d.tokens {
		if t.Name == name {
			return "", Token{}, fmt.Errorf("API token %q %w", name, ErrExists)
		}
	}
	now := d.opt.Now().UTC()
	t := &tokenRecord{Token: Token{ID: id, Name: name, Role: role, CreatedBy: creator, Created: now}}
	if ttl > 0 {
		t.Expires = now.Add(ttl)
	}
	k := hashToken(secret)
	t.Hash = hex.EncodeToString(k[:])
	d.tokens[k] = t
	if err := d.saveTokensLocked(); err != nil {
		delete(d.tokens, k)
		return "", Token{}, err
	}
	return secret, t.Token, nil
}

// Tokens lists the API tokens by name.
func (d *Directory) Tokens() []Token {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Token, 0, len(d.tokens))
	for _, t := range d.tokens {
		out = append(out, t.Token)
	}
	slices.SortFunc(out, func(a, b Token) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// RevokeToken deletes an API token by ID.
func (d *Directory) RevokeToken(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, t := range d.tokens {
		if t.ID == id {
			delete(d.tokens, k)
			if err := d.saveTokensLocked(); err != nil {
				d.tokens[k] = t
				return err
			}
			return nil
		}
	}
	return fmt.Errorf("API token %q: %w", id, ErrNotFound)
}

func (d *Directory) saveUsersLocked() error {
	list := make([]*userRecord, 0, len(d.users))
	for _, u := range d.users {
		list = append(list, u)
	}
	slices.SortFunc(list, func(a, b *userRecord) int { return strings.Compare(a.Name, b.Name) })
	if err := statefile.WriteJSON(filepath.Join(d.dir, UsersFile), list, 0o600); err != nil {
		return fmt.Errorf("save the user accounts: %w", err)
	}
	_ = os.Remove(filepath.Join(d.dir, LegacyAdminFile))
	return nil
}

func (d *Directory) saveTokensLocked() error {
	list := make([]*tokenRecord, 0, len(d.tokens))
	for _, t := range d.tokens {
		list = append(list, t)
	}
	slices.SortFunc(list, func(a, b *tokenRecord) int { return strings.Compare(a.Name, b.Name) })
	if err := statefile.WriteJSON(filepath.Join(d.dir, TokensFile), list, 0o600); err != nil {
		return fmt.Errorf("save the API tokens: %w", err)
	}
	return nil
}

func hashToken(tok string) [32]byte { return sha256.Sum256([]byte(tok)) }

func randomToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
