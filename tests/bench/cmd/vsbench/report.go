package main

import (
	"coffer.dev/coffer/tests/bench/internal/verdict"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"
)

const (
	partIngest = "ingest"
	partIncr   = "incremental"

	stepStore  = "store-ingest"  // store.NewBackup..Commit of diskA.img
	stepEngine = "engine-full"   // Engine.BackupVM of the diskA VM
	stepFull   = "full-large"    // Engine.BackupVM of the large disk, first
	stepIncr   = "incremental-1" // and after the change
	// References, no target.
	stepStoreLarge = "store-ingest-large" // the store's own ingest of the large disk
	stepSnap       = "vcsim-snapshot"     // a snapshot of the large disk alone
)

var stepTitles = map[string]string{
	stepStore:      "store ingest",
	stepEngine:     "engine via vcsim",
	stepFull:       "full backup",
	stepIncr:       "incremental",
	stepStoreLarge: "(store ingest)",
	stepSnap:       "(vcsim snapshot)",
}

// run is one timed operation.
type run struct {
	Part string `json:"part"`
	Step string `json:"step"`
	Iter int    `json:"iteration"`
	// Seconds is wall clock: NewBackup to Commit for the store, the whole
	// BackupVM call for the engine.
	Seconds float64 `json:"seconds"`
	// SnapshotSeconds is the part of an engine run before the first disk
	// read: finding the VM, the snapshot and the changed-area queries.
	SnapshotSeconds float64 `json:"pre_read_seconds,omitempty"`
	// SimSnapshotSeconds is the simulator's snapshot task within it (with
	// -vcsim-cbt hash, its CBT double hashes every data block of the disk
	// in it; with write tracking, the default, it reads no data, as ESXi
	// keeps a change log): from the engine's CreateSnapshot request to its
	// first QueryChangedDiskAreas.
	SimSnapshotSeconds float64 `json:"vcsim_snapshot_seconds,omitempty"`
	// DataBytes is the MB/s numerator: the data of diskA.img (its
	// SEEK_DATA extents) for both sides of the ingest comparison; the data on
	// the disk for the large full backup; the changed bytes for the
	// incremental one.
	DataBytes      int64   `json:"data_bytes"`
	MBPerSec       float64 `json:"data_mb_per_s"` // 10^6 bytes
	Method         string  `json:"method,omitempty"`
	ReadBytes      int64   `json:"read_bytes"`   // vsphere.Result.Read / point stats
	StoredBytes    int64   `json:"stored_bytes"` // vsphere.Result.Stored / point stats
	NewBytes       int64   `json:"new_bytes"`
	CBTChanged     int64   `json:"cbt_changed_bytes,omitempty"` // what changed block tracking reported (full: allocated)
	Requests       int64   `json:"read_requests,omitempty"`     // HTTPS range reads of the datastore
	CPUSeconds     float64 `json:"cpu_seconds"`                 // this process: simulator, engine and store
	LoadAvgStart   float64 `json:"loadavg_at_start"`
	OthersCPUShare float64 `json:"others_cpu_share"` // share of all CPUs other processes used meanwhile
	// QuietWaitSeconds is how long the run waited for other processes to
	// calm down before it started.
	QuietWaitSeconds float64  `json:"quiet_wait_seconds"`
	StartedBusy      bool     `json:"started_busy,omitempty"` // other processes still used >= 10% of the CPUs
	Point            string   `json:"point,omitempty"`
	Warnings         []string `json:"warnings,omitempty"`
	Error            string   `json:"error,omitempty"`
}

type corpusInfo struct {
	File      string `json:"file"`
	Bytes     int64  `json:"bytes"`
	DataBytes int64  `json:"data_bytes"`
	Extents   int    `json:"extents"`
}

