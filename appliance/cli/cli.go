package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
)

// Version is set at build time (-ldflags "-X coffer.dev/coffer/appliance/cli.Version=…").
var Version = "dev"

// Env is what a command runs with: its output streams and logger.
type Env struct {
	Stdout io.Writer
	Stderr io.Writer
	Log    *slog.Logger
}

// command is one subcommand.
type command struct {
	name  string
	usage string
	run   func(ctx context.Context, env *Env, args []string) error
	hide  bool
}

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError marks bad command-line input (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

func commands() []command {
	return []command{
		{name: "store", usage: "manage a deduplicating store (init, backup-image, restore-image, list, verify, gc, stats, lock, delete, prune, recovery-key)", run: runStore},
		{name: "setup", usage: "prepare an appliance state directory (store, key, appliance ID)", run: runSetup},
		{name: "vsphere", usage: "connect to vCenter/ESXi, list its inventory, back up a VM now, sweep leftover snapshots", run: runVSphere},
		{name: "files", usage: "file catalog of image backups: search, list, versions, restore single files and folders", run: runFiles},
		{name: "serve", usage: "run the appliance: job engine, scheduler and the HTTPS API", run: runServe},
		{name: "boot", usage: "the appliance image's init: configuration partition, network, clock, pool, then serve", run: runBoot, hide: true},
		{name: "remote", usage: "run what the UI does against a running appliance over its API (status, jobs, run, points, search, download, export, restore, tokens, audit)", run: runRemote},
		{name: "admin", usage: "set the administrator account of the API", run: runAdmin},
		{name: "demo", usage: "run the appliance against an embedded vCenter simulator with a handful of VMs: first policy, first backup, then serve the API on https://127.0.0.1:8443", run: runDemo},
		{name: "demo-store", usage: "the store alone: back up a generated disk image (full, then changed extents) under ./var/demo-store, restore it and print the figures", run: runDemoStore},
		{name: "version", usage: "print the version", run: func(_ context.Context, env *Env, _ []string) error {
			fmt.Fprintln(env.Stdout, "coffer", Version)
			return nil
		}},
	}
}

// Main runs the command line and returns the exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	level := slog.LevelInfo
	if os.Getenv("COFFER_DEBUG") != "" {
		level = slog.LevelDebug
	}
	env := &Env{Stdout: stdout, Stderr: stderr, Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printUsage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return status(env, c.run(ctx, env, args[1:]))
		}
	}
	fmt.Fprintf(stderr, "coffer: unknown command %q\n\n", args[0])
	printUsage(stderr)
	return 2
}

func status(env *Env, err error) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(env.Stderr, "coffer:", ue.msg)
		return 2
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(env.Stderr, "coffer:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(env.Stderr, "coffer:", err)
	return 1
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: coffer COMMAND [ARGS]\n\ncommands:")
	cs := commands()
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		if !c.hide {
			fmt.Fprintf(w, "  %-10s %s\n", c.name, c.usage)
		}
	}
}

// parseInterleaved parses flags that may come before, between or after
// positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func newFlagSet(env *Env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "usage: coffer %s\n\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
