package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"coffer.dev/coffer/appliance/app"
	"coffer.dev/coffer/appliance/catalog"
	"coffer.dev/coffer/appliance/jobs"
	"coffer.dev/coffer/appliance/jobs/schedule"
	"coffer.dev/coffer/appliance/setup"
	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/appliance/vsphere/vcsim"
	"coffer.dev/coffer/store"
	"coffer.dev/coffer/ui"
)

// demoVM is one VM of the embedded vCenter.
type demoVM struct {
	name, folder, host, guest, power string
	disks                            []int64 // MiB
	tags                             []string
}

var demoVMs = []demoVM{
	{name: "web01", folder: "Production/Web", host: "DC0_C0_H0", guest: "debian12_64Guest", power: "poweredOn", disks: []int64{160, 64}, tags: []string{"Backup/Gold"}},
	{name: "web02", folder: "Production/Web", host: "DC0_C0_H1", guest: "debian12_64Guest", power: "poweredOn", disks: []int64{160}, tags: []string{"Backup/Gold"}},
	{name: "db01", folder: "Production/Databases", host: "DC0_C0_H1", guest: "debian12_64Guest", power: "poweredOn", disks: []int64{128, 192}},
	{name: "fileserver", folder: "Office", host: "DC0_H0", guest: "windows2019srv_64Guest", power: "poweredOn", disks: []int64{192}},
	{name: "build-old", folder: "Lab", host: "DC0_H0", guest: "otherLinux64Guest", power: "poweredOff", disks: []int64{96}},
}

