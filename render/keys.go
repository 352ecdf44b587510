package render

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/runtime"
)

// Limits on text and touch input.
const (
	maxComposeText = 1024 // bytes of a composition under way
	MaxTouchPoints = 10   // fingers at once, as many as a phone reports
	maxTouchID     = 1 << 31
)

// Compose shows text as the input method's composition under way in the
// focused field, as Chromium shows a local one (underlined, the caret at its
// end): the next Compose replaces it, InsertText commits it, and "" cancels
// it. This is how a CJK input method's text appears in the remote field while
// the user is still choosing it.
func (t *Tab) Compose(ctx context.Context, text string) error {
	if len(text) > maxComposeText || !utf8.ValidString(text) {
		return fmt.Errorf("%w: composition is not UTF-8 of at most %d bytes", ErrBadInput, maxComposeText)
	}
	// Blink counts the selection in UTF-16 code units.
	n := int64(len(utf16.Encode([]rune(text))))
	if err := t.call(ctx, input.CommandImeSetComposition, input.ImeSetCompositionParams{
		Text: text, SelectionStart: n, SelectionEnd: n,
	}); err != nil {
		return fmt.Errorf("set composition: %w", err)
	}
	return nil
}

// TouchPoint is one finger on the screen, in CSS px of the viewport.
type TouchPoint struct {
	X, Y float64
	// ID tells the fingers of one gesture apart, as Touch.identifier does.
	ID int64
}

// TouchEvent is a change of the fingers on the screen.
type TouchEvent struct {
	// Type is "start" (a finger went down), "move" (fingers moved, or one
	// of several went up), "end" (the last finger went up) or "cancel".
	Type string
	// Points are the fingers still down after the change: at least one
	// for start and move, none for end and cancel.
	Points []TouchPoint
	// Modifiers is the bitmask of ModAlt, ModCtrl, ModMeta and ModShift.
	Modifiers int
}

var touchTypes = map[string]input.DispatchTouchEventType{
	"start":  input.DispatchTouchEventTypeTouchStart,
	"move":   input.DispatchTouchEventTypeTouchMove,
	"end":    input.DispatchTouchEventTypeTouchEnd,
	"cancel": input.DispatchTouchEventTypeTouchCancel,
}

func touchEventParams(ev TouchEvent) (input.DispatchTouchEventParams, error) {
	var p input.DispatchTouchEventParams
	typ, ok := touchTypes[ev.Type]
	if !ok {
		return p, fmt.Errorf("%w: touch event type %q", ErrBadInput, ev.Type)
	}
	if ev.Modifiers < 0 || ev.Modifiers > 15 {
		return p, fmt.Errorf("%w: modifiers %d", ErrBadInput, ev.Modifiers)
	}
	down := ev.Type == "start" || ev.Type == "move"
	if down && len(ev.Points) == 0 {
		return p, fmt.Errorf("%w: touch %s without a touch point", ErrBadInput, ev.Type)
	}
	if !down && len(ev.Points) > 0 {
		// Chromium refuses touchEnd and touchCancel with points.
		return p, fmt.Errorf("%w: touch %s with touch points", ErrBadInput, ev.Type)
	}
	if len(ev.Points) > MaxTouchPoints {
		return p, fmt.Errorf("%w: %d touch points, at most %d", ErrBadInput, len(ev.Points), MaxTouchPoints)
	}
	p = input.DispatchTouchEventParams{Type: typ, Modifiers: int64(ev.Modifiers), TouchPoints: []*input.TouchPoint{}}
	seen := make(map[int64]bool, len(ev.Points))
	for _, pt := range ev.Points {
		if !finite(pt.X, pt.Y) || math.Abs(pt.X) > maxCoord || math.Abs(pt.Y) > maxCoord {
			return p, fmt.Errorf("%w: touch point (%v, %v) out of range", ErrBadInput, pt.X, pt.Y)
		}
		if pt.ID < 0 || pt.ID >= maxTouchID || seen[pt.ID] {
			return p, fmt.Errorf("%w: touch point id %d", ErrBadInput, pt.ID)
		}
		seen[pt.ID] = true
		p.TouchPoints = append(p.TouchPoints, &input.TouchPoint{X: pt.X, Y: pt.Y, ID: new(float64(pt.ID))})
	}
	return p, nil
}

// Validate reports the error Touch would refuse ev with.
func (ev TouchEvent) Validate() error {
	_, err := touchEventParams(ev)
	return err
}

