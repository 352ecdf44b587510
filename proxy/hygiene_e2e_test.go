package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/glovebox/glovebox/internal/testenv"
	"github.com/glovebox/glovebox/proxy/policy"
)

// Proxy hygiene (RFC 9110/9112) and upstream failures, seen from both ends
// of a real Server on loopback (startMITMProxy): a client on one side (curl
// or raw bytes), a loopback origin that records what reached it on the
// other.

func needCurl(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		testenv.Missing(t, "needs curl (make test installs it): %v", err)
	}
}

// runCurl runs curl with args and returns what it wrote to its standard
// output and error, and why it failed. An empty --noproxy and an environment
// of nothing but PATH and an empty HOME keep the machine's proxy settings
// and any .curlrc out of it.
func runCurl(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "curl", append([]string{"-sS", "--max-time", "30", "--noproxy", ""}, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("%w: %s", err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), errOut.String(), err
}

// curl is runCurl for a transfer that must succeed: its standard output.
func curl(t testing.TB, args ...string) string {
	t.Helper()
	out, _, err := runCurl(t, args...)
	if err != nil {
		t.Fatalf("curl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// allowLoopback lets the test origins (127.0.0.1 and 127.0.0.2) through,
// and lets users reach them.
func allowLoopback(c *Config) {
	c.Policy.Rules = append(c.Policy.Rules,
		policy.Rule{Name: "loopback-1", Host: "127.0.0.1", Action: policy.ActionAllow},
		policy.Rule{Name: "loopback-2", Host: "127.0.0.2", Action: policy.ActionAllow})
	c.Upstream.AllowLocal = []string{"127.0.0.0/8"}
}

// tunnelRule allows 127.0.0.1 without TLS interception: CONNECTs to it
// are tunnelled, so the tests see the tunnel itself.
func tunnelRule(c *Config) {
	c.Policy.Rules = append([]policy.Rule{{Name: "tunnel-loopback", Host: "127.0.0.1", Action: policy.ActionAllow, NoInspect: true}}, c.Policy.Rules...)
}

// unusedAddr is a loopback address nothing listens on: a port the kernel
// handed out, closed again.
func unusedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// seenRequest is what an origin received.
type seenRequest struct {
	method, uri, proto string
	header             http.Header
}

// headerOrigin is a loopback origin that records every request's headers
// and counts the connections it accepted.
type headerOrigin struct {
	*httptest.Server
	conns atomic.Int32
	mu    sync.Mutex
	seen  []seenRequest
}

func newHeaderOrigin(t testing.TB, addr string) *headerOrigin {
	t.Helper()
	o := &headerOrigin{}
	o.Server = httptest.NewUnstartedServer(http.HandlerFunc(o.serve))
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		o.Listener.Close()
		o.Listener = ln
	}
	o.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			o.conns.Add(1)
		}
	}
	o.Start()
	t.Cleanup(o.Close)
	return o
}

func (o *headerOrigin) serve(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	o.seen = append(o.seen, seenRequest{r.Method, r.RequestURI, r.Proto, r.Header.Clone()})
	o.mu.Unlock()
	switch r.URL.Path {
	case "/hop", "/hop-close":
		// Hop-by-hop headers a careless proxy would pass on to its client.
		// (Go's client drops a Connection header that says close, and with
		// it the names it lists: hence two paths.)
		h := w.Header()
		h.Set("Connection", "X-Resp-Hop")
		if r.URL.Path == "/hop-close" {
			h.Set("Connection", "close")
		}
		h.Set("X-Resp-Hop", "secret")
		h.Set("Keep-Alive", "timeout=1")
		h.Set("Proxy-Connection", "close")
		h.Set("Upgrade", "h2c")
		h.Set("Proxy-Authenticate", `Basic realm="origin"`)
		h.Set("X-End", "kept")
		io.WriteString(w, "hop")
	case "/chunked":
		// No length: HTTP/1.1 chunks it, an HTTP/1.0 client needs the close.
		for i := range 3 {
			fmt.Fprintf(w, "chunk-%d;", i)
			w.(http.Flusher).Flush()
		}
	default:
		io.WriteString(w, "ok "+r.URL.Path)
	}
}

// last returns the last request the origin saw for path.
func (o *headerOrigin) last(t testing.TB, path string) seenRequest {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := len(o.seen) - 1; i >= 0; i-- {
		if strings.HasSuffix(strings.SplitN(o.seen[i].uri, "?", 2)[0], path) {
			return o.seen[i]
		}
	}
	t.Fatalf("the origin saw no request for %s", path)
	return seenRequest{}
}

// rawClient is one client connection to the proxy that sends bytes and
// reads responses.
type rawClient struct {
	net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawClient{Conn: c, br: bufio.NewReader(c)}
}

// do sends req and reads one response (for method) and its body.
func (c *rawClient) do(t testing.TB, method, req string) (*http.Response, string) {
	t.Helper()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s: read response: %v", firstLine(req), err)
	}
	if method == http.MethodConnect && resp.StatusCode == http.StatusOK {
		return resp, "" // the tunnel follows
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: read body: %v", firstLine(req), err)
	}
	resp.Body.Close()
	return resp, string(body)
}

