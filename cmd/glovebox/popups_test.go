package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// The opener (testdata/site/popups.html) in the user's 800×600 window: a
// target=_blank link top left, a div whose click calls window.open top
// right, and one whose click calls window.close() below. The popup
// (popups-child.html) is orange, and closes itself on a click.
var (
	linkArea  = [2]int{200, 150}
	openArea  = [2]int{600, 150}
	closeArea = [2]int{400, 450}
	blue      = rgb{0, 0, 200}
	purple    = rgb{128, 0, 128}
	orange    = rgb{255, 128, 0}
)

// openOpener opens the opener in a new tab of the user's browser and waits
// for its video.
func openOpener(t testing.TB, bctx context.Context, site *testSite) context.Context {
	t.Helper()
	tctx, cancel := chromedp.NewContext(bctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(tctx, chromedp.Navigate(site.URL+"/popups")); err != nil {
		t.Fatalf("navigate the user's browser: %v", err)
	}
	waitForColour(t, tctx, linkArea[0], linkArea[1], blue, 60*time.Second)
	return tctx
}

// localPages lists the page targets of the user's browser.
func localPages(t testing.TB, bctx context.Context) map[target.ID]*target.Info {
	t.Helper()
	infos, err := chromedp.Targets(bctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[target.ID]*target.Info{}
	for _, info := range infos {
		if info.Type == "page" {
			out[info.TargetID] = info
		}
	}
	return out
}

// waitLocalTab waits for a page of the user's browser, not in before, at
// a URL that starts with prefix, and attaches to it.
func waitLocalTab(t testing.TB, bctx context.Context, before map[target.ID]*target.Info, prefix string) context.Context {
	t.Helper()
	var id target.ID
	waitFor(t, 60*time.Second, "a new local tab at "+prefix, func() (bool, string) {
		var urls []string
		for tid, info := range localPages(t, bctx) {
			if _, old := before[tid]; !old && strings.HasPrefix(info.URL, prefix) {
				id = tid
				return true, ""
			}
			urls = append(urls, info.URL)
		}
		return false, strings.Join(urls, " ")
	})
	ctx, cancel := chromedp.NewContext(bctx, chromedp.WithTargetID(id))
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("attach to the new local tab: %v", err)
	}
	return ctx
}

func click(t testing.TB, ctx context.Context, at [2]int) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.MouseClickXY(float64(at[0]), float64(at[1]))); err != nil {
		t.Fatal(err)
	}
}

func waitTitle(t testing.TB, ctx context.Context, want string) {
	t.Helper()
	waitFor(t, 30*time.Second, "the title "+want, func() (bool, string) {
		title, _ := chromedp.Run(ctx, chromedp.Title())
		return title == want, title
	})
}

func waitTabs(t testing.TB, g *glovebox, n int) {
	t.Helper()
	waitFor(t, 60*time.Second, "the isolated tabs to number "+string(rune('0'+n)), func() (bool, string) {
		got := g.srv.Tabs()
		return got == n, string(rune('0' + got))
	})
}

func waitReport(t testing.TB, site *testSite, event, want string) {
	t.Helper()
	waitFor(t, 30*time.Second, "the remote page's report "+event, func() (bool, string) {
		got := site.lastReport(event)
		return got == want, got
	})
}

// TestPopupTargetBlank: a target=_blank link clicked in the video opens a
// second local tab that shows the popup (its colour, its title); the
// remote popup has its opener and its message reaches it; the popup's
// window.close() closes the local tab and its remote tab, and the opener
// goes on: a window.open from a click opens another local tab.
func TestPopupTargetBlank(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	g := startGlovebox(t, nil)
	bctx := userBrowser(t, g.addr)
	opener := openOpener(t, bctx, site)

	before := localPages(t, bctx)
	click(t, opener, linkArea)
	popup := waitLocalTab(t, bctx, before, site.URL+"/popups-child?by=link")
	waitForColour(t, popup, 400, 300, orange, 60*time.Second)
	waitTitle(t, popup, "Popup Child")
	waitReport(t, site, "popups-opener-link", "true")
	waitReport(t, site, "popups-message", "hello from link")
	waitTabs(t, g, 2)

	// window.close() in the popup: the local tab and the remote one go.
	popupID := chromedp.FromContext(popup).Target.TargetID
	click(t, popup, [2]int{400, 300})
	waitFor(t, 60*time.Second, "the popup's local tab to close", func() (bool, string) {
		_, open := localPages(t, bctx)[popupID]
		return !open, ""
	})
	waitTabs(t, g, 1)

	// The opener still works, and window.open from a click is a popup too.
	before = localPages(t, bctx)
	click(t, opener, openArea)
	second := waitLocalTab(t, bctx, before, site.URL+"/popups-child?by=open")
	waitForColour(t, second, 400, 300, orange, 60*time.Second)
	waitReport(t, site, "popups-opener-open", "true")
	waitReport(t, site, "popups-message", "hello from open")
	waitTabs(t, g, 2)
}

