package render

import (
	"strings"
	"testing"

	jsonv2 "github.com/chromedp/cdproto/cdp/jsonv2"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
)

func TestKeyEventParams(t *testing.T) {
	tests := []struct {
		ev       KeyEvent
		typ      input.DispatchKeyEventType
		text     string
		location int64
	}{
		{KeyEvent{Type: "down", Key: "a", Code: "KeyA", KeyCode: 65}, input.DispatchKeyEventTypeKeyDown, "a", 0},
		{KeyEvent{Type: "down", Key: "A", Code: "KeyA", KeyCode: 65, Modifiers: ModShift}, input.DispatchKeyEventTypeKeyDown, "A", 0},
		{KeyEvent{Type: "down", Key: " ", Code: "Space", KeyCode: 32}, input.DispatchKeyEventTypeKeyDown, " ", 0},
		{KeyEvent{Type: "down", Key: "é", Code: "KeyE", KeyCode: 69, Modifiers: ModAlt}, input.DispatchKeyEventTypeKeyDown, "é", 0},
		{KeyEvent{Type: "down", Key: "a", Code: "KeyA", KeyCode: 65, Modifiers: ModCtrl}, input.DispatchKeyEventTypeRawKeyDown, "", 0},
		{KeyEvent{Type: "down", Key: "c", Code: "KeyC", KeyCode: 67, Modifiers: ModMeta}, input.DispatchKeyEventTypeRawKeyDown, "", 0},
		{KeyEvent{Type: "down", Key: "Enter", Code: "Enter", KeyCode: 13}, input.DispatchKeyEventTypeKeyDown, "\r", 0},
		{KeyEvent{Type: "down", Key: "Enter", Code: "NumpadEnter", KeyCode: 13}, input.DispatchKeyEventTypeKeyDown, "\r", 3},
		{KeyEvent{Type: "down", Key: "Enter", Code: "Enter", KeyCode: 13, Modifiers: ModCtrl}, input.DispatchKeyEventTypeRawKeyDown, "", 0},
		{KeyEvent{Type: "down", Key: "Backspace", Code: "Backspace", KeyCode: 8}, input.DispatchKeyEventTypeRawKeyDown, "", 0},
		{KeyEvent{Type: "down", Key: "ArrowLeft", Code: "ArrowLeft", KeyCode: 37}, input.DispatchKeyEventTypeRawKeyDown, "", 0},
		{KeyEvent{Type: "down", Key: "Shift", Code: "ShiftRight", KeyCode: 16, Modifiers: ModShift}, input.DispatchKeyEventTypeRawKeyDown, "", 2},
		{KeyEvent{Type: "down", Key: "Tab", Code: "Tab", KeyCode: 9}, input.DispatchKeyEventTypeRawKeyDown, "", 0},
		{KeyEvent{Type: "up", Key: "a", Code: "KeyA", KeyCode: 65}, input.DispatchKeyEventTypeKeyUp, "", 0},
	}
	for _, tt := range tests {
		p, err := keyEventParams(tt.ev)
		if err != nil {
			t.Errorf("%+v: %v", tt.ev, err)
			continue
		}
		if p.Type != tt.typ || p.Text != tt.text || p.Location != tt.location {
			t.Errorf("%+v: type %s text %q location %d, want %s %q %d", tt.ev, p.Type, p.Text, p.Location, tt.typ, tt.text, tt.location)
		}
		if p.Key != tt.ev.Key || p.Code != tt.ev.Code || p.WindowsVirtualKeyCode != int64(tt.ev.KeyCode) ||
			p.NativeVirtualKeyCode != int64(tt.ev.KeyCode) || p.Modifiers != int64(tt.ev.Modifiers) {
			t.Errorf("%+v: params %+v", tt.ev, p)
		}
	}
}

// TestMouseParamsJSON pins what goes over the wire: cdproto would drop a
// zero deltaX, and Chromium rejects a wheel event without it.
func TestMouseParamsJSON(t *testing.T) {
	tests := []struct {
		ev       MouseEvent
		want     []string
		wantNone []string
	}{
		{MouseEvent{Type: "wheel", X: 5, Y: 6, DeltaY: 120}, []string{`"type":"mouseWheel"`, `"deltaX":0`, `"deltaY":120`, `"button":"none"`, `"clickCount":0`}, nil},
		{MouseEvent{Type: "down", X: 5, Y: 6, Button: "left", Buttons: 1}, []string{`"type":"mousePressed"`, `"button":"left"`, `"buttons":1`, `"clickCount":1`}, []string{"deltaX"}},
		{MouseEvent{Type: "up", X: 0, Y: 0, Button: "right", ClickCount: 2, Modifiers: ModShift}, []string{`"x":0`, `"y":0`, `"clickCount":2`, `"modifiers":8`}, nil},
		{MouseEvent{Type: "move", X: 1, Y: 2, Buttons: 4, ClickCount: 3}, []string{`"type":"mouseMoved"`, `"buttons":4`, `"button":"middle"`, `"clickCount":0`}, []string{"deltaY"}},
		// A move with a button held names it, or Chromium does not drag.
		{MouseEvent{Type: "move", X: 1, Y: 2, Buttons: 1}, []string{`"button":"left"`, `"buttons":1`}, nil},
		{MouseEvent{Type: "move", X: 1, Y: 2, Buttons: 3}, []string{`"button":"left"`, `"buttons":3`}, nil},
		{MouseEvent{Type: "move", X: 1, Y: 2, Buttons: 2}, []string{`"button":"right"`}, nil},
		{MouseEvent{Type: "move", X: 1, Y: 2, Buttons: 16}, []string{`"button":"forward"`}, nil},
		{MouseEvent{Type: "move", X: 1, Y: 2}, []string{`"button":"none"`, `"buttons":0`}, nil},
		{MouseEvent{Type: "move", X: 1, Y: 2, Button: "right", Buttons: 3}, []string{`"button":"right"`}, nil},
	}
	for _, tt := range tests {
		p, err := mouseEventParams(tt.ev)
		if err != nil {
			t.Fatalf("%+v: %v", tt.ev, err)
		}
		b, err := jsonv2.Marshal(p, chromedp.DefaultMarshalOptions)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tt.want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%+v: %s lacks %s", tt.ev, b, w)
			}
		}
		for _, w := range tt.wantNone {
			if strings.Contains(string(b), w) {
				t.Errorf("%+v: %s has %s", tt.ev, b, w)
			}
		}
	}
}
