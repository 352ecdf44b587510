package proxy

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/glovebox/glovebox/proxy/policy"
)

// TestLocalDestinationsRefused: a proxy user whose requests policy allows
// everywhere (policy.default allow, auth none) cannot reach a service on
// Glovebox's own host, such as a browser's DevTools on loopback, in any
// spelling of its address, through a name that resolves there, or by
// CONNECT; upstream.allow_local opens exactly what it names.
func TestLocalDestinationsRefused(t *testing.T) {
	// Stands in for what listens on the host: a DevTools, the admin port.
	var hits int
	devtools := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		fmt.Fprint(w, `{"webSocketDebuggerUrl": "ws://127.0.0.1/devtools/browser/x"}`)
	}))
	defer devtools.Close()
	_, port, _ := net.SplitHostPort(devtools.Listener.Addr().String())

	// Everything allowed; HTTPS tunnelled as it is (no_inspect), so that
	// a CONNECT's 200 would be a real tunnel.
	h := startAuthProxy(t, func(c *Config) {
		c.Policy = policy.Config{Default: policy.ActionAllow, Rules: []policy.Rule{{Name: "all", Glob: "*", Action: policy.ActionAllow, NoInspect: true}}}
		c.Upstream.AllowLocal = nil
		c.LocalNets = []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15")}
	})
	// A name that resolves to loopback: checked after resolving, and
	// dialled at the address that was checked.
	h.srv.guard.resolve = func(_ context.Context, host string) ([]netip.Addr, error) {
		if host == "rebind.test" {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}
		return nil, fmt.Errorf("no such host %s", host)
	}

	for _, target := range []string{
		"127.0.0.1:" + port,
		"localhost:" + port,
		"LOCALHOST.:" + port,
		"devtools.localhost:" + port,
		"127.1.2.3:" + port,
		"[::1]:" + port,
		"[::ffff:127.0.0.1]:" + port,
		"[::ffff:7f00:1]:" + port,
		"[64:ff9b::7f00:1]:" + port,
		"0.0.0.0:" + port,
		"rebind.test:" + port,
		"169.254.169.254:80",
		"168.63.129.16:80",
		"100.100.100.200:80",
		"[fd00:ec2::254]:80",
		"198.18.0.2:9222",
	} {
		t.Run(target, func(t *testing.T) {
			resp, body := h.send(t, "127.0.0.1", "GET http://"+target+"/json/version HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "upstream.allow_local") {
				t.Errorf("GET http://%s/json/version = %d %q, want 403 naming upstream.allow_local", target, resp.StatusCode, body)
			}
			resp, _ = h.send(t, "127.0.0.1", "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("CONNECT %s = %d, want 403", target, resp.StatusCode)
			}
		})
	}
	if hits != 0 {
		t.Errorf("the host's service answered %d requests through the proxy", hits)
	}
	// The events are written once the responses are done: wait for them.
	deadline := time.Now().Add(5 * time.Second)
	for refused := 0; refused < 2; {
		refused = 0
		for _, ev := range h.audit.events(t) {
			if ev["rule"] == ruleLocalDest && ev["action"] == string(policy.ActionRefuse) && ev["status"] == float64(http.StatusForbidden) {
				refused++
			}
		}
		if refused < 2 && time.Now().After(deadline) {
			t.Fatalf("audit has no refusals (403, rule %q) for local destinations: %v", ruleLocalDest, h.audit.events(t))
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The host's own non-loopback addresses are the host too.
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil || p.Addr().IsLoopback() || p.Addr().IsLinkLocalUnicast() {
			continue
		}
		target := netip.AddrPortFrom(p.Addr(), 9).String()
		if resp, _ := h.send(t, "127.0.0.1", "GET http://"+target+"/ HTTP/1.1\r\nHost: "+target+"\r\n\r\n"); resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET http://%s/ (this host's address) = %d, want 403", target, resp.StatusCode)
		}
	}

	// allow_local names one host:port: that one is reached, nothing else.
	h2 := startAuthProxy(t, func(c *Config) {
		c.Policy = policy.Config{Default: policy.ActionAllow}
		c.Upstream.AllowLocal = []string{"127.0.0.1:" + port}
	})
	if resp, body := h2.send(t, "127.0.0.1", "GET http://127.0.0.1:"+port+"/json/version HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "webSocketDebuggerUrl") {
		t.Errorf("allowed local destination: %d %q", resp.StatusCode, body)
	}
	if resp, _ := h2.send(t, "127.0.0.1", "GET http://localhost:"+port+"/json/version HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("localhost, not in allow_local: %d, want 403", resp.StatusCode)
	}
}

