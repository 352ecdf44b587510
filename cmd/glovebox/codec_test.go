package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestH264EndToEnd: with stream.codecs set to H.264 alone, a real Chromium
// in a 1920×1080 window (past level 3.1, which the SDP names: openh264
// raises the level in the stream) receives the page as H.264 at its full
// viewport, and a click still goes through.
func TestH264EndToEnd(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	g := startGlovebox(t, func(c *Config) { c.Stream.Codecs = []string{"h264"} })
	bctx := userBrowser(t, g.addr, chromedp.WindowSize(1920, 1080))
	tctx, closeTab := openIsolated(t, bctx, site.URL+"/")
	defer closeTab()

	waitForColour(t, tctx, 1200, 700, rgb{0, 160, 0}, 60*time.Second)
	type inbound struct {
		Mime          string  `json:"mime"`
		Width, Height float64 // frameWidth, frameHeight of the inbound video
		Decoded       float64 // framesDecoded
	}
	dims, err := chromedp.Run(tctx, chromedp.Evaluate[[]float64]("[window.innerWidth, window.innerHeight]"))
	if err != nil || len(dims) != 2 {
		t.Fatalf("viewport: %v %v", dims, err)
	}
	// 1920×937 here (the window less its frame): 7 080 macroblocks a frame,
	// twice what level 3.1 allows.
	if dims[0]*dims[1]/256 <= 3600 {
		t.Fatalf("viewport %v×%v is within level 3.1; the test wants more", dims[0], dims[1])
	}
	var in inbound
	waitFor(t, 20*time.Second, fmt.Sprintf("H.264 at %v×%v in the viewer's stats", dims[0], dims[1]), func() (bool, string) {
		var err error
		in, err = chromedp.Run(tctx, chromedp.Evaluate[inbound](`(async () => {
			const out = {mime: "", Width: 0, Height: 0, Decoded: 0};
			for (const pc of (window.__gbPCs || [])) {
				const stats = await pc.getStats();
				stats.forEach(r => {
					if (r.type !== 'inbound-rtp' || r.kind !== 'video') return;
					const c = r.codecId && stats.get(r.codecId);
					out.mime = c ? c.mimeType : "";
					out.Width = r.frameWidth || 0;
					out.Height = r.frameHeight || 0;
					out.Decoded = r.framesDecoded || 0;
				});
			}
			return out;
		})()`, chromedp.EvalAwaitPromise))
		if err != nil {
			return false, err.Error()
		}
		// Frames are cropped to even sizes for 4:2:0.
		even := func(v float64) float64 { return float64(int(v) &^ 1) }
		return in.Mime == "video/H264" && in.Width == even(dims[0]) && in.Height == even(dims[1]) && in.Decoded > 0, fmt.Sprintf("%+v", in)
	})

	// A click changes the remote page; the H.264 stream shows it.
	if err := chromedp.Do(tctx, chromedp.MouseClickXY(1200, 700)); err != nil {
		t.Fatal(err)
	}
	waitForColour(t, tctx, 1200, 700, rgb{200, 0, 0}, 20*time.Second)

	end := closeAndTabEnd(t, g, closeTab)
	if end["codec"] != "h264" {
		t.Errorf("tab_end codec = %v, want h264", end["codec"])
	}
	if num(end, "frames_sent") < 2 {
		t.Errorf("tab_end frames_sent = %v", end["frames_sent"])
	}
	t.Logf("viewer: %+v; tab_end: %v", in, end)
}
