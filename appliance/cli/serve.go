package cli

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"coffer.dev/coffer/appliance/app"
	"coffer.dev/coffer/appliance/jobs"
	"coffer.dev/coffer/appliance/setup"
	"coffer.dev/coffer/ui"
)

var _ ui.Backend = (*app.Services)(nil)

// runServe runs the appliance: the job engine and the HTTPS UI and API.
// A fresh state directory gets the first-boot setup wizard instead.
func runServe(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	state := stateFlag(fs)
	listen := fs.String("listen", "127.0.0.1:8443", "HTTPS address")
	redirect := fs.String("http", "", "also listen for plain HTTP here and redirect to HTTPS (e.g. :80)")
	poolDir := fs.String("pool-dir", "", "a directory that stands in for the storage pool in the setup wizard (default STATE/pool)")
	machine := fs.Bool("machine", false, "this is the appliance: the wizard builds the pool from the machine's disks (RAID)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	abs, err := filepath.Abs(*state)
	if err != nil {
		return err
	}
	if *poolDir == "" && !*machine {
		*poolDir = filepath.Join(abs, "pool")
	}
	srv := &ui.Server{Dir: abs, Addr: *listen, Log: env.Log, Hostname: hostname()}
	var (
		mu      sync.Mutex
		closers []func() error
	)
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for i := len(closers) - 1; i >= 0; i-- {
			_ = closers[i]()
		}
	}()
	if SetUp(abs) {
		a, err := app.Open(ctx, abs, env.Log)
		if err != nil {
			return err
		}
		closers = append(closers, a.Close)
		svc, err := a.StartServices(ctx, jobs.Options{})
		if err != nil {
			return err
		}
		closers = append(closers, svc.Close)
		srv.Backend = svc
	} else {
		opt := setup.Options{Dir: abs, Log: env.Log}
		if *machine {
			opt.Disks, opt.Pools = machineDisks(env)
		} else if opt.PoolDir, err = filepath.Abs(*poolDir); err != nil {
			return err
		}
		w, err := setup.Open(ctx, setup.Options{Dir: abs, PoolDir: opt.PoolDir, Disks: opt.Disks, Pools: opt.Pools, Log: env.Log,
			OnComplete: func(a *app.App, svc *app.Services) {
				mu.Lock()
				closers = append(closers, a.Close, svc.Close)
				mu.Unlock()
				srv.SetBackend(svc)
			}})
		if err != nil {
			return err
		}
		closers = append(closers, w.Close)
		srv.Setup = w
	}
	if err := srv.Start(); err != nil {
		return err
	}
	defer srv.Shutdown(context.Background())
	if *redirect != "" {
		_, port, _ := net.SplitHostPort(*listen)
		rs := &http.Server{Addr: *redirect, Handler: ui.RedirectHandler(port), ReadHeaderTimeout: 10 * time.Second}
		go rs.ListenAndServe()
		defer rs.Close()
	}
	switch {
	case *machine:
		fmt.Fprintf(env.Stdout, "coffer: serving (certificate SHA-256 %s)\n", srv.CertificateFingerprint())
	case srv.Setup != nil:
		fmt.Fprintf(env.Stdout, "Open %s to set up this appliance (certificate SHA-256 %s)\n", srv.URL(), srv.CertificateFingerprint())
	default:
		fmt.Fprintf(env.Stdout, "Coffer appliance serving %s (API %s/api/v1, certificate SHA-256 %s)\n", srv.URL(), srv.URL(), srv.CertificateFingerprint())
	}
	<-ctx.Done()
	fmt.Fprintln(env.Stdout, "stopping: running backups are interrupted and their snapshots removed")
	return nil
}

// SetUp reports whether the state directory holds a set-up appliance:
// the wizard finished, or the CLI made the store and an account
// (`coffer setup` and `coffer admin`).
func SetUp(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, setup.StateFile)); err == nil {
		st, err := setup.LoadState(dir)
		return err == nil && !st.Completed.IsZero()
	}
	_, err := os.Stat(filepath.Join(dir, app.IDFile))
	return err == nil && ui.HasAdmin(dir)
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return h
}

// runAdmin sets the administrator account.
func runAdmin(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("admin", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	state := stateFlag(fs)
	user := fs.String("user", "admin", "administrator user name")
	pwFile := fs.String("password-file", "", "file holding the password (default: one line from stdin)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	pw, err := readPassword(*pwFile)
	if err != nil {
		return err
	}
	if err := ui.SetAdmin(*state, *user, pw); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "administrator %s set (password stored as a bcrypt hash)\n", *user)
	return nil
}
