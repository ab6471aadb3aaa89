// Package ui will own the management web UI and JSON API (gin, HTTPS only):
// the first-boot setup wizard, dashboard, policies, jobs, restores, tape and
// replication pages. Nothing is implemented yet; it lands with its issue.
package ui
