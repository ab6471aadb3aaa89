package firmware

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/google/go-tpm/tpm2"
)

// SealedKeyVersion is the format version of SealedKey that this package
// writes and reads.
const SealedKeyVersion = 1

// MaxSecretSize is the largest secret a TPM seals in one object
// (MAX_SYM_DATA).
const MaxSecretSize = 128

var (
	// ErrPolicyMismatch is returned by Unseal when the PCRs no longer hold
	// the values the key was sealed to: the boot chain changed (or the key
	// was sealed to predicted values that did not come true). The caller
	// should ask for the recovery key.
	ErrPolicyMismatch = errors.New("boot measurements (PCRs) differ from those the key was sealed to")
	// ErrSRKMismatch is returned by Unseal when the TPM's storage root key
	// is not the one the key was sealed under: the TPM was cleared or is
	// another TPM. The sealed key can never be unsealed there; the caller
	// should ask for the recovery key.
	ErrSRKMismatch = errors.New("the TPM's storage root key differs from the one the key was sealed under (TPM cleared or replaced)")
	// ErrInvalidSealedKey is returned for a sealed key that does not parse,
	// is inconsistent, or that the TPM rejects as corrupt.
	ErrInvalidSealedKey = errors.New("invalid sealed key")
)

// SealedKey is a secret sealed by a TPM to PCR values. It holds nothing
// secret by itself: only the TPM that sealed it can decrypt Private, and only
// while the PCRs hold the sealed-to values. It is plain data, serialised as
// JSON by Marshal.
type SealedKey struct {
	// Version is the format version, SealedKeyVersion.
	Version int `json:"version"`
	// PCRs is the selection of the SHA-256 bank, ascending.
	PCRs []int `json:"pcrs"`
	// PCRDigest is SHA-256 over the expected values of PCRs, concatenated
	// in ascending order: the digest TPM2_PolicyPCR compares.
	PCRDigest []byte `json:"pcr_digest"`
	// PCRValues are the expected values themselves. They are not needed to
	// unseal; they let a mismatch error name the PCRs that changed.
	PCRValues map[int][]byte `json:"pcr_values,omitempty"`
	// SRKName is the TPM name of the storage root key the object was
	// created under; Unseal checks it before salting a session to that key.
	SRKName []byte `json:"srk_name"`
	// Public is the sealed object's TPM2B_PUBLIC, in TPM wire format (as
	// tpm2-tools writes a .pub file).
	Public []byte `json:"public"`
	// Private is the sealed object's TPM2B_PRIVATE, in TPM wire format,
	// encrypted by the TPM under the storage root key.
	Private []byte `json:"private"`
}

// Marshal encodes the sealed key as JSON.
func (sk *SealedKey) Marshal() ([]byte, error) {
	if _, _, err := sk.check(); err != nil {
		return nil, fmt.Errorf("firmware: encoding sealed key: %w", err)
	}
	b, err := json.Marshal(sk)
	if err != nil {
		return nil, fmt.Errorf("firmware: encoding sealed key: %w", err)
	}
	return b, nil
}

// UnmarshalSealedKey decodes and checks a sealed key written by Marshal.
// Errors wrap ErrInvalidSealedKey.
func UnmarshalSealedKey(b []byte) (*SealedKey, error) {
	var sk SealedKey
	if err := json.Unmarshal(b, &sk); err != nil {
		return nil, fmt.Errorf("firmware: decoding sealed key: %w: %w", ErrInvalidSealedKey, err)
	}
	if _, _, err := sk.check(); err != nil {
		return nil, fmt.Errorf("firmware: decoding sealed key: %w", err)
	}
	return &sk, nil
}

