package render

import (
	"context"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
)

// The agent is a script in an isolated world of every frame of the page
// (agent.js): it reports what headless Chromium neither paints nor tells
// DevTools (the cursor, a <select>'s popup, date, time and colour
// pickers, the context menu, fullscreen) through a binding that exists in
// that world only, so the page's own scripts can neither see it nor call
// it. The page can still
// shape what the agent reads (its styles, its option labels, its links),
// so every report is parsed and bounded here, and what is not one of the
// fixed shapes is dropped.

//go:embed agent.js
var agentJS string

// copyJS runs in the page's own world: it tells the agent what the page
// writes to the clipboard (see copyhook.js).
//
//go:embed copyhook.js
var copyJS string

const (
	agentWorld   = "glovebox-agent"
	agentBinding = "__gloveboxReport"
)

// Limits on what the agent reports.
const (
	maxAgentReport = 512 << 10 // bytes of one report: a select's 300 options of long labels
	// MaxSelectOptions bounds the options of a <select> that the list
	// shows (the agent sends no more).
	MaxSelectOptions = 300
	maxLabel         = 200  // bytes of an option's or group's label
	maxLink          = 8192 // bytes of a context menu's link
)

// Event types the agent reports.
const (
	// EventCursor is sent when the cursor over the page changed to Cursor.
	EventCursor EventType = "cursor"
	// EventSelect is sent when the user pressed on a <select>, whose popup
	// Select describes.
	EventSelect EventType = "select"
	// EventContextMenu is sent when the user asked for a context menu that
	// the page did not handle itself, as ContextMenu describes.
	EventContextMenu EventType = "context"
	// EventPicker is sent when the user clicked a date, time or colour
	// input, whose picker Picker describes.
	EventPicker EventType = "picker"
	// EventFullscreen is sent when the page entered (Fullscreen true) or
	// left fullscreen.
	EventFullscreen EventType = "fullscreen"
	// EventPrint is sent when the page called window.print(): headless
	// Chromium shows no print dialog where a local browser would.
	EventPrint EventType = "print"
	// EventCopy is sent when the page wrote Text to the clipboard with the
	// async Clipboard API, within the user's activation (a Copy button).
	EventCopy EventType = "copy"
)

// Select is a <select>'s popup: its box in the viewport (CSS px) and its
// options in order; the choice goes back with ChooseOption.
type Select struct {
	ID         int
	X, Y, W, H float64
	Options    []SelectOption
}

// SelectOption is one option of a Select.
type SelectOption struct {
	// Label is the option's text, at most 200 bytes, without control
	// characters.
	Label string
	// Group is the label of its <optgroup>, if any.
	Group    string
	Disabled bool
	Selected bool
}

// Picker is a date, time or colour input's picker: the input's box in the
// viewport (CSS px), its kind and values; the choice goes back with
// SetPickerValue.
type Picker struct {
	ID         int
	X, Y, W, H float64
	// Kind is the input's type: date, time, datetime-local, month, week
	// or color.
	Kind string
	// Value, Min and Max are the input's, each of Kind's format (or "").
	Value, Min, Max string
}

// pickerValues are the formats of the values of each kind of picker, as
// HTML has them.
var pickerValues = map[string]*regexp.Regexp{
	"date":           regexp.MustCompile(`^\d{4,6}-\d{2}-\d{2}$`),
	"time":           regexp.MustCompile(`^\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?$`),
	"datetime-local": regexp.MustCompile(`^\d{4,6}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?$`),
	"month":          regexp.MustCompile(`^\d{4,6}-\d{2}$`),
	"week":           regexp.MustCompile(`^\d{4,6}-W\d{2}$`),
	"color":          regexp.MustCompile(`^#[0-9a-f]{6}$`),
}

// pickerValue is v if it is a value of some kind of picker, else "".
func pickerValue(kind, v string) string {
	if re, ok := pickerValues[kind]; ok && len(v) <= 64 && re.MatchString(v) {
		return v
	}
	return ""
}

