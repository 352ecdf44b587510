package isolate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is the runtime that runs each browser as a child process of
// Glovebox, with Chromium's own sandbox but no container. It is for
// development only.
type Process struct {
	cfg ProcessConfig
	log *slog.Logger
	// cred is the user Chromium runs as, or nil to keep Glovebox's own.
	cred *syscall.Credential

	browsers browserSet[struct{}]
}

// NewProcess returns a process runtime. When Glovebox runs as root, the
// browsers run as cfg.User. It logs a warning, because this runtime gives no
// container isolation.
func NewProcess(cfg ProcessConfig, log *slog.Logger) (*Process, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !supported {
		return nil, errors.New("isolate: the process runtime needs Linux")
	}
	if cfg.TempDir == "" {
		cfg.TempDir = os.TempDir()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "isolate", "runtime", "process")
	p := &Process{cfg: cfg, log: log}
	if os.Geteuid() == 0 {
		cred, err := lookupCredential(cfg.User)
		if err != nil {
			return nil, fmt.Errorf("isolate process config: user: %w", err)
		}
		p.cred = cred
	}
	log.Warn("the process runtime gives NO container isolation: every browser runs on this host with only Chromium's own sandbox; use it for development only",
		"chromium", cfg.Chromium, "user", p.userName())
	return p, nil
}