// check validates the sealed key's consistency without a TPM: the format
// version, the PCR selection, that the blobs parse, and that the object's
// authPolicy is exactly PolicyPCR over the selection and digest (so that the
// object really is bound to those PCRs). It returns the selection and the
// object's public area.
func (sk *SealedKey) check() ([]int, *tpm2.TPMTPublic, error) {
	if sk == nil {
		return nil, nil, fmt.Errorf("%w: nil", ErrInvalidSealedKey)
	}
	if sk.Version != SealedKeyVersion {
		return nil, nil, fmt.Errorf("%w: format version %d, want %d", ErrInvalidSealedKey, sk.Version, SealedKeyVersion)
	}
	sel, err := normalizePCRs(sk.PCRs)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidSealedKey, err)
	}
	if !slices.Equal(sel, sk.PCRs) {
		return nil, nil, fmt.Errorf("%w: PCR selection %v is not ascending without duplicates", ErrInvalidSealedKey, sk.PCRs)
	}
	if len(sk.PCRDigest) != 32 {
		return nil, nil, fmt.Errorf("%w: PCR digest is %d bytes, want 32", ErrInvalidSealedKey, len(sk.PCRDigest))
	}
	if sk.PCRValues != nil {
		d, err := pcrDigest(sel, sk.PCRValues)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrInvalidSealedKey, err)
		}
		if !bytes.Equal(d, sk.PCRDigest) {
			return nil, nil, fmt.Errorf("%w: PCR values do not match the PCR digest", ErrInvalidSealedKey)
		}
		if len(sk.PCRValues) != len(sel) {
			return nil, nil, fmt.Errorf("%w: %d PCR values for %d selected PCRs", ErrInvalidSealedKey, len(sk.PCRValues), len(sel))
		}
	}
	if len(sk.SRKName) == 0 {
		return nil, nil, fmt.Errorf("%w: no storage root key name", ErrInvalidSealedKey)
	}
	pub2b, err := tpm2.Unmarshal[tpm2.TPM2BPublic](sk.Public)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: parsing public area: %w", ErrInvalidSealedKey, err)
	}
	pub, err := pub2b.Contents()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: parsing public area: %w", ErrInvalidSealedKey, err)
	}
	if len(tpm2.Marshal(pub2b)) != len(sk.Public) {
		return nil, nil, fmt.Errorf("%w: trailing bytes after the public area", ErrInvalidSealedKey)
	}
	if pub.Type != tpm2.TPMAlgKeyedHash || pub.NameAlg != tpm2.TPMAlgSHA256 || pub.ObjectAttributes.UserWithAuth {
		return nil, nil, fmt.Errorf("%w: public area is not a policy-only SHA-256 sealed data object", ErrInvalidSealedKey)
	}
	policy, err := pcrPolicy(sel, sk.PCRDigest)
	if err != nil {
		return nil, nil, err
	}
	if !bytes.Equal(policy, pub.AuthPolicy.Buffer) {
		return nil, nil, fmt.Errorf("%w: the object's policy is not PolicyPCR over PCRs %v and the recorded digest", ErrInvalidSealedKey, sel)
	}
	priv, err := tpm2.Unmarshal[tpm2.TPM2BPrivate](sk.Private)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: parsing private area: %w", ErrInvalidSealedKey, err)
	}
	if len(priv.Buffer) == 0 || len(priv.Buffer)+2 != len(sk.Private) {
		return nil, nil, fmt.Errorf("%w: private area is %d bytes with a %d-byte payload", ErrInvalidSealedKey, len(sk.Private), len(priv.Buffer))
	}
	return sel, pub, nil
}

// pcrPolicy computes the policy digest of a session that ran only
// TPM2_PolicyPCR(digest, selection of the SHA-256 bank): what a trial
// session would report, computed without the TPM.
func pcrPolicy(sel []int, digest []byte) ([]byte, error) {
	calc, err := tpm2.NewPolicyCalculator(tpm2.TPMAlgSHA256)
	if err != nil {
		return nil, fmt.Errorf("computing PCR policy: %w", err)
	}
	cmd := tpm2.PolicyPCR{PcrDigest: tpm2.TPM2BDigest{Buffer: digest}, Pcrs: pcrSelection(sel)}
	if err := cmd.Update(calc); err != nil {
		return nil, fmt.Errorf("computing PCR policy: %w", err)
	}
	return calc.Hash().Digest, nil
}