// runDemo starts the appliance against an embedded vSphere simulator
// holding a handful of VMs with real file systems, protects them with a
// first policy, runs its first backup with live progress, and serves
// the API until interrupted.
func runDemo(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	dir := fs.String("dir", filepath.Join("var", "demo"), "working directory (recreated)")
	listen := fs.String("listen", "127.0.0.1:8443", "HTTPS address of the API")
	serve := fs.Bool("serve", true, "keep serving the API after the first backup (until Ctrl-C)")
	scale := fs.Int("scale", 100, "disk sizes in percent of the defaults (tests use less)")
	wizard := fs.Bool("wizard", false, "serve a fresh appliance with the setup wizard instead of setting it up (the embedded vCenter's address and login are printed)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *scale < 10 || *scale > 1000 {
		return usagef("demo: --scale must be between 10 and 1000")
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if os.Getenv("COFFER_DEBUG") == "" {
		// The demo narrates; the log keeps to problems.
		env = &Env{Stdout: env.Stdout, Stderr: env.Stderr, Log: slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	}
	say := func(format string, a ...any) { fmt.Fprintf(env.Stdout, format+"\n", a...) }
	if err := os.RemoveAll(*dir); err != nil {
		return err
	}
	for _, d := range []string{"datastores", "images"} {
		if err := os.MkdirAll(filepath.Join(*dir, d), 0o700); err != nil {
			return err
		}
	}

	say("== Starting an embedded vCenter (govmomi simulator with change tracking) and its VMs")
	sim, err := vcsim.Start(ctx, vcsim.Options{Dir: filepath.Join(*dir, "datastores")})
	if err != nil {
		return err
	}
	defer sim.Close()
	created := map[string]vcsim.VM{}
	for i, v := range demoVMs {
		spec := vcsim.VMSpec{Name: v.name, Folder: v.folder, Host: v.host, GuestID: v.guest, PowerState: v.power, Tags: v.tags}
		for j, mb := range v.disks {
			size := mb * int64(*scale) / 100 << 20
			size = max(size, 16<<20) &^ (1<<20 - 1)
			img := filepath.Join(*dir, "images", fmt.Sprintf("%s-%d.img", v.name, j))
			if err := makeDemoDiskSeeded(ctx, img, size, filepath.Join(*dir, "images", "tree"), uint64(i*10+j)); err != nil {
				return err
			}
			f, err := os.Open(img)
			if err != nil {
				return err
			}
			defer f.Close()
			spec.Disks = append(spec.Disks, vcsim.DiskSpec{Capacity: size, Thin: j > 0, Content: f, Datastore: fmt.Sprintf("LocalDS_%d", j%2)})
		}
		vm, err := sim.CreateVM(ctx, spec)
		if err != nil {
			return fmt.Errorf("demo VM %s: %w", v.name, err)
		}
		created[v.name] = vm
		say("   %-11s %-22s %-10s %d disk(s), instance UUID %s", v.name, v.folder, v.power, len(v.disks), vm.UUID)
	}
	_ = os.RemoveAll(filepath.Join(*dir, "images"))

	state := filepath.Join(*dir, "appliance")
	if *wizard {
		return demoWizard(ctx, env, sim, state, filepath.Join(*dir, "pool"), *listen)
	}
	say("\n== Setting up the appliance in %s", state)
	if err := app.Init(state); err != nil {
		return err
	}
	a, err := app.Open(ctx, state, env.Log)
	if err != nil {
		return err
	}
	defer a.Close()
	cert, err := vsphere.ProbeCertificate(ctx, sim.URL().String(), vsphere.Trust{})
	if err != nil {
		return err
	}
	say("   vCenter %s presents a self-signed certificate, SHA-256 %s", sim.URL().Host, cert.SHA256)
	say("   trusting it explicitly (pinned), as the setup wizard asks the administrator to")
	user, pass := sim.Credentials()
	if err := a.SetVCenter(ctx, vsphere.Endpoint{URL: sim.URL().String(), Username: user, Password: pass,
		Trust: vsphere.Trust{Thumbprints: map[string]string{sim.URL().Hostname(): cert.SHA256}}}); err != nil {
		return err
	}
	say("   logged in as %s; the password is stored encrypted under the store's key", user)
	adminPW, err := demoPassword()
	if err != nil {
		return err
	}
	if err := ui.SetAdmin(state, "admin", adminPW); err != nil {
		return err
	}

	svc, err := a.StartServices(ctx, jobs.Options{})
	if err != nil {
		return err
	}
	defer svc.Close()
	pol, err := svc.CreatePolicy(jobs.Policy{
		Name: "All VMs nightly", Enabled: true, Selection: jobs.Selection{All: true},
		Schedule: schedule.MustParse("*-*-* 22:00"), Window: mustWindow("22:00-06:00"),
		Retention: store.Retention{Daily: 14, Weekly: 8, Monthly: 12}, Consistency: vsphere.PreferApplication,
	})
	if err != nil {
		return err
	}
	say("   policy %q: all VMs, nightly at 22:00 in the window 22:00–06:00, keep 14 daily / 8 weekly / 12 monthly", pol.Name)

	say("\n== First backup (runs now instead of tonight)")
	events, cancel := svc.Subscribe()
	defer cancel()
	jobID, err := svc.RunPolicy(ctx, pol.ID, jobs.TriggerManual)
	if err != nil {
		return err
	}
	start := time.Now()
	job, err := followJob(ctx, env, svc, events, jobID)
	if err != nil {
		return err
	}
	say("\n   job %s: %s in %s, read %s, stored %s", job.ID, job.State, time.Since(start).Round(time.Millisecond), human(job.BytesRead), human(job.BytesStored))
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "   VM\tSTATE\tCONSISTENCY\tRECOVERABILITY\tREAD\tSTORED\tTIME\tNOTE")
	for _, r := range job.VMs {
		cons, note, check := "", r.Reason+r.Error, ""
		if r.Result != nil {
			cons, check = string(r.Result.Consistency), r.Result.Recoverability
			if len(r.Result.Notes) > 0 {
				note = r.Result.Notes[0]
			}
			if len(r.Result.Warnings) > 0 {
				note = r.Result.Warnings[0]
			}
		}
		fmt.Fprintf(tw, "   %s\t%s\t%s\t%s\t%s\t%s\t%s\t%.90s\n", r.Name, r.State, cons, check, human(r.BytesRead), human(r.BytesStored), r.Duration.Round(time.Millisecond), note)
	}
	tw.Flush()
	if job.State == jobs.JobFailed {
		return fmt.Errorf("demo: the first backup failed")
	}

	say("\n== A day later: new logs on web01 and db01; the next run reads only what changed")
	for _, name := range []string{"web01", "db01"} {
		vm := created[name]
		flat, err := sim.DiskFile(vm.UUID, vm.Disks[0].Key)
		if err != nil {
			return err
		}
		if err := addDemoLog(ctx, flat, *dir, name); err != nil {
			return err
		}
	}
	start = time.Now()
	jobID, err = svc.RunPolicy(ctx, pol.ID, jobs.TriggerManual)
	if err != nil {
		return err
	}
	if job, err = followJob(ctx, env, svc, events, jobID); err != nil {
		return err
	}
	say("\n   job %s: %s in %s, read %s, stored %s", job.ID, job.State, time.Since(start).Round(time.Millisecond), human(job.BytesRead), human(job.BytesStored))
	for _, r := range job.VMs {
		if r.Result == nil {
			continue
		}
		var methods []string
		for _, d := range r.Result.Disks {
			methods = append(methods, d.Name+" "+d.Method+" ("+human(d.Changed)+" changed)")
		}
		say("   %-11s read %-9s %s", r.Name, human(r.BytesRead), strings.Join(methods, ", "))
	}
	rep, err := svc.Protection(ctx)
	if err != nil {
		return err
	}
	st, err := a.Store.Stats()
	if err == nil {
		say("   store: %s logical in %d points (daily retention keeps each VM's newest point of the day), %s stored", human(st.Logical), st.Points, human(st.Stored))
	}
	say("   protection: %d VMs, %d protected, %d unprotected, %d RPO misses", rep.Totals.VMs, rep.Totals.Protected, rep.Totals.Unprotected, rep.Totals.RPOMiss)
	if job.State == jobs.JobFailed {
		return fmt.Errorf("demo: the second backup failed")
	}
	if err := demoFiles(ctx, env, a, *dir); err != nil {
		return err
	}
	if !*serve {
		return nil
	}

	srv := &ui.Server{Dir: state, Addr: *listen, Backend: svc, Log: env.Log}
	if err := srv.Start(); err != nil {
		return err
	}
	defer srv.Shutdown(context.Background())
	say("\n== The appliance is serving its UI and API")
	say("   Open %s and log in as admin with password %s", srv.URL(), adminPW)
	say("   certificate SHA-256 %s (self-signed; compare it with what the browser shows)", srv.CertificateFingerprint())
	say("   API: %s/api/v1 (documented at %s/api/v1/openapi.json), e.g.", srv.URL(), srv.URL())
	say("         coffer remote --appliance %s --fingerprint %s login --user admin --save", srv.URL(), srv.CertificateFingerprint())
	say("         coffer remote status")
	say("   A fresh appliance with the setup wizard: coffer demo --wizard")
	say("   Ctrl-C stops the demo.")
	<-ctx.Done()
	return nil
}

func mustWindow(s string) schedule.Window {
	w, err := schedule.ParseWindow(s)
	if err != nil {
		panic(err) // a constant above
	}
	return w
}

// followJob prints VM state changes until the job finishes.
func followJob(ctx context.Context, env *Env, svc *app.Services, events <-chan jobs.Event, id string) (jobs.Job, error) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return jobs.Job{}, errors.New("job events ended")
			}
			if ev.JobID == id && ev.Type == jobs.EventVM && ev.VM != nil {
				fmt.Fprintf(env.Stdout, "   %-11s %s\n", ev.VM.Name, ev.VM.State)
			}
		case <-tick.C:
		case <-ctx.Done():
			return jobs.Job{}, ctx.Err()
		}
		j, err := svc.Job(id)
		if err != nil {
			return jobs.Job{}, err
		}
		if j.State.Finished() {
			return j, nil
		}
	}
}

