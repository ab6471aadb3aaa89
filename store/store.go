package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"coffer.dev/coffer/store/chunk"
	"coffer.dev/coffer/store/chunker"
	"coffer.dev/coffer/store/container"
	"coffer.dev/coffer/store/crypt"
	"coffer.dev/coffer/store/index"
	"coffer.dev/coffer/store/point"
)

// Layout of a store directory.
const (
	configFile    = "config"
	keyringFile   = "keyring"
	lockFile      = "lock"
	containersDir = "containers"
	indexDir      = "index"
	pointsDir     = "points"
	damagedDir    = "damaged"

	formatVersion = 1
)

// Config is the plaintext store configuration, fixed at Init.
type Config struct {
	Version int            `json:"version"`
	StoreID string         `json:"store_id"`
	Created time.Time      `json:"created"`
	Chunker chunker.Params `json:"chunker"`
	// RegionSize is the raw size at which a region is closed.
	RegionSize int `json:"region_size"`
	// ContainerSize is the raw size at which a container is sealed.
	ContainerSize int64 `json:"container_size"`
}

// InitOptions tune a new store.
type InitOptions struct {
	// Chunker overrides the default chunker parameters (tests only).
	Chunker *chunker.Params
	// ContainerSize overrides the container size (tests only).
	ContainerSize int64
	// RegionSize overrides the region size.
	RegionSize int
	// Keyring imports existing keys, e.g. to share the fingerprint key with
	// a replication partner; nil makes fresh keys.
	Keyring *crypt.Keyring
}

// ErrExists is returned by Init when dir already holds a store.
var ErrExists = errors.New("a store already exists here")

// Init creates a store in dir (which must be empty or absent), its keyring
// wrapped by master.
func Init(dir string, master crypt.MasterKey, o InitOptions) error {
	if _, err := os.Stat(filepath.Join(dir, configFile)); err == nil {
		return fmt.Errorf("init store %s: %w", dir, ErrExists)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("init store %s: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("init store %s: %w", dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("init store %s: directory is not empty", dir)
	}
	keys := o.Keyring
	if keys == nil {
		if keys, err = crypt.NewKeyring(); err != nil {
			return err
		}
	}
	cfg := Config{
		Version:       formatVersion,
		StoreID:       fmt.Sprintf("%x", keys.StoreID),
		Created:       time.Now().UTC(),
		Chunker:       chunker.DefaultParams,
		RegionSize:    1 << 20,
		ContainerSize: 32 << 20,
	}
	if o.Chunker != nil {
		cfg.Chunker = *o.Chunker
	}
	if o.ContainerSize > 0 {
		cfg.ContainerSize = o.ContainerSize
	}
	if o.RegionSize > 0 {
		cfg.RegionSize = o.RegionSize
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	wrapped, err := keys.Wrap(master)
	if err != nil {
		return err
	}
	for _, d := range []string{containersDir, pointsDir} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			return fmt.Errorf("init store: %w", err)
		}
	}
	if err := writeFileAtomic(filepath.Join(dir, keyringFile), wrapped); err != nil {
		return fmt.Errorf("init store: %w", err)
	}
	cb, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("init store: %w", err)
	}
	// The config is written last: its presence marks a complete store.
	if err := writeFileAtomic(filepath.Join(dir, configFile), append(cb, '\n')); err != nil {
		return fmt.Errorf("init store: %w", err)
	}
	return nil
}

func (c Config) validate() error {
	if c.Version != formatVersion {
		return fmt.Errorf("store format version %d is not supported (this build reads %d)", c.Version, formatVersion)
	}
	if err := c.Chunker.Validate(); err != nil {
		return err
	}
	if c.RegionSize < 16<<10 || c.RegionSize > container.MaxRegionRaw/2 {
		return fmt.Errorf("store config: region size %d out of range", c.RegionSize)
	}
	if c.ContainerSize < int64(c.RegionSize) || c.ContainerSize > 1<<30 {
		return fmt.Errorf("store config: container size %d out of range", c.ContainerSize)
	}
	return nil
}

