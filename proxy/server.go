// Package proxy is Glovebox's forward proxy: policy, the landing page that
// replaces isolated sites, the /.glovebox/ API it talks to, and the glue that
// gives each isolated tab a browser, a page and a WebRTC peer.
package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/glovebox/glovebox/proxy/auth"
	"github.com/glovebox/glovebox/proxy/tab"

	"github.com/elazarl/goproxy"

	"github.com/glovebox/glovebox/proxy/audit"
	"github.com/glovebox/glovebox/proxy/internal/httpx"
	"github.com/glovebox/glovebox/proxy/internal/netcheck"
	"github.com/glovebox/glovebox/proxy/pac"
	"github.com/glovebox/glovebox/proxy/policy"
	"github.com/glovebox/glovebox/proxy/scan"
	"github.com/glovebox/glovebox/proxy/tlsca"
	"github.com/glovebox/glovebox/proxy/upstream"
	"github.com/glovebox/glovebox/stream"
)

// Config is the proxy's part of the configuration.
type Config struct {
	// Listen is the address of the explicit HTTP proxy users' browsers are pointed at.
	Listen string `mapstructure:"listen"`
	// Clients lists the networks (CIDR prefixes or addresses) whose
	// clients may use the proxy; others get 403 and are disconnected.
	Clients []string `mapstructure:"clients"`
	// Policy decides allow, isolate or block per request.
	Policy policy.Config `mapstructure:"policy"`
	// Tabs bounds the isolated tabs.
	Tabs tab.Config `mapstructure:"tabs"`
	// Scan is the content scanner (ICAP) of files that cross.
	Scan scan.Config `mapstructure:"scan"`
	// Auth is proxy authentication: who makes each request.
	Auth auth.Config `mapstructure:"auth"`
	// PAC shapes the proxy auto-configuration file served at /proxy.pac.
	PAC pac.Config `mapstructure:"pac"`
	// TLS is HTTPS interception: its CA, and the roots sites are verified against.
	TLS tlsca.Config `mapstructure:"tls"`
	// UpstreamTimeout bounds connecting to and waiting for the response headers of an allowed site.
	UpstreamTimeout time.Duration `mapstructure:"upstream_timeout"`
	// ClientIdleTimeout closes a keep-alive client connection idle this long.
	ClientIdleTimeout time.Duration `mapstructure:"client_idle_timeout"`
	// ClientHeaderTimeout is how long a client has to send a request's
	// headers; a slower one is disconnected.
	ClientHeaderTimeout time.Duration `mapstructure:"client_header_timeout"`
	// Upstream is the parent proxy for allowed traffic, and its exceptions.
	Upstream upstream.Config `mapstructure:"upstream"`
	// Hygiene is Via, loop detection and X-Forwarded-For.
	Hygiene HygieneConfig `mapstructure:"hygiene"`
	// Limits bounds the requests clients send.
	Limits LimitsConfig `mapstructure:"limits"`
	// MediaTCPPort is the ICE-TCP port of Glovebox's own WebRTC media, set by
	// the wiring. Browsers reach ICE-TCP through their proxy with CONNECT,
	// which is tunnelled whatever policy says when it targets this machine's
	// own address (or one of MediaAddrs) on this port.
	MediaTCPPort int `mapstructure:"-"`
	// MediaAddrs are the public addresses the media is announced on behind
	// 1:1 NAT, set by the wiring.
	MediaAddrs []string `mapstructure:"-"`
	// Peers are the other replicas, when there are several (peers.go);
	// PeerCert is this replica's certificate for them. Set by the wiring.
	Peers    Peers           `mapstructure:"-"`
	PeerCert tls.Certificate `mapstructure:"-"`
	// LocalNets are the isolated browsers' networks (isolate.network.subnet),
	// set by the wiring: users' requests never go there.
	LocalNets []netip.Prefix `mapstructure:"-"`
	// Compiled is the policy compiled from PolicyConfig, set by the wiring
	// so that the proxy and the egress share one; New compiles it when nil.
	Compiled *policy.Policy `mapstructure:"-"`
}

// DefaultConfig returns the defaults documented in config.yaml.
func DefaultConfig() Config {
	return Config{
		Listen:            ":3128",
		Clients:           DefaultClients(),
		Policy:            policy.Config{Default: policy.ActionIsolate, Defaults: policy.DefaultControls},
		Tabs:              tab.DefaultConfig(),
		Scan:              scan.DefaultConfig(),
		Auth:              auth.DefaultConfig(),
		PAC:               pac.DefaultConfig(),
		TLS:               tlsca.DefaultConfig(),
		UpstreamTimeout:   30 * time.Second,
		ClientIdleTimeout: 2 * time.Minute,

		ClientHeaderTimeout: 30 * time.Second,
		Upstream:            upstream.DefaultConfig(),
		Hygiene:             DefaultHygieneConfig(),
		Limits:              DefaultLimitsConfig(),
	}
}

