package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/elazarl/goproxy"
	"github.com/glovebox/glovebox/proxy/internal/httpx"
	"github.com/glovebox/glovebox/proxy/policy"
)

// HygieneConfig is what Glovebox does to the headers of the requests and
// responses it forwards, beyond removing the hop-by-hop ones.
type HygieneConfig struct {
	// Via is the pseudonym Glovebox adds to the Via header of every request
	// and response it forwards ("Via: 1.1 glovebox"); a request whose Via
	// already names it has gone round a loop of proxies and is refused with
	// 508 Loop Detected. Give each Glovebox in a chain its own. Empty: no
	// Via and no loop detection.
	Via string `mapstructure:"via"`
	// XForwardedFor is "off" (send on whatever X-Forwarded-For the client
	// sent and add nothing: the sites learn nothing of the users' addresses),
	// "add" (append the client's address, for a parent proxy that logs it),
	// or "strip" (remove X-Forwarded-For and Forwarded that a client or a
	// child proxy sent).
	XForwardedFor string `mapstructure:"x_forwarded_for"`
}

// The values of hygiene.x_forwarded_for.
const (
	XFFOff   = "off"
	XFFAdd   = "add"
	XFFStrip = "strip"
)

// DefaultHygieneConfig returns the defaults documented in config.yaml.
func DefaultHygieneConfig() HygieneConfig {
	return HygieneConfig{Via: "glovebox", XForwardedFor: XFFOff}
}

// Validate reports every bad value, each naming its key. It has no side
// effects.
func (c *HygieneConfig) Validate() error {
	var errs []error
	if c.Via != "" && !isToken(c.Via) {
		errs = append(errs, fmt.Errorf("hygiene.via: %q: want one word of letters, digits and -._~ (a pseudonym), or empty", c.Via))
	}
	switch c.XForwardedFor {
	case XFFOff, XFFAdd, XFFStrip:
	default:
		errs = append(errs, fmt.Errorf("hygiene.x_forwarded_for: %q: want off, add or strip", c.XForwardedFor))
	}
	return errors.Join(errs...)
}

// LimitsConfig bounds what a client may send.
type LimitsConfig struct {
	// MaxHeaderBytes bounds the request line and header fields of a request
	// (Go's server allows 4 KiB over it); a larger one gets 431.
	MaxHeaderBytes int `mapstructure:"max_header_bytes"`
	// MaxHeaderCount bounds the number of header field lines of a request;
	// more get 431. 0 turns the check off.
	MaxHeaderCount int `mapstructure:"max_header_count"`
	// MaxConnsPerClient bounds the connections one client address may
	// have open at once; more are answered 429 and closed. Behind a
	// downstream proxy every user shares its address: raise it there.
	MaxConnsPerClient int `mapstructure:"max_conns_per_client"`
}

// DefaultLimitsConfig returns the defaults documented in config.yaml.
func DefaultLimitsConfig() LimitsConfig {
	return LimitsConfig{MaxHeaderBytes: 64 << 10, MaxHeaderCount: 100, MaxConnsPerClient: 256}
}

// Validate reports every bad value, each naming its key. It has no side
// effects.
func (c *LimitsConfig) Validate() error {
	var errs []error
	if c.MaxHeaderBytes < 4<<10 {
		errs = append(errs, fmt.Errorf("limits.max_header_bytes: %d: want at least 4096", c.MaxHeaderBytes))
	}
	if c.MaxHeaderCount < 0 {
		errs = append(errs, fmt.Errorf("limits.max_header_count: must not be negative"))
	}
	if c.MaxConnsPerClient < 1 {
		errs = append(errs, fmt.Errorf("limits.max_conns_per_client: %d: must be at least 1", c.MaxConnsPerClient))
	}
	return errors.Join(errs...)
}

// isToken reports whether s is an RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > 0x7e || r <= ' ' || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", r) {
			return false
		}
	}
	return true
}

// Rules of the proxy's own refusals, in audit events.
const (
	ruleHeaderCount = "too many header fields"
	ruleHeaderSize  = "header fields too large"
	ruleBadConnect  = "bad CONNECT"
	ruleLoop        = "loop"
)

