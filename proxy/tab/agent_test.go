package tab

import (
	"testing"

	"github.com/glovebox/glovebox/render"
)

func TestAgentMessage(t *testing.T) {
	for _, tt := range []struct {
		ev   render.Event
		want string
	}{
		{render.Event{Type: render.EventCursor, Cursor: "pointer"}, `{"t":"cursor","cursor":"pointer"}`},
		{render.Event{Type: render.EventFullscreen, Fullscreen: false}, `{"t":"fullscreen","on":false}`},
		{render.Event{Type: render.EventFullscreen, Fullscreen: true}, `{"t":"fullscreen","on":true}`},
		{render.Event{Type: render.EventSelect, Select: &render.Select{ID: 2, Y: 10, W: 100, H: 20,
			Options: []render.SelectOption{{Label: "<b>a</b>", Selected: true}, {Label: "b", Group: "g", Disabled: true}}}},
			`{"t":"select","id":2,"y":10,"w":100,"h":20,"options":[{"label":"\u003cb\u003ea\u003c/b\u003e","selected":true},{"label":"b","group":"g","disabled":true}]}`},
		{render.Event{Type: render.EventContextMenu, ContextMenu: &render.ContextMenu{X: 1, Y: 2, Link: "https://a.example/", Editable: true}},
			`{"t":"context","x":1,"y":2,"link":"https://a.example/","editable":true}`},
		{render.Event{Type: render.EventSelect}, ""},
		{render.Event{Type: render.EventURL, URL: "https://a.example/"}, ""},
	} {
		if got := string(agentMessage(tt.ev)); got != tt.want {
			t.Errorf("%+v:\n got %s\nwant %s", tt.ev, got, tt.want)
		}
	}
}
