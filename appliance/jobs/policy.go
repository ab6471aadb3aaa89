package jobs

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"coffer.dev/coffer/appliance/jobs/schedule"
	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/store"
)

// Defaults applied to a policy's zero fields when it is created or
// updated.
const (
	DefaultTimeZone    = "UTC"
	DefaultVerifyEvery = 10
	DefaultConsistency = vsphere.PreferApplication
)

// DefaultRetention returns the retention of a policy that sets none: 14
// daily, 8 weekly and 12 monthly points.
func DefaultRetention() store.Retention { return store.Retention{Daily: 14, Weekly: 8, Monthly: 12} }

// Parameters of the automatic RPO (see Policy.EffectiveRPO).
const (
	rpoHorizon = 14 * 24 * time.Hour
	rpoMinimum = time.Hour
)

// Policy says which VMs are backed up, when, how and for how long their
// points are kept.
type Policy struct {
	// ID names the policy in jobs and files: letters, digits, '.', '_'
	// and '-', up to 64, not starting with '.' or '-'. CreatePolicy makes
	// one from Name when it is empty.
	ID      string `json:"id"`
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
	// Selection is evaluated against the inventory at each run, so VMs
	// created later that match are protected without editing the policy.
	Selection Selection `json:"selection"`
	// Schedule is when the policy runs; the zero Event means manual runs
	// only. Enabled false stops scheduled runs; manual runs stay possible.
	Schedule schedule.Event `json:"schedule"`
	// Window limits when scheduled and missed runs may start VMs; the zero
	// Window is always open. Manual runs ignore it.
	Window schedule.Window `json:"window"`
	// TimeZone is the IANA zone of Schedule, Window and the retention
	// periods (default UTC).
	TimeZone string `json:"time_zone"`
	// Retention applies to each VM's points after each successful backup
	// (default 14 daily, 8 weekly, 12 monthly).
	Retention   store.Retention         `json:"retention"`
	Consistency vsphere.ConsistencyMode `json:"consistency"`
	Hooks       vsphere.Hooks           `json:"hooks"`
	// GuestCredentials is the ID of the secret that logs in to guests for
	// hooks ("" for none).
	GuestCredentials string `json:"guest_credentials,omitempty"`
	// Priority orders queued jobs: higher first.
	Priority int `json:"priority"`
	// RPO is the recovery point objective: the protection report flags
	// VMs whose newest point is older. Zero means automatic; see
	// EffectiveRPO.
	RPO time.Duration `json:"rpo,omitempty"`
	// VerifyEvery makes every Nth successful backup of a VM a
	// verification of changed block tracking (a full read compared with
	// what CBT reported). Zero means 10; a negative value never verifies.
	VerifyEvery int `json:"verify_every"`
	// SkipRecoverabilityCheck turns off the file catalog and the
	// recoverability check after each VM's backup (on by default).
	SkipRecoverabilityCheck bool `json:"skip_recoverability_check,omitempty"`

	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// Selection chooses VMs. A VM is selected if All is set or it matches any
// of VMs, Folders, Tags or Names, and none of Exclude. Templates are never
// selected.
type Selection struct {
	All bool `json:"all,omitempty"`
	// VMs are instance UUIDs (case does not matter).
	VMs []string `json:"vms,omitempty"`
	// Folders are VM folder paths below the datacenter's VM folder
	// ("Production/Web"), in any datacenter; a path starting with '/'
	// names the datacenter first ("/DC1/Production", or "/DC1" for all of
	// it). A folder includes its subfolders. Case does not matter.
	Folders []string `json:"folders,omitempty"`
	// Tags are "category/name"; path.Match wildcards are allowed
	// ("Backup/*"). Case does not matter.
	Tags []string `json:"tags,omitempty"`
	// Names are path.Match patterns on the VM name ("web-*"), case
	// insensitive.
	Names   []string `json:"names,omitempty"`
	Exclude Criteria `json:"exclude,omitzero"`
}

// Criteria are the kinds of selection that can also exclude VMs.
type Criteria struct {
	VMs     []string `json:"vms,omitempty"`
	Folders []string `json:"folders,omitempty"`
	Tags    []string `json:"tags,omitempty"`
	Names   []string `json:"names,omitempty"`
}

func (c Criteria) empty() bool {
	return len(c.VMs) == 0 && len(c.Folders) == 0 && len(c.Tags) == 0 && len(c.Names) == 0
}

func (s Selection) include() Criteria {
	return Criteria{VMs: s.VMs, Folders: s.Folders, Tags: s.Tags, Names: s.Names}
}

// Matches reports whether the policy's selection takes vm. It ignores
// Enabled.
func (p Policy) Matches(vm vsphere.VM) bool { return p.Selection.Matches(vm) }

// Matches reports whether the selection takes vm.
func (s Selection) Matches(vm vsphere.VM) bool {
	if vm.Template {
		return false
	}
	if !s.All && !s.include().matches(vm) {
		return false
	}
	return !s.Exclude.matches(vm)
}

// matches reports whether vm matches any of the criteria.
func (c Criteria) matches(vm vsphere.VM) bool {
	for _, u := range c.VMs {
		if u != "" && strings.EqualFold(strings.TrimSpace(u), vm.InstanceUUID) {
			return true
		}
	}
	for _, f := range c.Folders {
		if folderMatches(f, vm) {
			return true
		}
	}
	for _, pat := range c.Tags {
		pat = strings.ToLower(pat)
		for _, t := range vm.Tags {
			if ok, _ := path.Match(pat, strings.ToLower(t)); ok {
				return true
			}
		}
	}
	name := strings.ToLower(vm.Name)
	for _, pat := range c.Names {
		if ok, _ := path.Match(strings.ToLower(pat), name); ok {
			return true
		}
	}
	return false
}

// folderMatches reports whether vm is in folder sel or below it.
func folderMatches(sel string, vm vsphere.VM) bool {
	sel = strings.ToLower(strings.TrimSpace(sel))
	if strings.HasPrefix(sel, "/") {
		dc, rest, _ := strings.Cut(strings.Trim(sel, "/"), "/")
		if dc == "" || dc != strings.ToLower(vm.Datacenter) {
			return false
		}
		if rest == "" {
			return true
		}
		sel = rest
	}
	sel = strings.Trim(sel, "/")
	if sel == "" {
		return false
	}
	f := strings.ToLower(strings.Trim(vm.Folder, "/"))
	return f == sel || strings.HasPrefix(f, sel+"/")
}

// Covered maps the instance UUID of every VM of inv that an enabled
// policy selects to the IDs of those policies, sorted. Disabled policies
// protect nothing.
func Covered(inv *vsphere.Inventory, policies []Policy) map[string][]string {
	out := map[string][]string{}
	if inv == nil {
		return out
	}
	for _, vm := range inv.VMs {
		for _, p := range policies {
			if p.Enabled && p.Matches(vm) {
				out[vm.InstanceUUID] = append(out[vm.InstanceUUID], p.ID)
			}
		}
	}
	for _, ids := range out {
		sort.Strings(ids)
	}
	return out
}

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid policy")

// ValidationError lists everything wrong with a policy.
type ValidationError struct {
	Policy   string   // the policy's name or ID
	Problems []string // one sentence per problem, naming the field
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("policy %q: %s", e.Policy, strings.Join(e.Problems, "; "))
}

// Unwrap returns ErrInvalid.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

var policyIDPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$`)

// Validate checks p as a user wrote it: zero fields that have defaults are
// fine. The error is a *ValidationError listing every problem.
func (p Policy) Validate() error {
	var probs []string
	add := func(format string, a ...any) { probs = append(probs, fmt.Sprintf(format, a...)) }
	if p.ID != "" && !policyIDPattern.MatchString(p.ID) {
		add("id %q: use up to 64 letters, digits, '.', '_' and '-', not starting with '.' or '-'", p.ID)
	}
	if strings.TrimSpace(p.Name) == "" {
		add("name: must not be empty")
	} else if len(p.Name) > 200 {
		add("name: longer than 200 characters")
	}
	s := p.Selection
	if !s.All && s.include().empty() {
		add("selection: selects nothing; set all, or list VMs, folders, tags or name patterns")
	}
	probs = append(probs, s.include().problems("selection")...)
	probs = append(probs, s.Exclude.problems("selection.exclude")...)

	loc := time.UTC
	if p.TimeZone != "" {
		l, err := time.LoadLocation(p.TimeZone)
		if err != nil || strings.EqualFold(p.TimeZone, "Local") {
			add("time_zone %q: not an IANA time zone name such as Europe/Berlin", p.TimeZone)
		} else {
			loc = l
		}
	}
	if p.Window.Days&^schedule.AllWeekdays != 0 {
		add("window: invalid weekdays")
	} else if !p.Schedule.IsZero() && !p.Window.IsZero() && firstInWindow(p.Schedule, p.Window, loc, time.Now()).IsZero() {
		add("schedule %q never fires inside the window %q within a year", p.Schedule, p.Window)
	}
	r := p.Retention
	if r.Last < 0 || r.Daily < 0 || r.Weekly < 0 || r.Monthly < 0 || r.Yearly < 0 {
		add("retention: counts must not be negative")
	}
	if p.Consistency != "" && !p.Consistency.Valid() {
		add("consistency %q: use %s, %s or %s", p.Consistency, vsphere.RequireApplication, vsphere.PreferApplication, vsphere.CrashOnly)
	}
	if p.Hooks.Timeout < 0 {
		add("hooks.timeout: must not be negative")
	}
	if p.RPO < 0 {
		add("rpo: must not be negative")
	} else if p.RPO > 0 && p.RPO < time.Minute {
		add("rpo %v: shorter than a minute", p.RPO)
	}
	if len(probs) == 0 {
		return nil
	}
	who := p.Name
	if who == "" {
		who = p.ID
	}
	return &ValidationError{Policy: who, Problems: probs}
}

// problems checks the syntax of each criterion.
func (c Criteria) problems(field string) []string {
	var out []string
	for _, u := range c.VMs {
		if strings.TrimSpace(u) == "" {
			out = append(out, field+".vms: empty instance UUID")
		}
	}
	for _, f := range c.Folders {
		t := strings.TrimSpace(f)
		switch {
		case strings.Trim(t, "/") == "":
			out = append(out, fmt.Sprintf("%s.folders: %q is not a folder path (write \"Production/Web\", or \"/DC1/Production\" with the datacenter)", field, f))
		case strings.Contains(strings.Trim(t, "/"), "//"):
			out = append(out, fmt.Sprintf("%s.folders: %q has an empty path element", field, f))
		}
	}
	for _, t := range c.Tags {
		cat, name, ok := strings.Cut(t, "/")
		if !ok || cat == "" || name == "" {
			out = append(out, fmt.Sprintf("%s.tags: %q is not \"category/name\"", field, t))
		} else if _, err := path.Match(t, ""); err != nil {
			out = append(out, fmt.Sprintf("%s.tags: %q is not a valid pattern", field, t))
		}
	}
	for _, n := range c.Names {
		if n == "" {
			out = append(out, field+".names: empty pattern")
		} else if _, err := path.Match(n, ""); err != nil {
			out = append(out, fmt.Sprintf("%s.names: %q is not a valid pattern (path.Match syntax: *, ?, [a-z])", field, n))
		}
	}
	return out
}

// withDefaults fills the zero fields that have defaults.
func (p Policy) withDefaults() Policy {
	if p.TimeZone == "" {
		p.TimeZone = DefaultTimeZone
	}
	if p.Retention.Empty() {
		loc := p.Retention.Location
		p.Retention = DefaultRetention()
		p.Retention.Location = loc
	}
	if p.Consistency == "" {
		p.Consistency = DefaultConsistency
	}
	if p.VerifyEvery == 0 {
		p.VerifyEvery = DefaultVerifyEvery
	}
	p.Selection = p.Selection.clone()
	return p
}

func (s Selection) clone() Selection {
	s.VMs = slices.Clone(s.VMs)
	s.Folders = slices.Clone(s.Folders)
	s.Tags = slices.Clone(s.Tags)
	s.Names = slices.Clone(s.Names)
	s.Exclude.VMs = slices.Clone(s.Exclude.VMs)
	s.Exclude.Folders = slices.Clone(s.Exclude.Folders)
	s.Exclude.Tags = slices.Clone(s.Exclude.Tags)
	s.Exclude.Names = slices.Clone(s.Exclude.Names)
	return s
}

// Location returns the policy's time zone (UTC when TimeZone is empty).
func (p Policy) Location() (*time.Location, error) {
	if p.TimeZone == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(p.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("policy %s: time zone: %w", p.ID, err)
	}
	return loc, nil
}

// retention returns the policy's retention with its periods in the
// policy's zone.
func (p Policy) retention(loc *time.Location) store.Retention {
	r := p.Retention
	if r.Empty() {
		r = DefaultRetention()
	}
	r.Location = loc
	return r
}

// verifyEvery returns the effective VerifyEvery (0: never).
func (p Policy) verifyEvery() int {
	switch {
	case p.VerifyEvery < 0:
		return 0
	case p.VerifyEvery == 0:
		return DefaultVerifyEvery
	}
	return p.VerifyEvery
}

// EffectiveRPO returns the policy's recovery point objective as of now:
// RPO when set. Otherwise, for a scheduled policy, 1.5 times the longest
// interval between two consecutive runs it would start over the next 14
// days (instants outside the window do not count; the interval that
// crosses the end of the 14 days is included, so a monthly schedule gets
// about 45 days), but at least one hour. A policy without schedule, or one
// that would not run twice within two years, has no objective (0).
func (p Policy) EffectiveRPO(now time.Time) time.Duration {
	if p.RPO > 0 {
		return p.RPO
	}
	if p.Schedule.IsZero() {
		return 0
	}
	loc, err := p.Location()
	if err != nil {
		return 0
	}
	gap := longestGap(p.Schedule, p.Window, loc, now)
	if gap <= 0 {
		return 0
	}
	rpo := gap * 3 / 2
	if rpo < rpoMinimum {
		rpo = rpoMinimum
	}
	return rpo
}

// maxInstants bounds the iterations over a schedule's instants (a
// minutely schedule has 20160 in 14 days).
const maxInstants = 100000

// longestGap returns the longest interval between consecutive instants of
// e inside w after now, up to the first instant beyond 14 days.
func longestGap(e schedule.Event, w schedule.Window, loc *time.Location, now time.Time) time.Duration {
	horizon, limit := now.Add(rpoHorizon), now.AddDate(2, 0, 0)
	var prev time.Time
	var longest time.Duration
	t := now
	for range maxInstants {
		t = e.Next(t, loc)
		if t.IsZero() || t.After(limit) {
			break
		}
		if !w.IsZero() && !w.Contains(t) {
			continue
		}
		if !prev.IsZero() {
			longest = max(longest, t.Sub(prev))
			if t.After(horizon) {
				break
			}
		}
		prev = t
	}
	return longest
}

// firstInWindow returns the first instant of e after now that lies in w,
// within a year, or the zero Time.
func firstInWindow(e schedule.Event, w schedule.Window, loc *time.Location, now time.Time) time.Time {
	limit := now.AddDate(1, 0, 0)
	t := now
	for range maxInstants {
		t = e.Next(t, loc)
		if t.IsZero() || t.After(limit) {
			return time.Time{}
		}
		if w.Contains(t) {
			return t
		}
	}
	return time.Time{}
}

// slug makes a policy ID from a name.
func slug(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			if b.Len() >= 40 {
				break
			}
			continue
		}
		dash = true
	}
	if b.Len() == 0 {
		return "policy"
	}
	return b.String()
}
