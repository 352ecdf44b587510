package tab

import (
	"encoding/json"

	"github.com/glovebox/glovebox/render"
)

// agentMsg is what the remote page's agent (render/agent.go) tells the
// landing page, after render has checked and bounded it: cursor, select,
// picker, context, fullscreen and copy messages.
type agentMsg struct {
	T string `json:"t"`
	// cursor: a CSS cursor keyword.
	Cursor string `json:"cursor,omitempty"`
	// select: the popup's id, its box in remote CSS px, its options.
	ID      int           `json:"id,omitempty"`
	X       float64       `json:"x,omitempty"`
	Y       float64       `json:"y,omitempty"`
	W       float64       `json:"w,omitempty"`
	H       float64       `json:"h,omitempty"`
	Options []agentOption `json:"options,omitempty"`
	// picker: the input's kind and values (with id and its box).
	Kind  string `json:"kind,omitempty"`
	Value string `json:"value,omitempty"`
	Min   string `json:"min,omitempty"`
	Max   string `json:"max,omitempty"`
	// context: the link under the pointer, whether text is selected and
	// whether the element takes text (with x and y).
	Link      string `json:"link,omitempty"`
	Selection bool   `json:"selection,omitempty"`
	Editable  bool   `json:"editable,omitempty"`
	Image     bool   `json:"image,omitempty"`
	// fullscreen: whether the remote page is in fullscreen.
	On *bool `json:"on,omitempty"`
	// copy: the text selected remotely, which the user asked to copy.
	Text string `json:"text,omitempty"`
}

type agentOption struct {
	Label    string `json:"label"`
	Group    string `json:"group,omitempty"`
	Disabled bool   `json:"disabled,omitempty"`
	Selected bool   `json:"selected,omitempty"`
}

// agentMessage is the message for one of the agent's events, or nil for
// any other event.
func agentMessage(ev render.Event) []byte {
	var m agentMsg
	switch {
	case ev.Type == render.EventCursor:
		m = agentMsg{T: "cursor", Cursor: ev.Cursor}
	case ev.Type == render.EventSelect && ev.Select != nil:
		s := ev.Select
		m = agentMsg{T: "select", ID: s.ID, X: s.X, Y: s.Y, W: s.W, H: s.H, Options: make([]agentOption, len(s.Options))}
		for i, o := range s.Options {
			m.Options[i] = agentOption{Label: o.Label, Group: o.Group, Disabled: o.Disabled, Selected: o.Selected}
		}
	case ev.Type == render.EventPicker && ev.Picker != nil:
		p := ev.Picker
		m = agentMsg{T: "picker", ID: p.ID, X: p.X, Y: p.Y, W: p.W, H: p.H, Kind: p.Kind, Value: p.Value, Min: p.Min, Max: p.Max}
	case ev.Type == render.EventContextMenu && ev.ContextMenu != nil:
		c := ev.ContextMenu
		m = agentMsg{T: "context", X: c.X, Y: c.Y, Link: c.Link, Selection: c.Selection, Editable: c.Editable, Image: c.Image}
	case ev.Type == render.EventFullscreen:
		m = agentMsg{T: "fullscreen", On: new(ev.Fullscreen)}
	default:
		return nil
	}
	b, _ := json.Marshal(m) // cannot fail: strings, finite numbers and bools only
	return b
}