// Options tune an open store.
type Options struct {
	Logger *slog.Logger
	// CacheContainers is how many containers' fingerprint sections the
	// locality cache keeps (default 64).
	CacheContainers int
	// CacheBytes bounds the decoded-region cache used by reads (default 64 MiB).
	CacheBytes int64
	// Workers is the number of CPU workers per backup stream (default
	// GOMAXPROCS).
	Workers int
	// MinFreeBytes stops backups with ErrNoSpace before the file system
	// has less than this much free (default 64 MiB): a full pool must
	// still leave room for GC and index compaction.
	MinFreeBytes int64
	// ReadOnly opens without reclaiming leftovers (still exclusive).
	ReadOnly bool
}

// Store is an open store. It is safe for concurrent use by several backups,
// readers and one GC at a time.
type Store struct {
	dir     string
	cfg     Config
	keys    *crypt.Keyring
	aead    *crypt.AEAD
	comp    *container.Compression
	chunker *chunker.Chunker
	idx     *index.Index
	log     *slog.Logger
	opt     Options
	lock    *os.File

	lookups  lookupCounters
	lowSpace atomic.Bool // the reserve was given up: no backup writes
	bufPool  sync.Pool
	footers  *footerCache
	regions  *regionCache
	files    *fileCache

	// gcMu orders deduplication against GC's commit: a backup holds it
	// shared while it looks a chunk up and records the reference; GC
	// holds it exclusively while it removes index entries.
	gcMu sync.RWMutex
	// gcRun allows one GC (or index rebuild) at a time.
	gcRun sync.Mutex

	mu      sync.Mutex
	backups map[*Backup]struct{}
	pins    map[point.ID]*pin
	nextCtr uint64
	lastCtr uint64 // end of the reserved block
	closed  bool
}

type pin struct {
	p    *point.RecoveryPoint
	refs int
}

// ErrInUse means another process has the store open.
var ErrInUse = errors.New("store is in use by another process")

// ErrNoSpace means the store's file system is (nearly) full.
var ErrNoSpace = errors.New("no space left for the store")

// Open opens the store in dir with master. It reclaims what an interrupted
// process left behind (unsealed containers, half-written points) and
// rebuilds the index from the containers if the index is damaged.
func Open(ctx context.Context, dir string, master crypt.MasterKey, o Options) (*Store, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.CacheContainers <= 0 {
		o.CacheContainers = 64
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = 64 << 20
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.MinFreeBytes == 0 {
		o.MinFreeBytes = 64 << 20
	}
	cb, err := os.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("open store %s: no store here (run init first)", dir)
		}
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	var cfg Config
	if err := json.Unmarshal(cb, &cfg); err != nil {
		return nil, fmt.Errorf("open store %s: config: %w", dir, err)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	lf, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(filepath.Join(dir, lockFile))
		lf.Close()
		return nil, fmt.Errorf("open store %s: %w (pid %s)", dir, ErrInUse, strings.TrimSpace(string(holder)))
	}
	lf.Truncate(0)
	lf.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	s := &Store{dir: dir, cfg: cfg, log: o.Logger, opt: o, lock: lf,
		backups: map[*Backup]struct{}{}, pins: map[point.ID]*pin{}}
	fail := func(err error) (*Store, error) {
		s.closeParts()
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	kb, err := os.ReadFile(filepath.Join(dir, keyringFile))
	if err != nil {
		return fail(err)
	}
	if s.keys, err = crypt.UnwrapKeyring(kb, master); err != nil {
		return fail(err)
	}
	if fmt.Sprintf("%x", s.keys.StoreID) != cfg.StoreID {
		return fail(errors.New("keyring belongs to another store"))
	}
	if s.aead, err = crypt.NewAEAD(s.keys.Data[:]); err != nil {
		return fail(err)
	}
	if s.comp, err = container.NewCompression(); err != nil {
		return fail(err)
	}
	if s.chunker, err = chunker.New(s.keys.Chunker[:], cfg.Chunker); err != nil {
		return fail(err)
	}
	s.footers = newFooterCache(o.CacheContainers)
	s.regions = newRegionCache(o.CacheBytes)
	s.files = newFileCache(128)
	if err := s.openIndex(ctx); err != nil {
		return fail(err)
	}
	if !o.ReadOnly {
		if err := s.recover(ctx); err != nil {
			return fail(err)
		}
		s.keepReserve()
	}
	return s, nil
}

func (s *Store) openIndex(ctx context.Context) error {
	dir := filepath.Join(s.dir, indexDir)
	x, err := index.Open(dir, s.indexOptions())
	if err == nil {
		s.idx = x
		return nil
	}
	if !errors.Is(err, index.ErrDamaged) {
		return err
	}
	s.log.Warn("store index is damaged; rebuilding it from the containers", "err", err)
	return s.rebuildIndex(ctx)
}

// rebuildIndex moves the index aside and builds a new one from the
// containers' fingerprint sections.
func (s *Store) rebuildIndex(ctx context.Context) error {
	dir := filepath.Join(s.dir, indexDir)
	if s.idx != nil {
		s.idx.Close()
		s.idx = nil
	}
	if _, err := os.Stat(dir); err == nil {
		aside := filepath.Join(s.dir, damagedDir, "index-"+time.Now().UTC().Format("20060102T150405.000000000Z"))
		if err := os.MkdirAll(filepath.Dir(aside), 0o700); err != nil {
			return fmt.Errorf("rebuild index: %w", err)
		}
		if err := os.Rename(dir, aside); err != nil {
			return fmt.Errorf("rebuild index: move damaged index aside: %w", err)
		}
	}
	x, err := index.Open(dir, s.indexOptions())
	if err != nil {
		return fmt.Errorf("rebuild index: %w", err)
	}
	s.idx = x
	files, err := s.containerFiles()
	if err != nil {
		return fmt.Errorf("rebuild index: %w", err)
	}
	n := 0
	for _, id := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.reindexContainer(id); err != nil {
			s.log.Error("rebuild index: container is unreadable; verify will name the points it damages", "container", id, "err", err)
			continue
		}
		n++
	}
	s.log.Info("store index rebuilt from containers", "containers", n, "chunks", s.idx.Chunks())
	return nil
}

