package crypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// KeySize is the length of every key in the hierarchy (AES-256).
const KeySize = 32

// NonceSize is the AES-GCM nonce length.
const NonceSize = 12

// Overhead is what Seal adds to a plaintext: nonce and tag.
const Overhead = NonceSize + 16

// ErrAuth means a ciphertext failed authentication: it was damaged or made
// with another key.
var ErrAuth = errors.New("authentication failed (damaged data or wrong key)")

// AEAD seals and opens messages with AES-256-GCM and random nonces. It is
// safe for concurrent use.
type AEAD struct {
	gcm cipher.AEAD
}

// NewAEAD returns an AEAD for a 32-byte key.
func NewAEAD(key []byte) (*AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("aead key: %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aead key: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("aead key: %w", err)
	}
	return &AEAD{gcm: gcm}, nil
}

// Seal appends nonce || ciphertext || tag of plaintext to dst.
func (a *AEAD) Seal(dst, plaintext, aad []byte) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, NonceSize)...)
	if _, err := rand.Read(dst[n:]); err != nil {
		// crypto/rand never fails on Linux (getrandom); a failure here
		// means the system is unusable for cryptography.
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return a.gcm.Seal(dst, dst[n:n+NonceSize], plaintext, aad)
}

// Open authenticates and decrypts a message made by Seal, appending the
// plaintext to dst.
func (a *AEAD) Open(dst, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, fmt.Errorf("sealed message of %d bytes: %w", len(sealed), ErrAuth)
	}
	out, err := a.gcm.Open(dst, sealed[:NonceSize], sealed[NonceSize:], aad)
	if err != nil {
		return nil, ErrAuth
	}
	return out, nil
}