// TestPopupUserLimit: popups count against tabs.max_per_user; past it the
// remote window is closed, no local tab opens, and the user is told.
func TestPopupUserLimit(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	g := startGlovebox(t, func(c *Config) { c.Proxy.Tabs.MaxPerUser = 2 })
	bctx := userBrowser(t, g.addr)
	opener := openOpener(t, bctx, site)

	before := localPages(t, bctx)
	click(t, opener, openArea)
	waitLocalTab(t, bctx, before, site.URL+"/popups-child?by=open")
	waitTabs(t, g, 2)

	before = localPages(t, bctx)
	click(t, opener, linkArea)
	waitFor(t, 60*time.Second, "the landing page to say the window was not opened", func() (bool, string) {
		text, _ := chromedp.Run(opener, chromedp.Evaluate[string](`document.getElementById('glovebox-status').textContent`))
		return strings.Contains(text, "did not open") && strings.Contains(text, "2 isolated tabs"), text
	})
	if g.srv.Tabs() != 2 {
		t.Errorf("%d isolated tabs past the limit of 2", g.srv.Tabs())
	}
	for id, info := range localPages(t, bctx) {
		if _, old := before[id]; !old {
			t.Errorf("a local tab opened past the limit: %s", info.URL)
		}
	}
}

// TestPopupBlocked: a window the user's browser blocks (its window.open
// comes with no user activation: here the click reaches the video as a
// synthetic event) shows the prompt, whose Open button opens it.
func TestPopupBlocked(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	g := startGlovebox(t, nil)
	bctx := userBrowser(t, g.addr, chromedp.Flag("disable-popup-blocking", false))
	opener := openOpener(t, bctx, site)

	before := localPages(t, bctx)
	const synthetic = `(() => {
		const v = document.getElementById('glovebox-screen');
		for (const type of ['mousemove', 'mousedown', 'mouseup'])
			v.dispatchEvent(new MouseEvent(type, {clientX: 600, clientY: 150, button: 0, buttons: type === 'mousedown' ? 1 : 0, detail: 1, bubbles: true}));
		return navigator.userActivation.hasBeenActive;
	})()`
	active, err := chromedp.Run(opener, chromedp.Evaluate[bool](synthetic))
	if err != nil {
		t.Fatal(err)
	}
	if active {
		t.Fatal("the user's page has had an activation: its popup would not be blocked")
	}
	waitFor(t, 60*time.Second, "the blocked-popup prompt", func() (bool, string) {
		text, _ := chromedp.Run(opener, chromedp.Evaluate[string](`(document.getElementById('glovebox-popup-text') || {}).textContent || ''`))
		return text == "This page opened a new window: "+site.URL+"/popups-child?by=open", text
	})
	if n := len(localPages(t, bctx)); n != len(before) {
		t.Fatalf("%d local tabs, want %d: the popup was not blocked", n, len(before))
	}
	if err := chromedp.Do(opener, chromedp.Click("#glovebox-popup-open")); err != nil {
		t.Fatal(err)
	}
	popup := waitLocalTab(t, bctx, before, site.URL+"/popups-child?by=open")
	waitForColour(t, popup, 400, 300, orange, 60*time.Second)
	waitReport(t, site, "popups-opener-open", "true")
	if n, err := chromedp.Run(opener, chromedp.Evaluate[int](`document.querySelectorAll('#glovebox-popup-blocked').length`)); err != nil || n != 0 {
		t.Errorf("the prompt is still shown (%d, %v)", n, err)
	}
}

// TestPopupMainTabClosesItself: window.close() in the first tab ends it,
// and its landing page, which cannot close a tab the user opened, says so.
func TestPopupMainTabClosesItself(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	g := startGlovebox(t, nil)
	bctx := userBrowser(t, g.addr)
	opener := openOpener(t, bctx, site)
	waitTabs(t, g, 1)
	click(t, opener, closeArea)
	waitFor(t, 60*time.Second, "the landing page to say the page closed itself", func() (bool, string) {
		text, _ := chromedp.Run(opener, chromedp.Evaluate[string](`document.getElementById('glovebox-status').textContent`))
		return text == "The page closed itself.", text
	})
	waitTabs(t, g, 0)
}
