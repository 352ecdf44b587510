package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestUpstreamRoute(t *testing.T) {
	u, err := newUpstreamRoute("http://u:p@127.0.0.1:3128", []string{"corp.example", ".intra.test", "*.wild.test", "10.0.0.0/8", "192.0.2.7", "[2001:db8::1]", "Upper.Test."})
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]bool{ // host → through the parent
		"example.com":        true,
		"corp.example":       false,
		"wiki.corp.example":  false,
		"WIKI.Corp.Example.": false,
		"notcorp.example":    true,
		"a.intra.test":       false,
		"x.wild.test":        false,
		"wild.test":          false,
		"10.1.2.3":           false,
		"11.1.2.3":           true,
		"192.0.2.7":          false,
		"192.0.2.8":          true,
		"::ffff:10.0.0.1":    false,
		"[2001:db8::1]":      false,
		"2001:db8::2":        true,
		"upper.test":         false,
	}
	for host, viaParent := range tests {
		p := u.parentFor(host)
		if (p != nil) != viaParent {
			t.Errorf("%s: parent %v, want through the parent: %v", host, p, viaParent)
		}
		if p != nil && p.Host != "127.0.0.1:3128" {
			t.Errorf("%s: parent %v", host, p)
		}
	}
	if u.auth != "Basic dTpw" {
		t.Errorf("auth %q", u.auth)
	}
	direct, _ := newUpstreamRoute("", []string{"x.test"})
	if direct.parentFor("example.com") != nil {
		t.Error("no parent configured, yet one is used")
	}
}

func TestUpstreamConfigValidate(t *testing.T) {
	tests := []struct {
		c    UpstreamConfig
		want string
	}{
		{DefaultUpstreamConfig(), ""},
		{UpstreamConfig{Proxy: "http://proxy.corp:3128", Direct: []string{"corp.example", "10.0.0.0/8"}, IdleTimeout: time.Second}, ""},
		{UpstreamConfig{Proxy: "socks5://proxy.corp:1080", IdleTimeout: time.Second}, "upstream.proxy"},
		{UpstreamConfig{Proxy: "http://proxy.corp", IdleTimeout: time.Second}, "upstream.proxy"},
		{UpstreamConfig{Direct: []string{"a b"}, IdleTimeout: time.Second}, "upstream.direct[0]"},
		{UpstreamConfig{Direct: []string{"ok.test", "bad..name"}, IdleTimeout: time.Second}, "upstream.direct[1]"},
		{UpstreamConfig{Direct: []string{"host.test:8080"}, IdleTimeout: time.Second}, "upstream.direct[0]"},
		{UpstreamConfig{}, "upstream.idle_timeout"},
	}
	for _, tt := range tests {
		err := tt.c.Validate()
		if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.c, err, tt.want)
		}
	}
	// The password never appears in the message.
	c := UpstreamConfig{Proxy: "http://u:hunter2@proxy.corp", IdleTimeout: time.Second}
	if err := c.Validate(); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %v shows the password or is missing", err)
	}
}

// TestEgressWithParent pins the choice: the egress proxy inherits the
// proxy's parent unless egress.upstream names its own or says "direct",
// and upstream.direct applies to it whichever parent it has.
func TestEgressWithParent(t *testing.T) {
	up := UpstreamConfig{Proxy: "http://parent.corp:3128", Direct: []string{"corp.example"}, IdleTimeout: time.Second}
	tests := []struct{ egress, want string }{
		{"", "http://parent.corp:3128"},
		{"direct", ""},
		{"http://other.corp:8080", "http://other.corp:8080"},
	}
	for _, tt := range tests {
		c := DefaultEgressConfig()
		c.Upstream = tt.egress
		if err := c.Validate(); err != nil {
			t.Errorf("egress.upstream %q: %v", tt.egress, err)
		}
		got := c.WithParent(up)
		if got.Upstream != tt.want || !reflect.DeepEqual(got.Direct, up.Direct) {
			t.Errorf("egress.upstream %q → %q %v, want %q", tt.egress, got.Upstream, got.Direct, tt.want)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("resolved %q: %v", got.Upstream, err)
		}
	}
	if got := DefaultEgressConfig().WithParent(DefaultUpstreamConfig()); got.Upstream != "" {
		t.Errorf("defaults: egress upstream %q, want direct", got.Upstream)
	}
}

