package render

import (
	"context"
	"errors"
	"fmt"
	"image"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/remote"
)

// popupPages are the pages of the popup tests: an opener whose whole page
// is a target=_blank link (rel=opener, so that the popup may talk back)
// and that shows what the popup posts to it in its title; the popup, green,
// that posts to its opener and closes itself on a click; and an opener
// whose click opens an about:blank window that a script would write into.
func popupPages() http.Handler {
	mux := http.NewServeMux()
	page := func(path, body string) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, body)
		})
	}
	const full = `<style>html,body,a{margin:0;width:100%;height:100%;display:block}</style>`
	page("/opener", `<!doctype html>`+full+`<title>Opener</title><body>
		<a target=_blank rel=opener href="/popup" style="background:#0000ff"></a>
		<script>onmessage = (e) => { document.title = "got:" + e.data }</script></body>`)
	page("/popup", `<!doctype html>`+full+`<title>Popup</title>
		<body style="background:#00ff00" onclick="window.close()">
		<script>window.opener && window.opener.postMessage("hello", "*")</script></body>`)
	page("/blank-opener", `<!doctype html>`+full+`<body style="background:#ff0000"
		onclick="window.open('')"></body>`)
	return mux
}

// TestPopup: a target=_blank click reports the new window with its id and
// URL; Open attaches to it with TargetID and shows it; the popup keeps its
// opener (its message arrives); its window.close() is EventPageClosed,
// and the opener goes on.
func TestPopup(t *testing.T) {
	srv := httptest.NewServer(popupPages())
	defer srv.Close()
	opener, os, ev := openerClick(t, srv, "/opener", "of the opener's link", 0, 0, 255)
	if ev.URL != srv.URL+"/popup" || ev.TargetID == "" || ev.TargetID == opener.TargetID() {
		t.Fatalf("popup event %+v, want the URL %s/popup and the popup's own target", ev, srv.URL)
	}
	// The tests share a browser: no popup is left for another test's Open.
	t.Cleanup(func() { opener.CloseTarget(context.Background(), ev.TargetID) })

	if !opener.HasPopups() {
		t.Error("the opener's HasPopups is false with its popup open")
	}
	popup, ps := openPopup(t, ev.TargetID)
	if popup.TargetID() != ev.TargetID {
		t.Errorf("attached to %s, want the popup %s", popup.TargetID(), ev.TargetID)
	}
	waitFrame(t, ps, "of the popup's green", func(img image.Image) bool { return near(img, 0, 255, 0) })
	waitEvent(t, os, func(ev Event) bool { return ev.Type == EventTitle && ev.Title == "got:hello" })
	waitFor(t, "the popup's title", func() bool { return popup.Title() == "Popup" })

	// The click closes the page, maybe before the mouse-up's answer.
	for _, ev := range []MouseEvent{
		{Type: "move", X: 200, Y: 150},
		{Type: "down", X: 200, Y: 150, Button: "left", Buttons: 1},
		{Type: "up", X: 200, Y: 150, Button: "left"},
	} {
		if err := popup.Mouse(t.Context(), ev); err != nil && ev.Type != "up" {
			t.Fatalf("Mouse %+v: %v", ev, err)
		}
	}
	waitEvent(t, ps, func(ev Event) bool { return ev.Type == EventPageClosed })
	select {
	case <-popup.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the popup's Done is open after it closed itself")
	}
	select {
	case <-opener.Done():
		t.Fatal("the opener ended with its popup")
	default:
	}
	// Closed, the popup no longer counts (a hidden opener may freeze).
	waitFor(t, "the closed popup forgotten", func() bool { return !opener.HasPopups() })
	// The opener still takes input and paints.
	navigate(t, opener, srv.URL+"/blank-opener")
	waitFrame(t, os, "of the opener's red", func(img image.Image) bool { return near(img, 255, 0, 0) })
}