// refuse answers, before policy, the requests Glovebox will not handle: too
// many header fields (431), a CONNECT whose target is not host:port (400),
// and one that has been through this Glovebox already (508). It reports
// whether it answered.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, info *reqInfo) bool {
	var status int
	var rule, msg string
	switch {
	case s.cfg.Limits.MaxHeaderCount > 0 && headerCount(r.Header) > s.cfg.Limits.MaxHeaderCount:
		status, rule = http.StatusRequestHeaderFieldsTooLarge, ruleHeaderCount
		msg = fmt.Sprintf("the request has %d header fields; at most %d are allowed", headerCount(r.Header), s.cfg.Limits.MaxHeaderCount)
	case r.Method == http.MethodConnect && !validConnectTarget(r):
		status, rule = http.StatusBadRequest, ruleBadConnect
		msg = fmt.Sprintf("CONNECT wants host:port with a port from 1 to 65535, not %q", r.RequestURI)
	case s.looped(r):
		status, rule = http.StatusLoopDetected, ruleLoop
		msg = fmt.Sprintf("this request has been through this proxy (%s) already: the proxies are chained in a loop", s.cfg.Hygiene.Via)
	default:
		return false
	}
	info.decision = policy.Decision{Action: policy.ActionRefuse, Rule: rule}
	info.err = fmt.Errorf("refused: %s", msg)
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if status != http.StatusLoopDetected {
		h.Set("Connection", "close")
	}
	w.WriteHeader(status)
	io.WriteString(w, "Glovebox: "+msg+"\n")
	return true
}

// headerCount is the number of header field lines of a request (Go's server
// keeps each line as one value; Host is not among them).
func headerCount(h http.Header) int {
	n := 0
	for _, v := range h {
		n += len(v)
	}
	return n
}

// validConnectTarget reports whether a CONNECT names host:port (RFC 9110
// 9.3.6) and nothing else. goproxy would add :80 to a bare host.
func validConnectTarget(r *http.Request) bool {
	if r.URL == nil || r.URL.Path != "" || r.URL.RawQuery != "" || r.URL.User != nil {
		return false
	}
	host, port, err := net.SplitHostPort(r.URL.Host)
	if err != nil || host == "" || strings.ContainsAny(host, " \t/@") {
		return false
	}
	n, err := strconv.ParseUint(port, 10, 16)
	return err == nil && n > 0
}

// looped reports whether r's Via names this proxy's pseudonym as a hop.
func (s *Server) looped(r *http.Request) bool {
	if s.cfg.Hygiene.Via == "" {
		return false
	}
	for _, v := range r.Header.Values("Via") {
		for _, hop := range splitVia(v) {
			f := strings.Fields(hop)
			if len(f) >= 2 && strings.EqualFold(f[1], s.cfg.Hygiene.Via) {
				return true
			}
		}
	}
	return false
}

// splitVia splits a Via field value at the commas outside comments.
func splitVia(v string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '(':
			depth++
		case ')':
			if depth > 0 {
				depth--
			}
		case ',':
			if depth == 0 {
				out = append(out, v[start:i])
				start = i + 1
			}
		}
	}
	return append(out, v[start:])
}

// via is this proxy's Via entry for a message received as HTTP/major.minor,
// or "" when hygiene.via is off.
func (s *Server) via(major, minor int) string {
	if s.cfg.Hygiene.Via == "" {
		return ""
	}
	return protoVersion(major, minor) + " " + s.cfg.Hygiene.Via
}

// cleanRequest runs last among the request handlers, so only on requests
// that policy lets through to the site: it removes the hop-by-hop headers,
// adds Via and applies hygiene.x_forwarded_for.
func (s *Server) cleanRequest(r *http.Request, _ *goproxy.ProxyCtx) (*http.Request, *http.Response) {
	reqInfoOf(r).forwarded = true
	httpx.RemoveHopByHop(r.Header, httpx.IsWebSocket(r.Header))
	// The client's Connection: close (or HTTP/1.0) is about its own
	// connection; the one to the site stays open for the next request.
	r.Close = false
	if via := s.via(r.ProtoMajor, r.ProtoMinor); via != "" {
		r.Header.Add("Via", via)
	}
	switch s.cfg.Hygiene.XForwardedFor {
	case XFFAdd:
		ip := httpx.ClientIP(r)
		if prior := r.Header.Values("X-Forwarded-For"); len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		r.Header.Set("X-Forwarded-For", ip)
	case XFFStrip:
		r.Header.Del("X-Forwarded-For")
		r.Header.Del("Forwarded")
	}
	return r, nil
}

// cleanResponse removes a forwarded response's hop-by-hop headers (a site's
// Connection: close must not close the client's connection) and adds Via.
func (s *Server) cleanResponse(resp *http.Response) {
	httpx.RemoveHopByHop(resp.Header, resp.StatusCode == http.StatusSwitchingProtocols && httpx.IsWebSocket(resp.Header))
	if via := s.via(resp.ProtoMajor, resp.ProtoMinor); via != "" {
		resp.Header.Add("Via", via)
	}
}