// fakeParent accepts one connection, hands the CONNECT request it reads to
// answer, and writes what answer returns.
func fakeParent(t *testing.T, answer func(*http.Request) string) (*url.URL, <-chan *http.Request) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan *http.Request, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		got <- r
		if a := answer(r); a != "" {
			io.WriteString(c, a)
			io.Copy(io.Discard, c)
		} else {
			time.Sleep(5 * time.Second) // hang
		}
	}()
	return &url.URL{Scheme: "http", Host: ln.Addr().String()}, got
}

func TestDialParent(t *testing.T) {
	var d net.Dialer
	ctx := func() context.Context {
		c, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		t.Cleanup(cancel)
		return c
	}

	// Accepted, with the server's first bytes right behind the 200.
	p, got := fakeParent(t, func(*http.Request) string { return "HTTP/1.1 200 Connection established\r\n\r\nSSH-2.0-hello\r\n" })
	c, err := dialParent(ctx(), d.DialContext, p, "Basic dTpw", "site.test:22", http.Header{"Via": {"1.1 glovebox"}})
	if err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.Method != http.MethodConnect || r.RequestURI != "site.test:22" || r.Header.Get("Proxy-Authorization") != "Basic dTpw" || r.Header.Get("Via") != "1.1 glovebox" {
		t.Errorf("parent got %s %s %v", r.Method, r.RequestURI, r.Header)
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	if line != "SSH-2.0-hello\r\n" {
		t.Errorf("first bytes %q", line)
	}
	if _, ok := c.(interface{ CloseRead() error }); !ok {
		t.Error("a buffered tunnel cannot be half-closed")
	}
	c.Close()

	// Refused.
	p, _ = fakeParent(t, func(*http.Request) string {
		return "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=x\r\nContent-Length: 0\r\n\r\n"
	})
	_, err = dialParent(ctx(), d.DialContext, p, "", "site.test:443", nil)
	var pr *ParentRefusedError
	if !errors.As(err, &pr) || pr.Status != "407 Proxy Authentication Required" || upstreamStatus(err) != http.StatusBadGateway {
		t.Errorf("refusal: %v", err)
	}

	// Hanging: bounded by the context, and a timeout (504).
	p, _ = fakeParent(t, func(*http.Request) string { return "" })
	start := time.Now()
	_, err = dialParent(ctx(), d.DialContext, p, "", "site.test:443", nil)
	if err == nil || !isTimeout(err) || upstreamStatus(err) != http.StatusGatewayTimeout {
		t.Errorf("hanging parent: %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("hanging parent took %v", el)
	}
	if !strings.Contains(err.Error(), p.Host) {
		t.Errorf("error %q does not name the parent", err)
	}
}

// TestEgressDirectExceptions: the egress proxy sends upstream.direct's
// destinations direct and everything else through its parent.
func TestEgressDirectExceptions(t *testing.T) {
	o := startOrigin(t)
	up := startUpstream(t)
	cfg := testEgressConfig("site.test", "internal.test")
	cfg.Upstream = "http://u:p%40ss@127.0.0.1:" + portOf(t, up.ln)
	cfg.Direct = []string{"internal.test"}
	h := startEgress(t, cfg, allowAll, nil)

	resp, body := exchange(t, h.addr, "GET http://internal.test:"+o.port+"/ HTTP/1.1\r\nHost: internal.test\r\n\r\n")
	if resp.StatusCode != http.StatusOK || body != originBody {
		t.Errorf("direct exception: %d %q, want the origin's answer", resp.StatusCode, body)
	}
	c, br, cresp := connect(t, h.addr, "internal.test:"+o.port, "", "")
	if cresp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT to a direct exception: %d", cresp.StatusCode)
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: internal.test\r\n\r\n")
	if r, err := http.ReadResponse(br, nil); err != nil || r.StatusCode != http.StatusOK {
		t.Errorf("through the direct tunnel: %v %v", r, err)
	}
	c.Close()
	if ev := h.audit.wait(t, "GET", "http://internal.test:"+o.port+"/"); ev["dest_ip"] != "127.0.0.1" {
		t.Errorf("a direct request's event has dest_ip %v", ev["dest_ip"])
	}

	resp, body = exchange(t, h.addr, "GET http://site.test:"+o.port+"/ HTTP/1.1\r\nHost: site.test\r\n\r\n")
	if resp.StatusCode != http.StatusOK || body != "via upstream" {
		t.Errorf("not an exception: %d %q, want the upstream's answer", resp.StatusCode, body)
	}
	if got := up.requests(); len(got) != 1 || !strings.HasPrefix(got[0], "CONNECT 127.0.0.1:"+o.port+" ") {
		t.Errorf("upstream saw %q, want only the site.test request", got)
	}
}
