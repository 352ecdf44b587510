package render

import (
	"context"
	"fmt"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/chromedp/cdproto/input"
)

// Modifier bits of MouseEvent.Modifiers and KeyEvent.Modifiers, as CDP
// counts them.
const (
	ModAlt   = 1
	ModCtrl  = 2
	ModMeta  = 4
	ModShift = 8
)

// Limits on input values.
const (
	maxCoord      = 100000 // CSS px, either way, for coordinates and wheel deltas
	maxClickCount = 5
	maxKeyLen     = 32      // bytes of KeyEvent.Key and .Code
	maxInsertText = 1 << 20 // bytes of InsertText
)

// MouseEvent is a mouse event from the client.
type MouseEvent struct {
	// Type is "move", "down", "up" or "wheel".
	Type string
	// X and Y are the pointer's position in CSS px in the viewport.
	X, Y float64
	// Button is the button that changed: "none", "left", "middle",
	// "right", "back" or "forward". Empty means "none".
	Button string
	// Buttons is the DOM MouseEvent.buttons bitmask of the buttons held
	// (Left=1, Right=2, Middle=4, Back=8, Forward=16).
	Buttons int
	// ClickCount is the DOM click count (2 for a double click). Zero means
	// 1 for "down" and "up", so that a click registers.
	ClickCount int
	// Modifiers is the bitmask of ModAlt, ModCtrl, ModMeta and ModShift.
	Modifiers int
	// DeltaX and DeltaY are a wheel's scroll in CSS px.
	DeltaX, DeltaY float64
}

var mouseTypes = map[string]input.DispatchMouseEventType{
	"move":  input.DispatchMouseEventTypeMouseMoved,
	"down":  input.DispatchMouseEventTypeMousePressed,
	"up":    input.DispatchMouseEventTypeMouseReleased,
	"wheel": input.DispatchMouseEventTypeMouseWheel,
}

var mouseButtons = map[string]input.MouseButton{
	"":        input.MouseButtonNone,
	"none":    input.MouseButtonNone,
	"left":    input.MouseButtonLeft,
	"middle":  input.MouseButtonMiddle,
	"right":   input.MouseButtonRight,
	"back":    input.MouseButtonBack,
	"forward": input.MouseButtonForward,
}

// heldButtons are the DOM MouseEvent.buttons bits, in the order in which
// a move with several buttons held names one.
var heldButtons = []struct {
	bit    int
	button input.MouseButton
}{
	{1, input.MouseButtonLeft},
	{2, input.MouseButtonRight},
	{4, input.MouseButtonMiddle},
	{8, input.MouseButtonBack},
	{16, input.MouseButtonForward},
}

// heldButton is the button a move with buttons held drags with: the first
// of heldButtons, or none.
func heldButton(buttons int) input.MouseButton {
	for _, b := range heldButtons {
		if buttons&b.bit != 0 {
			return b.button
		}
	}
	return input.MouseButtonNone
}

// mouseParams are Input.dispatchMouseEvent's parameters, marshalled here and
// not with cdproto's struct: that one omits zero values, and Chromium
// rejects a wheel event without deltaX, as a vertical scroll has
// (notes/media.md, pitfall 5).
type mouseParams struct {
	Type       input.DispatchMouseEventType `json:"type"`
	X          float64                      `json:"x"`
	Y          float64                      `json:"y"`
	Modifiers  int                          `json:"modifiers"`
	Button     input.MouseButton            `json:"button"`
	Buttons    int                          `json:"buttons"`
	ClickCount int                          `json:"clickCount"`
	DeltaX     *float64                     `json:"deltaX,omitempty"`
	DeltaY     *float64                     `json:"deltaY,omitempty"`
}

func finite(vs ...float64) bool {
	for _, v := range vs {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < -maxCoord || v > maxCoord {
			return false
		}
	}
	return true
}

