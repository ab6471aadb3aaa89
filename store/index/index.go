package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"coffer.dev/coffer/store/chunk"
)

// Key prefixes. Chunk entries: 'c' + ID → container ID (8 bytes LE).
// Container records: 'k' + container ID (8 bytes BE, so records iterate in
// ID order) → record. Meta values: 'm' + name.
const (
	prefixChunk     = 'c'
	prefixContainer = 'k'
	prefixMeta      = 'm'
)

var metaNextContainer = []byte("mnext-container")

// ContainerState tells whether a container is in use or being deleted.
type ContainerState uint8

const (
	// Live containers hold chunks the index points to.
	Live ContainerState = 1
	// Condemned containers are being deleted by GC: no index entry points to
	// them any more; the file is removed next, then the record.
	Condemned ContainerState = 2
)

// ContainerRecord is what the index keeps about each sealed container.
type ContainerRecord struct {
	ID      uint64
	State   ContainerState
	Kind    uint8
	Size    int64 // file size
	Raw     int64 // raw bytes of all its chunks
	Entries uint32
}

const recordSize = 1 + 1 + 8 + 8 + 4

func (r ContainerRecord) marshal() []byte {
	b := make([]byte, 0, recordSize)
	b = append(b, byte(r.State), r.Kind)
	b = binary.LittleEndian.AppendUint64(b, uint64(r.Size))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.Raw))
	return binary.LittleEndian.AppendUint32(b, r.Entries)
}

func unmarshalRecord(id uint64, b []byte) (ContainerRecord, error) {
	if len(b) != recordSize {
		return ContainerRecord{}, fmt.Errorf("index: container %d record of %d bytes", id, len(b))
	}
	return ContainerRecord{
		ID:      id,
		State:   ContainerState(b[0]),
		Kind:    b[1],
		Size:    int64(binary.LittleEndian.Uint64(b[2:])),
		Raw:     int64(binary.LittleEndian.Uint64(b[10:])),
		Entries: binary.LittleEndian.Uint32(b[18:]),
	}, nil
}

func chunkKey(id chunk.ID) []byte {
	k := make([]byte, 1+chunk.IDSize)
	k[0] = prefixChunk
	copy(k[1:], id[:])
	return k
}

func containerKey(id uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixContainer
	binary.BigEndian.PutUint64(k[1:], id)
	return k
}

// Options tune the index.
type Options struct {
	// FilterCapacity sizes the first part of the summary vector.
	FilterCapacity int64
	// Logger receives badger's warnings and errors.
	Logger *slog.Logger
	// Room, if set, is asked before every write and may refuse it. Badger
	// writes through memory-mapped files: on a full file system a write
	// would kill the process (SIGBUS) instead of failing.
	Room func() error
}

// Index is the chunk index. Safe for concurrent use.
type Index struct {
	room   func() error
	db     *badger.DB
	filter *Filter
	count  atomic.Int64
}

// ErrDamaged wraps errors that mean the index files cannot be trusted; the
// store rebuilds the index from its containers.
var ErrDamaged = errors.New("index damaged")

// Open opens (creating if needed) the index in dir and loads the summary
// vector from it.
func Open(dir string, o Options) (*Index, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	bo := badger.DefaultOptions(dir).
		WithLogger(badgerLogger{log}).
		WithSyncWrites(true).
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(10).
		WithBaseTableSize(4 << 20).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(0).
		WithCompression(options.None).
		WithValueLogFileSize(64 << 20).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		WithMetricsEnabled(false).
		WithDetectConflicts(false).
		WithChecksumVerificationMode(options.OnBlockRead)
	if err := validateTables(dir, bo); err != nil {
		return nil, err
	}
	if err := dropEmptyWALs(dir); err != nil {
		return nil, err
	}
	db, err := openBadger(bo)
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %v", ErrDamaged, dir, err)
	}
	x := &Index{db: db, room: o.Room}
	if err := x.loadFilter(o.FilterCapacity); err != nil {
		db.Close()
		return nil, err
	}
	return x, nil
}

func (x *Index) loadFilter(capacity int64) error {
	scan := func(fn func(chunk.ID)) error {
		return x.view(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixChunk}})
			defer it.Close()
			var id chunk.ID
			for it.Rewind(); it.Valid(); it.Next() {
				k := it.Item().Key()
				if len(k) != 1+chunk.IDSize {
					return fmt.Errorf("%w: chunk key of %d bytes", ErrDamaged, len(k))
				}
				copy(id[:], k[1:])
				fn(id)
			}
			return nil
		})
	}
	var n int64
	if err := scan(func(chunk.ID) { n++ }); err != nil {
		return fmt.Errorf("%w: scan chunk entries: %v", ErrDamaged, err)
	}
	x.filter = NewFilter(max(capacity, 2*n))
	if err := scan(x.filter.Add); err != nil {
		return fmt.Errorf("%w: scan chunk entries: %v", ErrDamaged, err)
	}
	x.count.Store(n)
	return nil
}