// Validate reports every bad value, each naming its key. It has no side
// effects: files named are read by Check.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen: %q: want host:port or :port", c.Listen))
	}
	if _, err := parseClients(c.Clients); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.Auth.Validate(), c.PAC.Validate(), c.TLS.Validate())
	if c.Compiled == nil { // else compiled already, and so valid
		if _, err := policy.New(c.PolicyConfig()); err != nil {
			errs = append(errs, err)
		}
	}
	for _, t := range []struct {
		key string
		d   time.Duration
	}{{"upstream_timeout", c.UpstreamTimeout}, {"client_idle_timeout", c.ClientIdleTimeout}, {"client_header_timeout", c.ClientHeaderTimeout}} {
		if t.d <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive", t.key))
		}
	}
	errs = append(errs, c.Upstream.Validate(), c.Hygiene.Validate(), c.Limits.Validate())
	errs = append(errs, c.Tabs.Validate(), c.Scan.Validate())
	return errors.Join(errs...)
}

// Check reads the files the configuration names, as New does: the
// htpasswd file, the configured CA, tls.extra_ca_files and every rule's
// ca_file. Validate has no side effects; glovebox check runs both, so that
// a configuration it accepts does not fail at serve.
func (c *Config) Check() error {
	errs := []error{c.Auth.Check(), c.TLS.Check()}
	for i, r := range c.Policy.Rules {
		if r.CAFile == "" {
			continue
		}
		if err := tlsca.AppendCAFile(x509.NewCertPool(), r.CAFile); err != nil {
			errs = append(errs, fmt.Errorf("policy.rules[%d] (%s): ca_file: %w", i, ruleName(r, i), err))
		}
	}
	return errors.Join(errs...)
}

// Server is the forward proxy. It is an http.Handler.
type Server struct {
	cfg     Config
	policy  *policy.Policy
	audit   *audit.Audit
	log     *slog.Logger
	gp      *goproxy.ProxyHttpServer
	api     http.Handler
	tabs    *tab.Manager
	navs    *heldNavs
	auth    *auth.Authenticator
	up      *upstream.Route
	mitm    *mitm
	guard   *localGuard
	clients []netip.Prefix
	pacFile http.Handler
	health  *Health

	// peerTransport reaches the other replicas (peers.go); peerForwards
	// counts what went between them.
	peerTransport *http.Transport
	peerForwards  peerCounts

	// self knows this host's addresses and listenPort the proxy's port, so
	// that a request through the proxy to the proxy itself is answered
	// with its own pages (a browser set to use Glovebox that downloads the
	// CA or the PAC file sends exactly that).
	self       *netcheck.HostAddrs
	listenPort atomic.Int32
}

