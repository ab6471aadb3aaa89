package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"coffer.dev/coffer/appliance/app"
	"coffer.dev/coffer/appliance/restore"
	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/store/point"
)

// stateDir is the appliance state directory flag shared by the
// appliance commands.
func stateFlag(fs *flag.FlagSet) *string {
	return fs.String("state", envOr("COFFER_STATE", "var/appliance"), "appliance state directory ($COFFER_STATE)")
}

func runSetup(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("setup", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	state := stateFlag(fs)
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if err := app.Init(*state); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "appliance state ready in %s (store, key file, appliance ID)\n", *state)
	return nil
}

func runVSphere(ctx context.Context, env *Env, args []string) error {
	subs := map[string]func(context.Context, *Env, []string) error{
		"probe": vsProbe, "add": vsAdd, "guest-credentials": vsGuestCredentials, "inventory": vsInventory, "backup": vsBackup, "sweep": vsSweep, "restore": vsRestore,
	}
	if len(args) == 0 || subs[args[0]] == nil {
		return usagef("usage: coffer vsphere probe|add|inventory|backup|restore|sweep [flags]\n" +
			"  probe URL              show the server's certificate and thumbprint\n" +
			"  add --url U --user N   trust the certificate (--thumbprint), test the login, store it (password from --password-file or stdin)\n" +
			"  guest-credentials --id ID --user N   store guest OS credentials for hooks and file put-back (password from --password-file or stdin)\n" +
			"  inventory [--json]     list datacenters, hosts, datastores and VMs\n" +
			"  backup --vm NAME|UUID  back up one VM now\n" +
			"  restore --point ID --name NEW [--isolated] [--datastore DS] [--host H] [--disk scsi0:1 ...]\n" +
			"                         restore a point as a new VM (powered off unless --power-on)\n" +
			"  restore --point ID --into UUID [--disk …] [--power-off]   add the point's disks to an existing VM\n" +
			"  restore --point ID --over-original --confirm NAME         overwrite the original VM's disks\n" +
			"  sweep                  remove backup snapshots this appliance left behind")
	}
	return subs[args[0]](ctx, env, args[1:])
}

func vsProbe(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("vsphere probe", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("vsphere probe takes the server's address")
	}
	c, err := vsphere.ProbeCertificate(ctx, pos[0], vsphere.Trust{UseCA: true})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.Stdout, c)
	}
	fmt.Fprintf(env.Stdout, "server       %s\nsubject      %s\nissuer       %s\nexpires      %s\nSHA-256      %s\nSHA-1        %s\nCA-signed    %v\n",
		c.Host, c.Subject, c.Issuer, c.NotAfter.Format(time.DateOnly), c.SHA256, c.SHA1, c.CAValid)
	fmt.Fprintf(env.Stdout, "\nTo trust it: coffer vsphere add --url %s --user USER --thumbprint %s\n", pos[0], c.SHA256)
	return nil
}

func vsAdd(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("vsphere add", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	state := stateFlag(fs)
	u := fs.String("url", "", "vCenter or ESXi address")
	user := fs.String("user", "", "user name")
	pwFile := fs.String("password-file", "", "file holding the password (default: read one line from stdin)")
	tp := fs.String("thumbprint", "", "SHA-256 (or SHA-1) thumbprint of the server certificate to trust")
	useCA := fs.Bool("ca", false, "trust certificates signed by a CA the system trusts instead of a thumbprint")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *u == "" || *user == "" {
		return usagef("vsphere add needs --url and --user")
	}
	if *tp == "" && !*useCA {
		return usagef("vsphere add needs --thumbprint (see `coffer vsphere probe %s`) or --ca", *u)
	}
	pw, err := readPassword(*pwFile)
	if err != nil {
		return err
	}
	a, err := app.Open(ctx, *state, env.Log)
	if err != nil {
		return err
	}
	defer a.Close()
	pu, err := vsphere.ParseURL(*u)
	if err != nil {
		return err
	}
	ep := vsphere.Endpoint{URL: *u, Username: *user, Password: pw, Trust: vsphere.Trust{UseCA: *useCA}}
	if *tp != "" {
		ep.Trust.Thumbprints = map[string]string{pu.Hostname(): *tp}
	}
	if err := a.SetVCenter(ctx, ep); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "logged in to %s as %s; settings saved, password encrypted\n", pu.Hostname(), *user)
	return nil
}

func vsGuestCredentials(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("vsphere guest-credentials", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	state := stateFlag(fs)
	id := fs.String("id", "", "name of the credentials (policies and restores refer to it)")
	user := fs.String("user", "", "guest OS user name")
	pwFile := fs.String("password-file", "", "file holding the password (default: read one line from stdin)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *id == "" || *user == "" {
		return usagef("vsphere guest-credentials needs --id and --user")
	}
	pw, err := readPassword(*pwFile)
	if err != nil {
		return err
	}
	a, err := app.Open(ctx, *state, env.Log)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.SetGuestCredentials(*id, vsphere.GuestCredentials{Username: *user, Password: pw}); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "guest credentials %q for %s saved, password encrypted\n", *id, *user)
	return nil
}

