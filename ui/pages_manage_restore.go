package ui

import (
	"errors"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"coffer.dev/coffer/appliance/app"
	"coffer.dev/coffer/appliance/catalog"
	"coffer.dev/coffer/appliance/restore"
	"coffer.dev/coffer/store/point"
)

// manRestoreForm is the restore form as typed.
type manRestoreForm struct {
	Name, Datacenter, Placement, Datastore, Folder, Network string
	Isolated, PowerOn                                       bool
	Disks                                                   []string
}

type manDiskChoice struct {
	N       int
	Name    string
	Size    int64
	Checked bool
}

type manRestoreView struct {
	P                *point.RecoveryPoint
	VM               string
	PointHref        string
	F                manRestoreForm
	Errors           manFieldErrors
	Datacenters      []manLink
	Hosts            []manLink
	Pools            []manLink
	Datastores       []manLink
	Folders          []manLink
	Disks            []manDiskChoice
	InventoryProblem string
	Result           *restore.Result
	Took             time.Duration
}

func (s *Server) manRestoreView(c *gin.Context, p *point.RecoveryPoint, f manRestoreForm, fe manFieldErrors) manRestoreView {
	v := manRestoreView{P: p, VM: s.manPointName(s.manVMNames(c.Request.Context()), p), PointHref: "/points/" + string(p.ID), F: f, Errors: fe}
	if v.Errors == nil {
		v.Errors = manFieldErrors{}
	}
	inv, err := s.be().Inventory(c.Request.Context())
	if err != nil {
		v.InventoryProblem = err.Error()
	}
	if inv != nil {
		for _, dc := range inv.Datacenters {
			v.Datacenters = append(v.Datacenters, manLink{Value: dc.Name, Label: dc.Name, Selected: f.Datacenter == dc.Name})
		}
		for _, h := range inv.Hosts {
			label := h.Name
			if h.Cluster != "" {
				label += " (cluster " + h.Cluster + ")"
			}
			if h.Maintenance {
				label += " — in maintenance"
			}
			if h.ConnectionState != "" && h.ConnectionState != "connected" {
				label += " — " + h.ConnectionState
			}
			val := "host:" + h.Name
			v.Hosts = append(v.Hosts, manLink{Value: val, Label: label, Selected: f.Placement == val})
		}
		for _, rp := range inv.ResourcePools {
			val := "pool:" + rp.Path
			label := rp.Path
			if label == "" {
				label = rp.Name
			}
			v.Pools = append(v.Pools, manLink{Value: val, Label: label, Selected: f.Placement == val})
		}
		for _, ds := range inv.Datastores {
			if !ds.Accessible && f.Datastore != ds.Name {
				continue
			}
			label := fmt.Sprintf("%s — %s free of %s", ds.Name, humanBytes(ds.Free), humanBytes(ds.Capacity))
			if ds.Datacenter != "" && len(inv.Datacenters) > 1 {
				label += " (" + ds.Datacenter + ")"
			}
			v.Datastores = append(v.Datastores, manLink{Value: ds.Name, Label: label, Selected: f.Datastore == ds.Name})
		}
		for _, fo := range inv.Folders {
			if fo.Path == "" {
				continue
			}
			label := fo.Path
			if fo.Datacenter != "" && len(inv.Datacenters) > 1 {
				label = fo.Datacenter + ": " + fo.Path
			}
			v.Folders = append(v.Folders, manLink{Value: fo.Path, Label: label, Selected: f.Folder == fo.Path})
		}
		for _, l := range [][]manLink{v.Hosts, v.Pools, v.Datastores, v.Folders} {
			slices.SortFunc(l, func(a, b manLink) int { return strings.Compare(strings.ToLower(a.Label), strings.ToLower(b.Label)) })
		}
	}
	for i, d := range p.Disks {
		v.Disks = append(v.Disks, manDiskChoice{N: i, Name: d.Name, Size: d.Size, Checked: slices.Contains(f.Disks, d.Name)})
	}
	return v
}

func (s *Server) manRestoreForm(c *gin.Context) {
	p, ok := s.manPointParam(c)
	if !ok {
		return
	}
	name := s.manPointName(s.manVMNames(c.Request.Context()), p)
	if strings.HasPrefix(name, "vm:") {
		name = "restored"
	}
	f := manRestoreForm{Name: name + "-restore-" + p.Created.UTC().Format("20060102-1504"), Isolated: true}
	for _, d := range p.Disks {
		f.Disks = append(f.Disks, d.Name)
	}
	s.render(c, 0, "man-restore", "Restore "+name, s.manRestoreView(c, p, f, nil))
}

