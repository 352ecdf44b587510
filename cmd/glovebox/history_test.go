package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// The colours of testdata/site/history.html's pages.
var (
	historyRed    = rgb{200, 0, 0}
	historyGreen  = rgb{0, 160, 0}
	historyBlue   = rgb{0, 0, 200}
	historyYellow = rgb{220, 200, 0}
)

// historyTab is the user's tab on an isolated history page.
type historyTab struct {
	t    *testing.T
	ctx  context.Context
	site *testSite
}

// openHistoryTab opens site's path in a tab of a real user's Chromium with g
// as its proxy and waits for the page to show.
func openHistoryTab(t *testing.T, g *glovebox, site *testSite, path string, colour rgb) *historyTab {
	t.Helper()
	bctx := userBrowser(t, g.addr)
	tctx, cancel := chromedp.NewContext(bctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(tctx, chromedp.Navigate(site.URL+path)); err != nil {
		t.Fatalf("navigate the user's browser: %v", err)
	}
	h := &historyTab{t: t, ctx: tctx, site: site}
	waitForColour(t, tctx, 400, 300, colour, 60*time.Second)
	return h
}

// startHistory starts a Glovebox and a test site, and opens the site's
// first history page in a user's tab.
func startHistory(t *testing.T) (*historyTab, *glovebox, *testSite) {
	t.Helper()
	needChromium(t)
	site := newTestSite(t)
	g := startGlovebox(t, nil)
	h := openHistoryTab(t, g, site, "/history-a", historyRed)
	h.at("/history-a", "History A", historyRed)
	return h, g, site
}

// at waits until the remote page shows colour and the user's tab has the
// remote page's URL (path on the test site) and title.
func (h *historyTab) at(path, title string, colour rgb) {
	h.t.Helper()
	h.atURL(h.site.URL+path, title, colour)
}

// atURL is at for a URL on any site.
func (h *historyTab) atURL(want, title string, colour rgb) {
	h.t.Helper()
	waitForColour(h.t, h.ctx, 400, 300, colour, 60*time.Second)
	waitFor(h.t, 60*time.Second, "the user's tab at "+want+" titled "+title, func() (bool, string) {
		loc, err := chromedp.Run(h.ctx, chromedp.Location())
		if err != nil {
			return false, err.Error()
		}
		got, err := chromedp.Run(h.ctx, chromedp.Title())
		if err != nil {
			return false, err.Error()
		}
		return loc == want && got == title, loc + " " + got
	})
}

// length is the user's tab's history.length.
func (h *historyTab) length() int {
	h.t.Helper()
	n, err := chromedp.Run(h.ctx, chromedp.Evaluate[int](`history.length`))
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

// wantLength checks the user's tab's history.length.
func (h *historyTab) wantLength(want int, when string) {
	h.t.Helper()
	if n := h.length(); n != want {
		h.t.Errorf("history.length %s = %d, want %d", when, n, want)
	}
}

// step moves the user's tab delta entries in its history as the browser's
// Back and Forward buttons do, without waiting for a load: the landing page
// moves within its own document.
func (h *historyTab) step(delta int) {
	h.t.Helper()
	err := chromedp.Do(h.ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		res, err := chromedp.Call(ctx, page.GetNavigationHistory, cdp.Empty{})
		if err != nil {
			return err
		}
		i := int(res.CurrentIndex) + delta
		if i < 0 || i >= len(res.Entries) {
			return fmt.Errorf("no history entry %d of %d", i, len(res.Entries))
		}
		_, err = chromedp.Call(ctx, page.NavigateToHistoryEntry, page.NavigateToHistoryEntryParams{EntryID: res.Entries[i].ID})
		return err
	}))
	if err != nil {
		h.t.Fatalf("history step %d in the user's tab: %v", delta, err)
	}
}

// reload reloads the user's tab, as its reload button does.
func (h *historyTab) reload() {
	h.t.Helper()
	if err := chromedp.Do(h.ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, page.Reload, page.ReloadParams{})
		return err
	})); err != nil {
		h.t.Fatalf("reload the user's tab: %v", err)
	}
}