func readPassword(file string) (string, error) {
	var r io.Reader = os.Stdin
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return "", err
		}
		defer f.Close()
		r = f
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("read password: empty")
	}
	return line, nil
}

func vsInventory(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("vsphere inventory", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	state := stateFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	_, c, done, err := openVCenter(ctx, env, *state)
	if err != nil {
		return err
	}
	defer done()
	inv, err := c.Inventory(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.Stdout, inv)
	}
	fmt.Fprintf(env.Stdout, "%d datacenters, %d clusters, %d hosts, %d datastores, %d VMs\n\n",
		len(inv.Datacenters), len(inv.Clusters), len(inv.Hosts), len(inv.Datastores), len(inv.VMs))
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VM\tPOWER\tHOST\tFOLDER\tDISKS\tCBT\tTOOLS\tINSTANCE UUID")
	for _, vm := range inv.VMs {
		var size int64
		for _, d := range vm.Disks {
			size += d.Capacity
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d (%s)\t%v\t%s\t%s\n", vm.Name, vm.PowerState, vm.Host, vm.Folder,
			len(vm.Disks), human(size), vm.CBT, vm.ToolsStatus, vm.InstanceUUID)
	}
	tw.Flush()
	for _, n := range inv.Notes {
		fmt.Fprintln(env.Stdout, "note:", n)
	}
	return nil
}

// findVM resolves a VM name or instance UUID.
func findVM(ctx context.Context, c *vsphere.Client, nameOrUUID string) (vsphere.VM, error) {
	inv, err := c.Inventory(ctx)
	if err != nil {
		return vsphere.VM{}, err
	}
	var match []vsphere.VM
	for _, vm := range inv.VMs {
		if strings.EqualFold(vm.InstanceUUID, nameOrUUID) || vm.Name == nameOrUUID {
			match = append(match, vm)
		}
	}
	switch len(match) {
	case 0:
		return vsphere.VM{}, fmt.Errorf("no VM is named %q or has that instance UUID", nameOrUUID)
	case 1:
		return match[0], nil
	}
	return vsphere.VM{}, fmt.Errorf("%d VMs are named %q: give the instance UUID", len(match), nameOrUUID)
}

