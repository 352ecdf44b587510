package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// togglePage swaps its background between two colours on each click.
const togglePage = `<!doctype html>
<html><head><meta charset="utf-8"><title>Toggle</title>
<style>html, body { margin: 0; height: 100%; background: rgb(0, 160, 0); }</style></head>
<body><script>
let on = false;
document.addEventListener('click', () => {
  on = !on;
  document.body.style.background = on ? 'rgb(200, 0, 200)' : 'rgb(0, 160, 0)';
});
</script></body></html>`

// clickProbe runs in the user's landing page: it stamps its own mousedown
// on the video with performance.now(), and on every video frame
// (requestVideoFrameCallback) reads the pixel under the click; the first
// frame whose colour differs from the one before the click ends the
// measurement, at the callback's own time.
const clickProbe = `(() => {
  const v = document.querySelector('video');
  const c = document.createElement('canvas');
  c.width = 1; c.height = 1;
  const g = c.getContext('2d', {willReadFrequently: true});
  const p = window.__probe = {down: 0, before: null, ms: -1, frames: 0};
  const px = () => {
    const x = Math.floor(v.videoWidth / 2), y = Math.floor(v.videoHeight / 2);
    g.drawImage(v, x, y, 1, 1, 0, 0, 1, 1);
    return Array.from(g.getImageData(0, 0, 1, 1).data.slice(0, 3));
  };
  const differs = (a, b) => Math.abs(a[0] - b[0]) + Math.abs(a[1] - b[1]) + Math.abs(a[2] - b[2]) > 120;
  v.addEventListener('mousedown', () => { p.before = px(); p.down = performance.now(); p.ms = -1; }, true);
  const onFrame = (now) => {
    p.frames++;
    if (p.down && p.ms < 0 && differs(px(), p.before)) p.ms = now - p.down;
    v.requestVideoFrameCallback(onFrame);
  };
  v.requestVideoFrameCallback(onFrame);
  return true;
})()`

// BenchmarkClickToPhoton is the time from a click on the video in the
// user's browser to the first video frame that shows the page's answer (a
// new background colour), both taken in the user's page: its own mousedown
// listener, and requestVideoFrameCallback with a pixel read. Process
// runtime, loopback, the window (and so the remote viewport) at 720p and
// 1080p, VP8 and H.264; p50 and p95 over about 20 clicks per run, medians
// over runs.
func BenchmarkClickToPhoton(b *testing.B) {
	needChromium(b)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = io.WriteString(w, togglePage)
	}))
	defer site.Close()
	for _, size := range []struct {
		name  string
		w, h  int
		codec string
	}{{"720p", 1280, 720, "vp8"}, {"1080p", 1920, 1080, "vp8"}, {"720p-h264", 1280, 720, "h264"}, {"1080p-h264", 1920, 1080, "h264"}} {
		b.Run(size.name, func(b *testing.B) {
			g := startGlovebox(b, func(c *Config) {
				c.Proxy.Tabs.ReattachGrace = 500 * time.Millisecond
				c.Stream.Codecs = []string{size.codec}
			})
			bctx := userBrowser(b, g.addr, chromedp.WindowSize(size.w, size.h))
			var p50s, p95s []float64
			missed := 0
			for b.Loop() {
				lat, miss := clickRun(b, g, bctx, site.URL+"/", 20)
				missed += miss
				p50s = append(p50s, quantileMS(lat, 0.50))
				p95s = append(p95s, quantileMS(lat, 0.95))
			}
			b.ReportMetric(median(p50s), "ms-p50")
			b.ReportMetric(median(p95s), "ms-p95")
			b.ReportMetric(float64(missed), "clicks-missed")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// clickRun opens the page in a new tab of the user's browser, clicks the
// video n times and returns the click-to-photon times in ms, and how many
// clicks never showed within 3 s.
func clickRun(b *testing.B, g *glovebox, bctx context.Context, url string, n int) (ms []float64, missed int) {
	b.Helper()
	tctx, cancel := chromedp.NewContext(bctx)
	defer func() {
		cancel()
		waitFor(b, 30*time.Second, "the tab to end", func() (bool, string) { return g.srv.Tabs() == 0, "" })
	}()
	if err := chromedp.Do(tctx, chromedp.Navigate(url)); err != nil {
		b.Fatal(err)
	}
	waitFor(b, 60*time.Second, "the page in the video", func() (bool, string) {
		c, ok, err := videoPixel(tctx, 100, 100)
		if err != nil || !ok {
			return false, fmt.Sprint(err)
		}
		return c.near(rgb{0, 160, 0}, 40), c.String()
	})
	return clickVideo(b, tctx, n)
}

// clickVideo clicks the middle of the video in the user's tab tctx n times,
// timing each with clickProbe; the page must show its answer to a click
// there. It returns the click-to-photon times in ms, and how many clicks
// never showed within 3 s.
func clickVideo(b testing.TB, tctx context.Context, n int) (ms []float64, missed int) {
	b.Helper()
	var w, h int
	if _, err := chromedp.Run(tctx, chromedp.Evaluate[bool](clickProbe)); err != nil {
		b.Fatalf("probe: %v", err)
	}
	dims, err := chromedp.Run(tctx, chromedp.Evaluate[[]int]("[window.innerWidth, window.innerHeight]"))
	if err != nil || len(dims) != 2 {
		b.Fatalf("viewport: %v %v", dims, err)
	}
	w, h = dims[0], dims[1]
	type probe struct {
		Down   float64 `json:"down"`
		MS     float64 `json:"ms"`
		Frames int     `json:"frames"`
	}
	time.Sleep(time.Second) // past the first keyframes
	for i := range n {
		if err := chromedp.Do(tctx, chromedp.MouseClickXY(float64(w)/2, float64(h)/2)); err != nil {
			b.Fatalf("click %d: %v", i, err)
		}
		deadline := time.Now().Add(3 * time.Second)
		for {
			p, err := chromedp.Run(tctx, chromedp.Evaluate[probe]("window.__probe"))
			if err != nil {
				b.Fatalf("read probe: %v", err)
			}
			if p.Down > 0 && p.MS >= 0 {
				ms = append(ms, p.MS)
				break
			}
			if time.Now().After(deadline) {
				missed++
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(250 * time.Millisecond) // let the page settle between clicks
	}
	return ms, missed
}

// quantileMS is the q-quantile of v (nearest rank), 0 for none.
func quantileMS(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(i, 0)]
}

// scrollingPage is a long page of text that scrolls by itself, every frame.
const scrollingPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>Scrolling</title>
<style>body { margin: 0 2em; font: 16px/1.5 sans-serif; background: #fff; color: #222; }</style></head>
<body><script>
for (let i = 0; i < 2000; i++) {
  const p = document.createElement('p');
  p.textContent = i + ': the quick brown fox jumps over the lazy dog, ' + 'lorem ipsum dolor sit amet '.repeat(i % 5 + 1);
  document.body.appendChild(p);
}
const step = () => {
  if (window.scrollY + window.innerHeight >= document.body.scrollHeight) window.scrollTo(0, 0);
  window.scrollBy(0, 3);
  requestAnimationFrame(step);
};
requestAnimationFrame(step);
</script></body></html>`