// ValidPickerValue says whether v is a value of some kind of picker (or
// "", which clears the input).
func ValidPickerValue(v string) bool {
	if v == "" {
		return true
	}
	for kind := range pickerValues {
		if pickerValue(kind, v) != "" {
			return true
		}
	}
	return false
}

// ContextMenu is what a context menu needs to fit the element.
type ContextMenu struct {
	// X and Y are where it was asked for, in CSS px of the viewport.
	X, Y float64
	// Link is the http(s) URL of the link under the pointer, if any.
	Link string
	// Selection says there is selected text; Editable that the element
	// takes text; Image that an image is under the pointer (CopyImage).
	Selection, Editable, Image bool
}

// cursors are the CSS cursor keywords, which the agent's reports must be.
var cursors = map[string]bool{}

func init() {
	for c := range strings.FieldsSeq(`auto default none context-menu help pointer progress wait cell
		crosshair text vertical-text alias copy move no-drop not-allowed grab grabbing all-scroll
		col-resize row-resize n-resize e-resize s-resize w-resize ne-resize nw-resize se-resize
		sw-resize ew-resize ns-resize nesw-resize nwse-resize zoom-in zoom-out`) {
		cursors[c] = true
	}
}

// cursorName reduces a CSS cursor value to a standard keyword: a
// custom url() cursor to its fallback keyword, Chromium's old prefixed
// names to the standard ones, anything else to "default".
func cursorName(v string) string {
	if len(v) > 1024 {
		return "default"
	}
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	v = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(v)), "-webkit-")
	if v == "auto" || !cursors[v] {
		return "default"
	}
	return v
}

// agentReport is every field of any report of agent.js.
type agentReport struct {
	T       string  `json:"t"`
	Cursor  string  `json:"cursor"`
	ID      int     `json:"id"`
	X       float64 `json:"x"`
	Y       float64 `json:"y"`
	W       float64 `json:"w"`
	H       float64 `json:"h"`
	Options []struct {
		Label    string `json:"label"`
		Group    string `json:"group"`
		Disabled bool   `json:"disabled"`
		Selected bool   `json:"selected"`
	} `json:"options"`
	Kind      string `json:"kind"`
	Value     string `json:"value"`
	Min       string `json:"min"`
	Max       string `json:"max"`
	Link      string `json:"link"`
	Selection bool   `json:"selection"`
	Editable  bool   `json:"editable"`
	On        bool   `json:"on"`
	Text      string `json:"text"`
	Image     bool   `json:"image"`
}

var errBadReport = errors.New("render: bad agent report")

// parseAgentReport turns a report of the agent into an event, or refuses
// it. main says it came from the main frame: only there are a popup's
// and a menu's coordinates the viewport's.
func parseAgentReport(payload string, main bool) (Event, error) {
	if len(payload) > maxAgentReport {
		return Event{}, fmt.Errorf("%w: %d bytes", errBadReport, len(payload))
	}
	var r agentReport
	if err := json.Unmarshal([]byte(payload), &r); err != nil {
		return Event{}, fmt.Errorf("%w: %w", errBadReport, err)
	}
	if r.T == "cursor" {
		return Event{Type: EventCursor, Cursor: cursorName(r.Cursor)}, nil
	}
	if !main {
		return Event{}, fmt.Errorf("%w: %q from a subframe", errBadReport, r.T)
	}
	switch r.T {
	case "select":
		if r.ID < 1 || r.ID > math.MaxInt32 || !inViewport(r.X, r.Y, r.W, r.H) || len(r.Options) > MaxSelectOptions {
			return Event{}, fmt.Errorf("%w: select", errBadReport)
		}
		s := &Select{ID: r.ID, X: r.X, Y: r.Y, W: r.W, H: r.H, Options: make([]SelectOption, len(r.Options))}
		for i, o := range r.Options {
			s.Options[i] = SelectOption{Label: cleanLabel(o.Label), Group: cleanLabel(o.Group), Disabled: o.Disabled, Selected: o.Selected}
		}
		return Event{Type: EventSelect, Select: s}, nil
	case "context":
		if !inViewport(r.X, r.Y, 0, 0) {
			return Event{}, fmt.Errorf("%w: context menu position", errBadReport)
		}
		m := &ContextMenu{X: r.X, Y: r.Y, Selection: r.Selection, Editable: r.Editable, Image: r.Image}
		if u, err := url.Parse(r.Link); err == nil && len(r.Link) <= maxLink && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
			m.Link = u.String()
		}
		return Event{Type: EventContextMenu, ContextMenu: m}, nil
	case "picker":
		if _, ok := pickerValues[r.Kind]; !ok || r.ID < 1 || r.ID > math.MaxInt32 || !inViewport(r.X, r.Y, r.W, r.H) {
			return Event{}, fmt.Errorf("%w: picker", errBadReport)
		}
		return Event{Type: EventPicker, Picker: &Picker{ID: r.ID, X: r.X, Y: r.Y, W: r.W, H: r.H, Kind: r.Kind,
			Value: pickerValue(r.Kind, r.Value), Min: pickerValue(r.Kind, r.Min), Max: pickerValue(r.Kind, r.Max)}}, nil
	case "fullscreen":
		return Event{Type: EventFullscreen, Fullscreen: r.On}, nil
	case "print":
		return Event{Type: EventPrint}, nil
	case "copy":
		if r.Text == "" || !utf8.ValidString(r.Text) {
			return Event{}, fmt.Errorf("%w: copy", errBadReport)
		}
		return Event{Type: EventCopy, Text: cut(r.Text, MaxCopyText)}, nil
	}
	return Event{}, fmt.Errorf("%w: type %q", errBadReport, r.T)
}