func vsBackup(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("vsphere backup", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	state := stateFlag(fs)
	vmArg := fs.String("vm", "", "VM name or instance UUID")
	cons := fs.String("consistency", string(vsphere.PreferApplication), "application-required, application-preferred or crash")
	verify := fs.Bool("verify-cbt", false, "read the whole disks and check changed block tracking")
	guest := fs.String("guest-credentials", "", "ID of stored guest credentials for hooks")
	pre := fs.String("pre-freeze", "", "command to run in the guest before the snapshot")
	post := fs.String("post-thaw", "", "command to run in the guest after the snapshot")
	after := fs.String("post-backup", "", "command to run in the guest after the point is committed")
	asJSON := fs.Bool("json", false, "print JSON")
	noCatalog := fs.Bool("no-catalog", false, "skip the file catalog and the recoverability check")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *vmArg == "" {
		return usagef("vsphere backup needs --vm")
	}
	if !vsphere.ConsistencyMode(*cons).Valid() {
		return usagef("--consistency must be application-required, application-preferred or crash")
	}
	a, c, done, err := openVCenter(ctx, env, *state)
	if err != nil {
		return err
	}
	defer done()
	vm, err := findVM(ctx, c, *vmArg)
	if err != nil {
		return err
	}
	gc, err := a.GuestCredentials(*guest)
	if err != nil {
		return err
	}
	res, err := a.Engine(c).BackupVM(ctx, vsphere.BackupRequest{
		InstanceUUID: vm.InstanceUUID, Consistency: vsphere.ConsistencyMode(*cons), VerifyCBT: *verify, Guest: gc,
		Hooks: vsphere.Hooks{PreFreeze: *pre, PostThaw: *post, PostBackup: *after},
	})
	if err == nil && !*noCatalog {
		a.AfterBackup(ctx, res)
	}
	if *asJSON && res != nil {
		if perr := printJSON(env.Stdout, res); perr != nil {
			return perr
		}
		return err
	}
	if err != nil {
		return err
	}
	printResult(env.Stdout, res)
	return nil
}

func printResult(w io.Writer, res *vsphere.Result) {
	d := res.Finished.Sub(res.Started)
	fmt.Fprintf(w, "point %s of %s (%s), %s consistent, read %s, stored %s in %s\n", res.Point, res.VM.Name,
		res.VM.InstanceUUID, res.Consistency, human(res.Read), human(res.Stored), d.Round(time.Millisecond))
	for _, dr := range res.Disks {
		line := fmt.Sprintf("  %-8s %-14s %-11s changed %s, read %s in %d requests", dr.Name, dr.Label, dr.Method, human(dr.Changed), human(dr.Read.Bytes), dr.Read.Requests)
		if dr.Reason != "" {
			line += " — " + dr.Reason
		}
		fmt.Fprintln(w, line)
	}
	if res.Recoverability != "" {
		fmt.Fprintf(w, "  recoverability: %s (%d files and directories catalogued)\n", res.Recoverability, res.CatalogEntries)
	}
	for _, warn := range res.Warnings {
		fmt.Fprintln(w, "  warning:", warn)
	}
}

func vsSweep(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("vsphere sweep", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	state := stateFlag(fs)
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	a, c, done, err := openVCenter(ctx, env, *state)
	if err != nil {
		return err
	}
	defer done()
	swept, err := a.Engine(c).SweepSnapshots(ctx, "")
	if err != nil {
		return err
	}
	for _, s := range swept {
		state := "removed"
		if !s.Removed {
			state = "NOT removed: " + s.Error
		}
		fmt.Fprintf(env.Stdout, "%s: snapshot %s from %s %s\n", s.VM, s.Name, s.Created.Format(time.RFC3339), state)
	}
	fmt.Fprintf(env.Stdout, "%d leftover snapshots\n", len(swept))
	return nil
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func vsRestore(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("vsphere restore", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	state := stateFlag(fs)
	pid := fs.String("point", "", "recovery point ID")
	name := fs.String("name", "", "name of the new VM")
	dc := fs.String("datacenter", "", "target datacenter (default: the only one)")
	folder := fs.String("folder", "", "target VM folder")
	host := fs.String("host", "", "target host (default: the original's)")
	pool := fs.String("resource-pool", "", "target resource pool")
	ds := fs.String("datastore", "", "target datastore (default: the original's first)")
	network := fs.String("network", "", "port group for every network card")
	isolated := fs.Bool("isolated", false, "disconnect every network card (recovery tests)")
	powerOn := fs.Bool("power-on", false, "power the new VM on")
	var disks stringList
	fs.Var(&disks, "disk", "restore only this disk (repeatable)")
	into := fs.String("into", "", "add the point's disks to this existing VM (instance UUID) instead of creating one")
	powerOff := fs.Bool("power-off", false, "with --into: power the target off first if it runs")
	over := fs.Bool("over-original", false, "overwrite the original VM's disks (it is powered off first)")
	confirm := fs.String("confirm", "", "with --over-original: the original VM's name, typed to confirm")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	switch {
	case *pid == "":
		return usagef("vsphere restore needs --point")
	case *over && *into != "":
		return usagef("vsphere restore: --over-original and --into exclude each other")
	case !*over && *into == "" && *name == "":
		return usagef("vsphere restore needs --name (a new VM), --into UUID or --over-original --confirm NAME")
	}
	a, c, done, err := openVCenter(ctx, env, *state)
	if err != nil {
		return err
	}
	defer done()
	var res *restore.Result
	switch {
	case *over:
		res, err = restore.RestoreOverOriginal(ctx, c, a.Store, restore.OverRequest{Point: point.ID(*pid), Confirm: *confirm})
	case *into != "":
		res, err = restore.RestoreDisks(ctx, c, a.Store, restore.DisksRequest{Point: point.ID(*pid), TargetVM: *into,
			Disks: disks, Datastore: *ds, PowerOffFirst: *powerOff})
	default:
		res, err = restore.RestoreVM(ctx, c, a.Store, restore.Request{
			Point: point.ID(*pid), Name: *name, Datacenter: *dc, Folder: *folder, Host: *host, ResourcePool: *pool,
			Datastore: *ds, Network: *network, Isolated: *isolated, PowerOn: *powerOn, Disks: disks,
		})
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.Stdout, res)
	}
	fmt.Fprintf(env.Stdout, "restored point %s to VM %s (%s)\n", *pid, res.VM, res.InstanceUUID)
	for _, d := range res.Disks {
		fmt.Fprintf(env.Stdout, "  %-8s %s, %s written\n", d.Name, d.File, human(d.Written))
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(env.Stdout, "  warning:", w)
	}
	return nil
}

// openVCenter opens the appliance state and logs in to its vCenter; done
// logs out and closes the store.
func openVCenter(ctx context.Context, env *Env, state string) (*app.App, *vsphere.Client, func(), error) {
	a, err := app.Open(ctx, state, env.Log)
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := a.Connect(ctx)
	if err != nil {
		a.Close()
		return nil, nil, nil, err
	}
	return a, c, func() {
		c.Logout(context.WithoutCancel(ctx))
		a.Close()
	}, nil
}
