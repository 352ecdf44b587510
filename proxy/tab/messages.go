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
// Client → Glovebox: mouse, wheel, key, text, compose, touch, resize, nav
// (Back, Forward, an entry of the remote history, reload), select, picker,
// fullscreen, copy, paste (the user's clipboard text, for a paste event).
// Glovebox → client: url (with the remote history entry), title, dialog,
// error, ended, viewport (the answer to resize), focus (whether a text field
// has the focus, for a touch device's on-screen keyboard), popup (the page
// opened a window: see popup.go), popup-refused and close (the page closed
// itself), and the agent's cursor, select, picker, context, fullscreen and
// copy (agent.go), notice (what policy stopped: clipboard.go) and download
// (download.go).
// Client → Glovebox: mouse, wheel, key, text, resize, dialog and auth (the
// user's answer to a dialog or sign-in).
// Glovebox → client: url, title, dialog, auth (a sign-in the page asks
// for), dialog-closed, error, ended, viewport (the answer to resize).

// maxImagePoint bounds the point of a copy-image message, in CSS px.
const maxImagePoint = 100000

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
	// nav: Action is back, forward, reload or entry; Entry the remote
	// history entry's id (a url message's entry) for entry.
	Action string `json:"action,omitempty"`
	Entry  int64  `json:"entry,omitempty"`
	// Touch is, in resize, how many touch points the user's device has
	// (navigator.maxTouchPoints): the remote page sees as many.
	Touch int `json:"touch,omitempty"`
	// Points are, in touch, the fingers down after the change.
	Points []touchPoint `json:"points,omitempty"`
	// select: the user's choice of option Index in list List (the id of
	// Glovebox's select message; agent.go).
	List  int `json:"list,omitempty"`
	Index int `json:"index,omitempty"`
	// picker: the Value the user picked in picker List.
	Value string `json:"value,omitempty"`
	// fullscreen: false, the user left fullscreen. visible: whether the
	// landing page can be seen (Page Visibility; hidden.go).
	On bool `json:"on,omitempty"`
	// dialog and auth: ID is the dialog's or sign-in's (from Glovebox's
	// message); Accept is OK (Leave for beforeunload) and Text a prompt's
	// answer; User and Pass the credentials, Cancel a refused sign-in. Pass
	// is a secret: a clientMsg is never logged.
	ID     string `json:"id,omitempty"`
	Accept bool   `json:"accept,omitempty"`
	User   string `json:"user,omitempty"`
	Pass   string `json:"pass,omitempty"`
	Cancel bool   `json:"cancel,omitempty"`
}

// touchPoint is one finger of a touch message.
type touchPoint struct {
	X  float64 `json:"x"`
	Y  float64 `json:"y"`
	ID int64   `json:"id"`
}

// serverMsg is what Glovebox tells the landing page.
type serverMsg struct {
	T string `json:"t"`
	// ID is a popup's tab id (popup), a dialog's or sign-in's (dialog, auth,
	// dialog-closed).
	ID      string `json:"id,omitempty"`
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
	// url: the remote page's history entry (its id, and its position,
	// which the landing page turns into history.go steps), whether a
	// navigation added it after the previous one (history.pushState), and
	// the tab's id (entry ids are only unique within one tab's browser).
	Tab   string `json:"tab,omitempty"`
	Entry int64  `json:"entry,omitempty"`
	Index *int   `json:"index,omitempty"`
	Push  bool   `json:"push,omitempty"`
	// Settled (url) says the remote tab stays on this entry: a nav to an
	// entry the landing page asked for could not be done (no such entry).
	Settled bool `json:"settled,omitempty"`
	// viewed: how many operators are viewing the tab now (0: none).
	Viewers *int `json:"viewers,omitempty"`
	// dialog, auth, dialog-closed: ID (above) names the dialog or sign-in
	// in the answer; Kind is the dialog's (alert, confirm, prompt,
	// beforeunload), Message its text, Text a prompt's default, URL the page
	// that asks; Realm and Scheme are a sign-in's.
	Kind   string `json:"kind,omitempty"`
	Text   string `json:"text,omitempty"`
	Realm  string `json:"realm,omitempty"`
	Scheme string `json:"scheme,omitempty"`
	// download: ID names the download, Name is the file's, Size and
	// Received its bytes, State one of progress, checking, ready (URL is
	// the one-time address to save it from), refused and failed (Message
	// says why).
	Name     string `json:"name,omitempty"`
	Size     int64  `json:"size,omitempty"`
	Received int64  `json:"received,omitempty"`
	State    string `json:"state,omitempty"`
	// chooser: the remote page opened a file chooser (ID), for several
	// files when Multiple, of the types of Accept (its accept attribute).
	Multiple bool   `json:"multiple,omitempty"`
	Accept   string `json:"accept,omitempty"`
}

