package tab

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/glovebox/glovebox/render"
)

// The data channel carries small JSON objects with a "t" (type) field.
// Client → Glovebox: mouse, wheel, key, text, compose, touch, resize.
// Glovebox → client: url, title, dialog, error, ended, viewport (the answer
// to resize), focus (whether a text field has the focus, for a touch
// device's on-screen keyboard).

// clientMsg is every field any client message may carry.
type clientMsg struct {
	T       string  `json:"t"`
	Type    string  `json:"type,omitempty"`
	X       float64 `json:"x"`
	Y       float64 `json:"y"`
	Button  string  `json:"button,omitempty"`
	Buttons int     `json:"buttons,omitempty"`
	Clicks  int     `json:"clicks,omitempty"`
	Mods    int     `json:"mods,omitempty"`
	DX      float64 `json:"dx,omitempty"`
	DY      float64 `json:"dy,omitempty"`
	Key     string  `json:"key,omitempty"`
	Code    string  `json:"code,omitempty"`
	KeyCode int     `json:"keyCode,omitempty"`
	Text    string  `json:"text,omitempty"`
	Width   int     `json:"width,omitempty"`
	Height  int     `json:"height,omitempty"`
	DPR     float64 `json:"dpr,omitempty"`
	// Touch is, in resize, how many touch points the user's device has
	// (navigator.maxTouchPoints): the remote page sees as many.
	Touch int `json:"touch,omitempty"`
	// Points are, in touch, the fingers down after the change.
	Points []touchPoint `json:"points,omitempty"`
}

// touchPoint is one finger of a touch message.
type touchPoint struct {
	X  float64 `json:"x"`
	Y  float64 `json:"y"`
	ID int64   `json:"id"`
}

// serverMsg is what Glovebox tells the landing page.
type serverMsg struct {
	T       string `json:"t"`
	URL     string `json:"url,omitempty"`
	Title   string `json:"title,omitempty"`
	Message string `json:"message,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// viewport: the remote viewport in effect after a resize, in CSS
	// pixels, and the device pixel ratio honoured (both capped by
	// tabs.max_width/max_height/max_scale).
	Width  int     `json:"width,omitempty"`
	Height int     `json:"height,omitempty"`
	DPR    float64 `json:"dpr,omitempty"`
	// focus: whether what has the focus remotely takes text, and the
	// keyboard it asks for (its inputmode).
	Editable  bool   `json:"editable,omitempty"`
	InputMode string `json:"inputmode,omitempty"`
}

// errBadMessage is wrapped by every reason a client message is refused.
var errBadMessage = errors.New("bad message")

const (
	maxTextInput   = 4096
	maxComposeText = 1024
)

// parseClientMsg decodes and checks one data-channel message. Garbage gets an
// error that names what is wrong; nothing the client sends reaches Chromium
// unchecked.
func parseClientMsg(b []byte) (clientMsg, error) {
	var m clientMsg
	if !utf8.Valid(b) {
		return m, fmt.Errorf("%w: not UTF-8 JSON", errBadMessage)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%w: %v", errBadMessage, err)
	}
	for _, f := range []float64{m.X, m.Y, m.DX, m.DY, m.DPR} {
		if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e6 {
			return m, fmt.Errorf("%w: number out of range", errBadMessage)
		}
	}
	if len(m.Points) == 0 {
		m.Points = nil // "points":[] is no points, as its absence is
	}
	if len(m.Points) > 0 && m.T != "touch" {
		return m, fmt.Errorf("%w: touch points in a %q message", errBadMessage, m.T)
	}
	// Input is checked here with render's own rules, so that a message the
	// page would refuse is refused at once, as every other bad message is,
	// and never queued or counted as the user's activity.
	switch m.T {
	case "mouse":
		if m.Type != "move" && m.Type != "down" && m.Type != "up" {
			return m, fmt.Errorf("%w: mouse type %q", errBadMessage, m.Type)
		}
		if err := m.mouseEvent().Validate(); err != nil {
			return m, fmt.Errorf("%w: %w", errBadMessage, err)
		}
	case "wheel":
		if err := m.wheelEvent().Validate(); err != nil {
			return m, fmt.Errorf("%w: %w", errBadMessage, err)
		}
	case "key":
		if err := m.keyEvent().Validate(); err != nil {
			return m, fmt.Errorf("%w: %w", errBadMessage, err)
		}
	case "text":
		if len(m.Text) > maxTextInput {
			return m, fmt.Errorf("%w: text longer than %d bytes", errBadMessage, maxTextInput)
		}
	case "compose":
		if len(m.Text) > maxComposeText {
			return m, fmt.Errorf("%w: composition longer than %d bytes", errBadMessage, maxComposeText)
		}
	case "touch":
		if err := m.touchEvent().Validate(); err != nil {
			return m, fmt.Errorf("%w: %w", errBadMessage, err)
		}
	case "resize":
		if m.Width <= 0 || m.Height <= 0 {
			return m, fmt.Errorf("%w: resize needs a positive width and height", errBadMessage)
		}
		if m.Touch < 0 || m.Touch > render.MaxTouchPoints {
			// More points than any screen has: the page sees the most it may.
			m.Touch = render.MaxTouchPoints
		}
	case "":
		return m, fmt.Errorf("%w: no message type", errBadMessage)
	default:
		return m, fmt.Errorf("%w: unknown message type %q", errBadMessage, m.T)
	}
	return m, nil
}

func (m clientMsg) mouseEvent() render.MouseEvent {
	button := m.Button
	if button == "" {
		button = "none"
	}
	clicks := m.Clicks
	if clicks == 0 && (m.Type == "down" || m.Type == "up") {
		clicks = 1
	}
	return render.MouseEvent{Type: m.Type, X: m.X, Y: m.Y, Button: button, Buttons: m.Buttons,
		ClickCount: clicks, Modifiers: m.Mods}
}

func (m clientMsg) wheelEvent() render.MouseEvent {
	return render.MouseEvent{Type: "wheel", X: m.X, Y: m.Y, Button: "none", Modifiers: m.Mods,
		DeltaX: m.DX, DeltaY: m.DY}
}

func (m clientMsg) keyEvent() render.KeyEvent {
	return render.KeyEvent{Type: m.Type, Key: m.Key, Code: m.Code, KeyCode: m.KeyCode, Modifiers: m.Mods}
}

func (m clientMsg) touchEvent() render.TouchEvent {
	ev := render.TouchEvent{Type: m.Type, Modifiers: m.Mods}
	for _, p := range m.Points {
		ev.Points = append(ev.Points, render.TouchPoint{X: p.X, Y: p.Y, ID: p.ID})
	}
	return ev
}

func encodeServerMsg(m serverMsg) []byte {
	b, _ := json.Marshal(m) // cannot fail: strings only
	return b
}
