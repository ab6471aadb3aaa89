// Command coffer is the Coffer appliance: the daemon, and a subcommand for
// every job it can run.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"coffer.dev/coffer/appliance/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
