//go:build linux

package isolate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/remote"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/glovebox/glovebox/internal/testenv"
	"github.com/glovebox/glovebox/isolate/netns"
)

// testNamespace is the containerd namespace of the tests' containers.
const testNamespace = "glovebox-test"

// needContainerd skips the test unless this machine can run containers: root,
// containerd, its runc shim, runc and Chromium. CI has them all.
func needContainerd(t *testing.T) {
	t.Helper()
	testenv.SkipShort(t, "containerd tests start a containerd and browsers; -short skips them")
	if os.Geteuid() != 0 {
		testenv.Missing(t, "the containerd runtime needs root")
	}
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			testenv.Missing(t, "no %s: %v", bin, err)
		}
	}
	if _, err := os.Stat(DefaultContainerdConfig().Chromium); err != nil {
		testenv.Missing(t, "no Chromium: %v", err)
	}
}

// newTestContainerd starts a containerd runtime with a managed daemon under
// a directory of the test's own, and checks at the end that closing it left
// no daemon, shim or container process.
func newTestContainerd(t *testing.T, edit func(*ContainerdConfig), nw Networker) *Containerd {
	t.Helper()
	cfg := testContainerdConfig(t)
	if edit != nil {
		edit(&cfg)
	}
	c, err := NewContainerd(t.Context(), cfg, nw, testLogger())
	if err != nil {
		t.Fatalf("NewContainerd: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Containerd.Close: %v", err)
		}
		checkNoDaemon(t, cfg.DataDir)
	})
	return c
}

