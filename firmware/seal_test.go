package firmware

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// Debug PCRs, resettable and free for tests: boot firmware never touches
// them.
const (
	pcrDebug  = 16
	pcrDebug2 = 23
)

func masterKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func mustSeal(t *testing.T, tpm *TPM, secret []byte, pcrs []int) *SealedKey {
	t.Helper()
	sk, err := tpm.Seal(context.Background(), secret, pcrs)
	if err != nil {
		t.Fatalf("Seal(%v): %v", pcrs, err)
	}
	return sk
}

func mustUnseal(t *testing.T, tpm *TPM, sk *SealedKey, want []byte) {
	t.Helper()
	got, err := tpm.Unseal(context.Background(), sk)
	if err != nil {
		t.Fatalf("Unseal: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Unseal = %x, want %x", got, want)
	}
}

func mustExtend(t *testing.T, tpm *TPM, pcr int, data string) {
	t.Helper()
	if err := tpm.Extend(pcr, []byte(data)); err != nil {
		t.Fatalf("Extend(%d): %v", pcr, err)
	}
}

func TestReadPCRsAndExtend(t *testing.T) {
	t.Parallel()
	tpm := startSWTPM(t).open()

	all := make([]int, NumPCRs)
	for i := range all {
		all[i] = i
	}
	// More than the eight PCRs a TPM returns per PCR_Read.
	vals, err := tpm.ReadPCRs(all)
	if err != nil {
		t.Fatalf("ReadPCRs: %v", err)
	}
	if len(vals) != NumPCRs {
		t.Fatalf("ReadPCRs returned %d PCRs, want %d", len(vals), NumPCRs)
	}
	for p, v := range vals {
		if len(v) != sha256.Size {
			t.Errorf("PCR %d is %d bytes", p, len(v))
		}
	}
	// After startup-clear the debug PCR is all zero.
	if !bytes.Equal(vals[pcrDebug], make([]byte, 32)) {
		t.Errorf("PCR %d = %x after startup, want zeros", pcrDebug, vals[pcrDebug])
	}

	want := ExtendedValue(vals[pcrDebug], []byte("kernel"))
	mustExtend(t, tpm, pcrDebug, "kernel")
	want = ExtendedValue(want, []byte("initrd"))
	mustExtend(t, tpm, pcrDebug, "initrd")
	got, err := tpm.ReadPCRs([]int{pcrDebug, pcrDebug2})
	if err != nil {
		t.Fatalf("ReadPCRs: %v", err)
	}
	if !bytes.Equal(got[pcrDebug], want) {
		t.Errorf("PCR %d = %x, want predicted %x", pcrDebug, got[pcrDebug], want)
	}
	if !bytes.Equal(got[pcrDebug2], vals[pcrDebug2]) {
		t.Errorf("PCR %d changed without an extend", pcrDebug2)
	}

	for _, sel := range [][]int{nil, {}, {-1}, {24}, {0, 99}} {
		if _, err := tpm.ReadPCRs(sel); !errors.Is(err, ErrInvalidPCR) {
			t.Errorf("ReadPCRs(%v) = %v, want ErrInvalidPCR", sel, err)
		}
	}
	for _, p := range []int{-1, 24} {
		if err := tpm.Extend(p, nil); !errors.Is(err, ErrInvalidPCR) {
			t.Errorf("Extend(%d) = %v, want ErrInvalidPCR", p, err)
		}
	}
}

func TestExtendedValue(t *testing.T) {
	t.Parallel()
	old := bytes.Repeat([]byte{7}, 32)
	d := sha256.Sum256([]byte("x"))
	want := sha256.Sum256(append(append([]byte{}, old...), d[:]...))
	if got := ExtendedValue(old, []byte("x")); !bytes.Equal(got, want[:]) {
		t.Fatalf("ExtendedValue = %x, want %x", got, want)
	}
}

func TestSealUnsealRoundtrip(t *testing.T) {
	t.Parallel()
	tpm := startSWTPM(t).open()
	mustExtend(t, tpm, pcrDebug, "boot")
	for _, tc := range []struct {
		name   string
		pcrs   []int
		secret int
	}{
		{"boot PCRs", BootPCRs, 32},
		{"debug PCR", []int{pcrDebug}, 32},
		{"unsorted with duplicates", []int{23, 16, 0, 16}, 32},
		{"all PCRs", []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23}, 32},
		{"largest secret", []int{pcrDebug}, MaxSecretSize},
		{"one byte", []int{pcrDebug}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			secret := make([]byte, tc.secret)
			_, _ = rand.Read(secret)
			sk := mustSeal(t, tpm, secret, tc.pcrs)
			mustUnseal(t, tpm, sk, secret)
			// Unsealing twice works: nothing is consumed.
			mustUnseal(t, tpm, sk, secret)
		})
	}
}

