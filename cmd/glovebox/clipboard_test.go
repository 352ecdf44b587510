package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/glovebox/glovebox/render"
)

// startClipboard opens /clipboard in the user's browser, which may use its
// clipboard, under the controls of mutate.
func startClipboard(t *testing.T, mutate func(*Config)) (*testSite, *glovebox, context.Context) {
	t.Helper()
	needChromium(t)
	site := newTestSite(t)
	g := startGlovebox(t, mutate)
	ctx := userBrowser(t, g.addr)
	if err := chromedp.Do(ctx, chromedp.Navigate(site.URL+"/clipboard")); err != nil {
		t.Fatal(err)
	}
	grantClipboard(t, ctx, site)
	// The clipboard is for the focused page: the test's window stands
	// for the one the user works in.
	if err := cdpCall(ctx, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true}); err != nil {
		t.Fatal(err)
	}
	waitForColour(t, ctx, 700, 400, green, 60*time.Second)
	return site, g, ctx
}

// userClipboard reads (or, with text, writes) the user's clipboard from
// the landing page.
func userClipboard(t *testing.T, ctx context.Context, write string) string {
	t.Helper()
	expr := `navigator.clipboard.readText()`
	if write != "" {
		expr = `navigator.clipboard.writeText(` + jsString(write) + `).then(() => navigator.clipboard.readText())`
	}
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise, func(p *runtime.EvaluateParams) { p.UserGesture = new(true) }))
	if err != nil {
		t.Fatalf("the user's clipboard: %v", err)
	}
	return s
}

func jsString(s string) string { return `'` + s + `'` } // the tests' own ASCII words

// copyKey presses Ctrl+C in the landing page; pasteKey presses Ctrl+V with
// the browser's paste command, as a real keyboard's does.
func copyKey(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := pressKey(ctx, "c", "KeyC", 67, render.ModCtrl); err != nil {
		t.Fatal(err)
	}
}

func pasteKey(t *testing.T, ctx context.Context) {
	t.Helper()
	for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeKeyDown, input.DispatchKeyEventTypeKeyUp} {
		p := input.DispatchKeyEventParams{Type: typ, Key: "v", Code: "KeyV", WindowsVirtualKeyCode: 86, Modifiers: render.ModCtrl}
		if typ == input.DispatchKeyEventTypeKeyDown {
			p.Commands = []string{"paste"}
		}
		if err := cdpCall(ctx, input.DispatchKeyEvent, p); err != nil {
			t.Fatal(err)
		}
	}
}

func focusField(t *testing.T, ctx context.Context, site *testSite) {
	t.Helper()
	click(t, ctx, [2]int{200, 140})
	waitReport(t, site, "focus", "field")
}

func clipboardEvents(g *glovebox) []map[string]any { return fileEvents(g, "clipboard") }

func waitClipboardEvent(t *testing.T, g *glovebox, direction, decision string) {
	t.Helper()
	waitFor(t, 30*time.Second, "a clipboard event "+direction+" "+decision, func() (bool, string) {
		for _, e := range clipboardEvents(g) {
			if e["direction"] == direction && e["decision"] == decision {
				return true, ""
			}
		}
		return false, g.audit.String()
	})
}

// TestClipboardAllow: Ctrl+C copies the remote selection to the user's
// clipboard; Ctrl+V pastes the user's clipboard as a real paste event
// (the remote page's paste handler gets the text), and the text lands; a
// Copy button of the page copies to the user's clipboard.
func TestClipboardAllow(t *testing.T) {
	site, g, ctx := startClipboard(t, nil) // the defaults: both allow
	userClipboard(t, ctx, "before")
	copyKey(t, ctx) // the page selected its text itself

	waitFor(t, 30*time.Second, "the remote text on the user's clipboard", func() (bool, string) {
		s := userClipboard(t, ctx, "")
		return s == "Remote secret 42", s
	})
	waitClipboardEvent(t, g, "out", "allowed")

	userClipboard(t, ctx, "from the user")
	focusField(t, ctx, site)
	pasteKey(t, ctx)
	waitReport(t, site, "paste", "from the user")
	waitReport(t, site, "value", "from the user")
	waitClipboardEvent(t, g, "in", "allowed")

	// The page's own Copy button (navigator.clipboard.writeText on the
	// user's click) reaches the user's clipboard too.
	click(t, ctx, [2]int{660, 140})
	waitReport(t, site, "shared", "ok")
	waitFor(t, 30*time.Second, "the page's copy on the user's clipboard", func() (bool, string) {
		s := userClipboard(t, ctx, "")
		return s == "Share code 7731", s
	})
	if s := g.audit.String(); strings.Contains(s, "from the user") || strings.Contains(s, "Remote secret") || strings.Contains(s, "Share code") {
		t.Error("clipboard text is in the audit log")
	}
}

