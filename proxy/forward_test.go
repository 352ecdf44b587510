package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/glovebox/glovebox/proxy/policy"
	"github.com/glovebox/glovebox/proxy/upstream"
)

// TestUpstreamStatus: a parent's refusal is a 502, a parent or site that
// does not answer in time a 504, a local destination a 403.
func TestUpstreamStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{&upstream.ParentRefusedError{Parent: "p:3128", Target: "site.test:443", Status: "407 Proxy Authentication Required"}, http.StatusBadGateway},
		{fmt.Errorf("parent: %w", context.DeadlineExceeded), http.StatusGatewayTimeout},
		{fmt.Errorf("dial: %w", ErrLocalDestination), http.StatusForbidden},
		{errors.New("connection refused"), http.StatusBadGateway},
	} {
		if got := upstreamStatus(tc.err); got != tc.want {
			t.Errorf("upstreamStatus(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// lineParent is a parent proxy that records the first line of each
// request it gets and answers 403 itself, dialling nowhere.
func lineParent(t *testing.T) (addr string, lines func() []string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	var got []string
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				mu.Lock()
				got = append(got, req.Method+" "+req.RequestURI)
				mu.Unlock()
				io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			}()
		}
	}()
	return ln.Addr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

// TestParentGetsCheckedNames: behind a parent proxy, a name that resolves
// here to this host is refused before the parent sees it; a CONNECT's
// checked name goes to the parent as the address checked, so the parent
// cannot resolve it to this host again; a name only the parent can resolve
// goes to it by name.
func TestParentGetsCheckedNames(t *testing.T) {
	parent, lines := lineParent(t)
	h := startAuthProxy(t, func(c *Config) {
		c.Policy = policy.Config{Default: policy.ActionAllow, Rules: []policy.Rule{{Name: "all", Glob: "*", Action: policy.ActionAllow, NoInspect: true}}}
		c.Upstream.AllowLocal = nil
		c.Upstream.Proxy = "http://" + parent
	})
	h.srv.guard.resolve = func(_ context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "admin.test":
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		case "site.test":
			return []netip.Addr{netip.MustParseAddr("203.0.113.7")}, nil
		}
		return nil, fmt.Errorf("no such host %s", host)
	}
	if resp, _ := h.send(t, "127.0.0.1", "GET http://admin.test:9090/metrics HTTP/1.1\r\nHost: admin.test:9090\r\n\r\n"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("plain HTTP to a name of this host: %d, want 403", resp.StatusCode)
	}
	if resp, _ := h.send(t, "127.0.0.1", "CONNECT admin.test:443 HTTP/1.1\r\nHost: admin.test:443\r\n\r\n"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("CONNECT to a name of this host: %d, want 403", resp.StatusCode)
	}
	h.send(t, "127.0.0.1", "CONNECT site.test:443 HTTP/1.1\r\nHost: site.test:443\r\n\r\n")
	h.send(t, "127.0.0.1", "CONNECT elsewhere.test:443 HTTP/1.1\r\nHost: elsewhere.test:443\r\n\r\n")
	got := strings.Join(lines(), "\n")
	if strings.Contains(got, "admin.test") {
		t.Errorf("the parent saw a name of this host:\n%s", got)
	}
	if !strings.Contains(got, "CONNECT 203.0.113.7:443") || strings.Contains(got, "CONNECT site.test") {
		t.Errorf("the parent was not given the checked address of site.test:\n%s", got)
	}
	if !strings.Contains(got, "CONNECT elsewhere.test:443") {
		t.Errorf("a name only the parent resolves did not reach it:\n%s", got)
	}
}
