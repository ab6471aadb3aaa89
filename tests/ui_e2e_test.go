package tests

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// uiChromium is the browser the UI tests drive (Debian's chromium
// package; make ui-deps installs it).
const uiChromium = "/usr/bin/chromium"

// TestUIEndToEnd drives the management UI in a real browser: headless
// Debian chromium, scripted with playwright-core from tests/ui. Two fresh
// appliances (coffer demo --wizard, each with its own embedded vCenter)
// are set up through the first-boot wizard, one with the mouse, one by
// keyboard alone; then the first backup is watched live on its job page,
// a file is found in the catalog and downloaded, and a viewer is shown to
// lack every control and refused a forged POST. Screenshots of every step
// land in var/ui-artifacts/.
func TestUIEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("the browser end-to-end test takes about a minute")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: run `make ui-deps` (it installs chromium and the npm packages of tests/ui)")
	}
	if _, err := os.Stat(uiChromium); err != nil {
		t.Fatalf("%s is missing: run `make ui-deps` (apt-get install chromium)", uiChromium)
	}
	scriptDir, err := filepath.Abs("ui")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(scriptDir, "node_modules", "playwright-core", "package.json")); err != nil {
		t.Fatalf("tests/ui/node_modules lacks playwright-core: run `make ui-deps` (npm ci --prefix tests/ui)")
	}
	artifacts, err := filepath.Abs(filepath.Join("..", "var", "ui-artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(artifacts); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}

	// Both appliances come up side by side (each makes its VMs' disks).
	var (
		wg           sync.WaitGroup
		mouse, keybd *uiDemo
		errs         [2]error
	)
	tmp := t.TempDir()
	wg.Add(2)
	go func() { defer wg.Done(); mouse, errs[0] = startUIDemo(filepath.Join(tmp, "mouse")) }()
	go func() { defer wg.Done(); keybd, errs[1] = startUIDemo(filepath.Join(tmp, "keyboard")) }()
	wg.Wait()
	for _, d := range []*uiDemo{mouse, keybd} {
		if d != nil {
			t.Cleanup(func() { d.stop(t) })
		}
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("appliance %s (mouse), %s (keyboard)", mouse.URL, keybd.URL)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "e2e.mjs")
	cmd.Dir = scriptDir
	cmd.Env = append(os.Environ(), "COFFER_UI_ARTIFACTS="+artifacts, "COFFER_UI_CHROMIUM="+uiChromium)
	cmd.Env = append(cmd.Env, mouse.env("COFFER_")...)
	cmd.Env = append(cmd.Env, keybd.env("COFFER2_")...)
	cmd.WaitDelay = 10 * time.Second
	out := &lineLogger{t: t, prefix: "ui: "}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	err = cmd.Run()
	out.flush()
	t.Logf("browser test took %s; screenshots in %s", time.Since(start).Round(time.Second), artifacts)
	if err != nil {
		t.Errorf("the browser test failed: %v", err)
		for _, d := range []*uiDemo{mouse, keybd} {
			t.Logf("output of the demo in %s:\n%s", d.dir, d.output())
		}
	}
}

// uiDemo is a running `coffer demo --wizard`.
type uiDemo struct {
	dir                                         string
	URL, VCURL, VCUser, VCPassword, VCSHA, Pool string

	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	out  bytes.Buffer
}

// startUIDemo starts a fresh appliance on a free port and waits for it
// to print where it serves and the vCenter to set up.
func startUIDemo(dir string) (*uiDemo, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	d := &uiDemo{dir: dir, done: make(chan struct{})}
	d.cmd = exec.Command(cofferBin, "demo", "--wizard", "--dir", dir, "--scale", "10", "--listen", "127.0.0.1:"+port)
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	d.cmd.Stderr = lockedWriter{&d.mu, &d.out}
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan struct{})
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			d.mu.Lock()
			d.out.WriteString(line + "\n")
			d.parse(line)
			d.mu.Unlock()
			if !signalled && strings.Contains(line, "Ctrl-C stops the demo") {
				signalled = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = d.cmd.Wait()
	}()
	select {
	case <-ready:
	case <-d.done:
		return d, fmt.Errorf("coffer demo --wizard in %s exited before serving:\n%s", dir, d.output())
	case <-time.After(3 * time.Minute):
		return d, fmt.Errorf("coffer demo --wizard in %s did not come up in 3 minutes:\n%s", dir, d.output())
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.URL == "" || d.VCURL == "" || d.VCUser == "" || d.VCPassword == "" || d.VCSHA == "" || d.Pool == "" {
		return d, fmt.Errorf("cannot read the appliance's and vCenter's addresses from the demo's output:\n%s", d.out.String())
	}
	return d, nil
}

// parse reads the lines demoWizard prints:
//
//	Open https://127.0.0.1:PORT to set up this appliance (certificate SHA-256 …)
//	vCenter address https://127.0.0.1:NNNN/sdk, user U, password P
//	vCenter certificate SHA-256 0F:C6:…
//	storage pool: the directory DIR stands in for the RAID pool
func (d *uiDemo) parse(line string) {
	line = strings.TrimSpace(line)
	switch {
	case strings.HasPrefix(line, "Open https://"):
		d.URL, _, _ = strings.Cut(strings.TrimPrefix(line, "Open "), " ")
	case strings.HasPrefix(line, "vCenter address "):
		for i, f := range strings.Split(strings.TrimPrefix(line, "vCenter address "), ", ") {
			switch {
			case i == 0:
				d.VCURL = f
			case strings.HasPrefix(f, "user "):
				d.VCUser = strings.TrimPrefix(f, "user ")
			case strings.HasPrefix(f, "password "):
				d.VCPassword = strings.TrimPrefix(f, "password ")
			}
		}
	case strings.HasPrefix(line, "vCenter certificate SHA-256 "):
		d.VCSHA = strings.TrimPrefix(line, "vCenter certificate SHA-256 ")
	case strings.HasPrefix(line, "storage pool: the directory "):
		d.Pool, _, _ = strings.Cut(strings.TrimPrefix(line, "storage pool: the directory "), " stands in for")
	}
}

// env is the demo's addresses for tests/ui/e2e.mjs.
func (d *uiDemo) env(prefix string) []string {
	return []string{prefix + "URL=" + d.URL, prefix + "VC_URL=" + d.VCURL, prefix + "VC_USER=" + d.VCUser,
		prefix + "VC_PASSWORD=" + d.VCPassword, prefix + "VC_SHA256=" + d.VCSHA, prefix + "POOL=" + d.Pool}
}

func (d *uiDemo) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// stop sends SIGTERM and, if the demo has not stopped 20 s later, kills it.
func (d *uiDemo) stop(t *testing.T) {
	if d.cmd.Process == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		t.Errorf("coffer demo in %s did not stop on SIGTERM in 20 s; killing it", d.dir)
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// freePort picks a port nobody listens on (the demo needs a fixed one).
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	return port, err
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// lineLogger streams a child's output into the test log, a line at a
// time (go test -v shows it as it comes).
type lineLogger struct {
	t      *testing.T
	prefix string
	mu     sync.Mutex
	buf    []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.t.Log(l.prefix + string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
}

func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.t.Log(l.prefix + string(l.buf))
		l.buf = nil
	}
}
