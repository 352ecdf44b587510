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
		"huge modifiers": `{"t":"mouse","type":"move","x":1,"y":1,"mods":9223372036854775807}`,
		"mouse button":   `{"t":"mouse","type":"down","x":1,"y":1,"button":"0"}`,
		"mouse buttons":  `{"t":"mouse","type":"move","x":1,"y":1,"buttons":-1}`,
		"click count":    `{"t":"mouse","type":"down","x":1,"y":1,"button":"left","clicks":1000000}`,
		"far position":   `{"t":"mouse","type":"move","x":500000,"y":0}`,
		"wheel delta":    `{"t":"wheel","x":1,"y":1,"dy":900000}`,
		"wheel mods":     `{"t":"wheel","x":1,"y":1,"dy":1,"mods":16}`,
		"empty key":      `{"t":"key","type":"down","code":"KeyA"}`,
		"control key":    `{"t":"key","type":"down","key":"\u0000"}`,
		"key code":       `{"t":"key","type":"down","key":"a","keyCode":65536}`,
		"key code name":  `{"t":"key","type":"down","key":"a","code":"Key A"}`,
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
