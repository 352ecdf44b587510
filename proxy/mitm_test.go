package proxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/glovebox/glovebox/proxy/audit"
	"github.com/glovebox/glovebox/proxy/policy"
	"github.com/glovebox/glovebox/proxy/tlsca"
)

// mitmHarness is a real proxy Server on loopback with interception. Its
// policy isolates by default and has no allow rule: nothing is dialled.
type mitmHarness struct {
	srv   *Server
	addr  string
	audit *syncBuffer
	roots *x509.CertPool // Glovebox's CA, as a client that installed it
}

func startMITMProxy(t *testing.T, mutate func(*Config)) *mitmHarness {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.TLS.Dir = filepath.Join(t.TempDir(), "tls")
	// The tests' sites are on loopback, which users may not reach unless
	// upstream.allow_local says so.
	cfg.Upstream.AllowLocal = []string{"127.0.0.1"}
	if mutate != nil {
		mutate(&cfg)
	}
	h := &mitmHarness{audit: &syncBuffer{}}
	srv, err := New(cfg, nil, nil, audit.New(h.audit), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	h.roots = x509.NewCertPool()
	h.roots.AddCert(srv.mitm.ca.Certificate())
	// cfg.Listen, as serve does: a test that must know the address
	// before the proxy starts (to make it its own parent) sets it.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return h
}

// client is an HTTP client that uses the proxy and trusts Glovebox's CA,
// as a user's browser that installed it.
func (h *mitmHarness) client() *http.Client {
	pu := &url.URL{Scheme: "http", Host: h.addr}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: h.roots}}}
}

// connect opens a tunnel to target and returns the connection after the 200.
func (h *mitmHarness) connect(t *testing.T, target string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", h.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	// The proxy says nothing after its 200 until the client speaks, so
	// the reader holds nothing beyond the response.
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("CONNECT %s: %v", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT %s: %s", target, resp.Status)
	}
	c.SetDeadline(time.Time{})
	return c
}

// tlsConnect is connect followed by a TLS handshake that trusts only Glovebox's CA.
func (h *mitmHarness) tlsConnect(t *testing.T, target string) *tls.Conn {
	t.Helper()
	host, _, _ := net.SplitHostPort(target)
	tc := tls.Client(h.connect(t, target), &tls.Config{ServerName: host, RootCAs: h.roots})
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake through the proxy for %s: %v", target, err)
	}
	return tc
}

// get sends one request on an intercepted connection and reads the answer.
func get(t *testing.T, c net.Conn, br *bufio.Reader, u string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if err := req.Write(c); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("GET %s: body: %v", u, err)
	}
	return resp, string(body)
}

