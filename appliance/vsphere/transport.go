package vsphere

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"coffer.dev/coffer/store"
)

// SnapshotDisk is one disk of a VM as frozen by a snapshot: what a
// DiskTransport opens.
type SnapshotDisk struct {
	VM         types.ManagedObjectReference
	Snapshot   types.ManagedObjectReference
	Datacenter string // inventory path of the datacenter ("/DC")
	// Host is the ESXi host the VM runs on (for direct reads).
	Host types.ManagedObjectReference
	Disk Disk // from the snapshot's configuration
	// Reads are the extents that will be read, in order: a transport may
	// fetch them ahead of time.
	Reads []store.Extent
}

// DiskReader reads the frozen contents of a disk. ReadAt may be called
// from several goroutines.
type DiskReader interface {
	io.ReaderAt
	io.Closer
	// Stats reports what the reader fetched.
	Stats() ReadStats
}

// ReadStats are the figures of one disk read.
type ReadStats struct {
	Requests int64 `json:"requests"`
	Bytes    int64 `json:"bytes"`
	Retries  int64 `json:"retries"`
}

// DiskTransport opens frozen disks. The engine reads through this
// interface only, so that other transports (NFC export of the snapshot,
// NBD) can be added without touching it.
type DiskTransport interface {
	Name() string
	OpenDisk(ctx context.Context, d SnapshotDisk) (DiskReader, error)
}

// FolderTransport reads the flat extent of a disk over HTTPS from the
// datastore's /folder URL with Range requests, several in flight, with
// adjacent extents merged into large reads (each request has a fixed
// cost). It needs flat (non-delta) disks: the snapshot's parent disk is
// exactly what the snapshot froze.
type FolderTransport struct {
	Client *Client
	// InFlight is how many reads run ahead of the store (default 4).
	InFlight int
	// MaxRead is the largest single request (default 8 MiB).
	MaxRead int64
	// MaxGap merges extents separated by at most this many bytes
	// (default 64 KiB: reading a short gap costs less than another
	// request; allocated areas come in 64 KiB blocks).
	MaxGap int64
	// Retries of one request after a dropped connection or a server
	// error (default 3).
	Retries int
	// Direct reads from the ESXi host that runs the VM, with a service
	// ticket from vCenter, instead of through vCenter, which would proxy
	// every byte. The host's certificate is trusted by the thumbprint
	// vCenter gives with the ticket (or an existing pin). Without a
	// usable host address the reads go through vCenter.
	Direct bool
	// HostPort is the HTTPS port of the hosts for direct reads ("443").
	HostPort string
}

// Name implements DiskTransport.
func (t *FolderTransport) Name() string { return "https-folder" }

// OpenDisk implements DiskTransport.
func (t *FolderTransport) OpenDisk(ctx context.Context, d SnapshotDisk) (DiskReader, error) {
	if d.Disk.Delta {
		return nil, fmt.Errorf("disk %s (%s) is a snapshot delta: the VM has snapshots of its own; the https-folder transport reads flat disks only (consolidate or delete the VM's snapshots)", d.Disk.Controller, d.Disk.File)
	}
	if d.Disk.RDM == "physical" {
		return nil, fmt.Errorf("disk %s is a physical-mode RDM", d.Disk.Controller)
	}
	ds, rel, ok := splitDatastorePath(d.Disk.File)
	if !ok {
		return nil, fmt.Errorf("disk %s: cannot parse datastore path %q", d.Disk.Controller, d.Disk.File)
	}
	flat := flatExtentPath(rel)
	if d.Disk.RDM == "virtual" {
		flat = strings.TrimSuffix(rel, ".vmdk") + "-rdm.vmdk"
	}
	u := object.NewDatastoreURL(*t.Client.soap.URL(), d.Datacenter, ds, flat)
	maxRead := t.MaxRead
	if maxRead <= 0 {
		maxRead = 8 << 20
	}
	gap := t.MaxGap
	if gap < 0 {
		gap = 0
	} else if gap == 0 {
		gap = 64 << 10
	}
	inflight := t.InFlight
	if inflight <= 0 {
		inflight = 4
	}
	retries := t.Retries
	if retries <= 0 {
		retries = 3
	}
	var ticketURL *url.URL
	if t.Direct && t.Client.IsVC() && d.Host.Value != "" {
		hu, err := t.hostURL(ctx, d.Host, ds, flat)
		if err != nil {
			t.Client.log.Warn("direct host reads unavailable, reading through vCenter", "host", d.Host.Value, "err", err)
		} else {
			u, ticketURL = hu, hu
		}
	}
	r := newPrefetchReader(ctx, planWindows(d.Reads, d.Disk.Capacity, maxRead, gap), inflight,
		func(ctx context.Context, off int64, p []byte) error {
			return t.get(ctx, u, ticketURL, off, p, retries)
		})
	return r, nil
}

