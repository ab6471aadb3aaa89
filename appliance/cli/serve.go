package cli

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"coffer.dev/coffer/appliance/app"
	"coffer.dev/coffer/appliance/jobs"
	"coffer.dev/coffer/ui"
)

var _ ui.Backend = (*app.Services)(nil)

// runServe runs the appliance: the job engine and the HTTPS API.
func runServe(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	state := stateFlag(fs)
	listen := fs.String("listen", "127.0.0.1:8443", "HTTPS address")
	redirect := fs.String("http", "", "also listen for plain HTTP here and redirect to HTTPS (e.g. :80)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	a, err := app.Open(ctx, *state, env.Log)
	if err != nil {
		return err
	}
	defer a.Close()
	if !ui.HasAdmin(*state) {
		return fmt.Errorf("no administrator account yet: run `coffer admin --state %s --user admin` first", *state)
	}
	svc, err := a.StartServices(ctx, jobs.Options{})
	if err != nil {
		return err
	}
	defer svc.Close()
	srv := &ui.Server{Dir: *state, Addr: *listen, Backend: svc, Log: env.Log}
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
	fmt.Fprintf(env.Stdout, "Coffer appliance serving %s/api/v1 (certificate SHA-256 %s)\n", srv.URL(), srv.CertificateFingerprint())
	<-ctx.Done()
	fmt.Fprintln(env.Stdout, "stopping: running backups are interrupted and their snapshots removed")
	return nil
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