// New builds the proxy. iso starts browsers, st makes WebRTC peers.
func New(cfg Config, iso tab.Isolator, st tab.Streamer, aud *audit.Audit, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pol := cfg.Compiled
	if pol == nil {
		var err error
		if pol, err = policy.New(cfg.PolicyConfig()); err != nil {
			return nil, err
		}
	}
	// Every line the proxy logs goes through redactHandler: see redact.go.
	log = slog.New(audit.NewRedactHandler(log.Handler())).With("component", "proxy")
	au, err := auth.New(cfg.Auth, log)
	if err != nil {
		return nil, err
	}
	m, err := newMITM(cfg, log)
	if err != nil {
		return nil, err
	}
	if cfg.Tabs.Scanner == nil {
		sc, err := cfg.Scan.New()
		if err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		if sc != nil {
			cfg.Tabs.Scanner = sc
		}
	}
	if cfg.Peers != nil {
		if cfg.PeerCert.Leaf == nil {
			return nil, errors.New("peers: no peer certificate (PeerCert with its Leaf)")
		}
		cfg.Tabs.TokenPrefix = cfg.Peers.Self()
	}
	s := &Server{cfg: cfg, policy: pol, audit: aud, log: log, auth: au, mitm: m, navs: &heldNavs{audit: aud},
		tabs: tab.NewManager(cfg.Tabs, iso, st, aud, log), self: &netcheck.HostAddrs{List: net.InterfaceAddrs}}
	if s.guard, err = newLocalGuard(s.self, cfg.LocalNets, cfg.Upstream.AllowLocal); err != nil {
		return nil, err
	}
	s.api = s.apiHandler()
	if cfg.Peers != nil {
		s.peerTransport = newPeerTransport(cfg.Peers, cfg.PeerCert)
	}
	s.pacFile = pac.Handler(cfg.PAC, log)
	s.clients, _ = parseClients(cfg.Clients) // validated above
	if wide := widerThanDefault(s.clients); wide != "" && cfg.Auth.Mode == auth.ModeNone {
		log.Warn("OPEN PROXY: clients includes "+wide+" and auth.mode is none: anyone who reaches "+cfg.Listen+
			" from there browses from this server's address without signing in. Narrow clients or turn authentication on.",
			"clients", cfg.Clients)
	}
	s.health = NewHealth()
	if aud != nil {
		s.health.Add("audit", func(context.Context) error { return aud.Health() })
	}

	gp := goproxy.NewProxyHttpServer()
	gp.Logger = httpx.GoproxyLogger{L: log}
	dialer := &net.Dialer{Timeout: cfg.UpstreamTimeout, KeepAlive: 30 * time.Second}
	// goproxy's default transport skips TLS verification and reads proxy
	// settings from the environment: neither is acceptable here.
	gp.Tr = &http.Transport{
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   cfg.UpstreamTimeout,
		ResponseHeaderTimeout: cfg.UpstreamTimeout,
		IdleConnTimeout:       cfg.Upstream.IdleTimeout,
		MaxIdleConnsPerHost:   16,
		ExpectContinueTimeout: time.Second,
	}
	s.wireUpstream(gp, dialer)
	m.configure(gp)
	gp.NonproxyHandler = http.HandlerFunc(s.serveOwn)
	s.gp = gp
	s.register()
	return s, nil
}

// register plugs the API, policy and audit into goproxy as conditions and handlers.
func (s *Server) register() {
	s.gp.OnRequest().DoFunc(s.beginIntercepted) // first: requests inside intercepted HTTPS
	s.registerAuth()
	// The API is answered only where the landing page can be: on origins
	// policy isolates for this user. Elsewhere /.glovebox/ is the site's
	// own path, and no page of an allowed site can reach a tab.
	s.gp.OnRequest(goproxy.ReqConditionFunc(func(r *http.Request, _ *goproxy.ProxyCtx) bool {
		return strings.HasPrefix(r.URL.Path, apiPrefix) && s.policy.DecideOrigin(r.URL, reqInfoOf(r).user).Action == policy.ActionIsolate
	})).DoFunc(func(r *http.Request, ctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
		reqInfoOf(r).own = true
		return r, recordResponse(r, http.HandlerFunc(s.serveAPI))
	})
	s.gp.OnRequest().DoFunc(s.decide)
	s.gp.OnRequest().DoFunc(s.cleanRequest) // last: only for requests that go on to the site
	s.gp.OnRequest().HandleConnectFunc(s.decideConnect)
	s.gp.OnResponse().DoFunc(s.checkUpstream) // first: parent failures, timeouts, hygiene
	s.gp.OnResponse().DoFunc(func(resp *http.Response, ctx *goproxy.ProxyCtx) *http.Response {
		if resp == nil {
			reqInfoOf(ctx.Req).err = ctx.Error
			return upstreamErrorPage(ctx.Req, ctx.Error)
		}
		return resp
	})
	s.gp.OnResponse().DoFunc(s.endIntercepted) // last: audit of intercepted requests
}

// decide applies policy to one plain HTTP request.
func (s *Server) decide(r *http.Request, _ *goproxy.ProxyCtx) (*http.Request, *http.Response) {
	info := reqInfoOf(r)
	d, partial := s.effective(r.URL, info.user)
	info.decision = d
	if partial {
		return r, errorPage(r, http.StatusForbidden, "This page cannot be isolated",
			"Policy isolates part of "+originOf(r.URL)+" and allows the rest (rule "+d.Rule+"). Isolation works per site: "+
				"an administrator should isolate the whole site, or none of it.")
	}
	switch d.Action {
	case policy.ActionAllow:
		if err := s.guard.checkLiteral(r.URL.Hostname(), urlPort(r.URL)); err != nil {
			info.decision = policy.Decision{Action: policy.ActionRefuse, Rule: ruleLocalDest}
			info.err = err
			return r, localDestPage(r, err)
		}
		return r, nil
	case policy.ActionBlock:
		return r, blockPage(r, d)
	}
	if policy.IsNavigation(r) {
		if r.Method != http.MethodGet {
			return r, errorPage(r, http.StatusForbidden, "This request cannot be isolated",
				"A "+r.Method+" navigation to an isolated site cannot be opened in isolation. Open the page first and submit the form from there.")
		}
		info.landing = true
		return r, landingPage(r, info.id)
	}
	// Nothing from an isolated origin reaches the user's browser.
	return r, isolatedResource(r)
}

