package firmware

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"testing"
)

func identity(t *testing.T, tpm *TPM) *IdentityKey {
	t.Helper()
	k, err := tpm.IdentityKey(context.Background())
	if err != nil {
		t.Fatalf("IdentityKey: %v", err)
	}
	return k
}

func TestIdentityKeySigns(t *testing.T) {
	t.Parallel()
	k := identity(t, startSWTPM(t).open())
	pub, ok := k.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("Public() = %T %v, want an ECDSA P-256 key", k.Public(), k.Public())
	}
	var signer crypto.Signer = k
	for _, msg := range []string{"", "appliance enrolment", "another message"} {
		digest := sha256.Sum256([]byte(msg))
		sig, err := signer.Sign(nil, digest[:], crypto.SHA256)
		if err != nil {
			t.Fatalf("Sign(%q): %v", msg, err)
		}
		if !ecdsa.VerifyASN1(pub, digest[:], sig) {
			t.Fatalf("signature of %q does not verify", msg)
		}
		other := sha256.Sum256([]byte(msg + "!"))
		if ecdsa.VerifyASN1(pub, other[:], sig) {
			t.Fatalf("signature of %q verifies another digest", msg)
		}
	}

	d512 := sha512.Sum512([]byte("x"))
	d256 := sha256.Sum256([]byte("x"))
	for _, tc := range []struct {
		name   string
		digest []byte
		opts   crypto.SignerOpts
	}{
		{"SHA-512", d512[:], crypto.SHA512},
		{"nil opts", d256[:], nil},
		{"short digest", d256[:20], crypto.SHA256},
	} {
		if _, err := k.Sign(nil, tc.digest, tc.opts); err == nil {
			t.Errorf("Sign with %s succeeded", tc.name)
		}
	}
}

func TestIdentityKeyStable(t *testing.T) {
	t.Parallel()
	sw := startSWTPM(t)
	first := identity(t, sw.open()).ECDSAPublic()

	// Another connection to the same TPM.
	if again := identity(t, sw.open()).ECDSAPublic(); !again.Equal(first) {
		t.Fatal("identity key differs between two opens of the same TPM")
	}

	// A reboot: nothing was stored, the TPM derives the same key.
	sw.restart()
	k := identity(t, sw.open())
	if !k.ECDSAPublic().Equal(first) {
		t.Fatal("identity key differs after a restart of the TPM")
	}
	digest := sha256.Sum256([]byte("after reboot"))
	sig, err := k.Sign(nil, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if !ecdsa.VerifyASN1(first, digest[:], sig) {
		t.Fatal("signature after restart does not verify with the key from before")
	}

	// Another TPM has another identity.
	if other := identity(t, startSWTPM(t).open()).ECDSAPublic(); other.Equal(first) {
		t.Fatal("two TPMs derived the same identity key")
	}
}

func TestIdentityKeyOfAnotherTPM(t *testing.T) {
	t.Parallel()
	a, b := startSWTPM(t).open(), startSWTPM(t).open()
	k := identity(t, a)
	// An IdentityKey bound to a TPM whose seed changed (here: another
	// TPM behind the same struct) refuses to sign with the new key.
	k.tpm = b
	digest := sha256.Sum256([]byte("x"))
	if _, err := k.Sign(nil, digest[:], crypto.SHA256); !errors.Is(err, ErrIdentityChanged) {
		t.Fatalf("Sign = %v, want ErrIdentityChanged", err)
	}
}
