package ui

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/ui/access"
)

// managePages registers the pages that change the appliance: policies,
// recovery points and restores, settings.
func (s *Server) managePages(g *gin.RouterGroup) {
	// Policies.
	s.page(g, "GET", "/policies", access.PermView, "/policies", s.manPolicies)
	s.page(g, "GET", "/policies/new", access.PermConfigure, "/policies", s.manPolicyNew)
	s.page(g, "POST", "/policies/new", access.PermConfigure, "/policies", s.manPolicyCreate)
	s.page(g, "GET", "/policies/:id/edit", access.PermConfigure, "/policies", s.manPolicyEdit)
	s.page(g, "POST", "/policies/:id/edit", access.PermConfigure, "/policies", s.manPolicyUpdate)
	s.page(g, "POST", "/policies/:id/delete", access.PermConfigure, "/policies", s.manPolicyDelete)
	s.page(g, "POST", "/policies/:id/run", access.PermOperate, "/policies", s.manPolicyRun)

	// Recovery points, their catalogs and files.
	s.page(g, "GET", "/points", access.PermBrowse, "/points", s.manPoints)
	s.page(g, "GET", "/points/search", access.PermBrowse, "/points", s.manSearch)
	s.page(g, "GET", "/points/:id", access.PermBrowse, "/points", s.manPoint)
	s.page(g, "GET", "/points/:id/browse", access.PermBrowse, "/points", s.manBrowse)
	s.page(g, "POST", "/points/:id/lock", access.PermConfigure, "/points", s.manPointLock)

	// Restores.
	s.page(g, "GET", "/points/:id/restore", access.PermRestore, "/points", s.manRestoreForm)
	s.page(g, "POST", "/points/:id/restore", access.PermRestore, "/points", s.manRestoreSubmit)
	s.page(g, "GET", "/points/:id/put-back", access.PermRestore, "/points", s.manPutBackForm)
	s.page(g, "POST", "/points/:id/put-back", access.PermRestore, "/points", s.manPutBackSubmit)

	// Settings and the own account.
	s.page(g, "GET", "/settings", access.PermAdmin, "/settings", s.manSettings)
	s.page(g, "POST", "/settings/users", access.PermAdmin, "/settings", s.manUserAdd)
	s.page(g, "POST", "/settings/users/:name/role", access.PermAdmin, "/settings", s.manUserRole)
	s.page(g, "POST", "/settings/users/:name/password", access.PermAdmin, "/settings", s.manUserPassword)
	s.page(g, "POST", "/settings/users/:name/unlock", access.PermAdmin, "/settings", s.manUserUnlock)
	s.page(g, "POST", "/settings/users/:name/delete", access.PermAdmin, "/settings", s.manUserDelete)
	s.page(g, "POST", "/settings/tokens", access.PermAdmin, "/settings", s.manTokenCreate)
	s.page(g, "POST", "/settings/tokens/:id/revoke", access.PermAdmin, "/settings", s.manTokenRevoke)
	s.page(g, "POST", "/settings/certificate", access.PermAdmin, "/settings", s.manCertificateUpload)
	s.page(g, "GET", "/me", access.PermSelf, "", s.manMe)
	s.page(g, "POST", "/me/password", access.PermSelf, "", s.manMePassword)
}

// manLink is a link or a choice of a select element.
type manLink struct {
	Href, Label string
	Value       string
	Selected    bool
}

// manFieldErrors maps a form field to what is wrong with it.
type manFieldErrors map[string]string

func (fe manFieldErrors) add(field, msg string) {
	if old, ok := fe[field]; ok && old != "" {
		fe[field] = old + "; " + msg
		return
	}
	fe[field] = msg
}

// manVMNames maps point sources ("vm:<instance uuid>") to the VMs' names,
// from the inventory (or, when it cannot be read, the protection report);
// what cannot be read is simply missing.
func (s *Server) manVMNames(ctx context.Context) map[string]string {
	out := map[string]string{}
	if inv, err := s.be().Inventory(ctx); err == nil && inv != nil && len(inv.VMs) > 0 {
		for _, vm := range inv.VMs {
			if vm.InstanceUUID != "" {
				out[vsphere.SourceName(vm.InstanceUUID)] = vm.Name
			}
		}
		return out
	}
	if rep, err := s.be().Protection(ctx); err == nil && rep != nil {
		for _, vm := range rep.VMs {
			if vm.UUID != "" && vm.Name != "" {
				out[vsphere.SourceName(vm.UUID)] = vm.Name
			}
		}
	}
	return out
}

// manHref builds a link to path with the query parameters kv (pairs;
// empty values are left out).
func manHref(path string, kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

// manDuration writes a duration the way the forms read it back ("26h",
// "2d", "90m"); 0 is "".
func manDuration(d time.Duration) string {
	switch {
	case d == 0:
		return ""
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// manParseDuration reads a Go duration or a number of days ("2d").
func manParseDuration(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	if n, ok := strings.CutSuffix(v, "d"); ok {
		var days int
		if _, err := fmt.Sscan(n, &days); err == nil && fmt.Sprint(days) == n {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (write 90m, 26h or 2d)", v)
	}
	return d, nil
}
