package app

import (
	"context"
	"path/filepath"
	"sync"
	"time"

	"coffer.dev/coffer/appliance/jobs"
	"coffer.dev/coffer/appliance/restore"
	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/store"
	"coffer.dev/coffer/store/point"
)

// Services is the running appliance: the job manager over a vCenter
// connection made on first use (so the appliance starts while vCenter
// is down), and the store. It is what the API serves.
type Services struct {
	*jobs.Manager
	app *App

	mu     sync.Mutex
	client *vsphere.Client
	engine *vsphere.Engine

	stop   chan struct{}
	wg     sync.WaitGroup
	alerts *alerter
}

// sampleCapacity records the pool's usage at start, hourly, and after
// each finished job (for the capacity chart and forecast).
func (s *Services) sampleCapacity() {
	defer s.wg.Done()
	events, cancel := s.Manager.Subscribe()
	defer cancel()
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	sample := func(gap time.Duration) {
		if err := s.app.SampleCapacity(gap); err != nil {
			s.app.Log.Warn("could not record the pool's usage", "err", err)
		}
	}
	sample(10 * time.Minute)
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
			sample(30 * time.Minute)
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev.Type == jobs.EventJob && ev.JobState.Finished() {
				sample(0)
			}
		}
	}
}

// StartServices opens the job manager in the state directory and starts
// its runner and scheduler. o's Backupper, Inventory, Points and Secrets
// are filled in.
func (a *App) StartServices(ctx context.Context, o jobs.Options) (*Services, error) {
	s := &Services{app: a}
	o.Backupper, o.Inventory, o.Points, o.Secrets = s, s, a.Store, a
	if o.Log == nil {
		o.Log = a.Log
	}
	m, err := jobs.Open(filepath.Join(a.Dir, JobsDir), o)
	if err != nil {
		return nil, err
	}
	s.Manager = m
	if err := m.Start(ctx); err != nil {
		m.Close()
		return nil, err
	}
	s.stop = make(chan struct{})
	s.alerts = &alerter{svc: s}
	s.wg.Add(2)
	go s.sampleCapacity()
	go func() {
		defer s.wg.Done()
		s.alerts.run(s.stop)
	}()
	return s, nil
}

// Close stops the jobs (running ones are marked interrupted) and logs
// out.
func (s *Services) Close() error {
	if s.stop != nil {
		close(s.stop)
		s.wg.Wait()
		s.stop = nil
	}
	err := s.Manager.Close()
	s.mu.Lock()
	if s.client != nil {
		_ = s.client.Logout(context.Background())
		s.client, s.engine = nil, nil
	}
	s.mu.Unlock()
	return err
}

// Engine returns the ingest engine, connecting to vCenter if needed.
func (s *Services) Engine(ctx context.Context) (*vsphere.Engine, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.engine != nil {
		return s.engine, nil
	}
	c, err := s.app.Connect(ctx)
	if err != nil {
		return nil, err
	}
	s.client, s.engine = c, s.app.Engine(c)
	return s.engine, nil
}

// BackupVM implements jobs.Backupper.
func (s *Services) BackupVM(ctx context.Context, req vsphere.BackupRequest) (*vsphere.Result, error) {
	e, err := s.Engine(ctx)
	if err != nil {
		return &vsphere.Result{}, err
	}
	res, err := e.BackupVM(ctx, req)
	if err == nil && !req.NoCatalog {
		s.app.AfterBackup(ctx, res)
	}
	return res, err
}

// SweepSnapshots implements jobs.Backupper.
func (s *Services) SweepSnapshots(ctx context.Context, vmUUID string) ([]vsphere.SweptSnapshot, error) {
	e, err := s.Engine(ctx)
	if err != nil {
		return nil, err
	}
	return e.SweepSnapshots(ctx, vmUUID)
}

// Inventory implements jobs.InventorySource.
func (s *Services) Inventory(ctx context.Context) (*vsphere.Inventory, error) {
	e, err := s.Engine(ctx)
	if err != nil {
		return nil, err
	}
	return e.Client.Inventory(ctx)
}

// Points lists the store's recovery points.
func (s *Services) Points() ([]*point.RecoveryPoint, error) { return s.app.Store.Points() }

// OpenDisk opens one disk of a point for reading or export.
func (s *Services) OpenDisk(id point.ID, disk string) (*store.DiskReader, error) {
	return s.app.Store.OpenDisk(id, disk)
}

// RestoreVM restores a point as a new VM (see restore.RestoreVM).
func (s *Services) RestoreVM(ctx context.Context, req restore.Request) (*restore.Result, error) {
	e, err := s.Engine(ctx)
	if err != nil {
		return nil, err
	}
	return restore.RestoreVM(ctx, e.Client, s.app.Store, req)
}
