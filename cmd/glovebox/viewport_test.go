package main

import (
	"fmt"
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

	type geometry struct {
		VW, VH, RW, RH, IW, IH float64 // video size, its box, the window
	}
	geo, err := chromedp.Run(tctx, chromedp.Evaluate[geometry](`(() => {
		const v = document.querySelector('video'), r = v.getBoundingClientRect();
		return {VW: v.videoWidth, VH: v.videoHeight, RW: r.width, RH: r.height, IW: innerWidth, IH: innerHeight};
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if geo.VW != 640 || geo.VH != 360 {
		t.Fatalf("video %v×%v for a %v×%v window, want the 640×360 cap", geo.VW, geo.VH, geo.IW, geo.IH)
	}
	s := min(geo.RW/geo.VW, geo.RH/geo.VH) // object-fit: contain, from the top left
	if s < 1.5 {
		t.Fatalf("the video is shown at %.2f×, want it scaled up to the window (%+v)", s, geo)
	}
	at := func(x, y float64) chromedp.Action[chromedp.Void] { return chromedp.MouseClickXY(x*s, y*s) }

	// The remote input field is at (20..320, 120..160) in remote CSS pixels.
	if err := chromedp.Do(tctx, at(170, 140)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let the focus reach the remote page
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
