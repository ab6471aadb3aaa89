// Command bench measures Coffer against restic and borgbackup on the VM-disk
// corpus that tests/bench/corpus.sh builds, in one run, and prints one table
// plus the ratios against Coffer's targets (see tests/bench/README.md).
//
//	go run ./tests/bench/cmd/bench -coffer bin/coffer [-dir var/bench]
//
// Every timed operation runs once per tool, as a child process (wall clock,
// peak RSS from its rusage), steps interleaved across the tools, each after
// the same preparation: the input read once into the page cache and a sync.
// The exit status is 0 when every target passes, 2 when a measurement
// missed a target and 1 when something failed (a tool error or a restore
// that is not bit-exact).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"coffer.dev/coffer/tests/bench/internal/diskcmp"
)

func main() {
	cofferBin := flag.String("coffer", "", "path of the coffer binary (required unless -tools leaves coffer out)")
	dirFlag := flag.String("dir", "var/bench", "benchmark directory; corpus/ in it comes from tests/bench/corpus.sh")
	toolsFlag := flag.String("tools", "coffer,restic,borg", "comma-separated tools to measure")
	readAtCount := flag.Int("readat-count", 20000, "reads for coffer's bench-readat")
	timeout := flag.Duration("timeout", 30*time.Minute, "limit for any one tool invocation")
	keep := flag.Bool("keep", false, "keep repositories, staged and restored images after the run")
	flag.Parse()

	h, err := newHarness(*dirFlag, *cofferBin, *toolsFlag, *timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	h.readAtCount = *readAtCount
	h.measure()
	h.evaluate()
	h.printReport(os.Stdout)
	if err := h.writeJSON(); err != nil {
		h.fail("writing result.json: %v", err)
	}
	if !*keep {
		for _, d := range []string{h.stageDir, h.restoreDir, h.runDir} {
			os.RemoveAll(d)
		}
	}
	switch {
	case len(h.res.Errors) > 0:
		fmt.Fprintf(os.Stderr, "\nbench: FAILED: %d error(s), see above and %s\n", len(h.res.Errors), h.logDir)
		os.Exit(1)
	case h.anyTargetFailed():
		os.Exit(2)
	}
}

type harness struct {
	base, corpus                  string
	stageDir, runDir, restoreDir  string
	logDir                        string
	diskA, diskB, diskA2, changed string // corpus files
	stageA, stageB                string // what the tools back up
	logicalA, logicalB, logicalA2 int64

	r           *runner
	tools       []tool
	toolNames   []string
	cof         *coffer // nil when coffer is not measured
	readAtCount int

	broken   map[string]bool // tool name -> its init failed
	stepOK   map[string]bool // "tool/step" -> succeeded
	stepDone map[string]*row // "tool/step" -> its row
	res      result
}

func newHarness(dir, cofferBin, toolList string, timeout time.Duration) (*harness, error) {
	base, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	h := &harness{
		base:       base,
		corpus:     filepath.Join(base, "corpus"),
		stageDir:   filepath.Join(base, "stage"),
		runDir:     filepath.Join(base, "run"),
		restoreDir: filepath.Join(base, "restore"),
		logDir:     filepath.Join(base, "logs"),
		broken:     map[string]bool{},
		stepOK:     map[string]bool{},
		stepDone:   map[string]*row{},
	}
	h.diskA = filepath.Join(h.corpus, "diskA.img")
	h.diskB = filepath.Join(h.corpus, "diskB.img")
	h.diskA2 = filepath.Join(h.corpus, "diskA2.img")
	h.changed = filepath.Join(h.corpus, "changedA2.txt")
	h.stageA = filepath.Join(h.stageDir, "A", "disk.img")
	h.stageB = filepath.Join(h.stageDir, "B", "disk.img")
	for _, f := range []string{h.diskA, h.diskB, h.diskA2, h.changed} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("corpus incomplete (%v); build it with tests/bench/corpus.sh %s", err, base)
		}
	}
	for _, d := range []string{h.stageDir, h.runDir, h.restoreDir, h.logDir} {
		if err := os.RemoveAll(d); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	h.r = &runner{logDir: h.logDir, timeout: timeout}

	for _, name := range strings.Split(toolList, ",") {
		name = strings.TrimSpace(name)
		dir := filepath.Join(h.runDir, name)
		var t tool
		switch name {
		case "coffer":
			if cofferBin == "" {
				return nil, errors.New("-coffer PATH is required (or leave coffer out of -tools)")
			}
			bin, err := filepath.Abs(cofferBin)
			if err != nil {
				return nil, err
			}
			if _, err := os.Stat(bin); err != nil {
				return nil, fmt.Errorf("coffer binary: %w", err)
			}
			h.cof = &coffer{r: h.r, bin: bin, dir: dir, points: map[string]string{}}
			t = h.cof
		case "restic":
			t = &restic{r: h.r, dir: dir, stage: h.stageDir, snapshots: map[string]string{}}
		case "borg":
			t = &borg{r: h.r, dir: dir, stage: h.stageDir}
		case "":
			continue
		default:
			return nil, fmt.Errorf("unknown tool %q (want coffer, restic, borg)", name)
		}
		if name != "coffer" {
			if _, err := exec.LookPath(name); err != nil {
				return nil, fmt.Errorf("%s is not installed: %w", name, err)
			}
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		h.tools = append(h.tools, t)
		h.toolNames = append(h.toolNames, name)
	}
	if len(h.tools) == 0 {
		return nil, errors.New("no tools to measure")
	}
	if err := checkSpace(base, 12<<30); err != nil {
		return nil, err
	}
	h.res = result{
		Started:  time.Now().UTC().Format(time.RFC3339),
		Host:     hostInfo(),
		Versions: map[string]string{},
	}
	for _, t := range h.tools {
		switch t.Name() {
		case "coffer":
			h.res.Versions["coffer"] = h.cof.bin
		case "restic":
			h.res.Versions["restic"] = output("restic", "version")
		case "borg":
			h.res.Versions["borg"] = output("borg", "--version")
		}
	}
	return h, nil
}

func (h *harness) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintln(os.Stderr, "bench: ERROR:", msg)
	h.res.Errors = append(h.res.Errors, msg)
}

