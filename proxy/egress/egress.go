// Package egress is the proxy every request of the isolated browsers goes
// through: it knows each container's tab by its source address, applies
// policy, refuses internal, metadata and denied destinations (resolving
// each name once and dialling the address it checked), forwards direct or
// through the parent, and writes an egress_request event for each request.
// It imports no Glovebox package but proxy's policy, audit, upstream and
// internal ones.
package egress

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/glovebox/glovebox/proxy/audit"
	"github.com/glovebox/glovebox/proxy/internal/httpx"
	"github.com/glovebox/glovebox/proxy/internal/netcheck"
	"github.com/glovebox/glovebox/proxy/policy"
	"github.com/glovebox/glovebox/proxy/upstream"
)

// Config configures the egress proxy, the only thing the isolated
// browsers' containers can reach.
type Config struct {
	// Port is the egress proxy's port. It listens on all addresses; the
	// firewall lets only the containers reach it.
	Port int `mapstructure:"port"`
	// AllowInternal lists the host or host:port names (as written in the URL,
	// case-insensitive) the isolated browsers may reach even though they
	// resolve to internal addresses, e.g. "wiki.corp.example",
	// "10.1.2.3:8080", "127.0.0.1:8080". A name without a port allows every
	// port. Everything else that resolves to a loopback, private, link-local
	// (cloud metadata), CGNAT, multicast or otherwise reserved address is
	// refused. Deny and the cloud metadata addresses win over it.
	AllowInternal []string `mapstructure:"allow_internal"`
	// Deny lists address blocks (CIDR prefixes, or single addresses) the
	// isolated browsers may never reach, even through a name allow_internal
	// names: deny is checked first, as Squid's http_access deny lines before
	// the allow ones. The cloud metadata addresses (169.254.169.254,
	// fd00:ec2::254, Azure's 168.63.129.16 and others) are always on it.
	Deny []string `mapstructure:"deny"`
	// Upstream is a parent proxy, http://[user:pass@]host:port, for all
	// egress; empty means direct ("" in the configuration file inherits
	// upstream.proxy and "direct" means direct: the wiring resolves both,
	// see WithParent). Glovebox resolves and checks every name itself,
	// refuses internal destinations, and gives the upstream only the
	// address it checked: CONNECT 93.184.215.14:443 for a tunnel, and a
	// plain http:// request too goes through a CONNECT to the address, with
	// the name in the Host header inside. The upstream never sees the name,
	// so it cannot resolve it again to somewhere else (DNS rebinding); it
	// must allow CONNECT to port 80 (and to any other port the sites use).
	Upstream string `mapstructure:"upstream"`
	// Direct lists the destinations that bypass Upstream (upstream.direct,
	// set by the wiring).
	Direct []string `mapstructure:"-"`
	// AuthHeader is the header in which a trusted downstream proxy names
	// the user (auth.header, set by the wiring; "" is its default,
	// X-Authenticated-User). The egress removes it from every request, so
	// an isolated page cannot pass itself off as a user to an internal app
	// that trusts it.
	AuthHeader string `mapstructure:"-"`
	// DialTimeout bounds resolving a name and connecting to a site (or the upstream).
	DialTimeout time.Duration `mapstructure:"dial_timeout"`
}

// DefaultConfig returns the defaults documented in config.yaml.
func DefaultConfig() Config {
	return Config{Port: 3129, DialTimeout: 15 * time.Second}
}

// Validate reports every bad value, each naming its key. It has no side
// effects.
func (c *Config) Validate() error {
	var errs []error
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("egress.port: %d: want 1–65535", c.Port))
	}
	for i, s := range c.AllowInternal {
		if _, err := netcheck.ParseAllow(s); err != nil {
			errs = append(errs, fmt.Errorf("egress.allow_internal[%d]: %w", i, err))
		}
	}
	if _, err := netcheck.NewDenylist(c.Deny); err != nil {
		errs = append(errs, err)
	}
	if _, _, err := upstream.Parse(egressParent(c.Upstream)); err != nil {
		errs = append(errs, fmt.Errorf("egress.upstream: %w", err))
	}
	if c.DialTimeout <= 0 {
		errs = append(errs, fmt.Errorf("egress.dial_timeout: must be positive"))
	}
	return errors.Join(errs...)
}

// defaultAuthHeader is auth.header's default, stripped when the wiring
// names none.
const defaultAuthHeader = "X-Authenticated-User"

