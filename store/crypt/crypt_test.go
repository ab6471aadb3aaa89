package crypt_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"coffer.dev/coffer/store/crypt"
)

// Fixed keys: committed fuzz seeds were made with testMaster.
var (
	testMaster  = crypt.MasterKey(sha256.Sum256([]byte("coffer crypt test master")))
	otherMaster = crypt.MasterKey(sha256.Sum256([]byte("coffer crypt other master")))
)

func testKeyring() *crypt.Keyring {
	return &crypt.Keyring{
		StoreID:     [16]byte{0xc0, 0xff, 0xee, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13},
		Data:        sha256.Sum256([]byte("data")),
		Fingerprint: sha256.Sum256([]byte("fingerprint")),
		Chunker:     sha256.Sum256([]byte("chunker")),
	}
}

// The keyring file format, restated: the key that seals the keyring and the
// check that tells a wrong master key from a damaged file.
func wrapKey(master crypt.MasterKey) []byte {
	m := hmac.New(sha256.New, master[:])
	m.Write([]byte("coffer keyring wrap v1"))
	return m.Sum(nil)
}

func keyCheck(master crypt.MasterKey, storeID [16]byte) string {
	m := hmac.New(sha256.New, master[:])
	m.Write([]byte("coffer key check"))
	m.Write(storeID[:])
	return hex.EncodeToString(m.Sum(nil)[:8])
}

