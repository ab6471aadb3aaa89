// Package vspheretest sets up what tests of the VMware side need: the
// extended simulator, a fresh store and an engine logged in with the
// simulator's certificate pinned. Test support only.
package vspheretest

import (
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/appliance/vsphere/vcsim"
	"coffer.dev/coffer/store"
	"coffer.dev/coffer/store/crypt"
	"coffer.dev/coffer/store/point"
)

// Env is a simulator, a store and a logged-in engine, all closed by the
// test's cleanup.
type Env struct {
	Sim    *vcsim.Sim
	Store  *store.Store
	Client *vsphere.Client
	Engine *vsphere.Engine
	Dir    string // the test's directory holding the store
}

// New starts the simulator with o, makes a store and connects.
func New(t testing.TB, o vcsim.Options) *Env {
	t.Helper()
	ctx := context.Background()
	sim, err := vcsim.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	dir := t.TempDir()
	master, err := crypt.NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Init(filepath.Join(dir, "store"), master, store.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, filepath.Join(dir, "store"), master, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := Connect(t, sim)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	e := &vsphere.Engine{Client: c, Store: st, ApplianceID: "test-appliance", Log: log, RetryDelay: 10 * time.Millisecond}
	return &Env{Sim: sim, Store: st, Client: c, Engine: e, Dir: dir}
}

// Connect logs in to sim with its certificate pinned.
func Connect(t testing.TB, sim *vcsim.Sim) *vsphere.Client {
	t.Helper()
	user, pass := sim.Credentials()
	c, err := vsphere.Connect(context.Background(), vsphere.Endpoint{
		URL: sim.URL().String(), Username: user, Password: pass,
		Trust: vsphere.Trust{Thumbprints: map[string]string{sim.URL().Hostname(): sim.SHA256Thumbprint()}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Logout(context.Background()) })
	return c
}

// PointHash is the SHA-256 of one disk of a point, read through ReadAt.
func PointHash(t testing.TB, st *store.Store, id point.ID, disk string) [32]byte {
	t.Helper()
	r, err := st.OpenDisk(id, disk)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, r.Size())); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}
