// Package ui owns the appliance's HTTP side (gin, HTTPS only): the TLS
// certificate (self-signed on first start), administrator authentication
// (bcrypt-hashed password, session and API tokens), and the versioned
// JSON API under /api/v1 with live job progress as server-sent events.
// The pages and the setup wizard land with the UI issue; the API already
// serves the CLI and the demo. It reaches the appliance only through the
// narrow Backend interface.
package ui
