package jobs

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"coffer.dev/coffer/appliance/jobs/schedule"
	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/store"
)

func TestSelectionMatches(t *testing.T) {
	web := vsphere.VM{InstanceUUID: "4200AAAA-0001", Name: "Web-01", Datacenter: "DC1", Folder: "Production/Web", Tags: []string{"Backup/Gold", "OS/Linux"}}
	db := vsphere.VM{InstanceUUID: "4200AAAA-0002", Name: "db-01", Datacenter: "DC2", Folder: "Production", Tags: []string{"Backup/Silver"}}
	prodX := vsphere.VM{InstanceUUID: "4200AAAA-0003", Name: "other", Datacenter: "DC1", Folder: "ProductionX"}
	tmpl := vsphere.VM{InstanceUUID: "4200AAAA-0004", Name: "web-template", Datacenter: "DC1", Folder: "Production/Web", Template: true}

	tests := []struct {
		name string
		sel  Selection
		vm   vsphere.VM
		want bool
	}{
		{"all", Selection{All: true}, db, true},
		{"all but never a template", Selection{All: true}, tmpl, false},
		{"template by name", Selection{Names: []string{"web-*"}}, tmpl, false},
		{"uuid any case", Selection{VMs: []string{"4200aaaa-0001"}}, web, true},
		{"uuid other", Selection{VMs: []string{"4200AAAA-0009"}}, web, false},
		{"folder itself", Selection{Folders: []string{"Production"}}, db, true},
		{"folder includes subfolders", Selection{Folders: []string{"Production"}}, web, true},
		{"leading slash names a datacenter", Selection{Folders: []string{"/production/"}}, web, false},
		{"folder trailing slash", Selection{Folders: []string{"production/web/"}}, web, true},
		{"folder is not a name prefix", Selection{Folders: []string{"Production"}}, prodX, false},
		{"subfolder does not match parent", Selection{Folders: []string{"Production/Web"}}, db, false},
		{"datacenter-qualified folder", Selection{Folders: []string{"/DC1/Production"}}, web, true},
		{"datacenter-qualified, other dc", Selection{Folders: []string{"/DC1/Production"}}, db, false},
		{"whole datacenter", Selection{Folders: []string{"/dc2"}}, db, true},
		{"tag exact", Selection{Tags: []string{"Backup/Gold"}}, web, true},
		{"tag any case", Selection{Tags: []string{"backup/gold"}}, web, true},
		{"tag glob", Selection{Tags: []string{"Backup/*"}}, db, true},
		{"tag other", Selection{Tags: []string{"Backup/Gold"}}, db, false},
		{"name glob any case", Selection{Names: []string{"WEB-*"}}, web, true},
		{"name glob class", Selection{Names: []string{"db-0[0-9]"}}, db, true},
		{"name glob no match", Selection{Names: []string{"web-*"}}, db, false},
		{"exclude uuid", Selection{All: true, Exclude: Criteria{VMs: []string{"4200AAAA-0002"}}}, db, false},
		{"exclude folder", Selection{Folders: []string{"Production"}, Exclude: Criteria{Folders: []string{"Production/Web"}}}, web, false},
		{"exclude folder keeps others", Selection{Folders: []string{"Production"}, Exclude: Criteria{Folders: []string{"Production/Web"}}}, db, true},
		{"exclude tag", Selection{All: true, Exclude: Criteria{Tags: []string{"os/linux"}}}, web, false},
		{"exclude name", Selection{Tags: []string{"Backup/*"}, Exclude: Criteria{Names: []string{"db-*"}}}, db, false},
		{"nothing selected", Selection{}, web, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Policy{Selection: tt.sel}
			if got := p.Matches(tt.vm); got != tt.want {
				t.Errorf("Matches(%s) = %v, want %v", tt.vm.Name, got, tt.want)
			}
		})
	}
}

