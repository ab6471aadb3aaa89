package secrets

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestVaultRoundTripAndEncryption(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secrets")
	var key [32]byte
	key[0] = 7
	v, err := Open(path, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Put("vc", Secret{Kind: "vcenter", Username: "administrator@vsphere.local", Password: "S3cr3t-pa55"}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("S3cr3t-pa55")) || bytes.Contains(raw, []byte("administrator")) {
		t.Fatal("secrets file holds plaintext")
	}
	if fmt.Sprint(Secret{Password: "S3cr3t-pa55"}) == "" || bytes.Contains([]byte(fmt.Sprint(Secret{Password: "S3cr3t-pa55"})), []byte("S3cr3t")) {
		t.Fatal("String shows the password")
	}
	v2, err := Open(path, key)
	if err != nil {
		t.Fatal(err)
	}
	s, err := v2.Get("vc")
	if err != nil || s.Password != "S3cr3t-pa55" || s.Username != "administrator@vsphere.local" {
		t.Fatalf("got %+v, %v", s, err)
	}
	if _, err := v2.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing secret: %v", err)
	}
	var wrong [32]byte
	if _, err := Open(path, wrong); err == nil {
		t.Fatal("wrong key opened the vault")
	}
	if err := v2.Delete("vc"); err != nil {
		t.Fatal(err)
	}
	v3, err := Open(path, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(v3.IDs()) != 0 {
		t.Fatalf("deleted secret still there: %v", v3.IDs())
	}
	raw[len(raw)/2] ^= 1
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, key); err == nil {
		t.Fatal("damaged vault opened")
	}
}