// mouseEventParams checks ev and turns it into the command's parameters.
func mouseEventParams(ev MouseEvent) (mouseParams, error) {
	typ, ok := mouseTypes[ev.Type]
	if !ok {
		return mouseParams{}, fmt.Errorf("%w: mouse event type %q", ErrBadInput, ev.Type)
	}
	button, ok := mouseButtons[ev.Button]
	if !ok {
		return mouseParams{}, fmt.Errorf("%w: mouse button %q", ErrBadInput, ev.Button)
	}
	if !finite(ev.X, ev.Y, ev.DeltaX, ev.DeltaY) {
		return mouseParams{}, fmt.Errorf("%w: mouse position or delta out of range", ErrBadInput)
	}
	if ev.Buttons < 0 || ev.Buttons > 31 {
		return mouseParams{}, fmt.Errorf("%w: mouse buttons %d", ErrBadInput, ev.Buttons)
	}
	if ev.ClickCount < 0 || ev.ClickCount > maxClickCount {
		return mouseParams{}, fmt.Errorf("%w: click count %d", ErrBadInput, ev.ClickCount)
	}
	if ev.Modifiers < 0 || ev.Modifiers > 15 {
		return mouseParams{}, fmt.Errorf("%w: modifiers %d", ErrBadInput, ev.Modifiers)
	}
	p := mouseParams{
		Type: typ, X: ev.X, Y: ev.Y, Modifiers: ev.Modifiers,
		Button: button, Buttons: ev.Buttons, ClickCount: ev.ClickCount,
	}
	if typ == input.DispatchMouseEventTypeMouseMoved && button == input.MouseButtonNone {
		// Chromium drags (selects text, moves a slider's thumb, starts a
		// drag and drop) only when a move names the button held: buttons
		// alone moves the pointer as if no button were down. DOM mouse
		// moves carry only buttons.
		p.Button = heldButton(ev.Buttons)
	}
	switch typ {
	case input.DispatchMouseEventTypeMousePressed, input.DispatchMouseEventTypeMouseReleased:
		if p.ClickCount == 0 {
			p.ClickCount = 1
		}
	case input.DispatchMouseEventTypeMouseWheel:
		p.DeltaX, p.DeltaY = &ev.DeltaX, &ev.DeltaY
		p.ClickCount = 0
	default:
		p.ClickCount = 0
	}
	return p, nil
}

// Validate reports the error Mouse would refuse ev with, so that a caller
// can turn bad input away where it arrives rather than when it is applied.
func (ev MouseEvent) Validate() error {
	_, err := mouseEventParams(ev)
	return err
}

// Mouse injects a mouse event into the page.
func (t *Tab) Mouse(ctx context.Context, ev MouseEvent) error {
	p, err := mouseEventParams(ev)
	if err != nil {
		return err
	}
	if err := t.call(ctx, input.CommandDispatchMouseEvent, p); err != nil {
		return fmt.Errorf("mouse %s: %w", ev.Type, err)
	}
	return nil
}

// KeyEvent is a key event from the client, in DOM terms.
type KeyEvent struct {
	// Type is "down" or "up".
	Type string
	// Key is the DOM key, such as "a", "A", "!" or "Enter".
	Key string
	// Code is the DOM code of the physical key, such as "KeyA" or "Enter".
	Code string
	// KeyCode is the DOM keyCode, which is Windows' virtual key code.
	KeyCode int
	// Modifiers is the bitmask of ModAlt, ModCtrl, ModMeta and ModShift.
	Modifiers int
}