func TestUnsealAfterExtend(t *testing.T) {
	t.Parallel()
	tpm := startSWTPM(t).open()
	for _, tc := range []struct {
		name     string
		sealedTo []int
		extend   int
		mismatch bool
	}{
		{"sealed-to PCR extended", []int{0, pcrDebug}, pcrDebug, true},
		{"other PCR extended", []int{0, pcrDebug}, pcrDebug2, false},
		{"only PCR extended", []int{pcrDebug2}, pcrDebug2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			secret := masterKey(t)
			sk := mustSeal(t, tpm, secret, tc.sealedTo)
			mustExtend(t, tpm, tc.extend, "a modified boot loader")
			got, err := tpm.Unseal(context.Background(), sk)
			if !tc.mismatch {
				if err != nil || !bytes.Equal(got, secret) {
					t.Fatalf("Unseal = %x, %v; want the secret", got, err)
				}
				return
			}
			if !errors.Is(err, ErrPolicyMismatch) {
				t.Fatalf("Unseal after extending PCR %d = %v, want ErrPolicyMismatch", tc.extend, err)
			}
			if got != nil {
				t.Errorf("Unseal returned %x with an error", got)
			}
			if want := "PCRs [" + itoa(tc.extend) + "] changed"; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name the changed PCR (%q)", err, want)
			}
		})
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

func TestSealToPredicted(t *testing.T) {
	t.Parallel()
	tpm := startSWTPM(t).open()
	ctx := context.Background()
	mustExtend(t, tpm, pcrDebug, "image A")
	cur, err := tpm.ReadPCRs([]int{0, pcrDebug})
	if err != nil {
		t.Fatal(err)
	}
	// The update predicts what image B will measure, and re-seals to it
	// before switching.
	predicted := map[int][]byte{0: cur[0], pcrDebug: ExtendedValue(cur[pcrDebug], []byte("image B")), 5: make([]byte, 32)}
	secret := masterKey(t)
	sk, err := tpm.SealTo(ctx, secret, []int{0, pcrDebug}, predicted)
	if err != nil {
		t.Fatalf("SealTo: %v", err)
	}
	if len(sk.PCRValues) != 2 {
		t.Errorf("sealed key records %d PCR values, want the 2 selected", len(sk.PCRValues))
	}
	if _, err := tpm.Unseal(ctx, sk); !errors.Is(err, ErrPolicyMismatch) {
		t.Fatalf("Unseal before image B is measured = %v, want ErrPolicyMismatch", err)
	}
	mustExtend(t, tpm, pcrDebug, "image B")
	mustUnseal(t, tpm, sk, secret)
}

