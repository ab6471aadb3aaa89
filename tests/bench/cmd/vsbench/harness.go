package main

import (
	"coffer.dev/coffer/tests/bench/internal/verdict"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"

	"coffer.dev/coffer/appliance/blockdev"
	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/appliance/vsphere/vcsim"
	"coffer.dev/coffer/store"
	"coffer.dev/coffer/store/crypt"
)

// harness holds the paths, the parameters and the results of one run.
type harness struct {
	base, corpus, work string
	diskA              string // corpus/diskA.img

	runs       int
	diskSize   int64   // capacity of the incremental benchmark's disk
	dataTarget int64   // data on that disk in all
	changePct  float64 // percent of diskSize changed
	seed       uint64
	keep       bool
	quietWait  time.Duration
	hashCBT    bool       // the simulator's CBT double hashes the disks instead of tracking writes
	clock      *callClock // on the running simulator's client

	master crypt.MasterKey
	quiet  *slog.Logger
	res    result
}

func newHarness(base string) (*harness, error) {
	h := &harness{
		base:   base,
		corpus: filepath.Join(base, "corpus"),
		work:   filepath.Join(base, "vs"),
		quiet:  slog.New(slog.DiscardHandler),
	}
	h.diskA = filepath.Join(h.corpus, "diskA.img")
	if _, err := os.Stat(h.diskA); err != nil {
		return nil, fmt.Errorf("the benchmark corpus is missing (%v): build it first with `make bench` "+
			"or `bash tests/bench/corpus.sh %s` (as root)", err, base)
	}
	// Leftovers of an earlier run (kept with -keep, or interrupted).
	if err := os.RemoveAll(h.work); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(h.work, 0o755); err != nil {
		return nil, err
	}
	var err error
	if h.master, err = crypt.NewMasterKey(); err != nil {
		return nil, err
	}
	h.res = result{
		Started: time.Now().UTC().Format(time.RFC3339),
		Host:    hostInfo(),
	}
	return h, nil
}

func (h *harness) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintln(os.Stderr, "vsbench: ERROR:", msg)
	h.res.Errors = append(h.res.Errors, msg)
}

func (h *harness) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintln(os.Stderr, "vsbench: note:", msg)
	h.res.Notes = append(h.res.Notes, msg)
}

func (h *harness) progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[vsbench %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (h *harness) cleanup() {
	entries, err := os.ReadDir(h.work)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.Name() != "result.json" {
			os.RemoveAll(filepath.Join(h.work, e.Name()))
		}
	}
}

// freshStore creates and opens an empty store in dir (removing what was
// there).
func (h *harness) freshStore(ctx context.Context, dir string) (*store.Store, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := store.Init(dir, h.master, store.InitOptions{}); err != nil {
		return nil, err
	}
	return store.Open(ctx, dir, h.master, store.Options{Logger: h.quiet})
}

// closeStore closes a store and, unless -keep, removes it.
func (h *harness) closeStore(st *store.Store, dir string) {
	if err := st.Close(); err != nil {
		h.fail("close store %s: %v", dir, err)
	}
	if !h.keep {
		os.RemoveAll(dir)
	}
}

// startSim starts a simulator whose datastores live in dir. Its CBT double
// tracks writes, as ESXi does (the disks are filled directly before the
// first backup, and changed through WriteDisk after it), unless -vcsim-cbt
// hash: then every snapshot hashes the disks' data.
func (h *harness) startSim(ctx context.Context, dir string) (*vcsim.Sim, *vsphere.Client, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, nil, err
	}
	sim, err := vcsim.Start(ctx, vcsim.Options{Dir: dir, TrackWrites: !h.hashCBT})
	if err != nil {
		return nil, nil, fmt.Errorf("start the simulator: %w", err)
	}
	user, pass := sim.Credentials()
	c, err := vsphere.Connect(ctx, vsphere.Endpoint{
		URL: sim.URL().String(), Username: user, Password: pass,
		Trust: vsphere.Trust{Thumbprints: map[string]string{sim.URL().Hostname(): sim.SHA256Thumbprint()}},
	}, h.quiet)
	if err != nil {
		sim.Close()
		return nil, nil, fmt.Errorf("connect to the simulator: %w", err)
	}
	// The engine's calls go through Vim(); the clock only looks at them.
	h.clock = &callClock{rt: c.Vim().RoundTripper}
	c.Vim().RoundTripper = h.clock
	return sim, c, nil
}

func (h *harness) stopSim(sim *vcsim.Sim, c *vsphere.Client, dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	c.Logout(ctx)
	cancel()
	sim.Close()
	if !h.keep {
		os.RemoveAll(dir)
	}
}

