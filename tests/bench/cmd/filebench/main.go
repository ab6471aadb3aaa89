// Command filebench measures the restore-side targets of single-file and
// whole-disk restore (issue "Restore from one pass"), in one run:
//
//   - cataloguing a full disk adds ≤ 15% to its backup time (coffer store
//     backup-image of the corpus's disk A, then coffer files catalog);
//
//   - restoring the whole disk through the export path (coffer store
//     export --format raw) is ≥ 3× faster than restic's restore of the
//     same image, measured in the same run;
//
//   - the first byte of a 1 MiB file of a 100 GiB-logical point arrives
//     in < 1 s (coffer files restore to a pipe, a fresh process each time:
//     store open, volume and filesystem discovery, file open included).
//
//     go run ./tests/bench/cmd/filebench -coffer bin/coffer [-dir var/bench]
//
// The exit status is 0 when every target passes, 2 when one is missed and
// 1 when something failed.
package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"coffer.dev/coffer/tests/bench/internal/verdict"
)

type result struct {
	Started string             `json:"started"`
	Seconds map[string]float64 `json:"seconds"`
	Targets []verdict.Target   `json:"targets"`
	Notes   []string           `json:"notes,omitempty"`
	Errors  []string           `json:"errors,omitempty"`
}

type bench struct {
	bin, work string
	res       result
}

func main() {
	bin := flag.String("coffer", "bin/coffer", "the coffer binary")
	dir := flag.String("dir", "var/bench", "benchmark directory (corpus/ from tests/bench/corpus.sh)")
	runs := flag.Int("ttfb-runs", 5, "time-to-first-byte measurements (the median counts)")
	flag.Parse()
	abs, err := filepath.Abs(*bin)
	if err != nil {
		fatal(err)
	}
	b := &bench{bin: abs, work: filepath.Join(*dir, "files"), res: result{Started: time.Now().UTC().Format(time.RFC3339), Seconds: map[string]float64{}}}
	if err := os.RemoveAll(b.work); err != nil {
		fatal(err)
	}
	if err := os.MkdirAll(b.work, 0o755); err != nil {
		fatal(err)
	}
	start := time.Now()
	if err := b.run(filepath.Join(*dir, "corpus", "diskA.img"), *runs); err != nil {
		b.res.Errors = append(b.res.Errors, err.Error())
	}
	verdict.Print(os.Stdout, b.res.Targets, b.res.Notes, b.res.Errors, fmt.Sprintf("; run took %.0f s", time.Since(start).Seconds()), filepath.Join(b.work, "result.json"))
	if err := verdict.WriteJSON(filepath.Join(b.work, "result.json"), b.res); err != nil {
		fatal(err)
	}
	os.RemoveAll(filepath.Join(b.work, "state"))
	os.RemoveAll(filepath.Join(b.work, "big"))
	os.RemoveAll(filepath.Join(b.work, "restic"))
	os.RemoveAll(filepath.Join(b.work, "out"))
	switch {
	case len(b.res.Errors) > 0:
		os.Exit(1)
	}
	for _, t := range b.res.Targets {
		if t.Status == "FAIL" {
			os.Exit(2)
		}
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "filebench:", err)
	os.Exit(1)
}

func progress(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "[filebench %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
}

// timed runs a command and returns its wall time and standard output.
func timed(env []string, name string, args ...string) (time.Duration, []byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	if err != nil {
		return d, nil, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, verdict.FirstLine(errb.String()))
	}
	return d, out.Bytes(), nil
}

func dropCaches() {
	exec.Command("sync").Run()
	os.WriteFile("/proc/sys/vm/drop_caches", []byte("1"), 0o200)
}

func warm(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	io.Copy(io.Discard, f)
	f.Close()
}

func (b *bench) target(name string, value float64, measured, goal string, pass bool) {
	st := "FAIL"
	if pass {
		st = "PASS"
	}
	b.res.Targets = append(b.res.Targets, verdict.Target{Name: name, Value: value, Measured: measured, Goal: goal, Status: st})
}