func newAEAD(tb testing.TB, key []byte) *crypt.AEAD {
	tb.Helper()
	a, err := crypt.NewAEAD(key)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func TestAEAD(t *testing.T) {
	k1, k2 := sha256.Sum256([]byte("k1")), sha256.Sum256([]byte("k2"))
	a, b := newAEAD(t, k1[:]), newAEAD(t, k2[:])
	plain, aad := []byte("the quick brown fox"), []byte("aad")

	s1 := a.Seal([]byte("dst"), plain, aad)
	if !bytes.HasPrefix(s1, []byte("dst")) || len(s1) != 3+len(plain)+crypt.Overhead {
		t.Fatalf("Seal made %d bytes", len(s1))
	}
	s1 = s1[3:]
	if s2 := a.Seal(nil, plain, aad); bytes.Equal(s1, s2) {
		t.Fatal("two seals of the same message are equal (nonce reuse)")
	}
	got, err := a.Open([]byte("out:"), s1, aad)
	if err != nil || string(got) != "out:"+string(plain) {
		t.Fatalf("Open: %q, %v", got, err)
	}
	if got, err := a.Open(nil, a.Seal(nil, nil, nil), nil); err != nil || len(got) != 0 {
		t.Fatalf("empty message: %q, %v", got, err)
	}
	for _, tc := range []struct {
		name   string
		aead   *crypt.AEAD
		sealed []byte
		aad    []byte
	}{
		{"wrong key", b, s1, aad},
		{"wrong aad", a, s1, []byte("aae")},
		{"no aad", a, s1, nil},
		{"flipped nonce", a, flip(s1, 0), aad},
		{"flipped ciphertext", a, flip(s1, crypt.NonceSize+1), aad},
		{"flipped tag", a, flip(s1, len(s1)-1), aad},
		{"truncated", a, s1[:len(s1)-1], aad},
		{"shorter than the overhead", a, s1[:crypt.Overhead-1], aad},
		{"empty", a, nil, aad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.aead.Open(nil, tc.sealed, tc.aad)
			if !errors.Is(err, crypt.ErrAuth) {
				t.Fatalf("got %v, want ErrAuth", err)
			}
			if got != nil {
				t.Fatal("plaintext returned with an error")
			}
		})
	}
	for _, n := range []int{0, 16, 31, 33} {
		if _, err := crypt.NewAEAD(make([]byte, n)); err == nil {
			t.Errorf("NewAEAD accepted a %d-byte key", n)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 1
	return c
}

var recoveryForm = regexp.MustCompile(`^([0-9A-HJKMNP-TV-Z]{5}-){11}[0-9A-HJKMNP-TV-Z]{3}$`)

func TestRecoveryKeyRoundTrip(t *testing.T) {
	var ones crypt.MasterKey
	for i := range ones {
		ones[i] = 0xff
	}
	fresh, err := crypt.NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []crypt.MasterKey{{}, ones, testMaster, otherMaster, fresh} {
		s := crypt.EncodeRecoveryKey(k)
		if !recoveryForm.MatchString(s) {
			t.Fatalf("%q is not 11 groups of 5 and one of 3 in the alphabet", s)
		}
		got, err := crypt.DecodeRecoveryKey(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if got != k {
			t.Fatalf("%s decodes to another key", s)
		}
	}
	if a, b := crypt.EncodeRecoveryKey(testMaster), crypt.EncodeRecoveryKey(otherMaster); a == b {
		t.Fatal("two keys encode alike")
	}
}

// keyWith01 returns a key whose recovery form holds both '0' and '1'.
func keyWith01(t *testing.T) (crypt.MasterKey, string) {
	for i := range 1000 {
		k := crypt.MasterKey(sha256.Sum256([]byte{byte(i), byte(i >> 8)}))
		s := crypt.EncodeRecoveryKey(k)
		if strings.Contains(s, "0") && strings.Contains(s, "1") {
			return k, s
		}
	}
	t.Fatal("no key found")
	return crypt.MasterKey{}, ""
}

func TestRecoveryKeyForgiving(t *testing.T) {
	k, s := keyWith01(t)
	plain := strings.ReplaceAll(s, "-", "")
	for _, tc := range []struct {
		name, in string
	}{
		{"as printed", s},
		{"lower case", strings.ToLower(s)},
		{"mixed case", strings.ToLower(s[:20]) + s[20:]},
		{"no dashes", plain},
		{"spaces for dashes", strings.ReplaceAll(s, "-", " ")},
		{"spaces and dashes", strings.ReplaceAll(s, "-", " - ")},
		{"tabs", strings.ReplaceAll(s, "-", "\t")},
		{"groups of four", func() string {
			var g []string
			for p := plain; p != ""; p = p[min(4, len(p)):] {
				g = append(g, p[:min(4, len(p))])
			}
			return strings.Join(g, "-")
		}()},
		{"surrounding blanks", "  " + s + " \t"},
		{"trailing newline", s + "\n"},
		{"O for 0", strings.ReplaceAll(s, "0", "O")},
		{"o for 0", strings.ReplaceAll(s, "0", "o")},
		{"I for 1", strings.ReplaceAll(s, "1", "I")},
		{"i for 1", strings.ReplaceAll(s, "1", "i")},
		{"L for 1", strings.ReplaceAll(s, "1", "L")},
		{"l for 1", strings.ReplaceAll(s, "1", "l")},
		{"all at once", strings.ToLower(strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(s, "0", "O"), "1", "l"), "-", " "))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := crypt.DecodeRecoveryKey(tc.in)
			if err != nil {
				t.Fatalf("%q: %v", tc.in, err)
			}
			if got != k {
				t.Fatalf("%q decodes to another key", tc.in)
			}
		})
	}
}

const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

func TestRecoveryKeyTypos(t *testing.T) {
	for _, k := range []crypt.MasterKey{testMaster, otherMaster, {}} {
		s := strings.ReplaceAll(crypt.EncodeRecoveryKey(k), "-", "")
		reject := func(name, in string) {
			t.Helper()
			got, err := crypt.DecodeRecoveryKey(in)
			if !errors.Is(err, crypt.ErrRecoveryKey) {
				t.Fatalf("%s %q: got %v, want ErrRecoveryKey", name, in, err)
			}
			if got != (crypt.MasterKey{}) {
				t.Fatalf("%s: a key returned with an error", name)
			}
		}
		for i := range len(s) {
			for _, c := range alphabet {
				if byte(c) == s[i] {
					continue
				}
				in := s[:i] + string(c) + s[i+1:]
				if i == len(s)-1 && strings.IndexByte(alphabet, s[i])>>2 == strings.IndexRune(alphabet, c)>>2 {
					// 58 characters carry 290 bits for 288: the last
					// character's two low bits are padding, and a typo
					// there gives the right key.
					if got, err := crypt.DecodeRecoveryKey(in); err != nil || got != k {
						t.Fatalf("padding typo %q: %v", in, err)
					}
					continue
				}
				reject("substitution", in)
			}
			if i+1 < len(s) && s[i] != s[i+1] {
				reject("transposition", s[:i]+s[i+1:i+2]+s[i:i+1]+s[i+2:])
			}
			reject("deletion", s[:i]+s[i+1:])
			reject("insertion", s[:i]+"7"+s[i:])
		}
		for _, bad := range []string{"", "0", s[:56], s + "0", s + s, strings.Replace(s, s[:1], "U", 1), "é" + s[1:], s[:10] + "*" + s[11:]} {
			reject("malformed", bad)
		}
	}
}

