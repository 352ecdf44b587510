package tab

import (
	"errors"
	"strings"
	"testing"
)

func TestParseClientMsg(t *testing.T) {
	good := []string{
		`{"t":"mouse","type":"move","x":10,"y":20,"buttons":0}`,
		`{"t":"mouse","type":"down","x":10,"y":20,"button":"left","buttons":1,"clicks":1}`,
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
		"huge modifiers":  `{"t":"mouse","type":"move","x":1,"y":1,"mods":9223372036854775807}`,
		"mouse button":    `{"t":"mouse","type":"down","x":1,"y":1,"button":"0"}`,
		"mouse buttons":   `{"t":"mouse","type":"move","x":1,"y":1,"buttons":-1}`,
		"click count":     `{"t":"mouse","type":"down","x":1,"y":1,"button":"left","clicks":1000000}`,
		"far position":    `{"t":"mouse","type":"move","x":500000,"y":0}`,
		"wheel delta":     `{"t":"wheel","x":1,"y":1,"dy":900000}`,
		"wheel mods":      `{"t":"wheel","x":1,"y":1,"dy":1,"mods":16}`,
		"empty key":       `{"t":"key","type":"down","code":"KeyA"}`,
		"control key":     `{"t":"key","type":"down","key":"\u0000"}`,
		"key code":        `{"t":"key","type":"down","key":"a","keyCode":65536}`,
		"key code name":   `{"t":"key","type":"down","key":"a","code":"Key A"}`,
		"long compose":    `{"t":"compose","text":"` + strings.Repeat("a", maxComposeText+1) + `"}`,
		"touch type":      `{"t":"touch","type":"press","points":[{"x":1,"y":1,"id":0}]}`,
		"touch no point":  `{"t":"touch","type":"start"}`,
		"touch end point": `{"t":"touch","type":"end","points":[{"x":1,"y":1,"id":0}]}`,
		"touch far":       `{"t":"touch","type":"move","points":[{"x":1e5,"y":1,"id":0},{"x":1,"y":-200000,"id":1}]}`,
		"touch same id":   `{"t":"touch","type":"move","points":[{"x":1,"y":1,"id":3},{"x":2,"y":2,"id":3}]}`,
		"touch id":        `{"t":"touch","type":"start","points":[{"x":1,"y":1,"id":-1}]}`,
		"touch many":      `{"t":"touch","type":"start","points":[` + strings.Repeat(`{"x":1,"y":1,"id":0},`, 10) + `{"x":1,"y":1,"id":0}]}`,
		"points in mouse": `{"t":"mouse","type":"move","x":1,"y":1,"points":[{"x":1,"y":1,"id":0}]}`,
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