// keyEventParams checks ev and turns it into the command's parameters.
//
// A key that types (a single printable character, with neither Ctrl nor
// Meta) goes down as keyDown with its text, so that it produces input; Enter
// goes down with the text "\r", which is what submits a form or breaks a line.
// Any other key goes down as rawKeyDown, which runs the key's default action
// (Backspace, Tab, the arrows, Ctrl+A) without inserting text.
func keyEventParams(ev KeyEvent) (input.DispatchKeyEventParams, error) {
	var p input.DispatchKeyEventParams
	if ev.Type != "down" && ev.Type != "up" {
		return p, fmt.Errorf("%w: key event type %q", ErrBadInput, ev.Type)
	}
	if ev.Key == "" || len(ev.Key) > maxKeyLen || !utf8.ValidString(ev.Key) || strings.IndexFunc(ev.Key, unicode.IsControl) >= 0 {
		return p, fmt.Errorf("%w: key %q", ErrBadInput, ev.Key)
	}
	if len(ev.Code) > maxKeyLen || strings.IndexFunc(ev.Code, func(r rune) bool { return r > unicode.MaxASCII || !(unicode.IsLetter(r) || unicode.IsDigit(r)) }) >= 0 {
		return p, fmt.Errorf("%w: key code %q", ErrBadInput, ev.Code)
	}
	if ev.KeyCode < 0 || ev.KeyCode > 255 {
		return p, fmt.Errorf("%w: keyCode %d", ErrBadInput, ev.KeyCode)
	}
	if ev.Modifiers < 0 || ev.Modifiers > 15 {
		return p, fmt.Errorf("%w: modifiers %d", ErrBadInput, ev.Modifiers)
	}
	p = input.DispatchKeyEventParams{
		Type:                  input.DispatchKeyEventTypeKeyUp,
		Modifiers:             int64(ev.Modifiers),
		Key:                   ev.Key,
		Code:                  ev.Code,
		WindowsVirtualKeyCode: int64(ev.KeyCode),
		NativeVirtualKeyCode:  int64(ev.KeyCode),
		Location:              keyLocation(ev.Code),
	}
	if strings.HasPrefix(ev.Code, "Numpad") {
		p.IsKeypad = new(true)
	}
	if ev.Type == "up" {
		return p, nil
	}
	shortcut := ev.Modifiers&(ModCtrl|ModMeta) != 0
	switch {
	case !shortcut && utf8.RuneCountInString(ev.Key) == 1:
		r, _ := utf8.DecodeRuneInString(ev.Key)
		if !unicode.IsPrint(r) && r != '\u00a0' {
			p.Type = input.DispatchKeyEventTypeRawKeyDown
			break
		}
		p.Type = input.DispatchKeyEventTypeKeyDown
		p.Text, p.UnmodifiedText = ev.Key, ev.Key
	case !shortcut && ev.Key == "Enter":
		p.Type = input.DispatchKeyEventTypeKeyDown
		p.Text, p.UnmodifiedText = "\r", "\r"
	default:
		p.Type = input.DispatchKeyEventTypeRawKeyDown
	}
	return p, nil
}

// keyLocation returns the DOM location of a key: 1 for the left one of a
// pair, 2 for the right one, 3 for the numeric keypad.
func keyLocation(code string) int64 {
	switch {
	case strings.HasSuffix(code, "Left") && !strings.HasPrefix(code, "Arrow"):
		return 1
	case strings.HasSuffix(code, "Right") && !strings.HasPrefix(code, "Arrow"):
		return 2
	case strings.HasPrefix(code, "Numpad"):
		return 3
	}
	return 0
}

// Validate reports the error Key would refuse ev with, so that a caller
// can turn bad input away where it arrives rather than when it is applied.
func (ev KeyEvent) Validate() error {
	_, err := keyEventParams(ev)
	return err
}

// Key injects a key event into the page.
func (t *Tab) Key(ctx context.Context, ev KeyEvent) error {
	p, err := keyEventParams(ev)
	if err != nil {
		return err
	}
	if err := t.call(ctx, input.CommandDispatchKeyEvent, p); err != nil {
		return fmt.Errorf("key %s %q: %w", ev.Type, ev.Key, err)
	}
	return nil
}

// InsertText types text into the focused element as one input, as an input
// method or a paste does.
func (t *Tab) InsertText(ctx context.Context, text string) error {
	if len(text) > maxInsertText || !utf8.ValidString(text) {
		return fmt.Errorf("%w: text is not UTF-8 of at most %d bytes", ErrBadInput, maxInsertText)
	}
	if text == "" {
		return nil
	}
	if err := t.call(ctx, input.CommandInsertText, input.InsertTextParams{Text: text}); err != nil {
		return fmt.Errorf("insert text: %w", err)
	}
	return nil
}