func TestCoveredIncludesNewVMs(t *testing.T) {
	inv := &vsphere.Inventory{VMs: []vsphere.VM{
		{InstanceUUID: "a", Name: "a", Folder: "Prod"},
		{InstanceUUID: "b", Name: "b", Folder: "Test"},
		{InstanceUUID: "t", Name: "t", Folder: "Prod", Template: true},
	}}
	policies := []Policy{
		{ID: "prod", Enabled: true, Selection: Selection{Folders: []string{"Prod"}}},
		{ID: "all", Enabled: true, Selection: Selection{All: true}},
		{ID: "off", Enabled: false, Selection: Selection{All: true}},
	}
	got := Covered(inv, policies)
	want := map[string][]string{"a": {"all", "prod"}, "b": {"all"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Covered = %v, want %v", got, want)
	}
	// A VM created later in the folder is covered without any change.
	inv.VMs = append(inv.VMs, vsphere.VM{InstanceUUID: "c", Name: "c", Folder: "Prod/New"})
	got = Covered(inv, policies)
	if !reflect.DeepEqual(got["c"], []string{"all", "prod"}) {
		t.Fatalf("new VM covered by %v", got["c"])
	}
}

func TestPolicyValidation(t *testing.T) {
	ok := Policy{Name: "ok", Selection: Selection{All: true}}
	tests := []struct {
		name   string
		mutate func(*Policy)
		want   string // substring of the error; "" for valid
	}{
		{"valid", func(p *Policy) {}, ""},
		{"valid full", func(p *Policy) {
			p.ID, p.TimeZone, p.Schedule, p.Window = "nightly-1", "Europe/Berlin", schedule.MustParse("22:00"), mustWindow("22:00-06:00")
			p.Consistency, p.RPO, p.VerifyEvery = vsphere.CrashOnly, 48*time.Hour, -1
		}, ""},
		{"no name", func(p *Policy) { p.Name = " " }, "name: must not be empty"},
		{"bad id", func(p *Policy) { p.ID = "../etc" }, `id "../etc"`},
		{"selects nothing", func(p *Policy) { p.Selection = Selection{} }, "selects nothing"},
		{"only exclusions", func(p *Policy) { p.Selection = Selection{Exclude: Criteria{Names: []string{"x"}}} }, "selects nothing"},
		{"bad name pattern", func(p *Policy) { p.Selection.Names = []string{"web-["} }, `selection.names: "web-[" is not a valid pattern`},
		{"bad exclude pattern", func(p *Policy) { p.Selection.Exclude.Names = []string{"[z"} }, "selection.exclude.names"},
		{"tag without category", func(p *Policy) { p.Selection.Tags = []string{"Gold"} }, `selection.tags: "Gold" is not "category/name"`},
		{"empty folder", func(p *Policy) { p.Selection.Folders = []string{"/"} }, "selection.folders"},
		{"empty uuid", func(p *Policy) { p.Selection.VMs = []string{""} }, "selection.vms: empty instance UUID"},
		{"bad zone", func(p *Policy) { p.TimeZone = "Mars/Olympus" }, `time_zone "Mars/Olympus"`},
		{"negative retention", func(p *Policy) { p.Retention = store.Retention{Daily: -1} }, "retention: counts must not be negative"},
		{"bad consistency", func(p *Policy) { p.Consistency = "perfect" }, `consistency "perfect"`},
		{"negative rpo", func(p *Policy) { p.RPO = -time.Hour }, "rpo: must not be negative"},
		{"schedule never in window", func(p *Policy) {
			p.Schedule, p.Window = schedule.MustParse("12:00"), mustWindow("22:00-06:00")
		}, "never fires inside the window"},
		{"negative hook timeout", func(p *Policy) { p.Hooks.Timeout = -1 }, "hooks.timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ok
			p.Selection = ok.Selection.clone()
			tt.mutate(&p)
			err := p.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("no error, want %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error %q does not contain %q", err, tt.want)
			case err != nil && !errors.Is(err, ErrInvalid):
				t.Fatalf("error %v is not ErrInvalid", err)
			}
		})
	}
	// Every problem is reported at once.
	err := Policy{TimeZone: "nowhere"}.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 3 {
		t.Fatalf("want 3 problems (name, selection, zone), got %v", err)
	}
}

