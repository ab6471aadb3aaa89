package boot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"coffer.dev/coffer/appliance/setup"
)

// ConfigPartition is the GPT partition name of the configuration
// partition on the boot disk (image/build.sh makes it).
const ConfigPartition = "coffer-config"

// Options is what the boot sequence touches. Zero fields take the
// real machine's (see Defaults).
type Options struct {
	Sys, Dev string // "/sys", "/dev"
	// ConfigDir is where the configuration partition is mounted; the
	// appliance's state directory is its "state" folder.
	ConfigDir string
	Version   string
	Out       io.Writer
	Log       *slog.Logger
	// Run runs a user-space tool (dhclient, ip, e2fsck).
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
	// Mount mounts a file system (syscall.Mount on the appliance).
	Mount func(source, target, fstype string, flags uintptr, data string) error
	// SetClock sets the system clock; SetHostname the host name.
	SetClock    func(time.Time) error
	SetHostname func(string) error
	// AssemblePool starts and mounts the RAID pool the wizard built.
	AssemblePool func(ctx context.Context, s setup.Storage) error
	// Serve runs the appliance's server on the state directory until ctx
	// ends.
	Serve func(ctx context.Context, stateDir string) error
	// DiskWait is how long to wait for the configuration partition to
	// appear (default 10 s).
	DiskWait time.Duration
	// NTPTimeout bounds the clock step (default 4 s per server).
	NTPTimeout time.Duration
}

// Status is what the console's status screen shows.
type Status struct {
	Version   string
	Hostname  string
	Config    string // the configuration partition, or why there is none
	Network   string
	Addresses []string
	Clock     string
	Pool      string
	TPM       string
	Problems  []string
}

// URL is the address to open in a browser (the first IPv4 address).
func (s Status) URL() string {
	for _, a := range s.Addresses {
		if ip := net.ParseIP(a); ip != nil && ip.To4() != nil {
			return "https://" + a
		}
	}
	if len(s.Addresses) > 0 {
		return "https://[" + s.Addresses[0] + "]"
	}
	return "https://" + s.Hostname
}

// Screen renders the status screen.
func (s Status) Screen(setUp bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n  Coffer %s on %s\n", s.Version, s.Hostname)
	row := func(k, v string) { fmt.Fprintf(&b, "    %-9s %s\n", k+":", v) }
	row("Address", s.URL())
	row("Network", s.Network)
	row("Clock", s.Clock)
	row("Config", s.Config)
	row("Pool", s.Pool)
	row("TPM", s.TPM)
	for _, p := range s.Problems {
		fmt.Fprintf(&b, "    ! %s\n", p)
	}
	if setUp {
		fmt.Fprintf(&b, "\n  Open %s to manage this appliance\n\n", s.URL())
	} else {
		fmt.Fprintf(&b, "\n  Open %s to set up this appliance\n\n", s.URL())
	}
	return b.String()
}

// Run boots the appliance and serves until ctx ends.
func Run(ctx context.Context, o Options) error {
	st := Status{Version: o.Version, Hostname: "coffer"}
	say := func(format string, a ...any) { fmt.Fprintf(o.Out, "coffer: "+format+"\n", a...) }
	problem := func(format string, a ...any) {
		msg := fmt.Sprintf(format, a...)
		st.Problems = append(st.Problems, msg)
		say("%s", msg)
	}

	// The configuration partition holds the state directory.
	stateDir := filepath.Join(o.ConfigDir, "state")
	// Without udev, disks are probed while init runs: give them time.
	dev, err := o.findPartition(ConfigPartition)
	for wait := time.Now().Add(o.diskWait()); err != nil && time.Now().Before(wait); {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		dev, err = o.findPartition(ConfigPartition)
	}
	switch {
	case err != nil:
		problem("no configuration partition (%v): settings are kept in memory and lost at power-off", err)
		st.Config = "none (in memory)"
		_ = o.Mount("tmpfs", o.ConfigDir, "tmpfs", 0, "mode=0700")
	default:
		if err := o.mountConfig(ctx, dev); err != nil {
			problem("configuration partition %s: %v; settings are kept in memory", dev, err)
			st.Config = dev + " (unreadable)"
			_ = o.Mount("tmpfs", o.ConfigDir, "tmpfs", 0, "mode=0700")
		} else {
			st.Config = dev + " (ext4)"
		}
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("create the state directory: %w", err)
	}
	state, err := setup.LoadState(stateDir)
	if err != nil {
		problem("setup state unreadable: %v", err)
	}
	if h := state.Network.Hostname; h != "" {
		st.Hostname = h
	}
	if o.SetHostname != nil {
		if err := o.SetHostname(st.Hostname); err != nil {
			problem("set the host name: %v", err)
		}
	}

	st.Network = o.network(ctx, state.Network, problem)
	st.Addresses = addresses()
	st.Clock = o.clock(ctx, state.Network.NTP, problem)

	switch state.Storage.Kind {
	case "":
		st.Pool = "not set up yet"
	case "raid":
		p := state.Storage.Pool
		st.Pool = fmt.Sprintf("%s on %s, at %s", p.Level, strings.Join(p.Disks, " "), state.Storage.Path)
		if o.AssemblePool == nil {
			problem("this system cannot start RAID pools")
		} else if err := o.AssemblePool(ctx, state.Storage); err != nil {
			problem("start the pool: %v", err)
			st.Pool += " (not started)"
		}
	default:
		st.Pool = state.Storage.Path
	}
	st.TPM = o.tpm()
	fmt.Fprint(o.Out, st.Screen(!state.Completed.IsZero()))
	return o.Serve(ctx, stateDir)
}

func (o Options) diskWait() time.Duration {
	if o.DiskWait == 0 {
		return 10 * time.Second
	}
	return o.DiskWait
}

