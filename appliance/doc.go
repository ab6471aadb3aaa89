// Package appliance is the Coffer daemon and its domain: the ingest
// engines, jobs, restore, disks, configuration and the one binary under
// cmd/coffer. It builds on store, tape and firmware and is used by ui.
package appliance