// inViewport checks a box of the page's: finite, and not absurdly far
// (a select scrolled away may be partly outside the viewport).
func inViewport(vs ...float64) bool {
	for _, v := range vs {
		if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > maxCoord {
			return false
		}
	}
	return true
}

// cleanLabel makes a label of the page's safe to show and bounded: no
// control characters, at most maxLabel bytes, cut at a character.
func cleanLabel(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	for len(s) > maxLabel {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}

// installAgent makes the binding and the agent script part of every
// document of the page, and runs the agent in the current one. Its
// reports arrive as Runtime.bindingCalled and its worlds as
// Runtime.executionContextCreated, which come because chromedp enables
// the Runtime domain when it attaches.
func (t *Tab) installAgent(ctx context.Context) error {
	if _, err := cdp.Call(ctx, t.target, runtime.AddBinding, runtime.AddBindingParams{Name: agentBinding, ExecutionContextName: agentWorld}); err != nil {
		return fmt.Errorf("add the agent's binding: %w", err)
	}
	_, err := cdp.Call(ctx, t.target, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: agentJS, WorldName: agentWorld, RunImmediately: new(true),
	})
	if err != nil {
		return fmt.Errorf("add the agent's script: %w", err)
	}
	_, err = cdp.Call(ctx, t.target, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: copyJS, RunImmediately: new(true),
	})
	if err != nil {
		return fmt.Errorf("add the copy hook: %w", err)
	}
	return nil
}

// agentFrame is one of the agent's execution contexts: its frame, and the
// context's unique id, by which Chromium says it is gone.
type agentFrame struct {
	frame  cdp.FrameID
	unique string
}

