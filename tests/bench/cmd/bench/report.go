package main

import (
	"coffer.dev/coffer/tests/bench/internal/verdict"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"runtime"
	"strings"
)

// row is one timed operation of one tool.
type row struct {
	Step              string         `json:"step"`
	Tool              string         `json:"tool"`
	Seconds           float64        `json:"seconds"`
	LogicalBytes      int64          `json:"logical_bytes"`
	MBPerSec          float64        `json:"logical_mb_per_s"` // 10^6 bytes
	StoredBytes       int64          `json:"stored_bytes"`     // repository size after the step
	PeakRSSBytes      int64          `json:"peak_rss_bytes"`
	CPUSeconds        float64        `json:"cpu_seconds"`                        // user + system
	LoadAvgStart      float64        `json:"loadavg_at_start"`                   // 1-minute load average
	OthersCPUShare    float64        `json:"others_cpu_share"`                   // share of all CPUs used by other processes meanwhile
	Verified          bool           `json:"verified,omitempty"`                 // restore: bit-exact
	RestoredAllocated int64          `json:"restored_allocated_bytes,omitempty"` // restore: disk blocks of the output
	Extra             map[string]any `json:"extra,omitempty"`
	Error             string         `json:"error,omitempty"`
}

func (rw *row) fill(p proc, extra map[string]any) {
	rw.Seconds = p.Seconds
	rw.PeakRSSBytes = p.MaxRSS
	rw.CPUSeconds = p.CPU
	if p.Seconds > 0 {
		rw.OthersCPUShare = p.Others / (p.Seconds * float64(runtime.NumCPU()))
	}
	if p.Seconds > 0 {
		rw.MBPerSec = float64(rw.LogicalBytes) / p.Seconds / 1e6
	}
	rw.Extra = extra
}

type corpusFile struct {
	Bytes     int64 `json:"bytes"`
	DataBytes int64 `json:"data_bytes,omitempty"`
	Extents   int   `json:"extents,omitempty"`
}

type target = verdict.Target

type result struct {
	Started      string                `json:"started"`
	Host         string                `json:"host"`
	Versions     map[string]string     `json:"versions"`
	Corpus       map[string]corpusFile `json:"corpus"`
	Rows         []*row                `json:"runs"`
	CofferStats  map[string]any        `json:"coffer_stats,omitempty"`
	CofferReadAt map[string]any        `json:"coffer_readat,omitempty"`
	CofferRuns   []rssRecord           `json:"coffer_runs,omitempty"`
	Targets      []target              `json:"targets"`
	Notes        []string              `json:"notes,omitempty"`
	Errors       []string              `json:"errors,omitempty"`
}

// get returns the row of tool at step when it succeeded.
func (h *harness) get(tool, step string) *row {
	rw := h.stepDone[tool+"/"+step]
	if rw == nil || rw.Error != "" || rw.Seconds <= 0 {
		return nil
	}
	return rw
}

func (h *harness) selected(tool string) bool {
	for _, n := range h.toolNames {
		if n == tool {
			return true
		}
	}
	return false
}

// verdict turns a measured value into a status: n/a when a needed tool was
// not measured at all, FAIL when coffer's value is missing or misses goal.
func (h *harness) addTarget(name, goal string, value float64, measured string, ok, have bool) {
	t := target{Name: name, Goal: goal, Value: value, Measured: measured}
	switch {
	case have && ok:
		t.Status = "PASS"
	case have:
		t.Status = "FAIL"
	case h.cof != nil && !h.peersMissing(name):
		t.Status = "FAIL"
		t.Measured = "missing"
	default:
		t.Status = "n/a"
		t.Measured = "-"
	}
	if math.IsNaN(t.Value) || math.IsInf(t.Value, 0) {
		t.Value = 0
	}
	h.res.Targets = append(h.res.Targets, t)
}

// peersMissing reports whether the target needs a peer tool that this run
// did not measure successfully (which makes the target not applicable
// rather than failed: the peer's own error is reported separately).
func (h *harness) peersMissing(name string) bool {
	lname := strings.ToLower(name)
	for _, p := range []string{"restic", "borg"} {
		if strings.Contains(lname, p) && !h.peerOK(p) {
			return true
		}
	}
	return false
}

