package vcsim

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/guest"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// guestPut uploads data through the transfer URL of InitiateFileTransferToGuest.
func guestPut(t *testing.T, ctx context.Context, fm *guest.FileManager, sc *soap.Client, auth types.BaseGuestAuthentication, p string, data []byte, attrs types.BaseGuestFileAttributes, overwrite bool) error {
	t.Helper()
	raw, err := fm.InitiateFileTransferToGuest(ctx, auth, p, attrs, int64(len(data)), overwrite)
	if err != nil {
		return err
	}
	u := simTransferURL(t, sc, raw)
	param := soap.DefaultUpload
	param.ContentLength = int64(len(data))
	return sc.Upload(ctx, bytes.NewReader(data), u, &param)
}

// simTransferURL replaces the "*" host of a transfer URL with the simulator's. (In
// vCenter mode govmomi's FileManager.TransferURL would also pin the ESXi host's
// simulated thumbprint for that address, breaking the session's TLS.)
func simTransferURL(t *testing.T, sc *soap.Client, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if u.Hostname() != "*" {
		t.Fatalf("transfer URL host %q, want *", u.Host)
	}
	u.Host = sc.URL().Host
	return u
}

func TestGuestFileSystem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, c := startSim(t, Options{GuestFSLimit: 3 * mib})
	v, err := s.CreateVM(ctx, VMSpec{Name: "files01", GuestID: "otherLinux64Guest"})
	if err != nil {
		t.Fatal(err)
	}
	off, err := s.CreateVM(ctx, VMSpec{Name: "files-off", GuestID: "otherLinux64Guest", PowerState: "poweredOff"})
	if err != nil {
		t.Fatal(err)
	}
	win, err := s.CreateVM(ctx, VMSpec{Name: "files-win", GuestID: "windows2019srv_64Guest"})
	if err != nil {
		t.Fatal(err)
	}
	fmOf := func(ref types.ManagedObjectReference) *guest.FileManager {
		fm, err := guest.NewOperationsManager(c.Client, ref).FileManager(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return fm
	}
	fm := fmOf(v.Ref)
	good := &types.NamePasswordAuthentication{Username: DefaultGuestUsername, Password: DefaultGuestPassword}
	bad := &types.NamePasswordAuthentication{Username: DefaultGuestUsername, Password: "nope"}

	// Directories: parents only when asked, existing ones are FileAlreadyExists.
	wantFault(t, fm.MakeDirectory(ctx, good, "/srv/app/conf", false), &types.FileNotFound{})
	if err := fm.MakeDirectory(ctx, good, "/srv/app/conf", true); err != nil {
		t.Fatal(err)
	}
	wantFault(t, fm.MakeDirectory(ctx, good, "/srv/app", true), &types.FileAlreadyExists{})
	wantFault(t, fm.MakeDirectory(ctx, bad, "/srv/x", true), &types.InvalidGuestLogin{})
	wantFault(t, fmOf(off.Ref).MakeDirectory(ctx, good, "/srv", true), &types.InvalidPowerState{})
	notools, err := s.CreateVM(ctx, VMSpec{Name: "files-notools"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = fmOf(notools.Ref).ListFiles(ctx, good, "/", 0, 0, "")
	wantFault(t, err, &types.GuestOperationsUnavailable{})

	// Upload with attributes, read back through the helpers and a download.
	data := bytes.Repeat([]byte("coffer guest file\n"), 50000)
	mt := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	uid, gid := int32(1000), int32(100)
	attrs := &types.GuestPosixFileAttributes{GuestFileAttributes: types.GuestFileAttributes{ModificationTime: &mt}, OwnerId: &uid, GroupId: &gid, Permissions: 0o640}
	if err := guestPut(t, ctx, fm, c.Client.Client, good, "/srv/app/conf/app.conf", data, attrs, false); err != nil {
		t.Fatal(err)
	}
	if got, ok := s.GuestFile(v.UUID, "/srv/app/conf/app.conf"); !ok || !bytes.Equal(got, data) {
		t.Fatalf("stored %d bytes (%v), want %d", len(got), ok, len(data))
	}
	st, ok := s.GuestFileStat(v.UUID, "/srv/app/conf/app.conf")
	if !ok || st.Mode != 0o640 || st.UID != 1000 || st.GID != 100 || !st.MTime.Equal(mt) || st.Size != int64(len(data)) {
		t.Fatalf("stat %+v", st)
	}
	want := []string{"/srv/", "/srv/app/", "/srv/app/conf/", "/srv/app/conf/app.conf"}
	if got := s.GuestFiles(v.UUID); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("files %q", got)
	}
	info, err := fm.InitiateFileTransferFromGuest(ctx, good, "/srv/app/conf/app.conf")
	if err != nil || info.Size != int64(len(data)) {
		t.Fatalf("download info %+v %v", info, err)
	}
	du := simTransferURL(t, c.Client.Client, info.Url)
	rc, _, err := c.Client.Download(ctx, du, &soap.DefaultDownload)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("downloaded %d bytes: %v", len(got), err)
	}
	// The URL served once.
	if rc, _, err := c.Client.Download(ctx, du, &soap.DefaultDownload); err == nil {
		rc.Close()
		t.Fatal("a download URL served twice")
	}

	// overwrite=false on an existing file; overwrite=true replaces it.
	wantFault(t, guestPut(t, ctx, fm, c.Client.Client, good, "/srv/app/conf/app.conf", []byte("x"), nil, false), &types.FileAlreadyExists{})
	if err := guestPut(t, ctx, fm, c.Client.Client, good, "/srv/app/conf/app.conf", []byte("new"), nil, true); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GuestFile(v.UUID, "/srv/app/conf/app.conf"); string(got) != "new" {
		t.Fatalf("overwritten: %q", got)
	}
	wantFault(t, guestPut(t, ctx, fm, c.Client.Client, good, "/srv/app", []byte("x"), nil, true), &types.NotAFile{})
	wantFault(t, guestPut(t, ctx, fm, c.Client.Client, good, "/missing/f", []byte("x"), nil, true), &types.FileNotFound{})
	wantFault(t, guestPut(t, ctx, fm, c.Client.Client, bad, "/srv/f", []byte("x"), nil, true), &types.InvalidGuestLogin{})
	wantFault(t, guestPut(t, ctx, fmOf(off.Ref), c.Client.Client, good, "/f", []byte("x"), nil, true), &types.InvalidPowerState{})

	// A body shorter than announced is refused and stores nothing.
	raw, err := fm.InitiateFileTransferToGuest(ctx, good, "/srv/short", nil, 10, false)
	if err != nil {
		t.Fatal(err)
	}
	su := simTransferURL(t, c.Client.Client, raw)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, su.String(), strings.NewReader("12345"))
	res, err := c.Client.Client.Client.Do(req)
	if err == nil {
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			t.Fatal("short upload accepted")
		}
	}
	if _, ok := s.GuestFile(v.UUID, "/srv/short"); ok {
		t.Fatal("short upload stored")
	}

	// The size limit: 3 MiB per VM, reserved at initiation.
	if _, err := fm.InitiateFileTransferToGuest(ctx, good, "/srv/big", nil, 4*mib, false); err == nil {
		t.Fatal("4 MiB upload into a 3 MiB guest accepted")
	} else {
		wantFault(t, err, &types.NoDiskSpace{})
	}
	if err := guestPut(t, ctx, fm, c.Client.Client, good, "/srv/two", make([]byte, 2*mib), nil, false); err != nil {
		t.Fatal(err)
	}
	_, err = fm.InitiateFileTransferToGuest(ctx, good, "/srv/three", nil, 2*mib, false)
	wantFault(t, err, &types.NoDiskSpace{})

	// Listing, paging and patterns; a file lists itself.
	if err := guestPut(t, ctx, fm, c.Client.Client, good, "/srv/app/b.txt", []byte("b"), nil, false); err != nil {
		t.Fatal(err)
	}
	ls, err := fm.ListFiles(ctx, good, "/srv/app", 0, 1, "")
	if err != nil || len(ls.Files) != 1 || ls.Files[0].Path != "b.txt" || ls.Remaining != 1 {
		t.Fatalf("list page 1: %+v %v", ls, err)
	}
	ls, err = fm.ListFiles(ctx, good, "/srv/app", 1, 1, "")
	if err != nil || len(ls.Files) != 1 || ls.Files[0].Path != "conf" || ls.Files[0].Type != "directory" || ls.Remaining != 0 {
		t.Fatalf("list page 2: %+v %v", ls, err)
	}
	ls, err = fm.ListFiles(ctx, good, "/srv", 0, 0, `^t`)
	if err != nil || len(ls.Files) != 1 || ls.Files[0].Path != "two" || ls.Files[0].Size != 2*mib {
		t.Fatalf("list pattern: %+v %v", ls, err)
	}
	ls, err = fm.ListFiles(ctx, good, "/srv/app/b.txt", 0, 0, "")
	if err != nil || len(ls.Files) != 1 || ls.Files[0].Type != "file" {
		t.Fatalf("list file: %+v %v", ls, err)
	}
	_, err = fm.ListFiles(ctx, good, "/nope", 0, 0, "")
	wantFault(t, err, &types.FileNotFound{})
	_, err = fm.ListFiles(ctx, bad, "/srv", 0, 0, "")
	wantFault(t, err, &types.InvalidGuestLogin{})

	// Deleting frees space.
	wantFault(t, fm.DeleteFile(ctx, good, "/srv/app"), &types.NotAFile{})
	if err := fm.DeleteFile(ctx, good, "/srv/two"); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.GuestFile(v.UUID, "/srv/two"); ok {
		t.Fatal("deleted file still there")
	}
	if _, err := fm.InitiateFileTransferToGuest(ctx, good, "/srv/three", nil, 2*mib, false); err != nil {
		t.Fatalf("after delete: %v", err)
	}
	// Unsupported methods stay NotSupported.
	wantFault(t, fm.DeleteDirectory(ctx, good, "/srv", true), &types.NotSupported{})

	// Windows guests: backslash paths, either separator accepted.
	wfm := fmOf(win.Ref)
	if err := wfm.MakeDirectory(ctx, good, `C:\Restore\Docs`, true); err != nil {
		t.Fatal(err)
	}
	ro := true
	wattrs := &types.GuestWindowsFileAttributes{GuestFileAttributes: types.GuestFileAttributes{ModificationTime: &mt}, ReadOnly: &ro}
	if err := guestPut(t, ctx, wfm, c.Client.Client, good, `C:/Restore/Docs/report.txt`, []byte("win"), wattrs, false); err != nil {
		t.Fatal(err)
	}
	wantFault(t, guestPut(t, ctx, wfm, c.Client.Client, good, `C:\Restore\x.txt`, []byte("x"), attrs, false), &types.InvalidArgument{})
	if got, ok := s.GuestFile(win.UUID, `C:\Restore\Docs\report.txt`); !ok || string(got) != "win" {
		t.Fatalf("windows file %q %v", got, ok)
	}
	if st, ok := s.GuestFileStat(win.UUID, `c:\restore\..\Restore\Docs\report.txt`); !ok || !st.ReadOnly {
		t.Fatalf("windows stat %+v %v", st, ok)
	}
	if got := s.GuestFiles(win.UUID); strings.Join(got, ",") != `C:\Restore\,C:\Restore\Docs\,C:\Restore\Docs\report.txt` {
		t.Fatalf("windows files %q", got)
	}
}
