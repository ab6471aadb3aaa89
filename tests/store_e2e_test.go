package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"coffer.dev/coffer/store/point"
)

func pointID(s string) point.ID { return point.ID(s) }

type backupJSON struct {
	Point string      `json:"point"`
	Base  string      `json:"base"`
	Stats point.Stats `json:"stats"`
}

// TestRealFilesystemImages backs up GPT disks holding ext4 file systems
// made with mke2fs -d, full and then from a changed-extent list after a
// day of change made with debugfs, plus a two-disk point, and restores
// every disk bit for bit through the coffer binary.
func TestRealFilesystemImages(t *testing.T) {
	need(t, "sgdisk", "mke2fs", "debugfs")
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "store")
	coffer(t, storeDir, "store", "init")

	treeA, treeB := filepath.Join(dir, "treeA"), filepath.Join(dir, "treeB")
	makeTree(t, treeA, 1, 900)
	makeTree(t, treeB, 1, 700) // same generator: shares most files with A
	diskA := makeGPTDisk(t, dir, "a", 160, 32, treeA)
	diskB := makeGPTDisk(t, dir, "b", 128, 64, treeB) // different offsets

	var full backupJSON
	if err := json.Unmarshal([]byte(coffer(t, storeDir, "store", "backup-image", "--json", "--source", "vm-a", diskA.path)), &full); err != nil {
		t.Fatal(err)
	}
	if full.Stats.Data == 0 || full.Stats.Read > full.Stats.Logical/2 {
		t.Fatalf("full backup figures look wrong (holes must not be read): %+v", full.Stats)
	}

	// Day 2: debugfs writes new files and removes others in place.
	day1 := filepath.Join(dir, "a-day1.img")
	run(t, "cp", "--sparse=always", diskA.path, day1)
	extra := filepath.Join(dir, "extra.txt")
	os.WriteFile(extra, []byte(strings.Repeat("new log line for day two\n", 40000)), 0o644)
	cmds := filepath.Join(dir, "day2.debugfs")
	os.WriteFile(cmds, []byte("mkdir /day2\nwrite "+extra+" /day2/app.log\nwrite "+extra+" /day2/app2.log\nrm /d01/s1/f0001.dat\nrm /d02/s2/f0002.dat\n"), 0o644)
	run(t, "debugfs", "-w", "-f", cmds, diskA.fsPath)
	diskA.writeFS(t)
	changed := filepath.Join(dir, "changed.txt")
	if n := diffExtents(t, day1, diskA.path, changed); n == 0 {
		t.Fatal("debugfs changed nothing")
	}
	var incr backupJSON
	if err := json.Unmarshal([]byte(coffer(t, storeDir, "store", "backup-image", "--json", "--source", "vm-a", "--changed", changed, diskA.path)), &incr); err != nil {
		t.Fatal(err)
	}
	if incr.Base != full.Point || incr.Stats.Read > full.Stats.Read/4 {
		t.Fatalf("day-2 backup is not an incremental read: base %s, read %d (full read %d)", incr.Base, incr.Stats.Read, full.Stats.Read)
	}

	var multi backupJSON
	if err := json.Unmarshal([]byte(coffer(t, storeDir, "store", "backup-image", "--json", "--source", "vm-ab", "sda="+day1, "sdb="+diskB.path)), &multi); err != nil {
		t.Fatal(err)
	}
	if multi.Stats.New >= multi.Stats.Data/2 {
		t.Errorf("two disks sharing most files stored %d new bytes of %d", multi.Stats.New, multi.Stats.Data)
	}

	check := func(id, disk, want string) {
		t.Helper()
		out := filepath.Join(dir, "restore-"+id+"-"+disk)
		args := []string{"store", "restore-image", "--point", id, out}
		if disk != "" {
			args = append(args, "--disk", disk)
		}
		coffer(t, storeDir, args...)
		if fileSHA(t, out) != fileSHA(t, want) {
			t.Fatalf("restore of %s %s differs from %s", id, disk, want)
		}
		os.Remove(out)
	}
	check(full.Point, "", day1)
	check(incr.Point, "", diskA.path)
	check(multi.Point, "sda", day1)
	check(multi.Point, "sdb", diskB.path)

	out := coffer(t, storeDir, "store", "verify")
	if !strings.Contains(out, "all points are intact") {
		t.Fatalf("verify: %s", out)
	}
	var st struct {
		Points     int     `json:"points"`
		DedupRatio float64 `json:"dedup_ratio"`
	}
	json.Unmarshal([]byte(coffer(t, storeDir, "store", "stats", "--json")), &st)
	if st.Points != 3 || st.DedupRatio < 1.5 {
		t.Fatalf("stats: %+v", st)
	}
}

// TestCLIBadInput checks that malformed requests get clear errors and
// change nothing.
func TestCLIBadInput(t *testing.T) {
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "store")
	coffer(t, storeDir, "store", "init")
	img := filepath.Join(dir, "x.img")
	os.WriteFile(img, []byte(strings.Repeat("x", 1<<20)), 0o644)
	bad := filepath.Join(dir, "bad.txt")
	os.WriteFile(bad, []byte("12 abc\n"), 0o644)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"store", "backup-image", "--changed", bad, img}, "line 1"},
		{[]string{"store", "backup-image", filepath.Join(dir, "missing.img")}, "no such file"},
		{[]string{"store", "restore-image", "--point", "20990101T000000.000000Z-00000000", filepath.Join(dir, "o")}, "no such recovery point"},
		{[]string{"store", "lock", "--point", "x", "--until", "tomorrow"}, "neither a date"},
		{[]string{"store", "prune"}, "keeps nothing"},
		{[]string{"store", "nonsense"}, "unknown subcommand"},
	}
	for _, c := range cases {
		full := append([]string{c.args[0], c.args[1], "--store", storeDir, "--key-file", storeDir + ".key"}, c.args[2:]...)
		out, err := execOut(cofferBin, full...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("coffer %v: err %v, output %q; want an error mentioning %q", c.args, err, out, c.want)
		}
	}
	// A wrong key is refused.
	other := filepath.Join(dir, "other")
	coffer(t, other, "store", "init")
	out, err := execOut(cofferBin, "store", "list", "--store", storeDir, "--key-file", other+".key")
	if err == nil || !strings.Contains(out, "wrong master key") {
		t.Errorf("wrong key: %v %q", err, out)
	}
	if s := coffer(t, storeDir, "store", "list", "--json"); strings.TrimSpace(s) != "[]" {
		t.Errorf("bad input left points behind: %s", s)
	}
}
