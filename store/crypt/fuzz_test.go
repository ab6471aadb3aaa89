package crypt_test

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"testing/cryptotest"

	"coffer.dev/coffer/store/crypt"
)

func recoveryKeySeeds() []fuzzSeed {
	s := crypt.EncodeRecoveryKey(testMaster)
	plain := strings.ReplaceAll(s, "-", "")
	typo := []byte(s)
	typo[7] = alphabet[(strings.IndexByte(alphabet, typo[7])+1)%len(alphabet)]
	return []fuzzSeed{
		seed("test-master", s),
		seed("other-master", crypt.EncodeRecoveryKey(otherMaster)),
		seed("zero", crypt.EncodeRecoveryKey(crypt.MasterKey{})),
		seed("lower-spaces", strings.ToLower(strings.ReplaceAll(s, "-", " "))),
		seed("confusables", strings.NewReplacer("0", "O", "1", "l").Replace(plain)),
		seed("padding-bits", plain[:len(plain)-1]+string(alphabet[strings.IndexByte(alphabet, plain[len(plain)-1])^3])),
		seed("typo", string(typo)),
		seed("short", s[:len(s)-4]),
		seed("long", s+"-0"),
		seed("letter-u", "U"+s[1:]),
		seed("empty", ""),
	}
}

var createdField = regexp.MustCompile(`"created": "[^"]*"`)

// wrapFixed wraps k under master with a fixed creation time, so that seeds
// do not change from one generation to the next.
func wrapFixed(tb testing.TB, k *crypt.Keyring, master crypt.MasterKey) []byte {
	b, err := k.Wrap(master)
	if err != nil {
		tb.Fatal(err)
	}
	return createdField.ReplaceAll(b, []byte(`"created": "2026-11-23T08:18:46Z"`))
}

func keyringSeeds(tb testing.TB) []fuzzSeed {
	k := testKeyring()
	good := wrapFixed(tb, k, testMaster)
	var f map[string]json.RawMessage
	if err := json.Unmarshal(good, &f); err != nil {
		tb.Fatal(err)
	}
	delete(f, "key_check")
	noCheck, err := json.Marshal(f)
	if err != nil {
		tb.Fatal(err)
	}
	keys := `{"data":"` + strings.Repeat("A", 43) + `=","fingerprint":"` + strings.Repeat("B", 43) + `=","chunker":"` + strings.Repeat("C", 43) + `="}`
	return []fuzzSeed{
		seed("good", good, []byte(nil), false),
		seed("no-check", noCheck, []byte(nil), false),
		seed("other-master", wrapFixed(tb, k, otherMaster), []byte(nil), false),
		seed("version-2", []byte(strings.Replace(string(good), `"version": 1`, `"version": 2`, 1)), []byte(nil), false),
		seed("bad-store-id", []byte(strings.Replace(string(good), hex.EncodeToString(k.StoreID[:]), "c0ffee", 1)), []byte(nil), false),
		seed("truncated", good[:len(good)/2], []byte(nil), false),
		seed("sealed-keys", good, []byte(keys), true),
		seed("sealed-short-key", good, []byte(`{"data":"AAAA","fingerprint":"AAAA","chunker":"AAAA"}`), true),
		seed("sealed-not-json", noCheck, []byte("keys"), true),
	}
}

func TestWriteFuzzSeeds(t *testing.T) {
	skipUnlessWritingSeeds(t)
	cryptotest.SetGlobalRandom(t, 1) // the same seeds every time
	writeFuzzSeeds(t, "FuzzDecodeRecoveryKey", recoveryKeySeeds())
	writeFuzzSeeds(t, "FuzzUnwrapKeyring", keyringSeeds(t))
}

// normalRecoveryKey applies the documented forgiveness: case, blanks,
// dashes, line breaks, O for 0 and I or L for 1.
func normalRecoveryKey(s string) string {
	s = strings.ToUpper(s)
	s = strings.NewReplacer("-", "", " ", "", "\t", "", "\r", "", "\n", "", "O", "0", "I", "1", "L", "1").Replace(s)
	return s
}

