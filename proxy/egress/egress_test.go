package egress

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glovebox/glovebox/proxy/audit"
	"github.com/glovebox/glovebox/proxy/policy"
)

// Every test here talks only to loopback: names go through fakeResolver and
// every dial through dialGuard, which refuses (without dialling) anything
// that is not a loopback address, so even a broken check sends no traffic
// off the machine.

// fakeResolver maps test names to addresses and counts the lookups.
type fakeResolver struct {
	mu    sync.Mutex
	names map[string]func(call int) []netip.Addr
	calls map[string]int
}

func addrs(ss ...string) func(int) []netip.Addr {
	var as []netip.Addr
	for _, s := range ss {
		as = append(as, netip.MustParseAddr(s))
	}
	return func(int) []netip.Addr { return as }
}

func newFakeResolver() *fakeResolver {
	return &fakeResolver{calls: map[string]int{}, names: map[string]func(int) []netip.Addr{
		"site.test":     addrs("127.0.0.1"),
		"internal.test": addrs("127.0.0.1"),
		"meta.test":     addrs("169.254.169.254"),
		"mixed.test":    addrs("93.184.215.14", "10.0.0.1"), // the public one is never dialled: the private one refuses the name
		"mixed6.test":   addrs("93.184.215.14", "::1"),
		"nat64.test":    addrs("64:ff9b::a9fe:a9fe"), // 169.254.169.254
		"self.test":     addrs(testHostAddr),         // public-looking, but this host's own (see fakeHostAddrs)
	}}
}

func (f *fakeResolver) set(name string, fn func(call int) []netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.names[name] = fn
	f.calls[name] = 0
}

func (f *fakeResolver) resolve(_ context.Context, host string) ([]netip.Addr, error) {
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[name]++
	fn, ok := f.names[name]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return fn(f.calls[name]), nil
}

func (f *fakeResolver) count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[name]
}

// testHostAddr stands for a public address configured on this host.
const testHostAddr = "93.184.215.99"

func fakeHostAddrs() ([]net.Addr, error) {
	return []net.Addr{
		&net.IPNet{IP: net.IPv4(127, 0, 0, 1), Mask: net.CIDRMask(8, 32)},
		&net.IPNet{IP: net.ParseIP(testHostAddr), Mask: net.CIDRMask(24, 32)},
	}, nil
}

// dialGuard dials loopback addresses and refuses everything else, recording it.
type dialGuard struct {
	mu      sync.Mutex
	refused []string
}

func (g *dialGuard) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().IsLoopback() {
		g.mu.Lock()
		g.refused = append(g.refused, addr)
		g.mu.Unlock()
		return nil, errors.New("test dial guard: not dialling non-loopback " + addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

func (g *dialGuard) take() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.refused
	g.refused = nil
	return r
}

// syncBuffer is the audit output, written by server goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) events(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	data := bytes.Clone(b.buf.Bytes())
	b.mu.Unlock()
	var evs []map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("audit line: %v", err)
		}
		evs = append(evs, m)
	}
	return evs
}

// wait returns the first egress event for method and url, waiting for it:
// the event is written after the response, so it may come a moment later.
func (b *syncBuffer) wait(t *testing.T, method, u string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, m := range b.events(t) {
			if m["event"] == audit.EventEgress && m["method"] == method && m["url"] == u {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit event for %s %s in:\n%s", method, u, b.buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func loopbackListener(t *testing.T) *countingListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &countingListener{Listener: ln}
}

func portOf(t *testing.T, ln net.Listener) string {
	t.Helper()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

const originBody = "hello from origin\n"

// origin is a plain HTTP site on loopback that remembers the last request's headers.
type origin struct {
	ln   *countingListener
	port string
	mu   sync.Mutex
	last http.Header
}

func startOrigin(t *testing.T) *origin {
	t.Helper()
	o := &origin{ln: loopbackListener(t)}
	o.port = portOf(t, o.ln)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.last = r.Header.Clone()
		o.mu.Unlock()
		io.WriteString(w, originBody)
	}))
	srv.Listener.Close()
	srv.Listener = o.ln
	srv.Start()
	t.Cleanup(srv.Close)
	return o
}