// TabLookup maps the source address of a connection to the tab (and user)
// whose browser made it; ok=false for unknown sources, which are refused.
type TabLookup func(srcIP string) (tab, user string, ok bool)

// ErrInternalAddress is wrapped by the refusal of a destination that
// resolves to an internal address.
var ErrInternalAddress = errors.New("internal address")

// Rule names the audit records for the egress proxy's own refusals.
const (
	ruleUnknownSource = "unknown source"
	ruleBadRequest    = "bad request"
	ruleInternal      = "internal address"
)

const (
	// egressResponseHeaderTimeout bounds waiting for a site's response
	// headers once the request is sent; long polls answer well within it.
	egressResponseHeaderTimeout = time.Minute
	// egressShutdownGrace is how long Serve lets plain requests finish;
	// tunnels are closed after it.
	egressShutdownGrace = 5 * time.Second
)

// Egress is the forward proxy every request of the isolated browsers goes
// through. It refuses sources that are not tabs, applies policy, refuses
// internal destinations, and dials only the addresses it checked, so a name
// that resolves differently a moment later (DNS rebinding) cannot redirect
// the connection. It is an http.Handler.
type Egress struct {
	cfg    Config
	policy *policy.Policy
	lookup TabLookup
	audit  *audit.Audit
	log    *slog.Logger
	allow  map[netcheck.AllowKey]bool
	deny   netcheck.Denylist
	// authHeader is removed from every request (EgressConfig.AuthHeader).
	authHeader string
	// Warm, when set (before Serve), says whether a source that is no tab
	// is a warm browser of the pool: its requests, which no user caused,
	// are counted and not audited. Any other unknown source is audited.
	Warm func(srcIP string) bool

	route *upstream.Route // the upstream, its Proxy-Authorization and upstream.direct

	gp *goproxy.ProxyHttpServer
	tr *http.Transport

	// resolve, dial and host.list are the seams tests replace: every name
	// is resolved through resolve exactly once per request, and every
	// connection is made through dial.
	resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	host    *netcheck.HostAddrs

	mu      sync.Mutex
	closing bool
	tunnels sync.WaitGroup
}

// New builds the egress proxy. lookup tells which tab a container's
// address belongs to.
func New(cfg Config, pol *policy.Policy, lookup TabLookup, aud *audit.Audit, log *slog.Logger) (*Egress, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if pol == nil || lookup == nil {
		return nil, errors.New("new egress: policy and tab lookup are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "egress")
	e := &Egress{cfg: cfg, policy: pol, lookup: lookup, audit: aud, log: log, allow: map[netcheck.AllowKey]bool{},
		authHeader: cmp.Or(cfg.AuthHeader, defaultAuthHeader),
		host:       &netcheck.HostAddrs{List: net.InterfaceAddrs},
		resolve: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		},
	}
	dialer := &net.Dialer{KeepAlive: 30 * time.Second} // timeouts come from the context
	e.dial = dialer.DialContext
	for _, s := range cfg.AllowInternal {
		k, _ := netcheck.ParseAllow(s) // validated above
		e.allow[k] = true
	}
	var err error
	if e.deny, err = netcheck.NewDenylist(cfg.Deny); err != nil {
		return nil, err
	}
	if e.route, err = upstream.NewRoute(egressParent(cfg.Upstream), cfg.Direct); err != nil {
		return nil, err
	}

	// goproxy's default transport skips TLS verification and reads proxy
	// settings from the environment: neither is acceptable here. It has no
	// Proxy: a request for the upstream goes through a tunnel its dial
	// opens (dialForTransport), as the upstream must not see the name.
	e.tr = &http.Transport{
		DialContext:            e.dialForTransport,
		TLSHandshakeTimeout:    cfg.DialTimeout,
		ResponseHeaderTimeout:  egressResponseHeaderTimeout,
		MaxResponseHeaderBytes: 1 << 20,
		IdleConnTimeout:        90 * time.Second,
		MaxIdleConnsPerHost:    16,
		ExpectContinueTimeout:  time.Second,
		// The browser's own Accept-Encoding goes through untouched and
		// bodies are relayed as they come.
		DisableCompression: true,
	}

	gp := goproxy.NewProxyHttpServer()
	gp.Logger = httpx.GoproxyLogger{L: log}
	gp.Tr = e.tr
	gp.ConnectDial = nil // CONNECT is served by tunnel, never by goproxy
	gp.KeepAcceptEncoding = true
	gp.NonproxyHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		egressError(w, http.StatusBadRequest, "this is Glovebox's egress proxy; send proxy requests")
	})
	gp.OnResponse().DoFunc(func(resp *http.Response, ctx *goproxy.ProxyCtx) *http.Response {
		if resp != nil {
			return resp
		}
		st := egressStateOf(ctx.Req.Context())
		if st != nil {
			st.setErr(ctx.Error)
		}
		return httpx.Response(ctx.Req, http.StatusBadGateway, "text/plain; charset=utf-8",
			[]byte("Glovebox egress: could not reach "+ctx.Req.URL.Host+"\n"))
	})
	e.gp = gp
	return e, nil
}