func FuzzDecodeRecoveryKey(f *testing.F) {
	addSeeds(f, recoveryKeySeeds())
	f.Fuzz(func(t *testing.T, s string) {
		k, err := crypt.DecodeRecoveryKey(s)
		if err != nil {
			if !errors.Is(err, crypt.ErrRecoveryKey) {
				t.Fatalf("error is not ErrRecoveryKey: %v", err)
			}
			if k != (crypt.MasterKey{}) {
				t.Fatal("key returned with an error")
			}
			return
		}
		enc := crypt.EncodeRecoveryKey(k)
		if k2, err := crypt.DecodeRecoveryKey(enc); err != nil || k2 != k {
			t.Fatalf("%q does not round-trip: %v", enc, err)
		}
		if !recoveryForm.MatchString(enc) {
			t.Fatalf("encoding %q is malformed", enc)
		}
		// What was accepted is the encoding, as forgiven; only the two
		// padding bits of the last character may differ.
		got, want := normalRecoveryKey(s), strings.ReplaceAll(enc, "-", "")
		if len(got) != len(want) || got[:len(got)-1] != want[:len(want)-1] ||
			strings.IndexByte(alphabet, got[len(got)-1])>>2 != strings.IndexByte(alphabet, want[len(want)-1])>>2 {
			t.Fatalf("accepted %q (%q) for the key %q", s, got, want)
		}
		if k2, err := crypt.DecodeRecoveryKey(strings.ToLower(s)); err != nil || k2 != k {
			t.Fatalf("lower case of an accepted key: %v", err)
		}
	})
}

// sealInto replaces the sealed keyring of file with plain, sealed under
// testMaster for the file's store id, so the fuzzer can reach past the
// authentication.
func sealInto(t *testing.T, file, plain []byte) []byte {
	var f map[string]json.RawMessage
	if json.Unmarshal(file, &f) != nil || f == nil {
		return file
	}
	var sid string
	if json.Unmarshal(f["store_id"], &sid) != nil {
		return file
	}
	id, err := hex.DecodeString(sid)
	if err != nil || len(id) != 16 {
		return file
	}
	sealed, err := json.Marshal(sealKeyring(t, testMaster, [16]byte(id), plain))
	if err != nil {
		t.Fatal(err)
	}
	f["sealed"] = sealed
	out, err := json.Marshal(f)
	if err != nil {
		return file
	}
	return out
}

func FuzzUnwrapKeyring(f *testing.F) {
	addSeeds(f, keyringSeeds(f))
	f.Fuzz(func(t *testing.T, data, plain []byte, seal bool) {
		if seal {
			data = sealInto(t, data, plain)
		}
		k, err := crypt.UnwrapKeyring(data, testMaster)
		if err != nil {
			if k != nil {
				t.Fatal("keyring returned with an error")
			}
			return
		}
		var file struct {
			StoreID string `json:"store_id"`
		}
		if err := json.Unmarshal(data, &file); err != nil {
			t.Fatalf("accepted a file that is not JSON: %v", err)
		}
		if id, err := hex.DecodeString(file.StoreID); err != nil || len(id) != 16 || [16]byte(id) != k.StoreID {
			t.Fatalf("store id %x, file says %q", k.StoreID, file.StoreID)
		}
		b, err := k.Wrap(testMaster)
		if err != nil {
			t.Fatal(err)
		}
		k2, err := crypt.UnwrapKeyring(b, testMaster)
		if err != nil || *k2 != *k {
			t.Fatalf("re-wrapped keyring does not unwrap alike: %v", err)
		}
		if _, err := crypt.UnwrapKeyring(data, otherMaster); !errors.Is(err, crypt.ErrWrongKey) {
			t.Fatalf("another master key: got %v, want ErrWrongKey", err)
		}
	})
}
