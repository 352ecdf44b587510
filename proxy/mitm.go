package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/glovebox/glovebox/proxy/audit"
	"github.com/glovebox/glovebox/proxy/internal/httpx"
	"github.com/glovebox/glovebox/proxy/policy"
	"github.com/glovebox/glovebox/proxy/tlsca"
)

// HTTPS interception. A CONNECT to a host policy isolates or blocks, or
// allows without no_inspect, is answered with Glovebox's own certificate for
// that host, and goproxy serves the requests inside the TLS connection on
// the hijacked connection: through the same request handlers as plain HTTP
// (the /.glovebox/ API, policy, landing and block pages), but not through
// Server.ServeHTTP, so their audit events are written here, one per request,
// when the response body is done. The CONNECT itself has its own event
// (status 200, 0 bytes) when the tunnel is set up.

// mitmHandshakeTimeout bounds a client's TLS handshake once its ClientHello came.
const mitmHandshakeTimeout = 30 * time.Second

// mitm holds what interception needs: the CA, the certificates it issued,
// and the roots sites' certificates are verified against.
type mitm struct {
	ca    *tlsca.CA
	cache *tlsca.Cache
	// roots are the system's roots and tls.extra_ca_files.
	roots *x509.CertPool
	// rulePools add an allow rule's ca_file to roots, by file path.
	rulePools map[string]*x509.CertPool
	idle      time.Duration

	mu             sync.Mutex
	ruleTransports map[string]*http.Transport
}

func newMITM(cfg Config, log *slog.Logger) (*mitm, error) {
	ca, err := tlsca.Load(cfg.TLS, log)
	if err != nil {
		return nil, err
	}
	sys, err := x509.SystemCertPool()
	if err != nil {
		log.Warn("no system certificate roots: only tls.extra_ca_files and rules' ca_file are trusted", "err", err)
		sys = x509.NewCertPool()
	}
	roots := sys.Clone()
	for i, f := range cfg.TLS.ExtraCAFiles {
		if err := tlsca.AppendCAFile(roots, f); err != nil {
			return nil, fmt.Errorf("tls.extra_ca_files[%d]: %w", i, err)
		}
	}
	m := &mitm{ca: ca, cache: tlsca.NewCache(cfg.TLS.CertCacheSize), roots: roots,
		rulePools: map[string]*x509.CertPool{}, ruleTransports: map[string]*http.Transport{},
		idle: cfg.ClientIdleTimeout}
	for i, r := range cfg.Policy.Rules {
		if r.CAFile == "" || m.rulePools[r.CAFile] != nil {
			continue
		}
		pool := roots.Clone()
		if err := tlsca.AppendCAFile(pool, r.CAFile); err != nil {
			return nil, fmt.Errorf("%w: policy.rules[%d] (%s): ca_file: %w", policy.ErrPolicy, i, ruleName(r, i), err)
		}
		m.rulePools[r.CAFile] = pool
	}
	return m, nil
}

func ruleName(r policy.Rule, i int) string {
	if r.Name != "" {
		return r.Name
	}
	return fmt.Sprintf("rule %d", i+1)
}

// configure makes goproxy's transport verify sites against the roots and
// gives goproxy the certificate cache.
func (m *mitm) configure(gp *goproxy.ProxyHttpServer) {
	tc := &tls.Config{}
	if gp.Tr.TLSClientConfig != nil {
		tc = gp.Tr.TLSClientConfig.Clone()
	}
	tc.RootCAs = m.roots
	tc.InsecureSkipVerify = false
	tc.MinVersion = tls.VersionTLS12
	gp.Tr.TLSClientConfig = tc
	gp.CertStore = m.cache
}

