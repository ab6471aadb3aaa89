package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"coffer.dev/coffer/store/index"
)

// Space management. A full pool must never cost data or kill the process:
//
//   - backups stop with ErrNoSpace while MinFreeBytes are still free
//     (checked before every container and every region);
//   - the index refuses to write below indexFloor: badger writes through
//     memory-mapped files, and a write into a full file system is a SIGBUS,
//     not an error;
//   - a reserve file set aside at open is given up the moment a write meets
//     ENOSPC, so that the index can still flush and GC can run.

const (
	reserveFile = "reserve"
	reserveSize = 64 << 20
	// indexFloor is what badger needs to flush a memtable (8 MiB) into a
	// table, with margin.
	indexFloor = 16 << 20
)

func (s *Store) indexOptions() index.Options {
	return index.Options{Logger: s.log, Room: s.indexRoom}
}

// freeBytes returns the space available to the store (-1 if unknown).
func (s *Store) freeBytes() int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.dir, &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// checkSpace fails with ErrNoSpace when less than MinFreeBytes are free,
// or while the reserve is given up (until it can be set aside again).
func (s *Store) checkSpace() error {
	if s.lowSpace.Load() && !s.keepReserve() {
		return fmt.Errorf("%w: the pool filled up; free space (delete points, then gc) before backing up again", ErrNoSpace)
	}
	if s.opt.MinFreeBytes <= 0 {
		return nil
	}
	free := s.freeBytes()
	if free >= 0 && free < s.opt.MinFreeBytes {
		return fmt.Errorf("%w: %d MiB free on the store's file system, %d MiB are kept in reserve", ErrNoSpace, free>>20, s.opt.MinFreeBytes>>20)
	}
	return nil
}

// indexRoom lets the index write only when badger has room to flush.
func (s *Store) indexRoom() error {
	free := s.freeBytes()
	if free < 0 || free >= indexFloor {
		return nil
	}
	s.releaseReserve()
	if free = s.freeBytes(); free >= indexFloor {
		return nil
	}
	return fmt.Errorf("%w: %d MiB free; the index needs %d MiB to write safely", ErrNoSpace, free>>20, indexFloor>>20)
}

// keepReserve sets the reserve file aside when there is room for it, and
// reports whether it is in place (or cannot be made on this file system).
func (s *Store) keepReserve() bool {
	path := filepath.Join(s.dir, reserveFile)
	if st, err := os.Stat(path); err == nil && st.Size() == reserveSize {
		s.lowSpace.Store(false)
		return true
	}
	if free := s.freeBytes(); free >= 0 && free < reserveSize+indexFloor+max(s.opt.MinFreeBytes, 0) {
		s.log.Warn("store: too little free space to set the space reserve aside", "free_mib", free>>20)
		s.lowSpace.Store(true)
		return false
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		s.log.Warn("store: cannot create the space reserve", "err", err)
		return true
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, reserveSize); err != nil {
		os.Remove(path)
		if errors.Is(err, syscall.ENOSPC) {
			s.lowSpace.Store(true)
			return false
		}
		s.log.Warn("store: this file system cannot hold a space reserve", "err", err)
		return true
	}
	s.lowSpace.Store(false)
	return true
}

// releaseReserve gives the reserve's space back to the file system.
func (s *Store) releaseReserve() {
	path := filepath.Join(s.dir, reserveFile)
	s.lowSpace.Store(true)
	if err := os.Remove(path); err == nil {
		s.log.Warn("store: the file system is full; released the space reserve so the index can still write (free space with delete and gc)")
	}
}

// noSpace turns ENOSPC and EDQUOT into ErrNoSpace and releases the reserve.
func (s *Store) noSpace(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		s.releaseReserve()
		return fmt.Errorf("%w: %v", ErrNoSpace, err)
	}
	return err
}
