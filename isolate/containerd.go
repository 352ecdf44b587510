package isolate

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	clog "github.com/containerd/log"
	"github.com/sirupsen/logrus"
	lslog "github.com/sirupsen/logrus/hooks/slog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/glovebox/glovebox/isolate/netns"
)

// Errors of the containerd runtime that callers branch on. Returned errors
// wrap them.
var (
	// ErrContainerd reports that containerd could not be reached or started.
	ErrContainerd = errors.New("isolate: containerd unavailable")
	// ErrImage reports that the configured image could not be found,
	// pulled or unpacked.
	ErrImage = errors.New("isolate: container image unavailable")
)

// Networker joins a container's network namespace to the host.
// *netns.Network is the real one.
type Networker interface {
	// Attach joins the network namespace at netnsPath (/proc/PID/ns/net of
	// a created, not yet started, task) to the host with one veth pair
	// and firewall rules, and returns the link. id is the container's id.
	Attach(ctx context.Context, id string, netnsPath string) (*netns.Link, error)
	// EgressPort is the egress proxy's port on the host end of each link.
	EgressPort() int
}

// runcRuntime is the containerd runtime (shim) of every container.
const runcRuntime = "io.containerd.runc.v2"

// Containerd is the runtime that runs each browser in a container of its
// own, created for one tab and never reused: own PID, IPC, UTS, mount and
// network namespaces, no capabilities, seccomp, a read-only root, tmpfs for
// what Chromium writes, and cgroup limits. Chromium's own sandbox stays on
// inside it.
type Containerd struct {
	cfg    ContainerdConfig
	nw     Networker
	log    *slog.Logger
	daemon *managedDaemon // nil unless Address is "managed"
	client *client.Client
	clog   *clog.Entry // the containerd client's logs, into log

	// The root of every container: the template directory ("host"), or
	// the image's snapshot.
	rootfs string
	binds  []string
	image  client.Image
	ipv6   bool

	// base is the runtime's lifetime, in its containerd namespace: what
	// outlives one call (a task's wait, a teardown) runs under it.
	base       context.Context
	cancelBase context.CancelFunc
	// starting is cancelled by Close, to end the starts under way.
	starting     context.Context
	cancelStarts context.CancelFunc

	browsers browserSet[*ctrBrowser]
	// mu orders the starts with Close: a start counts in starts only
	// if it began before Close closed browsers.
	mu     sync.Mutex
	starts sync.WaitGroup
	ids    map[string]bool // containers started or starting: Reap spares them

	closeOnce sync.Once
	closeErr  error
}