func (o *origin) header() http.Header {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.last
}

// startEcho is a TCP echo server on loopback.
func startEcho(t *testing.T) *countingListener {
	t.Helper()
	ln := loopbackListener(t)
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln
}

func testLookup(ip string) (string, string, bool) {
	if ip == "127.0.0.1" {
		return "t1", "alice", true
	}
	return "", "", false
}

type egressHarness struct {
	e     *Egress
	addr  string
	url   *url.URL
	audit *syncBuffer
	res   *fakeResolver
	guard *dialGuard
	// metrics count the egress's events.
	metrics *audit.Metrics
}

// scrapeMetrics is the harness's metrics in Prometheus's text format.
func scrapeMetrics(h *egressHarness) string {
	rec := httptest.NewRecorder()
	h.metrics.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// startEgress serves an egress proxy on 127.0.0.1:0 until the test ends.
func startEgress(t *testing.T, cfg Config, pc policy.Config, lookup TabLookup) *egressHarness {
	t.Helper()
	if lookup == nil {
		lookup = testLookup
	}
	pol, err := policy.New(pc)
	if err != nil {
		t.Fatal(err)
	}
	h := &egressHarness{audit: &syncBuffer{}, res: newFakeResolver(), guard: &dialGuard{}, metrics: audit.NewMetrics()}
	aud := audit.New(h.audit)
	aud.Metrics = h.metrics
	h.e, err = New(cfg, pol, lookup, aud, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h.e.resolve = h.res.resolve
	h.e.dial = h.guard.dial
	h.e.host.List = fakeHostAddrs
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	h.url = &url.URL{Scheme: "http", Host: h.addr}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.e.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
		if r := h.guard.take(); len(r) > 0 {
			t.Errorf("unexpected dials to non-loopback addresses: %v", r)
		}
	})
	return h
}

func testEgressConfig(allow ...string) Config {
	cfg := DefaultConfig()
	cfg.DialTimeout = 5 * time.Second
	cfg.AllowInternal = allow
	return cfg
}

var allowAll = policy.Config{Default: policy.ActionAllow}

// exchange sends one raw request on a new connection and reads the response and its body.
func exchange(t *testing.T, addr, req string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response to %q: %v", firstLine(req), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	if len(line) > 80 {
		line = line[:80] + "…"
	}
	return line
}

// connect opens a CONNECT tunnel to target, sending early right behind the
// request, and returns the connection (reads go through br) and the reply.
func connect(t *testing.T, addr, target, headers, early string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n%s", target, target, headers, early)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("CONNECT %s: %v", target, err)
	}
	return c, br, resp
}

