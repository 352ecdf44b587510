package main

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// BenchmarkAudioCPU is what an audio stream adds: the server's and the
// remote browser's CPU (its sound device included) on the sound test page
// playing its tone, against the same page with its audio running silent,
// which sends no audio at all. The difference of the two is the stream's
// cost: Opus encoding, RTP, the FIFO's reads, and Chromium's and
// PulseAudio's mixing of a non-zero signal.
func BenchmarkAudioCPU(b *testing.B) {
	needChromium(b)
	site := newTestSite(b)
	for _, page := range []struct{ name, url string }{
		{"silent", site.URL + "/sound"},
		{"tone", site.URL + "/sound?tone"},
	} {
		b.Run(page.name, func(b *testing.B) { benchTabCPU(b, page.url) })
	}
}

// syncProbe watches, in the user's landing page, when each flash of the
// sync page is shown (requestVideoFrameCallback: the frame's expected
// display time) and when each beep is heard (a ScriptProcessorNode on the
// received audio track: the first loud sample's output time, mapped to
// the page's clock by getOutputTimestamp), both in performance.now() ms.
const syncProbe = `(() => {
	const v = document.getElementById('glovebox-screen');
	const s = v.srcObject;
	if (!s || !s.getAudioTracks().length || !v.requestVideoFrameCallback) return false;
	if (window.__sync) return true;
	const r = window.__sync = { v: [], a: [] };
	const c = document.createElement('canvas');
	c.width = c.height = 4;
	const g = c.getContext('2d', { willReadFrequently: true });
	let lit = false;
	const onFrame = (now, meta) => {
		g.drawImage(v, 0, 0, 4, 4);
		const bright = g.getImageData(1, 1, 1, 1).data[0] > 128;
		if (bright && !lit) r.v.push(meta.expectedDisplayTime || now);
		lit = bright;
		v.requestVideoFrameCallback(onFrame);
	};
	v.requestVideoFrameCallback(onFrame);
	const ac = new AudioContext();
	const src = ac.createMediaStreamSource(new MediaStream([s.getAudioTracks()[0]]));
	const sp = ac.createScriptProcessor(256, 1, 1);
	let loud = false, quiet = 0;
	sp.onaudioprocess = (e) => {
		const d = e.inputBuffer.getChannelData(0);
		const ts = ac.getOutputTimestamp();
		for (let i = 0; i < d.length; i++) {
			if (Math.abs(d[i]) > 0.05) {
				if (!loud) r.a.push(ts.performanceTime + (e.playbackTime + i / ac.sampleRate - ts.contextTime) * 1000);
				loud = true;
				quiet = 0;
			} else if (++quiet > ac.sampleRate / 10) {
				loud = false; // 100 ms of quiet ends a beep
			}
		}
	};
	src.connect(sp);
	sp.connect(ac.destination);
	return true;
})()`

// BenchmarkLipSync is the audio/video offset the user sees on a page that
// flashes and beeps together every two seconds: each beep's time heard minus
// its flash's time shown, in the user's page (positive: the sound is
// late). It reports the median and 95th percentile of the offset's size,
// and the median offset itself (its sign says which comes first), over
// about 20 flashes per run.
func BenchmarkLipSync(b *testing.B) {
	needChromium(b)
	site := newTestSite(b)
	g := startGlovebox(b, nil)
	bctx := userBrowser(b, g.addr)
	var p50s, p95s, signed []float64
	for b.Loop() {
		tctx, cancel := chromedp.NewContext(bctx)
		if err := chromedp.Do(tctx, chromedp.Navigate(site.URL+"/sync")); err != nil {
			b.Fatal(err)
		}
		waitFor(b, 60*time.Second, "the sync probe", func() (bool, string) {
			ok, err := chromedp.Run(tctx, chromedp.Evaluate[bool](syncProbe))
			return err == nil && ok, fmt.Sprint(err)
		})
		var got struct{ V, A []float64 }
		waitFor(b, 120*time.Second, "20 flashes and beeps", func() (bool, string) {
			var err error
			got, err = chromedp.Run(tctx, chromedp.Evaluate[struct{ V, A []float64 }](`({ V: window.__sync.v, A: window.__sync.a })`))
			return err == nil && len(got.V) >= 21 && len(got.A) >= 21, fmt.Sprintf("%d flashes, %d beeps, %v", len(got.V), len(got.A), err)
		})
		var offsets, sizes []float64
		for _, v := range got.V[1:] { // the first may have come before the probe
			best := math.Inf(1)
			for _, a := range got.A {
				if math.Abs(a-v) < math.Abs(best) {
					best = a - v
				}
			}
			if math.Abs(best) < 1000 { // half the period: the same flash
				offsets = append(offsets, best)
				sizes = append(sizes, math.Abs(best))
			}
		}
		cancel()
		waitFor(b, 30*time.Second, "the tab to end", func() (bool, string) { return g.srv.Tabs() == 0, "" })
		if len(offsets) == 0 {
			b.Fatalf("no beep within 1 s of a flash: flashes %v, beeps %v", got.V, got.A)
		}
		b.Logf("audio minus video, ms: %.0f", offsets)
		slices.Sort(sizes)
		p50s = append(p50s, sizes[len(sizes)/2])
		p95s = append(p95s, sizes[len(sizes)*95/100])
		signed = append(signed, median(offsets))
	}
	b.ReportMetric(median(p50s), "ms-av-offset-p50")
	b.ReportMetric(median(p95s), "ms-av-offset-p95")
	b.ReportMetric(median(signed), "ms-audio-late-p50")
	b.ReportMetric(0, "ns/op")
}
