package pac

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// getPAC asks s for path with the given Host header, over a connection whose
// local address is 192.0.2.10:3128.
func getPAC(h http.Handler, path, host string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", path, nil)
	r.Host = host
	r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey,
		&net.TCPAddr{IP: net.ParseIP("192.0.2.10"), Port: 3128}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestPACGolden pins the PAC file for a few configurations
// (testdata/pac/NAME.golden). Run with -update after a deliberate change.
func TestPACGolden(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		host string // the Host header the PAC file is fetched with
	}{
		{"default", DefaultConfig(), "glovebox.corp.example:3128"},
		{"configured", Config{Proxy: "proxy.example.com:8080", DirectPrivate: false,
			Direct: []string{"corp.example", "*.intranet.test", ".lan.example", "Wiki.Example.org.", "10.20.0.0/16", "192.0.2.7", "[2001:DB8::1]", "printer"}},
			"ignored.example:1"},
		{"ipv6-host", DefaultConfig(), "[::1]:3128"},
		{"no-port", DefaultConfig(), "wpad.corp.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Handler(tt.cfg, slog.New(slog.DiscardHandler))
			w := getPAC(s, "/proxy.pac", tt.host)
			if w.Code != 200 {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/x-ns-proxy-autoconfig" {
				t.Errorf("Content-Type %q", ct)
			}
			if cc := w.Header().Get("Cache-Control"); cc != "max-age=300" {
				t.Errorf("Cache-Control %q", cc)
			}
			if wpad := getPAC(s, "/wpad.dat", tt.host); wpad.Body.String() != w.Body.String() {
				t.Errorf("/wpad.dat differs from /proxy.pac")
			}
			golden := filepath.Join("testdata", "pac", tt.name+".golden")
			if *update {
				os.MkdirAll(filepath.Dir(golden), 0o755)
				os.WriteFile(golden, w.Body.Bytes(), 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update once)", err)
			}
			if w.Body.String() != string(want) {
				t.Errorf("PAC differs from %s:\ngot:\n%s\nwant:\n%s", golden, w.Body, want)
			}
		})
	}
}

// TestPACHostHeaderInjection: the default proxy address comes from the Host
// header, which the client controls; anything but a well-formed host:port
// is replaced by the connection's own address.
func TestPACHostHeaderInjection(t *testing.T) {
	s := Handler(DefaultConfig(), slog.New(slog.DiscardHandler))
	for _, host := range []string{
		`evil";alert(1);"`,
		`a.example:3128"; return "DIRECT`,
		"a.example:99999",
		"a\u2028b.example:3128",
		"a.example:31x8",
		"",
	} {
		w := getPAC(s, "/proxy.pac", host)
		body := w.Body.String()
		if w.Code != 200 || !strings.Contains(body, `var GLOVEBOX = "PROXY 192.0.2.10:3128";`) {
			t.Errorf("Host %q: %d, want the local address in:\n%s", host, w.Code, body)
		}
		if strings.Contains(body, "alert") || strings.Contains(body, "return \"DIRECT\"; return") {
			t.Errorf("Host %q reached the script", host)
		}
	}
	r := httptest.NewRequest("POST", "/proxy.pac", nil)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", w.Code)
	}
}

func TestPACConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"quote in a direct host", Config{Direct: []string{"ok.example", `a"b.example`}}, `pac.direct[1]: "a\"b.example"`},
		{"script in a direct host", Config{Direct: []string{"</script><script>x()"}}, "pac.direct[0]"},
		{"space", Config{Direct: []string{"a b"}}, "want a host or domain name"},
		{"IPv6 range", Config{Direct: []string{"fd00::/8"}}, "only IPv4 ranges"},
		{"empty", Config{Direct: []string{""}}, "pac.direct[0]"},
		{"IPv6 zone", Config{Direct: []string{"fe80::1%eth0"}}, "pac.direct[0]: \"fe80::1%eth0\": an IPv6 zone"},
		{"text in a zone", Config{Direct: []string{`[fe80::1%"];alert(1)//]`}}, "an IPv6 zone"},
		{"proxy without port", Config{Proxy: "proxy.example"}, `pac.proxy: "proxy.example": want host:port`},
		{"proxy bad port", Config{Proxy: "proxy.example:0"}, "pac.proxy"},
		{"proxy injection", Config{Proxy: `p.example:80"; x="`}, "pac.proxy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if err := (&Config{Proxy: "[2001:db8::2]:3128", Direct: []string{"10.0.0.0/8", "::1", "x_y.corp"}}).Validate(); err != nil {
		t.Errorf("good config: %v", err)
	}
}