func mustWindow(s string) schedule.Window {
	w, err := schedule.ParseWindow(s)
	if err != nil {
		panic(err)
	}
	return w
}

func TestPolicyDefaultsAndJSON(t *testing.T) {
	e := newEnv(t, newFakeClock(t0), nil)
	p := e.policy(Policy{Name: "Nightly Prod!", Enabled: true, Selection: Selection{Folders: []string{"Prod"}}, Schedule: schedule.MustParse("22:00")})
	if p.ID != "nightly-prod" {
		t.Errorf("ID = %q", p.ID)
	}
	if p.TimeZone != "UTC" || p.Consistency != vsphere.PreferApplication || p.VerifyEvery != 10 {
		t.Errorf("defaults not applied: %+v", p)
	}
	if p.Retention.Daily != 14 || p.Retention.Weekly != 8 || p.Retention.Monthly != 12 {
		t.Errorf("retention = %+v", p.Retention)
	}
	if !p.Created.Equal(t0) {
		t.Errorf("created %v", p.Created)
	}
	p2 := e.policy(Policy{Name: "Nightly prod", Selection: Selection{All: true}})
	if p2.ID != "nightly-prod-2" {
		t.Errorf("second ID = %q", p2.ID)
	}
	if _, err := e.m.CreatePolicy(Policy{ID: p.ID, Name: "dup", Selection: Selection{All: true}}); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate ID: %v", err)
	}

	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"schedule":"*-*-* 22:00"`) {
		t.Errorf("JSON: %s", b)
	}
	var back Policy
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, p) {
		t.Errorf("round trip:\n%+v\n%+v", back, p)
	}

	// Update keeps Created, changes the rest; unknown IDs are errors.
	p.Priority = 5
	e.clock.Advance(time.Hour)
	up, err := e.m.UpdatePolicy(p)
	if err != nil {
		t.Fatal(err)
	}
	if !up.Created.Equal(t0) || !up.Updated.Equal(t0.Add(time.Hour)) || up.Priority != 5 {
		t.Errorf("updated: %+v", up)
	}
	if _, err := e.m.UpdatePolicy(Policy{ID: "nope", Name: "x", Selection: Selection{All: true}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("update unknown: %v", err)
	}
	if err := e.m.DeletePolicy(p2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Policy(p2.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted policy: %v", err)
	}
	if got := e.m.Policies(); len(got) != 1 || got[0].ID != p.ID {
		t.Errorf("Policies = %+v", got)
	}
}

func TestEffectiveRPO(t *testing.T) {
	tests := []struct {
		sched, window string
		rpo           time.Duration
		want          time.Duration
	}{
		{"daily", "", 0, 36 * time.Hour},
		{"*-*-* 00/4:00", "", 0, 6 * time.Hour},
		{"hourly", "", 0, 90 * time.Minute},
		{"minutely", "", 0, time.Hour}, // at least an hour
		{"Mon..Fri 22:00", "", 0, 108 * time.Hour},
		{"hourly", "22:00-02:00", 0, 31*time.Hour + 30*time.Minute}, // 01:00 to 22:00 is the longest gap
		{"daily", "", 5 * time.Hour, 5 * time.Hour},
		{"", "", 0, 0},
	}
	for _, tt := range tests {
		p := Policy{RPO: tt.rpo, Window: mustWindow(tt.window)}
		if tt.sched != "" {
			p.Schedule = schedule.MustParse(tt.sched)
		}
		if got := p.EffectiveRPO(t0); got != tt.want {
			t.Errorf("%q in %q: RPO %v, want %v", tt.sched, tt.window, got, tt.want)
		}
	}
	// Monthly: the interval crossing the 14-day horizon counts.
	p := Policy{Schedule: schedule.MustParse("monthly")}
	if got := p.EffectiveRPO(t0); got < 40*24*time.Hour || got > 47*24*time.Hour {
		t.Errorf("monthly RPO %v", got)
	}
}