func TestEgressAllowInternal(t *testing.T) {
	o := startOrigin(t)
	echo := startEcho(t)
	echoPort := portOf(t, echo)
	h := startEgress(t, testEgressConfig("SITE.test:"+o.port, "site.test:"+echoPort), allowAll, nil)

	t.Run("GET", func(t *testing.T) {
		u := "http://site.test:" + o.port + "/path?q=1"
		resp, body := exchange(t, h.addr, "GET "+u+" HTTP/1.1\r\nHost: site.test:"+o.port+
			"\r\nProxy-Authorization: Basic Y2xpZW50OnNlY3JldA==\r\nProxy-Connection: keep-alive\r\n\r\n")
		if resp.StatusCode != http.StatusOK || body != originBody {
			t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, originBody)
		}
		for _, k := range []string{"Proxy-Authorization", "Proxy-Connection"} {
			if v := o.header().Get(k); v != "" {
				t.Errorf("origin saw %s: %q", k, v)
			}
		}
		ev := h.audit.wait(t, "GET", u)
		want := map[string]any{"tab": "t1", "user": "alice", "client_ip": "127.0.0.1", "host": "site.test",
			"action": "allow", "rule": "default", "status": 200.0, "bytes": float64(len(originBody)), "dest_ip": "127.0.0.1"}
		for k, v := range want {
			if ev[k] != v {
				t.Errorf("audit %s = %v, want %v", k, ev[k], v)
			}
		}
		if _, ok := ev["error"]; ok {
			t.Errorf("audit error = %v, want none", ev["error"])
		}
		if n := h.res.count("site.test"); n != 1 {
			t.Errorf("resolver called %d times, want 1", n)
		}
	})

	t.Run("CONNECT TLS", func(t *testing.T) {
		tl := loopbackListener(t)
		ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "hello over TLS")
		}))
		ts.Listener.Close()
		ts.Listener = tl
		ts.StartTLS()
		defer ts.Close()
		target := "site.test:" + portOf(t, tl)
		// A second egress whose allow_internal names the TLS port too.
		h := startEgress(t, testEgressConfig("site.test"), allowAll, nil)

		pool := x509.NewCertPool()
		pool.AddCert(ts.Certificate())
		tr := &http.Transport{Proxy: http.ProxyURL(h.url),
			TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "example.com"}} // httptest's certificate names example.com
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + target + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "hello over TLS" {
			t.Fatalf("body %q", body)
		}
		tr.CloseIdleConnections() // ends the tunnel, which writes its audit event
		ev := h.audit.wait(t, "CONNECT", target)
		if ev["tab"] != "t1" || ev["status"] != 200.0 || ev["dest_ip"] != "127.0.0.1" || ev["host"] != "site.test" {
			t.Errorf("audit event %v", ev)
		}
		if b, _ := ev["bytes"].(float64); b <= 0 {
			t.Errorf("audit bytes = %v, want > 0", ev["bytes"])
		}
	})

	t.Run("CONNECT with early bytes", func(t *testing.T) {
		target := "site.test:" + echoPort
		c, br, resp := connect(t, h.addr, target, "", "early ")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("CONNECT status %d", resp.StatusCode)
		}
		io.WriteString(c, "ping\n")
		line, err := br.ReadString('\n')
		if err != nil || line != "early ping\n" {
			t.Fatalf("echo %q, %v", line, err)
		}
		c.(*net.TCPConn).CloseWrite()
		if rest, _ := io.ReadAll(br); len(rest) != 0 {
			t.Errorf("after half-close got %q", rest)
		}
		ev := h.audit.wait(t, "CONNECT", target)
		if ev["bytes"] != float64(len("early ping\n")) || ev["dest_ip"] != "127.0.0.1" {
			t.Errorf("audit event %v", ev)
		}
	})
}