// TestClipboardDeny: with both directions denied nothing crosses, and the
// user is told; under audit.clipboard_content the events keep the text
// that was refused.
func TestClipboardDeny(t *testing.T) {
	site, g, ctx := startClipboard(t, func(c *Config) {
		c.Proxy.Policy.Defaults.ClipboardOut = "deny"
		c.Proxy.Policy.Defaults.ClipboardIn = "deny"
		c.Audit.ClipboardContent = true
	})
	userClipboard(t, ctx, "user text")
	copyKey(t, ctx)
	waitFor(t, 30*time.Second, "the copy refused", func() (bool, string) {
		s := statusText(ctx)
		return strings.Contains(s, "Copying from this site is not allowed"), s
	})
	waitClipboardEvent(t, g, "out", "denied")
	if s := userClipboard(t, ctx, ""); s != "user text" {
		t.Errorf("the user's clipboard has %q, want it unchanged", s)
	}
	focusField(t, ctx, site)
	pasteKey(t, ctx)
	waitFor(t, 30*time.Second, "the paste refused", func() (bool, string) {
		s := statusText(ctx)
		return strings.Contains(s, "Pasting into this site is not allowed"), s
	})
	waitClipboardEvent(t, g, "in", "denied")
	if r := site.reportsOf("paste"); len(r) != 0 {
		t.Errorf("the remote page got pastes %q", r)
	}
	texts := map[string]any{}
	for _, e := range clipboardEvents(g) {
		texts[e["direction"].(string)] = e["text"]
	}
	if texts["out"] != "Remote secret 42" || texts["in"] != "user text" {
		t.Errorf("clipboard events' texts = %v, want the refused copy's and paste's", texts)
	}
}

// TestClipboardIsolated: text copied in an isolated page does not reach
// the user's clipboard, and pastes into an isolated page; the user's own
// clipboard does not.
func TestClipboardIsolated(t *testing.T) {
	site, g, ctx := startClipboard(t, func(c *Config) {
		c.Proxy.Policy.Defaults.ClipboardOut = "isolated"
		c.Proxy.Policy.Defaults.ClipboardIn = "isolated"
	})
	userClipboard(t, ctx, "user text")
	copyKey(t, ctx)
	waitClipboardEvent(t, g, "out", "allowed")
	focusField(t, ctx, site)
	pasteKey(t, ctx)
	waitReport(t, site, "paste", "Remote secret 42")
	if s := userClipboard(t, ctx, ""); s != "user text" {
		t.Errorf("the user's clipboard has %q, want it unchanged", s)
	}
}

// TestKeyboardDeny: on a read-only site typing changes nothing and the
// user is told; the keys that scroll still scroll.
func TestKeyboardDeny(t *testing.T) {
	site, _, ctx := startClipboard(t, func(c *Config) { c.Proxy.Policy.Defaults.Keyboard = "deny" })
	focusField(t, ctx, site)
	for _, k := range []string{"x", "y"} {
		if err := pressKey(ctx, k, "Key"+k, int64(k[0]-32), 0); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "the read-only notice", func() (bool, string) {
		s := statusText(ctx)
		return strings.Contains(s, "read-only"), s
	})
	// Focus the page, not the field, and scroll it with the keyboard.
	click(t, ctx, [2]int{700, 400})
	if err := pressKey(ctx, "PageDown", "PageDown", 34, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the remote page scrolled by PageDown", func() (bool, string) {
		return site.lastReport("scroll") != "" && site.lastReport("scroll") != "0", site.lastReport("scroll")
	})
	if r := site.reportsOf("value"); len(r) != 0 {
		t.Errorf("the field took typing: %q", r)
	}
}