// click clicks the middle of the remote page, where its link is.
func (h *historyTab) click() {
	h.t.Helper()
	if err := chromedp.Do(h.ctx, chromedp.MouseClickXY(400, 300)); err != nil {
		h.t.Fatal(err)
	}
}

// report waits for the remote page's last report of event to be want.
func (h *historyTab) report(event, want string) {
	h.t.Helper()
	waitFor(h.t, 60*time.Second, "the remote page to report "+event+" "+want, func() (bool, string) {
		got := h.site.lastReport("history-" + event)
		return got == want, got
	})
}

// TestHistoryBackForward: remote navigations by link and pushState add
// entries to the user's own history, and the user's Back and Forward move
// the remote tab in step, as a local tab would; the remote page's own
// history.back() moves the user's history the same step, adding nothing.
func TestHistoryBackForward(t *testing.T) {
	h, g, _ := startHistory(t)
	n0 := h.length()

	// Two link navigations: two new local entries.
	h.click()
	h.at("/history-b", "History B", historyGreen)
	h.click()
	h.at("/history-c", "History C", historyBlue)
	h.wantLength(n0+2, "after two links")

	// Back shows the first page again, remotely and locally; so does Back
	// again; Forward returns. (The remote tab counts its loads: a 1, b 2,
	// c 3, then one more each time it shows a page again.)
	h.step(-1)
	h.at("/history-b", "History B", historyGreen)
	h.report("load", "/history-b 4")
	h.step(-1)
	h.at("/history-a", "History A", historyRed)
	h.report("load", "/history-a 5")
	h.step(1)
	h.at("/history-b", "History B", historyGreen)
	h.report("load", "/history-b 6")
	h.step(1)
	h.at("/history-c", "History C", historyBlue)
	h.report("load", "/history-c 7")
	h.wantLength(n0+2, "after Back and Forward")

	// pushState in the remote page adds an entry that Back undoes.
	h.click()
	h.report("pushed", "/history-c?pushed")
	h.at("/history-c?pushed", "History C pushed", historyYellow)
	h.wantLength(n0+3, "after pushState")
	h.step(-1)
	h.report("popstate", "/history-c")
	h.at("/history-c", "History C", historyBlue)

	// The remote page's own history.back() (on the key b): the user's tab
	// follows it back, and its Forward then goes where the remote page
	// came from: the two histories are still one.
	if err := chromedp.Do(h.ctx, chromedp.KeyEvent("b")); err != nil {
		t.Fatal(err)
	}
	h.report("key", "b")
	h.at("/history-b", "History B", historyGreen)
	h.report("load", "/history-b 8")
	h.wantLength(n0+3, "after the remote history.back()")
	h.step(1)
	h.at("/history-c", "History C", historyBlue)
	h.report("load", "/history-c 9")
	h.step(1)
	// The pushed entry and the one before it are one document (Chromium
	// keeps that when it loads the entry again): a popstate.
	h.at("/history-c?pushed", "History C pushed", historyYellow)
	h.report("popstate", "/history-c?pushed")

	if got := len(tabStarts(g)); got != 1 {
		t.Errorf("%d remote tabs started, want 1", got)
	}
}

// TestHistoryReload: reloading the landing page (F5, the reload button)
// reloads the remote page once, in the same remote tab.
func TestHistoryReload(t *testing.T) {
	h, g, site := startHistory(t)
	h.report("load", "/history-a 1")
	h.click()
	h.at("/history-b", "History B", historyGreen)
	h.report("load", "/history-b 2")
	n0 := h.length()

	h.reload()
	// The remote page loads again in the same tab (its sessionStorage
	// counts on), and the user's tab shows it at its URL.
	h.report("load", "/history-b 3")
	h.at("/history-b", "History B", historyGreen)
	h.wantLength(n0, "after reload")

	// Back still works after the reload: the entries are the remote ones.
	h.step(-1)
	h.at("/history-a", "History A", historyRed)
	h.report("load", "/history-a 4")
	if got := site.servedCount("/history-b"); got != 2 {
		t.Errorf("the remote page /history-b was loaded %d times, want 2 (link, one reload)", got)
	}
	if got := len(tabStarts(g)); got != 1 {
		t.Errorf("%d remote tabs started, want 1", got)
	}
}

