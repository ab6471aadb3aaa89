package vcsim

import (
	"reflect"
	"strings"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// GuestCommand is one StartProgramInGuest call that the double accepted.
type GuestCommand struct {
	VMUUID           string // instance UUID
	User             string // guest user name of the call's credentials
	Program          string // spec.programPath
	Arguments        string // spec.arguments
	WorkingDirectory string
	Env              []string
	PID              int64
	ExitCode         int32 // the scripted exit code (SetGuestResult), 0 by default
	Started          time.Time
}

type guestRule struct {
	match string
	exit  int32
	dur   time.Duration
	isDur bool
}

type guestProc struct {
	cmd   GuestCommand
	end   time.Time // zero while running
	ended bool
}

type guestState struct {
	user, pass string // "" means the Options defaults
	rules      []guestRule
	procs      []*guestProc
	nextPID    int64
	fs         *guestFS // made on first use (guestfs.go)
}

func (s *Sim) guestLocked(vm string) *guestState {
	g := s.guests[vm]
	if g == nil {
		g = &guestState{nextPID: 4000}
		s.guests[vm] = g
	}
	return g
}

func (s *Sim) setGuestCredentials(vm types.ManagedObjectReference, user, pass string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.guestLocked(vm.Value)
	g.user, g.pass = user, pass
}

// SetGuestResult scripts the exit code of later StartProgramInGuest calls on the VM
// whose command line ("programPath arguments") contains match; "" matches every
// command. The most recent matching rule wins.
func (s *Sim) SetGuestResult(vmUUID, match string, exitCode int) {
	ref, ok := s.lookupVM(vmUUID)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.guestLocked(ref.Value)
	g.rules = append(g.rules, guestRule{match: match, exit: int32(exitCode)})
}

// SetGuestDuration makes later matching commands (see SetGuestResult) run for d before
// they end, so clients poll ListProcessesInGuest. By default a command has ended by the
// time StartProgramInGuest returns.
func (s *Sim) SetGuestDuration(vmUUID, match string, d time.Duration) {
	ref, ok := s.lookupVM(vmUUID)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.guestLocked(ref.Value)
	g.rules = append(g.rules, guestRule{match: match, dur: d, isDur: true})
}

// GuestCommands returns the commands started in the VM's guest, oldest first.
func (s *Sim) GuestCommands(vmUUID string) []GuestCommand {
	ref, ok := s.lookupVM(vmUUID)
	if !ok {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []GuestCommand
	for _, p := range s.guestLocked(ref.Value).procs {
		c := p.cmd
		c.Env = append([]string(nil), c.Env...)
		out = append(out, c)
	}
	return out
}

// guestHandler answers GuestProcessManager calls without Docker. (The simulator's own
// StartProgramInGuest runs "docker exec" and crashes without Docker.)
type guestHandler struct {
	mo.GuestProcessManager
	sim *Sim
}

// guestVM checks the target VM and the guest credentials like ESXi: the VM must exist,
// be powered on with VMware Tools running, and the credentials must match.
func (h *guestHandler) guestVM(ctx *simulator.Context, ref types.ManagedObjectReference, auth types.BaseGuestAuthentication) (string, string, types.BaseMethodFault) {
	vm, ok := ctx.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return "", "", &types.ManagedObjectNotFound{Obj: ref}
	}
	var (
		power        types.VirtualMachinePowerState
		tools, inst  string
		fault        types.BaseMethodFault
		wantU, wantP string
	)
	ctx.WithLock(vm, func() {
		power = vm.Runtime.PowerState
		if vm.Guest != nil {
			tools = vm.Guest.ToolsRunningStatus
		}
		inst = vm.Config.InstanceUuid
	})
	switch {
	case power != types.VirtualMachinePowerStatePoweredOn:
		fault = &types.InvalidPowerState{RequestedState: types.VirtualMachinePowerStatePoweredOn, ExistingState: power}
	case tools != string(types.VirtualMachineToolsRunningStatusGuestToolsRunning):
		fault = &types.GuestOperationsUnavailable{}
	}
	if fault != nil {
		return "", "", fault
	}
	s := h.sim
	s.mu.Lock()
	g := s.guestLocked(ref.Value)
	wantU, wantP = g.user, g.pass
	s.mu.Unlock()
	if wantU == "" {
		wantU = s.opts.GuestUsername
	}
	if wantP == "" {
		wantP = s.opts.GuestPassword
	}
	np, ok := auth.(*types.NamePasswordAuthentication)
	if !ok || np.Username != wantU || np.Password != wantP {
		return "", "", &types.InvalidGuestLogin{}
	}
	return inst, np.Username, nil
}

// StartProgramInGuest records the command and starts a simulated process.
func (h *guestHandler) StartProgramInGuest(ctx *simulator.Context, req *types.StartProgramInGuest) soap.HasFault {
	body := new(methods.StartProgramInGuestBody)
	inst, user, fault := h.guestVM(ctx, req.Vm, req.Auth)
	if fault != nil {
		body.Fault_ = simulator.Fault("", fault)
		return body
	}
	if req.Spec == nil || req.Spec.GetGuestProgramSpec().ProgramPath == "" {
		body.Fault_ = simulator.Fault("programPath is empty", &types.InvalidArgument{InvalidProperty: "spec.programPath"})
		return body
	}
	spec := req.Spec.GetGuestProgramSpec()
	line := spec.ProgramPath + " " + spec.Arguments
	now := time.Now()

	s := h.sim
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.guestLocked(req.Vm.Value)
	var (
		exit int32
		dur  time.Duration
	)
	exitSet, durSet := false, false
	for i := len(g.rules) - 1; i >= 0 && !(exitSet && durSet); i-- {
		r := g.rules[i]
		if !strings.Contains(line, r.match) {
			continue
		}
		if r.isDur && !durSet {
			dur, durSet = r.dur, true
		} else if !r.isDur && !exitSet {
			exit, exitSet = r.exit, true
		}
	}
	g.nextPID++
	p := &guestProc{cmd: GuestCommand{
		VMUUID:           inst,
		User:             user,
		Program:          spec.ProgramPath,
		Arguments:        spec.Arguments,
		WorkingDirectory: spec.WorkingDirectory,
		Env:              append([]string(nil), spec.EnvVariables...),
		PID:              g.nextPID,
		ExitCode:         exit,
		Started:          now,
	}}
	p.end = now.Add(dur)
	g.procs = append(g.procs, p)
	body.Res = &types.StartProgramInGuestResponse{Returnval: p.cmd.PID}
	return body
}

// ListProcessesInGuest lists the simulated processes (those started through
// StartProgramInGuest), ended ones with their exit code.
func (h *guestHandler) ListProcessesInGuest(ctx *simulator.Context, req *types.ListProcessesInGuest) soap.HasFault {
	body := new(methods.ListProcessesInGuestBody)
	if _, _, fault := h.guestVM(ctx, req.Vm, req.Auth); fault != nil {
		body.Fault_ = simulator.Fault("", fault)
		return body
	}
	want := make(map[int64]bool)
	for _, pid := range req.Pids {
		want[pid] = true
	}
	now := time.Now()
	s := h.sim
	s.mu.Lock()
	defer s.mu.Unlock()
	res := &types.ListProcessesInGuestResponse{}
	for _, p := range s.guestLocked(req.Vm.Value).procs {
		if len(want) > 0 && !want[p.cmd.PID] {
			continue
		}
		info := types.GuestProcessInfo{
			Name:      p.cmd.Program,
			Pid:       p.cmd.PID,
			Owner:     p.cmd.User,
			CmdLine:   strings.TrimSpace(`"` + p.cmd.Program + `" ` + p.cmd.Arguments),
			StartTime: p.cmd.Started,
		}
		if p.ended || !now.Before(p.end) {
			end := p.end
			info.EndTime = &end
			info.ExitCode = p.cmd.ExitCode
		}
		res.Returnval = append(res.Returnval, info)
	}
	body.Res = res
	return body
}

// TerminateProcessInGuest ends a running simulated process with exit code 143 (killed
// by SIGTERM).
func (h *guestHandler) TerminateProcessInGuest(ctx *simulator.Context, req *types.TerminateProcessInGuest) soap.HasFault {
	body := new(methods.TerminateProcessInGuestBody)
	if _, _, fault := h.guestVM(ctx, req.Vm, req.Auth); fault != nil {
		body.Fault_ = simulator.Fault("", fault)
		return body
	}
	now := time.Now()
	s := h.sim
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.guestLocked(req.Vm.Value).procs {
		if p.cmd.PID != req.Pid {
			continue
		}
		if !p.ended && now.Before(p.end) {
			p.ended, p.end = true, now
			p.cmd.ExitCode = 143
		}
		body.Res = new(types.TerminateProcessInGuestResponse)
		return body
	}
	body.Fault_ = simulator.Fault("", &types.GuestProcessNotFound{Pid: req.Pid})
	return body
}

// guestFileFault answers the GuestFileManager methods that the guest file system
// double (guestfs.go) does not simulate (temporary files, moves, attribute changes,
// directory removal): after the same checks as for processes (VM powered on, tools
// running, credentials) the call fails with NotSupported. (Without Docker the simulator's own implementations skip
// the credential check and pretend to succeed.)
func (s *Sim) guestFileFault(ctx *simulator.Context, m *simulator.Method) types.BaseMethodFault {
	vm := s.targetVM(ctx, m)
	if vm == nil {
		return &types.InvalidArgument{InvalidProperty: "vm"}
	}
	var auth types.BaseGuestAuthentication
	if v := reflect.ValueOf(m.Body); v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct {
		if f := v.Elem().FieldByName("Auth"); f.IsValid() {
			auth, _ = f.Interface().(types.BaseGuestAuthentication)
		}
	}
	h := &guestHandler{sim: s}
	if _, _, fault := h.guestVM(ctx, *vm, auth); fault != nil {
		return fault
	}
	return &types.NotSupported{}
}
