package disks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Array states.
const (
	StateClean      = "clean"
	StateDegraded   = "degraded"
	StateRecovering = "recovering" // rebuilding onto a replacement disk
	StateResyncing  = "resyncing"  // the initial sync, a repair, or after an unclean shutdown
	StateChecking   = "checking"   // a scrub
	StateReshaping  = "reshaping"
	StateInactive   = "inactive"
)

// Array is an md array as /proc/mdstat and its sysfs show it.
type Array struct {
	Name  string `json:"name"`            // kernel name, "md127"
	Alias string `json:"alias,omitempty"` // the /dev/md/ name, "coffer"
	Level string `json:"level,omitempty"` // "raid6"; empty when inactive
	// State is one of the State constants.
	State    string   `json:"state"`
	ReadOnly bool     `json:"read_only,omitempty"` // (read-only) or (auto-read-only)
	Devices  []Member `json:"devices"`
	Size     int64    `json:"size"` // bytes of the array
	// Total is the number of member slots, Active how many are in sync
	// ([4/3]); Status is mdstat's per-slot map ("UU_U").
	Total  int    `json:"total"`
	Active int    `json:"active"`
	Status string `json:"status,omitempty"`
	// Action is the running sync: "recovery", "resync", "check",
	// "repair", "reshape", or "" when idle. Pending says it waits
	// ("DELAYED", "PENDING").
	Action   string        `json:"action,omitempty"`
	Pending  string        `json:"pending,omitempty"`
	Progress float64       `json:"progress,omitempty"` // percent of Action done
	Done     int64         `json:"done,omitempty"`     // KiB of Action done
	ToDo     int64         `json:"to_do,omitempty"`    // KiB Action covers
	Finish   time.Duration `json:"finish,omitempty"`   // md's estimate of the time left
	Speed    int64         `json:"speed,omitempty"`    // bytes per second
	Bitmap   bool          `json:"bitmap,omitempty"`   // a write-intent bitmap

	// From /sys/block/<name>/md (empty or zero when unreadable).
	SyncAction string `json:"sync_action,omitempty"` // "idle", "check", "recover", …
	Mismatches int64  `json:"mismatches"`            // mismatch_cnt: sectors the last check found different
	Degraded   int    `json:"degraded"`              // members missing
	ArrayState string `json:"array_state,omitempty"` // "clean", "active", "inactive", …
}

// Member is a member device of an array.
type Member struct {
	Name string `json:"name"` // "sda", "sdb1"
	// Role is the number in brackets in mdstat, the member's descriptor
	// number: the slot it was created in, or a new number for a disk
	// added later. Slot is its position in the array from sysfs, -1 for a
	// spare, a failed member or when unknown.
	Role        int    `json:"role"`
	Slot        int    `json:"slot"`
	Faulty      bool   `json:"faulty,omitempty"`       // (F)
	Spare       bool   `json:"spare,omitempty"`        // (S)
	WriteMostly bool   `json:"write_mostly,omitempty"` // (W)
	Replacement bool   `json:"replacement,omitempty"`  // (R)
	State       string `json:"state,omitempty"`        // sysfs: "in_sync", "faulty", "spare", …
}

// Failed lists the faulty members' names.
func (a Array) Failed() []string {
	var out []string
	for _, m := range a.Devices {
		if m.Faulty {
			out = append(out, m.Name)
		}
	}
	return out
}

var (
	reHeader   = regexp.MustCompile(`^(md[^\s:]*)\s*:\s*(.*)$`)
	reMember   = regexp.MustCompile(`^([^\s\[]+)\[(\d+)\]((?:\([A-Z]\))*)$`)
	reBlocks   = regexp.MustCompile(`^(\d+) blocks`)
	reSlots    = regexp.MustCompile(`\[(\d+)/(\d+)\]\s*\[([U_]+)\]`)
	reProgress = regexp.MustCompile(`(resync|recovery|check|repair|reshape)\s*=\s*([\d.]+)%\s*\((\d+)/(\d+)\)(?:\s*finish=([\d.]+)min)?(?:\s*speed=(\d+)K/sec)?`)
	rePending  = regexp.MustCompile(`(resync|recovery|check|repair|reshape)\s*=\s*(DELAYED|PENDING)`)
)

