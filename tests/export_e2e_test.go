package tests

import (
	"path/filepath"
	"testing"
)

// TestExportFormats backs up a GPT disk with a real ext4 file system and
// exports the point as raw, stream-optimized VMDK, VHDX and qcow2 through
// the CLI: qemu-img checks each file and finds it identical to the disk.
func TestExportFormats(t *testing.T) {
	need(t, "qemu-img", "sgdisk", "mke2fs")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	makeTree(t, tree, 5, 300)
	disk := makeGPTDisk(t, dir, "vm", 96, 16, tree)
	disk.writeFS(t)
	st := filepath.Join(dir, "store")
	coffer(t, st, "store", "init")
	coffer(t, st, "store", "backup-image", "--source", "vm-1", disk.path)
	for _, f := range []struct{ name, qemu string }{{"raw", "raw"}, {"vmdk", "vmdk"}, {"vhdx", "vhdx"}, {"qcow2", "qcow2"}} {
		out := filepath.Join(dir, "export."+f.name)
		coffer(t, st, "store", "export", "--point", "latest", "--source", "vm-1", "--format", f.name, out)
		if f.name != "raw" {
			run(t, "qemu-img", "check", "-q", "-f", f.qemu, out)
		}
		run(t, "qemu-img", "compare", "-q", "-f", f.qemu, "-F", "raw", out, disk.path)
	}
}
