package main

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestCappedViewport: a window larger than tabs.max_width × max_height gets
// a remote viewport at the cap, shown scaled up in the landing page, and
// input still lands where the user sees it: on the remote input field and
// on the link.
func TestCappedViewport(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	g := startGlovebox(t, func(c *Config) {
		c.Proxy.Tabs.MaxWidth, c.Proxy.Tabs.MaxHeight = 640, 360
	})
	bctx := userBrowser(t, g.addr, chromedp.WindowSize(1280, 800))
	tctx, closeTab := openIsolated(t, bctx, site.URL+"/")
	defer closeTab()
	waitForColour(t, tctx, 10, 300, rgb{0, 160, 0}, 60*time.Second)

	geo := videoGeometry(t, tctx)
	if geo.VW != 640 || geo.VH != 360 {
		t.Fatalf("video %v×%v for a %v×%v window, want the 640×360 cap", geo.VW, geo.VH, geo.IW, geo.IH)
	}
	s := min(geo.RW/geo.VW, geo.RH/geo.VH) // object-fit: contain, from the top left
	if s < 1.5 {
		t.Fatalf("the video is shown at %.2f×, want it scaled up to the window (%+v)", s, geo)
	}
	inputLands(t, tctx, site, s)
}

// TestHiDPI: a user's browser at device pixel ratio 2 gets video at twice
// its CSS size, up to tabs.max_scale, and input lands where it is seen.
func TestHiDPI(t *testing.T) {
	needChromium(t)
	for _, tc := range []struct {
		name     string
		maxScale float64
		want     float64 // video pixels per CSS pixel
	}{{"max_scale 2", 2, 2}, {"max_scale 1.5", 1.5, 1.5}} {
		t.Run(tc.name, func(t *testing.T) {
			site := newTestSite(t)
			g := startGlovebox(t, func(c *Config) { c.Proxy.Tabs.MaxScale = tc.maxScale })
			bctx := userBrowser(t, g.addr, chromedp.WindowSize(800, 600), chromedp.Flag("force-device-scale-factor", "2"))
			tctx, closeTab := openIsolated(t, bctx, site.URL+"/")
			defer closeTab()
			waitForColour(t, tctx, 10, 300, rgb{0, 160, 0}, 60*time.Second)
			geo := videoGeometry(t, tctx)
			if geo.DPR != 2 {
				t.Fatalf("the user's browser runs at DPR %v, want 2", geo.DPR)
			}
			// Frames are cropped to even sizes for 4:2:0.
			if wantW, wantH := float64(int(math.Round(geo.IW*tc.want))&^1), float64(int(math.Round(geo.IH*tc.want))&^1); geo.VW != wantW || geo.VH != wantH {
				t.Fatalf("video %v×%v for a %v×%v CSS px window at DPR 2, want %v×%v", geo.VW, geo.VH, geo.IW, geo.IH, wantW, wantH)
			}
			// The video fills the window: one CSS pixel of the remote page
			// per CSS pixel of the landing page.
			inputLands(t, tctx, site, min(geo.RW/(geo.VW/tc.want), geo.RH/(geo.VH/tc.want)))
		})
	}
}

// geometry is the landing page's video: its size, its box (CSS px), the
// window, and the device pixel ratio.
type geometry struct {
	VW, VH, RW, RH, IW, IH, DPR float64
}

func videoGeometry(t *testing.T, ctx context.Context) geometry {
	t.Helper()
	geo, err := chromedp.Run(ctx, chromedp.Evaluate[geometry](`(() => {
		const v = document.querySelector('video'), r = v.getBoundingClientRect();
		return {VW: v.videoWidth, VH: v.videoHeight, RW: r.width, RH: r.height, IW: innerWidth, IH: innerHeight, DPR: devicePixelRatio};
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	return geo
}

// inputLands clicks the remote input field and types, then clicks the
// link, on a video that shows the remote page's CSS pixels s times larger.
func inputLands(t *testing.T, tctx context.Context, site *testSite, s float64) {
	t.Helper()
	at := func(x, y float64) chromedp.Action[chromedp.Void] { return chromedp.MouseClickXY(x*s, y*s) }

	// The remote input field is at (20..320, 120..160) in remote CSS pixels.
	if err := chromedp.Do(tctx, at(170, 140)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the remote input to report its focus", func() (bool, string) {
		return site.lastReport("focus") == "field", fmt.Sprintf("video shown at %.2f×", s)
	})
	if err := chromedp.Do(tctx, chromedp.KeyEvent("capped")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "typed text in the remote input", func() (bool, string) {
		got := site.lastReport("input")
		return got == "capped", fmt.Sprintf("%q (video shown at %.2f×)", got, s)
	})
	// The link is at (20..220, 20..80).
	if err := chromedp.Do(tctx, at(120, 50)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the link followed", func() (bool, string) {
		loc, _ := chromedp.Run(tctx, chromedp.Location())
		return loc == site.URL+"/next", loc
	})
}
