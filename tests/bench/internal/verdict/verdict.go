// Package verdict is what the benchmark programs share: a target with its
// verdict, the closing table of targets, notes and errors, and the
// result file.
package verdict

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Target is one goal of an issue and how the run measured up.
type Target struct {
	Name     string  `json:"name"`
	Value    float64 `json:"value"`
	Measured string  `json:"measured"`
	Goal     string  `json:"goal"`
	Status   string  `json:"status"` // PASS, FAIL or n/a
}

// Print writes the table of targets, the notes, the count of passes and
// failures (with extra appended, e.g. "; run took 23 s"), the errors and
// where the result file is.
func Print(w io.Writer, targets []Target, notes, errs []string, extra, resultPath string) {
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-66s %10s %9s  %s\n", "target", "measured", "goal", "result")
	fmt.Fprintln(w, strings.Repeat("-", 96))
	pass, fail := 0, 0
	for _, t := range targets {
		fmt.Fprintf(w, "%-66s %10s %9s  %s\n", t.Name, t.Measured, t.Goal, t.Status)
		switch t.Status {
		case "PASS":
			pass++
		case "FAIL":
			fail++
		}
	}
	for _, n := range notes {
		fmt.Fprintln(w, "note:", n)
	}
	fmt.Fprintf(w, "\ntargets: %d passed, %d failed%s", pass, fail, extra)
	if len(errs) > 0 {
		fmt.Fprintf(w, "; %d ERROR(S):\n", len(errs))
		for _, e := range errs {
			fmt.Fprintln(w, "  -", FirstLine(e))
		}
	} else {
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "result: %s\n", resultPath)
}

// WriteJSON writes v indented to path, replacing it atomically.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// FirstLine is s up to its first newline.
func FirstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// MiB formats n bytes in MiB.
func MiB(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// Noisy is the share of the CPUs other processes may use during a timed
// run before the report warns that its wall-clock ratios are unreliable.
const Noisy = 0.2

// ClockTicks is USER_HZ, the unit of /proc/stat (100 on Linux).
const ClockTicks = 100

// BusyTicks returns the non-idle CPU time of the whole machine so far, in
// clock ticks, from the first line of /proc/stat (0 when unreadable).
func BusyTicks() int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var n int64
	// user nice system (idle iowait) irq softirq steal
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0
		}
		n += v
	}
	return n
}