// diskLayout describes the large disk of the incremental benchmark.
type diskLayout struct {
	Capacity         int64 `json:"capacity_bytes"`
	ImageDataBytes   int64 `json:"image_data_bytes"` // diskA.img's data at offset 0
	GeneratedFrom    int64 `json:"generated_from_offset"`
	GeneratedBytes   int64 `json:"generated_bytes"`
	GeneratedExtents int   `json:"generated_extents"`
	DataBytes        int64 `json:"data_bytes"`
	ChangedBytes     int64 `json:"changed_bytes"`
	ChangedRuns      int   `json:"changed_runs"`
}

type target = verdict.Target

type result struct {
	Started      string         `json:"started"`
	Host         string         `json:"host"`
	Params       map[string]any `json:"params"`
	Corpus       *corpusInfo    `json:"corpus,omitempty"`
	Disk20       *diskLayout    `json:"large_disk,omitempty"`
	Runs         []*run         `json:"runs"`
	Summary      map[string]any `json:"summary,omitempty"`
	Targets      []target       `json:"targets"`
	TotalSeconds float64        `json:"total_seconds"`
	Notes        []string       `json:"notes,omitempty"`
	Errors       []string       `json:"errors,omitempty"`
}

// ok returns the successful runs of a step.
func (h *harness) ok(step string) []*run {
	var out []*run
	for _, rw := range h.res.Runs {
		if rw.Step == step && rw.Error == "" && rw.Seconds > 0 {
			out = append(out, rw)
		}
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func seconds(runs []*run, f func(*run) float64) []float64 {
	out := make([]float64, len(runs))
	for i, rw := range runs {
		out[i] = f(rw)
	}
	return out
}

func (h *harness) addTarget(name, goal string, value float64, measured string, pass, have bool) {
	t := target{Name: name, Goal: goal, Value: value, Measured: measured}
	switch {
	case have && pass:
		t.Status = "PASS"
	case have:
		t.Status = "FAIL"
	default:
		t.Status = "FAIL"
		t.Measured = "missing"
	}
	if math.IsNaN(t.Value) || math.IsInf(t.Value, 0) {
		t.Value = 0
	}
	h.res.Targets = append(h.res.Targets, t)
}

// evaluate computes the summary figures and the targets (only of the
// parts that ran). The targets are judged on the whole BackupVM time; the
// figures without the simulator's snapshot task are printed beside them.
func (h *harness) evaluate(only string) {
	h.res.Summary = map[string]any{}
	sum := h.res.Summary
	if only == "" || only == partIngest {
		st, en := h.ok(stepStore), h.ok(stepEngine)
		name := "engine via vcsim / store ingest speed, diskA.img (medians)"
		if len(st) == h.runs && len(en) == h.runs {
			ts := median(seconds(st, func(r *run) float64 { return r.Seconds }))
			te := median(seconds(en, func(r *run) float64 { return r.Seconds }))
			data := float64(st[0].DataBytes)
			v := ts / te
			sum["ingest_store_median_seconds"] = ts
			sum["ingest_engine_median_seconds"] = te
			sum["ingest_store_median_mb_per_s"] = data / ts / 1e6
			sum["ingest_engine_median_mb_per_s"] = data / te / 1e6
			sum["ingest_ratio"] = v
			sum["ingest_engine_vcsim_snapshot_median_seconds"] = median(seconds(en, func(r *run) float64 { return r.SimSnapshotSeconds }))
			if te2 := median(seconds(en, func(r *run) float64 { return r.Seconds - r.SimSnapshotSeconds })); te2 > 0 {
				sum["ingest_engine_without_vcsim_snapshot_median_seconds"] = te2
				sum["ingest_ratio_without_vcsim_snapshot"] = ts / te2
			}
			h.addTarget(name, ">= 0.80", v, fmt.Sprintf("%.2f", v), v >= 0.80, true)
		} else {
			h.addTarget(name, ">= 0.80", 0, "", false, false)
		}
	}
	if only == "" || only == partIncr {
		gib := float64(h.diskSize) / (1 << 30)
		name := fmt.Sprintf("incremental / full backup time, %.0f GiB disk, %.2g%% changed", gib, h.changePct)
		f, i := h.ok(stepFull), h.ok(stepIncr)
		if len(f) == 1 && len(i) == 1 {
			v := i[0].Seconds / f[0].Seconds
			sum["incremental_full_seconds"] = f[0].Seconds
			sum["incremental_incremental_seconds"] = i[0].Seconds
			sum["incremental_ratio"] = v
			sf, si := f[0].SimSnapshotSeconds, i[0].SimSnapshotSeconds
			if sf > 0 && si > 0 && f[0].Seconds > sf {
				sum["incremental_full_vcsim_snapshot_seconds"] = sf
				sum["incremental_incremental_vcsim_snapshot_seconds"] = si
				sum["incremental_ratio_without_vcsim_snapshot"] = (i[0].Seconds - si) / (f[0].Seconds - sf)
			}
			h.addTarget(name, "<= 0.05", v, fmt.Sprintf("%.3f", v), v <= 0.05, true)
			if sn := h.ok(stepSnap); len(sn) == 1 {
				sum["vcsim_snapshot_alone_seconds"] = sn[0].Seconds
			}
			if sl := h.ok(stepStoreLarge); len(sl) == 1 {
				sum["large_store_ingest_seconds"] = sl[0].Seconds
				sum["large_engine_store_speed_ratio"] = sl[0].Seconds / f[0].Seconds
				if x := f[0].Seconds - sf; sf > 0 && x > 0 {
					sum["large_engine_store_speed_ratio_without_vcsim_snapshot"] = sl[0].Seconds / x
				}
			}
		} else {
			h.addTarget(name, "<= 0.05", 0, "", false, false)
		}
	}

	worst := 0.0
	for _, rw := range h.res.Runs {
		worst = max(worst, rw.OthersCPUShare)
	}
	waited, gaveUp := 0.0, 0
	for _, rw := range h.res.Runs {
		waited += rw.QuietWaitSeconds
		if rw.StartedBusy {
			gaveUp++
		}
	}
	if waited >= float64(len(h.res.Runs))+1 || gaveUp > 0 {
		h.res.Notes = append(h.res.Notes, fmt.Sprintf("waited %.0f s in all for other processes to calm down before timed runs; "+
			"%d of %d runs started while they still used >= %.0f%% of the CPUs", waited, gaveUp, len(h.res.Runs), 100*quietShare))
	}
	if worst > verdict.Noisy {
		h.res.Notes = append(h.res.Notes, fmt.Sprintf("machine busy: other processes used up to %.0f%% of the CPUs "+
			"during timed runs (others_cpu_share in the runs): ratios from this run are unreliable", 100*worst))
	}
	if d := h.res.Disk20; d != nil && d.Capacity == 20<<30 && d.DataBytes < 5<<30 {
		h.res.Notes = append(h.res.Notes, fmt.Sprintf("the 20 GiB disk held only %s of data (~6 GiB asked for)", mib(d.DataBytes)))
	}
	if h.res.TotalSeconds > 6*60 {
		h.res.Notes = append(h.res.Notes, fmt.Sprintf("the run took %.0f s, more than the 6 minutes it should", h.res.TotalSeconds))
	}
}

func (h *harness) anyTargetFailed() bool {
	for _, t := range h.res.Targets {
		if t.Status == "FAIL" {
			return true
		}
	}
	return false
}

func (h *harness) printReport(w io.Writer) {
	r := &h.res
	fmt.Fprintf(w, "\nCoffer vSphere engine benchmark, %s, %s\n", r.Started, r.Host)
	if h.hashCBT {
		fmt.Fprintln(w, "simulator CBT: hashing every data block at every snapshot (-vcsim-cbt hash)")
	} else {
		fmt.Fprintln(w, "simulator CBT: write tracking (vcsim.Options.TrackWrites; the change goes through WriteDisk)")
	}
	if c := r.Corpus; c != nil {
		fmt.Fprintf(w, "corpus: diskA.img %s, %s data in %d extents\n", mib(c.Bytes), mib(c.DataBytes), c.Extents)
	}
	if d := r.Disk20; d != nil {
		fmt.Fprintf(w, "large disk: %s capacity, %s data (%s of diskA.img + %s generated in %d runs from %s on); changed %s in %d runs\n",
			gibs(d.Capacity), mib(d.DataBytes), mib(d.ImageDataBytes), mib(d.GeneratedBytes), d.GeneratedExtents,
			gibs(d.GeneratedFrom), mib(d.ChangedBytes), d.ChangedRuns)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-11s %-17s %3s %8s %8s %8s %8s %11s %11s %11s %7s %6s\n", "part", "step", "run", "seconds", "pre-read",
		"vcsim sn", "MB/s", "read", "stored", "new", "cpu s", "others")
	fmt.Fprintln(w, strings.Repeat("-", 119))
	for _, rw := range r.Runs {
		if rw.Error != "" && rw.Seconds == 0 {
			fmt.Fprintf(w, "%-11s %-17s %3d  ERROR: %s\n", rw.Part, stepTitles[rw.Step], rw.Iter, truncate(rw.Error, 70))
			continue
		}
		pre, snap := "-", "-"
		if rw.SnapshotSeconds > 0 {
			pre = fmt.Sprintf("%.2f", rw.SnapshotSeconds)
		}
		if rw.SimSnapshotSeconds > 0 {
			snap = fmt.Sprintf("%.2f", rw.SimSnapshotSeconds)
		}
		mark := ""
		if rw.Error != "" {
			mark = "  ERROR: " + truncate(rw.Error, 60)
		}
		fmt.Fprintf(w, "%-11s %-17s %3d %8.2f %8s %8s %8.1f %11s %11s %11s %7.2f %5.0f%%%s\n", rw.Part, stepTitles[rw.Step], rw.Iter,
			rw.Seconds, pre, snap, rw.MBPerSec, mib(rw.ReadBytes), mib(rw.StoredBytes), mib(rw.NewBytes), rw.CPUSeconds,
			100*rw.OthersCPUShare, mark)
	}
	fmt.Fprintln(w, "(seconds: wall clock, NewBackup..Commit for the store, the whole BackupVM call for the engine;")
	fmt.Fprintln(w, " pre-read: the part of BackupVM before its first disk read (snapshot, changed-area queries);")
	fmt.Fprintln(w, " vcsim sn: within that, the simulator's snapshot task (with write tracking it reads no data, as")
	fmt.Fprintln(w, " ESXi keeps a change log; with -vcsim-cbt hash it hashes every data block of the disk); MB/s: data")
	fmt.Fprintln(w, " bytes / seconds / 10^6 (ingest: diskA.img's data for both sides; full: the disk's data;")
	fmt.Fprintln(w, " incremental: the changed bytes);")
	fmt.Fprintln(w, " read/stored/new: the store's figures (vsphere.Result Read and Stored, point stats); cpu s: this")
	fmt.Fprintln(w, " process (simulator, engine and store share it); others: share of all CPUs other processes used)")

	s := r.Summary
	if v, ok := s["ingest_ratio"].(float64); ok {
		fmt.Fprintf(w, "\ningest medians: store %.2f s (%.1f MB/s), engine via vcsim %.2f s (%.1f MB/s): engine/store speed %.2f\n",
			s["ingest_store_median_seconds"], s["ingest_store_median_mb_per_s"],
			s["ingest_engine_median_seconds"], s["ingest_engine_median_mb_per_s"], v)
		if x, ok := s["ingest_ratio_without_vcsim_snapshot"].(float64); ok {
			fmt.Fprintf(w, "  without the simulator's snapshot task (median %.2f s): engine %.2f s, engine/store speed %.2f\n",
				s["ingest_engine_vcsim_snapshot_median_seconds"], s["ingest_engine_without_vcsim_snapshot_median_seconds"], x)
		}
	}
	if v, ok := s["incremental_ratio"].(float64); ok {
		fmt.Fprintf(w, "large disk: full %.2f s, incremental %.2f s: incremental/full %.3f\n", s["incremental_full_seconds"],
			s["incremental_incremental_seconds"], v)
		if x, ok := s["incremental_ratio_without_vcsim_snapshot"].(float64); ok {
			fmt.Fprintf(w, "  without the simulator's snapshot tasks (%.2f s and %.2f s): incremental/full %.3f\n",
				s["incremental_full_vcsim_snapshot_seconds"], s["incremental_incremental_vcsim_snapshot_seconds"], x)
		}
		if x, ok := s["vcsim_snapshot_alone_seconds"].(float64); ok {
			fmt.Fprintf(w, "  (a snapshot of that disk taken alone, no backup, takes the simulator %.2f s)\n", x)
		}
		if x, ok := s["large_engine_store_speed_ratio"].(float64); ok {
			fmt.Fprintf(w, "  the store's own ingest of the same disk takes %.2f s: engine/store speed on it %.2f", s["large_store_ingest_seconds"], x)
			if y, ok := s["large_engine_store_speed_ratio_without_vcsim_snapshot"].(float64); ok {
				fmt.Fprintf(w, ", %.2f without the snapshot task", y)
			}
			fmt.Fprintln(w, " (no target)")
		}
	}
	// How much the engine fetched from the datastore for what change
	// tracking asked it to read.
	if en := h.ok(stepEngine); len(en) > 0 && en[0].CBTChanged > 0 {
		fmt.Fprintf(w, "engine reads, ingest run 1: %s fetched for %s of CBT areas (%.2fx) in %d requests\n",
			mib(en[0].ReadBytes), mib(en[0].CBTChanged), float64(en[0].ReadBytes)/float64(en[0].CBTChanged), en[0].Requests)
	}
	for _, rw := range r.Runs {
		if rw.Part == partIncr && rw.Error == "" {
			if rw.Step != stepFull && rw.Step != stepIncr {
				continue
			}
			fmt.Fprintf(w, "engine reads, %s: %s fetched for %s of CBT areas (%.2fx) in %d requests; point %s (%s), stored %s\n",
				stepTitles[rw.Step], mib(rw.ReadBytes), mib(rw.CBTChanged), float64(rw.ReadBytes)/float64(max(rw.CBTChanged, 1)),
				rw.Requests, rw.Point, rw.Method, mib(rw.StoredBytes))
		}
		for _, wn := range rw.Warnings {
			fmt.Fprintf(w, "  warning (%s %d): %s\n", stepTitles[rw.Step], rw.Iter, wn)
		}
	}

	verdict.Print(w, r.Targets, r.Notes, r.Errors, fmt.Sprintf("; run took %.0f s", r.TotalSeconds), filepath.Join(h.work, "result.json"))
}

func (h *harness) writeJSON() error {
	return verdict.WriteJSON(filepath.Join(h.work, "result.json"), h.res)
}

// selfCPU is this process's user + system time so far, in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func loadAvg() float64 {
	var l float64
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscan(string(b), &l)
	}
	return l
}

func numCPU() int { return runtime.NumCPU() }

func hostInfo() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.Join(strings.Fields(v), " ")
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %.0f GiB RAM", float64(kb)/(1<<20))
		}
	}
	s := fmt.Sprintf("%d CPUs%s, %s, %s/%s", runtime.NumCPU(), mem, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if model != "" {
		s = model + ", " + s
	}
	return s
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func gibs(n int64) string { return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30)) }

func truncate(s string, n int) string {
	s = firstLine(s)
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