// TestClipboardImages: Copy image in the context menu puts the image's
// pixels on the user's clipboard as PNG; the user's paste of an image
// reaches the remote page's paste handler as a file; both are audited as
// images; a paste that is no image of the type it claims is refused;
// under clipboard_out: deny Copy image is refused.
func TestClipboardImages(t *testing.T) {
	// A pasted image is a file reaching the page: upload's decision too.
	site, g, ctx := startClipboard(t, func(c *Config) { c.Proxy.Policy.Defaults.Upload = "allow" })
	copyImage(t, ctx)
	var got string
	waitFor(t, 60*time.Second, "the image on the user's clipboard", func() (bool, string) {
		got, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.clipboard.read().then(async (items) => {
			const i = items.find((i) => i.types.includes('image/png'));
			if (!i) return items.map((i) => i.types.join()).join('|');
			const bmp = await createImageBitmap(await i.getType('image/png'));
			const c = new OffscreenCanvas(bmp.width, bmp.height).getContext('2d');
			c.drawImage(bmp, 0, 0);
			const p = c.getImageData(bmp.width / 2, bmp.height / 2, 1, 1).data;
			return bmp.width + 'x' + bmp.height + ' ' + p[0] + ',' + p[1] + ',' + p[2];
		})`, chromedp.EvalAwaitPromise))
		return got == "200x120 224,48,16", got
	})
	ev := waitClipboardKind(t, g, "out", "image")
	if ev["decision"] != "allowed" || ev["size"].(float64) <= 0 {
		t.Errorf("copy image event = %v, want allowed with its size", ev)
	}

	// The image now on the user's clipboard, pasted into the remote field.
	focusField(t, ctx, site)
	pasteKey(t, ctx)
	waitFor(t, 30*time.Second, "the remote page's paste of the image", func() (bool, string) {
		r := site.reportsOf("pasteimage")
		return len(r) == 1 && strings.HasPrefix(r[0], "image/png:"), fmt.Sprint(r, statusText(ctx))
	})
	if ev := waitClipboardKind(t, g, "in", "image"); ev["decision"] != "allowed" {
		t.Errorf("paste image event = %v, want allowed", ev)
	}
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch('/.glovebox/api/tabs/' + sessionStorage.getItem('glovebox.tab') + '/paste-image', {
		method: 'POST', body: 'MZ not an image at all', headers: { 'Content-Type': 'image/png' } }).then((r) => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil || status != 400 {
		t.Errorf("a paste of bytes that are no PNG, sent as image/png: HTTP %d, %v; want 400", status, err)
	}
	if r := site.reportsOf("pasteimage"); len(r) != 1 {
		t.Errorf("the remote page got %d pasted images, want the one", len(r))
	}

	_, g2, ctx2 := startClipboard(t, func(c *Config) { c.Proxy.Policy.Defaults.ClipboardOut = "deny" })
	copyImage(t, ctx2)
	waitFor(t, 30*time.Second, "the copy refused", func() (bool, string) {
		s := statusText(ctx2)
		return strings.Contains(s, "Copying images from this site is not allowed"), s
	})
	if ev := waitClipboardKind(t, g2, "out", "image"); ev["decision"] != "denied" {
		t.Errorf("copy image event under deny = %v", ev)
	}
}

// copyImage right-clicks the page's image and chooses Copy image.
func copyImage(t *testing.T, ctx context.Context) {
	t.Helper()
	userMouse(t, ctx, chromedp.MouseMoved, 120, 280, input.MouseButtonNone, 0, 0)
	userMouse(t, ctx, chromedp.MousePressed, 120, 280, input.MouseButtonRight, 2, 1)
	userMouse(t, ctx, chromedp.MouseReleased, 120, 280, input.MouseButtonRight, 0, 1)
	waitUser(t, ctx, "the context menu of an image", menuItems, "Copy|Copy image|Back|Forward|Reload") // the page selected its text
	clickMenuItem(t, ctx, "Copy image")
}

func waitClipboardKind(t *testing.T, g *glovebox, direction, kind string) map[string]any {
	t.Helper()
	var found map[string]any
	waitFor(t, 30*time.Second, "a clipboard event "+direction+" of an "+kind, func() (bool, string) {
		for _, e := range clipboardEvents(g) {
			if e["direction"] == direction && e["kind"] == kind {
				found = e
				return true, ""
			}
		}
		return false, g.audit.String()
	})
	return found
}
