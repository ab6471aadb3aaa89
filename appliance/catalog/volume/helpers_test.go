package volume

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// run runs a tool and fails the test with its output on error.
func run(t testing.TB, stdin string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(stdin, nil, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(stdin string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}

// sparse creates an empty sparse file of size bytes.
func sparse(t testing.TB, name string, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return p
}

// openDisk opens an image file as a Disk.
func openDisk(t testing.TB, name, path string) Disk {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return Disk{Name: name, R: f, Size: st.Size()}
}

func memDisk(name string, b []byte) Disk {
	return Disk{Name: name, R: bytes.NewReader(b), Size: int64(len(b))}
}

func patch(t testing.TB, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t testing.TB, src string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// sfdiskPart is one partition as sfdisk --json reports it.
type sfdiskPart struct {
	Index       int
	Start, Size int64 // sectors
	Type, Name  string
}

// sfdiskParts reads an image's partition table with sfdisk, the oracle.
func sfdiskParts(t testing.TB, path string) []sfdiskPart {
	t.Helper()
	out := run(t, "", "sfdisk", "--json", path)
	var doc struct {
		PartitionTable struct {
			Partitions []struct {
				Node        string
				Start, Size int64
				Type, Name  string
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("sfdisk json: %v\n%s", err, out)
	}
	var parts []sfdiskPart
	for _, p := range doc.PartitionTable.Partitions {
		i := len(p.Node)
		for i > 0 && p.Node[i-1] >= '0' && p.Node[i-1] <= '9' {
			i--
		}
		n, err := strconv.Atoi(p.Node[i:])
		if err != nil {
			t.Fatalf("node %q", p.Node)
		}
		parts = append(parts, sfdiskPart{Index: n, Start: p.Start, Size: p.Size, Type: p.Type, Name: p.Name})
	}
	return parts
}

func discover(t testing.TB, disks ...Disk) ([]Volume, []string) {
	t.Helper()
	vols, warns, err := Discover(context.Background(), disks)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	return vols, warns
}

func ids(vols []Volume) string {
	var s []string
	for _, v := range vols {
		s = append(s, v.Disk+":"+v.ID)
	}
	return strings.Join(s, " ")
}

func hasWarning(warns []string, sub string) bool {
	for _, w := range warns {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}

// tag returns the 512-byte sector content used to mark sector n of a
// volume named name.
func tag(name string, n int64) []byte {
	b := make([]byte, 512)
	s := fmt.Sprintf("%s sector %d|", name, n)
	for i := 0; i < len(b); i += len(s) {
		copy(b[i:], s)
	}
	return b
}

// checkTags reads the whole of r in chunks of odd sizes and checks that
// every sector carries tag(name, n).
func checkTags(t testing.TB, name string, r io.ReaderAt, size int64) {
	t.Helper()
	buf := make([]byte, size)
	for off, step := int64(0), int64(3*65536+512+7); off < size; off += step {
		n := min(step, size-off)
		m, err := r.ReadAt(buf[off:off+n], off)
		if int64(m) != n {
			t.Fatalf("%s: ReadAt(%d bytes at %d) = %d, %v", name, n, off, m, err)
		}
	}
	for s := int64(0); s < size/512; s++ {
		if got, want := buf[s*512:(s+1)*512], tag(name, s); !bytes.Equal(got, want) {
			t.Fatalf("%s: sector %d holds %.40q, want %.40q", name, s, got, want)
		}
	}
	if n, err := r.ReadAt(make([]byte, 10), size); n != 0 || err != io.EOF {
		t.Fatalf("%s: ReadAt at end = %d, %v; want 0, EOF", name, n, err)
	}
	if n, err := r.ReadAt(make([]byte, 1024), size-512); n != 512 || err != io.EOF {
		t.Fatalf("%s: ReadAt across end = %d, %v; want 512, EOF", name, n, err)
	}
}
