package jobs

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/store/point"
)

// Report is the protection state of every VM of the inventory.
type Report struct {
	Generated time.Time      `json:"generated"`
	VMs       []VMProtection `json:"vms"`
	Totals    ReportTotals   `json:"totals"`
	// Notes say what could not be read (some points, tags).
	Notes []string `json:"notes,omitempty"`
}

// VMProtection is one VM's line of the report.
type VMProtection struct {
	UUID       string `json:"uuid"`
	Name       string `json:"name"`
	Folder     string `json:"folder,omitempty"`
	Host       string `json:"host,omitempty"`
	PowerState string `json:"power_state,omitempty"`
	// Policies are the enabled policies that select the VM.
	Policies []string `json:"policies"`
	// RPO is the smallest objective of those policies (0: none).
	RPO time.Duration `json:"rpo"`
	// LastPoint is the VM's newest recovery point ("" if none).
	LastPoint   point.ID          `json:"last_point,omitempty"`
	LastBackup  time.Time         `json:"last_backup,omitzero"`
	Consistency point.Consistency `json:"consistency,omitempty"`
	// Unprotected: no enabled policy selects the VM.
	Unprotected bool `json:"unprotected"`
	// RPOMiss: a policy that selects the VM, and has existed longer than
	// its RPO, has no point of it younger than that RPO.
	RPOMiss bool `json:"rpo_miss"`
}

// ReportTotals count the report's VMs.
type ReportTotals struct {
	VMs         int `json:"vms"`
	Protected   int `json:"protected"`
	Unprotected int `json:"unprotected"`
	RPOMiss     int `json:"rpo_miss"`
	NoPoint     int `json:"no_point"` // covered VMs without any point
}

// Protection reports, for every VM that is not a template, the policies
// that protect it, its newest point and whether it misses its RPO.
func (m *Manager) Protection(ctx context.Context) (*Report, error) {
	inv, err := m.opt.Inventory.Inventory(ctx)
	if err != nil {
		return nil, fmt.Errorf("protection report: read the inventory: %w", err)
	}
	if inv == nil {
		inv = &vsphere.Inventory{}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("protection report: %w", err)
	}
	rep := &Report{Generated: m.now(), VMs: []VMProtection{}}
	rep.Notes = append(rep.Notes, inv.Notes...)
	pts, err := m.opt.Points.Points()
	if err != nil {
		if len(pts) == 0 {
			return nil, fmt.Errorf("protection report: list recovery points: %w", err)
		}
		rep.Notes = append(rep.Notes, fmt.Sprintf("some recovery points could not be read: %v", err))
	}
	newest := map[string]*point.RecoveryPoint{}
	for _, p := range pts {
		if p == nil {
			continue
		}
		if cur := newest[p.Source]; cur == nil || p.Created.After(cur.Created) {
			newest[p.Source] = p
		}
	}
	policies := m.Policies()
	byID := map[string]Policy{}
	rpo := map[string]time.Duration{}
	for _, p := range policies {
		byID[p.ID] = p
		rpo[p.ID] = p.EffectiveRPO(rep.Generated)
	}
	covered := Covered(inv, policies)
	now := rep.Generated
	for _, vm := range inv.VMs {
		if vm.Template {
			continue
		}
		line := VMProtection{
			UUID: vm.InstanceUUID, Name: vm.Name, Folder: vm.Folder, Host: vm.Host, PowerState: vm.PowerState,
			Policies: slices.Clone(covered[vm.InstanceUUID]),
		}
		if line.Policies == nil {
			line.Policies = []string{}
		}
		if p := newest[vsphere.SourceName(vm.InstanceUUID)]; p != nil {
			line.LastPoint, line.LastBackup, line.Consistency = p.ID, p.Created, p.Consistency
		}
		line.Unprotected = len(line.Policies) == 0
		for _, id := range line.Policies {
			r := rpo[id]
			if r <= 0 {
				continue
			}
			if line.RPO == 0 || r < line.RPO {
				line.RPO = r
			}
			old := now.Sub(byID[id].Created) > r
			stale := line.LastPoint == "" || now.Sub(line.LastBackup) > r
			if old && stale {
				line.RPOMiss = true
			}
		}
		rep.VMs = append(rep.VMs, line)
		t := &rep.Totals
		t.VMs++
		if line.Unprotected {
			t.Unprotected++
		} else {
			t.Protected++
			if line.LastPoint == "" {
				t.NoPoint++
			}
		}
		if line.RPOMiss {
			t.RPOMiss++
		}
	}
	slices.SortFunc(rep.VMs, func(a, b VMProtection) int {
		return cmp.Or(strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)), strings.Compare(a.UUID, b.UUID))
	})
	return rep, nil
}