func (s *Server) manRestoreSubmit(c *gin.Context) {
	p, ok := s.manPointParam(c)
	if !ok {
		return
	}
	f := manRestoreForm{Name: strings.TrimSpace(c.PostForm("name")), Datacenter: c.PostForm("datacenter"), Placement: c.PostForm("placement"),
		Datastore: c.PostForm("datastore"), Folder: strings.TrimSpace(c.PostForm("folder")), Network: strings.TrimSpace(c.PostForm("network")),
		Isolated: c.PostForm("isolated") == "yes", PowerOn: c.PostForm("power_on") == "yes", Disks: c.PostFormArray("disk")}
	fe := manFieldErrors{}
	if f.Name == "" {
		fe.add("name", "the new VM needs a name")
	} else if len(f.Name) > 80 {
		fe.add("name", "vSphere allows at most 80 characters")
	}
	var disks []string
	for _, d := range p.Disks {
		if slices.Contains(f.Disks, d.Name) {
			disks = append(disks, d.Name)
		}
	}
	if len(disks) == 0 {
		fe.add("disks", "choose at least one disk")
	}
	req := restore.Request{Point: p.ID, Name: f.Name, Datacenter: f.Datacenter, Folder: f.Folder, Datastore: f.Datastore,
		Network: f.Network, Isolated: f.Isolated, PowerOn: f.PowerOn, Disks: disks}
	if len(disks) == len(p.Disks) {
		req.Disks = nil // all of them
	}
	switch kind, val, _ := strings.Cut(f.Placement, ":"); kind {
	case "host":
		req.Host = val
	case "pool":
		req.ResourcePool = val
	case "":
	default:
		fe.add("placement", "choose a host or a resource pool from the list")
	}
	title := "Restore " + s.manPointName(s.manVMNames(c.Request.Context()), p)
	if len(fe) > 0 {
		pageError(c, "Please correct the marked fields.")
		s.render(c, http.StatusUnprocessableEntity, "man-restore", title, s.manRestoreView(c, p, f, fe))
		return
	}
	c.Set(ctxTarget, string(p.ID))
	res, err := s.be().RestoreVM(c.Request.Context(), req)
	if err != nil {
		code := http.StatusBadGateway
		switch {
		case errors.Is(err, restore.ErrNameTaken):
			code = http.StatusConflict
			fe.add("name", "a VM with this name exists already: choose another name")
		case errors.Is(err, restore.ErrPointNotFound):
			code = http.StatusNotFound
		case errors.Is(err, restore.ErrNotVM):
			code = http.StatusConflict
		}
		pageError(c, "The restore failed: %v", err)
		s.render(c, code, "man-restore", title, s.manRestoreView(c, p, f, fe))
		return
	}
	c.Set(ctxDetail, "restored as the new VM "+res.VM)
	v := s.manRestoreView(c, p, f, nil)
	v.Result = res
	if !res.Finished.IsZero() && !res.Started.IsZero() {
		v.Took = res.Finished.Sub(res.Started)
	}
	s.render(c, 0, "man-restore", "Restored "+res.VM, v)
}

// manPutBackForm is the put-back form as typed.
type manPutBackForm struct {
	Volume, Path, VM, Dest, GuestCredentials string
	Overwrite                                bool
}

type manPutBackView struct {
	P                *point.RecoveryPoint
	PointVM          string
	PointHref        string
	BrowseHref       string
	Entry            *catalog.FileInfo
	F                manPutBackForm
	Errors           manFieldErrors
	VMs              []manLink
	InventoryProblem string
	Problem          string
	Result           *restore.PutResult
}

