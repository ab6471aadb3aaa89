package store

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"coffer.dev/coffer/store/chunk"
	"coffer.dev/coffer/store/container"
	"coffer.dev/coffer/store/index"
)

// appender packs chunks, in the order they are added, into regions and
// containers of one kind. Regions are compressed and encrypted by a pool of
// workers; one writer goroutine appends them to the container files in
// order, seals full containers and indexes them. add is called from one
// goroutine.
type appender struct {
	s    *Store
	kind container.Kind
	// indexEntries is false for GC's compaction, whose entries are
	// re-pointed at commit.
	indexEntries bool
	onSealed     func(sealedContainer)

	raw     []byte
	entries []container.Entry
	cur     *openCtr

	jobs  chan *regionJob
	order chan *regionJob
	wg    sync.WaitGroup
	done  chan struct{}

	// Containers are sealed (fsync, rename, index) off the writer's
	// path, so that the pipeline keeps compressing meanwhile; sealing
	// bounds how many seals run at once and sealWG waits for them.
	sealing chan struct{}
	sealWG  sync.WaitGroup

	errMu sync.Mutex
	err   error

	stored atomic.Int64 // bytes written to containers
}

// sealedContainer reports a container made durable (and indexed).
type sealedContainer struct {
	id      uint64
	size    int64
	entries []container.Entry
}

type openCtr struct {
	id      uint64
	regions uint32
	raw     int64
	w       *container.Writer
}

type regionJob struct {
	ctr     *openCtr
	index   uint32
	raw     []byte
	entries []container.Entry
	sealed  container.SealedRegion
	last    bool // seal the container after this region
	done    chan struct{}
}

func (s *Store) newAppender(kind container.Kind, indexEntries bool, onSealed func(sealedContainer)) *appender {
	a := &appender{
		s: s, kind: kind, indexEntries: indexEntries, onSealed: onSealed,
		jobs:  make(chan *regionJob, s.opt.Workers*2),
		order: make(chan *regionJob, s.opt.Workers*4),
		done:  make(chan struct{}),

		sealing: make(chan struct{}, 2),
	}
	for i := 0; i < s.opt.Workers; i++ {
		a.wg.Add(1)
		go a.sealWorker()
	}
	go a.writer()
	return a
}

func (a *appender) setErr(err error) {
	a.errMu.Lock()
	if a.err == nil {
		a.err = err
	}
	a.errMu.Unlock()
}

// Err returns the first error of the writer.
func (a *appender) Err() error {
	a.errMu.Lock()
	defer a.errMu.Unlock()
	return a.err
}

// add appends a chunk. The data is copied.
func (a *appender) add(id chunk.ID, kind chunk.Kind, data []byte) error {
	if err := a.Err(); err != nil {
		return err
	}
	if a.cur == nil {
		cid, err := a.s.newContainerID()
		if err != nil {
			return err
		}
		a.cur = &openCtr{id: cid}
	}
	if a.raw == nil {
		a.raw = a.s.getBuf(a.s.cfg.RegionSize + 64<<10)
	}
	a.entries = append(a.entries, container.Entry{ID: id, Kind: kind, Offset: uint32(len(a.raw)), Length: uint32(len(data))})
	a.raw = append(a.raw, data...)
	a.cur.raw += int64(len(data))
	if len(a.raw) >= a.s.cfg.RegionSize {
		a.cutRegion(a.cur.raw >= a.s.cfg.ContainerSize || a.cur.regions+1 >= maxRegions)
	}
	return nil
}

// maxRegions bounds the regions of one container.
const maxRegions = 1 << 14

// cutRegion hands the current region to the workers; last seals the
// container after it.
func (a *appender) cutRegion(last bool) {
	if len(a.entries) == 0 {
		if last && a.cur != nil && a.cur.regions > 0 {
			// Seal with no new region: send an empty marker job.
			j := &regionJob{ctr: a.cur, last: true, done: make(chan struct{})}
			close(j.done)
			a.order <- j
		}
		if last {
			a.cur = nil
		}
		return
	}
	j := &regionJob{ctr: a.cur, index: a.cur.regions, raw: a.raw, entries: a.entries, last: last, done: make(chan struct{})}
	a.cur.regions++
	a.raw, a.entries = nil, nil
	a.order <- j
	a.jobs <- j
	if last {
		a.cur = nil
	}
}