// reindexContainer reads a sealed container's fingerprint section and
// points its chunks at it.
func (s *Store) reindexContainer(id uint64) error {
	r, err := s.openContainer(id)
	if err != nil {
		return err
	}
	ids := make([]chunk.ID, len(r.Footer.Entries))
	var raw int64
	for i, e := range r.Footer.Entries {
		ids[i] = e.ID
		raw += int64(e.Length)
	}
	return s.idx.AddContainer(index.ContainerRecord{ID: id, Kind: uint8(r.Header.Kind), Size: r.Size(), Raw: raw, Entries: uint32(len(ids))}, ids)
}

// recover reclaims the leftovers of an interrupted process.
func (s *Store) recover(ctx context.Context) error {
	// Unsealed containers and unfinished point files.
	for _, d := range []string{containersDir, pointsDir} {
		err := filepath.WalkDir(filepath.Join(s.dir, d), func(path string, de fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !de.IsDir() && strings.HasSuffix(de.Name(), container.TmpSuffix) {
				s.log.Info("removing leftover of an interrupted write", "file", path)
				return os.Remove(path)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("reclaim leftovers: %w", err)
		}
	}
	files, err := s.containerFiles()
	if err != nil {
		return err
	}
	onDisk := make(map[uint64]bool, len(files))
	var maxID uint64
	for _, id := range files {
		onDisk[id] = true
		maxID = max(maxID, id)
	}
	known := map[uint64]bool{}
	var condemned []uint64
	err = s.idx.Containers(func(r index.ContainerRecord) error {
		known[r.ID] = true
		maxID = max(maxID, r.ID)
		if r.State == index.Condemned {
			condemned = append(condemned, r.ID)
		} else if !onDisk[r.ID] {
			s.log.Error("container is missing; verify will name the points it damages", "container", r.ID)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, index.ErrDamaged) || isBadgerCorruption(err) {
			s.log.Warn("store index is damaged; rebuilding it from the containers", "err", err)
			return s.rebuildIndex(ctx)
		}
		return fmt.Errorf("read container records: %w", err)
	}
	for _, id := range condemned {
		if err := s.removeContainerFile(id); err != nil {
			return err
		}
		if err := s.idx.DropContainer(id); err != nil {
			if errors.Is(err, ErrNoSpace) {
				s.log.Warn("store: no room to drop a container record; the next open retries", "container", id)
				continue
			}
			return err
		}
	}
	// Containers sealed just before a crash, before they were indexed.
	for _, id := range files {
		if known[id] {
			continue
		}
		if err := s.reindexContainer(id); err != nil {
			if errors.Is(err, ErrNoSpace) {
				s.log.Warn("store: no room to index a container sealed before an interruption; the next open retries", "container", id)
				continue
			}
			s.log.Error("unindexed container is unreadable; moving it aside", "container", id, "err", err)
			if err := s.quarantine(id); err != nil {
				return err
			}
			continue
		}
		s.log.Info("indexed a container sealed before an interruption", "container", id)
	}
	first, err := s.idx.ReserveContainerIDs(0, maxID+1)
	if errors.Is(err, ErrNoSpace) {
		// A full pool must still open (to delete points and collect
		// garbage); no container can be written anyway.
		s.log.Warn("store: opened on a full file system; backups will fail until space is freed")
		if first, err = s.idx.NextContainerID(); err == nil {
			first = max(first, maxID+1)
		}
	}
	if err != nil {
		return err
	}
	s.nextCtr, s.lastCtr = first, first
	return nil
}

func isBadgerCorruption(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "checksum") || strings.Contains(msg, "corrupt")
}

// quarantine moves an unreadable, unindexed container out of the way so
// that it is neither used nor lost.
func (s *Store) quarantine(id uint64) error {
	dst := filepath.Join(s.dir, damagedDir, filepath.Base(s.containerPath(id)))
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	return os.Rename(s.containerPath(id), dst)
}

// containerPath returns the file of container id: containers/XXXXX/ID.ctr,
// 1024 containers per folder.
func (s *Store) containerPath(id uint64) string {
	return filepath.Join(s.dir, containersDir, fmt.Sprintf("%05x", id>>10), fmt.Sprintf("%016x.ctr", id))
}

// containerFiles lists the IDs of the sealed container files.
func (s *Store) containerFiles() ([]uint64, error) {
	var ids []uint64
	err := filepath.WalkDir(filepath.Join(s.dir, containersDir), func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := de.Name()
		if de.IsDir() || !strings.HasSuffix(name, ".ctr") {
			return nil
		}
		id, perr := strconv.ParseUint(strings.TrimSuffix(name, ".ctr"), 16, 64)
		if perr != nil || path != s.containerPath(id) {
			s.log.Warn("ignoring a stray file among the containers", "file", path)
			return nil
		}
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	return ids, nil
}

func (s *Store) removeContainerFile(id uint64) error {
	s.files.drop(id)
	if err := os.Remove(s.containerPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove container %d: %w", id, err)
	}
	return nil
}

// newContainerID hands out container IDs, reserving them in blocks.
func (s *Store) newContainerID() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nextCtr >= s.lastCtr {
		first, err := s.idx.ReserveContainerIDs(64, s.nextCtr)
		if err != nil {
			return 0, err
		}
		s.nextCtr, s.lastCtr = first, first+64
	}
	id := s.nextCtr
	s.nextCtr++
	return id, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Config returns the store's configuration.
func (s *Store) Config() Config { return s.cfg }

// Close waits for nothing: callers must finish or abort their backups
// first. It closes the index and releases the store lock.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	n := len(s.backups)
	s.mu.Unlock()
	if n > 0 {
		s.log.Warn("closing the store with backups still running; they are lost", "backups", n)
	}
	return s.closeParts()
}

func (s *Store) closeParts() error {
	var err error
	if s.idx != nil {
		err = s.idx.Close()
		s.idx = nil
	}
	if s.files != nil {
		s.files.closeAll()
	}
	if s.comp != nil {
		s.comp.Close()
	}
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
	return err
}

// writeFileAtomic writes data to path through a temporary file, fsync and
// rename, then syncs the directory.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + container.TmpSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return container.SyncDir(filepath.Dir(path))
}

func syncDir(dir string) error { return container.SyncDir(dir) }
