package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// BenchmarkFirstFrame is navigation → first frame of the remote page at the
// user's browser, with the process runtime (a new Chromium per tab).
func BenchmarkFirstFrame(b *testing.B) {
	needChromium(b)
	site := newTestSite(b)
	g := startGlovebox(b, func(c *Config) { c.Proxy.Tabs.ReattachGrace = 500 * time.Millisecond })
	reportFirstFrames(b, g, site, nil)
}

// firstFrameProbe runs in every document of the user's tab: on the landing
// page it watches each presented video frame (requestVideoFrameCallback)
// and keeps in window.__firstFrame the time, from the navigation's start
// (performance.timeOrigin), of the first one whose centre shows the test
// site's green.
const firstFrameProbe = `document.addEventListener('DOMContentLoaded', () => {
  const v = document.querySelector('video');
  if (!v || !v.requestVideoFrameCallback) return;
  const c = document.createElement('canvas');
  c.width = 1; c.height = 1;
  const g = c.getContext('2d', {willReadFrequently: true});
  const onFrame = (now) => {
    g.drawImage(v, v.videoWidth >> 1, v.videoHeight >> 1, 1, 1, 0, 0, 1, 1);
    const d = g.getImageData(0, 0, 1, 1).data;
    if (Math.abs(d[0] - 0) + Math.abs(d[1] - 160) + Math.abs(d[2] - 0) < 60) {
      window.__firstFrame = now;
      return;
    }
    v.requestVideoFrameCallback(onFrame);
  };
  v.requestVideoFrameCallback(onFrame);
})`

// reportFirstFrames opens the test site in a tab of a user's browser per
// iteration (after ready, if given, has waited for whatever the run needs)
// and reports the median time from the navigation's start to the
// presentation of the first video frame that shows the page, both taken
// in the user's page (performance.timeOrigin and requestVideoFrameCallback),
// so neither making the tab nor polling is counted.
func reportFirstFrames(b *testing.B, g *glovebox, site *testSite, ready func()) {
	bctx := userBrowser(b, g.addr)
	var ms []float64
	for b.Loop() {
		if ready != nil {
			ready()
		}
		tctx, cancel := chromedp.NewContext(bctx)
		if err := chromedp.Do(tctx, chromedp.Navigate("about:blank"), chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: firstFrameProbe})
			return err
		})); err != nil {
			b.Fatal(err)
		}
		if err := chromedp.Do(tctx, chromedp.Navigate(site.URL+"/")); err != nil {
			b.Fatal(err)
		}
		waitFor(b, 60*time.Second, "the first frame of the page", func() (bool, string) {
			v, err := chromedp.Run(tctx, chromedp.Evaluate[float64]("window.__firstFrame || 0"))
			if err != nil {
				return false, err.Error()
			}
			if v > 0 {
				ms = append(ms, v)
			}
			return v > 0, ""
		})
		cancel()
		waitFor(b, 30*time.Second, "the tab to end", func() (bool, string) { return g.srv.Tabs() == 0, "" })
	}
	b.ReportMetric(median(ms), "ms-first-frame")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkActiveTabCPU is the CPU the server and the remote Chromium spend
// on one tab, and its media rate, for a static page, a page that animates
// every frame and a page that scrolls all the time, at 1280×720.
func BenchmarkActiveTabCPU(b *testing.B) {
	needChromium(b)
	site := newTestSite(b)
	scroll := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, scrollingPage)
	}))
	defer scroll.Close()
	for _, page := range []struct {
		name, url string
		opt       tabBench
	}{
		{"static", site.URL + "/", tabBench{}},
		{"animated", site.URL + "/animated", tabBench{}},
		{"scrolling", scroll.URL + "/", tabBench{}},
		// The user's window minimised once the page shows (tabs.hidden:
		// freeze, the default); then restored, and the time to the first
		// frame after that reported.
		{"animated-hidden", site.URL + "/animated", tabBench{hidden: true}},
		// A lighter capture: Chromium's JPEG at quality 50, not 80.
		{"animated-q50", site.URL + "/animated", tabBench{quality: 50}},
	} {
		b.Run(page.name, func(b *testing.B) { benchTabCPU(b, page.url, page.opt) })
	}
}

// tabBench varies benchTabCPU: hidden minimises the user's window once the
// page shows; quality, when set, is tabs.jpeg_quality.
type tabBench struct {
	hidden  bool
	quality int
}