// transportFor is the transport for an allowed request: base, or for a
// rule with a ca_file a copy of base that also trusts that file. Copies are
// made on first use, so they have whatever base was given by then.
func (m *mitm) transportFor(base *http.Transport, d policy.Decision) *http.Transport {
	pool := m.rulePools[d.CAFile]
	if d.CAFile == "" || pool == nil {
		return base
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if tr, ok := m.ruleTransports[d.CAFile]; ok {
		return tr
	}
	tr := base.Clone()
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tr.TLSClientConfig.RootCAs = pool
	m.ruleTransports[d.CAFile] = tr
	return tr
}

// intercept answers a CONNECT by TLS interception.
func (s *Server) intercept(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
	c := &interceptedConn{s: s, connInfo: reqInfoOf(ctx.Req)}
	c.connInfo.intercepted = c // the hijack wraps the connection for it
	// goproxy hands the CONNECT's RoundTripper to each request inside the
	// tunnel: that is how they find their connection.
	ctx.RoundTripper = c
	return &goproxy.ConnectAction{Action: goproxy.ConnectMitm, TLSConfig: c.tlsConfig}, host
}

// interceptedConn is one intercepted client connection. It is the
// goproxy.RoundTripper of the requests inside it.
type interceptedConn struct {
	s        *Server
	connInfo *reqInfo // the CONNECT's: who asked

	// tunnel is the hijacked connection, bounded. It is set at the hijack,
	// before goproxy starts the goroutine that reads the requests inside.
	tunnel *tunnelConn
}

// tlsConfig is the server side of the client's TLS: a certificate for the
// CONNECT's host, issued by Glovebox's CA.
func (c *interceptedConn) tlsConfig(host string, _ *goproxy.ProxyCtx) (*tls.Config, error) {
	name := policy.NormHost(host)
	cert, err := c.s.mitm.cache.Fetch(name, func() (*tls.Certificate, error) { return c.s.mitm.ca.Issue(name) })
	if err != nil {
		c.s.log.Warn("issue a certificate for interception", "host", name, "err", err)
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{*cert},
		// goproxy clears the connection's deadlines when it takes it over;
		// these bound the handshake and, later, the idle time between requests.
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			hello.Conn.SetDeadline(time.Now().Add(mitmHandshakeTimeout))
			return nil, nil
		},
		VerifyConnection: func(tls.ConnectionState) error {
			c.setIdle()
			return nil
		},
	}, nil
}

// setIdle lets the client connection wait for its next request as long as
// client_idle_timeout; busy clears that while a request is served.
func (c *interceptedConn) setIdle() {
	if c.tunnel != nil {
		c.tunnel.await(c.s.mitm.idle)
	}
}

func (c *interceptedConn) busy() {
	if c.tunnel != nil {
		c.tunnel.serving()
	}
}

// hijacked wraps the CONNECT's connection as goproxy takes it over: from
// now on only client_header_timeout separates the 200 from the client's
// first bytes, and header bytes are bounded as they are outside a tunnel.
func (c *interceptedConn) hijacked(conn net.Conn) net.Conn {
	c.tunnel = newTunnelConn(conn, c.s.cfg.Limits.MaxHeaderBytes, c.s.cfg.ClientHeaderTimeout)
	return c.tunnel
}

// RoundTrip sends an allowed request to its site over TLS verified against
// the roots. An error becomes an error page: goproxy would drop the
// connection without a word.
func (c *interceptedConn) RoundTrip(req *http.Request, ctx *goproxy.ProxyCtx) (*http.Response, error) {
	info := reqInfoOf(req)
	resp, err := c.s.mitm.transportFor(c.s.gp.Tr, info.decision).RoundTrip(req)
	if err != nil {
		info.err = err
		if _, cert := certProblem(err, ""); !cert {
			// Timeouts and parent proxy failures get the page a plain
			// request gets.
			ctx.Error = err
			if page := c.s.checkUpstream(nil, ctx); page != nil {
				return page, nil
			}
		}
		return upstreamErrorPage(req, err), nil
	}
	// Wrapped here rather than in the response handler so that goproxy
	// sees the body it got and keeps the site's Content-Length. A 101's
	// body is the WebSocket itself.
	if ir := interceptedOf(req); ir != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body = ir.wrap(resp.Body)
	}
	return resp, nil
}

// interceptedReq is one request inside an intercepted connection, from
// its first handler to the end of its response.
type interceptedReq struct {
	s      *Server
	c      *interceptedConn
	req    *http.Request
	info   *reqInfo
	start  time.Time
	status int
	body   *auditBody
	once   sync.Once
}

type interceptedKey struct{}

func interceptedOf(r *http.Request) *interceptedReq {
	ir, _ := r.Context().Value(interceptedKey{}).(*interceptedReq)
	return ir
}