func (h *harness) progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[bench %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// measure runs every step for every tool.
func (h *harness) measure() {
	var err error
	if h.res.Corpus, err = describeCorpus(h); err != nil {
		h.fail("corpus: %v", err)
		return
	}
	h.logicalA = h.res.Corpus["diskA.img"].Bytes
	h.logicalB = h.res.Corpus["diskB.img"].Bytes
	h.logicalA2 = h.res.Corpus["diskA2.img"].Bytes

	h.progress("staging disk images")
	if err := stage(h.diskA, h.stageA); err != nil {
		h.fail("staging A: %v", err)
		return
	}
	if err := stage(h.diskB, h.stageB); err != nil {
		h.fail("staging B: %v", err)
		return
	}
	for _, t := range h.tools {
		h.progress("%s: init", t.Name())
		if err := t.Init(); err != nil {
			h.fail("%s init: %v", t.Name(), err)
			h.broken[t.Name()] = true
		}
	}

	h.backupStep(backupJob{Step: stepFullA, Source: "A", Image: h.stageA}, h.logicalA, nil)
	h.backupStep(backupJob{Step: stepFullB, Source: "B", Image: h.stageB}, h.logicalB, nil)

	h.progress("staging day 2 of A over day 1")
	if err := stage(h.diskA2, h.stageA); err != nil {
		h.fail("staging A2: %v", err)
		return
	}
	h.backupStep(backupJob{Step: stepDay2A, Source: "A", Image: h.stageA, Changed: h.changed},
		h.logicalA2, []string{stepFullA})
	h.restoreStep()

	if h.cof != nil && h.stepOK["coffer/"+stepDay2A] {
		h.progress("coffer: stats")
		if st, err := h.cof.Stats(); err != nil {
			h.fail("coffer stats: %v", err)
		} else {
			h.res.CofferStats = st
		}
		h.progress("coffer: bench-readat --count %d", h.readAtCount)
		if ra, err := h.cof.ReadAt(h.readAtCount); err != nil {
			h.fail("coffer bench-readat: %v", err)
		} else {
			h.res.CofferReadAt = ra
		}
	}
	if h.cof != nil {
		h.res.CofferRuns = h.cof.runs
	}
}

// ready reports whether tool t may run step, given the steps it needs.
func (h *harness) ready(t tool, needs []string) bool {
	if h.broken[t.Name()] {
		return false
	}
	for _, n := range needs {
		if !h.stepOK[t.Name()+"/"+n] {
			return false
		}
	}
	return true
}

func (h *harness) addRow(rw *row) {
	h.res.Rows = append(h.res.Rows, rw)
	h.stepDone[rw.Tool+"/"+rw.Step] = rw
	if rw.Error == "" {
		h.stepOK[rw.Tool+"/"+rw.Step] = true
	}
}

func (h *harness) backupStep(j backupJob, logical int64, needs []string) {
	for _, t := range h.tools {
		rw := &row{Step: j.Step, Tool: t.Name(), LogicalBytes: logical}
		if !h.ready(t, needs) {
			rw.Error = "skipped: an earlier step failed"
			h.addRow(rw)
			continue
		}
		job := j
		if t.Name() != "coffer" {
			job.Changed = "" // restic and borg have no changed-block input
		}
		h.progress("%s: %s", t.Name(), stepTitles[j.Step])
		if err := prepare([]string{j.Image}); err != nil {
			h.fail("preparing %s: %v", j.Step, err)
			return
		}
		rw.LoadAvgStart = loadAvg()
		p, extra, err := t.Backup(job)
		rw.fill(p, extra)
		if err != nil {
			rw.Error = firstLine(err.Error())
			h.fail("%s %s: %v", t.Name(), stepTitles[j.Step], err)
		}
		rw.StoredBytes, _ = treeSize(t)
		h.addRow(rw)
	}
}

func (h *harness) restoreStep() {
	for _, t := range h.tools {
		rw := &row{Step: stepRestore, Tool: t.Name(), LogicalBytes: h.logicalA2}
		if !h.ready(t, []string{stepDay2A}) {
			rw.Error = "skipped: an earlier step failed"
			h.addRow(rw)
			continue
		}
		h.progress("%s: %s", t.Name(), stepTitles[stepRestore])
		out := filepath.Join(h.restoreDir, t.Name())
		if err := os.MkdirAll(out, 0o755); err != nil {
			h.fail("%v", err)
			return
		}
		// Same cache state for everyone: the repository read once.
		files, err := treeFiles(t.Repo())
		if err == nil {
			err = prepare(files)
		}
		if err != nil {
			h.fail("preparing restore: %v", err)
			return
		}
		rw.LoadAvgStart = loadAvg()
		p, img, extra, err := t.Restore(out)
		rw.fill(p, extra)
		rw.StoredBytes, _ = treeSize(t)
		if err != nil {
			rw.Error = firstLine(err.Error())
			h.fail("%s restore: %v", t.Name(), err)
			h.addRow(rw)
			continue
		}
		h.progress("%s: verifying the restored image against diskA2.img", t.Name())
		eq, off, err := diskcmp.Equal(img, h.diskA2)
		switch {
		case err != nil:
			rw.Error = "verify: " + err.Error()
		case !eq:
			rw.Error = fmt.Sprintf("restored image differs from diskA2.img at byte %d", off)
		default:
			rw.Verified = true
			if st, err := os.Stat(img); err == nil {
				rw.RestoredAllocated = st.Sys().(*syscall.Stat_t).Blocks * 512
			}
		}
		if rw.Error != "" {
			h.fail("%s restore: %s", t.Name(), rw.Error)
		}
		os.RemoveAll(out)
		h.addRow(rw)
	}
}

// stage copies src to dst sparsely, replacing dst (a new inode, so every
// tool sees a changed file).
func stage(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Remove(dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if out, err := exec.Command("cp", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("cp %s %s: %v: %s", src, dst, err, out)
	}
	return nil
}

// prepare puts the inputs of the next timed run in the page cache (the
// data regions of each file, read once, as `cat f >/dev/null` would) and
// flushes dirty pages left by earlier runs, so every tool starts alike.
func prepare(files []string) error {
	buf := make([]byte, 4<<20)
	for _, f := range files {
		if err := warm(f, buf); err != nil {
			return err
		}
	}
	syscall.Sync()
	return nil
}

func warm(path string, buf []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	ranges, err := diskcmp.DataRanges(f)
	if err != nil {
		return err
	}
	for _, r := range ranges {
		if _, err := io.CopyBuffer(io.Discard, io.NewSectionReader(f, r.Off, r.Len), buf); err != nil {
			return err
		}
	}
	return nil
}

// treeFiles lists the regular files below dir.
func treeFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	return files, err
}

// treeSize is what the regular files below dir take on disk (allocated
// blocks, so that sparse preallocations such as badger's logs count for
// what they use), leaving out the files the tool names as free-space
// reserves (see reserver).
func treeSize(t tool) (int64, error) {
	dir := t.Repo()
	skip := map[string]bool{}
	if r, ok := t.(reserver); ok {
		for _, f := range r.Reserves() {
			skip[filepath.Join(dir, f)] = true
		}
	}
	var n int64
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && !skip[p] {
			info, err := d.Info()
			if err != nil {
				return err
			}
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			} else {
				n += info.Size()
			}
		}
		return nil
	})
	return n, err
}

