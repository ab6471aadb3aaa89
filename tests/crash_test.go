package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"coffer.dev/coffer/store"
)

// TestCrashKill9 kills the coffer binary with SIGKILL at random moments of
// backups (full and from changed extents) and of GC, at least 50 times.
// After every kill the store must open, every committed point must restore
// bit for bit, and verify must find nothing damaged.
func TestCrashKill9(t *testing.T) {
	need(t, "sgdisk", "mke2fs", "debugfs")
	iterations := 60
	if testing.Short() {
		iterations = 10
	}
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "store")
	coffer(t, storeDir, "store", "init")

	treeA, treeB := filepath.Join(dir, "treeA"), filepath.Join(dir, "treeB")
	makeTree(t, treeA, 5, 300)
	makeTree(t, treeB, 6, 250)
	a := makeGPTDisk(t, dir, "a", 64, 8, treeA)
	b := makeGPTDisk(t, dir, "b", 56, 8, treeB)
	aDay1 := filepath.Join(dir, "a1.img")
	run(t, "cp", "--sparse=always", a.path, aDay1)
	extra := filepath.Join(dir, "extra.txt")
	os.WriteFile(extra, []byte(strings.Repeat("crash test line\n", 200000)), 0o644)
	cmds := filepath.Join(dir, "cmds")
	os.WriteFile(cmds, []byte("write "+extra+" /extra.log\nrm /d03/s3/f0003.dat\n"), 0o644)
	run(t, "debugfs", "-w", "-f", cmds, a.fsPath)
	a.writeFS(t)
	aDay2 := a.path
	changed := filepath.Join(dir, "changed.txt")
	diffExtents(t, aDay1, aDay2, changed)
	want := map[string][32]byte{"A1": fileSHA(t, aDay1), "A2": fileSHA(t, aDay2), "B": fileSHA(t, b.path)}

	coffer(t, storeDir, "store", "backup-image", "--source", "vm-a", "--label", "image=A1", aDay1)
	// How long each kind of run takes when left alone, learnt as we go:
	// kills are spread over that span.
	took := map[int]time.Duration{}

	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	interrupted := 0
	for i := 0; i < iterations; i++ {
		var args []string
		switch i % 5 {
		case 0:
			args = []string{"backup-image", "--source", "vm-b", "--label", "image=B", b.path}
		case 1:
			args = []string{"backup-image", "--source", "vm-a", "--label", "image=A2", "--changed", changed, aDay2}
		case 2:
			args = []string{"backup-image", "--source", "vm-a", "--label", "image=A1", "--changed", changed, aDay1}
		case 3:
			args = []string{"backup-image", "--source", "vm-a", "--label", "image=A2", aDay2}
		case 4:
			// Keep the store small, and kill GC too.
			s := openStore(t, storeDir)
			pts, err := s.Points()
			if err != nil {
				t.Fatal(err)
			}
			for k := 0; k+4 < len(pts); k++ {
				if err := s.Delete(pts[k].ID); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			args = []string{"gc", "--compact-below", "0.9"}
		}
		full := append([]string{"store", args[0], "--store", storeDir, "--key-file", storeDir + ".key"}, args[1:]...)
		cmd := exec.Command(cofferBin, full...)
		var errb strings.Builder
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		kind := i % 5
		span, known := took[kind]
		delay := time.Duration(r.Int64N(int64(span)*9/10 + 1))
		if !known {
			delay = time.Hour // learn the duration first
		}
		started := time.Now()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("iteration %d: %v failed before the kill: %v\n%s", i, args, err, errb.String())
			}
			took[kind] = time.Since(started)
		case <-time.After(delay):
			cmd.Process.Signal(syscall.SIGKILL)
			if err := <-done; err != nil {
				interrupted++
			}
		}
		checkStore(t, storeDir, want, fmt.Sprintf("after kill %d (%s, %v in)", i, args[0], delay))
	}
	t.Logf("%d of %d runs were killed mid-way", interrupted, iterations)
	if interrupted < iterations*6/10 {
		t.Fatalf("only %d of %d runs were interrupted: the kill timing is off", interrupted, iterations)
	}
}

// checkStore opens the store as the next process would and checks every
// committed point against the image it was made from.
func checkStore(t *testing.T, storeDir string, want map[string][32]byte, when string) {
	t.Helper()
	s := openStore(t, storeDir)
	defer s.Close()
	// A kill never damages the index: it must not have been rebuilt.
	if aside, _ := filepath.Glob(filepath.Join(storeDir, "damaged", "*")); len(aside) > 0 {
		t.Fatalf("%s: the store set aside damaged files: %v", when, aside)
	}
	pts, err := s.Points()
	if err != nil {
		t.Fatalf("%s: list points: %v", when, err)
	}
	for _, p := range pts {
		label := p.Labels["image"]
		got, err := pointSHA(t, s, string(p.ID), "disk0")
		if err != nil {
			t.Fatalf("%s: point %s (%s): %v", when, p.ID, label, err)
		}
		if got != want[label] {
			t.Fatalf("%s: point %s restores different bytes than image %s", when, p.ID, label)
		}
	}
	rep, err := s.Verify(context.Background(), store.VerifyOptions{})
	if err != nil {
		t.Fatalf("%s: verify: %v", when, err)
	}
	if !rep.OK() || rep.IndexRebuilt || rep.IndexRepaired > 0 {
		b, _ := json.MarshalIndent(rep, "", " ")
		t.Fatalf("%s: verify found damage:\n%s", when, b)
	}
}