func firstLine(s string) string { return strings.SplitN(s, "\r\n", 2)[0] }

// exchange sends one request on a new connection.
func exchange(t testing.TB, addr, req string) (*http.Response, string) {
	t.Helper()
	method := strings.SplitN(req, " ", 2)[0]
	return dialRaw(t, addr).do(t, method, req)
}

// TestCurlThroughGlovebox: curl as the client, an allowed loopback origin:
// keep-alive to the client, HTTP/1.0 clients, and one kept-alive connection
// to the origin for requests from many client connections.
func TestCurlThroughGlovebox(t *testing.T) {
	needCurl(t)
	o := newHeaderOrigin(t, "127.0.0.1:0")
	g := startMITMProxy(t, allowLoopback)
	px := "http://" + g.addr

	// Two URLs in one curl: the second reuses the first's connection.
	out := curl(t, "-x", px, "-w", "%{http_code} %{num_connects}\n", "-o", "/dev/null", o.URL+"/a", "-o", "/dev/null", o.URL+"/b")
	if out != "200 1\n200 0\n" {
		t.Errorf("status and new connections per request: %q, want %q (keep-alive)", out, "200 1\n200 0\n")
	}
	if via := o.last(t, "/b").header.Get("Via"); via != "1.1 glovebox" {
		t.Errorf("origin saw Via %q", via)
	}

	// HTTP/1.0 (curl -0): the body has no length, so Glovebox ends it by
	// closing the connection, as HTTP/1.0 wants.
	out = curl(t, "-0", "-x", px, "-D", "-", o.URL+"/chunked")
	head, body, _ := strings.Cut(out, "\r\n\r\n")
	if !strings.HasPrefix(head, "HTTP/1.") || !strings.Contains(head, " 200 ") || body != "chunk-0;chunk-1;chunk-2;" {
		t.Errorf("HTTP/1.0 response:\n%s", out)
	}
	if strings.Contains(strings.ToLower(head), "transfer-encoding") {
		t.Errorf("chunked sent to an HTTP/1.0 client:\n%s", head)
	}
	if r := o.last(t, "/chunked"); r.header.Get("Via") != "1.0 glovebox" || r.proto != "HTTP/1.1" {
		t.Errorf("origin saw %s with Via %q, want HTTP/1.1 with Via 1.0 glovebox", r.proto, r.header.Get("Via"))
	}
	// Its audit event counts the body bytes relayed (goproxy's copy goes
	// through CountingWriter.ReadFrom).
	g.audit.waitEvents(t, "the chunked response's audit event", 1, func(e map[string]any) bool {
		return e["url"] == o.URL+"/chunked" && e["status"] == 200.0 && e["bytes"] == float64(len(body))
	})

	// An HTTP/1.0 request with no Host header at all, absolute URI.
	c := dialRaw(t, g.addr)
	io.WriteString(c, "GET "+o.URL+"/nohost HTTP/1.0\r\n\r\n")
	raw, err := io.ReadAll(c) // Glovebox closes the connection after it
	if err != nil {
		t.Fatalf("HTTP/1.0 without Host: %v (the connection was not closed)", err)
	}
	if !bytes.HasPrefix(raw, []byte("HTTP/1.")) || !bytes.Contains(raw, []byte(" 200 ")) || !bytes.HasSuffix(raw, []byte("ok /nohost")) {
		t.Errorf("HTTP/1.0 without Host:\n%s", raw)
	}

	// Every request above came on its own client connection but one,
	// each HTTP/1.0 one asked to close: Glovebox kept one connection to
	// the origin for all of them.
	// (2 allows for a connection not yet back in the pool when the next
	// request came; without keep-alive it would be 4.)
	if n := o.conns.Load(); n > 2 {
		t.Errorf("origin accepted %d connections for 4 requests, want 1 (keep-alive to the origin)", n)
	}
}

