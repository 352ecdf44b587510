package render

import (
	"bytes"
	"errors"
	"fmt"
	"image/png"
	"strings"
	"testing"
)

func TestCursorName(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"pointer", "pointer"},
		{"auto", "default"},
		{"TEXT", "text"},
		{"-webkit-grab", "grab"},
		{`url("a.png") 2 2, move`, "move"},
		{`url("a.png"), url(b.cur), nwse-resize`, "nwse-resize"},
		{`url("a.png")`, "default"},
		{"expression(alert(1))", "default"},
		{"pointer; background: red", "default"},
		{"", "default"},
		{strings.Repeat("a", 2000) + ",pointer", "default"},
	} {
		if got := cursorName(tt.in); got != tt.want {
			t.Errorf("cursorName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseAgentReport(t *testing.T) {
	ev, err := parseAgentReport(`{"t":"select","id":3,"x":1,"y":2,"w":100,"h":20,"options":[{"label":"a\u0000b\n  c","group":"g"},{"label":"`+strings.Repeat("é", 300)+`","disabled":true,"selected":true}]}`, true)
	if err != nil {
		t.Fatal(err)
	}
	s := ev.Select
	if ev.Type != EventSelect || s.ID != 3 || s.W != 100 || len(s.Options) != 2 {
		t.Fatalf("select = %+v", ev)
	}
	if s.Options[0].Label != "a b c" || s.Options[0].Group != "g" {
		t.Errorf("option 0 = %+v", s.Options[0])
	}
	if o := s.Options[1]; len(o.Label) != maxLabel || !o.Disabled || !o.Selected || !strings.HasPrefix(o.Label, "éé") {
		t.Errorf("option 1 = %+v (%d bytes)", o, len(o.Label))
	}

	ev, err = parseAgentReport(`{"t":"context","x":5,"y":6,"link":"javascript:alert(1)","selection":true}`, true)
	if err != nil || ev.ContextMenu == nil || ev.ContextMenu.Link != "" || !ev.ContextMenu.Selection {
		t.Errorf("context menu on a javascript: link = %+v, %v", ev.ContextMenu, err)
	}
	ev, err = parseAgentReport(`{"t":"context","x":5,"y":6,"link":"https://example.com/a?b#c"}`, true)
	if err != nil || ev.ContextMenu.Link != "https://example.com/a?b#c" {
		t.Errorf("context menu on a link = %+v, %v", ev.ContextMenu, err)
	}
	ev, err = parseAgentReport(`{"t":"cursor","cursor":"url(x), wait"}`, false)
	if err != nil || ev.Type != EventCursor || ev.Cursor != "wait" {
		t.Errorf("cursor from a subframe = %+v, %v", ev, err)
	}

	many := `{"t":"select","id":1,"options":[` + strings.Repeat(`{"label":"x"},`, MaxSelectOptions) + `{"label":"x"}]}`
	for name, p := range map[string]string{
		"not json":           `select`,
		"unknown type":       `{"t":"exec"}`,
		"select id":          `{"t":"select","id":0}`,
		"select position":    `{"t":"select","id":1,"x":1e300}`,
		"too many options":   many,
		"too large":          `{"t":"cursor","cursor":"` + strings.Repeat("a", maxAgentReport) + `"}`,
		"context position":   `{"t":"context","x":-1e9,"y":0}`,
		"wrong field type":   `{"t":"select","id":"1"}`,
		"select in subframe": `{"t":"select","id":1}`,
		"empty copy":         `{"t":"copy","text":""}`,
	} {
		main := name != "select in subframe"
		if _, err := parseAgentReport(p, main); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// press is a move to (x, y) and a click of button there.
func press(x, y float64, button string, buttons int) []MouseEvent {
	return []MouseEvent{
		{Type: "move", X: x, Y: y},
		{Type: "down", X: x, Y: y, Button: button, Buttons: buttons},
		{Type: "up", X: x, Y: y, Button: button},
	}
}

// agentEvent moves or clicks and waits for the agent's event of type typ.
func agentEvent(t *testing.T, tab *Tab, s *sink, typ EventType, evs ...MouseEvent) Event {
	t.Helper()
	for _, ev := range evs {
		if err := tab.Mouse(t.Context(), ev); err != nil {
			t.Fatalf("Mouse %+v: %v", ev, err)
		}
	}
	return waitEvent(t, s, func(ev Event) bool { return ev.Type == typ })
}

func TestAgentCursor(t *testing.T) {
	tab, s := openPainted(t, "/agent")
	for _, tt := range []struct {
		x, y float64
		want string
	}{
		{50, 20, "pointer"},
		{150, 20, "text"},
		{250, 20, "grab"},
		{350, 20, "ew-resize"},
		{50, 70, "default"},
		{220, 220, "text"},
		{295, 255, "nwse-resize"},
	} {
		ev := agentEvent(t, tab, s, EventCursor, MouseEvent{Type: "move", X: tt.x, Y: tt.y})
		if ev.Cursor != tt.want {
			t.Errorf("cursor at %v,%v = %q, want %q", tt.x, tt.y, ev.Cursor, tt.want)
		}
	}
}

// TestAgentInvisible: the page's own scripts see none of the agent.
func TestAgentInvisible(t *testing.T) {
	tab, s := openPainted(t, "/agent")
	agentEvent(t, tab, s, EventCursor, MouseEvent{Type: "move", X: 50, Y: 20}) // the agent runs
	if got := evaluate[string](t, tab, `typeof __gloveboxAgent + typeof __gloveboxReport + Object.getOwnPropertyNames(window).filter((k) => /glovebox/i.test(k))`); got != "undefinedundefined" {
		t.Errorf("the page sees %q", got)
	}
}

// TestAgentIgnoresSyntheticEvents: events the page dispatches itself open
// no list, menu or picker: only the user's input does.
func TestAgentIgnoresSyntheticEvents(t *testing.T) {
	tab, s := openPainted(t, "/agent")
	evaluate[bool](t, tab, `(() => {
		for (const id of ["sel", "col", "day"]) {
			const el = document.getElementById(id);
			for (const type of ["mousedown", "click"]) el.dispatchEvent(new MouseEvent(type, { bubbles: true }));
		}
		const a = document.getElementById("link");
		a.dispatchEvent(new MouseEvent("contextmenu", { bubbles: true, button: 2 }));
		document.getElementById("text").dispatchEvent(new MouseEvent("mousemove", { bubbles: true, clientX: 150, clientY: 20 }));
		return true
	})()`)
	// Events come in order: any report of those would come before this one.
	for _, ev := range press(50, 20, "left", 1)[:1] {
		if err := tab.Mouse(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	ev := waitEvent(t, s, func(ev Event) bool { return ev.Type != EventURL && ev.Type != EventTitle })
	if ev.Type != EventCursor || ev.Cursor != "pointer" {
		t.Errorf("first agent event = %+v, want the user's move over the link", ev)
	}
}

func TestAgentSelect(t *testing.T) {
	tab, s := openPainted(t, "/agent")
	ev := agentEvent(t, tab, s, EventSelect, press(50, 120, "left", 1)...)
	sel := ev.Select
	want := []SelectOption{{Label: "One", Selected: true}, {Label: "Two", Group: "Group & co", Disabled: true}, {Label: "Three Three", Group: "Group & co"}}
	if sel == nil || len(sel.Options) != len(want) {
		t.Fatalf("select = %+v", sel)
	}
	for i, o := range sel.Options {
		if o != want[i] {
			t.Errorf("option %d = %+v, want %+v", i, o, want[i])
		}
	}
	if sel.X != 0 || sel.Y != 100 || sel.W != 200 || sel.H != 40 {
		t.Errorf("select box = %v,%v %vx%v, want 0,100 200x40", sel.X, sel.Y, sel.W, sel.H)
	}
	// A disabled option and another popup's id do nothing.
	for _, c := range [][2]int{{sel.ID, 1}, {sel.ID + 1, 2}} {
		if err := tab.ChooseOption(t.Context(), c[0], c[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tab.ChooseOption(t.Context(), sel.ID, 2); err != nil {
		t.Fatal(err)
	}
	if got := evaluate[string](t, tab, `changes.join()`); got != "input:3,change:3" {
		t.Errorf("the page saw %q, want input:3,change:3", got)
	}
}

func TestAgentContextMenu(t *testing.T) {
	tab, s := openPainted(t, "/agent")
	ev := agentEvent(t, tab, s, EventContextMenu, press(50, 20, "right", 2)...)
	if m := ev.ContextMenu; m == nil || m.Link != server.URL+"/target" || m.X != 50 || m.Y != 20 || m.Editable {
		t.Errorf("context menu on the link = %+v", m)
	}
	ev = agentEvent(t, tab, s, EventContextMenu, press(150, 20, "right", 2)...)
	if m := ev.ContextMenu; m == nil || m.Link != "" || !m.Editable {
		t.Errorf("context menu on the text field = %+v", m)
	}
}

func TestAgentFullscreen(t *testing.T) {
	tab, s := openPainted(t, "/agent")
	click(t, tab, 50, 170)
	ev := waitEvent(t, s, func(ev Event) bool { return ev.Type == EventFullscreen })
	if !ev.Fullscreen {
		t.Fatalf("fullscreen event = %+v, want on", ev)
	}
	if err := tab.ExitFullscreen(t.Context()); err != nil {
		t.Fatal(err)
	}
	ev = waitEvent(t, s, func(ev Event) bool { return ev.Type == EventFullscreen })
	if ev.Fullscreen {
		t.Errorf("fullscreen event after ExitFullscreen = %+v, want off", ev)
	}
}

// TestAgentSelectKeys: Space on a focused select opens the list as a
// press does, instead of Chromium's popup that nothing paints.
func TestAgentSelectKeys(t *testing.T) {
	tab, s := openPainted(t, "/agent")
	evaluate[bool](t, tab, `document.getElementById("sel").focus(), true`)
	for _, typ := range []string{"down", "up"} {
		if err := tab.Key(t.Context(), KeyEvent{Type: typ, Key: " ", Code: "Space", KeyCode: 32}); err != nil {
			t.Fatal(err)
		}
	}
	ev := waitEvent(t, s, func(ev Event) bool { return ev.Type == EventSelect })
	if ev.Select == nil || len(ev.Select.Options) != 3 {
		t.Errorf("select = %+v", ev.Select)
	}
}

func TestAgentSelectedText(t *testing.T) {
	tab, _ := openPainted(t, "/agent")
	evaluate[bool](t, tab, `getSelection().selectAllChildren(document.getElementById("link")), true`)
	if got, err := tab.SelectedText(t.Context()); err != nil || got != "link" {
		t.Errorf("SelectedText = %q, %v; want link", got, err)
	}
	evaluate[bool](t, tab, `(() => { const i = document.getElementById("text"); i.value = "héllo wörld"; i.focus(); i.setSelectionRange(1, 5); return true })()`)
	if got, err := tab.SelectedText(t.Context()); err != nil || got != "éllo" {
		t.Errorf("SelectedText in a field = %q, %v; want éllo", got, err)
	}
}

func TestAgentPicker(t *testing.T) {
	tab, s := openPainted(t, "/agent")
	ev := agentEvent(t, tab, s, EventPicker, press(250, 170, "left", 1)...)
	if p := ev.Picker; p == nil || p.Kind != "date" || p.Value != "2026-12-03" || p.Min != "2026-01-01" || p.Max != "" || p.X != 200 || p.Y != 150 {
		t.Errorf("date picker = %+v", ev.Picker)
	}
	ev = agentEvent(t, tab, s, EventPicker, press(250, 120, "left", 1)...)
	p := ev.Picker
	if p == nil || p.Kind != "color" || p.Value != "#112233" {
		t.Fatalf("colour picker = %+v", p)
	}
	if err := tab.SetPickerValue(t.Context(), p.ID, "javascript:alert(1)"); !errors.Is(err, ErrBadInput) {
		t.Errorf("SetPickerValue of a script = %v, want ErrBadInput", err)
	}
	if err := tab.SetPickerValue(t.Context(), p.ID, "#00ff80"); err != nil {
		t.Fatal(err)
	}
	if got := evaluate[string](t, tab, `changes.join()`); got != "colour:#00ff80" {
		t.Errorf("the page saw %q, want colour:#00ff80", got)
	}
}

func TestPickerValues(t *testing.T) {
	for v, want := range map[string]bool{
		"": true, "#00ff80": true, "2026-12-03": true, "17:30": true, "17:30:05.250": true, "2026-12-03T17:30": true,
		"2026-12": true, "2026-W49": true, "#00FF80": false, "red": false, "2026-12-03 17:30": false, "<b>": false,
		"2026-12-03T17:30" + strings.Repeat("0", 60): false,
	} {
		if got := ValidPickerValue(v); got != want {
			t.Errorf("ValidPickerValue(%q) = %v, want %v", v, got, want)
		}
	}
	if got := pickerValue("date", "#000000"); got != "" {
		t.Errorf("a colour as a date's value = %q", got)
	}
}

// TestAgentRemoteCopy: what the page writes with the async Clipboard API
// on the user's click is reported; what it writes, or forges, without the
// user is not. A window.print() is reported.
func TestAgentRemoteCopy(t *testing.T) {
	tab, s := openPainted(t, "/copy")
	// The page printed on load: that is asked of the user.
	waitEvent(t, s, func(ev Event) bool { return ev.Type == EventPrint })
	click(t, tab, 100, 50)
	ev := waitEvent(t, s, func(ev Event) bool { return ev.Type == EventCopy })
	if ev.Text != "Copied by the page: 42" {
		t.Errorf("first copy = %q, want the click's (nothing from before the user)", ev.Text)
	}
	poll(t, tab, "window.copied === true")
	click(t, tab, 300, 50)
	ev = waitEvent(t, s, func(ev Event) bool { return ev.Type == EventCopy })
	if ev.Text != "written as an item" {
		t.Errorf("copy by write() = %q", ev.Text)
	}
	if got := evaluate[string](t, tab, `Object.keys(Clipboard.prototype).join()`); strings.Contains(got, "glovebox") {
		t.Errorf("the page sees the hook's mark: %q", got)
	}
}

// TestAgentImages: the context menu knows an image under the pointer;
// CopyImage gives its pixels as PNG; PasteImage gives the focused element
// a paste event with the image as a file.
func TestAgentImages(t *testing.T) {
	tab, s := openPainted(t, "/image")
	ev := agentEvent(t, tab, s, EventContextMenu, press(60, 50, "right", 2)...)
	if m := ev.ContextMenu; m == nil || !m.Image {
		t.Errorf("context menu on the image = %+v, want Image", m)
	}
	ev = agentEvent(t, tab, s, EventContextMenu, press(300, 200, "right", 2)...)
	if m := ev.ContextMenu; m == nil || m.Image {
		t.Errorf("context menu off the image = %+v, want no Image", m)
	}

	data, err := tab.CopyImage(t.Context(), 60, 50)
	if err != nil {
		t.Fatalf("CopyImage: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("CopyImage gave no PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 80 || b.Dy() != 60 || !near(img, 0xe0, 0x30, 0x10) {
		t.Errorf("the copied image is %v, centre %v; want 80x60 of the image's red", b, img.At(40, 30))
	}
	if _, err := tab.CopyImage(t.Context(), 300, 200); !errors.Is(err, ErrBadInput) {
		t.Errorf("CopyImage off any image: %v, want ErrBadInput", err)
	}

	evaluate[bool](t, tab, `document.getElementById("f").focus(), true`)
	if err := tab.PasteImage(t.Context(), data, "image/png"); err != nil {
		t.Fatalf("PasteImage: %v", err)
	}
	poll(t, tab, `typeof window.got === "string"`)
	if got, want := evaluate[string](t, tab, `window.got`), fmt.Sprintf("image/png:%d:%d", len(data), len(data)); got != want {
		t.Errorf("the page's paste got %q, want %q", got, want)
	}
	if err := tab.PasteImage(t.Context(), data, "text/html"); !errors.Is(err, ErrBadInput) {
		t.Errorf("PasteImage of text/html: %v, want ErrBadInput", err)
	}
	if err := tab.PasteImage(t.Context(), nil, "image/png"); !errors.Is(err, ErrBadInput) {
		t.Errorf("PasteImage of nothing: %v, want ErrBadInput", err)
	}
}
