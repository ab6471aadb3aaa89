package setup

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // time zones for the wizard even where the image has no zoneinfo

	"coffer.dev/coffer/appliance/statefile"
)

// Step is one page of the wizard.
type Step string

// The steps, in order.
const (
	StepAdmin      Step = "admin"
	StepNetwork    Step = "network"
	StepStorage    Step = "storage"
	StepEncryption Step = "encryption"
	StepVCenter    Step = "vcenter"
	StepPolicy     Step = "policy"
	StepOptions    Step = "options"
	StepSummary    Step = "summary"
)

// Steps lists the steps in order.
var Steps = []Step{StepAdmin, StepNetwork, StepStorage, StepEncryption, StepVCenter, StepPolicy, StepOptions, StepSummary}

// Title is the step's name for people.
func (s Step) Title() string {
	switch s {
	case StepAdmin:
		return "Administrator"
	case StepNetwork:
		return "Network and time"
	case StepStorage:
		return "Storage"
	case StepEncryption:
		return "Encryption"
	case StepVCenter:
		return "vCenter"
	case StepPolicy:
		return "First policy"
	case StepOptions:
		return "Tape and replication"
	case StepSummary:
		return "Summary"
	}
	return string(s)
}

// StateFile is the wizard's state in the state directory.
const StateFile = "setup.json"

// State is the wizard's progress and what each step recorded.
type State struct {
	Done      map[Step]time.Time `json:"done"`
	Completed time.Time          `json:"completed,omitzero"`
	Network   Network            `json:"network"`
	Storage   Storage            `json:"storage"`
	// Challenge are the 1-based groups of the recovery key the
	// administrator types back; Confirmed once they did.
	Challenge []int     `json:"recovery_challenge,omitempty"`
	KeyShown  time.Time `json:"recovery_key_shown,omitzero"`
	VCenter   VCenter   `json:"vcenter"`
	PolicyID  string    `json:"policy_id,omitempty"`
	// FirstJob is the job started by "back up now" on the summary.
	FirstJob string `json:"first_job,omitempty"`
}

// VCenter is what the vCenter step recorded (the password is in the
// appliance's encrypted vault, never here).
type VCenter struct {
	URL        string `json:"url,omitempty"`
	Username   string `json:"username,omitempty"`
	Thumbprint string `json:"thumbprint,omitempty"`
	VMs        int    `json:"vms,omitempty"`
	Hosts      int    `json:"hosts,omitempty"`
}

// Network is the appliance's network, clock and name. The wizard
// validates and records it; the appliance image applies it at boot
// (DHCP or the static address, resolv.conf, NTP).
type Network struct {
	Hostname string   `json:"hostname"`
	Mode     string   `json:"mode"`              // "dhcp" or "static"
	Address  string   `json:"address,omitempty"` // CIDR, static only
	Gateway  string   `json:"gateway,omitempty"` // static only
	DNS      []string `json:"dns,omitempty"`
	NTP      []string `json:"ntp,omitempty"`
	TimeZone string   `json:"time_zone"`
}

var hostLabel = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)

// FieldErrors maps a form field to what is wrong with it.
type FieldErrors map[string]string

func (f FieldErrors) Error() string {
	var parts []string
	for _, k := range sortedKeys(f) {
		parts = append(parts, k+": "+f[k])
	}
	return "invalid: " + strings.Join(parts, "; ")
}

func (f FieldErrors) orNil() error {
	if len(f) == 0 {
		return nil
	}
	return f
}

// Validate checks every field and reports each problem.
func (n Network) Validate() error {
	fe := FieldErrors{}
	if n.Hostname == "" {
		fe["hostname"] = "a host name is required"
	} else {
		for _, l := range strings.Split(n.Hostname, ".") {
			if !hostLabel.MatchString(l) {
				fe["hostname"] = "use letters, digits and hyphens (labels of up to 63 characters, separated by dots)"
				break
			}
		}
		if len(n.Hostname) > 253 {
			fe["hostname"] = "at most 253 characters"
		}
	}
	switch n.Mode {
	case "dhcp":
	case "static":
		pfx, err := netip.ParsePrefix(n.Address)
		if err != nil || !pfx.Addr().Is4() && !pfx.Addr().Is6() || pfx.Bits() == 0 {
			fe["address"] = "give the address with its prefix length, e.g. 192.168.1.20/24"
		}
		gw, err := netip.ParseAddr(n.Gateway)
		switch {
		case n.Gateway == "":
			fe["gateway"] = "a static address needs a gateway"
		case err != nil:
			fe["gateway"] = "not an IP address"
		case fe["address"] == "" && !pfx.Masked().Contains(gw):
			fe["gateway"] = "the gateway is not in the address's network " + pfx.Masked().String()
		case fe["address"] == "" && gw == pfx.Addr():
			fe["gateway"] = "the gateway cannot be the appliance's own address"
		}
		if len(n.DNS) == 0 {
			fe["dns"] = "a static address needs at least one DNS server"
		}
	default:
		fe["mode"] = "choose DHCP or a static address"
	}
	for _, d := range n.DNS {
		if _, err := netip.ParseAddr(d); err != nil {
			fe["dns"] = fmt.Sprintf("%q is not an IP address", d)
		}
	}
	if len(n.DNS) > 3 {
		fe["dns"] = "at most three DNS servers"
	}
	for _, s := range n.NTP {
		if _, err := netip.ParseAddr(s); err == nil {
			continue
		}
		if !validHostName(s) {
			fe["ntp"] = fmt.Sprintf("%q is neither a host name nor an IP address", s)
		}
	}
	if n.TimeZone == "" {
		fe["time_zone"] = "choose a time zone"
	} else if _, err := time.LoadLocation(n.TimeZone); err != nil || n.TimeZone == "Local" {
		fe["time_zone"] = fmt.Sprintf("unknown time zone %q (e.g. Europe/Berlin, America/New_York, UTC)", n.TimeZone)
	}
	return fe.orNil()
}

func validHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if !hostLabel.MatchString(l) {
			return false
		}
	}
	return net.ParseIP(s) == nil
}

// SplitList splits a form's comma/space separated list.
func SplitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

// LoadState reads the wizard's state in dir (a fresh one if none).
func LoadState(dir string) (State, error) { return loadState(dir) }

func loadState(dir string) (State, error) {
	var st State
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if errors.Is(err, os.ErrNotExist) {
		return State{Done: map[Step]time.Time{}}, nil
	}
	if err != nil {
		return st, fmt.Errorf("read the setup state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("read the setup state %s: %w", StateFile, err)
	}
	if st.Done == nil {
		st.Done = map[Step]time.Time{}
	}
	return st, nil
}

func saveState(dir string, st State) error {
	if err := statefile.WriteJSON(filepath.Join(dir, StateFile), st, 0o600); err != nil {
		return fmt.Errorf("save the setup state: %w", err)
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