// TestHopByHopHeaders: what concerns one connection stays on it, both ways,
// and Via is added both ways. A site's Connection: close does not close the
// client's connection.
func TestHopByHopHeaders(t *testing.T) {
	o := newHeaderOrigin(t, "127.0.0.1:0")
	g := startMITMProxy(t, allowLoopback)
	host := strings.TrimPrefix(o.URL, "http://")
	c := dialRaw(t, g.addr)
	resp, body := c.do(t, "GET", "GET "+o.URL+"/hop HTTP/1.1\r\nHost: "+host+"\r\n"+
		"Connection: keep-alive, X-Secret-Hop\r\nX-Secret-Hop: 1\r\nKeep-Alive: 300\r\nTE: trailers\r\n"+
		"Trailer: X-Checksum\r\nUpgrade: h2c\r\nProxy-Connection: keep-alive\r\n"+
		"Proxy-Authorization: Basic Y2xpZW50OnNlY3JldA==\r\nVia: 1.1 child\r\nX-End: 1\r\n\r\n")
	if resp.StatusCode != 200 || body != "hop" {
		t.Fatalf("GET /hop: %d %q", resp.StatusCode, body)
	}
	seen := o.last(t, "/hop").header
	for _, h := range []string{"Connection", "X-Secret-Hop", "Keep-Alive", "Te", "Trailer", "Upgrade", "Proxy-Connection", "Proxy-Authorization"} {
		if v, ok := seen[h]; ok {
			t.Errorf("origin got hop-by-hop %s: %q", h, v)
		}
	}
	if seen.Get("X-End") != "1" {
		t.Errorf("origin lost the end-to-end X-End: %v", seen)
	}
	if via := seen.Values("Via"); strings.Join(via, ", ") != "1.1 child, 1.1 glovebox" {
		t.Errorf("origin saw Via %q, want the child's and Glovebox's", via)
	}
	for _, h := range []string{"Connection", "X-Resp-Hop", "Keep-Alive", "Proxy-Connection", "Upgrade", "Proxy-Authenticate"} {
		if v, ok := resp.Header[h]; ok {
			t.Errorf("client got hop-by-hop %s: %q", h, v)
		}
	}
	if resp.Header.Get("X-End") != "kept" || resp.Header.Get("Via") != "1.1 glovebox" {
		t.Errorf("client got X-End %q, Via %q", resp.Header.Get("X-End"), resp.Header.Get("Via"))
	}
	// The site closes its connection; the client's stays open.
	resp, body = c.do(t, "GET", "GET "+o.URL+"/hop-close HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
	if resp.StatusCode != 200 || resp.Close || resp.Header.Get("Connection") != "" {
		t.Errorf("site's Connection: close: %d, close=%v, Connection %q", resp.StatusCode, resp.Close, resp.Header.Get("Connection"))
	}
	resp, body = c.do(t, "GET", "GET "+o.URL+"/again HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
	if resp.StatusCode != 200 || body != "ok /again" {
		t.Errorf("second request on the connection: %d %q", resp.StatusCode, body)
	}
}

// TestForwardedForAndVia: hygiene.x_forwarded_for off, add and strip, and
// hygiene.via renamed or off.
func TestForwardedForAndVia(t *testing.T) {
	o := newHeaderOrigin(t, "127.0.0.1:0")
	tests := []struct {
		xff, via      string
		sendXFF       bool
		wantXFF       string
		wantForwarded string
		wantVia       string
	}{
		{"off", "glovebox", true, "192.0.2.7", "for=192.0.2.7", "1.1 glovebox"},
		{"off", "glovebox", false, "", "", "1.1 glovebox"},
		{"add", "gb-east", true, "192.0.2.7, 127.0.0.1", "for=192.0.2.7", "1.1 gb-east"},
		{"add", "gb-east", false, "127.0.0.1", "", "1.1 gb-east"},
		{"strip", "", true, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s,via=%q,client-xff=%v", tt.xff, tt.via, tt.sendXFF), func(t *testing.T) {
			g := startMITMProxy(t, func(c *Config) {
				allowLoopback(c)
				c.Hygiene = HygieneConfig{Via: tt.via, XForwardedFor: tt.xff}
			})
			extra := ""
			if tt.sendXFF {
				extra = "X-Forwarded-For: 192.0.2.7\r\nForwarded: for=192.0.2.7\r\n"
			}
			path := "/xff-" + tt.xff + fmt.Sprint(tt.sendXFF)
			resp, _ := exchange(t, g.addr, "GET "+o.URL+path+" HTTP/1.1\r\nHost: x\r\n"+extra+"\r\n")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			h := o.last(t, path).header
			if got := strings.Join(h.Values("X-Forwarded-For"), ", "); got != tt.wantXFF {
				t.Errorf("X-Forwarded-For %q, want %q", got, tt.wantXFF)
			}
			if got := h.Get("Forwarded"); got != tt.wantForwarded {
				t.Errorf("Forwarded %q, want %q", got, tt.wantForwarded)
			}
			if got := h.Get("Via"); got != tt.wantVia {
				t.Errorf("Via to the origin %q, want %q", got, tt.wantVia)
			}
			if got := resp.Header.Get("Via"); got != tt.wantVia {
				t.Errorf("Via to the client %q, want %q", got, tt.wantVia)
			}
		})
	}
}

// TestHeaderLimits: limits.max_header_count and limits.max_header_bytes
// answer 431, and the proxy goes on serving.
func TestHeaderLimits(t *testing.T) {
	o := newHeaderOrigin(t, "127.0.0.1:0")
	g := startMITMProxy(t, func(c *Config) {
		allowLoopback(c)
		c.Limits.MaxHeaderBytes, c.Limits.MaxHeaderCount = 8<<10, 20
	})
	headers := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "X-H%d: v\r\n", i)
		}
		return b.String()
	}
	tests := []struct {
		name, extra string
		want        int
	}{
		{"19 fields", headers(19), 200},
		{"25 fields", headers(25), 431},
		{"25 repeats of one name", strings.Repeat("X-Same: v\r\n", 25), 431},
		{"6 KiB", "X-Big: " + strings.Repeat("a", 6<<10) + "\r\n", 200},
		{"16 KiB", "X-Big: " + strings.Repeat("a", 16<<10) + "\r\n", 431},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := exchange(t, g.addr, "GET "+o.URL+"/limits HTTP/1.1\r\nHost: x\r\n"+tt.extra+"\r\n")
			if resp.StatusCode != tt.want {
				t.Errorf("status %d %q, want %d", resp.StatusCode, body, tt.want)
			}
		})
	}
	// CONNECT is counted too.
	if resp, _ := exchange(t, g.addr, "CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n"+headers(30)+"\r\n"); resp.StatusCode != 431 {
		t.Errorf("CONNECT with 30 fields: %d, want 431", resp.StatusCode)
	}
	g.audit.waitEvents(t, "the audit event of the refusal", 1, func(e map[string]any) bool {
		return e["status"] == 431.0 && e["action"] == "refuse" && e["rule"] == "too many header fields"
	})
	if resp, body := exchange(t, g.addr, "GET "+o.URL+"/after HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 || body != "ok /after" {
		t.Errorf("after the limits: %d %q", resp.StatusCode, body)
	}
}

