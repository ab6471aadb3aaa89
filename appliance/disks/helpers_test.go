package disks

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRunner records commands; missing names commands LookPath does not
// find; hook answers them.
type fakeRunner struct {
	mu      sync.Mutex
	calls   []string
	missing map[string]bool
	hook    func(name string, args []string) ([]byte, error)
}

func (f *fakeRunner) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	f.mu.Lock()
	f.calls = append(f.calls, strings.Join(append([]string{name}, args...), " "))
	hook := f.hook
	f.mu.Unlock()
	if hook != nil {
		return hook(name, args)
	}
	return nil, nil
}

func (f *fakeRunner) LookPath(name string) (string, error) {
	if f.missing[name] {
		return "", exec.ErrNotFound
	}
	return "/usr/sbin/" + name, nil
}

func (f *fakeRunner) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// commandsOf are the recorded commands except smartctl's.
func (f *fakeRunner) commandsOf(names ...string) []string {
	var out []string
	for _, c := range f.commands() {
		for _, n := range names {
			if strings.HasPrefix(c, n+" ") {
				out = append(out, c)
			}
		}
	}
	return out
}

type mountCall struct {
	source, target, fstype string
	flags                  uintptr
}

// fake is a machine in a temporary directory.
type fake struct {
	t      *testing.T
	root   string
	h      *Host
	run    *fakeRunner
	mu     sync.Mutex
	mounts []mountCall
}

func newFake(t *testing.T) *fake {
	t.Helper()
	root := t.TempDir()
	f := &fake{t: t, root: root, run: &fakeRunner{missing: map[string]bool{"smartctl": true}}}
	for _, d := range []string{"sys/block", "sys/class/block", "dev", "proc/self"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f.write("proc/self/mounts", "proc /proc proc rw 0 0\n")
	f.h = &Host{
		SysRoot:      filepath.Join(root, "sys"),
		DevRoot:      filepath.Join(root, "dev"),
		ProcRoot:     filepath.Join(root, "proc"),
		Run:          f.run,
		MountPoint:   filepath.Join(root, "pool"),
		WaitTimeout:  time.Second,
		PollInterval: 5 * time.Millisecond,
		Mount: func(source, target, fstype string, flags uintptr, _ string) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.mounts = append(f.mounts, mountCall{source, target, fstype, flags})
			return nil
		},
	}
	return f
}

func (f *fake) path(rel string) string { return filepath.Join(f.root, rel) }

func (f *fake) dev(name string) string { return filepath.Join(f.root, "dev", name) }

func (f *fake) write(rel, content string) {
	f.t.Helper()
	p := f.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// disk makes /sys/block/<name> (size, rotational, removable and attrs,
// paths relative to the disk's directory) and an empty /dev/<name> image
// of size bytes.
func (f *fake) disk(name string, size int64, attrs map[string]string) {
	f.t.Helper()
	f.write("sys/block/"+name+"/size", fmt.Sprintf("%d\n", size/512))
	f.write("sys/block/"+name+"/queue/rotational", "0\n")
	f.write("sys/block/"+name+"/removable", "0\n")
	f.write("sys/block/"+name+"/ro", "0\n")
	if err := os.MkdirAll(f.path("sys/block/"+name+"/holders"), 0o755); err != nil {
		f.t.Fatal(err)
	}
	for k, v := range attrs {
		f.write("sys/block/"+name+"/"+k, v)
	}
	f.image(name, size)
}

// image makes an empty (sparse) /dev/<name> of size bytes.
func (f *fake) image(name string, size int64) {
	f.t.Helper()
	fh, err := os.Create(f.dev(name))
	if err != nil {
		f.t.Fatal(err)
	}
	defer fh.Close()
	if err := fh.Truncate(size); err != nil {
		f.t.Fatal(err)
	}
}

// part makes partition part (number n) of disk, with a GPT name when
// partname is set and an image in /dev.
func (f *fake) part(disk, part string, n int, size int64, partname string) {
	f.t.Helper()
	base := "sys/block/" + disk + "/" + part + "/"
	f.write(base+"partition", fmt.Sprintf("%d\n", n))
	f.write(base+"size", fmt.Sprintf("%d\n", size/512))
	ue := fmt.Sprintf("MAJOR=8\nMINOR=%d\nDEVNAME=%s\nDEVTYPE=partition\nPARTN=%d\n", n, part, n)
	if partname != "" {
		ue += "PARTNAME=" + partname + "\n"
	}
	f.write(base+"uevent", ue)
	f.write("sys/class/block/"+part+"/uevent", ue)
	if err := os.MkdirAll(f.path(base+"holders"), 0o755); err != nil {
		f.t.Fatal(err)
	}
	f.image(part, size)
}

// at writes data into /dev/<name> at off.
func (f *fake) at(name string, off int64, data []byte) {
	f.t.Helper()
	fh, err := os.OpenFile(f.dev(name), os.O_WRONLY, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.WriteAt(data, off); err != nil {
		f.t.Fatal(err)
	}
}

// holder makes dev (a disk or "disk/part") held by holder.
func (f *fake) holder(dev, holder string) {
	f.t.Helper()
	if err := os.MkdirAll(f.path("sys/block/"+dev+"/holders/"+holder), 0o755); err != nil {
		f.t.Fatal(err)
	}
}

// mdNode makes /dev/md/<alias> → ../<kernel> and /dev/<kernel>.
func (f *fake) mdNode(alias, kernel string, size int64) {
	f.t.Helper()
	if err := os.MkdirAll(f.dev("md"), 0o755); err != nil {
		f.t.Fatal(err)
	}
	f.image(kernel, size)
	if err := os.Symlink("../"+kernel, f.dev("md/"+alias)); err != nil && !os.IsExist(err) {
		f.t.Fatal(err)
	}
}

// extSuper is an ext4 superblock's magic and label, to be written at 1024.
func extSuper(label string) []byte {
	b := make([]byte, 1024)
	binary.LittleEndian.PutUint16(b[56:], 0xEF53)
	copy(b[120:], label)
	return b
}

// md12 is an md 1.2 superblock (written at 4096).
func md12(name string, uuid byte, raidDisks int) []byte {
	b := make([]byte, 256)
	le := binary.LittleEndian
	le.PutUint32(b[0:], mdMagic)
	le.PutUint32(b[4:], 1)
	for i := 16; i < 32; i++ {
		b[i] = uuid
	}
	copy(b[32:64], name)
	le.PutUint32(b[72:], 6)
	le.PutUint32(b[92:], uint32(raidDisks))
	le.PutUint64(b[200:], 42)
	return b
}