// findPartition returns the device node of the partition named name.
func (o Options) findPartition(name string) (string, error) {
	entries, err := os.ReadDir(filepath.Join(o.Sys, "class", "block"))
	if err != nil {
		return "", err
	}
	var found []string
	for _, e := range entries {
		kv, err := readUevent(filepath.Join(o.Sys, "class", "block", e.Name(), "uevent"))
		if err != nil || kv["DEVTYPE"] != "partition" || kv["PARTNAME"] != name {
			continue
		}
		found = append(found, filepath.Join(o.Dev, kv["DEVNAME"]))
	}
	sort.Strings(found)
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no partition is named %s", name)
	case 1:
		return found[0], nil
	default:
		return "", fmt.Errorf("%d partitions are named %s (%s): remove the other boot disks", len(found), name, strings.Join(found, ", "))
	}
}

func readUevent(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	kv := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			kv[k] = v
		}
	}
	return kv, sc.Err()
}

// mountConfig mounts the configuration partition, checking it first
// (a power cut leaves the journal to replay; e2fsck -p repairs what is
// safe to repair without a person).
func (o Options) mountConfig(ctx context.Context, dev string) error {
	if err := os.MkdirAll(o.ConfigDir, 0o700); err != nil {
		return err
	}
	if out, err := o.Run(ctx, "e2fsck", "-p", dev); err != nil {
		// Exit 1 means errors were corrected; only worse is a failure.
		var ee interface{ ExitCode() int }
		if !errors.As(err, &ee) || ee.ExitCode() > 1 {
			return fmt.Errorf("check %s: %v: %s", dev, err, strings.TrimSpace(string(out)))
		}
	}
	if err := o.Mount(dev, o.ConfigDir, "ext4", 0, ""); err != nil {
		return fmt.Errorf("mount %s: %w", dev, err)
	}
	return nil
}

// network configures the interfaces: DHCP, or the static address the
// wizard recorded.
func (o Options) network(ctx context.Context, n setup.Network, problem func(string, ...any)) string {
	ifs := interfaces(o.Sys)
	if len(ifs) == 0 {
		problem("no network interface found")
		return "no interface"
	}
	_, _ = o.Run(ctx, "ip", "link", "set", "lo", "up")
	if n.Mode == "static" && n.Address != "" {
		dev := ifs[0]
		steps := [][]string{{"link", "set", dev, "up"}, {"addr", "add", n.Address, "dev", dev}}
		if n.Gateway != "" {
			steps = append(steps, []string{"route", "add", "default", "via", n.Gateway})
		}
		for _, s := range steps {
			if out, err := o.Run(ctx, "ip", s...); err != nil {
				problem("ip %s: %v %s", strings.Join(s, " "), err, strings.TrimSpace(string(out)))
			}
		}
		if len(n.DNS) > 0 {
			var b strings.Builder
			for _, d := range n.DNS {
				fmt.Fprintf(&b, "nameserver %s\n", d)
			}
			if err := os.WriteFile("/etc/resolv.conf", []byte(b.String()), 0o644); err != nil {
				problem("write resolv.conf: %v", err)
			}
		}
		return fmt.Sprintf("%s %s (static)", dev, n.Address)
	}
	args := append([]string{"-ipv6=false", "-timeout", "10", "-retry", "3"}, ifs...)
	if out, err := o.Run(ctx, "dhclient", args...); err != nil {
		problem("DHCP: %v %s", err, strings.TrimSpace(lastLine(string(out))))
		return strings.Join(ifs, " ") + " (DHCP failed)"
	}
	return strings.Join(ifs, " ") + " (DHCP)"
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// interfaces lists the Ethernet interfaces (not loopback, bridges or
// virtual devices) in name order.
func interfaces(sys string) []string {
	entries, _ := os.ReadDir(filepath.Join(sys, "class", "net"))
	var out []string
	for _, e := range entries {
		if e.Name() == "lo" {
			continue
		}
		if _, err := os.Stat(filepath.Join(sys, "class", "net", e.Name(), "device")); err != nil {
			continue // virtual
		}
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// addresses lists the machine's global unicast addresses.
func addresses() []string {
	var out []string
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.IsGlobalUnicast() {
			out = append(out, ipn.IP.String())
		}
	}
	return out
}

// DefaultNTP is asked when the wizard recorded no NTP server.
var DefaultNTP = []string{"pool.ntp.org"}

// clock steps the clock from the first NTP server that answers.
func (o Options) clock(ctx context.Context, servers []string, problem func(string, ...any)) string {
	if len(servers) == 0 {
		servers = DefaultNTP
	}
	timeout := o.NTPTimeout
	if timeout == 0 {
		timeout = 4 * time.Second
	}
	var errs []string
	for _, s := range servers {
		qctx, cancel := context.WithTimeout(ctx, timeout)
		t, err := QueryTime(qctx, s)
		cancel()
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if o.SetClock != nil {
			if err := o.SetClock(t); err != nil {
				problem("set the clock: %v", err)
			}
		}
		return fmt.Sprintf("%s (NTP %s)", t.UTC().Format("2006-01-02 15:04 MST"), s)
	}
	problem("the clock is not synchronised: %s", strings.Join(errs, "; "))
	return time.Now().UTC().Format("2006-01-02 15:04 MST") + " (hardware clock, not synchronised)"
}

// tpm says whether the firmware offers a TPM 2.0.
func (o Options) tpm() string {
	if _, err := os.Stat(filepath.Join(o.Dev, "tpmrm0")); err == nil {
		return "TPM 2.0 (" + filepath.Join(o.Dev, "tpmrm0") + ")"
	}
	return "none: the store key is kept in a key file"
}
