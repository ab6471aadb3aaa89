package export

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"coffer.dev/coffer/store"
)

// memSource is an in-memory disk with explicit data extents.
type memSource struct {
	data []byte
	exts []store.Extent
}

func (m *memSource) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m.data)) {
		return 0, io.EOF
	}
	n := copy(p, m.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memSource) Size() int64 { return int64(len(m.data)) }

func (m *memSource) DataExtents(ctx context.Context) ([]store.Extent, error) {
	return m.exts, ctx.Err()
}

// fill writes random-ish (compressible) data at [off, off+n) and records
// the extent.
func (m *memSource) fill(r *rand.Rand, off, n int64) {
	for i := off; i < off+n; i++ {
		m.data[i] = byte(r.IntN(16)) + 1
	}
	m.exts = append(m.exts, store.Extent{Offset: off, Length: n})
}

// testSource builds a disk of size bytes with data runs, holes, a data
// extent that reads as zeros, and data up to the (unaligned) end.
func testSource(size int64, seed uint64) *memSource {
	r := rand.New(rand.NewPCG(seed, seed))
	m := &memSource{data: make([]byte, size)}
	const mib = 1 << 20
	m.fill(r, 0, 4096)                                                        // boot sector area
	m.fill(r, 100_000, 300_000)                                               // unaligned run across clusters
	m.exts = append(m.exts, store.Extent{Offset: 1 * mib, Length: 512 << 10}) // zero "data"
	if size > 40*mib {
		m.fill(r, 33*mib-7, 2*mib+13) // across a VHDX/L2 boundary region
		m.fill(r, 36*mib+65536*3, 1)
	}
	m.fill(r, size-3000, 3000) // unaligned tail
	return m
}

// noSeek hides every method but Write.
type noSeek struct{ w io.Writer }

func (n noSeek) Write(p []byte) (int, error) { return n.w.Write(p) }

func qemuImg(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("qemu-img")
	if err != nil {
		t.Fatalf("qemu-img not found (%v): install the Debian package qemu-utils (apt-get install -y qemu-utils); the export tests need it to validate the images", err)
	}
	return p
}