var navigate = map[string]string{"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}

// TestInterceptGarbage: a client that sends anything but a TLS ClientHello
// (or HTTP) after CONNECT is disconnected promptly, and the proxy goes on
// serving others.
func TestInterceptGarbage(t *testing.T) {
	h := startMITMProxy(t, nil)
	junk := make([]byte, 4096)
	rand.Read(junk)
	tests := []struct{ name, data string }{
		{"TLS record of junk", "\x16\x03\x01\x00\x20" + strings.Repeat("\xee", 32)},
		{"oversized TLS record", "\x16\x03\x01\xff\xff" + strings.Repeat("A", 64)},
		{"TLS 1.3 ClientHello cut short and corrupted", "\x16\x03\x01\x00\x08\x01\x00\x00\x04\xff\xff\xff\xff"},
		{"not HTTP either", "SSH-2.0-OpenSSH_9.2\r\n\r\n"},
		{"binary junk", "\x00\x01" + string(junk) + "\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := h.connect(t, "victim.test:443")
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, tt.data); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			b, err := io.ReadAll(c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the proxy kept the connection open after garbage (read %q)", b)
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("closing took %v", time.Since(start))
			}
			if strings.Contains(string(b), "HTTP/1.1 200") {
				t.Errorf("garbage got a 200: %q", b)
			}
		})
	}

	// Others are served: a real client gets the landing page over HTTPS.
	tc := h.tlsConnect(t, "isolated.test:443")
	resp, body := get(t, tc, bufio.NewReader(tc), "https://isolated.test/", navigate)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="glovebox-screen"`) {
		t.Errorf("after garbage: %s %q", resp.Status, body)
	}
}

// TestInterceptCertCacheBound: certificates for many hosts are issued per
// host (name or IP) by Glovebox's CA, and the cache stays within its bound.
func TestInterceptCertCacheBound(t *testing.T) {
	const bound = 4
	h := startMITMProxy(t, func(c *Config) { c.TLS.CertCacheSize = bound })
	targets := []string{"127.0.0.2:443", "[::1]:8443"}
	for i := range 12 {
		targets = append(targets, fmt.Sprintf("h%d.example.test:443", i))
	}
	for _, target := range targets {
		tc := h.tlsConnect(t, target) // verifies the host against the leaf's SAN
		leaf := tc.ConnectionState().PeerCertificates[0]
		if leaf.Issuer.CommonName != tlsca.CAName {
			t.Errorf("%s: leaf issued by %q", target, leaf.Issuer.CommonName)
		}
		tc.Close()
		if n := h.srv.mitm.cache.Len(); n > bound {
			t.Fatalf("certificate cache holds %d, bound %d", n, bound)
		}
	}
	if n := h.srv.mitm.cache.Len(); n != bound {
		t.Errorf("certificate cache holds %d after %d hosts, want %d", n, len(targets), bound)
	}
}

// TestInterceptedRequestsAudited: each request inside an intercepted
// connection has one audit event with its https URL, status and bytes; the
// CONNECT has its own; the /.glovebox/ API has none, as for plain HTTP.
func TestInterceptedRequestsAudited(t *testing.T) {
	h := startMITMProxy(t, func(c *Config) {
		c.Policy.Rules = []policy.Rule{{Name: "no-gambling", Host: "casino.test", Action: policy.ActionBlock}}
	})
	tc := h.tlsConnect(t, "isolated.test:443")
	br := bufio.NewReader(tc)
	resp, body := get(t, tc, br, "https://isolated.test/app.js", nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("isolated subresource: %s", resp.Status)
	}
	forbiddenLen := len(body)
	resp, _ = get(t, tc, br, "https://isolated.test/page?q=1", navigate)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Glovebox") != "isolated" {
		t.Errorf("isolated navigation: %s", resp.Status)
	}
	resp, body = get(t, tc, br, "https://isolated.test/.glovebox/app.js", nil)
	if resp.StatusCode != http.StatusOK || len(body) < 100 {
		t.Errorf("the landing page's script over the intercepted origin: %s", resp.Status)
	}
	tc.Close()

	bc := h.tlsConnect(t, "casino.test:443")
	resp, body = get(t, bc, bufio.NewReader(bc), "https://casino.test/", navigate)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "no-gambling") {
		t.Errorf("blocked site over HTTPS: %s %q", resp.Status, body)
	}
	bc.Close()

	want := []struct {
		method, url, action string
		status              int
	}{
		{"CONNECT", "isolated.test:443", "isolate", 200},
		{"GET", "https://isolated.test/app.js", "isolate", 403},
		{"GET", "https://isolated.test/page?q=1", "isolate", 200},
		{"CONNECT", "casino.test:443", "block", 200},
		{"GET", "https://casino.test/", "block", 403},
	}
	var evs []map[string]any
	deadline := time.Now().Add(15 * time.Second)
	for {
		evs = nil
		for _, e := range h.audit.events(t) {
			if e["event"] == audit.EventRequest {
				evs = append(evs, e)
			}
		}
		if len(evs) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(evs) != len(want) {
		t.Fatalf("%d proxy_request events, want %d: %v", len(evs), len(want), evs)
	}
	for _, w := range want {
		n := 0
		for _, e := range evs {
			if e["method"] == w.method && e["url"] == w.url {
				n++
				if e["action"] != w.action || e["status"] != float64(w.status) || e["client_ip"] != "127.0.0.1" {
					t.Errorf("%s %s: %v", w.method, w.url, e)
				}
				if w.url == "https://isolated.test/app.js" && e["bytes"] != float64(forbiddenLen) {
					t.Errorf("bytes = %v, want %d", e["bytes"], forbiddenLen)
				}
				if _, ok := e["duration_ms"].(float64); !ok {
					t.Errorf("no duration: %v", e)
				}
			}
		}
		if n != 1 {
			t.Errorf("%s %s: %d events, want 1", w.method, w.url, n)
		}
	}
}

// TestIdleInterceptedConnectionClosed: an intercepted connection waiting
// for its next request is closed after client_idle_timeout.
func TestIdleInterceptedConnectionClosed(t *testing.T) {
	h := startMITMProxy(t, func(c *Config) { c.ClientIdleTimeout = 500 * time.Millisecond })
	tc := h.tlsConnect(t, "isolated.test:443")
	br := bufio.NewReader(tc)
	get(t, tc, br, "https://isolated.test/", navigate)
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	_, err := br.ReadByte()
	if err == nil {
		t.Fatal("the proxy sent something unasked")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the idle intercepted connection was not closed")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("closed after %v, want about 500ms", d)
	}
}

func TestPolicyTLSOptions(t *testing.T) {
	errs := []struct {
		name string
		rule policy.Rule
		want string
	}{
		{"no_inspect on block", policy.Rule{Name: "b", Host: "a.test", Action: policy.ActionBlock, NoInspect: true}, "apply only to allow rules"},
		{"ca_file on isolate", policy.Rule{Name: "i", Host: "a.test", Action: policy.ActionIsolate, CAFile: "/x.pem"}, "apply only to allow rules"},
		{"both", policy.Rule{Name: "a", Host: "a.test", Action: policy.ActionAllow, NoInspect: true, CAFile: "/x.pem"}, "ca_file has no use with no_inspect"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policy.New(policy.Config{Rules: []policy.Rule{tt.rule}})
			if !errors.Is(err, policy.ErrPolicy) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "policy.rules[0] ("+tt.rule.Name+")") {
				t.Errorf("err = %v, want one naming the rule and saying %q", err, tt.want)
			}
		})
	}
	p, err := policy.New(policy.Config{Rules: []policy.Rule{
		{Name: "bank", Domain: "bank.test", Action: policy.ActionAllow, NoInspect: true},
		{Name: "corp", Domain: "corp.test", Action: policy.ActionAllow, CAFile: "/etc/corp.pem"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Decide(&url.URL{Scheme: "https", Host: "www.bank.test:443"}, ""); !d.NoInspect || d.Rule != "bank" {
		t.Errorf("bank: %+v", d)
	}
	if d := p.Decide(&url.URL{Scheme: "https", Host: "app.corp.test"}, ""); d.CAFile != "/etc/corp.pem" || d.NoInspect {
		t.Errorf("corp: %+v", d)
	}

	// A ca_file that is not there is reported by key when the proxy starts.
	cfg := DefaultConfig()
	cfg.TLS.Dir = filepath.Join(t.TempDir(), "tls")
	cfg.Policy.Rules = []policy.Rule{{Name: "corp", Domain: "corp.test", Action: policy.ActionAllow, CAFile: "/nonexistent/corp.pem"}}
	if _, err := New(cfg, nil, nil, nil, quietLog()); err == nil || !strings.Contains(err.Error(), "policy.rules[0] (corp): ca_file") {
		t.Errorf("missing ca_file: %v", err)
	}
	cfg.Policy.Rules = nil
	cfg.TLS.ExtraCAFiles = []string{"/nonexistent/extra.pem"}
	if _, err := New(cfg, nil, nil, nil, quietLog()); err == nil || !strings.Contains(err.Error(), "tls.extra_ca_files[0]") {
		t.Errorf("missing extra CA file: %v", err)
	}
}