// onAgentEvent follows the agent's execution contexts and turns its
// binding calls into events. It runs on the listener's goroutine.
func (t *Tab) onAgentEvent(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventExecutionContextCreated:
		if ev.Context == nil || ev.Context.Name != agentWorld {
			return
		}
		var aux struct {
			FrameID cdp.FrameID `json:"frameId"`
		}
		json.Unmarshal(ev.Context.AuxData, &aux)
		t.mu.Lock()
		if t.agentFrames == nil {
			t.agentFrames = map[runtime.ExecutionContextID]agentFrame{}
		}
		t.agentFrames[ev.Context.ID] = agentFrame{frame: aux.FrameID, unique: ev.Context.UniqueID}
		t.mu.Unlock()
	case *runtime.EventExecutionContextDestroyed:
		t.mu.Lock()
		for id, f := range t.agentFrames {
			if f.unique == ev.ExecutionContextUniqueID {
				delete(t.agentFrames, id)
			}
		}
		t.mu.Unlock()
	case *runtime.EventExecutionContextsCleared:
		t.mu.Lock()
		clear(t.agentFrames)
		t.mu.Unlock()
	case *runtime.EventBindingCalled:
		if ev.Name != agentBinding {
			return
		}
		t.mu.Lock()
		f, ok := t.agentFrames[ev.ExecutionContextID]
		main := ok && f.frame == t.mainFrame
		t.mu.Unlock()
		if !ok {
			return // not the agent's world: no one else has the binding
		}
		e, err := parseAgentReport(ev.Payload, main)
		if err != nil {
			t.log.Debug("agent report dropped", "err", err)
			return
		}
		if e.Type == EventCursor {
			t.mu.Lock()
			same := e.Cursor == t.cursor
			t.cursor = e.Cursor
			t.mu.Unlock()
			if same {
				return
			}
		}
		e.URL = t.URL()
		t.emit(e)
	}
}

// agentContext is the main frame's agent world.
func (t *Tab) agentContext() (runtime.ExecutionContextID, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, f := range t.agentFrames {
		if f.frame == t.mainFrame {
			return id, true
		}
	}
	return 0, false
}

// callAgent runs one of the agent's functions in the main frame with
// arguments that are numbers only, and decodes what it returns into out
// (unless out is nil).
func (t *Tab) callAgent(ctx context.Context, expr string, out any) error {
	id, ok := t.agentContext()
	if !ok {
		return fmt.Errorf("%w: the page has no agent", ErrBadInput)
	}
	res := new(runtime.EvaluateResult)
	if err := t.callResult(ctx, runtime.CommandEvaluate, runtime.EvaluateParams{Expression: expr, ContextID: id, ReturnByValue: new(true)}, res); err != nil {
		return err
	}
	if res.ExceptionDetails != nil {
		return fmt.Errorf("agent: %s", res.ExceptionDetails.Text)
	}
	if out != nil && res.Result != nil {
		if err := json.Unmarshal(res.Result.Value, out); err != nil {
			return fmt.Errorf("%w: %w", errBadReport, err)
		}
	}
	return nil
}

// MaxCopyText bounds the text SelectedText returns, in bytes.
const MaxCopyText = 32 << 10

// SelectedText is the text selected in the page (in its focused text
// field, or in the document), at most MaxCopyText bytes, for Copy.
func (t *Tab) SelectedText(ctx context.Context) (string, error) {
	var s string
	if err := t.callAgent(ctx, "__gloveboxAgent.selection()", &s); err != nil {
		return "", fmt.Errorf("read the selection: %w", err)
	}
	return cut(s, MaxCopyText), nil
}

// ChooseOption applies the user's choice of option index in the popup
// of Select id (the last one reported): the page's <select> takes it and
// fires input and change. A choice for another popup, or of a disabled
// option, does nothing.
func (t *Tab) ChooseOption(ctx context.Context, id, index int) error {
	if id < 1 || id > math.MaxInt32 || index < 0 || index >= MaxSelectOptions {
		return fmt.Errorf("%w: select %d option %d", ErrBadInput, id, index)
	}
	if err := t.callAgent(ctx, fmt.Sprintf("__gloveboxAgent.choose(%d, %d)", id, index), nil); err != nil {
		return fmt.Errorf("choose option: %w", err)
	}
	return nil
}

// SetPickerValue applies the value the user picked in the picker of
// Picker id (the last one reported): the page's input takes it and fires
// input and change. A value for another picker does nothing.
func (t *Tab) SetPickerValue(ctx context.Context, id int, value string) error {
	if id < 1 || id > math.MaxInt32 || !ValidPickerValue(value) {
		return fmt.Errorf("%w: picker %d value %q", ErrBadInput, id, value)
	}
	v, _ := json.Marshal(value)
	if err := t.callAgent(ctx, fmt.Sprintf("__gloveboxAgent.pick(%d, %s)", id, v), nil); err != nil {
		return fmt.Errorf("set picker value: %w", err)
	}
	return nil
}

