// Package web holds the management UI's page templates and static assets
// (CSS, the one script, icons), embedded into the binary so that the
// appliance serves them air-gapped. Pages are rendered by package ui with
// html/template; no inline script or style is used anywhere, so the
// Content-Security-Policy forbids both.
package web

import "embed"

// Templates are the html/template files: layout.html defines the page
// frame, every other file defines "content" (and optionally "head").
//
//go:embed templates/*.html
var Templates embed.FS

// Static are the assets served under /static/.
//
//go:embed static
var Static embed.FS