// hangingListener accepts connections, reads what comes and never answers.
func hangingListener(t testing.TB) string {
	t.Helper()
	addr, _ := hangingListenerSeen(t)
	return addr
}

// hangingListenerSeen is hangingListener; its channel receives once for each
// connection on which bytes arrived, that is a request the site now holds.
func hangingListenerSeen(t testing.TB) (string, <-chan struct{}) {
	t.Helper()
	seen := make(chan struct{}, 64)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() {
				if n, _ := c.Read(make([]byte, 1)); n > 0 {
					select {
					case seen <- struct{}{}:
					default:
					}
				}
				io.Copy(io.Discard, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String(), seen
}

// TestHangingUpstream: a site that accepts and never answers costs its
// client upstream_timeout and a 504, and nobody else anything.
func TestHangingUpstream(t *testing.T) {
	o := newHeaderOrigin(t, "127.0.0.1:0")
	hang, seen := hangingListenerSeen(t)
	g := startMITMProxy(t, func(c *Config) {
		allowLoopback(c)
		c.UpstreamTimeout = time.Second
	})
	proxied := g.client()
	type result struct {
		status int
		body   string
		took   time.Duration
	}
	hung := make(chan result, 1)
	go func() {
		start := time.Now()
		resp, err := proxied.Get("http://" + hang + "/slow")
		if err != nil {
			hung <- result{body: err.Error(), took: time.Since(start)}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		hung <- result{resp.StatusCode, string(b), time.Since(start)}
	}()
	select {
	case <-seen: // the hanging request is in flight: the site holds it
	case r := <-hung:
		t.Fatalf("the hanging request ended (%d %q) before it reached the site", r.status, r.body)
	}

	// Meanwhile, others are served.
	var wg sync.WaitGroup
	var ok atomic.Int32
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := proxied.Get(fmt.Sprintf("%s/other-%d", o.URL, i))
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	select {
	case r := <-hung:
		t.Fatalf("the hanging request ended (%d, %v) before the others were served", r.status, r.took)
	default:
	}
	if ok.Load() != 20 {
		t.Errorf("%d of 20 requests to another site served while one hung", ok.Load())
	}

	r := <-hung
	if r.status != http.StatusGatewayTimeout || !strings.Contains(r.body, "no response within 1s") {
		t.Errorf("hanging site: %d %q, want 504 saying why", r.status, r.body)
	}
	if r.took < time.Second || r.took > 5*time.Second {
		t.Errorf("hanging site answered after %v, want about upstream_timeout (1s)", r.took)
	}
	g.audit.waitEvents(t, "the 504's audit event", 1, func(e map[string]any) bool {
		return e["url"] == "http://"+hang+"/slow" && e["status"] == 504.0 && strings.Contains(fmt.Sprint(e["error"]), "timeout")
	})
}

// TestParentFailures: a parent proxy that hangs or refuses connections
// gives the user a 504 or 502 that names the parent, for plain requests and
// CONNECT, within upstream_timeout; its audit event says why; and
// upstream.direct still goes direct.
func TestParentFailures(t *testing.T) {
	direct := newHeaderOrigin(t, "127.0.0.2:0")
	closed := unusedAddr(t)
	for _, tt := range []struct {
		name, parent string
		status       int
		says         string
	}{
		{"hanging", hangingListener(t), 504, "no response came within 1s"},
		{"refusing", closed, 502, "connection refused"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := startMITMProxy(t, func(c *Config) {
				tunnelRule(c)
				allowLoopback(c)
				c.UpstreamTimeout = time.Second
				c.Upstream.Proxy = "http://u:p@" + tt.parent
				c.Upstream.Direct = []string{"127.0.0.2"}
			})
			start := time.Now()
			resp, body := exchange(t, g.addr, "GET http://127.0.0.1:9/page HTTP/1.1\r\nHost: 127.0.0.1:9\r\nAccept: text/html\r\n\r\n")
			if resp.StatusCode != tt.status || !strings.Contains(body, tt.parent) || !strings.Contains(body, tt.says) {
				t.Errorf("GET: %d, want %d naming the parent %s and saying %q:\n%s", resp.StatusCode, tt.status, tt.parent, tt.says, body)
			}
			resp, body = exchange(t, g.addr, "CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n")
			if resp.StatusCode != tt.status || !strings.Contains(body, "parent proxy "+tt.parent) {
				t.Errorf("CONNECT: %d %q, want %d naming the parent", resp.StatusCode, body, tt.status)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("both failures took %v, want about upstream_timeout each", took)
			}
			for _, m := range []string{"GET", "CONNECT"} {
				g.audit.waitEvents(t, m+"'s audit event", 1, func(e map[string]any) bool {
					return e["method"] == m && e["status"] == float64(tt.status) && strings.Contains(fmt.Sprint(e["error"]), "parent proxy "+tt.parent)
				})
			}
			// upstream.direct: not through the broken parent.
			resp, body = exchange(t, g.addr, "GET "+direct.URL+"/direct HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp.StatusCode != 200 || body != "ok /direct" {
				t.Errorf("upstream.direct destination: %d %q", resp.StatusCode, body)
			}
		})
	}
}

// recordingParent is a small parent proxy in Go: it records each request
// (method, target, Proxy-Authorization, Via), answers 407 without the right
// credentials, forwards plain requests and tunnels CONNECTs to loopback.
type recordingParent struct {
	addr string
	mu   sync.Mutex
	seen []string
}

func startRecordingParent(t testing.TB, user, pass string) *recordingParent {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingParent{addr: ln.Addr().String()}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	tr := &http.Transport{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.seen = append(p.seen, fmt.Sprintf("%s %s auth=%q via=%q", r.Method, r.RequestURI, r.Header.Get("Proxy-Authorization"), r.Header.Get("Via")))
		p.mu.Unlock()
		if r.Header.Get("Proxy-Authorization") != want {
			w.Header().Set("Proxy-Authenticate", `Basic realm="parent"`)
			http.Error(w, "parent wants credentials", http.StatusProxyAuthRequired)
			return
		}
		if !strings.HasPrefix(r.Host, "127.") {
			http.Error(w, "test parent: loopback only", http.StatusForbidden)
			return
		}
		if r.Method == http.MethodConnect {
			dst, err := net.DialTimeout("tcp", r.Host, 5*time.Second)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer dst.Close()
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
			go io.Copy(dst, brw)
			io.Copy(c, dst)
			return
		}
		r.RequestURI = ""
		r.Header.Del("Proxy-Authorization")
		resp, err := tr.RoundTrip(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close(); tr.CloseIdleConnections() })
	return p
}

func (p *recordingParent) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

// TestParentCredentials: Glovebox sends its own credentials for the parent
// (never the client's) on plain requests and on CONNECT, with Via; a
// parent that refuses them gets the user a 502 that says so, never a 407.
func TestParentCredentials(t *testing.T) {
	o := newHeaderOrigin(t, "127.0.0.1:0")
	p := startRecordingParent(t, "gb", "p@ss:word")
	g := startMITMProxy(t, func(c *Config) {
		tunnelRule(c)
		c.Upstream.Proxy = "http://gb:p%40ss%3Aword@" + p.addr
	})
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("gb:p@ss:word"))
	clientAuth := "Proxy-Authorization: Basic Y2xpZW50OnNlY3JldA==\r\n"
	host := strings.TrimPrefix(o.URL, "http://")

	resp, body := exchange(t, g.addr, "GET "+o.URL+"/plain HTTP/1.1\r\nHost: "+host+"\r\n"+clientAuth+"\r\n")
	if resp.StatusCode != 200 || body != "ok /plain" {
		t.Fatalf("GET through the parent: %d %q", resp.StatusCode, body)
	}
	c := dialRaw(t, g.addr)
	resp, _ = c.do(t, "CONNECT", "CONNECT "+host+" HTTP/1.1\r\nHost: "+host+"\r\n"+clientAuth+"\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("CONNECT through the parent: %d", resp.StatusCode)
	}
	resp, body = c.do(t, "GET", "GET /tunnelled HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
	if resp.StatusCode != 200 || body != "ok /tunnelled" {
		t.Fatalf("GET in the tunnel: %d %q", resp.StatusCode, body)
	}
	want := []string{
		fmt.Sprintf("GET %s/plain auth=%q via=%q", o.URL, auth, "1.1 glovebox"),
		fmt.Sprintf("CONNECT %s auth=%q via=%q", host, auth, "1.1 glovebox"),
	}
	if got := p.requests(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("parent saw\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Wrong credentials: the parent's 407 becomes a 502 that says why.
	g2 := startMITMProxy(t, func(c *Config) {
		tunnelRule(c)
		c.Upstream.Proxy = "http://gb:wrong@" + p.addr
	})
	resp, body = exchange(t, g2.addr, "GET "+o.URL+"/denied HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
	if resp.StatusCode != 502 || resp.Header.Get("Proxy-Authenticate") != "" || !strings.Contains(body, "parent proxy "+p.addr) {
		t.Errorf("GET with wrong parent credentials: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	resp, body = exchange(t, g2.addr, "CONNECT "+host+" HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
	if resp.StatusCode != 502 || !strings.Contains(body, "407") {
		t.Errorf("CONNECT with wrong parent credentials: %d %q", resp.StatusCode, body)
	}
}

// TestMalformedConnect: a CONNECT that does not name host:port is a 400,
// whatever policy says; a good one to an allowed host is tunnelled.
func TestMalformedConnect(t *testing.T) {
	o := newHeaderOrigin(t, "127.0.0.1:0")
	g := startMITMProxy(t, func(c *Config) {
		c.Policy.Default = policy.ActionAllow
		tunnelRule(c)
	})
	for _, target := range []string{"nohostport", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:99999", "127.0.0.1:http", ":443", "a:b:c", "/path", "127.0.0.1:80/x", "[::1"} {
		t.Run(target, func(t *testing.T) {
			resp, body := exchange(t, g.addr, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
			if resp.StatusCode != 400 {
				t.Errorf("CONNECT %s: %d %q, want 400", target, resp.StatusCode, body)
			}
		})
	}
	host := strings.TrimPrefix(o.URL, "http://")
	c := dialRaw(t, g.addr)
	if resp, _ := c.do(t, "CONNECT", "CONNECT "+host+" HTTP/1.1\r\nHost: "+host+"\r\n\r\n"); resp.StatusCode != 200 {
		t.Fatalf("good CONNECT: %d", resp.StatusCode)
	}
	if resp, body := c.do(t, "GET", "GET /in HTTP/1.1\r\nHost: "+host+"\r\n\r\n"); resp.StatusCode != 200 || body != "ok /in" {
		t.Errorf("in the tunnel: %d %q", resp.StatusCode, body)
	}
}

// TestLoopDetected: a request that has been through this Glovebox is
// refused 508, whether the loop is in its Via or real (Glovebox its own parent).
func TestLoopDetected(t *testing.T) {
	o := newHeaderOrigin(t, "127.0.0.1:0")
	self := unusedAddr(t)
	g := startMITMProxy(t, func(c *Config) {
		tunnelRule(c)
		allowLoopback(c)
		c.Listen = self
		c.Upstream.Proxy = "http://" + self
		c.Upstream.Direct = []string{"127.0.0.2"}
	})
	for _, via := range []string{"1.1 glovebox", "1.0 proxy-a, 1.1 GLOVEBOX (x)"} {
		if resp, _ := exchange(t, g.addr, "GET http://127.0.0.2:9/ HTTP/1.1\r\nHost: x\r\nVia: "+via+"\r\n\r\n"); resp.StatusCode != 508 {
			t.Errorf("Via %q: %d, want 508", via, resp.StatusCode)
		}
	}
	// Glovebox as its own parent: the second pass is refused, and the
	// refusal comes back.
	resp, body := exchange(t, g.addr, "GET "+o.URL+"/loop HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 508 || !strings.Contains(body, "loop") {
		t.Errorf("GET round a loop: %d %q, want 508", resp.StatusCode, body)
	}
	host := strings.TrimPrefix(o.URL, "http://")
	resp, body = exchange(t, g.addr, "CONNECT "+host+" HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
	if resp.StatusCode != 502 || !strings.Contains(body, "508") {
		t.Errorf("CONNECT round a loop: %d %q, want 502 saying the parent answered 508", resp.StatusCode, body)
	}
	o.mu.Lock()
	n := len(o.seen)
	o.mu.Unlock()
	if n != 0 {
		t.Errorf("the origin got %d requests from a loop", n)
	}
	found := false
	for _, e := range g.audit.events(t) {
		if e["status"] == 508.0 && e["action"] == "refuse" && e["rule"] == "loop" {
			found = true
		}
	}
	if !found {
		t.Errorf("no audit event for the loop:\n%s", g.audit.String())
	}
}

// wsEcho is a real WebSocket echo server (golang.org/x/net/websocket) on
// loopback that also records the handshake's Via.
func wsEcho(t testing.TB) (*httptest.Server, *atomic.Value) {
	t.Helper()
	var via atomic.Value
	via.Store("")
	ws := websocket.Handler(func(c *websocket.Conn) { io.Copy(c, c) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		via.Store(r.Header.Get("Via"))
		ws.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &via
}

// wsFrame is a client's masked text frame.
func wsFrame(payload string) []byte {
	mask := [4]byte{1, 2, 3, 4}
	f := []byte{0x81, 0x80 | byte(len(payload))}
	f = append(f, mask[:]...)
	for i := range len(payload) {
		f = append(f, payload[i]^mask[i%4])
	}
	return f
}

// TestWebSocketPassThrough: ws:// to an allowed site through Glovebox, both
// ways clients do it: an absolute-form GET with Upgrade (goproxy's upgrade
// path, with hygiene), and a CONNECT tunnel (what browsers do). An isolated
// site's WebSocket is refused.
func TestWebSocketPassThrough(t *testing.T) {
	srv, via := wsEcho(t)
	g := startMITMProxy(t, func(c *Config) {
		tunnelRule(c)
		allowLoopback(c)
	})
	host := strings.TrimPrefix(srv.URL, "http://")

	// 1. Absolute-form upgrade, frames by hand.
	key := base64.StdEncoding.EncodeToString([]byte("glovebox-ws-test!"))
	c := dialRaw(t, g.addr)
	io.WriteString(c, "GET "+srv.URL+"/echo HTTP/1.1\r\nHost: "+host+"\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"+
		"Sec-WebSocket-Key: "+key+"\r\nSec-WebSocket-Version: 13\r\nOrigin: "+srv.URL+"\r\n\r\n")
	resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) ||
		!strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		t.Fatalf("upgrade: %d %v", resp.StatusCode, resp.Header)
	}
	if v := via.Load().(string); v != "1.1 glovebox" {
		t.Errorf("the handshake reached the site with Via %q", v)
	}
	for _, msg := range []string{"hello", "through glovebox"} {
		c.Write(wsFrame(msg))
		hdr := make([]byte, 2)
		if _, err := io.ReadFull(c.br, hdr); err != nil {
			t.Fatalf("echo frame: %v", err)
		}
		payload := make([]byte, hdr[1]&0x7f)
		io.ReadFull(c.br, payload)
		if hdr[0] != 0x81 || string(payload) != msg {
			t.Errorf("echo: frame %x %q, want %q", hdr, payload, msg)
		}
	}

	// 2. Through a CONNECT tunnel, with x/net/websocket's client.
	tc := dialRaw(t, g.addr)
	if resp, _ := tc.do(t, "CONNECT", "CONNECT "+host+" HTTP/1.1\r\nHost: "+host+"\r\n\r\n"); resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %d", resp.StatusCode)
	}
	cfg, err := websocket.NewConfig("ws://"+host+"/echo", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := websocket.NewClient(cfg, tc.Conn)
	if err != nil {
		t.Fatalf("WebSocket handshake in the tunnel: %v", err)
	}
	if err := websocket.Message.Send(ws, "tunnelled"); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := websocket.Message.Receive(ws, &got); err != nil || got != "tunnelled" {
		t.Errorf("echo in the tunnel: %q %v", got, err)
	}
	ws.Close()

	// 3. An isolated site's WebSocket: 403, the site never hears of it.
	gi := startMITMProxy(t, nil)
	via.Store("untouched")
	resp, _ = exchange(t, gi.addr, "GET "+srv.URL+"/echo HTTP/1.1\r\nHost: "+host+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: "+key+"\r\nSec-WebSocket-Version: 13\r\nOrigin: "+srv.URL+"\r\n\r\n")
	if resp.StatusCode != 403 || via.Load().(string) != "untouched" {
		t.Errorf("isolated site's WebSocket: %d, site reached: %v", resp.StatusCode, via.Load() != "untouched")
	}
}

// TestSlowClientHeaders: a client that trickles its headers is cut off at
// client_header_timeout while others are served.
func TestSlowClientHeaders(t *testing.T) {
	o := newHeaderOrigin(t, "127.0.0.1:0")
	g := startMITMProxy(t, func(c *Config) {
		allowLoopback(c)
		c.ClientHeaderTimeout = time.Second
	})
	slow := dialRaw(t, g.addr)
	io.WriteString(slow, "GET "+o.URL+"/slow HTTP/1.1\r\nHost: x\r\n")
	start := time.Now()
	if resp, body := exchange(t, g.addr, "GET "+o.URL+"/fast HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 || body != "ok /fast" {
		t.Errorf("another client meanwhile: %d %q", resp.StatusCode, body)
	}
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			if _, err := io.WriteString(slow, fmt.Sprintf("X-Drip-%d: 1\r\n", i)); err != nil {
				done <- err
				return
			}
			time.Sleep(200 * time.Millisecond)
			if time.Since(start) > 10*time.Second {
				done <- nil
				return
			}
		}
	}()
	// EOF (or a reset, for the drip Glovebox never read) when it hangs up.
	_, err := io.ReadAll(slow.br)
	took := time.Since(start)
	slow.Close()
	<-done
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || took > 5*time.Second {
		t.Errorf("slow client cut off after %v (%v), want about client_header_timeout (1s)", took, err)
	}
}

// TestParentForInterceptedHTTPS: HTTPS that Glovebox intercepts and
// forwards goes to the site through a CONNECT tunnel of the parent, with
// Glovebox's credentials and Via, bounded by upstream_timeout.
func TestParentForInterceptedHTTPS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "secure "+r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	caFile := writeCertPEM(t, srv.Certificate())
	p := startRecordingParent(t, "gb", "pw")
	g := startMITMProxy(t, func(c *Config) {
		allowLoopback(c) // allowed, not no_inspect: intercepted
		c.TLS.ExtraCAFiles = []string{caFile}
		c.Upstream.Proxy = "http://gb:pw@" + p.addr
	})
	resp, err := g.client().Get(srv.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "secure /x" || resp.Header.Get("Via") != "1.1 glovebox" {
		t.Fatalf("HTTPS through Glovebox and the parent: %d %q Via %q", resp.StatusCode, body, resp.Header.Get("Via"))
	}
	host := strings.TrimPrefix(srv.URL, "https://")
	want := fmt.Sprintf("CONNECT %s auth=%q via=%q", host, "Basic "+base64.StdEncoding.EncodeToString([]byte("gb:pw")), "1.1 glovebox")
	if got := p.requests(); len(got) != 1 || got[0] != want {
		t.Errorf("parent saw %q, want %q", got, want)
	}

	// A parent that never answers the CONNECT: 504 after upstream_timeout.
	hang := hangingListener(t)
	gh := startMITMProxy(t, func(c *Config) {
		allowLoopback(c)
		c.TLS.ExtraCAFiles = []string{caFile}
		c.UpstreamTimeout = time.Second
		c.Upstream.Proxy = "http://" + hang
	})
	start := time.Now()
	resp, err = gh.client().Get(srv.URL + "/y")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if took := time.Since(start); resp.StatusCode != 504 || !strings.Contains(string(body), hang) || took > 5*time.Second {
		t.Errorf("hanging parent, HTTPS: %d after %v, want 504 naming %s within about 1s:\n%s", resp.StatusCode, took, hang, body)
	}
}