// ExitFullscreen takes the page out of fullscreen, as Escape does in a
// local browser.
func (t *Tab) ExitFullscreen(ctx context.Context) error {
	if err := t.callAgent(ctx, "__gloveboxAgent.exitFullscreen()", nil); err != nil {
		return fmt.Errorf("exit fullscreen: %w", err)
	}
	return nil
}

// Paste gives the page the user's paste of text: a paste event with the
// text on its clipboardData, at the focused element; unless the page takes
// it (preventDefault), the text is then inserted as typed text would be.
func (t *Tab) Paste(ctx context.Context, text string) error {
	if len(text) > maxInsertText || !utf8.ValidString(text) {
		return fmt.Errorf("%w: text is not UTF-8 of at most %d bytes", ErrBadInput, maxInsertText)
	}
	if text == "" {
		return nil
	}
	lit, _ := json.Marshal(text) // a JavaScript string literal too: Go escapes U+2028 and U+2029
	var taken bool
	if err := t.callAgent(ctx, "__gloveboxAgent.paste("+string(lit)+")", &taken); err != nil {
		return fmt.Errorf("paste: %w", err)
	}
	if taken {
		return nil
	}
	return t.InsertText(ctx, text)
}

// Limits on the images of the clipboard.
const (
	// MaxPasteImage bounds an image PasteImage gives the page.
	MaxPasteImage = 8 << 20
	// maxCopyImage bounds the PNG CopyImage returns.
	maxCopyImage = 16 << 20
)

// CopyImage is the image under (x, y), CSS pixels of the viewport, as the
// page shows it (the part in the viewport), in PNG: the user's Copy image.
// Only its pixels leave the page, not the file the site sent.
func (t *Tab) CopyImage(ctx context.Context, x, y float64) ([]byte, error) {
	if !inViewport(x, y) {
		return nil, fmt.Errorf("%w: copy image at %v,%v", ErrBadInput, x, y)
	}
	var box *struct{ X, Y, W, H float64 }
	if err := t.callAgent(ctx, fmt.Sprintf("__gloveboxAgent.image(%g, %g)", x, y), &box); err != nil {
		return nil, fmt.Errorf("copy image: %w", err)
	}
	if box == nil || !inViewport(box.X, box.Y, box.W, box.H) || box.W < 1 || box.H < 1 {
		return nil, fmt.Errorf("%w: no image at %v,%v", ErrBadInput, x, y)
	}
	res := new(page.CaptureScreenshotResult)
	err := t.callResult(ctx, page.CommandCaptureScreenshot, page.CaptureScreenshotParams{
		Format: page.CaptureScreenshotFormatPng,
		Clip:   &page.Viewport{X: box.X, Y: box.Y, Width: box.W, Height: box.H, Scale: 1},
	}, res)
	if err != nil {
		return nil, fmt.Errorf("copy image: %w", err)
	}
	if len(res.Data) > maxCopyImage {
		return nil, fmt.Errorf("copy image: larger than %d MB", maxCopyImage>>20)
	}
	return res.Data, nil
}

// PasteImage fires a paste event carrying the image data (of type mime:
// PNG, JPEG, GIF or WebP) at the page's focused element, as the user's
// paste of a screenshot does. A page that does not take it gets nothing
// inserted.
func (t *Tab) PasteImage(ctx context.Context, data []byte, mime string) error {
	switch mime {
	case "image/png", "image/jpeg", "image/gif", "image/webp":
	default:
		return fmt.Errorf("%w: paste image: %q is not PNG, JPEG, GIF or WebP", ErrBadInput, mime)
	}
	if len(data) == 0 || len(data) > MaxPasteImage {
		return fmt.Errorf("%w: paste image: %d bytes (1 to %d)", ErrBadInput, len(data), MaxPasteImage)
	}
	expr := fmt.Sprintf("__gloveboxAgent.pasteImage(%q, %q)", base64.StdEncoding.EncodeToString(data), mime)
	if err := t.callAgent(ctx, expr, nil); err != nil {
		return fmt.Errorf("paste image: %w", err)
	}
	return nil
}
