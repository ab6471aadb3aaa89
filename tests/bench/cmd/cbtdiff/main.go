// Command cbtdiff prints the changed-extent list between two disk images of
// the same size, the way a hypervisor's changed block tracking would report
// it: the images are compared in fixed blocks (64 KiB by default), adjacent
// changed blocks are merged, and each extent is printed as "offset length"
// (decimal bytes) on its own line.
//
//	go run ./tests/bench/cmd/cbtdiff [-block N] [-o FILE] OLD.img NEW.img
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"coffer.dev/coffer/tests/bench/internal/diskcmp"
)

func main() {
	block := flag.Int64("block", 64<<10, "comparison granularity in bytes")
	outPath := flag.String("o", "", "write the list to this file instead of stdout")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: cbtdiff [-block N] [-o FILE] OLD.img NEW.img")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(2)
	}
	start := time.Now()
	exts, err := diskcmp.Diff(flag.Arg(0), flag.Arg(1), *block)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cbtdiff:", err)
		os.Exit(1)
	}
	var out io.Writer = os.Stdout
	var file *os.File
	if *outPath != "" {
		if file, err = os.Create(*outPath); err != nil {
			fmt.Fprintln(os.Stderr, "cbtdiff:", err)
			os.Exit(1)
		}
		out = file
	}
	w := bufio.NewWriter(out)
	var total int64
	for _, e := range exts {
		fmt.Fprintf(w, "%d %d\n", e.Off, e.Len)
		total += e.Len
	}
	err = w.Flush()
	if file != nil {
		if err == nil {
			err = file.Sync()
		}
		if cerr := file.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cbtdiff:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "cbtdiff: %d extents, %d bytes changed (%.1f MiB), %.1fs\n",
		len(exts), total, float64(total)/(1<<20), time.Since(start).Seconds())
}
