package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"coffer.dev/coffer/appliance/boot"
	"coffer.dev/coffer/appliance/setup"
)

// runBoot is the appliance image's uinit: it brings the machine up and
// serves the UI, restarting the server if it stops.
func runBoot(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("boot", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	configDir := fs.String("config", "/var/lib/coffer", "mount point of the configuration partition")
	listen := fs.String("listen", ":443", "HTTPS address")
	redirect := fs.String("http", ":80", "plain HTTP address that redirects to HTTPS (empty: none)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	o := boot.Options{
		Sys: "/sys", Dev: "/dev", ConfigDir: *configDir, Version: Version,
		Out: env.Stdout, Log: env.Log,
		Run: func(ctx context.Context, name string, args ...string) ([]byte, error) {
			return exec.CommandContext(ctx, name, args...).CombinedOutput()
		},
		Mount: syscall.Mount,
		SetClock: func(t time.Time) error {
			tv := syscall.NsecToTimeval(t.UnixNano())
			return syscall.Settimeofday(&tv)
		},
		SetHostname:  func(h string) error { return syscall.Sethostname([]byte(h)) },
		AssemblePool: assemblePool,
		Serve: func(ctx context.Context, stateDir string) error {
			serveArgs := []string{"--state", stateDir, "--listen", *listen, "--machine"}
			if *redirect != "" {
				serveArgs = append(serveArgs, "--http", *redirect)
			}
			for {
				err := runServe(ctx, env, serveArgs)
				if ctx.Err() != nil {
					return err
				}
				fmt.Fprintf(env.Stderr, "coffer: the server stopped (%v); restarting in 5 s\n", err)
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(5 * time.Second):
				}
			}
		},
	}
	if _, err := os.Stat("/etc/coffer/version"); err == nil && Version == "dev" {
		if b, err := os.ReadFile("/etc/coffer/version"); err == nil {
			o.Version = string(b)
		}
	}
	return boot.Run(ctx, o)
}

// assemblePool is replaced once appliance/disks lands.
var assemblePool = func(ctx context.Context, s setup.Storage) error {
	return fmt.Errorf("no RAID support in this build")
}

// machineDisks returns the machine's disk discovery and pool builder;
// replaced once appliance/disks lands.
var machineDisks = func(env *Env) (setup.DiskSource, setup.PoolMaker) { return nil, nil }
