// Command vsbench measures Coffer's VMware ingest engine (appliance/vsphere)
// against the extended vCenter simulator (appliance/vsphere/vcsim), in one
// run on this machine, for two targets of the product:
//
//  1. The engine is not the bottleneck: a full backup of a VM whose disk is
//     the benchmark corpus image diskA.img, through the simulator
//     (Engine.BackupVM: snapshot, changed block tracking, HTTPS reads of the
//     datastore, store), reaches at least 80% of the store's own ingest speed
//     on the same data (store.NewBackup + AddDisk of the image file with its
//     data extents, up to Commit). Each side runs -runs times, alternating,
//     each with a fresh store; the medians are compared.
//
//  2. An incremental backup of a 20 GiB disk with 1% of its capacity changed
//     takes at most 5% of the full backup's time. The disk holds diskA.img in
//     its first 3 GiB and generated text data further on (-data-gib of data
//     in all); the change is scattered runs of 64 KiB to 1 MiB over the data,
//     written through the simulator's WriteDisk as a guest would write.
//
// The simulator's changed block tracking double tracks writes, as ESXi does
// (vcsim.Options.TrackWrites): its snapshots read no data. With -vcsim-cbt
// hash it hashes every data block of the disk at every snapshot instead,
// which costs seconds per snapshot of the large disk that ESXi does not
// spend (the "vcsim sn" column shows the snapshot task either way).
//
// Usage:
//
//	go run ./tests/bench/cmd/vsbench [-dir var/bench] [-runs 3] [-keep] [-vcsim-cbt writes|hash]
//
// The corpus comes from tests/bench/corpus.sh (`make bench` builds it). Work
// files live in DIR/vs and are removed afterwards (unless -keep); the results
// are also written to DIR/vs/result.json. The exit status is 0 when every
// target passes, 2 when a measurement missed a target and 1 when something
// failed.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"
)

func main() {
	dirFlag := flag.String("dir", "var/bench", "benchmark directory: corpus/diskA.img is read, vs/ is the work directory")
	runs := flag.Int("runs", 3, "runs of each side of the ingest comparison (medians are compared)")
	diskGiB := flag.Int64("disk-gib", 20, "capacity of the incremental benchmark's disk, GiB (the target is stated for 20)")
	dataGiB := flag.Float64("data-gib", 6, "data on that disk in all (diskA.img's data plus generated data), GiB")
	changePct := flag.Float64("change-pct", 1, "share of the disk's capacity changed before the incremental backup, percent")
	seed := flag.Uint64("seed", 1, "seed of the generated data and of the change positions")
	only := flag.String("only", "", "run one part only: ingest or incremental (default both)")
	keep := flag.Bool("keep", false, "keep the simulator's datastores and the stores in DIR/vs")
	timeout := flag.Duration("timeout", 30*time.Minute, "limit for the whole run")
	quietWait := flag.Duration("quiet-wait", 15*time.Second, "before each timed run, wait up to this long for other processes to use < 10% of the CPUs")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	cbtMode := flag.String("vcsim-cbt", "writes", "the simulator's changed block tracking: writes (tracks WriteDisk, as ESXi tracks guest writes) or hash (hashes the disks at every snapshot)")
	flag.Parse()

	if *runs < 1 || *diskGiB < 4 || *dataGiB <= 0 || *changePct <= 0 || *changePct > 50 {
		fmt.Fprintln(os.Stderr, "vsbench: bad flags: need -runs >= 1, -disk-gib >= 4, -data-gib > 0, 0 < -change-pct <= 50")
		os.Exit(1)
	}
	if *only != "" && *only != "ingest" && *only != "incremental" {
		fmt.Fprintln(os.Stderr, "vsbench: -only is ingest or incremental")
		os.Exit(1)
	}
	if *cbtMode != "writes" && *cbtMode != "hash" {
		fmt.Fprintln(os.Stderr, "vsbench: -vcsim-cbt is writes or hash")
		os.Exit(1)
	}
	base, err := filepath.Abs(*dirFlag)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vsbench:", err)
		os.Exit(1)
	}
	h, err := newHarness(base)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vsbench:", err)
		os.Exit(1)
	}
	h.runs = *runs
	h.diskSize = *diskGiB << 30
	h.dataTarget = int64(*dataGiB * (1 << 30))
	h.changePct = *changePct
	h.seed = *seed
	h.keep = *keep
	h.quietWait = *quietWait
	h.hashCBT = *cbtMode == "hash"
	h.res.Params = map[string]any{
		"runs": *runs, "disk_gib": *diskGiB, "data_gib": *dataGiB, "change_pct": *changePct, "seed": *seed,
		"quiet_wait_seconds": quietWait.Seconds(), "vcsim_cbt": *cbtMode,
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "vsbench: -cpuprofile:", err)
			os.Exit(1)
		}
		defer f.Close()
	}
	start := time.Now()
	if *only == "" || *only == "ingest" {
		h.ingestPart(ctx)
	}
	if *only == "" || *only == "incremental" {
		h.incrementalPart(ctx)
	}
	h.res.TotalSeconds = time.Since(start).Seconds()
	if *cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	h.evaluate(*only)
	h.printReport(os.Stdout)
	if err := h.writeJSON(); err != nil {
		h.fail("writing result.json: %v", err)
	}
	if !h.keep {
		h.cleanup()
	}
	switch {
	case len(h.res.Errors) > 0:
		fmt.Fprintf(os.Stderr, "\nvsbench: FAILED: %d error(s), see above\n", len(h.res.Errors))
		os.Exit(1)
	case h.anyTargetFailed():
		os.Exit(2)
	}
}