// createVM makes a powered-on Linux VM with change tracking and one empty
// (sparse) disk of capacity bytes, and returns it with its flat file.
func createVM(ctx context.Context, sim *vcsim.Sim, name string, capacity int64) (vcsim.VM, string, error) {
	vm, err := sim.CreateVM(ctx, vcsim.VMSpec{
		Name: name, GuestID: "otherLinux64Guest", ChangeTracking: true,
		Disks: []vcsim.DiskSpec{{Capacity: capacity, Thin: true}},
	})
	if err != nil {
		return vcsim.VM{}, "", fmt.Errorf("create VM %s: %w", name, err)
	}
	flat, err := sim.DiskFile(vm.UUID, vm.Disks[0].Key)
	if err != nil {
		return vcsim.VM{}, "", err
	}
	return vm, flat, nil
}

// timed is what one timed operation cost.
type timed struct {
	seconds float64
	cpu     float64 // this process's user + system seconds (simulator, engine and store alike)
	others  float64 // CPU seconds the rest of the machine used meanwhile
	load    float64 // 1-minute load average at the start
	waited  float64 // seconds spent waiting for the machine to calm down first
	busy    bool    // it did not calm down within -quiet-wait
}

// measure settles the machine (sync: no writeback of earlier runs during
// this one; then up to -quiet-wait for other processes to leave the CPUs
// alone), then times f.
func (h *harness) measure(f func() error) (timed, error) {
	syscall.Sync()
	var t timed
	t.waited, t.busy = h.waitQuiet()
	t.load = loadAvg()
	busy0, cpu0 := verdict.BusyTicks(), selfCPU()
	start := time.Now()
	err := f()
	t.seconds = time.Since(start).Seconds()
	t.cpu = selfCPU() - cpu0
	if busy1 := verdict.BusyTicks(); busy0 > 0 && busy1 > busy0 {
		t.others = max(0, float64(busy1-busy0)/verdict.ClockTicks-t.cpu)
	}
	return t, err
}

// waitQuiet waits, at most h.quietWait, until other processes use less
// than quietShare of the CPUs over a second, and returns the time it
// waited and whether the machine was still busy. (This machine is shared:
// builds and tests of other work come and go.)
func (h *harness) waitQuiet() (float64, bool) {
	if h.quietWait <= 0 {
		return 0, false
	}
	start := time.Now()
	for {
		busy0, cpu0 := verdict.BusyTicks(), selfCPU()
		time.Sleep(time.Second)
		busy1, cpu1 := verdict.BusyTicks(), selfCPU()
		if busy0 == 0 {
			return 0, false // no /proc/stat
		}
		others := (float64(busy1-busy0)/verdict.ClockTicks - (cpu1 - cpu0)) / float64(numCPU())
		if others < quietShare {
			return time.Since(start).Seconds(), false
		}
		if time.Since(start) >= h.quietWait {
			return time.Since(start).Seconds(), true
		}
	}
}

// quietShare is the share of the CPUs that other processes may use for the
// machine to count as quiet.
const quietShare = 0.1

func (r *run) fill(t timed) {
	r.Seconds = t.seconds
	r.CPUSeconds = t.cpu
	r.QuietWaitSeconds = t.waited
	r.StartedBusy = t.busy
	r.LoadAvgStart = t.load
	if t.seconds > 0 {
		r.OthersCPUShare = t.others / (t.seconds * float64(numCPU()))
		if r.DataBytes > 0 {
			r.MBPerSec = float64(r.DataBytes) / t.seconds / 1e6
		}
	}
}

// storeIngest backs the image up straight into a fresh store: the store's
// own ingest speed. Timed from NewBackup to Commit.
func (h *harness) storeIngest(ctx context.Context, rw *run, img *blockdev.Disk, alloc []store.Extent) *run {
	dir := filepath.Join(h.work, "store")
	st, err := h.freshStore(ctx, dir)
	if err != nil {
		rw.Error = err.Error()
		return rw
	}
	defer h.closeStore(st, dir)
	t, err := h.measure(func() error {
		b, err := st.NewBackup(ctx, store.BackupSpec{Source: "bench:image"})
		if err != nil {
			return err
		}
		if _, err := b.AddDisk(ctx, store.DiskSource{Name: "scsi0:0", Size: img.Size(), Reader: img, Allocated: alloc}); err != nil {
			b.Abort()
			return err
		}
		p, err := b.Commit(ctx)
		if err != nil {
			return err
		}
		rw.Point = string(p.ID)
		rw.ReadBytes, rw.StoredBytes, rw.NewBytes = p.Stats.Read, p.Stats.Stored, p.Stats.New
		rw.Method = "full"
		return nil
	})
	rw.fill(t)
	if err != nil {
		rw.Error = err.Error()
	}
	return rw
}