// ParseMdstat parses /proc/mdstat. Lines it does not know are skipped.
func ParseMdstat(b []byte) ([]Array, error) {
	var out []Array
	var cur *Array
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if m := reHeader.FindStringSubmatch(line); m != nil {
			out = append(out, Array{Name: m[1]})
			cur = &out[len(out)-1]
			if err := parseHeader(cur, strings.Fields(m[2])); err != nil {
				return nil, err
			}
			continue
		}
		if trimmed == "" || strings.HasPrefix(line, "Personalities") || strings.HasPrefix(line, "unused devices") {
			cur = nil
			continue
		}
		if cur == nil {
			continue
		}
		if m := reBlocks.FindStringSubmatch(trimmed); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			cur.Size = n * 1024
		}
		if m := reSlots.FindStringSubmatch(trimmed); m != nil {
			cur.Total, _ = strconv.Atoi(m[1])
			cur.Active, _ = strconv.Atoi(m[2])
			cur.Status = m[3]
		}
		if m := reProgress.FindStringSubmatch(trimmed); m != nil {
			cur.Action = m[1]
			cur.Progress, _ = strconv.ParseFloat(m[2], 64)
			cur.Done, _ = strconv.ParseInt(m[3], 10, 64)
			cur.ToDo, _ = strconv.ParseInt(m[4], 10, 64)
			if m[5] != "" {
				f, _ := strconv.ParseFloat(m[5], 64)
				cur.Finish = time.Duration(f * float64(time.Minute)).Round(time.Second)
			}
			if m[6] != "" {
				k, _ := strconv.ParseInt(m[6], 10, 64)
				cur.Speed = k * 1024
			}
		} else if m := rePending.FindStringSubmatch(trimmed); m != nil {
			cur.Action, cur.Pending = m[1], m[2]
		}
		if strings.HasPrefix(trimmed, "bitmap:") {
			cur.Bitmap = true
		}
	}
	for i := range out {
		out[i].State = out[i].state()
	}
	return out, nil
}

func parseHeader(a *Array, f []string) error {
	if len(f) == 0 {
		return fmt.Errorf("mdstat: %s: no state", a.Name)
	}
	inactive := f[0] == "inactive"
	if inactive {
		a.State = StateInactive
	}
	f = f[1:]
	for len(f) > 0 && strings.HasPrefix(f[0], "(") {
		if strings.Contains(f[0], "read-only") {
			a.ReadOnly = true
		}
		f = f[1:]
	}
	if !inactive && len(f) > 0 && !reMember.MatchString(f[0]) {
		a.Level, f = f[0], f[1:]
	}
	for _, tok := range f {
		m := reMember.FindStringSubmatch(tok)
		if m == nil {
			continue
		}
		role, _ := strconv.Atoi(m[2])
		mem := Member{Name: m[1], Role: role, Slot: -1}
		mem.Faulty = strings.Contains(m[3], "(F)")
		mem.Spare = strings.Contains(m[3], "(S)")
		mem.WriteMostly = strings.Contains(m[3], "(W)")
		mem.Replacement = strings.Contains(m[3], "(R)")
		a.Devices = append(a.Devices, mem)
	}
	// mdstat lists members newest first; keep them oldest first.
	for i, j := 0, len(a.Devices)-1; i < j; i, j = i+1, j-1 {
		a.Devices[i], a.Devices[j] = a.Devices[j], a.Devices[i]
	}
	return nil
}

