package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/pion/webrtc/v4"

	"github.com/glovebox/glovebox/isolate"
	"github.com/glovebox/glovebox/proxy"
	"github.com/glovebox/glovebox/proxy/policy"
)

const chromiumPath = "/usr/lib/chromium/chromium"

func needChromium(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		missing(t, "needs Debian's chromium at %s (make test installs it): %v", chromiumPath, err)
	}
	if os.Geteuid() != 0 {
		missing(t, "needs root: the process runtime runs Chromium as an unprivileged user")
	}
}

// testSite serves testdata/site on loopback with a unique marker in its HTML,
// script and stylesheet, and records what its pages report back.
type testSite struct {
	*httptest.Server
	marker string

	mu      sync.Mutex
	reports map[string][]string
	served  map[string]int
}

func newTestSite(t testing.TB) *testSite {
	t.Helper()
	return newTestSiteAt(t, "127.0.0.1:0")
}

// newTestSiteAt is newTestSite listening on addr.
func newTestSiteAt(t testing.TB, addr string) *testSite {
	t.Helper()
	b := make([]byte, 12)
	rand.Read(b)
	s := &testSite{marker: "GBMARK" + hex.EncodeToString(b), reports: map[string][]string{}, served: map[string]int{}}
	files := map[string]string{"/": "index.html", "/next": "next.html", "/animated": "animated.html", "/nettest": "nettest.html", "/app.js": "app.js", "/style.css": "style.css"}
	files["/keys"] = "keys.html"
	files["/history-a"] = "history.html"
	files["/history-b"] = "history.html"
	files["/history-c"] = "history.html"
	files["/popups"], files["/popups-child"] = "popups.html", "popups-child.html"
	files["/agent"] = "agent.html"
	files["/sound"] = "sound.html"
	files["/sync"] = "sync.html"
	files["/dialogs"], files["/dialogs-leave"], files["/dialogs-auth"] = "dialogs.html", "dialogs-leave.html", "dialogs-auth.html"
	files["/downloads"] = "downloads.html"
	files["/clipboard"] = "clipboard.html"
	files["/uploads"] = "uploads.html"
	files["/view"] = "view.html"
	files["/print"] = "print.html"
	files["/hidden"] = "hidden.html"
	files["/memhog"] = "memhog.html"
	types := map[string]string{".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css"}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/report" {
			body, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
			s.mu.Lock()
			s.reports[r.URL.Query().Get("event")] = append(s.reports[r.URL.Query().Get("event")], string(body))
			s.mu.Unlock()
			return
		}
		if r.URL.Path == "/dialogs-auth" && !dialogsBasicAuth(w, r) {
			return
		}
		if strings.HasPrefix(r.URL.Path, "/dl/") {
			s.mu.Lock()
			s.served[r.URL.Path]++
			s.mu.Unlock()
		}
		if serveDownload(w, r) {
			return
		}
		name, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "site", name))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		s.mu.Lock()
		s.served[r.URL.Path]++
		s.mu.Unlock()
		w.Header().Set("Content-Type", types[filepath.Ext(name)])
		w.Header().Set("Cache-Control", "no-store")
		w.Write(bytes.ReplaceAll(raw, []byte("{{MARKER}}"), []byte(s.marker)))
	}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s.Server.Listener.Close()
	s.Server.Listener = ln
	s.Server.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *testSite) lastReport(event string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.reports[event]
	if len(r) == 0 {
		return ""
	}
	return r[len(r)-1]
}

// reportCount is how many times the site's pages reported event.
func (s *testSite) reportCount(event string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reports[event])
}

func (s *testSite) servedCount(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served[path]
}

// syncBuffer is a bytes.Buffer safe for the audit writer and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// reset forgets what was written, so a long test's log does not grow
// without end.
func (s *syncBuffer) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

