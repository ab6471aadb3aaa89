package vsphere

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vmware/govmomi/guest"
	"github.com/vmware/govmomi/vim25/types"
)

// GuestCredentials log in to a guest OS for hooks. Kept in the encrypted
// secrets file; never logged.
type GuestCredentials struct {
	Username string `json:"username"`
	Password string `json:"-"`
}

// GuestRunner runs a command inside a VM's guest OS and returns its exit
// code.
type GuestRunner interface {
	Run(ctx context.Context, vm types.ManagedObjectReference, windows bool, creds GuestCredentials, command string) (int, error)
}

// ToolsGuestRunner runs commands through VMware Tools guest operations.
type ToolsGuestRunner struct {
	Client *Client
	// Poll is how often the process is checked (default 500 ms).
	Poll time.Duration
}

// Run starts command with the guest's shell (/bin/sh -c, or cmd.exe /c
// in Windows guests) and waits for it to end or ctx to expire, in which
// case the process is terminated.
func (g *ToolsGuestRunner) Run(ctx context.Context, vm types.ManagedObjectReference, windows bool, creds GuestCredentials, command string) (int, error) {
	om := guest.NewOperationsManager(g.Client.vim, vm)
	pm, err := om.ProcessManager(ctx)
	if err != nil {
		return -1, fmt.Errorf("guest operations: %w", err)
	}
	auth := &types.NamePasswordAuthentication{Username: creds.Username, Password: creds.Password}
	spec := &types.GuestProgramSpec{ProgramPath: "/bin/sh", Arguments: "-c " + shellQuote(command)}
	if windows {
		spec = &types.GuestProgramSpec{ProgramPath: `C:\Windows\System32\cmd.exe`, Arguments: "/c " + command}
	}
	pid, err := pm.StartProgram(ctx, auth, spec)
	if err != nil {
		if isFault(err, "InvalidGuestLogin") {
			return -1, errors.New("guest login refused: check the VM's guest credentials")
		}
		return -1, fmt.Errorf("start %q in the guest: %w", command, err)
	}
	poll := g.Poll
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	for {
		ps, err := pm.ListProcesses(ctx, auth, []int64{pid})
		if err != nil {
			return -1, fmt.Errorf("wait for %q in the guest: %w", command, err)
		}
		if len(ps) == 1 && ps[0].EndTime != nil {
			return int(ps[0].ExitCode), nil
		}
		select {
		case <-time.After(poll):
		case <-ctx.Done():
			_ = pm.TerminateProcess(context.WithoutCancel(ctx), auth, pid)
			return -1, fmt.Errorf("%q in the guest did not finish in time: %w", command, ctx.Err())
		}
	}
}

// shellQuote quotes s as one word for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