func (h *harness) peerOK(p string) bool {
	if !h.selected(p) {
		return false
	}
	for _, rw := range h.res.Rows {
		if rw.Tool == p && rw.Error != "" {
			return false
		}
	}
	return true
}

func (h *harness) evaluate() {
	for _, step := range []string{stepFullA, stepFullB} {
		c := h.get("coffer", step)
		var best *row
		for _, p := range []string{"restic", "borg"} {
			if rw := h.get(p, step); rw != nil && (best == nil || rw.Seconds < best.Seconds) {
				best = rw
			}
		}
		name := stepTitles[step] + ": faster of restic/borg time / coffer time"
		if best != nil {
			name = fmt.Sprintf("%s: %s time / coffer time (faster peer)", stepTitles[step], best.Tool)
		}
		if c != nil && best != nil {
			v := best.Seconds / c.Seconds
			h.addTarget(name, ">= 3.00x", v, fmt.Sprintf("%.2fx", v), v >= 3, true)
		} else {
			h.addTarget(name, ">= 3.00x", 0, "", false, false)
		}
	}
	for _, s := range []struct {
		step string
		goal float64
	}{{stepDay2A, 5}, {stepRestore, 3}} {
		c, r := h.get("coffer", s.step), h.get("restic", s.step)
		name := stepTitles[s.step] + ": restic time / coffer time"
		goal := fmt.Sprintf(">= %.2fx", s.goal)
		if c != nil && r != nil {
			v := r.Seconds / c.Seconds
			h.addTarget(name, goal, v, fmt.Sprintf("%.2fx", v), v >= s.goal, true)
		} else {
			h.addTarget(name, goal, 0, "", false, false)
		}
	}
	for _, s := range []struct {
		peer string
		goal float64
	}{{"restic", 0.85}, {"borg", 1.0}} {
		c, p := h.get("coffer", stepDay2A), h.get(s.peer, stepDay2A)
		name := "stored bytes after 3 backups: coffer / " + s.peer
		goal := fmt.Sprintf("<= %.2f", s.goal)
		if c != nil && p != nil && p.StoredBytes > 0 {
			v := float64(c.StoredBytes) / float64(p.StoredBytes)
			h.addTarget(name, goal, v, fmt.Sprintf("%.3f", v), v <= s.goal, true)
		} else {
			h.addTarget(name, goal, 0, "", false, false)
		}
	}

	if h.cof != nil {
		var worst rssRecord
		for _, r := range h.cof.runs {
			if r.MaxRSS > worst.MaxRSS {
				worst = r
			}
		}
		v := float64(worst.MaxRSS) / (1 << 20)
		h.addTarget("peak RSS of every coffer run (max: "+worst.What+")", "< 1024 MiB", v,
			fmt.Sprintf("%.1f MiB", v), worst.MaxRSS < 1<<30, len(h.cof.runs) > 0)

		idx, okI := number(h.res.CofferStats, "index_resident_bytes")
		chunks, okC := number(h.res.CofferStats, "chunks")
		v = idx / chunks
		h.addTarget("coffer index memory per stored chunk", "<= 64 B", v, fmt.Sprintf("%.1f B", v),
			v <= 64, okI && okC && chunks > 0)

		p99, ok := number(h.res.CofferReadAt, "p99_us")
		h.addTarget("coffer 4 KiB random ReadAt p99", "< 5.00 ms", p99/1000, fmt.Sprintf("%.3f ms", p99/1000),
			p99 < 5000, ok)
	} else {
		for _, n := range []string{"peak RSS of every coffer run", "coffer index memory per stored chunk",
			"coffer 4 KiB random ReadAt p99"} {
			h.addTarget(n, "", 0, "", false, false)
		}
	}

	worst := 0.0
	for _, rw := range h.res.Rows {
		worst = max(worst, rw.OthersCPUShare)
	}
	if worst > verdict.Noisy {
		h.res.Notes = append(h.res.Notes, fmt.Sprintf("machine busy: other processes used up to %.0f%% of the CPUs "+
			"during timed runs (others_cpu_share in the runs)", 100*worst))
	}
	for _, t := range h.tools {
		if _, ok := t.(reserver); ok {
			h.res.Notes = append(h.res.Notes, t.Name()+"'s stored bytes leave out its 64 MiB free-space reserve (preallocated, empty); "+
				"stored bytes are allocated bytes for every tool")
		}
		if rs, ok := t.(*restic); ok && !rs.sparse {
			h.res.Notes = append(h.res.Notes, "restic "+restVersion(h.res.Versions["restic"])+
				" has no `restore --sparse` (added in 0.15): its restore writes the zero regions out")
		}
	}
}