func (s *Server) manPutBackView(c *gin.Context, p *point.RecoveryPoint, f manPutBackForm, fe manFieldErrors) (manPutBackView, bool) {
	ctx := c.Request.Context()
	v := manPutBackView{P: p, PointVM: s.manPointName(s.manVMNames(ctx), p), PointHref: "/points/" + string(p.ID), F: f, Errors: fe}
	if v.Errors == nil {
		v.Errors = manFieldErrors{}
	}
	ok := true
	cat, err := s.be().Catalogs().Load(p.ID)
	if err != nil {
		v.Problem = "This point's files cannot be read: " + err.Error()
		ok = false
	} else if vol, err := cat.ResolveVolume(f.Volume); err != nil {
		v.Problem = err.Error()
		ok = false
	} else {
		v.F.Volume = vol
		e, found := cat.Find(vol, f.Path)
		if !found {
			v.Problem = fmt.Sprintf("%s is not in this point (volume %s).", f.Path, vol)
			ok = false
		} else {
			fi := catalog.Info(e)
			v.Entry = &fi
			if fi.Type != "file" && fi.Type != "dir" {
				v.Problem = fmt.Sprintf("%s is a %s: only files and folders can be put back.", f.Path, fi.Type)
				ok = false
			}
		}
		dir := f.Path
		if v.Entry != nil && v.Entry.Type != "dir" {
			dir = path.Dir(f.Path)
		}
		v.BrowseHref = manHref("/points/"+string(p.ID)+"/browse", "volume", vol, "path", dir)
	}
	inv, err := s.be().Inventory(ctx)
	if err != nil {
		v.InventoryProblem = err.Error()
	}
	if inv != nil {
		for _, vm := range inv.VMs {
			if vm.Template {
				continue
			}
			label := vm.Name
			if vm.PowerState != "" && vm.PowerState != "poweredOn" {
				label += " (" + vm.PowerState + ")"
			} else if !vm.ToolsRunning() && vm.ToolsStatus != "" {
				label += " (VMware Tools not running)"
			}
			v.VMs = append(v.VMs, manLink{Value: vm.InstanceUUID, Label: label, Selected: strings.EqualFold(vm.InstanceUUID, f.VM)})
		}
		slices.SortFunc(v.VMs, func(a, b manLink) int { return strings.Compare(strings.ToLower(a.Label), strings.ToLower(b.Label)) })
	}
	return v, ok
}

func manPutBackFromForm(get func(string) string) manPutBackForm {
	return manPutBackForm{Volume: get("volume"), Path: path.Clean("/" + get("path")), VM: strings.TrimSpace(get("vm")),
		Dest: strings.TrimSpace(get("dest")), GuestCredentials: strings.TrimSpace(get("guest_credentials")), Overwrite: get("overwrite") == "yes"}
}

func (s *Server) manPutBackForm(c *gin.Context) {
	p, ok := s.manPointParam(c)
	if !ok {
		return
	}
	f := manPutBackFromForm(c.Query)
	if f.VM == "" {
		// The VM the point is of, when it still exists.
		if uuid, ok := strings.CutPrefix(p.Source, "vm:"); ok {
			f.VM = uuid
		}
	}
	v, found := s.manPutBackView(c, p, f, nil)
	status := 0
	if !found {
		status = http.StatusNotFound
	}
	s.render(c, status, "man-putback", "Put back "+f.Path, v)
}

func (s *Server) manPutBackSubmit(c *gin.Context) {
	p, ok := s.manPointParam(c)
	if !ok {
		return
	}
	f := manPutBackFromForm(c.PostForm)
	fe := manFieldErrors{}
	if f.VM == "" {
		fe.add("vm", "choose the VM that receives the files")
	}
	if f.GuestCredentials == "" {
		fe.add("guest_credentials", "the guest credentials ID is required: the files are written by a guest user through VMware Tools")
	}
	v, found := s.manPutBackView(c, p, f, fe)
	title := "Put back " + f.Path
	if !found {
		pageError(c, "%s", v.Problem)
		s.render(c, http.StatusNotFound, "man-putback", title, v)
		return
	}
	if len(fe) > 0 {
		pageError(c, "Please correct the marked fields.")
		s.render(c, http.StatusUnprocessableEntity, "man-putback", title, v)
		return
	}
	c.Set(ctxTarget, string(p.ID))
	res, err := s.be().PutFilesBack(c.Request.Context(), app.PutBackRequest{Point: p.ID, Volume: v.F.Volume, Path: f.Path,
		VM: f.VM, Dest: f.Dest, Overwrite: f.Overwrite, GuestCredentials: f.GuestCredentials})
	v.Result = res
	if err != nil {
		code := http.StatusBadGateway
		if errors.Is(err, catalog.ErrNoCatalog) {
			code = http.StatusNotFound
		}
		pageError(c, "Putting the files back failed: %v", err)
		s.render(c, code, "man-putback", title, v)
		return
	}
	c.Set(ctxDetail, fmt.Sprintf("put %s back into VM %s", f.Path, f.VM))
	s.render(c, 0, "man-putback", title, v)
}
