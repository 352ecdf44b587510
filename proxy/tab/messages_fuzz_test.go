package tab

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/glovebox/glovebox/render"
)

// FuzzClientMsg feeds arbitrary bytes to the data-channel message parser, as
// a landing page (or anyone holding a tab's token) may send them. Seeds are
// the messages proxy/web/app/*.js send, in testdata/fuzz/FuzzClientMsg.
func FuzzClientMsg(f *testing.F) {
	m := &Manager{cfg: DefaultConfig()}
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := parseClientMsg(b)
		if err != nil {
			if !errors.Is(err, errBadMessage) {
				t.Fatalf("error %v does not wrap errBadMessage", err)
			}
			return
		}
		checkClientMsg(t, m, msg)

		// What Glovebox accepted, re-encoded, is accepted as the same message.
		again, err := json.Marshal(msg)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", msg, err)
		}
		msg2, err := parseClientMsg(again)
		if err != nil {
			t.Fatalf("re-encoded %s: %v", again, err)
		}
		if !reflect.DeepEqual(msg2, msg) {
			t.Fatalf("round trip changed the message:\n%+v\n%+v", msg, msg2)
		}
	})
}

// checkClientMsg fails t unless msg, which parseClientMsg accepted, is one
// that the tab can apply without Chromium or render refusing it.
func checkClientMsg(t *testing.T, m *Manager, msg clientMsg) {
	t.Helper()
	for _, v := range []float64{msg.X, msg.Y, msg.DX, msg.DY, msg.DPR} {
		if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 1e6 {
			t.Fatalf("accepted a number out of range: %+v", msg)
		}
	}
	switch msg.T {
	case "mouse":
		if err := msg.mouseEvent().Validate(); err != nil {
			t.Fatalf("accepted a mouse message render refuses: %+v: %v", msg, err)
		}
	case "wheel":
		if err := msg.wheelEvent().Validate(); err != nil {
			t.Fatalf("accepted a wheel message render refuses: %+v: %v", msg, err)
		}
	case "key":
		if err := msg.keyEvent().Validate(); err != nil {
			t.Fatalf("accepted a key message render refuses: %+v: %v", msg, err)
		}
	case "text":
		if !utf8.ValidString(msg.Text) || len(msg.Text) > maxTextInput {
			t.Fatalf("accepted text that is not UTF-8 of at most %d bytes: %q", maxTextInput, msg.Text)
		}
	case "compose":
		if !utf8.ValidString(msg.Text) || len(msg.Text) > maxComposeText {
			t.Fatalf("accepted a composition that is not UTF-8 of at most %d bytes: %q", maxComposeText, msg.Text)
		}
	case "touch":
		if err := msg.touchEvent().Validate(); err != nil {
			t.Fatalf("accepted a touch message render refuses: %+v: %v", msg, err)
		}
	case "select":
		if msg.List < 1 || msg.List > math.MaxInt32 || msg.Index < 0 || msg.Index >= render.MaxSelectOptions {
			t.Fatalf("accepted a select render refuses: %+v", msg)
		}
	case "picker":
		if msg.List < 1 || msg.List > math.MaxInt32 || !render.ValidPickerValue(msg.Value) || len(msg.Value) > 64 {
			t.Fatalf("accepted a picker value render refuses: %+v", msg)
		}
	case "fullscreen":
		if msg.On {
			t.Fatalf("accepted a request to enter fullscreen: %+v", msg)
		}
	case "copy":
	case "resize":
		if msg.Touch < 0 || msg.Touch > render.MaxTouchPoints {
			t.Fatalf("accepted a resize with %d touch points", msg.Touch)
		}
		if msg.Width <= 0 || msg.Height <= 0 {
			t.Fatalf("accepted a resize to %dx%d", msg.Width, msg.Height)
		}
		w, h, s := m.clampViewport(msg.Width, msg.Height, msg.DPR)
		if w < 320 || w > m.cfg.MaxWidth || h < 240 || h > m.cfg.MaxHeight || !(s >= 1 && s <= m.cfg.MaxScale) {
			t.Fatalf("resize %+v clamped to %dx%d@%v, outside the caps", msg, w, h, s)
		}
	case "nav":
		switch msg.Action {
		case "back", "forward", "reload":
			if msg.Entry != 0 {
				t.Fatalf("accepted nav %s with an entry: %+v", msg.Action, msg)
			}
		case "entry":
			if msg.Entry <= 0 || msg.Entry > maxEntryID {
				t.Fatalf("accepted nav to entry %d", msg.Entry)
			}
		default:
			t.Fatalf("accepted nav action %q", msg.Action)
		}
	case "dialog":
		if !validDialogID(msg.ID) || len(msg.Text) > render.MaxDialogText || !utf8.ValidString(msg.Text) {
			t.Fatalf("accepted a dialog answer render refuses: %+v", msg)
		}
	case "auth":
		// The password is not printed, even by a failing fuzz run.
		if !validDialogID(msg.ID) || len(msg.User) > render.MaxAuthField || len(msg.Pass) > render.MaxAuthField ||
			!utf8.ValidString(msg.User) || !utf8.ValidString(msg.Pass) {
			t.Fatalf("accepted a sign-in render refuses: id %q, user %q, password of %d bytes", msg.ID, msg.User, len(msg.Pass))
		}
	default:
		t.Fatalf("accepted a message of unknown type %q", msg.T)
	}
}
