// Package audit keeps the appliance's audit log: every change made
// through the UI, the API or the CLI, and every login, with who made it,
// when, from where, what it touched and how it ended.
//
// The log is a file of JSON lines (one Entry each) under the state
// directory, appended with O_APPEND and synced per entry, rotated by size
// into numbered files (audit.log.1 is the newest older one). Entries never
// hold secrets: callers record route patterns, object IDs and short
// summaries, never request bodies.
package audit