// effective is what is done with a request for u: a block stands; on an
// origin whose root policy isolates, everything is isolated (an allow rule
// for part of it would serve the site's own pages beside the landing
// pages, able to script them); partial says policy isolates u but not its
// origin, which cannot be isolated safely either.
func (s *Server) effective(u *url.URL, user string) (d policy.Decision, partial bool) {
	d = s.policy.Decide(u, user)
	if d.Action == policy.ActionBlock {
		return d, false
	}
	if o := s.policy.DecideOrigin(u, user); o.Action == policy.ActionIsolate {
		if d.Action != policy.ActionIsolate {
			d = o
		}
		return d, false
	}
	return d, d.Action == policy.ActionIsolate
}

// isolatable reports whether a tab may be opened, or handed over, for u.
func (s *Server) isolatable(u *url.URL, user string) bool {
	d, partial := s.effective(u, user)
	return d.Action == policy.ActionIsolate && !partial
}

// decideConnect applies policy to a CONNECT tunnel: only allowed hosts with
// no_inspect (and Glovebox's own media port) are tunnelled; the rest is
// intercepted (mitm.go).
func (s *Server) decideConnect(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
	d := s.policy.DecideRequest(ctx.Req, reqInfoOf(ctx.Req).user)
	if s.isMediaTarget(host) {
		d = policy.Decision{Action: policy.ActionAllow, Rule: "glovebox-media", NoInspect: true}
	}
	info := reqInfoOf(ctx.Req)
	info.decision = d
	info.status = http.StatusOK
	if d.Action == policy.ActionAllow && d.NoInspect {
		if h, p, _ := net.SplitHostPort(host); d.Rule != "glovebox-media" {
			if err := s.guard.checkLiteral(h, p); err != nil {
				info.decision = policy.Decision{Action: policy.ActionRefuse, Rule: ruleLocalDest}
				info.err = err
				info.status = http.StatusForbidden
				ctx.Resp = localDestPage(ctx.Req, err)
				return goproxy.RejectConnect, host
			}
		}
		return goproxy.OkConnect, host
	}
	// Isolated sites get the landing page, blocked ones the block page, at
	// their https:// URL; allowed ones are inspected.
	return s.intercept(host, ctx)
}

// isMediaTarget reports whether a CONNECT target is Glovebox's own ICE-TCP
// listener: an address of this machine (or an announced NAT address) on
// the media port. Names never match: ICE candidates are addresses.
func (s *Server) isMediaTarget(hostport string) bool {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil || s.cfg.MediaTCPPort <= 0 || port != strconv.Itoa(s.cfg.MediaTCPPort) {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, a := range s.cfg.MediaAddrs {
		if m, err := netip.ParseAddr(a); err == nil && m == ip {
			return true
		}
	}
	return s.self.Contains(ip) || s.isPeerMedia(ip)
}

// isSelf reports whether hostport is this proxy: its port on a loopback or
// local address, or on the name the PAC file gives clients.
func (s *Server) isSelf(hostport string) bool {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil || port != strconv.Itoa(int(s.listenPort.Load())) {
		return false
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap()
		return ip.IsLoopback() || s.self.Contains(ip)
	}
	if pacHost, _, err := net.SplitHostPort(s.cfg.PAC.Proxy); err == nil && strings.EqualFold(pacHost, host) {
		return true
	}
	return strings.EqualFold(host, "localhost")
}

// ServeHTTP serves one proxy request and writes its audit event.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	info := &reqInfo{id: newRequestID(), start: start}
	r = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, info))
	if r.Method != http.MethodConnect && r.URL.IsAbs() && s.isSelf(r.URL.Host) {
		s.serveOwn(w, r)
		return
	}
	cw := &httpx.CountingWriter{ResponseWriter: w, OnHijack: info}
	if !s.refuse(cw, r, info) {
		s.gp.ServeHTTP(cw, r)
	}
	if info.own || (!r.URL.IsAbs() && r.Method != http.MethodConnect) {
		return
	}
	status := cw.Status
	if status == 0 {
		status = info.status
	}
	s.auditRequest(requestEvent(r, info, status, cw.N, time.Since(start)), info)
}

// auditRequest writes a proxy_request; a landing page's waits for its tab.
func (s *Server) auditRequest(e audit.RequestEvent, info *reqInfo) {
	if info.landing && e.Status == http.StatusOK {
		s.navs.hold(e)
		return
	}
	s.audit.Request(e)
}

