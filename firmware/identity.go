package firmware

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/google/go-tpm/tpm2"
)

// identityLabel is hashed into the unique field of the identity key's
// template. The TPM derives a primary key from the hierarchy seed and the
// whole template, so the label keeps this key apart from any other primary
// another program derives from the same hierarchy with a similar template.
const identityLabel = "coffer.dev/firmware identity key v1"

// ErrIdentityChanged is returned by IdentityKey.Sign when the TPM now
// derives a different identity key than when the IdentityKey was made: the
// TPM was cleared (or is another TPM) in between.
var ErrIdentityChanged = errors.New("the TPM's identity key changed (TPM cleared or replaced)")

// identityTemplate is the fixed template of the appliance identity key: an
// unrestricted ECC P-256 ECDSA/SHA-256 signing key that never leaves the
// TPM (fixedTPM, sensitiveDataOrigin), used without a password.
func identityTemplate() tpm2.TPMTPublic {
	label := sha256.Sum256([]byte(identityLabel))
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM:            true,
			FixedParent:         true,
			SensitiveDataOrigin: true,
			UserWithAuth:        true,
			NoDA:                true,
			SignEncrypt:         true,
		},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Scheme: tpm2.TPMTECCScheme{
				Scheme: tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA,
					&tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
			},
			CurveID: tpm2.TPMECCNistP256,
			KDF:     tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: label[:]},
			Y: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
		}),
	}
}

// IdentityKey is the appliance's TPM-resident identity key: an ECC P-256
// key derived by the TPM from the owner hierarchy's seed and a fixed
// template. It is the same key on every boot without being stored anywhere
// (not even in TPM NV), until the TPM is cleared; its private part never
// leaves the TPM. It implements crypto.Signer with ECDSA over SHA-256
// digests, with ASN.1 signatures as ecdsa.VerifyASN1 checks.
type IdentityKey struct {
	tpm *TPM
	pub *ecdsa.PublicKey
}

var _ crypto.Signer = (*IdentityKey)(nil)

// IdentityKey derives the identity key and returns a signer for it.
func (t *TPM) IdentityKey(ctx context.Context) (*IdentityKey, error) {
	if err := t.acquire(ctx); err != nil {
		return nil, err
	}
	defer t.release()
	h, _, pub, err := t.createIdentity()
	if err != nil {
		return nil, fmt.Errorf("firmware: %w", err)
	}
	if err := t.flush(h); err != nil {
		return nil, fmt.Errorf("firmware: flushing the identity key: %w", err)
	}
	return &IdentityKey{tpm: t, pub: pub}, nil
}

// createIdentity creates the identity primary; the caller holds the TPM and
// flushes the handle.
func (t *TPM) createIdentity() (tpm2.TPMHandle, tpm2.TPM2BName, *ecdsa.PublicKey, error) {
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.TPMRHOwner,
		InPublic:      tpm2.New2B(identityTemplate()),
	}.Execute(t.t)
	if err != nil {
		return 0, tpm2.TPM2BName{}, nil, fmt.Errorf("creating the identity key: %w", err)
	}
	pub, err := eccPublic(&rsp.OutPublic)
	if err != nil {
		_ = t.flush(rsp.ObjectHandle)
		return 0, tpm2.TPM2BName{}, nil, fmt.Errorf("creating the identity key: %w", err)
	}
	return rsp.ObjectHandle, rsp.Name, pub, nil
}

func eccPublic(p *tpm2.TPM2BPublic) (*ecdsa.PublicKey, error) {
	pub, err := p.Contents()
	if err != nil {
		return nil, fmt.Errorf("parsing the public area: %w", err)
	}
	parms, err := pub.Parameters.ECCDetail()
	if err != nil {
		return nil, fmt.Errorf("parsing the ECC parameters: %w", err)
	}
	point, err := pub.Unique.ECC()
	if err != nil {
		return nil, fmt.Errorf("parsing the ECC point: %w", err)
	}
	k, err := tpm2.ECDSAPub(parms, point)
	if err != nil {
		return nil, fmt.Errorf("converting the ECC point: %w", err)
	}
	return k, nil
}

// Public returns the identity key's public key, an *ecdsa.PublicKey.
func (k *IdentityKey) Public() crypto.PublicKey { return k.pub }

// ECDSAPublic returns the identity key's public key.
func (k *IdentityKey) ECDSAPublic() *ecdsa.PublicKey { return k.pub }

// Sign signs a SHA-256 digest with the identity key in the TPM and returns
// an ASN.1 DER ECDSA signature. rand is unused: the TPM makes its own nonce.
// opts.HashFunc() must be crypto.SHA256.
func (k *IdentityKey) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return k.SignContext(context.Background(), digest, opts)
}

// SignContext is Sign with a context bounding the wait for the TPM.
func (k *IdentityKey) SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts == nil || opts.HashFunc() != crypto.SHA256 {
		return nil, errors.New("firmware: identity key signs SHA-256 digests only")
	}
	if len(digest) != sha256.Size {
		return nil, fmt.Errorf("firmware: identity key: digest is %d bytes, want %d", len(digest), sha256.Size)
	}
	t := k.tpm
	if err := t.acquire(ctx); err != nil {
		return nil, err
	}
	defer t.release()
	h, name, pub, err := t.createIdentity()
	if err != nil {
		return nil, fmt.Errorf("firmware: signing with the identity key: %w", err)
	}
	defer func() { _ = t.flush(h) }()
	if !pub.Equal(k.pub) {
		return nil, fmt.Errorf("firmware: signing with the identity key: %w", ErrIdentityChanged)
	}
	rsp, err := tpm2.Sign{
		KeyHandle: tpm2.AuthHandle{Handle: h, Name: name, Auth: tpm2.PasswordAuth(nil)},
		Digest:    tpm2.TPM2BDigest{Buffer: digest},
		InScheme: tpm2.TPMTSigScheme{
			Scheme:  tpm2.TPMAlgECDSA,
			Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: tpm2.TPMAlgSHA256}),
		},
		Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
	}.Execute(t.t)
	if err != nil {
		return nil, fmt.Errorf("firmware: signing with the identity key: %w", err)
	}
	sig, err := rsp.Signature.Signature.ECDSA()
	if err != nil {
		return nil, fmt.Errorf("firmware: signing with the identity key: parsing the signature: %w", err)
	}
	der, err := asn1.Marshal(struct{ R, S *big.Int }{
		new(big.Int).SetBytes(sig.SignatureR.Buffer),
		new(big.Int).SetBytes(sig.SignatureS.Buffer),
	})
	if err != nil {
		return nil, fmt.Errorf("firmware: signing with the identity key: encoding the signature: %w", err)
	}
	return der, nil
}
