//go:build linux

package isolate

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
)

// waitHealth polls c.Health until ok says its result is the one awaited,
// and fails the test if that does not come within d.
func waitHealth(t *testing.T, c *Containerd, d time.Duration, what string, ok func(error) bool) error {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := c.Health(t.Context())
		if ok(err) {
			return err
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; Health = %v", d, what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// devtoolsAnswers fails the test unless b's DevTools answers /json/version.
func devtoolsAnswers(t *testing.T, b *Browser) {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", b.DevToolsSocket)
	}}}
	resp, err := hc.Get("http://localhost/json/version")
	if err != nil {
		t.Errorf("DevTools of %s: %v", b.ID, err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("DevTools of %s: %s", b.ID, resp.Status)
	}
}

// TestContainerdDaemonRestart kills the managed containerd with SIGKILL. The
// supervisor starts it again; the runtime's client talks to the new daemon;
// a browser started afterwards works; and the browser that ran through the
// outage runs on and is watched again (its exit is seen).
func TestContainerdDaemonRestart(t *testing.T) {
	needContainerd(t)
	c := newTestContainerd(t, nil, nil)
	if err := c.Health(t.Context()); err != nil {
		t.Fatalf("Health before: %v", err)
	}
	before, err := c.Start(t.Context(), Spec{TabID: "tab-before"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer before.Close()

	old := c.daemon.pid()
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, c, 60*time.Second, "a new daemon that answers", func(err error) bool {
		return err == nil && c.daemon.pid() != old
	})
	if st, ok := readProcStat(old); ok && st.state != 'Z' {
		t.Errorf("the killed daemon (pid %d) still runs", old)
	}

	after, err := c.Start(t.Context(), Spec{TabID: "tab-after"})
	if err != nil {
		t.Fatalf("Start after the restart: %v", err)
	}
	devtoolsAnswers(t, after)

	// The browser of the dead daemon's time: its shim outlived the daemon,
	// and the new one took it over.
	select {
	case <-before.Done():
		t.Fatal("the browser started before the daemon died was given up for dead")
	default:
	}
	devtoolsAnswers(t, before)
	// Its exit is seen: the runtime waits for its task again.
	killInit(t, c, before)
	for _, b := range []*Browser{before, after} {
		if err := b.Close(); err != nil {
			t.Errorf("Close %s: %v", b.ID, err)
		}
	}
	checkNothingLeft(t, c, cgroupChildren())
}

// TestContainerdDaemonCannotRestart: a daemon that dies and whose binary is
// gone cannot be started again. Health says so, naming the binary, until
// the binary is back; a tab closed meanwhile, whose teardown containerd
// could not do, is reaped after the restart; and Close ends the
// supervision without starting another daemon.
func TestContainerdDaemonCannotRestart(t *testing.T) {
	needContainerd(t)
	real, err := exec.LookPath("containerd")
	if err != nil {
		t.Fatal(err)
	}
	var bin string
	c := newTestContainerd(t, func(cfg *ContainerdConfig) {
		bin = filepath.Join(cfg.DataDir, "containerd-bin")
		if err := os.Symlink(real, bin); err != nil {
			t.Fatal(err)
		}
		cfg.Binary = bin
	}, nil)
	lost, err := c.Start(t.Context(), Spec{TabID: "tab-lost"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	lostPids := containerPids(lost.ID)
	if len(lostPids) == 0 {
		t.Fatalf("no processes in %s", lost.ID)
	}

	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(c.daemon.pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = waitHealth(t, c, 60*time.Second, "Health to say the daemon does not start", func(err error) bool {
		return err != nil && strings.Contains(err.Error(), "does not start again")
	})
	t.Logf("Health: %v", err)
	if !errors.Is(err, ErrContainerd) || !strings.Contains(err.Error(), bin) {
		t.Errorf("Health = %v, want ErrContainerd naming %s", err, bin)
	}
	// The tab ends while containerd is away: its container cannot be
	// removed now.
	if err := lost.Close(); err == nil {
		t.Error("Close with containerd away succeeded")
	}

	if err := os.Symlink(real, bin); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, c, 90*time.Second, "the daemon to start again", func(err error) bool { return err == nil })
	// The restart reaps what was left: the container and its processes.
	ctx := namespaces.WithNamespace(t.Context(), testNamespace)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctrs, err := c.client.Containers(ctx)
		if err == nil && len(ctrs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("containers not reaped after the restart: %d, %v", len(ctrs), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, pid := range lostPids {
		if st, ok := readProcStat(pid); ok && st.state != 'Z' {
			t.Errorf("process %d of the lost container still alive", pid)
		}
	}

	// Close stops the supervision before the daemon: the daemon it stops
	// stays stopped.
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case <-c.daemon.supDone:
	default:
		t.Error("supervision still running after Close")
	}
	checkNoDaemon(t, c.cfg.DataDir)
}

// TestContainerdCloseDuringBackoff: Close while the supervisor waits to
// restart a dead daemon returns without starting one.
func TestContainerdCloseDuringBackoff(t *testing.T) {
	needContainerd(t)
	cfg := testContainerdConfig(t)
	c, err := NewContainerd(t.Context(), cfg, nil, testLogger())
	if err != nil {
		t.Fatalf("NewContainerd: %v", err)
	}
	if err := syscall.Kill(c.daemon.pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, c, 30*time.Second, "Health to fail", func(err error) bool { return err != nil })
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		t.Logf("Close: %v", err)
	case <-ctx.Done():
		t.Fatal("Close did not return")
	}
	checkNoDaemon(t, cfg.DataDir)
}
