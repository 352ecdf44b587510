package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/glovebox/glovebox/render"
)

// reportsOf returns every report of event, oldest first.
func (s *testSite) reportsOf(event string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.reports[event]...)
}

// fieldValue is the value the remote field id last reported on input.
func fieldValue(site *testSite, id string) string {
	var r struct{ Value string }
	json.Unmarshal([]byte(site.lastReport("input-"+id)), &r)
	return r.Value
}

func waitValue(t *testing.T, site *testSite, id, want string) {
	t.Helper()
	waitFor(t, 30*time.Second, "remote field "+id+" = "+want, func() (bool, string) {
		got := fieldValue(site, id)
		return got == want, got
	})
}

// cdpCall runs one DevTools command in ctx's tab.
func cdpCall[P, R any](ctx context.Context, cmd cdp.Command[P, R], p P) error {
	_, err := chromedp.Call(ctx, cmd, p)
	return err
}

// touchAt sends the user's page a touch event with one finger at xy (none
// for touchEnd).
func touchAt(ctx context.Context, typ input.DispatchTouchEventType, xy ...float64) error {
	points := []*input.TouchPoint{}
	if len(xy) == 2 {
		points = append(points, &input.TouchPoint{X: xy[0], Y: xy[1]})
	}
	return cdpCall(ctx, input.DispatchTouchEvent, input.DispatchTouchEventParams{Type: typ, TouchPoints: points})
}

func pressKey(ctx context.Context, key, code string, keyCode int64, mods int64) error {
	text := ""
	if len([]rune(key)) == 1 && mods&(render.ModCtrl|render.ModMeta) == 0 {
		text = key
	}
	if err := cdpCall(ctx, input.DispatchKeyEvent, input.DispatchKeyEventParams{
		Type: input.DispatchKeyEventTypeKeyDown, Key: key, Code: code, Text: text,
		WindowsVirtualKeyCode: keyCode, Modifiers: mods,
	}); err != nil {
		return err
	}
	return cdpCall(ctx, input.DispatchKeyEvent, input.DispatchKeyEventParams{
		Type: input.DispatchKeyEventTypeKeyUp, Key: key, Code: code, WindowsVirtualKeyCode: keyCode, Modifiers: mods,
	})
}