// errBadMessage is wrapped by every reason a client message is refused.
var errBadMessage = errors.New("bad message")

const (
	maxTextInput   = 4096
	maxComposeText = 1024
)

// maxEntryID is the largest history entry id a client may name: the largest
// integer a JavaScript number holds exactly.
const maxEntryID = 1<<53 - 1

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
	case "text", "paste":
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
	case "select":
		if m.List < 1 || m.List > math.MaxInt32 || m.Index < 0 || m.Index >= render.MaxSelectOptions {
			return m, fmt.Errorf("%w: select needs a popup id and an option index below %d", errBadMessage, render.MaxSelectOptions)
		}
	case "picker":
		if m.List < 1 || m.List > math.MaxInt32 || !render.ValidPickerValue(m.Value) {
			return m, fmt.Errorf("%w: picker needs a picker id and a date, time or colour value", errBadMessage)
		}
	case "fullscreen":
		if m.On {
			return m, fmt.Errorf("%w: only the remote page enters fullscreen", errBadMessage)
		}
	case "copy", "print", "visible":
	case "copy-image":
		if math.IsNaN(m.X) || math.IsNaN(m.Y) || math.Abs(m.X) > maxImagePoint || math.Abs(m.Y) > maxImagePoint {
			return m, fmt.Errorf("%w: copy-image needs the point of the image", errBadMessage)
		}
	case "resize":
		if m.Width <= 0 || m.Height <= 0 {
			return m, fmt.Errorf("%w: resize needs a positive width and height", errBadMessage)
		}
		if m.Touch < 0 || m.Touch > render.MaxTouchPoints {
			// More points than any screen has: the page sees the most it may.
			m.Touch = render.MaxTouchPoints
		}
	case "nav":
		switch m.Action {
		case "back", "forward", "reload":
			if m.Entry != 0 {
				return m, fmt.Errorf("%w: nav %s takes no entry", errBadMessage, m.Action)
			}
		case "entry":
			// Entry ids are positive, and a landing page has them from
			// JSON numbers: exact integers only up to 2^53.
			if m.Entry <= 0 || m.Entry > maxEntryID {
				return m, fmt.Errorf("%w: nav entry needs an entry id between 1 and %d", errBadMessage, int64(maxEntryID))
			}
		default:
			return m, fmt.Errorf("%w: nav action %q", errBadMessage, m.Action)
		}
	case "dialog":
		if !validDialogID(m.ID) {
			return m, fmt.Errorf("%w: dialog id %q", errBadMessage, cutForError(m.ID))
		}
		if len(m.Text) > render.MaxDialogText {
			return m, fmt.Errorf("%w: dialog answer longer than %d bytes", errBadMessage, render.MaxDialogText)
		}
	case "auth":
		if !validDialogID(m.ID) {
			return m, fmt.Errorf("%w: sign-in id %q", errBadMessage, cutForError(m.ID))
		}
		if len(m.User) > render.MaxAuthField || len(m.Pass) > render.MaxAuthField {
			return m, fmt.Errorf("%w: user or password longer than %d bytes", errBadMessage, render.MaxAuthField)
		}
	case "":
		return m, fmt.Errorf("%w: no message type", errBadMessage)
	default:
		return m, fmt.Errorf("%w: unknown message type %q", errBadMessage, m.T)
	}
	return m, nil
}

// validDialogID reports whether id looks like the ids render gives dialogs
// and sign-ins: a letter and digits, short.
func validDialogID(id string) bool {
	if len(id) < 2 || len(id) > 24 || (id[0] != 'd' && id[0] != 'a') {
		return false
	}
	for _, c := range []byte(id[1:]) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// cutForError shortens what a client sent for an error message.
func cutForError(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
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
