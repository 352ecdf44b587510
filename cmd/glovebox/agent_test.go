package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
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

// userEval evaluates expr in the user's landing page.
func userEval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s in the user's page: %v", expr, err)
	}
	return v
}

// waitUser waits for expr, evaluated in the user's page, to be want.
func waitUser(t *testing.T, ctx context.Context, what, expr, want string) {
	t.Helper()
	waitFor(t, 60*time.Second, what, func() (bool, string) {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			return false, err.Error()
		}
		return got == want, got
	})
}

// TestAgentCursor: the user's cursor over the video follows the remote
// page's: a link's pointer, a text field's I-beam, a grab, and a custom
// url() cursor as its fallback keyword.
func TestAgentCursor(t *testing.T) {
	site, tctx := agentTab(t)
	for _, tt := range []struct {
		x, y float64
		want string
	}{
		{100, 220, "pointer"},
		{400, 220, "text"},
		{350, 320, "grab"},
		{470, 320, "move"},
		{650, 60, "default"},
	} {
		userMouse(t, tctx, chromedp.MouseMoved, tt.x, tt.y, input.MouseButtonNone, 0, 0)
		waitUser(t, tctx, "the cursor over the video", `document.getElementById('glovebox-screen').style.cursor`, tt.want)
		if tt.want == "pointer" {
			waitReport(t, site, "hover", "link")
		}
	}
	// The agent that reads the cursor is nothing the page's scripts see.
	if got := site.lastReport("globals"); got != "" {
		t.Errorf("the remote page sees globals %q", got)
	}
}

// selectList reads the user's #glovebox-select: each row's text, a group
// header's in [brackets].
const selectList = `(() => {
	const l = document.getElementById('glovebox-select');
	if (!l) return '';
	return Array.from(l.children, (n) => n.classList.contains('glovebox-group') ? '[' + n.textContent + ']' :
		n.textContent + (n.classList.contains('glovebox-disabled') ? ' (disabled)' : '') + (n.getAttribute('aria-selected') ? ' (selected)' : '')).join('|');
})()`

// TestAgentSelect: a press on a remote <select> opens this page's list of
// its options; a choice with the mouse, then one with the keyboard, fires
// input and change remotely with that value.
func TestAgentSelect(t *testing.T) {
	site, tctx := agentTab(t)
	userClick(t, tctx, 100, 320)
	waitUser(t, tctx, "the select's list in the user's page", selectList,
		"Apple (selected)|[Stone fruit]|Cherry|Peach (disabled)|Mango & lime")

	// The list is beside the select (under it, or above where the window
	// is too short); a click on Cherry chooses it.
	box := userEval[[]float64](t, tctx, `(() => {
		const n = Array.from(document.querySelectorAll('#glovebox-select .glovebox-option')).find((n) => n.textContent === 'Cherry');
		const r = n.getBoundingClientRect();
		return [r.left + r.width / 2, r.top + r.height / 2];
	})()`)
	if box[1] > 300 && box[1] < 340 {
		t.Errorf("the list's Cherry is at y %v, over the select (300..340)", box[1])
	}
	userClick(t, tctx, box[0], box[1])
	waitReport(t, site, "select-change", "c")
	if got := site.lastReport("select-input"); got != "c" {
		t.Errorf("the remote input event reported %q, want c", got)
	}
	waitUser(t, tctx, "the list to close", selectList, "")

	// Again, with the keyboard: Down skips the disabled Peach.
	userMouse(t, tctx, chromedp.MousePressed, 100, 320, input.MouseButtonLeft, 1, 1)
	userMouse(t, tctx, chromedp.MouseReleased, 100, 320, input.MouseButtonLeft, 0, 1)
	waitUser(t, tctx, "the list again, Cherry selected", selectList,
		"Apple|[Stone fruit]|Cherry (selected)|Peach (disabled)|Mango & lime")
	if err := chromedp.Do(tctx, chromedp.KeyEvent(kb.ArrowDown)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(tctx, chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	waitReport(t, site, "select-change", "m")
	waitUser(t, tctx, "the list to close", selectList, "")
}

// TestAgentContextMenu: a right click on a remote link shows this page's
// menu for a link; its Open in new tab opens the link in a new local tab.
func TestAgentContextMenu(t *testing.T) {
	site, tctx := agentTab(t)
	userMouse(t, tctx, chromedp.MouseMoved, 100, 220, input.MouseButtonNone, 0, 0)
	userMouse(t, tctx, chromedp.MousePressed, 100, 220, input.MouseButtonRight, 2, 1)
	userMouse(t, tctx, chromedp.MouseReleased, 100, 220, input.MouseButtonRight, 0, 1)
	waitReport(t, site, "contextmenu", "link")
	waitUser(t, tctx, "the context menu", menuItems, "Open link in new tab|Copy link address|Back|Forward|Reload")
	clickMenuItem(t, tctx, "Open link in new tab")
	waitUser(t, tctx, "the menu to close", menuItems, "")
	waitFor(t, 60*time.Second, "a new local tab at the link", func() (bool, string) {
		targets, err := chromedp.Targets(tctx)
		if err != nil {
			return false, err.Error()
		}
		var urls []string
		for _, tg := range targets {
			if tg.Type == "page" && tg.URL == site.URL+"/next" {
				return true, ""
			}
			urls = append(urls, tg.URL)
		}
		return false, strings.Join(urls, " ")
	})
}

// TestAgentFullscreen: the remote page's requestFullscreen makes the
// user's page fullscreen; leaving fullscreen locally leaves it remotely.
func TestAgentFullscreen(t *testing.T) {
	site, tctx := agentTab(t)
	userClick(t, tctx, 110, 400)
	waitReport(t, site, "fullscreen", "true")
	waitUser(t, tctx, "the user's page in fullscreen", `String(!!document.fullscreenElement)`, "true")
	if _, err := chromedp.Run(tctx, chromedp.Evaluate[bool](`document.exitFullscreen().then(() => true)`, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatal(err)
	}
	waitReport(t, site, "fullscreen", "false")
}

// grantClipboard lets the landing pages of site read and write the user's
// clipboard, as a user who said yes does.
func grantClipboard(t *testing.T, tctx context.Context, site *testSite) {
	t.Helper()
	err := chromedp.Do(tctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		for _, name := range []string{"clipboard-read", "clipboard-write"} {
			_, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
				Permission: &browser.PermissionDescriptor{Name: name}, Setting: browser.PermissionSettingGranted, Origin: site.URL})
			if err != nil {
				return err
			}
		}
		return nil
	}))
	if err != nil {
		t.Fatalf("grant the clipboard: %v", err)
	}
}

