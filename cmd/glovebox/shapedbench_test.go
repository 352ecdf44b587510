package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// busyTogglePage is the busy page's random blocks, every frame, in a band
// across the bottom of the viewport, above a background that swaps colour
// on each click, as togglePage's does: a click under load. The middle of
// the viewport, where the clicks land, and (100, 100) are background.
const busyTogglePage = `<!doctype html><html><head><meta charset="utf-8"><title>Busy toggle</title>
<style>html, body { margin: 0; height: 100%; overflow: hidden; background: rgb(0, 160, 0); }
canvas { position: absolute; left: 0; bottom: 0; display: block; }</style></head>
<body><canvas id="c" width="1280" height="280"></canvas><script>
let on = false;
document.addEventListener('click', () => {
  on = !on;
  document.body.style.background = on ? 'rgb(200, 0, 200)' : 'rgb(0, 160, 0)';
});
const g = document.getElementById('c').getContext('2d');
function step() {
  for (let y = 0; y < 280; y += 16) for (let x = 0; x < 1280; x += 16) {
    g.fillStyle = 'rgb(' + (Math.random() * 255 | 0) + ',' + (Math.random() * 255 | 0) + ',' + (Math.random() * 255 | 0) + ')';
    g.fillRect(x, y, 16, 16);
  }
  requestAnimationFrame(step);
}
requestAnimationFrame(step);
</script></body></html>`

// freezeProbe runs in the user's landing page: from now on it keeps the
// longest gap between two presented video frames (requestVideoFrameCallback
// times) in window.__freeze; freezeRead closes the window, counting the
// time since the last frame too.
const (
	freezeProbe = `(() => {
  const v = document.querySelector('video');
  const f = window.__freeze = {last: performance.now(), max: 0, frames: 0};
  const onFrame = (now) => {
    f.max = Math.max(f.max, now - f.last);
    f.last = now;
    f.frames++;
    v.requestVideoFrameCallback(onFrame);
  };
  v.requestVideoFrameCallback(onFrame);
  return true;
})()`
	freezeRead = `(() => {
  const f = window.__freeze;
  return [Math.max(f.max, performance.now() - f.last), f.frames];
})()`
)

// viewerRTP reads the user's browser's own account of the video it
// receives (inbound-rtp), for the log.
func viewerRTP(ctx context.Context) (map[string]float64, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[map[string]float64](`(async () => {
		const out = {};
		const keys = ['packetsReceived', 'packetsLost', 'nackCount', 'pliCount', 'firCount', 'framesDecoded', 'keyFramesDecoded',
			'framesDropped', 'freezeCount', 'totalFreezesDuration', 'pauseCount', 'jitterBufferDelay', 'jitterBufferEmittedCount'];
		for (const pc of (window.__gbPCs || [])) {
			(await pc.getStats()).forEach(r => {
				if (r.type !== 'inbound-rtp' || r.kind !== 'video') return;
				for (const k of keys) out[k] = (out[k] || 0) + (r[k] || 0);
			});
		}
		return out;
	})()`, chromedp.EvalAwaitPromise))
}

// backlog samples the bytes queued in dev's tbf qdisc every 50 ms until
// stop is called, which returns the largest and the mean. On the host's end
// of the veth that is the media's queue on its way to the user: at
// 2 Mbit/s, 25 kB wait 100 ms.
func backlog(dev string) (stop func() (maxB, meanB float64)) {
	var (
		mu         sync.Mutex
		maxB, sumB float64
		n          int
	)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			out, err := exec.Command("tc", "-s", "-j", "qdisc", "show", "dev", dev).Output()
			if err != nil {
				continue
			}
			var qs []struct {
				Kind    string  `json:"kind"`
				Backlog float64 `json:"backlog"`
			}
			if json.Unmarshal(out, &qs) != nil {
				continue
			}
			for _, q := range qs {
				if q.Kind == "tbf" {
					mu.Lock()
					maxB = max(maxB, q.Backlog)
					sumB += q.Backlog
					n++
					mu.Unlock()
				}
			}
		}
	}()
	return func() (float64, float64) {
		close(done)
		<-finished
		mu.Lock()
		defer mu.Unlock()
		if n == 0 {
			return 0, 0
		}
		return maxB, sumB / float64(n)
	}
}

