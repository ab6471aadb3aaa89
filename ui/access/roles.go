package access

import (
	"fmt"
	"slices"
)

// Role is what a user or an API token may do.
type Role string

// The roles.
const (
	Administrator Role = "administrator" // everything, incl. users, tokens, certificates and the audit log
	Operator      Role = "operator"      // run and cancel jobs, restore, maintain the store; no configuration
	Viewer        Role = "viewer"        // read only
	RestoreOnly   Role = "restore-only"  // browse recovery points and restore; nothing else
)

// Roles lists the roles, most powerful first.
var Roles = []Role{Administrator, Operator, Viewer, RestoreOnly}

// Permission is what a route needs.
type Permission string

// The permissions.
const (
	// PermView reads the dashboard, VMs, policies, jobs and storage state.
	PermView Permission = "view"
	// PermBrowse reads recovery points, their catalogs and file searches.
	PermBrowse Permission = "browse"
	// PermRestore restores VMs, disks and files (downloads included).
	PermRestore Permission = "restore"
	// PermOperate runs and cancels jobs and store maintenance (verify, GC, catalog rebuilds).
	PermOperate Permission = "operate"
	// PermConfigure changes policies, the vCenter, notifications and retention locks.
	PermConfigure Permission = "configure"
	// PermAdmin manages users, API tokens, certificates and reads the audit log.
	PermAdmin Permission = "admin"
	// PermSelf is any logged-in user acting on their own session and password.
	PermSelf Permission = "self"
)

var grants = map[Role][]Permission{
	Administrator: {PermSelf, PermView, PermBrowse, PermRestore, PermOperate, PermConfigure, PermAdmin},
	Operator:      {PermSelf, PermView, PermBrowse, PermRestore, PermOperate},
	Viewer:        {PermSelf, PermView, PermBrowse},
	RestoreOnly:   {PermSelf, PermBrowse, PermRestore},
}

// Valid reports whether r is one of the roles.
func (r Role) Valid() bool { _, ok := grants[r]; return ok }

// Can reports whether r grants p.
func (r Role) Can(p Permission) bool { return slices.Contains(grants[r], p) }

// Covers reports whether r grants everything o grants (a token may not
// be given more than its creator has).
func (r Role) Covers(o Role) bool {
	for _, p := range grants[o] {
		if !r.Can(p) {
			return false
		}
	}
	return o.Valid()
}

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !r.Valid() {
		return "", fmt.Errorf("unknown role %q (administrator, operator, viewer or restore-only)", s)
	}
	return r, nil
}