func runCmd(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestFormatsWithQemuImg(t *testing.T) {
	qi := qemuImg(t)
	sizes := []int64{
		5<<20 + 3*512,   // not a multiple of cluster, grain or block
		64<<20 - 4096,   // larger, crosses 32 MiB
		3<<20 + 1000,    // not even a whole sector
		(2 << 20) + 512, // tiny tail
		100<<20 + 1536,  // a VMDK grain table without grains (64-96 MiB)
	}
	for i, size := range sizes {
		src := testSource(size, uint64(i+1))
		dir := t.TempDir()
		rawPath := filepath.Join(dir, "ref.raw")
		if err := os.WriteFile(rawPath, src.data, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, f := range Formats {
			t.Run(fmt.Sprintf("%d/%s", size, f), func(t *testing.T) {
				out := filepath.Join(dir, "out"+f.Ext())
				file, err := os.Create(out)
				if err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				n, err := Write(context.Background(), noSeek{file}, src, f)
				if cerr := file.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					t.Fatalf("Write: %v", err)
				}
				elapsed := time.Since(start)
				st, err := os.Stat(out)
				if err != nil {
					t.Fatal(err)
				}
				if st.Size() != n {
					t.Fatalf("Write returned %d, file has %d bytes", n, st.Size())
				}
				want, ok, err := Size(context.Background(), src, f)
				if err != nil {
					t.Fatalf("Size: %v", err)
				}
				if f == VMDK {
					if ok {
						t.Fatalf("Size says it knows the vmdk length")
					}
				} else if !ok || want != n {
					t.Fatalf("Size = %d, %v; wrote %d", want, ok, n)
				}
				if f != Raw {
					// The disk is mostly holes: the image must be much
					// smaller, past VHDX's fixed 4 MiB of headers, log,
					// metadata and BAT.
					var fixed int64
					if f == VHDX {
						fixed = 4 << 20
					}
					limit := roundUp(size, vhdxBlockSize) // small disks: 1 MiB VHDX blocks cover most of them
					if size >= 32<<20 {
						limit = size / 4
					}
					if n-fixed > limit {
						t.Fatalf("%s image of a sparse %d-byte disk is %d bytes", f, size, n)
					}
					runCmd(t, qi, "check", "-f", string(f), out)
				}
				runCmd(t, qi, "compare", "-f", string(f), "-F", "raw", out, rawPath)
				t.Logf("%s: %d-byte disk -> %d bytes in %v", f, size, n, elapsed)
			})
		}
	}
}

func TestQemuImgInfo(t *testing.T) {
	qi := qemuImg(t)
	src := testSource(8<<20, 9)
	dir := t.TempDir()
	for _, f := range []Format{VMDK, VHDX, QCOW2} {
		out := filepath.Join(dir, "out"+f.Ext())
		file, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Write(context.Background(), noSeek{file}, src, f); err != nil {
			t.Fatal(err)
		}
		file.Close()
		info := runCmd(t, qi, "info", "-f", string(f), out)
		if !strings.Contains(info, "virtual size: 8 MiB") {
			t.Errorf("%s info:\n%s", f, info)
		}
		if f == VMDK && !strings.Contains(info, "streamOptimized") {
			t.Errorf("vmdk is not stream-optimized:\n%s", info)
		}
	}
}

func TestAllZeroDisk(t *testing.T) {
	qi := qemuImg(t)
	// Data extents that hold only zeros: nothing may be allocated.
	src := &memSource{data: make([]byte, 16<<20), exts: []store.Extent{{Offset: 0, Length: 16 << 20}}}
	dir := t.TempDir()
	rawPath := filepath.Join(dir, "ref.raw")
	if err := os.WriteFile(rawPath, src.data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []Format{VMDK, VHDX, QCOW2} {
		var buf bytes.Buffer
		n, err := Write(context.Background(), &buf, src, f)
		if err != nil {
			t.Fatal(err)
		}
		if n > 5<<20 {
			t.Errorf("%s: all-zero 16 MiB disk gave %d bytes", f, n)
		}
		out := filepath.Join(dir, "z"+f.Ext())
		if err := os.WriteFile(out, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		runCmd(t, qi, "check", "-f", string(f), out)
		runCmd(t, qi, "compare", "-f", string(f), "-F", "raw", out, rawPath)
	}
}

func TestParseFormat(t *testing.T) {
	for _, f := range Formats {
		got, err := ParseFormat(strings.ToUpper(string(f)))
		if err != nil || got != f {
			t.Errorf("ParseFormat(%q) = %q, %v", f, got, err)
		}
		if f.Ext() == "" || f.ContentType() == "" {
			t.Errorf("%s: empty Ext or ContentType", f)
		}
	}
	_, err := ParseFormat("vdi")
	if err == nil || !strings.Contains(err.Error(), `unknown export format "vdi"`) {
		t.Fatalf("ParseFormat(vdi) error = %v", err)
	}
	if _, err := Write(context.Background(), io.Discard, testSource(1<<20, 1), Format("vdi")); err == nil {
		t.Fatal("Write accepted format vdi")
	}
	if _, _, err := Size(context.Background(), testSource(1<<20, 1), Format("vdi")); err == nil {
		t.Fatal("Size accepted format vdi")
	}
}

func TestRawReadSeeker(t *testing.T) {
	src := testSource(3<<20+1000, 4)
	rs := RawReadSeeker(src)
	if _, err := rs.Seek(100_000, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 5000)
	if _, err := io.ReadFull(rs, b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, src.data[100_000:105_000]) {
		t.Fatal("raw read seeker returned wrong bytes")
	}
	end, err := rs.Seek(0, io.SeekEnd)
	if err != nil || end != src.Size() {
		t.Fatalf("Seek end = %d, %v", end, err)
	}
}

// cancelWriter cancels ctx once it has taken after bytes.
type cancelWriter struct {
	n, after int64
	cancel   func()
}

func (c *cancelWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	if c.n >= c.after {
		c.cancel()
	}
	return len(p), nil
}

func TestCancelMidWrite(t *testing.T) {
	src := testSource(64<<20-4096, 7)
	for _, f := range Formats {
		ctx, cancel := context.WithCancel(context.Background())
		w := &cancelWriter{after: 1 << 20, cancel: cancel}
		n, err := Write(ctx, w, src, f)
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: Write after cancel = %d, %v; want context.Canceled", f, n, err)
		}
		if full, _ := Write(context.Background(), io.Discard, src, f); n >= full {
			t.Errorf("%s: cancelled write wrote everything (%d bytes)", f, n)
		}
	}
}

// failSource fails reads past failAt.
type failSource struct {
	*memSource
	failAt int64
}

var errDisk = errors.New("chunk missing")

func (s failSource) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > s.failAt {
		return 0, errDisk
	}
	return s.memSource.ReadAt(p, off)
}

func TestReadErrorMidWrite(t *testing.T) {
	src := failSource{testSource(64<<20-4096, 8), 34 << 20}
	for _, f := range Formats {
		n, err := Write(context.Background(), io.Discard, src, f)
		if !errors.Is(err, errDisk) {
			t.Errorf("%s: Write = %d, %v; want the read error", f, n, err)
		}
	}
	if _, _, err := Size(context.Background(), src, QCOW2); !errors.Is(err, errDisk) {
		t.Errorf("Size: %v, want the read error", err)
	}
}

// errWriter fails every write.
type errWriter struct{}

var errPipe = errors.New("broken pipe")

func (errWriter) Write([]byte) (int, error) { return 0, errPipe }

func TestWriterError(t *testing.T) {
	src := testSource(5<<20, 2)
	for _, f := range Formats {
		if _, err := Write(context.Background(), errWriter{}, src, f); !errors.Is(err, errPipe) {
			t.Errorf("%s: Write = %v, want the writer's error", f, err)
		}
	}
}

// sparseSource is a large disk holding a few data segments.
type sparseSource struct {
	size int64
	segs []store.Extent
	seed byte
}

func (s *sparseSource) byteAt(off int64) byte { return byte(off*7+off>>9) | 1 ^ s.seed }

func (s *sparseSource) ReadAt(p []byte, off int64) (int, error) {
	if off >= s.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), s.size-off))
	clear(p[:n])
	for _, e := range s.segs {
		for i := max(e.Offset, off); i < min(e.End(), off+int64(n)); i++ {
			p[i-off] = s.byteAt(i)
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (s *sparseSource) Size() int64 { return s.size }

func (s *sparseSource) DataExtents(ctx context.Context) ([]store.Extent, error) {
	return s.segs, ctx.Err()
}

// TestLargeSparseDisk covers what small disks do not reach: several qcow2
// L2 tables (512 MiB each), a VHDX sector bitmap entry in the BAT (one
// after every 4 GiB of blocks) and VMDK grain tables left out (32 MiB each).
func TestLargeSparseDisk(t *testing.T) {
	qi := qemuImg(t)
	const gib = 1 << 30
	// Just past 4 GiB: qemu-img reads a whole VHDX when comparing (no
	// block status), so the disk is kept as small as the BAT case allows.
	const size = 4*gib + 5<<19 + 5*512
	src := &sparseSource{size: size, seed: 0x40, segs: []store.Extent{
		{Offset: 0, Length: 70_000},
		{Offset: 512<<20 - 1000, Length: 2000},  // across the first L2 boundary
		{Offset: 4*gib - 300, Length: 600},      // across the first VHDX chunk
		{Offset: 4*gib + 1<<20 + 17, Length: 5}, // in the second chunk
		{Offset: size - 700, Length: 700},       // the unaligned tail
	}}
	dir := t.TempDir()
	rawPath := filepath.Join(dir, "ref.raw")
	rf, err := os.Create(rawPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := rf.Truncate(src.size); err != nil {
		t.Fatal(err)
	}
	for _, e := range src.segs {
		b := make([]byte, e.Length)
		if _, err := src.ReadAt(b, e.Offset); err != nil {
			t.Fatal(err)
		}
		if _, err := rf.WriteAt(b, e.Offset); err != nil {
			t.Fatal(err)
		}
	}
	if err := rf.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []Format{VMDK, VHDX, QCOW2} {
		out := filepath.Join(dir, "big"+f.Ext())
		file, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		n, err := Write(context.Background(), noSeek{file}, src, f)
		file.Close()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		elapsed := time.Since(start)
		if want, ok, err := Size(context.Background(), src, f); err != nil || (ok && want != n) {
			t.Fatalf("%s: Size = %d, %v, %v; wrote %d", f, want, ok, err, n)
		}
		if n > 16<<20 {
			t.Errorf("%s: 4 GiB disk with 75 KB of data gave %d bytes", f, n)
		}
		runCmd(t, qi, "check", "-f", string(f), out)
		runCmd(t, qi, "compare", "-f", string(f), "-F", "raw", out, rawPath)
		t.Logf("%s: %d-byte sparse disk -> %d bytes in %v (qemu-img check+compare %v)", f, src.size, n, elapsed, time.Since(start)-elapsed)
	}
}

// BenchmarkWrite exports a 64 MiB disk that is all data.
func BenchmarkWrite(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	m := &memSource{data: make([]byte, 64<<20)}
	m.fill(r, 0, int64(len(m.data)))
	for _, f := range Formats {
		b.Run(string(f), func(b *testing.B) {
			b.SetBytes(m.Size())
			for b.Loop() {
				if _, err := Write(context.Background(), io.Discard, m, f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
