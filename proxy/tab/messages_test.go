package tab

import (
	"errors"
	"strings"
	"testing"

	"github.com/glovebox/glovebox/render"
)

func TestParseClientMsg(t *testing.T) {
	good := []string{
		`{"t":"mouse","type":"move","x":10,"y":20,"buttons":0}`,
		`{"t":"mouse","type":"down","x":10,"y":20,"button":"left","buttons":1,"clicks":1}`,
		`{"t":"mouse","type":"move","x":10,"y":20,"button":"left","buttons":1}`,
		`{"t":"mouse","type":"down","x":10,"y":20,"button":"middle","buttons":4,"clicks":3}`,
		`{"t":"wheel","x":1,"y":2,"dx":0,"dy":120}`,
		`{"t":"key","type":"down","key":"a","code":"KeyA","keyCode":65}`,
		`{"t":"text","text":"héllo"}`,
		`{"t":"resize","width":800,"height":600,"dpr":2}`,
		`{"t":"resize","width":390,"height":844,"dpr":3,"touch":5}`,
		`{"t":"compose","text":"にほん"}`,
		`{"t":"compose","text":""}`,
		`{"t":"touch","type":"start","points":[{"x":10,"y":20,"id":0}]}`,
		`{"t":"touch","type":"move","points":[{"x":10,"y":20,"id":0},{"x":50,"y":60,"id":7}],"mods":8}`,
		`{"t":"touch","type":"end"}`,
		`{"t":"touch","type":"cancel","points":[]}`,
		`{"t":"nav","action":"back"}`,
		`{"t":"nav","action":"forward"}`,
		`{"t":"nav","action":"reload"}`,
		`{"t":"nav","action":"entry","entry":42}`,
		`{"t":"nav","action":"entry","entry":9007199254740991}`,
		`{"t":"select","list":3,"index":0}`,
		`{"t":"select","list":3,"index":299}`,
		`{"t":"fullscreen","on":false}`,
		`{"t":"copy"}`,
		`{"t":"picker","list":2,"value":"#00ff80"}`,
		`{"t":"picker","list":2,"value":"2026-12-03"}`,
		`{"t":"picker","list":2,"value":"2026-12-03T17:30"}`,
		`{"t":"picker","list":2,"value":""}`,
		`{"t":"dialog","id":"d1","accept":true,"text":"héllo 日本"}`,
		`{"t":"dialog","id":"d42","accept":false}`,
		`{"t":"auth","id":"a3","user":"zoë","pass":"secret"}`,
		`{"t":"auth","id":"a3","cancel":true}`,
	}
	for _, s := range good {
		if _, err := parseClientMsg([]byte(s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	bad := map[string]string{
		"not json":     `hello`,
		"binary":       "\xff\xfe\x00\x01",
		"no type":      `{"x":1}`,
		"unknown type": `{"t":"exec","cmd":"rm -rf /"}`,
		"mouse type":   `{"t":"mouse","type":"teleport"}`,
		"key type":     `{"t":"key","type":"press","key":"a"}`,
		"huge number":  `{"t":"mouse","type":"move","x":1e300,"y":0}`,
		"long key":     `{"t":"key","type":"down","key":"` + strings.Repeat("a", 100) + `"}`,
		"long text":    `{"t":"text","text":"` + strings.Repeat("a", maxTextInput+1) + `"}`,
		"resize zero":  `{"t":"resize","width":0,"height":600}`,
		"wrong field":  `{"t":"mouse","type":"move","x":"left"}`,
		"array":        `[1,2,3]`,
		"truncated":    `{"t":"mouse","type":`,
		// Values render refuses are refused on arrival.
		"huge modifiers":     `{"t":"mouse","type":"move","x":1,"y":1,"mods":9223372036854775807}`,
		"mouse button":       `{"t":"mouse","type":"down","x":1,"y":1,"button":"0"}`,
		"mouse buttons":      `{"t":"mouse","type":"move","x":1,"y":1,"buttons":-1}`,
		"click count":        `{"t":"mouse","type":"down","x":1,"y":1,"button":"left","clicks":1000000}`,
		"far position":       `{"t":"mouse","type":"move","x":500000,"y":0}`,
		"wheel delta":        `{"t":"wheel","x":1,"y":1,"dy":900000}`,
		"wheel mods":         `{"t":"wheel","x":1,"y":1,"dy":1,"mods":16}`,
		"empty key":          `{"t":"key","type":"down","code":"KeyA"}`,
		"control key":        `{"t":"key","type":"down","key":"\u0000"}`,
		"key code":           `{"t":"key","type":"down","key":"a","keyCode":65536}`,
		"key code name":      `{"t":"key","type":"down","key":"a","code":"Key A"}`,
		"long compose":       `{"t":"compose","text":"` + strings.Repeat("a", maxComposeText+1) + `"}`,
		"touch type":         `{"t":"touch","type":"press","points":[{"x":1,"y":1,"id":0}]}`,
		"touch no point":     `{"t":"touch","type":"start"}`,
		"touch end point":    `{"t":"touch","type":"end","points":[{"x":1,"y":1,"id":0}]}`,
		"touch far":          `{"t":"touch","type":"move","points":[{"x":1e5,"y":1,"id":0},{"x":1,"y":-200000,"id":1}]}`,
		"touch same id":      `{"t":"touch","type":"move","points":[{"x":1,"y":1,"id":3},{"x":2,"y":2,"id":3}]}`,
		"touch id":           `{"t":"touch","type":"start","points":[{"x":1,"y":1,"id":-1}]}`,
		"touch many":         `{"t":"touch","type":"start","points":[` + strings.Repeat(`{"x":1,"y":1,"id":0},`, 10) + `{"x":1,"y":1,"id":0}]}`,
		"points in mouse":    `{"t":"mouse","type":"move","x":1,"y":1,"points":[{"x":1,"y":1,"id":0}]}`,
		"nav no action":      `{"t":"nav"}`,
		"nav action":         `{"t":"nav","action":"close"}`,
		"nav no entry":       `{"t":"nav","action":"entry"}`,
		"nav entry zero":     `{"t":"nav","action":"entry","entry":0}`,
		"nav entry neg":      `{"t":"nav","action":"entry","entry":-3}`,
		"nav entry big":      `{"t":"nav","action":"entry","entry":9007199254740992}`,
		"nav entry frac":     `{"t":"nav","action":"entry","entry":1.5}`,
		"nav entry str":      `{"t":"nav","action":"entry","entry":"7"}`,
		"back entry":         `{"t":"nav","action":"back","entry":3}`,
		"select no id":       `{"t":"select","index":1}`,
		"select id":          `{"t":"select","list":-1,"index":1}`,
		"select huge id":     `{"t":"select","list":4294967296,"index":1}`,
		"select index":       `{"t":"select","list":1,"index":-1}`,
		"select far index":   `{"t":"select","list":1,"index":300}`,
		"select index float": `{"t":"select","list":1,"index":1.5}`,
		"fullscreen on":      `{"t":"fullscreen","on":true}`,
		"picker script":      `{"t":"picker","list":2,"value":"'); alert(1); ('"}`,
		"picker colour name": `{"t":"picker","list":2,"value":"red"}`,
		"picker no id":       `{"t":"picker","value":"#000000"}`,
		// Dialog answers and sign-ins are bounded.
		"dialog no id":      `{"t":"dialog","accept":true}`,
		"dialog bad id":     `{"t":"dialog","id":"x1","accept":true}`,
		"dialog id letters": `{"t":"dialog","id":"d1a","accept":true}`,
		"dialog long id":    `{"t":"dialog","id":"d` + strings.Repeat("1", 30) + `"}`,
		"dialog accept str": `{"t":"dialog","id":"d1","accept":"yes"}`,
		"dialog long text":  `{"t":"dialog","id":"d1","accept":true,"text":"` + strings.Repeat("a", 4097) + `"}`,
		"auth no id":        `{"t":"auth","user":"u","pass":"p"}`,
		"auth long user":    `{"t":"auth","id":"a1","user":"` + strings.Repeat("u", 1025) + `"}`,
		"auth long pass":    `{"t":"auth","id":"a1","pass":"` + strings.Repeat("p", 1025) + `"}`,
		"auth pass number":  `{"t":"auth","id":"a1","pass":12}`,
	}
	for name, s := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := parseClientMsg([]byte(s))
			if !errors.Is(err, errBadMessage) {
				t.Errorf("err = %v, want errBadMessage", err)
			}
		})
	}
}

// TestURLMessage pins the url message the landing page mirrors in the
// user's history: the first entry's index 0 is sent, not left out.
func TestURLMessage(t *testing.T) {
	tab := &Tab{id: "abc"}
	tests := []struct {
		ev   render.Event
		want string
	}{
		{render.Event{Type: render.EventURL, URL: "http://h/", Entry: 3, Index: 0},
			`{"t":"url","url":"http://h/","tab":"abc","entry":3,"index":0}`},
		{render.Event{Type: render.EventURL, URL: "http://h/b", Entry: 4, Index: 1, Push: true},
			`{"t":"url","url":"http://h/b","tab":"abc","entry":4,"index":1,"push":true}`},
	}
	for _, tt := range tests {
		if got := string(encodeServerMsg(tab.urlMsg(tt.ev))); got != tt.want {
			t.Errorf("%+v: %s, want %s", tt.ev, got, tt.want)
		}
	}
}