func TestEgressRefusesInternal(t *testing.T) {
	o := startOrigin(t)
	echo := startEcho(t)
	h := startEgress(t, testEgressConfig("other.test", "site.test:1"), allowAll, nil)
	p := o.port
	targets := []string{
		"site.test:" + p, // resolves to 127.0.0.1; allowed only on port 1
		"127.0.0.1:" + p,
		"127.1.2.3:" + p,
		"[::1]:" + p,
		"localhost:" + p,
		"LocalHost.:" + p,
		"app.localhost:" + p,
		"0.0.0.0:" + p,
		"10.0.0.1:" + p,
		"172.16.5.4:" + p,
		"192.168.1.1:" + p,
		"100.64.0.1:" + p,
		"169.254.169.254:80",
		"meta.test:80",
		"168.63.129.16:80", // Azure WireServer
		"100.100.100.200:80",
		"[fd00:ec2::254]:80",
		"198.18.0.5:" + p,
		"192.0.2.10:" + p,
		"224.0.0.1:" + p,
		"255.255.255.255:" + p,
		"[::ffff:127.0.0.1]:" + p,
		"[::ffff:169.254.169.254]:80",
		"[64:ff9b::7f00:1]:" + p,
		"nat64.test:80",
		"[2002:7f00:1::1]:" + p,
		"[::]:" + p,
		"[fd00::1]:" + p,
		"[fe80::1]:" + p,
		"[ff02::1]:" + p,
		"mixed.test:" + p,
		"mixed6.test:" + p,
		"self.test:" + p,
		testHostAddr + ":" + p,
	}
	for _, target := range targets {
		for _, method := range []string{"GET", "CONNECT"} {
			t.Run(method+" "+target, func(t *testing.T) {
				var resp *http.Response
				var body, u string
				if method == "GET" {
					u = "http://" + target + "/"
					resp, body = exchange(t, h.addr, "GET "+u+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
				} else {
					u = target
					resp, body = exchange(t, h.addr, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
				}
				if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "internal address") {
					t.Fatalf("got %d %q, want 403 naming the internal address", resp.StatusCode, body)
				}
				ev := h.audit.wait(t, method, u)
				if ev["action"] != "refuse" || ev["rule"] != "internal address" || ev["status"] != 403.0 ||
					ev["dest_ip"] != "" || ev["error"] == nil || ev["tab"] != "t1" {
					t.Errorf("audit event %v", ev)
				}
			})
		}
	}
	if n := o.ln.n.Load() + echo.n.Load(); n != 0 {
		t.Errorf("%d connections reached loopback servers, want 0", n)
	}
	if n := h.res.count("mixed.test"); n != 2 {
		t.Errorf("mixed.test resolved %d times for 2 requests", n)
	}
}

func TestEgressUnknownSource(t *testing.T) {
	o := startOrigin(t)
	unknown := func(string) (string, string, bool) { return "", "", false }
	for _, warm := range []bool{false, true} {
		t.Run(map[bool]string{false: "unknown", true: "warm browser"}[warm], func(t *testing.T) {
			h := startEgress(t, testEgressConfig("site.test"), allowAll, unknown)
			h.e.Warm = func(ip string) bool { return warm && ip == "127.0.0.1" }
			u := "http://site.test:" + o.port + "/"
			resp, _ := exchange(t, h.addr, "GET "+u+" HTTP/1.1\r\nHost: site.test\r\n\r\n")
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("GET status %d, want 403", resp.StatusCode)
			}
			_, _, cresp := connect(t, h.addr, "site.test:"+o.port, "", "")
			if cresp.StatusCode != http.StatusForbidden {
				t.Fatalf("CONNECT status %d, want 403", cresp.StatusCode)
			}
			if !warm {
				// Something that is no browser of Glovebox's: audited.
				for _, ev := range []map[string]any{h.audit.wait(t, "GET", u), h.audit.wait(t, "CONNECT", "site.test:"+o.port)} {
					if ev["tab"] != "" || ev["user"] != "" || ev["action"] != "refuse" || ev["rule"] != "unknown source" || ev["client_ip"] != "127.0.0.1" {
						t.Errorf("audit event %v", ev)
					}
				}
			} else {
				// A warm browser: no user caused them; counted, not
				// audited. (The count comes as the handler returns,
				// which may be after the response.)
				for deadline := time.Now().Add(5 * time.Second); !strings.Contains(scrapeMetrics(h), `glovebox_egress_untabbed_total{action="refuse"} 2`); time.Sleep(10 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("metrics do not count the 2 refused requests:\n%s", scrapeMetrics(h))
					}
				}
				if evs := h.audit.events(t); len(evs) != 0 {
					t.Errorf("a warm browser's requests are audited: %v", evs)
				}
			}
			if o.ln.n.Load() != 0 || h.res.count("site.test") != 0 {
				t.Errorf("unknown source was proxied: %d connections, %d lookups", o.ln.n.Load(), h.res.count("site.test"))
			}
		})
	}
}

