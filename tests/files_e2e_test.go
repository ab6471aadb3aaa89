package tests

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFilesFromImageBackup: a GPT disk with an ext4 root is backed up
// through the CLI into an appliance state directory; `coffer files`
// catalogs the point (recoverability verified), finds files by name and
// glob, lists a directory, shows versions across two points after a day
// of change, and restores one file and a folder (tar) byte for byte.
func TestFilesFromImageBackup(t *testing.T) {
	need(t, "sgdisk", "mke2fs", "debugfs")
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	tree := filepath.Join(dir, "tree")
	makeTree(t, tree, 5, 400)
	if err := os.MkdirAll(filepath.Join(tree, "etc/nginx"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := []byte("server { listen 443 ssl; root /var/www; }\n")
	if err := os.WriteFile(filepath.Join(tree, "etc/nginx/nginx.conf"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	disk := makeGPTDisk(t, dir, "web", 256, 32, tree)
	run(t, cofferBin, "setup", "--state", state)
	storeDir := filepath.Join(state, "store")
	coffer(t, storeDir, "store", "backup-image", "--source", "vm:web01", "--label", "vm=web01", disk.path)

	out := run(t, cofferBin, "files", "catalog", "--state", state, "--point", "latest", "--vm", "web01")
	if !strings.Contains(out, "recoverability verified") || !strings.Contains(out, "ext4") {
		t.Fatalf("catalog:\n%s", out)
	}

	// Day two: nginx.conf changes (debugfs writes into the image file
	// system, which is copied into the partition again).
	changed := filepath.Join(dir, "nginx.conf")
	conf2 := append(bytes.Clone(conf), []byte("# day two\n")...)
	if err := os.WriteFile(changed, conf2, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "debugfs", "-w", "-R", "rm /etc/nginx/nginx.conf", disk.fsPath)
	run(t, "debugfs", "-w", "-R", "write "+changed+" /etc/nginx/nginx.conf", disk.fsPath)
	disk.writeFS(t)
	coffer(t, storeDir, "store", "backup-image", "--source", "vm:web01", "--label", "vm=web01", disk.path)
	run(t, cofferBin, "files", "catalog", "--state", state, "--point", "latest", "--vm", "web01")

	var hits []struct {
		Point, Volume, Path string
		Size                int64
	}
	if err := json.Unmarshal([]byte(run(t, cofferBin, "files", "search", "--state", state, "--json", "nginx.conf")), &hits); err != nil {
		t.Fatal(err)
	}
	if len(hits) != 2 || hits[0].Path != "/etc/nginx/nginx.conf" || hits[0].Size != int64(len(conf2)) || hits[1].Size != int64(len(conf)) {
		t.Fatalf("search nginx.conf: %+v", hits)
	}
	vol := hits[0].Volume
	if out := run(t, cofferBin, "files", "search", "--state", state, "*.symlink"); !strings.Contains(out, ".symlink") {
		t.Fatalf("glob search:\n%s", out)
	}
	if out := run(t, cofferBin, "files", "ls", "--state", state, "--point", "latest", "--volume", vol, "/etc/nginx"); !strings.Contains(out, "nginx.conf") {
		t.Fatalf("ls:\n%s", out)
	}
	vout := run(t, cofferBin, "files", "versions", "--state", state, "--vm", "web01", "--volume", vol, "/etc/nginx/nginx.conf")
	if strings.Count(vout, "*") != 2 {
		t.Fatalf("versions (two distinct):\n%s", vout)
	}

	// One file from the first point: the original content.
	first := hits[1].Point
	got := filepath.Join(dir, "restored.conf")
	run(t, cofferBin, "files", "restore", "--state", state, "--point", first, "--volume", vol, "/etc/nginx/nginx.conf", "--out", got)
	if b, _ := os.ReadFile(got); !bytes.Equal(b, conf) {
		t.Fatalf("restored nginx.conf: %q", b)
	}
	// An existing output file is never overwritten.
	cmd := exec.Command(cofferBin, "files", "restore", "--state", state, "--point", first, "--volume", vol, "/etc/nginx/nginx.conf", "--out", got)
	if err := cmd.Run(); err == nil {
		t.Fatal("restore over an existing file succeeded")
	}
	// A folder as tar, to standard output: every file equals the tree's.
	cmd = exec.Command(cofferBin, "files", "restore", "--state", state, "--point", "latest", "--volume", vol, "/d03", "--out", "-")
	var tb, eb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &tb, &eb
	if err := cmd.Run(); err != nil {
		t.Fatalf("restore folder: %v\n%s", err, eb.String())
	}
	tr := tar.NewReader(&tb)
	files := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		sum := sha256.New()
		io.Copy(sum, tr)
		want := fileSHA(t, filepath.Join(tree, h.Name))
		if [32]byte(sum.Sum(nil)) != want {
			t.Fatalf("%s differs", h.Name)
		}
		files++
	}
	if files < 20 {
		t.Fatalf("tar of /d03 held %d files", files)
	}
	// Bad input: a path that is not catalogued, a bad glob.
	for _, args := range [][]string{
		{"files", "restore", "--state", state, "--point", "latest", "--volume", vol, "/no/such/file", "--out", filepath.Join(dir, "x")},
		{"files", "search", "--state", state, "[bad"},
	} {
		c := exec.Command(cofferBin, args...)
		var e bytes.Buffer
		c.Stderr = &e
		if err := c.Run(); err == nil || !strings.Contains(e.String(), "coffer:") {
			t.Fatalf("%v: %v %s", args, err, e.String())
		}
	}
}