// TestHistoryAfterTabEnded: when the remote tab has ended and a reload opens
// a new one, the user's tab stays where it is, and its older entries (the
// ended tab's) load their page anew, in a new tab, as a local tab would
// load a page that is not cached: they never name entries of the new tab.
func TestHistoryAfterTabEnded(t *testing.T) {
	h, g, _ := startHistory(t)
	h.click()
	h.at("/history-b", "History B", historyGreen)
	h.click()
	h.at("/history-c", "History C", historyBlue)
	h.report("load", "/history-c 3")
	n0 := h.length()

	tabs := g.srv.TabList()
	if len(tabs) != 1 || !g.srv.EndTab(tabs[0].Tab, "test") {
		t.Fatalf("end the tab: %+v", tabs)
	}
	waitFor(t, 60*time.Second, "the landing page to say the tab ended", func() (bool, string) {
		text, err := chromedp.Run(h.ctx, chromedp.Evaluate[string](`document.getElementById('glovebox-status').textContent`))
		return err == nil && strings.Contains(text, "has ended"), text
	})
	h.reload()
	// A new remote tab (a new browser: its page's first load) at the same
	// place; nothing moved in the user's history.
	h.report("load", "/history-c 1")
	h.at("/history-c", "History C", historyBlue)
	h.wantLength(n0, "after the reload")

	h.step(-1)
	h.at("/history-b", "History B", historyGreen)
	h.report("load", "/history-b 1")
	if got := len(tabStarts(g)); got != 3 {
		t.Errorf("%d remote tabs started, want 3 (the first, the reload's, Back's)", got)
	}
	h.click()
	h.at("/history-c", "History C", historyBlue)
	h.wantLength(n0, "after Back and a link")
}

// TestHistoryCrossOrigin: a link to another isolated origin hands the tab
// to a landing page there, as before, and that is one more entry in the
// user's history; Back returns to the first origin's landing page, which
// takes the same remote tab back to its page, and Forward goes again.
func TestHistoryCrossOrigin(t *testing.T) {
	needChromium(t)
	site, other := newTestSite(t), newTestSite(t) // two ports: two origins
	g := startGlovebox(t, nil)
	first := "/history-a?next=" + url.QueryEscape(other.URL+"/history-b")
	h := openHistoryTab(t, g, site, first, historyRed)
	h.at(first, "History A", historyRed)
	h.report("load", "/history-a 1")
	n0 := h.length()

	h.click()
	h.atURL(other.URL+"/history-b", "History B", historyGreen)
	waitFor(t, 60*time.Second, "the other origin's page to load", func() (bool, string) {
		got := other.lastReport("history-load")
		return got == "/history-b 1", got
	})
	h.wantLength(n0+1, "after the hand-over")

	h.step(-1)
	h.at(first, "History A", historyRed)
	h.report("load", "/history-a 2")
	h.step(1)
	h.atURL(other.URL+"/history-b", "History B", historyGreen)
	waitFor(t, 60*time.Second, "the other origin's page to load again", func() (bool, string) {
		got := other.lastReport("history-load")
		return got == "/history-b 2", got
	})
	h.wantLength(n0+1, "after Back and Forward")
	if got := len(tabStarts(g)); got != 1 {
		t.Errorf("%d remote tabs started, want 1", got)
	}
}

// tabStarts returns the tab_start audit events.
func tabStarts(g *glovebox) []map[string]any {
	var out []map[string]any
	for _, e := range g.audit.events() {
		if e["event"] == "tab_start" {
			out = append(out, e)
		}
	}
	return out
}