func TestEgressPolicy(t *testing.T) {
	o := startOrigin(t)
	pc := policy.Config{Default: policy.ActionIsolate, Rules: []policy.Rule{{Name: "no-evil", Domain: "evil.test", Action: policy.ActionBlock}}}
	h := startEgress(t, testEgressConfig("site.test"), pc, nil)

	u := "http://www.evil.test/x"
	resp, body := exchange(t, h.addr, "GET "+u+" HTTP/1.1\r\nHost: www.evil.test\r\n\r\n")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "no-evil") {
		t.Errorf("GET got %d %q, want 403 naming no-evil", resp.StatusCode, body)
	}
	resp, body = exchange(t, h.addr, "CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "no-evil") {
		t.Errorf("CONNECT got %d %q, want 403 naming no-evil", resp.StatusCode, body)
	}
	for _, ev := range []map[string]any{h.audit.wait(t, "GET", u), h.audit.wait(t, "CONNECT", "evil.test:443")} {
		if ev["action"] != "block" || ev["rule"] != "no-evil" || ev["status"] != 403.0 {
			t.Errorf("audit event %v", ev)
		}
	}
	if n := h.res.count("www.evil.test") + h.res.count("evil.test"); n != 0 {
		t.Errorf("blocked names resolved %d times", n)
	}

	// isolate lets the isolated browser fetch the site.
	u = "http://site.test:" + o.port + "/"
	resp, body = exchange(t, h.addr, "GET "+u+" HTTP/1.1\r\nHost: site.test\r\n\r\n")
	if resp.StatusCode != http.StatusOK || body != originBody {
		t.Errorf("isolated site: got %d %q", resp.StatusCode, body)
	}
	if ev := h.audit.wait(t, "GET", u); ev["action"] != "isolate" || ev["rule"] != "default" {
		t.Errorf("audit event %v", ev)
	}
}

func TestEgressRebinding(t *testing.T) {
	o := startOrigin(t)
	echo := startEcho(t)
	// First answer loopback (allowed for this name), then an address that
	// would be dialled if the name were resolved again.
	rebind := func(call int) []netip.Addr {
		if call == 1 {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}
		}
		return []netip.Addr{netip.MustParseAddr("192.0.2.10")}
	}
	h := startEgress(t, testEgressConfig("rebind.test"), allowAll, nil)

	h.res.set("rebind.test", rebind)
	u := "http://rebind.test:" + o.port + "/"
	resp, body := exchange(t, h.addr, "GET "+u+" HTTP/1.1\r\nHost: rebind.test\r\n\r\n")
	if resp.StatusCode != http.StatusOK || body != originBody {
		t.Fatalf("GET got %d %q", resp.StatusCode, body)
	}
	if n := h.res.count("rebind.test"); n != 1 {
		t.Errorf("GET: resolver called %d times, want 1", n)
	}
	if ev := h.audit.wait(t, "GET", u); ev["dest_ip"] != "127.0.0.1" {
		t.Errorf("GET dest_ip %v", ev["dest_ip"])
	}

	h.res.set("rebind.test", rebind)
	target := "rebind.test:" + portOf(t, echo)
	c, br, cresp := connect(t, h.addr, target, "", "")
	if cresp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT status %d", cresp.StatusCode)
	}
	io.WriteString(c, "x\n")
	if line, err := br.ReadString('\n'); err != nil || line != "x\n" {
		t.Fatalf("echo %q, %v", line, err)
	}
	c.Close()
	if n := h.res.count("rebind.test"); n != 1 {
		t.Errorf("CONNECT: resolver called %d times, want 1", n)
	}
	if ev := h.audit.wait(t, "CONNECT", target); ev["dest_ip"] != "127.0.0.1" {
		t.Errorf("CONNECT dest_ip %v", ev["dest_ip"])
	}

	// Without allow_internal: a public first answer, then loopback. The
	// dial goes to the public address checked (which the guard refuses
	// without dialling), never to the loopback one.
	h.res.set("flip.test", func(call int) []netip.Addr {
		if call == 1 {
			return []netip.Addr{netip.MustParseAddr("93.184.215.14")}
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	})
	u = "http://flip.test:" + o.port + "/"
	resp, _ = exchange(t, h.addr, "GET "+u+" HTTP/1.1\r\nHost: flip.test\r\n\r\n")
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("flip.test: status %d, want 502", resp.StatusCode)
	}
	if got := h.guard.take(); len(got) != 1 || got[0] != "93.184.215.14:"+o.port {
		t.Errorf("dials refused by the guard: %v, want the checked public address", got)
	}
	if n := h.res.count("flip.test"); n != 1 {
		t.Errorf("flip.test resolved %d times, want 1", n)
	}
	if n := o.ln.n.Load(); n != 1 {
		t.Errorf("origin accepted %d connections, want 1 (the allowed rebind.test GET)", n)
	}
}