func TestSealInvalid(t *testing.T) {
	t.Parallel()
	tpm := startSWTPM(t).open()
	ctx := context.Background()
	zero := make([]byte, 32)
	for _, tc := range []struct {
		name     string
		secret   []byte
		pcrs     []int
		expected map[int][]byte // nil: Seal, else SealTo
		want     error
	}{
		{"empty secret", nil, []int{pcrDebug}, nil, nil},
		{"secret too long", make([]byte, MaxSecretSize+1), []int{pcrDebug}, nil, nil},
		{"no PCRs", zero, nil, nil, ErrInvalidPCR},
		{"PCR out of range", zero, []int{24}, nil, ErrInvalidPCR},
		{"missing expected value", zero, []int{1, 2}, map[int][]byte{1: zero}, ErrInvalidPCR},
		{"expected value not SHA-256", zero, []int{1}, map[int][]byte{1: zero[:20]}, ErrInvalidPCR},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.expected == nil {
				_, err = tpm.Seal(ctx, tc.secret, tc.pcrs)
			} else {
				_, err = tpm.SealTo(ctx, tc.secret, tc.pcrs, tc.expected)
			}
			if err == nil {
				t.Fatal("sealing succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSealedKeySurvivesReboot(t *testing.T) {
	t.Parallel()
	sw := startSWTPM(t)
	tpm := sw.open()
	// The "boot chain" measures the same thing on every boot.
	mustExtend(t, tpm, pcrDebug, "boot loader v1")
	secret := masterKey(t)
	blob, err := mustSeal(t, tpm, secret, []int{0, 7, pcrDebug}).Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	if err := tpm.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	sw.restart()
	tpm = sw.open()
	sk, err := UnmarshalSealedKey(blob)
	if err != nil {
		t.Fatalf("UnmarshalSealedKey: %v", err)
	}
	// The reboot reset the PCR: before the boot chain measured itself
	// again, the key stays sealed.
	if _, err := tpm.Unseal(context.Background(), sk); !errors.Is(err, ErrPolicyMismatch) {
		t.Fatalf("Unseal before measuring = %v, want ErrPolicyMismatch", err)
	}
	mustExtend(t, tpm, pcrDebug, "boot loader v1")
	mustUnseal(t, tpm, sk, secret)
}

func TestSealedKeyMarshalRoundtrip(t *testing.T) {
	t.Parallel()
	tpm := startSWTPM(t).open()
	secret := masterKey(t)
	sk := mustSeal(t, tpm, secret, BootPCRs)
	b, err := sk.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	var generic map[string]any
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatalf("Marshal is not JSON: %v", err)
	}
	for _, k := range []string{"version", "pcrs", "pcr_digest", "srk_name", "public", "private"} {
		if _, ok := generic[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}
	back, err := UnmarshalSealedKey(b)
	if err != nil {
		t.Fatalf("UnmarshalSealedKey: %v", err)
	}
	if !reflect.DeepEqual(sk, back) {
		t.Fatalf("roundtrip changed the key:\n%+v\n%+v", sk, back)
	}
	mustUnseal(t, tpm, back, secret)
}

func TestCorruptSealedKey(t *testing.T) {
	t.Parallel()
	tpm := startSWTPM(t).open()
	ctx := context.Background()
	good := mustSeal(t, tpm, masterKey(t), []int{pcrDebug, pcrDebug2})
	goodJSON, err := good.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	clone := func() *SealedKey {
		sk, err := UnmarshalSealedKey(goodJSON)
		if err != nil {
			t.Fatal(err)
		}
		return sk
	}

	// Blobs that do not decode or are inconsistent.
	for _, tc := range []struct {
		name string
		blob func() []byte
	}{
		{"empty", func() []byte { return nil }},
		{"not JSON", func() []byte { return []byte("\x00\x01garbage") }},
		{"truncated JSON", func() []byte { return goodJSON[:len(goodJSON)/2] }},
		{"other version", func() []byte {
			return bytes.Replace(goodJSON, []byte(`"version":1`), []byte(`"version":2`), 1)
		}},
		{"PCR selection changed", func() []byte {
			sk := clone()
			sk.PCRs = []int{pcrDebug}
			delete(sk.PCRValues, pcrDebug2)
			b, _ := json.Marshal(sk)
			return b
		}},
		{"PCR digest changed", func() []byte {
			sk := clone()
			sk.PCRDigest[0] ^= 1
			sk.PCRValues = nil
			b, _ := json.Marshal(sk)
			return b
		}},
		{"PCR value changed", func() []byte {
			sk := clone()
			sk.PCRValues[pcrDebug][0] ^= 1
			b, _ := json.Marshal(sk)
			return b
		}},
		{"policy in public area changed", func() []byte {
			sk := clone()
			i := bytes.Index(sk.Public, mustPolicy(t, sk))
			sk.Public[i] ^= 1
			b, _ := json.Marshal(sk)
			return b
		}},
		{"public truncated", func() []byte {
			sk := clone()
			sk.Public = sk.Public[:len(sk.Public)-3]
			b, _ := json.Marshal(sk)
			return b
		}},
		{"private truncated", func() []byte {
			sk := clone()
			sk.Private = sk.Private[:len(sk.Private)-1]
			b, _ := json.Marshal(sk)
			return b
		}},
		{"no SRK name", func() []byte {
			sk := clone()
			sk.SRKName = nil
			b, _ := json.Marshal(sk)
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := UnmarshalSealedKey(tc.blob())
			if !errors.Is(err, ErrInvalidSealedKey) {
				t.Fatalf("UnmarshalSealedKey = %v, want ErrInvalidSealedKey", err)
			}
			t.Log(err)
		})
	}

	// Blobs that decode but that the TPM refuses to load: the encrypted
	// private area fails the TPM's integrity check.
	for _, off := range []int{2, 10, 40} {
		sk := clone()
		sk.Private[off] ^= 0x80
		b, err := sk.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a bit-flipped key: %v", err)
		}
		sk, err = UnmarshalSealedKey(b)
		if err != nil {
			t.Fatalf("UnmarshalSealedKey of a bit-flipped private area: %v", err)
		}
		_, err = tpm.Unseal(ctx, sk)
		if !errors.Is(err, ErrInvalidSealedKey) {
			t.Fatalf("Unseal with private byte %d flipped = %v, want ErrInvalidSealedKey", off, err)
		}
		t.Log(err)
	}
	if _, err := tpm.Unseal(ctx, nil); !errors.Is(err, ErrInvalidSealedKey) {
		t.Errorf("Unseal(nil) = %v, want ErrInvalidSealedKey", err)
	}
	// The good key is still fine.
	if _, err := tpm.Unseal(ctx, good); err != nil {
		t.Fatalf("Unseal of the good key: %v", err)
	}
}

func mustPolicy(t *testing.T, sk *SealedKey) []byte {
	t.Helper()
	p, err := pcrPolicy(sk.PCRs, sk.PCRDigest)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUnsealOnAnotherTPM(t *testing.T) {
	t.Parallel()
	a, b := startSWTPM(t).open(), startSWTPM(t).open()
	sk := mustSeal(t, a, masterKey(t), []int{pcrDebug})
	if _, err := b.Unseal(context.Background(), sk); !errors.Is(err, ErrSRKMismatch) {
		t.Fatalf("Unseal on another TPM = %v, want ErrSRKMismatch", err)
	}
	// Even with the SRK check out of the way, the other TPM cannot load it.
	other := mustSeal(t, b, masterKey(t), []int{pcrDebug})
	sk.SRKName = other.SRKName
	if _, err := b.Unseal(context.Background(), sk); !errors.Is(err, ErrInvalidSealedKey) {
		t.Fatalf("Unseal of a foreign object = %v, want ErrInvalidSealedKey", err)
	}
}

func TestContextAndClose(t *testing.T) {
	t.Parallel()
	tpm := startSWTPM(t).open()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tpm.Seal(ctx, masterKey(t), []int{pcrDebug}); !errors.Is(err, context.Canceled) {
		t.Errorf("Seal with a canceled context = %v, want context.Canceled", err)
	}
	sk := mustSeal(t, tpm, masterKey(t), []int{pcrDebug})
	if _, err := tpm.Unseal(ctx, sk); !errors.Is(err, context.Canceled) {
		t.Errorf("Unseal with a canceled context = %v, want context.Canceled", err)
	}
	if err := tpm.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := tpm.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := tpm.ReadPCRs([]int{0}); !errors.Is(err, ErrClosed) {
		t.Errorf("ReadPCRs after Close = %v, want ErrClosed", err)
	}
	if _, err := tpm.Unseal(context.Background(), sk); !errors.Is(err, ErrClosed) {
		t.Errorf("Unseal after Close = %v, want ErrClosed", err)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := Open(dir + "/missing"); err == nil {
		t.Error("Open of a missing device succeeded")
	}
	if _, err := Open(dir); err == nil {
		t.Error("Open of a directory succeeded")
	}
	if _, err := OpenSocket(dir); err == nil {
		t.Error("OpenSocket of a directory succeeded")
	}
}

// recorder is a transport that keeps every command and response.
type recorder struct {
	inner interface{ Send([]byte) ([]byte, error) }
	wire  [][]byte
}

func (r *recorder) Send(cmd []byte) ([]byte, error) {
	r.wire = append(r.wire, bytes.Clone(cmd))
	rsp, err := r.inner.Send(cmd)
	r.wire = append(r.wire, bytes.Clone(rsp))
	return rsp, err
}

func TestSecretNeverInClear(t *testing.T) {
	t.Parallel()
	sw := startSWTPM(t)
	inner := sw.open()
	rec := &recorder{inner: inner.t}
	tpm := New(rec)
	secret := masterKey(t)
	sk := mustSeal(t, tpm, secret, []int{pcrDebug})
	mustUnseal(t, tpm, sk, secret)
	if len(rec.wire) < 8 {
		t.Fatalf("recorded only %d messages", len(rec.wire))
	}
	for i, msg := range rec.wire {
		if bytes.Contains(msg, secret) {
			t.Fatalf("message %d between host and TPM carries the secret in the clear: %x", i, msg)
		}
	}
}
