package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestIsolatedTabEndToEnd is the first issue's user story: a real Chromium
// with Glovebox as its proxy opens an isolated site, sees it as video, clicks,
// follows a link, types, never receives a byte of the site, and closing the
// tab ends the remote browser.
func TestIsolatedTabEndToEnd(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	g := startGlovebox(t, nil)
	runEndToEnd(t, g, site, browserPIDs)
}

// runEndToEnd is the user's story against a running Glovebox; remotePIDs
// lists the remote browser's processes, whatever runtime runs them. The
// site's scheme (site.URL) may be http or https; browserOpts go to
// userBrowser. It returns the tab id.
func runEndToEnd(t *testing.T, g *glovebox, site *testSite, remotePIDs func(browser string) []int, browserOpts ...chromedp.ExecAllocatorOption) string {
	bctx := userBrowser(t, g.addr, browserOpts...)

	// A tab of its own, so closing it leaves the browser running.
	var mu syncList
	tctx, closeTab := chromedp.NewContext(bctx, chromedp.WithListener(func(ev any) {
		if e, ok := ev.(*network.EventResponseReceived); ok {
			mu.add(e.RequestID, e.Response.URL, e.Response.Status)
		}
	}))
	defer closeTab()
	if err := chromedp.Do(tctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.Enable, network.EnableParams{})
		return err
	}), chromedp.Navigate(site.URL+"/")); err != nil {
		t.Fatalf("navigate the user's browser: %v", err)
	}

	// 1. The video shows the remote page: its green background.
	start := time.Now()
	waitForColour(t, tctx, 600, 400, rgb{0, 160, 0}, 60*time.Second)
	t.Logf("first green frame at the user's browser after %v", time.Since(start))
	if site.servedCount("/app.js") == 0 || site.servedCount("/style.css") == 0 {
		t.Fatalf("the remote browser did not load the site's script and stylesheet: %v", site.served)
	}
	waitFor(t, 10*time.Second, "the remote title in the user's tab", func() (bool, string) {
		title, _ := chromedp.Run(tctx, chromedp.Title())
		return title == "Glovebox Test Page", title
	})

	// 2a. A click on the video runs the remote page's click handler.
	if err := chromedp.Do(tctx, chromedp.MouseClickXY(600, 400)); err != nil {
		t.Fatal(err)
	}
	waitForColour(t, tctx, 600, 400, rgb{200, 0, 0}, 20*time.Second)
	if got := site.lastReport("click"); got != "clicked" {
		t.Errorf("the remote click handler reported %q, want clicked", got)
	}

	// 3. Text typed in the user's tab arrives in the remote input field.
	if err := chromedp.Do(tctx, chromedp.MouseClickXY(100, 140)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the remote input to report its focus", func() (bool, string) {
		return site.lastReport("focus") == "field", ""
	})
	if err := chromedp.Do(tctx, chromedp.KeyEvent("Hello Glovebox")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "typed text in the remote input", func() (bool, string) {
		got := site.lastReport("input")
		return got == "Hello Glovebox", got
	})

	// 2b. A click on a link navigates the remote page; the address bar follows.
	if err := chromedp.Do(tctx, chromedp.MouseClickXY(100, 50)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the user's address bar to follow the remote page", func() (bool, string) {
		loc, _ := chromedp.Run(tctx, chromedp.Location())
		return loc == site.URL+"/next", loc
	})
	waitForColour(t, tctx, 600, 400, rgb{0, 0, 200}, 20*time.Second)
	waitFor(t, 10*time.Second, "the next page's title", func() (bool, string) {
		title, _ := chromedp.Run(tctx, chromedp.Title())
		return title == "Next Page", title
	})

	// 4. None of the site's bytes reached the user's browser: not in any
	// response body it received, not in its DOM.
	html, err := chromedp.Run(tctx, chromedp.OuterHTML("html"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(html, site.marker) {
		t.Errorf("the site's marker is in the user's DOM")
	}
	responses := mu.all()
	if len(responses) < 3 {
		t.Fatalf("saw only %d responses in the user's browser; the network log is not working", len(responses))
	}
	for _, r := range responses {
		res, err := chromedp.Call(tctx, network.GetResponseBody, network.GetResponseBodyParams{RequestID: r.id})
		if err != nil {
			continue // redirects and bodiless responses have none
		}
		if strings.Contains(string(res.Body), site.marker) {
			t.Errorf("the site's marker reached the user's browser in %s", r.url)
		}
		// Only the landing page and Glovebox's own files may succeed; anything
		// else the user's browser asks of the site (its favicon) is refused.
		if !strings.Contains(r.url, "/.glovebox/") && r.url != site.URL+"/" && r.status != 403 {
			t.Errorf("unexpected response in the user's browser: %s %d", r.url, r.status)
		}
	}
	for _, e := range g.audit.events() {
		// Nothing is let through but Chromium trying ICE-TCP to Glovebox's
		// own media port through its proxy (the user's browser's background
		// requests may be blocked, which is fine).
		if e["event"] == "proxy_request" && e["action"] == "allow" && e["rule"] != "glovebox-media" {
			t.Errorf("audit: a request was not isolated: %v", e)
		}
	}

	// 5. Closing the user's tab ends the remote Chromium.
	var browser string
	for _, e := range g.audit.events() {
		if e["event"] == "tab_start" {
			browser, _ = e["browser"].(string)
		}
	}
	if n := len(remotePIDs(browser)); n == 0 || browser == "" {
		t.Fatal("no remote browser process found while the tab is open")
	}
	closeTab()
	waitFor(t, 30*time.Second, "the remote browser to end after the tab closed", func() (bool, string) {
		pids := remotePIDs(browser)
		return len(pids) == 0 && g.srv.Tabs() == 0, fmt.Sprintf("pids %v, tabs %d", pids, g.srv.Tabs())
	})
	var end map[string]any
	for _, e := range g.audit.events() {
		if e["event"] == "tab_end" {
			end = e
		}
	}
	if end == nil {
		t.Fatal("no tab_end audit event")
	}
	if end["reason"] != "closed by user" {
		t.Errorf("tab_end = %v, want reason 'closed by user'", end)
	}
	if f, _ := end["frames"].(float64); f < 2 {
		t.Errorf("tab_end frames = %v, want the frames sent", end["frames"])
	}
	if end["codec"] != "vp8" { // preferred by default, and Chromium takes it
		t.Errorf("tab_end codec = %v, want vp8", end["codec"])
	}
	tab, _ := end["tab"].(string)
	return tab
}