// upstreamProxy is a loopback parent proxy that records what it is asked
// and dials nothing: it answers plain requests itself, and inside a CONNECT
// tunnel it answers the HTTP requests that come through as if it were the
// site. Given a resolver, it resolves a CONNECT target's name as a real
// parent would, and records the address it would have gone to.
type upstreamProxy struct {
	ln *countingListener
	// refuse, when set, makes the parent answer 502 to a CONNECT to target.
	refuse func(target string) bool

	mu      sync.Mutex
	resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	seen    []string // "METHOD target auth"
	inner   []string // "METHOD request-URI Host" of the requests inside tunnels
}

func startUpstream(t *testing.T) *upstreamProxy {
	t.Helper()
	up := &upstreamProxy{ln: loopbackListener(t)}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up.record(r)
		if r.Header.Get("Proxy-Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte("u:p@ss")) {
			w.Header().Set("Proxy-Authenticate", `Basic realm="up"`)
			http.Error(w, "who are you", http.StatusProxyAuthRequired)
			return
		}
		if r.Method != http.MethodConnect {
			io.WriteString(w, "via upstream")
			return
		}
		if up.refuse != nil && up.refuse(r.RequestURI) {
			http.Error(w, "cannot reach "+r.RequestURI, http.StatusBadGateway)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\n")
		for {
			req, err := http.ReadRequest(brw.Reader)
			if err != nil {
				return // the end of the tunnel, or TLS, which this parent does not speak
			}
			io.Copy(io.Discard, req.Body)
			up.mu.Lock()
			up.inner = append(up.inner, req.Method+" "+req.RequestURI+" "+req.Host)
			up.mu.Unlock()
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len("via upstream"), "via upstream")
		}
	})}
	go srv.Serve(up.ln)
	t.Cleanup(func() { srv.Close() })
	return up
}

// record notes a request to the parent and, for a CONNECT to a name, the
// parent's own resolution of it.
func (up *upstreamProxy) record(r *http.Request) {
	up.mu.Lock()
	up.seen = append(up.seen, r.Method+" "+r.RequestURI+" "+r.Header.Get("Proxy-Authorization"))
	resolve := up.resolve
	up.mu.Unlock()
	host, _, err := net.SplitHostPort(r.RequestURI)
	if _, aerr := netip.ParseAddr(host); r.Method == http.MethodConnect && err == nil && aerr != nil && resolve != nil {
		as, _ := resolve(r.Context(), host)
		up.mu.Lock()
		up.seen = append(up.seen, fmt.Sprintf("(parent resolved %s to %v)", host, as))
		up.mu.Unlock()
	}
}

func (up *upstreamProxy) setResolver(fn func(ctx context.Context, host string) ([]netip.Addr, error)) {
	up.mu.Lock()
	defer up.mu.Unlock()
	up.resolve = fn
}

func (up *upstreamProxy) requests() []string {
	up.mu.Lock()
	defer up.mu.Unlock()
	return append([]string(nil), up.seen...)
}

func (up *upstreamProxy) tunnelled() []string {
	up.mu.Lock()
	defer up.mu.Unlock()
	return append([]string(nil), up.inner...)
}