// addDemoLog writes a new log file into the ext4 file system at the
// start of a VM's flat disk file (debugfs, no mount), as a day of use
// would.
func addDemoLog(ctx context.Context, flat, dir, name string) error {
	debugfs, err := exec.LookPath("debugfs")
	if err != nil {
		return fmt.Errorf("demo: debugfs is needed (apt-get install e2fsprogs): %w", err)
	}
	var b strings.Builder
	for i := 0; b.Len() < 3<<20; i++ {
		fmt.Fprintf(&b, "2026-11-24T03:%02d:%02d %s request %d served in %d ms\n", i/60%60, i%60, name, i, i%97)
	}
	src := filepath.Join(dir, name+"-day2.log")
	if err := os.WriteFile(src, []byte(b.String()), 0o600); err != nil {
		return err
	}
	defer os.Remove(src)
	out, err := exec.CommandContext(ctx, debugfs, "-w", "-R", "write "+src+" /day2.log", flat).CombinedOutput()
	if err != nil {
		return fmt.Errorf("demo: debugfs: %v: %s", err, out)
	}
	return nil
}

// demoPassword makes a strong random password for the demo's admin.
func demoPassword() (string, error) {
	const chars = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 0, 20)
	for i := 0; i < 16; i++ {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(chars))))
		if err != nil {
			return "", err
		}
		b = append(b, chars[n.Int64()])
	}
	return "Cf-" + string(b) + "7a", nil
}