// backupVM times Engine.BackupVM of the VM into st. Two parts of it are
// noted: the time until the engine starts reading the disk (the first
// progress report): finding the VM, the snapshot and the changed-area
// queries; and within that the simulator's snapshot task (see callClock).
func (h *harness) backupVM(ctx context.Context, rw *run, c *vsphere.Client, st *store.Store, vmUUID string) *vsphere.Result {
	e := &vsphere.Engine{Client: c, Store: st, ApplianceID: "vsbench", Log: h.quiet}
	var (
		once      sync.Once
		started   time.Time
		firstRead time.Time
	)
	req := vsphere.BackupRequest{
		InstanceUUID: vmUUID,
		Progress:     func(vsphere.Progress) { once.Do(func() { firstRead = time.Now() }) },
	}
	var res *vsphere.Result
	t, err := h.measure(func() error {
		h.clock.reset()
		started = time.Now()
		var err error
		res, err = e.BackupVM(ctx, req)
		return err
	})
	rw.fill(t)
	if !firstRead.IsZero() {
		rw.SnapshotSeconds = firstRead.Sub(started).Seconds()
	}
	rw.SimSnapshotSeconds = h.clock.snapshotSeconds()
	if err != nil {
		rw.Error = err.Error()
		return res
	}
	rw.Point = string(res.Point)
	rw.ReadBytes, rw.StoredBytes = res.Read, res.Stored
	for _, d := range res.Disks {
		rw.Method = d.Method
		rw.CBTChanged += d.Changed
		rw.Requests += d.Read.Requests
		rw.NewBytes += d.Stats.New
	}
	if len(res.Warnings) > 0 {
		rw.Warnings = res.Warnings
	}
	return res
}

// ingestPart is target 1: the store's own ingest of diskA.img against a
// full backup of a VM with the same disk through the simulator.
func (h *harness) ingestPart(ctx context.Context) {
	h.progress("part 1: store ingest vs. engine through the simulator, diskA.img, %d runs each", h.runs)
	img, err := blockdev.Open(h.diskA)
	if err != nil {
		h.fail("%v", err)
		return
	}
	defer img.Close()
	ext, err := img.Allocated()
	if err != nil {
		h.fail("data extents of %s: %v", h.diskA, err)
		return
	}
	if ext == nil { // the file system cannot tell: everything is data
		ext = []blockdev.Extent{{Offset: 0, Length: img.Size()}}
	}
	alloc := make([]store.Extent, len(ext))
	var dataBytes int64
	for i, e := range ext {
		alloc[i] = store.Extent{Offset: e.Offset, Length: e.Length}
		dataBytes += e.Length
	}
	h.res.Corpus = &corpusInfo{File: h.diskA, Bytes: img.Size(), DataBytes: dataBytes, Extents: len(ext)}

	simDir := filepath.Join(h.work, "sim-ingest")
	sim, c, err := h.startSim(ctx, simDir)
	if err != nil {
		h.fail("%v", err)
		return
	}
	defer h.stopSim(sim, c, simDir)
	vm, flat, err := createVM(ctx, sim, "bench-diskA", img.Size())
	if err != nil {
		h.fail("%v", err)
		return
	}
	// The VM's disk gets the image's data extents (untimed); its flat file
	// is then the same sparse disk as the image.
	if err := copyExtents(img, ext, flat, 0); err != nil {
		h.fail("fill the VM's disk from %s: %v", h.diskA, err)
		return
	}
	// Both inputs into the page cache, as a source a backup reads twice a
	// day would be: the comparison is of the software, not of the disk.
	for _, p := range []string{h.diskA, flat} {
		if err := warm(p); err != nil {
			h.fail("read %s: %v", p, err)
			return
		}
	}

	storeDir := filepath.Join(h.work, "store")
	for i := 1; i <= h.runs; i++ {
		h.progress("  run %d/%d: store ingest", i, h.runs)
		rw := h.storeIngest(ctx, &run{Part: partIngest, Step: stepStore, Iter: i, DataBytes: dataBytes}, img, alloc)
		h.add(rw)

		h.progress("  run %d/%d: engine (BackupVM through the simulator)", i, h.runs)
		rw = &run{Part: partIngest, Step: stepEngine, Iter: i, DataBytes: dataBytes}
		st, err := h.freshStore(ctx, storeDir)
		if err != nil {
			rw.Error = err.Error()
			h.add(rw)
			continue
		}
		res := h.backupVM(ctx, rw, c, st, vm.UUID)
		if rw.Error == "" && (res == nil || rw.Method != "full") {
			rw.Error = fmt.Sprintf("expected a full backup, got method %q", rw.Method)
		}
		h.closeStore(st, storeDir)
		h.add(rw)
		if ctx.Err() != nil {
			return
		}
	}
}