func (a *appender) sealWorker() {
	defer a.wg.Done()
	for j := range a.jobs {
		out := a.s.getBuf(len(j.raw) + len(j.raw)/8 + 1024)
		j.sealed = container.SealRegion(a.s.comp, a.s.aead, a.s.keys.StoreID, j.ctr.id, j.index, j.raw, out)
		a.s.putBuf(j.raw)
		j.raw = nil
		close(j.done)
	}
}

func (a *appender) writer() {
	defer close(a.done)
	var last *openCtr
	defer func() {
		// An unsealed container left open (abort, error) is removed.
		if last != nil && last.w != nil {
			last.w.Abort()
			last.w = nil
		}
	}()
	for j := range a.order {
		<-j.done
		last = j.ctr
		if a.Err() != nil {
			if j.ctr.w != nil {
				j.ctr.w.Abort()
				j.ctr.w = nil
			}
			continue
		}
		if err := a.write(j); err != nil {
			a.setErr(err)
			if j.ctr.w != nil {
				j.ctr.w.Abort()
				j.ctr.w = nil
			}
		}
	}
}

func (a *appender) write(j *regionJob) error {
	c := j.ctr
	if j.entries != nil {
		if c.w == nil {
			if err := a.s.checkSpace(); err != nil {
				return err
			}
			w, err := container.Create(a.s.containerPath(c.id), container.Header{
				StoreID: a.s.keys.StoreID, ID: c.id, Kind: a.kind, Created: time.Now(),
			})
			if err != nil {
				return a.s.noSpace(err)
			}
			c.w = w
		}
		if err := a.s.checkSpace(); err != nil {
			return err
		}
		err := c.w.WriteRegion(j.sealed, j.entries)
		a.stored.Add(int64(len(j.sealed.Bytes)))
		a.s.putBuf(j.sealed.Bytes)
		j.sealed.Bytes = nil
		if err != nil {
			return a.s.noSpace(err)
		}
	}
	if !j.last || c.w == nil {
		return nil
	}
	w := c.w
	c.w = nil
	a.sealing <- struct{}{}
	a.sealWG.Add(1)
	go func() {
		defer a.sealWG.Done()
		defer func() { <-a.sealing }()
		if err := a.seal(c.id, w); err != nil {
			a.setErr(err)
		}
	}()
	return nil
}

// seal makes a container durable and then indexes it: an index entry
// never points at a container a power cut could lose.
func (a *appender) seal(id uint64, w *container.Writer) error {
	entries := w.Entries()
	size, err := w.Seal(a.s.aead)
	if err != nil {
		return a.s.noSpace(err)
	}
	a.stored.Add(size - w.Size())
	var ids []chunk.ID
	var raw int64
	for _, e := range entries {
		raw += int64(e.Length)
		if a.indexEntries {
			ids = append(ids, e.ID)
		}
	}
	rec := index.ContainerRecord{ID: id, Kind: uint8(a.kind), Size: size, Raw: raw, Entries: uint32(len(entries))}
	if a.indexEntries {
		// New index entries may not appear while GC commits its changes.
		a.s.gcMu.RLock()
		err = a.s.idx.AddContainer(rec, ids)
		a.s.gcMu.RUnlock()
	} else {
		err = a.s.idx.AddContainer(rec, nil)
	}
	if err != nil {
		return fmt.Errorf("index container %d: %w", id, a.s.noSpace(err))
	}
	if a.onSealed != nil {
		a.onSealed(sealedContainer{id: id, size: size, entries: entries})
	}
	return nil
}

// finish seals the open container and waits until everything added is
// durable and indexed.
func (a *appender) finish() error {
	if a.cur != nil {
		a.cutRegion(true)
	}
	close(a.jobs)
	close(a.order)
	a.wg.Wait()
	<-a.done
	a.sealWG.Wait()
	return a.Err()
}

// abort stops the appender, removing unsealed containers. Sealed ones
// stay; GC reclaims their chunks if nothing refers to them.
func (a *appender) abort() {
	a.setErr(errAborted)
	a.raw, a.entries = nil, nil
	a.cur = nil
	close(a.jobs)
	close(a.order)
	a.wg.Wait()
	<-a.done
	a.sealWG.Wait()
}

// getBuf returns an empty buffer of at least n bytes capacity from the
// store's pool (regions and their sealed forms are recycled, which keeps
// the garbage collector and page zeroing out of the backup's way).
func (s *Store) getBuf(n int) []byte {
	if p, ok := s.bufPool.Get().(*[]byte); ok && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]byte, 0, n)
}

// putBuf returns a buffer to the pool.
func (s *Store) putBuf(b []byte) {
	if cap(b) >= 64<<10 {
		b = b[:0]
		s.bufPool.Put(&b)
	}
}
