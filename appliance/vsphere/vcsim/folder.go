package vcsim

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// serveFolder wraps the simulator's datastore file server (/folder) for GET and HEAD:
// it counts GETs and aborts Range responses on request (DropReads).
func (s *Sim) serveFolder(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		s.reads.Add(1)
		if r.Header.Get("Range") != "" {
			s.mu.Lock()
			drop, after := s.drops > 0, s.dropAt
			s.mu.Unlock()
			if drop {
				w = &dropWriter{ResponseWriter: w, sim: s, after: after}
			}
		}
	}
	s.model.Service.ServeDatastore(w, r)
}

// ReadRequests counts the GET requests served under /folder since Start (or the last
// ResetReadRequests), so tests can check that a client merges extents into few reads.
func (s *Sim) ReadRequests() int { return int(s.reads.Load()) }

// ResetReadRequests sets the ReadRequests counter to zero.
func (s *Sim) ResetReadRequests() { s.reads.Store(0) }

// DropReads makes the next n Range GETs under /folder fail mid-body: the response
// headers (206, Content-Length) and the first afterBytes bytes of the body are sent,
// then the connection is closed, as when a network path to ESXi breaks. A response no
// longer than afterBytes is delivered whole and does not count. n <= 0 cancels.
func (s *Sim) DropReads(n int, afterBytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drops = max(n, 0)
	s.dropAt = max(afterBytes, 0)
}

// dropWriter passes through the first after body bytes, then aborts the response if a
// drop is still pending.
type dropWriter struct {
	http.ResponseWriter
	sim     *Sim
	after   int64
	written int64
}

func (d *dropWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if d.written+int64(len(p)) <= d.after {
		n, err := d.ResponseWriter.Write(p)
		d.written += int64(n)
		return n, err
	}
	keep := d.after - d.written
	if keep > 0 {
		n, err := d.ResponseWriter.Write(p[:keep])
		d.written += int64(n)
		if err != nil {
			return n, err
		}
	}
	s := d.sim
	s.mu.Lock()
	drop := s.drops > 0
	if drop {
		s.drops--
	}
	s.mu.Unlock()
	if !drop { // another response used the last drop
		n, err := d.ResponseWriter.Write(p[keep:])
		d.written += int64(n)
		return int(keep) + n, err
	}
	if f, ok := d.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	// The server closes the connection without completing the response.
	panic(http.ErrAbortHandler)
}

// ExpireSessions terminates every session, as when vCenter's session timeout strikes
// or an administrator kills sessions: the next call of any client fails with
// NotAuthenticated until it logs in again. (The Sim logs its own helper session in
// again when it needs it.)
func (s *Sim) ExpireSessions() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := s.inproc
	ref := *c.ServiceContent.SessionManager
	var sm mo.SessionManager
	if err := property.DefaultCollector(c).RetrieveOne(ctx, ref, []string{"sessionList"}, &sm); err != nil {
		return err
	}
	var keys []string
	for _, us := range sm.SessionList {
		keys = append(keys, us.Key)
	}
	for _, key := range keys {
		_, err := methods.TerminateSession(ctx, c, &types.TerminateSession{This: ref, SessionId: []string{key}})
		if err != nil && !fault.Is(err, &types.NotFound{}) { // NotFound: it ended meanwhile
			return fmt.Errorf("vcsim: terminate session: %w", err)
		}
	}
	return nil
}
