package firmware

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// Update signatures: a detached file beside the update image, made by
// SignUpdate at build time and checked by VerifyUpdate on the appliance
// before an image is written to the inactive slot. FORMAT.md describes the
// layout.

const (
	// updateSigMagic opens every update signature file.
	updateSigMagic = "CFRUPSIG"
	// updateSigVersion is the format version this package writes and reads.
	updateSigVersion = 1
	// UpdateDigestSHA512 is the digest algorithm byte for Ed25519ph: Ed25519
	// (RFC 8032) over the SHA-512 digest of the image, with updateSigContext
	// as the context string. It is the only algorithm defined.
	UpdateDigestSHA512 = 1
	// updateSigContext separates update signatures from any other Ed25519ph
	// signature the same key might make.
	updateSigContext = "coffer.dev/firmware update v1"
	// UpdateSignatureSize is the size of an update signature file.
	UpdateSignatureSize = len(updateSigMagic) + 1 + 1 + KeyIDSize + ed25519.SignatureSize
	// KeyIDSize is the size of a key id, see UpdateKeyID.
	KeyIDSize = 8
)

var (
	// ErrBadSignature is returned by VerifyUpdate for an image that its
	// signature does not vouch for: tampered, signed by another key, or
	// with a malformed signature. Never install such an image.
	ErrBadSignature = errors.New("update signature does not verify")
	// ErrWrongKey is returned (wrapped together with ErrBadSignature) when
	// the signature names another key than the one given to VerifyUpdate.
	ErrWrongKey = errors.New("update is signed by another key")
)

// UpdateKeyID is the key id of an update signing key: the first 8 bytes of
// SHA-256 of the 32-byte Ed25519 public key.
func UpdateKeyID(pub ed25519.PublicKey) [KeyIDSize]byte {
	sum := sha256.Sum256(pub)
	var id [KeyIDSize]byte
	copy(id[:], sum[:KeyIDSize])
	return id
}

// digestImage streams image through SHA-512.
func digestImage(image io.Reader) ([]byte, error) {
	h := sha512.New()
	if _, err := io.Copy(h, image); err != nil {
		return nil, fmt.Errorf("reading the update image: %w", err)
	}
	return h.Sum(nil), nil
}

func ed25519phOptions() *ed25519.Options {
	return &ed25519.Options{Hash: crypto.SHA512, Context: updateSigContext}
}

// SignUpdate signs an update image with the build's Ed25519 key and returns
// the detached signature file. The image is read once, streaming.
func SignUpdate(priv ed25519.PrivateKey, image io.Reader) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("firmware: signing update: private key is %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	digest, err := digestImage(image)
	if err != nil {
		return nil, fmt.Errorf("firmware: signing update: %w", err)
	}
	sig, err := priv.Sign(nil, digest, ed25519phOptions())
	if err != nil {
		return nil, fmt.Errorf("firmware: signing update: %w", err)
	}
	id := UpdateKeyID(priv.Public().(ed25519.PublicKey))
	out := make([]byte, 0, UpdateSignatureSize)
	out = append(out, updateSigMagic...)
	out = append(out, updateSigVersion, UpdateDigestSHA512)
	out = append(out, id[:]...)
	out = append(out, sig...)
	return out, nil
}

// VerifyUpdate checks a detached signature file made by SignUpdate against
// an update image and the appliance's trusted update key. The signature
// file is parsed, and its key id checked, before the image is read; the
// image is then read once, streaming. Verification failures wrap
// ErrBadSignature (and ErrWrongKey for a signature by another key); a read
// error of the image is returned as such.
func VerifyUpdate(pub ed25519.PublicKey, image io.Reader, sig []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("firmware: verifying update: public key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	if len(sig) != UpdateSignatureSize {
		return fmt.Errorf("firmware: verifying update: %w: signature file is %d bytes, want %d", ErrBadSignature, len(sig), UpdateSignatureSize)
	}
	rest, ok := bytes.CutPrefix(sig, []byte(updateSigMagic))
	if !ok {
		return fmt.Errorf("firmware: verifying update: %w: not an update signature file (bad magic)", ErrBadSignature)
	}
	if rest[0] != updateSigVersion {
		return fmt.Errorf("firmware: verifying update: %w: signature format version %d, want %d", ErrBadSignature, rest[0], updateSigVersion)
	}
	if rest[1] != UpdateDigestSHA512 {
		return fmt.Errorf("firmware: verifying update: %w: unknown digest algorithm %d", ErrBadSignature, rest[1])
	}
	rest = rest[2:]
	want := UpdateKeyID(pub)
	if !bytes.Equal(rest[:KeyIDSize], want[:]) {
		return fmt.Errorf("firmware: verifying update: %w: %w: key id %s, trusted key is %s", ErrBadSignature, ErrWrongKey,
			hex.EncodeToString(rest[:KeyIDSize]), hex.EncodeToString(want[:]))
	}
	rest = rest[KeyIDSize:]
	digest, err := digestImage(image)
	if err != nil {
		return fmt.Errorf("firmware: verifying update: %w", err)
	}
	if err := ed25519.VerifyWithOptions(pub, digest, rest, ed25519phOptions()); err != nil {
		return fmt.Errorf("firmware: verifying update: %w: the image does not match its signature (tampered or truncated)", ErrBadSignature)
	}
	return nil
}