func TestEgressUpstream(t *testing.T) {
	o := startOrigin(t)
	up := startUpstream(t)
	cfg := testEgressConfig("site.test")
	cfg.Upstream = "http://u:p%40ss@127.0.0.1:" + portOf(t, up.ln)
	h := startEgress(t, cfg, allowAll, nil)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("u:p@ss"))

	u := "http://site.test:" + o.port + "/a"
	resp, body := exchange(t, h.addr, "GET "+u+" HTTP/1.1\r\nHost: site.test\r\nProxy-Authorization: Basic Y2xpZW50OnNlY3JldA==\r\n\r\n")
	if resp.StatusCode != http.StatusOK || body != "via upstream" {
		t.Fatalf("GET got %d %q", resp.StatusCode, body)
	}
	if ev := h.audit.wait(t, "GET", u); ev["dest_ip"] != "" || ev["status"] != 200.0 || ev["tab"] != "t1" {
		t.Errorf("audit event %v", ev)
	}

	// The request right behind the CONNECT: early bytes reach the upstream too.
	c, br, cresp := connect(t, h.addr, "site.test:443", "Proxy-Authorization: Basic Y2xpZW50OnNlY3JldA==\r\n",
		"GET /t HTTP/1.1\r\nHost: site.test\r\n\r\n")
	if cresp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT status %d", cresp.StatusCode)
	}
	if r, err := http.ReadResponse(br, nil); err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("through the upstream's tunnel: %v, %v", r, err)
	}
	c.Close()
	h.audit.wait(t, "CONNECT", "site.test:443")

	// Both as tunnels to the address checked (site.test is 127.0.0.1), the
	// plain request in origin form inside.
	want := []string{"CONNECT 127.0.0.1:" + o.port + " " + auth, "CONNECT 127.0.0.1:443 " + auth}
	if got := up.requests(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("upstream saw\n%q\nwant\n%q", got, want)
	}
	wantInner := []string{"GET /a site.test:" + o.port, "GET /t site.test"}
	if got := up.tunnelled(); strings.Join(got, "\n") != strings.Join(wantInner, "\n") {
		t.Errorf("upstream's tunnels carried\n%q\nwant\n%q", got, wantInner)
	}

	// Internal destinations never reach the upstream.
	for _, req := range []string{
		"GET http://internal.test:" + o.port + "/ HTTP/1.1\r\nHost: internal.test\r\n\r\n",
		"GET http://10.1.2.3/ HTTP/1.1\r\nHost: 10.1.2.3\r\n\r\n",
		"CONNECT meta.test:80 HTTP/1.1\r\nHost: meta.test:80\r\n\r\n",
		"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n",
	} {
		if resp, body := exchange(t, h.addr, req); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: got %d %q, want 403", firstLine(req), resp.StatusCode, body)
		}
	}
	if got := up.requests(); len(got) != 2 {
		t.Errorf("upstream saw internal requests: %q", got[2:])
	}
	if o.ln.n.Load() != 0 {
		t.Errorf("origin was dialled directly in upstream mode")
	}
}

func TestEgressUpstreamRefuses(t *testing.T) {
	up := startUpstream(t)
	cfg := testEgressConfig("site.test")
	cfg.Upstream = "http://u:wrong@127.0.0.1:" + portOf(t, up.ln)
	h := startEgress(t, cfg, allowAll, nil)
	_, _, resp := connect(t, h.addr, "site.test:443", "", "")
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("CONNECT status %d, want 502", resp.StatusCode)
	}
	if ev := h.audit.wait(t, "CONNECT", "site.test:443"); !strings.Contains(fmt.Sprint(ev["error"]), "407") {
		t.Errorf("audit error %v, want the upstream's 407", ev["error"])
	}
}

func TestEgressMalformed(t *testing.T) {
	o := startOrigin(t)
	h := startEgress(t, testEgressConfig("site.test"), allowAll, nil)
	cases := map[string]string{
		"garbage":         "\x00\x01\x02\xff garbage\r\n\r\n",
		"relative":        "GET / HTTP/1.1\r\nHost: site.test\r\n\r\n",
		"ftp":             "GET ftp://site.test/ HTTP/1.1\r\nHost: site.test\r\n\r\n",
		"no host":         "GET http:///x HTTP/1.1\r\nHost: site.test\r\n\r\n",
		"bad port":        "GET http://site.test:99999/ HTTP/1.1\r\nHost: site.test\r\n\r\n",
		"port zero":       "GET http://site.test:0/ HTTP/1.1\r\nHost: site.test\r\n\r\n",
		"CONNECT no port": "CONNECT site.test HTTP/1.1\r\nHost: site.test\r\n\r\n",
		"CONNECT path":    "CONNECT /x HTTP/1.1\r\nHost: site.test\r\n\r\n",
		"huge header":     "GET http://site.test:" + o.port + "/ HTTP/1.1\r\nHost: site.test\r\nX-Big: " + strings.Repeat("a", 200<<10) + "\r\n\r\n",
		"many headers":    "GET http://site.test:" + o.port + "/ HTTP/1.1\r\nHost: site.test\r\n" + strings.Repeat("X-A: b\r\n", 20000) + "\r\n",
		"bad version":     "GET http://site.test/ HTTP/9.9\r\nHost: site.test\r\n\r\n",
		"unknown name":    "GET http://nowhere.test/ HTTP/1.1\r\nHost: nowhere.test\r\n\r\n",
	}
	for name, req := range cases {
		t.Run(name, func(t *testing.T) {
			resp, body := exchange(t, h.addr, req)
			if resp.StatusCode < 400 || resp.StatusCode > 599 {
				t.Errorf("got %d %q, want an error status", resp.StatusCode, body)
			}
		})
	}
	if o.ln.n.Load() != 0 {
		t.Errorf("a malformed request reached the origin")
	}
	// Still serving.
	resp, body := exchange(t, h.addr, "GET http://site.test:"+o.port+"/ HTTP/1.1\r\nHost: site.test\r\n\r\n")
	if resp.StatusCode != http.StatusOK || body != originBody {
		t.Fatalf("after malformed requests: %d %q", resp.StatusCode, body)
	}
}

