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
	"sync"
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

// managedDaemon is a containerd that Glovebox started, keeps running and
// stops. Once supervised, a daemon that exits is started again, after a
// back-off that grows while it keeps dying.
type managedDaemon struct {
	log     *slog.Logger
	cfg     ContainerdConfig
	socket  string
	config  string
	logFile string

	mu   sync.Mutex
	proc *daemonProc // the process running now, or the last one
	// down says why the daemon does not serve now (it exited, or cannot be
	// started again); nil while it serves.
	down error

	quit     chan struct{} // closed by endSupervision
	quitOnce sync.Once
	supDone  chan struct{} // closed when the supervisor has returned; nil if none started
}

// daemonProc is one run of the managed containerd.
type daemonProc struct {
	cmd     *exec.Cmd
	started time.Time
	done    chan struct{} // closed when the process has exited
	waitErr error         // set before done is closed
}

// Supervision's back-off: the first restart comes after restartMin, each
// one that follows a short run after twice the last delay, up to
// restartMax; a daemon that ran restartStable or longer is restarted after
// restartMin again.
const (
	restartMin    = 500 * time.Millisecond
	restartMax    = 30 * time.Second
	restartStable = time.Minute
)

// startDaemon starts the managed containerd under cfg.DataDir and returns
// once its socket accepts connections. A managed containerd that a crashed
// Glovebox left running on the same DataDir is replaced, not reused: it is
// stopped first, so that the daemon always runs this start's config and
// binary, and is a child that Close can wait for. The containers it ran are
// taken over by the new daemon from the state directory, and then reaped.
// It is not supervised until supervise is called.
func startDaemon(ctx context.Context, cfg ContainerdConfig, log *slog.Logger) (*managedDaemon, error) {
	dir := daemonDir(cfg.DataDir)
	d := &managedDaemon{
		log:     log.With("part", "daemon"),
		cfg:     cfg,
		socket:  daemonSocket(cfg.DataDir),
		config:  filepath.Join(dir, "config.toml"),
		logFile: filepath.Join(dir, "containerd.log"),
		quit:    make(chan struct{}),
	}
	if err := d.spawn(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// spawn starts one containerd process and waits until its socket accepts
// connections. On failure no process of it is left.
func (d *managedDaemon) spawn(ctx context.Context) (retErr error) {
	// Looked up at each start: a binary removed or replaced since is
	// what a restart runs, or fails on.
	binary, err := exec.LookPath(d.cfg.Binary)
	if err != nil {
		return fmt.Errorf("%w: binary: %w", ErrContainerd, err)
	}
	dir := daemonDir(d.cfg.DataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%w: %w", ErrContainerd, err)
	}
	if err := d.replaceLeftover(); err != nil {
		return err
	}
	if err := os.WriteFile(d.config, daemonConfig(d.cfg.DataDir), 0o600); err != nil {
		return fmt.Errorf("%w: write config: %w", ErrContainerd, err)
	}
	// The previous run's log is kept beside the new one: after a crash,
	// it is the one that says why.
	if err := os.Rename(d.logFile, d.logFile+".1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: keep the last log: %w", ErrContainerd, err)
	}
	out, err := os.OpenFile(d.logFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrContainerd, err)
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
		return fmt.Errorf("%w: start %s: %w", ErrContainerd, binary, err)
	}
	p := &daemonProc{cmd: cmd, started: time.Now(), done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	defer func() {
		if retErr != nil {
			p.stop(d.log)
		}
	}()

	timer := time.NewTimer(d.cfg.StartTimeout)
	defer timer.Stop()
	for {
		if c, err := net.DialTimeout("unix", d.socket, time.Second); err == nil {
			c.Close()
			break
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-p.done:
			return fmt.Errorf("%w: %s exited during start (%v): %s", ErrContainerd, binary, p.waitErr, d.logTail())
		case <-timer.C:
			return fmt.Errorf("%w: %s did not open %s within %v: %s", ErrContainerd, binary, d.socket, d.cfg.StartTimeout, d.logTail())
		case <-ctx.Done():
			return fmt.Errorf("start containerd: %w", ctx.Err())
		}
	}
	d.mu.Lock()
	d.proc = p
	d.down = nil
	d.mu.Unlock()
	d.log.Info("managed containerd started", "pid", cmd.Process.Pid, "socket", d.socket,
		"log", d.logFile, "duration", time.Since(p.started).Round(time.Millisecond))
	return nil
}

// supervise restarts the daemon whenever it exits, until endSupervision
// or until base ends. restarted is called after each restart, in the
// supervisor, with a context that endSupervision cancels.
func (d *managedDaemon) supervise(base context.Context, restarted func(ctx context.Context)) {
	d.supDone = make(chan struct{})
	ctx, cancel := context.WithCancel(base)
	go func() {
		defer cancel()
		select {
		case <-d.quit:
		case <-d.supDone:
		}
	}()
	go func() {
		defer close(d.supDone)
		d.superviseLoop(ctx, restarted)
	}()
}

func (d *managedDaemon) superviseLoop(ctx context.Context, restarted func(ctx context.Context)) {
	delay := restartMin
	for {
		d.mu.Lock()
		p := d.proc
		d.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-p.done:
		}
		ran := time.Since(p.started)
		if ran >= restartStable {
			delay = restartMin
		}
		d.setDown(fmt.Errorf("%w: the managed containerd exited (%v); restarting it", ErrContainerd, p.waitErr))
		d.log.Error("managed containerd exited: restarting it", "pid", p.cmd.Process.Pid, "status", p.waitErr,
			"ran", ran.Round(time.Millisecond), "restart_in", delay, "log_tail", d.logTail())
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			delay = min(delay*2, restartMax)
			err := d.spawn(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			// err says ErrContainerd already: said once is enough.
			why := strings.TrimPrefix(err.Error(), ErrContainerd.Error()+": ")
			d.setDown(fmt.Errorf("%w: the managed containerd exited and does not start again: %s", ErrContainerd, why))
			d.log.Error("managed containerd did not restart", "err", err, "retry_in", delay)
		}
		d.log.Warn("managed containerd restarted", "pid", d.pid())
		if restarted != nil {
			restarted(ctx)
		}
	}
}

// health returns why the daemon does not serve, or nil.
func (d *managedDaemon) health() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.down
}

func (d *managedDaemon) setDown(err error) {
	d.mu.Lock()
	d.down = err
	d.mu.Unlock()
}

// pid is the process id of the daemon's last run.
func (d *managedDaemon) pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.proc == nil {
		return 0
	}
	return d.proc.cmd.Process.Pid
}

// endSupervision stops restarting the daemon and waits for a restart under
// way to end. The daemon that runs keeps running. It is idempotent.
func (d *managedDaemon) endSupervision() {
	d.quitOnce.Do(func() { close(d.quit) })
	if d.supDone != nil {
		<-d.supDone
	}
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

// stop ends supervision, then the daemon: SIGTERM, then SIGKILL after
// daemonGrace. A daemon being stopped is not restarted.
func (d *managedDaemon) stop() error {
	d.endSupervision()
	d.mu.Lock()
	p := d.proc
	d.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.stop(d.log)
}

// stop ends the process: SIGTERM, then SIGKILL after daemonGrace.
func (p *daemonProc) stop(log *slog.Logger) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	pid := p.cmd.Process.Pid
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		log.Info("managed containerd stopped", "pid", pid)
		return nil
	case <-time.After(daemonGrace):
	}
	log.Warn("managed containerd did not stop in time: killing it", "pid", pid, "grace", daemonGrace)
	p.cmd.Process.Kill()
	select {
	case <-p.done:
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
