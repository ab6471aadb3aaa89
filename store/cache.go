package store

import (
	"container/list"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"coffer.dev/coffer/store/chunk"
	"coffer.dev/coffer/store/container"
)

// location is where a chunk's bytes are: an entry of a container's
// fingerprint section.
type location struct {
	ctr   uint64
	entry container.Entry
}

// footerCache is the locality cache: the fingerprint sections of recently
// used containers. A chunk found in the index loads its whole container's
// section, so the chunks stored next to it (the rest of the same stream)
// are then found without touching the index.
type footerCache struct {
	mu      sync.Mutex
	cap     int
	lru     *list.List // of uint64 container IDs, front = most recent
	byCtr   map[uint64]*cachedFooter
	byChunk map[chunk.ID]chunkRef
	// condemned containers are being deleted by GC and never cached again.
	condemned map[uint64]bool
}

type cachedFooter struct {
	elem   *list.Element
	footer *container.Footer
}

type chunkRef struct {
	ctr   uint64
	entry int32
}

func newFooterCache(capacity int) *footerCache {
	return &footerCache{cap: capacity, lru: list.New(), byCtr: map[uint64]*cachedFooter{}, byChunk: map[chunk.ID]chunkRef{}, condemned: map[uint64]bool{}}
}

// find returns the cached location of id.
func (c *footerCache) find(id chunk.ID) (location, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ref, ok := c.byChunk[id]
	if !ok {
		return location{}, false
	}
	cf := c.byCtr[ref.ctr]
	c.lru.MoveToFront(cf.elem)
	return location{ctr: ref.ctr, entry: cf.footer.Entries[ref.entry]}, true
}

// findIn looks id up in the cached section of container ctr.
func (c *footerCache) get(ctr uint64) (*container.Footer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cf, ok := c.byCtr[ctr]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(cf.elem)
	return cf.footer, true
}

// add caches a container's section.
func (c *footerCache) add(ctr uint64, f *container.Footer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cf, ok := c.byCtr[ctr]; ok {
		c.lru.MoveToFront(cf.elem)
		return
	}
	if c.condemned[ctr] {
		return
	}
	for c.lru.Len() >= c.cap {
		c.evictLocked(c.lru.Back().Value.(uint64))
	}
	c.byCtr[ctr] = &cachedFooter{elem: c.lru.PushFront(ctr), footer: f}
	for i, e := range f.Entries {
		c.byChunk[e.ID] = chunkRef{ctr: ctr, entry: int32(i)}
	}
}

func (c *footerCache) evictLocked(ctr uint64) {
	cf, ok := c.byCtr[ctr]
	if !ok {
		return
	}
	for _, e := range cf.footer.Entries {
		if ref, ok := c.byChunk[e.ID]; ok && ref.ctr == ctr {
			delete(c.byChunk, e.ID)
		}
	}
	c.lru.Remove(cf.elem)
	delete(c.byCtr, ctr)
}

// evict drops a container (GC moved or deleted it).
func (c *footerCache) evict(ctr uint64) {
	c.mu.Lock()
	c.evictLocked(ctr)
	c.mu.Unlock()
}

// reset forgets every cached section (the index was rebuilt).
func (c *footerCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Init()
	c.byCtr = map[uint64]*cachedFooter{}
	c.byChunk = map[chunk.ID]chunkRef{}
}

// condemn evicts a container for good: GC is deleting it.
func (c *footerCache) condemn(ctr uint64) {
	c.mu.Lock()
	c.evictLocked(ctr)
	c.condemned[ctr] = true
	c.mu.Unlock()
}

// entries returns the number of chunks cached, for memory accounting.
func (c *footerCache) entries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byChunk)
}

// regionKey names one region of one container.
type regionKey struct {
	ctr    uint64
	region uint32
}

// regionCache holds decoded region payloads for reads. Loads are shared:
// concurrent readers of one region wait for a single decode.
type regionCache struct {
	mu    sync.Mutex
	cap   int64
	size  int64
	lru   *list.List // of *regionSlot, front = most recent
	slots map[regionKey]*regionSlot
}

type regionSlot struct {
	key   regionKey
	elem  *list.Element
	ready chan struct{}
	data  []byte
	err   error
}

func newRegionCache(capacity int64) *regionCache {
	return &regionCache{cap: capacity, lru: list.New(), slots: map[regionKey]*regionSlot{}}
}

