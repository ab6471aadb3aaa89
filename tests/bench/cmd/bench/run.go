package main

import (
	"bytes"
	"coffer.dev/coffer/tests/bench/internal/verdict"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// proc is what one child process cost.
type proc struct {
	Seconds float64 // wall clock, start to exit
	MaxRSS  int64   // peak resident set of the child, bytes
	CPU     float64 // user + system seconds of the child
	Others  float64 // CPU seconds the rest of the machine used meanwhile
	Stdout  []byte
}

// runner starts the measured tools as child processes, one at a time, and
// keeps each one's output in logs/NAME.log.
type runner struct {
	logDir  string
	timeout time.Duration
}

// run executes name with args in dir (env is added to the harness's own
// environment, less any RESTIC_* and BORG_* variables) and measures it. Standard input is empty,
// so a tool that asks a question fails instead of hanging.
func (r *runner) run(logName, dir string, env []string, name string, args ...string) (proc, error) {
	logPath := filepath.Join(r.logDir, logName+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return proc{}, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "# cwd: %s\n# env: %s\n$ %s %s\n", dir, strings.Join(env, " "), name, strings.Join(args, " "))

	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdout = io.MultiWriter(&out, logf)
	cmd.Stderr = logf
	cmd.WaitDelay = 10 * time.Second

	busy0 := verdict.BusyTicks()
	start := time.Now()
	err = cmd.Run()
	p := proc{Seconds: time.Since(start).Seconds(), Stdout: out.Bytes()}
	busy1 := verdict.BusyTicks()
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			p.MaxRSS = ru.Maxrss << 10 // KiB on Linux
			p.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		}
	}
	if busy0 > 0 && busy1 > busy0 {
		p.Others = max(0, float64(busy1-busy0)/verdict.ClockTicks-p.CPU)
	}
	fmt.Fprintf(logf, "\n# exit: %v; %.3f s; peak RSS %d KiB\n", cmd.ProcessState, p.Seconds, p.MaxRSS>>10)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out after %s", r.timeout)
		}
		return p, fmt.Errorf("%s %s: %v\n--- last lines of %s ---\n%s", filepath.Base(name),
			strings.Join(args[:min(len(args), 2)], " "), err, logPath, tail(logPath, 15))
	}
	return p, nil
}

// cleanEnv is the harness's environment without restic's and borg's
// settings, so that only what the harness sets reaches the tools.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RESTIC_") && !strings.HasPrefix(kv, "BORG_") {
			env = append(env, kv)
		}
	}
	return env
}

// loadAvg returns the 1-minute load average, a hint of how busy the
// (shared) machine was when a timed run started.
func loadAvg() float64 {
	var l float64
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscan(string(b), &l)
	}
	return l
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// output runs a short untimed command and returns its trimmed stdout.
func output(name string, args ...string) string {
	b, err := exec.Command(name, args...).Output()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return strings.TrimSpace(string(b))
}
