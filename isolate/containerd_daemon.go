//go:build linux

package isolate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// daemonGrace is how long the managed containerd gets to stop after SIGTERM
// before it is killed.
const daemonGrace = 10 * time.Second

// disabledPlugins are the containerd plugins the managed daemon does without:
// Kubernetes' CRI (the slowest to start, and it would write to /etc/cni),
// /opt/containerd, snapshotters other than overlayfs and native, and
// tracing. (The legacy v1 runtime stays: containerd 1.6's tasks service
// does not load without it.)
var disabledPlugins = []string{
	"io.containerd.grpc.v1.cri",
	"io.containerd.internal.v1.opt",
	"io.containerd.snapshotter.v1.aufs",
	"io.containerd.snapshotter.v1.btrfs",
	"io.containerd.snapshotter.v1.devmapper",
	"io.containerd.snapshotter.v1.zfs",
	"io.containerd.tracing.processor.v1.otlp",
	"io.containerd.internal.v1.tracing",
}

// daemonConfig is the managed containerd's config.toml (version 2, which
// containerd 1.6 and later read).
func daemonConfig(dataDir string) []byte {
	dir := daemonDir(dataDir)
	sock := daemonSocket(dataDir)
	q := strconv.Quote
	plugins := make([]string, len(disabledPlugins))
	for i, p := range disabledPlugins {
		plugins[i] = q(p)
	}
	return fmt.Appendf(nil, `# Written by Glovebox at each start of its managed containerd; edits are lost.
version = 2
root = %s
state = %s
disabled_plugins = [%s]

[grpc]
  address = %s

[ttrpc]
  address = %s

[debug]
  level = "info"
`, q(filepath.Join(dir, "root")), q(filepath.Join(dir, "state")), strings.Join(plugins, ", "), q(sock), q(sock+".ttrpc"))
}

// managedDaemon is a containerd that Glovebox started and stops.
type managedDaemon struct {
	log     *slog.Logger
	socket  string
	config  string
	logFile string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	waitErr error
}

// startDaemon starts the managed containerd under cfg.DataDir and returns
// once its socket accepts connections. A managed containerd that a crashed
// Glovebox left running on the same DataDir is replaced, not reused: it is
// stopped first, so that the daemon always runs this start's config and
// binary, and is a child that Close can wait for. The containers it ran are
// taken over by the new daemon from the state directory, and then reaped.
func startDaemon(ctx context.Context, cfg ContainerdConfig, log *slog.Logger) (_ *managedDaemon, retErr error) {
	dir := daemonDir(cfg.DataDir)
	d := &managedDaemon{
		log:     log.With("part", "daemon"),
		socket:  daemonSocket(cfg.DataDir),
		config:  filepath.Join(dir, "config.toml"),
		logFile: filepath.Join(dir, "containerd.log"),
		done:    make(chan struct{}),
	}
	binary, err := exec.LookPath(cfg.Binary)
	if err != nil {
		return nil, fmt.Errorf("%w: binary: %w", ErrContainerd, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrContainerd, err)
	}
	if err := d.replaceLeftover(); err != nil {
		return nil, err
	}
	if err := os.WriteFile(d.config, daemonConfig(cfg.DataDir), 0o600); err != nil {
		return nil, fmt.Errorf("%w: write config: %w", ErrContainerd, err)
	}
	out, err := os.OpenFile(d.logFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrContainerd, err)
	}
	defer out.Close()

	// The daemon has a process group of its own: a Ctrl-C meant for
	// Glovebox must not stop it before Glovebox has removed its
	// containers. It outlives a crash of Glovebox; the next start
	// replaces it.
	cmd := exec.Command(binary, "--config", d.config)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: start %s: %w", ErrContainerd, binary, err)
	}
	d.cmd = cmd
	go func() {
		d.waitErr = cmd.Wait()
		close(d.done)
	}()
	defer func() {
		if retErr != nil {
			d.stop()
		}
	}()

	t0 := time.Now()
	timer := time.NewTimer(cfg.StartTimeout)
	defer timer.Stop()
	for {
		if c, err := net.DialTimeout("unix", d.socket, time.Second); err == nil {
			c.Close()
			break
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-d.done:
			return nil, fmt.Errorf("%w: %s exited during start (%v): %s", ErrContainerd, binary, d.waitErr, d.logTail())
		case <-timer.C:
			return nil, fmt.Errorf("%w: %s did not open %s within %v: %s", ErrContainerd, binary, d.socket, cfg.StartTimeout, d.logTail())
		case <-ctx.Done():
			return nil, fmt.Errorf("start containerd: %w", ctx.Err())
		}
	}
	d.log.Info("managed containerd started", "pid", cmd.Process.Pid, "socket", d.socket,
		"log", d.logFile, "duration", time.Since(t0).Round(time.Millisecond))
	return d, nil
}

// replaceLeftover stops a managed containerd left running on this DataDir
// (found by its config path) and removes a stale socket. It fails if another
// program answers on the socket.
func (d *managedDaemon) replaceLeftover() error {
	for _, pid := range procsWithArgs("--config", d.config) {
		d.log.Warn("stopping the managed containerd a previous Glovebox left running", "pid", pid)
		if err := stopPid(pid, daemonGrace); err != nil {
			return fmt.Errorf("%w: stop the containerd left running (pid %d): %w", ErrContainerd, pid, err)
		}
	}
	if c, err := net.DialTimeout("unix", d.socket, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("%w: %s is served by a program Glovebox did not start; stop it or choose another data_dir", ErrContainerd, d.socket)
	}
	for _, f := range []string{d.socket, d.socket + ".ttrpc"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: remove stale socket: %w", ErrContainerd, err)
		}
	}
	return nil
}

// stop ends the daemon: SIGTERM, then SIGKILL after daemonGrace.
func (d *managedDaemon) stop() error {
	if d.cmd == nil {
		return nil
	}
	select {
	case <-d.done:
		return nil
	default:
	}
	pid := d.cmd.Process.Pid
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		d.log.Info("managed containerd stopped", "pid", pid)
		return nil
	case <-time.After(daemonGrace):
	}
	d.log.Warn("managed containerd did not stop in time: killing it", "pid", pid, "grace", daemonGrace)
	d.cmd.Process.Kill()
	select {
	case <-d.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("stop containerd: pid %d did not exit", pid)
	}
}

// logTail returns the end of the daemon's log.
func (d *managedDaemon) logTail() string {
	f, err := os.Open(d.logFile)
	if err != nil {
		return "no log"
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > tailMax {
		f.Seek(fi.Size()-tailMax, io.SeekStart)
	}
	data, _ := io.ReadAll(f)
	s := strings.TrimSpace(string(data))
	if s == "" {
		return "no log"
	}
	return "log ends with: " + s
}

// procsWithArgs lists the live processes whose command line has the
// arguments args, one after the other.
func procsWithArgs(args ...string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	want := "\x00" + strings.Join(args, "\x00") + "\x00"
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if st, ok := readProcStat(pid); !ok || st.state == 'Z' || st.state == 'X' {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains("\x00"+string(data), want) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// stopPid sends SIGTERM to pid and SIGKILL after grace, and returns once it
// is gone. It need not be a child.
func stopPid(pid int, grace time.Duration) error {
	alive := func() bool {
		st, ok := readProcStat(pid)
		return ok && st.state != 'Z' && st.state != 'X'
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return err
	}
	deadline := time.Now().Add(grace)
	for alive() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !alive() {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	for range 250 {
		if !alive() {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("pid %d still alive after SIGKILL", pid)
}
