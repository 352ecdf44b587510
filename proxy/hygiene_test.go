package proxy

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/glovebox/glovebox/proxy/internal/httpx"
)

func TestRemoveHopByHop(t *testing.T) {
	h := http.Header{
		"Connection":          {"keep-alive, X-Hop-A", "x-hop-b"},
		"X-Hop-A":             {"1"},
		"X-Hop-B":             {"2"},
		"Keep-Alive":          {"timeout=5"},
		"Proxy-Connection":    {"keep-alive"},
		"Te":                  {"trailers"},
		"Trailer":             {"X-Checksum"},
		"Upgrade":             {"h2c"},
		"Proxy-Authorization": {"Basic eDp5"},
		"Proxy-Authenticate":  {"Basic realm=x"},
		"X-End":               {"kept"},
		"Accept":              {"*/*"},
	}
	httpx.RemoveHopByHop(h, false)
	want := http.Header{"X-End": {"kept"}, "Accept": {"*/*"}}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("after: %v, want %v", h, want)
	}

	// A WebSocket handshake keeps its upgrade, and nothing else hop-by-hop.
	ws := http.Header{
		"Connection":            {"keep-alive, Upgrade, X-Hop"},
		"Upgrade":               {"websocket"},
		"X-Hop":                 {"1"},
		"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
		"Sec-Websocket-Version": {"13"},
	}
	if !httpx.IsWebSocket(ws) {
		t.Fatal("not seen as a WebSocket handshake")
	}
	httpx.RemoveHopByHop(ws, true)
	want = http.Header{
		"Connection":            {"Upgrade"},
		"Upgrade":               {"websocket"},
		"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
		"Sec-Websocket-Version": {"13"},
	}
	if !reflect.DeepEqual(ws, want) {
		t.Errorf("WebSocket after: %v, want %v", ws, want)
	}
	if httpx.IsWebSocket(http.Header{"Connection": {"close"}, "Upgrade": {"websocket"}}) {
		t.Error("an Upgrade without Connection: upgrade is not a handshake")
	}
}

func TestLooped(t *testing.T) {
	s := &Server{cfg: Config{Hygiene: HygieneConfig{Via: "glovebox"}}}
	tests := []struct {
		via  []string
		want bool
	}{
		{nil, false},
		{[]string{"1.1 glovebox"}, true},
		{[]string{"1.0 GloveBox"}, true},
		{[]string{"1.1 squid (squid/5.7), 1.1 glovebox"}, true},
		{[]string{"1.1 squid (a, 1.1 glovebox)", "1.1 other"}, false}, // inside a comment
		{[]string{"1.1 squid", "2 glovebox (second line)"}, true},
		{[]string{"1.1 gloveboxen"}, false},
		{[]string{"1.1 proxy.glovebox.example:3128"}, false},
		{[]string{"glovebox"}, false}, // a pseudonym alone is no hop
	}
	for _, tt := range tests {
		r := &http.Request{Header: http.Header{}}
		for _, v := range tt.via {
			r.Header.Add("Via", v)
		}
		if got := s.looped(r); got != tt.want {
			t.Errorf("Via %q: looped = %v, want %v", tt.via, got, tt.want)
		}
	}
	s.cfg.Hygiene.Via = ""
	if s.looped(&http.Request{Header: http.Header{"Via": {"1.1 glovebox"}}}) {
		t.Error("loop detection with hygiene.via off")
	}
}

func TestValidConnectTarget(t *testing.T) {
	tests := map[string]bool{
		"example.com:443":   true,
		"127.0.0.1:8080":    true,
		"[::1]:443":         true,
		"example.com":       false,
		"example.com:0":     false,
		"example.com:x":     false,
		"example.com:1e3":   false,
		"example.com:99999": false,
		":443":              false,
		"[::1]":             false,
		"a:b:c":             false,
	}
	for host, want := range tests {
		r := &http.Request{Method: http.MethodConnect, URL: &url.URL{Host: host}}
		if got := validConnectTarget(r); got != want {
			t.Errorf("CONNECT %s: valid = %v, want %v", host, got, want)
		}
	}
	if validConnectTarget(&http.Request{Method: http.MethodConnect, URL: &url.URL{Host: "a:1", Path: "/x"}}) {
		t.Error("CONNECT with a path is valid")
	}
}

func TestHygieneConfigValidate(t *testing.T) {
	tests := []struct {
		c    HygieneConfig
		want string
	}{
		{DefaultHygieneConfig(), ""},
		{HygieneConfig{Via: "", XForwardedFor: "add"}, ""},
		{HygieneConfig{Via: "gb-1.corp", XForwardedFor: "strip"}, ""},
		{HygieneConfig{Via: "two words", XForwardedFor: "off"}, "hygiene.via"},
		{HygieneConfig{Via: "a,b", XForwardedFor: "off"}, "hygiene.via"},
		{HygieneConfig{Via: "g", XForwardedFor: "on"}, "hygiene.x_forwarded_for"},
		{HygieneConfig{Via: "g", XForwardedFor: ""}, "hygiene.x_forwarded_for"},
	}
	for _, tt := range tests {
		err := tt.c.Validate()
		if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.c, err, tt.want)
		}
	}
	for _, l := range []LimitsConfig{{MaxHeaderBytes: 100, MaxHeaderCount: 10}, {MaxHeaderBytes: 8192, MaxHeaderCount: -1}} {
		if err := l.Validate(); err == nil || !strings.Contains(err.Error(), "limits.") {
			t.Errorf("%+v: %v, want an error naming the key", l, err)
		}
	}
}

func TestProtoVersion(t *testing.T) {
	for _, tt := range []struct {
		major, minor int
		want         string
	}{{1, 1, "1.1"}, {1, 0, "1.0"}, {2, 0, "2"}, {3, 0, "3"}} {
		if got := protoVersion(tt.major, tt.minor); got != tt.want {
			t.Errorf("%d.%d: %q, want %q", tt.major, tt.minor, got, tt.want)
		}
	}
}
