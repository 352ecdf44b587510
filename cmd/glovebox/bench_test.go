package main

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// BenchmarkFirstFrame is navigation → first frame of the remote page at the
// user's browser, with the process runtime (a new Chromium per tab).
func BenchmarkFirstFrame(b *testing.B) {
	needChromium(b)
	site := newTestSite(b)
	g := startGlovebox(b, func(c *Config) { c.Proxy.Tabs.ReattachGrace = 500 * time.Millisecond })
	bctx := userBrowser(b, g.addr)
	var ms []float64
	for b.Loop() {
		tctx, cancel := chromedp.NewContext(bctx)
		start := time.Now()
		if err := chromedp.Do(tctx, chromedp.Navigate(site.URL+"/")); err != nil {
			b.Fatal(err)
		}
		waitForColour(b, tctx, 600, 400, rgb{0, 160, 0}, 60*time.Second)
		ms = append(ms, float64(time.Since(start).Microseconds())/1000)
		cancel()
		waitFor(b, 30*time.Second, "the tab to end", func() (bool, string) { return g.srv.Tabs() == 0, "" })
	}
	b.ReportMetric(median(ms), "ms-first-frame")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkActiveTabCPU is the CPU the server and the remote Chromium spend
// on one tab showing a page that animates every frame, and its media rate.
func BenchmarkActiveTabCPU(b *testing.B) {
	needChromium(b)
	site := newTestSite(b)
	g := startGlovebox(b, func(c *Config) { c.Proxy.Tabs.ReattachGrace = 500 * time.Millisecond })
	bctx := userBrowser(b, g.addr)
	const window = 5 * time.Second
	var server, remote, kbps []float64
	for b.Loop() {
		tctx, cancel := chromedp.NewContext(bctx)
		if err := chromedp.Do(tctx, chromedp.Navigate(site.URL+"/animated")); err != nil {
			b.Fatal(err)
		}
		waitFor(b, 60*time.Second, "video", func() (bool, string) {
			_, ok, _ := videoPixel(tctx, 10, 10)
			return ok, ""
		})
		time.Sleep(time.Second) // past start-up
		s0, r0, t0 := selfCPU(), treeCPU(g.tmp), time.Now()
		time.Sleep(window)
		s1, r1, el := selfCPU(), treeCPU(g.tmp), time.Since(t0)
		server = append(server, (s1-s0).Seconds()/el.Seconds())
		remote = append(remote, (r1-r0).Seconds()/el.Seconds())
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
	b.ReportMetric(0, "ns/op")
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
		raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses.
		f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ is 100 on Linux
	}
	return total
}
