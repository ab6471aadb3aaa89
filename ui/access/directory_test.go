package access

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func open(t *testing.T, dir string, c *clock) *Directory {
	t.Helper()
	d, err := Open(dir, Options{Now: c.now, BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

const pw = "Correct-Horse-7-battery"

func TestRoles(t *testing.T) {
	for _, tc := range []struct {
		role Role
		can  string
	}{
		{Administrator, "self view browse restore operate configure admin"},
		{Operator, "self view browse restore operate"},
		{Viewer, "self view browse"},
		{RestoreOnly, "self browse restore"},
	} {
		for _, p := range []Permission{PermSelf, PermView, PermBrowse, PermRestore, PermOperate, PermConfigure, PermAdmin} {
			want := strings.Contains(" "+tc.can+" ", " "+string(p)+" ")
			if tc.role.Can(p) != want {
				t.Errorf("%s can %s: %v", tc.role, p, !want)
			}
		}
	}
	if !Administrator.Covers(Operator) || Operator.Covers(Administrator) || Viewer.Covers(RestoreOnly) || !Operator.Covers(RestoreOnly) {
		t.Error("Covers")
	}
	if _, err := ParseRole("root"); err == nil {
		t.Error("unknown role accepted")
	}
}

func TestPasswordStrength(t *testing.T) {
	for _, tc := range []struct {
		user, pw string
		ok       bool
	}{
		{"admin", "short1A!", false},
		{"admin", "alllowercaseletters", false},
		{"admin", "ALLUPPER12345678", false},
		{"admin", "Admin-is-me-2026", false},
		{"admin", "MyPassword-2026", false},
		{"admin", pw, true},
		{"olga", "Grüne-Bohnen-17", true},
	} {
		if err := CheckPasswordStrength(tc.user, tc.pw); (err == nil) != tc.ok {
			t.Errorf("%s/%q: %v", tc.user, tc.pw, err)
		}
	}
}

func TestUsersPersistAndLogin(t *testing.T) {
	dir := t.TempDir()
	c := &clock{time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
	d := open(t, dir, c)
	if d.HasUsers() {
		t.Fatal("fresh directory has users")
	}
	if _, _, err := d.Login("1.2.3.4", "admin", pw); !errors.Is(err, ErrNoAccountYet) {
		t.Fatalf("login before any account: %v", err)
	}
	if _, err := d.AddUser("admin", Administrator, "weak"); err == nil {
		t.Fatal("weak password accepted")
	}
	if _, err := d.AddUser("bad name", Viewer, pw); err == nil {
		t.Fatal("bad user name accepted")
	}
	if _, err := d.AddUser("admin", Administrator, pw); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AddUser("admin", Viewer, pw); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate user: %v", err)
	}
	if _, err := d.AddUser("olga", Viewer, "Grüne-Bohnen-17"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, UsersFile))
	if strings.Contains(string(b), pw) || !strings.Contains(string(b), "$2a$") {
		t.Fatalf("users file: %s", b)
	}
	if st, _ := os.Stat(filepath.Join(dir, UsersFile)); st.Mode().Perm() != 0o600 {
		t.Errorf("users file mode %v", st.Mode().Perm())
	}

	d = open(t, dir, c) // reopen
	if _, _, err := d.Login("1.2.3.4", "admin", "wrong-Password-1"); !errors.Is(err, ErrBadLogin) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, _, err := d.Login("1.2.3.4", "nobody", pw); !errors.Is(err, ErrBadLogin) {
		t.Fatalf("unknown user: %v", err)
	}
	tok, s, err := d.Login("1.2.3.4", "olga", "Grüne-Bohnen-17")
	if err != nil {
		t.Fatal(err)
	}
	p, got, ok := d.Authenticate(tok)
	if !ok || p.User != "olga" || p.Role != Viewer || got.CSRF != s.CSRF || !CheckCSRF(got, s.CSRF) || CheckCSRF(got, "x") || CheckCSRF(got, "") {
		t.Fatalf("authenticate: %+v %+v %v", p, got, ok)
	}
	// A role change applies to the open session at once.
	if err := d.SetRole("olga", Operator); err != nil {
		t.Fatal(err)
	}
	if p, _, _ := d.Authenticate(tok); p.Role != Operator {
		t.Fatalf("role after change: %s", p.Role)
	}
	// Idle expiry, then absolute expiry despite activity.
	c.t = c.t.Add(31 * time.Minute)
	if _, _, ok := d.Authenticate(tok); ok {
		t.Fatal("session alive after 31 idle minutes")
	}
	tok, _, _ = d.Login("1.2.3.4", "olga", "Grüne-Bohnen-17")
	for range 26 {
		c.t = c.t.Add(29 * time.Minute)
		d.Authenticate(tok)
	}
	if _, _, ok := d.Authenticate(tok); ok {
		t.Fatal("session alive after 12.5 hours")
	}
	// The last administrator stays.
	if err := d.SetRole("admin", Viewer); !errors.Is(err, ErrLastAdmin) {
		t.Fatalf("demote last admin: %v", err)
	}
	if err := d.DeleteUser("admin"); !errors.Is(err, ErrLastAdmin) {
		t.Fatalf("delete last admin: %v", err)
	}
	// A password change ends the other sessions but keeps the current one.
	t1, _, _ := d.Login("1.2.3.5", "admin", pw)
	t2, _, _ := d.Login("1.2.3.5", "admin", pw)
	if err := d.SetPassword("admin", "Another-Horse-8-battery", t1); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := d.Authenticate(t1); !ok {
		t.Error("the session that changed the password was logged out")
	}
	if _, _, ok := d.Authenticate(t2); ok {
		t.Error("another session survived a password change")
	}
	if err := d.DeleteUser("olga"); err != nil {
		t.Fatal(err)
	}
	if _, err := open(t, dir, c).User("olga"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted user after reopen: %v", err)
	}
}

func TestThrottleAndLockout(t *testing.T) {
	c := &clock{time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
	d := open(t, t.TempDir(), c)
	d.AddUser("admin", Administrator, pw)
	for range 5 {
		d.Login("1.1.1.1", "admin", "guess-Guess-1")
	}
	if _, _, err := d.Login("1.1.1.1", "admin", pw); !errors.Is(err, ErrThrottled) {
		t.Fatalf("after 5 failures from one address: %v", err)
	}
	if _, _, err := d.Login("2.2.2.2", "admin", pw); err != nil {
		t.Fatalf("another address is not throttled: %v", err)
	}
	c.t = c.t.Add(61 * time.Second)
	if _, _, err := d.Login("1.1.1.1", "admin", pw); err != nil {
		t.Fatalf("throttle after a minute: %v", err)
	}
	// Ten failures from many addresses lock the account for 15 minutes.
	for i := range 10 {
		d.Login("10.0.0."+string(rune('0'+i)), "admin", "guess-Guess-1")
	}
	if _, _, err := d.Login("3.3.3.3", "admin", pw); !errors.Is(err, ErrAccountLock) {
		t.Fatalf("after 10 failures: %v", err)
	}
	if err := d.Unlock("admin"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Login("3.3.3.3", "admin", pw); err != nil {
		t.Fatalf("after unlock: %v", err)
	}
}

func TestTokens(t *testing.T) {
	dir := t.TempDir()
	c := &clock{time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
	d := open(t, dir, c)
	d.AddUser("admin", Administrator, pw)
	d.AddUser("olga", Operator, "Grüne-Bohnen-17")
	if _, _, err := d.CreateToken("olga", "ci", Administrator, 0); err == nil {
		t.Fatal("an operator made an administrator token")
	}
	secret, tk, err := d.CreateToken("olga", "ci", Operator, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.CreateToken("olga", "ci", Viewer, 0); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate token name: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, TokensFile))
	if strings.Contains(string(b), secret) || strings.Contains(string(b), strings.Split(secret, "_")[2]) {
		t.Fatal("token secret stored")
	}
	d = open(t, dir, c)
	p, s, ok := d.Authenticate(secret)
	if !ok || s != nil || p.User != "olga" || p.Role != Operator || p.Token != "ci" || p.Via() != "api-token:ci" {
		t.Fatalf("token: %+v %v %v", p, s, ok)
	}
	// Demoting the creator caps the token.
	d.SetRole("olga", Viewer)
	if _, _, ok := d.Authenticate(secret); ok {
		t.Fatal("token outranks its demoted creator")
	}
	d.SetRole("olga", Operator)
	c.t = c.t.Add(25 * time.Hour)
	if _, _, ok := d.Authenticate(secret); ok {
		t.Fatal("expired token accepted")
	}
	s2, tk2, _ := d.CreateToken("admin", "monitoring", Viewer, 0)
	if err := d.RevokeToken(tk2.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := d.Authenticate(s2); ok {
		t.Fatal("revoked token accepted")
	}
	if err := d.RevokeToken("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	if len(d.Tokens()) != 1 || d.Tokens()[0].ID != tk.ID {
		t.Fatalf("tokens: %+v", d.Tokens())
	}
	// Deleting a user revokes their tokens.
	d.DeleteUser("olga")
	if len(d.Tokens()) != 0 {
		t.Fatal("tokens of a deleted user remain")
	}
}

func TestLegacyAdminImport(t *testing.T) {
	dir := t.TempDir()
	h, _ := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	os.WriteFile(filepath.Join(dir, LegacyAdminFile), []byte(`{"username":"root","bcrypt_hash":"`+string(h)+`"}`), 0o600)
	d := open(t, dir, &clock{time.Now()})
	u, err := d.User("root")
	if err != nil || u.Role != Administrator {
		t.Fatalf("legacy admin: %+v %v", u, err)
	}
	if _, _, err := d.Login("c", "root", pw); err != nil {
		t.Fatal(err)
	}
}
