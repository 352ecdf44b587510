package proxy

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glovebox/glovebox/proxy/audit"
	"github.com/glovebox/glovebox/proxy/auth"
	"github.com/glovebox/glovebox/proxy/policy"
	"golang.org/x/crypto/bcrypt"
)

// writeHtpasswd writes user:bcrypt lines (cost 5, the lowest accepted: fast,
// and bcrypt all the same).
func writeHtpasswd(t *testing.T, path string, users map[string]string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("# test users\n")
	for u, p := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(p), 5)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(u + ":" + string(h) + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// echoOrigin is an allowed site that records the headers it was sent.
type echoOrigin struct {
	*httptest.Server
	mu   sync.Mutex
	hdrs []http.Header
}

func startEchoOrigin(t *testing.T) *echoOrigin {
	o := &echoOrigin{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.hdrs = append(o.hdrs, r.Header.Clone())
		o.mu.Unlock()
		io.WriteString(w, "origin says hi")
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *echoOrigin) requests() []http.Header {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]http.Header(nil), o.hdrs...)
}

// logBuffer collects the operational log.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type authHarness struct {
	srv   *Server
	addr  string
	audit *syncBuffer
	log   *logBuffer
}

// startAuthProxy serves a Glovebox proxy (no isolation runtime: these tests
// use allowed sites only) with 127.0.0.1 allowed.
// Each of before sees the Server before it serves.
func startAuthProxy(t *testing.T, mutate func(*Config), before ...func(*Server)) *authHarness {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Policy.Rules = []policy.Rule{{Name: "loopback", Host: "127.0.0.1", Action: policy.ActionAllow}}
	cfg.Upstream.AllowLocal = []string{"127.0.0.1"}
	if mutate != nil {
		mutate(&cfg)
	}
	h := &authHarness{audit: &syncBuffer{}, log: &logBuffer{}}
	srv, err := New(cfg, nil, nil, audit.New(h.audit), slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	for _, f := range before {
		f(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
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

// send writes one request from the loopback address from and reads the answer.
func (h *authHarness) send(t *testing.T, from, req string) (*http.Response, string) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: strings.Fields(req)[0]})
	if err != nil {
		t.Fatalf("read response to %q: %v", strings.SplitN(req, "\r\n", 2)[0], err)
	}
	defer resp.Body.Close()
	var body []byte
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(req, "CONNECT") {
		body, _ = io.ReadAll(resp.Body)
	}
	return resp, string(body)
}

// request waits for the proxy_request audit event for url with the given
// status (the event is written after the response, so it may come a moment
// later) and returns the last such event.
func (h *authHarness) request(t *testing.T, url string, status int) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var last map[string]any
		for _, m := range h.audit.events(t) {
			if m["event"] == audit.EventRequest && m["url"] == url && m["status"] == float64(status) {
				last = m
			}
		}
		if last != nil {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("no proxy_request event for %s with status %d", url, status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func basicAuth(user, pass string) string {
	return "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass)) + "\r\n"
}

func TestProxyAuthBasic(t *testing.T) {
	o := startEchoOrigin(t)
	pw := filepath.Join(t.TempDir(), "htpasswd")
	writeHtpasswd(t, pw, map[string]string{"alice": "correct horse", "bob": "battery staple"})
	h := startAuthProxy(t, func(c *Config) {
		c.Auth.Mode = auth.ModeBasic
		c.Auth.Htpasswd = pw
	})
	site := o.URL + "/page"
	get := func(extra string) string {
		return "GET " + site + " HTTP/1.1\r\nHost: " + o.Listener.Addr().String() + "\r\n" + extra + "\r\n"
	}
	connect := func(extra string) string {
		return "CONNECT " + o.Listener.Addr().String() + " HTTP/1.1\r\nHost: " + o.Listener.Addr().String() + "\r\n" + extra + "\r\n"
	}

	refused := []struct{ name, req string }{
		{"GET without credentials", get("")},
		{"GET with a wrong password", get(basicAuth("alice", "wrong"))},
		{"GET by an unknown user", get(basicAuth("mallory", "correct horse"))},
		{"GET with another user's password", get(basicAuth("bob", "correct horse"))},
		{"GET with non-Basic credentials", get("Proxy-Authorization: Bearer abc\r\n")},
		{"GET with malformed Basic", get("Proxy-Authorization: Basic !!!\r\n")},
		{"CONNECT without credentials", connect("")},
		{"CONNECT with a wrong password", connect(basicAuth("alice", "wrong"))},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := h.send(t, "127.0.0.1", tt.req)
			if resp.StatusCode != http.StatusProxyAuthRequired {
				t.Errorf("status %d, want 407", resp.StatusCode)
			}
			if got := resp.Header.Get("Proxy-Authenticate"); got != `Basic realm="Glovebox"` {
				t.Errorf("Proxy-Authenticate %q", got)
			}
		})
	}
	if n := len(o.requests()); n != 0 {
		t.Errorf("the site was reached %d times without valid credentials", n)
	}
	ev := h.request(t, site, 407)
	if ev["user"] != "" || ev["action"] != "refuse" || ev["rule"] != "proxy_auth" {
		t.Errorf("audit of a refused request: %v", ev)
	}
	logs := h.log.String()
	if !strings.Contains(logs, "proxy authentication failed") || !strings.Contains(logs, "user=mallory") {
		t.Errorf("no failed-attempt log line naming the user:\n%s", logs)
	}
	if strings.Contains(logs, "correct horse") || strings.Contains(logs, "battery") {
		t.Errorf("a password is in the log:\n%s", logs)
	}

	// The right password goes through, twice (the second from the cache),
	// and neither the credentials nor a forged identity header reach the site.
	for range 2 {
		resp, body := h.send(t, "127.0.0.1", get(basicAuth("alice", "correct horse")+"X-Authenticated-User: root\r\n"))
		if resp.StatusCode != 200 || body != "origin says hi" {
			t.Fatalf("alice: %d %q", resp.StatusCode, body)
		}
	}
	for _, hd := range o.requests() {
		if hd.Get("Proxy-Authorization") != "" || hd.Get("X-Authenticated-User") != "" {
			t.Errorf("the site received %v", hd)
		}
	}
	if ev := h.request(t, site, 200); ev["user"] != "alice" || ev["action"] != "allow" {
		t.Errorf("audit of alice's request: %v", ev)
	}
	resp, _ := h.send(t, "127.0.0.1", connect(basicAuth("bob", "battery staple")))
	if resp.StatusCode != 200 {
		t.Errorf("bob's CONNECT: %d", resp.StatusCode)
	}
	if ev := h.request(t, o.Listener.Addr().String(), 200); ev["user"] != "bob" || ev["method"] != "CONNECT" {
		t.Errorf("audit of bob's CONNECT: %v", ev)
	}

	// The proxy's own pages need no credentials: browsers fetch the PAC
	// file before they know any.
	for _, p := range []string{"/proxy.pac", "/wpad.dat", "/healthz"} {
		resp, _ := h.send(t, "127.0.0.1", "GET "+p+" HTTP/1.1\r\nHost: "+h.addr+"\r\n\r\n")
		if resp.StatusCode != 200 {
			t.Errorf("%s without credentials: %d", p, resp.StatusCode)
		}
	}
}

func TestProxyAuthHeader(t *testing.T) {
	o := startEchoOrigin(t)
	h := startAuthProxy(t, func(c *Config) {
		c.Auth.Mode = auth.ModeHeader
		c.Auth.TrustedProxies = []string{"127.0.0.2", "192.0.2.0/24"}
	})
	site := o.URL + "/x"
	get := func(extra string) string {
		return "GET " + site + " HTTP/1.1\r\nHost: x\r\n" + extra + "\r\n"
	}

	// From an untrusted address the header is ignored: the client is
	// unauthenticated and refused like one without credentials.
	resp, _ := h.send(t, "127.0.0.1", get("X-Authenticated-User: admin\r\n"))
	if resp.StatusCode != http.StatusProxyAuthRequired {
		t.Errorf("spoofed header from an untrusted address: %d, want 407", resp.StatusCode)
	}
	if ev := h.request(t, site, 407); ev["user"] != "" {
		t.Errorf("audit of the spoofed request: %v", ev)
	}
	if !strings.Contains(h.log.String(), "identity header from an untrusted address ignored") {
		t.Errorf("the spoof attempt was not logged")
	}
	resp, _ = h.send(t, "127.0.0.1", "CONNECT "+o.Listener.Addr().String()+" HTTP/1.1\r\nHost: x\r\nX-Authenticated-User: admin\r\n\r\n")
	if resp.StatusCode != http.StatusProxyAuthRequired {
		t.Errorf("spoofed header on CONNECT: %d, want 407", resp.StatusCode)
	}
	// The trusted downstream proxy without a user header is refused too.
	if resp, _ := h.send(t, "127.0.0.2", get("")); resp.StatusCode != http.StatusProxyAuthRequired {
		t.Errorf("trusted proxy without the header: %d, want 407", resp.StatusCode)
	}
	if resp, _ := h.send(t, "127.0.0.2", get("X-Authenticated-User: a\x01b\r\n")); resp.StatusCode == 200 {
		t.Errorf("a control character in the user name was accepted")
	}
	if len(o.requests()) != 0 {
		t.Fatalf("the site was reached without a trusted identity")
	}

	// From the trusted proxy it names the user, and is not forwarded.
	resp, body := h.send(t, "127.0.0.2", get("x-authenticated-user: bob@corp.example\r\n"))
	if resp.StatusCode != 200 || body != "origin says hi" {
		t.Fatalf("trusted: %d %q", resp.StatusCode, body)
	}
	if ev := h.request(t, site, 200); ev["user"] != "bob@corp.example" || ev["client_ip"] != "127.0.0.2" {
		t.Errorf("audit of the trusted request: %v", ev)
	}
	for _, hd := range o.requests() {
		if hd.Get("X-Authenticated-User") != "" {
			t.Errorf("the identity header reached the site: %v", hd)
		}
	}
}

// TestIdentityHeaderStrippedWithoutAuth: with mode none a client's identity
// header is not believed and not forwarded (an intranet app behind Glovebox
// might trust it).
func TestIdentityHeaderStrippedWithoutAuth(t *testing.T) {
	o := startEchoOrigin(t)
	h := startAuthProxy(t, nil)
	resp, _ := h.send(t, "127.0.0.1", "GET "+o.URL+"/ HTTP/1.1\r\nHost: x\r\nX-Authenticated-User: ceo\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, hd := range o.requests() {
		if hd.Get("X-Authenticated-User") != "" || hd.Get("Proxy-Authorization") != "" {
			t.Errorf("forwarded: %v", hd)
		}
	}
	if ev := h.request(t, o.URL+"/", 200); ev["user"] != "" {
		t.Errorf("user %v with auth.mode none", ev["user"])
	}
}

// TestLoginThrottle: after auth.MaxFailures wrong passwords from one address, it
// is refused with 429, even with the right password, and no password from
// it is checked; another address signs in all the same. The same wrong
// password sent again and again (as a browser does) counts once.
func TestLoginThrottle(t *testing.T) {
	o := startEchoOrigin(t)
	pw := filepath.Join(t.TempDir(), "htpasswd")
	writeHtpasswd(t, pw, map[string]string{"alice": "right-password"})
	h := startAuthProxy(t, func(c *Config) {
		c.Auth.Mode = auth.ModeBasic
		c.Auth.Htpasswd = pw
	})
	site := o.URL + "/t"
	get := func(from, extra string) *http.Response {
		resp, _ := h.send(t, from, "GET "+site+" HTTP/1.1\r\nHost: x\r\n"+extra+"\r\n")
		return resp
	}

	for i := range auth.MaxFailures {
		if resp := get("127.0.0.1", basicAuth("alice", fmt.Sprint("guess-", i))); resp.StatusCode != http.StatusProxyAuthRequired {
			t.Fatalf("wrong password %d: %d, want 407", i, resp.StatusCode)
		}
	}
	refused := []struct{ name, req string }{
		{"right password", "GET " + site + " HTTP/1.1\r\nHost: x\r\n" + basicAuth("alice", "right-password") + "\r\n"},
		{"no credentials", "GET " + site + " HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"CONNECT", "CONNECT " + o.Listener.Addr().String() + " HTTP/1.1\r\nHost: x\r\n" + basicAuth("alice", "right-password") + "\r\n"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := h.send(t, "127.0.0.1", tt.req)
			if resp.StatusCode != http.StatusTooManyRequests {
				t.Errorf("status %d, want 429", resp.StatusCode)
			}
			if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra <= 0 || ra > int(auth.BlockFor/time.Second) {
				t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
			}
			if resp.Header.Get("Proxy-Authenticate") != "" {
				t.Errorf("a refused address is asked for a password")
			}
		})
	}
	if resp := get("127.0.0.2", basicAuth("alice", "right-password")); resp.StatusCode != 200 {
		t.Errorf("another address with the right password: %d", resp.StatusCode)
	}

	ev := h.request(t, site, http.StatusTooManyRequests)
	if ev["action"] != "refuse" || ev["rule"] != "proxy_auth" || !strings.Contains(fmt.Sprint(ev["error"]), "too many failed sign-ins") {
		t.Errorf("audit of a refused address: %v", ev)
	}
	logs := h.log.String()
	if n := strings.Count(logs, "too many failed sign-ins; refusing the address"); n != 1 {
		t.Errorf("%d warnings that the address is refused, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs, "client_ip=127.0.0.1") {
		t.Errorf("the warning does not name the address")
	}
	for _, secret := range []string{"guess-", "right-password", "stale-password"} {
		if strings.Contains(logs, secret) {
			t.Errorf("a password (%s) is in the log", secret)
		}
	}
}

// TestAuthRefusesAnonymous: with authentication on, a client that has not
// signed in (a wrong password; an identity header from an address that is
// not the trusted proxy) gets 407 from Go's own proxy client for a
// navigation to an isolated site, for an API call and for a CONNECT.
func TestAuthRefusesAnonymous(t *testing.T) {
	o := startEchoOrigin(t)
	pw := filepath.Join(t.TempDir(), "htpasswd")
	writeHtpasswd(t, pw, map[string]string{"alice": "alice's secret"})
	for _, m := range []struct {
		name   string
		mutate func(*Config)
		user   *url.Userinfo // in the proxy's URL: Basic credentials
		hdr    http.Header   // on every request and on the CONNECT
	}{
		{"basic", func(c *Config) {
			c.Auth.Mode = auth.ModeBasic
			c.Auth.Htpasswd = pw
		}, url.UserPassword("alice", "wrong"), nil},
		{"header behind a downstream proxy", func(c *Config) {
			c.Auth.Mode = auth.ModeHeader
			c.Auth.TrustedProxies = []string{"127.0.0.2"}
		}, nil, http.Header{"X-Authenticated-User": {"alice"}}}, // from 127.0.0.1: a forgery
	} {
		t.Run(m.name, func(t *testing.T) {
			h := startAuthProxy(t, func(c *Config) {
				c.Policy.Rules = nil // every site isolated
				m.mutate(c)
			})
			pu := &url.URL{Scheme: "http", Host: h.addr, User: m.user}
			c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu), ProxyConnectHeader: m.hdr}}
			do := func(method, u, body string) (*http.Response, error) {
				req, err := http.NewRequest(method, u, strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				maps.Copy(req.Header, m.hdr)
				if body != "" {
					req.Header.Set("Content-Type", "application/json")
				}
				resp, err := c.Do(req)
				if err == nil {
					resp.Body.Close()
				}
				return resp, err
			}

			resp, err := do("GET", o.URL+"/", "")
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusProxyAuthRequired || resp.Header.Get("Proxy-Authenticate") != `Basic realm="Glovebox"` {
				t.Errorf("unauthenticated GET: %d %v", resp.StatusCode, resp.Header)
			}
			resp, err = do("POST", o.URL+"/.glovebox/api/tabs", `{"url":"`+o.URL+`/"}`)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusProxyAuthRequired {
				t.Errorf("unauthenticated API call: %d", resp.StatusCode)
			}
			if _, err := do("GET", "https://"+o.Listener.Addr().String()+"/", ""); err == nil || !strings.Contains(err.Error(), "Proxy Authentication Required") {
				t.Errorf("unauthenticated CONNECT: %v, want 407", err)
			}
		})
	}
}
