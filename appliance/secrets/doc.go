// Package secrets keeps the appliance's credentials (vCenter and guest
// logins) in one file encrypted with AES-256-GCM under a key derived from
// the store's key hierarchy, so that they are protected, and recovered,
// exactly like the backups. Secrets never appear in logs: their String
// and LogValue methods redact the password.
package secrets