// lookupCredential resolves name (a user name or a numeric uid) to an
// unprivileged uid and gid with no supplementary groups.
func lookupCredential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		var uerr error
		if u, uerr = user.LookupId(name); uerr != nil {
			return nil, fmt.Errorf("look up %q: %w", name, err)
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %q: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %q: gid %q: %w", name, u.Gid, err)
	}
	if uid == 0 {
		return nil, fmt.Errorf("user %q is root: Chromium's sandbox does not run as root", name)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

func (p *Process) userName() string {
	if p.cred == nil {
		return strconv.Itoa(os.Geteuid())
	}
	return p.cfg.User
}

// Name returns the runtime's name, "process".
func (p *Process) Name() string { return "process" }

// Running returns how many browsers this runtime started that are alive.
func (p *Process) Running() int { return p.browsers.running() }

// Close closes every browser this runtime started. Start fails after it.
func (p *Process) Close() error {
	bs := p.browsers.close()
	var errs []error
	for _, b := range bs {
		errs = append(errs, b.Close())
	}
	return errors.Join(errs...)
}

// Start runs a browser for spec and returns once its DevTools answers. ctx
// bounds the start only: the browser lives until Close.
func (p *Process) Start(ctx context.Context, spec Spec) (_ *Browser, retErr error) {
	spec, err := spec.normalize()
	if err != nil {
		return nil, err
	}
	if p.browsers.isClosed() {
		return nil, ErrClosed
	}
	start := time.Now()

	dir, err := os.MkdirTemp(p.cfg.TempDir, "glovebox-")
	if err != nil {
		return nil, fmt.Errorf("create profile: %w", err)
	}
	pb := &procBrowser{dir: dir, uid: os.Geteuid(), outputDone: make(chan struct{})}
	if p.cred != nil {
		pb.uid = int(p.cred.Uid)
	}
	b := newBrowser(filepath.Base(dir), p.Name(), nil)
	log := p.log.With("tab", spec.TabID, "browser", b.ID)
	pb.log = log
	b.stop = func() error {
		err := pb.stop(b)
		p.browsers.remove(b)
		return err
	}
	defer func() {
		if retErr != nil {
			if err := b.Close(); err != nil {
				log.Warn("clean up after a failed start", "err", err)
			}
		}
	}()

	if p.cred != nil {
		if err := os.Chown(dir, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			return nil, fmt.Errorf("create profile: %w", err)
		}
	}

	// Files that cross (downloads, uploads): the browser's user's.
	files := filepath.Join(dir, "files")
	if err := os.Mkdir(files, 0o700); err != nil {
		return nil, fmt.Errorf("create files directory: %w", err)
	}
	if p.cred != nil {
		if err := os.Chown(files, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			return nil, fmt.Errorf("create files directory: %w", err)
		}
	}
	b.FilesDir, b.FilesPath = files, files

	// A fresh environment: nothing of Glovebox's own (proxy settings,
	// secrets) reaches the browser. HOME is the profile, so whatever
	// Chromium writes outside --user-data-dir is removed with it.
	env := []string{"HOME=" + dir, "PATH=/usr/local/bin:/usr/bin:/bin"}
	args := chromiumArgs(dir, spec, p.cfg.Flags)
	if p.cfg.PulseAudio != "" {
		// The sound device first: Chromium connects to it when its
		// audio service starts, and would fall back to none.
		socket, err := pb.startSound(ctx, p.cfg.PulseAudio, p.cred, p.cfg.StartTimeout)
		if err != nil {
			return nil, err
		}
		b.AudioPath = filepath.Join(dir, audioFIFOName)
		env = append(env, "PULSE_SERVER=unix:"+socket)
		args = withSound(args)
	}
	cmd := exec.Command(p.cfg.Chromium, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = sysProcAttr(p.cred)

	// Give Chromium the pipe as an *os.File, so that Wait does not wait for
	// every descendant holding it (crashpad outlives the browser) and Done
	// closes when the browser process itself exits.
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start chromium: %w", err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, fmt.Errorf("start chromium %s: %w", p.cfg.Chromium, err)
	}
	pb.mu.Lock()
	pb.cmd = cmd
	pb.mu.Unlock()
	go pb.readOutput(pr)
	go func() {
		err := cmd.Wait()
		pb.mu.Lock()
		pb.waitErr = err
		closing := pb.closing
		pb.mu.Unlock()
		if !closing {
			log.Warn("browser exited", "pid", cmd.Process.Pid, "err", err)
		}
		b.exited()
	}()

	port, path, err := pb.waitDevTools(ctx, b.Done(), p.cfg.StartTimeout)
	if err != nil {
		return nil, err
	}
	b.DevToolsURL = "ws://127.0.0.1:" + port + path

	if !p.browsers.add(b, struct{}{}) {
		return nil, ErrClosed
	}
	log.Info("browser started", "pid", cmd.Process.Pid,
		"user", p.userName(), "duration", time.Since(start).Round(time.Millisecond))
	return b, nil
}

// procBrowser is the process runtime's state of one browser.
type procBrowser struct {
	dir string
	uid int // the uid Chromium runs as
	log *slog.Logger

	mu      sync.Mutex
	cmd     *exec.Cmd
	waitErr error
	closing bool
	tail    tailBuffer

	outputDone chan struct{} // closed when the output reader has read EOF

	// pulse is the browser's sound device, nil without one; pulseDone is
	// closed once it is reaped.
	pulse     *exec.Cmd
	pulseDone chan struct{}
}

// startSound starts the browser's sound device (sound.go) as cred and
// returns its socket once its FIFO is there.
func (pb *procBrowser) startSound(ctx context.Context, bin string, cred *syscall.Credential, timeout time.Duration) (string, error) {
	run := filepath.Join(pb.dir, pulseDirName)
	if err := os.Mkdir(run, 0o700); err != nil {
		return "", fmt.Errorf("start sound device: %w", err)
	}
	if cred != nil {
		if err := os.Chown(run, int(cred.Uid), int(cred.Gid)); err != nil {
			return "", fmt.Errorf("start sound device: %w", err)
		}
	}
	socket := filepath.Join(run, pulseSocketName)
	args := pulseArgs(bin, socket, filepath.Join(pb.dir, audioFIFOName))
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = pb.dir
	cmd.Env = pulseEnv(pb.dir, run)
	cmd.SysProcAttr = sysProcAttr(cred)
	pr, pw, err := os.Pipe()
	if err != nil {
		return "", fmt.Errorf("start sound device: %w", err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		return "", fmt.Errorf("start sound device %s: %w", bin, err)
	}
	done := make(chan struct{})
	pb.mu.Lock()
	pb.pulse, pb.pulseDone = cmd, done
	pb.mu.Unlock()
	go func() {
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := "pulseaudio: " + sc.Text()
			pb.mu.Lock()
			pb.tail.WriteLine(line)
			pb.mu.Unlock()
			pb.log.Debug("pulseaudio output", "line", sc.Text())
		}
	}()
	go func() {
		err := cmd.Wait()
		pb.mu.Lock()
		closing := pb.closing
		pb.mu.Unlock()
		if !closing {
			pb.log.Warn("sound device exited", "pid", cmd.Process.Pid, "err", err)
		}
		close(done)
	}()
	if err := waitFIFO(ctx, filepath.Join(pb.dir, audioFIFOName), done, timeout); err != nil {
		return "", fmt.Errorf("%w: %s", err, pb.stderrTail())
	}
	return socket, nil
}

// waitDevTools polls the profile's DevToolsActivePort, which Chromium writes
// once DevTools listens, until it is complete, the browser exits, ctx ends or
// timeout passes.
func (pb *procBrowser) waitDevTools(ctx context.Context, exited <-chan struct{}, timeout time.Duration) (port, path string, err error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	file := filepath.Join(pb.dir, "DevToolsActivePort")
	for {
		if port, path, ok := readDevToolsActivePort(file); ok {
			return port, path, nil
		}
		select {
		case <-tick.C:
		case <-exited:
			lastWords(pb.outputDone) // may still be in the pipe
			pb.mu.Lock()
			werr := pb.waitErr
			pb.mu.Unlock()
			return "", "", fmt.Errorf("start chromium: exited during start (%v): %s", werr, pb.stderrTail())
		case <-timer.C:
			return "", "", fmt.Errorf("start chromium: DevTools did not open within %v: %s", timeout, pb.stderrTail())
		case <-ctx.Done():
			return "", "", fmt.Errorf("start chromium: %w", ctx.Err())
		}
	}
}

// readDevToolsActivePort parses the file: the port, then the browser's path.
func readDevToolsActivePort(file string) (port, path string, ok bool) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", "", false
	}
	port, path, _ = strings.Cut(string(data), "\n")
	path = strings.TrimSpace(path)
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 || !strings.HasPrefix(path, "/devtools/browser/") {
		return "", "", false
	}
	return port, path, true
}

