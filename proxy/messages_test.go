package proxy

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