// beginIntercepted is the first request handler: it gives a request from
// inside an intercepted connection what ServeHTTP gives a plain one.
func (s *Server) beginIntercepted(r *http.Request, ctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
	c, ok := ctx.RoundTripper.(*interceptedConn)
	if !ok {
		return r, nil
	}
	c.busy()
	// Who the client is carries over from the CONNECT (auth also finds it
	// in ctx.UserData); what is decided about this request starts afresh.
	info := &reqInfo{user: c.connInfo.user, id: newRequestID(), start: time.Now()}
	ir := &interceptedReq{s: s, c: c, info: info, start: info.start}
	r = r.WithContext(context.WithValue(context.WithValue(r.Context(), reqInfoKey{}, ir.info), interceptedKey{}, ir))
	ir.req = r
	// goproxy reads ctx.Req for the response handlers.
	ctx.Req = r
	// The limits a plain request gets from the HTTP server and refuse.
	lim := s.cfg.Limits
	if n := headerBytes(r); n > lim.MaxHeaderBytes {
		return r, s.tooLarge(r, info, ruleHeaderSize, fmt.Sprintf("the request's headers are %d bytes; at most %d are allowed", n, lim.MaxHeaderBytes))
	}
	if n := headerCount(r.Header); lim.MaxHeaderCount > 0 && n > lim.MaxHeaderCount {
		return r, s.tooLarge(r, info, ruleHeaderCount, fmt.Sprintf("the request has %d header fields; at most %d are allowed", n, lim.MaxHeaderCount))
	}
	return r, nil
}

// tooLarge answers 431 for a request inside a tunnel, and closes the connection.
func (s *Server) tooLarge(r *http.Request, info *reqInfo, rule, msg string) *http.Response {
	info.decision = policy.Decision{Action: policy.ActionRefuse, Rule: rule}
	info.err = fmt.Errorf("refused: %s", msg)
	resp := httpx.Response(r, http.StatusRequestHeaderFieldsTooLarge, "text/plain; charset=utf-8", []byte("Glovebox: "+msg+"\n"))
	resp.Close = true
	return resp
}

// endIntercepted is the last response handler: the audit event is written
// when goproxy has sent the body and closes it.
func (s *Server) endIntercepted(resp *http.Response, ctx *goproxy.ProxyCtx) *http.Response {
	if ctx.Req == nil || resp == nil {
		return resp
	}
	ir := interceptedOf(ctx.Req)
	if ir == nil {
		return resp
	}
	ir.status = resp.StatusCode
	switch {
	case resp.StatusCode == http.StatusSwitchingProtocols || resp.Body == nil:
		ir.finish(0)
	case ir.body == nil || resp.Body != io.ReadCloser(ir.body):
		resp.Body = ir.wrap(resp.Body)
	}
	return resp
}

func (ir *interceptedReq) wrap(rc io.ReadCloser) io.ReadCloser {
	ir.body = &auditBody{ReadCloser: rc, ir: ir}
	return ir.body
}

// finish writes the request's audit event, once.
func (ir *interceptedReq) finish(n int64) {
	ir.once.Do(func() {
		if ir.status != http.StatusSwitchingProtocols {
			ir.c.setIdle()
		}
		if ir.info.own {
			return // the /.glovebox/ API, as in ServeHTTP
		}
		ir.s.auditRequest(requestEvent(ir.req, ir.info, ir.status, n, time.Since(ir.start)), ir.info)
	})
}

// auditBody counts the bytes of a response body and finishes its request
// when it is closed.
type auditBody struct {
	io.ReadCloser
	ir *interceptedReq
	n  int64
}