func restVersion(v string) string {
	f := strings.Fields(v)
	if len(f) >= 2 {
		return f[1]
	}
	return v
}

func number(m map[string]any, key string) (float64, bool) {
	v, ok := m[key].(float64)
	return v, ok
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
	c := h.res.Corpus
	fmt.Fprintf(w, "\nCoffer benchmark, %s, %s\n", h.res.Started, h.res.Host)
	if c != nil {
		fmt.Fprintf(w, "corpus: A %s (%s data), B %s (%s data), day-2 A %s (%s data); changed: %d extents, %s\n",
			mib(c["diskA.img"].Bytes), mib(c["diskA.img"].DataBytes),
			mib(c["diskB.img"].Bytes), mib(c["diskB.img"].DataBytes),
			mib(c["diskA2.img"].Bytes), mib(c["diskA2.img"].DataBytes),
			c["changedA2.txt"].Extents, mib(c["changedA2.txt"].Bytes))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-17s %-7s %9s %9s %16s %11s %8s %7s\n", "step", "tool", "seconds", "MB/s", "stored bytes",
		"peak RSS", "cpu s", "others")
	fmt.Fprintln(w, strings.Repeat("-", 90))
	last := ""
	worstNoise := 0.0
	for _, rw := range h.res.Rows {
		title := stepTitles[rw.Step]
		if title == last {
			title = ""
		}
		last = stepTitles[rw.Step]
		if rw.Error != "" && rw.Seconds == 0 {
			fmt.Fprintf(w, "%-17s %-7s %s\n", title, rw.Tool, "ERROR: "+truncate(rw.Error, 46))
			continue
		}
		mark := ""
		if rw.Error != "" {
			mark = "  ERROR: " + truncate(rw.Error, 60)
		} else if rw.Step == stepRestore && rw.Verified {
			mark = "  ok, " + mib(rw.RestoredAllocated) + " allocated"
		}
		fmt.Fprintf(w, "%-17s %-7s %9.2f %9.1f %16s %11s %8.2f %6.0f%%%s\n", title, rw.Tool, rw.Seconds, rw.MBPerSec,
			commas(rw.StoredBytes), mib(rw.PeakRSSBytes), rw.CPUSeconds, 100*rw.OthersCPUShare, mark)
		worstNoise = max(worstNoise, rw.OthersCPUShare)
	}
	fmt.Fprintln(w, "(seconds: wall clock; MB/s: logical disk bytes / seconds / 10^6; stored bytes: repository size")
	fmt.Fprintln(w, " after the step; cpu s: the tool's user+system time; others: share of all CPUs that other")
	fmt.Fprintln(w, " processes used meanwhile)")
	if worstNoise > verdict.Noisy {
		fmt.Fprintf(w, "WARNING: other processes used up to %.0f%% of the CPUs during timed runs: wall-clock ratios\n"+
			"from this run are unreliable; rerun on a quiet machine.\n", 100*worstNoise)
	}

	if h.cof != nil {
		for _, step := range []string{stepFullA, stepFullB, stepDay2A} {
			rw := h.get("coffer", step)
			if rw == nil {
				continue
			}
			if st, ok := rw.Extra["stats"].(map[string]int64); ok {
				fmt.Fprintf(w, "coffer %-16s point %s: read %s, new %s, %d chunks (%d new)\n", stepTitles[step]+":",
					rw.Extra["point"], mib(st["read_bytes"]), mib(st["new_bytes"]), st["chunks"], st["new_chunks"])
			}
		}
	}

	verdict.Print(w, h.res.Targets, h.res.Notes, h.res.Errors, "", filepath.Join(h.base, "result.json"))
}

func (h *harness) writeJSON() error {
	return verdict.WriteJSON(filepath.Join(h.base, "result.json"), h.res)
}

func mib(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

func commas(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