// reserver is a tool whose repository holds a preallocated free-space
// reserve: empty space held back, not stored data.
type reserver interface {
	Reserves() []string
}

func checkSpace(dir string, need int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return err
	}
	if free := int64(st.Bavail) * st.Bsize; free < need {
		return fmt.Errorf("only %.1f GiB free below %s; the run needs about %.0f GiB",
			float64(free)/(1<<30), dir, float64(need)/(1<<30))
	}
	return nil
}

func describeCorpus(h *harness) (map[string]corpusFile, error) {
	out := map[string]corpusFile{}
	for _, p := range []string{h.diskA, h.diskB, h.diskA2} {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		data, err := diskcmp.DataBytes(p)
		if err != nil {
			return nil, err
		}
		out[filepath.Base(p)] = corpusFile{Bytes: st.Size(), DataBytes: data}
	}
	b, err := os.ReadFile(h.changed)
	if err != nil {
		return nil, err
	}
	var cf corpusFile
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var off, n int64
		if _, err := fmt.Sscan(l, &off, &n); err != nil {
			return nil, fmt.Errorf("%s: bad line %q", h.changed, l)
		}
		cf.Extents++
		cf.Bytes += n
	}
	out["changedA2.txt"] = cf
	return out, nil
}

func hostInfo() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s, %d CPUs, %s, %s/%s", host, runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