func (h *harness) add(rw *run) {
	h.res.Runs = append(h.res.Runs, rw)
	if rw.Error != "" {
		h.fail("%s %s run %d: %s", rw.Part, rw.Step, rw.Iter, rw.Error)
		return
	}
	extra := ""
	if rw.SnapshotSeconds > 0 {
		extra = fmt.Sprintf(", %.2f s before the first read (simulator's snapshot task %.2f s)", rw.SnapshotSeconds, rw.SimSnapshotSeconds)
	}
	h.progress("    %.2f s, %.1f MB/s, read %s, stored %s%s", rw.Seconds, rw.MBPerSec, mib(rw.ReadBytes), mib(rw.StoredBytes), extra)
}

// incrementalPart is target 2: full, then incremental backup of a large
// disk with a small share changed.
func (h *harness) incrementalPart(ctx context.Context) {
	gib := float64(h.diskSize) / (1 << 30)
	h.progress("part 2: %.0f GiB disk, full backup, %.2g%% changed, incremental backup", gib, h.changePct)
	img, err := blockdev.Open(h.diskA)
	if err != nil {
		h.fail("%v", err)
		return
	}
	defer img.Close()
	ext, err := img.Allocated()
	if err != nil {
		h.fail("data extents of %s: %v", h.diskA, err)
		return
	}
	if ext == nil {
		ext = []blockdev.Extent{{Offset: 0, Length: img.Size()}}
	}
	var imgData int64
	for _, e := range ext {
		imgData += e.Length
	}
	if img.Size() >= h.diskSize/2 {
		h.fail("-disk-gib %.0f is too small for %s", gib, h.diskA)
		return
	}

	// Room: the disk's data, the store (at worst as big as the data), a
	// margin. Less generated data when that does not fit.
	filler := max(0, h.dataTarget-imgData)
	const margin = 2 << 30
	free, err := freeBytes(h.work)
	if err != nil {
		h.fail("free space of %s: %v", h.work, err)
		return
	}
	if need := 2*(imgData+filler) + margin; need > free {
		fit := (free-margin)/2 - imgData
		if fit < 0 {
			h.fail("not enough free space in %s for the %.0f GiB disk benchmark: %s free, %s needed at least",
				h.work, gib, mib(free), mib(2*imgData+margin))
			return
		}
		h.note("only %s free in %s: the %.0f GiB disk holds %s of data instead of the %s asked for",
			mib(free), h.work, gib, mib(imgData+fit), mib(imgData+filler))
		filler = fit
	}

	simDir := filepath.Join(h.work, "sim-incremental")
	sim, c, err := h.startSim(ctx, simDir)
	if err != nil {
		h.fail("%v", err)
		return
	}
	defer h.stopSim(sim, c, simDir)
	vm, flat, err := createVM(ctx, sim, fmt.Sprintf("bench-%.0fg", gib), h.diskSize)
	if err != nil {
		h.fail("%v", err)
		return
	}
	h.progress("  preparing the disk: %s from diskA.img, %s of generated data (untimed)", mib(imgData), mib(filler))
	prep := time.Now()
	if err := copyExtents(img, ext, flat, 0); err != nil {
		h.fail("fill the VM's disk from %s: %v", h.diskA, err)
		return
	}
	fillStart := roundUp(img.Size(), slotSize)
	written, nExt, err := fillDisk(flat, fillStart, h.diskSize, filler, h.seed)
	if err != nil {
		h.fail("generate data on the VM's disk: %v", err)
		return
	}
	layout := &diskLayout{
		Capacity: h.diskSize, ImageDataBytes: imgData, GeneratedBytes: written, GeneratedExtents: nExt,
		DataBytes: imgData + written, GeneratedFrom: fillStart,
	}
	h.res.Disk20 = layout
	h.progress("  disk ready in %.1f s: %s of data", time.Since(prep).Seconds(), mib(layout.DataBytes))

	// For reference (no target): the store's own ingest of the same disk.
	h.progress("  store ingest of the same disk (reference)")
	if err := h.storeIngestFile(ctx, flat, layout.DataBytes); err != nil {
		h.fail("store ingest of the large disk: %v", err)
	}

	storeDir := filepath.Join(h.work, "store")
	st, err := h.freshStore(ctx, storeDir)
	if err != nil {
		h.fail("%v", err)
		return
	}
	defer h.closeStore(st, storeDir)

	h.progress("  full backup")
	full := &run{Part: partIncr, Step: stepFull, Iter: 1, DataBytes: layout.DataBytes}
	h.backupVM(ctx, full, c, st, vm.UUID)
	if full.Error == "" && full.Method != "full" {
		full.Error = fmt.Sprintf("expected a full backup, got method %q", full.Method)
	}
	h.add(full)
	if full.Error != "" {
		return
	}

	target := int64(float64(h.diskSize)*h.changePct/100) / pageSize * pageSize
	h.progress("  changing %s in scattered runs of 64 KiB-1 MiB through the simulator's WriteDisk (untimed)", mib(target))
	data, err := dataExtents(flat)
	if err != nil {
		h.fail("data extents of the VM's disk: %v", err)
		return
	}
	key := vm.Disks[0].Key
	changed, runs, err := changeDisk(flat, data, target, h.seed, func(off int64, p []byte) error {
		return sim.WriteDisk(vm.UUID, key, off, p)
	})
	if err != nil {
		h.fail("change the VM's disk: %v", err)
		return
	}
	layout.ChangedBytes, layout.ChangedRuns = changed, runs

	h.progress("  incremental backup")
	incr := &run{Part: partIncr, Step: stepIncr, Iter: 1, DataBytes: changed}
	h.backupVM(ctx, incr, c, st, vm.UUID)
	if incr.Error == "" && incr.Method != "incremental" {
		incr.Error = fmt.Sprintf("expected an incremental backup, got method %q", incr.Method)
	}
	if incr.Error == "" && incr.CBTChanged < changed {
		incr.Error = fmt.Sprintf("change tracking reported %d changed bytes, less than the %d written", incr.CBTChanged, changed)
	}
	h.add(incr)

	// What the simulator alone spends on a snapshot of this disk (with
	// write tracking next to nothing; with -vcsim-cbt hash, hashing every
	// data block): a snapshot like the engine's, timed by itself, then
	// removed.
	h.progress("  simulator snapshot of the disk alone (reference)")
	snap := &run{Part: partIncr, Step: stepSnap, Iter: 1, DataBytes: layout.DataBytes}
	t, err := h.measure(func() error { return snapshotOnce(ctx, c, vm.Ref) })
	snap.fill(t)
	if err != nil {
		snap.Error = err.Error()
	}
	h.add(snap)
}