// srk is a storage root key loaded in the TPM.
type srk struct {
	handle tpm2.TPMHandle
	name   tpm2.TPM2BName
	pub    tpm2.TPMTPublic
}

// createSRK creates the storage root key: an ECC P-256 primary of the owner
// hierarchy from the TCG standard template. The TPM derives a primary key
// from the hierarchy seed and the template alone, so this is the same key
// every time until the TPM is cleared, and nothing is persisted in NV. The
// caller holds the TPM and flushes the handle.
func (t *TPM) createSRK() (*srk, error) {
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.TPMRHOwner,
		InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
	}.Execute(t.t)
	if err != nil {
		return nil, fmt.Errorf("creating the storage root key: %w", err)
	}
	pub, err := rsp.OutPublic.Contents()
	if err != nil {
		_ = t.flush(rsp.ObjectHandle)
		return nil, fmt.Errorf("parsing the storage root key: %w", err)
	}
	return &srk{handle: rsp.ObjectHandle, name: rsp.Name, pub: *pub}, nil
}

// Seal seals secret (the store master key, at most MaxSecretSize bytes) to
// the current SHA-256 values of the PCRs in pcrs, for example BootPCRs.
// The secret is sent to the TPM encrypted, in a session salted to the
// storage root key.
func (t *TPM) Seal(ctx context.Context, secret []byte, pcrs []int) (*SealedKey, error) {
	sel, err := normalizePCRs(pcrs)
	if err != nil {
		return nil, fmt.Errorf("firmware: sealing: %w", err)
	}
	if err := t.acquire(ctx); err != nil {
		return nil, err
	}
	defer t.release()
	values, err := t.readPCRs(sel)
	if err != nil {
		return nil, fmt.Errorf("firmware: sealing: %w", err)
	}
	return t.seal(ctx, secret, sel, values)
}

// SealTo seals secret to given (predicted) SHA-256 values of the PCRs in
// pcrs, rather than to their current values: expected must hold a value for
// each of them (other entries are ignored). It is how a key is re-sealed for
// a new boot image before an update switches to it; see ExtendedValue.
func (t *TPM) SealTo(ctx context.Context, secret []byte, pcrs []int, expected map[int][]byte) (*SealedKey, error) {
	sel, err := normalizePCRs(pcrs)
	if err != nil {
		return nil, fmt.Errorf("firmware: sealing: %w", err)
	}
	values := make(map[int][]byte, len(sel))
	for _, p := range sel {
		v, ok := expected[p]
		if !ok {
			return nil, fmt.Errorf("firmware: sealing: %w: no expected value for PCR %d", ErrInvalidPCR, p)
		}
		values[p] = slices.Clone(v)
	}
	if err := t.acquire(ctx); err != nil {
		return nil, err
	}
	defer t.release()
	return t.seal(ctx, secret, sel, values)
}