// benchTabCPU measures one page in a 1280×720 window.
func benchTabCPU(b *testing.B, pageURL string, opt tabBench) {
	hidden := opt.hidden
	g := startGlovebox(b, func(c *Config) {
		c.Proxy.Tabs.ReattachGrace = 500 * time.Millisecond
		if opt.quality != 0 {
			c.Proxy.Tabs.JPEGQuality = opt.quality
		}
	})
	bctx := userBrowser(b, g.addr, chromedp.WindowSize(1280, 720))
	const window = 5 * time.Second
	var server, remote, kbps, shown []float64
	for b.Loop() {
		tctx, cancel := chromedp.NewContext(bctx)
		if err := chromedp.Do(tctx, chromedp.Navigate(pageURL)); err != nil {
			b.Fatal(err)
		}
		waitFor(b, 60*time.Second, "video", func() (bool, string) {
			_, ok, _ := videoPixel(tctx, 10, 10)
			return ok, ""
		})
		time.Sleep(time.Second) // past start-up
		if hidden {
			setMinimized(b, tctx, true)
			time.Sleep(time.Second) // the hiding under way
		}
		s0, r0, t0 := selfCPU(), treeCPU(g.tmp), time.Now()
		time.Sleep(window)
		s1, r1, el := selfCPU(), treeCPU(g.tmp), time.Since(t0)
		server = append(server, (s1-s0).Seconds()/el.Seconds())
		remote = append(remote, (r1-r0).Seconds()/el.Seconds())
		if hidden {
			shown = append(shown, showToFrame(b, tctx))
		}
		cancel()
		waitFor(b, 30*time.Second, "the tab to end", func() (bool, string) { return g.srv.Tabs() == 0, "" })
		if e := lastTabEnd(g); e != nil {
			bytes, _ := e["bytes"].(float64)
			dur, _ := e["duration_ms"].(float64)
			if dur > 0 {
				kbps = append(kbps, bytes/dur) // bytes per ms = kB/s
			}
		}
	}
	b.ReportMetric(median(server), "server-cores")
	b.ReportMetric(median(remote), "remote-chromium-cores")
	b.ReportMetric(median(kbps), "media-kB/s")
	if hidden {
		b.ReportMetric(median(shown), "show-to-frame-ms")
	}
	b.ReportMetric(0, "ns/op")
}

// showToFrame restores the minimised window of the user's tab tctx and
// returns the milliseconds from its page's becoming visible to the
// presentation of the first video frame after that (requestVideoFrameCallback,
// both in the user's page): while hidden, no video came.
func showToFrame(b *testing.B, tctx context.Context) float64 {
	b.Helper()
	if _, err := chromedp.Run(tctx, chromedp.Evaluate[bool](`(() => {
		window.__gbShown = new Promise((resolve) => {
			document.addEventListener('visibilitychange', () => {
				const t0 = performance.now();
				document.querySelector('video').requestVideoFrameCallback((now) => resolve(now - t0));
			}, { once: true });
		});
		return true;
	})()`)); err != nil {
		b.Fatal(err)
	}
	setMinimized(b, tctx, false)
	ms, err := chromedp.Run(tctx, chromedp.Evaluate[float64](`window.__gbShown`, chromedp.EvalAwaitPromise))
	if err != nil {
		b.Fatal(err)
	}
	return ms
}