// TestLocalDestinationsRefusedIntercepted: inside intercepted HTTPS, an
// allowed request to the host is refused the same way.
func TestLocalDestinationsRefusedIntercepted(t *testing.T) {
	var hits int
	local := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer local.Close()
	h := startMITMProxy(t, func(c *Config) {
		c.Policy = policy.Config{Default: policy.ActionAllow}
		c.Upstream.AllowLocal = nil
	})
	target := local.Listener.Addr().String()
	tc := h.tlsConnect(t, target)
	resp, body := get(t, tc, bufio.NewReader(tc), "https://"+target+"/json/version", nil)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "upstream.allow_local") || hits != 0 {
		t.Errorf("GET https://%s/ inside the tunnel = %d %q (site hit %d times), want 403", target, resp.StatusCode, body, hits)
	}
}

// TestAllowLocalPrefix: an allow_local prefix opens the addresses in it.
func TestAllowLocalPrefix(t *testing.T) {
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "here") }))
	defer site.Close()
	h := startAuthProxy(t, func(c *Config) {
		c.Policy = policy.Config{Default: policy.ActionAllow}
		c.Upstream.AllowLocal = []string{"127.0.0.0/8"}
	})
	target := site.Listener.Addr().String()
	if resp, body := h.send(t, "127.0.0.1", "GET http://"+target+"/ HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != http.StatusOK || body != "here" {
		t.Errorf("an address in an allowed prefix: %d %q", resp.StatusCode, body)
	}
	if resp, _ := h.send(t, "127.0.0.1", "GET http://169.254.169.254/ HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("metadata, outside the prefix: %d, want 403", resp.StatusCode)
	}
}

func TestAllowLocalValidate(t *testing.T) {
	c := DefaultConfig()
	c.Upstream.AllowLocal = []string{"127.0.0.1:8080", "http://x"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "upstream.allow_local[1]") {
		t.Errorf("Validate = %v, want an error naming upstream.allow_local[1]", err)
	}
}

// TestIsolationPerOrigin: isolation is per origin. A rule that isolates
// part of an allowed origin does not give it a landing page (the site's own
// pages beside it could script it) nor the API; an allow rule for part of an
// isolated origin is isolated like the rest of it.
func TestIsolationPerOrigin(t *testing.T) {
	var hits []string
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits = append(hits, r.URL.Path)
		fmt.Fprint(w, "the site itself")
	}))
	defer site.Close()
	port := site.Listener.Addr().(*net.TCPAddr).Port
	nav := "\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Dest: document\r\n\r\n"
	get := func(h *authHarness, path string) (*http.Response, string) {
		return h.send(t, "127.0.0.1", fmt.Sprintf("GET %s%s HTTP/1.1\r\nHost: x%s", site.URL, path, nav))
	}

	partIsolated := startAuthProxy(t, func(c *Config) {
		c.Policy = policy.Config{Default: policy.ActionAllow, Rules: []policy.Rule{
			{Name: "secret", URLRegex: fmt.Sprintf(`^http://127\.0\.0\.1:%d/secret/`, port), Action: policy.ActionIsolate}}}
	})
	if resp, body := get(partIsolated, "/secret/page"); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "per site") {
		t.Errorf("an isolated path of an allowed origin: %d %q, want 403 saying isolation is per site", resp.StatusCode, body)
	}
	hits = nil
	resp, _ := partIsolated.send(t, "127.0.0.1", fmt.Sprintf("POST %s/.glovebox/api/claim?/secret/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"code\":\"x\"}", site.URL))
	if len(hits) != 1 || resp.Header.Get("Content-Type") == "application/json" {
		t.Errorf("the API on an allowed origin: %d, site saw %v: want the site's own answer", resp.StatusCode, hits)
	}

	partAllowed := startAuthProxy(t, func(c *Config) {
		c.Policy = policy.Config{Default: policy.ActionIsolate, Rules: []policy.Rule{
			{Name: "public", URLRegex: fmt.Sprintf(`^http://127\.0\.0\.1:%d/public/`, port), Action: policy.ActionAllow}}}
	})
	hits = nil
	if resp, body := get(partAllowed, "/public/page"); resp.Header.Get("X-Glovebox") != "isolated" || strings.Contains(body, "the site itself") || len(hits) != 0 {
		t.Errorf("an allowed path of an isolated origin: %d (site saw %v), want the landing page", resp.StatusCode, hits)
	}
	resp, _ = partAllowed.send(t, "127.0.0.1", fmt.Sprintf("GET %s/public/app.js HTTP/1.1\r\nHost: x\r\nSec-Fetch-Mode: no-cors\r\nSec-Fetch-Dest: script\r\n\r\n", site.URL))
	if resp.StatusCode != http.StatusForbidden || len(hits) != 0 {
		t.Errorf("a subresource of an isolated origin under an allow rule: %d (site saw %v), want 403", resp.StatusCode, hits)
	}
}