// userClick clicks with the left button in the user's browser.
func userClick(t *testing.T, ctx context.Context, x, y float64) {
	t.Helper()
	userMouse(t, ctx, chromedp.MouseMoved, x, y, input.MouseButtonNone, 0, 0)
	userMouse(t, ctx, chromedp.MousePressed, x, y, input.MouseButtonLeft, 1, 1)
	userMouse(t, ctx, chromedp.MouseReleased, x, y, input.MouseButtonLeft, 0, 1)
}

// menuItems reads the user's #glovebox-menu.
const menuItems = `(() => { const m = document.getElementById('glovebox-menu'); return m ? Array.from(m.querySelectorAll('.glovebox-item'), (n) => n.textContent).join('|') : ''; })()`

// clickMenuItem clicks the item of the user's #glovebox-menu labelled label.
func clickMenuItem(t *testing.T, ctx context.Context, label string) {
	t.Helper()
	box := userEval[[]float64](t, ctx, fmt.Sprintf(`(() => {
		const n = Array.from(document.querySelectorAll('#glovebox-menu .glovebox-item')).find((n) => n.textContent === %q);
		const r = n.getBoundingClientRect();
		return [r.left + r.width / 2, r.top + r.height / 2];
	})()`, label))
	userClick(t, ctx, box[0], box[1])
}

// TestAgentContextMenuCopy: a right click on selected text shows Copy,
// which puts the remote selection on the user's clipboard.
func TestAgentContextMenuCopy(t *testing.T) {
	site, tctx := agentTab(t)
	grantClipboard(t, tctx, site)
	userDrag(t, tctx, 11, 25, 700, 25)
	waitReport(t, site, "selection", "drag across this text")
	userMouse(t, tctx, chromedp.MousePressed, 100, 25, input.MouseButtonRight, 2, 1)
	userMouse(t, tctx, chromedp.MouseReleased, 100, 25, input.MouseButtonRight, 0, 1)
	waitUser(t, tctx, "the context menu of a selection", menuItems, "Copy|Back|Forward|Reload")
	clickMenuItem(t, tctx, "Copy")
	waitFor(t, 60*time.Second, "the selection on the user's clipboard", func() (bool, string) {
		got, err := chromedp.Run(tctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
		if err != nil {
			return false, err.Error()
		}
		return got == "drag across this text", got
	})
}

// TestAgentContextMenuPaste: a right click on a remote text field shows
// Paste, which types the user's clipboard there.
func TestAgentContextMenuPaste(t *testing.T) {
	site, tctx := agentTab(t)
	grantClipboard(t, tctx, site)
	if _, err := chromedp.Run(tctx, chromedp.Evaluate[bool](`navigator.clipboard.writeText('pasted 日本').then(() => true)`, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatal(err)
	}
	userMouse(t, tctx, chromedp.MouseMoved, 400, 220, input.MouseButtonNone, 0, 0)
	userMouse(t, tctx, chromedp.MousePressed, 400, 220, input.MouseButtonRight, 2, 1)
	userMouse(t, tctx, chromedp.MouseReleased, 400, 220, input.MouseButtonRight, 0, 1)
	waitUser(t, tctx, "the context menu of a text field", menuItems, "Paste|Back|Forward|Reload")
	clickMenuItem(t, tctx, "Paste")
	waitReport(t, site, "text-input", "pasted 日本")
}

// TestAgentPicker: a click on a remote colour input opens an input of the
// same kind in the user's page, with the remote value; what the user picks
// there is the remote input's value, with input and change.
func TestAgentPicker(t *testing.T) {
	site, tctx := agentTab(t)
	userClick(t, tctx, 570, 320)
	const picker = `(() => { const p = document.getElementById('glovebox-picker'); return p ? p.type + ' ' + p.value : ''; })()`
	waitUser(t, tctx, "the picker in the user's page", picker, "color #112233")
	// What the user's own colour chooser does when a colour is picked.
	userEval[bool](t, tctx, `(() => { const p = document.getElementById('glovebox-picker'); p.value = '#00ff80'; p.dispatchEvent(new Event('change')); return true })()`)
	waitReport(t, site, "colour", "#00ff80")
	waitUser(t, tctx, "the picker to close", picker, "")
}