// egressState is what ServeHTTP learned about one request, for the dialer and the audit event.
type egressState struct {
	addrs  []netip.Addr // every one checked; dialled in order
	port   uint16
	parent *url.URL // the upstream it goes through; nil: direct

	mu     sync.Mutex
	destIP string
	err    error
}

func (s *egressState) setDest(a net.Addr) {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return
	}
	s.mu.Lock()
	s.destIP = ap.Addr().Unmap().String()
	s.mu.Unlock()
}

func (s *egressState) setErr(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

func (s *egressState) result() (destIP string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.destIP, s.err
}

type egressStateKey struct{}

func egressStateOf(ctx context.Context) *egressState {
	st, _ := ctx.Value(egressStateKey{}).(*egressState)
	return st
}

// ServeHTTP serves one request of an isolated browser and writes its audit event.
func (e *Egress) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ev := audit.EgressEvent{ClientIP: httpx.ClientIP(r), Method: r.Method, URL: audit.RequestURL(r), Host: policy.NormHost(r.URL.Host)}
	defer func() {
		ev.Duration = time.Since(start)
		if ev.Tab == "" && e.Warm != nil && e.Warm(ev.ClientIP) {
			// No user caused it: counted, not audited (quiet logs).
			e.audit.Untabbed(ev)
			e.log.Debug("refused a request of no tab", "client_ip", ev.ClientIP, "method", ev.Method, "host", ev.Host, "rule", ev.Rule)
			return
		}
		e.audit.Egress(ev)
	}()
	refuse := func(status int, rule, msg string, err error) {
		ev.Action, ev.Rule, ev.Status = policy.ActionRefuse, rule, status
		if err != nil {
			ev.Error = err.Error()
		}
		egressError(w, status, msg)
	}

	// The source first: nothing is proxied for an address that is not a tab.
	tab, user, ok := e.lookup(ev.ClientIP)
	if !ok {
		refuse(http.StatusForbidden, ruleUnknownSource, "this address is not an isolated tab", nil)
		return
	}
	ev.Tab, ev.User = tab, user

	host, port, err := egressTarget(r)
	if err != nil {
		refuse(http.StatusBadRequest, ruleBadRequest, err.Error(), err)
		return
	}

	d := e.policy.DecideRequest(r, user)
	ev.Action, ev.Rule = d.Action, d.Rule
	if d.Action == policy.ActionBlock {
		ev.Status = http.StatusForbidden
		egressError(w, http.StatusForbidden, "blocked by policy rule "+d.Rule+": "+ev.URL)
		return
	}

	addrs, err := e.vet(r.Context(), host, port)
	switch {
	case errors.Is(err, ErrInternalAddress):
		refuse(http.StatusForbidden, ruleInternal, "refused: "+host+" is or resolves to an internal address", err)
		return
	case err != nil:
		ev.Status, ev.Error = http.StatusBadGateway, err.Error()
		egressError(w, http.StatusBadGateway, "could not resolve "+host)
		return
	}

	st := &egressState{addrs: addrs, port: port, parent: e.route.ParentFor(host)}
	r = r.WithContext(context.WithValue(r.Context(), egressStateKey{}, st))
	if r.Method == http.MethodConnect {
		ev.Status, ev.Bytes = e.tunnel(w, r, st)
	} else {
		ev.Status, ev.Bytes = e.forward(w, r, st)
	}
	destIP, err := st.result()
	if st.parent == nil {
		ev.DestIP = destIP
	}
	if err != nil {
		ev.Error = err.Error()
	}
}

