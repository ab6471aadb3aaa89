// Package cli is the command line of the coffer binary: one subcommand for
// every job the appliance can run, so that every feature is scriptable and
// testable without a browser.
package cli