// TestKeyboardAndText is issue 11's keyboard: text that comes from no key
// (an emoji panel's, dictation's: insertText) and an input method's
// composition arrive exactly in the remote field, the composition shown
// while under way; a non-US layout's characters and AltGr's arrive; the
// page's own shortcuts (Ctrl+A, Tab, Escape) reach it and the browser's
// (Ctrl+L) stay local.
func TestKeyboardAndText(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	g := startGlovebox(t, nil)
	ctx := userBrowser(t, g.addr)
	if err := chromedp.Do(ctx, chromedp.Navigate(site.URL+"/keys")); err != nil {
		t.Fatal(err)
	}
	waitForColour(t, ctx, 700, 400, rgb{0, 160, 0}, 60*time.Second)

	click := func(x, y float64, field string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.MouseClickXY(x, y)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "remote focus on "+field, func() (bool, string) {
			got := site.lastReport("focus")
			return got == field, got
		})
	}
	click(200, 40, "a")
	active, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.id`))
	if err != nil || active != "glovebox-input" {
		t.Fatalf("the landing page's focus is on %q (%v), want the hidden input", active, err)
	}

	// The remote browser draws what they type: it has the fonts for
	// Chinese, Japanese, Korean and emoji (a missing one is a box).
	var glyphs struct{ CJK, Emoji bool }
	waitFor(t, 30*time.Second, "the remote page's glyph check", func() (bool, string) {
		return site.lastReport("glyphs") != "", ""
	})
	json.Unmarshal([]byte(site.lastReport("glyphs")), &glyphs)
	if !glyphs.CJK || !glyphs.Emoji {
		t.Errorf("the remote browser draws CJK %v, emoji %v: the fonts are missing (fonts-noto-cjk, fonts-noto-color-emoji)", glyphs.CJK, glyphs.Emoji)
	}

	// insertText, as an emoji panel, dictation or autocorrect types.
	const text = "héllo ü 日本 😀"
	if err := cdpCall(ctx, input.InsertText, input.InsertTextParams{Text: text}); err != nil {
		t.Fatal(err)
	}
	waitValue(t, site, "a", text)

	// An input method's composition: shown remotely while under way, then
	// committed as the chosen text, once.
	if err := cdpCall(ctx, input.ImeSetComposition, input.ImeSetCompositionParams{Text: "にほ", SelectionStart: 2, SelectionEnd: 2}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the remote composition under way", func() (bool, string) {
		got := site.lastReport("compositionupdate")
		return got == "にほ", got
	})
	waitValue(t, site, "a", text+"にほ")
	if err := cdpCall(ctx, input.InsertText, input.InsertTextParams{Text: "日本"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the remote composition committed", func() (bool, string) {
		got := site.lastReport("compositionend")
		return got == "日本", got
	})
	waitValue(t, site, "a", text+"日本")

	// A French (AZERTY) key: the 2 key types é. AltGr+Q on a German
	// Windows keyboard is Ctrl+Alt with AltGraph, and types @: as a
	// browser delivers it, synthesised here since DevTools has no AltGraph.
	click(200, 120, "b")
	if err := pressKey(ctx, "é", "Digit2", 50, 0); err != nil {
		t.Fatal(err)
	}
	waitValue(t, site, "b", "é")
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](`for (const type of ['keydown', 'keyup'])
		document.activeElement.dispatchEvent(new KeyboardEvent(type, {key: '@', code: 'KeyQ', keyCode: 81,
			ctrlKey: true, altKey: true, modifierAltGraph: true, bubbles: true, cancelable: true}))`)); err != nil {
		t.Fatal(err)
	}
	waitValue(t, site, "b", "é@")

	// Ctrl+A is the page's: it selects the field's text.
	if err := pressKey(ctx, "a", "KeyA", 65, render.ModCtrl); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "Ctrl+A selecting the remote field", func() (bool, string) {
		got := site.lastReport("select-b")
		return got == "0-2", got
	})
	// Ctrl+L is the browser's (the address bar): it must not reach the
	// page. Escape and Tab do, in order after it on the one channel, so
	// once they have arrived Ctrl+L would have too.
	if err := pressKey(ctx, "l", "KeyL", 76, render.ModCtrl); err != nil {
		t.Fatal(err)
	}
	if err := pressKey(ctx, "Escape", "Escape", 27, 0); err != nil {
		t.Fatal(err)
	}
	if err := pressKey(ctx, "Tab", "Tab", 9, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "Tab moving the remote focus", func() (bool, string) {
		got := site.lastReport("focus")
		return got == "num", got
	})
	var escape bool
	for _, r := range site.reportsOf("keydown") {
		var k struct {
			Key  string
			Ctrl bool
		}
		json.Unmarshal([]byte(r), &k)
		if strings.EqualFold(k.Key, "l") && k.Ctrl {
			t.Errorf("Ctrl+L, the browser's shortcut, reached the remote page: %s", r)
		}
		escape = escape || k.Key == "Escape"
	}
	if !escape {
		t.Errorf("Escape did not reach the remote page: %v", site.reportsOf("keydown"))
	}
}

// TestTouchAndPhoneKeyboard is issue 11's phone: on a touch screen a tap
// reaches the remote page as touch input (and as the tap's click), a swipe
// scrolls it, and a tap on a remote text field gives the landing page's
// hidden input the focus with the keyboard the field asks for, whose text
// arrives; a tap elsewhere puts the keyboard away.
func TestTouchAndPhoneKeyboard(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	g := startGlovebox(t, nil)
	ctx := userBrowser(t, g.addr)
	// A phone: a touch screen of 5 points, 390 px wide at 2x.
	if err := cdpCall(ctx, emulation.SetTouchEmulationEnabled, emulation.SetTouchEmulationEnabledParams{Enabled: true, MaxTouchPoints: 5}); err != nil {
		t.Fatal(err)
	}
	if err := cdpCall(ctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{Width: 390, Height: 700, DeviceScaleFactor: 2, Mobile: true}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(site.URL+"/keys")); err != nil {
		t.Fatal(err)
	}
	waitForColour(t, ctx, 300, 600, rgb{0, 160, 0}, 60*time.Second)

	tap := func(x, y float64) {
		t.Helper()
		if err := touchAt(ctx, input.DispatchTouchEventTypeTouchStart, x, y); err != nil {
			t.Fatal(err)
		}
		if err := touchAt(ctx, input.DispatchTouchEventTypeTouchEnd); err != nil {
			t.Fatal(err)
		}
	}
	inputMode := func() string {
		mode, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.id === 'glovebox-input' ? document.activeElement.inputMode : 'not focused: ' + document.activeElement.id`))
		if err != nil {
			return err.Error()
		}
		return mode
	}

	// A tap on the plain box: touchstart where it was, on a page that sees
	// a touch screen, then the tap's click; no keyboard.
	tap(200, 290)
	waitFor(t, 30*time.Second, "the remote tap's click", func() (bool, string) {
		return site.lastReport("click") == "plain", site.lastReport("touchstart")
	})
	var ts struct{ N, X, Y, Max int }
	if err := json.Unmarshal([]byte(site.lastReport("touchstart")), &ts); err != nil {
		t.Fatalf("touchstart report %q: %v", site.lastReport("touchstart"), err)
	}
	if ts.N != 1 || ts.X < 195 || ts.X > 205 || ts.Y < 285 || ts.Y > 295 || ts.Max != 5 {
		t.Errorf("remote touchstart %+v, want one touch at (200, 290) on a 5-point screen", ts)
	}
	if got := inputMode(); got != "none" {
		t.Errorf("after a tap on no text field the hidden input's mode is %q, want none", got)
	}

	// A tap on a phone-number field: the keyboard for it, and what is
	// typed arrives.
	tap(200, 200)
	waitFor(t, 30*time.Second, "remote focus on the tel field", func() (bool, string) {
		return site.lastReport("focus") == "num", site.lastReport("focus")
	})
	waitFor(t, 30*time.Second, "the phone keyboard for a tel field", func() (bool, string) {
		got := inputMode()
		return got == "tel", got
	})
	if err := cdpCall(ctx, input.InsertText, input.InsertTextParams{Text: "0612"}); err != nil {
		t.Fatal(err)
	}
	waitValue(t, site, "num", "0612")
	// A text field, then the keyboard goes with a tap elsewhere.
	tap(200, 40)
	waitFor(t, 30*time.Second, "the phone keyboard for a text field", func() (bool, string) {
		got := inputMode()
		return got == "text", got
	})
	tap(200, 290)
	waitFor(t, 30*time.Second, "the phone keyboard put away", func() (bool, string) {
		got := inputMode()
		return got == "none", got
	})

	// Two fingers (a pinch's start) reach the page as two touches.
	if err := cdpCall(ctx, input.DispatchTouchEvent, input.DispatchTouchEventParams{Type: input.DispatchTouchEventTypeTouchStart,
		TouchPoints: []*input.TouchPoint{{X: 150, Y: 500, ID: new(1.0)}, {X: 250, Y: 550, ID: new(2.0)}}}); err != nil {
		t.Fatal(err)
	}
	if err := touchAt(ctx, input.DispatchTouchEventTypeTouchEnd); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a two-finger touch in the remote page", func() (bool, string) {
		var ts struct{ N int }
		json.Unmarshal([]byte(site.lastReport("touchstart")), &ts)
		return ts.N == 2, site.lastReport("touchstart")
	})

	// A swipe up scrolls the remote page.
	if err := touchAt(ctx, input.DispatchTouchEventTypeTouchStart, 300, 600); err != nil {
		t.Fatal(err)
	}
	for y := 580.0; y >= 200; y -= 20 {
		if err := touchAt(ctx, input.DispatchTouchEventTypeTouchMove, 300, y); err != nil {
			t.Fatal(err)
		}
	}
	if err := touchAt(ctx, input.DispatchTouchEventTypeTouchEnd); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the swipe scrolling the remote page", func() (bool, string) {
		got := site.lastReport("scroll")
		return got != "" && got != "0", got
	})
}
