package main

import (
	"context"
	"sync"
	"time"

	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
)

// callClock sits between the engine's vSphere client and the simulator and
// notes when the engine asks for its snapshot and when it next asks for
// changed disk areas, which it does as soon as the snapshot exists: the
// time in between is the simulator's snapshot task (with write tracking,
// the default, little more than ESXi's; with -vcsim-cbt hash, its CBT
// double hashes every data block of the disks, where ESXi keeps a change
// log), plus a few milliseconds of the engine's.
type callClock struct {
	rt soap.RoundTripper

	mu         sync.Mutex
	snapshotAt time.Time // CreateSnapshot(Ex)_Task sent
	queryAt    time.Time // the first QueryChangedDiskAreas after it sent
}

func (c *callClock) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	now := time.Now()
	c.mu.Lock()
	switch req.(type) {
	case *methods.CreateSnapshot_TaskBody, *methods.CreateSnapshotEx_TaskBody:
		c.snapshotAt, c.queryAt = now, time.Time{}
	case *methods.QueryChangedDiskAreasBody:
		if !c.snapshotAt.IsZero() && c.queryAt.IsZero() {
			c.queryAt = now
		}
	}
	c.mu.Unlock()
	return c.rt.RoundTrip(ctx, req, res)
}

func (c *callClock) reset() {
	c.mu.Lock()
	c.snapshotAt, c.queryAt = time.Time{}, time.Time{}
	c.mu.Unlock()
}

// snapshotSeconds is the time from the snapshot request to the first
// changed-area query (0 when either is missing).
func (c *callClock) snapshotSeconds() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snapshotAt.IsZero() || c.queryAt.IsZero() {
		return 0
	}
	return c.queryAt.Sub(c.snapshotAt).Seconds()
}
