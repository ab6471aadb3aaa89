package firmware

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
	"github.com/google/go-tpm/tpm2/transport/linuxudstpm"
)

// DefaultDevice is the kernel's TPM resource manager device. Prefer it to
// /dev/tpm0: the resource manager lets several processes share the TPM and
// flushes what a crashed process left loaded.
const DefaultDevice = "/dev/tpmrm0"

// NumPCRs is the number of PCRs of a PC-client TPM (0 to 23).
const NumPCRs = 24

// BootPCRs is the default PCR selection the store master key is sealed to:
// the measurements of the boot chain up to and including the kernel, its
// initrd and the unified kernel image. See the package documentation for what
// each one holds.
var BootPCRs = []int{0, 2, 4, 7, 9, 11}

var (
	// ErrClosed is returned by every method of a TPM after Close.
	ErrClosed = errors.New("TPM is closed")
	// ErrInvalidPCR is returned for a PCR index outside 0..23 or a PCR value
	// that is not a SHA-256 digest.
	ErrInvalidPCR = errors.New("invalid PCR")
)

// TPM is a connection to a TPM 2.0. Its methods may be called from several
// goroutines; commands are sent one at a time.
type TPM struct {
	t transport.TPM
	// sem holds one token while a goroutine talks to the TPM: a channel
	// rather than a mutex so that waiting for it honours a context.
	sem    chan struct{}
	closed bool
}

// Open opens a TPM character device such as /dev/tpmrm0 (DefaultDevice).
func Open(path string) (*TPM, error) {
	t, err := linuxtpm.Open(path)
	if err != nil {
		return nil, fmt.Errorf("firmware: opening TPM device %s: %w", path, err)
	}
	return New(t), nil
}

// OpenSocket connects to a TPM simulator serving the TPM command channel on
// a unix socket, such as swtpm started with
// "--server type=unixio,path=PATH". The simulator must already be started
// up (swtpm's "--flags not-need-init,startup-clear").
func OpenSocket(path string) (*TPM, error) {
	t, err := linuxudstpm.Open(path)
	if err != nil {
		return nil, fmt.Errorf("firmware: opening TPM socket %s: %w", path, err)
	}
	return New(t), nil
}

// New wraps an already open TPM transport. If t also implements io.Closer,
// Close closes it.
func New(t transport.TPM) *TPM {
	tpm := &TPM{t: t, sem: make(chan struct{}, 1)}
	tpm.sem <- struct{}{}
	return tpm
}

// Close closes the transport if it is closable. Later calls fail with
// ErrClosed. Close waits for a command in progress to finish.
func (t *TPM) Close() error {
	<-t.sem
	defer func() { t.sem <- struct{}{} }()
	if t.closed {
		return nil
	}
	t.closed = true
	if c, ok := t.t.(io.Closer); ok {
		if err := c.Close(); err != nil {
			return fmt.Errorf("firmware: closing TPM: %w", err)
		}
	}
	return nil
}

// acquire waits for exclusive use of the TPM, or for ctx to end. The caller
// must call release when done.
func (t *TPM) acquire(ctx context.Context) error {
	select {
	case <-t.sem:
	case <-ctx.Done():
		return fmt.Errorf("firmware: waiting for the TPM: %w", ctx.Err())
	}
	if t.closed {
		t.release()
		return fmt.Errorf("firmware: %w", ErrClosed)
	}
	return nil
}

func (t *TPM) release() { t.sem <- struct{}{} }

// flush unloads a transient object or session. Its error is deliberately
// dropped by callers that are already returning: a failed flush of an
// object the resource manager will also drop is not worth masking the
// result for.
func (t *TPM) flush(h tpm2.TPMHandle) error {
	_, err := tpm2.FlushContext{FlushHandle: h}.Execute(t.t)
	return err
}

// normalizePCRs checks that every index is a PC-client PCR and returns the
// indexes sorted without duplicates.
func normalizePCRs(sel []int) ([]int, error) {
	if len(sel) == 0 {
		return nil, fmt.Errorf("%w: empty PCR selection", ErrInvalidPCR)
	}
	out := slices.Clone(sel)
	for _, p := range out {
		if p < 0 || p >= NumPCRs {
			return nil, fmt.Errorf("%w: index %d (want 0..%d)", ErrInvalidPCR, p, NumPCRs-1)
		}
	}
	sort.Ints(out)
	return slices.Compact(out), nil
}

// pcrSelection is the TPML_PCR_SELECTION of the SHA-256 bank for sel, which
// must be normalized.
func pcrSelection(sel []int) tpm2.TPMLPCRSelection {
	idx := make([]uint, len(sel))
	for i, p := range sel {
		idx[i] = uint(p)
	}
	return tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{
		Hash:      tpm2.TPMAlgSHA256,
		PCRSelect: tpm2.PCClientCompatible.PCRs(idx...),
	}}}
}