// egressTarget checks that r is a proxy request and returns the host it is
// for and its port. An address comes back in its canonical form, whatever
// form the request wrote it in (127.1, 0x7f.0.0.1, [::FFFF:7f00:1]), so
// that allow_internal, upstream.direct and the checks see the address a
// browser would go to; a name must be a DNS name, and one whose last label
// is a number must be an IPv4 address: browsers read it as one.
func egressTarget(r *http.Request) (host string, port uint16, err error) {
	u := r.URL
	if r.Method == http.MethodConnect {
		if u.Host == "" || u.Path != "" {
			return "", 0, errors.New("CONNECT wants host:port")
		}
	} else if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", 0, errors.New("want an absolute http:// or https:// URL")
	}
	host = u.Hostname()
	if host == "" {
		return "", 0, errors.New("no host in " + strconv.Quote(u.Host))
	}
	p := u.Port()
	switch {
	case p != "":
	case r.Method == http.MethodConnect:
		return "", 0, errors.New("CONNECT wants host:port")
	case u.Scheme == "https":
		p = "443"
	default:
		p = "80"
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return "", 0, errors.New("bad port " + strconv.Quote(p))
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.String(), uint16(n), nil
	}
	if netcheck.EndsInNumber(host) {
		a, ok := policy.ParseLegacyIPv4(strings.TrimSuffix(host, "."))
		if !ok {
			return "", 0, errors.New("bad IPv4 address " + strconv.Quote(host))
		}
		return a.String(), uint16(n), nil
	}
	if !netcheck.ValidHostname(strings.TrimSuffix(host, ".")) {
		return "", 0, errors.New("bad host name " + strconv.Quote(host))
	}
	return host, uint16(n), nil
}

// vet resolves host once and checks every address it resolves to: against
// egress.deny and the cloud metadata addresses, then the internal ranges
// and this host's own addresses. Names in allow_internal skip the second
// check, never the first, and are still resolved here so that what is
// dialled is what was resolved.
func (e *Egress) vet(ctx context.Context, host string, port uint16) ([]netip.Addr, error) {
	name := netcheck.CanonHost(host)
	allowed := e.allow[netcheck.AllowKey{Host: name}] || e.allow[netcheck.AllowKey{Host: name, Port: strconv.Itoa(int(port))}]
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		if !allowed && (name == "localhost" || strings.HasSuffix(name, ".localhost")) {
			return nil, fmt.Errorf("%w: %s is a loopback name", ErrInternalAddress, host) // RFC 6761
		}
		rctx, cancel := context.WithTimeout(ctx, e.cfg.DialTimeout)
		defer cancel()
		if addrs, err = netcheck.Resolve(rctx, host, e.resolve); err != nil {
			return nil, err
		}
	}
	for i, a := range addrs {
		if why := e.deny.Reason(a); why != "" {
			return nil, fmt.Errorf("%w: %s resolves to %s, %s", ErrInternalAddress, host, a, why)
		}
		why := netcheck.InternalReason(a)
		if why == "" && e.host.Contains(a) {
			why = "an address of this host"
		}
		if why != "" && !allowed {
			return nil, fmt.Errorf("%w: %s resolves to %s, %s", ErrInternalAddress, host, a, why)
		}
		if a.Zone() == "" {
			addrs[i] = a.Unmap()
		}
	}
	return addrs, nil
}

// dialVetted connects to the first of the checked addresses that answers,
// splitting the dial timeout among them. It never resolves anything. With
// an upstream it opens a tunnel through it to the address, CONNECT
// 93.184.215.14:443 or [2606:4700::1]:80, never to the name, which the
// upstream would resolve again.
func (e *Egress) dialVetted(ctx context.Context, st *egressState) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.DialTimeout)
	defer cancel()
	return netcheck.DialEach(ctx, st.addrs, st.port, func(ctx context.Context, target string) (net.Conn, error) {
		if st.parent != nil {
			return upstream.DialParent(ctx, e.dial, st.parent, e.route.Auth, target, nil)
		}
		return e.dial(ctx, "tcp", target)
	})
}

// dialForTransport is the HTTP transport's only way out: to the addresses
// ServeHTTP checked for this request, direct or through a tunnel of the
// upstream (the transport then sends the request in origin form, its Host
// header naming the site, inside the tunnel). A dial the transport starts
// for one request may serve another request for the same host:port, whose
// addresses were checked too.
func (e *Egress) dialForTransport(ctx context.Context, _, addr string) (net.Conn, error) {
	st := egressStateOf(ctx)
	if st == nil {
		return nil, fmt.Errorf("dial %s: no checked address", addr)
	}
	return e.dialVetted(ctx, st)
}