func testContainerdConfig(t *testing.T) ContainerdConfig {
	cfg := DefaultContainerdConfig()
	// A short path: the socket lives under it.
	dir, err := os.MkdirTemp("", "gbctr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg.DataDir = dir
	cfg.Namespace = testNamespace
	return cfg
}

// checkNoDaemon fails if a containerd or shim of the DataDir is running.
func checkNoDaemon(t *testing.T, dataDir string) {
	t.Helper()
	if pids := procsNaming(dataDir); len(pids) > 0 {
		var cmds []string
		for _, pid := range pids {
			cmds = append(cmds, strings.Join(cmdline(pid), " "))
		}
		t.Errorf("processes of %s left after Close: %v %q", dataDir, pids, cmds)
	}
}

// ctrState returns the runtime's state of b.
func ctrState(t *testing.T, c *Containerd, b *Browser) *ctrBrowser {
	t.Helper()
	cb, ok := c.browsers.get(b)
	if !ok {
		t.Fatalf("no state for %s", b.ID)
	}
	return cb
}

// containerPids lists the processes in the container's pids cgroup.
func containerPids(id string) []int {
	data, _ := os.ReadFile(filepath.Join(cgroupFS, "pids", cgroupParent, id, "cgroup.procs"))
	if len(data) == 0 {
		data, _ = os.ReadFile(filepath.Join(cgroupFS, cgroupParent, id, "cgroup.procs"))
	}
	var pids []int
	for f := range strings.FieldsSeq(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func nsOf(pid int, ns string) string {
	l, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
	return l
}

// devtoolsBridge makes the DevTools socket of b reachable on a loopback
// port for the test's own chromedp and HTTP clients, which dial only TCP,
// and returns the ws:// address of the browser through it.
func devtoolsBridge(t *testing.T, b *Browser) string {
	t.Helper()
	if b.DevToolsSocket == "" {
		t.Fatalf("browser %s has no DevTools socket", b.ID)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				back, err := net.Dial("unix", b.DevToolsSocket)
				if err != nil {
					return
				}
				defer back.Close()
				go io.Copy(back, c)
				io.Copy(c, back)
			}()
		}
	}()
	u, err := url.Parse(b.DevToolsURL)
	if err != nil {
		t.Fatalf("DevToolsURL %q: %v", b.DevToolsURL, err)
	}
	return "ws://" + ln.Addr().String() + u.Path
}

// checkCtrGone checks that nothing of the container is left.
func checkCtrGone(t *testing.T, c *Containerd, b *Browser, socket string) {
	t.Helper()
	ctx := namespaces.WithNamespace(t.Context(), testNamespace)
	if _, err := c.client.LoadContainer(ctx, b.ID); err == nil {
		t.Errorf("container %s still there", b.ID)
	}
	if ctrs, err := c.client.Containers(ctx); err != nil || len(ctrs) > 0 {
		t.Errorf("containers in the namespace: %d, %v", len(ctrs), err)
	}
	if tasks, err := c.client.TaskService().List(ctx, nil); err != nil || len(tasks.Tasks) > 0 {
		t.Errorf("tasks in the namespace: %v, %v", tasks, err)
	}
	for _, root := range cgroupRoots() {
		p := filepath.Join(root, cgroupParent, b.ID)
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s still there: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(c.containersDir(), b.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("container directory still there: %v", err)
	}
	if socket != "" {
		if conn, err := net.DialTimeout("unix", socket, time.Second); err == nil {
			conn.Close()
			t.Errorf("forwarder %s still accepts connections", socket)
		}
	}
	select {
	case <-b.Done():
	default:
		t.Error("Done not closed after Close")
	}
}

func TestContainerdStart(t *testing.T) {
	needContainerd(t)
	c := newTestContainerd(t, nil, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	// A few starts for the figure; the last one is examined.
	var took []time.Duration
	var b *Browser
	for i := range 3 {
		if b != nil {
			if err := b.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		}
		t0 := time.Now()
		var err error
		b, err = c.Start(ctx, Spec{TabID: fmt.Sprint("tab-", i), Width: 800, Height: 600, Scale: 2})
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		took = append(took, time.Since(t0))
	}
	defer b.Close()
	slices.Sort(took)
	t.Logf("Start → DevTools ready: median %v of %v", took[len(took)/2].Round(time.Millisecond), took)

	if b.Runtime != "containerd" || !strings.HasPrefix(b.ID, "glovebox-") || b.Addr != nil {
		t.Errorf("Runtime, ID, Addr = %q, %q, %v", b.Runtime, b.ID, b.Addr)
	}
	if got := c.Running(); got != 1 {
		t.Errorf("Running = %d, want 1", got)
	}

	// DevTools answers through the forwarder's unix socket, which only
	// Glovebox's user can open, and on no TCP port.
	u, err := url.Parse(b.DevToolsURL)
	if err != nil || u.Scheme != "ws" || u.Host != "localhost" || !strings.HasPrefix(u.Path, "/devtools/browser/") {
		t.Fatalf("DevToolsURL %q: %v", b.DevToolsURL, err)
	}
	checkSocketPrivate(t, b.DevToolsSocket)
	bridged := devtoolsBridge(t, b)
	resp, err := http.Get("http://" + strings.TrimPrefix(strings.SplitN(bridged, "/devtools", 2)[0], "ws://") + "/json/version")
	if err != nil {
		t.Fatalf("GET /json/version: %v", err)
	}
	var version struct{ Browser, WebSocketDebuggerURL string }
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := json.Unmarshal(body, &version); err != nil || !strings.Contains(version.Browser, "Chrome/") {
		t.Errorf("/json/version: %v: %s", err, body)
	}
	if p, _ := url.Parse(version.WebSocketDebuggerURL); p == nil || p.Path != u.Path {
		t.Errorf("/json/version names %s, want the path of %s", version.WebSocketDebuggerURL, b.DevToolsURL)
	}

	// The container: labels, and the limits in its cgroups.
	cb := ctrState(t, c, b)
	info, err := cb.container.Info(ctx)
	if err != nil || info.Labels[LabelTab] != "tab-2" || info.Labels[LabelManaged] != "true" {
		t.Errorf("container labels %v: %v", info.Labels, err)
	}
	for file, want := range map[string]string{
		"memory/glovebox/" + b.ID + "/memory.limit_in_bytes": strconv.Itoa(1024 << 20),
		"cpu/glovebox/" + b.ID + "/cpu.cfs_quota_us":         "100000",
		"pids/glovebox/" + b.ID + "/pids.max":                "512",
	} {
		data, err := os.ReadFile(filepath.Join(cgroupFS, file))
		if err != nil {
			t.Logf("cgroup v1 file %s: %v (cgroup v2 host?)", file, err)
			continue
		}
		if got := strings.TrimSpace(string(data)); got != want {
			t.Errorf("%s = %s, want %s", file, got, want)
		}
	}

	// Chromium's processes: their own PID, mount and network namespaces,
	// uid 1000 and no capabilities, and the sandbox on.
	init := int(cb.task.Pid())
	pids := containerPids(b.ID)
	if len(pids) < 3 || !slices.Contains(pids, init) {
		t.Fatalf("container processes %v, init %d", pids, init)
	}
	self := os.Getpid()
	for _, ns := range []string{"pid", "mnt", "net", "ipc", "uts"} {
		if nsOf(init, ns) == nsOf(self, ns) || nsOf(init, ns) == "" {
			t.Errorf("browser's %s namespace %q is the test's", ns, nsOf(init, ns))
		}
	}
	for _, pid := range pids {
		args := cmdline(pid)
		if slices.Contains(args, "--no-sandbox") {
			t.Errorf("pid %d runs with --no-sandbox: %q", pid, args)
		}
		if got := statusField(pid, "Uid"); got != "1000 1000 1000 1000" {
			t.Errorf("pid %d Uid = %q", pid, got)
		}
		if got := statusField(pid, "NoNewPrivs"); got != "1" {
			t.Errorf("pid %d NoNewPrivs = %s", pid, got)
		}
		// Chromium's sandboxed processes hold capabilities inside user
		// namespaces of their own (CAP_SYS_CHROOT, to chroot), which
		// count there only. In the host's user namespace: none at all.
		if nsOf(pid, "user") != nsOf(self, "user") {
			continue
		}
		if got := statusField(pid, "CapEff"); got != "0000000000000000" {
			t.Errorf("pid %d CapEff = %s", pid, got)
		}
		if got := statusField(pid, "CapBnd"); got != "0000000000000000" {
			t.Errorf("pid %d CapBnd = %s", pid, got)
		}
	}
	// The sandbox: a renderer in a user and PID namespace of its own
	// (the namespace sandbox) with more seccomp filters than the browser
	// (Chromium's seccomp-BPF on top of the container's).
	if args := cmdline(init); filepath.Base(args[0]) != "chromium" || slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--type=") }) {
		t.Fatalf("container init is not the browser process: %q", args)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		sandboxed := false
		for _, pid := range containerPids(b.ID) {
			args := cmdline(pid)
			if !slices.Contains(args, "--type=renderer") {
				continue
			}
			filters, _ := strconv.Atoi(statusField(pid, "Seccomp_filters"))
			base, _ := strconv.Atoi(statusField(init, "Seccomp_filters"))
			if statusField(pid, "Seccomp") == "2" && filters > base &&
				nsOf(pid, "user") != nsOf(init, "user") && nsOf(pid, "pid") != nsOf(init, "pid") {
				sandboxed = true
			}
		}
		if sandboxed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no renderer in the namespace and seccomp-BPF sandbox")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// DevTools listens on the container's loopback only.
	tcp, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", init))
	var listening []string
	for line := range strings.Lines(string(tcp)) {
		f := strings.Fields(line)
		if len(f) > 3 && f[3] == "0A" { // LISTEN
			listening = append(listening, f[1])
		}
	}
	if !slices.Equal(listening, []string{fmt.Sprintf("0100007F:%04X", devtoolsPort)}) {
		t.Errorf("listening in the container: %v, want DevTools on 127.0.0.1:%d only", listening, devtoolsPort)
	}

	// A real page, through chromedp.
	actx, acancel := remote.NewAllocator(ctx, bridged, remote.NoModifyURL)
	defer acancel()
	cctx, ccancel := chromedp.NewContext(actx)
	defer ccancel()
	two, err := chromedp.Run(cctx, chromedp.Evaluate[int]("1+1"))
	if err != nil || two != 2 {
		t.Fatalf("evaluate 1+1 = %d, %v", two, err)
	}
	if err := chromedp.Do(cctx, chromedp.Navigate("data:text/html,<title>glovebox</title><p>hello")); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	title, err := chromedp.Run(cctx, chromedp.Title())
	if err != nil || title != "glovebox" {
		t.Errorf("title = %q, %v", title, err)
	}
	dpr, err := chromedp.Run(cctx, chromedp.Evaluate[float64]("window.devicePixelRatio"))
	if err != nil || dpr != 2 {
		t.Errorf("devicePixelRatio = %v, %v, want 2", dpr, err)
	}
	ccancel()
	acancel()

	// Close leaves nothing.
	fwd := b.DevToolsSocket
	t0 := time.Now()
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	t.Logf("Close took %v", time.Since(t0).Round(time.Millisecond))
	checkCtrGone(t, c, b, fwd)
	for _, pid := range pids {
		if st, ok := readProcStat(pid); ok && st.state != 'Z' {
			t.Errorf("container process %d still alive", pid)
		}
	}
	if got := c.Running(); got != 0 {
		t.Errorf("Running after Close = %d", got)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// checkSocketPrivate checks that the DevTools socket is Glovebox's alone: a
// socket of mode 0600 in a directory of mode 0700, both root's, which
// another local user cannot connect to (tried as nobody, with curl).
func checkSocketPrivate(t *testing.T, socket string) {
	t.Helper()
	for path, want := range map[string]os.FileMode{socket: 0o600, filepath.Dir(socket): 0o700} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want || st.Sys().(*syscall.Stat_t).Uid != 0 {
			t.Errorf("%s: mode %v, owner %d: want %v, root's", path, st.Mode(), st.Sys().(*syscall.Stat_t).Uid, want)
		}
	}
	curl := func(as ...string) (string, error) {
		args := append(as, "curl", "-sS", "--max-time", "5", "--unix-socket", socket, "http://localhost/json/version")
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		return string(out), err
	}
	if out, err := curl("env"); err != nil || !strings.Contains(out, "webSocketDebuggerUrl") {
		t.Fatalf("curl as root through %s: %v: %s", socket, err, out)
	}
	if out, err := curl("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"); err == nil || strings.Contains(out, "webSocketDebuggerUrl") {
		t.Errorf("another local user (nobody) reached DevTools through %s: %s", socket, out)
	}
}

// killInit kills the init of b's container with SIGKILL and waits for b's
// Done, which the runtime's wait of the task closes.
func killInit(t *testing.T, c *Containerd, b *Browser) {
	t.Helper()
	if err := syscall.Kill(int(ctrState(t, c, b).task.Pid()), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("Done not closed after the container's init was killed")
	}
}

func TestContainerdKilledFromOutside(t *testing.T) {
	needContainerd(t)
	c := newTestContainerd(t, nil, nil)
	b, err := c.Start(t.Context(), Spec{TabID: "tab-kill"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer b.Close()
	fwd := b.DevToolsSocket
	killInit(t, c, b)
	if got := c.Running(); got != 0 {
		t.Errorf("Running after the kill = %d", got)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checkCtrGone(t, c, b, fwd)
}

func TestContainerdClose(t *testing.T) {
	needContainerd(t)
	cfg := testContainerdConfig(t)
	c, err := NewContainerd(t.Context(), cfg, nil, testLogger())
	if err != nil {
		t.Fatalf("NewContainerd: %v", err)
	}
	var bs []*Browser
	for i := range 2 {
		b, err := c.Start(t.Context(), Spec{TabID: fmt.Sprint("tab-", i)})
		if err != nil {
			c.Close()
			t.Fatalf("Start: %v", err)
		}
		bs = append(bs, b)
	}
	if got := c.Running(); got != 2 {
		t.Errorf("Running = %d, want 2", got)
	}
	// A start under way when Close comes: it fails with ErrClosed, or
	// wins the race and its browser is closed with the others.
	started := make(chan error, 1)
	go func() {
		b, err := c.Start(t.Context(), Spec{TabID: "tab-late"})
		if err == nil {
			<-b.Done()
		}
		started <- err
	}()
	// Under way: its container is made (the two others' and its own).
	ctx := namespaces.WithNamespace(t.Context(), testNamespace)
	waitUntil(t, "the late start's container", func() bool {
		ctrs, err := c.client.Containers(ctx)
		return err == nil && len(ctrs) == 3
	})
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-started; err != nil && !errors.Is(err, ErrClosed) {
		t.Errorf("Start during Close: %v, want ErrClosed", err)
	} else {
		t.Logf("Start during Close: %v", err)
	}
	for _, b := range bs {
		select {
		case <-b.Done():
		default:
			t.Errorf("%s: Done not closed", b.ID)
		}
		if _, err := os.Stat(filepath.Join(c.containersDir(), b.ID)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: directory left: %v", b.ID, err)
		}
	}
	if others := cgroupChildren(); len(others) > 0 {
		t.Logf("cgroup parent kept for another test process's containers: %v", others)
	} else {
		for _, root := range cgroupRoots() {
			if _, err := os.Stat(filepath.Join(root, cgroupParent)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("cgroup parent %s left: %v", filepath.Join(root, cgroupParent), err)
			}
		}
	}
	checkNoDaemon(t, cfg.DataDir)
	if _, err := os.Stat(daemonSocket(cfg.DataDir)); !errors.Is(err, os.ErrNotExist) {
		t.Logf("socket left (harmless, replaced at the next start): %v", err)
	}
	if _, err := c.Start(t.Context(), Spec{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// failingNetworker fails every Attach, after checking that it is called
// on a task that is created and not started.
type failingNetworker struct {
	t      *testing.T
	called bool
}

func (n *failingNetworker) Attach(ctx context.Context, id string, netnsPath string) (*netns.Link, error) {
	n.called = true
	pid, _ := strconv.Atoi(strings.Split(netnsPath, "/")[2])
	if args := cmdline(pid); len(args) < 2 || args[1] != "init" {
		n.t.Errorf("Attach on %s: pid %d runs %q, want runc init (created, not started)", netnsPath, pid, args)
	}
	if nsOf(pid, "net") == nsOf(os.Getpid(), "net") {
		n.t.Errorf("Attach on %s: the host's namespace", netnsPath)
	}
	return nil, errors.New("no link today")
}

func (n *failingNetworker) EgressPort() int { return 3129 }

func TestContainerdStartFailures(t *testing.T) {
	needContainerd(t)
	nw := &failingNetworker{t: t}
	tests := []struct {
		name     string
		chromium string
		nw       Networker
		timeout  time.Duration // StartTimeout
		ctxLimit time.Duration
		want     string
		wantErr  error
	}{
		// ls exits at once on Chromium's flags, and says why.
		{name: "exits", chromium: "/usr/bin/ls", want: "unrecognized option"},
		{name: "not a program", chromium: "/usr/lib/chromium", want: "/usr/lib/chromium"},
		{name: "slow", timeout: 50 * time.Millisecond, want: "did not answer within 50ms"},
		// The deadline falls in a different step of the start each time.
		{name: "ctx ends early", ctxLimit: 20 * time.Millisecond, wantErr: context.DeadlineExceeded},
		{name: "ctx ends", ctxLimit: 100 * time.Millisecond, wantErr: context.DeadlineExceeded},
		{name: "ctx ends late", ctxLimit: 250 * time.Millisecond, wantErr: context.DeadlineExceeded},
		{name: "network fails", nw: nw, want: "no link today"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestContainerd(t, func(c *ContainerdConfig) {
				if tt.chromium != "" {
					c.Chromium = tt.chromium
				}
			}, tt.nw)
			if tt.timeout > 0 {
				// After NewContainerd, which the daemon's start bounds.
				c.cfg.StartTimeout = tt.timeout
			}
			ctx := t.Context()
			if tt.ctxLimit > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctxLimit)
				defer cancel()
			}
			cgroups := cgroupChildren()
			t0 := time.Now()
			b, err := c.Start(ctx, Spec{TabID: "tab-fail"})
			if err == nil {
				b.Close()
				t.Fatal("Start succeeded")
			}
			t.Logf("error after %v: %v", time.Since(t0).Round(time.Millisecond), err)
			if tt.want != "" && !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %q is not %v", err, tt.wantErr)
			}
			checkNothingLeft(t, c, cgroups)
		})
	}
	if !nw.called {
		t.Error("the Networker was never called")
	}
}

// checkNothingLeft checks the runtime has no container, task, directory or
// cgroup (beyond those in cgroupsBefore, which another test process may own).
func checkNothingLeft(t *testing.T, c *Containerd, cgroupsBefore []string) {
	t.Helper()
	ctx := namespaces.WithNamespace(t.Context(), testNamespace)
	if ctrs, err := c.client.Containers(ctx); err != nil || len(ctrs) > 0 {
		t.Errorf("containers left: %d, %v", len(ctrs), err)
	}
	if tasks, err := c.client.TaskService().List(ctx, nil); err != nil || len(tasks.Tasks) > 0 {
		t.Errorf("tasks left: %v, %v", tasks, err)
	}
	if ents, _ := os.ReadDir(c.containersDir()); len(ents) > 0 {
		t.Errorf("container directories left: %v", ents)
	}
	for _, cg := range cgroupChildren() {
		if !slices.Contains(cgroupsBefore, cg) {
			t.Errorf("cgroup left: %s", cg)
		}
	}
	if got := c.Running(); got != 0 {
		t.Errorf("Running = %d", got)
	}
}

func TestContainerdReap(t *testing.T) {
	needContainerd(t)
	// A Glovebox that crashes: its runtime is never closed.
	cfg := testContainerdConfig(t)
	crashed, err := NewContainerd(t.Context(), cfg, nil, testLogger())
	if err != nil {
		t.Fatalf("NewContainerd: %v", err)
	}
	lost, err := crashed.Start(t.Context(), Spec{TabID: "tab-lost"})
	if err != nil {
		crashed.Close()
		t.Fatalf("Start: %v", err)
	}
	lostPids := containerPids(lost.ID)
	var cgroups []string
	for _, cg := range cgroupChildren() {
		if filepath.Base(cg) != lost.ID {
			cgroups = append(cgroups, cg)
		}
	}
	oldDaemon := crashed.daemon.pid()

	// The next start replaces the daemon and reaps the container.
	c := newTestContainerd(t, func(c *ContainerdConfig) { *c = cfg }, nil)
	if st, ok := readProcStat(oldDaemon); ok && st.state != 'Z' {
		t.Errorf("the old managed containerd (pid %d) still runs", oldDaemon)
	}
	checkNothingLeft(t, c, cgroups)
	for _, pid := range lostPids {
		if st, ok := readProcStat(pid); ok && st.state != 'Z' {
			t.Errorf("process %d of the lost container still alive", pid)
		}
	}
	// What is left of the crashed runtime's books closes quietly.
	if err := crashed.Close(); err != nil {
		t.Logf("closing the crashed runtime: %v", err)
	}

	// Left behind the runtime's back: a labelled container, a directory, a
	// cgroup. Reap removes them and spares the runtime's own browser.
	mine, err := c.Start(t.Context(), Spec{TabID: "tab-mine"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer mine.Close()
	ctx := namespaces.WithNamespace(t.Context(), testNamespace)
	stray := newContainerID()
	if _, err := c.client.NewContainer(ctx, stray,
		client.WithContainerLabels(containerLabels("tab-stray")),
		client.WithNewSpec(oci.WithRootFSPath(c.rootfs), oci.WithProcessArgs("/usr/bin/true"))); err != nil {
		t.Fatalf("create a stray container: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(c.containersDir(), stray), 0o700); err != nil {
		t.Fatal(err)
	}
	strayCg := filepath.Join(cgroupRoots()[0], cgroupParent, stray)
	if err := os.MkdirAll(strayCg, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.Reap(t.Context()); err != nil {
		t.Fatalf("Reap: %v", err)
	}
	ctrs, err := c.client.Containers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ctr := range ctrs {
		ids = append(ids, ctr.ID())
	}
	sort.Strings(ids)
	if !slices.Equal(ids, []string{mine.ID}) {
		t.Errorf("containers after Reap: %v, want only %s", ids, mine.ID)
	}
	if _, err := os.Stat(filepath.Join(c.containersDir(), stray)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stray directory left: %v", err)
	}
	if _, err := os.Stat(strayCg); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stray cgroup left: %v", err)
	}
	select {
	case <-mine.Done():
		t.Error("Reap killed the runtime's own browser")
	default:
	}
	if _, err := http.Get("http://" + strings.TrimPrefix(strings.SplitN(devtoolsBridge(t, mine), "/devtools", 2)[0], "ws://") + "/json/version"); err != nil {
		t.Errorf("own browser after Reap: %v", err)
	}
}

func TestContainerdErrors(t *testing.T) {
	needContainerd(t)
	t.Run("unreachable address", func(t *testing.T) {
		cfg := testContainerdConfig(t)
		cfg.Address = filepath.Join(cfg.DataDir, "nobody.sock")
		_, err := NewContainerd(t.Context(), cfg, nil, testLogger())
		t.Log(err)
		if !errors.Is(err, ErrContainerd) || !strings.Contains(err.Error(), "nobody.sock") {
			t.Errorf("NewContainerd = %v, want ErrContainerd naming the socket", err)
		}
	})
	t.Run("no chromium", func(t *testing.T) {
		cfg := testContainerdConfig(t)
		cfg.Chromium = "/usr/lib/chromium/no-such-chromium"
		_, err := NewContainerd(t.Context(), cfg, nil, testLogger())
		if err == nil || !strings.Contains(err.Error(), "chromium:") {
			t.Errorf("NewContainerd = %v, want an error naming the chromium key", err)
		}
	})
	t.Run("daemon fails", func(t *testing.T) {
		cfg := testContainerdConfig(t)
		cfg.Binary = "/usr/bin/false"
		_, err := NewContainerd(t.Context(), cfg, nil, testLogger())
		t.Log(err)
		if !errors.Is(err, ErrContainerd) || !strings.Contains(err.Error(), "exited during start") {
			t.Errorf("NewContainerd = %v, want ErrContainerd: exited", err)
		}
	})
	t.Run("bad image", func(t *testing.T) {
		cfg := testContainerdConfig(t)
		// A registry on a loopback port where nothing listens.
		cfg.RootFS = "127.0.0.1:9/glovebox/no-such-browser:1"
		cfg.Chromium = "/usr/lib/chromium/chromium"
		_, err := NewContainerd(t.Context(), cfg, nil, testLogger())
		t.Log(err)
		if !errors.Is(err, ErrImage) || !strings.Contains(err.Error(), "127.0.0.1:9/glovebox/no-such-browser:1") {
			t.Errorf("NewContainerd = %v, want ErrImage naming the reference", err)
		}
		checkNoDaemon(t, cfg.DataDir)
	})
}