func lastTabEnd(g *glovebox) map[string]any {
	var last map[string]any
	for _, e := range g.audit.events() {
		if e["event"] == "tab_end" {
			last = e
		}
	}
	return last
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// selfCPU is this process's user+system CPU time: the server (and the test's
// chromedp client, which is small beside it).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// treeCPU sums the CPU time of the processes whose command line names dir:
// the remote browsers.
func treeCPU(dir string) time.Duration {
	var total time.Duration
	for _, pid := range browserPIDs(dir) {
		total += pidCPU(pid)
	}
	return total
}

// pidCPU is one process's user+system CPU time (all its threads), 0 when
// it is gone.
func pidCPU(pid int) time.Duration {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// BenchmarkFirstFrameContainerd is navigation → first frame at the user's
// browser with a container per tab: from the warm pool, and cold.
func BenchmarkFirstFrameContainerd(b *testing.B) {
	for _, mode := range []struct {
		name string
		pool int
	}{{"warm", 1}, {"cold", 0}} {
		b.Run(mode.name, func(b *testing.B) {
			site := newTestSite(b)
			g := startContainerdGlovebox(b, site, mode.pool, func(c *Config) { c.Proxy.Tabs.ReattachGrace = 500 * time.Millisecond })
			var ready func()
			if mode.pool > 0 {
				ready = func() {
					waitFor(b, 60*time.Second, "a warm container", func() (bool, string) { return g.pool.Stats().Ready == mode.pool, "" })
				}
			}
			reportFirstFrames(b, g, site, ready)
		})
	}
}

// BenchmarkIdleTabs opens tabs one after another on a simple page and
// measures, per idle tab, its container's cgroup memory and the PSS of its
// processes, and how long each start took as the machine filled. With 1
// and 10 tabs; GLOVEBOX_BENCH_TABS=N adds a run with N.
func BenchmarkIdleTabs(b *testing.B) {
	counts := []int{1, 10}
	if n, err := strconv.Atoi(os.Getenv("GLOVEBOX_BENCH_TABS")); err == nil && n > 0 {
		counts = append(counts, n)
	}
	// Full Chromium (the default) beside Debian's chromium-headless-shell,
	// in the same run.
	browsers := []struct{ name, path string }{
		{"chromium", ""},
		{"headless-shell", headlessShellPath},
	}
	for _, br := range browsers {
		for _, n := range counts {
			b.Run(fmt.Sprintf("browser=%s/tabs=%d", br.name, n), func(b *testing.B) { benchIdleTabs(b, n, br.path) })
		}
	}
}

// headlessShellPath is Debian's chromium-headless-shell.
const headlessShellPath = "/usr/lib/chromium/chromium-headless-shell"

// benchIdleTabs measures n idle tabs in containers with the browser at
// chromium (the default when empty).
func benchIdleTabs(b *testing.B, n int, chromium string) {
	{
		{
			if chromium != "" {
				if _, err := os.Stat(chromium); err != nil {
					missing(b, "%s: %v (make deps installs it)", chromium, err)
				}
			}
			site := newTestSite(b)
			g := startContainerdGlovebox(b, site, 0, func(c *Config) {
				c.Proxy.Tabs.Max, c.Proxy.Tabs.MaxPerUser = n+1, n+1
				if chromium != "" {
					c.Isolate.Containerd.Chromium = chromium
				}
				// GLOVEBOX_BENCH_FLAGS: Chromium flags to try, spaced.
				c.Isolate.Containerd.Flags = append(c.Isolate.Containerd.Flags, strings.Fields(os.Getenv("GLOVEBOX_BENCH_FLAGS"))...)
			})
			api := site.URL + "/.glovebox/api"
			var cgroupMiB, pssMiB, firstStart, lastStart, availMiB []float64
			for b.Loop() {
				var starts []float64
				var clients []*pionClient
				base := site.servedCount("/app.js")
				for i := range n {
					t0 := time.Now()
					status, out := apiCall(b, g, "127.0.0.1", api+"/tabs", map[string]any{"url": site.URL + "/", "width": 1280, "height": 720})
					if status != 201 {
						b.Fatalf("tab %d: %d %v", i, status, out)
					}
					clients = append(clients, newPionClient(b, g, api, out["token"].(string)))
					want := base + i + 1
					waitFor(b, 60*time.Second, "the page", func() (bool, string) { return site.servedCount("/app.js") >= want, "" })
					starts = append(starts, float64(time.Since(t0).Milliseconds()))
				}
				time.Sleep(10 * time.Second) // idle
				var usage, pss []float64
				for _, id := range containerIDs() {
					usage = append(usage, float64(cgroupMemory(id))/(1<<20))
					var p int64
					for _, pid := range containerPIDsOf(id) {
						p += pssOf(pid)
					}
					pss = append(pss, float64(p)/(1<<10))
				}
				cgroupMiB = append(cgroupMiB, median(usage))
				pssMiB = append(pssMiB, median(pss))
				firstStart = append(firstStart, starts[0])
				lastStart = append(lastStart, starts[len(starts)-1])
				availMiB = append(availMiB, float64(memAvailable())/(1<<20))
				for _, c := range clients {
					c.pc.Close()
				}
				waitFor(b, 120*time.Second, "the tabs to end", func() (bool, string) {
					return g.srv.Tabs() == 0 && len(containerPIDs()) == 0, ""
				})
			}
			// Medians over the runs.
			b.ReportMetric(median(cgroupMiB), "MiB-cgroup/tab")
			b.ReportMetric(median(pssMiB), "MiB-PSS/tab")
			b.ReportMetric(median(firstStart), "ms-first-start")
			b.ReportMetric(median(lastStart), "ms-last-start")
			b.ReportMetric(median(availMiB), "MiB-available")
			b.ReportMetric(0, "ns/op")
		}
	}
}

// containerIDs lists the containers that have processes, from their cgroups.
func containerIDs() []string {
	seen := map[string]bool{}
	var ids []string
	for _, pid := range containerPIDs() {
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		for _, line := range strings.Split(string(cg), "\n") {
			if i := strings.Index(line, ":/glovebox/"); i >= 0 {
				id := strings.SplitN(line[i+len(":/glovebox/"):], "/", 2)[0]
				if !seen[id] {
					seen[id] = true
					ids = append(ids, id)
				}
				break
			}
		}
	}
	return ids
}

// cgroupMemory is a container's memory usage (cgroup v1, or v2).
func cgroupMemory(id string) int64 {
	for _, p := range []string{
		"/sys/fs/cgroup/memory/glovebox/" + id + "/memory.usage_in_bytes",
		"/sys/fs/cgroup/glovebox/" + id + "/memory.current",
	} {
		if b, err := os.ReadFile(p); err == nil {
			v, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			return v
		}
	}
	return 0
}

// pssOf is a process's proportional set size in KiB.
func pssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "Pss:" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}

// memAvailable is the kernel's estimate of memory available, in bytes.
func memAvailable() int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemAvailable:" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v << 10
		}
	}
	return 0
}