// NewContainerd returns the containerd runtime. It starts the managed
// containerd (or connects to cfg.Address), removes what a crashed Glovebox
// left in the namespace, and prepares the root file system: the template of
// "host" mode, or the image, pulled if it is not there. nw may be nil (a nil
// interface, not a nil *netns.Network): the containers then have a network
// namespace with loopback only, and no way out. ctx bounds the setup only.
func NewContainerd(ctx context.Context, cfg ContainerdConfig, nw Networker, log *slog.Logger) (_ *Containerd, retErr error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if runtime.GOOS != "linux" {
		return nil, errors.New("isolate: the containerd runtime needs Linux")
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("isolate: the containerd runtime needs root, to run containers and set up their network")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "isolate", "runtime", "containerd")
	c := &Containerd{
		cfg: cfg,
		nw:  nw,
		log: log,
		ids: make(map[string]bool),
	}
	c.clog = clientLogger(log)
	ctx = clog.WithLogger(ctx, c.clog)
	c.base, c.cancelBase = context.WithCancel(namespaces.WithNamespace(context.WithoutCancel(ctx), cfg.Namespace))
	c.starting, c.cancelStarts = context.WithCancel(c.base)
	defer func() {
		if retErr != nil {
			c.Close()
		}
	}()
	ctx = namespaces.WithNamespace(ctx, cfg.Namespace)
	t0 := time.Now()

	if cfg.RootFS == RootFSHost {
		if _, err := os.Stat(cfg.Chromium); err != nil {
			return nil, fmt.Errorf("isolate containerd config: chromium: rootfs \"host\" runs the host's Chromium: %w", err)
		}
	}
	if err := os.MkdirAll(c.containersDir(), 0o700); err != nil {
		return nil, fmt.Errorf("isolate containerd: data_dir: %w", err)
	}
	if err := c.writePolicy(); err != nil {
		return nil, fmt.Errorf("isolate containerd: data_dir: %w", err)
	}
	address := strings.TrimPrefix(cfg.Address, "unix://")
	if cfg.Address == AddressManaged {
		d, err := startDaemon(ctx, cfg, log)
		if err != nil {
			return nil, err
		}
		c.daemon = d
		address = d.socket
	} else if conn, err := net.DialTimeout("unix", address, 2*time.Second); err != nil {
		// gRPC would retry until the deadline: say at once.
		return nil, fmt.Errorf("%w: address: %w", ErrContainerd, err)
	} else {
		conn.Close()
	}
	cl, err := client.New(address, client.WithDefaultNamespace(cfg.Namespace), client.WithDefaultRuntime(runcRuntime))
	if err != nil {
		return nil, fmt.Errorf("%w: connect to %s: %w", ErrContainerd, address, err)
	}
	c.client = cl
	if c.daemon != nil {
		c.daemon.supervise(c.base, c.daemonRestarted)
	}
	vctx, cancel := context.WithTimeout(ctx, min(cfg.StartTimeout, 10*time.Second))
	version, err := cl.Version(vctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("isolate containerd: %w", ctx.Err())
		}
		return nil, fmt.Errorf("%w: no answer on %s: %w", ErrContainerd, address, err)
	}

	if err := c.Reap(ctx); err != nil {
		return nil, err
	}
	if cfg.RootFS == RootFSHost {
		c.rootfs = filepath.Join(cfg.DataDir, "rootfs")
		if c.binds, err = buildTemplate(c.rootfs, cfg.UID, cfg.GID); err != nil {
			return nil, fmt.Errorf("isolate containerd: rootfs template: %w", err)
		}
	} else if c.image, err = ensureImage(ctx, cl, cfg.RootFS, log); err != nil {
		return nil, err
	}
	_, err = os.Stat("/proc/sys/net/ipv6")
	c.ipv6 = err == nil

	log.Info("containerd runtime ready", "containerd", version.Version, "address", address,
		"managed", c.daemon != nil, "namespace", cfg.Namespace, "rootfs", cfg.RootFS,
		"network", nw != nil, "duration", time.Since(t0).Round(time.Millisecond))
	if nw == nil {
		log.Warn("containers have no network: browsers can open no page beyond their own loopback")
	}
	return c, nil
}

// clientLogger sends the containerd client's logs (logrus, taken from the
// context) to log, instead of logrus's standard logger on stderr.
func clientLogger(log *slog.Logger) *clog.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.SetLevel(logrus.DebugLevel) // log's handler decides
	l.AddHook(lslog.NewHook(log.With("part", "containerd-client"), nil))
	return logrus.NewEntry(l)
}

// containersDir holds one directory per container: its /etc/hosts and the
// pipes of its output.
func (c *Containerd) containersDir() string { return filepath.Join(c.cfg.DataDir, "containers") }

// devtoolsSocket is where the forwarder of the container whose directory
// is dir listens.
func devtoolsSocket(dir string) string { return filepath.Join(dir, "devtools.sock") }

// policyFile is the browsers' managed policy file, bound read-only into
// every container.
func (c *Containerd) policyFile() string { return filepath.Join(c.cfg.DataDir, "chromium-policy.json") }

// writePolicy writes the policy file, replacing it whole: containers bind
// it when they are created, so none sees it half written.
func (c *Containerd) writePolicy() error {
	data, err := policyJSON(c.cfg.TrustedCAs)
	if err != nil {
		return err
	}
	tmp := c.policyFile() + ".new"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	// WriteFile keeps the mode of a file left by a crash, and the umask
	// trims a new one: the browser's user must read it.
	if err := os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, c.policyFile())
}