func TestEgressShutdownClosesTunnels(t *testing.T) {
	echo := startEcho(t)
	pol, _ := policy.New(allowAll)
	e, err := New(testEgressConfig("site.test"), pol, testLookup, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	res := newFakeResolver()
	guard := &dialGuard{}
	e.resolve, e.dial, e.host.List = res.resolve, guard.dial, fakeHostAddrs
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx, ln) }()

	c, br, resp := connect(t, ln.Addr().String(), "site.test:"+portOf(t, echo), "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT status %d", resp.StatusCode)
	}
	io.WriteString(c, "x\n")
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return with a tunnel open")
	}
	if _, err := br.ReadByte(); err == nil {
		t.Error("tunnel still open after shutdown")
	}
}

func TestEgressConfigValidate(t *testing.T) {
	def := DefaultConfig()
	if err := def.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	cases := []struct {
		name string
		mod  func(*Config)
		key  string
	}{
		{"port", func(c *Config) { c.Port = 0 }, "egress.port"},
		{"port high", func(c *Config) { c.Port = 70000 }, "egress.port"},
		{"allow scheme", func(c *Config) { c.AllowInternal = []string{"ok.test", "http://wiki"} }, "egress.allow_internal[1]"},
		{"allow port", func(c *Config) { c.AllowInternal = []string{"wiki:http"} }, "egress.allow_internal[0]"},
		{"allow empty", func(c *Config) { c.AllowInternal = []string{""} }, "egress.allow_internal[0]"},
		{"deny prefix", func(c *Config) { c.Deny = []string{"10.0.0.0/8", "10.0.0.0/33"} }, "egress.deny[1]"},
		{"deny name", func(c *Config) { c.Deny = []string{"wiki.corp"} }, "egress.deny[0]"},
		{"upstream scheme", func(c *Config) { c.Upstream = "socks5://p:1080" }, "egress.upstream"},
		{"upstream no port", func(c *Config) { c.Upstream = "http://proxy.corp" }, "egress.upstream"},
		{"upstream bare", func(c *Config) { c.Upstream = "proxy.corp:3128" }, "egress.upstream"},
		{"upstream path", func(c *Config) { c.Upstream = "http://proxy.corp:3128/x" }, "egress.upstream"},
		{"dial timeout", func(c *Config) { c.DialTimeout = 0 }, "egress.dial_timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tc.key+":") {
				t.Errorf("Validate() = %v, want an error naming %s", err, tc.key)
			}
		})
	}
	c := DefaultConfig()
	c.Upstream = "http://user:hunter2@proxy.corp"
	if err := c.Validate(); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Validate() = %v, want an error without the password", err)
	}
	c = DefaultConfig()
	c.AllowInternal = []string{"wiki.corp.example", "10.1.2.3:8080", "[fd00::1]:443", "fd00::2", "WIKI.corp.example."}
	c.Upstream = "http://u:p@proxy.corp:3128/"
	c.Deny = []string{"10.20.0.0/16", "168.63.129.16", "fd00::/8"}
	if err := c.Validate(); err != nil {
		t.Errorf("good config: %v", err)
	}
}