// hostURL is the /folder URL of a datastore file on an ESXi host.
func (t *FolderTransport) hostURL(ctx context.Context, host types.ManagedObjectReference, ds, file string) (*url.URL, error) {
	ips, err := object.NewHostSystem(t.Client.vim, host).ManagementIPs(ctx)
	if err != nil {
		return nil, err
	}
	if len(ips) == 0 {
		return nil, errors.New("the host has no management address")
	}
	port := t.HostPort
	if port == "" {
		port = "443"
	}
	base := url.URL{Scheme: "https", Host: net.JoinHostPort(ips[0].String(), port)}
	u := object.NewDatastoreURL(base, "", ds, file)
	q := u.Query()
	q.Del("dcPath")
	u.RawQuery = q.Encode()
	return u, nil
}

// ticket asks vCenter for a one-request service ticket for u and pins the
// host's certificate thumbprint that comes with it.
func (t *FolderTransport) ticket(ctx context.Context, u *url.URL) (*http.Cookie, error) {
	tk, err := session.NewManager(t.Client.vim).AcquireGenericServiceTicket(ctx, &types.SessionManagerHttpServiceRequestSpec{
		Url: u.String(), Method: string(types.SessionManagerHttpServiceRequestSpecMethodHttpGet),
	})
	if err != nil {
		return nil, fmt.Errorf("service ticket for %s: %w", u.Host, err)
	}
	if tk.SslThumbprint != "" {
		t.Client.v.pin(u.Hostname(), tk.SslThumbprint)
	}
	return &http.Cookie{Name: "vmware_cgi_ticket", Value: tk.Id}, nil
}