// Close flushes and closes the index.
func (x *Index) Close() error {
	if err := x.db.Close(); err != nil {
		return fmt.Errorf("close index: %w", err)
	}
	return nil
}

func (x *Index) checkRoom() error {
	if x.room == nil {
		return nil
	}
	return x.room()
}

// Chunks returns the number of chunk entries.
func (x *Index) Chunks() int64 { return x.count.Load() }

// FilterBytes returns the memory held by the summary vector.
func (x *Index) FilterBytes() int64 { return x.filter.Bytes() }

// Memory reports the index's resident memory: the part that grows with
// the number of chunks (summary vector, badger's table indexes and Bloom
// filters) and the fixed buffers (memtables, block cache).
func (x *Index) Memory() (perChunk, fixed int64) {
	perChunk = x.filter.Bytes()
	for _, t := range x.db.Tables() {
		perChunk += int64(t.IndexSz + t.BloomFilterSize)
	}
	o := x.db.Opts()
	fixed = o.MemTableSize*int64(o.NumMemtables) + o.BlockCacheSize
	return perChunk, fixed
}

// MayContain consults only the summary vector.
func (x *Index) MayContain(id chunk.ID) bool { return x.filter.MayContain(id) }

// Lookup returns the container that holds id.
func (x *Index) Lookup(id chunk.ID) (ctr uint64, ok bool, err error) {
	err = x.view(func(txn *badger.Txn) error {
		item, err := txn.Get(chunkKey(id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("%w: entry %s: value of %d bytes", ErrDamaged, id.Short(), len(v))
			}
			ctr, ok = binary.LittleEndian.Uint64(v), true
			return nil
		})
	})
	if err != nil {
		return 0, false, fmt.Errorf("index lookup %s: %w", id.Short(), err)
	}
	return ctr, ok, nil
}

// AddContainer records a sealed container and points its chunks at it.
func (x *Index) AddContainer(rec ContainerRecord, ids []chunk.ID) error {
	if err := x.checkRoom(); err != nil {
		return err
	}
	wb := x.db.NewWriteBatch()
	defer wb.Cancel()
	var v [8]byte
	binary.LittleEndian.PutUint64(v[:], rec.ID)
	var added int64
	for _, id := range ids {
		if err := wb.Set(chunkKey(id), append([]byte(nil), v[:]...)); err != nil {
			return fmt.Errorf("index container %d: %w", rec.ID, err)
		}
		if !x.filter.MayContain(id) {
			added++
		}
		x.filter.Add(id)
	}
	rec.State = Live
	if err := wb.Set(containerKey(rec.ID), rec.marshal()); err != nil {
		return fmt.Errorf("index container %d: %w", rec.ID, err)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("index container %d: %w", rec.ID, err)
	}
	x.count.Add(added)
	return nil
}

// Change is one chunk entry update made by GC: Delete removes the entry,
// otherwise it is pointed at container To.
type Change struct {
	ID     chunk.ID
	Delete bool
	To     uint64
}

// Apply makes GC's entry changes durable.
func (x *Index) Apply(changes []Change) error {
	if err := x.checkRoom(); err != nil {
		return err
	}
	wb := x.db.NewWriteBatch()
	defer wb.Cancel()
	var deleted int64
	for _, c := range changes {
		var err error
		if c.Delete {
			err = wb.Delete(chunkKey(c.ID))
			deleted++
		} else {
			var v [8]byte
			binary.LittleEndian.PutUint64(v[:], c.To)
			err = wb.Set(chunkKey(c.ID), v[:])
		}
		if err != nil {
			return fmt.Errorf("index update: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("index update: %w", err)
	}
	x.count.Add(-deleted)
	return nil
}

// SetContainerState updates a container record's state.
func (x *Index) SetContainerState(id uint64, st ContainerState) error {
	if err := x.checkRoom(); err != nil {
		return err
	}
	return x.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(containerKey(id))
		if err != nil {
			return fmt.Errorf("container %d record: %w", id, err)
		}
		var rec ContainerRecord
		if err := item.Value(func(v []byte) error {
			rec, err = unmarshalRecord(id, v)
			return err
		}); err != nil {
			return err
		}
		rec.State = st
		return txn.Set(containerKey(id), rec.marshal())
	})
}

// DropContainer removes a container's record (after its file is gone).
func (x *Index) DropContainer(id uint64) error {
	if err := x.checkRoom(); err != nil {
		return err
	}
	return x.db.Update(func(txn *badger.Txn) error { return txn.Delete(containerKey(id)) })
}

