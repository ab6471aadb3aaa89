package tests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"coffer.dev/coffer/store"
	"coffer.dev/coffer/store/crypt"
)

var cofferBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "coffer-e2e-bin")
	if err != nil {
		panic(err)
	}
	cofferBin = filepath.Join(dir, "coffer")
	build := exec.Command("go", "build", "-o", cofferBin, "coffer.dev/coffer/appliance/cmd/coffer")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build coffer:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// need fails the test when a tool the test relies on is missing: make
// test and .ci/run install them.
func need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (make deps installs it)", tool)
		}
	}
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// coffer runs the binary with a store and key file.
func coffer(t testing.TB, storeDir string, args ...string) string {
	t.Helper()
	full := append([]string{args[0], args[1], "--store", storeDir, "--key-file", storeDir + ".key"}, args[2:]...)
	return run(t, cofferBin, full...)
}

// makeTree writes a directory tree that looks like part of a system:
// many small files, some large ones, sparse files, hard links, symlinks,
// unicode names and a deep path.
func makeTree(t testing.TB, dir string, seed uint64, files int) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 77))
	words := strings.Fields("usr lib share doc config service daemon kernel module backup restore network socket " +
		"the of and to in is that for it as was with be by on not this are or from at which but have")
	for i := 0; i < files; i++ {
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", i%17), fmt.Sprintf("s%d", i%5))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		n := 100 + r.IntN(30000)
		switch {
		case i%97 == 0:
			n = 3 << 20
		case i%13 == 0:
			n = 200 << 10
		}
		var b bytes.Buffer
		for b.Len() < n {
			b.WriteString(words[r.IntN(len(words))])
			b.WriteByte(" \n"[r.IntN(2)])
		}
		data := b.Bytes()[:n]
		if i%11 == 0 { // binary-like
			for k := range data {
				data[k] = byte(r.Uint32())
			}
		}
		name := filepath.Join(sub, fmt.Sprintf("f%04d.dat", i))
		if i%23 == 0 {
			name = filepath.Join(sub, fmt.Sprintf("файл-%d-日本語.txt", i))
		}
		if err := os.WriteFile(name, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if i%31 == 0 {
			os.Link(name, name+".hardlink")
			os.Symlink(filepath.Base(name), name+".symlink")
		}
	}
	deep := dir
	for k := 0; k < 30; k++ {
		deep = filepath.Join(deep, fmt.Sprintf("level%02d", k))
	}
	os.MkdirAll(deep, 0o755)
	os.WriteFile(filepath.Join(deep, "deep.txt"), []byte("deep\n"), 0o644)
	// A sparse file.
	f, err := os.Create(filepath.Join(dir, "sparse.img"))
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(64 << 20)
	f.WriteAt([]byte("start"), 0)
	f.WriteAt([]byte("middle"), 32<<20)
	f.Close()
}

// gptDisk is a GPT disk image with an (empty) EFI partition and an ext4
// root file system made with mke2fs -d.
type gptDisk struct {
	path      string
	fsPath    string
	rootStart int64 // byte offset of the root partition
}

func makeGPTDisk(t testing.TB, dir, name string, sizeMiB, espMiB int, tree string) gptDisk {
	t.Helper()
	need(t, "sgdisk", "mke2fs")
	d := gptDisk{path: filepath.Join(dir, name+".img"), fsPath: filepath.Join(dir, name+".fs")}
	f, err := os.Create(d.path)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(int64(sizeMiB) << 20)
	f.Close()
	run(t, "sgdisk", "-n", fmt.Sprintf("1:2048:+%dM", espMiB), "-t", "1:ef00", "-n", "2:0:0", "-t", "2:8300", d.path)
	info := run(t, "sgdisk", "-i", "2", d.path)
	var first, last int64
	for _, line := range strings.Split(info, "\n") {
		if strings.HasPrefix(line, "First sector:") {
			first, _ = strconv.ParseInt(strings.Fields(line)[2], 10, 64)
		}
		if strings.HasPrefix(line, "Last sector:") {
			last, _ = strconv.ParseInt(strings.Fields(line)[2], 10, 64)
		}
	}
	if first == 0 || last <= first {
		t.Fatalf("cannot read the root partition of %s:\n%s", d.path, info)
	}
	d.rootStart = first * 512
	blocks := (last - first + 1) * 512 / 4096
	run(t, "mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-d", tree, "-L", name, d.fsPath, strconv.FormatInt(blocks, 10))
	d.writeFS(t)
	return d
}

// writeFS copies the file-system image into the root partition, sparsely.
func (d gptDisk) writeFS(t testing.TB) {
	t.Helper()
	src, err := os.Open(d.fsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(d.path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	for off := int64(0); ; off += int64(len(buf)) {
		n, err := src.ReadAt(buf, off)
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			if _, werr := dst.WriteAt(buf[:n], d.rootStart+off); werr != nil {
				t.Fatal(werr)
			}
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// diffExtents compares two equally sized images at 64 KiB granularity
// (what changed block tracking reports) and writes the changed-extent
// list.
func diffExtents(t testing.TB, a, b, out string) int64 {
	t.Helper()
	fa, _ := os.ReadFile(a)
	fb, _ := os.ReadFile(b)
	if len(fa) != len(fb) {
		t.Fatalf("images differ in size: %d %d", len(fa), len(fb))
	}
	const g = 64 << 10
	var lines []string
	var total int64
	start := int64(-1)
	for off := 0; off <= len(fa); off += g {
		changed := off < len(fa) && !bytes.Equal(fa[off:min(off+g, len(fa))], fb[off:min(off+g, len(fb))])
		switch {
		case changed && start < 0:
			start = int64(off)
		case !changed && start >= 0:
			lines = append(lines, fmt.Sprintf("%d %d", start, int64(off)-start))
			total += int64(off) - start
			start = -1
		}
	}
	if err := os.WriteFile(out, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return total
}

func fileSHA(t testing.TB, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// pointSHA reads a disk of a point through the store library.
func pointSHA(t testing.TB, s *store.Store, id, disk string) ([32]byte, error) {
	t.Helper()
	pid, err := s.Point(pointID(id))
	if err != nil {
		return [32]byte{}, err
	}
	r, err := s.OpenDisk(pid.ID, disk)
	if err != nil {
		return [32]byte{}, err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, r.Size())); err != nil {
		return [32]byte{}, err
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out, nil
}

func openStore(t testing.TB, dir string) *store.Store {
	t.Helper()
	key, err := crypt.ReadKeyFile(dir + ".key")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := store.Open(ctx, dir, key, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func execOut(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
