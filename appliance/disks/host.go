package disks

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Runner runs a command and returns its standard output. A Runner that
// also implements Looker says which commands exist; one that does not is
// taken to have them all.
type Runner interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// Looker finds a command; the optional half of a Runner.
type Looker interface {
	LookPath(name string) (string, error)
}

// ExecRunner runs commands with os/exec.
type ExecRunner struct{}

// Run runs name with args; the error carries the command's standard
// error. The standard output is returned even when the command fails
// (smartctl reports through its exit status).
func (ExecRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = msg[:2000] + "…"
		}
		if msg != "" {
			return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
		}
		return stdout.Bytes(), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return stdout.Bytes(), nil
}

// LookPath finds name on PATH.
func (ExecRunner) LookPath(name string) (string, error) { return exec.LookPath(name) }

// Host is the machine whose disks the package manages. The zero value is
// the real machine: /sys, /dev, /proc and os/exec.
type Host struct {
	SysRoot  string // "/sys"
	DevRoot  string // "/dev"
	ProcRoot string // "/proc"
	Run      Runner // ExecRunner when nil

	// SystemLabels are GPT partition names and file system labels
	// (compared case-insensitively) that mark the disk the appliance boots
	// from; DefaultSystemLabels when nil. IsSystem, when set, decides
	// instead.
	SystemLabels []string
	IsSystem     func(Disk) bool

	// MountPoint is where the pool is mounted when a Plan names no mount
	// point, and where AssemblePool mounts it; "/pool" when empty.
	MountPoint string
	// Mount mounts a file system; syscall.Mount when nil.
	Mount func(source, target, fstype string, flags uintptr, data string) error
	// WaitTimeout bounds the wait for an array's device node and, at
	// assembly, for missing members to appear; 30 s when zero.
	WaitTimeout time.Duration
	// PollInterval is how often those waits look; 100 ms when zero.
	PollInterval time.Duration
}

// DefaultSystemLabels are the labels of the appliance image's partitions
// (image/build.sh: GPT names coffer-esp and coffer-config, file systems
// COFFER-ESP and COFFER-CFG) and the names reserved for later layouts.
func DefaultSystemLabels() []string {
	return []string{"coffer-esp", "coffer-config", "coffer-cfg", "coffer-boot", "coffer-sys"}
}

func (h *Host) sys(p ...string) string {
	return filepath.Join(append([]string{orDefault(h.SysRoot, "/sys")}, p...)...)
}

func (h *Host) dev(p ...string) string {
	return filepath.Join(append([]string{orDefault(h.DevRoot, "/dev")}, p...)...)
}

func (h *Host) proc(p ...string) string {
	return filepath.Join(append([]string{orDefault(h.ProcRoot, "/proc")}, p...)...)
}

func (h *Host) runner() Runner {
	if h.Run == nil {
		return ExecRunner{}
	}
	return h.Run
}

func (h *Host) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return h.runner().Run(ctx, name, args...)
}

// has says whether the command name exists.
func (h *Host) has(name string) bool {
	l, ok := h.runner().(Looker)
	if !ok {
		return true
	}
	_, err := l.LookPath(name)
	return err == nil
}

func (h *Host) mount(source, target, fstype string, flags uintptr, data string) error {
	if h.Mount != nil {
		return h.Mount(source, target, fstype, flags, data)
	}
	return syscall.Mount(source, target, fstype, flags, data)
}

func (h *Host) mountPoint() string { return orDefault(h.MountPoint, "/pool") }

func (h *Host) waitTimeout() time.Duration {
	if h.WaitTimeout > 0 {
		return h.WaitTimeout
	}
	return 30 * time.Second
}

func (h *Host) pollInterval() time.Duration {
	if h.PollInterval > 0 {
		return h.PollInterval
	}
	return 100 * time.Millisecond
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// readString reads a sysfs attribute, trimmed; "" when it is missing.
func readString(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func readInt(path string) (int64, bool) {
	s := readString(path)
	if s == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