// Container returns a container's record.
func (x *Index) Container(id uint64) (ContainerRecord, bool, error) {
	var rec ContainerRecord
	var ok bool
	err := x.view(func(txn *badger.Txn) error {
		item, err := txn.Get(containerKey(id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			rec, err = unmarshalRecord(id, v)
			ok = err == nil
			return err
		})
	})
	return rec, ok, err
}

// Containers calls fn for every container record in ID order.
func (x *Index) Containers(fn func(ContainerRecord) error) error {
	return x.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixContainer}, PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			if len(k) != 9 {
				return fmt.Errorf("%w: container key of %d bytes", ErrDamaged, len(k))
			}
			id := binary.BigEndian.Uint64(k[1:])
			var rec ContainerRecord
			if err := item.Value(func(v []byte) error {
				var err error
				rec, err = unmarshalRecord(id, v)
				return err
			}); err != nil {
				return err
			}
			if err := fn(rec); err != nil {
				return err
			}
		}
		return nil
	})
}

// Entries calls fn for every chunk entry.
func (x *Index) Entries(fn func(id chunk.ID, ctr uint64) error) error {
	return x.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixChunk}, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			var id chunk.ID
			copy(id[:], item.Key()[1:])
			var ctr uint64
			if err := item.Value(func(v []byte) error {
				if len(v) != 8 {
					return fmt.Errorf("%w: entry %s: value of %d bytes", ErrDamaged, id.Short(), len(v))
				}
				ctr = binary.LittleEndian.Uint64(v)
				return nil
			}); err != nil {
				return err
			}
			if err := fn(id, ctr); err != nil {
				return err
			}
		}
		return nil
	})
}

// NextContainerID returns the high-water mark of container IDs without
// changing it.
func (x *Index) NextContainerID() (uint64, error) {
	var next uint64
	err := x.view(func(txn *badger.Txn) error {
		var err error
		next, err = readNextContainer(txn)
		return err
	})
	return next, err
}

// readNextContainer reads the high-water mark (1 when none is stored).
func readNextContainer(txn *badger.Txn) (uint64, error) {
	item, err := txn.Get(metaNextContainer)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 1, nil
	}
	if err != nil {
		return 0, err
	}
	var next uint64
	err = item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("%w: next container id of %d bytes", ErrDamaged, len(v))
		}
		next = binary.LittleEndian.Uint64(v)
		return nil
	})
	return next, err
}

// ReserveContainerIDs returns the first of n fresh container IDs. The
// high-water mark is stored before the IDs are handed out, so an ID is
// never reused, even after a crash.
func (x *Index) ReserveContainerIDs(n uint64, atLeast uint64) (uint64, error) {
	if err := x.checkRoom(); err != nil {
		return 0, err
	}
	var first uint64
	err := x.db.Update(func(txn *badger.Txn) error {
		next, err := readNextContainer(txn)
		if err != nil {
			return err
		}
		first = max(next, atLeast)
		var v [8]byte
		binary.LittleEndian.PutUint64(v[:], first+n)
		return txn.Set(metaNextContainer, v[:])
	})
	if err != nil {
		return 0, fmt.Errorf("reserve container ids: %w", err)
	}
	return first, nil
}

// dropEmptyWALs removes memtable and value logs of zero bytes: a process
// killed right after creating one leaves it behind, and badger then refuses
// to open. An empty log holds no entries.
func dropEmptyWALs(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".mem") && !strings.HasSuffix(e.Name(), ".vlog") {
			continue
		}
		if info, err := e.Info(); err == nil && info.Size() == 0 {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("remove empty index log: %w", err)
			}
		}
	}
	return nil
}

// openBadger opens badger, turning a panic on damaged files into ErrDamaged.
func openBadger(o badger.Options) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return badger.Open(o)
}

// view runs a read transaction; a panic inside badger (damaged blocks that
// fail to parse before their checksum is checked) becomes ErrDamaged.
func (x *Index) view(fn func(txn *badger.Txn) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrDamaged, r)
		}
	}()
	err = x.db.View(fn)
	if err != nil && isCorruption(err) {
		err = fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	return err
}

func isCorruption(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "checksum") || strings.Contains(msg, "corrupt")
}

// badgerLogger routes badger's messages to slog, dropping its chatter.
type badgerLogger struct{ log *slog.Logger }

func (l badgerLogger) Errorf(f string, a ...any) {
	l.log.Error("index: " + fmt.Sprintf(f, a...))
}
func (l badgerLogger) Warningf(f string, a ...any) {
	l.log.Warn("index: " + fmt.Sprintf(f, a...))
}
func (l badgerLogger) Infof(string, ...any)  {}
func (l badgerLogger) Debugf(string, ...any) {}