// seal creates the sealed object; the caller holds the TPM.
func (t *TPM) seal(ctx context.Context, secret []byte, sel []int, values map[int][]byte) (*SealedKey, error) {
	if len(secret) == 0 || len(secret) > MaxSecretSize {
		return nil, fmt.Errorf("firmware: sealing: secret is %d bytes, want 1 to %d", len(secret), MaxSecretSize)
	}
	digest, err := pcrDigest(sel, values)
	if err != nil {
		return nil, fmt.Errorf("firmware: sealing: %w", err)
	}
	policy, err := pcrPolicy(sel, digest)
	if err != nil {
		return nil, fmt.Errorf("firmware: sealing: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("firmware: sealing: %w", err)
	}
	s, err := t.createSRK()
	if err != nil {
		return nil, fmt.Errorf("firmware: sealing: %w", err)
	}
	defer func() { _ = t.flush(s.handle) }()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("firmware: sealing: %w", err)
	}
	rsp, err := tpm2.Create{
		ParentHandle: tpm2.AuthHandle{
			Handle: s.handle,
			Name:   s.name,
			// A session salted to the SRK, encrypting the first command
			// parameter: the sensitive area carrying the secret.
			Auth: tpm2.HMAC(tpm2.TPMAlgSHA256, 16,
				tpm2.Salted(s.handle, s.pub),
				tpm2.AESEncryption(128, tpm2.EncryptIn)),
		},
		InSensitive: tpm2.TPM2BSensitiveCreate{
			Sensitive: &tpm2.TPMSSensitiveCreate{
				Data: tpm2.NewTPMUSensitiveCreate(&tpm2.TPM2BSensitiveData{Buffer: secret}),
			},
		},
		InPublic: tpm2.New2B(tpm2.TPMTPublic{
			Type:    tpm2.TPMAlgKeyedHash,
			NameAlg: tpm2.TPMAlgSHA256,
			ObjectAttributes: tpm2.TPMAObject{
				FixedTPM:    true,
				FixedParent: true,
				// Only the PCR policy authorizes use: there is no
				// password, and administrative actions need the
				// policy too.
				UserWithAuth:    false,
				AdminWithPolicy: true,
				NoDA:            true,
			},
			AuthPolicy: tpm2.TPM2BDigest{Buffer: policy},
			Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgKeyedHash,
				&tpm2.TPMSKeyedHashParms{Scheme: tpm2.TPMTKeyedHashScheme{Scheme: tpm2.TPMAlgNull}}),
		}),
	}.Execute(t.t)
	if err != nil {
		return nil, fmt.Errorf("firmware: sealing: creating the sealed object: %w", err)
	}
	sk := &SealedKey{
		Version:   SealedKeyVersion,
		PCRs:      sel,
		PCRDigest: digest,
		PCRValues: values,
		SRKName:   slices.Clone(s.name.Buffer),
		Public:    tpm2.Marshal(rsp.OutPublic),
		Private:   tpm2.Marshal(rsp.OutPrivate),
	}
	if _, _, err := sk.check(); err != nil {
		return nil, fmt.Errorf("firmware: sealing: the TPM returned an unexpected object: %w", err)
	}
	return sk, nil
}