// get returns the region, loading it with load on a miss.
func (c *regionCache) get(k regionKey, load func() ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	if s, ok := c.slots[k]; ok {
		if s.elem != nil {
			c.lru.MoveToFront(s.elem)
		}
		c.mu.Unlock()
		<-s.ready
		return s.data, s.err
	}
	s := &regionSlot{key: k, ready: make(chan struct{})}
	c.slots[k] = s
	c.mu.Unlock()

	s.data, s.err = load()
	close(s.ready)

	c.mu.Lock()
	defer c.mu.Unlock()
	if s.err != nil {
		delete(c.slots, k)
		return nil, s.err
	}
	s.elem = c.lru.PushFront(s)
	c.size += int64(cap(s.data))
	for c.size > c.cap && c.lru.Len() > 1 {
		old := c.lru.Back().Value.(*regionSlot)
		c.lru.Remove(old.elem)
		delete(c.slots, old.key)
		c.size -= int64(cap(old.data))
	}
	return s.data, nil
}

// reset forgets every finished region.
func (c *regionCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, s := range c.slots {
		if s.elem != nil {
			c.lru.Remove(s.elem)
			delete(c.slots, k)
			c.size -= int64(cap(s.data))
		}
	}
}

// dropContainer forgets every region of ctr.
func (c *regionCache) dropContainer(ctr uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, s := range c.slots {
		if k.ctr == ctr && s.elem != nil {
			c.lru.Remove(s.elem)
			delete(c.slots, k)
			c.size -= int64(cap(s.data))
		}
	}
}

// fileCache keeps container readers open (file handle and parsed
// section), so that reads do not reopen and re-authenticate per region.
type fileCache struct {
	mu    sync.Mutex
	cap   int
	lru   *list.List
	files map[uint64]*openFile
}

type openFile struct {
	id   uint64
	elem *list.Element
	f    *os.File
	r    *container.Reader
	refs int
	dead bool
}

func newFileCache(capacity int) *fileCache {
	return &fileCache{cap: capacity, lru: list.New(), files: map[uint64]*openFile{}}
}

func (c *fileCache) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, of := range c.files {
		of.dead = true
		if of.refs == 0 {
			of.f.Close()
		}
		delete(c.files, id)
	}
	c.lru.Init()
}

func (c *fileCache) drop(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	of, ok := c.files[id]
	if !ok {
		return
	}
	c.lru.Remove(of.elem)
	delete(c.files, id)
	of.dead = true
	if of.refs == 0 {
		of.f.Close()
	}
}

func (c *fileCache) release(of *openFile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	of.refs--
	if of.dead && of.refs == 0 {
		of.f.Close()
	}
}

// errContainerMissing marks a container file that does not exist (any
// more: GC may have just compacted it).
var errContainerMissing = errors.New("container file is missing")

// acquire returns an open container, opening it on a miss. The caller
// must release it.
func (s *Store) acquire(id uint64) (*openFile, error) {
	c := s.files
	c.mu.Lock()
	if of, ok := c.files[id]; ok {
		of.refs++
		c.lru.MoveToFront(of.elem)
		c.mu.Unlock()
		return of, nil
	}
	c.mu.Unlock()
	f, err := os.Open(s.containerPath(id))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("container %d: %w", id, errContainerMissing)
		}
		return nil, fmt.Errorf("open container %d: %w", id, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open container %d: %w", id, err)
	}
	r, err := container.Open(f, st.Size(), s.aead, s.keys.StoreID)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open container %d: %w", id, err)
	}
	if r.Header.ID != id {
		f.Close()
		return nil, fmt.Errorf("open container %d: file holds container %d", id, r.Header.ID)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if of, ok := c.files[id]; ok {
		f.Close()
		of.refs++
		return of, nil
	}
	of := &openFile{id: id, f: f, r: r, refs: 1}
	of.elem = c.lru.PushFront(of)
	c.files[id] = of
	for c.lru.Len() > c.cap {
		old := c.lru.Back().Value.(*openFile)
		c.lru.Remove(old.elem)
		delete(c.files, old.id)
		old.dead = true
		if old.refs == 0 {
			old.f.Close()
		}
	}
	return of, nil
}

// openContainer opens a container without caching it (recovery, verify).
func (s *Store) openContainer(id uint64) (*container.Reader, error) {
	of, err := s.acquire(id)
	if err != nil {
		return nil, err
	}
	defer s.files.release(of)
	return of.r, nil
}