// get reads p from off of the file at u, retrying dropped connections,
// server errors and an expired session.
func (t *FolderTransport) get(ctx context.Context, u, ticketURL *url.URL, off int64, p []byte, retries int) error {
	var err error
	for attempt := 0; ; attempt++ {
		var ck *http.Cookie
		if ticketURL != nil {
			if ck, err = t.ticket(ctx, ticketURL); err != nil {
				return err
			}
		}
		err = t.getOnce(ctx, u, ck, off, p)
		if err == nil || ctx.Err() != nil || attempt >= retries || errors.Is(err, errPermanent) {
			return err
		}
		t.Client.log.Warn("disk read failed, retrying", "url", u.Path, "offset", off, "length", len(p), "attempt", attempt+1, "err", err)
		select {
		case <-time.After(time.Duration(200*(attempt+1)) * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

var errPermanent = errors.New("permanent")

func (t *FolderTransport) getOnce(ctx context.Context, u *url.URL, ticket *http.Cookie, off int64, p []byte) error {
	c := t.Client
	gen := c.generation()
	res, err := c.soap.DownloadRequest(ctx, u, &soap.Download{
		Method:  http.MethodGet,
		Headers: map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", off, off+int64(len(p))-1)},
		Ticket:  ticket,
	})
	if err != nil {
		return fmt.Errorf("GET %s at %d: %w", u.Path, off, unwrapTLS(err))
	}
	defer res.Body.Close()
	switch res.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		// A server that ignores Range sends the whole file: skip to off.
		if _, err := io.CopyN(io.Discard, res.Body, off); err != nil {
			return fmt.Errorf("GET %s: skip to %d: %w", u.Path, off, err)
		}
	case http.StatusUnauthorized, http.StatusForbidden:
		if lerr := c.login(ctx, gen); lerr != nil {
			return fmt.Errorf("GET %s: %s, and logging in again failed: %v: %w", u.Path, res.Status, lerr, errPermanent)
		}
		return fmt.Errorf("GET %s: %s (logged in again)", u.Path, res.Status)
	case http.StatusNotFound:
		return fmt.Errorf("GET %s: the disk file is missing (%s): %w", u.Path, res.Status, errPermanent)
	case http.StatusRequestedRangeNotSatisfiable:
		return fmt.Errorf("GET %s: range %d+%d is beyond the disk file (%s): %w", u.Path, off, len(p), res.Status, errPermanent)
	default:
		return fmt.Errorf("GET %s at %d: %s", u.Path, off, res.Status)
	}
	if _, err := io.ReadFull(res.Body, p); err != nil {
		return fmt.Errorf("GET %s at %d: read body: %w", u.Path, off, err)
	}
	return nil
}

// window is one planned read.
type window struct {
	off, len int64
	need     int64 // bytes of planned extents inside
	got      int64 // bytes handed out
	buf      []byte
	state    int // 0 waiting, 1 fetching, 2 ready, 3 released
	err      error
	done     chan struct{}
}

// planWindows merges extents into reads of at most maxRead bytes that
// never cross a store range (16 MiB), so that each read is consumed by
// one store worker.
func planWindows(exts []store.Extent, size, maxRead, gap int64) []*window {
	exts = append([]store.Extent(nil), exts...)
	sort.Slice(exts, func(i, j int) bool { return exts[i].Offset < exts[j].Offset })
	const rangeSize = 16 << 20
	var out []*window
	for _, e := range exts {
		s, end := max(e.Offset, 0), min(e.Offset+e.Length, size)
		for s < end {
			rEnd := (s/rangeSize + 1) * rangeSize
			t := min(end, rEnd)
			if n := len(out); n > 0 {
				w := out[n-1]
				if s-(w.off+w.len) <= gap && s >= w.off+w.len && s/rangeSize == w.off/rangeSize && t-w.off <= maxRead {
					w.len = t - w.off
					w.need += t - s
					s = t
					continue
				}
			}
			l := min(t-s, maxRead)
			out = append(out, &window{off: s, len: l, need: l, done: make(chan struct{})})
			s += l
		}
	}
	return out
}

// prefetchReader serves ReadAt from windows fetched ahead, and reads
// anything outside them directly.
type prefetchReader struct {
	ctx    context.Context
	cancel context.CancelFunc
	fetch  func(ctx context.Context, off int64, p []byte) error

	mu      sync.Mutex
	wins    []*window
	next    int // next window to start
	ahead   int // windows fetching or ready and not released
	limit   int
	maxRead int64 // highest offset read so far
	stats   ReadStats
	wg      sync.WaitGroup
	closed  bool
}

func newPrefetchReader(ctx context.Context, wins []*window, inflight int, fetch func(context.Context, int64, []byte) error) *prefetchReader {
	ctx, cancel := context.WithCancel(ctx)
	r := &prefetchReader{ctx: ctx, cancel: cancel, fetch: fetch, wins: wins, limit: inflight + 2}
	r.mu.Lock()
	r.startLocked()
	r.mu.Unlock()
	return r
}

// startLocked starts fetching windows while fewer than limit are ahead.
func (r *prefetchReader) startLocked() {
	for r.next < len(r.wins) && r.ahead < r.limit && !r.closed {
		w := r.wins[r.next]
		r.next++
		r.ahead++
		w.state = 1
		w.buf = make([]byte, w.len)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			err := r.fetch(r.ctx, w.off, w.buf)
			r.mu.Lock()
			r.stats.Requests++
			if err == nil {
				r.stats.Bytes += w.len
			}
			w.err = err
			w.state = 2
			r.mu.Unlock()
			close(w.done)
		}()
	}
}

// releaseLocked frees a window's buffer.
func (r *prefetchReader) releaseLocked(w *window) {
	if w.state == 2 {
		w.state = 3
		w.buf = nil
		r.ahead--
	}
}

// ReadAt implements io.ReaderAt. A read may span several windows and
// the gaps between them; what no window holds is fetched directly.
func (r *prefetchReader) ReadAt(p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		n, err := r.readPart(p[done:], off+int64(done))
		if err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

// readPart serves a prefix of p at off from one window, or from a direct
// fetch up to the next window.
func (r *prefetchReader) readPart(p []byte, off int64) (int, error) {
	end := off + int64(len(p))
	r.mu.Lock()
	i := sort.Search(len(r.wins), func(i int) bool { return r.wins[i].off+r.wins[i].len > off })
	var w *window
	direct := int64(len(p))
	if i < len(r.wins) {
		if c := r.wins[i]; c.off <= off && c.state != 3 {
			w = c
			if w.state == 0 {
				// Asked before its turn: start everything up to it.
				for r.next <= i {
					r.limit++
					r.startLocked()
				}
			}
		} else if c.off > off {
			direct = min(direct, c.off-off)
		}
	}
	if end > r.maxRead {
		r.maxRead = end
		// Windows far behind the reads will not be asked for again.
		for j := 0; j < r.next; j++ {
			if ww := r.wins[j]; ww.state == 2 && ww.off+ww.len+2*(16<<20) < off {
				r.releaseLocked(ww)
			}
		}
	}
	r.mu.Unlock()
	if w == nil {
		// Outside the plan (the re-chunking context around changes).
		if err := r.direct(p[:direct], off); err != nil {
			return 0, err
		}
		return int(direct), nil
	}
	select {
	case <-w.done:
	case <-r.ctx.Done():
		return 0, r.ctx.Err()
	}
	n := int(min(int64(len(p)), w.off+w.len-off))
	r.mu.Lock()
	if w.err != nil {
		r.mu.Unlock()
		return 0, w.err
	}
	if w.state == 3 { // released meanwhile
		r.mu.Unlock()
		if err := r.direct(p[:n], off); err != nil {
			return 0, err
		}
		return n, nil
	}
	copy(p[:n], w.buf[off-w.off:])
	w.got += int64(n)
	if w.got >= w.need {
		r.releaseLocked(w)
		r.startLocked()
	}
	r.mu.Unlock()
	return n, nil
}

func (r *prefetchReader) direct(p []byte, off int64) error {
	err := r.fetch(r.ctx, off, p)
	r.mu.Lock()
	r.stats.Requests++
	if err == nil {
		r.stats.Bytes += int64(len(p))
	}
	r.mu.Unlock()
	return err
}

// Stats implements DiskReader.
func (r *prefetchReader) Stats() ReadStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Close stops the reads in flight.
func (r *prefetchReader) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	return nil
}

// datastoreFile downloads a small datastore file ("[ds] dir/file"),
// at most limit bytes.
func (c *Client) datastoreFile(ctx context.Context, dc, dsPath string, limit int64) ([]byte, error) {
	ds, rel, ok := splitDatastorePath(dsPath)
	if !ok {
		return nil, fmt.Errorf("cannot parse datastore path %q", dsPath)
	}
	u := object.NewDatastoreURL(*c.soap.URL(), dc, ds, rel)
	res, err := c.soap.DownloadRequest(ctx, u, &soap.Download{Method: http.MethodGet})
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", dsPath, unwrapTLS(err))
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", dsPath, res.Status)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", dsPath, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", dsPath, limit)
	}
	return b, nil
}
