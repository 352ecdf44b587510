package main

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
)

// setMinimized minimises or restores the window of the user's tab tctx: its
// page is then hidden or visible (Page Visibility), as when the user
// switches to another tab or application.
func setMinimized(t testing.TB, tctx context.Context, on bool) {
	t.Helper()
	id := chromedp.FromContext(tctx).Target.TargetID
	w, err := chromedp.CallBrowser(tctx, browser.GetWindowForTarget, browser.GetWindowForTargetParams{TargetID: id})
	if err != nil {
		t.Fatalf("window of the user's tab: %v", err)
	}
	state := browser.WindowStateNormal
	if on {
		state = browser.WindowStateMinimized
	}
	if _, err := chromedp.CallBrowser(tctx, browser.SetWindowBounds, browser.SetWindowBoundsParams{WindowID: w.WindowID, Bounds: &browser.Bounds{WindowState: state}}); err != nil {
		t.Fatalf("window %s: %v", state, err)
	}
}

// videoPackets is how many video packets the user's tab has received.
func videoPackets(t testing.TB, tctx context.Context) int {
	t.Helper()
	c, err := readViewer(tctx)
	if err != nil {
		t.Fatalf("video packets: %v", err)
	}
	return int(c.Packets)
}

// ticks is the remote page's last tick (testdata/site/hidden.html).
func (s *testSite) ticks() int {
	n, _ := strconv.Atoi(s.lastReport("tick"))
	return n
}

// TestHiddenTab: the user's tab hidden (its window minimised), the remote
// page is frozen (its script stops, the Page Lifecycle's freeze event) and
// no video comes; shown again, the page resumes and the user sees a fresh
// frame of it. With tabs.hidden: pause the page runs on
// unseen, with stream the video goes on too.
func TestHiddenTab(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	g := startGlovebox(t, nil)
	bctx := userBrowser(t, g.addr)
	tctx, closeTab := openIsolated(t, bctx, site.URL+"/hidden")
	defer closeTab()
	waitForColour(t, tctx, 20, 300, rgb{0, 0, 200}, 30*time.Second)
	waitFor(t, 10*time.Second, "the remote page's ticks", func() (bool, string) { return site.ticks() > 2, "" })

	setMinimized(t, tctx, true)
	waitFor(t, 10*time.Second, "the remote page to freeze", func() (bool, string) {
		return site.lastReport("freeze") != "", fmt.Sprint(site.lastReport("visibility"))
	})
	if v := site.lastReport("visibility"); v != "hidden" {
		t.Errorf("the remote page's visibility while frozen: %q", v)
	}
	frozenAt := site.ticks()
	// Glovebox pauses the video just after the page froze: packets sent
	// before may still come.
	time.Sleep(300 * time.Millisecond)
	p0 := videoPackets(t, tctx)
	// Long enough for seven ticks and the idle refresh of a still page
	// (a packet a second), were either going on.
	time.Sleep(1500 * time.Millisecond)
	if n := site.ticks(); n > frozenAt+1 { // one may have been on its way
		t.Errorf("the frozen page ticked on: %d after %d", n, frozenAt)
	}
	if d := videoPackets(t, tctx) - p0; d > 0 {
		t.Errorf("%d video packets came to a hidden tab in 1.5 s", d)
	}

	setMinimized(t, tctx, false)
	waitFor(t, 10*time.Second, "the remote page to resume", func() (bool, string) {
		return site.lastReport("resume") != "", ""
	})
	// Green only after the resume: a fresh frame.
	waitForColour(t, tctx, 20, 300, rgb{0, 200, 0}, 10*time.Second)
	waitFor(t, 10*time.Second, "the page to tick on", func() (bool, string) { return site.ticks() > frozenAt+2, "" })
	saveShot(t, tctx, "hidden-shown")

	// pause: the picture stops, the page runs on; stream: both go on.
	for _, mode := range []string{"pause", "stream"} {
		t.Run(mode, func(t *testing.T) {
			site := newTestSite(t)
			g := startGlovebox(t, func(c *Config) { c.Proxy.Tabs.Hidden = mode })
			bctx := userBrowser(t, g.addr)
			tctx, closeTab := openIsolated(t, bctx, site.URL+"/hidden")
			defer closeTab()
			waitFor(t, 10*time.Second, "the remote page's ticks", func() (bool, string) { return site.ticks() > 2, "" })
			setMinimized(t, tctx, true)
			waitFor(t, 10*time.Second, "the user's page hidden", func() (bool, string) {
				v, err := chromedp.Run(tctx, chromedp.Evaluate[string](`document.visibilityState`))
				return err == nil && v == "hidden", v
			})
			// The landing page's message has long reached Glovebox once
			// the remote page has ticked twice more.
			n := site.ticks()
			waitFor(t, 10*time.Second, "the page to tick while hidden", func() (bool, string) { return site.ticks() > n+2, "" })
			p0 := videoPackets(t, tctx)
			n = site.ticks()
			waitFor(t, 10*time.Second, "the page to tick on while hidden", func() (bool, string) { return site.ticks() > n+5, "" })
			if site.lastReport("freeze") != "" || site.lastReport("visibility") != "" {
				t.Errorf("the remote page saw freeze %q, visibility %q", site.lastReport("freeze"), site.lastReport("visibility"))
			}
			got := videoPackets(t, tctx) - p0
			if mode == "pause" && got != 0 {
				t.Errorf("%d video packets came to a hidden tab", got)
			}
			if mode == "stream" && got == 0 {
				t.Error("no video came to a hidden tab with tabs.hidden stream")
			}
			setMinimized(t, tctx, false)
			waitForColour(t, tctx, 20, 300, rgb{0, 0, 200}, 10*time.Second)
		})
	}
}
