package firmware

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport/linuxudstpm"
)

// swtpm is a software TPM 2.0 (Debian's swtpm) serving its command channel
// on a unix socket, with its state in a test's temporary directory. Tests
// fail, rather than skip, when swtpm is not installed: CI installs it.
type swtpm struct {
	t        *testing.T
	stateDir string
	sock     string
	ctrl     string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	stderr *bytes.Buffer
}

// startSWTPM starts a fresh swtpm whose state lives in t.TempDir(); it is
// stopped when the test ends.
func startSWTPM(t *testing.T) *swtpm {
	t.Helper()
	if _, err := exec.LookPath("swtpm"); err != nil {
		t.Fatalf("swtpm is required by the firmware tests (Debian: apt-get install swtpm swtpm-tools; make deps does it): %v", err)
	}
	dir := t.TempDir()
	sockDir := dir
	// A unix socket path must fit in 108 bytes; long test names make long
	// temporary directories.
	if len(sockDir) > 80 {
		d, err := os.MkdirTemp("", "swtpm")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		sockDir = d
	}
	s := &swtpm{
		t:        t,
		stateDir: filepath.Join(dir, "state"),
		sock:     filepath.Join(sockDir, "tpm.sock"),
		ctrl:     filepath.Join(sockDir, "ctrl.sock"),
	}
	if err := os.Mkdir(s.stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// start launches swtpm on the state directory and waits for its socket.
func (s *swtpm) start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatal("swtpm already running")
	}
	_ = os.Remove(s.sock)
	_ = os.Remove(s.ctrl)
	cmd := exec.Command("swtpm", "socket", "--tpm2",
		"--tpmstate", "dir="+s.stateDir,
		"--server", "type=unixio,path="+s.sock,
		"--ctrl", "type=unixio,path="+s.ctrl,
		"--flags", "not-need-init,startup-clear")
	s.stderr = new(bytes.Buffer)
	cmd.Stdout = s.stderr
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting swtpm: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if fi, err := os.Stat(s.sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
			break
		}
		select {
		case <-done:
			s.t.Fatalf("swtpm exited before serving %s: %v\n%s", s.sock, cmd.ProcessState, s.stderr)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			s.t.Fatalf("swtpm did not create %s within 10s\n%s", s.sock, s.stderr)
		}
	}
	s.cmd, s.done = cmd, done
}

// stop shuts the TPM down orderly, as an OS does before a reboot, and ends
// the swtpm process.
func (s *swtpm) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	if tr, err := linuxudstpm.Open(s.sock); err == nil {
		if _, err := (tpm2.Shutdown{ShutdownType: tpm2.TPMSUClear}).Execute(tr); err != nil {
			s.t.Logf("TPM2_Shutdown: %v", err)
		}
		_ = tr.Close()
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd, s.done = nil, nil
}

// restart is a reboot: the TPM keeps its seeds and NV (the state
// directory), and starts up with cleared PCRs.
func (s *swtpm) restart() {
	s.t.Helper()
	s.stop()
	s.start()
}

// open connects to the swtpm; the connection is closed when the test ends.
func (s *swtpm) open() *TPM {
	s.t.Helper()
	tpm, err := OpenSocket(s.sock)
	if err != nil {
		s.t.Fatalf("OpenSocket: %v", err)
	}
	s.t.Cleanup(func() {
		if err := tpm.Close(); err != nil && !errors.Is(err, ErrClosed) {
			s.t.Errorf("Close: %v", err)
		}
	})
	return tpm
}
