// Package client talks to a Coffer appliance's JSON API (/api/v1) over
// HTTPS: what the `coffer remote` commands and automation use. The
// appliance's certificate is verified against the system's CAs, or pinned
// by its SHA-256 fingerprint (the one the console and the UI show), so a
// self-signed appliance is reached safely without turning verification
// off. Authentication is an API token or a session token from Login.
package client