func (b *auditBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

func (b *auditBody) Close() error {
	err := b.ReadCloser.Close()
	b.ir.finish(b.n)
	return err
}

// requestEvent is the audit event of one proxied request.
func requestEvent(r *http.Request, info *reqInfo, status int, n int64, d time.Duration) audit.RequestEvent {
	e := audit.RequestEvent{RequestID: info.id, Time: info.start, ClientIP: httpx.ClientIP(r), User: info.user, Method: r.Method, URL: audit.RequestURL(r), Host: r.URL.Hostname(),
		Action: info.decision.Action, Rule: info.decision.Rule, Status: status, Bytes: n, Duration: d}
	if info.err != nil {
		e.Error = info.err.Error()
	}
	return e
}

// upstreamErrorPage says why an allowed site could not be reached; for a
// certificate that could not be verified, it says so and why. Nothing was
// sent to the site.
func upstreamErrorPage(r *http.Request, err error) *http.Response {
	host := r.URL.Host
	if err == nil {
		err = errors.New("no response")
	}
	if errors.Is(err, ErrLocalDestination) {
		return localDestPage(r, err)
	}
	if reason, ok := certProblem(err, r.URL.Hostname()); ok {
		return errorPage(r, http.StatusBadGateway, "The site's certificate could not be verified",
			"Glovebox did not connect to "+host+" because its certificate could not be verified: "+reason+
				". Someone may be impersonating the site, or it is misconfigured. ("+err.Error()+")")
	}
	return errorPage(r, http.StatusBadGateway, "The site could not be reached",
		"Glovebox could not get a response from "+host+": "+err.Error())
}

// certProblem explains a certificate verification error in words.
func certProblem(err error, host string) (string, bool) {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &unknown):
		if unknown.Cert != nil && unknown.Cert.Issuer.String() == unknown.Cert.Subject.String() {
			return "it is self-signed, and Glovebox does not trust it", true
		}
		return "it is issued by an authority Glovebox does not trust", true
	case errors.As(err, &hostname):
		names := "no names"
		if hostname.Certificate != nil {
			names = strings.Join(append(hostname.Certificate.DNSNames, ipStrings(hostname.Certificate.IPAddresses)...), ", ")
		}
		return "it is for " + names + ", not for " + host, true
	case errors.As(err, &invalid):
		switch invalid.Reason {
		case x509.Expired:
			return "it has expired or is not valid yet", true
		case x509.NotAuthorizedToSign:
			return "it is signed by a certificate that is not a CA", true
		case x509.IncompatibleUsage:
			return "it is not for use by a web server", true
		}
		return "it is invalid", true
	case errors.As(err, &verify):
		return "it failed verification", true
	}
	return "", false
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

// headerSlack is what a tunnel may read past limits.max_header_bytes
// before a request's headers are complete: TLS record overhead and the
// parser's read-ahead. The exact limit is checked on the parsed request.
const headerSlack = 64 << 10

// errTunnelHeaders ends an intercepted connection whose client sends more
// header bytes than the limit allows: goproxy reads requests inside the
// tunnel with no bound of its own.
var errTunnelHeaders = errors.New("request headers inside the tunnel exceed limits.max_header_bytes")

// tunnelConn is the client's connection of an intercepted CONNECT, as
// goproxy gets it at hijack time. It bounds what is read while a request's
// headers are awaited (from the CONNECT until the first request is parsed,
// and between requests), so that inside the tunnel the header limits hold
// as they do for plain requests; the deadline set at the CONNECT bounds a
// client that says nothing after the 200.
type tunnelConn struct {
	net.Conn

	mu       sync.Mutex
	awaiting bool  // a request's headers are being read
	budget   int64 // bytes that may still be read while awaiting
	limit    int64
}

func newTunnelConn(c net.Conn, maxHeader int, timeout time.Duration) *tunnelConn {
	t := &tunnelConn{Conn: c, limit: int64(maxHeader) + headerSlack}
	t.await(timeout)
	c.SetWriteDeadline(time.Now().Add(timeout))
	return t
}

// await starts the wait, of at most idle, for a request's headers.
func (t *tunnelConn) await(idle time.Duration) {
	t.mu.Lock()
	t.awaiting, t.budget = true, t.limit
	t.mu.Unlock()
	t.SetWriteDeadline(time.Time{})
	t.SetReadDeadline(time.Now().Add(idle))
}

// serving marks the request's headers as read: its body is not bounded
// here, nor is the time it takes to serve.
func (t *tunnelConn) serving() {
	t.mu.Lock()
	t.awaiting = false
	t.mu.Unlock()
	t.SetDeadline(time.Time{})
}

func (t *tunnelConn) Read(p []byte) (int, error) {
	t.mu.Lock()
	if t.awaiting {
		if t.budget <= 0 {
			t.mu.Unlock()
			return 0, errTunnelHeaders
		}
		if int64(len(p)) > t.budget {
			p = p[:t.budget]
		}
	}
	t.mu.Unlock()
	n, err := t.Conn.Read(p)
	t.mu.Lock()
	if t.awaiting {
		t.budget -= int64(n)
	}
	t.mu.Unlock()
	return n, err
}

// headerBytes is about the size of r's request line and header fields as
// sent: what limits.max_header_bytes bounds.
func headerBytes(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n + len(r.Host)
}