// events parses the audit lines.
func (s *syncBuffer) events() []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(s.String(), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// glovebox is one Glovebox started by a test through serve, as main does.
type glovebox struct {
	addr       string
	egressPort int
	dataDir    string
	srv        *proxy.Server
	pool       *isolate.Pool
	audit      *syncBuffer
	logs       *syncBuffer // the operational log, for tests of what it must not say
	tmp        string      // where the process runtime makes profiles
	cancel     context.CancelFunc
	done       chan error
	proxied    *http.Client
}

func startGlovebox(t testing.TB, mutate func(*Config)) *glovebox {
	t.Helper()
	tmp, err := os.MkdirTemp("", "glovebox-test-")
	if err != nil {
		t.Fatal(err)
	}
	// The browser's user (nobody) must reach its profile inside.
	os.Chmod(tmp, 0o755)
	t.Cleanup(func() { os.RemoveAll(tmp) })

	cfg := defaultConfig()
	// The process runtime by default: fast, and what most of these tests are
	// about is the proxy and the media path. containerd tests set it.
	cfg.Isolate.Runtime = "process"
	cfg.Isolate.Pool.Size = 0
	cfg.Proxy.Listen = "127.0.0.1:0"
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Stream.UDPPort = 0
	cfg.Stream.TCPPort = 0
	cfg.Stream.Loopback = true
	// Media only on loopback: tests send nothing to any other address.
	cfg.Stream.Addresses = []string{"127.0.0.1"}
	cfg.Proxy.Tabs.ReattachGrace = 2 * time.Second
	cfg.Isolate.Process.TempDir = tmp
	// Each Glovebox generates its own interception CA here, never in /var/lib.
	cfg.Proxy.TLS.Dir = filepath.Join(tmp, "tls")
	// The test site is 127.0.0.1: no name needs resolving, and nothing the
	// remote browser does in the background may leave the machine.
	cfg.Isolate.Process.Flags = []string{"--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"}
	// The tests' allowed sites are on loopback, which users may not reach
	// unless upstream.allow_local says so.
	cfg.Proxy.Upstream.AllowLocal = []string{"127.0.0.0/8"}
	cfg.Log.Level = "debug"
	cfg.Log.Format = "text"
	cfg.ShutdownGrace = 2 * time.Second
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	g := &glovebox{audit: &syncBuffer{}, tmp: tmp, done: make(chan error, 1),
		egressPort: cfg.Egress.Port, dataDir: cfg.Isolate.Containerd.DataDir}
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	g.logs = &syncBuffer{}
	logw := &testLogWriter{t: t, buf: g.logs}
	go func() {
		g.done <- serve(ctx, cfg, g.audit, logw, &serveHooks{ready: func(a net.Addr, srv *proxy.Server, pool *isolate.Pool) {
			g.addr = a.String()
			g.srv = srv
			g.pool = pool
			close(ready)
		}})
	}()
	select {
	case <-ready:
	case err := <-g.done:
		t.Fatalf("glovebox did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("glovebox did not start in 30 s")
	}
	pu, _ := url.Parse("http://" + g.addr)
	g.proxied = &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}, Timeout: 60 * time.Second}
	t.Cleanup(func() {
		g.stop(t)
		logw.stop()
		if t.Failed() && !testing.Verbose() {
			t.Logf("the last of Glovebox's log, debug lines left out:\n%s", lastLines(g.logs.String(), 40))
		}
	})
	return g
}

// buildGlovebox builds the binary into a temporary directory, for tests
// that run it as its own process.
func buildGlovebox(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "glovebox")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// lastLines is the last n lines of the log s that are not debug ones.
func lastLines(s string, n int) string {
	var lines []string
	for l := range strings.Lines(s) {
		if !strings.Contains(l, " level=DEBUG ") {
			lines = append(lines, strings.TrimRight(l, "\n"))
		}
	}
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// allowLoopback lets the test origins (127.0.0.1 and 127.0.0.2) through.
func allowLoopback(c *Config) {
	c.Proxy.Policy.Rules = append(c.Proxy.Policy.Rules, proxyRule("loopback-1", "127.0.0.1"), proxyRule("loopback-2", "127.0.0.2"))
}

// tunnelRule allows 127.0.0.1 without TLS interception: CONNECTs to it
// are tunnelled, so the tests see the tunnel itself.
func tunnelRule(c *Config) {
	c.Proxy.Policy.Rules = append([]policy.Rule{{Name: "tunnel-loopback", Host: "127.0.0.1", Action: policy.ActionAllow, NoInspect: true}}, c.Proxy.Policy.Rules...)
}

func (g *glovebox) stop(t testing.TB) {
	t.Helper()
	if g.cancel == nil {
		return
	}
	g.cancel()
	g.cancel = nil
	select {
	case err := <-g.done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Error("glovebox did not stop in 60 s")
	}
}

// browserPIDs lists the processes of this Glovebox's process runtime: those
// whose command line names dir (the browsers, crashpad) and all their
// descendants (renderers, GPU and utility processes).
func browserPIDs(dir string) []int {
	parent := map[int]int{}
	var roots []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			if i := bytes.LastIndexByte(stat, ')'); i > 0 {
				if f := strings.Fields(string(stat[i+1:])); len(f) > 1 {
					parent[pid], _ = strconv.Atoi(f[1])
				}
			}
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmd, []byte(dir)) {
			roots = append(roots, pid)
		}
	}
	in := map[int]bool{}
	for _, r := range roots {
		in[r] = true
	}
	for changed := true; changed; {
		changed = false
		for pid, pp := range parent {
			if !in[pid] && in[pp] {
				in[pid] = true
				changed = true
			}
		}
	}
	pids := make([]int, 0, len(in))
	for pid := range in {
		pids = append(pids, pid)
	}
	return pids
}

// testLogWriter sends the operational log to t.Log until the test ends.
type testLogWriter struct {
	mu      sync.Mutex
	t       testing.TB
	buf     *syncBuffer
	stopped bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf != nil {
		w.buf.Write(p)
	}
	if !w.stopped && testing.Verbose() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testLogWriter) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}