// demoFiles searches the catalogs for the day-2 log and restores one file
// of a point without restoring its VM.
func demoFiles(ctx context.Context, env *Env, a *app.App, dir string) error {
	say := func(format string, args ...any) { fmt.Fprintf(env.Stdout, format+"\n", args...) }
	say("\n== Single files from the image backups: search across points and VMs, restore one file")
	hits, err := a.Catalogs().Search(ctx, catalog.Query{Pattern: "day2.log"})
	if err != nil {
		return err
	}
	say("   search \"day2.log\": %d hits", len(hits))
	for _, h := range hits {
		say("   %-8s point %s  volume %s  %s  %s", h.Name, h.Point, h.Volume, h.Path, human(h.Size))
	}
	if len(hits) == 0 {
		return fmt.Errorf("demo: the catalog search found no day-2 log")
	}
	h := hits[0]
	pf, c, err := a.OpenPointFiles(ctx, h.Point)
	if err != nil {
		return err
	}
	defer pf.Close()
	e, ok := c.Find(h.Volume, h.Path)
	if !ok {
		return fmt.Errorf("demo: %s vanished from the catalog", h.Path)
	}
	f, err := pf.Open(c, e)
	if err != nil {
		return err
	}
	out := filepath.Join(dir, "restored-"+h.Name+"-day2.log")
	w, err := os.Create(out)
	if err != nil {
		return err
	}
	start := time.Now()
	n, err := io.Copy(w, io.NewSectionReader(f, 0, f.Size()))
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("demo: restore %s: %w", h.Path, err)
	}
	say("   restored %s of %s (%s) to %s in %s — the VM's disk was not restored", h.Path, h.Name, human(n), out, time.Since(start).Round(time.Millisecond))
	return nil
}

// demoWizard serves a fresh appliance: the administrator goes through
// the setup wizard in the browser against the embedded vCenter.
func demoWizard(ctx context.Context, env *Env, sim *vcsim.Sim, state, pool, listen string) error {
	say := func(format string, a ...any) { fmt.Fprintf(env.Stdout, format+"\n", a...) }
	abs, err := filepath.Abs(state)
	if err != nil {
		return err
	}
	if pool, err = filepath.Abs(pool); err != nil {
		return err
	}
	srv := &ui.Server{Dir: abs, Addr: listen, Log: env.Log, Hostname: "coffer-demo"}
	var (
		mu   sync.Mutex
		done []func() error
	)
	w, err := setup.Open(ctx, setup.Options{Dir: abs, PoolDir: pool, Log: env.Log, OnComplete: func(a *app.App, svc *app.Services) {
		mu.Lock()
		done = append(done, a.Close, svc.Close)
		mu.Unlock()
		srv.SetBackend(svc)
	}})
	if err != nil {
		return err
	}
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for i := len(done) - 1; i >= 0; i-- {
			_ = done[i]()
		}
		w.Close()
	}()
	srv.Setup = w
	if err := srv.Start(); err != nil {
		return err
	}
	defer srv.Shutdown(context.Background())
	user, pass := sim.Credentials()
	say("\n== A fresh appliance: run the setup wizard in your browser")
	say("   Open %s to set up this appliance (certificate SHA-256 %s)", srv.URL(), srv.CertificateFingerprint())
	say("   vCenter address %s, user %s, password %s", sim.URL().String(), user, pass)
	say("   vCenter certificate SHA-256 %s", sim.SHA256Thumbprint())
	say("   storage pool: the directory %s stands in for the RAID pool", pool)
	say("   Ctrl-C stops the demo.")
	<-ctx.Done()
	return nil
}
