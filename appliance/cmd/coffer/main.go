// Command coffer is the Coffer appliance: the daemon, and a subcommand for
// every job it can run.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/pprof"
	"runtime/trace"
	"syscall"

	"coffer.dev/coffer/appliance/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// COFFER_CPUPROFILE=FILE writes a CPU profile (for performance work).
	if p := os.Getenv("COFFER_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			pprof.StartCPUProfile(f)
			defer f.Close()
		}
	}
	// COFFER_TRACE=FILE writes an execution trace.
	if p := os.Getenv("COFFER_TRACE"); p != "" {
		if f, err := os.Create(p); err == nil {
			trace.Start(f)
			defer f.Close()
		}
	}
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	trace.Stop()
	pprof.StopCPUProfile()
	stop()
	os.Exit(code)
}