func (pb *procBrowser) stderrTail() string {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	return pb.tail.summary()
}

// readOutput keeps the tail of Chromium's output for start errors and logs
// each line at debug level.
func (pb *procBrowser) readOutput(r io.ReadCloser) {
	defer close(pb.outputDone)
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	for sc.Scan() {
		line := sc.Text()
		pb.mu.Lock()
		pb.tail.WriteLine(line)
		pb.mu.Unlock()
		pb.log.Debug("chromium output", "line", line)
	}
}

// stop kills every process of the browser, reaps it and removes its profile.
func (pb *procBrowser) stop(b *Browser) error {
	pb.mu.Lock()
	pb.closing = true
	cmd := pb.cmd
	pb.mu.Unlock()

	var errs []error
	pgid, killGroup := 0, false
	if cmd != nil && cmd.Process != nil {
		pgid = cmd.Process.Pid
		// Once the browser is reaped and its group empty, the pgid may
		// belong to someone else: then only the uid-checked scan runs.
		select {
		case <-b.Done():
		default:
			killGroup = true
		}
	}
	if err := killTree(pgid, killGroup, pb.dir, pb.uid); err != nil {
		errs = append(errs, fmt.Errorf("kill browser %s: %w", b.ID, err))
	}
	if cmd != nil {
		select {
		case <-b.Done():
		case <-time.After(5 * time.Second):
			errs = append(errs, fmt.Errorf("kill browser %s: pid %d did not exit", b.ID, pgid))
		}
	}
	if err := pb.stopSound(); err != nil {
		errs = append(errs, fmt.Errorf("kill browser %s: %w", b.ID, err))
	}
	if err := os.RemoveAll(pb.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove profile: %w", err))
	}
	if len(errs) == 0 && cmd != nil {
		pb.log.Info("browser closed")
	}
	return errors.Join(errs...)
}

// stopSound kills the sound device, if any, and waits for it to be reaped.
// killTree has usually killed it already (its command line names the
// profile): this is for the group it leads and the reaping.
func (pb *procBrowser) stopSound() error {
	pb.mu.Lock()
	cmd, done := pb.pulse, pb.pulseDone
	pb.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill sound device %d: %w", cmd.Process.Pid, err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("sound device pid %d did not exit", cmd.Process.Pid)
	}
}
