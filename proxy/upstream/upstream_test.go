package upstream

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestUpstreamRoute(t *testing.T) {
	u, err := NewRoute("http://u:p@127.0.0.1:3128", []string{"corp.example", ".intra.test", "*.wild.test", "10.0.0.0/8", "192.0.2.7", "[2001:db8::1]", "Upper.Test."})
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
		p := u.ParentFor(host)
		if (p != nil) != viaParent {
			t.Errorf("%s: parent %v, want through the parent: %v", host, p, viaParent)
		}
		if p != nil && p.Host != "127.0.0.1:3128" {
			t.Errorf("%s: parent %v", host, p)
		}
	}
	if u.Auth != "Basic dTpw" {
		t.Errorf("auth %q", u.Auth)
	}
	direct, _ := NewRoute("", []string{"x.test"})
	if direct.ParentFor("example.com") != nil {
		t.Error("no parent configured, yet one is used")
	}
}

func TestUpstreamConfigValidate(t *testing.T) {
	tests := []struct {
		c    Config
		want string
	}{
		{DefaultConfig(), ""},
		{Config{Proxy: "http://proxy.corp:3128", Direct: []string{"corp.example", "10.0.0.0/8"}, IdleTimeout: time.Second}, ""},
		{Config{Proxy: "socks5://proxy.corp:1080", IdleTimeout: time.Second}, "upstream.proxy"},
		{Config{Proxy: "http://proxy.corp", IdleTimeout: time.Second}, "upstream.proxy"},
		{Config{Direct: []string{"a b"}, IdleTimeout: time.Second}, "upstream.direct[0]"},
		{Config{Direct: []string{"ok.test", "bad..name"}, IdleTimeout: time.Second}, "upstream.direct[1]"},
		{Config{Direct: []string{"host.test:8080"}, IdleTimeout: time.Second}, "upstream.direct[0]"},
		{Config{}, "upstream.idle_timeout"},
	}
	for _, tt := range tests {
		err := tt.c.Validate()
		if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.c, err, tt.want)
		}
	}
	// The password never appears in the message.
	c := Config{Proxy: "http://u:hunter2@proxy.corp", IdleTimeout: time.Second}
	if err := c.Validate(); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %v shows the password or is missing", err)
	}
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
	c, err := DialParent(ctx(), d.DialContext, p, "Basic dTpw", "site.test:22", http.Header{"Via": {"1.1 glovebox"}})
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
	_, err = DialParent(ctx(), d.DialContext, p, "", "site.test:443", nil)
	var pr *ParentRefusedError
	if !errors.As(err, &pr) || pr.Status != "407 Proxy Authentication Required" {
		t.Errorf("refusal: %v", err)
	}

	// Hanging: bounded by the context, and a timeout (504).
	p, _ = fakeParent(t, func(*http.Request) string { return "" })
	start := time.Now()
	_, err = DialParent(ctx(), d.DialContext, p, "", "site.test:443", nil)
	var ne net.Error
	if err == nil || !(errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()) {
		t.Errorf("hanging parent: %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("hanging parent took %v", el)
	}
	if !strings.Contains(err.Error(), p.Host) {
		t.Errorf("error %q does not name the parent", err)
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