// BenchmarkShapedLink is click-to-photon, frame rate and freezes over a
// constrained link the benchmark makes: the user's browser in a network
// namespace whose veth is shaped to 2 Mbit/s by tbf both ways and loses 1 %
// of UDP packets both ways to an nftables numgen rule, as TestShapedLink
// has it. A 1280×720 window. "toggle": about 20 clicks on a page that
// swaps its background on a click, as BenchmarkClickToPhoton. "busy": a
// page whose lower part changes every frame, more than the link carries;
// after 5 s for congestion control to find the link, over 10 s, the frame
// rate and bit rate received and the longest gap between presented frames,
// then about 20 clicks on its background. Medians over the iterations.
func BenchmarkShapedLink(b *testing.B) {
	needChromium(b)
	sn := newShapedNet(b, "2mbit", 1)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if r.URL.Path == "/busy" {
			_, _ = io.WriteString(w, busyTogglePage)
			return
		}
		_, _ = io.WriteString(w, togglePage)
	}))
	defer site.Close()
	g := startGlovebox(b, func(c *Config) {
		c.Proxy.Listen = sn.hostIP + ":0"
		// The user's browser is on the other end of the shaped /30.
		c.Proxy.Clients = append(c.Proxy.Clients, sn.hostIP+"/30")
		c.Stream.Loopback = false
		c.Stream.Addresses = []string{sn.hostIP}
		c.Proxy.Tabs.ReattachGrace = 500 * time.Millisecond
	})
	// The proxy is an IP literal, which host-resolver-rules would map too.
	bctx := userBrowser(b, g.addr, sn.browserInNetns(), chromedp.WindowSize(1280, 720),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE "+sn.hostIP))

	// clicks opens the page at path in a new tab, clicks it 20 times and
	// closes the tab; play, if not nil, runs first on the open tab.
	clicks := func(b *testing.B, path string, play func(tctx context.Context)) (lat []float64, missed int) {
		tctx, closeTab := openIsolated(b, bctx, site.URL+path)
		waitForColour(b, tctx, 100, 100, rgb{0, 160, 0}, 60*time.Second)
		if play != nil {
			play(tctx)
		}
		rtp0, _ := viewerRTP(tctx)
		stop := backlog(sn.hostIf)
		lat, missed = clickVideo(b, tctx, 20)
		maxQ, meanQ := stop()
		rtp1, _ := viewerRTP(tctx)
		closeTab()
		waitFor(b, 30*time.Second, "the tab to end", func() (bool, string) { return g.srv.Tabs() == 0, "" })
		b.Logf("clicks: p50 %.0f ms, p95 %.0f ms, max %.0f ms, %d missed; %s; tbf backlog to the user max %.0f B, mean %.0f B; %s; dropped so far by the loss rule (to the user; from the user): %s",
			quantileMS(lat, 0.50), quantileMS(lat, 0.95), quantileMS(lat, 1), missed, rtpLine(rtp0, rtp1), maxQ, meanQ, tabEndLine(lastTabEnd(g)), sn.dropped())
		return lat, missed
	}

	b.Run("toggle", func(b *testing.B) {
		var p50s, p95s []float64
		missed := 0
		for b.Loop() {
			lat, miss := clicks(b, "/", nil)
			missed += miss
			p50s = append(p50s, quantileMS(lat, 0.50))
			p95s = append(p95s, quantileMS(lat, 0.95))
		}
		b.ReportMetric(median(p50s), "ms-p50")
		b.ReportMetric(median(p95s), "ms-p95")
		b.ReportMetric(float64(missed), "clicks-missed")
		b.ReportMetric(0, "ns/op")
	})

	b.Run("busy", func(b *testing.B) {
		var p50s, p95s, fpss, kbps, freezes []float64
		missed := 0
		for b.Loop() {
			lat, miss := clicks(b, "/busy", func(tctx context.Context) {
				time.Sleep(5 * time.Second) // congestion control finds the link
				if _, err := chromedp.Run(tctx, chromedp.Evaluate[bool](freezeProbe)); err != nil {
					b.Fatalf("freeze probe: %v", err)
				}
				rtp0, _ := viewerRTP(tctx)
				stop := backlog(sn.hostIf)
				fps, bytes := measure(b, tctx, 10*time.Second)
				maxQ, meanQ := stop()
				fr, err := chromedp.Run(tctx, chromedp.Evaluate[[]float64](freezeRead))
				if err != nil || len(fr) != 2 {
					b.Fatalf("read the freeze probe: %v %v", fr, err)
				}
				rtp1, _ := viewerRTP(tctx)
				fpss = append(fpss, fps)
				kbps = append(kbps, bytes*8/10/1000)
				freezes = append(freezes, fr[0])
				b.Logf("10 s of play: %.1f fps (%.0f presented), %.0f kbit/s, longest freeze %.0f ms; %s; tbf backlog to the user max %.0f B, mean %.0f B",
					fps, fr[1], bytes*8/10/1000, fr[0], rtpLine(rtp0, rtp1), maxQ, meanQ)
			})
			missed += miss
			p50s = append(p50s, quantileMS(lat, 0.50))
			p95s = append(p95s, quantileMS(lat, 0.95))
		}
		b.ReportMetric(median(p50s), "ms-p50")
		b.ReportMetric(median(p95s), "ms-p95")
		b.ReportMetric(float64(missed), "clicks-missed")
		b.ReportMetric(median(fpss), "fps")
		b.ReportMetric(median(kbps), "kbit/s")
		b.ReportMetric(median(freezes), "ms-longest-freeze")
		b.ReportMetric(slices.Max(freezes), "ms-worst-freeze")
		b.ReportMetric(0, "ns/op")
	})
}

// rtpLine is what the user's browser says of the video it received between
// two viewerRTP readings.
func rtpLine(a, b map[string]float64) string {
	d := func(k string) float64 { return b[k] - a[k] }
	jb := 0.0
	if n := d("jitterBufferEmittedCount"); n > 0 {
		jb = d("jitterBufferDelay") / n * 1000
	}
	return fmt.Sprintf("viewer: %.0f packets, %.0f lost, %.0f NACKs, %.0f PLIs, %.0f frames decoded (%.0f key), %.0f dropped, %.0f freezes (%.2f s), jitter buffer %.0f ms a frame",
		d("packetsReceived"), d("packetsLost"), d("nackCount"), d("pliCount"), d("framesDecoded"), d("keyFramesDecoded"), d("framesDropped"), d("freezeCount"), d("totalFreezesDuration"), jb)
}

// tabEndLine is the server's media counters from a tab_end event.
func tabEndLine(e map[string]any) string {
	if e == nil {
		return "no tab_end"
	}
	return fmt.Sprintf("server: target %.0f kbit/s (lowest %.0f), %v frames in, %v sent (%.0f B each on average), %v skipped, %v keyframes, rtt %v ms, loss %v",
		num(e, "bitrate")/1000, num(e, "min_bitrate")/1000, e["frames_in"], e["frames_sent"], num(e, "bytes")/max(num(e, "frames_sent"), 1), e["frames_skipped"], e["keyframes"], e["rtt_ms"], e["loss"])
}