// Unseal recovers the secret of a sealed key. It fails with an error that
// wraps ErrPolicyMismatch when the PCRs no longer hold the sealed-to
// values, ErrSRKMismatch when the TPM is not the one (or no longer in the
// ownership) that sealed it, and ErrInvalidSealedKey when the key is
// corrupt. The secret comes back encrypted, in a policy session salted to the
// storage root key.
func (t *TPM) Unseal(ctx context.Context, sk *SealedKey) ([]byte, error) {
	sel, _, err := sk.check()
	if err != nil {
		return nil, fmt.Errorf("firmware: unsealing: %w", err)
	}
	if err := t.acquire(ctx); err != nil {
		return nil, err
	}
	defer t.release()
	s, err := t.createSRK()
	if err != nil {
		return nil, fmt.Errorf("firmware: unsealing: %w", err)
	}
	defer func() { _ = t.flush(s.handle) }()
	if !bytes.Equal(s.name.Buffer, sk.SRKName) {
		return nil, fmt.Errorf("firmware: unsealing: %w", ErrSRKMismatch)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("firmware: unsealing: %w", err)
	}
	priv, err := tpm2.Unmarshal[tpm2.TPM2BPrivate](sk.Private)
	if err != nil {
		return nil, fmt.Errorf("firmware: unsealing: %w: parsing private area: %w", ErrInvalidSealedKey, err)
	}
	pub, err := tpm2.Unmarshal[tpm2.TPM2BPublic](sk.Public)
	if err != nil {
		return nil, fmt.Errorf("firmware: unsealing: %w: parsing public area: %w", ErrInvalidSealedKey, err)
	}
	obj, err := tpm2.Load{
		ParentHandle: tpm2.AuthHandle{Handle: s.handle, Name: s.name, Auth: tpm2.PasswordAuth(nil)},
		InPrivate:    *priv,
		InPublic:     *pub,
	}.Execute(t.t)
	if err != nil {
		if isAny(err, tpm2.TPMRCIntegrity, tpm2.TPMRCSize, tpm2.TPMRCValue, tpm2.TPMRCKey, tpm2.TPMRCSymmetric, tpm2.TPMRCHash, tpm2.TPMRCInsufficient) {
			return nil, fmt.Errorf("firmware: unsealing: %w: the TPM rejects the sealed object as corrupt or not its own: %w", ErrInvalidSealedKey, err)
		}
		return nil, fmt.Errorf("firmware: unsealing: loading the sealed object: %w", err)
	}
	defer func() { _ = t.flush(obj.ObjectHandle) }()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("firmware: unsealing: %w", err)
	}

	sess, closeSess, err := tpm2.PolicySession(t.t, tpm2.TPMAlgSHA256, 16,
		tpm2.Salted(s.handle, s.pub),
		tpm2.AESEncryption(128, tpm2.EncryptOut))
	if err != nil {
		return nil, fmt.Errorf("firmware: unsealing: starting a policy session: %w", err)
	}
	defer func() { _ = closeSess() }()
	// With the expected digest given, the TPM compares it with the current
	// PCRs right here and answers TPM_RC_VALUE on a difference.
	_, err = tpm2.PolicyPCR{
		PolicySession: sess.Handle(),
		PcrDigest:     tpm2.TPM2BDigest{Buffer: sk.PCRDigest},
		Pcrs:          pcrSelection(sel),
	}.Execute(t.t)
	if err != nil {
		if errors.Is(err, tpm2.TPMRCValue) {
			return nil, t.mismatch(sk, sel, err)
		}
		return nil, fmt.Errorf("firmware: unsealing: PolicyPCR: %w", err)
	}
	rsp, err := tpm2.Unseal{
		ItemHandle: tpm2.AuthHandle{Handle: obj.ObjectHandle, Name: obj.Name, Auth: sess},
	}.Execute(t.t)
	if err != nil {
		// The PCRs can change between PolicyPCR and Unseal (the TPM then
		// fails the session), or the policy may not be what was recorded.
		if isAny(err, tpm2.TPMRCPolicyFail, tpm2.TPMRCPCRChanged) {
			return nil, t.mismatch(sk, sel, err)
		}
		return nil, fmt.Errorf("firmware: unsealing: %w", err)
	}
	return slices.Clone(rsp.OutData.Buffer), nil
}

// mismatch builds the ErrPolicyMismatch error for a failed policy, naming
// the PCRs that changed when the sealed key records the expected values.
// The caller holds the TPM.
func (t *TPM) mismatch(sk *SealedKey, sel []int, cause error) error {
	if sk.PCRValues != nil {
		if cur, err := t.readPCRs(sel); err == nil {
			var changed []int
			for _, p := range sel {
				if !bytes.Equal(cur[p], sk.PCRValues[p]) {
					changed = append(changed, p)
				}
			}
			if len(changed) > 0 {
				return fmt.Errorf("firmware: unsealing: %w: PCRs %v changed (%w)", ErrPolicyMismatch, changed, cause)
			}
		}
	}
	return fmt.Errorf("firmware: unsealing: %w: PCRs %v (%w)", ErrPolicyMismatch, sel, cause)
}

// isAny reports whether err is a TPM response with one of the codes.
func isAny(err error, codes ...tpm2.TPMRC) bool {
	for _, c := range codes {
		if errors.Is(err, c) {
			return true
		}
	}
	return false
}