// snapshotOnce takes a quiesced snapshot without memory, as the engine
// does, and removes it again (both are part of every BackupVM).
func snapshotOnce(ctx context.Context, c *vsphere.Client, ref types.ManagedObjectReference) error {
	vmo := object.NewVirtualMachine(c.Vim(), ref)
	task, err := vmo.CreateSnapshot(ctx, "vsbench-probe", "vsbench: timing the simulator's snapshot", false, true)
	if err != nil {
		return err
	}
	if _, err := task.WaitForResult(ctx); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	consolidate := true
	task, err = vmo.RemoveSnapshot(ctx, "vsbench-probe", false, &consolidate)
	if err != nil {
		return err
	}
	if err := task.Wait(ctx); err != nil {
		return fmt.Errorf("remove snapshot: %w", err)
	}
	return nil
}

// storeIngestFile times the store's own ingest of an image file.
func (h *harness) storeIngestFile(ctx context.Context, path string, dataBytes int64) error {
	img, err := blockdev.Open(path)
	if err != nil {
		return err
	}
	defer img.Close()
	ext, err := img.Allocated()
	if err != nil {
		return err
	}
	var alloc []store.Extent
	for _, e := range ext {
		alloc = append(alloc, store.Extent{Offset: e.Offset, Length: e.Length})
	}
	h.add(h.storeIngest(ctx, &run{Part: partIncr, Step: stepStoreLarge, Iter: 1, DataBytes: dataBytes}, img, alloc))
	return nil
}

// warm reads a file's data extents once (into the page cache).
func warm(path string) error {
	d, err := blockdev.Open(path)
	if err != nil {
		return err
	}
	defer d.Close()
	ext, err := d.Allocated()
	if err != nil {
		return err
	}
	if ext == nil {
		ext = []blockdev.Extent{{Offset: 0, Length: d.Size()}}
	}
	buf := make([]byte, 4<<20)
	for _, e := range ext {
		for off := e.Offset; off < e.Offset+e.Length; off += int64(len(buf)) {
			n := min(int64(len(buf)), e.Offset+e.Length-off)
			if _, err := d.ReadAt(buf[:n], off); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
		}
	}
	return nil
}