// Name returns the runtime's name, "containerd".
func (c *Containerd) Name() string { return "containerd" }

// Running returns how many browsers this runtime started that are alive.
func (c *Containerd) Running() int { return c.browsers.running() }

// Close ends the starts under way, closes every browser this runtime
// started, removes their cgroup parent and stops the managed containerd.
// Start fails after it. It is idempotent.
func (c *Containerd) Close() error {
	c.closeOnce.Do(func() {
		// First: a daemon that dies while Glovebox stops stays down.
		if c.daemon != nil {
			c.daemon.endSupervision()
		}
		c.mu.Lock()
		bs := c.browsers.close()
		c.mu.Unlock()
		// A start that ends now fails with ErrClosed and cleans up
		// after itself: bs is all there will be.
		c.cancelStarts()
		c.starts.Wait()

		errs := make([]error, len(bs))
		var wg sync.WaitGroup
		for i, b := range bs {
			wg.Go(func() { errs[i] = b.Close() })
		}
		wg.Wait()
		if err := removeCgroupParent(); err != nil {
			errs = append(errs, err)
		}
		if c.client != nil {
			if err := c.client.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close containerd client: %w", err))
			}
		}
		if c.daemon != nil {
			errs = append(errs, c.daemon.stop())
		}
		c.cancelBase()
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// healthTimeout bounds Health's call to containerd.
const healthTimeout = 2 * time.Second

// Health reports whether containerd serves: the managed daemon is running
// (not exited, nor failing to start again), and containerd answers a
// Version call within healthTimeout. It returns an ErrContainerd error
// saying why not.
func (c *Containerd) Health(ctx context.Context) error {
	if c.daemon != nil {
		if err := c.daemon.health(); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	if _, err := c.client.Version(ctx); err != nil {
		return fmt.Errorf("%w: no answer: %w", ErrContainerd, err)
	}
	return nil
}

// daemonRestarted is called once the managed containerd serves again after
// it died. The restarted daemon takes over the containers whose shims
// outlived it (their browsers run on, and their waits are made again); the
// client is told to connect at once rather than after gRPC's back-off; and
// what could not be torn down while the daemon was away (tabs that ended
// meanwhile) is reaped.
func (c *Containerd) daemonRestarted(ctx context.Context) {
	if conn, ok := c.client.Conn().(interface{ ResetConnectBackoff() }); ok {
		conn.ResetConnectBackoff()
	}
	ctx, cancel := context.WithTimeout(clog.WithLogger(ctx, c.clog), 30*time.Second)
	defer cancel()
	// Calls fail at once until gRPC has connected again: wait for it.
	if _, err := c.client.IsServing(ctx); err != nil {
		c.log.Warn("containerd restarted but does not serve", "err", err)
		return
	}
	if err := c.Reap(ctx); err != nil {
		c.log.Warn("reap after the managed containerd's restart", "err", err)
	}
}

// newContainerID returns "glovebox-" and 12 random hex digits.
func newContainerID() string {
	var b [6]byte
	rand.Read(b[:])
	return "glovebox-" + hex.EncodeToString(b[:])
}

// Start creates a new container for spec, starts Chromium in it and returns
// once its DevTools answers through a forwarder on a unix socket of the
// container's directory (Browser.DevToolsSocket). ctx
// bounds the start only: the browser lives until Close.
func (c *Containerd) Start(ctx context.Context, spec Spec) (_ *Browser, retErr error) {
	spec, err := spec.normalize()
	if err != nil {
		return nil, err
	}
	id := newContainerID()
	c.mu.Lock()
	if c.browsers.isClosed() {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.starts.Add(1)
	c.ids[id] = true
	c.mu.Unlock()
	defer c.starts.Done()

	// Close ends a start under way.
	ctx, cancel := context.WithCancel(namespaces.WithNamespace(clog.WithLogger(ctx, c.clog), c.cfg.Namespace))
	defer cancel()
	defer context.AfterFunc(c.starting, cancel)()
	t0 := time.Now()

	log := c.log.With("tab", spec.TabID, "container", id)
	cb := &ctrBrowser{c: c, id: id, dir: filepath.Join(c.containersDir(), id), log: log, outDone: make(chan struct{})}
	cb.out.log = log
	b := newBrowser(id, c.Name(), nil)
	b.stop = func() error { return cb.stop(b) }
	b.oom = func() bool { return oomKills(id) > 0 }
	defer func() {
		if retErr == nil {
			return
		}
		// A deadline that passed on containerd's side first comes back
		// as containerd's error: wait for ctx to see it too.
		if d, ok := ctx.Deadline(); ok && time.Until(d) < 50*time.Millisecond {
			select {
			case <-ctx.Done():
			case <-time.After(time.Until(d) + 10*time.Millisecond):
			}
		}
		if c.starting.Err() != nil {
			retErr = fmt.Errorf("start container %s: %w (%v)", id, ErrClosed, retErr)
		} else if ctx.Err() != nil && !errors.Is(retErr, ctx.Err()) {
			retErr = fmt.Errorf("%w (%v)", ctx.Err(), retErr)
		}
		// Close undoes whatever of the steps was done (cb.undo).
		if err := b.Close(); err != nil {
			log.Warn("clean up after a failed start", "err", err)
		}
	}()

	// containerd's own steps run to their end even when ctx ends, and ctx
	// is checked between them: a create cut short leaves containerd
	// cleaning up a half-started shim on its own, after Close returned.
	opCtx, opCancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.StartTimeout+10*time.Second)
	defer opCancel()
	st := &ctrStart{ctrBrowser: cb, b: b, spec: spec, ctx: ctx, op: opCtx}
	for _, step := range []func() error{
		st.prepareDir,
		st.createContainer,
		st.createTask,
		st.forwardDevTools,
		st.attachNetwork,
		st.startTask,
		st.openDevTools,
	} {
		if err := step(); err != nil {
			return nil, err
		}
	}

	if !c.browsers.add(b, cb) {
		return nil, ErrClosed
	}
	log.Info("browser started", "pid", cb.task.Pid(), "addr", b.Addr,
		"duration", time.Since(t0).Round(time.Millisecond))
	return b, nil
}

// ctrStart is one Start under way. Its steps run in order, and each
// registers on cb.undo how to take back what it made: Browser.Close runs
// that list in reverse, after a failed start as after a full one.
type ctrStart struct {
	*ctrBrowser
	b    *Browser
	spec Spec
	// ctx ends the start: the caller's, or Close. op bounds containerd's
	// own calls, which ctx does not cut short (see Start).
	ctx, op context.Context
}

// hostsPath is the container's /etc/hosts, bound into it.
func (cb *ctrBrowser) hostsPath() string { return filepath.Join(cb.dir, "hosts") }

// prepareDir makes the container's directory and its /etc/hosts, which
// names no egress proxy until the network step knows its address.
func (st *ctrStart) prepareDir() error {
	st.undo.add(func(context.Context) error {
		if err := os.RemoveAll(st.dir); err != nil {
			return fmt.Errorf("remove %s: %w", st.dir, err)
		}
		return nil
	})
	if err := os.MkdirAll(st.dir, 0o700); err != nil {
		return fmt.Errorf("start container %s: %w", st.id, err)
	}
	if err := os.WriteFile(st.hostsPath(), hostsFile(nil), 0o644); err != nil {
		return fmt.Errorf("start container %s: %w", st.id, err)
	}
	return nil
}

// createContainer creates the container, and its snapshot when the root is
// an image.
func (st *ctrStart) createContainer() error {
	c := st.c
	// The cgroups come with the task, and go once the container has.
	st.undo.add(func(context.Context) error { return removeCgroups(st.id) })
	s := ctrSpec{id: st.id, cfg: c.cfg, spec: st.spec, rootfs: c.rootfs, binds: c.binds, hosts: st.hostsPath(), policy: c.policyFile(), ipv6: c.ipv6}
	if c.cfg.PulseAudio != "" {
		// The sound device's FIFO is made in a directory of the
		// browser's user inside the container's own (0700, Glovebox's):
		// the host reads it there, no one else.
		s.sound = filepath.Join(st.dir, "sound")
		if err := os.Mkdir(s.sound, 0o700); err != nil {
			return fmt.Errorf("start container %s: %w", st.id, err)
		}
		if err := os.Chown(s.sound, c.cfg.UID, c.cfg.GID); err != nil {
			return fmt.Errorf("start container %s: %w", st.id, err)
		}
		st.b.AudioPath = filepath.Join(s.sound, audioFIFOName)
	}
	// Files that cross (downloads, uploads), in a directory of the
	// browser's user inside the container's own, as the sound's.
	s.files = filepath.Join(st.dir, "files")
	if err := os.Mkdir(s.files, 0o700); err != nil {
		return fmt.Errorf("start container %s: %w", st.id, err)
	}
	if err := os.Chown(s.files, c.cfg.UID, c.cfg.GID); err != nil {
		return fmt.Errorf("start container %s: %w", st.id, err)
	}
	st.b.FilesDir, st.b.FilesPath = s.files, containerFiles
	if c.nw != nil {
		s.egressPort = c.nw.EgressPort()
	}
	opts := []client.NewContainerOpts{client.WithContainerLabels(containerLabels(st.spec.TabID))}
	if c.image != nil {
		opts = append(opts, client.WithImage(c.image), client.WithNewSnapshot(st.id, c.image))
	}
	opts = append(opts, client.WithNewSpec(specOpts(s)...))
	container, err := c.client.NewContainer(st.op, st.id, opts...)
	if err != nil {
		return fmt.Errorf("create container %s: %w", st.id, err)
	}
	st.container = container
	st.undo.add(func(ctx context.Context) error {
		var opts []client.DeleteOpts
		if c.image != nil {
			opts = append(opts, client.WithSnapshotCleanup)
		}
		if err := container.Delete(ctx, opts...); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete container %s: %w", st.id, err)
		}
		return nil
	})
	if err := st.ctx.Err(); err != nil {
		return fmt.Errorf("start container %s: %w", st.id, err)
	}
	return nil
}

// createTask creates the container's task, Chromium's process not yet
// started, with its output in the logs, and watches for its exit.
func (st *ctrStart) createTask() error {
	creator := cio.NewCreator(cio.WithStreams(nil, st.out.writer("stdout"), st.out.writer("stderr")),
		cio.WithFIFODir(filepath.Join(st.dir, "fifo")))
	task, err := st.container.NewTask(st.op, creator)
	if err != nil {
		return fmt.Errorf("create task %s: %w", st.id, err)
	}
	st.task = task
	// The task's cgroup is made: its parent's is too.
	if err := weighCgroupParent(st.c.cfg.CPUWeight); err != nil {
		st.log.Warn("the browsers may take CPU from Glovebox", "err", err)
	}
	// The link that attachNetwork makes lives in the task's network
	// namespace: it goes after the task's processes, so that what they
	// had open through the egress proxy ends while it is still up.
	st.undo.add(func(context.Context) error {
		if st.link == nil {
			return nil
		}
		return st.link.Close()
	})
	st.undo.add(func(ctx context.Context) error {
		// Killing the container's init ends every process in its PID
		// namespace, crashpad's included.
		var err error
		if _, derr := task.Delete(ctx, client.WithProcessKill); derr != nil && !errdefs.IsNotFound(derr) {
			err = fmt.Errorf("delete task %s: %w", st.id, derr)
		}
		if st.waitCancel != nil {
			st.waitCancel()
		}
		return err
	})
	go func() {
		task.IO().Wait()
		close(st.outDone)
	}()
	// Wait before Start, so that no exit is missed.
	waitCtx, waitCancel := context.WithCancel(st.c.base)
	st.waitCancel = waitCancel
	exitC, err := task.Wait(waitCtx)
	if err != nil {
		return fmt.Errorf("wait for task %s: %w", st.id, err)
	}
	go func() {
		exit := st.wait(waitCtx, exitC)
		st.mu.Lock()
		st.exit = exit
		closing := st.closing
		st.mu.Unlock()
		if !closing {
			st.log.Warn("browser exited", "status", exit.ExitCode(), "err", exit.Error())
		}
		st.b.exited()
	}()
	return nil
}

// netnsPath is the created task's network namespace.
func (st *ctrStart) netnsPath() string { return fmt.Sprintf("/proc/%d/ns/net", st.task.Pid()) }

// forwardDevTools opens the unix socket that reaches DevTools inside the
// task's network namespace.
func (st *ctrStart) forwardDevTools() error {
	fwd, err := newDevtoolsForwarder(st.c.base, st.netnsPath(), devtoolsSocket(st.dir), st.log)
	if err != nil {
		return fmt.Errorf("start container %s: %w", st.id, err)
	}
	st.fwd = fwd
	st.undo.add(func(context.Context) error {
		fwd.Close()
		return nil
	})
	return nil
}

// attachNetwork joins the task's network namespace to the host, when the
// runtime has a Networker, and names the egress proxy in /etc/hosts. Its
// link is closed by createTask's undo.
func (st *ctrStart) attachNetwork() error {
	if st.c.nw == nil {
		return nil
	}
	link, err := st.c.nw.Attach(st.ctx, st.id, st.netnsPath())
	if err != nil {
		return fmt.Errorf("attach network to %s: %w", st.id, err)
	}
	st.link = link
	st.b.Addr = link.ContainerIP
	// The proxy's address goes into the file Chromium resolves
	// glovebox-egress from; the bind mount follows the inode.
	if err := rewriteFile(st.hostsPath(), hostsFile(link.HostIP)); err != nil {
		return fmt.Errorf("start container %s: %w", st.id, err)
	}
	return nil
}

// startTask starts Chromium, unless the start has ended meanwhile.
func (st *ctrStart) startTask() error {
	if err := st.ctx.Err(); err != nil {
		return fmt.Errorf("start container %s: %w", st.id, err)
	}
	if err := st.task.Start(st.op); err != nil {
		return fmt.Errorf("start task %s: %w", st.id, err)
	}
	if err := st.ctx.Err(); err != nil {
		return fmt.Errorf("start container %s: %w", st.id, err)
	}
	return nil
}

// openDevTools waits for DevTools to answer through the forwarder and
// gives the browser its address.
func (st *ctrStart) openDevTools() error {
	path, err := st.waitDevTools(st.ctx, st.b.Done(), st.c.cfg.StartTimeout)
	if err != nil {
		return err
	}
	st.b.DevToolsURL = "ws://localhost" + path
	st.b.DevToolsSocket = st.fwd.Socket()
	return nil
}

// rewriteFile replaces the contents of name in place, keeping its inode,
// which a bind mount refers to.
func rewriteFile(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	return errors.Join(err, f.Close())
}

// forget drops a closed browser from the runtime's books.
func (c *Containerd) forget(b *Browser, id string) {
	c.browsers.remove(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.ids, id)
}

// ctrBrowser is the containerd runtime's state of one browser.
type ctrBrowser struct {
	c   *Containerd
	id  string
	dir string // the container's directory under DataDir
	log *slog.Logger

	// Set during Start, before the browser is handed out or closed.
	undo       undoList
	container  client.Container
	task       client.Task
	waitCancel context.CancelFunc
	fwd        *devtoolsForwarder
	link       *netns.Link

	out     ctrOutput
	outDone chan struct{} // closed when the task's output has ended

	mu      sync.Mutex
	exit    client.ExitStatus
	closing bool
}

// wait returns the task's exit status from exitC. A wait that ends because
// containerd went away (it died, or is restarting) is not the browser's
// exit: the container's shim keeps the browser running, and a containerd
// that comes back takes the shim over. The wait is then made again once
// containerd answers, unless ctx ends first.
func (cb *ctrBrowser) wait(ctx context.Context, exitC <-chan client.ExitStatus) client.ExitStatus {
	st := <-exitC
	if !daemonLost(st.Error()) || ctx.Err() != nil {
		return st
	}
	cb.log.Warn("containerd went away: the browser runs on; waiting for containerd to come back", "err", st.Error())
	delay := 250 * time.Millisecond
	for daemonLost(st.Error()) {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return st
		}
		delay = min(2*delay, 2*time.Second)
		if _, err := cb.task.Status(ctx); errdefs.IsUnavailable(err) {
			continue
		}
		ch, err := cb.task.Wait(ctx)
		if err != nil {
			continue
		}
		cb.log.Info("containerd is back: watching the browser again")
		st = <-ch
	}
	return st
}

// daemonLost reports whether err says containerd could not be reached.
func daemonLost(err error) bool { return status.Code(err) == codes.Unavailable }

// waitDevTools polls /json/version through the forwarder until DevTools
// answers, and returns the browser's DevTools path.
func (cb *ctrBrowser) waitDevTools(ctx context.Context, exited <-chan struct{}, timeout time.Duration) (string, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", cb.fwd.Socket())
	}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	// DevTools answers only a Host that is an address or localhost.
	version := "http://localhost/json/version"
	for {
		if path, ok := devtoolsPath(ctx, hc, version); ok {
			return path, nil
		}
		select {
		case <-time.After(25 * time.Millisecond):
		case <-exited:
			lastWords(cb.outDone) // may still be in the pipes
			cb.mu.Lock()
			st := cb.exit
			cb.mu.Unlock()
			return "", fmt.Errorf("start chromium in %s: exited during start (status %d): %s", cb.id, st.ExitCode(), cb.out.tailText())
		case <-timer.C:
			return "", fmt.Errorf("start chromium in %s: DevTools did not answer within %v: %s", cb.id, timeout, cb.out.tailText())
		case <-ctx.Done():
			return "", fmt.Errorf("start chromium in %s: %w", cb.id, ctx.Err())
		}
	}
}