// selected lists the PCR indexes of the SHA-256 bank in a selection.
func selected(s tpm2.TPMLPCRSelection) []int {
	var out []int
	for _, bank := range s.PCRSelections {
		if bank.Hash != tpm2.TPMAlgSHA256 {
			continue
		}
		for i, b := range bank.PCRSelect {
			for bit := range 8 {
				if b&(1<<bit) != 0 {
					out = append(out, i*8+bit)
				}
			}
		}
	}
	return out
}

// ReadPCRs reads the SHA-256 bank values of the selected PCRs.
func (t *TPM) ReadPCRs(sel []int) (map[int][]byte, error) {
	return t.ReadPCRsContext(context.Background(), sel)
}

// ReadPCRsContext is ReadPCRs with a context bounding the wait for the TPM.
func (t *TPM) ReadPCRsContext(ctx context.Context, sel []int) (map[int][]byte, error) {
	if err := t.acquire(ctx); err != nil {
		return nil, err
	}
	defer t.release()
	vals, err := t.readPCRs(sel)
	if err != nil {
		return nil, fmt.Errorf("firmware: %w", err)
	}
	return vals, nil
}

// readPCRs reads the selected PCRs; the caller holds the TPM. A TPM returns
// at most eight digests per PCR_Read, so it asks again for the rest.
func (t *TPM) readPCRs(sel []int) (map[int][]byte, error) {
	want, err := normalizePCRs(sel)
	if err != nil {
		return nil, fmt.Errorf("reading PCRs: %w", err)
	}
	out := make(map[int][]byte, len(want))
	for len(want) > 0 {
		rsp, err := tpm2.PCRRead{PCRSelectionIn: pcrSelection(want)}.Execute(t.t)
		if err != nil {
			return nil, fmt.Errorf("reading PCRs %v: %w", want, err)
		}
		got := selected(rsp.PCRSelectionOut)
		if len(got) == 0 || len(got) != len(rsp.PCRValues.Digests) {
			return nil, fmt.Errorf("reading PCRs %v: the TPM returned %d values for PCRs %v (does it have a SHA-256 bank?)",
				want, len(rsp.PCRValues.Digests), got)
		}
		for i, p := range got {
			d := rsp.PCRValues.Digests[i].Buffer
			if len(d) != sha256.Size {
				return nil, fmt.Errorf("reading PCR %d: %d-byte value in the SHA-256 bank", p, len(d))
			}
			out[p] = slices.Clone(d)
		}
		want = slices.DeleteFunc(want, func(p int) bool { _, ok := out[p]; return ok })
	}
	return out, nil
}

// Extend extends PCR pcr of the SHA-256 bank with the SHA-256 digest of
// data: the PCR becomes SHA-256(old || SHA-256(data)), see ExtendedValue.
func (t *TPM) Extend(pcr int, data []byte) error {
	return t.ExtendContext(context.Background(), pcr, data)
}

// ExtendContext is Extend with a context bounding the wait for the TPM.
func (t *TPM) ExtendContext(ctx context.Context, pcr int, data []byte) error {
	if pcr < 0 || pcr >= NumPCRs {
		return fmt.Errorf("firmware: extending PCR: %w: index %d (want 0..%d)", ErrInvalidPCR, pcr, NumPCRs-1)
	}
	if err := t.acquire(ctx); err != nil {
		return err
	}
	defer t.release()
	digest := sha256.Sum256(data)
	_, err := tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{
			Handle: tpm2.TPMHandle(pcr),
			Auth:   tpm2.PasswordAuth(nil),
		},
		Digests: tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{
			HashAlg: tpm2.TPMAlgSHA256,
			Digest:  digest[:],
		}}},
	}.Execute(t.t)
	if err != nil {
		return fmt.Errorf("firmware: extending PCR %d: %w", pcr, err)
	}
	return nil
}

// ExtendedValue predicts a SHA-256 PCR: the value it has after Extend(pcr,
// data) when it held old, that is SHA-256(old || SHA-256(data)). Chain it to
// predict the PCRs a new boot image will produce, then SealTo them.
func ExtendedValue(old, data []byte) []byte {
	d := sha256.Sum256(data)
	h := sha256.New()
	h.Write(old)
	h.Write(d[:])
	return h.Sum(nil)
}

// pcrDigest is the digest TPM2_PolicyPCR compares: SHA-256 over the values
// of the (normalized) selection concatenated in ascending PCR order.
func pcrDigest(sel []int, values map[int][]byte) ([]byte, error) {
	h := sha256.New()
	for _, p := range sel {
		v, ok := values[p]
		if !ok {
			return nil, fmt.Errorf("%w: no value for PCR %d", ErrInvalidPCR, p)
		}
		if len(v) != sha256.Size {
			return nil, fmt.Errorf("%w: PCR %d value is %d bytes, want %d (SHA-256)", ErrInvalidPCR, p, len(v), sha256.Size)
		}
		h.Write(v)
	}
	return h.Sum(nil), nil
}