func (a Array) state() string {
	switch {
	case a.State == StateInactive:
		return StateInactive
	case a.Action == "recovery" || a.SyncAction == "recover":
		return StateRecovering
	case a.Total > 0 && a.Active < a.Total:
		return StateDegraded
	case a.Action == "resync" || a.Action == "repair":
		return StateResyncing
	case a.Action == "reshape":
		return StateReshaping
	case a.Action == "check":
		return StateChecking
	default:
		return StateClean
	}
}

// Arrays reads /proc/mdstat and each array's sysfs. Without the md
// driver (no /proc/mdstat) there are no arrays.
func (h *Host) Arrays(ctx context.Context) ([]Array, error) {
	b, err := os.ReadFile(h.proc("mdstat"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read mdstat: %w", err)
	}
	arrays, err := ParseMdstat(b)
	if err != nil {
		return nil, err
	}
	aliases := h.mdAliases()
	for i := range arrays {
		h.readSysfs(&arrays[i])
		arrays[i].Alias = aliases[arrays[i].Name]
	}
	return arrays, nil
}

// readSysfs fills in what /sys/block/<name>/md says.
func (h *Host) readSysfs(a *Array) {
	md := h.sys("block", a.Name, "md")
	a.SyncAction = readString(filepath.Join(md, "sync_action"))
	a.ArrayState = readString(filepath.Join(md, "array_state"))
	a.Mismatches, _ = readInt(filepath.Join(md, "mismatch_cnt"))
	if n, ok := readInt(filepath.Join(md, "degraded")); ok {
		a.Degraded = int(n)
	}
	if a.Action == "" {
		switch a.SyncAction {
		case "recover":
			a.Action = "recovery"
		case "resync", "check", "repair", "reshape":
			a.Action = a.SyncAction
		}
	} else if a.Action == "resync" && a.SyncAction == "repair" {
		a.Action = "repair"
	}
	for i := range a.Devices {
		m := &a.Devices[i]
		dir := filepath.Join(md, "dev-"+m.Name)
		if s, ok := readInt(filepath.Join(dir, "slot")); ok {
			m.Slot = int(s)
		}
		m.State = readString(filepath.Join(dir, "state"))
	}
	if a.State != StateInactive {
		a.State = a.state()
	}
}

// mdAliases maps kernel names to /dev/md/ names ("md127" → "coffer").
func (h *Host) mdAliases() map[string]string {
	m := map[string]string{}
	entries, err := os.ReadDir(h.dev("md"))
	if err != nil {
		return m
	}
	for _, e := range entries {
		if target, err := os.Readlink(h.dev("md", e.Name())); err == nil {
			m[filepath.Base(target)] = e.Name()
		}
	}
	return m
}

// Array reads one array by kernel name ("md127"), path ("/dev/md127",
// "/dev/md/coffer") or /dev/md/ name ("coffer").
func (h *Host) Array(ctx context.Context, array string) (Array, error) {
	name, err := h.resolveArray(array)
	if err != nil {
		return Array{}, err
	}
	all, err := h.Arrays(ctx)
	if err != nil {
		return Array{}, err
	}
	for _, a := range all {
		if a.Name == name {
			return a, nil
		}
	}
	return Array{}, fmt.Errorf("array %s: %w", array, ErrNoArray)
}

// ErrNoArray means the array is not running.
var ErrNoArray = errors.New("no such array running")

// resolveArray turns an array's name or path into its kernel name.
func (h *Host) resolveArray(array string) (string, error) {
	s := strings.TrimPrefix(array, "/dev/")
	s = strings.TrimPrefix(s, h.dev()+"/")
	s = strings.TrimPrefix(s, "md/")
	if strings.HasPrefix(s, "md") && !strings.Contains(s, "/") {
		if _, err := strconv.Atoi(strings.TrimPrefix(s, "md")); err == nil || strings.HasPrefix(s, "md_") {
			return s, nil
		}
	}
	target, err := filepath.EvalSymlinks(h.dev("md", s))
	if err != nil {
		return "", fmt.Errorf("array %s: %w", array, ErrNoArray)
	}
	return filepath.Base(target), nil
}