// forward relays one plain HTTP request through goproxy and the transport.
func (e *Egress) forward(w http.ResponseWriter, r *http.Request, st *egressState) (status int, n int64) {
	trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) { st.setDest(ci.Conn.RemoteAddr()) }}
	r = r.WithContext(httptrace.WithClientTrace(r.Context(), trace))
	// The URL names the destination; a different Host header must not steer
	// a virtual host elsewhere.
	r.Host = ""
	// As the front proxy does (cleanRequest); goproxy removes only
	// Connection itself and the Proxy- headers. The user header is the
	// front proxy's to set: an internal app behind the egress that trusts
	// it must not get one a page wrote.
	httpx.RemoveHopByHop(r.Header, httpx.IsWebSocket(r.Header))
	r.Header.Del(e.authHeader)
	cw := &httpx.CountingWriter{ResponseWriter: w}
	e.gp.ServeHTTP(cw, r) // strips Proxy-Authorization and Proxy-Connection
	return cw.Status, cw.N
}

// tunnel serves a CONNECT: it dials the checked address (or the upstream),
// then relays bytes both ways until either side is done, and returns when
// the tunnel is closed. goproxy's CONNECT handling is not used because its
// tunnels outlive the handler (no byte count or duration for the audit
// event, nothing to close at shutdown) and its upstream CONNECT has no
// deadline for the upstream's reply.
func (e *Egress) tunnel(w http.ResponseWriter, r *http.Request, st *egressState) (status int, n int64) {
	if !e.track() {
		w.Header().Set("Connection", "close")
		egressError(w, http.StatusServiceUnavailable, "shutting down")
		return http.StatusServiceUnavailable, 0
	}
	defer e.tunnels.Done()

	dest, err := e.dialVetted(r.Context(), st)
	if err == nil && st.parent == nil {
		st.setDest(dest.RemoteAddr())
	}
	if err != nil {
		st.setErr(err)
		w.Header().Set("Connection", "close")
		egressError(w, http.StatusBadGateway, "could not reach "+r.URL.Host)
		return http.StatusBadGateway, 0
	}
	defer dest.Close()

	hj, ok := w.(http.Hijacker)
	if !ok {
		st.setErr(errors.New("connection cannot be hijacked"))
		egressError(w, http.StatusInternalServerError, "cannot tunnel on this connection")
		return http.StatusInternalServerError, 0
	}
	client, brw, err := hj.Hijack()
	if err != nil {
		st.setErr(fmt.Errorf("hijack: %w", err))
		return http.StatusInternalServerError, 0
	}
	defer client.Close()
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		st.setErr(fmt.Errorf("write CONNECT reply: %w", err))
		return http.StatusOK, 0
	}
	// Bytes the client sent right behind the CONNECT (a TLS ClientHello)
	// may sit in the server's buffer already.
	var from io.Reader = client
	if buffered, _ := brw.Reader.Peek(brw.Reader.Buffered()); len(buffered) > 0 {
		from = io.MultiReader(bytes.NewReader(bytes.Clone(buffered)), client)
	}

	// Shutdown (Serve's base context) closes both ends.
	stop := context.AfterFunc(r.Context(), func() { client.Close(); dest.Close() })
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := io.Copy(dest, from); err != nil {
			dest.Close()
			client.Close()
			return
		}
		httpx.CloseWrite(dest)
	}()
	n, err = io.Copy(client, dest)
	if err != nil {
		client.Close()
		dest.Close()
	} else {
		httpx.CloseWrite(client)
	}
	<-done
	return http.StatusOK, n
}

// track counts a tunnel unless Serve is shutting down.
func (e *Egress) track() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return false
	}
	e.tunnels.Add(1)
	return true
}

// Serve accepts the isolated browsers' connections on ln until ctx is done,
// then lets plain requests finish for a few seconds and closes every tunnel.
// Call it once.
func (e *Egress) Serve(ctx context.Context, ln net.Listener) error {
	base, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	hs := &http.Server{
		Handler:           e,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	var err error
	select {
	case err = <-errc:
		err = fmt.Errorf("serve egress: %w", err)
	case <-ctx.Done():
		sctx, scancel := context.WithTimeout(base, egressShutdownGrace)
		if serr := hs.Shutdown(sctx); serr != nil && !errors.Is(serr, context.DeadlineExceeded) {
			err = fmt.Errorf("shut down egress: %w", serr)
		}
		scancel()
	}
	e.mu.Lock()
	e.closing = true
	e.mu.Unlock()
	cancel() // closes the tunnels, which http.Server does not track
	e.tunnels.Wait()
	e.tr.CloseIdleConnections()
	return err
}

// egressError writes a short plain-text reason.
func egressError(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	io.WriteString(w, "Glovebox egress: "+msg+"\n")
}
