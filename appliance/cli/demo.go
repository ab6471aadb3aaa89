package cli

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"coffer.dev/coffer/appliance/blockdev"
	"coffer.dev/coffer/store"
	"coffer.dev/coffer/store/crypt"
)

// runDemoStore shows the store end to end on a generated disk: a full backup,
// a day of change backed up from its changed-extent list, restores of
// both points checked bit for bit, verify and the figures.
func runDemoStore(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "demo-store", "demo-store [--dir DIR] [--size MiB]")
	dir := fs.String("dir", filepath.Join("var", "demo-store"), "working directory (recreated)")
	sizeMiB := fs.Int("size", 512, "disk size in MiB")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *sizeMiB < 64 {
		return usagef("demo: --size must be at least 64 MiB")
	}
	if err := os.RemoveAll(*dir); err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	say := func(format string, a ...any) { fmt.Fprintf(env.Stdout, format+"\n", a...) }
	storeDir := filepath.Join(*dir, "store")
	keyFile := filepath.Join(*dir, "store.key")
	img := filepath.Join(*dir, "disk.img")

	say("== Generating a %d MiB disk image (ext4 made with mke2fs -d when available)", *sizeMiB)
	if err := makeDemoDisk(ctx, img, int64(*sizeMiB)<<20, filepath.Join(*dir, "tree")); err != nil {
		return err
	}
	so := func(sub string, rest ...string) []string {
		return append([]string{sub, "--store", storeDir, "--key-file", keyFile}, rest...)
	}
	run := func(args ...string) error {
		say("\n$ coffer store %s", strings.Join(args, " "))
		return runStore(ctx, env, args)
	}
	if err := run(so("init")...); err != nil {
		return err
	}
	if err := run(so("backup-image", "--source", "demo-vm", "--label", "day=1", img)...); err != nil {
		return err
	}
	day1 := filepath.Join(*dir, "day1.img")
	if err := copyFile(img, day1); err != nil {
		return err
	}
	say("\n== Simulating a day of change: rewriting scattered 4-64 KiB areas and recording them as changed extents")
	changedFile := filepath.Join(*dir, "changed.txt")
	if err := changeDemoDisk(img, changedFile); err != nil {
		return err
	}
	if err := run(so("backup-image", "--source", "demo-vm", "--label", "day=2", "--changed", changedFile, img)...); err != nil {
		return err
	}
	key, err := readKey(keyFile)
	if err != nil {
		return err
	}
	s, err := store.Open(ctx, storeDir, key, store.Options{Logger: env.Log})
	if err != nil {
		return err
	}
	pts, err := s.Points()
	s.Close()
	if err != nil {
		return err
	}
	if len(pts) != 2 {
		return fmt.Errorf("demo: expected 2 points, found %d", len(pts))
	}
	for i, want := range []string{day1, img} {
		out := filepath.Join(*dir, fmt.Sprintf("restored-day%d.img", i+1))
		if err := run(so("restore-image", "--point", string(pts[i].ID), out)...); err != nil {
			return err
		}
		same, err := sameContent(want, out)
		if err != nil {
			return err
		}
		if !same {
			return fmt.Errorf("demo: restored day %d differs from the original", i+1)
		}
		say("restored day %d is identical to the original (SHA-256 compared)", i+1)
	}
	for _, args := range [][]string{so("verify"), so("list"), so("stats")} {
		if err := run(args...); err != nil {
			return err
		}
	}
	say("\nThe demo store is in %s; try: coffer store list --store %s --key-file %s", storeDir, storeDir, keyFile)
	return nil
}

func readKey(path string) (crypt.MasterKey, error) { return crypt.ReadKeyFile(path) }

// makeDemoDisk writes a disk image: an ext4 file system built from a
// generated tree with mke2fs -d when mke2fs is installed, or generated
// file-like content otherwise.
func makeDemoDisk(ctx context.Context, path string, size int64, tree string) error {
	return makeDemoDiskSeeded(ctx, path, size, tree, 42)
}

// makeDemoDiskSeeded is makeDemoDisk with another generated tree for
// each seed (the tree directory is recreated).
func makeDemoDiskSeeded(ctx context.Context, path string, size int64, tree string, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, 42))
	if err := os.RemoveAll(tree); err != nil {
		return err
	}
	if err := os.MkdirAll(tree, 0o700); err != nil {
		return err
	}
	words := strings.Fields("coffer backup restore appliance vmware snapshot chunk container index tape vault retention policy " +
		"the of and to in is that for it as was with be by on not he this are or his from at which but have")
	// About a third of the file system holds files (the 1 MiB ones and
	// ~20 KiB on average for the rest).
	files := int(min(600, size/(96<<10)))
	for i := 0; i < files; i++ {
		sub := filepath.Join(tree, fmt.Sprintf("dir%02d", i%30))
		if err := os.MkdirAll(sub, 0o700); err != nil {
			return err
		}
		var b strings.Builder
		n := 500 + r.IntN(40000)
		if i%50 == 0 {
			n = 1 << 20
		}
		for b.Len() < n {
			b.WriteString(words[r.IntN(len(words))])
			b.WriteByte(" \n"[r.IntN(2)])
		}
		content := []byte(b.String())
		if i%7 == 0 { // some incompressible files
			for k := range content {
				content[k] = byte(r.Uint32())
			}
		}
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("file%03d.txt", i)), content, 0o600); err != nil {
			return err
		}
	}
	if mke2fs, err := exec.LookPath("mke2fs"); err == nil {
		cmd := exec.CommandContext(ctx, mke2fs, "-q", "-F", "-t", "ext4", "-b", "4096", "-d", tree, "-L", "demo", path, fmt.Sprintf("%dk", size/1024))
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("mke2fs: %v: %s", err, out)
		}
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size/2; off += 1 << 20 {
		for k := range buf {
			buf[k] = byte('a' + r.IntN(26))
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			return err
		}
	}
	return nil
}

// changeDemoDisk rewrites scattered areas of the image and writes their
// extents, as changed block tracking would report them.
func changeDemoDisk(path, changedFile string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(7, 7))
	var lines []string
	for i := 0; i < 200; i++ {
		n := int64(4096 * (1 + r.IntN(16)))
		off := r.Int64N(st.Size()-n) / 4096 * 4096
		buf := make([]byte, n)
		for k := range buf {
			buf[k] = byte('A' + r.IntN(26))
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			return err
		}
		lines = append(lines, fmt.Sprintf("%d %d", off, n))
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return os.WriteFile(changedFile, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

func copyFile(src, dst string) error {
	in, err := blockdev.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := blockdev.CreateOutput(dst, in.Size(), true)
	if err != nil {
		return err
	}
	alloc, err := in.Allocated()
	if err != nil {
		return err
	}
	if alloc == nil {
		alloc = []blockdev.Extent{{Offset: 0, Length: in.Size()}}
	}
	buf := make([]byte, 1<<20)
	for _, e := range alloc {
		for off := e.Offset; off < e.Offset+e.Length; off += int64(len(buf)) {
			n := min(int64(len(buf)), e.Offset+e.Length-off)
			if _, err := in.ReadAt(buf[:n], off); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			if _, err := out.WriteAt(buf[:n], off); err != nil {
				return err
			}
		}
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func sameContent(a, b string) (bool, error) {
	ha, err := fileHash(a)
	if err != nil {
		return false, err
	}
	hb, err := fileHash(b)
	if err != nil {
		return false, err
	}
	return ha == hb, nil
}

func fileHash(p string) ([32]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return [32]byte{}, err
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out, nil
}
