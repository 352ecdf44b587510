package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// The media path over links the test makes itself: a real Chromium as the
// user's browser, Glovebox's pion peer sending. The assertions are wide
// floors that catch breakage; the figures belong to the benchmark.

// recordPeers keeps the landing page's RTCPeerConnections in window.__gbPCs
// so that the test can read the viewer's own WebRTC stats.
const recordPeers = `(() => {
	const Orig = window.RTCPeerConnection;
	if (!Orig || window.__gbPCs) return;
	window.__gbPCs = [];
	window.RTCPeerConnection = function(...args) {
		const pc = new Orig(...args);
		window.__gbPCs.push(pc);
		return pc;
	};
	window.RTCPeerConnection.prototype = Orig.prototype;
})()`

// viewerCounts are the user's browser's counters of the video it receives.
type viewerCounts struct {
	Frames  float64 // frames shown (getVideoPlaybackQuality)
	Bytes   float64 // video bytes received (inbound-rtp)
	Packets float64 // video packets received (inbound-rtp)
}

func readViewer(ctx context.Context) (viewerCounts, error) {
	res, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`(async () => {
		const v = document.querySelector('video');
		const frames = v && v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality().totalVideoFrames : 0;
		let bytes = 0, packets = 0;
		for (const pc of (window.__gbPCs || [])) {
			(await pc.getStats()).forEach(r => {
				if (r.type === 'inbound-rtp' && r.kind === 'video') {
					bytes += r.bytesReceived || 0;
					packets += r.packetsReceived || 0;
				}
			});
		}
		return [frames, bytes, packets];
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		return viewerCounts{}, err
	}
	if len(res) != 3 {
		return viewerCounts{}, fmt.Errorf("viewer stats: %v", res)
	}
	return viewerCounts{Frames: res[0], Bytes: res[1], Packets: res[2]}, nil
}

// openIsolated opens path of site in a new tab of the user's browser bctx,
// with its peer connections recorded, and waits for the first video frame.
func openIsolated(t testing.TB, bctx context.Context, url string) (context.Context, context.CancelFunc) {
	t.Helper()
	tctx, closeTab := chromedp.NewContext(bctx)
	if err := chromedp.Do(tctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: recordPeers})
		return err
	}), chromedp.Navigate(url)); err != nil {
		closeTab()
		t.Fatalf("navigate the user's browser: %v", err)
	}
	waitFor(t, 60*time.Second, "the first video frame", func() (bool, string) {
		c, err := readViewer(tctx)
		if err != nil {
			return false, err.Error()
		}
		return c.Frames > 0, fmt.Sprintf("%+v", c)
	})
	return tctx, closeTab
}

// measure returns the viewer's frame rate and received bytes over d.
func measure(t testing.TB, ctx context.Context, d time.Duration) (fps, bytes float64) {
	t.Helper()
	a, err := readViewer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
	b, err := readViewer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return (b.Frames - a.Frames) / d.Seconds(), b.Bytes - a.Bytes
}

// closeAndTabEnd closes the user's tab and returns the tab_end event.
func closeAndTabEnd(t testing.TB, g *glovebox, closeTab context.CancelFunc) map[string]any {
	t.Helper()
	closeTab()
	var end map[string]any
	waitFor(t, 30*time.Second, "tab_end", func() (bool, string) {
		for _, e := range g.audit.events() {
			if e["event"] == "tab_end" {
				end = e
			}
		}
		return end != nil, "none yet"
	})
	return end
}

func num(e map[string]any, k string) float64 {
	f, _ := e[k].(float64)
	return f
}

// TestMediaBudgetLoopback: a static page costs almost nothing once shown;
// an animated page keeps moving.
func TestMediaBudgetLoopback(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	g := startGlovebox(t, nil)
	bctx := userBrowser(t, g.addr)

	t.Run("static", func(t *testing.T) {
		tctx, closeTab := openIsolated(t, bctx, site.URL+"/")
		defer closeTab()
		time.Sleep(time.Second) // the first frames and keyframe are not the budget
		fps, bytes := measure(t, tctx, 10*time.Second)
		t.Logf("static page: %.0f bytes received in 10 s, %.1f fps shown", bytes, fps)
		if bytes > 30_000 {
			t.Errorf("static page: %.0f bytes of video in 10 s, want < 30000", bytes)
		}
		end := closeAndTabEnd(t, g, closeTab)
		t.Logf("tab_end: %v", end)
	})

	t.Run("animated", func(t *testing.T) {
		tctx, closeTab := openIsolated(t, bctx, site.URL+"/animated")
		defer closeTab()
		fps, bytes := measure(t, tctx, 10*time.Second)
		t.Logf("animated page: %.1f fps shown, %.0f kbit/s received", fps, bytes*8/10/1000)
		if fps < 5 {
			t.Errorf("animated page: %.1f fps shown at the viewer, want > 5", fps)
		}
	})
}

// shapedNet is a network namespace joined to the host by a veth pair whose
// two ends are shaped by tbf and lose packets to an nftables rule.
type shapedNet struct {
	ns, hostIf, nsIf string
	hostIP, nsIP     string
	table            string
}

func mustRun(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// newShapedNet makes the namespace, the veth pair on a /30 of 203.0.113.0/24
// (TEST-NET-3, RFC 5737, never routed; the test checks the host does not use
// it, and it stays clear of the containers' 198.18.0.0/15),
// tbf at rate on both ends and a drop rule for lossPct % of UDP packets both
// ways. Everything goes again at the end of the test, failed or not.
func newShapedNet(t testing.TB, rate string, lossPct int) *shapedNet {
	t.Helper()
	for _, tool := range []string{"ip", "tc", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing(t, "needs %s: %v", tool, err)
		}
	}
	b := make([]byte, 3)
	rand.Read(b)
	id := hex.EncodeToString(b)
	out, err := exec.Command("ip", "-4", "-o", "addr").CombinedOutput()
	if err != nil {
		t.Fatalf("ip addr: %v: %s", err, out)
	}
	routes, err := exec.Command("ip", "-4", "route", "show", "table", "all").CombinedOutput()
	if err != nil {
		t.Fatalf("ip route: %v: %s", err, routes)
	}
	var base string // the /30's network address, less its last octet's value
	for range 20 {
		n := 4 * (1 + mrand.IntN(62))
		used := false
		for _, a := range []string{fmt.Sprintf("203.0.113.%d/", n), fmt.Sprintf("203.0.113.%d/", n+1), fmt.Sprintf("203.0.113.%d/", n+2)} {
			used = used || strings.Contains(string(out), a) || strings.Contains(string(routes), a)
		}
		if !used && !strings.Contains(string(routes), "203.0.113.0/24") {
			base = fmt.Sprint(n)
			break
		}
	}
	if base == "" {
		missing(t, "no free /30 in 203.0.113.0/24 on this host")
	}
	n, _ := strconv.Atoi(base)
	s := &shapedNet{ns: "shaped-" + id, hostIf: "shh" + id, nsIf: "shn" + id,
		hostIP: fmt.Sprintf("203.0.113.%d", n+1), nsIP: fmt.Sprintf("203.0.113.%d", n+2), table: "shaped_" + id}

	t.Cleanup(func() {
		// The namespace takes its veth end, and with it the pair and qdiscs.
		for _, c := range [][]string{
			{"nft", "delete", "table", "inet", s.table},
			{"ip", "netns", "del", s.ns},
			{"ip", "link", "del", s.hostIf},
		} {
			_ = exec.Command(c[0], c[1:]...).Run()
		}
		if out, _ := exec.Command("ip", "link", "show", s.hostIf).CombinedOutput(); strings.Contains(string(out), s.hostIf+"@") {
			t.Errorf("veth %s left behind", s.hostIf)
		}
	})
	mustRun(t, "ip", "netns", "add", s.ns)
	mustRun(t, "ip", "link", "add", s.hostIf, "type", "veth", "peer", "name", s.nsIf)
	mustRun(t, "ip", "link", "set", s.nsIf, "netns", s.ns)
	mustRun(t, "ip", "addr", "add", s.hostIP+"/30", "dev", s.hostIf)
	mustRun(t, "ip", "link", "set", s.hostIf, "up")
	mustRun(t, "ip", "-n", s.ns, "addr", "add", s.nsIP+"/30", "dev", s.nsIf)
	mustRun(t, "ip", "-n", s.ns, "link", "set", s.nsIf, "up")
	mustRun(t, "ip", "-n", s.ns, "link", "set", "lo", "up")
	tbf := []string{"root", "tbf", "rate", rate, "burst", "32kbit", "latency", "400ms"}
	mustRun(t, "tc", append([]string{"qdisc", "add", "dev", s.hostIf}, tbf...)...)
	mustRun(t, "ip", append([]string{"netns", "exec", s.ns, "tc", "qdisc", "add", "dev", s.nsIf}, tbf...)...)
	if lossPct > 0 {
		rules := fmt.Sprintf(`table inet %[1]s {
	chain out { type filter hook output priority 0; oifname %[2]q meta l4proto udp numgen random mod 100 < %[3]d counter drop; }
	chain in { type filter hook input priority 0; iifname %[2]q meta l4proto udp numgen random mod 100 < %[3]d counter drop; }
}`, s.table, s.hostIf, lossPct)
		cmd := exec.Command("nft", "-f", "-")
		cmd.Stdin = strings.NewReader(rules)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nft: %v: %s", err, out)
		}
	}
	return s
}

// dropped returns the packets the loss rule dropped, as nft lists them.
func (s *shapedNet) dropped() string {
	out, _ := exec.Command("nft", "list", "table", "inet", s.table).CombinedOutput()
	var c []string
	for _, l := range strings.Split(string(out), "\n") {
		if i := strings.Index(l, "counter "); i >= 0 {
			c = append(c, strings.TrimSuffix(strings.TrimSpace(l[i+len("counter "):]), " drop"))
		}
	}
	return strings.Join(c, "; ")
}

// free takes the shaping and the loss away.
func (s *shapedNet) free(t testing.TB) {
	t.Helper()
	mustRun(t, "nft", "delete", "table", "inet", s.table)
	mustRun(t, "tc", "qdisc", "del", "dev", s.hostIf, "root")
	mustRun(t, "ip", "netns", "exec", s.ns, "tc", "qdisc", "del", "dev", s.nsIf, "root")
}

// browserInNetns runs the user's Chromium inside the namespace: chromedp
// talks to it over --remote-debugging-pipe (file descriptors 3 and 4, which
// ip netns exec passes on), so no DevTools port has to cross namespaces.
func (s *shapedNet) browserInNetns() chromedp.ExecAllocatorOption {
	ipPath, _ := exec.LookPath("ip")
	return chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
		cmd.Args = append([]string{"ip", "netns", "exec", s.ns}, cmd.Args...)
		cmd.Path = ipPath
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = new(syscall.SysProcAttr)
		}
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	})
}

// busyPage changes blocks of random colour every frame: content that wants
// more bits than the shaped link carries, as video or a busy site would.
const busyPage = `<!doctype html><html><head><meta charset="utf-8"><title>Busy</title>
<style>html, body { margin: 0; background: #fff; } canvas { display: block; }</style></head>
<body><canvas id="c" width="640" height="400"></canvas><script>
const g = document.getElementById('c').getContext('2d');
function step() {
  for (let y = 0; y < 400; y += 16) for (let x = 0; x < 640; x += 16) {
    g.fillStyle = 'rgb(' + (Math.random() * 255 | 0) + ',' + (Math.random() * 255 | 0) + ',' + (Math.random() * 255 | 0) + ')';
    g.fillRect(x, y, 16, 16);
  }
  requestAnimationFrame(step);
}
requestAnimationFrame(step);
</script></body></html>`

// TestShapedLink: over a 2 Mbit/s link with 1 % loss the animated page keeps
// playing, congestion control brings its target under the link, and the
// target rises again once the link is freed.
func TestShapedLink(t *testing.T) {
	needChromium(t)
	if os.Geteuid() != 0 {
		missing(t, "needs root for network namespaces, tc and nftables")
	}
	const linkBps = 2_000_000
	sn := newShapedNet(t, "2mbit", 1)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, busyPage)
	}))
	defer site.Close()
	g := startGlovebox(t, func(c *Config) {
		c.Proxy.Listen = sn.hostIP + ":0"
		// The user's browser is on the other end of the shaped /30.
		c.Proxy.Clients = append(c.Proxy.Clients, sn.hostIP+"/30")
		c.Stream.Loopback = false
		c.Stream.Addresses = []string{sn.hostIP}
	})
	// The proxy is an IP literal, which host-resolver-rules would map too.
	bctx := userBrowser(t, g.addr, sn.browserInNetns(),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE "+sn.hostIP))

	tctx, closeTab := openIsolated(t, bctx, site.URL+"/")
	defer closeTab()
	time.Sleep(5 * time.Second) // congestion control finds the link
	var fpsMin float64 = 1e9
	var kbps []string
	for range 3 {
		fps, bytes := measure(t, tctx, 5*time.Second)
		fpsMin = min(fpsMin, fps)
		kbps = append(kbps, fmt.Sprintf("%.0f kbit/s %.1f fps", bytes*8/5/1000, fps))
	}
	t.Logf("received over the shaped link, three 5 s windows: %s", strings.Join(kbps, ", "))
	t.Logf("dropped by the loss rule (out; in): %s", sn.dropped())
	if fpsMin < 1 {
		t.Errorf("frames stopped arriving over the shaped link: %.1f fps in a 5 s window, want >= 1", fpsMin)
	}

	// The link frees: the stream comes back up. Congestion control climbs
	// back slowly (GCC's additive increase): wait until the target is well
	// above the lowest it reached, as the live per-tab stats show.
	sn.free(t)
	waitFor(t, 60*time.Second, "the target bitrate to rise after the link freed", func() (bool, string) {
		for _, m := range g.srv.TabMedia() {
			if m.Attached && m.Stats.MinTarget > 0 && float64(m.Stats.TargetBitrate) > 1.5*float64(m.Stats.MinTarget) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", g.srv.TabMedia())
	})
	fps, bytes := measure(t, tctx, 5*time.Second)
	t.Logf("received after the link freed: %.0f kbit/s %.1f fps", bytes*8/5/1000, fps)
	if fps < 1 {
		t.Errorf("frames stopped arriving after the link freed: %.1f fps", fps)
	}
	end := closeAndTabEnd(t, g, closeTab)
	t.Logf("tab_end: %v", end)
	dur := num(end, "duration_ms") / 1000
	sentBps := num(end, "bytes") * 8 / dur
	t.Logf("server: target %.0f kbit/s (lowest %.0f), sent %.0f kbit/s on average, %v frames in, %v sent, %v skipped, rtt %v ms, loss %v",
		num(end, "bitrate")/1000, num(end, "min_bitrate")/1000, sentBps/1000, end["frames_in"], end["frames_sent"], end["frames_skipped"], end["rtt_ms"], end["loss"])
	if b := num(end, "min_bitrate"); b <= 0 || b >= linkBps {
		t.Errorf("congestion control's lowest target %.0f bit/s, want below the link's %d", b, linkBps)
	}
	if b, lo := num(end, "bitrate"), num(end, "min_bitrate"); b <= lo {
		t.Errorf("target %.0f bit/s after the link freed, want above the constrained link's lowest %.0f", b, lo)
	}
	if num(end, "frames_sent") < 20 {
		t.Errorf("only %v frames sent", end["frames_sent"])
	}
}