// TestPopupBlank: a window that stays about:blank is reported with its
// opener's URL, and CloseTarget closes it.
func TestPopupBlank(t *testing.T) {
	srv := httptest.NewServer(popupPages())
	defer srv.Close()
	// A URL of its own: the tests share a browser, whose free page may be
	// at /blank-opener already, and navigate waits for the URL.
	opener, _, ev := openerClick(t, srv, "/blank-opener?blank", "of the opener's red", 255, 0, 0)
	if ev.URL != srv.URL+"/blank-opener?blank" {
		t.Errorf("about:blank popup reported at %q, want the opener's URL", ev.URL)
	}
	if err := opener.CloseTarget(t.Context(), ev.TargetID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the closed popup to be gone", func() bool { return !hasTarget(t, opener, ev.TargetID) })
	if _, err := Open(t.Context(), browser.wsURL, Options{Width: 400, Height: 300, TargetID: ev.TargetID, Log: testLog()}); !errors.Is(err, ErrClosed) {
		t.Errorf("Open of a closed popup: %v, want ErrClosed", err)
	}
}

func hasTarget(t *testing.T, tab *Tab, id string) bool {
	infos, err := chromedp.Targets(tab.bctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range infos {
		if string(info.TargetID) == id {
			return true
		}
	}
	return false
}

func navigate(t *testing.T, tab *Tab, u string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := tab.Navigate(ctx, u); err != nil {
		t.Fatalf("Navigate: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.HasPrefix(tab.URL(), u); {
		if time.Now().After(deadline) {
			t.Fatalf("URL() = %q, want %q", tab.URL(), u)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFor polls cond until it holds, for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestPageClosesItself: window.close() in a page that a script did not
// open, which Chromium refuses, closes it all the same (EventPageClosed),
// as it would close the user's own tab that has no history; console.warn
// of Chromium's refusal text closes nothing.
func TestPageClosesItself(t *testing.T) {
	tab, s := openTab(t, 400, 300, 1, "/solid")
	evaluate[any](t, tab, `console.warn("`+refusedClose+`")`)
	// The page's events come in order: the console call's came before
	// this answer.
	evaluate[int](t, tab, `1`)
	if len(tab.closeReq) != 0 {
		t.Fatal("console.warn of the refusal's text asked to close the page")
	}
	evaluate[any](t, tab, `window.close()`)
	ev := waitEvent(t, s, func(ev Event) bool { return ev.Type == EventPageClosed || ev.Type == EventClosed })
	if ev.Type != EventPageClosed {
		t.Errorf("event %+v, want %s", ev, EventPageClosed)
	}
	select {
	case <-tab.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done is open after the page closed itself")
	}
}

// TestPopupPaintedBefore: a popup that has painted, and is static, before
// Open attaches to it still sends its first frame.
func TestPopupPaintedBefore(t *testing.T) {
	srv := httptest.NewServer(popupPages())
	defer srv.Close()
	opener, _, ev := openerClick(t, srv, "/opener?painted", "of the opener's link", 0, 0, 255)
	t.Cleanup(func() { opener.CloseTarget(context.Background(), ev.TargetID) })

	// Another client waits for the popup's load and two frames painted
	// after it, and leaves.
	actx, acancel := remote.NewAllocator(t.Context(), browser.wsURL, remote.NoModifyURL)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	if err := chromedp.Do(bctx); err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := chromedp.NewContext(bctx, chromedp.WithTargetID(target.ID(ev.TargetID)), chromedp.WithDetachOnCancel())
	const painted = `new Promise((r) => {
		const twice = () => requestAnimationFrame(() => requestAnimationFrame(() => r(true)));
		document.readyState === 'complete' ? twice() : addEventListener('load', twice);
	})`
	if _, err := chromedp.Run(pctx, chromedp.Evaluate[bool](painted, chromedp.EvalAsValue, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatal(err)
	}
	pcancel()

	_, ps := openPopup(t, ev.TargetID)
	waitFrame(t, ps, "of the popup's green", func(img image.Image) bool { return near(img, 0, 255, 0) })
}

// openerClick opens path of srv in a tab, waits for its frame of colour
// (r, g, b) at the top left, clicks it and returns the popup event.
func openerClick(t *testing.T, srv *httptest.Server, path, what string, r, g, b int) (*Tab, *sink, Event) {
	t.Helper()
	opener, os := openTab(t, 400, 300, 1, "")
	navigate(t, opener, srv.URL+path)
	waitFrame(t, os, what, func(img image.Image) bool { return near(img, r, g, b) })
	click(t, opener, 200, 150)
	return opener, os, waitEvent(t, os, func(ev Event) bool { return ev.Type == EventPopup })
}

// openPopup attaches a Tab to the popup id, until the test ends.
func openPopup(t *testing.T, id string) (*Tab, *sink) {
	t.Helper()
	ps := newSink()
	popup, err := Open(t.Context(), browser.wsURL, Options{Width: 400, Height: 300, TargetID: id,
		OnFrame: ps.onFrame, OnEvent: ps.onEvent, Log: testLog()})
	if err != nil {
		t.Fatalf("Open the popup: %v", err)
	}
	t.Cleanup(func() { popup.Close() })
	return popup, ps
}