func TestKeyringWrapUnwrap(t *testing.T) {
	fresh, err := crypt.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []*crypt.Keyring{testKeyring(), fresh} {
		b, err := k.Wrap(testMaster)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range [][]byte{k.Data[:], k.Fingerprint[:], k.Chunker[:], testMaster[:]} {
			if bytes.Contains(b, secret) || bytes.Contains(b, []byte(hex.EncodeToString(secret))) {
				t.Fatal("a key is in the keyring file in clear")
			}
		}
		var f map[string]any
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		if f["version"] != 1.0 || f["store_id"] != hex.EncodeToString(k.StoreID[:]) || f["key_check"] != keyCheck(testMaster, k.StoreID) {
			t.Fatalf("keyring file: %s", b)
		}
		got, err := crypt.UnwrapKeyring(b, testMaster)
		if err != nil {
			t.Fatal(err)
		}
		if *got != *k {
			t.Fatal("unwrapped keyring differs")
		}
		if _, err := crypt.UnwrapKeyring(b, otherMaster); !errors.Is(err, crypt.ErrWrongKey) {
			t.Fatalf("wrong master: got %v, want ErrWrongKey", err)
		}
	}
}

// editKeyring rewrites fields of a keyring file.
func editKeyring(t *testing.T, b []byte, edit func(f map[string]any)) []byte {
	t.Helper()
	var f map[string]any
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	edit(f)
	out, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sealKeyring seals plain as the keyring of a file for storeID under master.
func sealKeyring(t *testing.T, master crypt.MasterKey, storeID [16]byte, plain []byte) []byte {
	return newAEAD(t, wrapKey(master)).Seal(nil, plain, storeID[:])
}

func TestUnwrapKeyringRejects(t *testing.T) {
	k := testKeyring()
	good, err := k.Wrap(testMaster)
	if err != nil {
		t.Fatal(err)
	}
	sealed := func(plain string) func(f map[string]any) {
		return func(f map[string]any) { f["sealed"] = sealKeyring(t, testMaster, k.StoreID, []byte(plain)) }
	}
	key := func(n int) string { b, _ := json.Marshal(make([]byte, n)); return string(b) }
	for _, tc := range []struct {
		name   string
		b      []byte
		master crypt.MasterKey
		want   error // nil: any error
	}{
		{"wrong master", good, otherMaster, crypt.ErrWrongKey},
		{"wrong master, no check", editKeyring(t, good, func(f map[string]any) { delete(f, "key_check") }), otherMaster, crypt.ErrWrongKey},
		{"check of another master", editKeyring(t, good, func(f map[string]any) { f["key_check"] = keyCheck(otherMaster, k.StoreID) }), testMaster, crypt.ErrWrongKey},
		{"damaged seal", editKeyring(t, good, func(f map[string]any) {
			f["sealed"] = flip(sealKeyring(t, testMaster, k.StoreID, []byte("{}")), 20)
		}), testMaster, crypt.ErrAuth},
		{"sealed for another store", editKeyring(t, good, func(f map[string]any) {
			f["sealed"] = sealKeyring(t, testMaster, [16]byte{1}, []byte("{}"))
		}), testMaster, crypt.ErrAuth},
		{"not JSON", []byte("coffer"), testMaster, nil},
		{"empty", nil, testMaster, nil},
		{"JSON array", []byte("[]"), testMaster, nil},
		{"version 0", editKeyring(t, good, func(f map[string]any) { f["version"] = 0 }), testMaster, nil},
		{"version 2", editKeyring(t, good, func(f map[string]any) { f["version"] = 2 }), testMaster, nil},
		{"no version", editKeyring(t, good, func(f map[string]any) { delete(f, "version") }), testMaster, nil},
		{"store id not hex", editKeyring(t, good, func(f map[string]any) { f["store_id"] = "zz" }), testMaster, nil},
		{"short store id", editKeyring(t, good, func(f map[string]any) { f["store_id"] = "c0ffee" }), testMaster, nil},
		{"sealed not base64", editKeyring(t, good, func(f map[string]any) { f["sealed"] = "!!" }), testMaster, nil},
		{"no seal", editKeyring(t, good, func(f map[string]any) { delete(f, "sealed") }), testMaster, crypt.ErrAuth},
		{"keyring not JSON", editKeyring(t, good, sealed("keys")), testMaster, nil},
		{"short data key", editKeyring(t, good, sealed(`{"data":`+key(31)+`,"fingerprint":`+key(32)+`,"chunker":`+key(32)+`}`)), testMaster, nil},
		{"long chunker key", editKeyring(t, good, sealed(`{"data":`+key(32)+`,"fingerprint":`+key(32)+`,"chunker":`+key(33)+`}`)), testMaster, nil},
		{"missing fingerprint key", editKeyring(t, good, sealed(`{"data":`+key(32)+`,"chunker":`+key(32)+`}`)), testMaster, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := crypt.UnwrapKeyring(tc.b, tc.master)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.want == nil && errors.Is(err, crypt.ErrWrongKey) {
				t.Fatalf("a damaged file reported as the wrong key: %v", err)
			}
			if got != nil {
				t.Fatal("keyring returned with an error")
			}
		})
	}
	// The restated format is the real one: a keyring sealed by hand opens.
	plain := `{"data":` + key(32) + `,"fingerprint":` + key(32) + `,"chunker":` + key(32) + `}`
	got, err := crypt.UnwrapKeyring(editKeyring(t, good, sealed(plain)), testMaster)
	if err != nil {
		t.Fatal(err)
	}
	if got.StoreID != k.StoreID || got.Data != ([32]byte{}) {
		t.Fatalf("hand-sealed keyring: %+v", got)
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "master.key")
	if err := crypt.WriteKeyFile(path, testMaster); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", st.Mode().Perm())
	}
	got, err := crypt.ReadKeyFile(path)
	if err != nil || got != testMaster {
		t.Fatalf("ReadKeyFile: %v", err)
	}
	if err := crypt.WriteKeyFile(path, otherMaster); err == nil {
		t.Fatal("WriteKeyFile overwrote a key file")
	}
	if got, _ := crypt.ReadKeyFile(path); got != testMaster {
		t.Fatal("key file changed by a refused write")
	}

	typed := filepath.Join(dir, "typed.key")
	k, s := keyWith01(t)
	hand := "# typed by hand\n\n   " + strings.ToLower(strings.ReplaceAll(s, "0", "o")) + "   \n# trailing comment\n"
	if err := os.WriteFile(typed, []byte(hand), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := crypt.ReadKeyFile(typed); err != nil || got != k {
		t.Fatalf("hand-typed key file: %v", err)
	}

	for name, content := range map[string]string{
		"empty":    "",
		"comments": "# nothing\n\n#\n",
		"typo":     "# key\n" + strings.Replace(s, s[:1], string(alphabet[(strings.IndexByte(alphabet, s[0])+1)%32]), 1) + "\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := crypt.ReadKeyFile(p); err == nil {
			t.Errorf("%s key file accepted", name)
		}
	}
	if _, err := crypt.ReadKeyFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing key file accepted")
	}
}