// devtoolsPath asks DevTools for its version and returns the path of the
// browser's websocket, /devtools/browser/UUID.
func devtoolsPath(ctx context.Context, hc *http.Client, version string) (string, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, version, nil)
	if err != nil {
		return "", false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	var v struct {
		WebSocketDebuggerURL string `json:"webSocketDebuggerUrl"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&v) != nil {
		return "", false
	}
	u, err := url.Parse(v.WebSocketDebuggerURL)
	if err != nil || !strings.HasPrefix(u.Path, "/devtools/browser/") {
		return "", false
	}
	return u.Path, true
}

// stop kills the container's processes and removes what the start made:
// the forwarder, the task, the network link, the container (and its
// snapshot), the cgroups and the container's directory, whatever of it
// exists, since it runs after a partial start too.
func (cb *ctrBrowser) stop(b *Browser) error {
	c := cb.c
	defer c.forget(b, cb.id)
	cb.mu.Lock()
	cb.closing = true
	cb.mu.Unlock()
	// A teardown is not cut short by the caller: a half-removed container
	// would be left to the next reaper.
	ctx, cancel := context.WithTimeout(c.base, 30*time.Second)
	defer cancel()
	if err := cb.undo.run(ctx); err != nil {
		return err
	}
	if cb.task != nil {
		cb.log.Info("browser closed")
	}
	return nil
}

// ctrOutput logs a container's output at debug level and keeps its tail for
// start errors.
type ctrOutput struct {
	log  *slog.Logger
	mu   sync.Mutex
	tail tailBuffer
}

// writer returns a writer for one stream; each stream has its own, as cio
// copies them from two goroutines.
func (o *ctrOutput) writer(stream string) io.Writer {
	return &lineWriter{o: o, stream: stream}
}

func (o *ctrOutput) line(stream, s string) {
	o.mu.Lock()
	o.tail.WriteLine(s)
	o.mu.Unlock()
	o.log.Debug("chromium output", "stream", stream, "line", s)
}

func (o *ctrOutput) tailText() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.tail.summary()
}

// lineWriter splits one stream into lines.
type lineWriter struct {
	o      *ctrOutput
	stream string
	buf    []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.o.line(w.stream, string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > tailMax {
		w.o.line(w.stream, string(w.buf))
		w.buf = w.buf[:0]
	}
	return len(p), nil
}
