package firmware

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"
)

// patternReader yields n deterministic bytes without holding them.
type patternReader struct{ n, off int64 }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n-r.off {
		p = p[:r.n-r.off]
	}
	for i := range p {
		p[i] = byte((r.off + int64(i)) * 131 >> 3)
	}
	r.off += int64(len(p))
	return len(p), nil
}

func key(t *testing.T, seed byte) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	return priv.Public().(ed25519.PublicKey), priv
}

func TestUpdateSignature(t *testing.T) {
	t.Parallel()
	pub, priv := key(t, 1)
	otherPub, otherPriv := key(t, 2)
	image := []byte("coffer image v2: kernel, initrd, root filesystem")
	sig, err := SignUpdate(priv, bytes.NewReader(image))
	if err != nil {
		t.Fatalf("SignUpdate: %v", err)
	}
	if UpdateSignatureSize != 82 {
		t.Fatalf("UpdateSignatureSize = %d, FORMAT.md says 82", UpdateSignatureSize)
	}
	if len(sig) != UpdateSignatureSize {
		t.Fatalf("signature file is %d bytes, want %d", len(sig), UpdateSignatureSize)
	}
	if !bytes.HasPrefix(sig, []byte("CFRUPSIG\x01\x01")) {
		t.Fatalf("signature file starts %q", sig[:10])
	}
	id := sha256.Sum256(pub)
	if !bytes.Equal(sig[10:18], id[:8]) {
		t.Fatalf("key id %x, want %x", sig[10:18], id[:8])
	}
	otherSig, err := SignUpdate(otherPriv, bytes.NewReader(image))
	if err != nil {
		t.Fatal(err)
	}

	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 1
		return c
	}
	tampered := flip(image, 5)
	for _, tc := range []struct {
		name     string
		pub      ed25519.PublicKey
		image    []byte
		sig      []byte
		wantErr  error
		wrongKey bool
	}{
		{name: "good", pub: pub, image: image, sig: sig},
		{name: "tampered image", pub: pub, image: tampered, sig: sig, wantErr: ErrBadSignature},
		{name: "truncated image", pub: pub, image: image[:len(image)-1], sig: sig, wantErr: ErrBadSignature},
		{name: "longer image", pub: pub, image: append(bytes.Clone(image), 0), sig: sig, wantErr: ErrBadSignature},
		{name: "wrong key", pub: otherPub, image: image, sig: sig, wantErr: ErrBadSignature, wrongKey: true},
		{name: "signed by another key", pub: pub, image: image, sig: otherSig, wantErr: ErrBadSignature, wrongKey: true},
		{name: "signature bit flipped", pub: pub, image: image, sig: flip(sig, UpdateSignatureSize-1), wantErr: ErrBadSignature},
		{name: "key id flipped", pub: pub, image: image, sig: flip(sig, 12), wantErr: ErrBadSignature, wrongKey: true},
		{name: "bad magic", pub: pub, image: image, sig: flip(sig, 0), wantErr: ErrBadSignature},
		{name: "other version", pub: pub, image: image, sig: flip(sig, 8), wantErr: ErrBadSignature},
		{name: "other digest algorithm", pub: pub, image: image, sig: flip(sig, 9), wantErr: ErrBadSignature},
		{name: "truncated signature", pub: pub, image: image, sig: sig[:len(sig)-1], wantErr: ErrBadSignature},
		{name: "empty signature", pub: pub, image: image, sig: nil, wantErr: ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyUpdate(tc.pub, bytes.NewReader(tc.image), tc.sig)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("VerifyUpdate: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("VerifyUpdate = %v, want %v", err, tc.wantErr)
			}
			if errors.Is(err, ErrWrongKey) != tc.wrongKey {
				t.Fatalf("VerifyUpdate = %v; ErrWrongKey: %v, want %v", err, !tc.wrongKey, tc.wrongKey)
			}
		})
	}

	if err := VerifyUpdate(pub[:10], bytes.NewReader(image), sig); err == nil {
		t.Error("VerifyUpdate with a short public key succeeded")
	}
	if _, err := SignUpdate(priv[:10], bytes.NewReader(image)); err == nil {
		t.Error("SignUpdate with a short private key succeeded")
	}
}

// failingReader fails after n bytes.
type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("disk on fire")
	}
	if len(p) > r.n {
		p = p[:r.n]
	}
	r.n -= len(p)
	return len(p), nil
}

func TestUpdateSignatureStreams(t *testing.T) {
	t.Parallel()
	pub, priv := key(t, 3)
	const size = 64 << 20 // larger than anything worth holding in memory
	sig, err := SignUpdate(priv, &patternReader{n: size})
	if err != nil {
		t.Fatalf("SignUpdate: %v", err)
	}
	if err := VerifyUpdate(pub, &patternReader{n: size}, sig); err != nil {
		t.Fatalf("VerifyUpdate: %v", err)
	}
	if err := VerifyUpdate(pub, &patternReader{n: size - 1}, sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("VerifyUpdate of a truncated image = %v, want ErrBadSignature", err)
	}

	// A read error is reported as such, not as a bad signature.
	err = VerifyUpdate(pub, &failingReader{n: 1000}, sig)
	if err == nil || errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("VerifyUpdate with a failing reader = %v", err)
	}
	if _, err := SignUpdate(priv, &failingReader{n: 10}); err == nil {
		t.Fatal("SignUpdate with a failing reader succeeded")
	}
	// A signature by another key is refused before the image is read.
	otherPub, _ := key(t, 4)
	if err := VerifyUpdate(otherPub, &failingReader{}, sig); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("VerifyUpdate with the wrong key = %v, want ErrWrongKey without reading", err)
	}
}
