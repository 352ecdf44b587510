package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// The opener (testdata/site/popups.html) in the user's 800×600 window: a
// target=_blank link top left, a div whose click calls window.open top
// right (of ?to=, or of this site's child), and one whose click calls
// window.close() below. The popup (popups-child.html) is orange, greets
// its opener, and on a click answers it and closes itself.
var (
	linkArea  = [2]int{200, 150}
	openArea  = [2]int{600, 150}
	closeArea = [2]int{400, 450}
	orange    = rgb{255, 128, 0}
)

// openOpener opens the opener (with query, if any) in a new tab of the
// user's browser and waits for its video.
func openOpener(t testing.TB, bctx context.Context, site *testSite, query string) context.Context {
	t.Helper()
	tctx, cancel := chromedp.NewContext(bctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(tctx, chromedp.Navigate(site.URL+"/popups"+query)); err != nil {
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

// waitLocalTabGone waits for the user's browser to have closed ctx's tab.
func waitLocalTabGone(t testing.TB, bctx, ctx context.Context) {
	t.Helper()
	id := chromedp.FromContext(ctx).Target.TargetID
	waitFor(t, 60*time.Second, "the local tab to close", func() (bool, string) {
		info, open := localPages(t, bctx)[id]
		if open {
			return false, info.URL
		}
		return true, ""
	})
}

// closeLocalTab closes ctx's tab as the user would.
func closeLocalTab(t testing.TB, bctx, ctx context.Context) {
	t.Helper()
	id := chromedp.FromContext(ctx).Target.TargetID
	if _, err := chromedp.CallBrowser(bctx, target.CloseTarget, target.CloseTargetParams{TargetID: id}); err != nil {
		t.Fatalf("close the local tab: %v", err)
	}
}

func click(t testing.TB, ctx context.Context, at [2]int) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.MouseClickXY(float64(at[0]), float64(at[1]))); err != nil {
		t.Fatal(err)
	}
}

func waitTitle(t testing.TB, ctx context.Context, want string) {
	t.Helper()
	waitFor(t, 60*time.Second, "the title "+want, func() (bool, string) {
		title, _ := chromedp.Run(ctx, chromedp.Title())
		return title == want, title
	})
}

func waitTabs(t testing.TB, g *glovebox, n int) {
	t.Helper()
	waitFor(t, 60*time.Second, fmt.Sprintf("%d isolated tabs", n), func() (bool, string) {
		got := g.srv.Tabs()
		return got == n, fmt.Sprint(got)
	})
}

func waitReport(t testing.TB, site *testSite, event, want string) {
	t.Helper()
	waitFor(t, 60*time.Second, "the remote page's report "+event, func() (bool, string) {
		got := site.lastReport(event)
		return got == want, got
	})
}

// statusText is what the landing page shows in its status line.
func statusText(ctx context.Context) string {
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.getElementById('glovebox-status') || {}).textContent || ''`))
	return text
}

// tabEndReason is the reason of tab's tab_end audit event, or "".
func tabEndReason(g *glovebox, tab string) string {
	for _, e := range g.audit.events() {
		if e["event"] == "tab_end" && e["tab"] == tab {
			return fmt.Sprint(e["reason"])
		}
	}
	return ""
}

// popupWorld is what each popup test starts with: the test site, a
// Glovebox (mutate, if any, changes its config), the user's browser
// (with opts) and the opener in a tab of it.
type popupWorld struct {
	site   *testSite
	g      *glovebox
	bctx   context.Context
	opener context.Context
}

func startPopups(t testing.TB, mutate func(*Config), opts ...chromedp.ExecAllocatorOption) popupWorld {
	t.Helper()
	needChromium(t)
	w := popupWorld{site: newTestSite(t), g: startGlovebox(t, mutate)}
	w.bctx = userBrowser(t, w.g.addr, opts...)
	w.opener = openOpener(t, w.bctx, w.site, "")
	return w
}

// TestPopupTargetBlank: a target=_blank link clicked in the video opens a
// second local tab that shows the popup (its colour, its title); the
// remote popup loaded, has its opener (rel=opener), and its message
// reaches it. A noopener link opens one too.
func TestPopupTargetBlank(t *testing.T) {
	w := startPopups(t, nil)
	site, g, bctx, opener := w.site, w.g, w.bctx, w.opener

	before := localPages(t, bctx)
	click(t, opener, linkArea)
	popup := waitLocalTab(t, bctx, before, site.URL+"/popups-child?by=link")
	waitForColour(t, popup, 400, 300, orange, 60*time.Second)
	waitTitle(t, popup, "Popup Child")
	waitReport(t, site, "popups-opener-link", "true")
	waitReport(t, site, "popups-message", "hello from link ("+site.URL+")")
	waitTabs(t, g, 2)
	if n := len(localPages(t, bctx)); n != len(before)+1 {
		t.Errorf("%d local tabs, want %d: one for the popup", n, len(before)+1)
	}
	// The opener's own tab is as it was.
	waitForColour(t, opener, linkArea[0], linkArea[1], blue, 60*time.Second)

	// A link as most are (noopener, the default of target=_blank) opens
	// one too, with no opener remotely either.
	plain := openOpener(t, bctx, site, "?noopener")
	before = localPages(t, bctx)
	click(t, plain, linkArea)
	popup = waitLocalTab(t, bctx, before, site.URL+"/popups-child?by=link")
	waitForColour(t, popup, 400, 300, orange, 60*time.Second)
	waitReport(t, site, "popups-opener-link", "false")
	waitTabs(t, g, 4)
}

// TestPopupWindowOpenOAuth: window.open from a click opens a window of
// another origin, as an OAuth sign-in does: a local tab at that origin
// shows it, window.opener works both ways (the popup greets its opener,
// and on the user's click answers it and closes itself), and then the
// local tab and its isolated tab are gone while the opener goes on.
func TestPopupWindowOpenOAuth(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	idp := newTestSite(t) // the identity provider: another origin
	g := startGlovebox(t, nil)
	bctx := userBrowser(t, g.addr)
	opener := openOpener(t, bctx, site, "?to="+idp.URL+"/popups-child%3Fby%3Doauth")

	before := localPages(t, bctx)
	click(t, opener, openArea)
	popup := waitLocalTab(t, bctx, before, idp.URL+"/popups-child?by=oauth")
	waitForColour(t, popup, 400, 300, orange, 60*time.Second)
	waitReport(t, idp, "popups-opener-oauth", "true")
	waitReport(t, site, "popups-message", "hello from oauth ("+idp.URL+")")
	waitTabs(t, g, 2)
	// The local windows are not linked: the opener's landing page is not
	// the popup's opener, whatever site the popup's tab goes to later.
	if linked, err := chromedp.Run(popup, chromedp.Evaluate[bool](`window.opener !== null`)); err != nil || linked {
		t.Errorf("the popup's local tab has an opener (%v, %v)", linked, err)
	}

	click(t, popup, [2]int{400, 300})
	waitReport(t, site, "popups-message", "done from oauth ("+idp.URL+")")
	waitLocalTabGone(t, bctx, popup)
	waitTabs(t, g, 1)
	waitForColour(t, opener, linkArea[0], linkArea[1], blue, 60*time.Second)
}

// TestPopupWindowClose: the popup's window.close() closes its local tab
// and ends its isolated tab; the opener goes on, and opens another.
func TestPopupWindowClose(t *testing.T) {
	w := startPopups(t, nil)
	site, g, bctx, opener := w.site, w.g, w.bctx, w.opener
	openerTab := g.srv.TabList()[0].Tab

	before := localPages(t, bctx)
	click(t, opener, openArea)
	popup := waitLocalTab(t, bctx, before, site.URL+"/popups-child?by=open")
	waitForColour(t, popup, 400, 300, orange, 60*time.Second)
	waitTabs(t, g, 2)
	var popupTab string
	for _, ti := range g.srv.TabList() {
		if ti.Tab != openerTab {
			popupTab = ti.Tab
		}
	}

	click(t, popup, [2]int{400, 300})
	waitLocalTabGone(t, bctx, popup)
	waitTabs(t, g, 1)
	if got := g.srv.TabList()[0].Tab; got != openerTab {
		t.Fatalf("tab %s is left, want the opener's %s", got, openerTab)
	}
	waitFor(t, 30*time.Second, "the popup's tab_end", func() (bool, string) {
		r := tabEndReason(g, popupTab)
		return r == "closed by page", r
	})

	before = localPages(t, bctx)
	click(t, opener, linkArea)
	second := waitLocalTab(t, bctx, before, site.URL+"/popups-child?by=link")
	waitForColour(t, second, 400, 300, orange, 60*time.Second)
	waitTabs(t, g, 2)
}

// TestPopupMainTabClosesItself: window.close() in the first tab ends it,
// and its landing page, which cannot close a tab the user opened, says so.
func TestPopupMainTabClosesItself(t *testing.T) {
	w := startPopups(t, nil)
	g, opener := w.g, w.opener
	waitTabs(t, g, 1)
	click(t, opener, closeArea)
	waitFor(t, 60*time.Second, "the landing page to say the page closed itself", func() (bool, string) {
		text := statusText(opener)
		return text == "The page closed itself.", text
	})
	waitTabs(t, g, 0)
}

// clickWithoutActivation clicks the opener's window.open area with events
// dispatched by script, which give the user's page no activation: the
// window its landing page then opens is one a browser blocks.
func clickWithoutActivation(t testing.TB, opener context.Context) {
	t.Helper()
	js := fmt.Sprintf(`(() => {
		const v = document.getElementById('glovebox-screen');
		for (const type of ['mousemove', 'mousedown', 'mouseup'])
			v.dispatchEvent(new MouseEvent(type, {clientX: %d, clientY: %d, button: 0, buttons: type === 'mousedown' ? 1 : 0, detail: 1, bubbles: true}));
		return navigator.userActivation.isActive;
	})()`, openArea[0], openArea[1])
	active, err := chromedp.Run(opener, chromedp.Evaluate[bool](js))
	if err != nil {
		t.Fatal(err)
	}
	if active {
		t.Fatal("the user's page has an activation: its popup would not be blocked")
	}
}

// waitBlockedPrompt waits for the landing page's prompt for the blocked
// window at u.
func waitBlockedPrompt(t testing.TB, opener context.Context, u string) {
	t.Helper()
	waitFor(t, 60*time.Second, "the blocked-popup prompt", func() (bool, string) {
		text, _ := chromedp.Run(opener, chromedp.Evaluate[string](`(document.getElementById('glovebox-popup-text') || {}).textContent || ''`))
		return text == "This page opened a new window: "+u, text
	})
}

// TestPopupBlocked: a window the user's browser blocks (its window.open
// comes with no user activation) shows the prompt, whose Open button
// opens it; its Dismiss button ends the next one's tab, remote window and
// all.
func TestPopupBlocked(t *testing.T) {
	w := startPopups(t, nil, chromedp.Flag("disable-popup-blocking", false))
	site, g, bctx, opener := w.site, w.g, w.bctx, w.opener

	before := localPages(t, bctx)
	clickWithoutActivation(t, opener)
	waitBlockedPrompt(t, opener, site.URL+"/popups-child?by=open")
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
	waitTabs(t, g, 2)

	// The next blocked window, dismissed.
	tabs := map[string]bool{}
	for _, ti := range g.srv.TabList() {
		tabs[ti.Tab] = true
	}
	before = localPages(t, bctx)
	clickWithoutActivation(t, opener)
	waitBlockedPrompt(t, opener, site.URL+"/popups-child?by=open")
	waitTabs(t, g, 3)
	var dismissed string
	for _, ti := range g.srv.TabList() {
		if !tabs[ti.Tab] {
			dismissed = ti.Tab
		}
	}
	if err := chromedp.Do(opener, chromedp.Click("#glovebox-popup-dismiss")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the dismissed popup's tab_end", func() (bool, string) {
		r := tabEndReason(g, dismissed)
		return r == "popup dismissed by user", r
	})
	waitTabs(t, g, 2)
	if n := len(localPages(t, bctx)); n != len(before) {
		t.Errorf("%d local tabs after the dismissal, want %d", n, len(before))
	}
}

// TestPopupUserLimit: popups count against tabs.max_per_user; past it the
// remote window is closed, no local tab opens, and the user is told.
// Nothing is left over: once the popup closes another may open, and when
// the user closes the tabs, every isolated tab and remote browser ends.
func TestPopupUserLimit(t *testing.T) {
	w := startPopups(t, func(c *Config) { c.Proxy.Tabs.MaxPerUser = 2 })
	site, g, bctx, opener := w.site, w.g, w.bctx, w.opener

	before := localPages(t, bctx)
	click(t, opener, openArea)
	first := waitLocalTab(t, bctx, before, site.URL+"/popups-child?by=open")
	waitTabs(t, g, 2)

	before = localPages(t, bctx)
	click(t, opener, linkArea)
	waitFor(t, 60*time.Second, "the landing page to say the window was not opened", func() (bool, string) {
		text := statusText(opener)
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
	waitFor(t, 30*time.Second, "the refusal in the log", func() (bool, string) {
		return strings.Contains(g.logs.String(), "popup refused"), ""
	})

	// The refused window held no slot: with the first popup closed by
	// the user, the same link opens one.
	closeLocalTab(t, bctx, first)
	waitTabs(t, g, 1)
	before = localPages(t, bctx)
	click(t, opener, linkArea)
	second := waitLocalTab(t, bctx, before, site.URL+"/popups-child?by=link")
	waitForColour(t, second, 400, 300, orange, 60*time.Second)
	waitTabs(t, g, 2)

	// The opener and its popup share one remote browser, which ends with
	// the last of them, whichever order they close in.
	if len(browserPIDs(g.tmp)) == 0 {
		t.Fatal("no remote browser process while the tabs are open")
	}
	closeLocalTab(t, bctx, opener)
	waitTabs(t, g, 1)
	waitForColour(t, second, 400, 300, orange, 60*time.Second)
	if len(browserPIDs(g.tmp)) == 0 {
		t.Fatal("the remote browser ended with the opener, under its popup")
	}
	closeLocalTab(t, bctx, second)
	waitFor(t, 60*time.Second, "every tab and remote browser to end", func() (bool, string) {
		pids := browserPIDs(g.tmp)
		return g.srv.Tabs() == 0 && len(pids) == 0, fmt.Sprintf("tabs %d, pids %v", g.srv.Tabs(), pids)
	})
}

// TestPopupClaimOnlyByItsUser: the window a remote page opened is handed
// only to its opener's landing page and its user: another user (another
// address, with no sign-in) and another of the user's own tabs get the
// unknown answers; its code is claimed once, by that user, on the
// popup's origin; and neither codes nor tokens reach the logs.
func TestPopupClaimOnlyByItsUser(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	other := newTestSite(t)
	// Codes live long enough for every try below, however slow the machine.
	g := startGlovebox(t, func(c *Config) { c.Proxy.Tabs.ReattachGrace = time.Minute })
	bctx := userBrowser(t, g.addr, chromedp.Flag("disable-popup-blocking", false))
	opener := openOpener(t, bctx, site, "")
	openerTab := g.srv.TabList()[0].Tab
	token, err := chromedp.Run(opener, chromedp.Evaluate[string](`sessionStorage.getItem('glovebox.tab') || ''`))
	if err != nil || token == "" {
		t.Fatalf("the landing page's token: %q %v", token, err)
	}

	// A window that waits for its landing page: the user's browser blocked it.
	clickWithoutActivation(t, opener)
	popupURL := site.URL + "/popups-child?by=open"
	waitBlockedPrompt(t, opener, popupURL)
	var popupTab string
	for _, ti := range g.srv.TabList() {
		if ti.Tab != openerTab {
			popupTab = ti.Tab
		}
	}
	if popupTab == "" {
		t.Fatal("no isolated tab for the popup")
	}

	api := site.URL + "/.glovebox/api"
	ask := map[string]any{"id": popupTab, "url": popupURL}
	_, unknown := apiCall(t, g, "127.0.0.2", api+"/tabs/"+strings.Repeat("A", len(token))+"/popup", ask)
	if s, o := apiCall(t, g, "127.0.0.2", api+"/tabs/"+token+"/popup", ask); s != 404 || fmt.Sprint(o) != fmt.Sprint(unknown) {
		t.Errorf("another user asks for the popup: %d %v, want the unknown-token answer %v", s, o, unknown)
	}
	// Another tab of the same user is not its opener.
	s, o := apiCall(t, g, "127.0.0.1", api+"/tabs", map[string]any{"url": site.URL + "/", "width": 800, "height": 600})
	if s != 201 {
		t.Fatalf("another tab: %d %v", s, o)
	}
	otherToken := o["token"].(string)
	if s, o := apiCall(t, g, "127.0.0.1", api+"/tabs/"+otherToken+"/popup", ask); s != 404 || o["error"] != "no_tab" {
		t.Errorf("another of the user's tabs asks for the popup: %d %v, want 404 no_tab", s, o)
	}
	if s, o := apiCall(t, g, "127.0.0.1", api+"/tabs/"+token+"/popup", map[string]any{"id": openerTab, "url": popupURL}); s != 404 || o["error"] != "no_tab" {
		t.Errorf("the opener asks for itself as its popup: %d %v, want 404 no_tab", s, o)
	}

	// The opener's landing page gets a code, good once, for its user, on
	// the popup's origin.
	s, o = apiCall(t, g, "127.0.0.1", api+"/tabs/"+token+"/popup", ask)
	code, _ := o["code"].(string)
	if s != 200 || code == "" {
		t.Fatalf("the opener asks for its popup: %d %v, want a code", s, o)
	}
	if s, o := apiCall(t, g, "127.0.0.2", api+"/claim", map[string]any{"code": code}); s != 404 {
		t.Errorf("another user claims the popup's code: %d %v", s, o)
	}
	if s, o := apiCall(t, g, "127.0.0.1", other.URL+"/.glovebox/api/claim", map[string]any{"code": code}); s != 404 {
		t.Errorf("the popup's code claimed on another origin: %d %v", s, o)
	}
	s, o = apiCall(t, g, "127.0.0.1", api+"/claim", map[string]any{"code": code})
	popupToken, _ := o["token"].(string)
	if s != 200 || o["tab"] != popupTab || popupToken == "" {
		t.Fatalf("the user claims the popup's code: %d %v, want tab %s", s, o, popupTab)
	}
	if s, o := apiCall(t, g, "127.0.0.1", api+"/claim", map[string]any{"code": code}); s != 404 {
		t.Errorf("the popup's code claimed twice: %d %v", s, o)
	}

	// The prompt still opens the window, with a code of its own.
	before := localPages(t, bctx)
	if err := chromedp.Do(opener, chromedp.Click("#glovebox-popup-open")); err != nil {
		t.Fatal(err)
	}
	popup := waitLocalTab(t, bctx, before, popupURL)
	waitForColour(t, popup, 400, 300, orange, 60*time.Second)
	waitReport(t, site, "popups-opener-open", "true")
	local, err := chromedp.Run(popup, chromedp.Evaluate[string](`location.href`))
	if err != nil || local != popupURL {
		t.Errorf("the popup's local tab is at %q (%v), want %q with no code", local, err, popupURL)
	}

	logs, audit := g.logs.String(), g.audit.String()
	if !strings.Contains(logs, popupTab) {
		t.Fatal("the log does not name the popup's tab: it is not the log of this test")
	}
	for name, secret := range map[string]string{"the opener's token": token, "the popup's token": popupToken, "the other tab's token": otherToken, "the popup's code": code} {
		for _, where := range []struct{ name, text string }{{"log", logs}, {"audit", audit}} {
			if strings.Contains(where.text, secret) {
				i := strings.Index(where.text, secret)
				t.Errorf("%s is in the %s: %q", name, where.name, where.text[max(0, i-200):min(len(where.text), i+len(secret)+50)])
			}
		}
	}
}

// TestPopupContainerd: with the containerd runtime the popup lives in its
// opener's container (window.opener works across the two tabs), shows in
// its own local tab and closes itself; the container ends with the last
// of its tabs.
func TestPopupContainerd(t *testing.T) {
	site := newTestSite(t)
	g := startContainerdGlovebox(t, site, 0, nil)
	bctx := userBrowser(t, g.addr)
	opener := openOpener(t, bctx, site, "")

	before := localPages(t, bctx)
	click(t, opener, linkArea)
	popup := waitLocalTab(t, bctx, before, site.URL+"/popups-child?by=link")
	waitForColour(t, popup, 400, 300, orange, 60*time.Second)
	waitReport(t, site, "popups-opener-link", "true")
	waitReport(t, site, "popups-message", "hello from link ("+site.URL+")")
	waitTabs(t, g, 2)
	if n := len(containerIDs()); n != 1 {
		t.Errorf("%d containers for an opener and its popup, want 1", n)
	}

	click(t, popup, [2]int{400, 300})
	waitReport(t, site, "popups-message", "done from link ("+site.URL+")")
	waitLocalTabGone(t, bctx, popup)
	waitTabs(t, g, 1)
	closeLocalTab(t, bctx, opener)
	waitFor(t, 60*time.Second, "the container to end", func() (bool, string) {
		pids := containerPIDs()
		return g.srv.Tabs() == 0 && len(pids) == 0, fmt.Sprintf("tabs %d, pids %v", g.srv.Tabs(), pids)
	})
}