func (b *bench) run(diskA string, runs int) error {
	if _, err := os.Stat(diskA); err != nil {
		return fmt.Errorf("corpus missing (%v): run tests/bench/corpus.sh", err)
	}
	state := filepath.Join(b.work, "state")
	if _, _, err := timed(nil, b.bin, "setup", "--state", state); err != nil {
		return err
	}
	st := []string{"--store", filepath.Join(state, "store"), "--key-file", filepath.Join(state, "store.key")}

	// 1. Full backup of disk A, then its catalog.
	progress("coffer: full backup of disk A")
	dropCaches()
	warm(diskA)
	tb, _, err := timed(nil, b.bin, append(append([]string{"store", "backup-image"}, st...), "--source", "vm:a", "--label", "vm=diskA", diskA)...)
	if err != nil {
		return err
	}
	progress("coffer: catalog of disk A")
	tc, out, err := timed(nil, b.bin, "files", "catalog", "--state", state, "--point", "latest", "--vm", "diskA", "--json", "--no-check")
	if err != nil {
		return err
	}
	var hs []struct {
		Entries int     `json:"entries"`
		Verdict string  `json:"verdict"`
		Build   float64 `json:"build_seconds"`
		Seconds float64 `json:"seconds"` // build and save, what a backup job adds
	}
	if err := json.Unmarshal(out, &hs); err != nil || len(hs) != 1 {
		return fmt.Errorf("catalog output: %v: %s", err, out)
	}
	b.res.Seconds["backup_full_A"] = tb.Seconds()
	b.res.Seconds["catalog_A_process"] = tc.Seconds()
	b.res.Seconds["catalog_A"] = hs[0].Seconds
	// What cataloguing adds to a backup job: the appliance builds and
	// saves the catalog in the process that made the point (the store is
	// open). The whole process (start, store open) is noted beside it.
	ratio := hs[0].Seconds / tb.Seconds()
	b.target("catalog (build + save) of full disk A / its full backup", ratio,
		fmt.Sprintf("%.1f%%", 100*ratio), "≤ 15%", ratio <= 0.15)
	b.res.Notes = append(b.res.Notes, fmt.Sprintf("catalog as a process of its own (start, store open, build, save): %.2f s = %.1f%% of the backup",
		tc.Seconds(), 100*tc.Seconds()/tb.Seconds()))
	tk, _, err := timed(nil, b.bin, "files", "catalog", "--state", state, "--point", "latest", "--vm", "diskA")
	if err != nil {
		return err
	}
	b.res.Seconds["catalog_and_check_A"] = tk.Seconds()
	b.res.Notes = append(b.res.Notes, fmt.Sprintf("disk A: backup %.2f s, catalog %.2f s (%d entries, %.2f s of it the walk); the recoverability check adds %.2f s (process with check %.2f s)",
		tb.Seconds(), hs[0].Seconds, hs[0].Entries, hs[0].Build, tk.Seconds()-tc.Seconds(), tk.Seconds()))

	// 2. Whole-disk restore through the export path against restic.
	outDir := filepath.Join(b.work, "out")
	os.MkdirAll(outDir, 0o755)
	progress("coffer: export disk A as raw")
	dropCaches()
	// --no-sync: restic's restore leaves its output in the page cache too
	// (the store benchmark compares restores the same way).
	te, _, err := timed(nil, b.bin, append(append([]string{"store", "export"}, st...), "--point", "latest", "--source", "vm:a", "--format", "raw", "--no-sync", filepath.Join(outDir, "a.raw"))...)
	if err != nil {
		return err
	}
	if err := sameFile(diskA, filepath.Join(outDir, "a.raw")); err != nil {
		return fmt.Errorf("exported disk A: %w", err)
	}
	os.Remove(filepath.Join(outDir, "a.raw"))
	repo := filepath.Join(b.work, "restic")
	renv := []string{"RESTIC_REPOSITORY=" + repo, "RESTIC_PASSWORD=bench", "RESTIC_CACHE_DIR=" + filepath.Join(b.work, "restic-cache")}
	if _, _, err := timed(renv, "restic", "init"); err != nil {
		return err
	}
	progress("restic: backup of disk A")
	if _, _, err := timed(renv, "restic", "backup", "--quiet", diskA); err != nil {
		return err
	}
	progress("restic: restore of disk A")
	dropCaches()
	args := []string{"restore", "latest", "--target", filepath.Join(outDir, "restic")}
	if _, _, err := timed(renv, "restic", "restore", "--help"); err == nil {
		if _, h, _ := timed(renv, "restic", "restore", "--help"); bytes.Contains(h, []byte("--sparse")) {
			args = append(args, "--sparse")
		}
	}
	tr, _, err := timed(renv, "restic", args...)
	if err != nil {
		return err
	}
	b.res.Seconds["export_raw_A"] = te.Seconds()
	b.res.Seconds["restic_restore_A"] = tr.Seconds()
	sp := tr.Seconds() / te.Seconds()
	b.target("whole-disk restore via export (raw) vs restic restore", sp, fmt.Sprintf("%.2fx", sp), "≥ 3x", sp >= 3)
	b.res.Notes = append(b.res.Notes, fmt.Sprintf("disk A restore: coffer export %.2f s, restic restore %.2f s", te.Seconds(), tr.Seconds()))
	os.RemoveAll(filepath.Join(outDir, "restic"))

	// 3. Time to first byte of a 1 MiB file in a 100 GiB-logical point.
	progress("coffer: 100 GiB disk with a 1 MiB file")
	big := filepath.Join(b.work, "big")
	os.MkdirAll(filepath.Join(big, "tree", "srv", "data"), 0o755)
	payload := make([]byte, 1<<20)
	for i := range payload {
		payload[i] = byte(i*7 + i>>9)
	}
	if err := os.WriteFile(filepath.Join(big, "tree", "srv", "data", "report.bin"), payload, 0o644); err != nil {
		return err
	}
	img := filepath.Join(big, "disk.img")
	for _, c := range [][]string{
		{"truncate", "-s", "100G", img},
		{"sgdisk", "-n1:2048:+256M", "-t1:ef00", "-n2:0:0", "-t2:8300", img},
	} {
		if _, _, err := timed(nil, c[0], c[1:]...); err != nil {
			return err
		}
	}
	const rootOff = 2048*512 + 256<<20
	sizeK := (100<<30 - rootOff - 1<<20) / 1024
	if _, _, err := timed(nil, "mke2fs", "-q", "-F", "-t", "ext4", "-E", fmt.Sprintf("offset=%d,lazy_itable_init=1", rootOff),
		"-d", filepath.Join(big, "tree"), img, fmt.Sprintf("%dk", sizeK)); err != nil {
		return err
	}
	if _, _, err := timed(nil, b.bin, append(append([]string{"store", "backup-image"}, st...), "--source", "vm:big", "--label", "vm=big", img)...); err != nil {
		return err
	}
	os.Remove(img)
	if _, _, err := timed(nil, b.bin, "files", "catalog", "--state", state, "--point", "latest", "--vm", "big"); err != nil {
		return err
	}
	var ttfb []time.Duration
	for i := 0; i < runs; i++ {
		dropCaches()
		d, got, err := firstByte(b.bin, "files", "restore", "--state", state, "--point", "latest", "--vm", "big", "/srv/data/report.bin", "--out", "-")
		if err != nil {
			return err
		}
		if sha256.Sum256(got) != sha256.Sum256(payload) {
			return errors.New("the 1 MiB file restored from the 100 GiB point differs")
		}
		ttfb = append(ttfb, d)
	}
	sort.Slice(ttfb, func(i, j int) bool { return ttfb[i] < ttfb[j] })
	med := ttfb[len(ttfb)/2]
	b.res.Seconds["ttfb_1MiB_of_100GiB"] = med.Seconds()
	b.target("first byte of a 1 MiB file of a 100 GiB point (median, cold cache)", med.Seconds(),
		fmt.Sprintf("%.0f ms", float64(med.Microseconds())/1000), "< 1000 ms", med < time.Second)
	b.res.Notes = append(b.res.Notes, fmt.Sprintf("time to first byte over %d runs: %v (a fresh process each: store open, partition table, ext4, file)", runs, ttfb))
	return nil
}

// firstByte starts a command and returns the time until its first byte of
// output, and all of the output.
func firstByte(name string, args ...string) (time.Duration, []byte, error) {
	cmd := exec.Command(name, args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return 0, nil, err
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, nil, err
	}
	br := bufio.NewReader(pipe)
	first, err := br.ReadByte()
	d := time.Since(t0)
	if err != nil {
		cmd.Wait()
		return d, nil, fmt.Errorf("%s: no output: %v: %s", name, err, errb.String())
	}
	rest, err := io.ReadAll(br)
	if werr := cmd.Wait(); err == nil {
		err = werr
	}
	if err != nil {
		return d, nil, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, errb.String())
	}
	return d, append([]byte{first}, rest...), nil
}

func sameFile(a, b string) error {
	fa, err := os.Open(a)
	if err != nil {
		return err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return err
	}
	defer fb.Close()
	ba, bb := make([]byte, 4<<20), make([]byte, 4<<20)
	for off := int64(0); ; {
		na, ea := io.ReadFull(fa, ba)
		nb, _ := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return fmt.Errorf("differs near byte %d", off)
		}
		off += int64(na)
		if ea != nil {
			return nil
		}
	}
}