// Serve accepts proxy connections on ln until ctx is done, then drains them
// for up to grace and ends every tab.
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		s.listenPort.Store(int32(a.Port))
	}
	ln = newClientLimitListener(ln, s.cfg.Limits.MaxConnsPerClient, s.clients)
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.cfg.ClientHeaderTimeout,
		IdleTimeout:       s.cfg.ClientIdleTimeout,
		MaxHeaderBytes:    s.cfg.Limits.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		s.Close()
		return fmt.Errorf("serve proxy: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := hs.Shutdown(sctx)
	s.Close()
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shut down proxy: %w", err)
	}
	return nil
}

// Close ends every tab and waits for their browsers to be gone.
func (s *Server) Close() {
	s.tabs.Close()
	s.navs.close()
}

// LookupTab maps the source address of an isolated browser's connection to
// its tab and user, for the egress proxy. Warm browsers no tab has claimed
// are unknown: the egress proxy refuses them.
func (s *Server) LookupTab(srcIP string) (tab, user string, ok bool) {
	t, ok := s.tabs.LookupAddr(srcIP)
	if !ok {
		return "", "", false
	}
	return t.ID(), t.User(), true
}

// ShadowTab adds an operator's view-only viewer of tab id's video (see
// tab.Tab.Shadow): tab.ErrNoTab when there is no such tab.
func (s *Server) ShadowTab(ctx context.Context, id, offerSDP string, notice bool) (answerSDP string, stop func(), done <-chan struct{}, err error) {
	t := s.tabs.ByID(id)
	if t == nil {
		return "", nil, nil, tab.ErrNoTab
	}
	return t.Shadow(ctx, offerSDP, notice)
}

// TabList lists the open tabs, ordered by id.
func (s *Server) TabList() []tab.Info { return s.tabs.List() }

// EndTab ends the tab with id for reason, and reports whether it existed.
func (s *Server) EndTab(id, reason string) bool { return s.tabs.EndByID(id, reason) }

// Health is the proxy's health, served at /healthz: the audit log's
// check, and those the wiring adds (the runtime's, the pool's). Serve it on
// other addresses too, so that every /healthz gives the same answer.
func (s *Server) Health() *Health { return s.health }

// Tabs is how many isolated tabs exist now.
func (s *Server) Tabs() int { return s.tabs.Count() }

// TabMedia returns the media stats of each open tab that has had a peer,
// for metrics (see TabMediaMetrics).
func (s *Server) TabMedia() []tab.Media { return s.tabs.Media() }

// serveOwn answers requests made to the proxy itself rather than through it.
func (s *Server) serveOwn(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/proxy.pac", "/wpad.dat":
		s.pacFile.ServeHTTP(w, r)
	case "/healthz":
		s.health.ServeHTTP(w, r)
	case CAPEMPath, CADERPath:
		s.serveCACert(w, r, r.URL.Path == CADERPath)
	case "/":
		s.serveIndex(w, r)
	default:
		http.Error(w, "This is Glovebox, a proxy. Use it as your browser's HTTP proxy.", http.StatusNotFound)
	}
}

// reqInfo carries what policy decided from goproxy's handlers to the audit event.
type reqInfo struct {
	// id is the request's request_id; landing says it was answered with
	// the landing page, whose proxy_request waits for its tab (navlog.go).
	id       string
	landing  bool
	start    time.Time
	decision policy.Decision
	user     string // who made the request: "" when anonymous
	status   int
	own      bool
	err      error

	intercepted   *interceptedConn // a CONNECT answered by interception
	forwarded     bool             // sent on to the site (policy allowed it)
	parent        string           // the parent proxy it went through, host:port
	connectFailed bool             // a CONNECT whose connection could not be made
}

// WrapHijacked bounds an intercepted CONNECT's connection for the requests
// goproxy reads inside it (see tunnelConn); a tunnel's (or a WebSocket's)
// lets the kernel relay it (splicingConn).
func (info *reqInfo) WrapHijacked(c net.Conn) net.Conn {
	if info.intercepted != nil {
		return info.intercepted.hijacked(c)
	}
	if lc, ok := c.(*limitedConn); ok {
		return splicingConn{lc} // a tunnel: relayed by the kernel
	}
	return c
}

type reqInfoKey struct{}

func reqInfoOf(r *http.Request) *reqInfo {
	if info, ok := r.Context().Value(reqInfoKey{}).(*reqInfo); ok {
		return info
	}
	return &reqInfo{}
}

// urlPort is u's port, or the scheme's default.
func urlPort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

func isBadOffer(err error) bool { return errors.Is(err, stream.ErrBadOffer) }