// Touch injects a touch event into the page: Chromium makes of a sequence
// of them what a touch screen makes (touchstart and touchend, a tap's click,
// a swipe's scroll, a pinch).
func (t *Tab) Touch(ctx context.Context, ev TouchEvent) error {
	p, err := touchEventParams(ev)
	if err != nil {
		return err
	}
	if err := t.call(ctx, input.CommandDispatchTouchEvent, p); err != nil {
		return fmt.Errorf("touch %s: %w", ev.Type, err)
	}
	return nil
}

// SetTouch makes the page see a touch screen of n points (navigator.
// maxTouchPoints, ontouchstart, the pointer: coarse media query), as the
// user's own device has, or none for n = 0.
func (t *Tab) SetTouch(ctx context.Context, n int) error {
	if n < 0 || n > MaxTouchPoints {
		return fmt.Errorf("%w: %d touch points, at most %d", ErrBadInput, n, MaxTouchPoints)
	}
	p := emulation.SetTouchEmulationEnabledParams{Enabled: n > 0}
	if n > 0 {
		p.MaxTouchPoints = int64(n)
	}
	if err := t.call(ctx, emulation.CommandSetTouchEmulationEnabled, p); err != nil {
		return fmt.Errorf("set touch points %d: %w", n, err)
	}
	return nil
}

// focusScript returns the input mode of the focused field, following focus
// into same-origin frames and open shadow roots, or "" when what has the
// focus takes no text. A cross-origin frame's field cannot be seen from here:
// a frame with the focus counts as a text field, so that a phone's keyboard
// rather comes up once too often than never.
const focusScript = `(() => {
	let e = document.activeElement;
	for (let i = 0; e && i < 32; i++) {
		if (e.shadowRoot && e.shadowRoot.activeElement) { e = e.shadowRoot.activeElement; continue; }
		if (e.tagName === 'IFRAME' || e.tagName === 'FRAME') {
			let d = null;
			try { d = e.contentDocument; } catch (x) {}
			if (!d) return 'text';
			if (!d.activeElement || d.activeElement === d.body) return '';
			e = d.activeElement;
			continue;
		}
		break;
	}
	if (!e || e.disabled || e.readOnly) return '';
	const tag = e.tagName;
	let mode = (e.inputMode || '').toLowerCase();
	if (tag === 'INPUT') {
		const type = (e.type || 'text').toLowerCase();
		if (/^(button|checkbox|color|file|hidden|image|radio|range|reset|submit|date|datetime-local|month|time|week)$/.test(type)) return '';
		if (!mode) mode = {email: 'email', tel: 'tel', url: 'url', search: 'search', number: 'decimal'}[type] || 'text';
	} else if (tag !== 'TEXTAREA' && !e.isContentEditable) {
		return '';
	}
	return mode === 'none' ? 'none' : (mode || 'text');
})()`

// inputModes are the input modes FocusedField reports; anything else the
// page names is "text".
var inputModes = map[string]bool{"text": true, "none": true, "decimal": true, "numeric": true,
	"tel": true, "search": true, "email": true, "url": true}

// FocusedField reports whether what has the focus in the page takes text,
// and its input mode ("text", "numeric", "email", …), which picks the phone
// keyboard the user's device shows. It runs in the agent's isolated world of
// the main frame (agent.go), where the page's own scripts cannot see it.
func (t *Tab) FocusedField(ctx context.Context) (editable bool, inputMode string, err error) {
	id, ok := t.mainAgentContext()
	if !ok {
		return false, "", fmt.Errorf("read the focus: no agent world in the page yet")
	}
	res := &runtime.EvaluateResult{}
	if err := t.callResult(ctx, runtime.CommandEvaluate, runtime.EvaluateParams{
		Expression: focusScript, ContextID: id, ReturnByValue: new(true), Silent: new(true),
	}, res); err != nil {
		return false, "", fmt.Errorf("read the focus: %w", err)
	}
	if res.ExceptionDetails != nil || res.Result == nil {
		return false, "", fmt.Errorf("read the focus: the script failed")
	}
	var mode string
	if err := json.Unmarshal(res.Result.Value, &mode); err != nil {
		return false, "", fmt.Errorf("read the focus: %w", err)
	}
	if mode == "" {
		return false, "", nil
	}
	if !inputModes[mode] {
		mode = "text"
	}
	return true, mode, nil
}

// mainAgentContext returns the agent's execution context in the main
// frame: the newest, as a navigation makes the next before the last goes.
func (t *Tab) mainAgentContext() (runtime.ExecutionContextID, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var best runtime.ExecutionContextID
	for id, f := range t.agentFrames {
		if f.frame == t.mainFrame && id > best {
			best = id
		}
	}
	return best, best != 0
}