// userBrowser starts a real Chromium standing in for the user's browser,
// with Glovebox as its HTTP proxy (loopback included). extra options come
// last and so override the defaults: chromedp.Env for a HOME with an NSS
// database, or chromedp.Flag("proxy-server", false) with a proxy-pac-url.
func userBrowser(t testing.TB, proxyAddr string, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	dir := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(dir),
		chromedp.NoSandbox, // the user's browser stand-in runs as root in the test
		chromedp.DisableGPU,
		chromedp.WindowSize(800, 600),
		chromedp.ProxyServer("http://"+proxyAddr),
		chromedp.Flag("proxy-bypass-list", "<-loopback>"),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
	)
	opts = append(opts, extra...)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start the user's browser: %v", err)
	}
	return bctx
}

// waitFor polls cond every 100 ms until it is true or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s (last: %s)", d, what, last)
}

type rgb [3]int

func (c rgb) near(o rgb, tol int) bool {
	for i := range c {
		if d := c[i] - o[i]; d > tol || d < -tol {
			return false
		}
	}
	return true
}

func (c rgb) String() string { return fmt.Sprintf("rgb(%d,%d,%d)", c[0], c[1], c[2]) }

// videoPixelJS is the expression, for fmt.Sprintf with x and y, that reads
// the colour at CSS point (x, y) of the landing page's video, drawn to a
// canvas in the user's page: [r, g, b], or [] before the first frame.
const videoPixelJS = `(() => {
		const v = document.querySelector('video');` + videoCanvasJS

// videoCanvasJS reads v's pixel at (x, y) of the window scaled to the video.
const videoCanvasJS = `
		if (!v || v.readyState < 2 || !v.videoWidth) return [];
		const c = document.createElement('canvas');
		c.width = v.videoWidth; c.height = v.videoHeight;
		const g = c.getContext('2d');
		g.drawImage(v, 0, 0);
		const px = Math.floor(%d * v.videoWidth / window.innerWidth), py = Math.floor(%d * v.videoHeight / window.innerHeight);
		const d = g.getImageData(px, py, 1, 1).data;
		return [d[0], d[1], d[2]];
	})()`

// elementPixel reads the colour of video element sel at the point of its
// picture that (x, y) is of the window's, in the page of ctx.
func elementPixel(ctx context.Context, sel string, x, y int) (rgb, bool, error) {
	js := fmt.Sprintf(`(() => {
		const v = document.querySelector(%q);`, sel) + fmt.Sprintf(videoCanvasJS, x, y)
	res, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](js))
	if err != nil || len(res) != 3 {
		return rgb{}, false, err
	}
	return rgb{res[0], res[1], res[2]}, true, nil
}

// videoPixel reads the colour at CSS point (x, y) of the landing page's
// video in the user's Chromium.
func videoPixel(ctx context.Context, x, y int) (rgb, bool, error) {
	return elementPixel(ctx, "video", x, y)
}

// landingState is what a landing page shows and where it is, for a
// failure's message.
func landingState(ctx context.Context) string {
	st, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
		const s = document.getElementById('glovebox-status');
		const v = document.querySelector('video');
		return location.href + ' status=' + JSON.stringify(s && !s.hidden ? s.textContent : '') +
			(v ? ' video ready=' + v.readyState + ' size=' + v.videoWidth + 'x' + v.videoHeight : ' no video element');
	})()`))
	if err != nil {
		return "landing page: " + err.Error()
	}
	return st
}

// saveShot keeps a screenshot of the user's page for a person to look at,
// when GLOVEBOX_SCREENSHOTS names a directory.
func saveShot(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("GLOVEBOX_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
}

// userURL is the address of the user's page.
func userURL(ctx context.Context) string {
	u, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`))
	return u
}

func waitForColour(t testing.TB, ctx context.Context, x, y int, want rgb, d time.Duration) {
	t.Helper()
	waitFor(t, d, "video colour "+want.String(), func() (bool, string) {
		c, ok, err := videoPixel(ctx, x, y)
		if err != nil {
			return false, err.Error()
		}
		if !ok {
			return false, "no video yet; " + landingState(ctx)
		}
		return c.near(want, 40), c.String()
	})
}

type response struct {
	id     network.RequestID
	url    string
	status int64
}

// syncList collects responses seen by a chromedp listener.
type syncList struct {
	mu sync.Mutex
	rs []response
}

func (l *syncList) add(id network.RequestID, url string, status int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rs = append(l.rs, response{id, url, status})
}

func (l *syncList) all() []response {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]response(nil), l.rs...)
}

func syscallKill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// offerSDP makes a real browser-like offer (video to receive, a data
// channel) with pion, for API calls that need one.
func offerSDP(t *testing.T) string {
	t.Helper()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
	pc.CreateDataChannel("glovebox", nil)
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return offer.SDP
}
