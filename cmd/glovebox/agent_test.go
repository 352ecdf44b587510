package main

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
)

// agentTab opens the agent test page in a user's Chromium through a
// Glovebox and waits for the video to show it. The user's viewport is the
// remote one, so a point of the page is the same point of the video.
func agentTab(t *testing.T) (*testSite, context.Context) {
	t.Helper()
	needChromium(t)
	site := newTestSite(t)
	g := startGlovebox(t, nil)
	bctx := userBrowser(t, g.addr)
	tctx, closeTab := chromedp.NewContext(bctx)
	t.Cleanup(closeTab)
	if err := chromedp.Do(tctx, chromedp.Navigate(site.URL+"/agent")); err != nil {
		t.Fatalf("navigate the user's browser: %v", err)
	}
	waitForColour(t, tctx, 680, 415, rgb{0, 160, 0}, 60*time.Second)
	return site, tctx
}

// userMouse dispatches one mouse event in the user's browser; held is the
// DOM buttons bitmask held during or after it.
func userMouse(t *testing.T, ctx context.Context, typ input.DispatchMouseEventType, x, y float64, button input.MouseButton, held int64, clicks int) {
	t.Helper()
	err := chromedp.Do(ctx, chromedp.MouseEvent(typ, x, y, func(p *input.DispatchMouseEventParams) {
		p.Button, p.Buttons, p.ClickCount = button, held, int64(clicks)
	}))
	if err != nil {
		t.Fatalf("mouse %s at %v,%v: %v", typ, x, y, err)
	}
}

// userDrag drags with the left button in the user's browser, in steps.
func userDrag(t *testing.T, ctx context.Context, x0, y0, x1, y1 float64) {
	t.Helper()
	userMouse(t, ctx, chromedp.MouseMoved, x0, y0, input.MouseButtonNone, 0, 0)
	userMouse(t, ctx, chromedp.MousePressed, x0, y0, input.MouseButtonLeft, 1, 1)
	for i := 1; i <= 8; i++ {
		f := float64(i) / 8
		userMouse(t, ctx, chromedp.MouseMoved, x0+(x1-x0)*f, y0+(y1-y0)*f, input.MouseButtonLeft, 1, 0)
	}
	userMouse(t, ctx, chromedp.MouseReleased, x1, y1, input.MouseButtonLeft, 0, 1)
}

func waitReport(t *testing.T, site *testSite, event, want string) {
	t.Helper()
	waitFor(t, 60*time.Second, "the remote page to report "+event+" = "+want, func() (bool, string) {
		got := site.lastReport(event)
		return got == want, got
	})
}

// TestAgentDragSelectsText: dragging across a paragraph in the user's tab
// selects it in the remote page.
func TestAgentDragSelectsText(t *testing.T) {
	site, tctx := agentTab(t)
	userDrag(t, tctx, 11, 25, 700, 25)
	waitReport(t, site, "selection", "drag across this text")
}

// TestAgentDragMovesSlider: a range input's thumb follows a drag.
func TestAgentDragMovesSlider(t *testing.T) {
	site, tctx := agentTab(t)
	userDrag(t, tctx, 16, 110, 260, 110)
	waitReport(t, site, "range", "100")
}

// TestAgentDoubleAndMiddleClick: a double click fires dblclick remotely, a
// middle click auxclick with the middle button.
func TestAgentDoubleAndMiddleClick(t *testing.T) {
	site, tctx := agentTab(t)
	userMouse(t, tctx, chromedp.MouseMoved, 400, 110, input.MouseButtonNone, 0, 0)
	for clicks := 1; clicks <= 2; clicks++ {
		userMouse(t, tctx, chromedp.MousePressed, 400, 110, input.MouseButtonLeft, 1, clicks)
		userMouse(t, tctx, chromedp.MouseReleased, 400, 110, input.MouseButtonLeft, 0, clicks)
	}
	waitReport(t, site, "dblclick", "2")
	userMouse(t, tctx, chromedp.MousePressed, 400, 110, input.MouseButtonMiddle, 4, 1)
	userMouse(t, tctx, chromedp.MouseReleased, 400, 110, input.MouseButtonMiddle, 0, 1)
	waitReport(t, site, "auxclick", "1")
}
