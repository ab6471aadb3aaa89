package vsphere_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"coffer.dev/coffer/appliance/vsphere"
	"coffer.dev/coffer/appliance/vsphere/vcsim"
)

func TestGuestFilesUpload(t *testing.T) {
	v := newEnv(t, vcsim.Options{})
	ctx := context.Background()
	vm, err := v.sim.CreateVM(ctx, vcsim.VMSpec{Name: "files01", GuestID: "otherLinux64Guest"})
	if err != nil {
		t.Fatal(err)
	}
	gu, gp := v.sim.GuestCredentials()
	creds := vsphere.GuestCredentials{Username: gu, Password: gp}
	gf := &vsphere.GuestFiles{Client: v.c}

	// A directory tree, then a 5 MiB file streamed into it.
	for _, d := range []string{"/restore/data/sub", "/restore/data", "/restore/empty"} {
		if err := gf.MakeDir(ctx, vm.Ref, creds, d); err != nil {
			t.Fatalf("mkdir %s: %v", d, err)
		}
	}
	big := make([]byte, 5*mib)
	r := rand.New(rand.NewPCG(5, 5))
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	mt := time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC)
	attrs := vsphere.GuestFileAttrs{Mode: 0o600, UID: 1000, GID: 1000, MTime: mt}
	// HalfReader makes small reads: the body is streamed from r.
	if err := gf.Upload(ctx, vm.Ref, creds, "/restore/data/big.bin", iotest.HalfReader(bytes.NewReader(big)), int64(len(big)), attrs, false); err != nil {
		t.Fatal(err)
	}
	if err := gf.Upload(ctx, vm.Ref, creds, "/restore/data/sub/small.txt", strings.NewReader("hello"), 5, vsphere.GuestFileAttrs{}, false); err != nil {
		t.Fatal(err)
	}
	if err := gf.Upload(ctx, vm.Ref, creds, "/restore/data/sub/empty", strings.NewReader(""), 0, vsphere.GuestFileAttrs{}, false); err != nil {
		t.Fatal(err)
	}
	if got, ok := v.sim.GuestFile(vm.UUID, "/restore/data/big.bin"); !ok || !bytes.Equal(got, big) {
		t.Fatalf("big file: %d bytes, %v", len(got), ok)
	}
	if st, ok := v.sim.GuestFileStat(vm.UUID, "/restore/data/big.bin"); !ok || st.Mode != 0o600 || st.UID != 1000 || !st.MTime.Equal(mt) {
		t.Fatalf("big file attributes: %+v", st)
	}
	if got, ok := v.sim.GuestFile(vm.UUID, "/restore/data/sub/small.txt"); !ok || string(got) != "hello" {
		t.Fatalf("small file: %q %v", got, ok)
	}
	want := "/restore/,/restore/data/,/restore/data/big.bin,/restore/data/sub/,/restore/data/sub/empty,/restore/data/sub/small.txt,/restore/empty/"
	if got := strings.Join(v.sim.GuestFiles(vm.UUID), ","); got != want {
		t.Fatalf("guest files %s", got)
	}

	// Listing and Stat.
	ls, err := gf.List(ctx, vm.Ref, creds, "/restore/data")
	if err != nil || len(ls) != 2 || ls[0].Name != "big.bin" || ls[0].Size != 5*mib || !ls[1].IsDir() {
		t.Fatalf("list: %+v %v", ls, err)
	}
	if st, err := gf.Stat(ctx, vm.Ref, creds, "/restore/data/sub"); err != nil || !st.IsDir() {
		t.Fatalf("stat dir: %+v %v", st, err)
	}
	if _, err := gf.Stat(ctx, vm.Ref, creds, "/restore/nothing"); !errors.Is(err, vsphere.ErrGuestFileNotFound) {
		t.Fatalf("stat missing: %v", err)
	}

	// Clear errors.
	err = gf.Upload(ctx, vm.Ref, creds, "/restore/data/sub/small.txt", strings.NewReader("again"), 5, vsphere.GuestFileAttrs{}, false)
	if !errors.Is(err, vsphere.ErrGuestFileExists) || !strings.Contains(err.Error(), "/restore/data/sub/small.txt") {
		t.Fatalf("existing file: %v", err)
	}
	if err := gf.Upload(ctx, vm.Ref, creds, "/restore/data/sub/small.txt", strings.NewReader("again"), 5, vsphere.GuestFileAttrs{}, true); err != nil {
		t.Fatalf("overwrite: %v", err)
	}
	if err := gf.MakeDir(ctx, vm.Ref, creds, "/restore/data/sub/small.txt"); !errors.Is(err, vsphere.ErrGuestFileExists) {
		t.Fatalf("mkdir over a file: %v", err)
	}
	bad := vsphere.GuestCredentials{Username: gu, Password: "wrong"}
	if err := gf.Upload(ctx, vm.Ref, bad, "/restore/x", strings.NewReader("x"), 1, vsphere.GuestFileAttrs{}, false); !errors.Is(err, vsphere.ErrGuestLogin) {
		t.Fatalf("wrong password: %v", err)
	}
	// A source shorter than announced fails and stores nothing.
	if err := gf.Upload(ctx, vm.Ref, creds, "/restore/short", strings.NewReader("abc"), 10, vsphere.GuestFileAttrs{}, false); err == nil {
		t.Fatal("short source accepted")
	}
	if _, ok := v.sim.GuestFile(vm.UUID, "/restore/short"); ok {
		t.Fatal("short upload stored")
	}
	// A cancelled context stops the transfer.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := gf.Upload(cctx, vm.Ref, creds, "/restore/cancelled", bytes.NewReader(big), int64(len(big)), vsphere.GuestFileAttrs{}, false); err == nil {
		t.Fatal("cancelled upload succeeded")
	}

	off, err := v.sim.CreateVM(ctx, vcsim.VMSpec{Name: "files-off", GuestID: "otherLinux64Guest", PowerState: "poweredOff"})
	if err != nil {
		t.Fatal(err)
	}
	err = gf.MakeDir(ctx, off.Ref, creds, "/restore")
	if !errors.Is(err, vsphere.ErrVMNotRunning) || !strings.Contains(err.Error(), "VM files-off is powered off: files can only be put back into a running VM") {
		t.Fatalf("powered off: %v", err)
	}
	notools, err := v.sim.CreateVM(ctx, vcsim.VMSpec{Name: "files-notools"})
	if err != nil {
		t.Fatal(err)
	}
	if err := gf.Upload(ctx, notools.Ref, creds, "/x", strings.NewReader("x"), 1, vsphere.GuestFileAttrs{}, false); !errors.Is(err, vsphere.ErrGuestToolsNotRunning) {
		t.Fatalf("no tools: %v", err)
	}

	// A Windows guest: backslash paths.
	win, err := v.sim.CreateVM(ctx, vcsim.VMSpec{Name: "files-win", GuestID: "windows2019srv_64Guest"})
	if err != nil {
		t.Fatal(err)
	}
	if err := gf.MakeDir(ctx, win.Ref, creds, `C:\Restore\Docs`); err != nil {
		t.Fatal(err)
	}
	if err := gf.Upload(ctx, win.Ref, creds, `C:\Restore\Docs\a.txt`, strings.NewReader("windows"), 7, vsphere.GuestFileAttrs{Mode: 0o644, MTime: mt}, false); err != nil {
		t.Fatal(err)
	}
	if got, ok := v.sim.GuestFile(win.UUID, `C:\Restore\Docs\a.txt`); !ok || string(got) != "windows" {
		t.Fatalf("windows file %q %v", got, ok)
	}
	if st, err := gf.Stat(ctx, win.Ref, creds, `C:\Restore`); err != nil || !st.IsDir() {
		t.Fatalf("windows stat: %+v %v", st, err)
	}
}

func TestGuestSplit(t *testing.T) {
	for _, tt := range []struct {
		in        string
		windows   bool
		dir, name string
	}{
		{"/", false, "/", ""},
		{"/a", false, "/", "a"},
		{"/a/b/", false, "/a", "b"},
		{`C:\`, true, `C:\`, ""},
		{`C:\a`, true, `C:\`, "a"},
		{`C:/a/b`, true, `C:\a`, "b"},
	} {
		if d, n := vsphere.GuestSplit(tt.in, tt.windows); d != tt.dir || n != tt.name {
			t.Errorf("GuestSplit(%q) = %q, %q; want %q, %q", tt.in, d, n, tt.dir, tt.name)
		}
	}
}
